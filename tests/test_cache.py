"""The in-process caches that let a grid search load and tokenize once."""

import numpy as np
import pytest
import torch
from sklearn.model_selection import GridSearchCV

from skbert import BertTextClassifier, _cache, _pretrained, _tokenization

from .conftest import build_tiny_bert, make_texts


@pytest.fixture
def fresh_cache():
    _cache.clear()
    yield
    _cache.clear()


def _count_loads(monkeypatch):
    from transformers import AutoModel, AutoTokenizer

    calls = []
    for cls in (AutoModel, AutoTokenizer):
        original = cls.from_pretrained.__func__

        def counting(klass, *args, _original=original, _name=cls.__name__, **kwargs):
            calls.append(_name)
            return _original(klass, *args, **kwargs)

        monkeypatch.setattr(cls, "from_pretrained", classmethod(counting))
    return calls


def test_backbone_kept_from_its_second_load_and_copied_per_caller(
    tiny_model_dir, fresh_cache, monkeypatch
):
    """Check that a backbone loaded once is not kept (no idle copy for a single fit), that
    the second load is kept, and that every caller gets an independent copy."""
    calls = _count_loads(monkeypatch)
    first = _pretrained.load_backbone(tiny_model_dir)
    assert calls == ["AutoModel"] and not _cache.PRETRAINED._items
    with torch.no_grad():
        first.embeddings.word_embeddings.weight.add_(1.0)  # training mutates weights
    second = _pretrained.load_backbone(tiny_model_dir)
    assert calls == ["AutoModel"] * 2 and len(_cache.PRETRAINED._items) == 1
    with torch.no_grad():
        second.embeddings.word_embeddings.weight.add_(2.0)
    third = _pretrained.load_backbone(tiny_model_dir)
    assert calls == ["AutoModel"] * 2
    assert len({id(first), id(second), id(third)}) == 3
    weights = [m.embeddings.word_embeddings.weight for m in (first, second, third)]
    assert not torch.equal(weights[0], weights[2]) and not torch.equal(weights[1], weights[2])
    _pretrained.load_tokenizer(tiny_model_dir)
    _pretrained.load_tokenizer(tiny_model_dir)
    assert calls == ["AutoModel"] * 2 + ["AutoTokenizer"]


def test_changed_folder_is_read_again(tmp_path, fresh_cache, monkeypatch):
    """Check that rewriting a model folder invalidates what was cached from it."""
    folder = build_tiny_bert(tmp_path / "m")
    calls = _count_loads(monkeypatch)
    from transformers import BertModel

    before = _pretrained.load_backbone(folder)
    torch.manual_seed(123)
    model = BertModel(before.config)
    model.save_pretrained(folder)  # same folder, new weights
    after = _pretrained.load_backbone(folder)
    assert calls.count("AutoModel") == 2
    assert torch.equal(after.embeddings.word_embeddings.weight,
                       model.embeddings.word_embeddings.weight)


def test_encodings_reused_only_for_the_same_texts(tiny_model_dir, fresh_cache):
    """Check that the same texts reuse read-only ids; other texts or lengths do not."""
    tokenizer = _pretrained.load_tokenizer(tiny_model_dir)
    texts, _ = make_texts(20, seed=2)
    first = _tokenization.encode(tokenizer, texts, 16, cache=True)
    assert _tokenization.encode(tokenizer, list(texts), 16, cache=True) is first
    assert not first[0].flags.writeable
    assert _tokenization.encode(tokenizer, texts, 8, cache=True) is not first
    other = _tokenization.encode(tokenizer, texts[:-1] + ["good film"], 16, cache=True)
    assert other is not first
    # Without cache=True (prediction), nothing is kept or reused.
    assert _tokenization.encode(tokenizer, texts, 16) is not first
    # A tokenizer that did not come from the cache is never served cached ids.
    from transformers import AutoTokenizer

    plain = _tokenization.encode(AutoTokenizer.from_pretrained(tiny_model_dir), texts, 16,
                                 cache=True)
    assert plain is not first and plain[0].flags.writeable
    np.testing.assert_array_equal(plain[0], first[0])
    np.testing.assert_array_equal(plain[2], first[2])


def test_single_text_and_text_pair_do_not_share_a_digest():
    """Check that a text holding a NUL is told apart from the pair it would spell."""
    assert _cache.texts_digest(["a\x00b"]) != _cache.texts_digest([("a", "b")])


def test_encodings_bounded_by_tokens():
    """Check that the least recently used encodings go once the token bound is passed."""
    lru = _cache.LRU(10, weight=len, max_weight=5)
    lru.put("a", [1, 2, 3])
    lru.put("b", [4, 5])
    assert lru.get("a") is not None and lru.get("b") is not None
    lru.put("c", [6])  # 6 tokens: "a", the least recently used, goes
    assert lru.get("a") is None and lru.get("b") == [4, 5] and lru.get("c") == [6]


def test_grid_search_same_with_and_without_cache(tiny_params, fresh_cache, monkeypatch):
    """Check that the cache reads the checkpoint once per search and changes no result."""
    X, y = make_texts(90, seed=9)
    grid = {"learning_rate": [1e-3, 5e-3]}
    params = dict(tiny_params, max_iter=2)
    calls = _count_loads(monkeypatch)
    encoded = []
    encode = _tokenization._encode
    monkeypatch.setattr(_tokenization, "_encode",
                        lambda *args: encoded.append(len(args[1])) or encode(*args))

    def search():
        calls.clear()
        encoded.clear()
        return GridSearchCV(BertTextClassifier(**params), grid, cv=3).fit(X, y)

    cached = search()
    assert calls.count("AutoModel") == 2  # the first fit's read, kept from the second
    # Each fold's training texts are tokenized once for both candidates, and the refit's
    # once; each fold's test texts once per candidate (prediction is not cached).
    assert encoded.count(60) == 3 and encoded.count(90) == 1 and encoded.count(30) == 6
    monkeypatch.setattr(_cache.PRETRAINED, "size", 0)
    monkeypatch.setattr(_cache.ENCODINGS, "size", 0)
    _cache.clear()
    uncached = search()
    assert calls.count("AutoModel") == 7
    assert encoded.count(60) == 6
    np.testing.assert_allclose(cached.cv_results_["mean_test_score"],
                               uncached.cv_results_["mean_test_score"])
    np.testing.assert_allclose(cached.predict_proba(X[:10]), uncached.predict_proba(X[:10]),
                               atol=1e-6)
