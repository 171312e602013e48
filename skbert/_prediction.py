"""The one prediction path: texts in, one output row per text out, in input order.

Read top to bottom, as sentence-transformers' ``encode``:

1. :func:`iter_chunk_outputs` cuts the input into chunks (bounded memory on huge
   inputs) and tokenizes the next chunk in a thread while the network runs on the
   current one (the fast tokenizer releases the GIL), with one progress bar per call;
2. :func:`outputs` sorts a chunk's sequences by length into batches under a token
   budget, halving the budget after running out of memory, and pools the windows of a
   long text back into one row;
3. :func:`predict_batches` pads each batch to its own longest, moves it to the device,
   runs the network under autocast and puts the rows back in order.

Which network predicts (:func:`prediction_network`: the torch module, its int8 copy,
its OpenVINO compilation or, under ``inference_backend="auto"``, the fastest of torch
and OpenVINO measured on the call's texts: :class:`AutoNetwork`, with ``_probe``) is
decided here too. Functions of values (a network, an encoding, a device, numbers), no
estimator. Of skbert it imports ``_batching``, ``_device``, ``_patches``,
``_tokenization`` and ``_validation``, and ``_modeling`` (int8), ``_openvino`` and
``_probe`` inside functions.
"""

import contextlib
import threading
import warnings

import numpy as np
import torch

from ._batching import pad_multiple, sorted_batches
from ._device import batch_to_device
from ._patches import masks_without_sync
from ._tokenization import pool_windows
from ._validation import iter_text_chunks

# Default token budget of a prediction batch (padded length times texts). On a
# 2-core AVX-512 CPU 2,048 was fastest in benchmarks/bench_predict.py (larger batches
# spill the cache); accelerators want far more work per kernel.
PREDICT_BATCH_TOKENS = {"cpu": 2048, "cuda": 65536, "mps": 16384}
# Prediction halves its token budget after running out of memory, down to this.
MIN_BATCH_TOKENS = 64
# One probe of inference_backend="auto" at a time (a module's lock: a lock in the
# network would make it impossible to copy).
_PROBE_LOCK = threading.Lock()
# Under verbose="auto" a prediction's bar shows once the call has run this many seconds:
# long predictions get one, a predict of a few texts prints nothing.
AUTO_BAR_DELAY = 2.0


def batch_tokens(requested, device):
    """Token budget of a prediction batch on ``device``: ``requested``
    (``predict_batch_tokens``), or the device's default when None."""
    return requested or PREDICT_BATCH_TOKENS.get(device.type, 4096)


def prediction_network(model, *, backend, inference_dtype, device, text_pairs, kept=None,
                       requested_device=None, random_state=None, answers=None):
    """The network that predicts for ``model`` on ``device``, and what to keep for next time.

    ``model`` itself (moved to ``device``) for torch at full precision or under autocast;
    under ``inference_dtype="int8"`` its int8 copy, under ``backend="openvino"`` its
    OpenVINO compilation, under ``backend="auto"`` on the CPU an :class:`AutoNetwork`
    (which measures the paths on its first large call and keeps its choice), each made
    only when ``kept`` (what the last call returned second) is not of this model and
    setting. "auto" off the CPU, or with ``inference_dtype`` "int8" or "float16", is
    torch. ``requested_device`` is the ``device`` parameter as given, for messages;
    ``random_state`` draws the probe's texts and ``answers`` maps outputs to what the
    probe compares (a classifier's probabilities; None: the outputs).

    Returns
    -------
    network : callable like the module
    kept : tuple or None
        ``(model, setting, network)`` of a derived network, else ``kept`` unchanged.
    """
    if backend == "auto" and device.type == "cpu" and inference_dtype in (
            "auto", "float32", "bfloat16"):
        model.to(device)
        setting = ("auto", inference_dtype, str(device), random_state)
        make = lambda: AutoNetwork(  # noqa: E731
            model, text_pairs=text_pairs, inference_dtype=inference_dtype, device=device,
            random_state=random_state, answers=answers)
    elif backend == "openvino":
        from ._openvino import check_openvino, compile_network

        check_openvino(inference_dtype, device)
        model.to(device)  # transform's features stay in torch, on the CPU
        setting = ("openvino", inference_dtype)
        make = lambda: compile_network(  # noqa: E731
            model, text_pairs=text_pairs, inference_dtype=inference_dtype)
    elif inference_dtype != "int8":
        return model.to(device), kept
    elif device.type != "cpu":
        raise ValueError(
            f"inference_dtype='int8' runs on the CPU only; got device={requested_device!r} "
            f"({device}). Use inference_dtype='auto' on {device.type}, or device='cpu'."
        )
    else:
        from ._modeling import quantize_int8

        setting, make = ("int8",), lambda: quantize_int8(model)
    if kept is None or kept[0] is not model or kept[1] != setting:
        kept = (model, setting, make())
    return kept[2], kept


