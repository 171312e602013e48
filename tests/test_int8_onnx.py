"""int8 prediction on the CPU and ONNX export."""

import copy
import json
import pickle

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier, _modeling

from .conftest import make_texts

TEXTS, _ = make_texts(80, seed=21)
TEXTS = TEXTS + ["", "good " * 100]


@pytest.fixture(scope="module")
def fp32_fitted(tiny_params, toy_data):
    """The toy classifier trained in fp32 whatever "auto" is: int8's agreement is a
    property of the weights, and a model trained in emulated bf16 (the suite's bf16 pass
    on a CPU without bf16 units) put a text at 0.53 that int8 moved to 0.38."""
    X, y, _, _ = toy_data
    return BertTextClassifier(**tiny_params, training_dtype="float32").fit(
        X, np.array(["neg", "pos"])[y])


@pytest.fixture(scope="module")
def int8(fp32_fitted):
    """A copy of the fp32-trained toy classifier predicting with int8 Linear layers."""
    return copy.deepcopy(fp32_fitted).set_params(inference_dtype="int8")


def test_int8_agrees_with_fp32(fp32_fitted, int8):
    """Check that int8 predictions stay close to fp32 ones on the toy model."""
    reference = copy.deepcopy(fp32_fitted).set_params(
        inference_dtype="float32").predict_proba(TEXTS)
    proba = int8.predict_proba(TEXTS)
    assert proba.shape == reference.shape
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert np.mean(proba.argmax(1) == reference.argmax(1)) >= 0.95
    assert np.abs(proba - reference).max() < 0.1


def _kind(module):
    return "int8" if type(module).__module__.startswith("torch.ao.nn.quantized") else "float"


def test_int8_quantizes_once_and_leaves_model_alone(int8):
    """Check that the quantized copy is cached and the fitted network keeps float weights."""
    int8.predict_proba(TEXTS[:3])
    first = int8._derived_model[2]
    int8.predict(TEXTS[3:6])
    assert int8._derived_model[2] is first
    # Every encoder Linear is quantized in the copy, none in the fitted network.
    kinds = [_kind(m) for m in first.backbone.encoder.modules() if type(m).__name__ == "Linear"]
    assert kinds == ["int8"] * (2 * 6)  # 2 layers of 6 Linear layers
    assert _kind(first.head[-1]) == "float"
    assert {_kind(m) for m in int8.model_.modules() if type(m).__name__ == "Linear"} == {"float"}


def test_int8_copy_is_not_pickled_and_refit_discards_it(tiny_params, int8):
    """Check that pickling drops the int8 copy and fitting again makes a fresh one."""
    int8.predict_proba(TEXTS[:2])
    restored = pickle.loads(pickle.dumps(int8))
    assert "_derived_model" not in restored.__dict__
    np.testing.assert_allclose(restored.predict_proba(TEXTS), int8.predict_proba(TEXTS),
                               atol=1e-6)
    X, y = make_texts(40, seed=3)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, inference_dtype="int8")).fit(X, y)
    clf.predict(X[:2])
    before = clf._derived_model[2]
    clf.fit(X, y)
    assert "_derived_model" not in clf.__dict__
    clf.predict(X[:2])
    assert clf._derived_model[2] is not before


def test_int8_never_used_for_training(tiny_params):
    """Check that inference_dtype='int8' leaves training in full precision."""
    X, y = make_texts(40, seed=4)
    params = dict(tiny_params, max_iter=2)
    plain = BertTextClassifier(**params).fit(X, y)
    quant = BertTextClassifier(**dict(params, inference_dtype="int8")).fit(X, y)
    assert plain.loss_curve_ == quant.loss_curve_


def test_int8_refused_off_cpu(int8, monkeypatch):
    """Check that int8 on a CUDA device is refused with the fix in the message."""
    monkeypatch.setattr(int8, "device", "cuda")
    monkeypatch.setattr("skbert._device.resolve_device", lambda requested: torch.device("cuda"))
    with pytest.raises(ValueError, match=r"inference_dtype='int8' runs on the CPU only"):
        int8.predict_proba(TEXTS[:2])


def test_int8_refused_without_quantized_engine(fitted, monkeypatch):
    """Check that a torch build without a quantized CPU engine gets a clear error."""
    clf = copy.deepcopy(fitted).set_params(inference_dtype="int8")
    monkeypatch.setattr(torch._C, "_supported_qengines", lambda: [])  # a build without any
    assert _modeling.quantized_engine() is None
    with pytest.raises(RuntimeError, match="quantized CPU engine"):
        clf.predict_proba(TEXTS[:2])


def test_int8_threads_share_one_copy(int8, monkeypatch):
    """Check that threads predicting at once get the same results and one quantized copy."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    expected = copy.deepcopy(int8).predict_proba(TEXTS)
    int8.__dict__.pop("_derived_model", None)
    calls = []
    quantize = _modeling.quantize_int8
    monkeypatch.setattr(_modeling, "quantize_int8",
                        lambda model: calls.append(1) or quantize(model))
    start = threading.Barrier(4)

    def predict(_):
        start.wait()  # all four threads ask for the int8 copy at once
        return int8.predict_proba(TEXTS), int8._derived_model[2]

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(predict, range(4)))
    assert len(calls) == 1
    assert len({id(model) for _, model in results}) == 1
    for proba, _ in results:
        np.testing.assert_allclose(proba, expected, atol=1e-6)


# ------------------------------------------------------------------------- ONNX
@pytest.fixture(scope="module")
def ort():
    """onnxruntime, and the exporter's onnxscript; the ONNX tests skip without them."""
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (skbert[onnx])")
    return pytest.importorskip("onnxruntime", reason="onnxruntime is in the test extra")


