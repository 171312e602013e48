"""Long texts: truncation="head", "head_tail" and "window" (overlapping windows pooled)."""

import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from skbert import BertTextClassifier, BertTextRegressor
from skbert._tokenization import HEAD_SHARE, encode, pool_windows, special_tokens

from .conftest import _NEUTRAL, make_multilabel_texts, make_texts


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir):
    from skbert._pretrained import load_tokenizer

    return load_tokenizer(tiny_model_dir)


def _whole(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _texts(draw_lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(_NEUTRAL, size=n)) for n in draw_lengths]


# ------------------------------------------------------------------ tokenization
@settings(max_examples=40, deadline=None)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=6),
       max_length=st.integers(3, 24), stride_share=st.floats(0.01, 1.0))
def test_windows_cover_every_token_in_order(tokenizer, lengths, max_length, stride_share):
    """Check that each window is [CLS] + a contiguous run of the text's tokens + [SEP],
    of at most max_length, starting every `stride` tokens, the last reaching the end:
    every token of a text is in at least one window."""
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    stride = max(1, int(room * stride_share))
    texts = _texts(lengths, seed=max_length)
    enc = encode(tokenizer, texts, max_length, truncation="window", stride=stride)
    assert enc.n_texts == len(texts) and enc.windows[0] == 0
    for i, text in enumerate(texts):
        whole = _whole(tokenizer, text)
        covered = np.zeros(len(whole), dtype=bool)
        first, last = enc.windows[i], enc.windows[i + 1]
        assert last > first
        for k in range(first, last):
            window = enc.ids[enc.offsets[k]:enc.offsets[k + 1]].tolist()
            assert len(window) <= max_length
            assert window[:len(prefix)] == prefix and window[len(window) - len(suffix):] == suffix
            body = window[len(prefix):len(window) - len(suffix)]
            start = (k - first) * stride
            assert body == whole[start:start + room]
            covered[start:start + len(body)] = True
        assert covered.all()
        # No window more than needed: only the last one reaches the end of the text.
        expected = 1 if len(whole) <= room else -(-(len(whole) - room) // stride) + 1
        assert last - first == expected


@settings(max_examples=30, deadline=None)
@given(lengths=st.lists(st.integers(0, 60), min_size=1, max_size=5),
       max_length=st.integers(3, 24))
def test_head_tail_keeps_the_first_quarter_and_the_end(tokenizer, lengths, max_length):
    """Check that a long text keeps its first round(room * HEAD_SHARE) tokens and its last
    ones up to max_length, and that a text that fits is its "head" encoding."""
    prefix, suffix = special_tokens(tokenizer)
    room = max_length - len(prefix) - len(suffix)
    texts = _texts(lengths, seed=max_length + 1)
    enc = encode(tokenizer, texts, max_length, truncation="head_tail")
    head = encode(tokenizer, texts, max_length)
    assert enc.windows is None and len(enc.offsets) == len(texts) + 1
    for i, text in enumerate(texts):
        whole = _whole(tokenizer, text)
        got = enc.ids[enc.offsets[i]:enc.offsets[i + 1]].tolist()
        if len(whole) <= room:
            assert got == head.ids[head.offsets[i]:head.offsets[i + 1]].tolist()
            continue
        n_head = round(room * HEAD_SHARE)
        body = whole[:n_head] + whole[len(whole) - (room - n_head):]
        assert got == prefix + body + suffix and len(got) == max_length


def test_short_texts_encode_alike_under_every_truncation(tokenizer):
    """Check that texts within max_length are one and the same sequence in every mode."""
    texts = _texts([0, 1, 5, 9])
    head = encode(tokenizer, texts, 32)
    for mode in ("head_tail", "window"):
        other = encode(tokenizer, texts, 32, truncation=mode)
        np.testing.assert_array_equal(other.ids, head.ids)
        np.testing.assert_array_equal(other.offsets, head.offsets)


@settings(max_examples=40, deadline=None)
@given(counts=st.lists(st.integers(1, 4), min_size=1, max_size=6),
       how=st.sampled_from(["mean", "max"]))
def test_pool_windows_matches_a_loop(counts, how):
    """Check pooling of each text's consecutive rows against a plain loop."""
    rng = np.random.default_rng(len(counts))
    values = rng.normal(size=(sum(counts), 3)).astype(np.float32)
    owner = np.repeat(np.arange(len(counts)), counts)
    expected = np.array([getattr(values[owner == i], how)(0) for i in range(len(counts))])
    np.testing.assert_allclose(pool_windows(values, owner, how), expected, rtol=1e-6,
                               atol=1e-6)


def test_sequences_of_rows_in_any_order(tokenizer):
    """Check Encoding.sequences: the windows of each requested text, in request order."""
    texts = _texts([30, 2, 50])
    enc = encode(tokenizer, texts, 10, truncation="window", stride=4)
    rows = np.array([2, 0])
    sequences, owner = enc.sequences(rows)
    expected = [k for i in rows for k in range(enc.windows[i], enc.windows[i + 1])]
    assert sequences.tolist() == expected
    assert owner.tolist() == [j for j, i in enumerate(rows)
                              for _ in range(enc.windows[i + 1] - enc.windows[i])]


def test_stride_larger_than_a_window_is_refused(tokenizer, tiny_params):
    """Check that a stride that would skip tokens is refused, naming window_stride."""
    with pytest.raises(ValueError, match=r"window_stride=9 is larger than a window's 8 text "
                                         r"tokens \(max_length=10 minus 2"):
        encode(tokenizer, ["a b c"], 10, truncation="window", stride=9)
    clf = BertTextClassifier(**dict(tiny_params, max_length=10, truncation="window",
                                    window_stride=9))
    with pytest.raises(ValueError, match="window_stride=9"):
        clf.fit(["good film", "bad film"] * 4, [1, 0] * 4)


@pytest.mark.parametrize("mode", ["head_tail", "window"])
def test_text_pairs_take_head_truncation_only(tiny_params, mode):
    """Check that text pairs under another truncation are refused before training."""
    pairs = np.array([["good film", "yes"], ["bad film", "no"]] * 4)
    with pytest.raises(ValueError, match=rf"truncation='{mode}' applies to single texts"):
        BertTextClassifier(**dict(tiny_params, truncation=mode)).fit(pairs, [1, 0] * 4)


@pytest.mark.parametrize("max_length", [2, 3, 4])
def test_max_length_that_cannot_hold_a_pair_is_refused(tokenizer, tiny_params, max_length):
    """Check that a max_length below a pair's 3 special tokens plus one token of each
    text is refused, naming max_length, by encode, by fit before training and by
    predict after set_params (it came back uncut, then crashed predict in torch)."""
    pairs = [("good film " * 40, "yes " * 40), ("bad film", "no")]
    message = rf"max_length={max_length} cannot hold a text pair: the tokenizer adds 3 "
    with pytest.raises(ValueError, match=message + r".*Use max_length >= 5 for text pairs"):
        encode(tokenizer, pairs, max_length)
    X = np.array([["good film", "yes"], ["bad film", "no"]] * 4)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, max_length=max_length))
    with pytest.raises(ValueError, match=message):
        clf.fit(X, [1, 0] * 4)
    assert not hasattr(clf, "model_")
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, [1, 0] * 4)
    with pytest.raises(ValueError, match=message):
        clf.set_params(max_length=max_length).predict(np.array(pairs, dtype=object))


