"""``_validation`` tested directly: the checks of user data and parameters and their
texts, with and without ``where=`` (the place the command line and skbert.dask name).

No model is built: each runs in milliseconds.
"""

import math

import numpy as np
import pytest

from skbert import BertTextClassifier
from skbert import _validation as v


@pytest.mark.parametrize(("value", "error", "plain", "placed"), [
    (None, ValueError, r"X contains a missing value \(None\) at index 3\.",
     r"Missing text \(None\) at row 3 of 'data\.csv'\. Fill it"),
    (math.nan, ValueError, r"missing value \(nan\) at index 3",
     r"Missing text \(nan\) at row 3 of 'data\.csv'"),
    (b"bad", TypeError, r"X must contain only str; got bytes at index 3\. Decode it",
     r"Texts must be str; got bytes b'bad' at row 3 of 'data\.csv'\. Decode it"),
    (7, TypeError, r"X must contain only str; got int 7 at index 3\.",
     r"Texts must be str; got int 7 at row 3 of 'data\.csv'\."),
    ("bad \udc80 surrogate", ValueError, r"not valid Unicode at index 3 \(surrogates",
     r"The text at row 3 of 'data\.csv' is not valid Unicode"),
])
def test_check_text_names_the_index_or_the_place(value, error, plain, placed):
    """Check each refusal of a text, naming its index in X by default and the caller's
    place with where=."""
    with pytest.raises(error, match=plain):
        v.check_text(value, 3)
    with pytest.raises(error, match=placed):
        v.check_text(value, 3, where="row {index} of 'data.csv'")
    assert v.check_text("fine", 3, where="row {index}") == "fine"


def test_check_texts_counts_from_start_and_takes_every_layout():
    """Check the layouts check_texts accepts (list, 1-column array, pairs) and that an
    error of a chunk counts its index from start."""
    assert v.check_texts(np.array([["a"], ["b"]], dtype=object)) == ["a", "b"]
    assert v.check_texts([("a", "b"), ("c", "d")]) == [("a", "b"), ("c", "d")]
    assert v.check_texts([], allow_empty=True) == []
    with pytest.raises(ValueError, match="at index 12"):
        v.check_texts(["a", None], start=11)
    with pytest.raises(ValueError, match="row 12 of part 2"):
        v.check_texts(["a", None], start=11, where="row {index} of part 2")
    with pytest.raises(ValueError, match="Iterable over raw text documents expected"):
        v.check_texts("one string")
    with pytest.raises(ValueError, match=r"got an array of shape \(2, 3\)"):
        v.check_texts(np.zeros((2, 3), dtype=object))


def test_check_sample_weight_names_the_first_negative():
    """Check that a negative weight is refused naming its index and value."""
    assert v.check_sample_weight(None, 3) is None
    np.testing.assert_array_equal(v.check_sample_weight([1, 2, 3], 3), [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"non-negative; got -1\.0 at index 1"):
        v.check_sample_weight([1, -1, -2], 3)


def test_check_label_names_against_y_and_the_stream():
    """Check that label_names must name each column of a multi-label y once, and that a
    later chunk may repeat or omit the first chunk's names but not change them."""
    Y = np.array([[0, 1], [1, 0]])
    names = v.check_label_names(["pos", "neg"], Y)
    assert names.dtype == object and names.tolist() == ["pos", "neg"]
    with pytest.raises(ValueError, match="one label per text"):
        v.check_label_names(["a"], [0, 1])
    with pytest.raises(ValueError, match="holds 3 names, but y has 2 label columns"):
        v.check_label_names(["a", "b", "c"], Y)
    with pytest.raises(ValueError, match="'a' more than once"):
        v.check_label_names(["a", "a"], Y)
    with pytest.raises(TypeError, match="only str; got int 1 at index 1"):
        v.check_label_names(["a", 1], Y)
    assert v.check_label_names(None, Y, fitted=names, continuing=True) is names
    with pytest.raises(ValueError, match="differs from the stream's first call"):
        v.check_label_names(["x", "y"], Y, fitted=names, continuing=True)


def test_check_params_gives_scikit_learns_error():
    """Check that check_params refuses a bad value as fit would, naming the parameter."""
    v.check_params(BertTextClassifier())
    with pytest.raises(ValueError, match="'max_length' parameter"):
        v.check_params(BertTextClassifier(max_length=1))


def test_parameter_constraints_are_the_estimators():
    """Check that the shared constraints are what both estimators declare."""
    from skbert import BertTextRegressor

    for cls in (BertTextClassifier, BertTextRegressor):
        for name, constraint in v.PARAMETER_CONSTRAINTS.items():
            assert cls._parameter_constraints[name] == constraint
    assert set(v.PARAMETER_CONSTRAINTS) <= set(BertTextClassifier().get_params())
