"""Few-shot training (``few_shot``): the auto rule, the contrastive stage, the head, and
that the estimator stays a plain scikit-learn estimator."""

import json
import pickle
import shutil

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV
from sklearn.utils._param_validation import InvalidParameterError

from skbert import BertTextClassifier
from skbert._fewshot import (
    ContrastiveBatches,
    contrastive_loss,
    is_sentence_encoder,
    logistic_head,
    steps_per_pass,
    use_few_shot,
)

from .conftest import make_multilabel_texts, make_texts


@pytest.fixture(scope="module")
def few_params(tiny_params):
    """The tiny BERT's parameters with one short contrastive pass."""
    return dict(tiny_params, max_iter=1, batch_size=32)


@pytest.fixture(scope="module")
def few_data():
    """40 training texts (about 20 of each class) and 40 test texts."""
    X, y = make_texts(80, seed=3)
    return X[:40], y[:40], X[40:], y[40:]


@pytest.fixture(scope="module")
def few_fitted(few_params, few_data):
    """A classifier fitted on the few-shot path (do not mutate)."""
    X, y, _, _ = few_data
    return BertTextClassifier(**dict(few_params, max_iter=3), few_shot=True).fit(
        X, np.array(["neg", "pos"])[y])


@pytest.fixture(scope="module")
def sentence_model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny BERT as a sentence-transformers folder that mean-pools."""
    folder = tmp_path_factory.mktemp("tiny-st") / "model"
    shutil.copytree(tiny_model_dir, folder)
    (folder / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
    ]))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True}))
    return str(folder)


@pytest.mark.any_precision
@pytest.mark.parametrize("counts, encoder, expected", [
    ([8, 8], True, True), ([64, 500], True, True), ([65, 500], True, False),
    ([8, 8], False, False), ([8], True, False),
])
def test_use_few_shot_rule_follows_counts(counts, encoder, expected):
    """Check that the auto rule takes the few-shot path when the rarest class has at
    most 64 texts, and only for a sentence encoder."""
    assert use_few_shot(counts, sentence_encoder=encoder) is expected


@pytest.mark.any_precision
def test_is_sentence_encoder_reads_the_pooling(sentence_model_dir, tiny_model_dir, tmp_path):
    """Check that a mean-pooling sentence-transformers folder is recognised, and a plain
    BERT folder, a CLS-pooling one or a missing folder are not."""
    assert is_sentence_encoder(sentence_model_dir)
    assert not is_sentence_encoder(tiny_model_dir)
    assert not is_sentence_encoder(str(tmp_path / "missing"))
    cls = tmp_path / "cls"
    shutil.copytree(sentence_model_dir, cls)
    (cls / "1_Pooling" / "config.json").write_text(json.dumps({"pooling_mode_cls_token": True}))
    assert not is_sentence_encoder(str(cls))


@pytest.mark.any_precision
def test_contrastive_loss_values():
    """Check that the loss is 0 when same-class rows coincide and other-class rows are
    orthogonal, and weighs both kinds of pairs alike otherwise."""
    good = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    targets = torch.tensor([0, 0, 1])
    assert contrastive_loss(good, targets).item() == pytest.approx(0.0, abs=1e-6)
    bad = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    # same-class pair: cosine 0 (error 1); other-class pairs: cosines 1 and 0 (mean 0.5)
    assert contrastive_loss(bad, targets).item() == pytest.approx((1.0 + 0.5) / 2)


@pytest.mark.any_precision
def test_contrastive_batches_cover_rows():
    """Check that a pass has steps_per_pass batches of batch_size distinct rows, every
    row in about as many batches."""
    source = ContrastiveBatches((None, None, np.arange(11)), np.arange(10), np.arange(10) % 2,
                                pad_id=0, batch_size=4, device=torch.device("cpu"))
    batches = source.batches(np.random.default_rng(0))
    assert len(batches) == steps_per_pass(10, 4) == 20
    assert all(len(set(b)) == 4 for b in batches)
    counts = np.bincount(np.concatenate(batches), minlength=10)
    assert counts.max() - counts.min() <= 1


@pytest.mark.any_precision
@pytest.mark.parametrize("n_classes", [2, 3])
def test_logistic_head_matches_logistic_regression(n_classes):
    """Check that the folded linear head gives the probabilities of the regression on
    scaled features."""
    from scipy.special import softmax
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 5)) * 3.0
    y = np.arange(30) % n_classes
    weight, bias = logistic_head(X, y, n_classes)
    scale = np.linalg.norm(X, axis=1).mean()
    expected = LogisticRegression(max_iter=1000).fit(X / scale, y).predict_proba(X / scale)
    np.testing.assert_allclose(softmax(X @ weight.T + bias, axis=1), expected, atol=1e-4)


def test_few_shot_learns_and_reports(few_fitted, few_data):
    """Check that the few-shot path learns the toy task and records its contrastive
    pass."""
    _, _, X_test, y_test = few_data
    assert few_fitted.n_iter_ == 3 and len(few_fitted.loss_curve_) == 3
    assert few_fitted.loss_curve_[-1] < few_fitted.loss_curve_[0]
    assert few_fitted.score(X_test, np.array(["neg", "pos"])[y_test]) >= 0.75


def test_few_shot_reproducible(few_params, few_data):
    """Check that the same random_state gives the same predictions."""
    X, y, X_test, _ = few_data
    first, again = (BertTextClassifier(**few_params, few_shot=True).fit(X[:20], y[:20])
                    for _ in range(2))
    np.testing.assert_array_equal(again.predict_proba(X_test), first.predict_proba(X_test))


@pytest.mark.any_precision
def test_auto_picks_the_path_from_counts_and_model(sentence_model_dir, few_params):
    """Check that "auto" takes the few-shot path for few texts per class on a sentence
    encoder, and fine-tunes as usual with more texts or a plain BERT."""
    X, y = make_texts(140, seed=4)
    auto = dict(few_params, model_name_or_path=sentence_model_dir, batch_size=64)
    clf = BertTextClassifier(**auto)
    assert clf._takes_few_shot(y[:20]) and not clf._takes_few_shot(y)
    assert not BertTextClassifier(**few_params)._takes_few_shot(y[:20])  # plain BERT
    assert not clf.set_params(pooling="cls")._takes_few_shot(y[:20])


def test_auto_on_plain_bert_is_the_usual_fit(few_params, few_data):
    """Check that a fit "auto" does not send to the few-shot path equals few_shot=False's."""
    X, y, X_test, _ = few_data
    auto = BertTextClassifier(**few_params).fit(X, y)
    off = BertTextClassifier(**few_params, few_shot=False).fit(X, y)
    np.testing.assert_array_equal(auto.predict_proba(X_test), off.predict_proba(X_test))


