"""Progress bars: per epoch of fit (loss, total, time left), per prediction call (in
texts), and the command line's (totals counted from the file; hidden by --quiet)."""

import gzip
import re

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from skbert import BertTextClassifier, _engine, _prediction
from skbert._batching import count_batches
from skbert._cli import data as cli_data
from skbert._cli import main
from skbert._cli import options as cli_options
from skbert._io import read_frames

from .conftest import make_texts

# Bars and row counts, not numbers of one precision: run once in CI.
pytestmark = pytest.mark.any_precision

TRUSTED = ["skbert._classifier.BertTextClassifier"]
# "12/60 [" in a tqdm line: the count and the total.
_COUNTS = re.compile(r"(\d+)/(\d+) \[")


def _counts(err, desc):
    """(count, total) of every drawing of the bar ``desc`` in captured stderr."""
    lines = [line for line in re.split(r"[\r\n]", err) if line.startswith(f"{desc}:")]
    return [tuple(map(int, m.groups())) for line in lines for m in _COUNTS.finditer(line)]


@pytest.fixture(scope="module")
def model(tiny_params, toy_data):
    """A classifier fitted for one epoch, silent (tests set ``verbose`` on a copy)."""
    X, y, _, _ = toy_data
    return BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, y)


def _verbose_copy(model, **params):
    clone = object.__new__(type(model))  # shares the fitted network; no serialising
    clone.__dict__.update(model.__dict__)
    return clone.set_params(verbose=1, **params)


