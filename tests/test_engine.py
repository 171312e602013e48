"""The one training loop and its typed state: transactions, schedules, seeds, weights.

Each test here names the bug of the training-engine redesign it pins down; every one of
them failed on the code before it.
"""

import copy
import signal
import threading
import warnings

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier, MaskedLMPretrainer, _cache, _engine, _sources
from skbert._batching import count_batches
from skbert._streaming import Stream

from .conftest import make_texts

STREAM = dict(learning_rate=5e-3, batch_size=16, max_length=32, device="cpu", random_state=0,
              inference_dtype="float32")


@pytest.fixture(scope="module")
def chunks():
    X, y = make_texts(120, seed=21)
    return [(X[i : i + 40], y[i : i + 40]) for i in range(0, 120, 40)]


def _ctrl_c_at_loss(monkeypatch, n):
    """Press Ctrl-C (a real SIGINT) during the ``n``-th training batch from now."""
    calls = []
    loss = _sources.batch_loss

    def pressing(*args):
        calls.append(1)
        if len(calls) == n:
            signal.raise_signal(signal.SIGINT)
        return loss(*args)

    monkeypatch.setattr(_sources, "batch_loss", pressing)
    return calls


def _checkpoints(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("ckpt-"))


# --------------------------------------------------------------- a chunk is a transaction
def test_ctrl_c_in_partial_fit_does_not_count_or_checkpoint_the_chunk(
    tiny_model_dir, chunks, tmp_path, monkeypatch
):
    """Bug: Ctrl-C during partial_fit with checkpoint_dir checkpointed the half-trained chunk
    as done, so the resume loop of the streaming guide skipped the rest of it."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=str(tmp_path))
    clf.partial_fit(*chunks[0], classes=[0, 1])
    assert _checkpoints(tmp_path) == ["ckpt-000000000003"]
    calls = _ctrl_c_at_loss(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt, match="chunk 2 of the stream. That chunk is not "
                                                "counted"):
        clf.partial_fit(*chunks[1])
    assert len(calls) == 2  # stopped after the step in progress
    assert _checkpoints(tmp_path) == ["ckpt-000000000003"]  # not checkpointed as done
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1 and clf.n_samples_seen_ == 40
    with pytest.raises(RuntimeError, match=r"BertTextClassifier.resume\("):
        clf.partial_fit(*chunks[1])  # feeding it again would train on part of it twice
    assert clf.predict(chunks[2][0]).shape == (40,)  # predictions still work
    monkeypatch.undo()
    resumed = BertTextClassifier.resume(tmp_path)
    assert resumed.n_iter_ == 1
    resumed.partial_fit(*chunks[1])
    assert resumed.n_iter_ == 2


def test_first_chunk_interrupted_leaves_the_estimator_unfitted(tiny_model_dir, chunks,
                                                               monkeypatch):
    """Check that a stream whose first chunk is interrupted is forgotten, not half-kept."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM)
    _ctrl_c_at_loss(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt, match="nothing was fitted or counted"):
        clf.partial_fit(*chunks[0], classes=[0, 1])
    assert not hasattr(clf, "model_") and not hasattr(clf, "n_iter_")
    monkeypatch.undo()
    assert clf.partial_fit(*chunks[0], classes=[0, 1]).n_iter_ == 1


