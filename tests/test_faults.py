"""Faults: Ctrl-C, non-finite losses, out-of-memory, odd unicode, random inputs."""

import copy
import os
import pickle
import signal

import numpy as np
import pytest
import skops.io as sio
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

from skbert import BertTextClassifier

from .conftest import make_texts


class _InterruptingHead(nn.Module):
    """A linear head that sends SIGINT to this process on its 5th training forward."""

    def __init__(self, in_features, n_classes):
        super().__init__()
        self.linear = nn.Linear(in_features, n_classes)
        self.calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
            if self.calls == 5:
                os.kill(os.getpid(), signal.SIGINT)
        return self.linear(x)


class _InterruptedInValidationHead(nn.Linear):
    """A linear head that sends SIGINT to this process on its first eval-mode forward
    after training began: the first validation."""

    def forward(self, x):
        if self.training:
            self.trained = True
        elif getattr(self, "trained", False) and not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGINT)
        return super().forward(x)


def _nan_head(in_features, n_classes):
    class NanHead(nn.Linear):
        def forward(self, x):
            out = super().forward(x)
            return out * float("nan") if self.training else out

    return NanHead(in_features, n_classes)


def test_ctrl_c_keeps_last_consistent_state(tiny_params, toy_data):
    """Check that Ctrl-C mid-fit stops after the step in progress and raises
    KeyboardInterrupt, leaving a fitted estimator that says so and predicts."""
    X, y, X_test, _ = toy_data
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a job started in the background
    clf = BertTextClassifier(**dict(tiny_params, head=_InterruptingHead, max_iter=5))
    with pytest.raises(KeyboardInterrupt, match="interrupted by user during epoch 1.*"
                                                "interrupted_=True, n_iter_=1"):
        clf.fit(X, y)
    assert clf.interrupted_ is True
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
    assert clf.model_.head.calls == 5  # no step began after the one interrupted
    proba = clf.predict_proba(X_test)
    assert np.isfinite(proba).all()
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_ctrl_c_between_epochs_stops_before_the_next(tiny_params, toy_data):
    """Check that Ctrl-C during validation stops before the next epoch begins, raising
    KeyboardInterrupt with the epoch's validation score kept."""
    X, y, _, _ = toy_data
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN in a job started in the background
    clf = BertTextClassifier(**dict(tiny_params, head=_InterruptedInValidationHead,
                                    early_stopping=True, n_iter_no_change=5, max_iter=4))
    with pytest.raises(KeyboardInterrupt, match="interrupted by user after epoch 1"):
        clf.fit(X, y)
    assert clf.interrupted_ is True
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1 and clf.validation_scores_
    assert len(clf.validation_scores_) == 1
    assert signal.getsignal(signal.SIGINT) is before  # the handler is put back


def test_non_finite_loss_stops_before_updating(tiny_params, toy_data):
    """Check that a NaN loss raises and leaves a stream's weights untouched."""
    X, y, X_test, _ = toy_data
    with pytest.raises(FloatingPointError, match="loss became nan.*not updated"):
        BertTextClassifier(**dict(tiny_params, head=_nan_head)).fit(X, y)
    good = BertTextClassifier(**tiny_params).partial_fit(X[:40], y[:40], classes=[0, 1])
    before = good.predict_proba(X_test)
    good.model_.head[-1].register_forward_hook(
        lambda module, args, out: out * float("nan") if module.training else out
    )
    with pytest.raises(FloatingPointError):
        good.partial_fit(X[40:80], y[40:80])
    np.testing.assert_array_equal(good.predict_proba(X_test), before)


def test_predict_out_of_memory_halves_budget_and_retries(fitted, toy_data):
    """Check that OOM during prediction retries with half the token budget."""
    _, _, X_test, _ = toy_data
    expected = fitted.predict_proba(X_test)
    clf = copy.deepcopy(fitted).set_params(predict_batch_tokens=4096)
    real_forward = clf.model_.forward

    def forward(input_ids, **kwargs):
        if input_ids.numel() > 512:
            raise torch.OutOfMemoryError("simulated")
        return real_forward(input_ids, **kwargs)

    clf.model_.forward = forward
    with pytest.warns(UserWarning, match="retrying with predict_batch_tokens=512"):
        proba = clf.predict_proba(X_test)
    np.testing.assert_allclose(proba, expected, atol=1e-5)


def test_fit_out_of_memory_suggests_smaller_batches(tiny_params, toy_data):
    """Check that OOM during training names batch_size and max_length."""
    X, y, _, _ = toy_data

    def oom_head(in_features, n_classes):
        class OomHead(nn.Linear):
            def forward(self, x):
                if self.training:
                    raise torch.OutOfMemoryError("simulated")
                return super().forward(x)

        return OomHead(in_features, n_classes)

    with pytest.raises(RuntimeError, match="Out of memory.*batch_size=16.*Lower batch_size"):
        BertTextClassifier(**dict(tiny_params, head=oom_head)).fit(X, y)


def test_invalid_unicode_is_named(fitted):
    """Check that a lone surrogate (text that is not valid UTF-8) is refused by index."""
    with pytest.raises(ValueError, match="not valid Unicode at index 1"):
        fitted.predict(["fine", "broken \udcff here"])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=st.lists(st.text(max_size=60), min_size=1, max_size=12))
