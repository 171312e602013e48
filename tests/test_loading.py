"""Loading a saved folder never exhausts memory, never unpickles, and names what is wrong.

``from_pretrained`` reads only regular files of bounded size, checks the arrays that
``skbert.json`` declares against their values before allocating them, validates the
parameters with the estimator's own constraints and the fitted attributes against the
network, and loads weights from safetensors only. Hostile files run in a child process
under a memory limit (``RLIMIT_AS``) and a time limit, so that a regression fails the
test instead of the machine. docs/guarantees.md cites these tests.
"""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier, BertTextRegressor
from skbert._hub import CONFIG_NAME, HEAD_NAME

from .conftest import make_multilabel_texts

# Memory a child process may allocate beyond what it holds once torch, transformers and
# a first model are loaded, and the seconds it may take.
CHILD_MEMORY = 1536 * 2**20
CHILD_TIMEOUT = 240

_CHILD_PREAMBLE = '''
import json, os, resource, signal, sys, time
import numpy as np
from skbert import BertTextClassifier
BertTextClassifier.from_pretrained(sys.argv[1])  # imports and first load, unlimited
with open("/proc/self/status") as status:
    size = next(int(l.split()[1]) * 1024 for l in status if l.startswith("VmSize:"))
resource.setrlimit(resource.RLIMIT_AS, (size + int(sys.argv[2]),
                                        resource.getrlimit(resource.RLIMIT_AS)[1]))

def _alarm(signum, frame):
    raise TimeoutError("took too long")

signal.signal(signal.SIGALRM, _alarm)
'''


def _run_child(code, *args, timeout=CHILD_TIMEOUT):
    """Run ``code`` after ``_CHILD_PREAMBLE`` in a child process (``sys.argv[1]`` a good
    folder, the memory limit ``CHILD_MEMORY`` beyond its size after a first load);
    return its stdout."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("the memory limit needs /proc/self/status (Linux)")
    source = _CHILD_PREAMBLE + textwrap.dedent(code)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")
    argv = [os.fspath(a) if isinstance(a, os.PathLike) else str(a) for a in args]
    done = subprocess.run([sys.executable, "-c", source, *argv],
                          capture_output=True, text=True, timeout=timeout, env=env)
    assert done.returncode == 0, (done.returncode, done.stdout[-3000:], done.stderr[-6000:])
    return done.stdout


def _edit(folder, change):
    """Apply ``change`` to the parsed ``skbert.json`` of ``folder`` and write it back."""
    path = Path(folder, CONFIG_NAME)
    config = json.loads(path.read_text())
    change(config)
    path.write_text(json.dumps(config))
    return os.fspath(path)


@pytest.fixture
def folder(fitted, tmp_path):
    """A fresh folder of the session's fitted classifier (labels "neg", "pos")."""
    return fitted.save_pretrained(tmp_path / "model")


# ------------------------------------------------------- bounded reads and arrays
def _hostile_folders(fitted, root):
    """Folders whose files would block or exhaust memory if read naively, by case."""
    cases = {}

    def case(name):
        path = fitted.save_pretrained(root / name)
        cases[name] = path
        return path

    os.remove(case("config-dev-zero") / CONFIG_NAME)
    os.symlink("/dev/zero", cases["config-dev-zero"] / CONFIG_NAME)
    os.remove(case("config-fifo") / CONFIG_NAME)
    os.mkfifo(cases["config-fifo"] / CONFIG_NAME)
    with open(case("config-huge") / CONFIG_NAME, "r+b") as file:
        file.truncate(64 * 2**20)  # a sparse 64 MiB: refused by its size, unread
    _edit(case("declared-huge-object-array"),
          lambda c: c["fitted"]["classes_"].update(shape=[10**6, 10**6], dtype="object"))
    _edit(case("declared-huge-float-array"),
          lambda c: c["fitted"]["classes_"].update(shape=[10**6, 10**6], dtype="<f8"))
    _edit(case("declared-huge-str-dtype"),
          lambda c: c["fitted"]["classes_"].update(dtype="<U100000000"))
    path = case("deep-nesting") / CONFIG_NAME
    text = path.read_text().replace('"head": null', '"head": ' + "[" * 10**5 + "]" * 10**5, 1)
    path.write_text(text)
    os.remove(case("encoder-config-dev-zero") / "config.json")
    os.symlink("/dev/zero", cases["encoder-config-dev-zero"] / "config.json")
    os.remove(case("tokenizer-fifo") / "tokenizer.json")
    os.mkfifo(cases["tokenizer-fifo"] / "tokenizer.json")
    return cases