def test_smallest_max_length_for_pairs_keeps_a_token_of_each_text(tokenizer):
    """Check that max_length=5 cuts every pair to [CLS] a [SEP] b [SEP]."""
    pairs = [("good film " * 40, "yes " * 40), ("bad", "no no no no")]
    enc = encode(tokenizer, pairs, 5)
    assert np.diff(enc.offsets).tolist() == [5, 5]
    assert enc.type_ids.tolist() == [0, 0, 0, 1, 1] * 2


# --------------------------------------------------------------------- training
def _tail_task(n, seed):
    """Long texts whose label shows only in their last word: "head" cannot see it."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, size=n)
    texts = [" ".join([*rng.choice(_NEUTRAL, size=int(rng.integers(30, 45))),
                       ["bad", "good"][label]]) for label in y]
    return texts, y


@pytest.fixture(scope="module")
def tail_task():
    X, y = _tail_task(200, seed=3)
    return X[:140], y[:140], X[140:], y[140:]


@pytest.fixture(scope="module")
def long_params(tiny_params):
    return dict(tiny_params, max_length=16, max_iter=6)


@pytest.fixture(scope="module")
def window_clf(long_params, tail_task):
    X, y, _, _ = tail_task
    return BertTextClassifier(**dict(long_params, truncation="window")).fit(X, y)


def test_head_cannot_learn_the_end_but_head_tail_and_window_can(long_params, tail_task,
                                                                window_clf):
    """Check that the label at a long text's end is learned only where the end is kept."""
    X, y, X_test, y_test = tail_task
    head = BertTextClassifier(**long_params).fit(X, y)
    head_tail = BertTextClassifier(**dict(long_params, truncation="head_tail")).fit(X, y)
    assert head.score(X_test, y_test) < 0.7
    assert head_tail.score(X_test, y_test) > 0.9
    assert window_clf.score(X_test, y_test) > 0.9


