"""Device, optimizer and schedule, one training pass, and batched prediction.

No classes and no callbacks: the estimator calls these functions in order. This module
uses ``_batching`` and nothing else from skbert.
"""

import contextlib
import functools
import math
import re
import signal
import threading
import time
import warnings

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


def _cuda_amp_dtype():
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def training_dtype(requested, device):
    """Autocast dtype for training on ``device``, or None for full precision.

    "auto" takes bf16 on GPUs that support it, fp16 on older GPUs (with a gradient
    scaler), and fp32 on CPUs and MPS; "bfloat16" also runs on CPUs; "float16" needs
    CUDA.
    """
    if requested == "auto":
        return _cuda_amp_dtype() if device.type == "cuda" else None
    dtype = _INFERENCE_DTYPES[requested]
    if dtype is torch.float16 and device.type != "cuda":
        raise ValueError(
            f"training_dtype='float16' needs a CUDA device; got {device}. Use 'bfloat16' "
            "or 'float32'."
        )
    _check_cuda_bf16(dtype, device, "training_dtype")
    return dtype


def _check_cuda_bf16(dtype, device, name):
    if dtype is torch.bfloat16 and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError(
            f"{name}='bfloat16' was requested but this GPU has no bf16 support; use 'auto' "
            "or 'float16'."
        )


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


