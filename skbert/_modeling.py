"""The network: a pretrained backbone, a pooling of its token states, and a head.

Heads are built from a spec: None (dropout + linear), a tuple of hidden sizes (an MLP of
Dropout -> Linear -> BatchNorm -> ReLU blocks and a final Linear), or a factory
``(in_features, n_classes) -> nn.Module``. Also turns a fitted network into plain values
and bytes and back, so that pickle and skops persist it without trusting torch or
transformers classes. transformers is imported inside the functions. This module imports
nothing from skbert.
"""

import contextlib
import re
import threading
from numbers import Integral

import torch
from torch import nn

POOLINGS = ("mean", "cls", "pooler")


def pool(states, attention_mask, pooling):
    """One vector per text: the mean over real tokens, or the first token's state (for
    "pooler", the backbone's own pooler has already been applied to it)."""
    if pooling in ("cls", "pooler"):
        return states[:, 0]
    mask = attention_mask.unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class TextClassifierModule(nn.Module):
    """Backbone, pooling and classification head.

    Parameters
    ----------
    backbone : transformers.PreTrainedModel
        An encoder whose output has ``last_hidden_state``.
    head : nn.Module
        Maps pooled vectors of size ``backbone.config.hidden_size`` to logits.
    pooling : {"mean", "cls", "pooler"}
        "mean" averages the states of real tokens (what sentence-transformers models
        are trained with); "cls" takes the first token's state; "pooler" takes the
        backbone's own pooler output (the first token's state through a dense layer and
        tanh), which is what the architecture's ``*ForSequenceClassification`` class
        puts its classifier on.
    frozen : bool
        Keep the backbone's weights fixed and the backbone in eval mode (no dropout),
        even while the head trains.
    """

    def __init__(self, backbone, head, pooling="mean", frozen=False):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}.")
        if pooling == "pooler" and getattr(backbone, "pooler", None) is None:
            raise ValueError(
                f"pooling='pooler' needs a backbone with a pooler layer, and this "
                f"{type(backbone).__name__} ({backbone.config.model_type}) has none; use "
                "pooling='mean' or 'cls'."
            )
        self.backbone = backbone
        self.head = head
        self.pooling = pooling
        self.frozen = frozen
        if frozen:
            backbone.requires_grad_(False)
            backbone.eval()

    def train(self, mode=True):
        """Set training mode; a frozen backbone stays in eval mode."""
        super().train(mode)
        if self.frozen:
            self.backbone.eval()
        return self

    def get_input_embeddings(self):
        """The backbone's token embedding (as on a transformers model)."""
        return self.backbone.get_input_embeddings()

    def features(self, input_ids, attention_mask, token_type_ids=None):
        """Pooled backbone output of shape (batch, hidden_size)."""
        out = self.backbone(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        )
        if self.pooling == "pooler":
            return out.pooler_output
        return pool(out.last_hidden_state, attention_mask, self.pooling)

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        """Return logits of shape (batch, n_classes)."""
        return self.head(self.features(input_ids, attention_mask, token_type_ids))


def build_head(spec, in_features, n_classes, dropout):
    """Build a head from its spec and check that it maps features to logits.

    Parameters
    ----------
    spec : None, tuple of int, or callable
        None: dropout and a linear layer. A tuple of hidden sizes: one
        Dropout -> Linear -> BatchNorm1d -> ReLU block per size, then dropout and a
        final Linear. A callable ``(in_features, n_classes) -> nn.Module``.
    in_features, n_classes : int
        Input and output sizes.
    dropout : float
        Dropout probability of the built-in heads.

    Returns
    -------
    head : nn.Module
    """
    if spec is None or isinstance(spec, tuple):
        layers, width = [], in_features
        for size in spec or ():
            layers += [nn.Dropout(dropout), nn.Linear(width, size), nn.BatchNorm1d(size), nn.ReLU()]
            width = size
        return nn.Sequential(*layers, nn.Dropout(dropout), nn.Linear(width, n_classes))
    head = spec(in_features, n_classes)
    if not isinstance(head, nn.Module):
        raise TypeError(
            f"The head factory {spec!r} must return a torch.nn.Module; got "
            f"{type(head).__name__}."
        )
    head.eval()
    with torch.no_grad():
        out = head(torch.zeros(2, in_features))
    head.train()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, n_classes):
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ValueError(
            f"The head built by {spec!r} must map (batch, {in_features}) features to "
            f"(batch, {n_classes}) logits; for a batch of 2 it returned {shape}."
        )
    return head


