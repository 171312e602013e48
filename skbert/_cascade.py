"""``CascadeClassifier``: a cheap student answers where it is confident, a teacher the rest.

Pure scikit-learn and NumPy: this module imports neither torch nor transformers, and
knows nothing of skbert's estimators; any classifiers with ``predict_proba`` will do (a
TF-IDF + logistic regression student and a ``BertTextClassifier`` teacher, or a student
distilled from the teacher). Imports nothing from skbert.
"""

from copy import deepcopy
from dataclasses import fields
from numbers import Real

import numpy as np
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    MetaEstimatorMixin,
    _fit_context,
    clone,
)
from sklearn.exceptions import NotFittedError
from sklearn.frozen import FrozenEstimator
from sklearn.model_selection import train_test_split
from sklearn.utils import _safe_indexing, get_tags
from sklearn.utils._param_validation import HasMethods, Interval, RealNotInt, StrOptions
from sklearn.utils.multiclass import type_of_target
from sklearn.utils.validation import _num_samples, check_is_fitted

# Input kinds the cascade accepts only if both models do (the rest of InputTags: either).
_INPUT_KINDS_OF_BOTH = ("one_d_array", "two_d_array", "three_d_array", "sparse",
                        "categorical", "string", "dict", "allow_nan")
# Round-off allowed when a held-out accuracy meets the teacher's minus the tolerance.
_EPSILON = 1e-12