HOSTILE = {  # case: the file named, and what the message says
    "config-dev-zero": (CONFIG_NAME, "is a character device, not a regular file"),
    "config-fifo": (CONFIG_NAME, r"is a named pipe \(FIFO\), not a regular file"),
    "config-huge": (CONFIG_NAME, "is 67108864 bytes, more than the 33554432 bytes"),
    "declared-huge-object-array": (CONFIG_NAME, r"classes_ declares an array of shape "
                                                r"\(1000000, 1000000\) and dtype \|O"),
    "declared-huge-float-array": (CONFIG_NAME, r"array of shape \(1000000, 1000000\) and "
                                               "dtype <f8, 8000000000000 bytes"),
    "declared-huge-str-dtype": (CONFIG_NAME, "dtype <U100000000, 800000000 bytes"),
    "deep-nesting": (CONFIG_NAME, "nested more than 64 deep"),
    "encoder-config-dev-zero": ("config.json", "is a character device"),
    "tokenizer-fifo": ("tokenizer.json", r"is a named pipe \(FIFO\)"),
}


@pytest.fixture(scope="module")
def hostile_results(fitted, tmp_path_factory):
    """What loading each hostile folder did in a child process with a memory limit,
    each load under a 20 s alarm: the exception's type and text, or "loaded"."""
    root = tmp_path_factory.mktemp("hostile")
    cases = _hostile_folders(fitted, root)
    good = fitted.save_pretrained(root / "good")
    out = _run_child('''
        results = {}
        for name, folder in json.loads(sys.argv[3]).items():
            signal.alarm(20)
            start = time.perf_counter()
            try:
                BertTextClassifier.from_pretrained(folder)
                results[name] = ["loaded", ""]
            except BaseException as exc:
                results[name] = [type(exc).__name__, str(exc)]
            finally:
                signal.alarm(0)
            results[name].append(time.perf_counter() - start)
        print(json.dumps(results))
    ''', good, CHILD_MEMORY, json.dumps({k: os.fspath(v) for k, v in cases.items()}))
    results = json.loads(out.splitlines()[-1])
    return {name: (cases[name], *results[name]) for name in cases}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_files_are_refused_within_bounded_memory_and_time(hostile_results, case):
    """Check that a skbert.json, encoder config or tokenizer file that is a link to
    /dev/zero, a named pipe, larger than the cap, or that declares arrays of terabytes or
    nests 100,000 deep, is refused with a ValueError naming the file, in under 5 s,
    within a memory limit of 1.5 GiB beyond the loaded libraries."""
    folder, kind, message, seconds = hostile_results[case]
    name, expected = HOSTILE[case]
    assert kind == "ValueError", (kind, message)
    assert repr(os.fspath(folder / name)) in message, message
    assert re.search(expected, message), message
    assert seconds < 5


# ------------------------------------------------- folders that disagree with themselves
def _three_classes(config):
    config["fitted"]["classes_"] = {"__ndarray__": ["neg", "pos", "zzz"], "dtype": "<U3",
                                    "shape": [3]}


