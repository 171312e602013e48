"""Answers with a guarantee: prediction sets, abstention and their calibration."""

import pickle
import warnings

import numpy as np
import pytest
import skops.io as sio

from skbert import BertTextClassifier
from skbert._classifier import TRUSTED_TYPES
from skbert._conformal import (
    GRID,
    abstention_rule,
    conformal_quantile,
    lac_scores,
    min_calibration_size,
    prediction_sets,
    recall_threshold,
    selective_threshold,
)

from .conftest import DATA_DIR, make_texts

LABELS = np.array(["neg", "pos", "so-so"])


def _calibrated_draws(rng, n, n_classes=3, concentration=0.5):
    """Probabilities of a calibrated model, and labels drawn from them."""
    proba = rng.dirichlet(np.full(n_classes, concentration), size=n)
    y = (rng.random((n, 1)) > proba.cumsum(1)).sum(1).clip(max=n_classes - 1)
    return proba, y


@pytest.fixture(scope="module")
def three_class():
    X, y = make_texts(300, seed=3, n_classes=3)
    return X[:200], LABELS[y[:200]], X[200:], LABELS[y[200:]]


@pytest.fixture(scope="module")
def calibrated(tiny_params, three_class):
    """A 3-class model fitted with early stopping, which calibrates on its hold-out."""
    X, y, _, _ = three_class
    params = dict(tiny_params, max_iter=4, early_stopping=True, validation_fraction=0.3,
                  n_iter_no_change=4)
    return BertTextClassifier(**params).fit(X, y)


# ------------------------------------------------------------- the pure functions
@pytest.mark.any_precision
def test_conformal_quantile_is_the_finite_sample_order_statistic():
    """Check that the quantile is the ceil((n + 1) * confidence)-th smallest score and
    that too few scores for the confidence are refused, naming how many are needed."""
    scores = np.arange(19, -1, -1) / 20  # 20 scores, unsorted
    assert conformal_quantile(scores, 0.9) == np.sort(scores)[19 - 1]  # ceil(21 * .9) = 19
    assert conformal_quantile(scores, 0.5) == np.sort(scores)[11 - 1]
    assert min_calibration_size(0.9) == 9 and min_calibration_size(0.95) == 19
    conformal_quantile(np.zeros(9), 0.9)
    with pytest.raises(ValueError, match=r"confidence=0.95 needs at least 19 calibration "
                                         r"texts .* holds 18\. Calibrate on more texts"):
        conformal_quantile(np.zeros(18), 0.95)


@pytest.mark.any_precision
def test_prediction_sets_cover_exchangeable_texts():
    """Check the guarantee: over many calibration draws of a calibrated model, the sets
    hold the true class at least `confidence` of the time, and at most 1 / (n + 1) more."""
    rng = np.random.default_rng(0)
    n, confidence, covered = 50, 0.9, []
    for _ in range(400):
        proba, y = _calibrated_draws(rng, n + 200)
        q = conformal_quantile(lac_scores(proba[:n], y[:n]), confidence)
        sets = prediction_sets(proba[n:], q)
        covered.append(sets[np.arange(200), y[n:]].mean())
    assert confidence - 0.005 <= np.mean(covered) <= confidence + 1 / (n + 1) + 0.005
    assert sets.dtype == bool and sets.shape == (200, 3)


@pytest.mark.any_precision
def test_selective_threshold_bounds_the_error_of_answered_texts():
    """Check Learn then Test: the answered texts err at most max_error of the time, in
    all but about delta of the calibration draws, and an impossible target gives None."""
    assert (np.diff(GRID) > 0).all() and GRID[0] == 0 and GRID[-1] == 1  # tested in order
    rng = np.random.default_rng(1)
    max_error, delta, failures, answered = 0.1, 0.2, 0, []
    for _ in range(200):
        proba, y = _calibrated_draws(rng, 2500, concentration=0.2)
        t = abstention_rule(proba[:500], y[:500], max_error, delta)
        assert t is not None and t in GRID
        keep = proba[500:].max(1) >= t
        failures += (proba[500:].argmax(1)[keep] != y[500:][keep]).mean() > max_error
        answered.append(keep.mean())
    assert failures / 200 <= delta
    assert 0.3 < np.mean(answered) < 1  # it answers a good share, not everything
    proba, y = _calibrated_draws(rng, 30)
    assert selective_threshold(proba.max(1), np.zeros(30, bool), 0.05, 0.1) is None


