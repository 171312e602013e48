"""What training changes in a network for a run: the seeded dropout's masks, the word
embedding's kept gradient, and the clipping done inside the fused AdamW step; the attention
switch through transformers' attention interface, and what it needs of transformers."""

import contextlib
import copy
import inspect
import re
import threading
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from skbert import BertTextClassifier, _engine, _patches
from skbert._patches import _dropout, kept_embedding_gradient


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_drops_its_share_and_keeps_the_expectation(dtype):
    """Check the 16-bit-lane masks: the drop share is p, kept values are scaled so the mean
    is unchanged, the generator decides the mask, and the gradient is the mask."""
    x = torch.ones(1_000_003, dtype=dtype, requires_grad=True)  # not a multiple of 4
    y = _dropout(x, 0.1, torch.Generator().manual_seed(0))
    assert y.dtype == dtype and y.shape == x.shape
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.1) < 0.002  # 5 standard deviations: 0.0003
    assert abs(y.float().mean().item() - 1.0) < 0.004
    assert set(torch.unique(y.detach().float()).tolist()) == {
        0.0, torch.tensor(65536 / (65536 - 6554), dtype=dtype).item()}
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())
    again = _dropout(x.detach(), 0.1, torch.Generator().manual_seed(0))
    other = _dropout(x.detach(), 0.1, torch.Generator().manual_seed(1))
    torch.testing.assert_close(again, y.detach())
    assert not torch.equal(other, again)


def test_dropout_masks_are_uniform_in_every_lane():
    """Check that each of the four 16-bit lanes of a draw drops its share: a lane with a
    constant bit (as ``random_()``'s sign bit) would drop half or none of its elements."""
    y = _dropout(torch.ones(4 * 200_000), 0.5, torch.Generator().manual_seed(3))
    shares = (y.view(-1, 4) == 0).float().mean(0)
    torch.testing.assert_close(shares, torch.full((4,), 0.5), atol=0.006, rtol=0)


def test_dropout_of_one_drops_everything():
    assert torch.count_nonzero(_dropout(torch.ones(7, 3), 1.0, torch.Generator())) == 0


def _tiny_bert(tiny_model_dir):
    from transformers import AutoModel

    return AutoModel.from_pretrained(tiny_model_dir).train()


def _grads(module):
    return {name: None if p.grad is None else p.grad.clone()
            for name, p in module.named_parameters()}


def _batches():
    generator = torch.Generator().manual_seed(0)
    ids = [torch.randint(1, 60, (4, 9), generator=generator) for _ in range(3)]
    for batch in ids:
        batch[:2, -3:] = 0  # padding: its row gets no gradient
    return ids


def test_kept_embedding_gradient_equals_autograds(tiny_model_dir):
    """Check step by step (new rows each step, padding, two backwards accumulating in one
    step, zero_grad keeping the tensors) that every gradient equals autograd's."""
    plain = _tiny_bert(tiny_model_dir)
    kept = copy.deepcopy(plain)
    for model in (plain, kept):  # no dropout: both runs must see the same function
        model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = 0
        for m in model.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0
    weight = kept.get_input_embeddings().weight

    def run(model, ids, set_to_none=True, accumulate=False):
        model.zero_grad(set_to_none=set_to_none)
        for batch in [ids, ids.flip(0)] if accumulate else [ids]:
            model(input_ids=batch, attention_mask=(batch != 0).long()).last_hidden_state.sum(
            ).backward()
        return _grads(model)

    with kept_embedding_gradient(kept):
        assert "forward" in kept.get_input_embeddings().__dict__
        steps = [(ids, dict()) for ids in _batches()]
        steps += [(_batches()[0], dict(accumulate=True)), (_batches()[1], dict(set_to_none=False))]
        for k, (ids, options) in enumerate(steps):
            expected, got = run(plain, ids, **options), run(kept, ids, **options)
            assert expected.keys() == got.keys()
            for name in expected:
                torch.testing.assert_close(got[name], expected[name], rtol=1e-5, atol=1e-6,
                                           msg=f"step {k}: {name}")
            assert torch.count_nonzero(weight.grad[0]) == 0  # the padding row
    assert "forward" not in kept.get_input_embeddings().__dict__
    # Outside the block the embedding is autograd's again.
    torch.testing.assert_close(run(kept, _batches()[2]), run(plain, _batches()[2]))


