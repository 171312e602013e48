"""``skbert predict``: predictions of a saved model in every format, against
in-process predictions, and its errors (one line, status 1, no output file)."""

import copy
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from . import _cli_support
from ._cli_support import (
    read_frame,
    run_cli,
    run_main,
    write_frame,
)

# The shared fixtures of the command-line tests.
model_path = _cli_support.model_path
test_frame = _cli_support.test_frame


def test_predict_csv_matches_in_process(fitted, model_path, test_frame, tmp_path):
    """Check ids, labels and proba_<class> columns of a CSV against in-process predict."""
    data = write_frame(test_frame, tmp_path / "test.csv")
    out = tmp_path / "preds.csv"
    proc = run_cli("predict", model_path, data, "--out", out, "--id-column", "id", "--proba",
                   "--chunksize", 25)
    assert proc.returncode == 0, proc.stderr
    assert "rows/s" in proc.stderr  # the progress bar
    preds = read_frame(out)
    assert preds.columns.tolist() == ["id", "prediction", "proba_neg", "proba_pos"]
    assert preds["id"].tolist() == test_frame["id"].tolist()
    texts = test_frame["text"].tolist()
    fp32 = copy.deepcopy(fitted).set_params(inference_dtype="float32")  # as the saved model
    assert preds["prediction"].tolist() == fp32.predict(texts).tolist()
    proba = preds[["proba_neg", "proba_pos"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(proba, fp32.predict_proba(texts), atol=1e-6)


def test_predict_failing_midway_keeps_the_previous_output(model_path, test_frame, tmp_path):
    """Check that a missing text deep in the file leaves the old output and no temp file."""
    frame = test_frame.astype(object)
    frame.loc[47, "text"] = None
    data = write_frame(frame, tmp_path / "test.jsonl")
    out = tmp_path / "preds.csv"
    out.write_text("previous\n")
    proc = run_cli("predict", model_path, data, "--out", out, "--chunksize", 10)
    assert proc.returncode == 1
    assert re.search(r"Missing text \(\w+\) at row 47 of", proc.stderr), proc.stderr
    assert "(0-based, header not counted), column 'text'" in proc.stderr
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv", "test.jsonl"]


# ------------------------------------------------- formats and error cases
@pytest.mark.parametrize("ext", ["tsv", "parquet", "jsonl", "csv.gz"])
def test_predict_formats(ext, fitted, model_path, test_frame, tmp_path):
    """Check each input/output format, in a subprocess: a 'row' column and the labels."""
    data = write_frame(test_frame, tmp_path / f"test.{ext.split('.')[0]}")
    out = tmp_path / f"preds.{ext}"
    proc = run_cli("predict", model_path, data, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    preds = read_frame(out) if ext != "csv.gz" else pd.read_csv(out)
    assert preds.columns.tolist() == ["row", "prediction"]
    assert preds["row"].tolist() == list(range(len(test_frame)))
    assert preds["prediction"].tolist() == fitted.predict(test_frame["text"]).tolist()


def test_predict_from_pickle_and_empty_input(model_path, fitted, tmp_path, capsys):
    """Check a joblib/pickle model, and that a file of no rows gives a header only."""
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(fitted))
    data = tmp_path / "empty.csv"
    data.write_text("text\n")
    status, _, err = run_main(capsys, "predict", pkl, data, "--out", tmp_path / "p.csv",
                              "--proba", "--quiet")
    assert status == 0, err
    assert (tmp_path / "p.csv").read_text().strip() == "row,prediction,proba_neg,proba_pos"


def _bad_skops(path, fitted):
    sio.dump({"model": fitted, "extra": pickle.loads}, path)


@pytest.mark.parametrize(
    "case, match",
    [("missing-data", "No such data file: '.*missing.csv'"),
     ("data-extension", r"Cannot tell the format of '.*data.xlsx'.*use \.csv"),
     ("out-extension", r"Cannot tell which format to write '.*preds.txt'"),
     ("missing-column", r"Column 'body' not found in .*; its columns are \['id', 'text', "),
     ("missing-model", "No such model file or folder"),
     ("model-extension", r"model format of '.*model.bin'.*use \.skops"),
     ("corrupt-pickle", r"Cannot load model file '.*model.pkl': it is corrupt"),
     ("untrusted-skops", r"holds types skbert does not trust: \[.*(builtins\.dict|_pickle)"),
     ("unseen-label", r"Column 'label' of .* holds labels the model does not know: 'meh'"),
     ("missing-label", r"Row 5 of '.*test.parquet' .* has no label in column 'label'")],
)
def test_error_messages(case, match, model_path, fitted, test_frame, tmp_path):
    """Check each error, in a subprocess: status 1 and one line naming what was wrong."""
    data = write_frame(test_frame, tmp_path / "test.csv")
    model, command, extra = model_path, "predict", []
    if case == "missing-data":
        data = tmp_path / "missing.csv"
    elif case == "data-extension":
        data = tmp_path / "data.xlsx"
        data.write_text("text\nx\n")
    elif case == "out-extension":
        extra = ["--out", tmp_path / "preds.txt"]
    elif case == "missing-column":
        extra = ["--text-column", "body"]
    elif case == "missing-model":
        model = tmp_path / "nothing.skops"
    elif case == "model-extension":
        model = tmp_path / "model.bin"
        model.write_bytes(b"x")
    elif case == "corrupt-pickle":
        model = tmp_path / "model.pkl"
        model.write_bytes(b"garbage")
    elif case == "untrusted-skops":
        model = tmp_path / "crafted.skops"
        _bad_skops(model, fitted)
    elif case in ("unseen-label", "missing-label"):
        frame = test_frame.astype(object)
        frame.loc[5, "label"] = "meh" if case == "unseen-label" else None
        data, command = write_frame(frame, tmp_path / "test.parquet"), "evaluate"
    if command == "predict" and "--out" not in extra:
        extra += ["--out", tmp_path / "preds.csv"]
    proc = run_cli(command, model, data, *extra, "--quiet")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("skbert: error: ") and "Traceback" not in proc.stderr
    assert re.search(match, proc.stderr), proc.stderr
    assert proc.stdout == "" and not (tmp_path / "preds.csv").exists()
