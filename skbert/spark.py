"""Batch prediction on Apache Spark with ``pyspark.ml.functions.predict_batch_udf``.

Import it explicitly (``import skbert.spark``): ``import skbert`` does not import
pyspark. It needs the ``spark`` extra, ``pip install "skbert[spark]"`` (pyspark and
pyarrow; Spark 4 runs on Java 17 or 21), on the driver and on every worker, with the
same versions of skbert, torch and transformers.

:func:`predict_batch_udf` turns a folder written by ``save_pretrained`` into a Spark
column function. Each Python worker loads the model once, on its first batch, and keeps
it in a module-level cache keyed by the folder (and the time its ``skbert.json`` was
written), so its later batches, tasks and UDFs of the same folder reuse it: the weights
are read once per Python worker, never once per batch or partition. Spark reuses its
Python workers between tasks (``spark.python.worker.reuse``, on by default) and starts
each with ``OMP_NUM_THREADS`` set to ``spark.task.cpus`` (1 unless configured), so run
as many task slots as there are cores.

Example
-------
::

    from pyspark.sql import SparkSession, functions as F
    import skbert.spark

    spark = SparkSession.builder.master("local[2]").getOrCreate()
    df = spark.read.parquet("reviews/")                      # columns: id, review
    classify = skbert.spark.predict_batch_udf("sentiment-model/", batch_size=256)
    scored = df.withColumn("pred", classify("review")).select(
        "id", F.col("pred.label").alias("label"), F.col("pred.proba").alias("proba")
    )
    scored.write.parquet("scored/")
"""

import json
import os
from pathlib import Path

try:
    import pyspark  # noqa: F401  (the extra's presence, checked at import)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'skbert.spark needs pyspark; install the extra: pip install "skbert[spark]" '
        "(Spark 4 also needs a Java 17 or 21 runtime, such as apt-get install "
        "default-jre-headless)."
    ) from exc
import numpy as np

from ._validation import check_text

__all__ = ["load_model", "predict_batch_udf"]

OUTPUTS = ("both", "label", "proba", "value")
# The largest skbert.json read here to learn the estimator's class; from_pretrained then
# reads and checks the whole folder with its own bounds.
_MAX_CONFIG_BYTES = 32 * 2**20
# Per Python process: (folder, skbert.json's mtime and size, params) -> estimator.
_MODELS = {}


