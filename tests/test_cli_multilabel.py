"""The skbert command line on multi-label data: ``--label-sep`` for fit and evaluate,
list and indicator outputs of predict, label names in model files and checkpoints.

Every command runs in-process through ``skbert._cli.main``; the names are a fit parameter
(``label_names``) of the classifier, tested here too. One whole-file fit and one
streamed fit of the tiny BERT (module fixtures) serve the prediction tests; the error
tests stop before any training (``fit`` and ``partial_fit`` are replaced by a function
that fails the test).
"""

import json
import re

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.metrics import accuracy_score, f1_score

from skbert import BertTextClassifier
from skbert._classifier import TRUSTED_TYPES
from skbert._cli import main
from skbert._cli.data import indicator_matrix
from skbert._cli.models import load_model, save_model

from .conftest import make_multilabel_texts, make_texts

# The generator's label columns 0, 1, 2 under names that sort otherwise.
GENERATED = np.array(["positive", "negative", "mixed"])
NAMES = ["mixed", "negative", "positive"]


def _main(capsys, *args):
    """Run ``skbert ARGS`` in-process; return ``(status, stdout, stderr)``."""
    status = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return status, out, err


def _param_args(params):
    return [a for k, v in params.items() for a in ("--param", f"{k}={v!r}")]


def _cells(Y, sep=" | "):
    """The label cells of the rows of a generated indicator, names joined by ``sep``."""
    return [sep.join(GENERATED[row.astype(bool)]) for row in Y]


def _sorted_indicator(Y):
    """A generated indicator with its columns in the order of the sorted names."""
    return Y[:, [GENERATED.tolist().index(name) for name in NAMES]]


def _joined(Y, sep="|"):
    return [sep.join(np.array(NAMES)[row.astype(bool)]) for row in Y]


def _no_training(*args, **kwargs):
    raise AssertionError("a model was trained before the input was refused")


@pytest.fixture
def no_training(monkeypatch):
    monkeypatch.setattr(BertTextClassifier, "fit", _no_training)
    monkeypatch.setattr(BertTextClassifier, "partial_fit", _no_training)


@pytest.fixture(scope="module")
def params(tiny_params):
    """The tiny model's parameters, predicting in float32 (under bf16 a text's
    probabilities depend slightly on its batch)."""
    return dict(tiny_params, learning_rate=1e-2, inference_dtype="float32")


@pytest.fixture(scope="module")
def test_frame():
    """40 test texts with ids and their label cells; some cells are empty."""
    X, Y = make_multilabel_texts(40, seed=11)
    return pd.DataFrame({"id": [f"doc-{i}" for i in range(40)], "text": X,
                         "tags": _cells(Y)}), _sorted_indicator(Y)


@pytest.fixture(scope="module")
def whole_fit(params, tmp_path_factory):
    """``skbert fit --label-sep '|'`` on a CSV of 96 texts; returns the folder."""
    folder = tmp_path_factory.mktemp("cli-multilabel")
    X, Y = make_multilabel_texts(96, seed=10)
    assert (Y.sum(axis=1) == 0).any() and (Y.sum(axis=1) > 1).any()
    pd.DataFrame({"text": X, "tags": _cells(Y)}).to_csv(folder / "train.csv", index=False)
    status = main(["fit", str(folder / "train.csv"), "--label-column", "tags",
                   "--label-sep", "|", "--out", str(folder / "model.skops"), "--quiet",
                   *_param_args(dict(params, max_iter=6))])
    assert status == 0
    return folder


@pytest.fixture(scope="module")
def whole_model(whole_fit):
    return sio.load(whole_fit / "model.skops", trusted=TRUSTED_TYPES)


