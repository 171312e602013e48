"""Hugging Face folders of fitted estimators: ``save_pretrained``, ``from_pretrained``,
``push_to_hub`` and the model card.

A folder holds the fine-tuned encoder as transformers writes it (``config.json`` and
``model.safetensors``, which ``AutoModel.from_pretrained`` loads with no custom code),
the tokenizer's files, and skbert's own: ``skbert_head.safetensors`` (the weights of the
head on top of the pooled encoder) and ``skbert.json`` (the estimator's class,
parameters and fitted attributes, and how the network around the encoder is built), plus
a model card, ``README.md``. Nothing is pickled: loading reads JSON and safetensors, and
imports nothing but a head factory that the caller names as trusted. Of skbert it uses
``_checkpoint`` (the atomic folder swap), ``_modeling`` and ``_pretrained``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import math
import os
import tempfile
from pathlib import Path

import numpy as np

CONFIG_NAME = "skbert.json"
HEAD_NAME = "skbert_head.safetensors"
CARD_NAME = "README.md"
# The folder's format: raise it when skbert.json changes shape, and read the older ones.
FORMAT = 1
# Loading bounds: the largest skbert.json read (JSON is parsed whole into memory), its
# deepest nesting, the most bytes that its arrays may take once built (checked against
# their declared shape and dtype before anything is allocated), and their most dimensions.
MAX_CONFIG_BYTES = 32 * 2**20
MAX_DEPTH = 64
MAX_ARRAY_BYTES = 256 * 2**20
MAX_NDIM = 32
# The special values of to_json: each marker and the keys that go with it.
_MARKERS = {"__ndarray__": {"__ndarray__", "dtype", "shape"}, "__tuple__": {"__tuple__"},
            "__dict__": {"__dict__"}, "__float__": {"__float__"},
            "__callable__": {"__callable__"}}
_NON_FINITE = ("nan", "inf", "-inf")


# ------------------------------------------------------------------------- values
def to_json(value, where):
    """``value`` (a parameter or fitted attribute) as JSON-ready data that ``from_json``
    turns back into an equal value; raise naming ``where`` for anything else."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return to_json(value.item(), where)
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not np.isfinite(value):
            return {"__float__": repr(value)}
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufUO":
            raise TypeError(f"{where} is an array of dtype {value.dtype}")
        dtype = "object" if value.dtype.kind == "O" else value.dtype.str
        return {"__ndarray__": to_json(value.tolist(), where), "dtype": dtype,
                "shape": list(value.shape)}
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, tuple):
        return {"__tuple__": [to_json(v, where) for v in value]}
    if isinstance(value, list):
        return [to_json(v, where) for v in value]
    if isinstance(value, dict):
        return {"__dict__": [[to_json(k, where), to_json(v, where)] for k, v in value.items()]}
    if callable(value):  # a head factory: by reference, as pickle and skops store it
        module, qualname = getattr(value, "__module__", None), getattr(value, "__qualname__", "")
        if module and qualname and "<" not in qualname:
            return {"__callable__": f"{module}:{qualname}"}
    raise TypeError(
        f"{where} is a {type(value).__name__} ({value!r:.80}), which a Hugging Face folder "
        "cannot hold as JSON"
    )


def from_json(data, where, trusted, budget=None):
    """The value ``to_json`` made ``data`` from. A callable is imported only when its
    ``module:qualname`` is in ``trusted``.

    Anything ``to_json`` does not write is refused, naming ``where``. An array is
    checked before it is allocated: its values must be nested lists of exactly the
    declared shape, each of the declared dtype's kind, and the arrays of one call
    (``budget``: a one-item list holding the bytes left, shared by the calls of one
    file) may take at most ``MAX_ARRAY_BYTES``.

    Raises
    ------
    ValueError
        Naming ``where`` and what is wrong.
    """
    if budget is None:
        budget = [MAX_ARRAY_BYTES]
    if isinstance(data, list):
        return [from_json(v, where, trusted, budget) for v in data]
    if not isinstance(data, dict):
        return data
    marker = next((key for key in _MARKERS if key in data), None)
    if marker is None or set(data) != _MARKERS[marker]:
        raise ValueError(f"{where} holds an unknown value {data!r:.80}.")
    value = data[marker]
    if marker == "__ndarray__":
        return _array(data, where, trusted, budget)
    if marker == "__tuple__" and isinstance(value, list):
        return tuple(from_json(v, where, trusted, budget) for v in value)
    if marker == "__dict__" and isinstance(value, list):
        items = {}
        for item in value:
            if not isinstance(item, list) or len(item) != 2:
                raise ValueError(f"{where} holds a dict item {item!r:.80} that is not a "
                                 "[key, value] pair.")
            key = _hashable(from_json(item[0], where, trusted, budget))
            try:
                hash(key)
            except TypeError:
                raise ValueError(f"{where} holds a dict key {item[0]!r:.80} that cannot "
                                 "be a key.") from None
            items[key] = from_json(item[1], where, trusted, budget)
        return items
    if marker == "__float__" and value in _NON_FINITE:
        return float(value)
    if marker == "__callable__" and isinstance(value, str):
        return _import(value, where, trusted)
    raise ValueError(f"{where} holds an unknown value {data!r:.80}.")


