"""Prediction over Dask collections, on one machine or a ``dask.distributed`` cluster.

Import it explicitly (``import skbert.dask``): ``import skbert`` does not import Dask.
It needs the ``distributed`` extra, ``pip install "skbert[distributed]"``.

A fitted :class:`~skbert.BertTextClassifier` is shipped to the cluster once per call:
with an active ``distributed.Client`` it is scattered to every worker
(``client.scatter(clf, broadcast=True)``) and each partition's task refers to that one
copy, so the weights are unpickled once per worker, never once per partition. Without
one, the graph holds a single delayed copy that every partition task depends on, which
the threaded scheduler shares between its threads (the processes scheduler, the default
for Bags, pickles it into every task). Pickling the estimator turns its network into a
config and safetensors bytes and its tokenizer into its files, so workers need skbert
installed but not the model folder it was fitted from.

Alternatively, ``dask_ml.wrappers.ParallelPostFit`` works on a dask array of shape
``(n, 1)`` and object dtype, given the output ``meta``::

    from dask_ml.wrappers import ParallelPostFit

    texts = dask.array.from_array(np.array(X, dtype=object)[:, None], chunks=(10_000, 1))
    wrapped = ParallelPostFit(clf, predict_proba_meta=np.empty((0, 2)))
    proba = wrapped.predict_proba(texts)  # dask array (n, n_classes)

It embeds the estimator in every block's task, so the weights are unpickled once per
block: fine for a small model or a few blocks, costly for many.
"""

import uuid

try:
    import dask
    import dask.bag as db
    import dask.dataframe as dd
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'skbert.dask needs Dask; install the extra: pip install "skbert[distributed]".'
    ) from exc
import numpy as np
import pandas as pd
from sklearn.utils.validation import check_is_fitted

from ._validation import check_text

__all__ = ["predict", "predict_proba"]


def predict_proba(data, clf, text_column="text"):
    """Class probabilities of the texts of a Dask collection, computed lazily.

    Parameters
    ----------
    data : dask.dataframe.DataFrame, dask.dataframe.Series or dask.bag.Bag
        The texts: the column ``text_column`` of a DataFrame, a Series of str, or a Bag
        of str.
    clf : BertTextClassifier
        A fitted classifier (fitted on single texts, not text pairs).
    text_column : str, default="text"
        Column of ``data`` holding the texts when it is a DataFrame; ignored otherwise.

    Returns
    -------
    proba : dask.dataframe.DataFrame or dask.bag.Bag
        For a DataFrame or Series, a DataFrame with the same partitions, index and
        divisions and one float64 column per class, labelled by the class (in
        ``clf.classes_`` order), as ``pandas.DataFrame(clf.predict_proba(X),
        columns=clf.classes_)`` would be. For a Bag, a Bag of float64 arrays of shape
        ``(n_classes,)``, one per text, in input order. Nothing is computed until
        ``.compute()`` (or ``.persist()``, ``.to_parquet()``...).

    Raises
    ------
    ValueError
        If ``text_column`` is not a column of ``data``, or ``clf`` was fitted on text
        pairs. At compute time, if a text is missing (None, NaN, NA).
    TypeError
        If ``data`` is not one of the types above, or the text column does not hold
        strings (at once for a non-text dtype, at compute time for a non-str value in
        an object column or a Bag).
    sklearn.exceptions.NotFittedError
        If ``clf`` is not fitted.

    Notes
    -----
    With an active ``distributed.Client`` the estimator is scattered to all its
    workers when this function is called, and stays there while the returned
    collection exists; compute the result with that client. Each call ships it again:
    for labels and probabilities, call this once and take
    ``proba.idxmax(axis=1)`` (the labels ``predict`` gives) rather than calling both.
    Without a client, the threaded scheduler (the default for DataFrames) shares one
    in-memory estimator between its threads, while the ``"processes"`` scheduler (the
    default for Bags) pickles it into every task: use a ``distributed.LocalCluster``,
    or ``compute(scheduler="threads")``.

    Workers started by a ``distributed`` nanny have ``OMP_NUM_THREADS=1``, so each
    task runs torch on one thread: run as many worker threads in all as there are
    cores. The nanny also sets ``MALLOC_TRIM_THRESHOLD_=65536``, which made torch 1.4x
    slower in the measurements of ``docs/scaling.md``; set
    ``distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_`` to None in Dask's
    configuration before starting the workers.

    Column labels are the classes themselves; ``to_parquet`` needs str column names, so
    rename integer classes first (``proba.rename(columns=str)``).

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> import skbert.dask  # doctest: +SKIP
    >>> ddf = dd.read_parquet("reviews/")  # doctest: +SKIP
    >>> proba = skbert.dask.predict_proba(ddf, clf, text_column="review")  # doctest: +SKIP
    >>> proba.to_parquet("scores/")  # doctest: +SKIP
    """
    texts, ref = _prepare(data, clf, text_column)
    if isinstance(texts, db.Bag):
        return texts.map_partitions(_bag_proba, ref)
    meta = _proba_frame(np.empty((0, len(clf.classes_))), clf.classes_, _empty_index(texts))
    return texts.map_partitions(_series_proba, ref, meta=meta)