@pytest.fixture(scope="module")
def test_csv(test_frame, whole_fit):
    path = whole_fit / "test.csv"
    test_frame[0].to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def stream_run(params, tmp_path_factory):
    """A streamed fit: 60 rows of JSON Lines in chunks of 20, the first chunk without the
    label 'mixed' (the scan must find it), a checkpoint after every chunk."""
    folder = tmp_path_factory.mktemp("cli-multilabel-stream")
    X, Y = make_multilabel_texts(100, seed=12)
    without = np.flatnonzero(Y[:, 2] == 0)[:20]
    rest = np.setdiff1d(np.arange(100), without)[:40]
    order = np.concatenate([without, rest])
    assert Y[order[:20], 2].sum() == 0 and Y[order[20:], 2].sum() > 0
    frame = pd.DataFrame({"text": np.array(X)[order], "tags": _cells(Y[order], sep="; ")})
    data = folder / "train.jsonl"
    frame.to_json(data, orient="records", lines=True)
    stream = dict(params, keep_checkpoints=5)
    del stream["max_iter"]
    args = ["fit", data, "--label-column", "tags", "--label-sep", ";", "--chunksize", 20,
            "--checkpoint-dir", folder / "ckpt", "--quiet", *_param_args(stream)]
    assert main([str(a) for a in [*args, "--out", folder / "model.pkl"]]) == 0
    return folder, args


@pytest.fixture(scope="module")
def single_label_model(params, tmp_path_factory):
    """A model of one class per text ("neg", "pos"), saved with skops."""
    X, y = make_texts(16, seed=13)
    model = BertTextClassifier(**dict(params, max_iter=1)).fit(X, np.array(["neg", "pos"])[y])
    path = tmp_path_factory.mktemp("cli-single") / "single.skops"
    sio.dump(model, path)
    return path


# ---------------------------------------------------------------- fitting
@pytest.mark.parametrize("ext", ["csv", "jsonl"])
def test_fit_turns_label_cells_into_a_named_indicator(ext, tmp_path, capsys, monkeypatch):
    """Check the indicator fit receives: names sorted and stripped, an empty cell (and an
    empty piece) no label, a repeated name once; and the names saved with the model."""
    seen = {}

    def record(self, X, y, sample_weight=None, *, label_names=None):
        seen["X"], seen["y"], seen["label_names"] = X, np.asarray(y), label_names
        self.label_names_ = np.asarray(label_names, dtype=object)
        return self

    monkeypatch.setattr(BertTextClassifier, "fit", record)
    frame = pd.DataFrame({"text": ["a", "b", "c", "d", "e"],
                          "tags": [" joy | surprise", "", "sad|joy |joy", "surprise|", "sad"]})
    data = tmp_path / f"train.{ext}"
    if ext == "csv":
        frame.to_csv(data, index=False)
    else:
        frame.to_json(data, orient="records", lines=True)
    out = tmp_path / "model.skops"
    status, _, err = _main(capsys, "fit", data, "--label-column", "tags", "--label-sep", "|",
                           "--out", out)
    assert status == 0, err
    assert seen["X"] == ["a", "b", "c", "d", "e"]
    np.testing.assert_array_equal(seen["y"], [[1, 0, 1], [0, 0, 0], [1, 1, 0], [0, 0, 1],
                                              [0, 1, 0]])
    assert seen["label_names"].tolist() == ["joy", "sad", "surprise"]  # a fit parameter
    assert "saved the multi-label model (3 labels: joy, sad, surprise)" in err
    saved = sio.load(out, trusted=TRUSTED_TYPES)
    assert saved.label_names_.tolist() == ["joy", "sad", "surprise"]
    assert not hasattr(saved, "label_sep_")  # nothing written onto the fitted estimator


def test_indicator_matrix_of_names():
    """Check the columns follow the given names, and that an unknown name is refused."""
    names = np.array(["a", "b", "c"])
    np.testing.assert_array_equal(indicator_matrix([("c",), (), ("a", "b")], names),
                                  [[0, 0, 1], [0, 0, 0], [1, 1, 0]])
    with pytest.raises(KeyError, match="'d'"):
        indicator_matrix([("d",)], names)


def test_whole_file_fit_is_a_named_multilabel_model(whole_fit, whole_model):
    """Check the saved model: multi-label, its label names (an object array of str, the
    fit parameter label_names), which skops loads with skbert's trusted types only."""
    assert whole_model.multilabel_ and whole_model.classes_.tolist() == [0, 1, 2]
    assert whole_model.label_names_.dtype == object
    assert all(isinstance(name, str) for name in whole_model.label_names_)
    assert whole_model.label_names_.tolist() == NAMES
    assert not hasattr(whole_model, "label_sep_")
    assert set(sio.get_untrusted_types(file=whole_fit / "model.skops")) <= set(TRUSTED_TYPES)
    assert whole_model.n_iter_ == 6


