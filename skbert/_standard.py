"""Standard transformers checkpoints of a fitted network: what the architecture's own
``*ForSequenceClassification`` class can express, and the conversion to it.

A fitted network is standard when that class computes what skbert computes: the
backbone's pooler output (``pooling="pooler"``), dropout and one linear layer
(``head=None``) on texts cut to their first tokens (``truncation="head"``). BERT and its
kin (ALBERT, ...) are built so: their sequence classifier is the base model, with its
pooler, under ``base_model_prefix``, and a linear ``classifier``. What the standard
class has no field for but is linear is folded into the classifier's weights (a
regressor's target scale and mean), so that transformers gives skbert's answers; the
rest (multi-label thresholds) stays in skbert's own ``skbert.json``.

Functions of values (a network, labels, numbers). torch and transformers are imported
inside the functions. This module imports nothing from skbert.
"""

import json
import os

import numpy as np

PROBLEM_TYPES = ("single_label_classification", "multi_label_classification", "regression")
TOKENIZER_CONFIG = "tokenizer_config.json"


def blockers(*, pooling, head, truncation, backbone_config):
    """Why a network of these settings has no standard form: a list of
    ``(parameter, reason)``, empty when it has one.

    Parameters
    ----------
    pooling, head, truncation
        The estimator's parameters of those names.
    backbone_config : transformers.PretrainedConfig
        The encoder's config, whose architecture decides the class.
    """
    found = []
    if pooling != "pooler":
        found.append(("pooling", f"pooling={pooling!r} is not what the standard class "
                                 "classifies (the first token through the backbone's "
                                 "pooler); use pooling='pooler'"))
    if head is not None:
        found.append(("head", f"head={head!r:.60} is not the standard class's one linear "
                              "layer; use head=None"))
    if truncation != "head":
        found.append(("truncation", f"truncation={truncation!r} is not how transformers "
                                    "cuts a text (its first tokens); use truncation='head'"))
    reason = _layout_problem(backbone_config)
    if reason:
        found.append(("model_name_or_path", reason))
    return found


def describe(found):
    """One sentence naming every blocker of ``blockers``."""
    return "; ".join(f"{reason} (parameter {name})" for name, reason in found)


def _classifier_class(config):
    from transformers import AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES,
    )

    name = MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.get(config.model_type)
    return AutoModelForSequenceClassification, name


def _layout_problem(config):
    """Why the architecture of ``config`` has no sequence classifier of the form
    base model (with a pooler) + linear ``classifier``; None when it has."""
    import torch

    auto, name = _classifier_class(config)
    if name is None:
        return (f"transformers has no sequence classification class for model type "
                f"{config.model_type!r}")
    with torch.device("meta"):
        model = auto.from_config(config, trust_remote_code=False)
    prefix = model.base_model_prefix
    base = getattr(model, prefix, None)
    classifier = getattr(model, "classifier", None)
    outside = {k for k in model.state_dict() if not k.startswith(f"{prefix}.")}
    if (base is None or getattr(base, "pooler", None) is None
            or not isinstance(classifier, torch.nn.Linear)
            or outside != {"classifier.weight", "classifier.bias"}):
        return (f"{name} classifies with layers of its own (not the pooler output and one "
                "linear layer), which skbert's head does not fill")
    return None


def standard_model(module, *, labels, problem_type, scale=None, shift=None):
    """The fitted ``module`` as its architecture's ``*ForSequenceClassification``.

    Parameters
    ----------
    module : TextClassifierModule
        With ``pooling="pooler"`` and the default head (dropout and one linear layer);
        ``blockers`` is empty for it.
    labels : list of str
        The name of each output, in order (``id2label``).
    problem_type : str
        One of ``PROBLEM_TYPES``.
    scale, shift : ndarray of shape (n_outputs,), default=None
        Outputs are ``logits * scale + shift`` (a regressor's target scaling), folded
        into the classifier's weights.

    Returns
    -------
    model : transformers.PreTrainedModel
        On the CPU, in eval mode, in the backbone's dtype; its config carries
        ``num_labels``, ``id2label``, ``label2id``, ``problem_type`` and the head's
        dropout as ``classifier_dropout``.
    """
    import copy

    import torch

    if problem_type not in PROBLEM_TYPES:
        raise ValueError(f"problem_type must be one of {PROBLEM_TYPES}; got {problem_type!r}.")
    backbone = module.backbone
    linear = module.head[-1]
    dropout = module.head[0].p
    config = copy.deepcopy(backbone.config)
    config.num_labels = len(labels)
    config.id2label = {i: str(label) for i, label in enumerate(labels)}
    config.label2id = {str(label): i for i, label in enumerate(labels)}
    config.problem_type = problem_type
    config.classifier_dropout = dropout
    auto, _ = _classifier_class(config)
    model = auto.from_config(config, trust_remote_code=False)
    prefix = model.base_model_prefix
    weight = linear.weight.detach().cpu().double()
    bias = linear.bias.detach().cpu().double()
    if scale is not None:
        scale = torch.as_tensor(np.asarray(scale, dtype=np.float64).reshape(-1))
        shift = torch.as_tensor(np.asarray(shift, dtype=np.float64).reshape(-1))
        weight, bias = weight * scale[:, None], bias * scale + shift
    dtype = next(backbone.parameters()).dtype
    state = {f"{prefix}.{k}": v.detach().cpu() for k, v in backbone.state_dict().items()}
    state["classifier.weight"] = weight.to(dtype)
    state["classifier.bias"] = bias.to(dtype)
    model.load_state_dict(state, strict=True)
    return model.to(dtype).eval()


def set_tokenizer_limits(folder, max_length):
    """Write into ``folder``'s tokenizer config the limits skbert used: ``max_length``
    as ``model_max_length``, and truncation and padding on the right, so that
    transformers' ``truncation=True`` cuts texts (and pairs, longest first) as skbert
    does."""
    path = os.path.join(folder, TOKENIZER_CONFIG)
    with open(path, encoding="utf-8") as file:
        config = json.load(file)
    config.update(model_max_length=int(max_length), truncation_side="right",
                  padding_side="right")
    with open(path, "w", encoding="utf-8") as file:
        json.dump(config, file, indent=2)
        file.write("\n")
