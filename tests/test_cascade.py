"""CascadeClassifier: a student answers where confident, a teacher the rest.

Cheap: TF-IDF + logistic regression models on the toy texts of conftest, and one frozen
tiny BertTextClassifier (the session's ``fitted`` fixture) as a teacher.
"""

import doctest
import pickle
import subprocess
import sys

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin, clone, is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import (
    check_do_not_raise_errors_in_init_or_set_params,
    check_estimator_cloneable,
    check_estimator_repr,
    check_estimators_unfitted,
    check_get_params_invariance,
    check_mixin_order,
    check_no_attributes_set_in_init,
    check_param_validation,
    check_parameters_default_constructible,
    check_set_params,
)

import skbert._cascade
from skbert import CascadeClassifier
from skbert._cascade import confidences, lowest_threshold

from .conftest import make_multilabel_texts, make_texts

pytestmark = pytest.mark.any_precision  # scikit-learn models; the BERT one only routes


def tfidf_lr(C=1.0):
    return make_pipeline(TfidfVectorizer(), LogisticRegression(C=C))


class RecordingClassifier(ClassifierMixin, BaseEstimator):
    """TF-IDF + logistic regression that records the texts given to predict_proba."""

    def __init__(self, C=10.0):
        self.C = C

    def fit(self, X, y):
        self.model_ = tfidf_lr(self.C).fit(X, y)
        self.classes_ = self.model_.classes_
        self.seen_ = []
        return self

    def predict_proba(self, X):
        self.seen_.append(list(X))
        return self.model_.predict_proba(X)


@pytest.fixture(scope="module")
def texts():
    """Three classes: 30 texts to fit a weak student, 90 a teacher, 80 held out."""
    X, y = make_texts(200, seed=3, n_classes=3)
    labels = np.array(["neg", "pos", "meh"])[y]
    return X, labels


@pytest.fixture(scope="module")
def frozen_models(texts):
    X, y = texts
    return tfidf_lr(1.0).fit(X[:30], y[:30]), RecordingClassifier().fit(X[:120], y[:120])


def test_cascade_threshold_rule_takes_the_lowest_qualifying_threshold():
    """Check that the lowest threshold whose held-out accuracy is within the tolerance wins,
    also below a higher threshold that misses it, and that ties move together."""
    confidence = np.array([0.9, 0.8, 0.8, 0.7, 0.6, 0.55])
    student = np.array([1, 1, 0, 0, 1, 1], dtype=bool)
    teacher = np.ones(6, dtype=bool)
    # Thresholds 0.9: 6/6; 0.8 (both ties): 5/6; 0.7: 4/6; 0.6: 4/6; 0.55: 4/6.
    assert lowest_threshold(confidence, student, teacher, 0.0) == (0.9, 1.0, 5 / 6)
    assert lowest_threshold(confidence, student, teacher, 0.2) == (0.8, 5 / 6, 0.5)
    assert lowest_threshold(confidence, student, teacher, 1 / 3) == (0.55, 4 / 6, 0.0)
    # Not monotone: the student is wrong at 0.9 only and the teacher at 0.6 and 0.55:
    # thresholds 0.9, 0.8, 0.7: 3/6 below the teacher's 4/6; 0.6: 4/6; 0.55: 5/6.
    student = np.array([0, 1, 1, 1, 1, 1], dtype=bool)
    teacher_two_wrong = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    assert lowest_threshold(confidence, student, teacher_two_wrong, 0.0) == (0.55, 5 / 6, 0.0)
    # Nothing qualifies below inf: the teacher answers everything.
    assert lowest_threshold(confidence, ~teacher, teacher, 0.0) == (np.inf, 1.0, 1.0)


def test_cascade_confidence_measures():
    """Check max probability and margin (top minus second) on three classes."""
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.45, 0.45]])
    np.testing.assert_allclose(confidences(proba, "max_proba"), [0.5, 0.45])
    np.testing.assert_allclose(confidences(proba, "margin"), [0.2, 0.0])