def test_window_training_counts_texts_and_plans_windows(long_params, tail_task, window_clf):
    """Check that a pass counts texts in n_samples_seen_, while the schedule and the
    steps run over the windows (each window a training row)."""
    X, y, _, _ = tail_task
    assert window_clf.n_samples_seen_ == long_params["max_iter"] * len(X)
    enc = encode(window_clf.tokenizer_, X, 16, truncation="window")
    n_windows = int(enc.windows[-1])
    assert n_windows > 2 * len(X)  # a real test: long texts are several windows
    from skbert._batching import count_batches
    from skbert._engine import TrainingPlan

    plans = []
    real = TrainingPlan.of_run
    with pytest.MonkeyPatch.context() as patch:  # puts the classmethod back as it was
        patch.setattr(TrainingPlan, "of_run", classmethod(
            lambda cls, per_pass, **kw: plans.append(per_pass) or real(per_pass, **kw)))
        BertTextClassifier(**dict(long_params, truncation="window", max_iter=1)).fit(X, y)
    assert plans == [count_batches(n_windows, long_params["batch_size"], length_grouped=True)]
    assert plans != [count_batches(len(X), long_params["batch_size"], length_grouped=True)]


@pytest.mark.parametrize("how", ["mean", "max"])
def test_window_outputs_pool_the_windows_logits(window_clf, tail_task, how):
    """Check decision_function against the network run on each window by hand, pooled."""
    _, _, X_test, _ = tail_task
    clf = pickle.loads(pickle.dumps(window_clf)).set_params(window_pooling=how,
                                                            inference_dtype="float32")
    enc = encode(clf.tokenizer_, X_test[:5], 16, truncation="window")
    expected = []
    with torch.inference_mode():
        for i in range(5):
            rows = [enc.ids[enc.offsets[k]:enc.offsets[k + 1]]
                    for k in range(enc.windows[i], enc.windows[i + 1])]
            logits = torch.stack([clf.model_(
                input_ids=torch.as_tensor(r, dtype=torch.long)[None],
                attention_mask=torch.ones(1, len(r), dtype=torch.long))[0] for r in rows])
            pooled = logits.mean(0) if how == "mean" else logits.max(0).values
            expected.append((pooled[1] - pooled[0]).item())
    np.testing.assert_allclose(clf.decision_function(X_test[:5]), expected, atol=1e-5)
    proba = clf.predict_proba(X_test[:5])
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)


@settings(max_examples=5, deadline=None)
@given(order=st.permutations(range(12)), budget=st.integers(16, 300))
def test_window_predictions_ignore_order_and_budget(window_clf, tail_task, order, budget):
    """Check that predictions of a text do not depend on its neighbours, their order or
    the token budget (which counts windows)."""
    _, _, X_test, _ = tail_task
    texts = X_test[:12]
    clf = pickle.loads(pickle.dumps(window_clf)).set_params(inference_dtype="float32")
    reference = clf.predict_proba(texts)
    clf.set_params(predict_batch_tokens=budget)
    shuffled = clf.predict_proba([texts[i] for i in order])
    np.testing.assert_allclose(shuffled, reference[list(order)], atol=1e-5)


