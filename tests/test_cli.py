"""The skbert command line: fit, predict, evaluate, their files and their errors.

Every command, every file format and every error case runs ``python -m skbert`` in a
subprocess. Tests that need to reach inside (a simulated Ctrl-C, a write failing part-way,
a resume against other settings) call ``skbert._cli.main`` in-process, which runs the same
argument parsing and exit-status logic.
"""

import copy
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

import skbert
from skbert import BertTextClassifier
from skbert._checkpoint import atomic_write
from skbert._cli import CommandError, align_labels, main, parse_param

from .conftest import make_texts

TRUSTED = ["skbert._classifier.BertTextClassifier"]


def _cli(*args):
    """Run ``python -m skbert ARGS`` and return the completed process."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", "skbert", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def _main(capsys, *args):
    """Run ``skbert ARGS`` in-process; return ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _write(frame, path):
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


def _read(path):
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    if path.suffix == ".jsonl":
        return pd.read_json(path, lines=True, dtype=False)
    return pd.read_csv(path, sep="\t" if path.suffix == ".tsv" else ",",
                       keep_default_na=False)


def _param_args(params):
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
    data = _write(pd.DataFrame({"text": X, "label": y}), folder / "train.parquet")
    params = dict(tiny_params, keep_checkpoints=10)
    del params["max_iter"]
    args = ["fit", data, "--chunksize", 40, "--epochs", 2, "--checkpoint-dir",
            folder / "ckpt", "--quiet", *_param_args(params)]
    proc = _cli(*args, "--out", folder / "full.skops")
    assert proc.returncode == 0, proc.stderr
    return folder, data, args


# ------------------------------------------------------------ subprocess runs
def test_version_and_param_without_equals_is_a_usage_error(tmp_path):
    """Check --version, and that --param without '=' exits with argparse's status 2."""
    version = _cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"skbert {skbert.__version__}"
    usage = _cli("fit", tmp_path / "x.csv", "--out", tmp_path / "m.skops",
                 "--param", "learning_rate")
    assert usage.returncode == 2
    assert "expected NAME=VALUE, got 'learning_rate'" in usage.stderr


def test_console_script_runs():
    """Check that the installed `skbert` console script starts and lists the commands."""
    script = Path(sys.executable).parent / "skbert"
    if not script.exists():
        pytest.skip("the package is not installed with its console script (pip install -e .)")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert all(command in proc.stdout for command in ("fit", "predict", "evaluate"))