@pytest.mark.parametrize("change, expected", [
    (_three_classes, r"fitted attribute classes_=.*must be an array of labels of shape "
                     r"\(2,\), one per output of the network \(network n_outputs=2\)"),
    (lambda c: c["params"].update(max_length="abc"),
     r"invalid parameter: The 'max_length' parameter of BertTextClassifier must be an int"),
    (lambda c: c["params"].update(max_length=10**6),
     r"do not fit its network: max_length=1000000 is larger than the model's "
     r"max_position_embeddings=64"),
    (lambda c: c["params"].update(learning_rate=-1), "'learning_rate' parameter"),
    (lambda c: c["params"].update(truncation="tail"), "'truncation' parameter"),
    (lambda c: c["fitted"].update(model_={"__dict__": []}),
     r"holds the fitted attributes \['model_'\], which a BertTextClassifier folder does "
     r"not hold"),
    (lambda c: c["fitted"].pop("text_pairs_"), r"lacks the fitted attributes \['text_pairs_'\]"),
    (lambda c: c["fitted"].update(text_pairs_=1), "text_pairs_=1; it must be a bool"),
    (lambda c: c["fitted"].update(thresholds_={"__ndarray__": [0.5, 0.5], "dtype": "<f8",
                                               "shape": [2]}),
     "thresholds_, which only a multi-label model has"),
    (lambda c: c["fitted"]["classes_"].update(shape=[3]),
     r"declares the array shape \(3,\), but its values do not have that shape"),
    (lambda c: c["fitted"]["classes_"].update(shape=[1, 2]),
     r"declares the array shape \(1, 2\), but its values do not have that shape"),
    (lambda c: c["fitted"]["classes_"].update(__ndarray__=["pos", "neg"]),
     "at least 2 distinct labels in sorted order"),
    (lambda c: c["network"].update(n_outputs=True), "n_outputs=True; it must be a positive"),
    (lambda c: c["network"].update(pooling="max"), "network entry pooling='max'"),
    (lambda c: c.update(format=True), "is not an object with an int 'format' entry"),
    (lambda c: c.pop("network"), r"the entries \['network'\] are missing or unknown"),
    (lambda c: c["params"].update(head={"__callable__": "os:system"}),
     r"parameter head is the callable 'os:system', which from_pretrained imports only "
     "when trusted"),
    (lambda c: c["params"].update(head={"__float__": "1e5"}), "holds an unknown value"),
])
def test_folder_that_disagrees_with_itself_is_refused(folder, change, expected):
    """Check that a skbert.json whose classes_ disagree with the head's outputs, whose
    parameters break the estimator's constraints or exceed the encoder, with an entry a
    folder never holds (model_), a missing or mistyped fitted attribute, or a malformed
    value is refused at load with a ValueError naming skbert.json and what is wrong."""
    where = _edit(folder, change)
    with pytest.raises(ValueError, match=expected) as caught:
        BertTextClassifier.from_pretrained(folder)
    assert repr(where) in str(caught.value)


def test_head_weights_that_disagree_with_skbert_json_are_named(folder):
    """Check that three classes over a head file of two outputs (n_outputs edited too)
    is refused before the head is built, naming the head file, skbert.json and the
    shapes that differ."""
    def three(config):
        _three_classes(config)
        config["network"]["n_outputs"] = 3

    where = _edit(folder, three)
    head = os.fspath(folder / HEAD_NAME)
    with pytest.raises(ValueError, match=r"'1.bias' is \(2,\) in the file but "
                                         r"\(3,\) in that head") as caught:
        BertTextClassifier.from_pretrained(folder)
    assert repr(head) in str(caught.value) and repr(where) in str(caught.value)


def test_multilabel_and_regressor_entries_are_checked(tiny_params, tmp_path):
    """Check thresholds_ against the labels of a multi-label model and y_scale_ against
    the outputs of a regressor, and that both folders load unchanged."""
    X, Y = make_multilabel_texts(40, seed=2)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, Y)
    multi = clf.save_pretrained(tmp_path / "multi")
    np.testing.assert_array_equal(BertTextClassifier.from_pretrained(multi).predict(X),
                                  clf.predict(X))
    reg = BertTextRegressor(**dict(tiny_params, max_iter=1)).fit(X, Y[:, :2] * 1.5)
    regressor = reg.save_pretrained(tmp_path / "reg")
    cases = [
        (multi, lambda c: c["fitted"]["thresholds_"].update(__ndarray__=[0.5, 0.5],
                                                            shape=[2]),
         r"thresholds_=.*must be an array of floats of shape \(3,\)"),
        (multi, lambda c: c["fitted"]["thresholds_"].update(__ndarray__=[0.5, 7.0, 0.5]),
         "thresholds_=.*must be probabilities from 0 to 1"),
        (multi, lambda c: c["fitted"].pop("thresholds_"), "lacks the fitted attribute "
                                                          "thresholds_ of its multi-label"),
        (regressor, lambda c: c["fitted"]["y_scale_"].update(__ndarray__=[1.0, -2.0]),
         "y_scale_=.*must be finite and positive"),
        (regressor, lambda c: c["fitted"].update(n_outputs_=3),
         "n_outputs_=3; it must be the network's n_outputs=2"),
    ]
    for path, change, expected in cases:
        saved = Path(path, CONFIG_NAME).read_text()
        where = _edit(path, change)
        cls = BertTextRegressor if path == regressor else BertTextClassifier
        with pytest.raises(ValueError, match=expected) as caught:
            cls.from_pretrained(path)
        assert repr(where) in str(caught.value)
        Path(path, CONFIG_NAME).write_text(saved)