def head_dropout(config, requested):
    """The head's dropout: ``requested``, else the backbone's classifier dropout."""
    if requested is not None:
        return requested
    dropout = getattr(config, "classifier_dropout", None)
    return getattr(config, "hidden_dropout_prob", 0.1) if dropout is None else dropout


def check_head(head):
    """Refuse a tuple head with sizes that are not positive ints."""
    if isinstance(head, tuple):
        bad = [h for h in head if isinstance(h, bool) or not isinstance(h, Integral) or h < 1]
        if bad:
            raise ValueError(f"head hidden sizes must be positive ints; got {head!r}.")


def check_batch_norm(module, smallest_batch, world, n_train, batch_size):
    """Refuse batches of one text for a head with BatchNorm (which needs two), in every
    process's share of a batch in a data-parallel run of ``world`` processes, where the
    smallest batch of a pass over ``n_train`` rows holds ``smallest_batch``."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.head.modules()):
        return
    # A batch of b texts splits into shares of b // world or one more (array_split):
    # all of them hold 2 or more, or none, only from 2 * world texts on.
    if smallest_batch >= 2 * world:
        return
    what = (f"a chunk of {n_train} text" if n_train == 1
            else f"{n_train} training texts with batch_size={batch_size}")
    split = f", split over {world} processes," if world > 1 else ""
    raise ValueError(
        f"head={module.head_spec!r} has BatchNorm layers, which need at least 2 texts "
        f"per batch, but {what}{split} leave a batch of 1 text. Use batch_size >= "
        f"{2 * world + 1} and chunks of at least {2 * world} texts, or a head without "
        "BatchNorm."
    )


def build_module(backbone, n_classes, *, pooling="mean", head=None, dropout=None, frozen=False):
    """Put a freshly initialised head on ``backbone``.

    The module remembers the specs its head was built from (``head_spec``,
    ``head_dropout_spec``), which saving needs to rebuild it.
    """
    config = backbone.config
    module_head = build_head(head, config.hidden_size, n_classes, head_dropout(config, dropout))
    module = TextClassifierModule(backbone, module_head, pooling=pooling, frozen=frozen)
    module.head_spec, module.head_dropout_spec = head, dropout
    return module


_LAYER = re.compile(r"\.layer\.(\d+)\.")


def parameter_groups(module, learning_rate, head_learning_rate, weight_decay, layer_decay):
    """AdamW groups: no decay on biases and norms; per-layer rates under ``layer_decay``.

    The head gets ``head_learning_rate``; the top encoder layer gets ``learning_rate``
    and each layer below it ``layer_decay`` times the rate of the one above, down to the
    embeddings. Frozen parameters are left out. The groups (one per part of the network
    and decay, in a fixed order) depend on the network only, never on the rates, so an
    optimizer state saved under some rates loads into groups built under others.
    """
    n_layers = getattr(module.backbone.config, "num_hidden_layers", 0)
    groups = {}
    for name, param in module.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("head."):
            part, rate = "head", head_learning_rate
        elif ".embeddings." in f".{name}":
            part, rate = "embeddings", learning_rate * layer_decay ** n_layers
        else:
            match = _LAYER.search(name)
            depth = n_layers - 1 - int(match.group(1)) if match else 0
            part, rate = f"depth {depth}", learning_rate * layer_decay ** depth
        decay = weight_decay if param.ndim >= 2 else 0.0
        group = groups.setdefault((part, param.ndim >= 2),
                                  {"params": [], "lr": rate, "weight_decay": decay})
        group["params"].append(param)
    return list(groups.values())


def decay_groups(model, learning_rate, weight_decay):
    """AdamW groups of ``model``'s trainable parameters: no decay on biases and norms."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim >= 2], "lr": learning_rate,
         "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim < 2], "lr": learning_rate, "weight_decay": 0.0},
    ]