def test_cascade_frozen_models_only_choose_the_threshold(texts, frozen_models):
    """Check that with frozen models fit holds out every text, refits neither, and reports
    the held-out accuracies and the share deferred."""
    X, y = texts
    student, teacher = frozen_models
    coef = student[-1].coef_.copy()
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher),
                                tolerance=0.0).fit(X[120:], y[120:])
    assert cascade.student_.estimator is student and cascade.teacher_.estimator is teacher
    np.testing.assert_array_equal(student[-1].coef_, coef)
    assert cascade.n_validation_ == 80
    np.testing.assert_array_equal(cascade.classes_, student.classes_)
    assert cascade.teacher_accuracy_ == np.mean(teacher.model_.predict(X[120:]) == y[120:])
    assert cascade.student_accuracy_ < cascade.teacher_accuracy_
    assert cascade.cascade_accuracy_ >= cascade.teacher_accuracy_
    assert 0.0 < cascade.deferred_fraction_ < 1.0
    assert cascade.defer(X[120:]).mean() == cascade.deferred_fraction_
    loose = clone(cascade).set_params(tolerance=0.05).fit(X[120:], y[120:])
    assert loose.threshold_ < cascade.threshold_
    assert loose.deferred_fraction_ < cascade.deferred_fraction_
    assert loose.cascade_accuracy_ >= loose.teacher_accuracy_ - 0.05


def test_cascade_teacher_sees_only_the_deferred_rows(texts, frozen_models):
    """Check that predict and predict_proba give the teacher the deferred texts only, and
    do not call it when no text is deferred."""
    X, y = texts
    student, teacher = frozen_models
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher),
                                tolerance=0.0).fit(X[120:], y[120:])
    new = X[:60]
    deferred = cascade.defer(new)
    assert 0 < deferred.sum() < 60
    teacher.seen_.clear()
    cascade.predict(new)
    cascade.predict_proba(new)
    expected = [t for t, d in zip(new, deferred, strict=True) if d]
    assert teacher.seen_ == [expected, expected]
    everything = clone(cascade).set_params(tolerance=1.0).fit(X[120:], y[120:])
    assert everything.deferred_fraction_ == 0.0
    teacher.seen_.clear()
    everything.predict(iter(new))  # a generator too
    assert teacher.seen_ == [] and not everything.defer(new).any()


def test_cascade_predict_proba_agrees_with_predict(texts, frozen_models):
    """Check that rows answered by the student carry its probabilities, deferred rows the
    teacher's, and predict is classes_[argmax]."""
    X, y = texts
    student, teacher = frozen_models
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher),
                                tolerance=0.0, confidence="margin").fit(X[120:], y[120:])
    new = X[:60]
    proba, deferred = cascade.predict_proba(new), cascade.defer(new)
    np.testing.assert_allclose(proba[~deferred], student.predict_proba(new)[~deferred])
    np.testing.assert_allclose(proba[deferred], teacher.model_.predict_proba(new)[deferred])
    np.testing.assert_array_equal(cascade.predict(new), cascade.classes_[proba.argmax(axis=1)])
    assert proba.dtype == np.float64 and np.allclose(proba.sum(axis=1), 1.0)
    assert cascade.score(X[120:], y[120:]) == pytest.approx(cascade.cascade_accuracy_)


def test_cascade_unfrozen_models_are_cloned_and_fitted_on_a_stratified_split(texts):
    """Check that unfrozen models are cloned (the given ones stay unfitted), fitted on
    1 - validation_fraction of the texts, and that random_state repeats the split."""
    X, y = texts
    student, teacher = tfidf_lr(1.0), tfidf_lr(10.0)
    cascade = CascadeClassifier(student, teacher, validation_fraction=0.25, random_state=0)
    cascade.fit(X, y)
    with pytest.raises(NotFittedError):
        student.predict(X[:2])
    assert cascade.n_validation_ == 50
    assert len(cascade.student_[0].vocabulary_) > 0
    again = clone(cascade).fit(X, y)
    assert again.threshold_ == cascade.threshold_
    np.testing.assert_array_equal(again.predict_proba(X), cascade.predict_proba(X))
    # One frozen, one fitted here: the split still holds out validation_fraction.
    mixed = CascadeClassifier(FrozenEstimator(tfidf_lr().fit(X[:30], y[:30])), teacher,
                              random_state=0).fit(X, y)
    assert mixed.n_validation_ == 40 and mixed.student_.estimator.classes_.size == 3


def test_cascade_in_pipeline_cross_val_score_and_pickle(texts):
    """Check that the cascade is a classifier in a Pipeline and cross_val_score, and
    predicts the same after pickling."""
    X, y = texts
    cascade = CascadeClassifier(tfidf_lr(1.0), tfidf_lr(10.0), random_state=0)
    assert is_classifier(cascade)
    pipe = make_pipeline(FunctionTransformer(lambda t: [s.upper() for s in t]), cascade)
    scores = cross_val_score(pipe, X, y, cv=2)
    assert scores.shape == (2,) and scores.min() > 0.5
    fitted = cascade.fit(X, y)
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.threshold_ == fitted.threshold_