def test_window_model_round_trips_with_skops(window_clf, tail_task, tmp_path):
    """Check that the truncation settings travel with the model and predict alike."""
    import skops.io as sio

    from skbert import TRUSTED_TYPES

    _, _, X_test, _ = tail_task
    sio.dump(window_clf, tmp_path / "m.skops")
    loaded = sio.load(tmp_path / "m.skops", trusted=TRUSTED_TYPES)
    assert loaded.truncation == "window"
    np.testing.assert_allclose(loaded.predict_proba(X_test), window_clf.predict_proba(X_test),
                               atol=1e-6)


def test_window_early_stopping_holds_out_texts(long_params, tail_task):
    """Check that early stopping splits texts (not windows) and scores pooled texts."""
    X, y, _, _ = tail_task
    clf = BertTextClassifier(**dict(long_params, truncation="window", early_stopping=True,
                                    validation_fraction=0.25, n_iter_no_change=10)).fit(X, y)
    assert len(clf.validation_scores_) == long_params["max_iter"]
    assert clf.n_samples_seen_ == long_params["max_iter"] * (len(X) - 35)
    assert max(clf.validation_scores_) > 0.85


def test_window_frozen_base_stream_and_transform(long_params, tail_task):
    """Check a frozen base on windows, a partial_fit stream counting texts, and
    transform pooling the windows' features."""
    X, y, X_test, _ = tail_task
    params = dict(long_params, truncation="window", freeze_base=True, learning_rate=1e-2)
    clf = BertTextClassifier(**params).fit(X, y)
    features = clf.transform(X_test[:4])
    assert features.shape == (4, 32) and features.dtype == np.float32
    stream = BertTextClassifier(**dict(params, freeze_base=False, learning_rate=5e-3))
    stream.partial_fit(X[:70], y[:70], classes=[0, 1]).partial_fit(X[70:], y[70:])
    assert stream.n_samples_seen_ == len(X) and stream.n_iter_ == 2


def test_window_multilabel_and_regression(long_params):
    """Check that multi-label thresholds and a regressor run on pooled windows."""
    X, Y = make_multilabel_texts(60, seed=2)
    X = [text + " " + " ".join(["film"] * 30) for text in X]  # long: several windows
    clf = BertTextClassifier(**dict(long_params, truncation="window", tune_thresholds=True,
                                    validation_fraction=0.3, max_iter=2)).fit(X, Y)
    assert clf.predict(X[:5]).shape == (5, 3) and clf.thresholds_.shape == (3,)
    reg = BertTextRegressor(**dict(long_params, truncation="window", max_iter=2))
    reg.fit(X, Y.sum(1).astype(float))
    assert reg.predict(X[:5]).shape == (5,)


def test_command_line_fits_and_predicts_windows(tiny_params, tail_task, tmp_path, capsys):
    """Check that --param truncation=window reaches the model, and that skbert predict
    writes the pooled predictions of the saved model."""
    import pandas as pd

    from skbert._cli import main

    X, y, X_test, _ = tail_task
    pd.DataFrame({"text": X, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": X_test}).to_csv(tmp_path / "test.csv", index=False)
    params = dict(tiny_params, max_length=16, max_iter=2, truncation="window",
                  window_stride=7, window_pooling="max")
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v!r}")]
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m.skops"),
                 "--quiet", *args]) == 0
    assert main(["predict", str(tmp_path / "m.skops"), str(tmp_path / "test.csv"), "--out",
                 str(tmp_path / "p.csv"), "--proba", "--quiet"]) == 0
    capsys.readouterr()
    import skops.io as sio

    from skbert import TRUSTED_TYPES

    model = sio.load(tmp_path / "m.skops", trusted=TRUSTED_TYPES)
    assert (model.truncation, model.window_stride, model.window_pooling) == ("window", 7, "max")
    written = pd.read_csv(tmp_path / "p.csv")
    np.testing.assert_allclose(written[["proba_0", "proba_1"]].to_numpy(),
                               model.predict_proba(X_test), atol=1e-6)


