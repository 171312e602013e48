"""Safe at every edge: files that cannot run code, checkpoints that cannot be clobbered.

Faults are made for real where the machine allows (``tests/_fs_faults.py``: a full
tmpfs or a read-only bind mount in a private namespace; SIGKILL at an exact point in a
child process), with fallbacks where it does not. docs/guarantees.md cites these tests.
"""

import copy
import gc
import json
import os
import pickle
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import skops.io as sio

from skbert import BertTextClassifier, __version__
from skbert._checkpoint import latest_checkpoint

from ._fs_faults import run_killed, run_with_fault
from .conftest import build_tiny_bert, make_texts

TRUSTED = ["skbert._classifier.BertTextClassifier"]
STREAM = dict(learning_rate=5e-3, batch_size=16, max_length=32, device="cpu", random_state=0)
OLD_VERSIONS = Path(__file__).parent / "data" / "old_versions"
FILES = ("estimator.skops", "training_state.pt")


@pytest.fixture(scope="module")
def chunks():
    X, y = make_texts(120, seed=5)
    return [(X[i : i + 40], y[i : i + 40]) for i in range(0, 120, 40)]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")


def _snapshot(folder):
    """Every file under ``folder`` (hidden ones included) and its bytes."""
    folder = Path(folder)
    return {os.fspath(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def _checkpoints(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("ckpt-"))


# ------------------------------------------------------------------ no code runs
def _evil_tokenizer_files(marker):
    """Tokenizer files whose config asks transformers to import ``evil.py``, which
    writes ``marker``: what an attacker can put in a model file's tokenizer."""
    code = (f"open({os.fspath(marker)!r}, 'w').write('ran')\n"
            "from transformers import BertConfig, PreTrainedTokenizerFast\n"
            "class EvilConfig(BertConfig):\n    model_type = 'evilbert'\n"
            "class EvilTokenizer(PreTrainedTokenizerFast):\n    pass\n")
    config = {"model_type": "evilbert", "auto_map": {
        "AutoConfig": "evil.EvilConfig",
        "AutoTokenizer": ["evil.EvilTokenizer", "evil.EvilTokenizer"]}}

    from skbert._pretrained import tokenizer_to_state

    def files(tokenizer):
        saved = tokenizer_to_state(tokenizer)
        settings = json.loads(saved["tokenizer_config.json"])
        settings.pop("tokenizer_class", None)  # so that transformers looks at config.json
        saved["tokenizer_config.json"] = json.dumps(settings).encode()
        saved["config.json"] = json.dumps(config).encode()
        saved["evil.py"] = code.encode()
        return saved

    return files


@pytest.fixture
def evil_model_file(fitted, tmp_path, monkeypatch):
    """A .skops model file that passes the one-type trust check and carries tokenizer
    files asking for custom code; the code would write ``tmp_path / "MARKER"``."""
    import skbert._pretrained

    marker = tmp_path / "MARKER"
    monkeypatch.setattr(skbert._pretrained, "tokenizer_to_state",
                        _evil_tokenizer_files(marker))
    path = tmp_path / "evil.skops"
    sio.dump(fitted, path)
    monkeypatch.undo()
    assert sio.get_untrusted_types(file=path) == TRUSTED
    return path, marker


def test_loading_a_model_file_never_runs_its_code(evil_model_file):
    """Check that skops.io.load of a crafted model file refuses its custom tokenizer
    code (transformers' remote-code path) and runs none of it."""
    path, marker = evil_model_file
    with pytest.raises(ValueError, match="never runs code"):
        sio.load(path, trusted=TRUSTED)
    assert not marker.exists()


def test_cli_predict_answering_yes_still_runs_no_code(evil_model_file, tmp_path):
    """Check that ``echo y | skbert predict`` on the crafted file runs no code: the
    prompt transformers shows for custom code is never reached."""
    path, marker = evil_model_file
    data = tmp_path / "texts.csv"
    data.write_text("text\ngood film\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "skbert", "predict", str(path), str(data), "--out",
         str(tmp_path / "out.csv")],
        input="y\ny\n", capture_output=True, text=True, env=_env(), timeout=300,
    )
    assert done.returncode == 1, done.stderr
    assert "never runs code" in done.stderr
    assert not marker.exists() and not (tmp_path / "out.csv").exists()


def test_resume_of_a_crafted_checkpoint_runs_no_code(fitted, tiny_model_dir, chunks,
                                                     tmp_path, monkeypatch):
    """Check that resume refuses a checkpoint whose estimator carries custom code."""
    import skbert._pretrained

    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=tmp_path / "ck")
    clf.partial_fit(*chunks[0], classes=[0, 1])
    marker = tmp_path / "MARKER"
    monkeypatch.setattr(skbert._pretrained, "tokenizer_to_state",
                        _evil_tokenizer_files(marker))
    clf.partial_fit(*chunks[1])  # its checkpoint carries the crafted tokenizer files
    monkeypatch.undo()
    with pytest.raises(ValueError, match="estimator.skops.*never runs code"):
        BertTextClassifier.resume(tmp_path / "ck")
    assert not marker.exists()


