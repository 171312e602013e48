"""Writing folders: one staging-and-swap for every writer (``_checkpoint.staged_folder``).

What skbert did not write is never removed; the old or the new folder is at the path at
every instant (an atomic exchange, or a lone old folder put back after a kill); folders
and files get the modes the umask asks for. The kills are real: a child process is
killed with SIGKILL at the exact point (``tests/_fs_faults.run_killed``).
"""

import ctypes
import errno
import os
import pickle
import stat
import sys
from pathlib import Path

import numpy as np
import pytest

from skbert import BertTextClassifier, _checkpoint
from skbert._checkpoint import FolderLock, latest_checkpoint, replace_folder, write_checkpoint

from ._fs_faults import run_killed

exchange_works = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                    reason="renameat2(RENAME_EXCHANGE) is Linux's")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")


def _files(folder):
    """Every file under ``folder`` and its bytes."""
    folder = Path(folder)
    return {os.fspath(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _hidden(folder):
    return sorted(p.name for p in Path(folder).iterdir() if p.name.startswith("."))


@pytest.fixture
def no_exchange(monkeypatch):
    """The OS has no atomic exchange: the probe says so, as on EINVAL or ENOSYS."""
    monkeypatch.setattr(_checkpoint, "_rename_exchange", lambda a, b: False)


@pytest.fixture(scope="module")
def pickled(fitted, tmp_path_factory):
    """The fitted classifier, pickled for child processes."""
    path = tmp_path_factory.mktemp("pickled") / "fitted.pkl"
    path.write_bytes(pickle.dumps(fitted))
    return path


# ------------------------------------------------ what skbert did not write stays
def test_save_pretrained_refuses_a_file_and_leaves_it(fitted, tmp_path):
    """Check that save_pretrained onto a file refuses, naming the path, and keeps it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match=r"path='.*notes\.txt' is a file, not a folder"):
        fitted.save_pretrained(notes)
    assert notes.read_text() == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_save_pretrained_refuses_a_folder_it_did_not_write(fitted, tmp_path, monkeypatch):
    """Check that a non-empty folder skbert did not write (a results folder, the working
    directory) is refused naming it and what it holds, and that nothing in it changes."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "exp1.csv").write_text("a,b\n1,2\n")
    with pytest.raises(FileExistsError,
                       match=r"path='.*results' is a folder that save_pretrained did not "
                             r"write \(it holds 'exp1\.csv'\)"):
        fitted.save_pretrained(results)
    assert _files(results) == {"exp1.csv": b"a,b\n1,2\n"}

    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "src" / "main.py").write_text("print('hi')\n")
    monkeypatch.chdir(project)
    with pytest.raises(FileExistsError, match="did not write"):
        fitted.save_pretrained(os.getcwd())
    with pytest.raises(FileExistsError, match="did not write"):
        fitted.save_pretrained(".")
    assert _files(project) == {os.path.join("src", "main.py"): b"print('hi')\n"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project", "results"]


def test_save_pretrained_replaces_its_own_folder_but_not_a_file_put_in_it(fitted, tmp_path):
    """Check that an empty folder and a folder save_pretrained wrote are (re)written,
    and that a file a user put into such a folder is not deleted with it."""
    folder = tmp_path / "model"
    folder.mkdir()
    fitted.save_pretrained(folder)  # an empty folder is fine
    (folder / "skbert.json").write_text("{}")  # stands for an older save
    fitted.save_pretrained(folder)
    assert BertTextClassifier.from_pretrained(folder).classes_.tolist() == ["neg", "pos"]
    (folder / "eval.csv").write_text("accuracy\n0.9\n")
    before = _files(folder)
    with pytest.raises(FileExistsError, match=r"holds 'eval\.csv', which save_pretrained "
                                              r"did not write.*Nothing was changed"):
        fitted.save_pretrained(folder)
    assert _files(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_every_writer_refuses_a_folder_of_another_kind(fitted, tmp_path, tiny_model_dir):
    """Check that export_onnx and the pretrainer's save refuse a folder they did not
    write (a results folder, a save_pretrained folder, a symbolic link), before work."""
    from skbert._pretrained import save_pretrained_atomic

    results = tmp_path / "results"
    results.mkdir()
    (results / "exp1.csv").write_text("x")
    saved = fitted.save_pretrained(tmp_path / "model")
    (tmp_path / "link").symlink_to(saved)
    before = _files(tmp_path)
    for path in (results, saved):
        with pytest.raises(FileExistsError, match="export_onnx did not write"):
            fitted.export_onnx(path)
        with pytest.raises(FileExistsError,
                           match="MaskedLMPretrainer.save_pretrained did not write"):
            save_pretrained_atomic(fitted.model_.backbone, fitted.tokenizer_, path)
    with pytest.raises(FileExistsError, match=r"path='.*link' is a symbolic link"):
        fitted.save_pretrained(tmp_path / "link")
    assert _files(tmp_path) == before
    # The pretrainer's own folder (config.json and the tokenizer's files) is replaced.
    encoder = save_pretrained_atomic(fitted.model_.backbone, fitted.tokenizer_,
                                     tmp_path / "encoder")
    save_pretrained_atomic(fitted.model_.backbone, fitted.tokenizer_, encoder)
    assert {"config.json", "model.safetensors"} <= {p.name for p in encoder.iterdir()}
    with pytest.raises(FileExistsError, match="save_pretrained did not write"):
        fitted.save_pretrained(encoder)


def test_a_subfolder_or_a_stray_file_in_a_checkpoint_is_refused(tmp_path):
    """Check that a folder holding a subfolder (which no writer writes) is refused
    before work, and a checkpoint holding a stray file before the swap, both named."""
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "skbert.json").write_text("{}")
    with pytest.raises(FileExistsError, match=r"holds 'sub', which save_pretrained did not"):
        with _checkpoint.staged_folder(folder, kind="estimator"):
            raise AssertionError("the block ran")
    write_checkpoint(tmp_path / "ck", 1, {"estimator.skops": b"a"}, keep=2)
    (tmp_path / "ck" / "ckpt-000000000001" / "mine.txt").write_text("x")
    with pytest.raises(FileExistsError, match=r"checkpoint='.*ckpt-000000000001' holds "
                                              r"'mine\.txt', which partial_fit's"):
        write_checkpoint(tmp_path / "ck", 1, {"estimator.skops": b"b"}, keep=2)
    assert _files(tmp_path / "ck") == {
        os.path.join("ckpt-000000000001", "estimator.skops"): b"a",
        os.path.join("ckpt-000000000001", "mine.txt"): b"x"}


def test_every_file_is_flushed_to_disk_before_the_swap(tmp_path, monkeypatch):
    """Check that every staged file is fsynced before the folder is swapped in."""
    flushed, real_fsync, real_replace = [], os.fsync, _checkpoint.replace_folder

    def recording_fsync(fd):
        flushed.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def checking_replace(staging, target):
        assert {"skbert.json", "config.json"} <= set(flushed)
        return real_replace(staging, target)

    if not os.path.isdir("/proc/self/fd"):
        pytest.skip("needs /proc/self/fd to name the flushed files")
    monkeypatch.setattr(_checkpoint.os, "fsync", recording_fsync)
    monkeypatch.setattr(_checkpoint, "replace_folder", checking_replace)
    with _checkpoint.staged_folder(tmp_path / "m", kind="estimator") as staging:
        (staging / "skbert.json").write_text("{}")
        (staging / "config.json").write_text("{}")
    assert (tmp_path / "m" / "config.json").is_file()


# ------------------------------------------------------------------------ modes
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_folders_and_files_get_the_modes_the_umask_asks_for(fitted, tmp_path, umask):
    """Check that saved folders and ckpt-* folders are 0o777 & ~umask and their files
    0o666 & ~umask, as mkdir and open give (not mkdtemp's 0700)."""
    previous = os.umask(umask)
    try:
        folders = [fitted.save_pretrained(tmp_path / "model"),
                   write_checkpoint(tmp_path / "ck", 1, {"estimator.skops": b"x"}, keep=2)]
        folders.append(fitted.save_pretrained(folders[0]))  # a replaced one too
    finally:
        os.umask(previous)
    for folder in folders:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o777 & ~umask, folder
        for path in folder.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask, path


def test_staged_files_written_private_are_given_the_umask_modes(tmp_path):
    """Check that a file a library wrote with mode 0600 (as mkstemp does) gets the
    umask's mode too."""
    previous = os.umask(0o022)
    try:
        with _checkpoint.staged_folder(tmp_path / "m", kind="estimator") as staging:
            (staging / "skbert.json").write_text("{}")
            os.chmod(staging / "skbert.json", 0o600)
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "m" / "skbert.json").stat().st_mode) == 0o644