# ------------------------------------------------------------- prediction
@pytest.mark.parametrize("ext, sep", [("csv", None), ("jsonl", ";")])
def test_predict_writes_label_lists_and_named_probabilities(
    ext, sep, whole_fit, whole_model, test_csv, test_frame, tmp_path, capsys
):
    """Check the default output: one 'prediction' cell of the labels at or above their
    thresholds joined by the training separator (or --label-sep), and --proba columns
    named by the labels."""
    out = tmp_path / f"preds.{ext}"
    extra = [] if sep is None else ["--label-sep", sep]
    status, _, err = _main(capsys, "predict", whole_fit / "model.skops", test_csv, "--out",
                           out, "--id-column", "id", "--proba", "--chunksize", 15,
                           "--quiet", *extra)
    assert status == 0, err
    if ext == "csv":
        preds = pd.read_csv(out, keep_default_na=False)
    else:
        preds = pd.read_json(out, lines=True, dtype=False)
    assert preds.columns.tolist() == ["id", "prediction", *(f"proba_{n}" for n in NAMES)]
    texts = test_frame[0]["text"].tolist()
    predicted = whole_model.predict(texts)
    assert preds["id"].tolist() == test_frame[0]["id"].tolist()
    assert preds["prediction"].tolist() == _joined(predicted, sep or "|")
    assert any(preds["prediction"]) and (predicted.sum(axis=1) > 1).any()  # a real test
    np.testing.assert_allclose(preds[[f"proba_{n}" for n in NAMES]].to_numpy(),
                               whole_model.predict_proba(texts), atol=1e-6)


def test_predict_indicator_output(whole_fit, whole_model, test_csv, test_frame, tmp_path,
                                  capsys):
    """Check --multilabel-output indicator: a 0/1 prediction_<label> column per label,
    equal to the model's predict."""
    out = tmp_path / "preds.parquet"
    status, _, err = _main(capsys, "predict", whole_fit / "model.skops", test_csv, "--out",
                           out, "--multilabel-output", "indicator", "--quiet")
    assert status == 0, err
    preds = pd.read_parquet(out)
    assert preds.columns.tolist() == ["row", *(f"prediction_{n}" for n in NAMES)]
    assert preds["row"].tolist() == list(range(len(test_frame[0])))
    np.testing.assert_array_equal(preds.iloc[:, 1:].to_numpy(),
                                  whole_model.predict(test_frame[0]["text"].tolist()))


def test_evaluate_prints_multilabel_scores(whole_fit, whole_model, test_csv, test_frame,
                                           capsys):
    """Check micro-, macro-, samples-F1, subset accuracy and each label's F1 against
    scikit-learn on the model's own predictions."""
    status, out, err = _main(capsys, "evaluate", whole_fit / "model.skops", test_csv,
                             "--label-column", "tags", "--label-sep", "|", "--quiet",
                             "--chunksize", 15)
    assert status == 0, err
    Y_true = test_frame[1]
    Y_pred = whole_model.predict(test_frame[0]["text"].tolist())
    values = dict(re.findall(r"^(micro-F1|macro-F1|samples-F1|subset accuracy|rows):\s+(\S+)$",
                             out, re.M))
    for average in ("micro", "macro", "samples"):
        expected = f1_score(Y_true, Y_pred, average=average, zero_division=0)
        assert float(values[f"{average}-F1"]) == pytest.approx(expected, abs=1e-4)
    assert float(values["subset accuracy"]) == pytest.approx(accuracy_score(Y_true, Y_pred),
                                                             abs=1e-4)
    assert values["rows"] == "40"
    per_label = f1_score(Y_true, Y_pred, average=None, zero_division=0)
    for name, f1 in zip(NAMES, per_label, strict=True):
        line = re.search(rf"^\s+{name}\s+\S+\s+\S+\s+(\S+)\s+(\d+)$", out, re.M)
        assert line is not None, out
        assert float(line.group(1)) == pytest.approx(f1, abs=1e-4)
        assert int(line.group(2)) == Y_true[:, NAMES.index(name)].sum()
    assert "samples avg" in out


