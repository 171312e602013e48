"""Texts to unpadded token ids, once, with the fast tokenizer.

A text becomes one token sequence (``truncation="head"`` or ``"head_tail"``) or, with
``truncation="window"``, several overlapping windows of it; :class:`Encoding` holds the
sequences flat, and ``windows`` says which belong to which text. Of skbert it uses only
``_cache``, to reuse the ids of texts tokenized before by the same tokenizer (the folds
of a grid search). It also words the warning about texts cut by truncation
(:func:`warn_truncated`), once per process for each setting.
"""

import os
import sys
import threading
import warnings
import weakref
from itertools import chain
from typing import NamedTuple

import numpy as np

from . import _cache

# Texts tokenized per call of the fast tokenizer: large enough to keep its Rust
# threads busy, small enough that the Python lists it returns stay small.
_TOKENIZE_CHUNK = 8192
# The share of a "head_tail" sequence's text tokens taken from the start of the text,
# the rest from its end: 128 of 510 was the best split for long reviews in Sun et al.
# (2019), "How to Fine-Tune BERT for Text Classification?".
HEAD_SHARE = 0.25
# The settings (estimator, model, max_length, truncation, fit or predict) whose
# truncation warning this process has shown: the fits of a grid search warn once.
_TRUNCATION_WARNED = set()
_TRUNCATION_LOCK = threading.Lock()


class Encoding(NamedTuple):
    """Token sequences of texts, flat and unpadded.

    Attributes
    ----------
    ids : ndarray of int32
        Token ids of all sequences, concatenated.
    type_ids : ndarray of int8 or None
        Segment ids aligned with ``ids`` for text pairs, None for single texts.
    offsets : ndarray of int64 of shape (n_sequences + 1,)
        Sequence ``k`` is ``ids[offsets[k]:offsets[k + 1]]``.
    windows : ndarray of int64 of shape (n_texts + 1,) or None
        ``truncation="window"``: the sequences of text ``i`` are
        ``windows[i]:windows[i + 1]`` (at least one each). None: sequence ``i`` is text
        ``i``.
    """

    ids: np.ndarray
    type_ids: object
    offsets: np.ndarray
    windows: object = None

    @property
    def n_texts(self):
        """Number of texts encoded."""
        return len(self.offsets) - 1 if self.windows is None else len(self.windows) - 1

    def sequences(self, rows):
        """The sequences of the texts ``rows``, and for each the position in ``rows`` of
        its text (None when a sequence is a text).

        Parameters
        ----------
        rows : ndarray of int
            Texts, in any order.

        Returns
        -------
        sequences : ndarray of int64
            Indices into ``offsets``, the windows of ``rows[0]`` first, in order.
        owner : ndarray of int64 or None
            ``rows[owner[k]]`` is the text of ``sequences[k]``; non-decreasing.
        """
        rows = np.asarray(rows, dtype=np.int64)
        if self.windows is None:
            return rows, None
        starts, counts = self.windows[rows], np.diff(self.windows)[rows]
        owner = np.repeat(np.arange(len(rows)), counts)
        first = np.repeat(np.cumsum(counts) - counts, counts)
        return np.repeat(starts, counts) + np.arange(len(owner)) - first, owner


def pool_windows(values, owner, how):
    """Pool the rows of ``values`` that belong to one text (``owner``, non-decreasing,
    every text with at least one row): their mean or their element-wise max.

    Parameters
    ----------
    values : ndarray of shape (n_sequences, width)
    owner : ndarray of int or None
        Text position of each row, as ``Encoding.sequences`` returns it; None returns
        ``values`` as they are.
    how : {"mean", "max"}

    Returns
    -------
    pooled : ndarray of shape (n_texts, width)
    """
    if owner is None:
        return values
    starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
    if how == "max":
        return np.maximum.reduceat(values, starts, axis=0)
    sums = np.add.reduceat(values.astype(np.float64), starts, axis=0)
    counts = np.diff(np.r_[starts, len(owner)])
    return (sums / counts[:, None]).astype(values.dtype)


_LOCKS = weakref.WeakKeyDictionary()  # tokenizer -> the lock of its calls
_LOCKS_LOCK = threading.Lock()


