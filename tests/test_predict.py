"""Prediction: token-budget batches, precision, chunks and invariances."""

import copy

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skbert import BertTextClassifier, _device

from .conftest import make_texts

TEXTS, _ = make_texts(90, seed=11)
TEXTS = TEXTS + ["", "good " * 200, "bad"]  # empty, truncated and one-word texts together


@pytest.fixture(scope="module")
def fp32(fitted):
    """The fitted toy classifier predicting in float32."""
    return copy.deepcopy(fitted).set_params(inference_dtype="float32")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(seed=st.integers(0, 2**32 - 1), budget=st.integers(8, 3000))
def test_predict_proba_permutation_and_budget_invariant(fp32, seed, budget):
    """Check that permuting the input permutes the output, under any batch budget."""
    reference = fp32.predict_proba(TEXTS)
    perm = np.random.default_rng(seed).permutation(len(TEXTS))
    clf = fp32.set_params(predict_batch_tokens=budget)
    try:
        proba = clf.predict_proba([TEXTS[i] for i in perm])
    finally:
        clf.set_params(predict_batch_tokens=None)
    np.testing.assert_allclose(proba, reference[perm], atol=1e-5)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.lists(st.integers(0, len(TEXTS) - 1), min_size=1, max_size=len(TEXTS)))
def test_predict_proba_of_a_subset_is_the_subset_of_rows(fp32, rows):
    """Check that a text's probabilities do not depend on the other texts of the call."""
    reference = fp32.predict_proba(TEXTS)
    proba = fp32.predict_proba([TEXTS[i] for i in rows])
    np.testing.assert_allclose(proba, reference[rows], atol=1e-5)


def test_predict_zero_and_one_text(fitted):
    """Check that no texts give shape (0, n_classes) and one text works."""
    assert fitted.predict_proba([]).shape == (0, 2)
    assert fitted.predict([]).shape == (0,)
    assert fitted.predict_proba(["good"]).shape == (1, 2)


