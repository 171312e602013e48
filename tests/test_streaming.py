"""partial_fit over chunks, read_chunks, checkpoints and resuming after a crash."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from skbert import BertTextClassifier, read_chunks

from .conftest import make_texts

STREAM = dict(learning_rate=5e-3, batch_size=16, max_length=32, device="cpu", random_state=0)


@pytest.fixture(scope="module")
def chunks():
    X, y = make_texts(240, seed=21)
    return [(X[i : i + 40], y[i : i + 40]) for i in range(0, 240, 40)]


def _stream(tiny_model_dir, chunks, **params):
    clf = BertTextClassifier(tiny_model_dir, **dict(STREAM, **params))
    for X, y in chunks:
        clf.partial_fit(X, y, classes=[0, 1])
    return clf


def test_partial_fit_learns_over_chunks(tiny_model_dir, chunks, toy_data):
    """Check that several passes of partial_fit learn the task, one pass per call."""
    _, _, X_test, y_test = toy_data
    clf = BertTextClassifier(tiny_model_dir, **dict(STREAM, max_steps=48, learning_rate=1e-2))
    clf.partial_fit(*chunks[0], classes=[0, 1])
    optimizer = clf._stream.trainer.state.optimizer
    steps = clf._stream.trainer.state.steps
    assert steps == 3  # 40 texts in batches of 16
    for X, y in chunks[1:] * 3:
        clf.partial_fit(X, y)
    assert clf._stream.trainer.state.optimizer is optimizer and optimizer.state
    assert clf._stream.trainer.state.steps == 3 * (1 + 5 * 3)
    assert clf.n_iter_ == len(clf.loss_curve_) == 16
    assert clf.score(X_test, y_test) > 0.85


def test_partial_fit_first_call_needs_classes(tiny_model_dir, chunks):
    """Check scikit-learn's first-call rule and message."""
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(*chunks[0])


def test_partial_fit_rejects_changed_classes_and_unknown_labels(tiny_model_dir, chunks):
    """Check that classes may not change and labels must be among them."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(*chunks[0], classes=[0, 1])
    with pytest.raises(ValueError, match=r"`classes=\[0, 1, 2\]` is not the same"):
        clf.partial_fit(*chunks[1], classes=[0, 1, 2])
    X, y = chunks[1]
    with pytest.raises(ValueError, match=r"labels \[7\] that are not in classes \[0, 1\]"):
        clf.partial_fit(X, np.where(y == 1, 7, 0))


@pytest.mark.parametrize(
    "params, match",
    [({"early_stopping": True}, "does not support early_stopping"),
     ({"class_weight": "balanced"}, "'balanced' is not supported for partial_fit")],
)
def test_partial_fit_refuses_unsupported_params(tiny_model_dir, chunks, params, match):
    """Check that early stopping and balanced weights are refused for streams."""
    with pytest.raises(ValueError, match=match):
        BertTextClassifier(tiny_model_dir, **dict(STREAM, **params)).partial_fit(
            *chunks[0], classes=[0, 1]
        )


def test_partial_fit_warns_on_unshuffled_chunks(tiny_model_dir, chunks):
    """Check the warnings for a one-class chunk and a chunk of very different balance."""
    X, y = chunks[0]
    with pytest.warns(UserWarning, match="all 0: the input is probably not shuffled"):
        BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(
            [t for t, label in zip(X, y, strict=True) if label == 0], y[y == 0], classes=[0, 1]
        )
    clf = BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(X, y, classes=[0, 1])
    with pytest.warns(UserWarning, match="all 1: the input is probably not shuffled"):
        clf.partial_fit([t for t, label in zip(X, y, strict=True) if label == 1],
                        y[y == 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for chunk in chunks[1:]:  # shuffled chunks: no false alarm
            clf.partial_fit(*chunk)
    skewed = np.r_[np.flatnonzero(y == 0)[:2], np.tile(np.flatnonzero(y == 1), 3)]
    with pytest.warns(UserWarning, match="differs from the chunks seen so far"):
        clf.partial_fit([X[i] for i in skewed], y[skewed])


def test_stream_schedule_decays(tiny_model_dir, chunks):
    """Check warmup then inverse-sqrt decay without max_steps, and 0 at max_steps."""
    clf = _stream(tiny_model_dir, chunks)
    lrs = [g["lr"] for g in clf._stream.trainer.state.optimizer.param_groups]
    warmup = clf._stream.trainer.state.plan.warmup_steps
    assert warmup == 1  # 10% of the first chunk's 3 steps, at least 1
    # The rate of the next step, after 18: sqrt(warmup / (18 + 1)).
    np.testing.assert_allclose(lrs[0], 5e-3 * np.sqrt(warmup / 19), rtol=1e-6)
    bounded = _stream(tiny_model_dir, chunks, max_steps=18)
    assert bounded._stream.trainer.state.optimizer.param_groups[0]["lr"] == 0.0


def test_stream_past_max_steps_warns_once_at_the_callers_line(tiny_model_dir, chunks):
    """Check that a stream stepping past max_steps (where the rate is 0) warns once, at
    the caller's line, and that one of exactly max_steps steps does not warn; max_steps
    changed mid-stream does not change the schedule, and the warning says so."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _stream(tiny_model_dir, chunks, max_steps=18)  # 6 chunks x 3 steps
    clf = BertTextClassifier(tiny_model_dir, **dict(STREAM, max_steps=10))
    caught = []
    for i, (X, y) in enumerate(chunks):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            clf.partial_fit(X, y, classes=[0, 1])
        caught += [(i, w) for w in seen if "more than max_steps" in str(w.message)]
        clf.set_params(max_steps=1000)
    assert clf._stream.trainer.state.optimizer.param_groups[0]["lr"] == 0.0
    assert len(caught) == 1
    (i, w), = caught
    assert i == 3
    assert "taken 12 optimizer steps, more than max_steps=10 (max_steps=1000 was set" in str(
        w.message
    )
    assert w.filename == __file__