# -------------------------------------------------------------- streaming
def test_stream_fit_names_labels_in_model_and_checkpoints(stream_run, tmp_path, capsys):
    """Check a streamed fit whose first chunk lacks a label: 3 label columns from the
    scan, the names in the pickle and in every checkpoint (the first too), and predict
    from the checkpoint folder writing them, joined by '|' unless --label-sep says
    otherwise."""
    folder, _ = stream_run
    model = load_model(folder / "model.pkl")
    assert model.multilabel_ and model.n_iter_ == 3
    assert model.label_names_.tolist() == NAMES and not hasattr(model, "label_sep_")
    checkpoints = sorted((folder / "ckpt").glob("ckpt-*"))
    assert len(checkpoints) == 3
    for checkpoint in checkpoints:
        saved = sio.load(checkpoint / "estimator.skops", trusted=TRUSTED_TYPES)
        assert saved.label_names_.tolist() == NAMES
    data = folder / "train.jsonl"
    out = tmp_path / "preds.csv"
    status, _, err = _main(capsys, "predict", folder / "ckpt", data, "--out", out, "--quiet")
    assert status == 0, err
    texts = pd.read_json(data, lines=True)["text"].tolist()
    newest = load_model(checkpoints[-1])
    expected = _joined(newest.predict(texts), "|")
    assert pd.read_csv(out, keep_default_na=False)["prediction"].tolist() == expected
    status, _, err = _main(capsys, "predict", folder / "ckpt", data, "--out", out, "--quiet",
                           "--label-sep", ";")
    assert status == 0, err
    expected = _joined(newest.predict(texts), ";")
    assert pd.read_csv(out, keep_default_na=False)["prediction"].tolist() == expected
    np.testing.assert_allclose(newest.predict_proba(texts), model.predict_proba(texts),
                               atol=1e-6)


@pytest.mark.parametrize("kind", ["skops", "pkl"])
def test_model_files_keep_label_names(kind, whole_model, test_csv, tmp_path, capsys):
    """Check that save_model and load_model keep label_names_ in a skops file (trusting
    skbert's types only) and a pickle, and that predict reads them."""
    path = tmp_path / f"copy.{kind}"
    save_model(whole_model, path)
    loaded = load_model(path)
    assert loaded.label_names_.tolist() == NAMES and loaded.label_names_.dtype == object
    status, _, err = _main(capsys, "predict", path, test_csv, "--out", tmp_path / "p.csv",
                           "--quiet")
    assert status == 0, err
    texts = pd.read_csv(test_csv)["text"].tolist()
    preds = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert preds["prediction"].tolist() == _joined(whole_model.predict(texts))


def test_python_model_without_names_is_named_by_its_columns(whole_model, test_csv,
                                                            tmp_path, capsys):
    """Check that a multi-label model fitted in Python (no label_names_) predicts its
    column numbers, joined by '|'."""
    model = sio.loads(sio.dumps(whole_model), trusted=TRUSTED_TYPES)
    del model.label_names_
    path = tmp_path / "python.skops"
    sio.dump(model, path)
    status, _, err = _main(capsys, "predict", path, test_csv, "--out", tmp_path / "p.csv",
                           "--proba", "--quiet")
    assert status == 0, err
    preds = pd.read_csv(tmp_path / "p.csv", keep_default_na=False, dtype=str)
    assert preds.columns.tolist() == ["row", "prediction", "proba_0", "proba_1", "proba_2"]
    texts = pd.read_csv(test_csv)["text"].tolist()
    expected = ["|".join(str(j) for j in np.flatnonzero(row)) for row in model.predict(texts)]
    assert preds["prediction"].tolist() == expected


# ------------------------------------------------------------------ errors
@pytest.mark.parametrize("command", ["fit", "predict", "evaluate"])
def test_empty_label_sep_is_a_usage_error(command, tmp_path, capsys):
    """Check that --label-sep '' exits with status 2 naming the option."""
    args = {"fit": ["fit", "d.csv", "--out", "m.skops"],
            "predict": ["predict", "m.skops", "d.csv", "--out", "p.csv"],
            "evaluate": ["evaluate", "m.skops", "d.csv"]}[command]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--label-sep", ""])
    assert exit_info.value.code == 2
    assert "argument --label-sep: the separator of the labels in a cell must not be empty" \
        in capsys.readouterr().err


