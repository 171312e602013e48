"""The middle floor without BERT: the one loop (``_engine.Trainer``) driven with a toy
network and a toy batch source, the batch sources and losses of ``_sources``, and the
prediction path of ``_prediction`` on a toy network. Each runs in well under a second,
so a change of the engine iterates in seconds."""

import signal

import numpy as np
import pytest
import torch
from torch import nn

from skbert import _sources
from skbert._batching import count_batches, training_batches
from skbert._engine import (
    EarlyStopping,
    Interrupted,
    Trainer,
    TrainingPlan,
    interrupted_error,
    new_state,
)
from skbert._prediction import outputs
from skbert._tokenization import Encoding

CPU = torch.device("cpu")


class ToySource:
    """Rows of a linearly separable 2-class task, in shuffled batches of ``batch_size``."""

    def __init__(self, n=64, batch_size=8, seed=0, poison_step=None, on_loss=None):
        rng = np.random.default_rng(seed)
        self.X = torch.from_numpy(rng.normal(size=(n, 4)).astype(np.float32))
        self.y = (self.X[:, 0] + self.X[:, 1] > 0).long()
        self.n_texts, self.batch_size = n, batch_size
        self.calls, self.poison_step, self.on_loss = 0, poison_step, on_loss

    def batches(self, rng):
        return training_batches(self.n_texts, self.batch_size, rng, length_grouped=False)

    def loss(self, network, batch, part):
        self.calls += 1
        if self.on_loss is not None:
            self.on_loss(self.calls)
        rows = torch.from_numpy(batch[part])
        loss = nn.functional.cross_entropy(network(self.X[rows]), self.y[rows],
                                           reduction="sum") / len(batch)
        return loss * float("nan") if self.calls == self.poison_step else loss


def toy_trainer(seed=0, lr=0.1, passes=3, per_pass=8):
    torch.manual_seed(seed)
    module = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    groups = [{"params": list(module.parameters()), "lr": lr, "weight_decay": 0.0}]
    plan = TrainingPlan.of_run(per_pass, warmup_fraction=0.1, passes=passes)
    return Trainer(module, module, new_state(groups, plan, seed, CPU, None), device=CPU,
                   max_grad_norm=1.0)


def weights(module):
    return [p.detach().clone() for p in module.parameters()]


def test_trainer_learns_a_toy_task_and_counts_its_steps():
    """Check that the loop lowers the loss of a toy network and counts one step a batch
    and the texts of each complete pass."""
    trainer, source = toy_trainer(), ToySource()
    losses = trainer.train(source, 3)
    assert len(losses) == 3 and losses[-1] < losses[0]
    assert trainer.state.steps == 3 * count_batches(64, 8, length_grouped=False)
    assert trainer.state.samples_seen == 3 * 64
    assert not trainer.module.training  # eval mode after the passes
    assert all(p.grad is None for p in trainer.module.parameters())


