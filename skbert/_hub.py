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

import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

CONFIG_NAME = "skbert.json"
HEAD_NAME = "skbert_head.safetensors"
CARD_NAME = "README.md"
# The folder's format: raise it when skbert.json changes shape, and read the older ones.
FORMAT = 1


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


def from_json(data, where, trusted):
    """The value ``to_json`` made ``data`` from. A callable is imported only when its
    ``module:qualname`` is in ``trusted``."""
    if isinstance(data, list):
        return [from_json(v, where, trusted) for v in data]
    if not isinstance(data, dict):
        return data
    if "__ndarray__" in data:
        values = from_json(data["__ndarray__"], where, trusted)
        shape = tuple(data["shape"])
        if data["dtype"] != "object":
            return np.array(values, dtype=np.dtype(data["dtype"])).reshape(shape)
        array = np.empty(shape, dtype=object)  # element by element: no nested arrays
        for index in np.ndindex(shape):
            item = values
            for i in index:
                item = item[i]
            array[index] = item
        return array
    if "__tuple__" in data:
        return tuple(from_json(v, where, trusted) for v in data["__tuple__"])
    if "__dict__" in data:
        return {_hashable(from_json(k, where, trusted)): from_json(v, where, trusted)
                for k, v in data["__dict__"]}
    if "__float__" in data:
        return float(data["__float__"])
    if "__callable__" in data:
        return _import(data["__callable__"], where, trusted)
    raise ValueError(f"{where} holds an unknown value {data!r:.80}")


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def _import(reference, where, trusted):
    if reference not in trusted:
        raise ValueError(
            f"{where} is the callable {reference!r}, which from_pretrained imports only "
            f"when trusted: pass trusted=[{reference!r}] if you trust that code."
        )
    module_name, _, qualname = reference.partition(":")
    target = importlib.import_module(module_name)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


# ---------------------------------------------------------------------- save / load
def save_folder(estimator, path, *, metrics=None, data_description=None, repo_id=None):
    """Write the fitted ``estimator`` as a Hugging Face folder ``path``, atomically.

    Raises
    ------
    TypeError
        When a parameter or fitted attribute cannot be held as JSON (naming it).
    """
    from safetensors.torch import save_file

    from ._checkpoint import replace_folder
    from ._pretrained import quiet_transformers

    config = folder_config(estimator)
    module = estimator.model_
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        with quiet_transformers():
            module.backbone.save_pretrained(staging)
            estimator.tokenizer_.save_pretrained(staging)
        head = {k: v.detach().cpu().contiguous() for k, v in module.head.state_dict().items()}
        save_file(head, staging / HEAD_NAME)
        (staging / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n",
                                           encoding="utf-8")
        card = model_card(estimator, config, metrics=metrics,
                          data_description=data_description, repo_id=repo_id or target.name)
        (staging / CARD_NAME).write_text(card, encoding="utf-8")
        replace_folder(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target


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
    """A local folder, or the snapshot of a Hugging Face repository (downloaded once)."""
    name = os.fspath(name_or_path)
    if os.path.isdir(name):
        return Path(name)
    if os.path.exists(name) or name.startswith((".", "~", os.sep)) or name.count("/") > 1:
        raise FileNotFoundError(f"{name!r} is not a folder written by save_pretrained, nor a "
                                "Hugging Face repository id.")
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, revision=revision))


def load_folder(cls, name_or_path, *, revision=None, trusted=None):
    """The estimator of class ``cls`` saved in a Hugging Face folder (or repository)."""
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    from . import __version__
    from ._modeling import build_module
    from ._pretrained import check_no_custom_code, quiet_transformers

    folder = resolve_folder(name_or_path, revision)
    check_no_custom_code(folder)
    where = folder / CONFIG_NAME
    try:
        config = json.loads(where.read_text(encoding="utf-8"))
        fmt = config["format"]
    except FileNotFoundError:
        raise ValueError(
            f"{os.fspath(folder)!r} has no {CONFIG_NAME}: it is not a folder written by "
            "skbert's save_pretrained. For a plain encoder, use it as model_name_or_path."
        ) from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{os.fspath(where)!r} is not a valid skbert folder config: {exc}"
                         ) from None
    if not isinstance(fmt, int) or not 1 <= fmt <= FORMAT:
        raise ValueError(
            f"{os.fspath(where)!r} was written by skbert {config.get('skbert_version')} in "
            f"format {fmt!r}; this skbert {__version__} reads formats 1 to {FORMAT}. "
            "Upgrade skbert to load it."
        )
    if config.get("estimator") != cls.__name__:
        raise ValueError(
            f"{os.fspath(folder)!r} holds a {config.get('estimator')}, not a "
            f"{cls.__name__}; load it with {config.get('estimator')}.from_pretrained."
        )
    trusted = list(trusted or [])
    params = {k: from_json(v, f"parameter {k}", trusted) for k, v in config["params"].items()}
    unknown = sorted(set(params) - set(cls._get_param_names()))
    if unknown:
        raise ValueError(f"{os.fspath(where)!r} has parameters {unknown} that this skbert "
                         f"{__version__} does not know; upgrade skbert to load it.")
    fitted = {k: from_json(v, f"fitted attribute {k}", trusted)
              for k, v in config["fitted"].items()}
    network = config["network"]
    try:
        with quiet_transformers():
            backbone = AutoModel.from_pretrained(folder, trust_remote_code=False)
            tokenizer = AutoTokenizer.from_pretrained(folder, use_fast=True,
                                                      trust_remote_code=False)
        module = build_module(
            backbone, network["n_outputs"], pooling=network["pooling"],
            head=from_json(network["head"], "the head", trusted),
            dropout=network["head_dropout"], frozen=network["frozen"],
        )
        module.head.load_state_dict(load_file(folder / HEAD_NAME), strict=True)
    except (OSError, RuntimeError, KeyError) as exc:
        raise OSError(f"Could not load the network saved in {os.fspath(folder)!r}: {exc}"
                      ) from exc
    estimator = cls.__new__(cls)
    estimator.__setstate__(dict(params, **fitted, model_=module.eval(), tokenizer_=tokenizer,
                                _skbert_format=1, _skbert_version=config["skbert_version"]))
    return estimator


# ------------------------------------------------------------------------ model card
def model_card(estimator, config, *, metrics=None, data_description=None, repo_id="model"):
    """A Hugging Face model card (``README.md``) for the fitted ``estimator``."""
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
              "model.predict([\"some text\"])", "```", "",
              "The fine-tuned encoder alone loads with "
              f"`transformers.AutoModel.from_pretrained({repo_id!r})`; the head on its "
              "pooled output is in `skbert_head.safetensors`, its setup in `skbert.json`.",
              ""]
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
