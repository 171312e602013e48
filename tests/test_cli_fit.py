"""``skbert fit``: whole files and streams with checkpoints and ``--resume``, parameters
as flags and ``--param``, regression, and the checks made before any training."""

import os
import re

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

import skbert
from skbert import BertTextClassifier
from skbert._cli import main

from . import _cli_support
from ._cli_support import (
    TRUSTED,
    param_args,
    read_frame,
    run_cli,
    run_main,
    write_frame,
)
from .conftest import make_texts

# The shared fixtures of the command-line tests.
stream_run = _cli_support.stream_run


def test_fit_whole_file_then_evaluate(tiny_params, toy_data, tmp_path):
    """Check fit on a CSV with int labels, then evaluate on string labels "0"/"1"."""
    X, y, X_test, y_test = toy_data
    train = write_frame(pd.DataFrame({"body": X, "target": y}), tmp_path / "train.csv")
    out = tmp_path / "model.skops"
    fit = run_cli("fit", train, "--text-column", "body", "--label-column", "target",
                  "--out", out, *param_args(dict(tiny_params, max_iter=2)))
    assert fit.returncode == 0, fit.stderr
    model = sio.load(out, trusted=TRUSTED)
    assert model.classes_.tolist() == [0, 1] and model.max_iter == 2
    assert model.n_iter_ == 2 and model.learning_rate == tiny_params["learning_rate"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    test = write_frame(pd.DataFrame({"text": X_test, "label": y_test.astype(str)}),
                       tmp_path / "test.parquet")
    evaluate = run_cli("evaluate", out, test, "--quiet")
    assert evaluate.returncode == 0, evaluate.stderr
    y_pred = model.predict(X_test)
    values = dict(re.findall(r"^(accuracy|macro-F1|MCC):\s+(\S+)$", evaluate.stdout, re.M))
    assert float(values["accuracy"]) == pytest.approx(accuracy_score(y_test, y_pred), abs=1e-4)
    assert float(values["macro-F1"]) == pytest.approx(
        f1_score(y_test, y_pred, average="macro"), abs=1e-4)
    assert float(values["MCC"]) == pytest.approx(matthews_corrcoef(y_test, y_pred), abs=1e-4)
    assert "precision" in evaluate.stdout and "macro avg" in evaluate.stdout


def test_stream_fit_checkpoints_and_resume(stream_run):
    """Check a streamed fit's schedule, and that resuming mid-epoch matches the full run."""
    folder, _, args = stream_run
    ckpt = folder / "ckpt"
    names = sorted(p.name for p in ckpt.iterdir() if p.name != ".lock")
    assert names == [f"ckpt-{3 * k:012d}" for k in range(1, 7)]  # 6 chunks of 3 steps
    last = BertTextClassifier.resume(ckpt)
    assert last.n_iter_ == 6
    assert last._stream.trainer.state.steps == last.max_steps == 18  # decays to 0
    for name in names[4:]:  # "crash" after 4 chunks: one into the second epoch
        for file in (ckpt / name).iterdir():
            file.unlink()
        (ckpt / name).rmdir()
    proc = run_cli(*args, "--out", folder / "resumed.skops", "--resume")
    assert proc.returncode == 0, proc.stderr
    full = sio.load(folder / "full.skops", trusted=TRUSTED)
    resumed = sio.load(folder / "resumed.skops", trusted=TRUSTED)
    assert resumed.n_iter_ == full.n_iter_ == 6
    X, _ = make_texts(30, seed=9)
    np.testing.assert_allclose(resumed.predict_proba(X), full.predict_proba(X), atol=1e-6)


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
    proc = run_cli("fit", data, "--out", tmp_path / "m.skops", "--param", param)
    assert proc.returncode == 1 and re.search(match, proc.stderr), proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.skops").exists()


def test_resume_with_another_chunksize_is_refused(stream_run, capsys):
    """Check that resuming on differently cut chunks is an error, not a silent skip."""
    folder, data, args = stream_run
    args = [a if a != 40 else 30 for a in args]
    status, _, err = run_main(capsys, *args, "--out", folder / "other.skops", "--resume")
    assert status == 1
    assert "has trained on 6 chunks of 240 rows" in err and "--chunksize 30" in err
    assert not (folder / "other.skops").exists()


def test_resume_with_more_epochs_than_the_schedule_is_refused(stream_run, capsys):
    """Check that resuming for more epochs than max_steps covers is an error, not lr 0."""
    folder, _, args = stream_run
    i = args.index("--epochs")
    args = [*args[: i + 1], 3, *args[i + 2 :]]
    status, _, err = run_main(capsys, *args, "--out", folder / "more.skops", "--resume")
    assert status == 1
    assert "max_steps=18" in err and "--epochs 3 over this data needs 27" in err
    assert not (folder / "more.skops").exists()


def test_predict_from_checkpoint_folder(stream_run, tmp_path, capsys):
    """Check that a checkpoint_dir works as MODEL: its newest checkpoint predicts."""
    folder, data, _ = stream_run
    out = tmp_path / "preds.jsonl"
    status, _, err = run_main(capsys, "predict", folder / "ckpt", data, "--out", out, "--quiet")
    assert status == 0, err
    newest = sorted((folder / "ckpt").glob("ckpt-*"))[-1]
    model = sio.load(newest / "estimator.skops", trusted=TRUSTED)
    texts = pd.read_parquet(data)["text"].tolist()
    assert read_frame(out)["prediction"].tolist() == model.predict(texts).tolist()


def test_parameter_flags_and_one_epochs_knob(tmp_path, capsys, monkeypatch):
    """Check that the flags set the estimator's parameters (--epochs is max_iter, also
    for a streamed fit, which defaults to one pass), and that a flag and a --param that
    disagree are refused."""
    from skbert._cli import fit as fit_command

    fitted = []
    def fit_whole(data, labels, model, quiet, verbose):
        model.classes_ = np.array([0, 1])  # what the final note reads
        fitted.append(model)

    monkeypatch.setattr(fit_command, "_fit_whole", fit_whole)
    monkeypatch.setattr(fit_command, "save_model", lambda model, path: None)
    data = tmp_path / "t.csv"
    data.write_text("text,label\na,0\nb,1\n")
    base = ["fit", str(data), "--out", str(tmp_path / "m.skops"), "--quiet"]
    assert main([*base, "--epochs", "2", "--learning-rate", "1e-4", "--no-early-stopping",
                 "--head", "64,32", "--head-dropout", "none", "--random-state", "7"]) == 0
    params = fitted[-1].get_params()
    assert (params["max_iter"], params["learning_rate"], params["head"]) == (2, 1e-4, (64, 32))
    assert params["head_dropout"] is None and params["random_state"] == 7
    assert main([*base, "--max-iter", "4"]) == 0 and fitted[-1].max_iter == 4
    status, _, err = run_main(capsys, *base, "--epochs", "2", "--param", "max_iter=3")
    assert status == 1 and "--max-iter 2 and --param max_iter=3 disagree" in err


@pytest.mark.any_precision
def test_few_shot_flag_reads_booleans_and_auto(tmp_path, capsys, monkeypatch):
    """Check that --few-shot, which takes "auto" or a bool, sets True, False or "auto"
    from true/false/auto (any case), and that another word is refused by name."""
    from skbert._cli import fit as fit_command

    fitted = []
    def fit_whole(data, labels, model, quiet, verbose):
        model.classes_ = np.array([0, 1])  # what the final note reads
        fitted.append(model)

    monkeypatch.setattr(fit_command, "_fit_whole", fit_whole)
    monkeypatch.setattr(fit_command, "save_model", lambda model, path: None)
    data = tmp_path / "t.csv"
    data.write_text("text,label\na,0\nb,1\n")
    base = ["fit", str(data), "--out", str(tmp_path / "m.skops"), "--quiet"]
    for text, expected in (("true", True), ("False", False), ("auto", "auto"),
                           ("yes", True), ("off", False)):
        assert main([*base, "--few-shot", text]) == 0
        assert fitted[-1].few_shot is expected or fitted[-1].few_shot == expected == "auto"
    status, _, err = run_main(capsys, *base, "--few-shot", "maybe")
    assert status != 0 and "few_shot" in err and "maybe" in err


def test_streamed_fit_makes_one_pass_unless_epochs_are_given(tiny_params, tmp_path, capsys):
    """Check that --chunksize without --epochs makes one pass (saved as max_iter=1, so
    --resume knows it), and --epochs N makes N."""
    X, y = make_texts(60, seed=5)
    data = write_frame(pd.DataFrame({"text": X, "label": y}), tmp_path / "t.csv")
    params = param_args({k: v for k, v in tiny_params.items() if k != "max_iter"})
    for extra, passes in (([], 1), (["--epochs", "2"], 2)):
        out = tmp_path / f"m{passes}.skops"
        assert main(["fit", str(data), "--out", str(out), "--chunksize", "30", "--quiet",
                     *params, *extra]) == 0
        model = sio.load(out, trusted=TRUSTED)
        assert model.max_iter == passes and model.n_iter_ == 2 * passes
        assert model.n_samples_seen_ == 60 * passes


def test_regression_fit_predict_evaluate(tiny_params, tmp_path, capsys):
    """Check --regression end to end: a BertTextRegressor saved by fit (whole and
    streamed), its predictions written by predict, R² and the rest printed by evaluate
    (text and --json), and a non-numeric target named by its row."""
    import json

    from skbert import BertTextRegressor

    X, y = make_texts(80, seed=6)
    target = y * 4.0 + np.linspace(0, 0.5, 80)
    data = write_frame(pd.DataFrame({"text": X, "score": target}), tmp_path / "train.csv")
    params = param_args(dict(tiny_params, max_iter=4))
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
    status, _, err = run_main(capsys, "predict", out, data, "--out", preds, "--proba")
    assert status == 1 and "--proba applies to classifiers" in err

    streamed = tmp_path / "stream.skops"
    assert main(["fit", str(data), "--label-column", "score", "--regression", "--out",
                 str(streamed), "--chunksize", "40", "--quiet", *params]) == 0
    assert sio.load(streamed, trusted=skbert.TRUSTED_TYPES).n_iter_ == 2 * 4

    bad = write_frame(pd.DataFrame({"text": X[:4], "score": [1.0, 2.0, "high", 3.0]}),
                      tmp_path / "bad.csv")
    status, _, err = run_main(capsys, "fit", bad, "--label-column", "score", "--regression",
                              "--out", tmp_path / "bad.skops", *params)
    assert status == 1 and "Row 2 of" in err and "'high' in the target column 'score'" in err
    status, _, err = run_main(capsys, "fit", data, "--regression", "--label-column", "score",
                              "--class-weight", "balanced", "--out", tmp_path / "x.skops")
    assert status == 1 and "Unknown parameter 'class_weight'" in err


def test_out_in_an_unwritable_folder_names_the_path_given(tmp_path, capsys):
    """Check that an --out whose folder takes no file (/proc) is refused before training,
    naming the path given, not only its folder (issue 33, item 10)."""
    if not os.path.isdir("/proc") or os.access("/proc", os.W_OK):
        pytest.skip("needs a /proc folder that cannot be written")
    data = tmp_path / "t.csv"
    data.write_text("text,label\na,0\nb,1\n")
    status, _, err = run_main(capsys, "fit", data, "--out", "/proc/model.skops")
    assert status == 1
    assert "--out='/proc/model.skops' cannot be written" in err, err
    assert len(err.strip().splitlines()) == 1