def _array(data, where, trusted, budget):
    """The ndarray of ``data`` (``{"__ndarray__", "dtype", "shape"}``), checked before
    anything of the declared size is allocated."""
    shape, dtype = data["shape"], data["dtype"]
    if (not isinstance(shape, list) or len(shape) > MAX_NDIM
            or not all(_is_int(n) and n >= 0 for n in shape)):
        raise ValueError(f"{where} declares the array shape {shape!r:.80}; a shape is a "
                         f"list of at most {MAX_NDIM} non-negative ints.")
    if dtype == "object":
        kind, dtype = "O", np.dtype(object)
    else:
        try:
            parsed = np.dtype(dtype) if isinstance(dtype, str) else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or parsed.kind not in "biufU" or parsed.str != dtype:
            raise ValueError(f"{where} declares the array dtype {dtype!r:.80}, which is not "
                             "one that save_pretrained writes.")
        kind, dtype = parsed.kind, parsed
    count = math.prod(shape)
    size = count * dtype.itemsize
    if size > budget[0]:
        raise ValueError(
            f"{where} declares an array of shape {tuple(shape)} and dtype {dtype.str}, "
            f"{size} bytes: more than the {MAX_ARRAY_BYTES} bytes that the arrays of a "
            "skbert.json may take."
        )
    level = [data["__ndarray__"]]
    for n in shape:  # nested lists of exactly the declared shape, level by level
        if not all(isinstance(v, list) and len(v) == n for v in level):
            raise ValueError(f"{where} declares the array shape {tuple(shape)}, but its "
                             "values do not have that shape.")
        level = [v for values in level for v in values]
    budget[0] -= size
    if kind == "O":  # element by element: no nested arrays
        array = np.empty(count, dtype=object)
        for i, v in enumerate(level):
            array[i] = from_json(v, where, trusted, budget)
        return array.reshape(shape)
    values = [from_json(v, where, trusted, budget) if isinstance(v, dict) else v
              for v in level]
    accepted = {"b": (bool,), "i": (int,), "u": (int,), "f": (int, float), "U": (str,)}[kind]
    for v in values:
        if not isinstance(v, accepted) or (kind != "b" and isinstance(v, bool)) or (
                kind == "U" and len(v) > dtype.itemsize // 4):
            raise ValueError(f"{where} is an array of dtype {dtype.str} holding the value "
                             f"{v!r:.80}, which is not of that dtype.")
    try:
        return np.array(values, dtype=dtype).reshape(shape)
    except (OverflowError, ValueError) as exc:
        raise ValueError(f"{where} holds values that do not fit its dtype {dtype.str}: "
                         f"{exc}.") from None


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _import(reference, where, trusted):
    if reference not in trusted:
        raise ValueError(
            f"{where} is the callable {reference!r}, which from_pretrained imports only "
            f"when trusted: pass trusted=[{reference!r}] if you trust that code."
        )
    module_name, _, qualname = reference.partition(":")
    try:
        target = importlib.import_module(module_name)
        for part in qualname.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ValueError(f"{where} is the trusted callable {reference!r}, which cannot be "
                         f"imported: {exc}.") from None
    return target


# ---------------------------------------------------------------------- save / load
def save_folder(estimator, path, *, metrics=None, data_description=None, repo_id=None,
                standard=None):
    """Write the fitted ``estimator`` as a Hugging Face folder ``path``, atomically.

    Written through ``_checkpoint.staged_folder``: ``path`` may be missing, an empty
    folder or a folder that ``save_pretrained`` wrote (it holds ``skbert.json``), which
    is replaced whole once the new one is complete; anything else is refused. The
    encoder is written as its architecture's ``*ForSequenceClassification`` (a standard
    checkpoint, ``_standard``) when ``standard`` is True, or None and the network has
    that form; else as the bare encoder.

    Raises
    ------
    TypeError
        When a parameter or fitted attribute cannot be held as JSON (naming it).
    ValueError
        With ``standard=True``, when the network has no standard form (naming the
        parameters to change); nothing is written.
    FileExistsError
        When ``path`` is a file, a link, a folder skbert did not write, or holds files
        skbert did not write (naming the path and them); nothing is written.
    """
    from safetensors.torch import save_file

    from . import _standard
    from ._checkpoint import staged_folder
    from ._pretrained import quiet_transformers

    config = folder_config(estimator)
    module = estimator.model_
    target = Path(path)
    found = [] if standard is False else _standard.blockers(
        pooling=module.pooling, head=module.head_spec, truncation=estimator.truncation,
        backbone_config=module.backbone.config)
    if standard and found:
        raise ValueError(
            f"save_pretrained(standard=True) cannot write {type(estimator).__name__} as a "
            f"standard transformers checkpoint: {_standard.describe(found)}. Refit with "
            "those parameters changed, or save with standard=None (skbert's own layout, "
            "which from_pretrained reads)."
        )
    as_standard = standard is not False and not found
    with staged_folder(target, name="path", kind="estimator") as staging:
        with quiet_transformers():
            if as_standard:
                _standard.standard_model(module, **standard_outputs(estimator)
                                         ).save_pretrained(staging)
            else:
                module.backbone.save_pretrained(staging)
            estimator.tokenizer_.save_pretrained(staging)
        if as_standard:
            _standard.set_tokenizer_limits(staging, estimator.max_length)
        head = {k: v.detach().cpu().contiguous() for k, v in module.head.state_dict().items()}
        save_file(head, staging / HEAD_NAME)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n",
                                           encoding="utf-8")
        card = model_card(estimator, config, metrics=metrics,
                          data_description=data_description, repo_id=repo_id or target.name,
                          standard=as_standard)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")
    return target


