"""Shared fixtures: a tiny BERT built offline once per session, and toy data."""

import contextlib
import os
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(
    os.environ.get("SKBERT_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "datasets")
)

_POSITIVE = ["good", "great", "fine", "lovely", "superb", "happy", "nice", "brilliant"]
_NEGATIVE = ["bad", "awful", "poor", "dull", "boring", "sad", "nasty", "terrible"]
_NEUTRAL = ["the", "film", "was", "a", "plot", "and", "acting", "really", "quite", "movie"]


def pytest_addoption(parser):
    parser.addoption(
        "--cpu-bf16", choices=("on", "off", "probe"), default="probe",
        help="What inference_dtype='auto' takes on the CPU: bf16 (on), fp32 (off), or what "
             "this CPU's probe says (probe). make test runs the suite on and off, so that "
             "it passes on every kind of CPU.",
    )


def pytest_configure(config):
    """Force the CPU bf16 probe through SKBERT_CPU_BF16, which subprocesses inherit."""
    forced = {"on": "1", "off": "0"}.get(config.getoption("--cpu-bf16"))
    if forced is not None:
        os.environ["SKBERT_CPU_BF16"] = forced


def pytest_report_header(config):
    return f"skbert: SKBERT_CPU_BF16={os.environ.get('SKBERT_CPU_BF16', '(probe)')}"


def make_texts(n, seed=0, n_classes=2):
    """Texts whose class shows in a sentiment word among neutral filler words."""
    rng = np.random.default_rng(seed)
    groups = [_NEGATIVE, _POSITIVE, ["ok", "average", "so-so", "mixed"]][:n_classes]
    y = rng.integers(0, n_classes, size=n)
    texts = []
    for label in y:
        words = list(rng.choice(_NEUTRAL, size=rng.integers(2, 12)))
        words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(groups[label])))
        texts.append(" ".join(words))
    return texts, y


def make_multilabel_texts(n, seed=0):
    """Texts with any of three labels, each shown by a word from its own group: a
    positive word (column 0), a negative word (column 1), a middling word (column 2)."""
    rng = np.random.default_rng(seed)
    groups = [_POSITIVE, _NEGATIVE, ["ok", "average", "mixed"]]
    Y = (rng.random((n, 3)) < [0.5, 0.4, 0.3]).astype(np.int64)
    texts = []
    for row in Y:
        words = list(rng.choice(_NEUTRAL, size=rng.integers(2, 10)))
        for column in np.flatnonzero(row):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(groups[column])))
        texts.append(" ".join(words))
    return texts, Y


def build_tiny_bert(folder, hidden_size=32):
    """Save a 2-layer random BERT and its WordPiece tokenizer into ``folder``."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizer

    words = sorted(set(_POSITIVE + _NEGATIVE + _NEUTRAL + ["ok", "average", "so", "-", "mixed"]))
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = [f"##{c}" for c in letters]
    tokens = list(dict.fromkeys(specials + words + letters + pieces))  # "a" is a word too
    vocab = {tok: i for i, tok in enumerate(tokens)}
    tokenizer = BertTokenizer(vocab=vocab)
    assert tokenizer.tokenize("good film")[0] == "good"  # vocab really loaded
    config = BertConfig(
        vocab_size=len(vocab), hidden_size=hidden_size, num_hidden_layers=2,
        num_attention_heads=2, intermediate_size=2 * hidden_size, max_position_embeddings=64,
        type_vocab_size=2,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random BERT in a temp folder, loaded through from_pretrained by the tests."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def toy_data():
    """A learnable binary task: 120 training and 60 test texts."""
    X, y = make_texts(180, seed=1)
    return X[:120], y[:120], X[120:], y[120:]


@pytest.fixture(scope="session")
def tiny_params(tiny_model_dir):
    """Parameters under which the tiny BERT learns the toy task in seconds."""
    return dict(
        model_name_or_path=tiny_model_dir, learning_rate=5e-3, max_iter=8, batch_size=16,
        max_length=32, device="cpu", random_state=0,
    )


@pytest.fixture(scope="session")
def fitted(tiny_params, toy_data):
    """A BertTextClassifier fitted on the toy task with string labels (do not mutate)."""
    from skbert import BertTextClassifier

    X, y, _, _ = toy_data
    labels = np.array(["neg", "pos"])[y]
    return BertTextClassifier(**tiny_params).fit(X, labels)


@contextlib.contextmanager
def local_cluster(n_workers, config):
    """A ``distributed.Client`` on ``n_workers`` local worker processes of 1 thread each,
    the cluster started under dask ``config``; closed at the end of the block.

    Starting a nanny writes its worker variables (``OMP_NUM_THREADS=1``,
    ``MKL_NUM_THREADS=1``, ``PYTHONHASHSEED``...) into this process's environment too;
    the environment is put back afterwards, so that later tests' subprocesses do not
    inherit them.
    """
    import dask
    import distributed

    saved = dict(os.environ)
    try:
        with dask.config.set(config):
            cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=1,
                                               processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        try:
            client.wait_for_workers(n_workers)
            yield client
        finally:
            client.close()
            cluster.close()
    finally:
        os.environ.clear()
        os.environ.update(saved)