def test_text_pair_model_with_too_small_max_length_is_refused_at_load(tiny_params, tmp_path):
    """Check that a text-pair model whose skbert.json says max_length=4 (no room for a
    token of each text beside [CLS] a [SEP] b [SEP]) is refused at load, naming it."""
    pairs = np.array([["good film", "yes"], ["bad film", "no"]] * 8)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(pairs, [1, 0] * 8)
    path = clf.save_pretrained(tmp_path / "pairs")
    where = _edit(path, lambda c: c["params"].update(max_length=4))
    with pytest.raises(ValueError, match=r"max_length=4 cannot hold a text pair") as caught:
        BertTextClassifier.from_pretrained(path)
    assert repr(where) in str(caught.value)


# ------------------------------------------------------------------- pickled weights
def _pickle_bomb(path, marker):
    """A torch pickle whose unpickling would write ``marker``."""
    class Payload:
        def __reduce__(self):
            return (Path(marker).write_text, ("ran",))

    torch.save({"embeddings.word_embeddings.weight": Payload()}, path)


def test_folder_with_pickled_weights_is_refused_with_an_error_of_its_own(folder, tmp_path):
    """Check that a saved folder whose encoder weights are a pickle (pytorch_model.bin,
    no model.safetensors) is refused naming the file and safetensors, runs nothing, and
    does not advise weights_only=False (which would run the payload)."""
    from skbert._pretrained import PickledWeightsError

    marker = tmp_path / "MARKER"
    os.remove(folder / "model.safetensors")
    _pickle_bomb(folder / "pytorch_model.bin", marker)
    with pytest.raises(PickledWeightsError, match=r"pytorch_model\.bin' holds weights in a "
                                                  "pickle-based format") as caught:
        BertTextClassifier.from_pretrained(folder)
    assert "safetensors" in str(caught.value)
    assert "weights_only" not in str(caught.value)
    assert not marker.exists()


def test_model_name_or_path_with_pickled_weights_is_refused(tiny_model_dir, tmp_path):
    """Check the same for model_name_or_path: a folder of pickled weights only is refused
    before anything is unpickled, by fit and by the masked-LM pretrainer."""
    import shutil

    from skbert import MaskedLMPretrainer

    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "bin-model"))
    os.remove(model / "model.safetensors")
    marker = tmp_path / "MARKER"
    _pickle_bomb(model / "pytorch_model.bin", marker)
    X = ["good film", "bad film"] * 4
    for fit in (lambda: BertTextClassifier(model, max_iter=1, device="cpu").fit(X, [1, 0] * 4),
                lambda: MaskedLMPretrainer(model, max_iter=1, device="cpu").fit(X)):
        with pytest.raises(ValueError, match=r"bin-model/pytorch_model\.bin' holds weights "
                                             "in a pickle-based format") as caught:
            fit()
        assert "weights_only" not in str(caught.value)
    assert not marker.exists()