def standard_outputs(estimator):
    """What the outputs of ``estimator``'s network are, for ``_standard.standard_model``:
    their names, the problem type, and a regressor's target scaling to fold in."""
    if hasattr(estimator, "classes_"):
        names = getattr(estimator, "label_names_", None)
        labels = [str(c) for c in (estimator.classes_ if names is None else names)]
        kind = "multi" if estimator.multilabel_ else "single"
        return dict(labels=labels, problem_type=f"{kind}_label_classification")
    n = estimator.n_outputs_
    per_output = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()  # noqa: E731
    return dict(labels=[f"output_{i}" for i in range(n)] if n > 1 else ["value"],
                problem_type="regression", scale=per_output(estimator.y_scale_),
                shift=per_output(estimator.y_mean_))


def folder_config(estimator):
    """The content of ``skbert.json`` for the fitted ``estimator``."""
    from . import __version__

    module = estimator.model_
    params = estimator.get_params(deep=False)
    fitted = {k: v for k, v in vars(estimator).items()
              if k.endswith("_") and not k.startswith("_") and k not in ("model_", "tokenizer_")}
    return {
        "format": FORMAT,
        "skbert_version": __version__,
        "estimator": type(estimator).__name__,
        "params": {k: to_json(v, f"parameter {k}") for k, v in params.items()},
        "fitted": {k: to_json(v, f"fitted attribute {k}") for k, v in fitted.items()},
        "network": {
            "n_outputs": estimator._n_outputs(),
            "pooling": module.pooling,
            "frozen": module.frozen,
            "head": to_json(module.head_spec, "the head"),
            "head_dropout": module.head_dropout_spec,
        },
    }


def resolve_folder(name_or_path, revision):
    """A local folder, or the snapshot of a Hugging Face repository (downloaded once).

    A folder that a killed save left only under its hidden ``.<name>.old-*`` name (where
    the file system has no atomic exchange) is put back first."""
    from ._checkpoint import recover_folder

    name = os.fspath(name_or_path)
    with contextlib.suppress(OSError):
        recover_folder(name)
    if os.path.isdir(name):
        return Path(name)
    if os.path.exists(name) or name.startswith((".", "~", os.sep)) or name.count("/") > 1:
        raise FileNotFoundError(f"{name!r} is not a folder written by save_pretrained, nor a "
                                "Hugging Face repository id.")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, revision=revision))