def test_cascade_classes_must_agree(texts):
    """Check that a student and a teacher with different classes_ are refused, naming
    both, and that held-out labels unknown to them are refused."""
    X, y = texts
    student = tfidf_lr().fit(X[:60], y[:60])
    teacher = tfidf_lr().fit(X[:60], np.where(y[:60] == "meh", "neg", y[:60]))
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher))
    with pytest.raises(ValueError, match=r"student.classes_=\['meh', 'neg', 'pos'\] and "
                                         r"teacher.classes_=\['neg', 'pos'\]"):
        cascade.fit(X[60:], y[60:])
    cascade.set_params(teacher=FrozenEstimator(student))
    with pytest.raises(ValueError, match=r"y holds label\(s\) \['bad'\] that the student"):
        cascade.fit(X[60:70], np.r_[y[60:69], ["bad"]])


def test_cascade_refuses_multilabel_and_bad_parameters():
    """Check that multi-label targets, a bare string and invalid parameters are refused
    with texts that say what to do."""
    X, Y = make_multilabel_texts(20)
    with pytest.raises(ValueError, match="single-label targets .* 'multilabel-indicator'"):
        CascadeClassifier(tfidf_lr(), tfidf_lr()).fit(X, Y)
    with pytest.raises(ValueError, match="Iterable over raw text documents expected"):
        CascadeClassifier(tfidf_lr(), tfidf_lr()).fit("good film", [1])
    with pytest.raises(ValueError, match="same number of rows; got 20 texts and 19 labels"):
        CascadeClassifier(tfidf_lr(), tfidf_lr()).fit(X, Y[1:, 0])
    with pytest.raises(NotFittedError, match="teacher is a FrozenEstimator of an unfitted "
                                             "Pipeline: fit it before freezing it"):
        CascadeClassifier(tfidf_lr(), FrozenEstimator(tfidf_lr())).fit(X, Y[:, 0])
    with pytest.raises(InvalidParameterError, match="'teacher' parameter .* 'predict_proba'"):
        CascadeClassifier(tfidf_lr(), "bert").fit(X, Y[:, 0])
    with pytest.raises(InvalidParameterError, match="'tolerance' parameter"):
        CascadeClassifier(tfidf_lr(), tfidf_lr(), tolerance=-0.1).fit(X, Y[:, 0])


@pytest.mark.parametrize("check", [
    check_no_attributes_set_in_init, check_parameters_default_constructible,
    check_get_params_invariance, check_set_params, check_estimator_repr,
    check_estimator_cloneable, check_mixin_order,
    check_do_not_raise_errors_in_init_or_set_params, check_param_validation,
    check_estimators_unfitted,
], ids=lambda c: c.__name__)
def test_cascade_scikit_learn_checks(check):
    """Check that the cascade passes scikit-learn's estimator checks that apply to it."""
    check("CascadeClassifier", CascadeClassifier(LogisticRegression(), LogisticRegression()))


def test_cascade_tags_accept_what_both_models_accept():
    """Check that the cascade's input tags take what both models take."""
    from skbert import BertTextClassifier

    tags = CascadeClassifier(BertTextClassifier(), BertTextClassifier()).__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array
    assert not tags.classifier_tags.multi_label
    tags = CascadeClassifier(LogisticRegression(), BertTextClassifier()).__sklearn_tags__()
    assert not tags.input_tags.string and not tags.input_tags.two_d_array


def test_cascade_with_frozen_bert_teacher(fitted, toy_data):
    """Check a TF-IDF student with a frozen fitted BertTextClassifier teacher (string
    labels): threshold chosen without refitting, predict_proba consistent with predict."""
    X, y, X_test, y_test = toy_data
    labels = np.array(["neg", "pos"])
    student = tfidf_lr(0.3).fit(X[:20], labels[y[:20]])
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(fitted),
                                tolerance=0.0).fit(X_test[:40], labels[y_test[:40]])
    assert cascade.teacher_.estimator is fitted
    assert cascade.cascade_accuracy_ >= cascade.teacher_accuracy_
    new = X_test[40:]
    proba, deferred = cascade.predict_proba(new), cascade.defer(new)
    np.testing.assert_array_equal(cascade.predict(new), cascade.classes_[proba.argmax(axis=1)])
    if deferred.any():
        rows = [t for t, d in zip(new, deferred, strict=True) if d]
        np.testing.assert_allclose(proba[deferred], fitted.predict_proba(rows), atol=1e-6)


def test_cascade_docstring_example_and_import_without_torch():
    """Check the module's docstring example, and that importing it imports neither torch
    nor transformers."""
    result = doctest.testmod(skbert._cascade, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
    code = ("import sys, skbert._cascade; "
            "assert not {'torch', 'transformers'} & set(sys.modules), 'imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
