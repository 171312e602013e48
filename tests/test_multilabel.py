"""Multi-label targets: a 2-D 0/1 indicator y, sigmoid outputs, per-label thresholds."""

import pickle
import warnings

import numpy as np
import pytest
import skops.io as sio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.special import expit
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score
from sklearn.utils import check_random_state

from skbert import BertTextClassifier
from skbert._classifier import TRUSTED_TYPES, mean_average_precision, tuned_thresholds
from skbert._sources import Criterion, batch_loss, pos_weights, validation_split

from .conftest import _NEGATIVE, _NEUTRAL, _POSITIVE, make_multilabel_texts


@pytest.fixture(scope="module")
def multilabel_data():
    X, Y = make_multilabel_texts(300, seed=1)
    X_test, Y_test = make_multilabel_texts(100, seed=2)
    return X, Y, X_test, Y_test


@pytest.fixture(scope="module")
def multilabel_fitted(tiny_params, multilabel_data):
    X, Y, _, _ = multilabel_data
    params = dict(tiny_params, inference_dtype="float32")
    return BertTextClassifier(**params).fit(X, Y)


def test_multilabel_fit_learns_each_label(multilabel_fitted, multilabel_data):
    """Check that an indicator y trains one sigmoid output per label that learns it."""
    clf = multilabel_fitted
    _, _, X_test, Y_test = multilabel_data
    assert clf.multilabel_ and clf.classes_.tolist() == [0, 1, 2]
    np.testing.assert_array_equal(clf.thresholds_, [0.5, 0.5, 0.5])
    pred = clf.predict(X_test)
    assert pred.shape == Y_test.shape and set(np.unique(pred)) <= {0, 1}
    assert f1_score(Y_test, pred, average=None).min() >= 0.9
    assert clf.score(X_test, Y_test) >= 0.85  # subset accuracy: every label right
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] / 5


def test_multilabel_outputs_agree(multilabel_fitted, multilabel_data):
    """Check that proba is the sigmoid of decision_function, independent per label (rows
    need not sum to 1), that log proba matches, and predict is proba >= thresholds_."""
    clf = multilabel_fitted
    X_test = multilabel_data[2]
    scores = clf.decision_function(X_test)
    proba = clf.predict_proba(X_test)
    assert scores.shape == proba.shape == (len(X_test), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba, expit(scores), rtol=1e-12)
    np.testing.assert_allclose(np.exp(clf.predict_log_proba(X_test)), proba, rtol=1e-9)
    assert np.abs(proba.sum(1) - 1).max() > 0.3  # not a softmax
    np.testing.assert_array_equal(clf.predict(X_test), (proba >= 0.5).astype(int))
    chunks = list(clf.iter_predict_proba(X_test, chunk_size=33))
    np.testing.assert_allclose(np.concatenate(chunks), proba, atol=1e-6)


def test_tuned_thresholds_are_used_by_predict(tiny_params, multilabel_data):
    """Check that tune_thresholds holds out validation_fraction, sets thresholds_ that
    differ from 0.5, and that predict uses them."""
    X, Y, X_test, _ = multilabel_data
    params = dict(tiny_params, inference_dtype="float32", max_iter=2, tune_thresholds=True,
                  validation_fraction=0.3)
    clf = BertTextClassifier(**params).fit(X, Y)
    assert clf.thresholds_.shape == (3,) and np.all((clf.thresholds_ > 0) &
                                                    (clf.thresholds_ < 1))
    assert np.any(clf.thresholds_ != 0.5)
    assert clf.n_samples_seen_ == 2 * (len(X) - round(0.3 * len(X)))  # trained on 70%
    proba = clf.predict_proba(X_test)
    np.testing.assert_array_equal(clf.predict(X_test),
                                  (proba >= clf.thresholds_).astype(int))


