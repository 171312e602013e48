"""The catalogue of bad input: each case gets a clear error naming the parameter or index.

Covers fit, partial_fit, predict*, score, set_params, persistence and the command line;
valid but odd text (empty, emoji, right-to-left, zero-width, very long) must work.
Training faults (NaN loss, out of memory, Ctrl-C, failed saves) are in test_faults.py,
and the command line's own subprocess tests in the test_cli_*.py files.
"""

import copy
import math
import os

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from skbert import BertTextClassifier
from skbert._batching import smallest_batch
from skbert._modeling import check_batch_norm

X_OK = ["good film", "bad film", "great plot", "dull plot"]
Y_OK = [1, 0, 1, 0]


@pytest.mark.parametrize(
    "X, error, match",
    [
        ("good film", ValueError, "Iterable over raw text documents expected"),
        (["good", None, "bad", "dull"], ValueError, "missing value.*index 1"),
        (["good", "bad", math.nan, "dull"], ValueError, "missing value.*index 2"),
        (pd.Series(["good", "bad", "dull", None], dtype="string"), ValueError,
         "missing value.*index 3"),
        (["good", "bad", "dull", 3], TypeError, "only str; got int 3 at index 3"),
        (["good", b"bad", "dull", "x"], TypeError, "bytes at index 1.*decode"),
        ([], ValueError, "X is empty"),
        (np.array([], dtype=object), ValueError, "X is empty"),
        (np.array(X_OK * 3).reshape(4, 3), ValueError, r"shape \(4, 3\)"),
        (42, TypeError, "iterable of str; got int"),
        ([("a", "b"), "c", ("d", "e"), ("f", "g")], ValueError, "pairs.*index 1"),
    ],
)
def test_fit_rejects_bad_X(tiny_params, X, error, match):
    """Check that fit rejects bad X with a message naming the index or shape."""
    with pytest.raises(error, match=match):
        BertTextClassifier(**tiny_params).fit(X, Y_OK)


@pytest.mark.parametrize(
    "y, error, match",
    [
        ([1, 0, 1], ValueError, "inconsistent lengths: 4 texts and 3 labels"),
        ([1, 1, 1, 1], ValueError, "only one class: 1"),
        ([1.0, 0.0, math.nan, 1.0], ValueError, "missing label.*index 2"),
        (["a", None, "b", "a"], ValueError, "missing label.*index 1"),
        (pd.Series(["a", "b", pd.NA, "a"], dtype="string"), ValueError,
         "missing label.*index 2"),
        ([1.0, 0.0, 0.25, 1.0], ValueError, r"continuous values \(0.25 at index 2\)"),
        ([1.0, 0.0, 1.0, -math.inf], ValueError, r"infinite label \(-inf\) at index 3"),
        (np.array([0, 1, math.inf, 0], dtype=object), ValueError,
         r"infinite label \(inf\) at index 2"),
        (pd.Series([0.0, 1.0, 1.0, 0.5], dtype=object), ValueError,
         r"continuous values \(0.5 at index 3\)"),
        (np.array([np.float32("nan"), 1.0, 0.0, 1.0], dtype=object), ValueError,
         "missing label.*index 0"),
        (np.zeros((4, 2)), ValueError, "Label column 0 of y is 0 for every text"),
        (np.zeros((4, 2, 2)), ValueError, "must be 1-D class labels or a 2-D 0/1 indicator"),
        (np.array([[0], [1], [0], [1]]), ValueError, r"ravel\(\)"),
        (None, ValueError, "y is required"),
        (["a", 1, "b", 2], TypeError, r"mixes label types \(int, str\)"),
    ],
)
def test_fit_rejects_bad_y(tiny_params, y, error, match):
    """Check that fit rejects bad y with a clear message."""
    with pytest.raises(error, match=match):
        BertTextClassifier(**tiny_params).fit(X_OK, y)