def _run_onnx(ort, folder, texts):
    from transformers import AutoTokenizer

    meta = json.loads((folder / "skbert_onnx.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(folder)
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tokenizer(texts, truncation=True, max_length=meta["max_length"], padding=True,
                    return_tensors="np")
    feeds = {name: enc[name].astype(np.int64) for name in meta["inputs"]}
    return session.run(["logits"], feeds)[0], meta


@pytest.fixture(scope="module")
def exported(ort, fitted, tmp_path_factory):
    """The fitted toy classifier exported to ONNX."""
    return fitted.export_onnx(tmp_path_factory.mktemp("onnx") / "model")


@pytest.mark.parametrize("texts", [TEXTS[:1], TEXTS[:17], TEXTS], ids=["one", "17", "all"])
def test_export_onnx_matches_torch(ort, fitted, exported, texts):
    """Check that ONNX Runtime's logits match torch fp32 within 1e-4, any batch and length."""
    logits, meta = _run_onnx(ort, exported, texts)
    clf = copy.deepcopy(fitted).set_params(inference_dtype="float32")
    expected = clf._predict_logits(texts)
    np.testing.assert_allclose(logits, expected, atol=1e-4)
    assert meta["classes"] == fitted.classes_.tolist()
    assert meta["inputs"] == ["input_ids", "attention_mask"]


def test_export_onnx_quantizes_with_onnx_runtime(ort, fitted, exported, tmp_path):
    """Check that ONNX Runtime's dynamic int8 quantization of the graph runs and agrees."""
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    folder = shutil.copytree(exported, tmp_path / "int8")
    quantize_dynamic(exported / "model.onnx", folder / "model.onnx", weight_type=QuantType.QInt8)
    logits, _ = _run_onnx(ort, folder, TEXTS)
    expected = copy.deepcopy(fitted).set_params(inference_dtype="float32")._predict_logits(TEXTS)
    assert logits.shape == expected.shape
    assert np.mean(logits.argmax(1) == expected.argmax(1)) >= 0.95


def test_export_onnx_text_pairs(ort, tiny_params, tmp_path):
    """Check that a pair model exports token_type_ids and still matches torch."""
    X, y = make_texts(40, seed=5)
    pairs = np.array([[a, b] for a, b in zip(X, X[::-1], strict=True)], dtype=object)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, inference_dtype="float32"))
    clf.fit(pairs, y)
    folder = clf.export_onnx(tmp_path / "pairs")
    logits, meta = _run_onnx(ort, folder, [list(p) for p in pairs[:9]])
    assert meta["inputs"][-1] == "token_type_ids" and meta["text_pairs"] is True
    np.testing.assert_allclose(logits, clf._predict_logits(pairs[:9]), atol=1e-4)


def test_export_onnx_failure_keeps_previous_folder(fitted, exported, monkeypatch):
    """Check that a failing export leaves the previous export intact and no staging folder."""
    before = sorted(p.name for p in exported.parent.iterdir())
    model_bytes = (exported / "model.onnx").read_bytes()

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(type(fitted.tokenizer_), "save_pretrained", broken)
    with pytest.raises(OSError, match="disk full"):
        fitted.export_onnx(exported)
    assert sorted(p.name for p in exported.parent.iterdir()) == before
    assert (exported / "model.onnx").read_bytes() == model_bytes


def test_export_onnx_unfitted_and_unserialisable_labels(fitted, tmp_path):
    """Check the errors for an unfitted estimator and labels JSON cannot hold."""
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        BertTextClassifier().export_onnx(tmp_path / "x")
    clf = copy.deepcopy(fitted)
    clf.classes_ = np.array([b"neg", b"pos"], dtype=object)  # bytes: JSON cannot hold them
    with pytest.raises(TypeError, match="not JSON serialisable"):
        clf.export_onnx(tmp_path / "x")
    assert not (tmp_path / "x").exists()


_EXPORT_IN_CHILD = """
import pickle, sys
clf = pickle.loads(open(sys.argv[1], "rb").read())
clf.predict(["warm up"])  # prediction's own first-call work, before the mark
print("MARK", flush=True)
print("MARK", file=sys.stderr, flush=True)
clf.export_onnx(sys.argv[2])
"""


@pytest.mark.any_precision
def test_export_onnx_prints_nothing(ort, fitted, tmp_path, capfd):
    """Check that export_onnx writes nothing to stdout or stderr, on a fresh process's
    first export (where torch's exporter logs its "torchvision is not installed" notes)
    and in this one, and that it puts the exporter's logger levels back."""
    import logging
    import subprocess
    import sys

    saved = tmp_path / "fitted.pkl"
    saved.write_bytes(pickle.dumps(fitted))
    child = subprocess.run(
        [sys.executable, "-c", _EXPORT_IN_CHILD, str(saved), str(tmp_path / "child")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert child.returncode == 0, child.stderr
    assert (tmp_path / "child" / "model.onnx").is_file()
    assert child.stdout.split("MARK\n", 1)[1] == ""
    assert child.stderr.split("MARK\n", 1)[1] == "", child.stderr

    levels = {name: logging.getLogger(name).level for name in ("torch.onnx", "onnxscript")}
    capfd.readouterr()
    fitted.export_onnx(tmp_path / "here")
    assert capfd.readouterr() == ("", "")
    assert {name: logging.getLogger(name).level for name in levels} == levels