def test_command_line_stream_of_windows_keeps_an_open_schedule(tiny_params, tail_task,
                                                               tmp_path, capsys):
    """Check that a streamed CLI fit with truncation=window does not plan max_steps from
    rows (its steps count windows: the rate would reach 0 early) and says so."""
    import pandas as pd

    from skbert._cli import main

    X, y, _, _ = tail_task
    pd.DataFrame({"text": X, "label": y}).to_csv(tmp_path / "train.csv", index=False)
    params = dict(tiny_params, max_length=16, truncation="window")
    del params["max_iter"]  # a stream makes one pass unless --epochs is given
    args = [a for k, v in params.items() for a in ("--param", f"{k}={v!r}")]
    assert main(["fit", str(tmp_path / "train.csv"), "--out", str(tmp_path / "m.skops"),
                 "--chunksize", "70", *args]) == 0
    err = capsys.readouterr().err
    assert "truncation='window': the steps of a chunk depend on its windows" in err
    import skops.io as sio

    from skbert import TRUSTED_TYPES

    model = sio.load(tmp_path / "m.skops", trusted=TRUSTED_TYPES)
    assert model.max_steps is None and model.n_iter_ == 2
    assert model.n_samples_seen_ == len(X)


def test_onnx_metadata_records_the_truncation(window_clf, tmp_path):
    """Check that an exported window model says how to cut and pool its texts."""
    import json

    pytest.importorskip("onnxscript", reason="export_onnx needs the onnx extra")
    folder = window_clf.export_onnx(tmp_path / "onnx")
    metadata = json.loads((folder / "skbert_onnx.json").read_text())
    assert metadata["truncation"] == "window" and metadata["window_pooling"] == "mean"
    assert metadata["window_stride"] == (16 - 2) // 2 and metadata["max_length"] == 16


def test_cut_texts_warn_once_per_call(long_params, tail_task, window_clf):
    """Check the warning when more than 5% of texts are cut: once per fit and once per
    predict call (however many chunks), none where nothing is cut or under windows."""
    import warnings

    X, y, X_test, _ = tail_task
    with pytest.warns(UserWarning, match=r"140 of 140 texts \(100%\) are longer than "
                                         r"max_length=16 tokens; truncation='head' keeps its "
                                         r"first 16"):
        clf = BertTextClassifier(**dict(long_params, max_iter=1)).fit(X, y)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        list(clf.iter_predict_proba(X_test, chunk_size=10))  # 6 chunks
        window_clf.predict_proba(X_test)
        clf.predict_proba(["good film", "a bad plot"] * 20)  # short texts: nothing cut
    assert [str(w.message)[:24] for w in caught] == ["10 of 10 texts (100%) ar"]


@pytest.mark.any_precision  # tokenization only: make test runs it once
def test_threads_tokenizing_with_other_truncation_never_mix(tiny_model_dir):
    """Check that a thread counting truncated texts (truncation off) while another
    encodes (truncation on) with the same tokenizer never makes the encoder's sequences
    longer than max_length: the fast tokenizer's truncation setting is shared state
    (CI saw a 102-token batch from threads predicting at once)."""
    import threading

    from transformers import AutoTokenizer

    from skbert._tokenization import count_truncated, encode

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    texts = make_texts(200, seed=0)[0] + [" ".join(["good"] * 100)] * 20
    done, longest, counted = threading.Event(), [], []

    def encoder():
        try:
            for _ in range(300):
                longest.append(int(np.diff(encode(tokenizer, texts, 32).offsets).max()))
        finally:
            done.set()

    def counter():
        encoding = encode(tokenizer, texts, 32)
        while not done.is_set():
            counted.append(count_truncated(tokenizer, texts, encoding, 32))

    threads = [threading.Thread(target=encoder), threading.Thread(target=counter)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert max(longest) == 32 and len(longest) == 300
    assert set(counted) == {20}