_SEED_LOCK = threading.Lock()


@contextlib.contextmanager
def seeded(seed):
    """Run the block with torch's global generator seeded, then restore it.

    For code that draws from the global generator only (``nn.Linear`` initialisation):
    a lock keeps two threads from seeding it under each other.
    """
    with _SEED_LOCK, torch.random.fork_rng(devices=[]):  # the CPU generator only
        # Not torch.manual_seed: it also seeds every GPU's generator, which fork_rng
        # does not put back (a fit reseeded the caller's CUDA generator).
        torch.random.default_generator.manual_seed(seed)
        yield


def module_to_state(module, n_classes):
    """Return plain values from which ``module_from_state`` rebuilds ``module``."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    return {
        "config": module.backbone.config.to_dict(),
        "n_classes": n_classes,
        "pooling": module.pooling,
        "frozen": module.frozen,
        "head": module.head_spec,
        "dropout": module.head_dropout_spec,
        "weights": save(tensors),
    }


def module_from_state(state):
    """Rebuild a module saved by ``module_to_state`` on the CPU, in eval mode.

    Never runs code from the state: a config naming custom classes (``auto_map``) is
    refused and transformers builds the encoder with ``trust_remote_code=False``. The
    ``head`` and ``frozen`` entries, absent from files of skbert before format 1, take
    their defaults (the linear head; not frozen).
    """
    from safetensors.torch import load
    from transformers import AutoConfig, AutoModel

    from ._pretrained import CustomCodeError

    config_dict = dict(state["config"])
    if config_dict.get("auto_map"):
        raise CustomCodeError(
            f"The saved network's config names custom classes to import from code "
            f"(auto_map: {config_dict['auto_map']!r}); skbert never runs code from "
            "saved files."
        )
    config = AutoConfig.for_model(config_dict.pop("model_type"), **config_dict)
    module = build_module(
        AutoModel.from_config(config, trust_remote_code=False), state["n_classes"],
        pooling=state["pooling"], head=state.get("head"), dropout=state["dropout"],
        frozen=state.get("frozen", False),
    )
    module.load_state_dict(load(state["weights"]), strict=True)
    return module.eval()


def quantized_engine():
    """The CPU engine for dynamic int8 quantization, or None where torch has none."""
    engines = torch.backends.quantized.supported_engines
    return next((e for e in ("x86", "fbgemm", "onednn", "qnnpack") if e in engines), None)


def quantize_int8(module):
    """A copy of ``module`` for CPU prediction whose backbone Linear layers run in int8.

    Dynamic quantization: weights are stored as int8 per output channel (per tensor on
    the qnnpack engine); activations are quantized per batch at run time. The head keeps
    full precision. ``module`` is not modified.
    """
    import copy
    import warnings

    engine = quantized_engine()
    if engine is None:
        raise RuntimeError(
            "inference_dtype='int8' needs a quantized CPU engine (x86, fbgemm, onednn or "
            "qnnpack), which this torch build lacks; use inference_dtype='auto'."
        )
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    quantized = copy.deepcopy(module).cpu().eval()
    qconfig = per_channel_dynamic_qconfig if engine != "qnnpack" else default_dynamic_qconfig
    previous = torch.backends.quantized.engine
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, but its eager dynamic
        # int8 Linear is still the fastest CPU path available without compilation.
        warnings.simplefilter("ignore")
        torch.backends.quantized.engine = engine
        try:
            quantized.backbone = quantize_dynamic(
                quantized.backbone, {nn.Linear: qconfig}, dtype=torch.qint8
            )
        finally:
            torch.backends.quantized.engine = previous
    return quantized
