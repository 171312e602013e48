"""Input checks for texts, labels, regression targets, weights and parameters.

``PARAMETER_CONSTRAINTS`` declares the parameters every estimator shares, in
scikit-learn's constraint language.

The checks of user data with their texts, shared by the estimators and the wings (the
command line, :mod:`skbert.dask`), which name where a value sits with ``where=`` ("row
12 of 'data.csv'", "position 3 of a partition of the Bag"). This module imports nothing
from skbert.
"""

import os
from itertools import islice
from numbers import Integral, Real

import numpy as np
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _check_sample_weight

# The constraints of the parameters every estimator shares (scikit-learn checks them in
# fit); each estimator adds those of its targets.
PARAMETER_CONSTRAINTS = {
    "model_name_or_path": [str, os.PathLike],
    "revision": [str, None],
    "max_length": [Interval(Integral, 2, None, closed="left")],
    "truncation": [StrOptions({"head", "head_tail", "window"})],
    "window_stride": [Interval(Integral, 1, None, closed="left"), None],
    "window_pooling": [StrOptions({"mean", "max"})],
    "pooling": [StrOptions({"mean", "cls", "pooler"})],
    "freeze_base": ["boolean"],
    "head": [None, tuple, callable],
    "head_dropout": [Interval(Real, 0, 1, closed="left"), None],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "head_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
    "layer_decay": [Interval(Real, 0, 1, closed="right")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
    "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str],
    "training_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16"})],
    "inference_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16", "int8"})],
    "inference_backend": [StrOptions({"auto", "torch", "openvino"})],
    "predict_batch_tokens": [Interval(Integral, 8, None, closed="left"), None],
    "max_steps": [Interval(Integral, 1, None, closed="left"), None],
    "checkpoint_dir": [str, os.PathLike, None],
    "checkpoint_every": [Interval(Integral, 1, None, closed="left"), None],
    "keep_checkpoints": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose", StrOptions({"auto"})],
}


_BARE_STRING = "Iterable over raw text documents expected, string object received."


def is_missing(value):
    """Whether ``value`` marks a missing entry: None, NaN, or pandas' NA or NaT.

    The one definition of a missing value, for texts, labels and every reader.
    """
    if value is None or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return True
    return type(value).__name__ in ("NAType", "NaTType")  # without importing pandas


def mixed_label_types(values, name="y"):
    """The one error for labels of several types (which neither sort nor compare)."""
    kinds = sorted({type(v).__name__ for v in values})
    return TypeError(f"{name} mixes label types ({', '.join(kinds)}); use one type for all "
                     "labels.")


def _sequence_labels(values):
    """The error for a list of tuples (or lists) given as labels."""
    kind = type(values[0]).__name__
    return ValueError(
        f"y is a list of {kind}s (first: {values[0]!r}). NumPy and scikit-learn read a "
        f"list of {kind}s as a 2-D target of shape (n_samples, n_outputs), one column "
        "per position, not as one label per text; this classifier needs one hashable "
        "label per text. To use each tuple as a class, turn it into one value, e.g. "
        "y = [' | '.join(map(str, t)) for t in y]; for several labels per text, make an "
        "indicator matrix with sklearn.preprocessing.MultiLabelBinarizer."
    )