@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet", "jsonl"])
def test_read_chunks_formats(tmp_path, ext):
    """Check that every format yields the rows in order, chunk by chunk."""
    odd = "e\tf" if ext != "tsv" else "e f"
    frame = pd.DataFrame({"text": ["a b", "", 'c, "d"', odd] * 5,
                          "label": [1, 0, 1, 0] * 5, "other": range(20)})
    path = tmp_path / f"data.{ext}"
    if ext == "csv":
        frame.to_csv(path, index=False)
    elif ext == "tsv":  # plain lines, as GLUE files are: quotes are text
        path.write_text("\n".join("\t".join(map(str, row)) for row in
                                  [frame.columns, *frame.itertuples(index=False)]) + "\n")
    elif ext == "parquet":
        frame.to_parquet(path, row_group_size=7)
    else:
        frame.to_json(path, orient="records", lines=True)
    got = list(read_chunks(path, chunksize=6))
    assert [len(X) for X, _ in got] == [6, 6, 6, 2]
    assert sum((X for X, _ in got), []) == frame["text"].tolist()
    assert np.concatenate([y for _, y in got]).tolist() == frame["label"].tolist()
    X, y = next(read_chunks(path, label_column=None, chunksize=50))
    assert y is None and len(X) == 20
    columns = r"\['text', 'label', 'other'\]"
    with pytest.raises(ValueError, match=f"Column 'body' not found.*{columns}"):
        next(read_chunks(path, text_column="body"))