@pytest.mark.any_precision
def test_recall_threshold_keeps_recall():
    """Check that the recall threshold keeps the recall asked for on new texts in all
    but about delta of the draws, is 0 without evidence, and rises with more evidence."""
    from scipy.stats import beta

    rng = np.random.default_rng(2)
    failures = 0
    for _ in range(200):
        positive = rng.random(300) < 0.3
        proba = np.where(positive, rng.beta(4, 2, 300), rng.beta(2, 4, 300))
        t = recall_threshold(proba, positive, 0.8, 0.1)
        failures += beta.sf(t, 4, 2) < 0.8  # the recall on all new texts
    assert failures / 200 <= 0.1
    assert recall_threshold(proba[:5], np.ones(5, bool), 0.9, 0.1) == 0.0
    flat = recall_threshold(np.full(200, 0.7), np.ones(200, bool), 0.9, 0.1)
    assert flat == GRID[GRID <= 0.7].max()  # the highest candidate that misses none


# ------------------------------------------------------------------ the estimator
@pytest.mark.any_precision
@pytest.mark.parametrize("method", ["calibrate_sets", "predict_set", "predict_or_abstain",
                                    "guarantee_thresholds"])
def test_unfitted_model_refuses_calibration_methods(method):
    """Check that the calibration methods of an unfitted model raise NotFittedError."""
    from sklearn.exceptions import NotFittedError

    args = {"calibrate_sets": (["a", "b"], [0, 1]), "guarantee_thresholds": ()}
    kwargs = {"guarantee_thresholds": {"precision": 0.9}}
    with pytest.raises(NotFittedError):
        getattr(BertTextClassifier(), method)(*args.get(method, (["a"],)),
                                              **kwargs.get(method, {}))


@pytest.mark.any_precision
def test_predict_set_needs_a_calibration(fitted, toy_data):
    """Check that a model with no calibration refuses, saying what to call."""
    assert not hasattr(fitted, "calibration_proba_")
    for method in (fitted.predict_set, fitted.predict_or_abstain):
        with pytest.raises(ValueError, match=r"needs a calibration on held-out texts, and "
                                             r"this BertTextClassifier has none: call "
                                             r"calibrate_sets\(X_cal, y_cal\)"):
            method(toy_data[2])


def test_fit_with_early_stopping_calibrates_predict_set(calibrated, three_class):
    """Check that early stopping's hold-out calibrates the sets: aligned with classes_,
    nested as the confidence grows, covering the test texts, singletons mostly right."""
    clf = calibrated
    _, _, X_test, y_test = three_class
    assert clf.calibration_proba_.shape == (60, 3) and clf.calibration_y_.shape == (60,)
    assert clf.calibration_y_.dtype == np.int64
    sets = clf.predict_set(X_test, confidence=0.9)
    assert sets.shape == (100, 3) and sets.dtype == bool
    truth = np.searchsorted(clf.classes_, y_test)
    assert sets[np.arange(100), truth].mean() >= 0.8
    assert (sets <= clf.predict_set(X_test, confidence=0.97)).all()
    assert (clf.predict_set(X_test, confidence=0.5) <= sets).all()
    with pytest.raises(ValueError, match="needs at least 99 calibration texts"):
        clf.predict_set(X_test, confidence=0.99)
    with pytest.raises(ValueError, match="confidence must be a float strictly between 0 "
                                         "and 1; got 90"):
        clf.predict_set(X_test, confidence=90)


@pytest.mark.any_precision
def test_calibrate_sets_replaces_the_calibration(calibrated, three_class):
    """Check calibrate_sets on given texts (the sets then follow them), that it returns
    self and refuses labels the model does not have."""
    clf = pickle.loads(pickle.dumps(calibrated))
    _, _, X_test, y_test = three_class
    assert clf.calibrate_sets(X_test[:50], y_test[:50]) is clf
    np.testing.assert_array_equal(clf.calibration_proba_, clf.predict_proba(X_test[:50]))
    assert clf.classes_[clf.calibration_y_].tolist() == y_test[:50].tolist()
    q = conformal_quantile(lac_scores(clf.calibration_proba_, clf.calibration_y_), 0.8)
    np.testing.assert_array_equal(clf.predict_set(X_test[50:], 0.8),
                                  clf.predict_proba(X_test[50:]) >= 1 - q - 1e-8)
    with pytest.raises(ValueError, match=r"y contains labels \['meh'\] that are not classes"):
        clf.calibrate_sets(X_test[:3], ["neg", "meh", "pos"])


