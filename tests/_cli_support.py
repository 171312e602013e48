"""What the command-line test modules share: running ``skbert`` in a subprocess or
in-process, writing and reading data files, and the fixtures of a saved model, its test
data and a streamed fit."""

import copy
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from skbert._cli import main

from .conftest import make_texts

TRUSTED = ["skbert._classifier.BertTextClassifier"]


def run_cli(*args):
    """Run ``python -m skbert ARGS`` and return the completed process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "skbert", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def run_main(capsys, *args):
    """Run ``skbert ARGS`` in-process; return ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def write_frame(frame, path):
    fmt = path.name.split(".")[1]
    if fmt == "csv":
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        frame.to_csv(path, sep="\t", index=False)
    elif fmt == "parquet":
        frame.to_parquet(path)
    else:
        frame.to_json(path, orient="records", lines=True)
    return path


def read_frame(path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",",
                       keep_default_na=False)


def param_args(params):
    return [a for k, v in params.items() for a in ("--param", f"{k}={v!r}")]


@pytest.fixture(scope="module")
def test_frame(toy_data):
    """60 labelled test texts with ids; one empty text, which is valid input."""
    _, _, X_test, y_test = toy_data
    texts = list(X_test)
    texts[3] = ""
    return pd.DataFrame({"id": [f"doc-{i}" for i in range(len(texts))], "text": texts,
                         "label": np.array(["neg", "pos"])[y_test]})


@pytest.fixture(scope="module")
def model_path(fitted, tmp_path_factory):
    """The ``fitted`` classifier saved with skops, predicting in float32 (under bf16 a
    text's probabilities depend slightly on its batch, which chunking changes)."""
    path = tmp_path_factory.mktemp("cli-model") / "model.skops"
    sio.dump(copy.deepcopy(fitted).set_params(inference_dtype="float32"), path)
    return path


@pytest.fixture(scope="module")
def stream_run(tiny_params, tmp_path_factory):
    """A streamed ``skbert fit``: 120 rows, chunks of 40, 2 epochs, every checkpoint kept."""
    folder = tmp_path_factory.mktemp("cli-stream")
    X, y = make_texts(120, seed=5)
    data = write_frame(pd.DataFrame({"text": X, "label": y}), folder / "train.parquet")
    params = dict(tiny_params, keep_checkpoints=10)
    del params["max_iter"]
    args = ["fit", data, "--chunksize", 40, "--epochs", 2, "--checkpoint-dir",
            folder / "ckpt", "--quiet", *param_args(params)]
    proc = run_cli(*args, "--out", folder / "full.skops")
    assert proc.returncode == 0, proc.stderr
    return folder, data, args
