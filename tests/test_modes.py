"""Fine-tuning modes: frozen base, custom heads, layer decay, further pre-training."""

import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from torch import nn

from skbert import BertTextClassifier, MaskedLMPretrainer, _modeling

CALLS = []


def small_head(in_features, n_classes):
    """A module-level head factory (picklable), counting its calls."""
    CALLS.append((in_features, n_classes))
    return nn.Sequential(nn.Linear(in_features, 8), nn.Tanh(), nn.Linear(8, n_classes))


def _backbone_weights(path):
    from transformers import AutoModel

    return {k: v.clone() for k, v in AutoModel.from_pretrained(path).state_dict().items()}


@pytest.fixture(scope="module")
def frozen_params(tiny_params):
    return dict(tiny_params, freeze_base=True, learning_rate=1e-2, max_iter=30)


def test_frozen_base_is_bitwise_unchanged_and_head_learns(
    frozen_params, tiny_model_dir, toy_data
):
    """Check that freeze_base leaves every backbone weight bitwise equal and trains the head."""
    X, y, _, _ = toy_data
    before = _backbone_weights(tiny_model_dir)
    clf = BertTextClassifier(**frozen_params).fit(X, y)
    after = clf.model_.backbone.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    # The head moved: its loss fell (a random tiny BERT's features carry little signal).
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] - 0.02
    assert not clf.model_.backbone.training and not any(
        p.requires_grad for p in clf.model_.backbone.parameters()
    )


