"""The skbert command line on awkward data files, and on folders it cannot write.

Encodings and byte order marks, ``--sep``, headerless files (``--no-header`` with column
numbers), duplicate column names, empty files, ``--out`` equal to DATA, ids holding a
bare carriage return, a reused ``--checkpoint-dir``, and read-only or full folders. The
data errors must come out before a model is loaded or trained: those tests replace
the commands' ``load_model`` (or the training) by a function that fails the test. The
full and read-only folders are made for real in a child process (tests/_fs_faults.py).
"""

import copy
import os
import re
import sys

import numpy as np
import pandas as pd
import pytest
import skops.io as sio

from skbert import BertTextClassifier
from skbert._cli import evaluate, fit, main, predict

from ._fs_faults import run_with_fault
from .conftest import DATA_DIR, make_texts

TRUSTED = ["skbert._classifier.BertTextClassifier"]


def _main(capsys, *args):
    """Run ``skbert ARGS`` in-process; return ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _no_model(*args, **kwargs):
    raise AssertionError("the model was loaded or trained before the data was checked")


@pytest.fixture
def no_model(monkeypatch):
    """Make loading a model, or training one, fail the test."""
    monkeypatch.setattr(predict, "load_model", _no_model)
    monkeypatch.setattr(evaluate, "load_model", _no_model)
    monkeypatch.setattr(BertTextClassifier, "fit", _no_model)
    monkeypatch.setattr(BertTextClassifier, "partial_fit", _no_model)
    monkeypatch.setattr(fit, "_scan", _no_model)


@pytest.fixture(scope="module")
def model_path(fitted, tmp_path_factory):
    """The ``fitted`` classifier (classes "neg", "pos") saved with skops, in float32."""
    path = tmp_path_factory.mktemp("cli-files-model") / "model.skops"
    sio.dump(copy.deepcopy(fitted).set_params(inference_dtype="float32"), path)
    return path


@pytest.fixture(scope="module")
def frame():
    """12 labelled texts with ids; two hold non-ASCII characters."""
    texts, y = make_texts(12, seed=3)
    texts[2], texts[7] = "café good film", "a naïve plot – awful"
    return pd.DataFrame({"id": [f"doc-{i}" for i in range(12)], "text": texts,
                         "label": np.array(["neg", "pos"])[y]})


def _expected(fitted, texts):
    return copy.deepcopy(fitted).set_params(inference_dtype="float32").predict(texts).tolist()


def _predictions(path):
    return pd.read_csv(path, keep_default_na=False)


# ------------------------------------------------------------------ encodings
@pytest.mark.parametrize("ext, encoding", [("jsonl", "utf-8-sig"), ("csv", "utf-8-sig"),
                                           ("csv", "utf-16"), ("tsv", "utf-16"),
                                           ("jsonl", "utf-16"), ("csv.gz", "utf-16")])
def test_byte_order_marks_are_read(ext, encoding, fitted, model_path, frame, tmp_path,
                                   capsys):
    """Check that a UTF-8 or UTF-16 file with a byte order mark reads without --encoding,
    in every text format (JSON Lines with a UTF-8 BOM failed at position 0)."""
    data = tmp_path / f"data.{ext}"
    if ext.startswith("jsonl"):
        frame.to_json(data, orient="records", lines=True, force_ascii=False,
                      compression=None)
        data.write_bytes(data.read_text(encoding="utf-8").encode(encoding))
    else:
        frame.to_csv(data, sep="\t" if ext == "tsv" else ",", index=False,
                     encoding=encoding)
    assert data.read_bytes()[:2] in (b"\xef\xbb", b"\xff\xfe", b"\xfe\xff", b"\x1f\x8b")
    out = tmp_path / "preds.csv"
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out,
                           "--id-column", "id", "--quiet")
    assert status == 0, err
    preds = _predictions(out)
    assert preds["id"].tolist() == frame["id"].tolist()
    assert preds["prediction"].tolist() == _expected(fitted, frame["text"].tolist())


@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_undecodable_bytes_name_the_line_and_the_fix(ext, fitted, model_path, frame,
                                                     tmp_path, capsys, monkeypatch):
    """Check that a cp1252 file is an error naming the file, the byte offset, the line
    and --encoding cp1252 (before the model loads), and that --encoding cp1252 reads
    it; an unknown codec is an error too."""
    data = tmp_path / f"data.{ext}"
    if ext == "csv":
        content = frame.to_csv(index=False, lineterminator="\n")
        line = 4  # the header, doc-0, doc-1, then doc-2 with "café"
    else:
        content = frame.to_json(orient="records", lines=True, force_ascii=False)
        line = 3
    data.write_bytes(content.encode("cp1252"))
    offset = content.encode("utf-8").index("é".encode())
    out = tmp_path / "preds.csv"
    with monkeypatch.context() as patch:
        patch.setattr(predict, "load_model", _no_model)
        status, _, err = _main(capsys, "predict", model_path, data, "--out", out)
    assert status == 1
    assert f"Cannot read '{data}' as utf-8: the bytes b'\\xe9' at byte offset {offset} " \
           f"(on line {line}, counting from 1)" in err
    assert "add --encoding cp1252" in err and "re-save it as UTF-8" in err
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out, "--quiet",
                           "--encoding", "cp1252")
    assert status == 0, err
    assert _predictions(out)["prediction"].tolist() == _expected(fitted, frame["text"])
    status, _, err = _main(capsys, "evaluate", model_path, data, "--encoding", "klingon")
    assert status == 1 and "Unknown encoding 'klingon'" in err


def test_encoding_applies_to_fit_and_evaluate(fitted, model_path, frame, tmp_path, capsys,
                                              tiny_params):
    """Check --encoding on evaluate and fit (a latin-1 file), and that it is refused
    for Parquet, whose texts are UTF-8."""
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False, encoding="latin-1", errors="replace")
    status, out, err = _main(capsys, "evaluate", model_path, data, "--encoding", "latin-1",
                             "--quiet")
    assert status == 0 and "rows:     12" in out, err
    params = [a for k, v in dict(tiny_params, max_iter=1).items()
              for a in ("--param", f"{k}={v!r}")]
    status, _, err = _main(capsys, "fit", data, "--out", tmp_path / "m.skops", "--quiet",
                           "--encoding", "latin-1", *params)
    assert status == 0, err
    frame.to_parquet(tmp_path / "data.parquet")
    status, _, err = _main(capsys, "evaluate", model_path, tmp_path / "data.parquet",
                           "--encoding", "latin-1")
    assert status == 1 and "--encoding applies to CSV, TSV and JSON" in err


# --------------------------------------------------- separators and no header
def test_semicolon_csv_with_sep(fitted, model_path, frame, tmp_path, capsys):
    """Check that a ';'-separated CSV is an error that suggests --sep ';', and reads
    with it (in quotes, a ';' inside a text stays text)."""
    frame = frame.assign(text=frame["text"].str.replace("film", "film; plot", regex=False))
    data = tmp_path / "european.csv"
    frame.to_csv(data, sep=";", index=False)
    out = tmp_path / "preds.csv"
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out)
    assert status == 1
    assert "Column 'text' not found" in err and "pass --sep ';'" in err
    assert "sep=" not in err  # the flags, not Python's keyword arguments
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out, "--sep", ";",
                           "--quiet")
    assert status == 0, err
    assert _predictions(out)["prediction"].tolist() == _expected(fitted, frame["text"])
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out, "--sep", ";;")
    assert status == 1 and "must be one character" in err


def _cola_shaped(path, frame, labels):
    """Write ``frame`` as CoLA's files are: source, label, mark, sentence; no header."""
    texts = frame["text"].tolist()
    texts[1] = '"' + texts[1]  # an unbalanced quote, as two CoLA sentences have
    path.write_text("".join(f"src{i % 3}\t{label}\t{'' if label else '*'}\t{text}\n"
                            for i, (text, label) in enumerate(zip(texts, labels, strict=True))))
    return texts