def test_nan_loss_mid_chunk_is_not_counted(tiny_model_dir, chunks, monkeypatch):
    """Check that a non-finite loss stops the chunk uncounted and halts the stream."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(*chunks[0], classes=[0, 1])
    before = copy.deepcopy(clf.model_.state_dict())
    calls = []
    loss = _sources.batch_loss

    def nan_on_second(*args):
        calls.append(1)
        return loss(*args) * (float("nan") if len(calls) == 2 else 1.0)

    monkeypatch.setattr(_sources, "batch_loss", nan_on_second)
    with pytest.raises(FloatingPointError, match="not counted"):
        clf.partial_fit(*chunks[1])
    assert clf.n_iter_ == 1 and clf.n_samples_seen_ == 40
    after = clf.model_.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)  # one step was taken
    with pytest.raises(RuntimeError, match="call fit, or start a new stream"):
        clf.partial_fit(*chunks[1])


def test_failed_checkpoint_write_counts_nothing(tiny_model_dir, chunks, tmp_path, monkeypatch):
    """Check that a checkpoint that cannot be written leaves the stream at its last chunk,
    the older checkpoints intact, and says what to do."""
    from skbert import _checkpoint

    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=str(tmp_path))
    clf.partial_fit(*chunks[0], classes=[0, 1])

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_checkpoint, "write_checkpoint", disk_full)
    with pytest.raises(OSError, match=r"checkpoint_dir=.*No space left.*intact.*resume"):
        clf.partial_fit(*chunks[1])
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
    assert _checkpoints(tmp_path) == ["ckpt-000000000003"]
    monkeypatch.undo()
    assert BertTextClassifier.resume(tmp_path).n_iter_ == 1


# ----------------------------------------------------------------------- typed state
def test_training_state_round_trip_continues_exactly(tiny_model_dir, chunks):
    """Check that state_dict()/load_state_dict() carry everything a stream needs."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(*chunks[0], classes=[0, 1])
    twin = copy.deepcopy(clf)
    state = clf._stream.trainer.state
    saved = copy.deepcopy(state.state_dict())  # as torch's, it shares the live tensors
    assert saved["steps"] == 3 and saved["chunks"] == 1 and saved["samples_seen"] == 40
    assert saved["plan"] == {"warmup_steps": 1, "total_steps": None, "decay": "inverse_sqrt"}
    restored = twin._restore_trainer(saved, torch.device("cpu"), None)
    twin._stream = Stream(restored)
    clf.partial_fit(*chunks[1])
    twin.partial_fit(*chunks[1])
    np.testing.assert_array_equal(clf.predict_proba(chunks[2][0]),
                                  twin.predict_proba(chunks[2][0]))
    with pytest.raises(ValueError, match="Not a training state of this skbert version"):
        restored.state.load_state_dict({"format": "skbert-checkpoint-1"})


@pytest.mark.parametrize("change", [
    dict(learning_rate=1e-2),  # now equal to head_learning_rate: the groups used to merge
    dict(layer_decay=0.8),
])
def test_set_params_mid_stream_then_resume(tiny_model_dir, chunks, tmp_path, change):
    """Bug: after set_params of learning_rate (with head_learning_rate) or of layer_decay
    mid-stream, the next checkpoint could not be resumed (parameter-group mismatch). The
    stream keeps its optimizer; the resumed run equals the uninterrupted one."""
    params = dict(STREAM, head_learning_rate=1e-2, checkpoint_dir=str(tmp_path / "a"))
    whole = BertTextClassifier(tiny_model_dir, **params).partial_fit(*chunks[0], classes=[0, 1])
    whole.set_params(**change)
    whole.partial_fit(*chunks[1])
    resumed = BertTextClassifier.resume(tmp_path / "a")
    resumed.set_params(checkpoint_dir=str(tmp_path / "b"))  # "a" is whole's stream's
    whole.partial_fit(*chunks[2])
    resumed.partial_fit(*chunks[2])
    np.testing.assert_allclose(resumed.predict_proba(chunks[0][0]),
                               whole.predict_proba(chunks[0][0]), atol=1e-6)


def test_set_params_max_steps_mid_stream_resumes_the_same_schedule(tiny_model_dir, chunks,
                                                                   tmp_path):
    """Bug: after set_params(max_steps=...) mid-stream, a resumed schedule differed from
    the uninterrupted one (resume rebuilt it from the new parameter)."""
    params = dict(STREAM, max_steps=12, checkpoint_dir=str(tmp_path / "a"))
    whole = BertTextClassifier(tiny_model_dir, **params).partial_fit(*chunks[0], classes=[0, 1])
    whole.set_params(max_steps=100)
    whole.partial_fit(*chunks[1])
    resumed = BertTextClassifier.resume(tmp_path / "a")
    resumed.set_params(checkpoint_dir=str(tmp_path / "b"))  # "a" is whole's stream's
    assert resumed.max_steps == 100 and resumed._stream.trainer.state.plan.total_steps == 12
    lrs = [[g["lr"] for g in c._stream.trainer.state.optimizer.param_groups]
           for c in (whole, resumed)]
    assert lrs[0] == lrs[1]
    whole.partial_fit(*chunks[2])
    resumed.partial_fit(*chunks[2])
    np.testing.assert_allclose(resumed.predict_proba(chunks[0][0]),
                               whole.predict_proba(chunks[0][0]), atol=1e-6)


# ------------------------------------------------------------------------ fit and stop
def test_ctrl_c_in_first_epoch_with_early_stopping(tiny_params, toy_data, monkeypatch):
    """Bug: Ctrl-C in the first epoch of an early_stopping fit raised TypeError (restoring
    best weights that did not exist yet)."""
    X, y, _, _ = toy_data
    _ctrl_c_at_loss(monkeypatch, 2)
    clf = BertTextClassifier(**dict(tiny_params, early_stopping=True, max_iter=3))
    with pytest.raises(KeyboardInterrupt, match="interrupted by user during epoch 1"):
        clf.fit(X, y)
    assert clf.interrupted_ is True
    assert clf.n_iter_ == 1 and clf.validation_scores_ == []
    assert clf.predict(X[:5]).shape == (5,)