def test_cached_features_train_the_same_head_as_on_the_fly(frozen_params, toy_data):
    """Check that training on cached features equals running the frozen network per batch."""
    X, y, _, _ = toy_data
    # fp32: the reference below runs the loop without autocast.
    params = dict(frozen_params, max_iter=2, random_state=3, training_dtype="float32")
    cached = BertTextClassifier(**params).fit(X, y)

    # Rebuild the same starting point and train on the fly with the same batches.
    ref = BertTextClassifier(**params)
    seed = int(np.random.RandomState(3).randint(np.iinfo(np.int32).max))
    tokenizer = cached.tokenizer_
    from skbert._engine import Trainer, TrainingPlan, TrainingState
    from skbert._pretrained import load_backbone
    from skbert._sources import Criterion, TokenBatches
    from skbert._tokenization import encode

    class OnTheFly(TokenBatches):  # the frozen network per batch, in the cut of features
        def batches(self, rng):
            return np.array_split(rng.permutation(len(X)), -(-len(X) // ref.batch_size))

    encoding = encode(tokenizer, X, ref.max_length)
    cpu = torch.device("cpu")
    with _modeling.seeded(seed):
        module = _modeling.build_module(load_backbone(ref.model_name_or_path), 2, frozen=True)
        generator = torch.get_rng_state()
    groups = _modeling.parameter_groups(module, 1e-2, 1e-2, ref.weight_decay, 1.0)
    steps = 2 * -(-len(X) // ref.batch_size)
    state = TrainingState(torch.optim.AdamW(groups), TrainingPlan(int(0.1 * steps), steps),
                          seed=seed, device=cpu, generator_state=generator)
    source = OnTheFly(encoding, np.arange(len(X)), y, None, pad_id=0,
                      batch_size=ref.batch_size, device=cpu, criterion=Criterion("multiclass"))
    Trainer(module, module, state, device=cpu, max_grad_norm=ref.max_grad_norm).train(source, 2)
    for a, b in zip(cached.model_.head.parameters(), module.head.parameters(), strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_fitted_model_keeps_no_gradients(tiny_params, toy_data):
    """Check that fit and partial_fit free the gradients of the last step (the memory
    of a second model copy), and that the model still trains afterwards."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, y)
    assert all(p.grad is None for p in clf.model_.parameters())
    before = [p.detach().clone() for p in clf.model_.parameters()]
    clf.partial_fit(X, y)
    assert all(p.grad is None for p in clf.model_.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, clf.model_.parameters(), strict=True))


def test_head_factory_called_once_per_fit_and_pickles(tiny_params, toy_data):
    """Check that a head factory runs once per fit and survives pickle and skops."""
    X, y, X_test, _ = toy_data
    CALLS.clear()
    clf = BertTextClassifier(**dict(tiny_params, head=small_head, max_iter=2)).fit(X, y)
    assert CALLS == [(32, 2)]
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))
    blob = sio.dumps(clf)
    untrusted = sio.get_untrusted_types(data=blob)
    assert untrusted == sorted(["skbert._classifier.BertTextClassifier",
                                f"{__name__}.small_head"])
    np.testing.assert_array_equal(
        sio.loads(blob, trusted=untrusted).predict_proba(X_test), clf.predict_proba(X_test)
    )


def test_resume_with_a_head_factory_asks_to_trust_it(tiny_params, toy_data, tmp_path):
    """Check that resuming a checkpoint whose head comes from a factory names the type
    to trust (not "corrupt"), and resumes once it is trusted."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, head=small_head, checkpoint_dir=str(tmp_path)))
    clf.partial_fit(X, y, classes=[0, 1])
    message = rf"not trusted: \['{__name__}.small_head'\].*trusted=\[\.\.\.\]"
    with pytest.raises(ValueError, match=message):
        BertTextClassifier.resume(tmp_path)
    resumed = BertTextClassifier.resume(tmp_path, trusted=[f"{__name__}.small_head"])
    assert resumed.n_iter_ == 1 and resumed.head is small_head


def test_mlp_head_on_frozen_base(frozen_params, toy_data):
    """Check that a tuple head builds Dropout/Linear/BatchNorm/ReLU blocks and learns."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(frozen_params, head=(16, 8))).fit(X, y)
    kinds = [type(m).__name__ for m in clf.model_.head]
    assert kinds == ["Dropout", "Linear", "BatchNorm1d", "ReLU"] * 2 + ["Dropout", "Linear"]
    assert clf.model_.head[1].out_features == 16 and clf.model_.head[-1].out_features == 2
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] - 0.02
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))


@pytest.mark.parametrize(
    "head, error, match",
    [
        (lambda i, n: "not a module", TypeError, "must return a torch.nn.Module; got str"),
        (lambda i, n: nn.Linear(i, n + 1), ValueError, r"\(batch, 2\) logits.*\(2, 3\)"),
        ((16, 0), ValueError, "positive ints"),
        ((16, 2.5), ValueError, "positive ints"),
    ],
)
def test_bad_head_is_refused(tiny_params, toy_data, head, error, match):
    """Check that bad heads name the expected shape or the rule for hidden sizes."""
    X, y, _, _ = toy_data
    with pytest.raises(error, match=match):
        BertTextClassifier(**dict(tiny_params, head=head)).fit(X, y)


def test_head_param_type_is_validated(tiny_params):
    """Check that a head of the wrong type is a scikit-learn parameter error."""
    with pytest.raises(ValueError, match="'head' parameter"):
        BertTextClassifier(**dict(tiny_params, head=[16])).fit(["a", "b"], [0, 1])


def test_layer_decay_and_head_learning_rate_groups(tiny_model_dir):
    """Check per-layer rates: top layer lr, each lower layer times decay, head its own."""
    from skbert._pretrained import load_backbone

    module = _modeling.build_module(load_backbone(tiny_model_dir), 2)
    groups = _modeling.parameter_groups(module, 1e-3, 5e-2, 0.01, 0.5)
    rate_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    named = dict(module.named_parameters())
    assert rate_of[id(named["head.1.weight"])] == 5e-2
    assert rate_of[id(named["backbone.encoder.layer.1.attention.self.query.weight"])] == 1e-3
    assert rate_of[id(named["backbone.encoder.layer.0.output.dense.weight"])] == 5e-4
    assert rate_of[id(named["backbone.embeddings.word_embeddings.weight"])] == 2.5e-4
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    assert decay_of[id(named["backbone.embeddings.LayerNorm.weight"])] == 0.0
    assert len(rate_of) == sum(1 for _ in module.parameters())


def test_masked_lm_loss_decreases_and_checkpoint_loads(tiny_model_dir, tiny_params, toy_data,
                                                        tmp_path):
    """Check that MLM lowers its loss and its checkpoint fine-tunes in the classifier."""
    X, y, X_test, y_test = toy_data
    pre = MaskedLMPretrainer(tiny_model_dir, max_iter=8, learning_rate=2e-3, batch_size=16,
                             max_length=32, device="cpu", random_state=0).fit(X * 2)
    assert pre.n_iter_ == 8
    assert np.mean(pre.loss_curve_[-2:]) < pre.loss_curve_[0] - 0.3
    path = pre.save_pretrained(tmp_path / "domain-bert")
    assert (path / "config.json").exists()
    clf = BertTextClassifier(**dict(tiny_params, model_name_or_path=str(path))).fit(X, y)
    assert clf.score(X_test, y_test) > 0.8
    trained = pre.model_.base_model.encoder.layer[0].output.dense.weight
    loaded = clf.model_.backbone.encoder.layer[0].output.dense.weight
    assert not torch.equal(trained, _backbone_weights(tiny_model_dir)[
        "encoder.layer.0.output.dense.weight"])
    assert loaded.shape == trained.shape


def test_masked_lm_partial_fit_streams(tiny_model_dir, toy_data):
    """Check that partial_fit runs one pass per call and keeps its optimizer."""
    X, _, _, _ = toy_data
    pre = MaskedLMPretrainer(tiny_model_dir, max_length=32, device="cpu", random_state=0,
                             learning_rate=2e-3)
    pre.partial_fit(X[:60])
    optimizer = pre._trainer.state.optimizer
    pre.partial_fit(X[60:])
    assert pre.n_iter_ == 2 and len(pre.loss_curve_) == 2
    assert pre._trainer.state.optimizer is optimizer
    assert optimizer.state  # Adam moments carried over


def test_mask_tokens_follows_bert_recipe():
    """Check the 15% choice, 80/10/10 split, and that special tokens are never chosen."""
    from skbert._sources import mask_tokens

    ids = torch.randint(10, 1000, (400, 128))
    ids[:, 0] = 2
    masked, labels = mask_tokens(ids, torch.tensor([0, 2, 3]), 0.15, 4, 1000,
                                 torch.Generator().manual_seed(0))
    chosen = labels != -100
    assert abs(chosen.float().mean().item() - 0.15 * 127 / 128) < 0.01
    assert not chosen[:, 0].any()
    assert torch.equal(labels[chosen], ids[chosen])
    share_masked = (masked[chosen] == 4).float().mean().item()
    share_same = (masked[chosen] == ids[chosen]).float().mean().item()
    assert abs(share_masked - 0.8) < 0.02
    assert 0.09 < share_same < 0.12  # 10% kept, plus random draws that hit the same id
    assert torch.equal(masked[~chosen], ids[~chosen])
