"""inference_backend="auto": the measured choice of prediction path (skbert._probe).

Machines differ (AVX2 only, AVX-512 BF16, AMX), so no test depends on what the probe
picks here: the timings are faked (a clock that the fake paths advance) and the
candidates are set by the test.
"""

import copy
import logging
import pickle

import numpy as np
import pytest
from scipy.special import softmax

from skbert import BertTextClassifier, BertTextRegressor, _prediction, _probe

from .conftest import make_texts

# The probe compares answers with fp32 whatever the precision of "auto": run once in CI.
pytestmark = pytest.mark.any_precision

TEXTS, _ = make_texts(48, seed=23)


class Clock:
    """A fake ``time.perf_counter`` that only the fake paths advance."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def fake_builders(clock, costs, outputs):
    """Builders of ``choose`` whose runs cost ``costs[name]`` fake seconds each and return
    ``outputs[name]``; building costs nothing."""

    def builder(name):
        def run():
            clock.now += costs[name]
            return outputs[name]

        return lambda: run

    return {name: builder(name) for name in costs}


PROBA = np.array([[0.9, 0.1], [0.3, 0.7], [0.55, 0.45]])


def test_choose_takes_the_fastest_agreeing_path():
    """Check that the fastest of the paths that agree with fp32 wins, with each path's
    best time and the probe's cost reported."""
    clock = Clock()
    costs = {"torch float32": 1.0, "openvino float32": 0.5, "torch bfloat16": 0.8}
    outputs = {"torch float32": PROBA, "openvino float32": PROBA + 1e-4,
               "torch bfloat16": PROBA - 5e-3}
    path, runs = _probe.choose(fake_builders(clock, costs, outputs), timer=clock, repeats=2)
    assert path.chosen == "openvino float32"
    assert path.seconds == pytest.approx(costs)
    assert path.rejected == {}
    assert set(runs) == set(costs)
    assert path.probe_seconds == pytest.approx(3 * sum(costs.values()))  # 1 + 2 rounds


@pytest.mark.parametrize(("changed", "reason"), [
    (PROBA[:, ::-1], "top answer unlike fp32's on 3 of 3"),
    (PROBA + np.array([0.0, 0.02]), "differs from fp32 by 0.02"),
    (np.where([[False, True], [True, True], [True, True]], PROBA, np.nan),
     "differs from fp32 by nan"),  # at the top: argmax sees no flip
])
def test_choose_rejects_a_disagreeing_path_even_if_fastest(changed, reason):
    """Check that a path whose top answer or probabilities differ from fp32's (beyond
    the tolerance) is rejected, however fast, and says why."""
    clock = Clock()
    costs = {"torch float32": 1.0, "openvino bfloat16": 0.1, "torch bfloat16": 0.6}
    outputs = {"torch float32": PROBA, "openvino bfloat16": changed,
               "torch bfloat16": PROBA + 9e-3}
    path, _ = _probe.choose(fake_builders(clock, costs, outputs), timer=clock)
    assert path.chosen == "torch bfloat16"
    assert reason in path.rejected["openvino bfloat16"]
    assert "openvino bfloat16" not in path.seconds


def test_choose_stops_at_its_budget_and_reports_failures():
    """Check that paths not built once the budget is spent are skipped (the reference
    always runs), that a path that fails to build is rejected with its error, and that
    the timing rounds stop at the budget."""
    clock = Clock()
    costs = {"torch float32": 3.0, "broken": 0.1, "openvino float32": 0.5, "late": 0.1}
    builders = fake_builders(clock, costs, dict.fromkeys(costs, PROBA))

    def broken():
        raise RuntimeError("no CPU plugin")

    builders["broken"] = broken
    path, _ = _probe.choose(builders, timer=clock, budget=3.2, repeats=5)
    assert path.chosen == "openvino float32"
    assert path.rejected["broken"] == "failed: RuntimeError: no CPU plugin"
    assert "budget" not in path.rejected["broken"]
    assert "the probe's 3.2 s were spent" in path.rejected["late"]
    assert path.probe_seconds == pytest.approx(3.5)  # no timing round after the budget


def test_choose_falls_back_when_no_eligible_path_agrees():
    """Check that with the reference not eligible (inference_dtype="bfloat16") and no
    eligible path agreeing, the fallback is chosen; and that regressors' outputs are
    compared without a top answer."""
    clock = Clock()
    costs = {"torch float32": 1.0, "torch bfloat16": 0.5}
    outputs = {"torch float32": PROBA, "torch bfloat16": PROBA + 0.1}
    path, runs = _probe.choose(fake_builders(clock, costs, outputs), timer=clock,
                               eligible=["torch bfloat16"], fallback="torch bfloat16")
    assert path.chosen == "torch bfloat16" and runs == {} and path.seconds == {}
    path, _ = _probe.choose(fake_builders(clock, costs, {"torch float32": PROBA,
                                                         "torch bfloat16": PROBA[:, ::-1]}),
                            timer=clock, top=False, atol=1.0)
    assert path.chosen == "torch bfloat16"