def describe(value):
    """A short description of ``value`` for an error message: its type and its repr,
    cut to 40 characters ("int 3", "bytes b'bad'")."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def check_text(value, index=0, *, where=None):
    """Check one text; return it.

    Parameters
    ----------
    value : object
        The text: a str that encodes as UTF-8.
    index : int or object, default=0
        Its index (or label), for the message.
    where : str or None, default=None
        Where the text sits, for a caller that reads texts from elsewhere than ``X``: a
        phrase in which ``{index}`` stands for ``index``, such as ``"row {index} of
        'data.csv' (0-based, header not counted), column 'text'"``. None names
        ``index`` of ``X``.

    Returns
    -------
    value : str

    Raises
    ------
    TypeError
        When ``value`` is not a str (bytes included).
    ValueError
        When ``value`` is missing (None, NaN, NA) or not valid Unicode.
    """
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                broken = (f"{exc.reason}: {value[exc.start:exc.end]!r} at character "
                          f"{exc.start}")
                fix = "Decode the source bytes with errors='replace' to drop broken sequences."
                if where is None:
                    raise ValueError(f"X contains text that is not valid Unicode at index "
                                     f"{index} ({broken}). {fix}") from None
                raise ValueError(f"The text at {_place(where, index)} is not valid Unicode "
                                 f"({broken}). {fix}") from None
        return value
    if isinstance(value, (bytes, bytearray)):
        fix = "Decode it first, for example value.decode('utf-8')."
        if where is None:
            raise TypeError(f"X must contain only str; got bytes at index {index}. {fix}")
        raise TypeError(f"Texts must be str; got {describe(value)} at "
                        f"{_place(where, index)}. {fix}")
    if is_missing(value):
        if where is None:
            raise ValueError(
                f"X contains a missing value ({value!r}) at index {index}. "
                "Drop or fill missing texts before calling this method."
            )
        raise ValueError(f"Missing text ({value!r}) at {_place(where, index)}. Fill it (an "
                         "empty string is a valid text) or drop it.")
    if where is None:
        raise TypeError(f"X must contain only str; got {describe(value)} at index {index}.")
    raise TypeError(f"Texts must be str; got {describe(value)} at {_place(where, index)}.")


def _place(where, index):
    """``where`` with ``{index}`` filled in."""
    return where.format(index=index)


def check_texts(X, *, allow_empty=False, start=0, where=None):
    """Validate raw texts and return them as a list.

    Parameters
    ----------
    X : iterable of str, or 2-column array-like of str
        A list, tuple, ndarray or pandas Series of str; a one-column DataFrame or
        (n, 1) array; or a two-column DataFrame or (n, 2) array of text pairs.
    allow_empty : bool, default=False
        Accept zero texts (prediction does; fitting does not).
    start : int, default=0
        Index of ``X[0]`` in the caller's data, for error messages about chunks.
    where : str or None, default=None
        Where the texts sit, as in `check_text` (``{index}`` counts from ``start``).

    Returns
    -------
    texts : list of str or list of tuple of (str, str)
        Plain texts, or (first, second) pairs.
    """
    if isinstance(X, (str, bytes)):
        raise ValueError(_BARE_STRING)
    if hasattr(X, "to_numpy"):  # pandas Series or DataFrame
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        if X.ndim == 0:
            raise ValueError(f"X must be an iterable of texts; got a 0-d array {X!r}.")
        if X.ndim > 2 or (X.ndim == 2 and X.shape[1] not in (1, 2)):
            raise ValueError(
                "X must be 1-D texts, one column of texts, or two columns of text pairs; "
                f"got an array of shape {X.shape}."
            )
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        rows = X.tolist()
    else:
        try:
            rows = list(X)
        except TypeError:
            raise TypeError(
                f"X must be an iterable of str; got {type(X).__name__}."
            ) from None
    if not rows:
        if allow_empty:
            return []
        raise ValueError("X is empty: at least one text is required.")
    if isinstance(rows[0], (list, tuple)):
        return [_check_pair(row, i) for i, row in enumerate(rows, start)]
    return [check_text(row, i, where=where) for i, row in enumerate(rows, start)]


def iter_text_chunks(X, chunk_size):
    """Yield validated lists of at most ``chunk_size`` texts.

    A lazy iterator (a generator, a file) is read one chunk at a time, so it never
    needs to fit in memory; anything else is validated whole, then cut.
    """
    if isinstance(X, (str, bytes)):
        raise ValueError(_BARE_STRING)
    try:
        lazy = iter(X) is X
    except TypeError:
        lazy = False
    if not lazy:
        texts = check_texts(X, allow_empty=True)
        for start in range(0, len(texts), chunk_size):
            yield texts[start : start + chunk_size]
        return
    start = 0
    while chunk := list(islice(X, chunk_size)):
        yield check_texts(chunk, start=start)
        start += len(chunk)


def _check_pair(row, index):
    if not isinstance(row, (list, tuple)) or len(row) != 2:
        raise ValueError(
            "X rows must all be single texts or all (first, second) text pairs, as the "
            f"first row is; got {describe(row)} at index {index}."
        )
    return (check_text(row[0], index), check_text(row[1], index))


def is_pair_input(texts):
    """Return True when validated ``texts`` are (first, second) pairs."""
    return isinstance(texts[0], tuple)


def check_labels(y, n_samples):
    """Validate class labels and return them as a 1-D ndarray.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Hashable class labels (str, int, bool...).
    n_samples : int
        Number of texts the labels go with.

    Returns
    -------
    y : ndarray of shape (n_samples,)
    """
    if y is None:
        raise ValueError(
            "y is required: this classifier needs one label per text; got None."
        )
    if isinstance(y, str):
        raise ValueError("y must be an array-like of labels; got a single str.")
    y = _as_array(y)
    if y.ndim == 2 and y.shape[1] == 1:
        raise ValueError(
            f"y must be 1-D; got shape {y.shape}. Use y.ravel() to flatten a column vector."
        )
    if y.ndim != 1:
        raise ValueError(
            f"y must be 1-D class labels or a 2-D 0/1 indicator matrix of multi-label "
            f"targets with at least 2 columns; got shape {y.shape}."
        )
    if y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have inconsistent lengths: {n_samples} texts and {y.shape[0]} labels."
        )
    for i, label in enumerate(y.tolist()):
        if is_missing(label):
            raise ValueError(f"y contains a missing label ({label!r}) at index {i}.")
        if not isinstance(label, (float, np.floating)):
            continue
        if np.isinf(label):
            raise ValueError(f"y contains an infinite label ({float(label)!r}) at index {i}.")
        if label != round(label):
            raise ValueError(
                f"y holds continuous values ({float(label)!r} at index {i}), but a "
                "classifier needs discrete class labels. Use a regressor for continuous "
                "targets, or bin them into classes first."
            )
    return y


def _as_array(y):
    """``y`` as an ndarray: a list of equal-length rows of numbers becomes 2-D, as in
    NumPy; a list of other tuples or lists is refused with an explanation."""
    if hasattr(y, "toarray"):  # a SciPy sparse indicator matrix
        y = y.toarray()
    if hasattr(y, "to_numpy"):
        y = y.to_numpy()
    if isinstance(y, np.ndarray):
        return y
    values = list(y)
    if values and all(isinstance(v, (tuple, list)) for v in values):
        rows = {len(v) for v in values}
        numeric = all(isinstance(x, (bool, int, float, np.number)) for v in values for x in v)
        if len(rows) == 1 and numeric:
            return np.asarray(values)
        raise _sequence_labels(values)
    array = np.asarray(values)
    if array.dtype.kind == "U":
        if not all(isinstance(v, str) for v in values):
            raise mixed_label_types(values)  # NumPy would turn 1 into "1" silently
        if any(v.endswith("\x00") for v in values):
            # NumPy's fixed-width strings drop trailing NULs ("\x00" would become "").
            array = np.array(values, dtype=object)
    return array


def is_indicator(y):
    """Whether ``y`` is given as a 2-D target of several columns (multi-label)."""
    if y is None or isinstance(y, str):
        return False
    shape = getattr(y, "shape", None)
    if shape is not None:
        return len(shape) == 2 and shape[1] > 1
    try:
        return _as_array(y).ndim == 2 and _as_array(y).shape[1] > 1
    except (TypeError, ValueError):
        return False  # check_labels says what is wrong


def check_indicator(y, n_samples, *, every_label=True):
    """Validate a multi-label target: a 2-D 0/1 indicator matrix, one row per text.

    Parameters
    ----------
    y : array-like or sparse matrix of shape (n_samples, n_labels)
        1 where a text has the label, else 0 (bool, int or float).
    n_samples : int
        Number of texts the rows go with.
    every_label : bool, default=True
        Refuse a label column that is 0 for every text (or 1 for every text), which
        cannot be learned: ``fit`` needs both kinds of example of each label; a
        ``partial_fit`` chunk may lack a rare label.

    Returns
    -------
    Y : ndarray of float32 of shape (n_samples, n_labels)
    """
    Y = _as_array(y)
    if Y.ndim != 2 or Y.shape[1] < 2:
        raise ValueError(f"A multi-label y must be 2-D with at least 2 columns; got shape "
                         f"{Y.shape}.")
    if Y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have inconsistent lengths: {n_samples} texts and {Y.shape[0]} rows "
            "of labels."
        )
    if Y.dtype.kind not in "biuf":
        raise ValueError(
            f"A 2-D y is a multi-label indicator matrix and must hold 0 and 1; got values "
            f"of dtype {Y.dtype} (first row: {Y[0].tolist()!r}). Turn lists of label names "
            "into one with sklearn.preprocessing.MultiLabelBinarizer."
        )
    bad = np.argwhere(~np.isin(Y, (0, 1)))
    if bad.size:
        row, column = (int(i) for i in bad[0])
        raise ValueError(
            f"A multi-label y must hold only 0 and 1; got {Y[row, column].item()!r} at row "
            f"{row}, column {column}."
        )
    if every_label and n_samples:
        positives = Y.sum(axis=0)
        for column in range(Y.shape[1]):
            if positives[column] in (0, n_samples):
                value = int(positives[column] > 0)
                raise ValueError(
                    f"Label column {column} of y is {value} for every text, so the model "
                    f"cannot learn it: it needs texts with and without each label. Drop "
                    f"the column, or add texts {'without' if value else 'with'} it."
                )
    return Y.astype(np.float32)


def check_targets(y, n_samples):
    """Validate real-valued regression targets; return them as float64 of shape
    (n_samples, n_outputs), a 1-D ``y`` as one column.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Finite numbers (bool counts as 0/1).
    n_samples : int
        Number of texts the targets go with.
    """
    if y is None:
        raise ValueError("y is required: this regressor needs a target per text; got None.")
    if isinstance(y, str):
        raise ValueError("y must be an array-like of numbers; got a single str.")
    Y = _as_array(y)
    if Y.ndim not in (1, 2) or (Y.ndim == 2 and Y.shape[1] < 1):
        raise ValueError(f"y must be 1-D, or 2-D with one column per output; got shape "
                         f"{Y.shape}.")
    if Y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have inconsistent lengths: {n_samples} texts and {Y.shape[0]} targets."
        )
    Y = Y.reshape(n_samples, -1)
    if Y.dtype.kind not in "biuf":
        try:
            Y = Y.astype(np.float64)
        except (TypeError, ValueError):
            row, column = next((i, j) for i in range(Y.shape[0]) for j in range(Y.shape[1])
                               if not _is_number(Y[i, j]))
            raise ValueError(
                f"y must hold numbers; got {describe(Y[row, column].item())} at index "
                f"{_index(row, column, Y)}. A regressor needs real-valued targets; use "
                "BertTextClassifier for class labels."
            ) from None
    Y = Y.astype(np.float64)
    bad = np.argwhere(~np.isfinite(Y))
    if bad.size:
        row, column = (int(i) for i in bad[0])
        kind = "a missing (NaN)" if np.isnan(Y[row, column]) else "an infinite"
        raise ValueError(
            f"y contains {kind} target at index {_index(row, column, Y)}; "
            f"{int(np.isnan(Y).sum())} of {Y.size} targets are NaN and "
            f"{int(np.isinf(Y).sum())} infinite. Drop or fill them before fitting."
        )
    return Y


def _is_number(value):
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _index(row, column, Y):
    """Where a target is, for messages: its row, and its column when there are several."""
    return f"{row}, column {column}" if Y.shape[1] > 1 else f"{row}"


def check_classes(y):
    """Return the sorted unique classes of ``y``; require at least two."""
    try:
        classes = np.unique(y)
    except TypeError:
        raise mixed_label_types(y.tolist()) from None
    if classes.shape[0] < 2:
        raise ValueError(
            "The classifier needs samples of at least 2 classes in the data, but the "
            f"data contains only one class: {classes.tolist()[0]!r}."
        )
    return classes


def check_sample_weight(sample_weight, n_samples):
    """Validate ``sample_weight``: finite, non-negative, not all zero, one per text.

    Returns ``None`` when ``sample_weight`` is None, else a float64 ndarray.
    """
    if sample_weight is None:
        return None
    dummy = np.empty((n_samples, 0))
    weights = _check_sample_weight(sample_weight, dummy, dtype=np.float64)
    bad = np.flatnonzero(weights < 0)
    if bad.size:
        i = int(bad[0])
        raise ValueError(
            f"sample_weight must be non-negative; got {weights[i].item()!r} at index {i}."
        )
    return weights


def check_label_names(label_names, y, *, fitted=None, continuing=False):
    """Validate the ``label_names`` fit parameter of a multi-label classifier.

    Parameters
    ----------
    label_names : array-like of str or None
        One name per column of the multi-label indicator ``y``.
    y : array-like
        The targets of this call.
    fitted : ndarray of str or None, default=None
        The ``label_names_`` of the stream so far.
    continuing : bool, default=False
        Whether this is a ``partial_fit`` call after the first: names given then must
        equal ``fitted``, and None keeps ``fitted``.

    Returns
    -------
    names : ndarray of object (str) of shape (n_labels,) or None
    """
    if label_names is None:
        return fitted if continuing else None
    if not is_indicator(y):
        raise ValueError(
            "label_names names the columns of a multi-label indicator y, but y holds one "
            "label per text. Drop label_names (the classes are the labels), or pass a 2-D "
            "0/1 indicator matrix."
        )
    if isinstance(label_names, str):
        raise ValueError("label_names must be an array-like of str, one per label column "
                         f"of y; got a single str {label_names!r}.")
    values = list(np.asarray(label_names, dtype=object).ravel()) \
        if np.ndim(label_names) == 1 else None
    if values is None:
        raise ValueError("label_names must be 1-D, one str per label column of y; got "
                         f"shape {np.shape(label_names)}.")
    for i, name in enumerate(values):
        if not isinstance(name, str):
            raise TypeError(f"label_names must hold only str; got {describe(name)} at "
                            f"index {i}.")
    n_columns = _as_array(y).shape[1]
    if len(values) != n_columns:
        raise ValueError(f"label_names holds {len(values)} names, but y has {n_columns} "
                         "label columns; give one name per column.")
    if len(set(values)) != len(values):
        twice = next(name for name in values if values.count(name) > 1)
        raise ValueError(f"label_names holds {twice!r} more than once; give each label "
                         "column its own name.")
    names = np.empty(len(values), dtype=object)
    names[:] = values
    if continuing and (fitted is None or np.asarray(fitted).tolist() != values):
        first = "no label_names" if fitted is None else \
            f"label_names_={np.asarray(fitted).tolist()!r}"
        raise ValueError(f"label_names={values!r} differs from the stream's first call, "
                         f"which had {first}; every chunk of a stream keeps the names of "
                         "its first.")
    return names


def check_params(estimator):
    """Validate the parameters of a scikit-learn ``estimator`` as its ``fit`` would.

    For a caller that wants bad values refused before it reads any data (the command
    line); the error is scikit-learn's own, naming the parameter and what it accepts.

    Parameters
    ----------
    estimator : sklearn.base.BaseEstimator
        An estimator with ``_parameter_constraints``.

    Raises
    ------
    sklearn.utils._param_validation.InvalidParameterError
        A ValueError and TypeError naming the parameter, when a value is not allowed.
    """
    estimator._validate_params()


def parameter_kinds(estimator_class):
    """What each parameter of ``estimator_class`` accepts, read from its scikit-learn
    ``_parameter_constraints``, as plain values (for typed command-line flags).

    Parameters
    ----------
    estimator_class : type
        A scikit-learn estimator class.

    Returns
    -------
    kinds : dict of str to tuple
        ``name -> (kinds, choices, accepts_none, n_constraints)``: ``kinds`` a list of "int",
        "float", "choice", "tuple", "str" or "boolean" in the order of the constraints;
        ``choices`` the sorted strings of a string option (or None); ``accepts_none``
        whether None is allowed; ``n_constraints`` how many constraints there are.
    """
    from numbers import Integral

    from sklearn.utils._param_validation import Interval, StrOptions

    out = {}
    for name, constraints in estimator_class._parameter_constraints.items():
        kinds = []
        for c in constraints:
            if c == "boolean":
                kinds.append("boolean")
            elif isinstance(c, Interval):
                kinds.append("int" if c.type is Integral else "float")
            elif isinstance(c, StrOptions):
                kinds.append("choice")
            elif c in ("random_state", "verbose"):
                kinds.append("int")
            elif c is tuple:
                kinds.append("tuple")
            elif c is str or getattr(c, "__name__", "") == "PathLike":
                kinds.append("str")
        choices = next((sorted(c.options) for c in constraints if isinstance(c, StrOptions)),
                       None)
        out[name] = (kinds, choices, None in constraints, len(constraints))
    return out
