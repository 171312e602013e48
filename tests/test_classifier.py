"""Behaviour of BertTextClassifier on a tiny offline BERT."""

import numpy as np
import pandas as pd
import pytest
from sklearn.utils import check_random_state

from skbert import BertTextClassifier, _sources
from skbert._tokenization import encode

from .conftest import make_texts


def test_fit_learns_toy_task(fitted, toy_data):
    """Check that fitting the tiny BERT learns the toy task well above chance."""
    _, _, X_test, y_test = toy_data
    labels = np.array(["neg", "pos"])[y_test]
    assert fitted.score(X_test, labels) >= 0.9
    assert fitted.n_iter_ == 8
    assert len(fitted.loss_curve_) == 8
    assert fitted.loss_curve_[-1] < fitted.loss_curve_[0]


def test_predict_proba_rows_sum_to_one_in_classes_order(fitted, toy_data):
    """Check that predict_proba is float64, sums to 1 and predict is classes_[argmax]."""
    _, _, X_test, _ = toy_data
    proba = fitted.predict_proba(X_test)
    assert proba.dtype == np.float64
    assert proba.shape == (len(X_test), 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(fitted.predict(X_test), fitted.classes_[proba.argmax(1)])
    np.testing.assert_allclose(np.exp(fitted.predict_log_proba(X_test)), proba, rtol=1e-10)
    assert list(fitted.classes_) == ["neg", "pos"]


def test_predict_proba_order_and_subset_invariant(fitted, toy_data):
    """Check that a text's probabilities do not depend on its neighbours or order."""
    _, _, X_test, _ = toy_data
    proba = fitted.predict_proba(X_test)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(
        fitted.predict_proba([X_test[i] for i in perm]), proba[perm], atol=1e-5
    )
    np.testing.assert_allclose(fitted.predict_proba(X_test[:3]), proba[:3], atol=1e-5)
    np.testing.assert_allclose(fitted.predict_proba([X_test[7]]), proba[7:8], atol=1e-5)


def test_fit_reproducible_with_random_state(tiny_params, toy_data):
    """Check that the same random_state on CPU gives identical predictions."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=2)
    a = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    b = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)
    np.testing.assert_array_equal(a, b)
    c = BertTextClassifier(**dict(params, random_state=1)).fit(X, y).predict_proba(X_test)
    assert not np.allclose(a, c)


def test_pandas_and_array_inputs(fitted, toy_data):
    """Check that lists, tuples, Series, one-column DataFrames and arrays agree."""
    _, _, X_test, _ = toy_data
    expected = fitted.predict_proba(X_test)
    for X in (
        tuple(X_test),
        np.array(X_test, dtype=object),
        pd.Series(X_test, index=np.arange(len(X_test)) * 3 + 5),
        pd.DataFrame({"text": X_test}),
        np.array(X_test)[:, None],
    ):
        np.testing.assert_allclose(fitted.predict_proba(X), expected, atol=1e-6)


@pytest.mark.parametrize(
    "labels",
    [
        np.array([3, 11]),
        np.array([True, False]),
        np.array(["spam", "ham"], dtype=object),
    ],
)
def test_any_hashable_labels(tiny_params, toy_data, labels):
    """Check that non-contiguous ints, bools and object strings round-trip."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, labels[y])
    assert set(clf.predict(X_test)) <= set(labels.tolist())
    np.testing.assert_array_equal(clf.classes_, np.unique(labels))


def test_multiclass(tiny_params):
    """Check that three classes are learned and proba has three columns."""
    X, y = make_texts(240, seed=3, n_classes=3)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=10)).fit(X[:180], y[:180])
    assert clf.predict_proba(X[180:]).shape == (60, 3)
    assert clf.score(X[180:], y[180:]) > 0.8


