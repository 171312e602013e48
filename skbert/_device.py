"""Where and in what precision the network runs: the device (local rank included), the
training and inference precision (the CPU bf16 probe), and host-to-device copies.

Functions of values, no state. Of skbert it imports ``_batching`` (padding) only.
"""

import functools
import os
import re
import time

import torch

from ._batching import pad_batch, pad_multiple

_DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def launched_world_size():
    """Number of processes the launcher started (1 without a launcher)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_device(device):
    """Turn the ``device`` parameter into this process's ``torch.device``.

    The one device resolution: "auto" picks CUDA, then MPS, then the CPU; in a run of
    several processes (``torchrun``, ``accelerate launch``) an unindexed CUDA device is
    the local rank's GPU.
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
            return _local(torch.device("cuda"))
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available here; "
            "use device='auto' or 'cpu'."
        )
    index = torch.device(device).index
    if index is not None and index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was requested but this machine has "
            f"{torch.cuda.device_count()} CUDA device(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}."
        )
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device='mps' was requested but MPS is not available here.")
    return _local(torch.device(device))


def _local(device):
    if device.type == "cuda" and device.index is None and launched_world_size() > 1:
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def _cuda_amp_dtype(device):
    """bf16 on GPUs that compute it natively (compute capability 8.0, Ampere, and
    later), fp16 elsewhere: ``torch.cuda.is_bf16_supported()`` also says yes to the
    emulated bf16 of older GPUs, which is slow."""
    return torch.bfloat16 if torch.cuda.get_device_capability(device)[0] >= 8 else torch.float16


def training_dtype(requested, device):
    """Autocast dtype for training on ``device``, or None for full precision.

    "auto" takes bf16 on GPUs that support it, fp16 on older GPUs (with a gradient
    scaler), bf16 on CPUs where prediction takes it (:func:`cpu_auto_bf16`: the same
    probe), and fp32 elsewhere (other CPUs, MPS); "bfloat16" also runs on CPUs;
    "float16" needs CUDA.
    """
    if requested == "auto":
        if device.type == "cuda":
            return _cuda_amp_dtype(device)
        return torch.bfloat16 if device.type == "cpu" and cpu_auto_bf16() else None
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


def cpu_auto_bf16():
    """Whether "auto" precision is bf16 on this CPU: :func:`cpu_bf16_pays`, unless the
    environment variable ``SKBERT_CPU_BF16`` is "1" or "0", which forces the answer
    (the test suite runs once each way, so that it passes on every kind of CPU)."""
    forced = os.environ.get("SKBERT_CPU_BF16", "")
    if forced in ("0", "1"):
        return forced == "1"
    return cpu_bf16_pays()


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
        return _cuda_amp_dtype(device)
    if device.type == "cpu" and cpu_auto_bf16():
        return torch.bfloat16
    return None


def host_to_device(tensor, device):
    """``tensor`` (on the host) on ``device``: on CUDA through page-locked memory and
    without blocking, so the copy waits for no GPU work in flight."""
    if device.type != "cuda":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def batch_to_device(encoding, rows, pad_id, device):
    """Pad the texts ``rows`` of ``encoding`` and move the tensors to ``device``."""
    ids, type_ids, offsets = encoding[:3]
    input_ids, mask, token_type_ids = pad_batch(
        ids, offsets, rows, pad_id, type_ids, multiple_of=pad_multiple(device.type)
    )
    tensors = {
        "input_ids": torch.from_numpy(input_ids),
        "attention_mask": torch.from_numpy(mask),
    }
    if token_type_ids is not None:
        tensors["token_type_ids"] = torch.from_numpy(token_type_ids)
    return {k: host_to_device(v, device) for k, v in tensors.items()}