def test_partial_fit_says_when_it_drops_tuned_thresholds(tiny_params, multilabel_data):
    """Check that the first partial_fit chunk after a fit with tuned thresholds warns,
    naming thresholds_, that they return to 0.5 (it dropped them silently), and that
    later chunks (thresholds already 0.5) and untuned models do not warn."""
    X, Y, _, _ = multilabel_data
    params = dict(tiny_params, inference_dtype="float32", max_iter=1, tune_thresholds=True,
                  validation_fraction=0.3)
    clf = BertTextClassifier(**params).fit(X, Y)
    assert np.any(clf.thresholds_ != 0.5)
    clf.set_params(tune_thresholds=False)
    with pytest.warns(UserWarning, match=r"thresholds_ were tuned .* return to 0\.5") as seen:
        clf.partial_fit(X[:20], Y[:20])
    assert seen[0].filename == __file__
    np.testing.assert_array_equal(clf.thresholds_, [0.5, 0.5, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        clf.partial_fit(X[20:40], Y[20:40])


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 3)),
              elements=st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0])),
       st.data())
def test_tuned_threshold_maximises_f1(proba, data):
    """Check that each tuned threshold reaches the best F1 of any threshold (brute force
    over every distinct cut), for probabilities with ties."""
    Y = data.draw(arrays(np.int64, proba.shape, elements=st.integers(0, 1)))
    Y[0] = 1  # every label has a positive
    thresholds = tuned_thresholds(proba, Y)
    for j in range(proba.shape[1]):
        cuts = np.append(np.unique(proba[:, j]), 1.1)
        best = max(f1_score(Y[:, j], proba[:, j] >= c, zero_division=0.0) for c in cuts)
        got = f1_score(Y[:, j], proba[:, j] >= thresholds[j], zero_division=0.0)
        assert got == pytest.approx(best, abs=1e-12)


def test_pos_weight_from_class_weight():
    """Check "balanced" (negatives over positives per label), dicts of label columns, and
    that the loss weighs positives by them as binary cross-entropy's pos_weight."""
    Y = np.array([[1, 0], [0, 0], [0, 1], [0, 1]], dtype=np.float32)
    np.testing.assert_allclose(pos_weights("balanced", Y), [3.0, 1.0])
    np.testing.assert_allclose(pos_weights({1: 4.0}, Y), [1.0, 4.0])
    assert pos_weights(None, Y) is None
    with pytest.raises(ValueError, match=r"keys \['joy', 2\] that are not label columns"):
        pos_weights({"joy": 1.0, 2: 1.0}, Y)
    logits = torch.tensor([[0.3, -1.0], [2.0, 0.5], [-0.2, 0.1], [1.0, 1.0]])
    weight = torch.tensor([3.0, 1.0])
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, torch.from_numpy(Y), pos_weight=weight, reduction="none").mean(1).sum() / 4
    got = batch_loss(logits, torch.from_numpy(Y), None, 4, Criterion("multilabel", weight))
    assert got.item() == pytest.approx(expected.item())
    unweighted = batch_loss(logits, torch.from_numpy(Y), None, 4, Criterion("multilabel"))
    assert got.item() > unweighted.item()


def test_balanced_class_weight_raises_a_rare_label(tiny_params):
    """Check that class_weight="balanced" lifts the probabilities of a rare label."""
    X, Y = make_multilabel_texts(200, seed=3)
    Y[:, 2] = 0
    Y[:6, 2] = 1  # a rare label
    params = dict(tiny_params, max_iter=2, inference_dtype="float32")
    plain = BertTextClassifier(**params).fit(X, Y)
    balanced = BertTextClassifier(**params, class_weight="balanced").fit(X, Y)
    assert balanced.predict_proba(X)[:, 2].mean() > 2 * plain.predict_proba(X)[:, 2].mean()


@pytest.mark.parametrize(
    "Y, match",
    [
        (lambda Y: np.c_[Y[:, :2], np.zeros(len(Y))], "Label column 2 of y is 0 for every"),
        (lambda Y: np.c_[Y[:, :2], np.ones(len(Y))], "Label column 2 of y is 1 for every"),
        (lambda Y: np.where(np.arange(Y.size).reshape(Y.shape) == 7, np.nan, Y),
         r"only 0 and 1; got nan at row 2, column 1"),
        (lambda Y: np.where(np.arange(Y.size).reshape(Y.shape) == 13, 2, Y),
         r"only 0 and 1; got 2.0 at row 4, column 1"),
        (lambda Y: Y[:-1], "inconsistent lengths: 300 texts and 299 rows"),
        (lambda Y: np.array([["joy", "anger"]] * len(Y)), "MultiLabelBinarizer"),
        (lambda Y: [("joy", "anger")] * len(Y), "MultiLabelBinarizer"),
    ],
    ids=["zeros-column", "ones-column", "nan", "two", "length", "names", "tuples"],
)
def test_multilabel_bad_y_is_named(tiny_params, multilabel_data, Y, match):
    """Check that a bad indicator y gets an error naming the row, column or fix."""
    X, Y0 = multilabel_data[:2]
    with pytest.raises(ValueError, match=match):
        BertTextClassifier(**tiny_params).fit(X, Y(Y0.astype(float)))


