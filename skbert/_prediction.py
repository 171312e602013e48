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

Which network predicts (:func:`prediction_network`: the torch module, its int8 copy or
its OpenVINO compilation) is decided here too. Functions of values (a network, an
encoding, a device, numbers), no estimator. Of skbert it imports ``_batching``,
``_device``, ``_patches``, ``_tokenization`` and ``_validation``, and ``_modeling``
(int8) and ``_openvino`` inside :func:`prediction_network`.
"""

import contextlib
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
# Under verbose="auto" a prediction's bar shows once the call has run this many seconds:
# long predictions get one, a predict of a few texts prints nothing.
AUTO_BAR_DELAY = 2.0


def batch_tokens(requested, device):
    """Token budget of a prediction batch on ``device``: ``requested``
    (``predict_batch_tokens``), or the device's default when None."""
    return requested or PREDICT_BATCH_TOKENS.get(device.type, 4096)


def prediction_network(model, *, backend, inference_dtype, device, text_pairs, kept=None,
                       requested_device=None):
    """The network that predicts for ``model`` on ``device``, and what to keep for next time.

    ``model`` itself (moved to ``device``) for torch at full precision or under autocast;
    under ``inference_dtype="int8"`` its int8 copy, under ``backend="openvino"`` its
    OpenVINO compilation, either made only when ``kept`` (what the last call returned
    second) is not of this model and setting. ``requested_device`` is the ``device``
    parameter as given, for messages.

    Returns
    -------
    network : callable like the module
    kept : tuple or None
        ``(model, setting, network)`` of a derived network, else ``kept`` unchanged.
    """
    if backend == "openvino":
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