def test_model_folder_naming_custom_classes_is_refused(tiny_model_dir, tmp_path):
    """Check that a model folder whose config.json has an auto_map, or which holds a
    code file, is refused naming the file, before transformers sees it."""
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps(dict(config, auto_map={
        "AutoModel": "modeling_evil.EvilModel"})))
    X, y = make_texts(20)
    with pytest.raises(ValueError, match=r"config\.json' names custom classes"):
        BertTextClassifier(folder, **STREAM).fit(X, y)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "modeling_evil.py").write_text("raise SystemExit('ran')\n")
    with pytest.raises(ValueError, match=r"modeling_evil\.py' is a code file"):
        BertTextClassifier(folder, **STREAM).fit(X, y)


def test_saved_network_config_with_auto_map_is_refused(fitted):
    """Check that a pickled network whose config names custom classes is refused."""
    state = fitted.__getstate__()
    state["model_"] = dict(state["model_"], config=dict(
        state["model_"]["config"], auto_map={"AutoModel": "evil.EvilModel"}))
    restored = BertTextClassifier.__new__(BertTextClassifier)
    with pytest.raises(ValueError, match="custom classes"):
        restored.__setstate__(state)


# --------------------------------------------------------------- one writer only
def test_second_stream_into_one_checkpoint_dir_is_refused(tiny_model_dir, chunks, tmp_path):
    """Check that a second stream writing the same checkpoint_dir is refused before it
    trains, naming the folder and the holder, and is let in once the first ends."""
    folder = tmp_path / "ck"
    first = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=folder)
    first.partial_fit(*chunks[0], classes=[0, 1])
    before = _snapshot(folder)
    second = BertTextClassifier.resume(folder)  # continues the same run, in parallel
    with pytest.raises(RuntimeError, match=rf"checkpoint_dir=.*ck'.* in use by another "
                                           rf"stream \(pid {os.getpid()} on .*another "
                                           r"estimator in this process"):
        second.partial_fit(*chunks[1])
    assert second.n_iter_ == 1 and _snapshot(folder) == before
    del first
    gc.collect()  # the first stream ends: its lock goes with it
    second.partial_fit(*chunks[1])
    assert second.n_iter_ == 2 and len(_checkpoints(folder)) == 2


def test_stream_in_another_process_holds_the_folder(tiny_model_dir, chunks, tmp_path):
    """Check the lock across processes: a child stream holds the folder until it ends."""
    folder = tmp_path / "ck"
    code = (
        "import sys\nfrom skbert import BertTextClassifier\n"
        "from tests.conftest import make_texts\n"
        f"clf = BertTextClassifier({tiny_model_dir!r}, checkpoint_dir={os.fspath(folder)!r},"
        f" **{STREAM!r})\n"
        "clf.partial_fit(*make_texts(40), classes=[0, 1])\n"
        "print('streaming', flush=True)\nsys.stdin.readline()\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True, env=_env(), cwd=os.getcwd())
    try:
        assert child.stdout.readline().strip() == "streaming"
        holder = f"in use by another stream \\(pid {child.pid} "
        with pytest.raises(RuntimeError, match=holder) as info:
            BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=folder).partial_fit(
                *chunks[0], classes=[0, 1])
        assert "in this process" not in str(info.value)
    finally:
        child.communicate("\n", timeout=120)
    assert child.returncode == 0
    # The child has ended; its checkpoint belongs to another run, which is still refused.
    with pytest.raises(ValueError, match="belongs to another run"):
        BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=folder).partial_fit(
            *chunks[0], classes=[0, 1])