def test_headerless_cola_shaped_file_fit_and_evaluate(tiny_params, frame, tmp_path,
                                                      capsys):
    """Check fit, evaluate and predict on a headerless 4-column TSV as CoLA's, with
    columns by number (0-based), quotes kept as text."""
    data = tmp_path / "in_domain_train.tsv"
    labels = (frame["label"] == "pos").astype(int).tolist()
    texts = _cola_shaped(data, frame, labels)
    model = tmp_path / "cola.skops"
    params = [a for k, v in dict(tiny_params, max_iter=1).items()
              for a in ("--param", f"{k}={v!r}")]
    status, _, err = _main(capsys, "fit", data, "--no-header", "--text-column", 3,
                           "--label-column", 1, "--out", model, "--quiet", *params)
    assert status == 0, err
    clf = sio.load(model, trusted=TRUSTED)
    assert clf.classes_.tolist() == [0, 1]
    status, out, err = _main(capsys, "evaluate", model, data, "--no-header", "--text-column",
                             3, "--label-column", 1, "--quiet")
    assert status == 0 and "rows:     12" in out, err
    preds = tmp_path / "preds.jsonl"
    status, _, err = _main(capsys, "predict", model, data, "--no-header", "--text-column", 3,
                           "--id-column", 0, "--out", preds, "--quiet")
    assert status == 0, err
    got = pd.read_json(preds, lines=True, dtype=False)
    assert got.columns.tolist() == ["id", "prediction"]
    assert got["id"].tolist() == [f"src{i % 3}" for i in range(12)]
    assert got["prediction"].tolist() == clf.predict(texts).tolist()
    assert texts[1].startswith('"')


