"""Device, optimizer and schedule, one training pass, and batched prediction.

No classes and no callbacks: the estimator calls these functions in order. This module
uses ``_batching`` and nothing else from skbert.
"""

import functools
import math
import re

import numpy as np
import torch
from tqdm.auto import tqdm

from ._batching import pad_batch

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def resolve_device(device):
    """Turn the ``device`` parameter into a ``torch.device``.

    "auto" picks CUDA, then MPS, then the CPU.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str) or not _DEVICE_PATTERN.match(device):
        raise ValueError(
            "device must be 'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'; "
            f"got {device!r}."
        )
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available here; "
            "use device='auto' or 'cpu'."
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available here.")
    return torch.device(device)


def autocast_dtype(device):
    """Mixed-precision dtype for training on ``device``: bf16 or fp16 on CUDA, else None."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16():
    """True when the CPU computes bf16 dot products natively (AVX512-BF16 or AMX)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


_INFERENCE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def inference_dtype(requested, device):
    """Autocast dtype for prediction on ``device``, or None for full precision.

    "auto" takes bf16 on GPUs and CPUs that compute it natively, fp16 on older
    GPUs, and fp32 elsewhere; "float32", "bfloat16" and "float16" are used as given.
    """
    if requested != "auto":
        dtype = _INFERENCE_DTYPES[requested]
        if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                "inference_dtype='bfloat16' was requested but this GPU has no bf16 support; "
                "use 'auto' or 'float16'."
            )
        return dtype
    if device.type == "cuda":
        return autocast_dtype(device)
    if device.type == "cpu" and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def make_optimizer(module, learning_rate, weight_decay):
    """AdamW without weight decay on biases and normalisation weights."""
    decay, no_decay = [], []
    for param in module.parameters():
        if param.requires_grad:
            (decay if param.ndim >= 2 else no_decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=learning_rate)


def linear_schedule(optimizer, warmup_steps, total_steps):
    """Linear warmup from 0, then linear decay to 0 at ``total_steps``."""

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def _to_device(encoding, rows, pad_id, device):
    ids, type_ids, offsets = encoding
    input_ids, mask, token_type_ids = pad_batch(ids, offsets, rows, pad_id, type_ids)
    tensors = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
    }
    if token_type_ids is not None:
        tensors["token_type_ids"] = torch.from_numpy(token_type_ids)
    if device.type != "cuda":
        return tensors
    # Page-locked host memory lets the copy run asynchronously with the GPU's work.
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in tensors.items()}


def train_epoch(
    module, encoding, batches, targets, weights, optimizer, scheduler, *,
    pad_id, device, max_grad_norm=None, scaler=None, progress=False, description=None,
):
    """Run one pass over ``batches`` and return the mean training loss.

    Parameters
    ----------
    module : TextClassifierModule
        The network, on ``device``.
    encoding : tuple of (ids, type_ids, offsets)
        Flat token ids of all training texts.
    batches : list of ndarray
        Row indices of each batch.
    targets : ndarray of int64 of shape (n,)
        Class index of each text.
    weights : ndarray of float of shape (n,) or None
        Per-text loss weight (sample and class weights multiplied).
    optimizer, scheduler : torch optimizer and LR scheduler
        Stepped once per batch.
    pad_id : int
        Padding token id.
    device : torch.device
        Where the module lives.
    max_grad_norm : float or None
        Gradient clipping threshold.
    scaler : torch.amp.GradScaler or None
        Loss scaler for fp16 training.
    progress : bool
        Show a tqdm progress bar.
    description : str or None
        Progress bar label.

    Returns
    -------
    loss : float
        Mean per-text loss over the pass.
    """
    module.train()
    amp = autocast_dtype(device)
    total_loss, total_count = 0.0, 0
    for rows in tqdm(batches, desc=description, disable=not progress, leave=False):
        inputs = _to_device(encoding, rows, pad_id, device)
        y = torch.from_numpy(targets[rows]).to(device)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            logits = module(**inputs)
        losses = torch.nn.functional.cross_entropy(logits.float(), y, reduction="none")
        if weights is not None:
            losses = losses * torch.from_numpy(weights[rows]).to(device, losses.dtype)
        loss = losses.mean()
        value = loss.item()
        if not math.isfinite(value):
            raise FloatingPointError(
                f"The training loss became {value} at a batch of {len(rows)} texts; the "
                "weights were not updated with it. Lower learning_rate or set max_grad_norm."
            )
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
        else:
            loss.backward()
        if max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(module.parameters(), max_grad_norm)
        if scaler is not None:
            scaler.step(optimizer)
            scaler.update()
        else:
            optimizer.step()
        scheduler.step()
        total_loss += value * len(rows)
        total_count += len(rows)
    return total_loss / max(total_count, 1)


@torch.inference_mode()
def predict_logits(
    module, encoding, rows, batches, *, pad_id, device, dtype=None, progress=False
):
    """Logits of the texts ``rows``, in that order, as float32.

    Parameters
    ----------
    module : TextClassifierModule
        The network, on ``device``.
    encoding : tuple of (ids, type_ids, offsets)
        Flat token ids of all texts.
    rows : ndarray of int of shape (n,)
        Which texts of ``encoding`` to score.
    batches : list of ndarray
        Positions in ``rows`` of each batch; together every position exactly once.
    pad_id : int
        Padding token id.
    device : torch.device
        Where the module lives.
    dtype : torch.dtype or None
        Autocast dtype (bf16 or fp16), or None for full precision.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    logits : ndarray of float32 of shape (n, n_classes)
        Row ``i`` belongs to text ``rows[i]``.
    """
    module.eval()
    results = []  # stay on the device: one host copy at the end, no sync per batch
    for positions in tqdm(batches, desc="predict", disable=not progress, leave=False):
        inputs = _to_device(encoding, rows[positions], pad_id, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            results.append(module(**inputs).float())
    logits = torch.cat(results).cpu().numpy()
    out = np.empty_like(logits)
    out[np.concatenate(batches)] = logits
    return out