def read_config(folder):
    """The content of ``folder``'s ``skbert.json``, read as a regular file of at most
    ``MAX_CONFIG_BYTES`` and checked in form: its entries, their kinds, the format and
    no nesting deeper than ``MAX_DEPTH`` (values are checked by ``load_folder``).

    Raises
    ------
    ValueError
        Naming ``skbert.json`` (or the folder, when it has none) and what is wrong.
    """
    from . import __version__
    from ._pretrained import read_file

    where = os.fspath(Path(folder, CONFIG_NAME))
    try:
        data = read_file(where, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ValueError(
            f"{os.fspath(folder)!r} has no {CONFIG_NAME}: it is not a folder written by "
            "skbert's save_pretrained. For a plain encoder, use it as model_name_or_path."
        ) from None
    try:
        config = json.loads(data.decode("utf-8"))
    except RecursionError:
        raise ValueError(f"{where!r} is not a valid skbert folder config: its values are "
                         f"nested more than {MAX_DEPTH} deep.") from None
    except ValueError as exc:  # not UTF-8, not JSON
        raise ValueError(f"{where!r} is not a valid skbert folder config: {exc}.") from None
    if not isinstance(config, dict) or not _is_int(config.get("format")):
        raise ValueError(f"{where!r} is not a valid skbert folder config: it is not an "
                         "object with an int 'format' entry.")
    fmt = config["format"]
    if not 1 <= fmt <= FORMAT:
        raise ValueError(
            f"{where!r} was written by skbert {config.get('skbert_version')!r:.40} in "
            f"format {fmt!r}; this skbert {__version__} reads formats 1 to {FORMAT}. "
            "Upgrade skbert to load it."
        )
    kinds = {"format": int, "skbert_version": str, "estimator": str, "params": dict,
             "fitted": dict, "network": dict}
    wrong = sorted(set(config) ^ set(kinds))
    if wrong:
        raise ValueError(f"{where!r} is not a valid skbert folder config: the entries "
                         f"{wrong} are missing or unknown; a folder config has exactly "
                         f"{sorted(kinds)}.")
    for key, kind in kinds.items():
        if not isinstance(config[key], kind):
            raise ValueError(f"{where!r} is not a valid skbert folder config: {key!r} is "
                             f"a {type(config[key]).__name__}, not a {kind.__name__}.")
    stack = [(config, 0)]
    while stack:  # iteratively: deep nesting must not exhaust the stack
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ValueError(f"{where!r} is not a valid skbert folder config: its values "
                             f"are nested more than {MAX_DEPTH} deep.")
        if isinstance(value, (dict, list)):
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items)
    return config


def load_folder(cls, name_or_path, *, revision=None, trusted=None):
    """The estimator of class ``cls`` saved in a Hugging Face folder (or repository).

    Everything is checked before it is used: the folder's files (regular files of
    bounded size, safetensors weights, no code: ``_pretrained.check_model_folder``),
    ``skbert.json`` in form (``read_config``), its values (arrays against their
    declared shapes before allocation, parameters against the estimator's own
    constraints, fitted attributes against the network's outputs), and the head's
    weights against the network before the head is built.

    Raises
    ------
    ValueError
        Naming ``skbert.json``, or the file that is wrong, and what is wrong.
    OSError
        When transformers cannot load the encoder or tokenizer, naming the folder.
    """
    from sklearn.utils._param_validation import InvalidParameterError
    from transformers import AutoModel, AutoTokenizer

    from . import __version__
    from ._pretrained import check_model_folder, quiet_transformers

    folder = resolve_folder(name_or_path, revision)
    check_model_folder(folder)
    config = read_config(folder)
    where = os.fspath(folder / CONFIG_NAME)
    if config["estimator"] != cls.__name__:
        raise ValueError(
            f"{where!r} holds a {config['estimator']:.80}, not a "
            f"{cls.__name__}; load it with {config['estimator']:.80}.from_pretrained."
        )
    trusted = list(trusted or [])
    budget = [MAX_ARRAY_BYTES]
    try:
        params = {k: from_json(v, f"parameter {k}", trusted, budget)
                  for k, v in config["params"].items()}
        fitted = {k: from_json(v, f"fitted attribute {k}", trusted, budget)
                  for k, v in config["fitted"].items()}
        network = {k: from_json(v, f"network entry {k}", trusted, budget)
                   for k, v in config["network"].items()}
    except ValueError as exc:
        raise ValueError(f"{where!r}: {exc}") from None
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(f"{where!r} has parameters {unknown} that this skbert "
                         f"{__version__} does not know; upgrade skbert to load it.")
    try:
        cls(**params)._validate_params()  # the estimator's own _parameter_constraints
    except InvalidParameterError as exc:
        raise ValueError(f"{where!r} holds an invalid parameter: {exc}") from None
    n_outputs = _check_network(network, where)
    _check_fitted(cls, fitted, n_outputs, where)
    head_path = folder / HEAD_NAME
    try:
        with quiet_transformers():
            backbone = AutoModel.from_pretrained(folder, trust_remote_code=False,
                                                 use_safetensors=True)
            tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True,
                                                      trust_remote_code=False)
    except Exception as exc:  # config, safetensors and tokenizer errors alike
        raise OSError(f"Could not load the network saved in {os.fspath(folder)!r}: {exc}"
                      ) from exc
    _check_against_network(cls(**params), fitted, backbone, tokenizer, folder)
    module = _build_network(backbone, network, n_outputs, head_path, where)
    estimator = cls.__new__(cls)
    estimator.__setstate__(dict(params, **fitted, model_=module.eval(), tokenizer_=tokenizer,
                                _skbert_format=1, _skbert_version=config["skbert_version"]))
    return estimator