def test_random_unicode_gives_finite_probabilities(fitted, texts):
    """Check that any valid unicode text gets finite probabilities summing to 1."""
    texts = [t for t in texts if not any(0xD800 <= ord(c) <= 0xDFFF for c in t)] or [""]
    proba = fitted.predict_proba(texts)
    assert proba.shape == (len(texts), 2)
    assert np.isfinite(proba).all()
    np.testing.assert_allclose(proba.sum(1), 1.0)
    np.testing.assert_array_equal(fitted.predict(texts), fitted.classes_[proba.argmax(1)])


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(labels=["0", "\x00"])  # NumPy's string arrays drop trailing NULs: "\x00" became ""
@given(labels=st.lists(st.one_of(st.integers(-5, 5)), min_size=2, max_size=4, unique=True)
       | st.lists(st.text(min_size=1, max_size=5), min_size=2, max_size=4, unique=True))
def test_random_label_sets_round_trip(tiny_params, labels):
    """Check that any label set comes back from predict and survives pickle and skops."""
    X, idx = make_texts(40, seed=5, n_classes=2)
    y = np.array(labels, dtype=object)[np.asarray(idx) % len(labels)]
    y[: len(labels)] = labels  # every label present
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, list(y))
    assert sorted(clf.classes_.tolist()) == sorted(labels)
    assert set(clf.predict(X).tolist()) <= set(labels)
    proba = clf.predict_proba(X[:5])
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(clf)).predict_proba(X[:5]), proba)
    loaded = sio.loads(sio.dumps(clf), trusted=["skbert._classifier.BertTextClassifier"])
    np.testing.assert_array_equal(loaded.predict_proba(X[:5]), proba)


def test_failed_save_leaves_previous_folder_intact(tiny_model_dir, tmp_path, monkeypatch):
    """Check that a save failing part-way keeps the previous checkpoint folder as it was."""
    from skbert import MaskedLMPretrainer

    pre = MaskedLMPretrainer(tiny_model_dir, max_length=32, device="cpu", random_state=0)
    pre.fit(["good film", "bad plot", "dull acting"] * 4)
    target = pre.save_pretrained(tmp_path / "domain")
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def failing_save(folder, *args, **kwargs):
        (folder / "tokenizer.json").write_text("half written")
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(pre.tokenizer_, "save_pretrained", failing_save)
    with pytest.raises(OSError, match="disk full"):
        pre.save_pretrained(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["domain"]  # no debris left


def test_failed_checkpoint_write_keeps_older_checkpoints(tmp_path, monkeypatch):
    """Check that a checkpoint write failing part-way leaves only complete checkpoints."""
    from skbert import _checkpoint

    _checkpoint.write_checkpoint(tmp_path, 3, {"a": b"old"}, keep=2)
    real_fsync = os.fsync
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 2:
            raise OSError("I/O error (simulated)")
        real_fsync(fd)

    monkeypatch.setattr(_checkpoint.os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="simulated"):
        _checkpoint.write_checkpoint(tmp_path, 6, {"a": b"new", "b": b"new"}, keep=2)
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-000000000003"]
    assert _checkpoint.latest_checkpoint(tmp_path).joinpath("a").read_bytes() == b"old"


def test_checkpoint_keeps_the_newest_and_refuses_another_runs_folder(tmp_path):
    """Check pruning keeps the ``keep`` newest, and that a folder holding a newer
    checkpoint (another run's) is refused rather than pruned into a mix of two runs."""
    from skbert import _checkpoint

    for step in (1, 2, 3):
        _checkpoint.write_checkpoint(tmp_path, step, {"a": bytes([step])}, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ckpt-000000000002", "ckpt-000000000003"]
    with pytest.raises(ValueError, match=r"already holds ckpt-000000000003, newer than step 1"):
        _checkpoint.write_checkpoint(tmp_path, 1, {"a": b"x"}, keep=2)
    assert _checkpoint.latest_checkpoint(tmp_path).joinpath("a").read_bytes() == bytes([3])


def test_replace_folder_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    """Check that a failing rename of the two-rename swap (where the OS has no atomic
    exchange) leaves the previous folder at its name."""
    from skbert import _checkpoint

    monkeypatch.setattr(_checkpoint, "_rename_exchange", lambda a, b: False)

    (tmp_path / "target").mkdir()
    (tmp_path / "target" / "f").write_text("old")
    (tmp_path / "staging").mkdir()
    (tmp_path / "staging" / "f").write_text("new")
    real_replace = os.replace

    def failing_replace(src, dst):
        if os.path.basename(src) == "staging":
            raise OSError("rename failed (simulated)")
        real_replace(src, dst)

    monkeypatch.setattr(_checkpoint.os, "replace", failing_replace)
    with pytest.raises(OSError, match="simulated"):
        _checkpoint.replace_folder(tmp_path / "staging", tmp_path / "target")
    assert (tmp_path / "target" / "f").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging", "target"]


def test_ctrl_c_in_partial_fit_raises_and_marks_the_estimator(tiny_params, toy_data):
    """Check that Ctrl-C in a later chunk of partial_fit raises KeyboardInterrupt and
    leaves the fitted estimator predicting with interrupted_=True (False after each
    completed chunk)."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, head=_InterruptingHead))
    clf.partial_fit(X[:40], y[:40], classes=[0, 1])  # 3 steps
    assert clf.interrupted_ is False
    with pytest.raises(KeyboardInterrupt, match="was interrupted .* during chunk 2"):
        clf.partial_fit(X[40:80], y[40:80])  # SIGINT in its 2nd step
    assert clf.interrupted_ is True and clf.n_iter_ == 1
    assert np.isfinite(clf.predict_proba(X_test)).all()