@pytest.mark.parametrize(
    "sample_weight, match",
    [
        ([1.0, -1.0, 1.0, 1.0], "non-negative; got -1.0 at index 1"),
        ([1.0, 1.0, math.inf, 1.0], "sample_weight contains infinity"),
        ([1.0, 1.0, math.nan, 1.0], "sample_weight contains NaN"),
        ([0.0, 0.0, 0.0, 0.0], "at least one non-zero"),
        ([1.0, 1.0], "sample_weight"),
    ],
)
def test_fit_rejects_bad_sample_weight(tiny_params, sample_weight, match):
    """Check that negative, non-finite, all-zero or mis-sized weights are refused."""
    with pytest.raises(ValueError, match=match):
        BertTextClassifier(**tiny_params).fit(X_OK, Y_OK, sample_weight=sample_weight)


@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"device": "tpu"}, ValueError, "device must be 'auto', 'cpu'.*got 'tpu'"),
        ({"max_length": 10_000}, ValueError, "max_position_embeddings=64"),
        ({"class_weight": {"cat": 2.0}}, ValueError, "class_weight has keys \\['cat'\\]"),
        ({"learning_rate": -1.0}, ValueError, "learning_rate"),
        ({"batch_size": 0}, ValueError, "batch_size"),
        ({"pooling": "max"}, ValueError, "pooling"),
    ],
)
def test_fit_rejects_bad_params(tiny_params, params, error, match):
    """Check that bad parameter values are refused at fit with their name."""
    with pytest.raises(error, match=match):
        BertTextClassifier(**dict(tiny_params, **params)).fit(X_OK, Y_OK)


def test_fit_refuses_cuda_when_absent(tiny_params):
    """Check that device='cuda' on a machine without CUDA says so."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match="CUDA is not available"):
        BertTextClassifier(**dict(tiny_params, device="cuda")).fit(X_OK, Y_OK)


@pytest.mark.parametrize(
    "path", [os.path.join(os.sep, "no", "such", "model"), "./missing-model", "a/b/c"]
)
def test_fit_missing_model_folder_names_path(tiny_params, path):
    """Check that a missing model folder is named, with how to get a model offline."""
    params = dict(tiny_params, model_name_or_path=path)
    with pytest.raises(FileNotFoundError, match=f"{path!r}.*save_pretrained.*offline"):
        BertTextClassifier(**params).fit(X_OK, Y_OK)


def test_fit_corrupt_weights_names_folder(tiny_model_dir, tiny_params, tmp_path):
    """Check that corrupt weight files give an OSError naming the folder."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(OSError, match="broken"):
        BertTextClassifier(**dict(tiny_params, model_name_or_path=str(broken))).fit(X_OK, Y_OK)


@pytest.mark.parametrize("method", ["predict", "predict_proba", "predict_log_proba", "score"])
def test_unfitted_raises_not_fitted(method):
    """Check that every predict method before fit raises NotFittedError."""
    clf = BertTextClassifier()
    args = (X_OK, Y_OK) if method == "score" else (X_OK,)
    with pytest.raises(NotFittedError):
        getattr(clf, method)(*args)


@pytest.mark.parametrize(
    "X, error, match",
    [
        ("good", ValueError, "Iterable over raw text documents expected"),
        (["ok", None], ValueError, "missing value.*index 1"),
        ([("good", "film")], ValueError, "fitted on single texts; X must be single texts"),
    ],
)
def test_predict_rejects_bad_X(fitted, X, error, match):
    """Check that predict validates X as fit does."""
    with pytest.raises(error, match=match):
        fitted.predict_proba(X)


def test_predict_refuses_max_length_beyond_positions_after_set_params(fitted):
    """Check that a max_length raised with set_params after fit is refused at predict,
    by name, not by an error from inside the network."""
    clf = copy.deepcopy(fitted).set_params(max_length=1000)
    with pytest.raises(ValueError, match="max_length=1000 is larger than the model's "
                                         "max_position_embeddings=64"):
        clf.predict_proba(["bad " * 500])


def test_batchnorm_head_refuses_batches_of_one_text(tiny_params):
    """Check that a BatchNorm head with one text per batch gets a message naming the
    parameter and the count, not a torch error."""
    with pytest.raises(ValueError, match=r"head=\(8,\) has BatchNorm layers.*at least 2 "
                                         r"texts per batch.*batch_size=1"):
        BertTextClassifier(**dict(tiny_params, head=(8,), batch_size=1)).fit(X_OK, Y_OK)
    clf = BertTextClassifier(**dict(tiny_params, head=(8,))).partial_fit(X_OK, Y_OK,
                                                                       classes=[0, 1])
    with pytest.raises(ValueError, match=r"at least 2 texts per batch.*a chunk of 1 text"):
        clf.partial_fit(["good film"], [1])


