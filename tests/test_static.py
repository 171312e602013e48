"""Static students: ``distill``, ``StaticTextClassifier`` / ``StaticTextRegressor``, and
prediction with no torch in the process."""

import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import skops.io as sio
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import cross_val_score
from sklearn.utils._param_validation import InvalidParameterError

from skbert import (
    BertTextClassifier,
    BertTextRegressor,
    StaticTextClassifier,
    StaticTextRegressor,
)
from tests.conftest import make_multilabel_texts, make_texts

# The students predict in NumPy float32; the teachers made here predict in float32 too.
pytestmark = pytest.mark.any_precision


@pytest.fixture(scope="module")
def student(fitted, toy_data):
    X, _, _, _ = toy_data
    return fitted.distill(X + make_texts(200, seed=7)[0], random_state=0)


def test_distill_agrees_with_its_teacher(fitted, student, toy_data):
    """Check that the student keeps the teacher's classes and mostly its answers."""
    _, _, X_test, y_test = toy_data
    assert isinstance(student, StaticTextClassifier)
    np.testing.assert_array_equal(student.classes_, fitted.classes_)
    assert student.distilled_from_ == "BertTextClassifier"
    agreement = np.mean(student.predict(X_test) == fitted.predict(X_test))
    assert agreement >= 0.9
    assert student.score(X_test, np.array(["neg", "pos"])[y_test]) >= 0.85
    proba = student.predict_proba(X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(student.classes_[proba.argmax(axis=1)],
                                  student.predict(X_test))


def test_fit_learns_from_the_pretrained_table(tiny_model_dir, toy_data):
    """Check that fit(X, y) alone gives a working classifier, and is a plain estimator."""
    X, y, X_test, y_test = toy_data
    clf = StaticTextClassifier(tiny_model_dir, random_state=0).fit(X, y)
    assert clf.embeddings_.shape[1] <= 32  # the tiny BERT's width caps pca_dims
    assert clf.score(X_test, y_test) >= 0.9
    assert clf.distilled_from_ is None
    scores = cross_val_score(clone(clf), X, y, cv=3)
    assert scores.mean() >= 0.8


def test_multilabel_student_keeps_the_thresholds(tiny_params):
    """Check that a multi-label student predicts indicators with the teacher's
    per-label thresholds."""
    X, Y = make_multilabel_texts(100, seed=3)
    teacher = BertTextClassifier(**{**tiny_params, "max_iter": 4},
                                 inference_dtype="float32", training_dtype="float32").fit(X, Y)
    teacher.thresholds_ = np.array([0.4, 0.5, 0.6])
    student = teacher.distill(X, random_state=0)
    np.testing.assert_array_equal(student.thresholds_, teacher.thresholds_)
    proba = student.predict_proba(X)
    assert proba.shape == (100, 3)
    np.testing.assert_array_equal(student.predict(X), (proba >= [0.4, 0.5, 0.6]).astype(int))
    assert np.mean(student.predict(X) == teacher.predict(X)) >= 0.8


def test_regressor_student(tiny_params, toy_data):
    """Check that a regressor's student follows its predictions, and that fit works."""
    X, y, _, _ = toy_data
    target = 3.0 * y + 1.0
    teacher = BertTextRegressor(**{**tiny_params, "max_iter": 4},
                                inference_dtype="float32", training_dtype="float32").fit(X, target)
    student = teacher.distill(X, random_state=0)
    assert isinstance(student, StaticTextRegressor)
    assert np.corrcoef(student.predict(X), teacher.predict(X))[0, 1] >= 0.8
    head_only = teacher.distill(X, epochs=0)
    assert np.corrcoef(head_only.predict(X), teacher.predict(X))[0, 1] >= 0.9
    own = StaticTextRegressor(tiny_params["model_name_or_path"]).fit(X, target)
    assert own.score(X, target) >= 0.8
    two = StaticTextRegressor(tiny_params["model_name_or_path"]).fit(
        X, np.column_stack([target, -target]))
    assert two.predict(X[:5]).shape == (5, 2)


@pytest.mark.parametrize("how", ["pickle", "skops", "folder"])
def test_student_round_trips(student, toy_data, tmp_path, how):
    """Check that pickle, skops (with the documented trusted types) and a
    save_pretrained folder give the same predictions and parameters back."""
    from skbert import TRUSTED_TYPES

    _, _, X_test, _ = toy_data
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(student))
    elif how == "skops":
        sio.dump(student, tmp_path / "s.skops")
        assert set(sio.get_untrusted_types(file=tmp_path / "s.skops")) <= set(TRUSTED_TYPES)
        loaded = sio.load(tmp_path / "s.skops", trusted=TRUSTED_TYPES)
    else:
        student.save_pretrained(tmp_path / "s")
        student.save_pretrained(tmp_path / "s")  # its own folder may be replaced
        loaded = StaticTextClassifier.from_pretrained(tmp_path / "s")
    np.testing.assert_array_equal(loaded.predict_proba(X_test), student.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.classes_, student.classes_)
    assert loaded.get_params() == student.get_params()