@pytest.mark.parametrize(("dtype", "native", "openvino", "expected"), [
    ("auto", False, False, ["torch float32"]),
    ("auto", False, True, ["openvino float32", "torch float32"]),
    ("auto", True, True, ["openvino bfloat16", "torch bfloat16", "openvino float32",
                          "torch float32"]),
    ("float32", True, True, ["openvino float32", "torch float32"]),
    ("bfloat16", False, False, ["torch bfloat16"]),
])
def test_candidates_follow_inference_dtype_and_the_machine(dtype, native, openvino,
                                                           expected):
    """Check the candidate paths: bf16 only on native bf16 CPUs or when asked, OpenVINO
    where installed, an explicit inference_dtype restricting them, never int8."""
    assert _probe.candidates(dtype, native_bf16=native, openvino=openvino) == expected
    with pytest.raises(ValueError, match="inference_dtype='int8'"):
        _probe.candidates("int8", native_bf16=native, openvino=openvino)


def test_probe_rows_repeat_with_random_state():
    """Check that an int random_state draws the same probe texts, another seed others,
    and that the rows are distinct, sorted and at most the call's texts."""
    first = _probe.probe_rows(10_000, 0)
    np.testing.assert_array_equal(first, _probe.probe_rows(10_000, 0))
    assert not np.array_equal(first, _probe.probe_rows(10_000, 1))
    assert len(first) == _probe.PROBE_TEXTS == len(np.unique(first))
    assert np.all(np.diff(first) > 0)
    np.testing.assert_array_equal(_probe.probe_rows(5, 3), np.arange(5))


class Timed:
    """A network that advances ``clock`` by ``cost`` on each batch: its fake time."""

    def __init__(self, network, clock, cost, negate=False):
        self.network, self.clock, self.cost, self.negate = network, clock, cost, negate
        self.features = network.features

    def eval(self):
        self.network.eval()
        return self

    def __call__(self, **inputs):
        self.clock.now += self.cost
        out = self.network(**inputs)
        return -out if self.negate else out


@pytest.fixture
def faked(monkeypatch):
    """Probe calls of 32 texts on at most 16 of them, among fake paths on a fake clock:
    torch fp32 (1 s a batch), "openvino float32" (torch fp32 in disguise: agrees, 0.5 s)
    and "openvino bfloat16" (negated logits: disagrees, fastest at 0.1 s)."""
    clock = Clock()
    real_build, real_choose = _prediction.AutoNetwork._build, _probe.choose
    costs = {"torch float32": 1.0, "openvino float32": 0.5, "openvino bfloat16": 0.1}
    calls = []

    def build(self, name):
        network = real_build(self, "torch float32")
        return Timed(network, clock, costs[name], negate=name == "openvino bfloat16")

    def choose(builders, **kwargs):
        calls.append(sorted(builders))
        return real_choose(builders, **dict(kwargs, timer=clock))

    monkeypatch.setattr(_probe, "PROBE_MIN_TEXTS", 32)
    monkeypatch.setattr(_probe, "PROBE_TEXTS", 16)
    monkeypatch.setattr(_probe, "PROBE_REPEATS", 1)
    monkeypatch.setattr(_probe, "candidates", lambda *a, **k: list(costs))
    monkeypatch.setattr(_prediction.AutoNetwork, "_build", build)
    monkeypatch.setattr(_probe, "choose", choose)
    return calls


def test_auto_small_calls_do_not_probe(fitted, faked):
    """Check that a call under PROBE_MIN_TEXTS texts runs torch without probing, leaves
    no inference_path_, and predicts as "torch"."""
    clf = copy.deepcopy(fitted)
    assert clf.inference_backend == "auto"
    proba = clf.predict_proba(TEXTS[:31])
    assert faked == [] and not hasattr(clf, "inference_path_")
    torch_path = copy.deepcopy(fitted).set_params(inference_backend="torch")
    np.testing.assert_array_equal(proba, torch_path.predict_proba(TEXTS[:31]))