@pytest.mark.parametrize(("batch_size", "world", "refused"),
                         [(4, 2, False), (3, 2, True), (6, 3, False), (5, 3, True)])
def test_batchnorm_check_counts_each_process_share(tiny_params, batch_size, world, refused):
    """Check that in a data-parallel run the BatchNorm check looks at each process's
    share of a batch (a batch of 3 over 2 processes gives one a single text)."""
    clf = BertTextClassifier(**dict(tiny_params, head=(8,), max_iter=1)).fit(X_OK, Y_OK)
    clf.set_params(batch_size=batch_size)
    n_train = batch_size * 4  # batches of batch_size texts only
    smallest = smallest_batch(n_train, batch_size, length_grouped=True)
    if refused:
        with pytest.raises(ValueError, match=f"split over {world} processes.*batch_size >= "
                                             f"{2 * world + 1}"):
            check_batch_norm(clf.model_, smallest, world, n_train, batch_size)
    else:
        check_batch_norm(clf.model_, smallest, world, n_train, batch_size)


def test_odd_but_valid_text_works(fitted):
    """Check that empty, emoji, RTL, zero-width and very long texts are predicted."""
    texts = ["", "great 👍🏽🎬", "فيلم رائع", "good\u200bfilm\u200d", "bad " * 5000, "\t\n "]
    proba = fitted.predict_proba(texts)
    assert proba.shape == (len(texts), 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)


def test_nothing_printed_unless_verbose(tiny_params, toy_data, capsys):
    """Check that fit and predict print nothing by default and report epochs when verbose."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, y)
    clf.predict(X)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    BertTextClassifier(**dict(tiny_params, max_iter=2, verbose=1)).fit(X, y)
    assert "Epoch 2/2: loss=" in capsys.readouterr().out


def test_dataframe_of_three_columns_rejected(tiny_params):
    """Check that a three-column DataFrame is refused with its shape."""
    df = pd.DataFrame({"a": X_OK, "b": X_OK, "c": X_OK})
    with pytest.raises(ValueError, match=r"shape \(4, 3\)"):
        BertTextClassifier(**tiny_params).fit(df, Y_OK)


def test_fit_refuses_tokenizer_of_another_model(tiny_model_dir, tiny_params, tmp_path):
    """Check that a tokenizer whose ids exceed the model's vocabulary is refused."""
    import shutil

    from transformers import AutoTokenizer

    mixed = tmp_path / "mixed"
    shutil.copytree(tiny_model_dir, mixed)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_tokens(["brandnewword"])
    tokenizer.save_pretrained(mixed)
    with pytest.raises(ValueError, match="token ids up to .* vocab_size is .* do not belong"):
        BertTextClassifier(**dict(tiny_params, model_name_or_path=str(mixed))).fit(X_OK, Y_OK)


# ------------------------------------------------------------------ partial_fit
@pytest.mark.parametrize(
    "calls, error, match",
    [
        ([dict()], ValueError, "classes must be passed on the first call"),
        ([dict(classes=[0, 2])], ValueError, r"labels \[1\] that are not in classes \[0, 2\]"),
        ([dict(classes=[0, 1]), dict(classes=[0, 1, 2])], ValueError,
         r"`classes=\[0, 1, 2\]` is not the same as on last call"),
        ([dict(classes=[0, 1]), dict(y=[1, 0, 5, 0])], ValueError,
         r"labels \[5\] that are not in classes"),
        ([dict(classes=[0, 1], y=[1, 0])], ValueError, "inconsistent lengths: 4 texts and 2"),
        ([dict(classes=[0, 1], X=["ok", None, "x", "y"])], ValueError, "missing value.*index 1"),
    ],
    ids=["no-classes", "label-not-in-classes", "classes-changed", "unseen-later",
         "lengths", "none-text"],
)
def test_partial_fit_catalogue(tiny_params, calls, error, match):
    """Check that each misuse of partial_fit is refused with the cause named."""
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1))
    with pytest.raises(error, match=match):
        for call in calls:
            call = dict(call)
            clf.partial_fit(call.pop("X", X_OK), call.pop("y", Y_OK), **call)


