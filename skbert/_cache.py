"""Small in-process caches, so that the many fits of a grid search load and tokenize once.

``GridSearchCV`` and ``cross_val_score`` fit the same pretrained checkpoint on the same
folds many times. Loaded tokenizers and backbones are kept (the last two) keyed by path
and the files' modification times, and every fit gets its own deep copy; a backbone is
kept only from its second load on, so that a process that fits once holds no idle copy
of the weights. The token ids of training texts are kept (the last few) keyed by
tokenizer, ``max_length`` and a digest of the texts. This module imports nothing from
skbert.
"""

import copy
import hashlib
import os
import threading
from collections import OrderedDict


class LRU:
    """A thread-safe least-recently-used mapping of at most ``size`` entries.

    With ``weight`` (a function of a value) and ``max_weight``, also evicts the least
    recently used entries while the values' weights add up to more than ``max_weight``.
    """

    def __init__(self, size, *, weight=None, max_weight=None):
        self.size = size
        self._weight = weight
        self._max_weight = max_weight
        self._items = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key, value):
        with self._lock:
            if self.size <= 0:
                return
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size or self._overweight():
                self._items.popitem(last=False)

    def _overweight(self):
        if self._weight is None or len(self._items) <= 1:
            return False
        return sum(map(self._weight, self._items.values())) > self._max_weight

    def clear(self):
        with self._lock:
            self._items.clear()


PRETRAINED = LRU(2)
# Keys of models loaded once and handed out without being kept.
LOADED_ONCE = LRU(8)
# Token ids of training texts: enough entries for the folds of a grid search (which fits
# every fold of one candidate before the next), at most 2**25 tokens (128 MiB) in all.
ENCODINGS = LRU(16, weight=lambda encoding: len(encoding[0]), max_weight=1 << 25)


def folder_stamp(path):
    """What identifies the contents of a model folder: its files' names, sizes and times.

    A hub id (not a folder) is its own stamp: ``from_pretrained`` caches it unchanged.
    """
    path = os.fspath(path)
    if not os.path.isdir(path):
        return path
    with os.scandir(path) as entries:
        return (path,) + tuple(sorted(
            (e.name, e.stat().st_size, e.stat().st_mtime_ns) for e in entries if e.is_file()
        ))


def load_copy(kind, path, load, keep_first=True):
    """A deep copy of ``load()``, which runs once per (kind, folder contents).

    With ``keep_first=False`` the first load is handed out as it is and not kept; the
    second is kept (``load`` then runs twice in all).
    """
    key = (kind, folder_stamp(path))
    value = PRETRAINED.get(key)
    if value is None:
        value = load()
        if not keep_first and LOADED_ONCE.get(key) is None:
            LOADED_ONCE.put(key, True)
            return value
        PRETRAINED.put(key, value)
    duplicate = copy.deepcopy(value)
    if kind == "tokenizer":
        duplicate._skbert_cache_key = key  # lets encode() reuse token ids of this tokenizer
    return duplicate


def texts_digest(texts):
    """A digest of a list of texts (or text pairs) that tells lists apart.

    Each text is its kind and the byte length of every part before the bytes, so no
    text can imitate a separator ("a\x00b" is neither ("a", "b") nor two texts).
    """
    digest = hashlib.blake2b(digest_size=16)
    for text in texts:
        parts = (text,) if isinstance(text, str) else text
        digest.update(b"S" if isinstance(text, str) else b"P")
        for part in parts:
            data = part.encode("utf-8", "surrogatepass")
            digest.update(len(data).to_bytes(8, "little"))
            digest.update(data)
    return digest.digest()


def clear():
    """Forget every cached model, tokenizer and encoding."""
    PRETRAINED.clear()
    LOADED_ONCE.clear()
    ENCODINGS.clear()
