"""The model files of the command line: saving and loading .skops, .pkl and .joblib
files, checkpoint folders and ``save_pretrained`` folders, and what a loaded model is
(a classifier, a multi-label one with its label names, a regressor), read from its
public attributes."""

import json
import os
from pathlib import Path

import numpy as np

from .options import DEFAULT_LABEL_SEP, CommandError

MODEL_SUFFIXES = {".skops": "skops", ".pkl": "joblib", ".pickle": "joblib",
                  ".joblib": "joblib"}


def model_kind(path):
    """"skops" or "joblib", by the extension of ``path``."""
    kind = MODEL_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise CommandError(
            f"Cannot tell the model format of {os.fspath(path)!r} from its extension; use "
            ".skops (safe to load), or .pkl / .joblib (pickle: trusts the file)."
        )
    return kind


def save_model(model, path):
    """Save ``model`` to ``path`` atomically: skops for .skops, joblib for .pkl/.joblib.

    A failure leaves any previous file at ``path`` untouched.
    """
    from .._checkpoint import atomic_write

    kind = model_kind(path)
    with atomic_write(path) as tmp:
        if kind == "skops":
            import skops.io as sio

            sio.dump(model, tmp)
        else:
            import joblib

            joblib.dump(model, tmp)


def load_model(path):
    """Load a fitted classifier from a .skops, .pkl or .joblib file, a checkpoint folder
    or a Hugging Face folder written by ``save_pretrained``.

    skops files are loaded trusting only ``skbert.TRUSTED_TYPES``. .pkl and .joblib
    files are unpickled with joblib, which runs any code the file names: load only files
    you trust. A folder holding ``skbert.json`` is read with
    ``BertTextClassifier.from_pretrained`` (JSON and safetensors only); another folder is
    a checkpoint (``ckpt-<step>``) or a ``checkpoint_dir``, whose newest complete
    checkpoint is loaded.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    model : classifier with ``predict_proba`` and ``classes_``, or a regressor

    Raises
    ------
    CommandError
        When the path is missing, its extension unknown, or the file unreadable,
        corrupt, untrusted or not a fitted classifier.
    """
    path = Path(path)
    if not path.exists():
        raise CommandError(
            f"No such model file or folder: {os.fspath(path)!r}. Give a .skops, .pkl or "
            ".joblib file written by 'skbert fit', or a checkpoint folder."
        )
    if path.is_dir() and (path / "skbert.json").is_file():
        return _load_folder(path)
    if path.is_dir():
        from .._checkpoint import latest_checkpoint

        if not (path / "estimator.skops").is_file():
            path = latest_checkpoint(path)
        path, kind = path / "estimator.skops", "skops"
    else:
        kind = model_kind(path)
    model = _load_skops(path) if kind == "skops" else _load_pickle(path)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")
            or is_regressor(model)):
        raise CommandError(
            f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted classifier "
            "with predict_proba and classes_, nor a fitted BertTextRegressor."
        )
    return model


def _load_folder(path):
    from .. import BertTextClassifier, BertTextRegressor

    try:
        kind = json.loads((path / "skbert.json").read_text(encoding="utf-8")).get("estimator")
        cls = BertTextRegressor if kind == "BertTextRegressor" else BertTextClassifier
        return cls.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot load the model folder {os.fspath(path)!r}: {exc}") from None


def _load_skops(path):
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from .. import TRUSTED_TYPES

    try:
        return sio.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException:
        untrusted = sio.get_untrusted_types(file=path)
        raise CommandError(
            f"Model file {os.fspath(path)!r} holds types skbert does not trust: "
            f"{untrusted}. Only {TRUSTED_TYPES} is trusted; if you trust the file's source, "
            "load it in Python with skops.io.load(path, trusted=[...])."
        ) from None
    except Exception as exc:
        raise CommandError(
            f"Cannot load model file {os.fspath(path)!r}: it is corrupt or not a skops "
            f"file ({type(exc).__name__}: {exc})."
        ) from exc


def _load_pickle(path):
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise CommandError(
            f"Cannot load model file {os.fspath(path)!r}: it is corrupt or not a pickle "
            f"({type(exc).__name__}: {exc})."
        ) from exc


# ------------------------------------------------------------- what a model is
def final_estimator(model):
    """The estimator itself, also at the end of a Pipeline."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def is_regressor(model):
    """Whether ``model`` is a fitted skbert regressor (alone or ending a Pipeline)."""
    return hasattr(final_estimator(model), "n_outputs_") and hasattr(model, "predict")


def apply_overrides(model, device=None, inference_backend=None):
    """Apply --device and --inference-backend (None: keep the model's) to ``model``."""
    for option, name, value in (("--device", "device", device),
                                ("--inference-backend", "inference_backend",
                                 inference_backend)):
        if value is not None:
            try:
                model.set_params(**{name: value})
            except ValueError as exc:
                raise CommandError(
                    f"{option} {value} does not apply to this model: {exc}") from exc


def without_own_bars(model):
    """Silence the progress bars of ``model`` (or of a Pipeline's skbert steps): the
    command's bar of rows counts the rows already."""
    from .. import BertTextClassifier, BertTextRegressor

    for estimator in [model, *(step for _, step in getattr(model, "steps", ()))]:
        if isinstance(estimator, (BertTextClassifier, BertTextRegressor)):
            estimator.set_params(verbose=0)


def model_label_names(model):
    """The label names of a multi-label model, or None for a model of one class per text.

    A model fitted with ``label_names`` (as ``skbert fit --label-sep`` does) names its
    label columns in ``label_names_``; one fitted without is named by its ``classes_``
    (the column numbers), as strings.
    """
    estimator = final_estimator(model)
    if not getattr(estimator, "multilabel_", False):
        return None
    names = getattr(estimator, "label_names_", None)
    if names is None:
        names = [str(c) for c in estimator.classes_]
    names = np.asarray(names, dtype=str)
    if names.shape != estimator.classes_.shape:
        raise CommandError(
            f"The model's label_names_ holds {names.size} names for its "
            f"{len(estimator.classes_)} label columns; set one name per column."
        )
    return names


def model_label_sep(model):
    """The separator a model written by an earlier skbert keeps (``label_sep_``), or
    None: models now keep their label names only."""
    sep = getattr(final_estimator(model), "label_sep_", None)
    return sep if isinstance(sep, str) and sep else None


def prediction_sep(model, label_sep=None):
    """What joins the predicted labels of a multi-label model: ``--label-sep``, else
    the ``label_sep_`` of a model written by an earlier skbert, else "|"."""
    return label_sep or model_label_sep(model) or DEFAULT_LABEL_SEP


def multilabel_predict(model, texts):
    """The 0/1 predictions and the probabilities of a multi-label model: a label is
    predicted where its probability is at least its ``thresholds_``, as ``predict``
    does (one pass through the network for both)."""
    proba = model.predict_proba(texts)
    return (proba >= final_estimator(model).thresholds_).astype(np.int64), proba