# The fitted attributes a folder may hold, by estimator, and whether each is required.
# Anything else (``model_``, ``tokenizer_``: the network is in the weights files) is
# refused by name. Add an estimator's new fitted attribute here, with its check below.
_COMMON_FITTED = {"text_pairs_": True, "n_iter_": True, "loss_curve_": True,
                  "n_samples_seen_": True, "validation_scores_": False,
                  "best_validation_score_": False, "interrupted_": False}
_FITTED = {
    "BertTextClassifier": dict(_COMMON_FITTED, classes_=True, multilabel_=True,
                               thresholds_=False, label_names_=False, label_sep_=False,
                               calibration_proba_=False, calibration_y_=False),
    "BertTextRegressor": dict(_COMMON_FITTED, n_outputs_=True, y_mean_=True, y_scale_=True),
}


_NETWORK = ("n_outputs", "pooling", "frozen", "head", "head_dropout")


def _check_network(network, where):
    """Check the ``network`` entry's values; return its number of outputs."""
    from ._modeling import POOLINGS

    def bad(key, what):
        return ValueError(f"{where!r} holds the network entry {key}={network[key]!r:.80}; "
                          f"it must be {what}.")

    wrong = sorted(set(network) ^ set(_NETWORK))
    if wrong:
        raise ValueError(f"{where!r} is not a valid skbert folder config: the network "
                         f"entries {wrong} are missing or unknown; it has exactly "
                         f"{sorted(_NETWORK)}.")

    n_outputs = network["n_outputs"]
    if not _is_int(n_outputs) or n_outputs < 1:
        raise bad("n_outputs", "a positive int")
    if network["pooling"] not in POOLINGS:
        raise bad("pooling", f"one of {POOLINGS}")
    if not isinstance(network["frozen"], bool):
        raise bad("frozen", "a bool")
    head = network["head"]
    if not (head is None or callable(head) or (isinstance(head, tuple) and all(
            _is_int(n) and n >= 1 for n in head))):
        raise bad("head", "None, a tuple of positive ints or a trusted callable")
    dropout = network["head_dropout"]
    if not (dropout is None or (isinstance(dropout, (int, float)) and not isinstance(
            dropout, bool) and 0 <= dropout < 1)):
        raise bad("head_dropout", "None or a float in [0, 1)")
    return n_outputs