# ------------------------------------------------------------------------ fuzzing
_FUZZ = '''
import copy, json, shutil
from pathlib import Path

from hypothesis import HealthCheck, given, settings, strategies as st

folder, scratch = Path(sys.argv[1]), Path(sys.argv[3])
texts = json.loads(sys.argv[4])
expected = BertTextClassifier.from_pretrained(folder).predict_proba(texts)
original = (folder / "skbert.json").read_text()
config = json.loads(original)
where = repr(str(scratch / "skbert.json"))
shutil.copytree(folder, scratch)

def paths(value, prefix=()):
    yield prefix
    items = value.items() if isinstance(value, dict) else (
        enumerate(value) if isinstance(value, list) else ())
    for key, item in items:
        yield from paths(item, prefix + (key,))

def get(value, path):
    for key in path:
        value = value[key]
    return value

PATHS = list(paths(config))[1:]
DICTS = [p for p in [()] + PATHS if isinstance(get(config, p), dict)]
ARRAYS = [p for p in DICTS if "__ndarray__" in get(config, p)]
HUGE = [10**18, -10**18, 2**63, 2**64 + 1, 10**300, 1e308, -1e308, 5e-324, -1]
RAW = "@@RAW@@"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["__ndarray__", "__tuple__", "__dict__", "__float__",
                         "__callable__", "dtype", "shape", "x"]), inner, max_size=3),
    max_leaves=6)

@st.composite
def mutated(draw):
    kind = draw(st.sampled_from(["type", "huge", "raw", "nest", "shape", "drop", "add",
                                 "truncate", "several"]))
    if kind == "truncate":
        return original[:draw(st.integers(0, len(original) - 1))]
    cfg = copy.deepcopy(config)
    raw = None
    for _ in range(draw(st.integers(2, 4)) if kind == "several" else 1):
        step = draw(st.sampled_from(["type", "huge", "shape", "drop", "add"])) \\
            if kind == "several" else kind
        if step in ("shape", "add"):
            try:
                node = get(cfg, draw(st.sampled_from(ARRAYS if step == "shape" else DICTS)))
            except (KeyError, IndexError, TypeError):
                continue  # changed by an earlier step
            if not isinstance(node, dict):
                continue
        if step == "shape":
            node["shape"] = draw(st.lists(st.sampled_from([0, 1, 2, 3, 10**6, 2**62, -1]),
                                          max_size=4) | json_values)
            continue
        if step == "add":
            node[draw(st.sampled_from(["model_", "tokenizer_", "classes_", "__ndarray__",
                                       "__callable__", "dtype", "warp_speed"])
                      | st.text(max_size=6))] = draw(json_values)
            continue
        path = draw(st.sampled_from(PATHS))
        try:
            parent, old = get(cfg, path[:-1]), get(cfg, path)
        except (KeyError, IndexError, TypeError):
            continue  # changed by an earlier step
        if step == "drop":
            del parent[path[-1]]
        elif step == "type":
            parent[path[-1]] = draw(json_values.filter(lambda v: type(v) is not type(old)))
        elif step == "huge":
            parent[path[-1]] = draw(st.sampled_from(HUGE))
        elif step in ("raw", "nest"):
            depth = draw(st.sampled_from([2, 65, 100_000]))
            raw = ("1" + "0" * 5000 if step == "raw"
                   else "[" * depth + json.dumps(old) + "]" * depth)
            parent[path[-1]] = RAW
    text = json.dumps(cfg)
    return text.replace(json.dumps(RAW), raw) if raw is not None else text

results = {"loaded": 0, "refused": 0}

@settings(max_examples=int(sys.argv[5]), deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(mutated())
def check(text):
    (scratch / "skbert.json").write_text(text)
    signal.alarm(10)
    start = time.perf_counter()
    try:
        loaded = BertTextClassifier.from_pretrained(scratch)
    except (ValueError, OSError) as exc:
        assert where in str(exc), str(exc)[:2000]
        results["refused"] += 1
    else:
        got = loaded.predict_proba(texts)
        assert np.array_equal(got, expected), (got, expected)
        results["loaded"] += 1
    finally:
        signal.alarm(0)
    assert time.perf_counter() - start < 5, time.perf_counter() - start

check()
print(json.dumps(results))
'''


def test_fuzzed_skbert_json_loads_identically_or_is_refused_naming_it(folder, toy_data,
                                                                       tmp_path):
    """Check, with hypothesis, that a saved skbert.json mutated (values replaced by other
    JSON types or huge numbers, 5,000-digit ints, nesting up to 100,000 deep, array shapes
    changed, entries dropped or added, text truncated, several at once) either loads and
    predicts exactly as the original, or raises ValueError or OSError naming the file;
    each load in under 5 s, in a child process limited to 1.5 GiB beyond the loaded
    libraries."""
    _, _, X_test, _ = toy_data
    out = _run_child(_FUZZ, folder, CHILD_MEMORY, tmp_path / "scratch",
                     json.dumps(X_test[:8]), 150)
    results = json.loads(out.splitlines()[-1])
    assert results["refused"] > 50 and results["loaded"] > 0, results


# ------------------------------------------------------------------ transformers floor
def test_transformers_floor_excludes_releases_with_advisories():
    """Check that pyproject.toml requires transformers >= 5.5 (5.3 and 5.5 fixed
    published remote-code-execution advisories) and that the installed one satisfies it."""
    from importlib.metadata import version

    from packaging.requirements import Requirement

    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    requirement = next(r for r in map(Requirement, project["project"]["dependencies"])
                       if r.name == "transformers")
    assert not any(requirement.specifier.contains(v) for v in ("5.0.0", "5.3.0", "5.4.0"))
    assert requirement.specifier.contains("5.5.0")
    assert requirement.specifier.contains(version("transformers"))