def _tokenize(tokenizer, *args, **kwargs):
    """``tokenizer(*args, **kwargs)``, one call at a time per tokenizer.

    A fast tokenizer sets truncation on its shared Rust tokenizer and then encodes, in
    two steps: two threads calling it with different settings (a prediction's
    ``truncation=True`` and another's ``count_truncated`` with ``False``) could each
    encode under the other's, giving sequences longer than ``max_length``.
    """
    with _LOCKS_LOCK:
        lock = _LOCKS.get(tokenizer)
        if lock is None:
            lock = _LOCKS[tokenizer] = threading.Lock()
    with lock:
        return tokenizer(*args, **kwargs)


def encode(tokenizer, texts, max_length, *, truncation="head", stride=None, cache=False):
    """Tokenize texts once into flat, unpadded token sequences.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
        The model's tokenizer.
    texts : list of str or list of tuple of (str, str)
        Validated texts or text pairs.
    max_length : int
        Longest sequence kept, special tokens included.
    truncation : {"head", "head_tail", "window"}, default="head"
        What a text longer than ``max_length`` keeps: its first tokens; its first
        ``HEAD_SHARE`` and its last tokens; or all of it, as overlapping windows of
        ``max_length`` tokens each (special tokens included). Text pairs: "head" only
        (the longer text of a pair is cut first).
    stride : int or None, default=None
        ``truncation="window"``: text tokens from the start of a window to the start of
        the next, at most a window's text tokens (so that every token is in a window);
        None takes half of them.
    cache : bool, default=False
        Whether to keep the result for the next call with the same texts (training sets,
        which the fits of a grid search repeat; prediction inputs stream through).

    Returns
    -------
    encoding : Encoding

    Raises
    ------
    ValueError
        When ``stride`` exceeds a window's text tokens, or text pairs are given with
        another truncation than "head" or a ``max_length`` that cannot hold a pair
        (see ``check_pair_room``).

    Notes
    -----
    With ``cache`` and a tokenizer loaded through the cache (see ``_cache.load_copy``),
    the result is kept and returned again, read-only, for the same texts and settings.
    """
    if isinstance(texts[0], tuple):
        if truncation != "head":
            raise ValueError(
                f"truncation={truncation!r} applies to single texts; text pairs are cut "
                "from the end of the longer text of each pair (truncation='head')."
            )
        check_pair_room(tokenizer, max_length)
    if truncation == "window":
        stride = window_stride(tokenizer, max_length, stride)
    tokenizer_key = getattr(tokenizer, "_skbert_cache_key", None)
    if not cache or tokenizer_key is None:
        return _encode(tokenizer, texts, max_length, truncation, stride)
    key = (tokenizer_key, max_length, truncation, stride, _cache.texts_digest(texts))
    encoding = _cache.ENCODINGS.get(key)
    if encoding is None:
        encoding = _encode(tokenizer, texts, max_length, truncation, stride)
        for array in encoding:
            if array is not None:
                array.setflags(write=False)
        _cache.ENCODINGS.put(key, encoding)
    return encoding


def special_tokens(tokenizer):
    """The ids the tokenizer puts before and after a single text (``[CLS]``, ``[SEP]``)."""
    marker = _tokenize(tokenizer, "a", add_special_tokens=False)["input_ids"]
    full = _tokenize(tokenizer, "a")["input_ids"]
    for start in range(len(full) - len(marker) + 1):
        if full[start : start + len(marker)] == marker:
            return full[:start], full[start + len(marker):]
    raise ValueError(f"cannot find where {type(tokenizer).__name__} puts a text among its "
                     "special tokens")


def check_pair_room(tokenizer, max_length):
    """Refuse a ``max_length`` that cannot hold a text pair.

    A pair's sequence holds the special tokens the tokenizer adds to a pair (3 for
    BERT: ``[CLS] a [SEP] b [SEP]``) and at least one token of each text. Below that the
    fast tokenizer cannot cut the pair: it returns it whole (longer than
    ``max_length``, up to a crash beyond the model's positions) or drops a text.

    Parameters
    ----------
    tokenizer : transformers.PreTrainedTokenizerFast
    max_length : int

    Raises
    ------
    ValueError
        Naming ``max_length`` and the smallest value that holds a pair.
    """
    special = tokenizer.num_special_tokens_to_add(pair=True)
    if max_length < special + 2:
        raise ValueError(
            f"max_length={max_length} cannot hold a text pair: the tokenizer adds "
            f"{special} special tokens to a pair, and each of its two texts needs at least "
            f"one token. Use max_length >= {special + 2} for text pairs."
        )


