"""Texts to unpadded token ids, once, with the fast tokenizer.

This module imports nothing from skbert.
"""

from itertools import chain

import numpy as np

# Texts tokenized per call of the fast tokenizer: large enough to keep its Rust
# threads busy, small enough that the Python lists it returns stay small.
_TOKENIZE_CHUNK = 8192


def encode(tokenizer, texts, max_length):
    """Tokenize texts once into flat, unpadded token ids.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        The model's tokenizer.
    texts : list of str or list of tuple of (str, str)
        Validated texts or text pairs.
    max_length : int
        Longest sequence kept, special tokens included; longer ones are truncated.

    Returns
    -------
    ids : ndarray of int32
        Token ids of all texts, concatenated.
    type_ids : ndarray of int8 or None
        Segment ids aligned with ``ids`` for text pairs, None for single texts.
    offsets : ndarray of int64 of shape (n_texts + 1,)
        Text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.
    """
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