def test_gain_below_tol_is_kept_as_best():
    """Bug: a gain smaller than tol was never kept as the best epoch, so a worse epoch
    could be restored. As scikit-learn's MLP: any gain is the best; tol is patience."""
    layer = torch.nn.Linear(1, 1, bias=False)
    stopper = _engine.EarlyStopping(layer, patience=2, tol=1e-2)
    for value, score in [(1.0, 0.50), (2.0, 0.505), (3.0, 0.40)]:
        layer.weight.data.fill_(value)
        stop = stopper.update(score)
    assert stop and stopper.best_score == 0.505
    stopper.restore_best()
    assert layer.weight.item() == 2.0


def test_early_stopping_scores_with_the_weights(tiny_params, toy_data):
    """Bug: early stopping scored the held-out rows without their sample_weight and
    class_weight."""
    X, y, _, _ = toy_data
    rng = np.random.default_rng(0)
    weights = rng.uniform(0.0, 3.0, size=len(X))
    params = dict(tiny_params, early_stopping=True, max_iter=1, validation_fraction=0.3,
                  class_weight={0: 1.0, 1: 3.0}, inference_dtype="float32", max_length=32)
    clf = BertTextClassifier(**params).fit(X, y, sample_weight=weights)
    seed = np.random.RandomState(0).randint(np.iinfo(np.int32).max)
    _, val = _sources.validation_split(y, seed, 0.3, why="early_stopping",
                                      stratify=True)
    combined = weights[val] * np.where(y[val] == 1, 3.0, 1.0)
    expected = clf.score([X[i] for i in val], y[val], sample_weight=combined)
    unweighted = clf.score([X[i] for i in val], y[val])
    assert clf.validation_scores_[0] == pytest.approx(expected)
    assert expected != pytest.approx(unweighted)  # the weights matter on these rows


def test_uniform_sample_weight_scale_changes_nothing(tiny_params, toy_data):
    """Bug: a uniform sample_weight scale changed the fit (all 1e-5 acted as a tiny
    learning rate); scikit-learn's estimators are invariant to it."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=2, inference_dtype="float32")
    plain = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    tiny = BertTextClassifier(**params).fit(X, y, sample_weight=np.full(len(X), 1e-5))
    np.testing.assert_allclose(tiny.predict_proba(X_test), plain, atol=1e-5)
    weights = np.zeros(len(X))
    weights[y == 1] = 1.0  # class_weight then zeroes the rest
    with pytest.raises(ValueError, match="0 for every text"):
        BertTextClassifier(**dict(params, class_weight={0: 1.0, 1: 0.0})).fit(
            X, y, sample_weight=weights)


def test_partial_fit_after_fit_starts_the_stream_curves(tiny_params, toy_data):
    """Bug: partial_fit after fit dropped the fit's loss_curve_ but kept its
    validation_scores_. A stream counts its own chunks (the resume loop skips n_iter_
    chunks), so both of the fit's curves go."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=3, early_stopping=True,
                                    n_iter_no_change=5)).fit(X, y)
    assert len(clf.validation_scores_) == 3
    clf.set_params(early_stopping=False).partial_fit(X, y)
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1 and clf.n_samples_seen_ == len(X)
    assert not hasattr(clf, "validation_scores_")
    assert not hasattr(clf, "best_validation_score_")
    clf.partial_fit(X, y)
    assert clf.n_iter_ == 2 and len(clf.loss_curve_) == 2


