"""Batch prediction on Ray Data: a callable class for ``Dataset.map_batches``.

Import it explicitly (``import skbert.ray``): ``import skbert`` does not import Ray. It
needs the ``ray`` extra, ``pip install "skbert[ray]"`` (``ray[data]``), with the same
versions of skbert, torch and transformers on every node.

:class:`SkbertPredictor` is the class form of a ``map_batches`` function: Ray starts
``concurrency`` actors, each constructs one predictor (which loads the model saved by
``save_pretrained`` once) and then calls it on batch after batch, so the weights are read
once per actor, never once per batch or block. Each actor reserves ``num_cpus`` (1 by
default) and Ray sets its ``OMP_NUM_THREADS`` to that, so torch runs one thread per
actor: run as many actors as there are cores, or give each ``num_cpus=k``.

Example
-------
::

    import ray
    from skbert.ray import SkbertPredictor

    ds = ray.data.read_parquet("reviews/")                   # columns: id, review
    scored = ds.map_batches(
        SkbertPredictor,
        fn_constructor_kwargs={"path": "sentiment-model/", "text_column": "review"},
        concurrency=2, batch_size=256, batch_format="pandas",
    )
    scored.write_parquet("scored/")                          # id, review, label, proba
"""

import json
import os
from pathlib import Path

try:
    import ray  # noqa: F401  (the extra's presence, checked at import)
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'skbert.ray needs Ray Data; install the extra: pip install "skbert[ray]".'
    ) from exc
import numpy as np
import pandas as pd

from ._validation import check_text

__all__ = ["SkbertPredictor"]

OUTPUTS = ("both", "label", "proba", "value")
# The largest skbert.json read here to learn the estimator's class; from_pretrained then
# reads and checks the whole folder with its own bounds.
_MAX_CONFIG_BYTES = 32 * 2**20


