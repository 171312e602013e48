"""The CUDA path on a real GPU (``benchmarks/gpu_check.py`` runs these; skipped without one).

What a CPU cannot show: dropout drawing from the fit's own CUDA generator, the precision
"auto" picks on a GPU and fp16's loss scaling, host syncs per batch, copies from pinned
memory, a real out-of-memory error and the halving after it, checkpoints and saved
models moving between the GPU and the CPU.
"""

import contextlib
import warnings

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier

from .conftest import make_texts

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

CUDA = torch.device("cuda")


@pytest.fixture(scope="module")
def cuda_params(tiny_params):
    return dict(tiny_params, device="cuda")


@pytest.fixture(scope="module")
def cuda_fitted(cuda_params, toy_data):
    X, y, _, _ = toy_data
    return BertTextClassifier(**cuda_params).fit(X, y)


@contextlib.contextmanager
def counted_syncs():
    """Count the host syncs of the block (torch's sync debug mode warns on each)."""
    torch.cuda.synchronize()
    count = [0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield count
        finally:
            torch.cuda.set_sync_debug_mode("default")
            count[0] = sum("synchronizing" in str(w.message) for w in caught)


@contextlib.contextmanager
def memory_cap(extra_bytes):
    """Let this process's CUDA allocator hold only what it holds now plus ``extra_bytes``."""
    index = torch.cuda.current_device()  # the fraction wants an index, not "cuda"
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(index).total_memory
    cap = torch.cuda.memory_reserved(index) + extra_bytes
    torch.cuda.set_per_process_memory_fraction(cap / total, index)
    try:
        yield
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, index)
        torch.cuda.empty_cache()


def test_fit_on_cuda_is_seeded_by_random_state_alone(cuda_params, toy_data):
    """Check that dropout on CUDA draws from the fit's own generator: the same
    random_state gives the same network, another gives another, and torch's global CUDA
    generator is neither read nor advanced."""
    X, y, X_test, _ = toy_data
    torch.cuda.manual_seed(123)
    before = torch.cuda.get_rng_state()
    a = BertTextClassifier(**cuda_params).fit(X, y)
    assert torch.equal(torch.cuda.get_rng_state(), before)
    torch.cuda.manual_seed(456)  # another global state: no effect on the fit
    b = BertTextClassifier(**cuda_params).fit(X, y)
    c = BertTextClassifier(**dict(cuda_params, random_state=1)).fit(X, y)
    assert next(a.model_.parameters()).is_cuda
    pa, pb, pc = (m.predict_proba(X_test) for m in (a, b, c))
    np.testing.assert_allclose(pa, pb, atol=1e-5)
    assert np.abs(pa - pc).max() > 1e-3


@pytest.mark.parametrize("dtype", ["auto", "bfloat16", "float16", "float32"])
def test_each_training_precision_learns_on_cuda(cuda_params, toy_data, dtype):
    """Check every training precision on a GPU: "auto" is bf16 on Ampere and later,
    fp16 trains through a loss scaler, and each learns the toy task."""
    from skbert import _device

    X, y, X_test, y_test = toy_data
    if dtype == "auto":
        bf16 = torch.cuda.get_device_capability(CUDA)[0] >= 8
        expected = torch.bfloat16 if bf16 else torch.float16
        assert _device.training_dtype("auto", CUDA) is expected
        assert _device.inference_dtype("auto", CUDA) is expected
    if dtype == "bfloat16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    clf = BertTextClassifier(**dict(cuda_params, training_dtype=dtype)).fit(X, y)
    assert np.isfinite(clf.loss_curve_).all()
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.score(X_test, y_test) > 0.85