def test_text_pairs_use_second_segment(tiny_params):
    """Check that (first, second) pairs learn a label carried by the second text only."""
    X, y = make_texts(200, seed=4)
    filler, _ = make_texts(200, seed=5)
    pairs = list(zip(filler, X, strict=True))
    clf = BertTextClassifier(**tiny_params).fit(pairs[:140], y[:140])
    assert clf.score(pairs[140:], y[140:]) > 0.85
    frame = pd.DataFrame({"a": filler[140:], "b": X[140:]})
    np.testing.assert_allclose(clf.predict_proba(frame), clf.predict_proba(pairs[140:]), atol=1e-6)
    with pytest.raises(ValueError, match="fitted on text pairs"):
        clf.predict(X[:3])


def test_encode_pairs_matches_tokenizer(fitted):
    """Check that flat encoding equals the tokenizer's own ids, pairs with segments."""
    tok = fitted.tokenizer_
    texts = [("good film", "bad plot and acting"), ("the", "")]
    ids, types, offsets = encode(tok, texts, max_length=32)[:3]
    ref = tok([a for a, _ in texts], [b for _, b in texts])
    for i in range(len(texts)):
        np.testing.assert_array_equal(ids[offsets[i] : offsets[i + 1]], ref["input_ids"][i])
        np.testing.assert_array_equal(
            types[offsets[i] : offsets[i + 1]], ref["token_type_ids"][i]
        )
    assert types[offsets[0] : offsets[1]].max() == 1
    ids, types, offsets = encode(tok, ["bad " * 100], max_length=10)[:3]
    assert types is None and offsets[-1] == 10 and ids[-1] == tok.sep_token_id


def test_early_stopping_restores_best_weights(tiny_params, toy_data):
    """Check that early stopping records scores, stops, and keeps the best epoch."""
    X, y, _, _ = toy_data
    params = dict(tiny_params, max_iter=30, early_stopping=True, validation_fraction=0.25,
                  n_iter_no_change=2)
    clf = BertTextClassifier(**params).fit(X, y)
    scores = clf.validation_scores_
    assert len(scores) == clf.n_iter_ < 30
    assert clf.best_validation_score_ == max(scores)
    # Stopped n_iter_no_change epochs after the first best epoch.
    assert clf.n_iter_ == scores.index(max(scores)) + 1 + 2
    # The kept weights are those of the best epoch: re-score the held-out rows.
    seed = check_random_state(0).randint(np.iinfo(np.int32).max)
    _, val_rows = _sources.validation_split(y, seed, clf.validation_fraction,
                                           why="early_stopping", stratify=True)
    held_out = clf.score([X[i] for i in val_rows], y[val_rows])
    assert held_out == pytest.approx(clf.best_validation_score_)
    # Refitting without early stopping leaves no scores of the earlier fit behind.
    clf.set_params(early_stopping=False, max_iter=1).fit(X, y)
    assert not hasattr(clf, "validation_scores_")
    assert not hasattr(clf, "best_validation_score_")


def test_early_stopping_needs_room_for_every_class(tiny_params):
    """Check that too little data for a stratified split gives an actionable error."""
    with pytest.raises(ValueError, match="early_stopping could not hold out"):
        BertTextClassifier(**dict(tiny_params, early_stopping=True)).fit(
            ["a", "b", "c", "d"], [0, 1, 0, 1]
        )


def test_sample_and_class_weight_shift_predictions(tiny_params, toy_data):
    """Check that weighting one class up raises its predicted share."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=1, learning_rate=1e-3)
    base = BertTextClassifier(**params).fit(X, y).predict_proba(X_test)[:, 1].mean()
    heavy = BertTextClassifier(**dict(params, class_weight={1: 20.0})).fit(X, y)
    weighted = BertTextClassifier(**params).fit(X, y, sample_weight=np.where(y == 1, 20.0, 1.0))
    assert heavy.predict_proba(X_test)[:, 1].mean() > base + 0.05
    np.testing.assert_allclose(
        weighted.predict_proba(X_test), heavy.predict_proba(X_test), atol=1e-5
    )
    balanced = BertTextClassifier(**dict(params, class_weight="balanced")).fit(X, y)
    assert np.isfinite(balanced.loss_curve_).all()