# ------------------------------------------------------------- score, predict*
def test_score_with_labels_of_another_kind_is_refused(fitted):
    """Check that 0/1 labels against a model of "neg"/"pos" are refused, not scored 0."""
    with pytest.raises(ValueError, match=r"shares no label.*classes_ is \['neg', 'pos'\]"):
        fitted.score(X_OK, Y_OK)


def test_score_warns_on_some_unseen_labels(fitted):
    """Check that a label the model never saw is named in a warning and counts as wrong."""
    y = ["pos", "neg", "meh", "neg"]
    with pytest.warns(UserWarning, match=r"labels \['meh'\] that the model never saw"):
        score = fitted.score(X_OK, y)
    assert score == pytest.approx(np.mean(fitted.predict(X_OK) == np.array(y)))
    assert score <= 0.75


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: list(c.iter_predict_proba(X_OK, chunk_size=0)), ValueError,
         "chunk_size must be a positive int; got 0"),
        (lambda c: c.predict([b"bytes"]), TypeError, "bytes at index 0"),
        (lambda c: c.predict(["ok", "\ud800"]), ValueError, "index 1"),
        (lambda c: c.predict_log_proba(np.array(X_OK * 2).reshape(2, 4)), ValueError,
         r"shape \(2, 4\)"),
        (lambda c: c.save_checkpoint("unused"), ValueError, "needs a partial_fit stream"),
    ],
    ids=["chunk-size", "bytes", "lone-surrogate", "2d-array", "checkpoint-without-stream"],
)
def test_fitted_methods_catalogue(fitted, call, error, match):
    """Check that bad arguments to a fitted model's methods are refused clearly."""
    with pytest.raises(error, match=match):
        call(fitted)


# ------------------------------------------------------------------ set_params
@pytest.mark.parametrize(
    "params, error, match",
    [
        ({"learning_rat": 1e-3}, ValueError, "Invalid parameter 'learning_rat'"),
        ({"learning_rate": "fast"}, ValueError, "'learning_rate' parameter.*Got 'fast'"),
        ({"max_iter": 0}, ValueError, "'max_iter' parameter"),
        ({"inference_dtype": "int4"}, ValueError, "'inference_dtype' parameter"),
        ({"predict_batch_tokens": 4}, ValueError, "'predict_batch_tokens' parameter"),
        ({"validation_fraction": 1.5}, ValueError, "'validation_fraction' parameter"),
        ({"head": (0,)}, ValueError, "head"),
    ],
)
def test_set_params_catalogue(tiny_params, params, error, match):
    """Check that absurd values given through set_params are refused at fit, named."""
    clf = BertTextClassifier(**tiny_params)
    with pytest.raises(error, match=match):
        clf.set_params(**params).fit(X_OK, Y_OK)


# ----------------------------------------------------------------- persistence
@pytest.mark.parametrize(
    "setup, error, match",
    [
        (lambda p: None, FileNotFoundError, "No checkpoint found"),
        (lambda p: (p / "ckpt-000000000001").mkdir(parents=True), ValueError,
         r"ckpt-000000000001/estimator\.skops' is corrupt.*No such file"),
    ],
    ids=["missing-folder", "empty-checkpoint"],
)
def test_resume_catalogue(tmp_path, setup, error, match):
    """Check that resuming from nothing usable names the folder's problem."""
    setup(tmp_path / "ckpt")
    with pytest.raises(error, match=match):
        BertTextClassifier.resume(tmp_path / "ckpt")


def test_read_chunks_missing_column_is_named(tmp_path):
    """Check that a missing text column is named with the columns that exist."""
    from skbert import read_chunks

    path = tmp_path / "data.csv"
    pd.DataFrame({"sentence": X_OK, "label": Y_OK}).to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"Column 'text' not found.*\['sentence', 'label'\]"):
        next(read_chunks(path))