def load_model(path, params=None):
    """The estimator saved in the folder ``path``, loaded once per process and cached.

    The folder's ``skbert.json`` names the class: a ``BertTextRegressor`` loads with
    ``BertTextRegressor.from_pretrained``, anything else with
    ``BertTextClassifier.from_pretrained`` (which names what is wrong with the folder).
    The cache is keyed by the folder's real path, the modification time and size of its
    ``skbert.json`` (``save_pretrained`` replaces a folder atomically, so a model saved
    again loads again) and ``params``.

    Parameters
    ----------
    path : str or os.PathLike
        A folder written by ``save_pretrained``.
    params : dict or None, default=None
        Parameters set on the loaded estimator with ``set_params``, such as
        ``{"device": "cpu", "inference_dtype": "float32", "batch_size": 64}``.

    Returns
    -------
    estimator : BertTextClassifier or BertTextRegressor
        Shared by every caller in this process: do not fit it or change its parameters.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError, OSError
        From ``from_pretrained``, naming the file of the folder that is wrong.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"path={os.fspath(path)!r} is not a folder (on this machine). Give a folder "
            "written by save_pretrained that every Spark worker can read (a shared file "
            "system); for a Hugging Face repository id, download it first with "
            "huggingface_hub.snapshot_download(repo_id) and give that folder."
        )
    params = dict(params or {})
    config = folder / "skbert.json"
    try:
        stat = config.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
    except OSError:
        stamp = None  # from_pretrained says the folder has no skbert.json
    key = (os.path.realpath(folder), stamp, repr(sorted(params.items())))
    model = _MODELS.get(key)
    if model is None:
        model = _estimator_class(config).from_pretrained(folder)
        if params:
            model.set_params(**params)
        _MODELS[key] = model
    return model


def predict_batch_udf(path, *, output=None, batch_size=256, params=None):
    """A Spark column function that predicts with the model saved in ``path``.

    The model is loaded once here, on the driver (to check the folder and learn the
    output's type), and once in each Python worker on its first batch (see this
    module's notes); every batch is a NumPy array of up to ``batch_size`` texts, which
    the estimator sorts by length and pads per batch as in ``predict_proba``.

    Parameters
    ----------
    path : str or os.PathLike
        A folder written by ``save_pretrained`` (of a ``BertTextClassifier`` or
        ``BertTextRegressor``), readable at the same path on the driver and on every
        worker.
    output : {"both", "label", "proba", "value"} or None, default=None
        What the column holds:

        - ``"label"``: the label ``predict`` gives, as a string, long, double or
          boolean column after ``classes_``; for a multi-label model, an
          ``array<long>`` indicator (1 where the label's probability is at least its
          ``thresholds_``);
        - ``"proba"``: an ``array<double>`` of the ``predict_proba`` row, in
          ``classes_`` order;
        - ``"both"`` (the default for a classifier): a struct of ``label`` and
          ``proba``; select them as ``col("pred.label")`` and ``col("pred.proba")``;
        - ``"value"`` (the only one, and the default, for a regressor): ``predict``, a
          double column, or ``array<double>`` for several targets.
    batch_size : int, default=256
        Texts per call of the model (Spark's Arrow batches are cut into batches of this
        size). The estimator's own ``batch_size`` still bounds a forward pass.
    params : dict or None, default=None
        Parameters set on the loaded estimator with ``set_params``, on the driver and
        the workers, such as ``{"device": "cuda", "inference_dtype": "float32"}``.

    Returns
    -------
    udf : pyspark.sql.Column-returning function
        Call it on one column of str (``udf("text")``), or on two for a model fitted on
        text pairs (``udf("premise", "hypothesis")``). Rows keep their order and
        identity: select the id columns beside it.

    Raises
    ------
    ValueError
        If ``output`` is not one the model gives, or ``batch_size`` is not a positive
        int. At run time (in a worker), if a text is missing (null), naming its
        position in the batch and the remedy.
    TypeError
        If the classifier's labels cannot be a Spark column (use ``output="proba"``).
        At run time, if a value is not a str.
    FileNotFoundError
        If ``path`` is not a folder.

    Examples
    --------
    >>> import skbert.spark  # doctest: +SKIP
    >>> classify = skbert.spark.predict_batch_udf("model/", output="both")  # doctest: +SKIP
    >>> df.select("id", classify("text").alias("pred"))  # doctest: +SKIP
    DataFrame[id: bigint, pred: struct<label: string, proba: array<double>>]
    >>> nli = skbert.spark.predict_batch_udf("nli-model/", output="label")  # doctest: +SKIP
    >>> pairs.withColumn("label", nli("premise", "hypothesis"))  # doctest: +SKIP
    """
    from pyspark.ml.functions import predict_batch_udf as spark_predict_batch_udf

    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}.")
    model = load_model(path, params)
    folder, params = os.fspath(path), dict(params or {})
    is_classifier = hasattr(model, "classes_")
    output = _check_output(output, is_classifier, folder)
    return_type = _return_type(model, output, folder)
    pairs = bool(getattr(model, "text_pairs_", False))

    def make_predict_fn():
        # Runs in each Python worker, once per UDF there (pyspark's ModelCache keeps
        # what it returns); load_model's cache makes it once per worker and folder.
        estimator = load_model(folder, params)
        if pairs:
            def predict(first, second):
                return _outputs(estimator, output, _pairs(first, second))
        else:
            def predict(texts):
                return _outputs(estimator, output, _texts(texts))
        return predict

    return spark_predict_batch_udf(make_predict_fn, return_type=return_type,
                                   batch_size=batch_size)


# ------------------------------------------------------------------------- helpers
def _estimator_class(config):
    """The class that ``skbert.json`` (path ``config``) names; the classifier when it
    cannot be read, so that its from_pretrained reports what is wrong."""
    from skbert import BertTextClassifier, BertTextRegressor

    try:
        with open(config, "rb") as file:
            kind = json.loads(file.read(_MAX_CONFIG_BYTES)).get("estimator")
    except (OSError, ValueError, AttributeError):
        kind = None
    return BertTextRegressor if kind == "BertTextRegressor" else BertTextClassifier


def _check_output(output, is_classifier, folder):
    if output is None:
        return "both" if is_classifier else "value"
    if output not in OUTPUTS:
        raise ValueError(f"output must be one of {list(OUTPUTS)} or None; got {output!r}.")
    if is_classifier == (output == "value"):
        kind, valid = (("classifier", "'both', 'label' or 'proba'") if is_classifier
                       else ("regressor", "'value'"))
        raise ValueError(f"output={output!r} does not fit the {kind} saved in {folder!r}; "
                         f"use {valid}.")
    return output


def _return_type(model, output, folder):
    """The Spark type of the column for ``output`` of ``model``."""
    from pyspark.sql.types import (
        ArrayType,
        BooleanType,
        DoubleType,
        LongType,
        StringType,
        StructField,
        StructType,
    )

    if output == "value":
        return DoubleType() if model.n_outputs_ == 1 else ArrayType(DoubleType())
    proba = ArrayType(DoubleType())
    if output == "proba":
        return proba
    if model.multilabel_:
        label = ArrayType(LongType())
    else:
        classes = model.classes_
        kinds = {"U": StringType(), "i": LongType(), "u": LongType(), "f": DoubleType(),
                 "b": BooleanType()}
        if classes.dtype.kind == "O" and all(isinstance(c, str) for c in classes):
            label = StringType()
        elif classes.dtype.kind in kinds:
            label = kinds[classes.dtype.kind]
        else:
            raise TypeError(
                f"The classes of the model in {folder!r} ({classes.tolist()[:5]!r}, dtype "
                f"{classes.dtype}) cannot be a Spark column; use output='proba' and map "
                "the argmax to the classes yourself."
            )
    if output == "label":
        return label
    return StructType([StructField("label", label), StructField("proba", proba)])


def _texts(values):
    where = "position {index} of a batch of the text column of skbert.spark's UDF"
    return [check_text(value, i, where=where) for i, value in enumerate(values)]


def _pairs(first, second):
    where = ("position {index} of a batch of the %s text column of skbert.spark's UDF "
             "(a model fitted on pairs)")
    pairs = np.empty((len(first), 2), dtype=object)
    for column, (values, name) in enumerate([(first, "first"), (second, "second")]):
        pairs[:, column] = [check_text(value, i, where=where % name)
                            for i, value in enumerate(values)]
    return pairs


def _outputs(estimator, output, X):
    """What ``output`` asks of ``estimator`` on ``X``, as predict_batch_udf takes it."""
    if output == "value":
        return np.asarray(estimator.predict(X), dtype=np.float64)
    proba = estimator.predict_proba(X)
    if output == "proba":
        return proba
    labels = _label_of(estimator, proba)
    return labels if output == "label" else {"label": labels, "proba": proba}


def _label_of(estimator, proba):
    """``estimator.predict``'s labels from its ``predict_proba`` rows (one forward pass
    for both): the most probable class, or for a multi-label model an int64 indicator of
    the labels whose probability is at least their ``thresholds_``."""
    if estimator.multilabel_:
        return (proba >= estimator.thresholds_).astype(np.int64)
    labels = estimator.classes_[proba.argmax(axis=1)]
    return labels.astype(object) if labels.dtype.kind == "U" else labels