def window_stride(tokenizer, max_length, stride):
    """The stride of ``truncation="window"``: ``stride``, checked, or half a window.

    Raises
    ------
    ValueError
        When ``stride`` is larger than a window's text tokens: tokens between two
        windows would be in none.
    """
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"max_length={max_length} leaves no room for text tokens beside "
                         f"the {len(prefix) + len(suffix)} special tokens of a window.")
    if stride is None:
        return max(1, room // 2)
    if stride > room:
        raise ValueError(
            f"window_stride={stride} is larger than a window's {room} text tokens "
            f"(max_length={max_length} minus {len(prefix) + len(suffix)} special tokens): "
            f"the tokens between two windows would be in none. Use window_stride <= {room}."
        )
    return stride


def _encode(tokenizer, texts, max_length, truncation, stride):
    if truncation == "head":
        return Encoding(*_encode_head(tokenizer, texts, max_length))
    ids, lengths = _tokenize_whole(tokenizer, texts)
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"max_length={max_length} leaves no room for text tokens beside "
                         f"the {len(prefix) + len(suffix)} special tokens of a sequence.")
    if truncation == "head_tail":
        return Encoding(*_head_tail(ids, lengths, room, prefix, suffix), None)
    return _windows(ids, lengths, room, stride, prefix, suffix)


def _tokenize_whole(tokenizer, texts):
    """Every token of every text, without special tokens: flat ids and each text's count."""
    id_chunks, length_chunks = [], []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        out = _tokenize(tokenizer, texts[start : start + _TOKENIZE_CHUNK],
                        add_special_tokens=False, truncation=False,
                        return_attention_mask=False, return_token_type_ids=False,
                        verbose=False)["input_ids"]
        lengths = np.fromiter(map(len, out), dtype=np.int64, count=len(out))
        id_chunks.append(np.fromiter(chain.from_iterable(out), dtype=np.int32,
                                     count=int(lengths.sum())))
        length_chunks.append(lengths)
    return np.concatenate(id_chunks), np.concatenate(length_chunks)


def _assemble(ids, starts, sizes, prefix, suffix):
    """Sequences ``prefix + ids[starts[k]:starts[k] + sizes[k]] + suffix``, flat, with
    their offsets. Each row of ``starts``/``sizes`` may hold several pieces (columns),
    joined in order (a piece of size 0 adds nothing)."""
    starts, sizes = np.atleast_2d(starts.T).T, np.atleast_2d(sizes.T).T
    n, extra = len(starts), len(prefix) + len(suffix)
    lengths = sizes.sum(1) + extra
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    out = np.empty(int(offsets[-1]), dtype=np.int32)
    for j, token in enumerate(prefix):
        out[offsets[:-1] + j] = token
    for j, token in enumerate(suffix):
        out[offsets[1:] - len(suffix) + j] = token
    written = offsets[:-1] + len(prefix)
    for column in range(starts.shape[1]):
        size = sizes[:, column]
        total = int(size.sum())
        within = np.arange(total) - np.repeat(np.cumsum(size) - size, size)
        out[np.repeat(written, size) + within] = ids[np.repeat(starts[:, column], size) + within]
        written = written + size
    return out, offsets


def _head_tail(ids, lengths, room, prefix, suffix):
    """One sequence per text: all of it, or its first and last tokens when it is longer
    than ``room``."""
    begins = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=begins[1:])
    begins = begins[:-1]
    long = lengths > room
    head = np.where(long, round(room * HEAD_SHARE), lengths)
    tail = np.where(long, room - head, 0)
    starts = np.stack([begins, begins + lengths - tail], axis=1)
    ids, offsets = _assemble(ids, starts, np.stack([head, tail], axis=1), prefix, suffix)
    return ids, None, offsets


