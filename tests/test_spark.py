"""skbert.spark on Spark local[2]: one-process results row by row, one load per worker."""

import os
import pickle
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from skbert import BertTextClassifier, BertTextRegressor

from ._load_counter import counting_loads, loads
from .conftest import make_texts

pytestmark = pytest.mark.any_precision  # every model here predicts in float32

pyspark = pytest.importorskip(
    "pyspark", reason='the Spark tests need pyspark: pip install "skbert[spark]"')
pytest.importorskip("pyarrow", reason='the Spark tests need pyarrow: pip install "skbert[spark]"')


def _java_version():
    """The major version of the Java runtime Spark would start, or None without one."""
    home = os.environ.get("JAVA_HOME")
    java = os.path.join(home, "bin", "java") if home else shutil.which("java")
    if not java:
        return None
    try:
        shown = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60,
                               check=False).stderr
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', shown)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8


_JAVA, _NEEDED = _java_version(), 17 if int(pyspark.__version__.split(".")[0]) >= 4 else 8
if _JAVA is None:
    pytest.skip("Spark needs a Java runtime and none is on PATH or in JAVA_HOME: install one "
                "with apt-get install default-jre-headless (make install does when it runs "
                "as root)", allow_module_level=True)
if _JAVA < _NEEDED:
    pytest.skip(f"pyspark {pyspark.__version__} needs Java {_NEEDED} or later, and the one "
                f"found is Java {_JAVA}: install a newer one with apt-get install "
                f"openjdk-{_NEEDED}-jre-headless and set JAVA_HOME", allow_module_level=True)

import skbert.spark as skspark  # noqa: E402

N_ROWS, N_PARTITIONS, BATCH = 1000, 4, 64


