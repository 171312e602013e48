"""Behaviour of BertTextClassifier on a tiny offline BERT."""

import pickle

import numpy as np
import pandas as pd
import pytest

from skbert import BertTextClassifier


def test_fit_learns_toy_task(fitted, toy_data):
    """Check that fitting the tiny BERT learns the toy task well above chance."""
    _, _, X_test, y_test = toy_data
    labels = np.array(["neg", "pos"])[y_test]
    assert fitted.score(X_test, labels) >= 0.9
    assert fitted.n_iter_ == 8
    assert len(fitted.loss_curve_) == 8
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_predict_proba_rows_sum_to_one_in_classes_order(fitted, toy_data):
    """Check that predict_proba is float64, sums to 1 and predict is classes_[argmax]."""
    _, _, X_test, _ = toy_data
    proba = fitted.predict_proba(X_test)
    assert proba.dtype == np.float64
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(fitted.predict(X_test), fitted.classes_[proba.argmax(1)])
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X_test)), proba, rtol=1e-10)
    assert list(fitted.classes_) == ["neg", "pos"]


def test_predict_proba_order_and_subset_invariant(fitted, toy_data):
    """Check that a text's probabilities do not depend on its neighbours or order."""
    _, _, X_test, _ = toy_data
    proba = fitted.predict_proba(X_test)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(
        fitted.predict_proba([X_test[i] for i in perm]), proba[perm], atol=1e-5
    )
    np.testing.assert_allclose(fitted.predict_proba(X_test[:3]), proba[:3], atol=1e-5)
    np.testing.assert_allclose(fitted.predict_proba([X_test[7]]), proba[7:8], atol=1e-5)


def test_fit_reproducible_with_random_state(tiny_params, toy_data):
    """Check that the same random_state on CPU gives identical predictions."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=2)
    a = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    b = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    c = BertTextClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X_test)
    assert not np.allclose(a, c)


def test_pickle_round_trip_needs_no_model_folder(fitted, toy_data, tmp_path):
    """Check that a pickled estimator predicts identically without its source folder."""
    _, _, X_test, _ = toy_data
    blob = pickle.dumps(fitted)
    assert b"torch" not in blob.split(b"skbert")[0]  # no torch classes before our own
    loaded = pickle.loads(blob)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))


def test_pandas_and_array_inputs(fitted, toy_data):
    """Check that lists, tuples, Series, one-column DataFrames and arrays agree."""
    _, _, X_test, _ = toy_data
    expected = fitted.predict_proba(X_test)
    for X in (
        tuple(X_test),
        np.array(X_test, dtype=object),
        pd.Series(X_test, index=np.arange(len(X_test)) * 3 + 5),
        pd.DataFrame({"text": X_test}),
        np.array(X_test)[:, None],
    ):
        np.testing.assert_allclose(fitted.predict_proba(X), expected, atol=1e-6)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 11]),
        np.array([True, False]),
        np.array(["spam", "ham"], dtype=object),
    ],
)
def test_any_hashable_labels(tiny_params, toy_data, labels):
    """Check that non-contiguous ints, bools and object strings round-trip."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, labels[y])
    assert set(clf.predict(X_test)) <= set(labels.tolist())
    np.testing.assert_array_equal(clf.classes_, np.unique(labels))