@pytest.mark.any_precision
def test_calibration_persists_with_pickle_and_skops(calibrated, three_class, tmp_path):
    """Check that the calibration travels with pickle and skops and gives the same sets."""
    X_test = three_class[2]
    expected = calibrated.predict_set(X_test)
    sio.dump(calibrated, tmp_path / "m.skops")
    for loaded in (pickle.loads(pickle.dumps(calibrated)),
                   sio.load(tmp_path / "m.skops", trusted=TRUSTED_TYPES)):
        np.testing.assert_array_equal(loaded.calibration_proba_, calibrated.calibration_proba_)
        np.testing.assert_array_equal(loaded.predict_set(X_test), expected)


@pytest.mark.any_precision
def test_calibration_persists_in_a_folder(calibrated, three_class, tmp_path):
    """Check that save_pretrained keeps the calibration as plain arrays."""
    X_test = three_class[2]
    loaded = BertTextClassifier.from_pretrained(calibrated.save_pretrained(tmp_path / "f"))
    for name in ("calibration_proba_", "calibration_y_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(calibrated, name))
        assert getattr(loaded, name).dtype == getattr(calibrated, name).dtype
    np.testing.assert_array_equal(loaded.predict_set(X_test), calibrated.predict_set(X_test))


@pytest.mark.any_precision
def test_partial_fit_drops_the_calibration(calibrated, three_class):
    """Check that a partial_fit chunk, which changes the network and holds no held-out
    texts, drops the calibration with a warning saying how to recalibrate."""
    clf = pickle.loads(pickle.dumps(calibrated))
    X, y, X_test, y_test = three_class
    with pytest.warns(UserWarning, match=r"so the calibration is dropped: call "
                                         r"calibrate_sets\(X_cal, y_cal\)"):
        clf.set_params(early_stopping=False).partial_fit(X[:32], y[:32])
    assert not hasattr(clf, "calibration_proba_") and not hasattr(clf, "calibration_y_")
    with pytest.raises(ValueError, match="needs a calibration"):
        clf.predict_set(X_test)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.partial_fit(X[32:64], y[32:64])  # nothing left to drop: no such warning
    assert not [w for w in caught if "calibration" in str(w.message)]
    assert clf.calibrate_sets(X_test, y_test).predict_set(X_test).shape == (100, 3)


@pytest.mark.any_precision
def test_predict_or_abstain(calibrated, three_class):
    """Check abstention: labels or the abstain label (dtype kept when it fits), answered
    texts right where predict is, stricter targets answering less, refusals and the
    all-abstain warning."""
    clf = pickle.loads(pickle.dumps(calibrated))
    _, _, X_test, y_test = three_class
    clf.calibrate_sets(X_test[:60], y_test[:60])
    X_new = X_test[60:]
    loose = clf.predict_or_abstain(X_new, max_error=0.3, delta=0.2)
    assert loose.dtype == object and len(loose) == 40
    answered = np.array([v is not None for v in loose])
    assert answered.any()
    assert (loose[answered] == clf.predict(X_new)[answered]).all()
    named = clf.predict_or_abstain(X_new, max_error=0.3, delta=0.2, abstain_label="?")
    assert named.dtype.kind == "U" and ((named == "?") == ~answered).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # it may answer none
        strict = clf.predict_or_abstain(X_new, max_error=0.05, delta=0.2, abstain_label="?")
    assert (strict != "?").sum() <= answered.sum()
    with pytest.raises(ValueError, match="abstain_label='pos' is one of classes_"):
        clf.predict_or_abstain(X_new, abstain_label="pos")
    with pytest.raises(ValueError, match="max_error must be a float strictly between"):
        clf.predict_or_abstain(X_new, max_error=0)
    with pytest.warns(UserWarning, match="so every text abstains"):
        none = clf.predict_or_abstain(X_new, max_error=0.001, delta=0.01, abstain_label=-1)
    assert none.dtype == object and (none == -1).all()
    assert clf.predict_or_abstain([], 0.5, delta=0.5, abstain_label="?").shape == (0,)


@pytest.mark.any_precision
def test_int_classes_keep_their_dtype_when_abstaining(tiny_params, toy_data):
    """Check that int classes with an int abstain label give an int array."""
    X, y, X_test, y_test = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=2)).fit(X[:60], y[:60])
    clf.calibrate_sets(X_test, y_test)
    out = clf.predict_or_abstain(X_test, max_error=0.5, delta=0.5, abstain_label=-1)
    assert out.dtype.kind == "i" and set(out.tolist()) <= {-1, 0, 1}