def test_headerless_sms_shaped_file_without_extension(fitted, model_path, frame, tmp_path,
                                                      capsys):
    """Check a file named like SMSSpamCollection (no extension, label TAB text, an
    unbalanced quote) with --data-format tsv --no-header --text-column 1."""
    data = tmp_path / "SMSSpamCollection"
    texts = frame["text"].tolist()
    texts[4] = 'call "now for a good film'
    data.write_text("".join(f"{'spam' if i % 4 else 'ham'}\t{t}\n" for i, t in
                            enumerate(texts)))
    out = tmp_path / "preds.csv"
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out)
    assert status == 1 and "--data-format tsv" in err
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out, "--quiet",
                           "--data-format", "tsv", "--no-header", "--text-column", 1)
    assert status == 0, err
    assert _predictions(out)["prediction"].tolist() == _expected(fitted, texts)
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out,
                           "--data-format", "tsv", "--no-header", "--text-column", 2)
    assert status == 1 and "its first row has 2 columns, numbered 0 to 1" in err


@pytest.mark.parametrize("args, match", [
    (["--no-header"], "--no-header gives columns by number, counted from 0: pass "
                      "--text-column N (the first column is 0); got --text-column 'text'"),
    (["--no-header", "--text-column", "3"], "got --label-column 'label'"),
])
def test_no_header_needs_column_numbers(args, match, tmp_path, capsys):
    """Check that --no-header with column names is a usage error (status 2)."""
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", str(tmp_path / "m.skops"), str(tmp_path / "d.tsv"), *args])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


@pytest.mark.parametrize("name, file, args, n_rows", [
    ("cola", "cola/out_of_domain_dev.tsv", ["--text-column", 3, "--id-column", 0], 516),
    ("sms_spam", "sms_spam/SMSSpamCollection", ["--text-column", 1, "--data-format", "tsv"],
     5574),
])
def test_real_headerless_files(name, file, args, n_rows, model_path, tmp_path, capsys):
    """Check predict on the real CoLA and SMS Spam files (see their SOURCE.md)."""
    data = DATA_DIR / file
    if not data.is_file():
        pytest.skip(f"{data} is absent (the shared datasets folder of this machine; set "
                    "SKBERT_DATA_DIR to where it is)")
    out = tmp_path / "preds.parquet"
    status, _, err = _main(capsys, "predict", model_path, data, "--no-header", *args,
                           "--out", out, "--quiet", "--chunksize", 2000)
    assert status == 0, err
    assert len(pd.read_parquet(out)) == n_rows


# ---------------------------------------------------- columns, files and --out
@pytest.mark.parametrize("ext", ["csv", "tsv", "parquet"])
def test_duplicate_column_names_are_refused(ext, model_path, frame, tmp_path, capsys,
                                            no_model):
    """Check that a file with two 'text' columns is refused naming them and the file
    (CSV took the first silently, Parquet crashed with AttributeError)."""
    data = tmp_path / f"dup.{ext}"
    dup = pd.concat([frame[["id", "text"]], frame[["text"]].iloc[::-1].reset_index(drop=True)],
                    axis=1)
    assert dup.columns.tolist() == ["id", "text", "text"]
    if ext == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_arrays([pa.array(dup.iloc[:, i]) for i in range(3)],
                                            names=dup.columns.tolist()), data)
    else:
        dup.to_csv(data, sep="\t" if ext == "tsv" else ",", index=False)
    status, _, err = _main(capsys, "predict", model_path, data, "--out", tmp_path / "p.csv")
    assert status == 1
    assert f"Column 'text' appears 2 times in '{data}' (columns 1 and 2, counted from 0)" \
        in err and "Rename the columns" in err