def test_auto_probes_once_chooses_the_fastest_agreeing_path_and_caches_it(
        fitted, tiny_params, faked, caplog):
    """Check that the first large call probes, picks the fastest path with fp32's answers
    (the faster disagreeing one rejected), logs and reports the choice, predicts as torch
    fp32, and that the choice is kept for later calls but not pickled, and cleared by a
    change of inference settings or a refit."""
    clf = copy.deepcopy(fitted)
    with caplog.at_level(logging.DEBUG, logger="skbert"):
        proba = clf.predict_proba(TEXTS)
    path = clf.inference_path_
    assert path.chosen == "openvino float32"
    assert "top answer unlike fp32's" in path.rejected["openvino bfloat16"]
    assert set(path.seconds) == {"torch float32", "openvino float32"}
    assert path.seconds["openvino float32"] < path.seconds["torch float32"]
    assert (path.probe_texts, path.call_texts) == (16, len(TEXTS))
    assert path.probe_seconds > 0
    assert "inference_backend='auto' chose openvino float32" in caplog.text
    reference = copy.deepcopy(fitted).set_params(inference_backend="torch",
                                                 inference_dtype="float32")
    np.testing.assert_allclose(proba, reference.predict_proba(TEXTS), atol=1e-6)

    clf.predict_proba(TEXTS)
    clf.predict(TEXTS[:3])  # a small call after the probe takes the chosen path too
    assert len(faked) == 1 and clf.inference_path_ is path
    twin = copy.deepcopy(clf)  # a copy goes through the pickled state: no choice in it
    assert not hasattr(twin, "inference_path_")
    # The twin predicts a small call with torch at inference_dtype's precision (bf16 where
    # the CPU's probe, or make test's first pass, says so), the original on its fp32 choice.
    np.testing.assert_allclose(twin.predict_proba(TEXTS[:3]), clf.predict_proba(TEXTS[:3]),
                               atol=1e-2)
    assert len(faked) == 1
    assert not hasattr(pickle.loads(pickle.dumps(clf)), "inference_path_")
    clf.set_params(inference_dtype="float32")
    assert not hasattr(clf, "inference_path_")
    clf.predict_proba(TEXTS)
    assert len(faked) == 2 and clf.inference_path_ is not path
    X, y = make_texts(32, seed=4)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, y)
    clf.predict(X)
    assert len(faked) == 3 and hasattr(clf, "inference_path_")
    clf.fit(X, y)
    assert not hasattr(clf, "inference_path_")


def test_auto_probe_draws_its_texts_with_random_state(fitted, faked, monkeypatch):
    """Check that the probe's texts follow random_state: the same seed, the same texts."""
    drawn = []
    real = _probe.probe_rows
    monkeypatch.setattr(_probe, "probe_rows",
                        lambda n, seed: drawn.append(real(n, seed)) or drawn[-1])
    for seed in (0, 0, 1):
        copy.deepcopy(fitted).set_params(random_state=seed).predict(TEXTS)
    np.testing.assert_array_equal(drawn[0], drawn[1])
    assert not np.array_equal(drawn[0], drawn[2])


def test_auto_real_paths_predict_as_torch_fp32(fitted, monkeypatch):
    """Check on the real candidates of this machine (whatever wins; OpenVINO compiles
    the tiny model where installed) that "auto" predicts as torch fp32 within the
    probe's tolerance."""
    monkeypatch.setattr(_probe, "PROBE_MIN_TEXTS", 32)
    monkeypatch.setattr(_probe, "PROBE_REPEATS", 0)
    X = TEXTS[:32]
    clf = copy.deepcopy(fitted)
    proba = clf.predict_proba(X)
    assert clf.inference_path_.chosen in clf.inference_path_.seconds
    reference = clf.set_params(inference_backend="torch", inference_dtype="float32")
    expected = reference.predict_proba(X)
    np.testing.assert_array_equal(proba.argmax(1), expected.argmax(1))
    np.testing.assert_allclose(proba, expected, atol=_probe.ATOL)


def test_auto_regressor_compares_outputs(tiny_params, faked):
    """Check that a regressor's probe compares its outputs (no top answer, no
    probabilities): the fake path that negates them is rejected, and "auto" predicts
    as torch fp32."""
    X = TEXTS[:32]
    reg = BertTextRegressor(**dict(tiny_params, max_iter=1)).fit(X, np.linspace(0, 1, 32))
    out = reg.predict(X)
    path = reg.inference_path_
    assert path.chosen == "openvino float32" and path.probe_texts == 16
    assert "differs from fp32" in path.rejected["openvino bfloat16"]
    expected = reg.set_params(inference_backend="torch", inference_dtype="float32").predict(X)
    np.testing.assert_allclose(out, expected, atol=1e-6)


def test_auto_with_int8_is_torch_int8(fitted):
    """Check that "auto" never probes int8: inference_dtype="int8" runs torch's int8 copy."""
    clf = copy.deepcopy(fitted).set_params(inference_dtype="int8")
    clf.predict(TEXTS[:4])
    assert clf._derived_model[1] == ("int8",)
    assert not hasattr(clf, "inference_path_")


def test_agree_compares_probabilities_of_logits():
    """Check agree on softmax probabilities: a shift of all logits changes nothing."""
    logits = np.array([[1.0, 2.0], [0.5, -0.5]])
    assert _probe.agree(softmax(logits + 3.0, axis=1), softmax(logits, axis=1)) == (True, "")
    ok, why = _probe.agree(logits[:1], logits)
    assert not ok and "shape" in why