def _write_tags(path, tags, texts=None):
    texts = texts or [f"text {i}" for i in range(len(tags))]
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps({"text": t, "tags": g}) + "\n"
                                for t, g in zip(texts, tags, strict=True)))
    else:
        pd.DataFrame({"text": texts, "tags": tags}).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "case, match",
    [("on-every-row", r"Label 'joy' \(label column 0 of the indicator matrix\) is on every "
                      r"one of the 4 rows of column 'tags' of '.*train.csv'"),
     ("on-every-row-stream", r"Label 'joy' \(label column 0 .*\) is on every one of the 4 "
                             r"rows"),
     ("one-label", r"With --label-sep '\|', column 'tags' of .* holds only the label 'joy'; "
                   r"a multi-label model needs at least 2 labels"),
     ("null", r"Row 1 of '.*train.jsonl' .* has no value in the label column 'tags' \(null\)"
              r".*an empty string"),
     ("list-cell", r"Row 0 of .* has \['joy', 'sad'\] \(list\) in the label column 'tags'; "
                   r"with --label-sep '\|' each cell must be a string")],
)
def test_fit_refuses_bad_label_cells(case, match, tmp_path, capsys, no_training):
    """Check each bad multi-label column is an error naming the label or the row, before
    any training."""
    tags = {"on-every-row": ["joy|sad", "joy", "joy|sad", "joy"],
            "on-every-row-stream": ["joy|sad", "joy", "joy|sad", "joy"],
            "one-label": ["joy", "", "joy", ""],
            "null": ["joy", None, "sad", ""],
            "list-cell": [["joy", "sad"], "joy", "sad", ""]}[case]
    ext = "jsonl" if case in ("null", "list-cell") else "csv"
    data = _write_tags(tmp_path / f"train.{ext}", tags)
    extra = ["--chunksize", 2] if case.endswith("stream") else []
    status, _, err = _main(capsys, "fit", data, "--label-column", "tags", "--label-sep", "|",
                           "--out", tmp_path / "m.skops", "--quiet", *extra)
    assert status == 1
    assert re.search(match, err), err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "m.skops").exists()


@pytest.mark.parametrize(
    "case, match",
    [("predict-label-sep-single", r"--label-sep applies to multi-label models, but "
                                  r"'.*single.skops' predicts one class per text \(classes "
                                  r"\['neg', 'pos'\]\)\. Drop --label-sep\."),
     ("predict-output-single", r"--multilabel-output applies to multi-label models.*Drop "
                               r"--multilabel-output"),
     ("predict-indicator-and-sep", r"--label-sep joins the labels of the 'prediction' column"
                                   r".*Drop one of the two"),
     ("evaluate-no-sep", r"'.*model.skops' is a multi-label model \(labels \['mixed', "
                         r"'negative', 'positive'\]\): pass --label-sep SEP, the separator "
                         r"of the labels in column 'tags'\.$"),
     ("evaluate-label-sep-single", r"--label-sep applies to multi-label models, but "
                                   r"'.*single.skops' predicts one class per text"),
     ("evaluate-unknown-label", r"Column 'tags' of '.*test.csv' holds labels the model does "
                                r"not know: 'joy', 'zest' \(first in row 2, 0-based\); its "
                                r"labels are \['mixed', 'negative', 'positive'\]")],
)
def test_predict_and_evaluate_refuse_mismatched_options(
    case, match, whole_fit, single_label_model, tmp_path, capsys
):
    """Check the label options against the model: --label-sep and --multilabel-output
    without a multi-label model, evaluate of one without --label-sep, unknown labels."""
    model = single_label_model if case.endswith("single") else whole_fit / "model.skops"
    tags = ["positive", "mixed | negative", "positive|joy", "zest", "negative"]
    data = _write_tags(tmp_path / "test.csv", tags)
    command, extra = case.split("-")[0], []
    if command == "predict":
        extra = ["--out", tmp_path / "p.csv"]
        if "label-sep" in case or "and-sep" in case:
            extra += ["--label-sep", ";"]
        if "output" in case or "indicator" in case:
            extra += ["--multilabel-output", "indicator"]
    else:
        extra = ["--label-column", "tags"]
        if case in ("evaluate-label-sep-single", "evaluate-unknown-label"):
            extra += ["--label-sep", "|"]
    status, out, err = _main(capsys, command, model, data, *extra, "--quiet")
    assert status == 1
    assert re.search(match, err), err
    assert len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    "case, match",
    [("other-labels", r"was trained on the labels \['mixed', 'negative', 'positive'\], but "
                      r"with --label-sep ';' .* holds \['joy', 'mixed', 'negative', "
                      r"'positive'\]"),
     ("no-label-sep", r"is a multi-label stream; resume it with the --label-sep of the "
                      r"interrupted run\.")],
)
def test_resume_checks_the_label_names(case, match, stream_run, tmp_path, capsys,
                                       no_training):
    """Check that resuming a multi-label stream on other labels, or without --label-sep,
    is refused before training."""
    folder, args = stream_run
    frame = pd.read_json(folder / "train.jsonl", lines=True, dtype=False)
    frame["tags"] = frame["tags"].replace("", "negative")  # no empty cell
    if case == "other-labels":
        frame.loc[5, "tags"] = "joy; positive"
    data = tmp_path / "other.jsonl"
    frame.to_json(data, orient="records", lines=True)
    args = [data if a == folder / "train.jsonl" else a for a in args]
    if case == "no-label-sep":
        i = args.index("--label-sep")
        args = args[:i] + args[i + 2:]
    status, _, err = _main(capsys, *args, "--out", tmp_path / "resumed.pkl", "--resume")
    assert status == 1
    assert re.search(match, err), err
    assert not (tmp_path / "resumed.pkl").exists()


