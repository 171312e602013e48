"""Prediction through OpenVINO: the fitted network compiled for this CPU.

``inference_backend="openvino"`` swaps the torch network of prediction for
:class:`OpenVINONetwork`, a callable with the same inputs and output, so that the one
prediction path (length-sorted, dynamically padded batches; tokenization overlapping
the network) serves both backends.
"""

import contextlib
import copy
import ctypes
import queue
import sys
import warnings

import numpy as np
import torch

# inference_dtype -> OpenVINO's INFERENCE_PRECISION_HINT (None: the CPU's default).
_PRECISIONS = {"auto": None, "float32": "f32", "bfloat16": "bf16"}


class _SignalStack(ctypes.Structure):  # stack_t of sigaltstack(2)
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int),
                ("ss_size", ctypes.c_size_t)]


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


@contextlib.contextmanager
def kept_signal_stack():
    """Leave this thread's alternate signal stack as it was before the block.

    OpenVINO's CPU plugin installs a signal stack of its own on the thread that compiles
    a model and, when the model is destroyed, reinstates the one it found. Two models
    destroyed in another order than they were made leave a freed stack installed, and
    the next signal handled on it (Ctrl-C, which skbert's training catches) crashes the
    process. Python's handlers do not need OpenVINO's stack: keep the thread's own.
    """
    if _LIBC is None:
        yield
        return
    saved = _SignalStack()
    _LIBC.sigaltstack(None, ctypes.byref(saved))
    try:
        yield
    finally:
        _LIBC.sigaltstack(ctypes.byref(saved), None)


def check_openvino(inference_dtype, device):
    """Refuse the settings OpenVINO does not serve, naming the parameters."""
    if device.type != "cpu":
        raise ValueError(
            f"inference_backend='openvino' runs on the CPU only; got device {device}. Use "
            "inference_backend='torch' there, or device='cpu'."
        )
    if inference_dtype not in _PRECISIONS:
        raise ValueError(
            f"inference_backend='openvino' takes inference_dtype 'auto', 'float32' or "
            f"'bfloat16'; got inference_dtype={inference_dtype!r}. Use "
            "inference_backend='torch' for it."
        )


def compile_network(module, *, text_pairs, inference_dtype):
    """Convert the fitted ``module`` to OpenVINO and compile it for the CPU.

    Parameters
    ----------
    module : TextClassifierModule
        The fitted network (converted from an fp32 CPU copy; left as it is).
    text_pairs : bool
        Whether the network takes ``token_type_ids``.
    inference_dtype : {"auto", "float32", "bfloat16"}
        "auto" leaves the precision to OpenVINO (bf16 where the CPU has it).

    Returns
    -------
    network : OpenVINONetwork
    """
    try:
        import openvino as ov
    except ImportError:
        raise ImportError(
            "inference_backend='openvino' needs the openvino package: "
            "pip install 'skbert[openvino]' (or pip install openvino), or use "
            "inference_backend='torch'."
        ) from None
    from ._pretrained import quiet_transformers

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if text_pairs else [])
    example = {name: torch.ones(2, 3, dtype=torch.long) for name in names}
    example["token_type_ids" if text_pairs else "attention_mask"][1, 2] = 0
    copied = copy.deepcopy(module).float().cpu().eval()
    with warnings.catch_warnings(), quiet_transformers(), torch.inference_mode(False):
        warnings.simplefilter("ignore")  # tracer chatter
        converted = ov.convert_model(copied, example_input=example)
    config = {"INFERENCE_NUM_THREADS": torch.get_num_threads()}
    if _PRECISIONS[inference_dtype] is not None:
        config["INFERENCE_PRECISION_HINT"] = _PRECISIONS[inference_dtype]
    with kept_signal_stack():
        compiled = ov.Core().compile_model(converted, "CPU", config)
    return OpenVINONetwork(compiled, names, module)


class OpenVINONetwork:
    """A compiled network called like the torch one: logits of a batch.

    Parameters
    ----------
    compiled : openvino.CompiledModel
    names : list of str
        Its inputs, in order.
    module : TextClassifierModule
        The torch network, whose ``features`` (``transform``) it keeps.
    """

    def __init__(self, compiled, names, module):
        self.compiled = compiled
        self.names = names
        self.features = module.features
        self._requests = queue.SimpleQueue()  # idle infer requests, one per thread at once

    def eval(self):
        return self

    def __call__(self, **inputs):
        feed = {name: np.ascontiguousarray(inputs[name].cpu().numpy(), dtype=np.int64)
                for name in self.names}
        with kept_signal_stack():
            try:
                request = self._requests.get_nowait()
            except queue.Empty:
                request = self.compiled.create_infer_request()
            try:
                logits = np.array(request.infer(feed)[0], dtype=np.float32)  # a copy
            finally:
                self._requests.put(request)
        return torch.from_numpy(logits)

    def __del__(self):
        # The requests and the compiled model go here, with this thread's signal stack
        # kept (see kept_signal_stack).
        with kept_signal_stack():
            self.__dict__.pop("_requests", None)
            self.__dict__.pop("compiled", None)