def test_folder_of_another_run_is_refused_before_training(tiny_model_dir, chunks, tmp_path,
                                                          monkeypatch):
    """Check that a new stream into a folder of another run's checkpoints is refused
    before its first chunk trains (it was refused only when writing, after training)."""
    folder = tmp_path / "ck"
    BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=folder).partial_fit(
        *chunks[0], classes=[0, 1])

    def no_training(*args, **kwargs):
        raise AssertionError("a trainer was built")

    monkeypatch.setattr(BertTextClassifier, "_new_trainer", no_training)
    with pytest.raises(ValueError, match="belongs to another run"):
        BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=folder).partial_fit(
            *chunks[0], classes=[0, 1])


# ------------------------------------------------------------------------ SIGKILL
_STREAM_CHILD = """
import os, shutil, sys
import skbert._checkpoint as ck
from skbert import BertTextClassifier
from tests.conftest import make_texts
X, y = make_texts(120, seed=5)
clf = BertTextClassifier({model!r}, checkpoint_dir={folder!r}, keep_checkpoints=2, **{stream!r})
"""


def test_sigkill_while_pruning_leaves_only_complete_checkpoints(tiny_model_dir, tmp_path):
    """Check that a SIGKILL in the middle of deleting an old checkpoint leaves no
    half-deleted folder under a checkpoint's name, and that resume works after it."""
    folder = tmp_path / "ck"
    run_killed(_STREAM_CHILD.format(model=tiny_model_dir, folder=os.fspath(folder),
                                    stream=STREAM) + f"""
real_rmtree = shutil.rmtree
def rmtree_then_die(path, *args, **kwargs):  # only where it deletes a checkpoint
    if not os.fspath(path).startswith({os.fspath(folder)!r}):
        return real_rmtree(path, *args, **kwargs)
    first = sorted(p for p in __import__("pathlib").Path(path).rglob("*") if p.is_file())[0]
    first.unlink()  # part of the folder is gone
    kill_now()
shutil.rmtree = rmtree_then_die
for i in range(0, 120, 40):
    clf.partial_fit(X[i:i + 40], y[i:i + 40], classes=[0, 1])
""", env=_env())
    names = _checkpoints(folder)
    assert len(names) == 2  # the third write pruned the first, and the kill came then
    for name in names:
        assert sorted(p.name for p in (folder / name).iterdir()) == sorted(FILES)
    resumed = BertTextClassifier.resume(folder)
    assert resumed.n_iter_ == 3
    X, y = make_texts(40, seed=9)
    resumed.partial_fit(X, y)  # takes the lock and removes what the kill left
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".ckpt-")]


def test_sigkill_while_writing_a_checkpoint_keeps_the_previous(tiny_model_dir, tmp_path):
    """Check that a SIGKILL after the new checkpoint's files are written but before
    they are renamed into place leaves the previous checkpoints as they were."""
    folder = tmp_path / "ck"
    run_killed(_STREAM_CHILD.format(model=tiny_model_dir, folder=os.fspath(folder),
                                    stream=STREAM) + """
import pathlib
clf.partial_fit(X[:40], y[:40], classes=[0, 1])
snapshot = {p: p.read_bytes() for p in pathlib.Path(FOLDER).rglob("*") if p.is_file()}
pathlib.Path(FOLDER, "..", "before.pkl").write_bytes(__import__("pickle").dumps(snapshot))
def die(*args, **kwargs):
    kill_now()
ck.replace_folder = die
clf.partial_fit(X[40:80], y[40:80])
""".replace("FOLDER", repr(os.fspath(folder))), env=_env())
    before = pickle.loads((tmp_path / "before.pkl").read_bytes())
    assert all(path.read_bytes() == data for path, data in before.items())
    assert len(_checkpoints(folder)) == 1
    assert BertTextClassifier.resume(folder).n_iter_ == 1