def _windows(ids, lengths, room, stride, prefix, suffix):
    """Windows of ``room`` text tokens every ``stride`` tokens, until one reaches the end
    of the text (the last may be shorter); a text that fits is one window."""
    begins = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=begins[1:])
    counts = np.where(lengths > room, -(-(lengths - room) // stride) + 1, 1)
    windows = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(counts, out=windows[1:])
    owner = np.repeat(np.arange(len(lengths)), counts)
    k = np.arange(len(owner)) - np.repeat(windows[:-1], counts)  # window number in its text
    starts = k * stride
    sizes = np.minimum(room, lengths[owner] - starts)
    flat, offsets = _assemble(ids, begins[owner] + starts, sizes, prefix, suffix)
    return Encoding(flat, None, offsets, windows)


def _encode_head(tokenizer, texts, max_length):
    pairs = isinstance(texts[0], tuple)
    id_chunks, type_chunks, length_chunks = [], [], []
    for start in range(0, len(texts), _TOKENIZE_CHUNK):
        chunk = texts[start : start + _TOKENIZE_CHUNK]
        if pairs:
            first, second = zip(*chunk, strict=True)
            out = _tokenize(
                tokenizer, list(first), list(second), truncation="longest_first",
                max_length=max_length, return_attention_mask=False,
                return_token_type_ids=True,
            )
        else:
            out = _tokenize(
                tokenizer, chunk, truncation=True, max_length=max_length,
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


def count_truncated(tokenizer, texts, encoding, max_length):
    """How many of ``texts`` lost tokens to truncation in ``encoding`` ("head" or
    "head_tail"; windows lose none).

    Only sequences that reach ``max_length`` can have been cut; those texts are
    tokenized again, whole, to tell a cut from a text of exactly ``max_length`` tokens.
    """
    if encoding.windows is not None:
        return 0
    full = np.flatnonzero(np.diff(encoding.offsets) >= max_length)
    if not len(full):
        return 0
    picked = [texts[i] for i in full]
    if isinstance(picked[0], tuple):
        first, second = zip(*picked, strict=True)
        out = _tokenize(tokenizer, list(first), list(second), truncation=False,
                        verbose=False, return_attention_mask=False,
                        return_token_type_ids=False)
    else:
        out = _tokenize(tokenizer, picked, truncation=False, verbose=False,
                        return_attention_mask=False, return_token_type_ids=False)
    return sum(len(ids) > max_length for ids in out["input_ids"])


def warn_truncated(cut, n_texts, max_length, truncation, *, setting):
    """Warn that ``cut`` of ``n_texts`` texts lost tokens to ``truncation`` at
    ``max_length``, on the line of the caller's code that called skbert (not a line of
    skbert, scikit-learn or joblib: the ``search.fit(...)`` of a grid search).

    Under the warnings filters' usual actions ("default", "module", "once") it warns once
    per process for a ``setting`` (a hashable: the estimator and the parameters that
    decide truncation), so that the fits of a search or the chunks of a loop warn once;
    under "always" or "error" (``pytest.warns``, ``-W error``) every time.
    """
    kept = "its first" if truncation == "head" else "the first quarter and the last of its"
    message = (
        f"{cut} of {n_texts} texts ({cut / n_texts:.0%}) are longer than "
        f"max_length={max_length} tokens; truncation={truncation!r} keeps {kept} "
        f"{max_length} tokens. Raise max_length (up to the model's "
        "max_position_embeddings), or set truncation='window' to read every token."
    )
    stacklevel, frame = _outside_stacklevel()
    module = frame.f_globals.get("__name__", "sys") if frame is not None else "sys"
    with _TRUNCATION_LOCK:
        seen = setting in _TRUNCATION_WARNED
        _TRUNCATION_WARNED.add(setting)
    if seen and _filter_action(message, UserWarning, module) not in ("always", "all", "error"):
        return
    warnings.warn(message, UserWarning, stacklevel=stacklevel)


def _outside_stacklevel():
    """``(stacklevel, frame)`` for ``warnings.warn`` called in this module's caller's
    caller: of the first frame outside skbert, scikit-learn and joblib (None and the
    outermost level when every frame is theirs, as in a worker process)."""
    prefixes = tuple(
        os.path.dirname(os.path.abspath(module.__file__)) + os.sep
        for module in (sys.modules.get(name) for name in ("skbert", "sklearn", "joblib"))
        if getattr(module, "__file__", None)
    )
    frame, level = sys._getframe(2), 2  # the caller of warn_truncated is at level 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(prefixes):
        frame, level = frame.f_back, level + 1
    return level, frame


def _filter_action(message, category, module):
    """The action of the first of ``warnings.filters`` that matches a warning of
    ``message`` and ``category`` attributed to ``module`` (any line)."""
    for action, text, kind, of_module, _ in warnings.filters:  # patterns are compiled
        if ((text is None or text.match(message)) and issubclass(category, kind)
                and (of_module is None or of_module.match(module))):
            return action
    return warnings.defaultaction