def test_tune_thresholds_needs_multilabel_and_fit(tiny_params, multilabel_data):
    """Check that tune_thresholds is refused for class labels and for partial_fit."""
    X, Y = multilabel_data[:2]
    with pytest.raises(ValueError, match="tune_thresholds=True applies to multi-label"):
        BertTextClassifier(**tiny_params, tune_thresholds=True).fit(X, Y[:, 0])
    with pytest.raises(ValueError, match="partial_fit does not support tune_thresholds"):
        BertTextClassifier(**tiny_params, tune_thresholds=True).partial_fit(X, Y)


def test_multilabel_stream(tiny_params, multilabel_data):
    """Check partial_fit over multi-label chunks: classes is not needed, a chunk may lack
    a label, and a chunk of class labels or other columns is refused."""
    X, Y, X_test, Y_test = multilabel_data
    clf = BertTextClassifier(**dict(tiny_params, inference_dtype="float32", max_steps=130))
    first = Y[:50].copy()
    first[:, 2] = 0  # this chunk lacks label 2
    clf.partial_fit(X[:50], first)
    for _ in range(6):
        for start in range(50, 300, 50):
            clf.partial_fit(X[start:start + 50], Y[start:start + 50])
    assert clf.multilabel_ and clf.n_iter_ == 31
    assert f1_score(Y_test, clf.predict(X_test), average=None).min() >= 0.9
    with pytest.raises(ValueError, match="trained on multi-label targets; partial_fit got "
                                         "1-D class labels"):
        clf.partial_fit(X[:10], Y[:10, 0])
    with pytest.raises(ValueError, match="y has 2 label columns, but this stream has 3"):
        clf.partial_fit(X[:10], Y[:10, :2])
    with pytest.raises(ValueError, match="classes has 2 entries, but the multi-label y "
                                         "has 3"):
        BertTextClassifier(**tiny_params).partial_fit(X[:10], Y[:10], classes=[0, 1])


@pytest.mark.parametrize("how", ["pickle", "skops"])
def test_multilabel_round_trip(multilabel_fitted, multilabel_data, tmp_path, how):
    """Check that pickle and skops (with the one trusted type) keep the multi-label
    model, its thresholds and its predictions."""
    clf = multilabel_fitted
    clf.thresholds_ = np.array([0.3, 0.5, 0.7])
    try:
        if how == "pickle":
            loaded = pickle.loads(pickle.dumps(clf))
        else:
            sio.dump(clf, tmp_path / "m.skops")
            loaded = sio.load(tmp_path / "m.skops", trusted=TRUSTED_TYPES)
    finally:
        clf.thresholds_ = np.full(3, 0.5)
    X_test = multilabel_data[2]
    assert loaded.multilabel_
    np.testing.assert_array_equal(loaded.thresholds_, [0.3, 0.5, 0.7])
    np.testing.assert_allclose(loaded.predict_proba(X_test), clf.predict_proba(X_test),
                               atol=1e-6)
    proba = loaded.predict_proba(X_test)
    np.testing.assert_array_equal(loaded.predict(X_test),
                                  (proba >= [0.3, 0.5, 0.7]).astype(int))


def test_multilabel_checkpoint_resumes(tiny_params, multilabel_data, tmp_path):
    """Check that a multi-label stream resumes from its checkpoint like it continues."""
    X, Y = multilabel_data[:2]
    params = dict(tiny_params, inference_dtype="float32", checkpoint_dir=str(tmp_path / "a"))
    whole = BertTextClassifier(**params).partial_fit(X[:100], Y[:100])
    resumed = BertTextClassifier.resume(tmp_path / "a")
    resumed.set_params(checkpoint_dir=str(tmp_path / "b"))
    assert resumed.multilabel_ and resumed.classes_.tolist() == [0, 1, 2]
    whole.partial_fit(X[100:200], Y[100:200])
    resumed.partial_fit(X[100:200], Y[100:200])
    np.testing.assert_allclose(resumed.predict_proba(X[:50]), whole.predict_proba(X[:50]),
                               atol=1e-6)