# ----------------------------------------------------------------- the exchange
def _fake_renameat2(code):
    def renameat2(*args):
        ctypes.set_errno(code)
        return -1

    return lambda: renameat2


@exchange_works
def test_exchange_swaps_two_folders_in_one_step(tmp_path):
    """Check that this system's exchange swaps two folders (the swap's normal path)."""
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(name)
    assert _checkpoint._rename_exchange(tmp_path / "a", tmp_path / "b")
    assert (tmp_path / "a" / "f").read_text() == "b"
    assert (tmp_path / "b" / "f").read_text() == "a"


@pytest.mark.parametrize("code", [errno.EINVAL, errno.ENOSYS])
def test_swap_falls_back_to_two_renames_without_an_exchange(tmp_path, monkeypatch, code):
    """Check that where the exchange is unavailable (EINVAL: a file system without it;
    ENOSYS: an old kernel) the two-rename swap replaces the folder, leaving nothing."""
    monkeypatch.setattr(_checkpoint, "_renameat2", _fake_renameat2(code))
    assert not _checkpoint._rename_exchange(tmp_path, tmp_path)
    for name, text in (("target", "old"), ("staging", "new")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "f").write_text(text)
    replace_folder(tmp_path / "staging", tmp_path / "target")
    assert _files(tmp_path) == {os.path.join("target", "f"): b"new"}