def test_predict_syncs_the_same_whatever_the_number_of_batches(cuda_fitted):
    """Check that prediction waits for the GPU once per call, not once per batch, and
    that many small batches (pinned, non-blocking copies) give the same rows as one."""
    texts, _ = make_texts(400, seed=3)
    clf = cuda_fitted
    params = clf.get_params()
    try:
        clf.set_params(inference_dtype="float32", predict_batch_tokens=1 << 16)
        clf.predict_proba(texts[:8])  # warm-up: the network moves to the GPU
        with counted_syncs() as one:
            single = clf.predict_proba(texts)
        clf.set_params(predict_batch_tokens=64)  # 79 batches
        with counted_syncs() as many:
            batched = clf.predict_proba(texts)
    finally:
        clf.set_params(**params)
    # 79 batches: before skbert built the SDPA masks itself, transformers read each
    # batch's padding mask back to decide whether to skip it (80 syncs against 3).
    assert many[0] <= max(one[0], 2), (one[0], many[0])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_training_syncs_at_most_once_per_step(cuda_params, toy_data):
    """Check that a fit waits for the GPU at most once per optimizer step (the loss
    read that guards against a non-finite loss): the syncs of 2 and 4 epochs differ by
    at most the 16 steps between them."""
    X, y, _, _ = toy_data
    counts = []
    for epochs in (2, 4):
        with counted_syncs() as syncs:
            BertTextClassifier(**dict(cuda_params, max_iter=epochs)).fit(X, y)
        counts.append(syncs[0])
    steps = 2 * -(-len(X) // cuda_params["batch_size"])
    print(f"host syncs: {counts} for 2 and 4 epochs, {steps} steps apart")
    assert counts[1] - counts[0] <= steps, counts


def test_real_out_of_memory_in_prediction_halves_the_budget(cuda_fitted):
    """Check that a real CUDA out-of-memory error while predicting halves the token
    budget and retries, with the same rows as an unconstrained run."""
    texts, _ = make_texts(3000, seed=4)
    clf = cuda_fitted
    params = clf.get_params()
    try:
        clf.set_params(inference_dtype="float32")
        expected = clf.predict_proba(texts)
        clf.set_params(predict_batch_tokens=1 << 22)  # one batch of every text
        with memory_cap(8 << 20), pytest.warns(
                UserWarning, match=r"Out of memory on cuda.*retrying with "
                                   r"predict_batch_tokens=\d+") as caught:
            got = clf.predict_proba(texts)
    finally:
        clf.set_params(**params)
    assert len(caught) >= 1
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_real_out_of_memory_in_training_names_what_to_lower(cuda_params):
    """Check that running out of GPU memory in fit says which parameters to lower and
    leaves the estimator unfitted."""
    X, y = make_texts(2000, seed=5)
    clf = BertTextClassifier(**dict(cuda_params, batch_size=2000, max_iter=1))
    with memory_cap(4 << 20), pytest.raises(
            RuntimeError, match=r"Out of memory on cuda.*batch_size=2000 and max_length=32"):
        clf.fit(X, y)
    assert not hasattr(clf, "model_")
    clf.set_params(batch_size=16).fit(X[:64], y[:64])  # the GPU is usable afterwards
    assert hasattr(clf, "model_")


def test_cuda_model_saved_and_loaded_on_the_cpu(cuda_fitted, toy_data, tmp_path):
    """Check that a model fitted on the GPU saves, loads and predicts on the CPU."""
    _, _, X_test, _ = toy_data
    expected = cuda_fitted.set_params(inference_dtype="float32").predict_proba(X_test)
    cuda_fitted.set_params(inference_dtype="auto")
    cuda_fitted.save_pretrained(tmp_path / "model")
    loaded = BertTextClassifier.from_pretrained(tmp_path / "model")
    loaded.set_params(device="cpu", inference_dtype="float32")
    got = loaded.predict_proba(X_test)
    assert not next(loaded.model_.parameters()).is_cuda
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_cuda_stream_resumes_exactly_from_its_checkpoint(cuda_params, tmp_path, toy_data):
    """Check that partial_fit on the GPU resumes from a checkpoint (the CUDA dropout
    generator's state included) exactly like the uninterrupted run."""
    _, _, X_test, _ = toy_data
    X, y = make_texts(160, seed=21)
    chunks = [(X[i:i + 40], y[i:i + 40]) for i in range(0, 160, 40)]
    params = dict(cuda_params, max_iter=1)

    def stream(parts, **extra):
        clf = BertTextClassifier(**dict(params, **extra))
        for Xc, yc in parts:
            clf.partial_fit(Xc, yc, classes=[0, 1])
        return clf

    full = stream(chunks).set_params(inference_dtype="float32")
    stream(chunks[:2], checkpoint_dir=str(tmp_path))
    resumed = BertTextClassifier.resume(tmp_path)
    assert resumed.n_iter_ == 2
    for Xc, yc in chunks[2:]:
        resumed.partial_fit(Xc, yc)
    resumed.set_params(inference_dtype="float32")
    np.testing.assert_allclose(resumed.predict_proba(X_test), full.predict_proba(X_test),
                               atol=1e-5)


def test_frozen_base_and_fp16_inference_on_cuda(cuda_params, tiny_model_dir, toy_data):
    """Check that a frozen base (features computed once on the GPU) keeps every backbone
    weight and trains the head, and that fp16 inference agrees with fp32."""
    from transformers import AutoModel

    X, y, X_test, _ = toy_data
    before = AutoModel.from_pretrained(tiny_model_dir).state_dict()
    clf = BertTextClassifier(**dict(cuda_params, freeze_base=True, learning_rate=1e-2,
                                    max_iter=30)).fit(X, y)
    after = clf.model_.backbone.state_dict()
    assert all(torch.equal(before[k], after[k].cpu()) for k in before)
    assert clf.loss_curve_[-1] < clf.loss_curve_[0] - 0.02
    fp32 = clf.set_params(inference_dtype="float32").predict_proba(X_test)
    fp16 = clf.set_params(inference_dtype="float16").predict_proba(X_test)
    np.testing.assert_allclose(fp16, fp32, atol=2e-2)
    assert (fp16.argmax(1) == fp32.argmax(1)).mean() >= 0.95