def test_multilabel_model_selection(tiny_params, multilabel_data):
    """Check GridSearchCV with KFold and a multi-label metric, and cross_val_score."""
    X, Y = multilabel_data[:2]
    params = dict(tiny_params, max_iter=3)
    search = GridSearchCV(BertTextClassifier(**params),
                          {"learning_rate": [1e-5, 5e-3]}, cv=KFold(2), scoring="f1_micro")
    search.fit(X, Y)
    assert search.best_params_ == {"learning_rate": 5e-3}
    assert search.best_estimator_.multilabel_
    scores = cross_val_score(BertTextClassifier(**tiny_params), X, Y, cv=KFold(2))
    assert scores.shape == (2,) and scores.min() > 0.5  # subset accuracy; chance is ~0.1


def test_list_of_rows_is_an_indicator(tiny_params, multilabel_data):
    """Check that a list of equal-length 0/1 rows reads as an indicator, as in NumPy."""
    X, Y = multilabel_data[:2]
    params = dict(tiny_params, max_iter=1)
    clf = BertTextClassifier(**params).fit(X[:60], Y[:60].tolist())
    assert clf.multilabel_ and clf.predict(X[:5]).shape == (5, 3)


def test_label_missing_from_the_held_out_part_keeps_one_half(tiny_params, multilabel_data):
    """Bug: a rare label absent from the held-out split made tune_thresholds refuse to
    fit (GoEmotions' grief in 2,000 texts); it now keeps 0.5 for that label and warns."""
    X, Y = multilabel_data[:2]
    Y = Y.copy()
    Y[:, 2] = 0
    Y[:2, 2] = 1  # two positives: at most these can be held out
    params = dict(tiny_params, max_iter=1, tune_thresholds=True, validation_fraction=0.2)
    for random_state in range(20):  # a split that holds out neither positive
        clf = BertTextClassifier(**dict(params, random_state=random_state))
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))  # as fit
        _, val_rows = validation_split(Y, seed, 0.2, why="tune_thresholds",
                                       stratify=False)
        if not Y[val_rows, 2].any():
            break
    with pytest.warns(UserWarning, match=r"no text with label column\(s\) \[2\]"):
        clf.fit(X, Y)
    assert clf.thresholds_[2] == 0.5
    np.testing.assert_array_equal(tuned_thresholds(np.full((3, 1), 0.9), np.zeros((3, 1))),
                                  [0.5])


def _sparse_labels(n, seed):
    """Texts with four rare labels (each on about 8% of the texts), each shown by a word
    of its own group: most texts have no label at all."""
    rng = np.random.default_rng(seed)
    groups = [_POSITIVE[:4], _POSITIVE[4:], _NEGATIVE[:4], _NEGATIVE[4:]]
    Y = (rng.random((n, 4)) < 0.08).astype(np.int64)
    texts = []
    for row in Y:
        words = list(rng.choice(_NEUTRAL, size=rng.integers(2, 8)))
        for column in np.flatnonzero(row):
            words.insert(int(rng.integers(0, len(words) + 1)), str(rng.choice(groups[column])))
        texts.append(" ".join(words))
    return texts, Y


def test_multilabel_early_stopping_scores_without_a_threshold(tiny_params):
    """Check that multi-label early stopping scores the mean average precision, which
    rises while the rare labels are learned, so it does not stop at its first chance:
    subset accuracy at 0.5 stays flat (no label predicted yet) and stopped after
    n_iter_no_change + 1 epochs."""
    X, Y = _sparse_labels(200, seed=0)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=6, early_stopping=True,
                                    n_iter_no_change=2, validation_fraction=0.2)).fit(X, Y)
    scores = clf.validation_scores_
    assert len(set(scores)) > 1 and clf.best_validation_score_ == max(scores)
    assert clf.n_iter_ > 3 and max(scores) > scores[0] + 0.1
    assert clf.calibration_proba_.shape == (40, 4)  # the hold-out calibrates too


