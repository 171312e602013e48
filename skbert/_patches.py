"""What the training loop changes in a network for the length of a run, and puts back.

Dropout that draws from the fit's own generator (:func:`seeded_dropout`), a word
embedding whose gradient lives in one buffer for the whole run
(:func:`kept_embedding_gradient`), and attention masks built without waiting for a GPU
(:func:`masks_without_sync`, also used by prediction). The network itself
(``_modeling``) knows nothing of them. This module imports nothing from skbert.

Attention is changed through transformers' public attention interface: skbert's
functions are registered with ``AttentionInterface.register`` and
``AttentionMaskInterface.register``, and a model is switched to them and back with
``PreTrainedModel.set_attn_implementation``. The one private attribute still read, the
attention implementation a config selects (``_attn_implementation``: transformers has
no public getter), is read by :func:`_attention_of` only. :data:`TESTED_TRANSFORMERS` names
the releases this was checked on; others get a logged warning at first use, and a transformers
without the attribute an error rather than silently unseeded dropout.
"""

import contextlib
import logging
import threading
import weakref

import torch
from torch import nn

TESTED_TRANSFORMERS = ("5.5", "5.25")
"""The oldest and newest transformers releases (major.minor, both included) on which the
attention switch of this module was checked (5.5.4 and 5.25.0; 5.0.0 too, but the package
needs 5.5 for security fixes): bit-identical fits, skbert's attention function called in
every layer, the masks built without reading the device."""