def test_saved_student_predicts_without_torch(student, toy_data, tmp_path):
    """Check that loading and predicting with a saved student imports neither torch
    nor transformers: in a subprocess where importing them fails."""
    _, _, X_test, _ = toy_data
    student.save_pretrained(tmp_path / "folder")
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(student))
    sio.dump(student, tmp_path / "model.skops")
    np.save(tmp_path / "expected.npy", student.predict_proba(X_test))
    script = textwrap.dedent(f"""
        import sys
        class Refuse:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("torch", "transformers"):
                    raise ImportError(f"{{name}} may not be imported here")
        sys.meta_path.insert(0, Refuse())
        import pickle
        import numpy as np
        import skops.io as sio
        import skbert
        X = {X_test!r}
        expected = np.load({str(tmp_path / "expected.npy")!r})
        folder = skbert.StaticTextClassifier.from_pretrained({str(tmp_path / "folder")!r})
        pickled = pickle.loads(open({str(tmp_path / "model.pkl")!r}, "rb").read())
        skopsed = sio.load({str(tmp_path / "model.skops")!r}, trusted=skbert.TRUSTED_TYPES)
        for model in (folder, pickled, skopsed):
            np.testing.assert_array_equal(model.predict_proba(X), expected)
            model.predict(X)
        assert not any(m.split(".")[0] in ("torch", "transformers") for m in sys.modules)
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def test_the_folder_is_a_model2vec_folder(student, tmp_path):
    """Check the files: the token table under "embeddings" with Model2Vec's config, no
    pickle and no code."""
    import json

    from safetensors.numpy import load_file

    folder = student.save_pretrained(tmp_path / "m")
    names = {p.name for p in folder.iterdir()}
    assert names == {"model.safetensors", "head.safetensors", "tokenizer.json",
                     "config.json", "skbert_static.json"}
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "model2vec"
    np.testing.assert_array_equal(load_file(folder / "model.safetensors")["embeddings"],
                                  student.embeddings_)


def test_errors(fitted, tiny_params, tmp_path):
    """Check the refusals: unfitted teacher or student, text pairs, bad parameters,
    a folder that is not a student's, a student folder over another model's."""
    with pytest.raises(NotFittedError):
        BertTextClassifier(**tiny_params).distill(["a text"])
    with pytest.raises(NotFittedError):
        StaticTextClassifier().predict(["a text"])
    with pytest.raises(ValueError, match="single texts"):
        fitted.distill([("a", "b"), ("c", "d")])
    with pytest.raises(InvalidParameterError, match="pca_dims"):
        fitted.distill(["good film"], pca_dims=1)
    with pytest.raises(InvalidParameterError, match="C"):
        StaticTextClassifier(C=-1.0).fit(["good", "bad"], [1, 0])
    with pytest.raises(FileNotFoundError, match="skbert_static.json"):
        StaticTextClassifier.from_pretrained(tmp_path)
    fitted.save_pretrained(tmp_path / "teacher")
    with pytest.raises(FileNotFoundError, match="skbert_static.json"):
        StaticTextClassifier.from_pretrained(tmp_path / "teacher")


def test_cascade_of_the_student_and_its_teacher(fitted, student, toy_data):
    """Check that a distilled student and its teacher make a cascade: the threshold
    keeps held-out accuracy within the tolerance of the teacher's."""
    from sklearn.frozen import FrozenEstimator

    from skbert import CascadeClassifier

    _, _, X_test, y_test = toy_data
    labels = np.array(["neg", "pos"])[y_test]
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(fitted),
                                tolerance=0.0).fit(X_test, labels)
    assert cascade.cascade_accuracy_ >= cascade.teacher_accuracy_
    deferred = cascade.defer(X_test)
    np.testing.assert_array_equal(cascade.predict(X_test)[~deferred],
                                  student.predict(np.array(X_test)[~deferred]))
