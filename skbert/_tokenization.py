"""Texts to unpadded token ids, once, with the fast tokenizer.

Of skbert it uses only ``_cache``, to reuse the ids of texts tokenized before by the same
tokenizer (the folds of a grid search).
"""

from itertools import chain

import numpy as np

from . import _cache

# Texts tokenized per call of the fast tokenizer: large enough to keep its Rust
# threads busy, small enough that the Python lists it returns stay small.
_TOKENIZE_CHUNK = 8192


def encode(tokenizer, texts, max_length, *, cache=False):
    """Tokenize texts once into flat, unpadded token ids.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        The model's tokenizer.
    texts : list of str or list of tuple of (str, str)
        Validated texts or text pairs.
    max_length : int
        Longest sequence kept, special tokens included; longer ones are truncated.
    cache : bool, default=False
        Whether to keep the result for the next call with the same texts (training sets,
        which the fits of a grid search repeat; prediction inputs stream through).

    Returns
    -------
    ids : ndarray of int32
        Token ids of all texts, concatenated.
    type_ids : ndarray of int8 or None
        Segment ids aligned with ``ids`` for text pairs, None for single texts.
    offsets : ndarray of int64 of shape (n_texts + 1,)
        Text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.

    Notes
    -----
    With ``cache`` and a tokenizer loaded through the cache (see ``_cache.load_copy``),
    the result is kept and returned again, read-only, for the same texts and
    ``max_length``.
    """
    tokenizer_key = getattr(tokenizer, "_skbert_cache_key", None)
    if not cache or tokenizer_key is None:
        return _encode(tokenizer, texts, max_length)
    key = (tokenizer_key, max_length, _cache.texts_digest(texts))
    encoding = _cache.ENCODINGS.get(key)
    if encoding is None:
        encoding = _encode(tokenizer, texts, max_length)
        for array in encoding:
            if array is not None:
                array.setflags(write=False)
        _cache.ENCODINGS.put(key, encoding)
    return encoding


def _encode(tokenizer, texts, max_length):
    pairs = isinstance(texts[0], tuple)
    id_chunks, type_chunks, length_chunks = [], [], []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        chunk = texts[start : start + _TOKENIZE_CHUNK]
        if pairs:
            first, second = zip(*chunk, strict=True)
            out = tokenizer(
                list(first), list(second), truncation="longest_first",
                max_length=max_length, return_attention_mask=False,
                return_token_type_ids=True,
            )
        else:
            out = tokenizer(
                chunk, truncation=True, max_length=max_length,
                return_attention_mask=False, return_token_type_ids=False,
            )
        lengths = np.fromiter(map(len, out["input_ids"]), dtype=np.int64, count=len(chunk))
        total = int(lengths.sum())
        id_chunks.append(
            np.fromiter(chain.from_iterable(out["input_ids"]), dtype=np.int32, count=total)
        )
        if pairs:
            type_chunks.append(
                np.fromiter(chain.from_iterable(out["token_type_ids"]), dtype=np.int8, count=total)
            )
        length_chunks.append(lengths)
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(np.concatenate(length_chunks), out=offsets[1:])
    type_ids = np.concatenate(type_chunks) if pairs else None
    return np.concatenate(id_chunks), type_ids, offsets