def test_exchange_failing_otherwise_raises(tmp_path, monkeypatch):
    """Check that an exchange failing for another reason (EACCES) raises, naming the
    target, and changes nothing."""
    monkeypatch.setattr(_checkpoint, "_renameat2", _fake_renameat2(errno.EACCES))
    for name in ("target", "staging"):
        (tmp_path / name).mkdir()
    with pytest.raises(PermissionError, match="target"):
        replace_folder(tmp_path / "staging", tmp_path / "target")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["staging", "target"]


# ---------------------------------------------------------------- SIGKILL: swap
_SAVE_CHILD = """
import os, pickle, sys
import skbert._checkpoint as ck
clf = pickle.loads(open({pickled!r}, "rb").read())
TARGET = {target!r}
real_replace = os.replace
def replace_then_die(src, dst):  # the old folder has just left its name
    real_replace(src, dst)
    if os.fspath(src) == TARGET:
        kill_now()
os.replace = replace_then_die
real_exchange = getattr(ck, "_rename_exchange", None)
if {no_exchange!r}:
    ck._rename_exchange = lambda a, b: False
elif real_exchange is not None:
    def exchange_then_die(a, b):  # the new folder has just taken the old one's name
        done = real_exchange(a, b)
        if done:
            kill_now()
        return done
    ck._rename_exchange = exchange_then_die
clf.save_pretrained(TARGET)
"""