@pytest.mark.parametrize("ext", ["csv", "tsv", "jsonl", "parquet", "csv.gz"])
@pytest.mark.parametrize("command", ["predict", "evaluate", "fit"])
def test_empty_files_are_named(command, ext, model_path, tmp_path, capsys, no_model):
    """Check that a 0-byte data file (an empty .csv.gz too) is an error naming it, in
    every format and command, before any model is loaded or trained."""
    data = tmp_path / f"empty.{ext}"
    if ext == "csv.gz":
        import gzip

        gzip.open(data, "wb").close()
    else:
        data.write_bytes(b"")
    args = {"predict": ["predict", model_path, data, "--out", tmp_path / "p.csv"],
            "evaluate": ["evaluate", model_path, data],
            "fit": ["fit", data, "--out", tmp_path / "m.skops"]}[command]
    status, _, err = _main(capsys, *args)
    assert status == 1
    assert f"Data file '{data}' " in err and "no header and no rows" in err, err
    assert not (tmp_path / "p.csv").exists() and not (tmp_path / "m.skops").exists()


@pytest.mark.parametrize("command, args, match", [
    ("predict", ["--text-column", "body"], r"Column 'body' not found in '.*data.csv'"),
    ("evaluate", ["--label-column", "target"], r"Column 'target' not found in '.*data.csv'"),
    ("predict", ["--id-column", "doc"], r"Column 'doc' not found in '.*data.csv'"),
    ("evaluate", ["--sep", ";"], r"Column 'text' not found in '.*data.csv'.*\['id,text,label'\]"),
    ("predict", ["--encoding", "utf-16"], r"Cannot read '.*data.csv' as utf-16"),
    ("evaluate", ["--no-header", "--text-column", "1", "--label-column", "2"],
     r"Row 0 of '.*data.csv' .* has no label in column 2"),
])
def test_predict_and_evaluate_check_the_data_before_loading_the_model(
        command, args, match, model_path, frame, tmp_path, capsys, no_model):
    """Check that a wrong column or encoding is reported without loading the model (it
    cost a 16 s model load first)."""
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    if "--no-header" in args:
        data.write_text("id,text,\n" + data.read_text().split("\n", 1)[1])
    extra = ["--out", tmp_path / "p.csv"] if command == "predict" else []
    status, _, err = _main(capsys, command, model_path, data, *args, *extra)
    assert status == 1 and "AssertionError" not in err, err
    assert re.search(match, err), err


def test_predict_out_equal_to_data_is_refused(model_path, frame, tmp_path, capsys,
                                              no_model):
    """Check that --out naming DATA (the same path, another spelling of it, or a hard
    link to it) is refused before the model loads, and DATA is left as it was."""
    (tmp_path / "sub").mkdir()
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    before = data.read_bytes()
    os.link(data, tmp_path / "link.csv")
    for out in (data, tmp_path / "sub" / ".." / "data.csv", tmp_path / "link.csv"):
        status, _, err = _main(capsys, "predict", model_path, data, "--out", out)
        assert status == 1
        assert f"--out '{out}' is the DATA file '{data}'" in err and "another path" in err
    assert data.read_bytes() == before


@pytest.mark.parametrize("source", ["parquet", "csv"])
def test_ids_with_carriage_returns_read_back(source, model_path, frame, tmp_path, capsys):
    """Check that ids holding a bare \\r (or \\r\\n, \\n) are quoted in the CSV output,
    which reads back with the same ids and one row per text."""
    ids = [f"doc-{i}" for i in range(12)]
    ids[1], ids[5], ids[8] = "a\rb", "c\r\nd", "e\nf"
    data = tmp_path / f"data.{source}"
    if source == "parquet":
        frame.assign(id=ids).to_parquet(data)
    else:  # with "\r\n" line ends, pandas quotes the "\r" (and skbert reads it back)
        frame.assign(id=ids).to_csv(data, index=False, lineterminator="\r\n")
    out = tmp_path / "preds.csv"
    status, _, err = _main(capsys, "predict", model_path, data, "--out", out, "--id-column",
                           "id", "--quiet", "--chunksize", 5)
    assert status == 0, err
    preds = pd.read_csv(out, keep_default_na=False)
    assert preds["id"].tolist() == ids