# ------------------------------------------------------------------- estimator
def test_fit_verbose_shows_epoch_bars_with_loss_and_total(tiny_params, toy_data, capsys):
    """Check that fit with verbose=1 draws a bar per epoch on stderr that knows its total
    of batches, ends full with the running loss, and prints the epoch lines on stdout."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=2, verbose=1)).fit(X, y)
    out, err = capsys.readouterr()
    n_batches = count_batches(len(X), tiny_params["batch_size"], length_grouped=True)
    for epoch, loss in enumerate(clf.loss_curve_, start=1):
        counts = _counts(err, f"Epoch {epoch}")
        assert counts and {total for _, total in counts} == {n_batches}
        assert counts[-1] == (n_batches, n_batches)
        final = [line for line in re.split(r"[\r\n]", err)
                 if line.startswith(f"Epoch {epoch}:") and f"{n_batches}/{n_batches}" in line]
        assert f"loss={loss:.4f}]" in final[-1]  # the pass's mean loss at its end
        assert f"Epoch {epoch}/2: loss={loss:.4f}" in out


class _ConstantLossSource:
    """One-row batches whose losses are ``values`` (the network's output times 0 plus the
    value: a graph to step through), optionally sleeping ``pause`` seconds in batch 0."""

    def __init__(self, values, pause=0.0):
        self.values, self.pause, self.n_texts = values, pause, len(values)

    def batches(self, rng):
        return [np.array([i]) for i in range(self.n_texts)]

    def loss(self, network, rows, part):
        import time

        import torch

        if rows[0] == 0:
            time.sleep(self.pause)
        return network(torch.ones(1, 1)).sum() * 0 + self.values[rows[0]]


def _recording_trainer(monkeypatch):
    """A trainer of a 1x1 linear network whose bars record each loss they are given and
    count their redraws: ``(trainer, shown, redraws)``."""
    import torch

    shown, redraws = [], []

    class Recording(_engine.tqdm):
        def set_postfix(self, ordered_dict=None, refresh=True, **kwargs):
            shown.append(float(kwargs["loss"]))
            super().set_postfix(ordered_dict, refresh, **kwargs)

        def refresh(self, *args, **kwargs):
            redraws.append(1)
            return super().refresh(*args, **kwargs)

    monkeypatch.setattr(_engine, "tqdm", Recording)
    module = torch.nn.Linear(1, 1)
    groups = [{"params": list(module.parameters()), "lr": 0.1, "weight_decay": 0.0}]
    cpu = torch.device("cpu")
    state = _engine.new_state(groups, _engine.TrainingPlan(0, 100), 0, cpu, None)
    return _engine.Trainer(module, module, state, device=cpu), shown, redraws


def test_fit_bar_shows_the_running_loss_of_recent_batches(monkeypatch, capsys):
    """Check that the bar's loss is a running loss of recent batches, updated every
    step (not every 10): the first batch's own loss at once, close to the recent
    batches' after a drop (while the pass's mean lags), and the pass's mean at its end,
    as the epoch line."""
    trainer, shown, _ = _recording_trainer(monkeypatch)
    values = [4.0] * 20 + [1.0] * 20
    losses = trainer.train(_ConstantLossSource(values), 1, verbose=1)
    assert losses == [pytest.approx(2.5)]
    assert len(shown) == len(values) + 1  # every step, then the pass's mean
    assert shown[0] == pytest.approx(4.0) and shown[19] == pytest.approx(4.0)
    assert shown[1:20] == [pytest.approx(4.0)] * 19  # bias-corrected: not pulled to 0
    assert 1.0 < shown[39] < 1.5  # the recent batches' 1.0, not the mean 2.5
    assert shown[-1] == pytest.approx(2.5)
    assert "Epoch 1/1: loss=2.5000" in capsys.readouterr().out


def test_fit_bar_is_redrawn_during_a_slow_step(monkeypatch, capsys):
    """Check that a bar is redrawn on a timer while a step runs long (its elapsed time
    moves), and not at all when hidden."""
    monkeypatch.setattr(_engine, "_REDRAW_SECONDS", 0.05)
    trainer, _, redraws = _recording_trainer(monkeypatch)
    trainer.train(_ConstantLossSource([1.0, 1.0], pause=0.5), 1, verbose=1)
    assert len(redraws) >= 4  # about 10 during the pause
    redraws.clear()
    trainer.train(_ConstantLossSource([1.0, 1.0], pause=0.3), 1, verbose=0)
    assert len(redraws) <= 1  # at most the call of the pass end, which draws nothing
    capsys.readouterr()


def test_auto_verbose_follows_who_watches(monkeypatch):
    """Check that verbose="auto" shows progress when stderr is a terminal or in a
    notebook's kernel, only in the main thread of the main process, and that ints
    keep their meaning."""
    import io
    import sys
    import threading
    import types

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.delitem(sys.modules, "IPython", raising=False)
    assert _engine.resolve_verbose(0) == 0 and _engine.resolve_verbose(2) == 2
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert _engine.resolve_verbose("auto") == 0  # a pipe, a log, pytest's capture
    monkeypatch.setattr(sys, "stderr", Terminal())
    assert _engine.resolve_verbose("auto") == 1
    seen = []
    thread = threading.Thread(target=lambda: seen.append(_engine.watched()))
    thread.start()
    thread.join()
    assert seen == [False]  # a thread of n_jobs' threading backend
    monkeypatch.setattr("multiprocessing.parent_process", lambda: object())
    assert not _engine.watched()  # a joblib (loky) or multiprocessing worker
    monkeypatch.undo()
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    kernel = types.SimpleNamespace(kernel=object())
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: kernel))
    assert _engine.watched()  # a notebook: stderr is the kernel's stream
    monkeypatch.setitem(sys.modules, "IPython",
                        types.SimpleNamespace(get_ipython=lambda: None))
    assert not _engine.watched()


def test_auto_verbose_is_silent_under_capture(tiny_params, toy_data, capsys):
    """Check that fit and predict under verbose="auto" print nothing when stderr is not a
    terminal (pytest's capture, as CI and logs)."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, verbose="auto")).fit(X, y)
    clf.predict_proba(X_test)
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("method", ["predict_proba", "predict", "decision_function",
                                    "transform"])
def test_prediction_bar_counts_the_texts_of_the_call(model, toy_data, method, capsys):
    """Check one bar per call on stderr, of total len(X), ending at len(X), in texts;
    none under verbose=0 (the default)."""
    _, _, X_test, _ = toy_data
    getattr(model, method)(X_test)
    list(model.iter_predict_proba(iter(X_test), chunk_size=7))
    assert capsys.readouterr() == ("", "")
    clf = _verbose_copy(model, predict_batch_tokens=64)  # many batches
    getattr(clf, method)(X_test)
    err = capsys.readouterr().err
    desc = "transform" if method == "transform" else "predict"
    counts = _counts(err, desc)
    assert counts and {total for _, total in counts} == {len(X_test)}
    assert counts[-1] == (len(X_test), len(X_test)) and " texts/s" in err
    assert err.count(f"{desc}:   0%") == 1  # one bar, not one per chunk or batch


def test_windowed_prediction_bar_counts_texts_not_windows(model, toy_data, capsys):
    """Check that under truncation="window" the bar counts texts (of several windows
    each) and ends exactly at len(X), across several chunks."""
    _, _, X_test, _ = toy_data
    long_texts = [" ".join([text] * 4) for text in X_test]
    clf = _verbose_copy(model, truncation="window", max_length=8, predict_batch_tokens=64)
    chunks = list(clf.iter_predict_proba(long_texts, chunk_size=25))
    err = capsys.readouterr().err
    assert sum(map(len, chunks)) == len(long_texts)
    counts = _counts(err, "predict")
    assert counts and {total for _, total in counts} == {len(long_texts)}
    assert counts[-1] == (len(long_texts), len(long_texts))
    assert all(a <= b for (a, _), (b, _) in zip(counts, counts[1:], strict=False))
    assert "chunk" not in err  # the one bar replaced the bar of chunks


def test_text_progress_scales_windows_to_texts():
    """Check that a chunk's bar advances in whole texts and ends at its text count."""

    class Bar:
        n = 0

        def update(self, k):
            assert k >= 0
            self.n += k

    bar = Bar()
    advance = _prediction.text_progress(bar, 10, 25)  # 10 texts of 25 windows
    seen = []
    for n in (7, 7, 7, 4):
        advance(n)
        seen.append(bar.n)
    assert seen == [2, 5, 8, 10]
    assert _prediction.text_progress(None, 10, 25) is None


def test_unsized_input_bar_counts_without_a_total(model, toy_data, capsys):
    """Check that a generator gets a bar of texts with no total."""
    _, _, X_test, _ = toy_data
    _verbose_copy(model).predict_proba(iter(X_test))
    err = capsys.readouterr().err
    assert f"predict: {len(X_test)} texts [" in err and not _counts(err, "predict")


def test_frozen_base_fit_shows_the_features_bar(tiny_params, toy_data, capsys):
    """Check that fit with freeze_base=True and verbose=1 shows the bar of the training
    texts' features, of total the number of texts, before the epochs; and that fit
    with verbose=0 (the default) shows nothing."""
    X, y, _, _ = toy_data
    params = dict(tiny_params, max_iter=1, freeze_base=True)
    BertTextClassifier(**params).fit(X, y)
    assert capsys.readouterr() == ("", "")
    BertTextClassifier(**params, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    counts = _counts(err, "features")
    assert counts and {total for _, total in counts} == {len(X)}
    assert err.index("features:") < err.index("Epoch 1:")


# -------------------------------------------------------------- command line
def _data(path, no_header=False):
    return cli_data.DataFile(path, header=not no_header)


ROWS = [("good film", 1), ("bad, dull plot", 0), ("the acting", 1), ("", 0), ("ok", 1)]


def _frame():
    return pd.DataFrame(ROWS, columns=["text", "label"])


@pytest.mark.parametrize("block", [3, 1 << 20])
@pytest.mark.parametrize("case", [
    "csv", "csv-no-final-newline", "csv-trailing-blank-lines", "csv-crlf", "csv-no-header",
    "tsv", "tsv-no-header", "jsonl", "jsonl-no-final-newline", "csv.gz", "csv-utf16",
])
def test_count_rows_is_exact(case, block, tmp_path, monkeypatch):
    """Check the row count of DATA against the rows read, for each format and layout
    (in blocks of 3 bytes too, so that lines and blank ends straddle blocks)."""
    monkeypatch.setattr(cli_data, "COUNT_BLOCK", block)
    frame, options = _frame(), {}
    ext = case.split("-")[0]
    path = tmp_path / f"data.{ext}"
    if ext == "jsonl":
        frame.to_json(path, orient="records", lines=True)
    elif ext == "csv.gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as f:
            frame.to_csv(f, index=False)
    else:
        header = "no-header" not in case
        options["no_header"] = not header
        frame.to_csv(path, index=False, header=header, sep="\t" if ext == "tsv" else ",",
                     lineterminator="\r\n" if "crlf" in case else "\n",
                     encoding="utf-16" if "utf16" in case else "utf-8")
    if "no-final-newline" in case:
        path.write_bytes(path.read_bytes().rstrip(b"\n"))
    if "trailing-blank" in case:
        path.write_bytes(path.read_bytes() + b"\n\n\r\n")
    header = not options.get("no_header", False)
    read = read_frames(path, "text" if header else 0, None, 2, header=header)
    assert sum(map(len, read)) == len(ROWS)
    assert cli_data.count_rows(_data(path, **options)) == len(ROWS)


def test_quoted_newlines_over_count_and_the_bar_ends_at_the_rows_read(model, tmp_path,
                                                                     capsys):
    """Check that a CSV with line breaks inside quoted fields is over-counted, that the
    bar of `skbert predict` still ends full at the rows read, and that the model's own
    bar does not show beside the command's (even for a model saved with verbose=1)."""
    texts, _ = make_texts(12, seed=3)
    texts[2], texts[7] = "good film\nreally", "bad\n\nplot"
    data = tmp_path / "data.csv"
    pd.DataFrame({"text": texts}).to_csv(data, index=False)
    assert cli_data.count_rows(_data(data)) == len(texts) + 3  # an estimate: 3 line breaks
    path = tmp_path / "model.skops"
    sio.dump(_verbose_copy(model), path)
    assert main(["predict", str(path), str(data), "--out", str(tmp_path / "p.csv")]) == 0
    err = capsys.readouterr().err
    assert _counts(err, "predict")[-1] == (len(texts), len(texts))
    assert "rows/s" in err and "texts" not in err

    with cli_options.progress(False, 5, desc="rows") as bar:
        bar.update(3)
    assert bar.total == 3
    assert _counts(capsys.readouterr().err, "rows")[-1] == (3, 3)


def test_cli_fit_shows_the_training_bar_unless_quiet(tiny_params, toy_data, tmp_path,
                                                    capsys):
    """Check that `skbert fit` on a whole file shows the epoch bars and lines on stderr
    by default (stdout stays empty) and saves the model with its own verbose, and that
    --quiet hides every bar, also with an explicit --verbose."""
    X, y, _, _ = toy_data
    data = tmp_path / "train.csv"
    pd.DataFrame({"text": X, "label": y}).to_csv(data, index=False)
    params = [a for k, v in dict(tiny_params, max_iter=1).items()
              for a in ("--param", f"{k}={v!r}")]
    out = tmp_path / "m.skops"
    assert main(["fit", str(data), "--out", str(out), *params]) == 0
    stdout, err = capsys.readouterr()
    n_batches = count_batches(len(X), tiny_params["batch_size"], length_grouped=True)
    assert stdout == ""
    assert _counts(err, "Epoch 1")[-1] == (n_batches, n_batches)
    assert "loss=" in err and "Epoch 1/1: loss=" in err
    assert sio.load(out, trusted=TRUSTED).verbose == BertTextClassifier().verbose
    for extra in ([], ["--verbose", "1"]):
        assert main(["fit", str(data), "--out", str(out), "--quiet", *params, *extra]) == 0
        assert capsys.readouterr() == ("", "")
    stream = ["--chunksize", "60", "--verbose", "1", "--quiet"]
    assert main(["fit", str(data), "--out", str(out), *params, *stream]) == 0
    assert capsys.readouterr() == ("", "")
    assert np.isfinite(sio.load(out, trusted=TRUSTED).loss_curve_).all()
