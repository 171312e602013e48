"""skbert.dask on a 2-worker LocalCluster: single-process results, weights once per worker."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skbert import BertTextClassifier

from .conftest import local_cluster, make_texts

dask = pytest.importorskip("dask", reason="dask is in the test extra")
dd = pytest.importorskip("dask.dataframe", reason="dask is in the test extra")
db = pytest.importorskip("dask.bag", reason="dask is in the test extra")
da = pytest.importorskip("dask.array", reason="dask is in the test extra")
distributed = pytest.importorskip("distributed", reason="dask[distributed] is in the test extra")
skdask = pytest.importorskip("skbert.dask")

N_TEXTS, N_FILES, N_WORKERS = 300, 6, 2


@pytest.fixture(scope="module")
def client():
    """A Client on 2 worker processes of 1 thread each, closed after the module."""
    # The active memory manager may drop a broadcast replica from an idle worker (it
    # is fetched again when needed); off here so unpickles can be counted exactly.
    with local_cluster(N_WORKERS, {"distributed.scheduler.active-memory-manager.start": False}) \
            as client:
        yield client


@pytest.fixture(scope="module")
def texts():
    return make_texts(N_TEXTS, seed=7)[0]


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory, texts):
    """``N_FILES`` Parquet files, one partition each, indexed by a global ``id``."""
    folder = tmp_path_factory.mktemp("reviews")
    for i, rows in enumerate(np.array_split(np.arange(N_TEXTS), N_FILES)):
        frame = pd.DataFrame(
            {"text": [texts[r] for r in rows], "stars": rows % 5},
            index=pd.Index(rows, name="id"),
        )
        frame.to_parquet(folder / f"part.{i}.parquet", engine="pyarrow")
    return folder


@pytest.fixture(scope="module")
def ddf(parquet_dir):
    ddf = dd.read_parquet(parquet_dir, index="id", calculate_divisions=True)
    assert ddf.npartitions == N_FILES and ddf.known_divisions
    return ddf


@pytest.fixture(scope="module")
def clf(fitted):
    """A copy of ``fitted`` predicting in float32.

    Under bf16 autocast ("auto" on CPUs where bf16 pays) a text's probabilities depend
    slightly on the texts batched with it, which partitioning changes (docs/scaling.md).
    """
    return pickle.loads(pickle.dumps(fitted)).set_params(inference_dtype="float32")


@pytest.fixture(scope="module")
def expected(clf, texts):
    """Single-process probabilities and labels of all the texts, in order."""
    return clf.predict_proba(texts), clf.predict(texts)


def _worker_unpickles(client, reset=False):
    """Per worker, BertTextClassifier.__setstate__ calls since the last reset."""

    def count(reset):
        import skbert._classifier as module

        cls = module.BertTextClassifier
        if not hasattr(module, "_test_unpickles"):
            original = cls.__setstate__

            def counting(self, state):
                module._test_unpickles += 1
                original(self, state)

            cls.__setstate__ = counting
            module._test_unpickles = 0
        n = module._test_unpickles
        if reset:
            module._test_unpickles = 0
        return n

    return client.run(count, reset)


def test_predict_proba_matches_single_process(client, ddf, clf, expected, monkeypatch):
    """Check that probabilities equal one-process ones row for row, index and divisions kept."""
    with monkeypatch.context() as patch:
        # Building the collection must not predict anything here (no meta inference).
        patch.setattr(BertTextClassifier, "predict_proba", None)
        proba = skdask.predict_proba(ddf, clf, text_column="text")
    assert isinstance(proba, dd.DataFrame)
    assert list(proba.columns) == clf.classes_.tolist() == ["neg", "pos"]
    assert (proba.dtypes == np.float64).all()
    assert proba.npartitions == N_FILES
    assert proba.divisions == ddf.divisions
    out = proba.compute()
    pd.testing.assert_index_equal(out.index, ddf.index.compute())
    np.testing.assert_allclose(out.to_numpy(), expected[0], rtol=0, atol=1e-6)


def test_predict_matches_single_process(client, ddf, clf, expected):
    """Check that labels equal one-process ones and join back onto the input frame."""
    labels = skdask.predict(ddf, clf, text_column="text")
    assert isinstance(labels, dd.Series)
    assert labels.name == "prediction" and labels.divisions == ddf.divisions
    out = labels.compute()
    assert out.dtype == labels.dtype
    assert out.tolist() == expected[1].tolist()
    joined = ddf.assign(prediction=labels).compute()
    assert joined["prediction"].tolist() == expected[1].tolist()


def test_series_input(client, ddf, clf, expected):
    """Check that a dask Series of texts works like its DataFrame."""
    out = skdask.predict_proba(ddf["text"], clf).compute()
    np.testing.assert_allclose(out.to_numpy(), expected[0], rtol=0, atol=1e-6)


def test_bag_input(client, texts, clf, expected):
    """Check that a Bag of str gives a Bag of probability rows and of labels, in order."""
    bag = db.from_sequence(texts, npartitions=5)
    rows = skdask.predict_proba(bag, clf)
    assert isinstance(rows, db.Bag)
    rows = rows.compute()
    assert len(rows) == N_TEXTS and rows[0].shape == (2,)
    np.testing.assert_allclose(np.stack(rows), expected[0], rtol=0, atol=1e-6)
    assert skdask.predict(bag, clf).compute() == expected[1].tolist()


def test_weights_travel_once_per_worker(client, ddf, clf, texts):
    """Check that the estimator is unpickled once per worker, not once per partition.

    ParallelPostFit, which embeds the estimator in every block's task, is the contrast:
    it unpickles once per block (what docs/scaling.md says it costs).
    """
    _worker_unpickles(client, reset=True)
    proba = skdask.predict_proba(ddf, clf)
    labels = skdask.predict(ddf, clf)
    dask.compute(proba, labels)
    counts = _worker_unpickles(client, reset=True)
    assert len(counts) == N_WORKERS
    # Two calls, each scattering the estimator to every worker, for 2 x 6 partitions.
    assert list(counts.values()) == [2] * N_WORKERS

    from dask_ml.wrappers import ParallelPostFit

    blocks = da.from_array(np.array(texts, dtype=object)[:, None], chunks=(N_TEXTS // 6, 1))
    ParallelPostFit(clf, predict_proba_meta=np.empty((0, 2))).predict_proba(blocks).compute()
    assert sum(_worker_unpickles(client).values()) == 6


def test_local_scheduler_holds_one_copy(ddf, clf, expected, monkeypatch):
    """Check that without a client the graph holds the estimator once, for all partitions."""
    monkeypatch.setattr(skdask, "_active_client", lambda: None)
    proba = skdask.predict_proba(ddf, clf)
    graph = dict(proba.__dask_graph__())
    copies = [k for k, v in graph.items() if isinstance(getattr(v, "value", v), BertTextClassifier)]
    assert len(copies) == 1
    assert proba.npartitions == N_FILES
    out = proba.compute(scheduler="threads")
    np.testing.assert_allclose(out.to_numpy(), expected[0], rtol=0, atol=1e-6)


def test_parallel_post_fit_on_object_array(client, texts, clf, expected):
    """Check the documented alternative: ParallelPostFit on an (n, 1) object array."""
    from dask_ml.wrappers import ParallelPostFit

    blocks = da.from_array(np.array(texts, dtype=object)[:, None], chunks=(N_TEXTS // 6, 1))
    wrapped = ParallelPostFit(
        clf, predict_proba_meta=np.empty((0, 2)), predict_meta=np.empty(0, dtype=object)
    )
    proba = wrapped.predict_proba(blocks)
    assert isinstance(proba, da.Array) and proba.shape == (N_TEXTS, 2)
    np.testing.assert_allclose(proba.compute(), expected[0], rtol=0, atol=1e-6)
    assert wrapped.predict(blocks).compute().tolist() == expected[1].tolist()


def test_missing_text_column_is_named(ddf, fitted):
    """Check that a missing column is refused at once, naming it and the columns there are."""
    with pytest.raises(ValueError, match=r"text_column='review'.*\['text', 'stars'\]"):
        skdask.predict_proba(ddf, fitted, text_column="review")


def test_non_text_column_is_refused(ddf, fitted):
    """Check that a numeric column is refused at once, naming it and its dtype."""
    with pytest.raises(TypeError, match="'stars' has dtype int64; it must hold str"):
        skdask.predict(ddf, fitted, text_column="stars")


@pytest.mark.parametrize(
    "values, error, message",
    [
        (["good film", 5, "bad"], TypeError, "Texts must be str; got int 5 at index 11 of the text "
         "column 'text'"),
        (["good film", b"bad", "ok"], TypeError, "got bytes b'bad' at index 11 of the text column"),
        (["good film", "bad", None], ValueError, r"Missing text \(.*\) at index 12 of the text "
         "column"),
    ],
    ids=["int", "bytes", "missing"],
)
def test_non_string_values_are_refused(client, fitted, values, error, message):
    """Check that a non-str value fails the computation, naming its index label."""
    frame = pd.DataFrame({"text": np.array(values, dtype=object)}, index=[10, 11, 12])
    with dask.config.set({"dataframe.convert-string": False}):  # keep the objects as given
        texts = dd.from_pandas(frame, npartitions=1)
        with pytest.raises(error, match=message):
            skdask.predict_proba(texts, fitted).compute()


def test_non_string_bag_is_refused(client, fitted):
    """Check that a Bag holding a non-str fails the computation, saying where."""
    bag = db.from_sequence(["good film", 3], npartitions=1)
    with pytest.raises(TypeError, match="Texts must be str; got int 3 at position 1 of a "
                                        "partition of the Bag"):
        skdask.predict(bag, fitted).compute()


def test_wrong_input_types_are_refused(fitted, texts, tiny_params):
    """Check the errors for non-dask input, a dask array, and an unfitted classifier."""
    with pytest.raises(TypeError, match="ParallelPostFit"):
        skdask.predict(da.from_array(np.array(texts, dtype=object), chunks=50), fitted)
    with pytest.raises(TypeError, match="got builtins.list.*own methods"):
        skdask.predict_proba(texts, fitted)
    with pytest.raises(NotFittedError):
        skdask.predict(db.from_sequence(texts), BertTextClassifier(**tiny_params))


def test_multilabel_predict_and_regressors_are_refused(texts, tiny_params):
    """Check that predict of a multi-label classifier (one label per text would be
    wrong) and a regressor (no classes_) are refused with what to use instead."""
    from skbert import BertTextRegressor

    from .conftest import make_multilabel_texts

    X, Y = make_multilabel_texts(40, seed=5)
    params = dict(tiny_params, max_iter=1)
    multilabel = BertTextClassifier(**params).fit(X, Y)
    with pytest.raises(ValueError, match="multi-label; use skbert.dask.predict_proba"):
        skdask.predict(db.from_sequence(texts), multilabel)
    regressor = BertTextRegressor(**params).fit(X, Y.sum(1))
    with pytest.raises(TypeError, match="got a BertTextRegressor.*ParallelPostFit"):
        skdask.predict_proba(db.from_sequence(texts), regressor)


def test_text_pairs_go_through_parallel_post_fit(tiny_params):
    """Check that a pair classifier is refused, and ParallelPostFit on (n, 2) works."""
    from dask_ml.wrappers import ParallelPostFit

    first, y = make_texts(60, seed=3)
    pairs = np.array(list(zip(first, make_texts(60, seed=4)[0], strict=True)), dtype=object)
    params = dict(tiny_params, max_iter=1, inference_dtype="float32")
    clf = BertTextClassifier(**params).fit(pairs, y)
    with pytest.raises(ValueError, match="fitted on text pairs.*ParallelPostFit"):
        skdask.predict_proba(db.from_sequence(first), clf)
    blocks = da.from_array(pairs, chunks=(20, 2))
    proba = ParallelPostFit(clf, predict_proba_meta=np.empty((0, 2))).predict_proba(blocks)
    np.testing.assert_allclose(proba.compute(), clf.predict_proba(pairs), rtol=0, atol=1e-6)


def test_import_skbert_does_not_import_dask():
    """Check that dask stays an optional dependency of the core package."""
    code = "import sys, skbert; assert not any(m.split('.')[0] in ('dask', 'distributed') " \
           "for m in sys.modules), sorted(m for m in sys.modules if 'dask' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)