class AutocastNetwork:
    """``module`` predicting under its own precision, whatever the caller's autocast:
    bf16 autocast for ``dtype=torch.bfloat16``, full precision for None. ``features``
    (``transform``) is the module's own, under the caller's precision."""

    def __init__(self, module, dtype):
        self.module = module
        self.dtype = dtype
        self.features = module.features

    def eval(self):
        self.module.eval()
        return self

    def __call__(self, **inputs):
        device = inputs["input_ids"].device.type
        with torch.autocast(device, dtype=self.dtype or torch.bfloat16,
                            enabled=self.dtype is not None):
            return self.module(**inputs)


class AutoNetwork:
    """``inference_backend="auto"``: the fitted ``model`` until a call is large enough
    to probe (``_probe.should_probe``), then the fastest path with fp32's answers.

    :func:`outputs` hands it each call's texts (:meth:`resolve`); the first call of at
    least ``_probe.PROBE_MIN_TEXTS`` texts times the candidate paths
    (``_probe.candidates``) on ``_probe.PROBE_TEXTS`` of them drawn with
    ``random_state``, and the choice (``path``, an ``_probe.InferencePath``) is kept for
    the model's later calls. Smaller calls and ``transform`` run ``model`` under
    ``inference_dtype``'s precision, as ``inference_backend="torch"``.
    """

    def __init__(self, model, *, text_pairs, inference_dtype, device, random_state=None,
                 answers=None):
        self.model = model
        self.text_pairs = text_pairs
        self.inference_dtype = inference_dtype
        self.device = device
        self.random_state = random_state
        self.answers = answers
        self.features = model.features
        self.network = None  # the chosen path, once probed
        self.path = None

    def eval(self):
        self.model.eval()
        return self

    def __call__(self, **inputs):  # before a probe: torch, as inference_dtype asks
        return (self.model if self.network is None else self.network)(**inputs)

    def resolve(self, encoding, texts, *, run):
        """The network for ``texts`` of ``encoding``: the chosen path, probing first
        where none is chosen and the call is large enough; else ``model``.

        ``run(network, rows)`` returns the outputs of the texts ``rows`` of
        ``encoding`` through ``network`` at full precision (:func:`outputs`).
        """
        from ._probe import should_probe

        if self.network is None and should_probe(len(texts)):
            with _PROBE_LOCK:  # threads predicting at once: one probe
                if self.network is None:
                    self._probe(texts, run)
        return self.model if self.network is None else self.network

    def _probe(self, texts, run):
        import dataclasses
        import importlib.util

        from ._device import cpu_has_native_bf16, inference_dtype
        from ._probe import REFERENCE, candidates, choose, log_choice, probe_rows

        try:
            openvino = importlib.util.find_spec("openvino") is not None
        except ValueError:  # imported, or set to None in sys.modules
            openvino = False
        names = candidates(self.inference_dtype, native_bf16=cpu_has_native_bf16(),
                           openvino=openvino)
        rows = texts[probe_rows(len(texts), self.random_state)]
        networks = {}

        def builder(name):
            def build():
                networks[name] = network = self._build(name)
                return lambda: run(network, rows)
            return build

        builders = {name: builder(name) for name in dict.fromkeys([REFERENCE, *names])}
        default = inference_dtype(self.inference_dtype, self.device)
        fallback = f"torch {'float32' if default is None else 'bfloat16'}"
        path, _ = choose(builders, eligible=names, fallback=fallback, answers=self.answers,
                         top=self.answers is not None)
        path = dataclasses.replace(path, probe_texts=len(rows), call_texts=len(texts))
        log_choice(path)
        chosen = networks.get(path.chosen)
        if chosen is None or (isinstance(chosen, AutocastNetwork) and chosen.dtype == default):
            chosen = self.model  # torch as inference_dtype asks: no wrapper
        self.network, self.path = chosen, path

    def _build(self, name):
        backend, dtype = name.split()
        if backend == "torch":
            return AutocastNetwork(self.model, torch.bfloat16 if dtype == "bfloat16" else None)
        from ._openvino import compile_network

        return compile_network(self.model, text_pairs=self.text_pairs, inference_dtype=dtype)