def _check_fitted(cls, fitted, n_outputs, where):
    """Check the fitted attributes: the known ones, each of its kind, and the outputs
    they describe against the network's ``n_outputs``."""
    allowed = next((_FITTED[c.__name__] for c in cls.__mro__ if c.__name__ in _FITTED), {})
    unknown = sorted(set(fitted) - set(allowed))
    if unknown:
        raise ValueError(
            f"{where!r} holds the fitted attributes {unknown}, which a "
            f"{cls.__name__} folder does not hold (its network and tokenizer are in the "
            "folder's weights and tokenizer files). Remove them, or save the model again."
        )
    missing = sorted(k for k, required in allowed.items() if required and k not in fitted)
    if missing:
        raise ValueError(f"{where!r} lacks the fitted attributes {missing}; save the model "
                         "again.")

    def bad(key, what):
        return ValueError(f"{where!r} holds the fitted attribute {key}={fitted[key]!r:.80};"
                          f" it must be {what}.")

    def is_real(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool)

    def check_array(key, kinds, what):
        value = fitted[key]
        if not (isinstance(value, np.ndarray) and value.shape == (n_outputs,)
                and value.dtype.kind in kinds):
            raise bad(key, f"{what} of shape ({n_outputs},), one per output of the network "
                           f"(network n_outputs={n_outputs})")
        return value

    checks = {"text_pairs_": (lambda v: isinstance(v, bool), "a bool"),
              "multilabel_": (lambda v: isinstance(v, bool), "a bool"),
              "interrupted_": (lambda v: isinstance(v, bool), "a bool"),
              "n_iter_": (lambda v: _is_int(v) and v >= 0, "a non-negative int"),
              "n_samples_seen_": (lambda v: _is_int(v) and v >= 0, "a non-negative int"),
              "loss_curve_": (lambda v: isinstance(v, list) and all(map(is_real, v)),
                              "a list of floats"),
              "validation_scores_": (lambda v: isinstance(v, list) and all(map(is_real, v)),
                                     "a list of floats"),
              "best_validation_score_": (is_real, "a float"),
              "label_sep_": (lambda v: isinstance(v, str), "a str"),
              "n_outputs_": (lambda v: _is_int(v) and v == n_outputs,
                             f"the network's n_outputs={n_outputs}")}
    for key, (check, what) in checks.items():
        if key in fitted and not check(fitted[key]):
            raise bad(key, what)
    if "classes_" in fitted:
        classes = check_array("classes_", "biufUO", "an array of labels")
        if fitted["multilabel_"]:
            if not np.array_equal(classes, np.arange(n_outputs)):
                raise bad("classes_", f"the label columns 0 to {n_outputs - 1} of a "
                                      "multi-label model")
            thresholds = fitted.get("thresholds_")
            if thresholds is None:
                raise ValueError(f"{where!r} lacks the fitted attribute thresholds_ of its "
                                 "multi-label model; save the model again.")
            check_array("thresholds_", "f", "an array of floats")
            if not np.all((thresholds >= 0) & (thresholds <= 1)):
                raise bad("thresholds_", "probabilities from 0 to 1")
            if "label_names_" in fitted:
                names = fitted["label_names_"]
                if not (isinstance(names, np.ndarray) and names.shape == (n_outputs,)
                        and all(isinstance(v, str) for v in names.tolist())):
                    raise bad("label_names_", f"an array of {n_outputs} str, one per label")
        else:
            for key in ("thresholds_", "label_names_"):
                if key in fitted:
                    raise ValueError(f"{where!r} holds the fitted attribute {key}, which "
                                     "only a multi-label model has (multilabel_ is false).")
            try:
                ordered = n_outputs >= 2 and np.array_equal(np.unique(classes), classes)
            except TypeError:
                ordered = False
            if not ordered:
                raise bad("classes_", "at least 2 distinct labels in sorted order")
    if "calibration_proba_" in fitted or "calibration_y_" in fitted:
        proba, truth = fitted.get("calibration_proba_"), fitted.get("calibration_y_")
        n = len(proba) if isinstance(proba, np.ndarray) and proba.ndim == 2 else 0
        if not (n >= 1 and proba.dtype.kind == "f" and proba.shape == (n, n_outputs)
                and np.all((proba >= 0) & (proba <= 1))):
            raise ValueError(
                f"{where!r} holds no valid calibration_proba_: it must be a float array of "
                f"probabilities of shape (n_calibration, {n_outputs}), beside "
                "calibration_y_. Save the model again, or call calibrate_sets after loading.")
        multilabel = fitted.get("multilabel_") is True
        shape, top = ((n, n_outputs), 1) if multilabel else ((n,), n_outputs - 1)
        if not (isinstance(truth, np.ndarray) and truth.dtype.kind in "iu"
                and truth.shape == shape and np.all((truth >= 0) & (truth <= top))):
            raise ValueError(
                f"{where!r} holds no valid calibration_y_: it must be an int array of shape "
                f"{shape} with values from 0 to {top}, one row per row of calibration_proba_. "
                "Save the model again, or call calibrate_sets after loading.")
    if "y_mean_" in fitted:
        if not np.all(np.isfinite(check_array("y_mean_", "f", "an array of floats"))):
            raise bad("y_mean_", "finite")
        scale = check_array("y_scale_", "f", "an array of floats")
        if not np.all(np.isfinite(scale) & (scale > 0)):
            raise bad("y_scale_", "finite and positive")


def _check_against_network(estimator, fitted, backbone, tokenizer, folder):
    """Check the parameters that meet the loaded encoder and tokenizer: ``max_length``
    (positions, text pairs), ``truncation`` and ``window_stride``; and that the
    tokenizer is a fast one that belongs to the encoder."""
    from ._pretrained import check_compatible, check_max_length
    from ._tokenization import check_pair_room, window_stride

    where = os.fspath(folder / CONFIG_NAME)
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"The tokenizer saved in {os.fspath(folder)!r} is not a fast "
                         "(Rust) tokenizer; skbert needs its tokenizer.json.")
    try:
        check_max_length(backbone.config, estimator.max_length)
        if fitted["text_pairs_"]:
            if estimator.truncation != "head":
                raise ValueError(f"truncation={estimator.truncation!r} applies to single "
                                 "texts, but the model was fitted on text pairs")
            check_pair_room(tokenizer, estimator.max_length)
        if estimator.truncation == "window":
            window_stride(tokenizer, estimator.max_length, estimator.window_stride)
    except ValueError as exc:
        raise ValueError(f"{where!r} holds parameters that do not fit its network: {exc}"
                         ) from None
    check_compatible(backbone.config, tokenizer, estimator.max_length, folder)