def test_trainer_state_round_trip_continues_bit_for_bit():
    """Check that a state saved after one pass and loaded into a fresh trainer continues
    exactly as the uninterrupted run (batch order, dropout, optimizer, schedule)."""
    whole = toy_trainer()
    whole.train(ToySource(), 2)
    first = toy_trainer()
    first.train(ToySource(), 1)
    saved = first.state.state_dict()
    second = toy_trainer(seed=1)  # other initial weights and seed: all come from saved
    second.module.load_state_dict(first.module.state_dict())
    second.state.load_state_dict(saved)
    second.train(ToySource(), 1)
    for a, b in zip(weights(whole.module), weights(second.module), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_trainer_refuses_a_non_finite_loss_without_updating():
    """Check that a NaN loss raises FloatingPointError naming the step, and that the
    weights keep the last finite step's values."""
    trainer = toy_trainer()
    source = ToySource(poison_step=3)
    before = {}

    def keep(calls):
        if calls == 3:
            before["w"] = weights(trainer.module)

    source.on_loss = keep
    with pytest.raises(FloatingPointError, match="optimizer step 3"):
        trainer.train(source, 1)
    for a, b in zip(before["w"], weights(trainer.module), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert trainer.state.steps == 2


def test_ctrl_c_stops_after_a_complete_step_and_fit_raises_keyboard_interrupt():
    """Check that SIGINT during a step finishes that step, raises Interrupted with the
    mean loss so far, and that what fit raises after it is a KeyboardInterrupt (which
    stops a script or a search) saying the estimator is fitted."""
    trainer = toy_trainer()
    source = ToySource(on_loss=lambda calls: calls == 2 and signal.raise_signal(signal.SIGINT))
    with pytest.raises(Interrupted) as caught:
        trainer.train(source, 3)
    assert trainer.state.steps == 2 and len(caught.value.losses) == 1
    error = interrupted_error(caught.value)
    assert isinstance(error, KeyboardInterrupt)
    assert "interrupted_=True" in str(error) and "n_iter_=1" in str(error)


def test_early_stopping_restores_the_best_weights():
    """Check that EarlyStopping stops after its patience and puts the best weights back."""
    module = nn.Linear(2, 2)
    stopper = EarlyStopping(module, patience=2, tol=0.0)
    assert not stopper.update(0.5)
    best = weights(module)
    with torch.no_grad():
        module.weight.add_(1.0)
    assert not stopper.update(0.4)
    assert stopper.update(0.3)
    stopper.restore_best()
    torch.testing.assert_close(weights(module), best)
    assert stopper.scores == [0.5, 0.4, 0.3] and stopper.best_score == 0.5


@pytest.mark.parametrize(("incremental", "max_steps", "expected"), [
    (False, None, TrainingPlan(3, 30, "linear")),
    (True, 50, TrainingPlan(5, 50, "linear")),
    (True, None, TrainingPlan(1, None, "inverse_sqrt")),
])
def test_plan_of_a_run(incremental, max_steps, expected):
    """Check the schedule of fit (all passes), a bounded stream and an open stream."""
    assert TrainingPlan.of_run(10, warmup_fraction=0.1, passes=3, max_steps=max_steps,
                               incremental=incremental) == expected


@pytest.mark.filterwarnings("ignore:torch.cuda.amp.GradScaler is enabled")
def test_new_state_scales_fp16_losses_only():
    """Check that new_state builds a loss scaler for fp16 and none otherwise, and a
    fused AdamW on the CPU."""
    groups = lambda: [{"params": [nn.Parameter(torch.zeros(2))], "lr": 0.1}]  # noqa: E731
    plan = TrainingPlan(0, 10)
    assert new_state(groups(), plan, 0, CPU, None).scaler is None
    assert new_state(groups(), plan, 0, CPU, torch.bfloat16).scaler is None
    assert new_state(groups(), plan, 0, CPU, torch.float16).scaler is not None
    assert new_state(groups(), plan, 0, CPU, None).optimizer.defaults.get("fused")


# ------------------------------------------------------------------ batch sources
def test_feature_batches_shares_add_up_to_the_batch_loss():
    """Check that the loss shares of a split batch add up to the whole batch's loss (the
    data-parallel contract), weights included."""
    rng = np.random.default_rng(0)
    features = torch.from_numpy(rng.normal(size=(10, 3)).astype(np.float32))
    source = _sources.FeatureBatches(features, rng.integers(0, 2, 10), rng.random(10) + 0.5,
                                     batch_size=10, criterion=_sources.Criterion("multiclass"))
    head = nn.Linear(3, 2)
    batch = np.arange(10)
    whole = source.loss(head, batch, slice(None))
    parts = source.loss(head, batch, slice(0, 4)) + source.loss(head, batch, slice(4, None))
    torch.testing.assert_close(whole, parts)


def test_loss_weights_keep_only_relative_weights():
    """Check that loss weights have a mean of 1 and that scaling them changes nothing."""
    classes, y = np.array([0, 1]), np.array([0, 0, 0, 1])
    w = _sources.loss_weights("balanced", classes, y, y, np.array([1.0, 2.0, 1.0, 1.0]))
    assert w.mean() == pytest.approx(1.0)
    w10 = _sources.loss_weights("balanced", classes, y, y, np.array([10.0, 20.0, 10.0, 10.0]))
    np.testing.assert_allclose(w, w10)
    with pytest.raises(ValueError, match="is 0 for every text"):
        _sources.loss_weights(None, classes, y, y, np.zeros(4))


def test_validation_split_is_stratified_and_seeded():
    """Check that the held-out split keeps each class, repeats with its seed, and that
    why=None trains on every row."""
    y = np.array([0] * 32 + [1] * 8)
    train, val = _sources.validation_split(y, 7, 0.25, why="early_stopping", stratify=True)
    assert sorted(np.r_[train, val]) == list(range(40))
    assert np.bincount(y[val]).tolist() == [8, 2]
    again = _sources.validation_split(y, 7, 0.25, why="early_stopping", stratify=True)
    np.testing.assert_array_equal(val, again[1])
    rows, none = _sources.validation_split(y, 7, 0.25, why=None, stratify=True)
    assert none is None and len(rows) == 40


# ---------------------------------------------------------------------- prediction
class ToyNetwork(nn.Module):
    """Logits of token-id sequences: the mean embedding of the non-padding tokens."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 3)

    def features(self, input_ids, attention_mask, token_type_ids=None):
        mask = attention_mask.unsqueeze(-1).float()
        return (self.embed(input_ids) * mask).sum(1) / mask.sum(1)

    def forward(self, **inputs):
        return self.features(**inputs)


def _toy_encoding(lengths, seed=0):
    rng = np.random.default_rng(seed)
    offsets = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    return Encoding(rng.integers(1, 20, offsets[-1]).astype(np.int32), None, offsets)


def test_outputs_are_in_input_order_whatever_the_budget():
    """Check that prediction puts rows back in input order and that the token budget
    (how sequences are batched) does not change them."""
    torch.manual_seed(0)
    network = ToyNetwork()
    encoding = _toy_encoding([3, 9, 1, 5, 7, 2, 8])
    expected = np.stack([network.embed.weight[torch.from_numpy(encoding.ids[a:b]).long()]
                         .mean(0).detach().numpy()
                         for a, b in zip(encoding.offsets[:-1], encoding.offsets[1:], strict=True)])
    for budget in (8, 16, 1000):
        out = outputs(network, encoding, pad_id=0, device=CPU, budget=budget)
        np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(outputs(network, encoding, np.array([4, 0]), pad_id=0,
                                       device=CPU, budget=16), expected[[4, 0]], atol=1e-6)


def test_outputs_pool_the_windows_of_a_text():
    """Check that a text of several windows gets the mean (or max) of its windows."""
    torch.manual_seed(0)
    network = ToyNetwork()
    flat = _toy_encoding([4, 4, 3, 5])
    windowed = flat._replace(windows=np.array([0, 3, 4]))  # text 0: windows 0-2
    each = outputs(network, flat, pad_id=0, device=CPU, budget=64)
    pooled = outputs(network, windowed, pad_id=0, device=CPU, budget=64)
    np.testing.assert_allclose(pooled, np.stack([each[:3].mean(0), each[3]]), atol=1e-6)
    maxed = outputs(network, windowed, pad_id=0, device=CPU, budget=64, window_pooling="max")
    np.testing.assert_allclose(maxed, np.stack([each[:3].max(0), each[3]]), atol=1e-6)