@pytest.mark.slow
@pytest.mark.any_precision
def test_predict_set_coverage_on_ag_news():
    """Check the guarantee on real data: over repeated random calibration splits of AG
    News test texts, the mean coverage is at least the confidence minus the finite-sample
    slack, with a frozen default encoder and a trained head (a short fit)."""
    import pandas as pd

    path = DATA_DIR / "ag_news" / "test.csv"
    if not path.exists():
        pytest.skip(f"AG News is not at {path} (set SKBERT_DATA_DIR to the datasets folder)")
    frame = pd.read_csv(path, header=None, names=["label", "title", "text"])
    frame = frame.sample(1400, random_state=0)
    texts = (frame["title"] + ". " + frame["text"]).tolist()
    labels = frame["label"].to_numpy()
    clf = BertTextClassifier(freeze_base=True, learning_rate=1e-2, max_iter=4,
                             max_length=64, device="cpu", random_state=0)
    clf.fit(texts[:400], labels[:400])
    proba, truth = clf.predict_proba(texts[400:]), np.searchsorted(clf.classes_, labels[400:])
    rng = np.random.default_rng(0)
    n_cal, confidence, coverage = 300, 0.9, []
    for _ in range(100):
        order = rng.permutation(len(truth))
        cal, test = order[:n_cal], order[n_cal:]
        q = conformal_quantile(lac_scores(proba[cal], truth[cal]), confidence)
        coverage.append(prediction_sets(proba[test], q)[np.arange(len(test)), truth[test]]
                        .mean())
    # The mean coverage over draws is at least `confidence`; its sampling error over 100
    # draws of 700 test texts is about 0.003, so 3 standard errors are allowed.
    assert np.mean(coverage) >= confidence - 0.01
    assert np.mean(coverage) <= confidence + 1 / (n_cal + 1) + 0.01


@pytest.mark.any_precision
def test_bench_uncertainty_never_calibrates_on_training_texts(tiny_model_dir, monkeypatch):
    """Check that bench_uncertainty calibrates AG News on texts the fit did not train on.

    Its calibration pool is the training part of AG News; a calibration text the network
    trained on scores lower than a new text, so the sets under-cover (the quick run drew
    31 training texts among its 300 calibration texts)."""
    import argparse
    import sys
    from pathlib import Path

    benchmarks = str(Path(__file__).resolve().parents[1] / "benchmarks")
    sys.path.insert(0, benchmarks)
    try:
        import bench_uncertainty as bench
    finally:
        sys.path.remove(benchmarks)
    texts, y = make_texts(120, seed=5, n_classes=2)
    texts = [f"{t} number {i}" for i, t in enumerate(texts)]  # all distinct
    labels = y + 1  # AG News labels start at 1
    split = ((texts[:100], labels[:100]), (texts[100:], labels[100:]))
    monkeypatch.setattr(bench, "ag_news_split", lambda data_dir, seed=0: split)
    indicator = np.eye(3, dtype=np.int64)[np.arange(30) % 3]
    monkeypatch.setattr(bench, "goemotions",
                        lambda data_dir, part: (texts[:30], indicator, ["a", "b", "c"]))
    seen = {}

    class Recording(BertTextClassifier):
        def fit(self, X, y, **kwargs):
            seen["train"] = list(X)
            return super().fit(X, y, **kwargs)

        def calibrate_sets(self, X, y):
            seen["cal"] = list(X)
            return super().calibrate_sets(X, y)

    monkeypatch.setattr(bench, "BertTextClassifier", Recording)
    args = argparse.Namespace(model=tiny_model_dir, learning_rate=5e-3, epochs=1,
                              max_length=16, n_train=60, n_cal=30, n_test=20)
    ((name, splits),) = [(k, v) for k, v in bench.datasets("unused").items()
                         if k == "AG News"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        result = bench.run_one(name, *splits, args)
    assert len(seen["train"]) == 60 and len(seen["cal"]) == 30
    assert not set(seen["cal"]) & set(seen["train"])
    assert not set(seen["cal"]) & set(texts[100:])  # nor on test texts
    assert result["n_cal"] == 30 and result["n_test"] == 20
