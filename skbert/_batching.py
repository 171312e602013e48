"""Length-aware batching and per-batch padding: pure NumPy functions.

Texts arrive as flat, unpadded token ids with offsets (see ``_tokenization.encode``).
Prediction sorts them by token count and fills each batch up to a token budget;
training shuffles them and groups similar lengths, as transformers'
``LengthGroupedSampler`` does. Either way a batch is padded only to its own longest
text. This module imports nothing from skbert.
"""

import numpy as np


def round_up(n, multiple):
    """Round ``n`` up to a multiple of ``multiple``."""
    return -(-n // multiple) * multiple


def sorted_batches(lengths, max_tokens, max_batch_size=None, multiple_of=8):
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
    multiple_of : int, default=8
        Padded lengths are rounded up to a multiple of this.

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
    Cuts are balanced (sizes differ by at most one); ``smallest_batch`` says how small
    a batch gets (BatchNorm heads need two texts).

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


def n_length_grouped_batches(n, batch_size, mega_batch_mult=50):
    """Number of batches ``length_grouped_batches`` makes of ``n`` texts."""
    parts = _n_parts(n, batch_size * mega_batch_mult)
    small, extra = divmod(n, parts)
    return extra * _n_parts(small + 1, batch_size) + (parts - extra) * _n_parts(small, batch_size)


def smallest_batch(n, batch_size, mega_batch_mult=50):
    """Size of the smallest batch ``length_grouped_batches`` makes of ``n`` texts.

    Mega-batches hold ``small`` or ``small + 1`` texts; each is cut evenly into
    batches. With ``mega_batch_mult=None``: one even cut of all ``n`` texts.
    """
    parts = 1 if mega_batch_mult is None else _n_parts(n, batch_size * mega_batch_mult)
    small, extra = divmod(n, parts)
    sizes = [small, small + 1] if extra else [small]
    return min(m // _n_parts(m, batch_size) for m in sizes)


def _n_parts(n, size):
    return max(1, -(-n // size))


def pad_batch(ids, offsets, rows, pad_id, type_ids=None, multiple_of=8):
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
    multiple_of : int, default=8
        The padded length is a multiple of this (tensor cores and SIMD like it).

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