def test_reused_checkpoint_dir_without_resume_is_refused_before_training(
        frame, tmp_path, capsys, no_model):
    """Check that a --checkpoint-dir holding checkpoints, without --resume, is refused
    before the data is scanned or anything trains, saying what to do."""
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    ckpt = tmp_path / "ckpt"
    (ckpt / "ckpt-000000000003").mkdir(parents=True)
    (ckpt / "ckpt-000000000006").mkdir()
    status, _, err = _main(capsys, "fit", data, "--out", tmp_path / "m.skops", "--chunksize",
                           4, "--checkpoint-dir", ckpt)
    assert status == 1
    assert f"--checkpoint-dir '{ckpt}' already holds 2 checkpoint(s) of an earlier run " \
           "(the newest is ckpt-000000000006)" in err
    assert "add --resume; to start a new one, give an empty --checkpoint-dir" in err
    assert not (tmp_path / "m.skops").exists()


# ------------------------------------------------------- read-only and full disks
def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")


_CHILD = """
import contextlib, io, os, pathlib
import skbert._cli as cli
import skbert._cli.predict
from skbert import BertTextClassifier
DATA, MODEL, OTHER = {data!r}, {model!r}, {other!r}
PARAMS = {params!r}
def run(*args):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        status = cli.main([str(a) for a in args])
    return status, err.getvalue()
def files():
    return {{p.name: p.read_bytes() for p in pathlib.Path(FOLDER).iterdir()
             if p.name != ".filler"}}
"""


def _check_child(done):
    assert done.returncode == 0, (done.stdout, done.stderr[-4000:])
    assert "OK" in done.stdout, done.stdout


def _child(model_path, tiny_params, tmp_path, n_rows=12):
    texts, y = make_texts(n_rows, seed=4)
    data = tmp_path / "data.csv"
    pd.DataFrame({"text": texts, "label": np.array(["neg", "pos"])[y]}).to_csv(data,
                                                                               index=False)
    params = [a for k, v in dict(tiny_params, max_iter=1).items()
              for a in ("--param", f"{k}={v!r}")]
    (tmp_path / "other").mkdir()
    return _CHILD.format(data=os.fspath(data), model=os.fspath(model_path),
                         other=os.fspath(tmp_path / "other"), params=params)


def test_read_only_out_and_checkpoint_dir_are_refused_before_training(
        model_path, tiny_params, tmp_path):
    """Check on a read-only folder that fit's --out and --checkpoint-dir, and predict's
    --out, are refused naming the option, before any model loads or trains."""
    done = run_with_fault(_child(model_path, tiny_params, tmp_path) + """
def no_model(*args, **kwargs):
    raise AssertionError("the model was loaded or trained")
BertTextClassifier.fit = BertTextClassifier.partial_fit = no_model
cli.predict.load_model = no_model
make_read_only()
status, err = run("fit", DATA, "--out", FOLDER + "/m.skops", "--quiet", *PARAMS)
assert status == 1 and "--out=" in err and "cannot be written" in err, err
assert f"--out={FOLDER + '/m.skops'!r}" in err, err
status, err = run("fit", DATA, "--out", OTHER + "/m.skops", "--chunksize", 4,
                  "--checkpoint-dir", FOLDER + "/ckpt", "--quiet", *PARAMS)
assert status == 1 and "--checkpoint-dir=" in err and "cannot be written" in err, err
status, err = run("predict", MODEL, DATA, "--out", FOLDER + "/p.csv", "--quiet")
assert status == 1 and "--out=" in err and "cannot be written" in err, err
assert os.listdir(FOLDER) == [] and os.listdir(OTHER) == []
print("OK")
""", tmp_path / "read-only", fault="read_only", env=_env())
    _check_child(done)


@pytest.mark.parametrize("command", ["predict", "fit"])
def test_full_disk_while_writing_out_keeps_the_previous_file(command, model_path, tiny_params,
                                                             tmp_path):
    """Check that --out failing on a full disk (after the folder probe passed) is an
    error naming --out and saying the previous file is intact, which it is, byte for
    byte, with no temporary file left."""
    done = run_with_fault(_child(model_path, tiny_params, tmp_path, n_rows=600) + f"""
if {command!r} == "predict":
    args = ["predict", MODEL, DATA, "--out", FOLDER + "/preds.csv", "--proba", "--quiet"]
else:
    args = ["fit", DATA, "--out", FOLDER + "/model.skops", "--quiet", *PARAMS]
status, err = run(*args)
assert status == 0, err
before = files()
assert len(next(iter(before.values()))) > 16384, before.keys()
fill_disk(leave=8192)  # the folder probe fits; the output does not
status, err = run(*args)
assert status == 1, err
assert "Cannot write --out" in err and "any previous file at that path is intact" in err, err
assert files() == before
print("OK")
""", tmp_path / "full", fault="full", env=_env())
    _check_child(done)