@pytest.fixture(scope="module")
def folders(tmp_path_factory, fitted, tiny_params):
    """Folders of a string-label classifier, an int-label pair classifier and a
    regressor, saved with save_pretrained; all predict in float32 (under bf16 a text's
    probabilities depend slightly on its batch-mates, which partitioning changes)."""
    root = tmp_path_factory.mktemp("spark-models")
    X, y = make_texts(40, seed=5)
    cheap = dict(tiny_params, max_iter=1, inference_dtype="float32")
    clf = pickle.loads(pickle.dumps(fitted)).set_params(inference_dtype="float32")
    clf.save_pretrained(root / "clf")
    pairs = np.array([X, X[1:] + X[:1]], dtype=object).T
    BertTextClassifier(**cheap).fit(pairs, y).save_pretrained(root / "pairs")
    BertTextRegressor(**cheap).fit(X, y * 2.0 - 0.5).save_pretrained(root / "reg")
    return {name: str(root / name) for name in ("clf", "pairs", "reg")}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A local[2] SparkSession whose Python workers log their model loads; yields the
    session and the log."""
    from pyspark.sql import SparkSession

    # Workers run this interpreter (Spark's default is "python3" from PATH).
    with counting_loads(tmp_path_factory.mktemp("load-hook"),
                        PYSPARK_PYTHON=sys.executable) as log:
        spark = (SparkSession.builder.master("local[2]").appName("skbert-tests")
                 .config("spark.ui.enabled", "false")
                 .config("spark.sql.shuffle.partitions", "2")
                 .config("spark.default.parallelism", str(N_PARTITIONS))
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        try:
            yield spark, log
        finally:
            spark.stop()


@pytest.fixture(scope="module")
def frame():
    texts = make_texts(N_ROWS, seed=3)[0]
    return pd.DataFrame({"id": np.arange(N_ROWS), "text": texts,
                         "other": texts[1:] + texts[:1]})


@pytest.fixture(scope="module")
def scored(session, folders, frame):
    """Every output of every model over the same 1,000 rows: {output: (schema, rows)}.

    One job per UDF: Spark runs each Python UDF of a query in its own Python worker, so
    one query of five UDFs would start five workers per task slot (each importing torch
    and loading a model); one at a time, the same two workers serve them all.
    """
    spark, _ = session
    df = spark.createDataFrame(frame)
    assert df.rdd.getNumPartitions() == N_PARTITIONS
    udfs = {
        "both": skspark.predict_batch_udf(folders["clf"], batch_size=BATCH),
        "label": skspark.predict_batch_udf(folders["clf"], output="label", batch_size=BATCH),
        "proba": skspark.predict_batch_udf(folders["clf"], output="proba", batch_size=BATCH),
        "pair": skspark.predict_batch_udf(folders["pairs"], batch_size=BATCH),
        "value": skspark.predict_batch_udf(folders["reg"], batch_size=BATCH),
    }
    results = {}
    for name, udf in udfs.items():
        column = udf("text", "other") if name == "pair" else udf("text")
        out = df.select("id", column.alias(name))
        rows = out.collect()
        ids = np.array([row["id"] for row in rows])
        np.testing.assert_array_equal(ids, frame["id"])  # every row, once, in order
        results[name] = out.schema[name].dataType.simpleString(), [row[name] for row in rows]
    return results


def test_classifier_matches_predict_proba_row_by_row(scored, folders, frame):
    """Check that the label and probability columns equal predict and predict_proba of
    the saved model in this process, row by row, in input order."""
    clf = BertTextClassifier.from_pretrained(folders["clf"])
    proba, labels = clf.predict_proba(frame["text"]), clf.predict(frame["text"]).tolist()
    (both_type, both), (label_type, label), (proba_type, probas) = (
        scored["both"], scored["label"], scored["proba"])
    assert both_type == "struct<label:string,proba:array<double>>"
    assert (label_type, proba_type) == ("string", "array<double>")
    np.testing.assert_allclose([row["proba"] for row in both], proba, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probas, proba, rtol=0, atol=1e-6)
    assert [row["label"] for row in both] == label == labels


def test_text_pairs_from_two_columns(scored, folders, frame):
    """Check that a pair model reads its two texts from two columns, with int labels as a
    long column."""
    kind, rows = scored["pair"]
    clf = BertTextClassifier.from_pretrained(folders["pairs"])
    pairs = frame[["text", "other"]].to_numpy(dtype=object)
    assert kind == "struct<label:bigint,proba:array<double>>"
    np.testing.assert_allclose([row["proba"] for row in rows], clf.predict_proba(pairs),
                               rtol=0, atol=1e-6)
    assert [row["label"] for row in rows] == clf.predict(pairs).tolist()


def test_regressor_gives_values(scored, folders, frame):
    """Check that a regressor's column holds predict's values."""
    kind, values = scored["value"]
    reg = BertTextRegressor.from_pretrained(folders["reg"])
    assert kind == "double"
    np.testing.assert_allclose(values, reg.predict(frame["text"]), rtol=1e-6, atol=1e-6)


def test_model_loads_once_per_worker(session, scored, folders, frame):
    """Check that each Python worker loads each folder once, not once per batch, task or
    UDF (three UDFs read the classifier), and that a later job reuses the loads."""
    spark, log = session
    before = loads(log)
    again = skspark.predict_batch_udf(folders["clf"], output="label", batch_size=BATCH)
    spark.createDataFrame(frame).select(again("text")).collect()
    counted = loads(log)
    assert set(counted.values()) == {1}, counted  # once per (worker, folder)
    batches = N_PARTITIONS * -(-(N_ROWS // N_PARTITIONS) // BATCH)
    for folder in folders.values():
        workers = [pid for pid, path in counted if path == folder]
        assert 1 <= len(workers) < batches, counted
    # Workers are reused (two task slots): the later job's loads, if any, are in workers
    # that had not loaded the classifier yet.
    assert len({pid for pid, _ in counted}) <= 2 * len(folders), counted
    assert len(counted) - len(before) <= 2, (before, counted)


def test_missing_text_names_its_position(session, folders):
    """Check that a null text fails the job with skbert's message and its remedy."""
    spark, _ = session
    udf = skspark.predict_batch_udf(folders["clf"], output="label", batch_size=BATCH)
    df = spark.createDataFrame(pd.DataFrame({"text": ["good film", None, "bad"]})).coalesce(1)
    with pytest.raises(Exception, match=r"Missing text \(nan\) at position 1 of a batch"):
        df.select(udf("text")).collect()


def test_arguments_are_checked_on_the_driver(folders, tmp_path):
    """Check that a bad output, batch size or path is refused when the UDF is made."""
    with pytest.raises(ValueError, match=r"output='value' does not fit the classifier"):
        skspark.predict_batch_udf(folders["clf"], output="value")
    with pytest.raises(ValueError, match=r"output='proba' does not fit the regressor"):
        skspark.predict_batch_udf(folders["reg"], output="proba")
    with pytest.raises(ValueError, match=r"output must be one of"):
        skspark.predict_batch_udf(folders["clf"], output="probability")
    with pytest.raises(ValueError, match=r"batch_size must be a positive int; got 0"):
        skspark.predict_batch_udf(folders["clf"], batch_size=0)
    with pytest.raises(FileNotFoundError, match=r"is not a folder.*snapshot_download"):
        skspark.predict_batch_udf(tmp_path / "missing")


def test_load_model_caches_by_folder(folders):
    """Check that load_model returns the same estimator for the same folder and params,
    and applies params."""
    first = skspark.load_model(folders["clf"])
    assert skspark.load_model(folders["clf"]) is first
    small = skspark.load_model(folders["clf"], {"batch_size": 4})
    assert small is not first and small.batch_size == 4
    assert isinstance(skspark.load_model(folders["reg"]), BertTextRegressor)


def test_import_without_pyspark_names_the_extra():
    """Check that importing skbert.spark without pyspark says which extra to install."""
    code = "import sys; sys.modules['pyspark'] = None; import skbert.spark"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
    assert 'pip install "skbert[spark]"' in result.stderr