@pytest.mark.any_precision
def test_mean_average_precision_moves_where_subset_accuracy_is_flat():
    """Check the validation score of multi-label early stopping: threshold-free (ranking
    better without crossing 0.5 raises it), and minus the log-loss without positives."""
    Y = np.array([[1, 0], [0, 0], [0, 1], [0, 0]])
    worse = np.log(np.array([[0.2, 0.3], [0.3, 0.1], [0.1, 0.2], [0.1, 0.3]]))
    better = np.log(np.array([[0.4, 0.1], [0.1, 0.1], [0.1, 0.4], [0.1, 0.1]]))
    subset = Criterion("multilabel").score
    assert subset(worse, Y) == subset(better, Y) == 0.5
    assert mean_average_precision(better, Y) == 1.0 > mean_average_precision(worse, Y)
    none = np.zeros((4, 2), dtype=np.int64)
    assert mean_average_precision(np.full((4, 2), -3.0), none) > mean_average_precision(
        np.zeros((4, 2)), none)


@pytest.fixture(scope="module")
def guaranteed(multilabel_fitted, multilabel_data):
    """The multi-label model calibrated on 60 held-out texts (a copy)."""
    clf = pickle.loads(pickle.dumps(multilabel_fitted))
    _, _, X_test, Y_test = multilabel_data
    return clf.calibrate_sets(X_test[:60], Y_test[:60])


def test_guarantee_thresholds_precision_and_recall(guaranteed, multilabel_data):
    """Check that thresholds for a precision level replace thresholds_ (used by predict)
    and keep the precision on new texts, that recall thresholds keep recall, and that a
    stricter level moves every threshold the right way."""
    from sklearn.metrics import precision_score, recall_score

    clf = pickle.loads(pickle.dumps(guaranteed))
    _, _, X_test, Y_test = multilabel_data
    X_new, Y_new = X_test[60:], Y_test[60:]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 60 texts suffice for every label
        assert clf.guarantee_thresholds(precision=0.7, delta=0.2) is clf
    precise = clf.thresholds_.copy()
    assert precise.shape == (3,) and ((precise >= 0) & (precise < 1)).all()
    pred = clf.predict(X_new)
    np.testing.assert_array_equal(pred, clf.predict_proba(X_new) >= precise)
    assert precision_score(Y_new, pred, average=None, zero_division=1).min() >= 0.7
    clf.guarantee_thresholds(recall=0.8)
    assert recall_score(Y_new, clf.predict(X_new), average=None).min() >= 0.8
    recall_80 = clf.thresholds_.copy()
    clf.guarantee_thresholds(recall=0.95, delta=0.2)
    assert (clf.thresholds_ <= recall_80).all()


@pytest.mark.any_precision
def test_guarantee_thresholds_refusals(guaranteed, multilabel_fitted, multilabel_data):
    """Check the errors and warnings of guarantee_thresholds and of the set methods on a
    multi-label model."""
    clf = pickle.loads(pickle.dumps(guaranteed))
    X_test = multilabel_data[2]
    with pytest.raises(ValueError, match="Give exactly one of precision and recall"):
        clf.guarantee_thresholds()
    with pytest.raises(ValueError, match="Give exactly one of precision and recall"):
        clf.guarantee_thresholds(precision=0.9, recall=0.9)
    with pytest.raises(ValueError, match="precision must be a float strictly between 0 and 1"):
        clf.guarantee_thresholds(precision=1.5)
    with pytest.raises(ValueError, match="predict_set applies to single-label models"):
        clf.predict_set(X_test)
    with pytest.raises(ValueError, match="predict_or_abstain applies to single-label"):
        clf.predict_or_abstain(X_test)
    with pytest.raises(ValueError, match=r"needs a calibration .* call calibrate_sets"):
        multilabel_fitted.guarantee_thresholds(precision=0.9)
    with pytest.warns(UserWarning, match=r"label column\(s\) \[0, 1, 2\] cannot be shown to "
                                         r"keep precision=0.999"):
        clf.guarantee_thresholds(precision=0.999, delta=0.01)
    np.testing.assert_array_equal(clf.thresholds_, [1.0, 1.0, 1.0])
    clf.calibration_y_ = clf.calibration_y_.copy()
    clf.calibration_y_[:, 2] = 0
    before = clf.thresholds_[2]
    with pytest.warns(UserWarning, match=r"column\(s\) \[2\] .* no calibration positive"):
        clf.guarantee_thresholds(recall=0.5)
    assert clf.thresholds_[2] == before