def test_iter_predict_proba_streams_a_generator(fp32):
    """Check that chunked prediction of a generator equals predict_proba, chunk by chunk."""
    expected = fp32.predict_proba(TEXTS)
    chunks = list(fp32.iter_predict_proba((t for t in TEXTS), chunk_size=7))
    assert [len(c) for c in chunks] == [7] * (len(TEXTS) // 7) + [len(TEXTS) % 7]
    np.testing.assert_allclose(np.concatenate(chunks), expected, atol=1e-5)


def test_iter_predict_proba_errors_name_global_index(fitted):
    """Check that a bad text in a later chunk is reported at its index in the input."""
    texts = iter(["good"] * 10 + [None])
    with pytest.raises(ValueError, match="index 10"):
        list(fitted.iter_predict_proba(texts, chunk_size=4))
    with pytest.raises(ValueError, match="chunk_size must be a positive int"):
        next(fitted.iter_predict_proba(["good"], chunk_size=0))


def test_bf16_matches_fp32(fp32):
    """Check that bf16 autocast keeps the argmax and probabilities within 1e-2 of fp32."""
    texts, _ = make_texts(400, seed=12)
    reference = fp32.predict_proba(texts)
    fp32.set_params(inference_dtype="bfloat16")
    try:
        proba = fp32.predict_proba(texts)
    finally:
        fp32.set_params(inference_dtype="float32")
    assert np.mean(proba.argmax(1) == reference.argmax(1)) >= 0.995
    np.testing.assert_allclose(proba, reference, atol=1e-2)


def test_inference_dtype_auto_resolution(monkeypatch):
    """Check that "auto" picks bf16 on CPUs where bf16 pays and fp32 otherwise."""
    cpu = torch.device("cpu")
    monkeypatch.delenv("SKBERT_CPU_BF16", raising=False)  # the suite's forced answer
    monkeypatch.setattr(_device, "cpu_bf16_pays", lambda: True)
    assert _device.inference_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.setattr(_device, "cpu_bf16_pays", lambda: False)
    assert _device.inference_dtype("auto", cpu) is None
    assert _device.inference_dtype("float32", cpu) is None
    assert _device.inference_dtype("bfloat16", cpu) is torch.bfloat16
    for forced, expected in (("1", torch.bfloat16), ("0", None)):  # the suite's switch
        monkeypatch.setenv("SKBERT_CPU_BF16", forced)
        assert _device.inference_dtype("auto", cpu) is expected


@pytest.mark.parametrize(
    ("flags", "fp32_seconds", "bf16_seconds", "expected"),
    [
        (True, 2.0, 1.0, True),  # bf16 twice as fast (AMX, or AVX512-BF16 on some CPUs)
        (True, 4.2, 7.6, False),  # flagged but slower: measured on a Xeon without AMX
        (True, 1.1, 1.0, False),  # a 10% gain does not pay for the casts
        (False, 2.0, 1.0, False),  # no flag: emulated, never timed
    ],
)
def test_cpu_bf16_pays_needs_the_flag_and_a_measured_gain(
    monkeypatch, flags, fp32_seconds, bf16_seconds, expected
):
    """Check that bf16 is chosen from the CPU flags and a timing, not the flags alone."""
    timed = []

    def fake_seconds(dtypes, repeats=5):
        timed.extend(dtypes)
        return [fp32_seconds if d is torch.float32 else bf16_seconds for d in dtypes]

    monkeypatch.setattr(_device, "cpu_has_native_bf16", lambda: flags)
    monkeypatch.setattr(_device, "_best_linear_seconds", fake_seconds)
    _device.cpu_bf16_pays.cache_clear()
    try:
        assert _device.cpu_bf16_pays() is expected
        assert bool(timed) is flags
    finally:
        _device.cpu_bf16_pays.cache_clear()


def test_best_linear_seconds_times_the_requested_dtype():
    """Check that the self-test times a real product in each dtype it is given."""
    seconds = _device._best_linear_seconds((torch.float32, torch.bfloat16), repeats=2)
    assert len(seconds) == 2 and all(0 < s < 10 for s in seconds)


def test_bad_inference_dtype_is_a_parameter_error(tiny_params):
    """Check that an unknown precision is refused with the parameter's name."""
    with pytest.raises(ValueError, match="inference_dtype"):
        BertTextClassifier(**dict(tiny_params, inference_dtype="int4")).fit(["a", "b"], [0, 1])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_predict_matches_cpu(fitted):
    """Check that CUDA prediction (mixed precision, pinned copies) agrees with the CPU."""
    cpu = fitted.predict_proba(TEXTS)
    gpu = copy.deepcopy(fitted).set_params(device="cuda")
    np.testing.assert_allclose(gpu.predict_proba(TEXTS), cpu, atol=2e-2)
    assert next(gpu.model_.parameters()).is_cuda


def test_training_dtype_resolution(monkeypatch):
    """Check training precision: "auto" on a CPU follows the bf16 probe of prediction,
    bf16 on request, fp16 needs CUDA."""
    cpu = torch.device("cpu")
    monkeypatch.setenv("SKBERT_CPU_BF16", "0")
    assert _device.training_dtype("auto", cpu) is None
    monkeypatch.setenv("SKBERT_CPU_BF16", "1")
    assert _device.training_dtype("auto", cpu) is torch.bfloat16
    monkeypatch.delenv("SKBERT_CPU_BF16")
    monkeypatch.setattr(_device, "cpu_bf16_pays", lambda: False)
    assert _device.training_dtype("auto", cpu) is None
    monkeypatch.setattr(_device, "cpu_bf16_pays", lambda: True)
    assert _device.training_dtype("auto", cpu) is torch.bfloat16
    assert _device.training_dtype("float32", cpu) is None
    assert _device.training_dtype("bfloat16", cpu) is torch.bfloat16
    with pytest.raises(ValueError, match="training_dtype='float16' needs a CUDA device"):
        _device.training_dtype("float16", cpu)


def test_bf16_training_on_cpu_learns_reproducibly(tiny_params, toy_data):
    """Check that bf16 autocast training learns the toy task and is deterministic."""
    X, y, X_test, y_test = toy_data
    params = dict(tiny_params, training_dtype="bfloat16", inference_dtype="float32")
    a = BertTextClassifier(**params).fit(X, y)
    b = BertTextClassifier(**params).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X_test), b.predict_proba(X_test))
    assert a.score(X_test, y_test) > 0.85


def test_predict_proba_from_many_threads(fp32):
    """Check that threads predicting at once on one estimator all get correct results."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    inputs = [TEXTS[i::4] * 5 for i in range(4)] * 2  # different texts in each thread
    expected = [fp32.predict_proba(texts) for texts in inputs]
    start = threading.Barrier(len(inputs))

    def predict(texts):
        start.wait()  # every thread enters predict_proba at the same moment
        return fp32.predict_proba(texts)

    with ThreadPoolExecutor(len(inputs)) as pool:
        results = list(pool.map(predict, inputs))
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