def predict(data, clf, text_column="text"):
    """Predicted class labels of the texts of a Dask collection, computed lazily.

    Parameters
    ----------
    data : dask.dataframe.DataFrame, dask.dataframe.Series or dask.bag.Bag
        The texts: the column ``text_column`` of a DataFrame, a Series of str, or a Bag
        of str.
    clf : BertTextClassifier
        A fitted classifier (fitted on single texts, not text pairs).
    text_column : str, default="text"
        Column of ``data`` holding the texts when it is a DataFrame; ignored otherwise.

    Returns
    -------
    y_pred : dask.dataframe.Series or dask.bag.Bag
        For a DataFrame or Series, a Series named ``"prediction"`` with the same
        partitions, index and divisions, of the dtype pandas gives ``clf.classes_``.
        For a Bag, a Bag of labels (Python scalars), one per text, in input order.

    Raises
    ------
    ValueError
        If ``text_column`` is not a column of ``data``, or ``clf`` was fitted on text
        pairs. At compute time, if a text is missing (None, NaN, NA).
    TypeError
        If ``data`` is not one of the types above, or the text column does not hold
        strings.
    sklearn.exceptions.NotFittedError
        If ``clf`` is not fitted.

    See Also
    --------
    predict_proba : how the estimator is shipped, threads, and the other notes.
    """
    if getattr(clf, "multilabel_", False):
        raise ValueError(
            "skbert.dask.predict returns one label per text, but this classifier is "
            "multi-label; use skbert.dask.predict_proba (a column per label) and compare "
            "it with clf.thresholds_."
        )
    texts, ref = _prepare(data, clf, text_column)
    if isinstance(texts, db.Bag):
        return texts.map_partitions(_bag_predict, ref)
    meta = _label_series(clf.classes_[:0], _empty_index(texts))
    return texts.map_partitions(_series_predict, ref, meta=meta)


# ------------------------------------------------------------------------- helpers
def _prepare(data, clf, text_column):
    """Check the inputs; return the texts (Series or Bag) and the shipped estimator."""
    check_is_fitted(clf)
    if not hasattr(clf, "classes_"):
        raise TypeError(
            f"skbert.dask predicts with a fitted BertTextClassifier; got a "
            f"{type(clf).__name__}. For a regressor, use dask_ml.wrappers.ParallelPostFit."
        )
    if clf.text_pairs_:
        raise ValueError(
            "This classifier was fitted on text pairs; skbert.dask predicts single "
            "texts. For pairs, use dask_ml.wrappers.ParallelPostFit on a dask array "
            "of shape (n, 2)."
        )
    if isinstance(data, dd.DataFrame):
        if text_column not in data.columns:
            raise ValueError(
                f"text_column={text_column!r} is not a column of the DataFrame; its "
                f"columns are {list(data.columns)!r}."
            )
        texts = data[text_column]
    elif isinstance(data, dd.Series):
        texts = data
    elif isinstance(data, db.Bag):
        return data, _ship(clf)
    else:
        hint = ""
        if type(data).__module__.startswith("dask.array"):
            hint = (
                " For a dask array, use dask_ml.wrappers.ParallelPostFit on an (n, 1) "
                "object array (see this module's docstring)."
            )
        elif not hasattr(data, "__dask_graph__"):
            hint = " For in-memory texts, call the classifier's own methods."
        raise TypeError(
            "data must be a dask DataFrame, dask Series or dask Bag of str; got "
            f"{type(data).__module__}.{type(data).__name__}.{hint}"
        )
    dtype = texts.dtype
    is_text = pd.api.types.is_object_dtype(dtype) or pd.api.types.is_string_dtype(dtype)
    if not (is_text or isinstance(dtype, pd.CategoricalDtype)):
        raise TypeError(
            f"The text column {texts.name!r} has dtype {dtype}; it must hold str."
        )
    return texts, _ship(clf)


def _ship(clf):
    """A reference to ``clf`` that every partition task shares.

    A future scattered to all the workers of the active distributed client, or else
    one delayed object under a fresh key (a key, not a hash of the estimator's bytes,
    which would pickle it once more just to name it).
    """
    client = _active_client()
    if client is not None:
        return client.scatter(clf, broadcast=True, hash=False)
    return dask.delayed(clf, name=f"BertTextClassifier-{uuid.uuid4().hex}", traverse=False)


def _active_client():
    """The current ``distributed.Client``, or None without one (or without distributed)."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


def _series_texts(part):
    """The texts of a partition of a dask Series, checked; a bad one names its index
    label."""
    values = part.to_numpy(dtype=object).tolist()
    what = "the dask Series" if part.name is None else f"the text column {part.name!r}"
    where = f"index {{index!r}} of {_braced(what)}"
    return [check_text(value, label, where=where)
            for value, label in zip(values, part.index, strict=True)]


def _bag_texts(part):
    """The texts of a partition of a Bag, checked; a bad one names its position."""
    where = "position {index} of a partition of the Bag"
    return [check_text(value, i, where=where) for i, value in enumerate(part)]


def _braced(text):
    """``text`` with its braces doubled, to sit in a ``where=`` template."""
    return text.replace("{", "{{").replace("}", "}}")


def _empty_index(texts):
    """An empty index like the one of the partitions of ``texts`` (a dask Series), for
    the ``meta`` of ``map_partitions``, from public attributes."""
    return pd.Index([], dtype=texts.index.dtype, name=texts.index.name)


def _proba_frame(proba, classes, index):
    return pd.DataFrame(proba, index=index, columns=classes.tolist())


def _label_series(labels, index):
    return pd.Series(labels, index=index, name="prediction")


def _series_proba(part, clf):
    return _proba_frame(clf.predict_proba(_series_texts(part)), clf.classes_, part.index)


def _series_predict(part, clf):
    return _label_series(clf.predict(_series_texts(part)), part.index)


def _bag_proba(part, clf):
    return list(clf.predict_proba(_bag_texts(part)))


def _bag_predict(part, clf):
    return clf.predict(_bag_texts(part)).tolist()