def test_sigkill_in_the_swap_leaves_a_folder_at_the_path(fitted, pickled, tmp_path, toy_data):
    """Check that a SIGKILL at the instant the old folder leaves its name (after the
    exchange here; between the two renames in earlier releases) leaves a complete
    folder at the path, which loads, and that the next save cleans up."""
    target = tmp_path / "model"
    fitted.save_pretrained(target)
    run_killed(_SAVE_CHILD.format(pickled=os.fspath(pickled), target=os.fspath(target),
                                  no_exchange=False), env=_env())
    assert (target / "skbert.json").is_file()
    _, _, X_test, _ = toy_data
    loaded = BertTextClassifier.from_pretrained(target)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    fitted.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_sigkill_between_the_renames_is_recovered_without_an_exchange(fitted, pickled,
                                                                      tmp_path):
    """Check that where the OS has no exchange, a SIGKILL between the two renames
    leaves the old folder whole under a hidden name, that recover_folder puts it back
    byte for byte (never deleting it), and that from_pretrained and the next save do so
    before reading or writing."""
    target = tmp_path / "model"
    fitted.save_pretrained(target)
    before = _files(target)
    for then in ("recover", "load", "save"):
        run_killed(_SAVE_CHILD.format(pickled=os.fspath(pickled), target=os.fspath(target),
                                      no_exchange=True), env=_env())
        assert not target.exists()  # the instant the fallback cannot avoid
        assert [n.split("-")[0] for n in _hidden(tmp_path)] == [".model.old", ".model.tmp"]
        if then == "recover":
            assert _checkpoint.recover_folder(target)
            assert _files(target) == before
            assert not _checkpoint.recover_folder(target)  # nothing more to do
        elif then == "load":  # from_pretrained puts it back before it reads the folder
            BertTextClassifier.from_pretrained(target)
            assert _files(target) == before
        else:
            fitted.save_pretrained(target)
            assert _files(target) == before  # the same model saved again
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
            "model"]
    assert _hidden(tmp_path) == []  # the second save removed every leftover


# ---------------------------------------------------------- SIGKILL: the copy
def test_sigkill_during_the_copy_keeps_the_old_folder(fitted, pickled, tmp_path):
    """Check that a SIGKILL while the new folder's files are written keeps the previous
    folder byte for byte, and that the next save removes the half-written one."""
    target = tmp_path / "model"
    fitted.save_pretrained(target)
    before = _files(target)
    run_killed(f"""
import pickle, safetensors.torch
clf = pickle.loads(open({os.fspath(pickled)!r}, "rb").read())
def half_then_die(tensors, filename, *args, **kwargs):
    open(filename, "wb").write(b"half")
    kill_now()
safetensors.torch.save_file = half_then_die
clf.save_pretrained({os.fspath(target)!r})
""", env=_env())
    assert _files(target) == before
    assert [n.split("-")[0] for n in _hidden(tmp_path)] == [".model.tmp"]
    fitted.save_pretrained(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_live_writers_staging_folder_is_left_alone(tmp_path):
    """Check that cleaning up leftovers never removes the staging folder of a writer
    that is still writing (it holds an flock on it)."""
    with _checkpoint.staged_folder(tmp_path / "m", kind="estimator") as staging:
        (staging / "skbert.json").write_text("{}")
        _checkpoint.clean_leftovers(tmp_path, "m")
        assert (staging / "skbert.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]


# ------------------------------------------------------- SIGKILL: checkpoints
_CHECKPOINT_CHILD = """
import os
import skbert._checkpoint as ck
ck._rename_exchange = lambda a, b: False  # the OS has no exchange
TARGET = os.path.join({root!r}, "ckpt-000000000003")
real_replace = os.replace
def replace_then_die(src, dst):
    real_replace(src, dst)
    if os.fspath(src) == TARGET:
        kill_now()
os.replace = replace_then_die
ck.write_checkpoint({root!r}, 3, {{"estimator.skops": b"new"}}, keep=2)
"""


@pytest.mark.parametrize("then", ["lock", "list"])
def test_checkpoint_lock_and_listing_put_back_the_only_copy(tmp_path, then):
    """Check that after a SIGKILL between the two renames of a checkpoint written again
    at its step, taking the folder's lock (or listing its checkpoints, as resume does)
    puts the old checkpoint back instead of deleting its only copy."""
    root = tmp_path / "ck"
    write_checkpoint(root, 2, {"estimator.skops": b"two"}, keep=3)
    write_checkpoint(root, 3, {"estimator.skops": b"old"}, keep=3)
    run_killed(_CHECKPOINT_CHILD.format(root=os.fspath(root)), env=_env())
    assert not (root / "ckpt-000000000003").exists()
    if then == "lock":
        FolderLock(root).release()
        assert _hidden(root) == [".lock"]  # the complete new one, staged, was removed
    assert (latest_checkpoint(root) / "estimator.skops").read_bytes() == b"old"
    assert latest_checkpoint(root).name == "ckpt-000000000003"
