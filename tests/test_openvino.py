"""Prediction through OpenVINO (inference_backend="openvino")."""

import copy
import pickle
import sys

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier, BertTextRegressor
from skbert._openvino import check_openvino

from .conftest import make_texts

pytest.importorskip("openvino", reason="inference_backend='openvino' needs openvino")
# OpenVINO picks its own precision, whatever torch's "auto" is: run once in CI.
pytestmark = pytest.mark.any_precision

TEXTS, _ = make_texts(60, seed=31)
TEXTS = TEXTS + ["", "good " * 100]


@pytest.fixture(scope="module")
def ov32(fitted):
    """The fitted toy classifier predicting through OpenVINO in fp32."""
    return copy.deepcopy(fitted).set_params(inference_backend="openvino",
                                            inference_dtype="float32")


def test_openvino_fp32_matches_torch(fitted, ov32):
    """Check that OpenVINO in fp32 gives torch fp32's probabilities, in input order."""
    reference = copy.deepcopy(fitted).set_params(inference_dtype="float32").predict_proba(TEXTS)
    proba = ov32.predict_proba(TEXTS)
    np.testing.assert_allclose(proba, reference, atol=1e-4)
    np.testing.assert_array_equal(ov32.predict(TEXTS), fitted.classes_[reference.argmax(1)])
    np.testing.assert_allclose(ov32.decision_function(TEXTS[:5]),
                               fitted.decision_function(TEXTS[:5]), atol=2e-2)


def test_openvino_default_precision_stays_close(fitted):
    """Check that OpenVINO's own precision for this CPU ("auto") stays near fp32."""
    reference = copy.deepcopy(fitted).set_params(inference_dtype="float32").predict_proba(TEXTS)
    auto = copy.deepcopy(fitted).set_params(inference_backend="openvino")
    assert np.abs(auto.predict_proba(TEXTS) - reference).max() < 2e-2


def test_openvino_compiles_once_per_setting_and_is_not_pickled(tiny_params, ov32):
    """Check the compilation is kept, remade for another precision or a new fit, and
    never pickled."""
    ov32.predict_proba(TEXTS[:3])
    first = ov32._derived_model[2]
    ov32.predict(TEXTS[3:6])
    assert ov32._derived_model[2] is first
    restored = pickle.loads(pickle.dumps(ov32))
    assert "_derived_model" not in restored.__dict__
    np.testing.assert_allclose(restored.predict_proba(TEXTS), ov32.predict_proba(TEXTS),
                               atol=1e-6)
    other = copy.deepcopy(ov32)
    other.predict(TEXTS[:2])
    compiled = other._derived_model[2]
    other.set_params(inference_dtype="bfloat16").predict(TEXTS[:2])
    assert other._derived_model[2] is not compiled
    X, y = make_texts(30, seed=4)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, inference_backend="openvino"))
    clf.fit(X, y).predict(X[:2])
    before = clf._derived_model[2]
    clf.fit(X, y)
    assert "_derived_model" not in clf.__dict__
    clf.predict(X[:2])
    assert clf._derived_model[2] is not before


def test_openvino_transform_runs_in_torch(fitted, ov32):
    """Check that embeddings under the OpenVINO backend are torch's."""
    torch32 = copy.deepcopy(fitted).set_params(inference_dtype="float32")
    np.testing.assert_array_equal(ov32.transform(TEXTS[:8]), torch32.transform(TEXTS[:8]))


def test_openvino_pairs_windows_and_regressor(tiny_params):
    """Check token_type_ids (pairs), pooled windows and a regressor through OpenVINO."""
    X, y = make_texts(40, seed=5)
    pairs = [[a, b] for a, b in zip(X, X[::-1], strict=True)]
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(pairs, y)
    reference = clf.set_params(inference_dtype="float32").predict_proba(pairs)
    ov = clf.set_params(inference_backend="openvino").predict_proba(pairs)
    np.testing.assert_allclose(ov, reference, atol=1e-4)

    long = [" ".join([text] * 8) for text in X]
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, max_length=16,
                                    truncation="window")).fit(long, y)
    reference = clf.set_params(inference_dtype="float32").predict_proba(long)
    windowed = clf.set_params(inference_backend="openvino").predict_proba(long)
    np.testing.assert_allclose(windowed, reference, atol=1e-4)

    reg = BertTextRegressor(**dict(tiny_params, max_iter=1, inference_dtype="float32"))
    reg.fit(X, np.linspace(0, 1, len(X)))
    reference = reg.predict(X)
    np.testing.assert_allclose(reg.set_params(inference_backend="openvino").predict(X),
                               reference, atol=1e-4)