def _build_network(backbone, network, n_outputs, head_path, where):
    """The module of ``backbone`` and the head described by ``network``, the head's
    weights read from ``head_path`` once their names and shapes are checked against the
    head that ``network`` describes (built on torch's meta device, which allocates
    nothing)."""
    import torch
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ._modeling import build_head, build_module, head_dropout

    head_file = os.fspath(head_path)
    try:
        with safe_open(head_file, framework="pt") as file:
            saved = {k: tuple(file.get_slice(k).get_shape()) for k in file.keys()}
    except Exception as exc:  # a missing, truncated or crafted file
        raise ValueError(f"{head_file!r} is not a safetensors file of the head: {exc}"
                         ) from None
    dropout = head_dropout(backbone.config, network["head_dropout"])
    hidden = backbone.config.hidden_size
    try:
        with torch.device("meta"):
            meta = build_head(network["head"], hidden, n_outputs, dropout)
    except Exception as exc:  # a trusted factory that fails
        raise ValueError(f"{where!r}: the head it describes cannot be built: {exc}") from None
    expected = {k: tuple(v.shape) for k, v in meta.state_dict().items()}
    if saved != expected:
        differ = sorted(k for k in set(saved) | set(expected) if saved.get(k) != expected.get(k))
        key = differ[0]
        raise ValueError(
            f"{head_file!r} does not hold the head that {where!r} describes (head="
            f"{network['head']!r:.80}, n_outputs={n_outputs}, hidden size {hidden}): "
            f"{key!r} is {saved.get(key, 'missing')} in the file but "
            f"{expected.get(key, 'unexpected')} in that head."
        )
    module = build_module(backbone, n_outputs, pooling=network["pooling"],
                          head=network["head"], dropout=network["head_dropout"],
                          frozen=network["frozen"])
    try:
        module.head.load_state_dict(load_file(head_file), strict=True)
    except Exception as exc:
        raise ValueError(f"{head_file!r} cannot be loaded into the head: {exc}") from None
    return module


# ------------------------------------------------------------------------ model card
def model_card(estimator, config, *, metrics=None, data_description=None, repo_id="model",
               standard=False):
    """A Hugging Face model card (``README.md``) for the fitted ``estimator``, whose
    folder is a standard transformers checkpoint where ``standard``."""
    kind = type(estimator).__name__
    regression = kind == "BertTextRegressor"
    base = os.fspath(estimator.model_name_or_path)
    header = ["---", "library_name: skbert", "tags:", "- skbert", "- scikit-learn",
              f"- {'text-regression' if regression else 'text-classification'}"]
    if not os.path.isdir(base) and base.count("/") == 1:
        header.append(f"base_model: {base}")
    if not regression:
        header.append("pipeline_tag: text-classification")
    header.append("---")
    lines = [*header, "", f"# {repo_id}", "",
             f"A `{kind}` from [skbert](https://pypi.org/project/skbert/): the encoder "
             f"`{base}` fine-tuned as a scikit-learn estimator"
             f"{' with a frozen base' if estimator.freeze_base else ''}.", ""]
    if regression:
        lines += ["## Outputs", "", f"{estimator.n_outputs_} real-valued output(s), "
                  "standardised internally (`y_mean_`, `y_scale_`).", ""]
    else:
        names = getattr(estimator, "label_names_", estimator.classes_)
        what = "Labels (multi-label)" if estimator.multilabel_ else "Classes"
        lines += [f"## {what}", "", ", ".join(f"`{c}`" for c in np.asarray(names).tolist()),
                  ""]
    if metrics:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|"]
        lines += [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                  for k, v in metrics.items()]
        lines.append("")
    if data_description:
        lines += ["## Training data", "", str(data_description).strip(), ""]
    lines += ["## Training", "",
              f"{estimator.n_iter_} epoch(s) or stream chunk(s), {estimator.n_samples_seen_} "
              "texts trained on in completed passes.", "",
              "| parameter | value |", "|---|---|"]
    lines += [f"| `{k}` | `{json.dumps(v)}` |" for k, v in config["params"].items()]
    lines += ["", "## Use", "", "```python",
              f"from skbert import {kind}", "",
              f"model = {kind}.from_pretrained({repo_id!r})",
              "model.predict([\"some text\"])", "```", ""]
    if standard:
        lines += ["It is also a standard transformers checkpoint, which loads with no "
                  "custom code:", "", "```python", "from transformers import pipeline", "",
                  f"pipe = pipeline(\"text-classification\", model={repo_id!r})",
                  "pipe([\"some text\"], truncation=True, top_k=None)", "```", "",
                  "What transformers has no field for (multi-label thresholds) is in "
                  "`skbert.json`.", ""]
    else:
        lines += ["The fine-tuned encoder alone loads with "
                  f"`transformers.AutoModel.from_pretrained({repo_id!r})`; the head on its "
                  "pooled output is in `skbert_head.safetensors`, its setup in "
                  "`skbert.json`.", ""]
    return "\n".join(lines)


def push_folder(estimator, repo_id, *, private=None, token=None, revision=None,
                commit_message=None, metrics=None, data_description=None):
    """Write the Hugging Face folder of ``estimator`` and upload it to ``repo_id`` with
    ``huggingface_hub``'s ``create_repo`` and ``upload_folder``."""
    from huggingface_hub import HfApi

    with tempfile.TemporaryDirectory() as staging:
        folder = save_folder(estimator, Path(staging) / "model", metrics=metrics,
                             data_description=data_description, repo_id=repo_id)
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        return api.upload_folder(
            repo_id=repo_id, folder_path=folder, revision=revision, repo_type="model",
            commit_message=commit_message or f"Upload {type(estimator).__name__} with skbert",
        )