def _minor(version):
    """(major, minor) of a version text: (5, 26) for "5.26.0.dev0"."""
    major, minor = (version.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def _tested(version):
    """Whether transformers ``version`` is a release of :data:`TESTED_TRANSFORMERS`."""
    low, high = (_minor(v) for v in TESTED_TRANSFORMERS)
    return low <= _minor(version) <= high


_TESTED_TEXT = " to ".join(TESTED_TRANSFORMERS)
_NEWEST = _minor(TESTED_TRANSFORMERS[1])
_TESTED_PIP = (f"pip install 'transformers>={TESTED_TRANSFORMERS[0]},"
               f"<{_NEWEST[0]}.{_NEWEST[1] + 1}'")

_SEEDED_ATTENTION = "skbert_seeded"
_KEPT_MASK_ATTENTION = "skbert_sdpa"
_SWAPPED = {_SEEDED_ATTENTION: ("sdpa", "eager"), _KEPT_MASK_ATTENTION: ("sdpa",)}


_LANES = 65536  # a mask element is one 16-bit lane of a 64-bit draw


def _dropout(x, p, generator):
    """Inverted dropout whose mask is drawn from ``generator``.

    On a CPU, each element is kept when a 16-bit lane of a random 64-bit integer is at
    least a threshold: the drop probability is ``p`` rounded to a multiple of 1/65,536
    (0.1 is 0.100006), and kept values are scaled by the inverse of the kept share, so
    the expectation is exact. One draw masks four elements: the mask costs a third of
    torch's ``bernoulli_`` (one float drawn per element), which took ~10% of a CPU
    training step. On GPUs, whose generators draw in parallel, ``bernoulli_``.
    """
    if p >= 1:
        return x * 0.0
    if x.device.type != "cpu":
        noise = torch.empty_like(x).bernoulli_(1 - p, generator=generator)
        return x * noise.div_(1 - p)
    dropped = round(p * _LANES)
    n = x.numel()
    draws = torch.empty(-(-n // 4), dtype=torch.int64, device=x.device)
    draws.random_(-(2**63), None, generator=generator)  # all 64 bits uniform
    keep = draws.view(torch.int16)[:n].view(x.shape) >= dropped - _LANES // 2
    return x * keep.to(x.dtype).mul_(_LANES / (_LANES - dropped))


_REGISTER_LOCK = threading.Lock()
_REGISTERED = []  # [sdpa attention, sdpa mask] of transformers once registered


def _transformers_checked():
    """transformers' SDPA attention and mask functions, once skbert's attention functions
    are registered; logs a warning once when transformers is not a release of
    :data:`TESTED_TRANSFORMERS`."""
    if _REGISTERED:
        return _REGISTERED
    import transformers
    from transformers import AttentionInterface, AttentionMaskInterface

    with _REGISTER_LOCK:
        if _REGISTERED:
            return _REGISTERED
        if not _tested(transformers.__version__):
            # A log record, not a warning: a newer transformers on the index must not
            # turn every fit under warnings.simplefilter("error") into a failure. A
            # missing attribute still fails loudly (_attention_of).
            logging.getLogger("skbert").warning(
                "skbert's seeded attention dropout and sync-free attention masks were "
                "tested with transformers %s; this is transformers %s. If fits fail or are "
                "no longer reproducible, install a tested release: %s.",
                _TESTED_TEXT, transformers.__version__, _TESTED_PIP)
        sdpa, sdpa_mask = AttentionInterface()["sdpa"], AttentionMaskInterface()["sdpa"]
        AttentionInterface.register(_SEEDED_ATTENTION, _seeded_attention)
        AttentionMaskInterface.register(_SEEDED_ATTENTION, _sdpa_mask)  # the masks SDPA gets
        AttentionInterface.register(_KEPT_MASK_ATTENTION, sdpa)
        AttentionMaskInterface.register(_KEPT_MASK_ATTENTION, _sdpa_mask)
        _REGISTERED.extend([sdpa, sdpa_mask])
    return _REGISTERED


def _attention_of(config):
    """The attention implementation ``config`` selects ("sdpa", "eager", ...).

    transformers has no public getter: this reads its private ``_attn_implementation``,
    the only read of it in skbert. Raises RuntimeError, naming the tested releases, where
    the attribute is gone (the switch would otherwise silently not happen).
    """
    try:
        return config._attn_implementation
    except AttributeError:
        import transformers

        raise RuntimeError(
            f"transformers {transformers.__version__}: {type(config).__name__} has no "
            f"_attn_implementation, which skbert reads to seed attention dropout and to "
            f"build attention masks without a GPU sync. skbert was tested with "
            f"transformers {_TESTED_TEXT}: install one of those releases ({_TESTED_PIP})."
        ) from None


def _switched(module, name):
    """Switch each transformers model in ``module`` whose attention ``name`` replaces
    (see ``_SWAPPED``) to the attention registered as ``name``, with transformers' public
    ``set_attn_implementation``; return ``[(model, attention it had)]``.

    Models nested in a switched model follow it, as ``set_attn_implementation`` does.
    A model that transformers cannot switch (it logs why) is left as it is.
    """
    from transformers import PreTrainedModel

    switched, seen = [], set()
    for m in module.modules():
        if not isinstance(m, PreTrainedModel) or id(m.config) in seen:
            continue
        seen.add(id(m.config))
        previous = _attention_of(m.config)
        if previous in _SWAPPED[name]:
            m.set_attn_implementation(name)
            if _attention_of(m.config) == name:
                switched.append((m, previous))
                seen.update(id(sub.config) for sub in m.modules()
                            if isinstance(sub, PreTrainedModel))
    return switched


def _switched_back(switched):
    """Put back the attention each model of :func:`_switched` had."""
    for m, previous in reversed(switched):
        m.set_attn_implementation(previous)


_GENERATORS = weakref.WeakKeyDictionary()  # module under seeded_dropout -> its generator


def _seeded_attention(module, query, key, value, attention_mask, dropout=0.0,
                      scaling=None, **kwargs):
    """Attention whose dropout draws from the generator of the fit (see
    ``seeded_dropout``); without dropout, transformers' own SDPA attention."""
    generator = _GENERATORS.get(module)
    if not dropout or generator is None:
        return _REGISTERED[0](module, query, key, value, attention_mask,
                              dropout=0.0, scaling=scaling, **kwargs)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        if attention_mask.dtype == torch.bool:  # no full-size additive mask
            weights = weights.masked_fill(~attention_mask, torch.finfo(weights.dtype).min)
        else:
            weights = weights + attention_mask
    weights = _dropout(torch.softmax(weights, dim=-1), dropout, generator)
    return torch.matmul(weights, value).transpose(1, 2).contiguous(), None


def _sdpa_mask(*args, **kwargs):
    """transformers' SDPA attention mask, always built for a batch on a GPU.

    Deciding whether a batch can go without one (no padding: SDPA's flash kernel) reads
    its padding mask back from the device, which makes the host wait for the GPU once
    per forward pass. On a CPU, transformers decides as usual.
    """
    mask = kwargs.get("attention_mask")
    if isinstance(mask, torch.Tensor) and mask.device.type != "cpu":
        for skip in ("allow_is_bidirectional_skip", "allow_is_causal_skip"):
            if skip in kwargs:  # as transformers passes them (5.x versions differ)
                kwargs[skip] = False
    return _transformers_checked()[1](*args, **kwargs)


_MASK_LOCK = threading.Lock()
_MASKED_CONFIGS = {}  # id(config) -> [its model, the blocks inside]


@contextlib.contextmanager
def masks_without_sync(module):
    """Run SDPA attention of ``module`` with masks built by :func:`_sdpa_mask` (no host
    sync on a GPU) during the block; threads may enter it together.

    The first block to enter switches the models to the attention registered for it, the
    last to leave switches them back.
    """
    _transformers_checked()
    entered = []
    with _MASK_LOCK:
        held_here = {id(m.config): m for m, _ in _switched(module, _KEPT_MASK_ATTENTION)}
        for key, model in held_here.items():
            _MASKED_CONFIGS[key] = [model, 0]
        for key in _configs(module):
            if key in _MASKED_CONFIGS:
                _MASKED_CONFIGS[key][1] += 1
                entered.append(key)
    try:
        yield
    finally:
        with _MASK_LOCK:
            for key in entered:
                held = _MASKED_CONFIGS[key]
                held[1] -= 1
                if held[1] == 0:
                    del _MASKED_CONFIGS[key]
                    _switched_back([(held[0], "sdpa")])


def _configs(module):
    """The ids of the configs of the transformers models in ``module``, once each."""
    from transformers import PreTrainedModel

    return list(dict.fromkeys(id(m.config) for m in module.modules()
                              if isinstance(m, PreTrainedModel)))


@contextlib.contextmanager
def seeded_dropout(module, generator):
    """Make every dropout of ``module`` draw from ``generator`` during the block.

    Dropout otherwise draws from torch's global generator, which threads share: two fits
    with the same ``random_state`` in parallel threads would differ. ``nn.Dropout``
    layers get a forward of their own, and transformers' attention (whose dropout is
    inside SDPA) an attention function, registered with transformers'
    ``AttentionInterface``, that draws from ``generator``. All is put back after the
    block. A model whose attention transformers cannot switch (it logs why) keeps
    SDPA's own attention dropout, drawn from torch's global generator.
    """
    _transformers_checked()
    switched = _switched(module, _SEEDED_ATTENTION)
    seeded = [m for model, _ in switched for m in model.modules()]
    patched = []
    try:
        for m in seeded:
            _GENERATORS[m] = generator
        for m in module.modules():
            if isinstance(m, nn.Dropout) and m.p > 0:
                m.forward = lambda x, m=m: _dropout(x, m.p, generator) if m.training else x
                patched.append(m)
        yield
    finally:
        _switched_back(switched)
        for m in seeded:
            _GENERATORS.pop(m, None)
        for m in patched:
            m.__dict__.pop("forward", None)


class _KeptGradientEmbedding(torch.autograd.Function):
    """An embedding lookup whose backward adds into ``holder``'s gradient buffer.

    The buffer becomes the weight's ``.grad`` directly: autograd's own accumulation is
    bypassed (backward returns no gradient for the weight), so that no tensor of the
    vocabulary's size is allocated per step.
    """

    @staticmethod
    def forward(ctx, ids, weight, holder):
        ctx.save_for_backward(ids)
        ctx.holder = holder
        return nn.functional.embedding(ids, weight, holder.padding_idx)

    @staticmethod
    def backward(ctx, grad_output):
        (ids,) = ctx.saved_tensors
        ctx.holder.add(ids, grad_output)
        return None, None, None


class _GradientHolder:
    """The gradient buffer of one embedding weight, and the rows of it that may not be 0."""

    def __init__(self, weight, padding_idx):
        self.weight, self.padding_idx = weight, padding_idx
        self.buffer = torch.zeros_like(weight, memory_format=torch.contiguous_format)
        self.rows = torch.empty(0, dtype=torch.int64)

    def add(self, ids, grad_output):
        """Add a batch's gradient: into ``weight.grad`` while a step accumulates, into
        the cleared buffer when a step starts (``weight.grad`` is not the buffer)."""
        if self.weight.grad is not self.buffer:  # a new step: clear what the last one left
            self.buffer.index_fill_(0, self.rows, 0)
            self.rows = self.rows[:0]
        ids = ids.reshape(-1)
        self.buffer.index_add_(0, ids, grad_output.reshape(ids.numel(), -1).to(self.buffer.dtype))
        if self.padding_idx is not None:  # the padding row gets no gradient
            self.buffer[self.padding_idx] = 0
        self.rows = torch.cat([self.rows, ids]).unique()
        self.weight.grad = self.buffer


@contextlib.contextmanager
def kept_embedding_gradient(module, enabled=True):
    """Keep the input word embedding's gradient in one buffer during the block.

    Autograd's gradient of an embedding is a new tensor the size of the vocabulary
    each step (30,522 x 384 floats, 47 MB, for BERT's): on a CPU, the page faults of
    that fresh memory took ~12% of a training step of short texts. Here the gradient is
    added into one buffer kept for the run, and only the rows the previous step touched
    are cleared. The values are those of autograd (same sums, the padding row at 0).

    Left as it is (the block runs unchanged) when ``enabled`` is False, off the CPU
    (GPU allocators reuse memory, and finding the rows would wait for the device), when
    the embedding is not a plain ``nn.Embedding`` that trains (frozen, ``max_norm``,
    ``scale_grad_by_freq``, sparse), or when its weight is shared with another
    parameter (a tied language-model decoder), whose gradient autograd must add.
    """
    get = getattr(module, "get_input_embeddings", None)
    embedding = get() if get is not None else None
    if (not enabled or type(embedding) is not nn.Embedding
            or embedding.weight.device.type != "cpu" or not embedding.weight.requires_grad
            or embedding.max_norm is not None or embedding.scale_grad_by_freq
            or embedding.sparse
            or sum(p is embedding.weight
                   for _, p in module.named_parameters(remove_duplicate=False)) != 1):
        yield
        return
    holder = _GradientHolder(embedding.weight, embedding.padding_idx)

    def forward(ids):
        if not (embedding.training and torch.is_grad_enabled()):
            return nn.functional.embedding(ids, embedding.weight, embedding.padding_idx)
        return _KeptGradientEmbedding.apply(ids, embedding.weight, holder)

    embedding.forward = forward
    try:
        yield
    finally:
        embedding.__dict__.pop("forward", None)