@pytest.mark.any_precision
def test_few_shot_clone_and_grid_search(few_params, few_data):
    """Check that few_shot is a parameter that clone and GridSearchCV set."""
    X, y, _, _ = few_data
    clf = BertTextClassifier(**few_params, few_shot=True)
    assert clone(clf).get_params()["few_shot"] is True
    search = GridSearchCV(clf, {"few_shot": [True, False]}, cv=2).fit(X[:12], y[:12])
    assert {p["few_shot"] for p in search.cv_results_["params"]} == {True, False}


def test_few_shot_persists(few_fitted, few_data, tmp_path):
    """Check that pickle, skops and save_pretrained keep the parameter and predictions."""
    import skops.io as sio

    from skbert import TRUSTED_TYPES

    _, _, X_test, _ = few_data
    expected = few_fitted.predict_proba(X_test)
    loaded = pickle.loads(pickle.dumps(few_fitted))
    path = tmp_path / "m.skops"
    sio.dump(few_fitted, path)
    for other in (loaded, sio.load(path, trusted=TRUSTED_TYPES)):
        assert other.few_shot is True
        np.testing.assert_allclose(other.predict_proba(X_test), expected, atol=1e-6)
    few_fitted.save_pretrained(tmp_path / "folder")
    again = BertTextClassifier.from_pretrained(tmp_path / "folder")
    assert again.few_shot is True
    np.testing.assert_allclose(again.predict_proba(X_test), expected, atol=1e-5)


@pytest.mark.any_precision
@pytest.mark.parametrize("value", ["yes", 1, None])
def test_few_shot_bad_values(few_params, few_data, value):
    """Check that few_shot other than "auto", True or False is refused by name."""
    X, y, _, _ = few_data
    with pytest.raises(InvalidParameterError, match="few_shot"):
        BertTextClassifier(**few_params, few_shot=value).fit(X, y)


@pytest.mark.any_precision
@pytest.mark.parametrize("setting, match", [
    ({"early_stopping": True}, "early_stopping=True"),
    ({"freeze_base": True}, "freeze_base=True"),
    ({"head": (8,)}, r"head=\(8,\)"),
])
def test_few_shot_true_refuses_what_it_cannot_train(few_params, few_data, setting, match):
    """Check that few_shot=True names the setting it cannot train with, and the fix."""
    X, y, _, _ = few_data
    with pytest.raises(ValueError, match=f"few_shot=True cannot train with {match}.*few_shot="):
        BertTextClassifier(**few_params, **setting, few_shot=True).fit(X, y)


@pytest.mark.any_precision
def test_few_shot_true_refuses_multilabel(few_params):
    """Check that few_shot=True refuses multi-label targets."""
    X, Y = make_multilabel_texts(20)
    with pytest.raises(ValueError, match="few_shot=True cannot train with multi-label"):
        BertTextClassifier(**few_params, few_shot=True).fit(X, Y)


@pytest.mark.any_precision
def test_partial_fit_takes_the_usual_path(few_params, few_data):
    """Check that partial_fit ignores few_shot (one pass of fine-tuning on the chunk)."""
    X, y, _, _ = few_data
    clf = BertTextClassifier(**few_params, few_shot=True).partial_fit(X[:16], y[:16],
                                                                     classes=[0, 1])
    assert clf.n_iter_ == 1 and len(clf.loss_curve_) == 1