class HubMixin:
    """The Hugging Face folder methods of skbert's estimators."""

    def save_pretrained(self, path: str | os.PathLike, *, metrics: dict | None = None,
                        data_description: str | None = None,
                        standard: bool | None = None) -> Path:
        """Write the fitted estimator as a Hugging Face folder, atomically.

        The folder holds the fine-tuned network (``config.json``, ``model.safetensors``),
        the tokenizer's files, the head's weights (``skbert_head.safetensors``), the
        estimator's class, parameters and fitted attributes (``skbert.json``) and a
        model card (``README.md``). Nothing is pickled. ``from_pretrained`` restores
        an estimator that predicts identically.

        Where the network has the form of its architecture's own sequence classifier
        (``pooling="pooler"``, ``head=None``, ``truncation="head"`` on a BERT-like
        encoder), the folder is a **standard checkpoint**:
        ``transformers.AutoModelForSequenceClassification.from_pretrained(path)`` and
        ``pipeline("text-classification", model=path)`` load it with no custom code
        and give this estimator's probabilities (or values): ``config.json`` carries
        ``id2label``/``label2id`` (the labels of ``classes_``, or ``label_names_``),
        ``problem_type`` and ``num_labels``, a regressor's target scaling is folded
        into the classifier's weights, and the tokenizer's ``model_max_length`` is
        ``max_length`` (pass ``truncation=True`` to the pipeline). What transformers has
        no field for (multi-label ``thresholds_``) is read back from ``skbert.json``
        only; see the serving guide. Otherwise ``config.json`` and
        ``model.safetensors`` are the bare encoder, which ``transformers.AutoModel``
        loads.

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write; an existing one is replaced only once the new one is
            complete.
        metrics : dict of str to float, default=None
            Scores to list in the model card, such as ``{"accuracy": 0.91}``.
        data_description : str, default=None
            What the training data was, for the model card.
        standard : bool or None, default=None
            None writes a standard checkpoint where the network has that form, and
            skbert's own layout otherwise; True requires the standard form (and refuses,
            naming the parameters to change, where there is none); False always writes
            skbert's own layout (the bare encoder and the head apart).

        Returns
        -------
        path : pathlib.Path

        Raises
        ------
        TypeError
            When a parameter cannot be written as JSON (a ``random_state`` that is a
            ``RandomState`` instance, a head factory that is not a module-level
            function), naming it.
        ValueError
            With ``standard=True``, when the network has no standard form.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return save_folder(self, path, metrics=metrics, data_description=data_description,
                           standard=standard)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, *, revision: str | None = None,
                        trusted: list[str] | None = None):
        """Load an estimator written by ``save_pretrained`` or ``push_to_hub``.

        Parameters
        ----------
        name_or_path : str or os.PathLike
            A local folder, or a Hugging Face repository id (downloaded once into the
            Hugging Face cache; ``HF_HUB_OFFLINE=1`` reads only the cache).
        revision : str, default=None
            Branch, tag or commit hash of a repository id.
        trusted : list of str, default=None
            Head factories (``"module:qualname"``) that may be imported: a custom
            ``head`` is saved by reference, and nothing is imported unless named here.

        Returns
        -------
        estimator : BertTextClassifier or BertTextRegressor
            Of the class ``from_pretrained`` is called on, fitted.

        Raises
        ------
        ValueError
            When the folder is not an skbert folder, holds another estimator class, was
            written by a newer skbert, or names an untrusted head factory.
        """
        return load_folder(cls, name_or_path, revision=revision, trusted=trusted)

    def push_to_hub(self, repo_id, *, private=None, token=None, revision=None,
                    commit_message=None, metrics=None, data_description=None):
        """Upload the ``save_pretrained`` folder to a Hugging Face repository.

        The repository is created if needed (``huggingface_hub.HfApi.create_repo``)
        and the folder uploaded in one commit (``upload_folder``), model card included.

        Parameters
        ----------
        repo_id : str
            Such as ``"user/my-skbert-model"``.
        private : bool, default=None
            Whether a new repository is private (None: the hub's default).
        token : str, default=None
            A Hugging Face token; None uses the one ``huggingface-cli login`` saved.
        revision : str, default=None
            The branch to commit to.
        commit_message : str, default=None
        metrics : dict of str to float, default=None
            Scores for the model card.
        data_description : str, default=None
            What the training data was, for the model card.

        Returns
        -------
        commit : huggingface_hub.CommitInfo
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        return push_folder(self, repo_id, private=private, token=token, revision=revision,
                           commit_message=commit_message, metrics=metrics,
                           data_description=data_description)