def confidences(proba, measure):
    """The confidence of each row of class probabilities.

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Class probabilities.
    measure : {"max_proba", "margin"}
        ``"max_proba"``: the largest probability; ``"margin"``: the largest minus the
        second largest (the same order as ``"max_proba"`` for two classes).

    Returns
    -------
    confidence : ndarray of float64 of shape (n_samples,)
        Higher means more confident.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if measure == "max_proba" or proba.shape[1] < 2:
        return proba.max(axis=1)
    top_two = np.partition(proba, -2, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def lowest_threshold(confidence, student_correct, teacher_correct, tolerance):
    """The lowest confidence threshold whose cascade keeps held-out accuracy.

    The student answers the rows whose confidence is at least the threshold, the teacher
    the others. Candidates are the held-out confidences themselves and ``inf`` (the
    teacher answers every row, the teacher's own accuracy, so one always qualifies).
    The lowest candidate (the largest share answered by the student) whose cascade
    accuracy is at least the teacher's minus ``tolerance`` wins; the accuracy need not
    fall monotonically with the share, and a lower qualifying threshold wins over a
    higher one that does not qualify.

    Parameters
    ----------
    confidence : ndarray of shape (n_samples,)
        The student's confidence on each held-out row.
    student_correct, teacher_correct : ndarray of bool of shape (n_samples,)
        Whether each model's answer is right on each held-out row.
    tolerance : float
        How much absolute accuracy the cascade may lose against the teacher.

    Returns
    -------
    threshold : float
        The chosen threshold (``inf``: always defer).
    accuracy : float
        The cascade's held-out accuracy at ``threshold``.
    deferred_fraction : float
        The share of held-out rows below ``threshold`` (sent to the teacher).
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    n = len(confidence)
    order = np.argsort(-confidence, kind="stable")
    ranked = confidence[order]
    # The student answers the k most confident rows, k = 0..n; only k at the end of a
    # run of equal confidences is a threshold.
    student_hits = np.r_[0, np.cumsum(np.asarray(student_correct)[order])]
    teacher_hits = np.r_[0, np.cumsum(np.asarray(teacher_correct)[order])]
    accuracy = (student_hits + teacher_hits[-1] - teacher_hits) / n
    k = np.arange(n + 1)
    is_cut = np.r_[True, np.r_[ranked[:-1] > ranked[1:], True]]
    ok = is_cut & (accuracy >= accuracy[0] - tolerance - _EPSILON)
    best = int(k[ok].max())  # ok[0] always holds: the teacher alone
    threshold = float(ranked[best - 1]) if best else float("inf")
    return threshold, float(accuracy[best]), float((n - best) / n)


def _as_indexable(X):
    """``X`` as itself if rows can be taken from it, else as a list (a generator)."""
    if isinstance(X, str):  # scikit-learn's text for it (CountVectorizer's)
        raise ValueError("Iterable over raw text documents expected, string object received.")
    if hasattr(X, "__getitem__") or hasattr(X, "iloc"):
        return X
    return list(X)


class CascadeClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Answer with a cheap student where it is confident, and defer the rest to a teacher.

    The student (a TF-IDF model, a distilled static model) predicts every text; the
    texts on which its confidence is below ``threshold_`` go to the teacher (a
    fine-tuned ``BertTextClassifier``), which predicts those texts and no others.
    ``fit`` chooses the threshold on held-out texts: the lowest one (the largest share
    answered by the student) whose cascade accuracy on those texts is at least the
    teacher's accuracy on them minus ``tolerance``. This is an empirical choice on a
    finite sample, not a guarantee: on new texts the cascade's accuracy can fall further
    below the teacher's, the more so the fewer the held-out texts.

    Models that are already fitted go in wrapped in ``sklearn.frozen.FrozenEstimator``:
    ``CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher)).fit(X_val,
    y_val)`` fits neither and chooses the threshold on all of ``X_val``. An unfrozen
    model is cloned and fitted on a stratified share ``1 - validation_fraction`` of
    ``fit``'s texts; the threshold is then chosen on the other ``validation_fraction``.

    Each model answers with the argmax of its ``predict_proba`` (a model's own
    ``predict`` may apply a decision threshold; the cascade does not), so that
    ``predict`` is ``classes_[argmax(predict_proba)]``. Single-label targets only
    (binary or multi-class): multi-label targets are refused.

    Parameters
    ----------
    student : classifier
        The cheap model, with ``fit`` and ``predict_proba``; it predicts every text.
    teacher : classifier
        The accurate model, with ``fit`` and ``predict_proba``, and the same
        ``classes_`` as the student; it predicts the deferred texts only.
    tolerance : float, default=0.005
        The absolute accuracy the cascade may lose against the teacher on the held-out
        texts (0.005: half a point). 0 asks for the teacher's held-out accuracy or more.
    confidence : {"max_proba", "margin"}, default="max_proba"
        The student's confidence in a text: its largest class probability, or the
        largest minus the second largest (the same order for two classes).
    validation_fraction : float, default=0.2
        The stratified share of ``fit``'s texts held out to choose the threshold when
        the student or the teacher is not frozen (and so is fitted on the rest). Unused
        when both are ``FrozenEstimator``: then every text of ``fit`` is held out.
    random_state : int, RandomState instance or None, default=None
        The seed of the held-out split.

    Attributes
    ----------
    student_ : classifier
        The fitted student (the ``FrozenEstimator`` itself when frozen, else a clone).
    teacher_ : classifier
        The fitted teacher (the ``FrozenEstimator`` itself when frozen, else a clone).
    classes_ : ndarray of shape (n_classes,)
        The class labels, shared by the student and the teacher, in ``predict_proba``
        column order.
    threshold_ : float
        The student answers the texts whose confidence is at least this; ``inf`` when
        every text goes to the teacher.
    deferred_fraction_ : float
        The share of the held-out texts sent to the teacher at ``threshold_``.
    teacher_accuracy_ : float
        The teacher's accuracy on the held-out texts.
    student_accuracy_ : float
        The student's accuracy on the held-out texts (every text answered by it).
    cascade_accuracy_ : float
        The cascade's accuracy on the held-out texts at ``threshold_``.
    n_validation_ : int
        How many held-out texts chose the threshold.

    See Also
    --------
    sklearn.frozen.FrozenEstimator : Wrap a fitted model so that ``fit`` leaves it alone.
    sklearn.model_selection.TunedThresholdClassifierCV : A decision threshold tuned on
        held-out data for one model.

    Examples
    --------
    >>> from sklearn.feature_extraction.text import TfidfVectorizer
    >>> from sklearn.frozen import FrozenEstimator
    >>> from sklearn.linear_model import LogisticRegression
    >>> from sklearn.pipeline import make_pipeline
    >>> from skbert import CascadeClassifier
    >>> X = ["good film", "great plot", "bad film", "awful plot"] * 10
    >>> y = [1, 1, 0, 0] * 10
    >>> student = make_pipeline(TfidfVectorizer(), LogisticRegression()).fit(X, y)
    >>> teacher = make_pipeline(TfidfVectorizer(), LogisticRegression(C=100)).fit(X, y)
    >>> cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher))
    >>> cascade.fit(X, y).deferred_fraction_
    0.0
    >>> cascade.predict(["a good plot", "an awful film"]).tolist()
    [1, 0]
    """

    _parameter_constraints: dict = {
        "student": [HasMethods(["fit", "predict_proba"])],
        "teacher": [HasMethods(["fit", "predict_proba"])],
        "tolerance": [Interval(Real, 0, 1, closed="both")],
        "confidence": [StrOptions({"max_proba", "margin"})],
        "validation_fraction": [Interval(RealNotInt, 0, 1, closed="neither")],
        "random_state": ["random_state"],
    }

    def __init__(self, student, teacher, *, tolerance=0.005, confidence="max_proba",
                 validation_fraction=0.2, random_state=None):
        self.student = student
        self.teacher = teacher
        self.tolerance = tolerance
        self.confidence = confidence
        self.validation_fraction = validation_fraction
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=False)  # student and teacher: not yet
    def fit(self, X, y):
        """Fit the models that are not frozen, then choose the threshold on held-out texts.

        Parameters
        ----------
        X : iterable of str, or what the student and the teacher take
            Texts (or rows) with their labels in ``y``; all held out when both models
            are frozen, else split into a fitting and a held-out part.
        y : array-like of shape (n_samples,)
            Class labels (binary or multi-class).

        Returns
        -------
        self : CascadeClassifier
            The fitted cascade.
        """
        X = _as_indexable(X)
        y = np.asarray(y)
        target = type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass"):
            raise ValueError(
                f"CascadeClassifier takes single-label targets (binary or multi-class) "
                f"only; y is {target!r}. A multi-label student and teacher have no "
                f"single confidence per text: cascade each label's models separately, "
                f"or use BertTextClassifier alone.")
        if len(y) != _num_samples(X):
            raise ValueError(
                f"X and y must have the same number of rows; got {_num_samples(X)} texts "
                f"and {len(y)} labels.")
        frozen = [isinstance(m, FrozenEstimator) for m in (self.student, self.teacher)]
        for name, model, is_frozen in (("student", self.student, frozen[0]),
                                       ("teacher", self.teacher, frozen[1])):
            if is_frozen and not model.__sklearn_is_fitted__():
                raise NotFittedError(
                    f"The {name} is a FrozenEstimator of an unfitted "
                    f"{type(model.estimator).__name__}: fit it before freezing it, or pass "
                    f"it unfrozen to be fitted here.")
        self.student_, self.teacher_ = clone(self.student), clone(self.teacher)
        if all(frozen):
            X_val, y_val = X, y
        else:
            fit_rows, val_rows = train_test_split(
                np.arange(len(y)), test_size=self.validation_fraction, stratify=y,
                random_state=self.random_state)
            X_fit, y_fit = _safe_indexing(X, fit_rows), y[fit_rows]
            X_val, y_val = _safe_indexing(X, val_rows), y[val_rows]
            for model, is_frozen in ((self.student_, frozen[0]), (self.teacher_, frozen[1])):
                if not is_frozen:
                    model.fit(X_fit, y_fit)
        self.classes_ = self._check_classes(y_val)
        student_proba = self._proba(self.student_, X_val, "student")
        teacher_proba = self._proba(self.teacher_, X_val, "teacher")
        student_correct = self.classes_[student_proba.argmax(axis=1)] == y_val
        teacher_correct = self.classes_[teacher_proba.argmax(axis=1)] == y_val
        self.threshold_, self.cascade_accuracy_, self.deferred_fraction_ = lowest_threshold(
            confidences(student_proba, self.confidence), student_correct, teacher_correct,
            self.tolerance)
        self.teacher_accuracy_ = float(teacher_correct.mean())
        self.student_accuracy_ = float(student_correct.mean())
        self.n_validation_ = len(y_val)
        return self

    def _check_classes(self, y):
        """The shared ``classes_`` of the fitted models, checked against each other and
        against the held-out labels ``y``."""
        found = {}
        for name, model in (("student", self.student_), ("teacher", self.teacher_)):
            classes = getattr(model, "classes_", None)
            if classes is None:
                raise ValueError(
                    f"The {name} has no classes_ after fitting ({type(model).__name__}); "
                    f"CascadeClassifier needs classifiers whose predict_proba columns "
                    f"follow classes_.")
            found[name] = np.asarray(classes)
        if not np.array_equal(found["student"], found["teacher"]):
            raise ValueError(
                f"The student and the teacher must have the same classes_ in the same "
                f"order; got student.classes_={found['student'].tolist()!r} and "
                f"teacher.classes_={found['teacher'].tolist()!r}. Fit both on the same "
                f"labels (the same label type too: 1 and '1' differ).")
        classes = found["student"]
        unknown = np.unique(y[~np.isin(y, classes)])
        if unknown.size:
            raise ValueError(
                f"y holds label(s) {unknown.tolist()!r} that the student and the teacher do "
                f"not know (classes_={classes.tolist()!r}); the held-out texts must be "
                f"labelled with the models' classes.")
        return classes

    def _proba(self, model, X, name):
        """``model.predict_proba(X)`` as float64, its columns checked against classes_."""
        proba = np.array(model.predict_proba(X), dtype=np.float64)  # a copy: rows replaced
        if proba.ndim != 2 or proba.shape[1] != len(self.classes_):
            raise ValueError(
                f"The {name}'s predict_proba returned shape {proba.shape}; expected "
                f"(n_texts, {len(self.classes_)}), one column per class of classes_.")
        return proba

    def _route(self, X):
        """The rows of ``X`` as an indexable, the student's probabilities, and the
        deferred mask."""
        check_is_fitted(self)
        X = _as_indexable(X)
        proba = self._proba(self.student_, X, "student")
        return X, proba, confidences(proba, self.confidence) < self.threshold_

    def defer(self, X):
        """Which texts the cascade sends to the teacher (the student alone predicts).

        Parameters
        ----------
        X : iterable of str, or what the student takes
            Texts to route.

        Returns
        -------
        deferred : ndarray of bool of shape (n_samples,)
            True where the student's confidence is below ``threshold_``.
        """
        return self._route(X)[2]

    def predict_proba(self, X):
        """Class probabilities: the student's where it answers, the teacher's elsewhere.

        The teacher predicts the deferred texts only.

        Parameters
        ----------
        X : iterable of str, or what the student and the teacher take
            Texts to classify.

        Returns
        -------
        proba : ndarray of float64 of shape (n_samples, n_classes)
            Columns in ``classes_`` order; each row sums to 1 if its model's rows do.
        """
        X, proba, deferred = self._route(X)
        if deferred.any():
            proba[deferred] = self._proba(
                self.teacher_, _safe_indexing(X, np.flatnonzero(deferred)), "teacher")
        return proba

    def predict(self, X):
        """Class labels: the student's where it is confident, the teacher's elsewhere.

        Parameters
        ----------
        X : iterable of str, or what the student and the teacher take
            Texts to classify.

        Returns
        -------
        y : ndarray of shape (n_samples,)
            ``classes_[argmax(predict_proba(X))]``.
        """
        check_is_fitted(self)
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        try:
            student = get_tags(self.student).input_tags
            teacher = get_tags(self.teacher).input_tags
        except AttributeError:  # not estimators: fit's parameter check says so
            return tags
        tags.input_tags = deepcopy(student)
        for field in fields(tags.input_tags):
            both = getattr(student, field.name), getattr(teacher, field.name)
            setattr(tags.input_tags, field.name,
                    all(both) if field.name in _INPUT_KINDS_OF_BOTH else any(both))
        return tags