class SkbertPredictor:
    """Predict with a model saved by ``save_pretrained``, batch by batch, in a Ray actor.

    Give the class itself to ``ray.data.Dataset.map_batches`` with
    ``fn_constructor_kwargs`` (its parameters below) and ``concurrency`` (the number of
    actors): each actor loads the model once, when it is constructed. Batches may be
    pandas DataFrames (``batch_format="pandas"``) or dicts of NumPy arrays
    (``batch_format="numpy"``); each comes back as the same kind, with every input
    column kept and the output columns added, row for row. Ray Data may deliver blocks
    out of order (``DataContext.get_current().execution_options.preserve_order = True``
    keeps it): carry an id column to join on.

    Parameters
    ----------
    path : str or os.PathLike
        A folder written by ``save_pretrained`` (of a ``BertTextClassifier`` or
        ``BertTextRegressor``), readable at this path on every node.
    text_column : str, default="text"
        The column of str texts (the first text of a pair).
    pair_column : str or None, default=None
        The column of second texts, for a model fitted on text pairs; required for
        one, refused otherwise.
    output : {"both", "label", "proba", "value"} or None, default=None
        The columns added, named as the values here: ``"label"`` (``predict``'s labels;
        for a multi-label model an int64 indicator row, 1 where the label's probability
        is at least its ``thresholds_``), ``"proba"`` (the ``predict_proba`` row, an
        array in ``classes_`` order), ``"both"`` (both columns; the default for a
        classifier) or ``"value"`` (``predict`` of a regressor, its only output and
        default).
    params : dict or None, default=None
        Parameters set on the loaded estimator with ``set_params``, such as
        ``{"device": "cuda", "inference_dtype": "float32", "batch_size": 64}``.

    Attributes
    ----------
    estimator_ : BertTextClassifier or BertTextRegressor
        The model, loaded once by the constructor.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder.
    ValueError
        If ``output`` does not fit the model, or ``pair_column`` is missing for a model
        fitted on pairs (or given for one that is not). When called, if a column is
        missing from a batch, or a text is missing (None, NaN), naming the column and
        row of the batch.
    TypeError
        When called, if a batch is neither a pandas DataFrame nor a dict of arrays, or
        a value is not a str.

    Examples
    --------
    >>> import ray  # doctest: +SKIP
    >>> from skbert.ray import SkbertPredictor  # doctest: +SKIP
    >>> pairs = ray.data.from_pandas(frame)  # premise, hypothesis  # doctest: +SKIP
    >>> pairs.map_batches(  # doctest: +SKIP
    ...     SkbertPredictor, concurrency=2, batch_format="numpy",
    ...     fn_constructor_kwargs={"path": "nli-model/", "text_column": "premise",
    ...                            "pair_column": "hypothesis", "output": "label"})
    """

    def __init__(self, path, *, text_column="text", pair_column=None, output=None,
                 params=None):
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(
                f"path={os.fspath(path)!r} is not a folder (on this node). Give a folder "
                "written by save_pretrained that every Ray node can read; for a Hugging "
                "Face repository id, download it first with "
                "huggingface_hub.snapshot_download(repo_id) and give that folder."
            )
        estimator = _estimator_class(folder / "skbert.json").from_pretrained(folder)
        if params:
            estimator.set_params(**params)
        is_classifier = hasattr(estimator, "classes_")
        pairs = bool(getattr(estimator, "text_pairs_", False))
        if pairs and pair_column is None:
            raise ValueError(
                f"The model in {os.fspath(path)!r} was fitted on text pairs; name the "
                "column of second texts with pair_column (text_column holds the first)."
            )
        if not pairs and pair_column is not None:
            raise ValueError(
                f"pair_column={pair_column!r}, but the model in {os.fspath(path)!r} was "
                "fitted on single texts; leave pair_column=None."
            )
        self.estimator_ = estimator
        self.text_column = text_column
        self.pair_column = pair_column
        self.output = _check_output(output, is_classifier, os.fspath(path))

    def __call__(self, batch):
        """Predict one batch; return it with the output columns added.

        Parameters
        ----------
        batch : pandas.DataFrame or dict of str to numpy.ndarray
            Rows holding ``text_column`` (and ``pair_column``).

        Returns
        -------
        batch : pandas.DataFrame or dict of str to numpy.ndarray
            The same kind as given, every input column kept, with ``"label"``,
            ``"proba"`` or ``"value"`` added (a 2-D array for ``"proba"`` in a dict;
            one array per row in a DataFrame).
        """
        if isinstance(batch, pd.DataFrame):
            columns = list(batch.columns)
        elif isinstance(batch, dict):
            columns = list(batch)
        else:
            raise TypeError(
                "SkbertPredictor takes batches as pandas DataFrames or dicts of NumPy "
                f"arrays; got a {type(batch).__module__}.{type(batch).__name__}. Pass "
                'batch_format="pandas" or batch_format="numpy" to map_batches.'
            )
        names = [self.text_column] + ([self.pair_column] if self.pair_column else [])
        for name in names:
            if name not in columns:
                role = "text_column" if name == self.text_column else "pair_column"
                raise ValueError(f"{role}={name!r} is not a column of the batch; its "
                                 f"columns are {columns!r}.")
        texts = [self._texts(batch[name], name) for name in names]
        X = texts[0] if len(texts) == 1 else np.array(texts, dtype=object).T
        outputs = self._outputs(X)
        if isinstance(batch, dict):
            return {**batch, **outputs}
        frame = batch.copy(deep=False)
        for name, values in outputs.items():
            frame[name] = list(values) if values.ndim == 2 else values
        return frame

    # ----------------------------------------------------------------- helpers
    @staticmethod
    def _texts(values, name):
        """The texts of one column of a batch, checked; a bad one names its row."""
        where = "row {index} of a batch, column " + repr(name).replace("{", "{{").replace(
            "}", "}}")
        return [check_text(value, i, where=where)
                for i, value in enumerate(np.asarray(values, dtype=object).tolist())]

    def _outputs(self, X):
        """The output columns for texts ``X``, from one forward pass."""
        estimator = self.estimator_
        if self.output == "value":
            return {"value": np.asarray(estimator.predict(X), dtype=np.float64)}
        proba = estimator.predict_proba(X)
        if estimator.multilabel_:
            labels = (proba >= estimator.thresholds_).astype(np.int64)
        else:
            labels = estimator.classes_[proba.argmax(axis=1)]
            labels = labels.astype(object) if labels.dtype.kind == "U" else labels
        return {"both": {"label": labels, "proba": proba}, "label": {"label": labels},
                "proba": {"proba": proba}}[self.output]


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
