"""GridSearchCV and RandomizedSearchCV over skbert on a Dask cluster (joblib's dask backend).

One search runs on a ``LocalCluster`` of 2 worker processes of 1 thread each (so the
estimator, data and scores really travel by pickle) and is compared with the same search
run sequentially in this process. Counters installed on the workers record what the
pretrained cache (``skbert._cache``) loaded from disk and what it served from memory.
"""

import os

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV

from skbert import BertTextClassifier

from .conftest import local_cluster, make_texts

# Searches on a cluster match sequential ones whatever the precision: run once in CI.
pytestmark = pytest.mark.any_precision

dask = pytest.importorskip("dask", reason="dask is in the test extra")
distributed = pytest.importorskip("distributed", reason="dask[distributed] is in the test extra")

N_WORKERS = 2
GRID = {"learning_rate": [2e-3, 5e-3, 1e-2]}
CV = 2  # 3 candidates x 2 folds: 6 fits, about 3 per worker
SCORING = ["accuracy", "neg_log_loss"]


@pytest.fixture(scope="module")
def search_params(tiny_params):
    """The tiny BERT, trained briefly: each fit takes a fraction of a second."""
    return dict(tiny_params, max_iter=2)


@pytest.fixture(scope="module")
def client():
    """A Client on 2 worker processes of 1 thread each, closed after the module
    (the environment put back: see ``local_cluster``)."""
    # The nanny's OMP_NUM_THREADS=1 and MKL_NUM_THREADS=1 (this process's values, say a
    # CI's, would win), without its MALLOC_TRIM_THRESHOLD_ as docs/scaling.md advises.
    saved = {name: os.environ.pop(name) for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
             if name in os.environ}
    no_trim = {"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}
    try:
        with local_cluster(N_WORKERS, no_trim) as client:
            yield client
    finally:
        os.environ.update(saved)


@pytest.fixture
def one_torch_thread():
    """torch on one thread in this process, as on the workers, for the sequential runs."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _worker_report(client):
    """Per worker: install counters once, then report what ran there since.

    ``fits`` counts ``BertTextClassifier.fit`` calls and ``most_at_once`` the most that
    ran at the same time; ``requests`` counts ``_cache.load_copy`` calls by kind (one
    tokenizer and one backbone per fit), ``disk`` the ``from_pretrained`` calls behind
    them (cache misses); ``cached`` has the ids of the objects the cache holds.
    """

    def report():
        import threading

        import torch
        from transformers import AutoModel, AutoTokenizer

        from skbert import BertTextClassifier, _cache

        if not hasattr(_cache, "_test_counts"):
            counts = _cache._test_counts = {"fits": 0, "running": 0, "most_at_once": 0,
                                            "requests": {}, "disk": {}}
            lock = threading.Lock()

            def tally(group, key):
                with lock:
                    counts[group][key] = counts[group].get(key, 0) + 1

            original_fit = BertTextClassifier.fit

            def fit(self, *args, **kwargs):
                with lock:
                    counts["fits"] += 1
                    counts["running"] += 1
                    counts["most_at_once"] = max(counts["most_at_once"], counts["running"])
                try:
                    return original_fit(self, *args, **kwargs)
                finally:
                    with lock:
                        counts["running"] -= 1

            BertTextClassifier.fit = fit
            original_load_copy = _cache.load_copy

            def load_copy(kind, path, load, keep_first=True):
                tally("requests", kind)
                return original_load_copy(kind, path, load, keep_first)

            _cache.load_copy = load_copy  # _pretrained calls _cache.load_copy(...)
            for cls in (AutoModel, AutoTokenizer):
                original = cls.from_pretrained.__func__

                def counting(klass, *args, _original=original, _name=cls.__name__, **kw):
                    tally("disk", _name)
                    return _original(klass, *args, **kw)

                cls.from_pretrained = classmethod(counting)
        counts = _cache._test_counts
        return {
            "fits": counts["fits"],
            "most_at_once": counts["most_at_once"],
            "requests": dict(counts["requests"]),
            "disk": dict(counts["disk"]),
            "cached": {key[0]: id(value) for key, value in _cache.PRETRAINED._items.items()},
            "encodings": len(_cache.ENCODINGS._items),
            "torch_threads": torch.get_num_threads(),
            "pid": os.getpid(),
        }

    return client.run(report)


def _search(search_params, **kwargs):
    return GridSearchCV(BertTextClassifier(**search_params), GRID, cv=CV, scoring=SCORING,
                        refit=False, **kwargs)


@pytest.fixture(scope="module")
def dask_search(client, search_params, toy_data):
    """The grid search run on the cluster, with the workers' reports before and after."""
    X, y, _, _ = toy_data
    before = _worker_report(client)
    search = _search(search_params, n_jobs=-1)  # the dask backend runs one fit per thread
    with joblib.parallel_backend("dask"):
        search.fit(X[:80], y[:80])
    after = _worker_report(client)
    return search, before, after


def test_dask_grid_search_matches_sequential(dask_search, search_params, toy_data,
                                             one_torch_thread):
    """Check that the cluster's cv_results_ scores equal those of a sequential search."""
    X, y, _, _ = toy_data
    search, _, _ = dask_search
    sequential = _search(search_params, n_jobs=1).fit(X[:80], y[:80])
    assert search.cv_results_["params"] == sequential.cv_results_["params"]
    for name in SCORING:
        for split in range(CV):
            key = f"split{split}_test_{name}"
            np.testing.assert_allclose(search.cv_results_[key], sequential.cv_results_[key],
                                       rtol=1e-5, atol=1e-7, err_msg=key)
        assert list(search.cv_results_[f"rank_test_{name}"]) == list(
            sequential.cv_results_[f"rank_test_{name}"])
    # Not constant: the candidates really trained differently.
    assert np.ptp(search.cv_results_["mean_test_neg_log_loss"]) > 1e-3


def test_dask_grid_search_one_fit_at_a_time_per_worker(dask_search, client):
    """Check that every worker process ran fits, one at a time, with torch on one thread."""
    _, _, after = dask_search
    assert sorted(client.nthreads().values()) == [1] * N_WORKERS
    assert len({report["pid"] for report in after.values()}) == N_WORKERS
    assert sum(report["fits"] for report in after.values()) == len(GRID["learning_rate"]) * CV
    for worker, report in after.items():
        assert report["fits"] >= 1 and report["most_at_once"] == 1, (worker, report)
        assert report["torch_threads"] == 1, worker  # the nanny's OMP/MKL_NUM_THREADS=1


def test_dask_grid_search_cache_serves_repeated_fits_per_worker(dask_search):
    """Check that each worker read the checkpoint from disk at most twice (the tokenizer
    once, the backbone from its second load on) however many fits it ran, that its cache
    then holds one tokenizer and, after two fits, one backbone, and that it tokenized each
    fold's training texts once."""
    _, before, after = dask_search
    assert all(report["fits"] == 0 and report["disk"] == {} for report in before.values())
    for worker, report in after.items():
        fits = report["fits"]
        assert report["requests"] == {"tokenizer": fits, "backbone": fits}, (worker, report)
        assert report["disk"] == {"AutoTokenizer": 1, "AutoModel": min(fits, 2)}, (worker, report)
        expected = {"tokenizer", "backbone"} if fits >= 2 else {"tokenizer"}
        assert set(report["cached"]) == expected, (worker, report)
        # The token ids of each fold's training texts, tokenized once for all candidates.
        assert 1 <= report["encodings"] <= min(fits, CV), (worker, report)


def test_dask_randomized_search_matches_sequential(client, search_params, toy_data,
                                                   one_torch_thread):
    """Check that RandomizedSearchCV with a random_state draws the same candidates and
    gets the same scores on the cluster as in this process."""
    X, y, _, _ = toy_data
    distributions = {"learning_rate": [2e-3, 5e-3, 1e-2, 2e-2], "batch_size": [8, 16]}

    def search():
        return RandomizedSearchCV(BertTextClassifier(**search_params), distributions,
                                  n_iter=2, cv=CV, scoring="neg_log_loss", random_state=0,
                                  refit=False)

    with joblib.parallel_config(backend="dask"):
        on_cluster = search().fit(X[:80], y[:80])
    sequential = search().fit(X[:80], y[:80])
    assert on_cluster.cv_results_["params"] == sequential.cv_results_["params"]
    np.testing.assert_allclose(on_cluster.cv_results_["mean_test_score"],
                               sequential.cv_results_["mean_test_score"], rtol=1e-5, atol=1e-7)


def test_dask_best_candidate_refits_on_a_worker(client, search_params, toy_data,
                                               one_torch_thread):
    """Check that the best candidate fitted on a worker with client.submit comes back
    fitted, and predicts as the same fit in this process (docs/scaling.md's pattern)."""
    X, y, X_test, _ = toy_data
    base = BertTextClassifier(**search_params).set_params(learning_rate=1e-2)
    remote = client.submit(clone(base).fit, X[:80], y[:80]).result()
    local = clone(base).fit(X[:80], y[:80])
    np.testing.assert_allclose(remote.predict_proba(X_test), local.predict_proba(X_test),
                               rtol=1e-5, atol=1e-6)


def test_dask_search_scatters_an_array_of_texts_once(client, search_params, monkeypatch):
    """Check that texts given as a NumPy object array are scattered to the cluster once
    per search, and a list is not (joblib's dask backend scatters arguments that can be
    weakly referenced and that dask sizes at over 1 kB: for an object array, 8 bytes a
    text), and that skbert fits on such an array."""
    X, y = make_texts(160, seed=5)  # 1,280 bytes as an object array
    scattered = []
    original = client.scatter

    def scatter(data, *args, **kwargs):
        scattered.append(type(data).__name__)
        return original(data, *args, **kwargs)

    monkeypatch.setattr(client, "scatter", scatter)
    search = GridSearchCV(BertTextClassifier(**search_params), {"max_iter": [1]}, cv=CV,
                          refit=False)
    with joblib.parallel_config(backend="dask"):
        search.fit(np.asarray(X, dtype=object), y)
    assert scattered == ["ndarray", "ndarray"]  # X and y (1,280 bytes too), once for both fits
    assert search.cv_results_["mean_test_score"][0] > 0
    scattered.clear()
    with joblib.parallel_config(backend="dask"):
        search.fit(X, y)
    assert scattered == ["ndarray"]  # y only: the list of texts travels inside every task
