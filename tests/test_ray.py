"""skbert.ray on a local Ray: one-process results row by row, one load per actor."""

import pickle
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skbert import BertTextClassifier, BertTextRegressor

from ._load_counter import counting_loads, loads
from .conftest import make_texts

pytestmark = pytest.mark.any_precision  # every model here predicts in float32

ray = pytest.importorskip("ray", reason='the Ray tests need Ray Data: pip install "skbert[ray]"')
pytest.importorskip("ray.data", reason='the Ray tests need Ray Data: pip install "skbert[ray]"')

from skbert.ray import SkbertPredictor  # noqa: E402

N_ROWS, N_BLOCKS, BATCH, N_ACTORS = 1000, 8, 64, 2


@pytest.fixture(scope="module")
def folders(tmp_path_factory, fitted, tiny_params):
    """Folders of a string-label classifier, an int-label pair classifier and a
    regressor, saved with save_pretrained; all predict in float32 (under bf16 a text's
    probabilities depend slightly on its batch-mates, which blocks change)."""
    root = tmp_path_factory.mktemp("ray-models")
    X, y = make_texts(40, seed=5)
    cheap = dict(tiny_params, max_iter=1, inference_dtype="float32")
    clf = pickle.loads(pickle.dumps(fitted)).set_params(inference_dtype="float32")
    clf.save_pretrained(root / "clf")
    pairs = np.array([X, X[1:] + X[:1]], dtype=object).T
    BertTextClassifier(**cheap).fit(pairs, y).save_pretrained(root / "pairs")
    BertTextRegressor(**cheap).fit(X, y * 2.0 - 0.5).save_pretrained(root / "reg")
    return {name: str(root / name) for name in ("clf", "pairs", "reg")}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """A local Ray of 2 CPUs whose worker processes log their model loads; yields the log.
    Blocks keep their order (Ray Data's default does not promise it)."""
    with counting_loads(tmp_path_factory.mktemp("load-hook")) as log:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
        context = ray.data.DataContext.get_current()
        saved = context.execution_options.preserve_order
        context.execution_options.preserve_order = True
        try:
            yield log
        finally:
            context.execution_options.preserve_order = saved
            ray.shutdown()


@pytest.fixture(scope="module")
def frame():
    texts = make_texts(N_ROWS, seed=3)[0]
    return pd.DataFrame({"id": np.arange(N_ROWS), "text": texts,
                         "other": texts[1:] + texts[:1]})


def _dataset(frame):
    """``frame`` as a Dataset of ``N_BLOCKS`` blocks, in order."""
    size = N_ROWS // N_BLOCKS
    return ray.data.from_pandas([frame.iloc[i:i + size] for i in range(0, N_ROWS, size)])


def _predict(frame, batch_format, actors, **kwargs):
    """Run SkbertPredictor on ``actors`` actors over ``frame``; the result as a DataFrame."""
    ds = _dataset(frame).map_batches(
        SkbertPredictor, fn_constructor_kwargs=kwargs, batch_size=BATCH,
        batch_format=batch_format, compute=ray.data.ActorPoolStrategy(size=actors),
    )
    return ds.to_pandas()


@pytest.fixture(scope="module")
def classified(local_ray, folders, frame):
    """The classifier's outputs on 2 actors over pandas batches."""
    return _predict(frame, "pandas", N_ACTORS, path=folders["clf"])


def test_classifier_matches_predict_proba_row_by_row(classified, folders, frame):
    """Check that pandas batches come back with every column, a label and a probability
    row equal to predict and predict_proba in this process, row by row, in order."""
    out = classified
    clf = BertTextClassifier.from_pretrained(folders["clf"])
    assert list(out.columns) == ["id", "text", "other", "label", "proba"]
    np.testing.assert_array_equal(out["id"], frame["id"])  # every row, once, in order
    assert out["text"].tolist() == frame["text"].tolist()
    np.testing.assert_allclose(np.stack(out["proba"]), clf.predict_proba(frame["text"]),
                               atol=1e-6)
    assert out["label"].tolist() == clf.predict(frame["text"]).tolist()


def test_numpy_batches_pairs_and_regressor(local_ray, folders, frame):
    """Check that NumPy batches work, that a pair model reads two columns, and that a
    regressor gives predict's values."""
    # One actor each: the pool's size is the loads test's business; process starts cost.
    pairs = _predict(frame, "numpy", 1, path=folders["pairs"], pair_column="other")
    clf = BertTextClassifier.from_pretrained(folders["pairs"])
    X = frame[["text", "other"]].to_numpy(dtype=object)
    np.testing.assert_array_equal(pairs["id"], frame["id"])
    np.testing.assert_allclose(np.stack(pairs["proba"]), clf.predict_proba(X), atol=1e-6)
    assert pairs["label"].tolist() == clf.predict(X).tolist()

    values = _predict(frame, "numpy", 1, path=folders["reg"])
    reg = BertTextRegressor.from_pretrained(folders["reg"])
    assert list(values.columns) == ["id", "text", "other", "value"]
    np.testing.assert_allclose(values["value"], reg.predict(frame["text"]), rtol=1e-6,
                               atol=1e-6)


def test_model_loads_once_per_actor(local_ray, classified, folders):
    """Check that each actor loads its model once, not once per batch or block."""
    counted = loads(local_ray)
    assert set(counted.values()) == {1}, counted  # once per (actor process, folder)
    actors = [pid for pid, path in counted if path == folders["clf"]]
    batches = N_BLOCKS * -(-(N_ROWS // N_BLOCKS) // BATCH)
    assert 1 <= len(actors) <= N_ACTORS < batches, counted


def test_predictor_checks_its_inputs(folders, tmp_path):
    """Check the predictor's errors, in this process: pairs, columns, missing texts,
    outputs, batch kinds and paths."""
    with pytest.raises(ValueError, match=r"fitted on text pairs; name the column"):
        SkbertPredictor(folders["pairs"])
    with pytest.raises(ValueError, match=r"pair_column='other', but the model"):
        SkbertPredictor(folders["clf"], pair_column="other")
    with pytest.raises(ValueError, match=r"output='value' does not fit the classifier"):
        SkbertPredictor(folders["clf"], output="value")
    with pytest.raises(FileNotFoundError, match=r"is not a folder.*snapshot_download"):
        SkbertPredictor(tmp_path / "missing")
    predictor = SkbertPredictor(folders["clf"], text_column="review", output="proba")
    with pytest.raises(ValueError, match=r"text_column='review' is not a column of the batch"):
        predictor({"text": np.array(["good"], dtype=object)})
    with pytest.raises(ValueError, match=r"Missing text \(\w+\) at row 1 of a batch, "
                                         r"column 'review'"):
        predictor(pd.DataFrame({"review": ["good film", None]}))
    with pytest.raises(TypeError, match=r'batch_format="pandas"'):
        predictor([["good film"]])
    out = predictor({"review": np.array(["good film", "bad"], dtype=object)})
    assert set(out) == {"review", "proba"} and out["proba"].shape == (2, 2)


def test_import_without_ray_names_the_extra():
    """Check that importing skbert.ray without Ray says which extra to install."""
    code = "import sys; sys.modules['ray'] = None; import skbert.ray"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
    assert 'pip install "skbert[ray]"' in result.stderr