def test_kept_embedding_gradient_leaves_tied_and_disabled_embeddings(tiny_model_dir):
    """A weight shared with a decoder (masked LM) must get autograd's sum of both
    gradients, a data-parallel run every gradient through autograd, and a GPU (whose
    allocator reuses memory) no per-step wait for the rows: all left alone."""
    from transformers import AutoModelForMaskedLM

    mlm = AutoModelForMaskedLM.from_pretrained(tiny_model_dir)
    assert mlm.get_output_embeddings().weight is mlm.get_input_embeddings().weight
    with kept_embedding_gradient(mlm):
        assert "forward" not in mlm.get_input_embeddings().__dict__
    bert = _tiny_bert(tiny_model_dir)
    with kept_embedding_gradient(bert, enabled=False):
        assert "forward" not in bert.get_input_embeddings().__dict__
    bert.get_input_embeddings().requires_grad_(False)
    with kept_embedding_gradient(bert):
        assert "forward" not in bert.get_input_embeddings().__dict__
    off_cpu = _tiny_bert(tiny_model_dir).to("meta")  # as a GPU: not the CPU
    with kept_embedding_gradient(off_cpu):
        assert "forward" not in off_cpu.get_input_embeddings().__dict__


def test_fit_trains_the_embedding_as_autograd_does(tiny_params, toy_data, monkeypatch):
    """Check a whole fit: the kept gradient gives the weights autograd's gradient gives."""
    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=2, training_dtype="float32", inference_dtype="float32")
    added = []
    add = _patches._GradientHolder.add
    monkeypatch.setattr(_patches._GradientHolder, "add",
                        lambda self, *args: added.append(1) or add(self, *args))
    kept = BertTextClassifier(**params).fit(X, y)
    assert len(added) == kept.n_iter_ * -(-len(X) // params["batch_size"])  # every step
    assert all("forward" not in m.__dict__ for m in kept.model_.modules())
    monkeypatch.setattr(_engine, "kept_embedding_gradient",
                        lambda module, enabled: contextlib.nullcontext())
    plain = BertTextClassifier(**params).fit(X, y)
    for (name, a), b in zip(kept.model_.state_dict().items(), plain.model_.state_dict().values(),
                            strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)
    np.testing.assert_allclose(kept.predict_proba(X_test), plain.predict_proba(X_test),
                               atol=1e-4)


@pytest.mark.parametrize("max_norm", [1e-3, 1e3])
def test_clipping_inside_the_fused_step_equals_clip_grad_norm(max_norm):
    """Check that the fused step's ``grad_scale`` clips as ``clip_grad_norm_`` does, with
    the clip active (small max_norm) and not (large), and leaves no ``grad_scale``."""
    generator = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.randn(shape, generator=generator))
              for shape in [(50, 8), (8,), (3, 3)]]
    grads = [torch.randn(p.shape, generator=generator) for p in params]
    twins = [nn.Parameter(p.detach().clone()) for p in params]

    plan = _engine.TrainingPlan(warmup_steps=0, decay="constant")
    optimizer = torch.optim.AdamW([{"params": params, "lr": 0.1}], fused=True)
    state = _engine.TrainingState(optimizer, plan, seed=0, device=torch.device("cpu"))
    reference = torch.optim.AdamW([{"params": twins, "lr": 0.1}], fused=True)
    for _ in range(3):
        for p, q, g in zip(params, twins, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        state.step(params, max_norm)
        torch.nn.utils.clip_grad_norm_(twins, max_norm)
        reference.step()
        assert not hasattr(optimizer, "grad_scale")
        for p, q in zip(params, twins, strict=True):
            torch.testing.assert_close(p.grad, q.grad)  # clipped in place, as clip does
            torch.testing.assert_close(p.detach(), q.detach())
    assert state.steps == 3


def test_masks_off_the_cpu_never_read_the_device():
    """Check that the SDPA mask skbert gives transformers off the CPU is built without
    reading the padding mask back (transformers' own reads it to decide whether to skip
    the mask: a host sync per forward pass on a GPU), and that on the CPU it is
    transformers' own. A meta tensor stands for a GPU one: reading it fails."""
    from transformers.masking_utils import bidirectional_mask_function, sdpa_mask

    args = dict(batch_size=2, q_length=4, kv_length=4, q_offset=0, kv_offset=0,
                mask_function=bidirectional_mask_function, allow_is_bidirectional_skip=True,
                allow_is_causal_skip=True)
    meta = torch.ones(2, 4, dtype=torch.bool, device="meta")
    with pytest.raises((RuntimeError, NotImplementedError)):
        sdpa_mask(**args, attention_mask=meta, device=meta.device)
    built = _patches._sdpa_mask(**args, attention_mask=meta, device=meta.device)
    assert built.device.type == "meta" and built.shape == (2, 1, 4, 4)
    padded = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    for mask in (padded, torch.ones(2, 4, dtype=torch.bool)):  # None when nothing pads
        ours = _patches._sdpa_mask(**args, attention_mask=mask, device=mask.device)
        theirs = sdpa_mask(**args, attention_mask=mask, device=mask.device)
        assert (ours is None) == (theirs is None)
        assert ours is None or torch.equal(ours, theirs)


def test_masks_without_sync_swaps_sdpa_and_puts_it_back(tiny_model_dir):
    """Check that the block gives the network's SDPA attention skbert's masks with the
    same outputs, counts nested (or concurrent) blocks, and puts SDPA back after the
    last one; attention that is not SDPA is left alone."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    mask = (ids != 0).long()
    with torch.no_grad():
        expected = model(input_ids=ids, attention_mask=mask).last_hidden_state
        with _patches.masks_without_sync(model):
            assert model.config._attn_implementation == _patches._KEPT_MASK_ATTENTION
            with _patches.masks_without_sync(model):
                got = model(input_ids=ids, attention_mask=mask).last_hidden_state
            assert model.config._attn_implementation == _patches._KEPT_MASK_ATTENTION
        assert model.config._attn_implementation == "sdpa"
    torch.testing.assert_close(got, expected)
    eager = AutoModel.from_pretrained(tiny_model_dir, attn_implementation="eager")
    with _patches.masks_without_sync(eager):
        assert eager.config._attn_implementation == "eager"
    assert not _patches._MASKED_CONFIGS


def test_prediction_on_the_cpu_keeps_transformers_masks(fitted, monkeypatch):
    """Check that prediction swaps masks only off the CPU: on the CPU transformers'
    SDPA (which skips the mask of an unpadded batch, for the flash kernel) runs as is."""
    entered = []
    monkeypatch.setattr("skbert._prediction.masks_without_sync",
                        lambda module: entered.append(module) or contextlib.nullcontext())
    fitted.predict_proba(["good film", "bad plot"])
    assert entered == []
    from skbert._prediction import unsynced_masks

    with unsynced_masks(fitted.model_, torch.device("meta")):
        pass
    assert entered == [fitted.model_]


def test_transformers_has_what_the_attention_switch_reads():
    """Check, on the installed transformers, everything the attention switch relies on, so
    that a release without it fails here rather than fits silently losing seeded attention
    dropout or sync-free masks: the private ``_attn_implementation`` of a config (the one
    private attribute read), the public switch and registries, and the SDPA mask's skip
    arguments that ``_sdpa_mask`` turns off."""
    import transformers
    from transformers import AttentionInterface, AttentionMaskInterface, BertConfig, PreTrainedModel

    assert BertConfig(attn_implementation="sdpa")._attn_implementation == "sdpa"
    assert callable(PreTrainedModel.set_attn_implementation)
    assert callable(AttentionInterface.register) and callable(AttentionMaskInterface.register)
    assert callable(AttentionInterface()["sdpa"]) and callable(AttentionMaskInterface()["sdpa"])
    skips = inspect.signature(AttentionMaskInterface()["sdpa"]).parameters
    assert {"allow_is_bidirectional_skip", "allow_is_causal_skip"} <= skips.keys(), (
        f"transformers {transformers.__version__}: the SDPA mask no longer takes the skip "
        "arguments that _patches._sdpa_mask turns off on GPUs")


def test_only_the_patches_module_reads_the_private_attention_attribute():
    """Check that ``_patches`` is the one module of skbert that names transformers'
    private ``_attn_implementation`` (and that it reads it in one function only)."""
    package = Path(_patches.__file__).parent
    naming = sorted(str(f.relative_to(package)) for f in package.rglob("*.py")
                    if "_attn_implementation" in f.read_text(encoding="utf-8"))
    assert naming == ["_patches.py"]
    code = Path(_patches.__file__).read_text(encoding="utf-8")
    assert code.count("config._attn_implementation") == 1  # in _attention_of


def test_a_config_without_the_private_attribute_fails_loudly(tiny_model_dir):
    """Check that a transformers whose configs lost ``_attn_implementation`` gets an error
    naming the tested releases, not a fit whose attention dropout silently is unseeded."""
    with pytest.raises(RuntimeError, match=r"has no _attn_implementation.*tested with "
                                           r"transformers 5\.\d+ to 5\.\d+.*pip install"):
        _patches._attention_of(types.SimpleNamespace())
    assert _patches._attention_of(_tiny_bert(tiny_model_dir).config) == "sdpa"


def test_untested_transformers_releases_get_a_warning_once(monkeypatch, caplog):
    """Check the pinned range: a release outside ``TESTED_TRANSFORMERS`` gets a logged
    warning at first use (with the releases to install), once, and no Python warning (a
    newer transformers must not break code that runs under warnings as errors); a tested
    one gets nothing."""
    import logging
    import warnings

    import transformers

    low, high = _patches.TESTED_TRANSFORMERS
    assert _patches._tested(f"{high}.3") and _patches._tested(f"{low}.0rc1")
    major, minor = _patches._minor(high)
    assert not _patches._tested(f"{major}.{minor + 1}.0.dev0")
    assert not _patches._tested("4.57.1") and not _patches._tested("6.0.0")
    assert _patches._minor("5.26.0.dev0") == (5, 26) and _patches._minor("6") == (6, 0)
    assert _patches._TESTED_PIP.startswith(f"pip install 'transformers>={low},<5.")
    monkeypatch.setattr(transformers, "__version__", "5.99.0")
    monkeypatch.setattr(_patches, "_REGISTERED", [])
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING, logger="skbert"):
        warnings.simplefilter("error")
        _patches._transformers_checked()
        _patches._transformers_checked()  # once
        monkeypatch.setattr(transformers, "__version__",
                            _patches.TESTED_TRANSFORMERS[1] + ".0")
        monkeypatch.setattr(_patches, "_REGISTERED", [])
        _patches._transformers_checked()
    logged = [r.getMessage() for r in caplog.records if r.name == "skbert"]
    assert len(logged) == 1
    assert re.search(r"tested with transformers 5\.\d+ to .*this is transformers 5\.99\.0"
                     r".*pip install", logged[0])


def _counting_dropout(monkeypatch):
    """Count the calls of ``_patches._dropout`` on attention weights (4-d), the ones
    skbert's attention function makes."""
    calls = []
    dropout = _patches._dropout
    monkeypatch.setattr(_patches, "_dropout", lambda x, p, generator: (
        calls.append(x.shape) if x.dim() == 4 else None) or dropout(x, p, generator))
    return calls


def test_seeded_attention_runs_in_a_training_step(tiny_model_dir, monkeypatch):
    """Check that in a training step under ``seeded_dropout`` transformers calls skbert's
    registered attention function in every layer (its dropout drawn from the generator:
    same seed, same outputs), and that the model has its SDPA attention back after."""
    model = _tiny_bert(tiny_model_dir)
    calls = _counting_dropout(monkeypatch)
    ids = _batches()[0]

    def step(seed):
        with _patches.seeded_dropout(model, torch.Generator().manual_seed(seed)):
            assert _patches._attention_of(model.config) == _patches._SEEDED_ATTENTION
            out = model(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
            out.sum().backward()
        return out.detach()

    first = step(0)
    assert len(calls) == model.config.num_hidden_layers
    assert all(shape[:2] == (4, model.config.num_attention_heads) for shape in calls)
    torch.testing.assert_close(step(0), first, rtol=0, atol=0)
    assert not torch.equal(step(1), first)
    assert _patches._attention_of(model.config) == "sdpa"
    assert not list(_patches._GENERATORS.keys())
    assert all("forward" not in m.__dict__ for m in model.modules())


def test_seeded_attention_runs_in_every_step_of_a_fit(tiny_params, toy_data, monkeypatch):
    """Check a whole fit: skbert's attention function (not SDPA's own dropout) draws the
    attention dropout of every layer in every step."""
    X, y, _, _ = toy_data
    params = dict(tiny_params, max_iter=1, training_dtype="float32", inference_dtype="float32")
    calls = _counting_dropout(monkeypatch)
    fitted = BertTextClassifier(**params).fit(X, y)
    layers = fitted.model_.backbone.config.num_hidden_layers
    assert len(calls) == layers * -(-len(X) // params["batch_size"])
    assert _patches._attention_of(fitted.model_.backbone.config) == "sdpa"


def test_a_model_transformers_cannot_switch_is_left_alone(tiny_model_dir, monkeypatch):
    """Check that a model whose ``set_attn_implementation`` refuses (transformers logs
    why) keeps its attention, and that nothing is put back or registered for it."""
    model = _tiny_bert(tiny_model_dir)
    monkeypatch.setattr(model, "set_attn_implementation", lambda name: None)
    with _patches.seeded_dropout(model, torch.Generator()):
        assert _patches._attention_of(model.config) == "sdpa"
        assert not list(_patches._GENERATORS.keys())
    with _patches.masks_without_sync(model):
        assert not _patches._MASKED_CONFIGS


def test_masks_without_sync_counts_blocks_of_several_threads(tiny_model_dir, monkeypatch):
    """Check the lock-counted switch with threads: the first block in switches to skbert's
    mask, through which transformers then builds every mask; the last one out (whichever
    thread) switches SDPA back."""
    model = _tiny_bert(tiny_model_dir).eval()
    sdpa, sdpa_mask = _patches._transformers_checked()
    masks = []
    monkeypatch.setattr(_patches, "_REGISTERED", [sdpa, lambda *args, **kwargs: (
        masks.append(1) or sdpa_mask(*args, **kwargs))])
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]])
    inside, leave = threading.Barrier(2), threading.Event()
    seen = []

    def block(first):
        with _patches.masks_without_sync(model):
            inside.wait(5)
            if first:  # leaves first: the other thread's block still needs the mask
                seen.append(_patches._attention_of(model.config))
            else:
                leave.wait(5)
                seen.append(_patches._attention_of(model.config))
                with torch.no_grad():
                    model(input_ids=ids, attention_mask=(ids != 0).long())
        if first:
            leave.set()

    threads = [threading.Thread(target=block, args=(i == 0,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [_patches._KEPT_MASK_ATTENTION] * 2
    assert masks == [1]  # one mask per forward pass, built by skbert's function
    assert _patches._attention_of(model.config) == "sdpa"
    assert not _patches._MASKED_CONFIGS


def test_a_forward_pass_off_the_cpu_never_reads_the_device(tiny_model_dir):
    """Check end to end that under ``masks_without_sync`` transformers builds the network's
    masks with skbert's registered mask function: on a meta device (standing for a GPU:
    reading a meta tensor back fails) a forward pass fails with transformers' own SDPA
    masks, which read the padding mask to decide whether to skip it, and runs with
    skbert's."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    model.to("meta")
    ids = torch.tensor([[2, 7, 8, 9, 3], [2, 7, 3, 0, 0]], device="meta")
    mask = torch.ones(2, 5, dtype=torch.long, device="meta")
    with torch.no_grad():
        with pytest.raises((RuntimeError, NotImplementedError)):
            model(input_ids=ids, attention_mask=mask)
        with _patches.masks_without_sync(model):
            out = model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert out.device.type == "meta" and out.shape == (2, 5, model.config.hidden_size)
    assert _patches._attention_of(model.config) == "sdpa"
