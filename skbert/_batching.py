"""Length-aware batching and per-batch padding: pure NumPy functions.

Texts arrive as flat, unpadded token ids with offsets (see ``_tokenization.encode``).
Prediction sorts them by token count and fills each batch up to a token budget;
training shuffles them and groups similar lengths, as transformers'
``LengthGroupedSampler`` does. Either way a batch is padded only to its own longest
text. This module imports nothing from skbert.
"""

import numpy as np


def pad_multiple(device_type):
    """What padded lengths are rounded up to on a device of ``device_type``.

    The one place that plans padding. 8 on CUDA, whose tensor cores want it; 1
    elsewhere: on the CPU every padded token is wasted work (on SST-2 dev, rounding up
    to 8 cost 10% to 20% of prediction throughput; see benchmarks/bench_padding.py).
    """
    return 8 if device_type == "cuda" else 1


def round_up(n, multiple):
    """Round ``n`` up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def sorted_batches(lengths, max_tokens, max_batch_size=None, *, multiple_of):
    """Split indices, longest first, into batches under a token budget.

    Parameters
    ----------
    lengths : ndarray of shape (n,)
        Token count of each text.
    max_tokens : int
        Budget of a batch: its size times its padded length stays within it; a text
        longer than the budget forms a batch of its own.
    max_batch_size : int, default=None
        Upper bound on the number of texts in a batch.
    multiple_of : int
        Padded lengths are rounded up to a multiple of this (``pad_multiple``).

    Returns
    -------
    batches : list of ndarray of int64
        Every index exactly once; within and across batches, non-increasing lengths.
    """
    lengths = np.asarray(lengths)
    order = np.argsort(-lengths, kind="stable")
    batches, start, n = [], 0, len(order)
    while start < n:
        # The first text of a batch is its longest, so it sets the padded length.
        padded = round_up(int(lengths[order[start]]), multiple_of)
        size = max(1, max_tokens // max(padded, 1))
        if max_batch_size is not None:
            size = min(size, max_batch_size)
        batches.append(order[start : start + size])
        start += size
    return batches


def length_grouped_batches(lengths, batch_size, rng, mega_batch_mult=50):
    """Shuffled training batches whose texts have similar lengths.

    Indices are shuffled, cut into mega-batches of about ``mega_batch_mult *
    batch_size``, each mega-batch is sorted by length and cut into batches, and the
    batches are shuffled. Batches stay random draws of the data while padding little.
    Cuts are balanced (sizes differ by at most one); ``batch_sizes`` says how many
    batches of which sizes it makes.

    Parameters
    ----------
    lengths : ndarray of shape (n,)
        Token count of each text.
    batch_size : int
        Texts per batch (the last one may be smaller).
    rng : numpy.random.Generator
        Source of randomness.
    mega_batch_mult : int, default=50
        Mega-batch size in batches.

    Returns
    -------
    batches : list of ndarray of int64
        Every index exactly once.
    """
    lengths = np.asarray(lengths)
    perm = rng.permutation(len(lengths))
    batches = []
    for group in np.array_split(perm, _n_parts(len(perm), batch_size * mega_batch_mult)):
        group = group[np.argsort(-lengths[group], kind="stable")]
        batches.extend(np.array_split(group, _n_parts(len(group), batch_size)))
    return [batches[i] for i in rng.permutation(len(batches))]


def training_batches(lengths, batch_size, rng, *, length_grouped):
    """The batches of one training pass: the one rule for every trainer.

    Parameters
    ----------
    lengths : ndarray of shape (n,) or int
        Token count of each text (length-grouped batches), or the number of rows.
    batch_size : int
    rng : numpy.random.Generator
    length_grouped : bool
        True: ``length_grouped_batches`` (texts, padded per batch). False: a shuffled
        even cut into ``ceil(n / batch_size)`` batches (fixed-size rows such as the
        features of a frozen base).

    Returns
    -------
    batches : list of ndarray of int64
    """
    if length_grouped:
        return length_grouped_batches(lengths, batch_size, rng)
    n = int(lengths)
    return np.array_split(rng.permutation(n), _n_parts(n, batch_size))


def batch_sizes(n, batch_size, *, length_grouped=True, mega_batch_mult=50):
    """Sizes of the batches ``training_batches`` makes of ``n`` rows (in no order).

    Mega-batches hold ``small`` or ``small + 1`` texts; each is cut evenly into
    batches. Without length grouping: one even cut of all ``n`` rows.
    """
    parts = _n_parts(n, batch_size * mega_batch_mult) if length_grouped else 1
    small, extra = divmod(n, parts)
    sizes = []
    for m, count in ((small + 1, extra), (small, parts - extra)):
        if count and m:
            k = _n_parts(m, batch_size)
            base, more = divmod(m, k)
            sizes += ([base + 1] * more + [base] * (k - more)) * count
    return sizes


def count_batches(n, batch_size, *, length_grouped=True):
    """Optimizer steps of one pass over ``n`` rows: the number of training batches."""
    return len(batch_sizes(n, batch_size, length_grouped=length_grouped))


def smallest_batch(n, batch_size, *, length_grouped=True):
    """Size of the smallest training batch of ``n`` rows (BatchNorm heads need two)."""
    return min(batch_sizes(n, batch_size, length_grouped=length_grouped))


def _n_parts(n, size):
    return max(1, -(-n // size))


def pad_batch(ids, offsets, rows, pad_id, type_ids=None, *, multiple_of):
    """Pad the texts ``rows`` to the batch's own longest, rounded up.

    Parameters
    ----------
    ids : ndarray
        Flat token ids of all texts.
    offsets : ndarray of shape (n + 1,)
        Text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.
    rows : ndarray of int
        Indices of the texts in the batch.
    pad_id : int
        Padding token id.
    type_ids : ndarray, default=None
        Flat segment ids aligned with ``ids`` (text pairs), or None.
    multiple_of : int
        The padded length is a multiple of this (``pad_multiple``).

    Returns
    -------
    input_ids : ndarray of int64 of shape (len(rows), padded_length)
    attention_mask : ndarray of int64 of the same shape
    token_type_ids : ndarray of int64 of the same shape, or None
    """
    starts, ends = offsets[rows], offsets[rows + 1]
    lengths = ends - starts
    width = round_up(int(lengths.max()), multiple_of)
    mask = np.arange(width)[None, :] < lengths[:, None]
    # Gather positions of real tokens row by row without a Python loop.
    source = (starts[:, None] + np.arange(width)[None, :])[mask]
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    input_ids[mask] = ids[source]
    token_type_ids = None
    if type_ids is not None:
        token_type_ids = np.zeros((len(rows), width), dtype=np.int64)
        token_type_ids[mask] = type_ids[source]
    return input_ids, mask.astype(np.int64), token_type_ids