def iter_chunk_outputs(X, chunk_size, *, encode, run, show, desc, on_encoded=None,
                       delay=0.0):
    """Yield the outputs of the texts ``X``, chunk by chunk, in input order.

    Parameters
    ----------
    X : iterable of str or of pairs
        The texts; need not have a length (a generator, a file).
    chunk_size : int
        Texts validated, tokenized and predicted together.
    encode : callable
        ``encode(texts)`` checks a chunk and returns its ``Encoding``; it runs in a
        thread, one chunk ahead.
    run : callable
        ``run(encoding, progress)`` returns the chunk's outputs (see :func:`outputs`).
    show : bool
        Whether to show a progress bar on stderr, counting texts.
    desc : str
        The progress bar's label.
    on_encoded : callable or None
        ``on_encoded(texts, encoding)``, called in this thread once a chunk is encoded
        and before it runs (a call's truncation warning).
    delay : float
        Seconds before the bar first shows: a call that ends sooner shows none.

    Yields
    ------
    outputs : ndarray of float32 of shape (n_chunk, width)
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    def checked(texts):
        return texts, encode(texts)

    def finished(pending):
        texts, encoding = pending.result()
        if on_encoded is not None:
            on_encoded(texts, encoding)
        return run(encoding, bar)

    try:
        total = len(X)
    except TypeError:  # a generator, a file: the bar counts without a total
        total = None
    with ThreadPoolExecutor(max_workers=1) as pool, tqdm(
            total=total, desc=desc, unit=" texts", disable=not show, delay=delay) as bar:
        pending = None
        for texts in iter_text_chunks(X, chunk_size):
            if not texts:
                continue
            upcoming = pool.submit(checked, texts)
            if pending is not None:
                yield finished(pending)
            pending = upcoming
        if pending is not None:
            yield finished(pending)


def outputs(module, encoding, texts=None, *, pad_id, device, budget, dtype=None,
            window_pooling="mean", features=False, progress=None):
    """Logits of the texts ``texts`` of ``encoding`` (all when None), in that order; with
    ``features``, the pooled features that the head maps to them.

    The texts' sequences run length-sorted in batches of at most ``budget`` tokens;
    after running out of memory the budget halves (down to ``MIN_BATCH_TOKENS``) and
    the call starts again, with a warning. A text of several windows gets the mean (or
    max: ``window_pooling``) of its windows' rows.

    Parameters
    ----------
    module : skbert._modeling.TextClassifierModule or callable like it
        The network (its torch module, int8 copy or OpenVINO compilation).
    encoding : skbert._tokenization.Encoding
    texts : ndarray of int or None
    pad_id : int
    device : torch.device
    budget : int
        Tokens (padded length times sequences) a batch may hold.
    dtype : torch.dtype or None
        Autocast dtype, or None for full precision.
    window_pooling : {"mean", "max"}
    features : bool
        Whether to return pooled features instead of logits.
    progress : tqdm or None
        Advanced by the number of texts as batches run.

    Returns
    -------
    out : ndarray of float32 of shape (n_texts, width)
    """
    texts = np.arange(encoding.n_texts) if texts is None else texts
    if isinstance(module, AutoNetwork) and not features:
        module = module.resolve(encoding, texts, run=lambda network, rows: outputs(
            network, encoding, rows, pad_id=pad_id, device=device, budget=budget,
            window_pooling=window_pooling))
    rows, owner = encoding.sequences(texts)
    module.eval()
    forward = module.features if features else module
    start = None if progress is None else progress.n
    while True:
        try:
            out = sequence_outputs(forward, module, encoding, rows, pad_id=pad_id,
                                   device=device, budget=budget, dtype=dtype,
                                   progress=progress, n_texts=len(texts))
            return pool_windows(out, owner, window_pooling)
        except torch.OutOfMemoryError:
            if budget <= MIN_BATCH_TOKENS:
                raise
            if progress is not None:  # the retry counts these texts again
                progress.update(start - progress.n)
            budget //= 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
            warnings.warn(
                f"Out of memory on {device} while predicting; retrying with "
                f"predict_batch_tokens={budget}.", UserWarning, stacklevel=5,
            )


def unsynced_masks(module, device):
    """Attention masks that do not wait for the device, off the CPU (see
    ``_patches.masks_without_sync``); nothing changes on a CPU."""
    if device.type == "cpu":
        return contextlib.nullcontext()
    return masks_without_sync(module)


def text_progress(bar, n_texts, n_rows):
    """A progress callback of :func:`predict_batches` that advances ``bar`` by
    ``n_texts`` in all over its ``n_rows`` sequences (a text of several windows counts
    once), in whole texts; None without a bar."""
    if bar is None:
        return None
    done = shown = 0

    def advance(n):
        nonlocal done, shown
        done += n
        now = done * n_texts // max(n_rows, 1)
        bar.update(now - shown)
        shown = now

    return advance


@torch.inference_mode()
def predict_batches(
    forward, encoding, rows, batches, *, pad_id, device, dtype=None, progress=None
):
    """Outputs of ``forward`` for the texts ``rows``, in that order, as float32.

    Parameters
    ----------
    forward : callable
        Maps a batch of padded tensors (keyword arguments) to one output row per
        text: the module itself for logits, its ``features`` for pooled vectors.
    encoding : skbert._tokenization.Encoding
        Flat token ids of all sequences.
    rows : ndarray of int of shape (n,)
        Which sequences of ``encoding`` to run.
    batches : list of ndarray
        Positions in ``rows`` of each batch; together every position exactly once.
    pad_id : int
        Padding token id.
    device : torch.device
        Where the module lives (in eval mode).
    dtype : torch.dtype or None
        Autocast dtype (bf16 or fp16), or None for full precision.
    progress : callable or None
        Called with the number of rows of each batch once it is on its way (on an
        accelerator, queued: no wait for the device).

    Returns
    -------
    out : ndarray of float32 of shape (n, width)
        Row ``i`` belongs to text ``rows[i]``.
    """
    results = []  # stay on the device: one host copy at the end, no sync per batch
    for positions in batches:
        inputs = batch_to_device(encoding, rows[positions], pad_id, device)
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            results.append(forward(**inputs).float())
        if progress is not None:
            progress(len(positions))
    values = torch.cat(results).cpu().numpy()
    out = np.empty_like(values)
    out[np.concatenate(batches)] = values
    return out


def sequence_outputs(forward, module, encoding, rows, *, pad_id, device, budget, n_texts,
                     dtype=None, progress=None):
    """Outputs of ``forward`` (``module`` or its ``features``) for the sequences ``rows``
    of ``encoding``, one row a sequence (windows are not pooled), in input order.

    The sequences run length-sorted in batches of at most ``budget`` tokens, under
    autocast to ``dtype`` (None: full precision, as the frozen base's features, which
    the head then trains on). ``progress`` (a tqdm bar or None) advances by ``n_texts``
    in all.
    """
    batches = sorted_batches(np.diff(encoding[2])[rows], budget,
                             multiple_of=pad_multiple(device.type))
    with unsynced_masks(module, device):
        return predict_batches(forward, encoding, rows, batches, pad_id=pad_id, device=device,
                               dtype=dtype, progress=text_progress(progress, n_texts, len(rows)))