def _best_linear_seconds(dtypes, repeats=5):
    """Best time of one BERT-sized Linear layer (1,024 tokens, 384 -> 1,536) in each of
    ``dtypes``, timed in turn so that a change of load on the machine hits them all."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 384, generator=generator)
    w = torch.randn(1536, 384, generator=generator)
    operands = [(x.to(dtype), w.to(dtype)) for dtype in dtypes]
    best = [float("inf")] * len(operands)
    with torch.inference_mode():
        for x_d, w_d in operands:
            torch.nn.functional.linear(x_d, w_d)  # warm-up: the first call picks the kernel
        for _ in range(repeats):
            for i, (x_d, w_d) in enumerate(operands):
                start = time.perf_counter()
                torch.nn.functional.linear(x_d, w_d)
                best[i] = min(best[i], time.perf_counter() - start)
    return best


@functools.cache
def cpu_bf16_pays():
    """True when this CPU runs bf16 matrix products clearly faster than fp32.

    The CPU flags say whether bf16 dot products exist (AVX512-BF16, AMX), not whether
    they pay: on a 2-core Xeon with AVX512-BF16 but no AMX, a bf16 product ran at 160
    GFLOP/s against 290 in fp32, and bf16 autocast predicted at half the fp32 speed.
    Where the flags are there, one Linear layer is timed in each dtype, alternately
    (about 0.1 s, once per process); bf16 must be at least 1.25 times faster, to pay
    for its casts. Pass an explicit ``inference_dtype`` for a choice that cannot vary.
    """
    if not cpu_has_native_bf16():
        return False  # emulated bf16 is many times slower: no need to time it
    fp32, bf16 = _best_linear_seconds((torch.float32, torch.bfloat16))
    return fp32 >= 1.25 * bf16


_INFERENCE_DTYPES = {"float32": None, "bfloat16": torch.bfloat16, "float16": torch.float16}


def inference_dtype(requested, device):
    """Autocast dtype for prediction on ``device``, or None for full precision.

    "auto" takes bf16 on GPUs and on CPUs where it is measured to pay
    (:func:`cpu_bf16_pays`), fp16 on older GPUs, and fp32 elsewhere; "float32",
    "bfloat16" and "float16" are used as given.
    """
    if requested == "int8":  # int8 Linear layers; the rest in full precision
        return None
    if requested != "auto":
        dtype = _INFERENCE_DTYPES[requested]
        _check_cuda_bf16(dtype, device, "inference_dtype")
        return dtype
    if device.type == "cuda":
        return _cuda_amp_dtype()
    if device.type == "cpu" and cpu_bf16_pays():
        return torch.bfloat16
    return None


def adamw(groups, device):
    """AdamW over parameter ``groups``, fused into one kernel where torch has one.

    The default for-loop AdamW of torch walks the parameters one tensor at a time; on
    a CPU its step took about as long as the forward pass of a batch. The fused kernel
    (CPU and CUDA, torch >= 2.4) does the same update in one pass over memory.
    """
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True)
        except (RuntimeError, ValueError, TypeError):  # an older torch or odd dtypes
            pass
    return torch.optim.AdamW(groups)


def linear_schedule(optimizer, warmup_steps, total_steps):
    """Linear warmup from 0, then linear decay to 0 at ``total_steps``."""

    def factor(step):
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def stream_schedule(optimizer, warmup_steps, max_steps=None):
    """Schedule of a ``partial_fit`` stream, whose length may be unknown.

    Linear warmup over ``warmup_steps``; then linear decay to 0 at ``max_steps`` when
    it is given, else inverse square root decay, ``sqrt(warmup_steps / step)``, which
    keeps falling however long the stream runs.
    """
    if max_steps is not None:
        return linear_schedule(optimizer, warmup_steps, max_steps)
    warmup = max(1, warmup_steps)

    def factor(step):
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return math.sqrt(warmup / (step + 1))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def pad_multiple(device):
    """What padded lengths are rounded up to on ``device``.

    8 on CUDA, whose tensor cores want it; 1 elsewhere: on the CPU every padded token is
    wasted work (on SST-2 dev, rounding up to 8 cost 10% to 20% of prediction
    throughput on the development machine; see benchmarks/bench_padding.py).
    """
    return 8 if device.type == "cuda" else 1


def batch_to_device(encoding, rows, pad_id, device):
    """Pad the texts ``rows`` of ``encoding`` and move the tensors to ``device``."""
    ids, type_ids, offsets = encoding
    input_ids, mask, token_type_ids = pad_batch(
        ids, offsets, rows, pad_id, type_ids, multiple_of=pad_multiple(device)
    )
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


def checked_loss(loss, n_texts):
    """The loss (a tensor or float) as a float; a non-finite one stops training."""
    value = loss.item() if isinstance(loss, torch.Tensor) else float(loss)
    if not math.isfinite(value):
        raise FloatingPointError(
            f"The training loss became {value} at a batch of {n_texts} texts; the "
            "weights were not updated with it. Lower learning_rate or set max_grad_norm."
        )
    return value


def backward(loss, optimizer, scaler=None):
    """Clear the gradients and backpropagate ``loss`` (scaled under fp16); None: no-op."""
    optimizer.zero_grad(set_to_none=True)
    if loss is not None:
        (loss if scaler is None else scaler.scale(loss)).backward()


def apply_gradients(parameters, optimizer, scheduler, max_grad_norm=None, scaler=None):
    """Unscale and clip the gradients, and step the optimizer and schedule."""
    if scaler is not None:
        scaler.unscale_(optimizer)
    if max_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()


def optimizer_step(loss, parameters, optimizer, scheduler, max_grad_norm=None, scaler=None):
    """Backpropagate ``loss``, clip gradients, and step the optimizer and schedule."""
    backward(loss, optimizer, scaler)
    apply_gradients(parameters, optimizer, scheduler, max_grad_norm, scaler)


def train_epoch(
    forward, parameters, batches, targets, weights, optimizer, scheduler, *,
    device, dtype=None, max_grad_norm=None, scaler=None, progress=False, description=None,
    interrupt=None, sync=None,
):
    """Run one pass over ``batches`` and return the mean training loss.

    Parameters
    ----------
    forward : callable
        ``forward(rows)`` returns the logits of the texts ``rows`` (the caller puts
        its modules in training mode).
    parameters : list of torch.nn.Parameter
        What gradient clipping applies to.
    batches : list of ndarray
        Row indices of each batch.
    targets : ndarray of int64 of shape (n,)
        Class index of each text.
    weights : ndarray of float of shape (n,) or None
        Per-text loss weight (sample and class weights multiplied).
    optimizer, scheduler : torch optimizer and LR scheduler
        Stepped once per batch.
    device : torch.device
        Where the logits are computed.
    dtype : torch.dtype or None
        Autocast dtype of the forward pass (see ``training_dtype``), or None.
    max_grad_norm : float or None
        Gradient clipping threshold.
    scaler : torch.amp.GradScaler or None
        Loss scaler for fp16 training.
    progress : bool
        Show a tqdm progress bar.
    description : str or None
        Progress bar label.
    interrupt : dict or None
        The flag of ``deferred_interrupt``: when set, raise ``Interrupted`` after
        the step in progress.
    sync : _distributed.DataParallel or None
        In a data-parallel run, this process computes only its share of each batch
        and the gradients are summed over processes before every step.

    Returns
    -------
    loss : float
        Mean per-text loss over the pass.
    """
    total_loss, total_count = 0.0, 0
    for rows in tqdm(batches, desc=description, disable=not progress, leave=False):
        local = rows if sync is None else sync.shard(rows)
        loss = None
        if len(local):
            with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
                logits = forward(local)
            y = torch.from_numpy(targets[local]).to(device)
            losses = torch.nn.functional.cross_entropy(logits.float(), y, reduction="none")
            if weights is not None:
                losses = losses * torch.from_numpy(weights[local]).to(device, losses.dtype)
            # The mean over the whole batch: the shares of a data-parallel run add up to it.
            loss = losses.sum() / len(rows)
        if sync is None:
            value = checked_loss(loss, len(rows))
            backward(loss, optimizer, scaler)
        else:
            # Processes agree on stopping through the gradients' all-reduce, so a Ctrl-C
            # after it is seen one step later.
            backward(loss, optimizer, scaler)
            value, stop = sync.all_reduce(
                parameters, 0.0 if loss is None else loss.item(), interrupted(interrupt)
            )
            value = checked_loss(value, len(rows))
        apply_gradients(parameters, optimizer, scheduler, max_grad_norm, scaler)
        total_loss += value * len(rows)
        total_count += len(rows)
        if sync is None:
            stop = interrupted(interrupt)  # pressed during this step, which is complete
        if stop:
            raise Interrupted(total_loss / total_count)
    return total_loss / max(total_count, 1)


@torch.inference_mode()
def predict_batches(
    forward, encoding, rows, batches, *, pad_id, device, dtype=None, progress=False
):
    """Outputs of ``forward`` for the texts ``rows``, in that order, as float32.

    Parameters
    ----------
    forward : callable
        Maps a batch of padded tensors (keyword arguments) to one output row per
        text: the module itself for logits, its ``features`` for pooled vectors.
    encoding : tuple of (ids, type_ids, offsets)
        Flat token ids of all texts.
    rows : ndarray of int of shape (n,)
        Which texts of ``encoding`` to run.
    batches : list of ndarray
        Positions in ``rows`` of each batch; together every position exactly once.
    pad_id : int
        Padding token id.
    device : torch.device
        Where the module lives (in eval mode).
    dtype : torch.dtype or None
        Autocast dtype (bf16 or fp16), or None for full precision.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    out : ndarray of float32 of shape (n, width)
        Row ``i`` belongs to text ``rows[i]``.
    """
    results = []  # stay on the device: one host copy at the end, no sync per batch
    for positions in tqdm(batches, desc="predict", disable=not progress, leave=False):
        inputs = batch_to_device(encoding, rows[positions], pad_id, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            results.append(forward(**inputs).float())
    values = torch.cat(results).cpu().numpy()
    out = np.empty_like(values)
    out[np.concatenate(batches)] = values
    return out


def interrupted(flag):
    """Whether the ``deferred_interrupt`` flag (or None) was set by Ctrl-C."""
    return flag is not None and flag["requested"]


class Interrupted(Exception):
    """Raised inside the training loop, between steps, after Ctrl-C."""


@contextlib.contextmanager
def deferred_interrupt():
    """Turn Ctrl-C (SIGINT) into a flag read between optimizer steps.

    A step is never cut in half: the loop stops after the step in progress, so the
    weights, optimizer and schedule stay consistent. Only the main thread can own the
    handler; elsewhere Ctrl-C behaves as usual.
    """
    flag = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["requested"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class EarlyStopping:
    """Track validation scores and keep a CPU copy of the best weights of ``module``."""

    def __init__(self, module, patience, tol):
        self.module, self.patience, self.tol = module, patience, tol
        self.scores, self.best_score, self._best_weights = [], -np.inf, None
        self._stale = 0

    def update(self, score):
        """Record ``score``; return True when training should stop."""
        self.scores.append(score)
        if self._best_weights is None or score > self.best_score + self.tol:
            self.best_score = score
            self._best_weights = {
                k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()
            }
            self._stale = 0
        else:
            self._stale += 1
        return self._stale >= self.patience

    def restore_best(self):
        """Load the best weights seen back into the module."""
        self.module.load_state_dict(self._best_weights)


def run_epochs(train_pass, validate, max_iter, *, stopper=None, verbose=0, interrupt=None):
    """Call ``train_pass(epoch)`` up to ``max_iter`` times; return the loss curve.

    After each pass ``validate()`` (when given) scores the model and ``stopper``
    decides whether to stop. With ``verbose`` one line per epoch is printed. A Ctrl-C
    seen by ``train_pass`` (which raises ``Interrupted``), or set in the ``interrupt``
    flag between passes, stops training with a warning.
    """
    loss_curve = []
    for epoch in range(max_iter):
        if epoch and interrupted(interrupt):  # pressed at the end of the previous pass
            warnings.warn(
                f"Training interrupted by user after epoch {epoch}; the estimator keeps "
                "the weights of the last completed step.", UserWarning, stacklevel=5,
            )
            break
        try:
            loss = train_pass(epoch)
        except Interrupted as stop:
            loss_curve.append(stop.args[0])
            warnings.warn(
                f"Training interrupted by user during epoch {epoch + 1}; the estimator "
                "keeps the weights of the last completed step.", UserWarning, stacklevel=5,
            )
            break
        loss_curve.append(loss)
        message = f"Epoch {epoch + 1}/{max_iter}: loss={loss:.4f}"
        stop = False
        if validate is not None:
            score = validate()
            message += f", validation accuracy={score:.4f}"
            stop = stopper.update(score)
        if verbose > 0:
            print(message)
        if stop:
            break
    return loss_curve