def test_tsv_quotes_are_text_and_rows_never_merge(tmp_path):
    """Check that quotes in a TSV, balanced or not, are read as text (no rows merged),
    that a row with an extra tab is refused by line, and that writing a value with a
    tab as TSV is refused."""
    from skbert._io import write_frames

    texts = ['"quoted" start', "plain", '"unbalanced good', "another", 'a 5" screen', "last"]
    path = tmp_path / "q.tsv"
    path.write_text("text\tlabel\n" + "".join(f"{t}\t{i % 2}\n" for i, t in enumerate(texts)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # none of these looks CSV-quoted
        (X, y), = read_chunks(path)
    assert X == texts and y.tolist() == [0, 1, 0, 1, 0, 1]
    out = tmp_path / "out.tsv"
    write_frames([pd.DataFrame({"text": texts})], out, "tsv")
    assert out.read_text().splitlines() == ["text", *texts]
    path.write_text("text\tlabel\na\t0\nb\tc\t1\n")
    with pytest.raises(ValueError, match=r"q.tsv' as TSV \(in TSV a field cannot hold a tab\)"
                                         r".*line 3"):
        list(read_chunks(path))
    with pytest.raises(ValueError, match="holds a tab or a line break.*write .csv"):
        write_frames([pd.DataFrame({"text": ["a\tb"]})], out, "tsv")


def test_tsv_quoted_the_csv_way_warns_and_carriage_returns_are_refused(tmp_path):
    """Check that a TSV that pandas quoted the CSV way is read as plain lines with a
    warning naming the row, and that writing a carriage return as TSV is refused (the
    csv module would write it bare, splitting the row)."""
    from skbert._io import write_frames

    path = tmp_path / "pandas.tsv"
    frame = pd.DataFrame({"text": ["plain", "more", 'he said "hi"'], "label": [0, 1, 1]})
    frame.to_csv(path, sep="\t", index=False)
    with pytest.warns(UserWarning, match=r"Row 2 of .*pandas.tsv.*looks quoted the CSV way"):
        chunks = list(read_chunks(path, chunksize=2))
    texts = [t for X, _ in chunks for t in X]
    assert texts == ["plain", "more", '"he said ""hi"""']  # kept as read, nothing dropped
    out = tmp_path / "out.tsv"
    with pytest.raises(ValueError, match="holds a tab or a line break"):
        write_frames([pd.DataFrame({"id": [0, 1], "text": ["a", "b\rc"]})], out, "tsv")


def test_read_chunks_bad_paths(tmp_path):
    """Check errors for a missing file, an unknown extension and a bad chunksize."""
    with pytest.raises(FileNotFoundError, match="No such data file"):
        next(read_chunks(tmp_path / "missing.csv"))
    with pytest.raises(ValueError, match="extension"):
        next(read_chunks(tmp_path / "data.xlsx"))
    with pytest.raises(ValueError, match="chunksize must be a positive int"):
        next(read_chunks(tmp_path / "data.csv", chunksize=0))


def test_checkpoints_resume_exactly_in_process(tiny_model_dir, chunks, tmp_path, toy_data):
    """Check that resuming from a checkpoint continues exactly like the uninterrupted run."""
    _, _, X_test, _ = toy_data
    full = _stream(tiny_model_dir, chunks)
    ckpt = tmp_path / "ckpt"
    first = _stream(tiny_model_dir, chunks[:3], checkpoint_dir=str(ckpt), keep_checkpoints=2)
    assert sorted(p.name for p in ckpt.iterdir() if p.name != ".lock") == [
        "ckpt-000000000006", "ckpt-000000000009"]
    del first
    resumed = BertTextClassifier.resume(ckpt)
    assert resumed.n_iter_ == 3
    for X, y in chunks[resumed.n_iter_:]:
        resumed.partial_fit(X, y)
    np.testing.assert_allclose(resumed.predict_proba(X_test), full.predict_proba(X_test),
                               atol=1e-6)


def test_checkpoint_every_steps(tiny_model_dir, chunks, tmp_path):
    """Check that checkpoint_every counts optimizer steps between checkpoints."""
    _stream(tiny_model_dir, chunks, checkpoint_dir=str(tmp_path), checkpoint_every=7,
            keep_checkpoints=10)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != ".lock") == [
        "ckpt-000000000009", "ckpt-000000000018"]


def test_resume_ignores_partial_and_refuses_corrupt(tiny_model_dir, chunks, tmp_path):
    """Check that half-written folders are never read and corrupt ones are refused intact."""
    _stream(tiny_model_dir, chunks[:2], checkpoint_dir=str(tmp_path))
    (tmp_path / ".ckpt-000000000099.tmp-x").mkdir()  # a crash while writing
    assert BertTextClassifier.resume(tmp_path).n_iter_ == 2
    latest = tmp_path / "ckpt-000000000006"
    (latest / "training_state.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match=r"ckpt-000000000006/training_state\.pt' is corrupt"):
        BertTextClassifier.resume(tmp_path)
    assert (latest / "training_state.pt").read_bytes() == b"garbage"
    with pytest.raises(FileNotFoundError, match="No checkpoint found"):
        BertTextClassifier.resume(tmp_path / "nothing-here")
    foreign = tmp_path / "foreign" / "ckpt-000000000001"
    foreign.mkdir(parents=True)
    torch.save({"format": "other"}, foreign / "training_state.pt")
    (foreign / "estimator.skops").write_bytes(b"PK")
    with pytest.raises(ValueError, match=r"ckpt-000000000001/estimator\.skops' is corrupt"):
        BertTextClassifier.resume(tmp_path / "foreign")


_SCRIPT = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    from skbert import BertTextClassifier, read_chunks
    model, data, ckpt, out, mode = sys.argv[1:6]
    params = json.loads(sys.argv[6])
    if mode == "resume":
        clf = BertTextClassifier.resume(ckpt)
        print("resumed", clf.n_iter_, flush=True)
    else:
        clf = BertTextClassifier(model, checkpoint_dir=ckpt if mode != "plain" else None,
                                 **params)
    for i, (X, y) in enumerate(read_chunks(data, chunksize=40)):
        if i < getattr(clf, "n_iter_", 0):
            continue
        clf.partial_fit(X, y, classes=[0, 1])
        print("done", i, flush=True)
        if mode == "crash" and i >= 2:
            time.sleep(60)  # killed here, mid-run
    np.save(out, clf.predict_proba([t for X, _ in read_chunks(data) for t in X]))
''')


def test_sigkill_then_resume_matches_uninterrupted_run(tiny_model_dir, chunks, tmp_path):
    """Check that a run killed with SIGKILL and resumed equals one never interrupted."""
    data = tmp_path / "train.parquet"
    pd.DataFrame({"text": sum((X for X, _ in chunks), []),
                  "label": np.concatenate([y for _, y in chunks])}).to_parquet(data)
    script = tmp_path / "train.py"
    script.write_text(_SCRIPT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    params = json.dumps(STREAM)

    def run(mode, out, ckpt="ckpt"):
        return [sys.executable, str(script), tiny_model_dir, str(data), str(tmp_path / ckpt),
                str(tmp_path / out), mode, params]

    proc = subprocess.Popen(run("crash", "never.npy"), stdout=subprocess.PIPE, text=True,
                            env=env)
    for line in proc.stdout:
        if line.startswith("done 2"):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    resumed = subprocess.run(run("resume", "resumed.npy"), capture_output=True, text=True,
                             env=env, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.splitlines()[0] == "resumed 3"
    plain = subprocess.run(run("plain", "plain.npy", ckpt="unused"), capture_output=True,
                           text=True, env=env, timeout=300)
    assert plain.returncode == 0, plain.stderr
    np.testing.assert_allclose(np.load(tmp_path / "resumed.npy"),
                               np.load(tmp_path / "plain.npy"), atol=1e-6)
