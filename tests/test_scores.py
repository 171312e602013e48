"""decision_function (logits, for calibration) and transform (embeddings)."""

import numpy as np
import pytest
from scipy.special import expit, softmax
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from skbert import BertTextClassifier

from .conftest import make_texts


@pytest.fixture(scope="module")
def fp32_fitted(tiny_params, toy_data):
    X, y, _, _ = toy_data
    return BertTextClassifier(**dict(tiny_params, inference_dtype="float32")).fit(X, y)


def test_binary_decision_function_is_the_log_odds(fp32_fitted, toy_data):
    """Check that a binary decision_function is 1-D, the log-odds of classes_[1], and
    positive exactly where classes_[1] is predicted."""
    X_test = toy_data[2]
    scores = fp32_fitted.decision_function(X_test)
    assert scores.shape == (len(X_test),) and scores.dtype == np.float64
    np.testing.assert_allclose(expit(scores), fp32_fitted.predict_proba(X_test)[:, 1],
                               rtol=1e-9)
    np.testing.assert_array_equal(fp32_fitted.classes_[(scores > 0).astype(int)],
                                  fp32_fitted.predict(X_test))


def test_multiclass_decision_function_gives_the_softmax(tiny_params):
    """Check that a 3-class decision_function has one column per class whose softmax is
    predict_proba."""
    X, y = make_texts(90, seed=4, n_classes=3)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=2)).fit(X, y)
    scores = clf.decision_function(X[:20])
    assert scores.shape == (20, 3)
    np.testing.assert_allclose(softmax(scores, axis=1), clf.predict_proba(X[:20]), rtol=1e-9)


@pytest.mark.parametrize("method", ["temperature", "sigmoid"])
def test_calibration_on_a_frozen_classifier(fp32_fitted, toy_data, method):
    """Check that CalibratedClassifierCV(FrozenEstimator(clf)) fits on decision_function
    and keeps the classifier's ranking of texts."""
    _, _, X_test, y_test = toy_data
    calibrated = CalibratedClassifierCV(FrozenEstimator(fp32_fitted), method=method)
    calibrated.fit(X_test[:30], y_test[:30])
    proba = calibrated.predict_proba(X_test[30:])
    assert proba.shape == (30, 2)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    raw = fp32_fitted.decision_function(X_test[30:])
    order = np.argsort(raw, kind="stable")
    assert np.all(np.diff(proba[order, 1]) >= -1e-12)  # a monotone map of the logits


def test_transform_is_the_pooled_features(fp32_fitted, toy_data):
    """Check that transform gives float32 features of hidden_size, whose head output is
    decision_function, in input order whatever the batch or neighbours."""
    X_test = toy_data[2]
    features = fp32_fitted.transform(X_test)
    hidden = fp32_fitted.model_.backbone.config.hidden_size
    assert features.shape == (len(X_test), hidden) and features.dtype == np.float32
    import torch

    head = fp32_fitted.model_.head.eval()
    with torch.no_grad():
        logits = head(torch.from_numpy(features)).double().numpy()
    np.testing.assert_allclose(logits[:, 1] - logits[:, 0],
                               fp32_fitted.decision_function(X_test), atol=1e-5)
    perm = np.random.default_rng(0).permutation(len(X_test))
    np.testing.assert_allclose(fp32_fitted.transform([X_test[i] for i in perm]),
                               features[perm], atol=1e-5)
    np.testing.assert_allclose(fp32_fitted.transform(X_test[3:4]), features[3:4], atol=1e-5)
    assert fp32_fitted.transform([]).shape == (0, hidden)


def test_transform_of_a_frozen_base_is_the_pretrained_encoder(tiny_params, toy_data):
    """Check that with freeze_base the features are the pretrained encoder's, whatever
    the head learned (two heads, one set of features)."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, inference_dtype="float32", freeze_base=True, max_iter=2)
    one = BertTextClassifier(**params).fit(X, y)
    other = BertTextClassifier(**dict(params, random_state=1, head=(16,))).fit(X, y)
    np.testing.assert_allclose(one.transform(X_test), other.transform(X_test), atol=1e-5)


def test_transform_feeds_a_pipeline(tiny_params, toy_data):
    """Check that a fitted skbert step feeds its features to another estimator."""
    X, y, X_test, y_test = toy_data
    pipe = make_pipeline(BertTextClassifier(**tiny_params), LogisticRegression())
    pipe.fit(X, y)
    assert pipe.score(X_test, y_test) >= 0.9
    assert pipe[-1].coef_.shape == (1, pipe[0].model_.backbone.config.hidden_size)