# ------------------------------------------------------------- broken checkpoints
@pytest.fixture
def stream_folder(tiny_model_dir, chunks, tmp_path):
    folder = tmp_path / "ck"
    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=os.fspath(folder))
    clf.partial_fit(*chunks[0], classes=[0, 1])
    del clf
    gc.collect()
    return folder


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("damage", ["truncated", "empty", "random"])
def test_broken_checkpoint_file_is_named(stream_folder, name, damage):
    """Check that a truncated, zero-byte or random-byte checkpoint file is refused by
    resume with a one-line message naming that file (and no advice to load it unsafely),
    and is left as it was."""
    path = latest_checkpoint(stream_folder) / name
    data = path.read_bytes()
    broken = {"truncated": data[: len(data) // 2], "empty": b"",
              "random": np.random.default_rng(0).bytes(len(data))}[damage]
    path.write_bytes(broken)
    with pytest.raises(ValueError, match=rf"Checkpoint file .*{name}' is corrupt") as caught:
        BertTextClassifier.resume(stream_folder)
    assert path.read_bytes() == broken
    # Bug (issue 33): torch's advice to load with weights_only=False, which would run
    # what a crafted file holds, came through word for word over several lines.
    message = str(caught.value)
    assert "weights_only" not in message and "\n" not in message, message


@pytest.mark.parametrize("other", ["classes", "head", "hidden size"])
def test_training_state_of_another_model_is_refused(stream_folder, tiny_model_dir, tmp_path,
                                                    other):
    """Check that a training_state.pt from another model (other classes, head or hidden
    size) is refused by resume, naming the file and what differs, instead of loading
    and failing later in torch."""
    X, y = make_texts(40, seed=3, n_classes=3 if other == "classes" else 2)
    model = tiny_model_dir
    if other == "hidden size":
        model = build_tiny_bert(tmp_path / "wide", hidden_size=48)
    params = dict(STREAM, head=(16,)) if other == "head" else STREAM
    BertTextClassifier(model, **params, checkpoint_dir=os.fspath(tmp_path / "other")
                       ).partial_fit(X, y, classes=np.unique(y))
    target = latest_checkpoint(stream_folder) / "training_state.pt"
    target.write_bytes((latest_checkpoint(tmp_path / "other") / "training_state.pt")
                       .read_bytes())
    expected = {"classes": "3 classes", "head": "groups of", "hidden size": "shape"}[other]
    with pytest.raises(ValueError, match=rf"training_state\.pt' does not belong to "
                                         rf"estimator\.skops.*{expected}"):
        BertTextClassifier.resume(stream_folder)


def test_path_parameters_are_saved_as_str(tiny_model_dir, chunks, tmp_path):
    """Check that pathlib paths as model_name_or_path and checkpoint_dir neither make
    the model file untrusted by skops nor stop resume (they were saved as PosixPath)."""
    folder = tmp_path / "ck"
    clf = BertTextClassifier(Path(tiny_model_dir), **STREAM, checkpoint_dir=folder)
    clf.partial_fit(*chunks[0], classes=[0, 1])
    assert sio.get_untrusted_types(data=sio.dumps(clf)) == TRUSTED
    resumed = BertTextClassifier.resume(folder)
    assert resumed.checkpoint_dir == os.fspath(folder) and resumed.n_iter_ == 1


# ------------------------------------------------------- full and read-only disks
_FAULT_CHILD = """
import os, pathlib, numpy as np
from skbert import BertTextClassifier
from tests.conftest import make_texts
X, y = make_texts(80, seed=5)
def snapshot():
    return {{p: p.read_bytes() for p in pathlib.Path(FOLDER).rglob("*")
            if p.is_file() and p.name not in (".lock", ".filler")}}
clf = BertTextClassifier({model!r}, checkpoint_dir=FOLDER, **{stream!r})
"""


def _check_child(done):
    assert done.returncode == 0, (done.stdout, done.stderr[-4000:])
    assert "OK" in done.stdout, done.stdout


def test_full_disk_during_checkpoint_keeps_previous_and_counts_nothing(tiny_model_dir,
                                                                       tmp_path):
    """Check that a checkpoint write on a full disk fails naming checkpoint_dir and
    saying the previous checkpoint is intact (it is, byte for byte), counts nothing,
    and leaves no partial folder."""
    done = run_with_fault(_FAULT_CHILD.format(model=tiny_model_dir, stream=STREAM) + """
clf.partial_fit(X[:40], y[:40], classes=[0, 1])
before, seen = snapshot(), clf.n_samples_seen_
fill_disk()
try:
    clf.partial_fit(X[40:], y[40:])
except OSError as exc:
    message = str(exc)
else:
    raise AssertionError("no error on a full disk")
assert "checkpoint_dir=" in message and "intact" in message, message
assert clf.n_iter_ == 1 and clf.n_samples_seen_ == seen
assert snapshot() == before
print("OK")
""", tmp_path / "ck", fault="full", env=_env())
    _check_child(done)


def test_read_only_checkpoint_dir_is_refused_before_training(tiny_model_dir, tmp_path):
    """Check that a read-only checkpoint_dir is refused, naming it, before a trainer is
    built or anything trains."""
    done = run_with_fault(_FAULT_CHILD.format(model=tiny_model_dir, stream=STREAM) + """
def no_training(*args, **kwargs):
    raise AssertionError("a trainer was built")
BertTextClassifier._new_trainer = no_training
make_read_only()
try:
    clf.partial_fit(X[:40], y[:40], classes=[0, 1])
except OSError as exc:
    assert "checkpoint_dir=" in str(exc) and "cannot be written" in str(exc), str(exc)
else:
    raise AssertionError("no error on a read-only folder")
assert not hasattr(clf, "model_")
print("OK")
""", tmp_path / "ck", fault="read_only", env=_env())
    _check_child(done)


def test_unwritable_checkpoint_dir_is_refused_before_training(tiny_model_dir, chunks,
                                                              tmp_path):
    """Check the probe without special file systems: a checkpoint_dir under a file."""
    (tmp_path / "file").write_text("not a folder")
    clf = BertTextClassifier(tiny_model_dir, **STREAM, checkpoint_dir=tmp_path / "file" / "ck")
    with pytest.raises(OSError, match="checkpoint_dir=.*cannot be written"):
        clf.partial_fit(*chunks[0], classes=[0, 1])
    assert not hasattr(clf, "model_")


def test_full_disk_during_onnx_export_keeps_the_previous_folder(fitted, tmp_path):
    """Check that export_onnx on a full disk names the folder, says the previous
    export is intact (it is, byte for byte) and leaves nothing behind."""
    pytest.importorskip("onnxscript", reason="the ONNX exporter needs onnxscript (skbert[onnx])")
    model = tmp_path / "model.skops"
    sio.dump(fitted, model)
    done = run_with_fault(f"""
import os, pathlib, skops.io as sio
clf = sio.load({os.fspath(model)!r}, trusted={TRUSTED!r})
out = pathlib.Path(FOLDER, "onnx")
clf.export_onnx(out)
before = {{p: p.read_bytes() for p in out.rglob("*")}}
fill_disk(leave=64 * 1024)  # the folder probe fits; the graph does not
try:
    clf.export_onnx(out)
except OSError as exc:
    assert "export_onnx" in str(exc) and "intact" in str(exc), str(exc)
else:
    raise AssertionError("no error on a full disk")
assert {{p: p.read_bytes() for p in out.rglob("*")}} == before
assert sorted(os.listdir(FOLDER)) in (["onnx"], [".filler", "onnx"]), os.listdir(FOLDER)
print("OK")
""", tmp_path / "export", fault="full", env=_env())
    _check_child(done)


# ------------------------------------------------------------ earlier versions
OLD_FILES = [("7c183a0", "skops"), ("7c183a0", "pkl"), ("1118b28", "skops"),
             ("80ce964", "skops"), ("80ce964", "pkl")]


def _old_model(version, kind):
    """The classifier saved by skbert ``version`` as ``model.<kind>`` (skops or pickle)."""
    path = OLD_VERSIONS / version / f"model.{kind}"
    if kind == "skops":
        return sio.load(path, trusted=TRUSTED)
    with open(path, "rb") as f:
        return pickle.load(f)


@pytest.mark.parametrize("version, kind", OLD_FILES)
def test_model_files_of_earlier_versions_load(version, kind):
    """Check that files saved by earlier skbert versions (tests/data/old_versions) load,
    give every parameter (the ones they predate at their defaults), and predict as they
    did."""
    clf = _old_model(version, kind)
    defaults = BertTextClassifier().get_params()
    params = clf.get_params()
    assert params.keys() == defaults.keys()
    assert params["training_dtype"] == defaults["training_dtype"]
    texts = json.loads((OLD_VERSIONS / version / "texts.json").read_text())
    proba = clf.set_params(inference_dtype="float32").predict_proba(texts)
    np.testing.assert_allclose(proba, np.load(OLD_VERSIONS / version / "proba.npy"), atol=1e-5)


@pytest.mark.parametrize("version, kind", OLD_FILES)
def test_model_files_of_earlier_versions_continue_training(version, kind):
    """Check that a model file of an earlier release continues training with partial_fit
    and predicts with the new weights. Bug (issue 33): the first release stored the
    head's dropout as its value (0.1), which partial_fit took for a changed network
    under today's default head_dropout=None (the backbone's 0.1); 80ce964 is the last
    release before the modules were re-cut."""
    clf = _old_model(version, kind)
    texts = json.loads((OLD_VERSIONS / version / "texts.json").read_text())
    before = clf.set_params(inference_dtype="float32").predict_proba(texts)
    X, y = make_texts(16, seed=3)
    clf.set_params(learning_rate=5e-3).partial_fit(X, y)
    assert clf.n_iter_ == 1 and clf.n_samples_seen_ == 16
    assert not np.allclose(clf.predict_proba(texts), before, atol=1e-4)


def test_saved_state_carries_its_format_and_a_newer_one_is_refused(fitted):
    """Check that persisted state names its format and skbert version, and that a file
    of a newer format is refused naming both versions."""
    state = fitted.__getstate__()
    assert state["_skbert_format"] == 1 and state["_skbert_version"] == __version__
    # Format 2 marks a truncation that a format-1 reader would ignore.
    windowed = copy.copy(fitted).set_params(truncation="window").__getstate__()
    assert windowed["_skbert_format"] == 2
    state.update(_skbert_format=3, _skbert_version="9.0.0")
    restored = BertTextClassifier.__new__(BertTextClassifier)
    with pytest.raises(ValueError, match=rf"saved by skbert 9\.0\.0 in format 3; this "
                                         rf"skbert {__version__} reads formats 0 to 2"):
        restored.__setstate__(state)


# ------------------------------------------------------------ labels and streams
def test_shuffled_streams_of_many_classes_are_not_flagged():
    """Check that shuffled streams of small chunks (500 classes of 2 rows; 2 classes in
    chunks of 1 to 5) raise no unshuffled warning, while a sorted stream still does."""
    from skbert._streaming import warn_if_unshuffled

    def warnings_of(y, n_classes, size):
        classes, seen = np.arange(n_classes), np.zeros(n_classes, dtype=np.int64)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for start in range(0, len(y), size):
                chunk = y[start : start + size]
                warn_if_unshuffled(chunk, np.asarray(classes), seen)
                seen = seen + np.bincount(chunk, minlength=n_classes)
        return len(caught)

    rng = np.random.default_rng(0)
    many = rng.permutation(np.repeat(np.arange(500), 2))
    assert [warnings_of(many, 500, size) for size in (10, 50, 100, 250)] == [0, 0, 0, 0]
    two = rng.integers(0, 2, size=400)
    assert [warnings_of(two, 2, size) for size in (1, 3, 5, 20)] == [0, 0, 0, 0]
    assert warnings_of(np.sort(two), 2, 40) > 0


def test_list_of_tuple_labels_is_explained():
    """Check that tuple labels get a message saying a list of tuples reads as a 2-D
    target, not 'mixed label types (tuple)'."""
    X, _ = make_texts(4)
    with pytest.raises(ValueError, match=r"list of tuples .* 2-D target of shape"):
        BertTextClassifier().fit(X, [("a", "b"), ("c", "d"), ("a", "b"), ("c", "d")])


# ------------------------------------------------------------ hub ids, offline
def test_hub_id_offline_fails_fast_naming_the_way_out(monkeypatch):
    """Check that an uncached hub id fails in under 2 s, naming HF_HUB_OFFLINE and
    local folders, both with HF_HUB_OFFLINE set and when the hub does not answer."""
    from huggingface_hub import HfApi, constants

    from skbert._pretrained import resolve_model_path

    def unreachable(*args, **kwargs):
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(HfApi, "model_info", unreachable)
    for offline in (True, False):
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)
        start = time.perf_counter()
        with pytest.raises(OSError, match="HF_HUB_OFFLINE.*folder"):
            resolve_model_path("no-such-org/no-such-model")
        assert time.perf_counter() - start < 2


def test_cached_hub_id_loads_from_the_cache_without_network(tiny_model_dir, tmp_path,
                                                            monkeypatch):
    """Check that a hub id in the local Hugging Face cache resolves to its snapshot with
    no request to the hub."""
    import shutil

    from huggingface_hub import HfApi, constants

    from skbert._pretrained import resolve_model_path

    repo = tmp_path / "models--tiny-org--tiny-bert"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", os.fspath(tmp_path))

    def no_network(*args, **kwargs):
        raise AssertionError("the hub was asked")

    monkeypatch.setattr(HfApi, "model_info", no_network)
    path = resolve_model_path("tiny-org/tiny-bert")
    assert Path(path) == repo / "snapshots" / "0123abcd"
    X, y = make_texts(20)
    BertTextClassifier("tiny-org/tiny-bert", **STREAM, max_iter=1).fit(X, y)
