"""Input checks for texts, labels, regression targets and weights.

Every hand-written error text of the package that concerns user data lives here, so the
wording stays consistent. This module imports nothing from skbert.
"""

from itertools import islice

import numpy as np
from sklearn.utils.validation import _check_sample_weight

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


def _describe(value):
    """Return a short description of ``value`` for an error message."""
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{type(value).__name__} {text}"


def _check_text(value, index):
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(
                    f"X contains text that is not valid Unicode at index {index} "
                    f"({exc.reason}: {value[exc.start:exc.end]!r} at character {exc.start}). "
                    "Decode the source bytes with errors='replace' to drop broken sequences."
                ) from None
        return value
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(
            f"X must contain only str; got bytes at index {index}. "
            "Decode it first, for example value.decode('utf-8')."
        )
    if is_missing(value):
        raise ValueError(
            f"X contains a missing value ({value!r}) at index {index}. "
            "Drop or fill missing texts before calling this method."
        )
    raise TypeError(f"X must contain only str; got {_describe(value)} at index {index}.")


def check_texts(X, *, allow_empty=False, start=0):
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
    return [_check_text(row, i) for i, row in enumerate(rows, start)]


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
            f"first row is; got {_describe(row)} at index {index}."
        )
    return (_check_text(row[0], index), _check_text(row[1], index))


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
                f"y must hold numbers; got {_describe(Y[row, column].item())} at index "
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