def test_stream_refuses_switching_to_text_pairs(tiny_model_dir, chunks):
    """Bug: a stream that switched from single texts to text pairs between chunks flipped
    silently instead of being refused."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM).partial_fit(*chunks[0], classes=[0, 1])
    X, y = chunks[1]
    with pytest.raises(ValueError, match="trained on single texts; partial_fit got text pairs"):
        clf.partial_fit([(a, a) for a in X], y)
    assert clf.n_iter_ == 1 and clf.text_pairs_ is False


def test_past_max_steps_warning_tells_the_truth_about_batch_norm(tiny_model_dir, chunks):
    """Bug: past max_steps the warning said the weights stay unchanged, but BatchNorm
    statistics keep moving. Check both halves of the new message against the network."""
    clf = BertTextClassifier(tiny_model_dir, **dict(STREAM, max_steps=3, head=(8,)))
    clf.partial_fit(*chunks[0], classes=[0, 1])
    weights = {k: v.clone() for k, v in clf.model_.named_parameters()}
    stats = clf.model_.head[2].running_mean.clone()
    with pytest.warns(UserWarning, match="no longer change the trained weights, but "
                                         "BatchNorm running statistics"):
        clf.partial_fit(*chunks[1])
    assert all(torch.equal(weights[k], v) for k, v in clf.model_.named_parameters())
    assert not torch.equal(stats, clf.model_.head[2].running_mean)


# ------------------------------------------------------------------ seeds and threads
def test_same_random_state_in_parallel_threads_fits_the_same(tiny_params, toy_data):
    """Bug: two fits with the same int random_state in parallel threads differed (dropout
    drew from torch's global generator). Each fit now has its own generator."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=2, inference_dtype="float32")
    alone = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    start = threading.Barrier(2)
    results = [None, None]

    def fit(i):
        start.wait()
        results[i] = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)

    threads = [threading.Thread(target=fit, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for proba in results:
        np.testing.assert_allclose(proba, alone, atol=1e-6)


def test_seeded_dropout_draws_from_the_fit_generator(tiny_params, toy_data):
    """Check that dropout really is on (fits differ by seed) and restores the modules."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=1, inference_dtype="float32")
    a = BertTextClassifier(**params).fit(X, y)
    b = BertTextClassifier(**dict(params, random_state=1)).fit(X, y)
    assert not np.allclose(a.predict_proba(X_test), b.predict_proba(X_test))
    assert a.model_.backbone.config._attn_implementation == "sdpa"
    assert all("forward" not in m.__dict__ for m in a.model_.modules())


def test_concurrent_quiet_loads_restore_the_log_level():
    """Bug: concurrent model loads left transformers' global log level at ERROR."""
    from transformers.utils import logging

    from skbert._pretrained import quiet_transformers

    before = logging.get_verbosity()
    logging.set_verbosity_warning()
    try:
        first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()

        def first():
            with quiet_transformers():
                first_in.set()
                second_in.wait(5)
            first_out.set()

        def second():
            first_in.wait(5)
            with quiet_transformers():
                second_in.set()
                first_out.wait(5)

        threads = [threading.Thread(target=f) for f in (first, second)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert logging.get_verbosity() == logging.WARNING
    finally:
        logging.set_verbosity(before)


def test_texts_digest_cannot_be_imitated_by_separators():
    """Bug: the token-id cache key collided for different text lists (texts were joined
    by separators that texts may contain)."""
    assert _cache.texts_digest(["x\x00\x01Sy"]) != _cache.texts_digest(["x", "y"])
    assert _cache.texts_digest(["ab", "c"]) != _cache.texts_digest(["a", "bc"])
    assert _cache.texts_digest(["a", "b"]) == _cache.texts_digest(["a", "b"])


# ---------------------------------------------------------------- masked-LM pretraining
MLM = dict(max_length=32, batch_size=4, learning_rate=1e-3, device="cpu", random_state=0)


def test_masked_lm_batch_without_masked_tokens_trains(tiny_model_dir):
    """Bug: a batch with no masked token gave a NaN loss and a FloatingPointError blaming
    the learning rate."""
    X, _ = make_texts(12, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pre = MaskedLMPretrainer(tiny_model_dir, **dict(MLM, mlm_probability=1e-9)).fit(X)
    assert np.isfinite(pre.loss_curve_).all()
    ids = torch.tensor([[2, 10, 11, 3]])
    _, labels = _sources.mask_tokens(ids, torch.tensor([0, 2, 3]), 1e-9, 4, 50,
                                    torch.Generator().manual_seed(0))
    assert (labels != -100).sum() == 1  # one token chosen where the draw chose none


def test_masked_lm_fit_plans_the_steps_it_takes(tiny_model_dir, monkeypatch):
    """Bug: fit planned ceil(n / batch_size) steps per epoch but took more, so the last
    ones ran at learning rate 0. 202 texts in batches of 4 take 52 length-grouped steps."""
    X, _ = make_texts(202, seed=4)
    rates = []
    step = _engine.TrainingState.step

    def recording(self, *args, **kwargs):
        rates.append(self.optimizer.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(_engine.TrainingState, "step", recording)
    MaskedLMPretrainer(tiny_model_dir, **dict(MLM, max_iter=1)).fit(X)
    assert len(rates) == count_batches(202, 4) == 52 > -(-202 // 4)
    assert min(rates) > 0


def test_masked_lm_partial_fit_after_fit_learns(tiny_model_dir):
    """Bug: partial_fit after fit trained at learning rate 0 (the fit's schedule had
    ended). It starts a new stream at learning_rate."""
    X, _ = make_texts(24, seed=5)
    pre = MaskedLMPretrainer(tiny_model_dir, **MLM).fit(X)
    before = {k: v.clone() for k, v in pre.model_.named_parameters()}
    pre.partial_fit(X)
    assert pre._trainer.state.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3)
    assert any(not torch.equal(before[k], v) for k, v in pre.model_.named_parameters())
    assert pre.n_iter_ == 2 and len(pre.loss_curve_) == 2


def test_masked_lm_random_state_seeds_head_and_dropout(tiny_model_dir):
    """Bug: random_state seeded neither dropout nor the new masked-LM head."""
    from skbert._pretrained import load_masked_lm

    def head(seed):
        return load_masked_lm(tiny_model_dir, seed).cls.predictions.transform.dense.weight

    assert torch.equal(head(0), head(0)) and not torch.equal(head(0), head(1))
    X, _ = make_texts(24, seed=6)
    runs = [MaskedLMPretrainer(tiny_model_dir, **MLM).fit(X).loss_curve_ for _ in range(2)]
    assert runs[0] == runs[1]


def test_masked_lm_fit_again_starts_from_the_pretrained_model(tiny_model_dir):
    """Check that a second fit starts over from model_name_or_path, as scikit-learn's fit
    does, instead of continuing the model of the first fit."""
    X, _ = make_texts(24, seed=7)
    pre = MaskedLMPretrainer(tiny_model_dir, **MLM)
    first = list(pre.fit(X).loss_curve_)
    assert pre.fit(X).loss_curve_ == first


def test_resume_with_another_device_kinds_generator_is_refused(tiny_model_dir, chunks,
                                                               tmp_path):
    """Check that a checkpoint whose dropout generator is of another kind of device (a
    CUDA generator's 16-byte state, resumed on the CPU) is refused with a message, not
    torch's 'RNG state is wrong size'."""
    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=str(tmp_path))
    clf.partial_fit(*chunks[0], classes=[0, 1])
    state_file = next(tmp_path.glob("ckpt-*")) / "training_state.pt"
    state = torch.load(state_file, weights_only=True)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)
    torch.save(state, state_file)
    with pytest.raises(ValueError, match=r"does not belong to estimator.skops.*dropout "
                                         r"generator was saved on another kind of device "
                                         r"than cpu \(a state of 16 bytes"):
        BertTextClassifier.resume(tmp_path)


def test_seeding_the_head_leaves_every_other_generator_alone(monkeypatch):
    """Check that the seeded block (head initialisation) seeds the CPU generator only and
    puts it back: torch.manual_seed would also reseed every GPU's generator, which a fit
    on a machine with a GPU then changed for its caller (found on an H200)."""
    from skbert import _modeling

    calls = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", lambda seed: calls.append(seed))
    monkeypatch.setattr(torch.cuda, "manual_seed", lambda seed: calls.append(seed))
    before = torch.get_rng_state()
    with _modeling.seeded(7):
        first = torch.rand(3)
    with _modeling.seeded(7):
        again = torch.rand(3)
    assert calls == []
    assert torch.equal(first, again)
    assert torch.equal(torch.get_rng_state(), before)


def test_ctrl_c_in_masked_lm_fit_raises_after_keeping_the_weights(tiny_model_dir, monkeypatch):
    """Ctrl-C in MaskedLMPretrainer.fit raises KeyboardInterrupt (it warned and returned
    in 0.1, so a script went on with a half-trained encoder), once the pretrainer holds
    the weights of the last completed step."""
    X, _ = make_texts(64, seed=2)
    calls = []
    loss = _sources.MaskedTokenBatches.loss

    def pressing(self, *args):
        calls.append(1)
        if len(calls) == 3:
            signal.raise_signal(signal.SIGINT)
        return loss(self, *args)

    monkeypatch.setattr(_sources.MaskedTokenBatches, "loss", pressing)
    pre = MaskedLMPretrainer(tiny_model_dir, max_length=32, max_iter=3, batch_size=16,
                             device="cpu", random_state=0)
    with pytest.raises(KeyboardInterrupt, match="interrupted by user during epoch 1"):
        pre.fit(X)
    assert pre.interrupted_ is True and pre.n_iter_ == 1
    assert len(calls) == 3  # stopped after the step in progress