# ------------------------------------------------ label_names, a fit parameter
def test_model_of_an_earlier_release_keeps_its_separator(whole_model, test_csv, tmp_path,
                                                         capsys):
    """Check that a model file written when the command line stored label_sep_ on the
    estimator still joins its predictions with it, and evaluate names it."""
    model = sio.loads(sio.dumps(whole_model), trusted=TRUSTED_TYPES)
    model.label_names_ = np.array(NAMES)  # as written then: a str array, and a separator
    model.label_sep_ = ";"
    path = tmp_path / "old.skops"
    sio.dump(model, path)
    status, _, err = _main(capsys, "predict", path, test_csv, "--out", tmp_path / "p.csv",
                           "--quiet")
    assert status == 0, err
    texts = pd.read_csv(test_csv)["text"].tolist()
    preds = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert preds["prediction"].tolist() == _joined(whole_model.predict(texts), ";")
    labelled = _write_tags(tmp_path / "labelled.csv", ["positive", "mixed;negative"])
    status, _, err = _main(capsys, "evaluate", path, labelled, "--label-column", "tags")
    assert status == 1 and "(it was trained with --label-sep ';')" in err


def test_label_names_fit_parameter(params):
    """Check label_names of fit and partial_fit: kept as label_names_ (an object array of
    str), refused naming label_names for one label per text, a wrong count, or other
    names on a later chunk; a later chunk may leave it out."""
    X, Y = make_multilabel_texts(32, seed=14)
    clf = BertTextClassifier(**dict(params, max_iter=1))
    clf.fit(X, Y, label_names=["pos", "neg", "mid"])
    assert clf.label_names_.dtype == object and clf.label_names_.tolist() == ["pos", "neg",
                                                                             "mid"]
    clf.fit(X, Y)
    assert not hasattr(clf, "label_names_")  # a new fit without names has none
    y = Y[:, 0]
    for bad, match in [((X, y, ["a", "b"]), "label_names names the columns of a multi-label"),
                       ((X, Y, ["a", "b"]), "label_names holds 2 names, but y has 3 label "
                                            "columns"),
                       ((X, Y, ["a", "a", "b"]), "label_names holds 'a' more than once")]:
        with pytest.raises(ValueError, match=match):
            BertTextClassifier(**params).fit(*bad[:2], label_names=bad[2])
    stream = BertTextClassifier(**dict(params, max_iter=1))
    stream.partial_fit(X[:16], Y[:16], label_names=["pos", "neg", "mid"])
    stream.partial_fit(X[16:], Y[16:])  # None keeps the names
    stream.partial_fit(X[16:], Y[16:], label_names=["pos", "neg", "mid"])
    assert stream.label_names_.tolist() == ["pos", "neg", "mid"] and stream.n_iter_ == 3
    with pytest.raises(ValueError, match=r"label_names=\['a', 'b', 'c'\] differs from the "
                                         r"stream's first call"):
        stream.partial_fit(X[16:], Y[16:], label_names=["a", "b", "c"])
    with pytest.raises(ValueError, match="label_names holds 2 names"):
        BertTextClassifier(**params).partial_fit(X, Y, label_names=["a", "b"])