@pytest.mark.parametrize("dtype", ["int8", "float16"])
def test_openvino_refuses_dtypes_it_does_not_serve(fitted, dtype):
    """Check that int8 and float16 are refused with both parameters named."""
    clf = copy.deepcopy(fitted).set_params(inference_backend="openvino", inference_dtype=dtype)
    pattern = f"inference_backend='openvino'.*inference_dtype='{dtype}'"
    with pytest.raises(ValueError, match=pattern):
        clf.predict(TEXTS[:2])


def test_openvino_refuses_gpus():
    """Check that a CUDA device is refused before anything is compiled."""
    with pytest.raises(ValueError, match="CPU only.*device='cpu'"):
        check_openvino("auto", torch.device("cuda", 0))


def test_openvino_missing_package_says_how_to_install(fitted, monkeypatch):
    """Check the message when openvino is not installed."""
    monkeypatch.setitem(sys.modules, "openvino", None)
    clf = copy.deepcopy(fitted).set_params(inference_backend="openvino")
    with pytest.raises(ImportError, match=r"pip install 'skbert\[openvino\]'"):
        clf.predict(TEXTS[:2])


def test_cli_predict_through_openvino(fitted, tmp_path, capsys):
    """Check that `skbert predict --inference-backend openvino` predicts as in process,
    and that a setting OpenVINO refuses names the option."""
    import pandas as pd
    import skops.io as sio

    from skbert._cli import main

    model = tmp_path / "model.skops"
    sio.dump(copy.deepcopy(fitted).set_params(inference_dtype="float32"), model)
    data = tmp_path / "test.csv"
    pd.DataFrame({"text": TEXTS}).to_csv(data, index=False)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(model), str(data), "--out", str(out), "--proba", "--quiet",
                 "--inference-backend", "openvino"]) == 0
    proba = pd.read_csv(out).filter(like="proba_").to_numpy()
    reference = copy.deepcopy(fitted).set_params(inference_dtype="float32").predict_proba(TEXTS)
    np.testing.assert_allclose(proba, reference, atol=1e-4)
    int8 = tmp_path / "int8.skops"
    sio.dump(copy.deepcopy(fitted).set_params(inference_dtype="int8"), int8)
    assert main(["predict", str(int8), str(data), "--out", str(tmp_path / "x.csv"),
                 "--inference-backend", "openvino"]) != 0
    assert "inference_dtype='int8'" in capsys.readouterr().err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sigaltstack via libc")
def test_openvino_leaves_the_signal_stack_alone(fitted):
    """Check that compiled models destroyed out of order leave this thread's alternate
    signal stack as it was: OpenVINO reinstates the stack it found at compile time, and a
    freed one left installed crashed the process at the next Ctrl-C (a training run's
    deferred interrupt, after predicting through OpenVINO)."""
    import ctypes
    import gc

    from skbert._openvino import _LIBC, _SignalStack

    def current():
        stack = _SignalStack()
        assert _LIBC.sigaltstack(None, ctypes.byref(stack)) == 0
        return stack.ss_sp, stack.ss_flags, stack.ss_size

    before = current()
    first = copy.deepcopy(fitted).set_params(inference_backend="openvino",
                                             inference_dtype="float32")
    second = copy.deepcopy(fitted).set_params(inference_backend="openvino",
                                              inference_dtype="bfloat16")
    first.predict(TEXTS[:2])
    second.predict(TEXTS[:2])
    assert current() == before
    del first  # made first, destroyed first: the order that left a freed stack
    gc.collect()
    del second
    gc.collect()
    assert current() == before