def test_fit_whole_file_then_evaluate(tiny_params, toy_data, tmp_path):
    """Check fit on a CSV with int labels, then evaluate on string labels "0"/"1"."""
    X, y, X_test, y_test = toy_data
    train = _write(pd.DataFrame({"body": X, "target": y}), tmp_path / "train.csv")
    out = tmp_path / "model.skops"
    fit = _cli("fit", train, "--text-column", "body", "--label-column", "target",
               "--out", out, *_param_args(dict(tiny_params, max_iter=2)))
    assert fit.returncode == 0, fit.stderr
    model = sio.load(out, trusted=TRUSTED)
    assert model.classes_.tolist() == [0, 1] and model.max_iter == 2
    assert model.n_iter_ == 2 and model.learning_rate == tiny_params["learning_rate"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    test = _write(pd.DataFrame({"text": X_test, "label": y_test.astype(str)}),
                  tmp_path / "test.parquet")
    evaluate = _cli("evaluate", out, test, "--quiet")
    assert evaluate.returncode == 0, evaluate.stderr
    y_pred = model.predict(X_test)
    values = dict(re.findall(r"^(accuracy|macro-F1|MCC):\s+(\S+)$", evaluate.stdout, re.M))
    assert float(values["accuracy"]) == pytest.approx(accuracy_score(y_test, y_pred), abs=1e-4)
    assert float(values["macro-F1"]) == pytest.approx(
        f1_score(y_test, y_pred, average="macro"), abs=1e-4)
    assert float(values["MCC"]) == pytest.approx(matthews_corrcoef(y_test, y_pred), abs=1e-4)
    assert "precision" in evaluate.stdout and "macro avg" in evaluate.stdout


def test_predict_csv_matches_in_process(fitted, model_path, test_frame, tmp_path):
    """Check ids, labels and proba_<class> columns of a CSV against in-process predict."""
    data = _write(test_frame, tmp_path / "test.csv")
    out = tmp_path / "preds.csv"
    proc = _cli("predict", model_path, data, "--out", out, "--id-column", "id", "--proba",
                "--chunksize", 25)
    assert proc.returncode == 0, proc.stderr
    assert "rows/s" in proc.stderr  # the progress bar
    preds = _read(out)
    assert preds.columns.tolist() == ["id", "prediction", "proba_neg", "proba_pos"]
    assert preds["id"].tolist() == test_frame["id"].tolist()
    texts = test_frame["text"].tolist()
    fp32 = copy.deepcopy(fitted).set_params(inference_dtype="float32")  # as the saved model
    assert preds["prediction"].tolist() == fp32.predict(texts).tolist()
    proba = preds[["proba_neg", "proba_pos"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(proba, fp32.predict_proba(texts), atol=1e-6)


def test_stream_fit_checkpoints_and_resume(stream_run):
    """Check a streamed fit's schedule, and that resuming mid-epoch matches the full run."""
    folder, _, args = stream_run
    ckpt = folder / "ckpt"
    names = sorted(p.name for p in ckpt.iterdir() if p.name != ".lock")
    assert names == [f"ckpt-{3 * k:012d}" for k in range(1, 7)]  # 6 chunks of 3 steps
    last = BertTextClassifier.resume(ckpt)
    assert last.n_iter_ == 6
    assert last._trainer.state.steps == last.max_steps == 18  # decays to 0
    for name in names[4:]:  # "crash" after 4 chunks: one into the second epoch
        for file in (ckpt / name).iterdir():
            file.unlink()
        (ckpt / name).rmdir()
    proc = _cli(*args, "--out", folder / "resumed.skops", "--resume")
    assert proc.returncode == 0, proc.stderr
    full = sio.load(folder / "full.skops", trusted=TRUSTED)
    resumed = sio.load(folder / "resumed.skops", trusted=TRUSTED)
    assert resumed.n_iter_ == full.n_iter_ == 6
    X, _ = make_texts(30, seed=9)
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-6)


def test_errors_are_one_line_unless_debug(tmp_path, test_frame):
    """Check a corrupt model: one line on stderr, status 1; --debug raises the error."""
    model = tmp_path / "broken.skops"
    model.write_bytes(b"not a zip file")
    data = _write(test_frame, tmp_path / "test.csv")
    proc = _cli("predict", model, data, "--out", tmp_path / "p.csv")
    assert proc.returncode == 1
    assert proc.stderr.startswith("skbert: error: Cannot load model file")
    assert "corrupt" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(CommandError, match="Cannot load model file"):  # in-process
        main(["--debug", "predict", str(model), str(data), "--out", str(tmp_path / "p.csv")])
    assert not (tmp_path / "p.csv").exists()


def test_predict_failing_midway_keeps_the_previous_output(model_path, test_frame, tmp_path):
    """Check that a missing text deep in the file leaves the old output and no temp file."""
    frame = test_frame.astype(object)
    frame.loc[47, "text"] = None
    data = _write(frame, tmp_path / "test.jsonl")
    out = tmp_path / "preds.csv"
    out.write_text("previous\n")
    proc = _cli("predict", model_path, data, "--out", out, "--chunksize", 10)
    assert proc.returncode == 1
    assert "Row 47 of" in proc.stderr and "no text in column 'text'" in proc.stderr
    assert out.read_text() == "previous\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv", "test.jsonl"]


# ------------------------------------------------- formats and error cases
@pytest.mark.parametrize("ext", ["tsv", "parquet", "jsonl", "csv.gz"])
def test_predict_formats(ext, fitted, model_path, test_frame, tmp_path):
    """Check each input/output format, in a subprocess: a 'row' column and the labels."""
    data = _write(test_frame, tmp_path / f"test.{ext.split('.')[0]}")
    out = tmp_path / f"preds.{ext}"
    proc = _cli("predict", model_path, data, "--out", out, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    preds = _read(out) if ext != "csv.gz" else pd.read_csv(out)
    assert preds.columns.tolist() == ["row", "prediction"]
    assert preds["row"].tolist() == list(range(len(test_frame)))
    assert preds["prediction"].tolist() == fitted.predict(test_frame["text"]).tolist()


def test_predict_from_pickle_and_empty_input(model_path, fitted, tmp_path, capsys):
    """Check a joblib/pickle model, and that a file of no rows gives a header only."""
    pkl = tmp_path / "model.pkl"
    pkl.write_bytes(pickle.dumps(fitted))
    data = tmp_path / "empty.csv"
    data.write_text("text\n")
    status, _, err = _main(capsys, "predict", pkl, data, "--out", tmp_path / "p.csv",
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
    data = _write(test_frame, tmp_path / "test.csv")
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
        data, command = _write(frame, tmp_path / "test.parquet"), "evaluate"
    if command == "predict" and "--out" not in extra:
        extra += ["--out", tmp_path / "preds.csv"]
    proc = _cli(command, model, data, *extra, "--quiet")
    assert proc.returncode == 1
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("skbert: error: ") and "Traceback" not in proc.stderr
    assert re.search(match, proc.stderr), proc.stderr
    assert proc.stdout == "" and not (tmp_path / "preds.csv").exists()


@pytest.mark.parametrize(
    "param, match",
    [("learning_rat=1e-4", r"Unknown parameter 'learning_rat'.*did you mean 'learning_rate'"),
     ("lr=1e-4", r"Unknown parameter 'lr'.*did you mean 'learning_rate' \(what 'lr' is "
                 r"called elsewhere\)\? 'skbert fit --help' lists each"),
     ("num_train_epochs=2", r"did you mean 'max_iter' \(what 'num_train_epochs' is"),
     ("seed=1", r"did you mean 'random_state'"),
     ("warmup_ratio=0.1", r"did you mean 'warmup_fraction'"),
     ("learning_rate=fast", r"Bad --param value: The 'learning_rate' parameter .* Got 'fast'"),
     ("max_iter=0", r"The 'max_iter' parameter .* Got 0 instead")],
)
def test_bad_params_fail_before_reading_data(param, match, tmp_path):
    """Check, in a subprocess, that unknown names and invalid values are refused up front."""
    data = tmp_path / "train.csv"
    data.write_text("text,label\na,0\nb,1\n")
    proc = _cli("fit", data, "--out", tmp_path / "m.skops", "--param", param)
    assert proc.returncode == 1 and re.search(match, proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.skops").exists()


@pytest.mark.parametrize(
    "args, match",
    [(["--checkpoint-dir", "ckpt"], "--checkpoint-dir streams the file and needs --chunksize"),
     (["--chunksize", "10", "--resume"], "--resume needs --checkpoint-dir"),
     (["--learning-rate", "fast"], "argument --learning-rate: 'fast' is not a valid "
                                   "learning_rate"),
     (["--pooling", "max"], "argument --pooling: invalid choice: 'max'"),
     (["--chunksize", "0"], "expected a positive integer, got '0'")],
)
def test_usage_errors_exit_2(args, match, tmp_path, capsys):
    """Check option combinations argparse refuses with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "m.skops"), *args])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_resume_with_another_chunksize_is_refused(stream_run, capsys):
    """Check that resuming on differently cut chunks is an error, not a silent skip."""
    folder, data, args = stream_run
    args = [a if a != 40 else 30 for a in args]
    status, _, err = _main(capsys, *args, "--out", folder / "other.skops", "--resume")
    assert status == 1
    assert "has trained on 6 chunks of 240 rows" in err and "--chunksize 30" in err
    assert not (folder / "other.skops").exists()


def test_resume_with_more_epochs_than_the_schedule_is_refused(stream_run, capsys):
    """Check that resuming for more epochs than max_steps covers is an error, not lr 0."""
    folder, _, args = stream_run
    i = args.index("--epochs")
    args = [*args[: i + 1], 3, *args[i + 2 :]]
    status, _, err = _main(capsys, *args, "--out", folder / "more.skops", "--resume")
    assert status == 1
    assert "max_steps=18" in err and "--epochs 3 over this data needs 27" in err
    assert not (folder / "more.skops").exists()


def test_predict_from_checkpoint_folder(stream_run, tmp_path, capsys):
    """Check that a checkpoint_dir works as MODEL: its newest checkpoint predicts."""
    folder, data, _ = stream_run
    out = tmp_path / "preds.jsonl"
    status, _, err = _main(capsys, "predict", folder / "ckpt", data, "--out", out, "--quiet")
    assert status == 0, err
    newest = sorted((folder / "ckpt").glob("ckpt-*"))[-1]
    model = sio.load(newest / "estimator.skops", trusted=TRUSTED)
    texts = pd.read_parquet(data)["text"].tolist()
    assert _read(out)["prediction"].tolist() == model.predict(texts).tolist()


def test_keyboard_interrupt_exits_130(
    model_path, test_frame, tiny_params, tmp_path, capsys, monkeypatch
):
    """Check that Ctrl-C ends with status 130, a message, and no output file.

    During predict Ctrl-C raises KeyboardInterrupt. During fit a real SIGINT arrives
    mid-training: the estimator stops after the step in progress with a warning, which
    must not let a half-trained model be saved.
    """
    import signal

    from skbert import _inputs

    def interrupted_predict(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BertTextClassifier, "predict_proba", interrupted_predict)
    data = _write(test_frame, tmp_path / "test.csv")
    status, _, err = _main(capsys, "predict", model_path, data, "--out", tmp_path / "p.csv")
    assert status == 130 and "interrupted" in err

    steps = []
    loss = _inputs.batch_loss

    def loss_then_ctrl_c(*args):  # Ctrl-C pressed during the second step
        steps.append(args[-1])
        if len(steps) == 2:
            signal.raise_signal(signal.SIGINT)
        return loss(*args)

    monkeypatch.setattr(_inputs, "batch_loss", loss_then_ctrl_c)
    status, _, err = _main(capsys, "fit", data, "--out", tmp_path / "m.skops",
                           *_param_args(dict(tiny_params, max_iter=3)))
    assert status == 130 and "interrupted; the output file was not written" in err
    assert len(steps) == 2  # it stopped after the step in progress, of 3 epochs x 4 batches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv"]


def test_parse_param_values():
    """Check literal values, strings kept as strings, and '=' inside the value."""
    assert parse_param("learning_rate=3e-5") == ("learning_rate", 3e-5)
    assert parse_param("head=(256,)") == ("head", (256,))
    assert parse_param("head_dropout=None") == ("head_dropout", None)
    assert parse_param("device=cuda:0") == ("device", "cuda:0")
    assert parse_param("model_name_or_path=a=b") == ("model_name_or_path", "a=b")


def test_align_labels():
    """Check ints against str classes and the reverse; unknown labels are an error."""
    str_classes, int_classes = np.array(["0", "1"]), np.array([0, 1])
    assert align_labels(np.array([1, 0]), str_classes).tolist() == ["1", "0"]
    assert align_labels(np.array([1.0, 0.0]), str_classes).tolist() == ["1", "0"]
    assert align_labels(np.array(["1", " 0"], dtype=object), int_classes).tolist() == [1, 0]
    with pytest.raises(CommandError, match=r"does not know: 2; its classes are \[0, 1\]"):
        align_labels(np.array([0, 2]), int_classes)


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    """Check that a failed write leaves the old file and no temp; a good one replaces it."""
    target = tmp_path / "model.skops"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.skops.")
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_fit_help_lists_typed_parameter_flags(capsys):
    """Check that every estimator parameter is a typed flag with its default and the
    first sentence of its numpydoc description, generated so they cannot drift."""
    import inspect

    from skbert._cli_params import OWN_FLAGS, docstring_parameters

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--learning-rate FLOAT Peak learning rate of AdamW. (default: 5e-05)" in out
    assert "--max-iter INT, --epochs INT Number of epochs" in out
    assert "--pooling {cls,mean}" in out and "--early-stopping, --no-early-stopping" in out
    assert "--head-dropout FLOAT" in out and "--random-state INT" in out
    docs = docstring_parameters(BertTextClassifier)
    for name in inspect.signature(BertTextClassifier).parameters:
        assert name in docs, f"{name} has no numpydoc entry"
        if name not in OWN_FLAGS:
            assert f"--{name.replace('_', '-')}" in out, name


def test_parameter_flags_and_one_epochs_knob(tmp_path, capsys, monkeypatch):
    """Check that the flags set the estimator's parameters (--epochs is max_iter, also
    for a streamed fit, which defaults to one pass), and that a flag and a --param that
    disagree are refused."""
    from skbert import _cli

    fitted = []
    def fit_whole(args, model):
        model.classes_ = np.array([0, 1])  # what the final note reads
        fitted.append(model)

    monkeypatch.setattr(_cli, "_fit_whole", fit_whole)
    monkeypatch.setattr(_cli, "save_model", lambda model, path: None)
    data = tmp_path / "t.csv"
    data.write_text("text,label\na,0\nb,1\n")
    base = ["fit", str(data), "--out", str(tmp_path / "m.skops"), "--quiet"]
    assert main([*base, "--epochs", "2", "--learning-rate", "1e-4", "--no-early-stopping",
                 "--head", "64,32", "--head-dropout", "none", "--random-state", "7"]) == 0
    params = fitted[-1].get_params()
    assert (params["max_iter"], params["learning_rate"], params["head"]) == (2, 1e-4, (64, 32))
    assert params["head_dropout"] is None and params["random_state"] == 7
    assert main([*base, "--max-iter", "4"]) == 0 and fitted[-1].max_iter == 4
    status, _, err = _main(capsys, *base, "--epochs", "2", "--param", "max_iter=3")
    assert status == 1 and "--max-iter 2 and --param max_iter=3 disagree" in err



def test_streamed_fit_makes_one_pass_unless_epochs_are_given(tiny_params, tmp_path, capsys):
    """Check that --chunksize without --epochs makes one pass (saved as max_iter=1, so
    --resume knows it), and --epochs N makes N."""
    X, y = make_texts(60, seed=5)
    data = _write(pd.DataFrame({"text": X, "label": y}), tmp_path / "t.csv")
    params = _param_args({k: v for k, v in tiny_params.items() if k != "max_iter"})
    for extra, passes in (([], 1), (["--epochs", "2"], 2)):
        out = tmp_path / f"m{passes}.skops"
        assert main(["fit", str(data), "--out", str(out), "--chunksize", "30", "--quiet",
                     *params, *extra]) == 0
        model = sio.load(out, trusted=TRUSTED)
        assert model.max_iter == passes and model.n_iter_ == 2 * passes
        assert model.n_samples_seen_ == 60 * passes


def test_evaluate_json_matches_the_text_report(model_path, test_frame, tmp_path, capsys):
    """Check evaluate --json: the same scores as the text report, per class too."""
    import json

    data = _write(test_frame, tmp_path / "test.csv")
    status, text, _ = _main(capsys, "evaluate", model_path, data, "--quiet")
    assert status == 0
    status, out, _ = _main(capsys, "evaluate", model_path, data, "--quiet", "--json")
    scores = json.loads(out)
    assert f"accuracy: {scores['accuracy']:.4f}" in text
    assert f"MCC:      {scores['mcc']:.4f}" in text
    assert scores["rows"] == len(test_frame) and set(scores["classes"]) == {"neg", "pos"}
    assert scores["classes"]["pos"]["support"] == (test_frame["label"] == "pos").sum()


def test_evaluate_warns_when_every_prediction_is_one_class(test_frame, tmp_path, capsys,
                                                           monkeypatch):
    """Check the warning for a model that predicts one class for every row (MCC 0)."""
    from skbert import _cli

    class OneClass:
        classes_ = np.array(["neg", "pos"])

        def predict_proba(self, texts):
            return np.tile([0.9, 0.1], (len(texts), 1))

    monkeypatch.setattr(_cli, "load_model", lambda path: OneClass())
    data = _write(test_frame, tmp_path / "test.csv")
    status, out, err = _main(capsys, "evaluate", tmp_path / "m.skops", data, "--quiet")
    assert status == 0 and "MCC:      0.0000" in out
    assert f"warning: the model predicts 'neg' for every one of the {len(test_frame)} rows" in err


def test_regression_fit_predict_evaluate(tiny_params, tmp_path, capsys):
    """Check --regression end to end: a BertTextRegressor saved by fit (whole and
    streamed), its predictions written by predict, R² and the rest printed by evaluate
    (text and --json), and a non-numeric target named by its row."""
    import json

    from skbert import BertTextRegressor

    X, y = make_texts(80, seed=6)
    target = y * 4.0 + np.linspace(0, 0.5, 80)
    data = _write(pd.DataFrame({"text": X, "score": target}), tmp_path / "train.csv")
    params = _param_args(dict(tiny_params, max_iter=4))
    out = tmp_path / "reg.skops"
    assert main(["fit", str(data), "--label-column", "score", "--regression", "--out",
                 str(out), "--quiet", "--loss", "huber", *params]) == 0
    model = sio.load(out, trusted=skbert.TRUSTED_TYPES)
    assert isinstance(model, BertTextRegressor) and model.loss == "huber"
    preds = tmp_path / "preds.csv"
    assert main(["predict", str(out), str(data), "--out", str(preds), "--quiet"]) == 0
    written = pd.read_csv(preds)
    assert written.columns.tolist() == ["row", "prediction"]
    np.testing.assert_allclose(written["prediction"], model.predict(X), rtol=1e-6)
    capsys.readouterr()
    assert main(["evaluate", str(out), str(data), "--label-column", "score", "--quiet",
                 "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["R2"] == pytest.approx(model.score(X, target), abs=1e-6)
    assert scores["rows"] == 80 and scores["Spearman"] > 0.5
    assert main(["evaluate", str(out), str(data), "--label-column", "score", "--quiet"]) == 0
    assert f"R2:       {scores['R2']:.4f}" in capsys.readouterr().out
    status, _, err = _main(capsys, "predict", out, data, "--out", preds, "--proba")
    assert status == 1 and "--proba applies to classifiers" in err

    streamed = tmp_path / "stream.skops"
    assert main(["fit", str(data), "--label-column", "score", "--regression", "--out",
                 str(streamed), "--chunksize", "40", "--quiet", *params]) == 0
    assert sio.load(streamed, trusted=skbert.TRUSTED_TYPES).n_iter_ == 2 * 4

    bad = _write(pd.DataFrame({"text": X[:4], "score": [1.0, 2.0, "high", 3.0]}),
                 tmp_path / "bad.csv")
    status, _, err = _main(capsys, "fit", bad, "--label-column", "score", "--regression",
                           "--out", tmp_path / "bad.skops", *params)
    assert status == 1 and "Row 2 of" in err and "'high' in the target column 'score'" in err
    status, _, err = _main(capsys, "fit", data, "--regression", "--label-column", "score",
                           "--class-weight", "balanced", "--out", tmp_path / "x.skops")
    assert status == 1 and "Unknown parameter 'class_weight'" in err
