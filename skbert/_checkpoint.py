"""Atomic files and folders: written under a temporary name, swapped in when complete.

Every writer of a folder (``save_pretrained``, ``MaskedLMPretrainer.save_pretrained``,
``export_onnx`` and the ``ckpt-<step>`` folders of ``partial_fit``) writes it through one
mechanism, :func:`staged_folder`: a hidden staging folder beside the target, filled,
synced, then swapped in. At every instant the path holds the old folder or the new one;
what skbert did not write is never removed; folders and files get the modes the umask
asks for. A checkpoint folder ``ckpt-<step>`` only ever appears complete; an old one is
renamed to a never-read name before it is deleted. One stream at a time writes a
checkpoint folder: it holds an exclusive lock on ``<folder>/.lock``. This module imports
nothing from skbert.
"""

import contextlib
import ctypes
import datetime
import errno
import functools
import os
import re
import secrets
import shutil
import socket
import stat
import sys
import tempfile
from pathlib import Path

_NAME = re.compile(r"^ckpt-(\d{12})$")
# A hidden name beside a target ``name``: ``.name.tmp-*`` (a staging folder, or the old
# folder after an exchange), ``.name.old-*`` (the old folder moved aside by the two-rename
# swap) or ``.name.trash-*`` (a folder being deleted). The random part is 8 characters
# (hexadecimal; letters, digits and "_" from the mkdtemp of earlier releases).
_HIDDEN = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old|trash)-[a-z0-9_]{8}$")
_LOCK_FILE = ".lock"
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2  # linux/fs.h

# What skbert writes, per kind of folder: who writes it (for messages), the files whose
# presence marks such a folder (any one of the sets, all its names), and the names that
# such a folder may hold besides those of the new one (what earlier releases of skbert
# and transformers wrote there).
_HF_FILES = (r"(config|generation_config|tokenizer|tokenizer_config|special_tokens_map"
             r"|added_tokens|vocab|preprocessor_config|model\.safetensors\.index)\.json"
             r"|(vocab|merges)\.txt|[\w.-]+\.safetensors|(spiece|sentencepiece\.bpe"
             r"|tokenizer)\.model|chat_template\.(jinja|json)|README\.md")
FOLDER_KINDS = {
    "checkpoint": ("partial_fit's checkpoints", None,
                   re.compile(r"estimator\.skops|training_state\.pt")),
    "estimator": ("save_pretrained", [("skbert.json",)],
                  re.compile(rf"skbert\.json|skbert_head\.safetensors|{_HF_FILES}")),
    "onnx": ("export_onnx", [("skbert_onnx.json", "model.onnx")],
             re.compile(rf"skbert_onnx\.json|model\.onnx(\.data)?|{_HF_FILES}")),
    "static": ("save_pretrained of a static estimator", [("skbert_static.json",)],
               re.compile(rf"skbert_static\.json|{_HF_FILES}")),
    "encoder": ("MaskedLMPretrainer.save_pretrained",
                [("config.json", "tokenizer.json"), ("config.json", "tokenizer_config.json")],
                re.compile(_HF_FILES)),
}


def _step(path):
    return int(_NAME.match(path.name).group(1))


def _listing(names, limit=5):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


# ------------------------------------------------------------------ folder swaps
@functools.cache
def _renameat2():
    """libc's ``renameat2``, or None where this system has none (not Linux, old libc)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    function.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                         ctypes.c_uint)
    function.restype = ctypes.c_int
    return function


def _rename_exchange(a, b):
    """Swap the names of the existing paths ``a`` and ``b`` in one atomic step.

    Returns False, having changed nothing, where the OS or the file system has no such
    exchange (no ``renameat2``; EINVAL, ENOSYS, EOPNOTSUPP, or EPERM from a sandbox that
    filters the call); then the caller falls back to two renames.
    """
    function = _renameat2()
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EPERM):
        return False
    raise OSError(code, os.strerror(code), os.fspath(b))


def _lock(folder, *, block):
    """An exclusive ``flock`` on ``folder``, as an open descriptor to close when done.

    None where locks are unavailable (no ``fcntl``, a file system without them) or the
    folder is gone. Raises BlockingIOError when another process holds it and not
    ``block``: a live writer's folder, which nobody else may touch.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return None
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if block else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        raise
    except OSError:
        os.close(fd)
        return None
    return fd


def _unlock(fd):
    if fd is not None:
        os.close(fd)


def _hidden(target, kind):
    """A fresh never-read name beside ``target``: ``.<name>.<kind>-<8 hex digits>``."""
    return target.parent / f".{target.name}.{kind}-{secrets.token_hex(4)}"


def _sync_folder(folder):
    """Flush a folder's entries (its renames) to disk, where the OS can open folders."""
    if os.name != "posix":  # pragma: no cover
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _settle(staging):
    """Give ``staging``'s contents the modes the umask asks for and flush them to disk.

    ``staging`` was made by ``mkdir(0o777)``, so its mode is what the umask (and a
    default ACL) grants a new folder; folders inside get that mode and files the same
    without execute bits (``0o666 & ~umask`` under a plain umask), whatever the library
    that wrote them chose.
    """
    folder_mode = stat.S_IMODE(os.lstat(staging).st_mode) & 0o777
    file_mode = folder_mode & 0o666
    folders = []
    for root, dirs, files in os.walk(staging):
        folders.append(root)
        for entry, mode in [(d, folder_mode) for d in dirs] + [(f, file_mode) for f in files]:
            path = os.path.join(root, entry)
            info = os.lstat(path)
            if stat.S_ISLNK(info.st_mode):
                continue
            if stat.S_IMODE(info.st_mode) & 0o777 != mode:
                os.chmod(path, (stat.S_IMODE(info.st_mode) & ~0o777) | mode)
            if stat.S_ISREG(info.st_mode):
                fd = os.open(path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
    for folder in reversed(folders):
        _sync_folder(folder)


def replace_folder(staging, target):
    """Put the complete folder ``staging`` at ``target``, replacing an old one.

    Where the OS swaps two names in one step (Linux's ``renameat2`` with
    ``RENAME_EXCHANGE``), the new folder and the old one trade names and the old one, now
    under the never-read staging name, is deleted: ``target`` is at every instant the old
    folder or the new one. Elsewhere the old folder is renamed aside to ``.<name>.old-*``
    first, put back if the second rename fails, and deleted once the new one is in place;
    a kill between the two renames leaves it alone there, and :func:`recover_folder`
    (run by every writer, by the checkpoint lock and when checkpoints are listed) puts it
    back. Callers check first that ``target`` may be replaced (:func:`staged_folder`).

    Parameters
    ----------
    staging : str or os.PathLike
        The complete new folder, in the same folder as ``target``.
    target : str or os.PathLike
        Where it goes.

    Returns
    -------
    target : pathlib.Path
    """
    staging, target = Path(staging), Path(target)
    if not os.path.lexists(target):
        os.replace(staging, target)
    elif _rename_exchange(staging, target):
        shutil.rmtree(staging, ignore_errors=True)  # the old folder, under a never-read name
    else:
        held = _lock(target, block=True)  # recover_folder leaves a held old folder alone
        try:
            aside = _hidden(target, "old")
            os.replace(target, aside)
            try:
                os.replace(staging, target)
            except BaseException:
                os.replace(aside, target)  # put the old folder back
                raise
        finally:
            _unlock(held)
        shutil.rmtree(aside, ignore_errors=True)
    _sync_folder(target.parent)
    return target


def recover_folder(target):
    """Put back the folder a killed swap left only under a hidden ``.<name>.old-*`` name.

    Runs when ``target`` is missing: the newest such leftover that no live writer holds
    is renamed to ``target``. Nothing is ever deleted here. Loaders of a folder call this
    before reading it; writers and the checkpoint lock call it before cleaning up.

    Parameters
    ----------
    target : str or os.PathLike
        The folder that should be there.

    Returns
    -------
    recovered : bool
        Whether a folder was put back.
    """
    target = Path(target)
    if os.path.lexists(target):
        return False
    try:
        entries = list(os.scandir(target.parent))
    except OSError:
        return False
    asides = [Path(e.path) for e in entries
              if (m := _HIDDEN.match(e.name)) and m["name"] == target.name
              and m["kind"] == "old" and e.is_dir(follow_symlinks=False)]
    for aside in sorted(asides, key=lambda p: os.lstat(p).st_ctime, reverse=True):
        try:
            held = _lock(aside, block=False)
        except BlockingIOError:
            continue  # a live writer's: it puts the folder back itself
        try:
            inner = [e.name for e in os.scandir(aside)]
            # Earlier releases moved the old folder to ``.<name>.old-*/old``.
            source = aside / "old" if inner == ["old"] and (aside / "old").is_dir() else aside
            os.replace(source, target)
        except OSError:
            continue
        finally:
            _unlock(held)
        if source != aside:
            with contextlib.suppress(OSError):
                aside.rmdir()
        return True
    return False


def clean_leftovers(folder, name=None):
    """Put back lone old folders, then remove what killed writers left in ``folder``.

    Hidden ``.<name>.tmp-*`` (staging, or an old folder after an exchange) and
    ``.<name>.trash-*`` folders (being deleted) are removed unless a live writer holds
    them (its ``flock``); they are never a folder's only copy. A ``.<name>.old-*`` folder
    (moved aside by a two-rename swap) is removed only when ``<name>`` exists; when it is
    missing, the old folder is renamed back into place instead (:func:`recover_folder`).

    Parameters
    ----------
    folder : str or os.PathLike
        The folder holding the targets.
    name : str or None
        The target's name; None for every ``ckpt-<step>`` of a checkpoint folder.
    """
    folder = Path(folder)
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    found = [(Path(e.path), m["name"], m["kind"]) for e in entries
             if (m := _HIDDEN.match(e.name)) and e.is_dir(follow_symlinks=False)
             and (m["name"] == name if name is not None else _NAME.match(m["name"]))]
    for target in {n for _, n, kind in found if kind == "old"}:
        with contextlib.suppress(OSError):
            recover_folder(folder / target)
    for leftover, target, kind in found:
        if kind == "old" and not os.path.lexists(folder / target):
            continue  # not put back (a live writer's, or unreadable): maybe the only copy
        try:
            held = _lock(leftover, block=False)
        except BlockingIOError:
            continue  # a live writer's staging folder
        try:
            shutil.rmtree(leftover, ignore_errors=True)
        finally:
            _unlock(held)


def _kind_of(target, names):
    """Which writer's folder ``target`` (holding the files ``names``) is, or None."""
    for kind in ("onnx", "estimator", "static", "encoder"):
        if any(set(marker) <= names for marker in FOLDER_KINDS[kind][1]):
            return kind
    return "checkpoint" if _NAME.match(target.name) else None


def check_replaceable(target, *, name="path", kind, keeping=None):
    """Refuse a ``target`` that a writer of ``kind`` must not replace, before any work.

    A missing path or an empty folder may be replaced. A non-empty folder may be
    replaced only when skbert wrote it, as the same kind of folder: recognised by its
    marker files (``skbert.json`` for ``save_pretrained``; ``skbert_onnx.json`` and
    ``model.onnx`` for ``export_onnx``; ``config.json`` with ``tokenizer.json`` or
    ``tokenizer_config.json``, and neither of those, for
    ``MaskedLMPretrainer.save_pretrained``; the name ``ckpt-<step>`` inside a checkpoint
    folder for checkpoints) and holding regular files only, never subfolders or links.
    Once the new folder is complete, ``keeping`` (its file names) is passed: then every
    file of the old folder must be one the writer writes (one of ``keeping`` or a name
    that kind of folder held in earlier releases: tokenizer files, weights, the card), so
    that a file a user put into the folder is never deleted with it.

    Parameters
    ----------
    target : pathlib.Path
        The folder to write.
    name : str
        What ``target`` is to the user (a parameter's name), named in the error.
    kind : {"estimator", "static", "encoder", "onnx", "checkpoint"}
        Which writer asks (see ``FOLDER_KINDS``).
    keeping : set of str or None
        The new folder's file names, or None before it is written.

    Raises
    ------
    FileExistsError
        Naming ``name``, the path, what is there and what to do instead.
    """
    what, _, allowed = FOLDER_KINDS[kind]
    path = os.fspath(target)
    if os.path.islink(target):
        raise FileExistsError(
            f"{name}={path!r} is a symbolic link (to {os.readlink(target)!r}), which "
            f"{what} does not replace. Nothing was written; pass the folder the link points "
            "to, or another path.")
    if not os.path.lexists(target):
        return
    if not os.path.isdir(target):
        raise FileExistsError(
            f"{name}={path!r} is a file, not a folder: {what} writes a folder there and "
            "would have to delete the file. Nothing was written; choose a path that does "
            f"not exist, an empty folder, or a folder that {what} wrote.")
    entries = sorted(os.scandir(target), key=lambda e: e.name)
    if not entries:
        return
    names = sorted(e.name for e in entries)
    found = _kind_of(target, set(names))
    if found != kind:
        by = "" if found is None else f", as written by {FOLDER_KINDS[found][0]}"
        raise FileExistsError(
            f"{name}={path!r} is a folder that {what} did not write (it holds "
            f"{_listing(names)}{by}); replacing it would delete them. Nothing was "
            "written; choose a path that does not exist or an empty folder.")
    odd = [e.name for e in entries if not e.is_file(follow_symlinks=False)]
    if keeping is not None:
        odd += [e.name for e in entries if e.name not in odd and e.name not in keeping
                and not allowed.fullmatch(e.name)]
    if odd:
        them = "them" if len(odd) > 1 else "it"
        raise FileExistsError(
            f"{name}={path!r} holds {_listing(sorted(odd))}, which {what} did not write; "
            f"replacing the folder would delete {them}. Nothing was changed; move {them} "
            "out of the folder, or choose another path.")


@contextlib.contextmanager
def staged_folder(target, *, name="path", kind):
    """Yield a staging folder beside ``target``; swap it in when the block ends.

    The one way skbert writes a folder (``save_pretrained``,
    ``MaskedLMPretrainer.save_pretrained``, ``export_onnx``, checkpoints). Promises:

    - What skbert did not write is never removed: a ``target`` that is a file, a link,
      or a non-empty folder that is not one that this ``kind`` of writer wrote (see
      :func:`check_replaceable` for how one is recognised) is refused before the block
      runs, and again, with the new folder's file names, before the swap.
    - At every instant the old folder or the new one is at ``target``
      (:func:`replace_folder`: an atomic exchange where the OS has one; elsewhere a lone
      old folder left by a kill is put back by the next writer, loader or lock).
    - Folders and files get the modes the umask asks for, as ``mkdir`` and ``open`` give
      (``0o777 & ~umask`` and ``0o666 & ~umask``), and everything is flushed to disk
      before the swap.
    - When the block raises, the staging folder is removed and ``target`` is left as it
      was. Leftovers of writers killed earlier are cleaned first
      (:func:`clean_leftovers`); a live writer's are not (each holds an ``flock`` on its
      staging folder).

    Parameters
    ----------
    target : str or os.PathLike
        The folder to write; its parent folders are created when missing.
    name : str, default="path"
        What ``target`` is to the user, named in errors.
    kind : {"estimator", "static", "encoder", "onnx", "checkpoint"}
        Which writer writes it (see ``FOLDER_KINDS``).

    Yields
    ------
    staging : pathlib.Path
        An empty folder to fill, named ``.<name>.tmp-<8 hex digits>``.

    Raises
    ------
    FileExistsError
        When ``target`` may not be replaced, naming it, what is there and what to do.

    Examples
    --------
    >>> with staged_folder("model", kind="estimator") as staging:  # doctest: +SKIP
    ...     (staging / "skbert.json").write_text("{}")
    """
    target = Path(os.path.abspath(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target.parent, target.name)
    check_replaceable(target, name=name, kind=kind)
    staging = _hidden(target, "tmp")
    os.mkdir(staging, 0o777)  # the mode mkdir gives under the umask (mkdtemp gives 0700)
    held = _lock(staging, block=False)
    try:
        yield staging
        _settle(staging)
        check_replaceable(target, name=name, kind=kind, keeping=set(os.listdir(staging)))
        replace_folder(staging, target)
    finally:
        try:
            if os.path.lexists(staging):
                shutil.rmtree(staging, ignore_errors=True)
        finally:
            _unlock(held)


# ------------------------------------------------------------------- checkpoints
def checkpoints_in(root):
    """The complete checkpoints under ``root``, oldest first (none if it is not a folder).

    A checkpoint that a killed swap left only under a hidden ``.ckpt-*.old-*`` name is
    put back first (:func:`recover_folder`).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    names = os.listdir(root)
    for entry in names:
        if (m := _HIDDEN.match(entry)) and m["kind"] == "old" and _NAME.match(m["name"]):
            with contextlib.suppress(OSError):
                recover_folder(root / m["name"])
    found = [(int(m.group(1)), root / n) for n in os.listdir(root) if (m := _NAME.match(n))]
    return [p for _, p in sorted(found)]


def write_checkpoint(root, step, files, keep):
    """Write ``files`` ({name: bytes}) as checkpoint ``step`` under ``root``.

    Written through :func:`staged_folder`; keeps the ``keep`` newest checkpoints and
    returns the new folder.
    """
    root = Path(root)
    check_newer(root, step)
    root.mkdir(parents=True, exist_ok=True)
    target = root / f"ckpt-{step:012d}"
    with staged_folder(target, name="checkpoint", kind="checkpoint") as staging:
        for name, data in files.items():
            (staging / name).write_bytes(data)
    for old in [p for p in checkpoints_in(root) if p != target][: -keep + 1 or None]:
        remove_folder(old)
    return target


def remove_folder(path):
    """Delete the folder ``path``, renaming it to a never-read name first.

    A kill part-way then leaves a hidden ``.<name>.trash-*`` folder, never a
    half-deleted folder under a name that is read.
    """
    path = Path(path)
    trash = _hidden(path, "trash")
    os.replace(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


class FolderLock:
    """An exclusive lock on a checkpoint folder, held until ``release`` or exit.

    ``fcntl.flock`` on ``<folder>/.lock``: the kernel releases it when the process
    ends, however it ends (SIGKILL included), so a lock is never left stale. The file
    records the holder (process id, host, time) for the message a second writer gets.
    Copies of an estimator share their stream, so copying the lock returns it.

    Parameters
    ----------
    folder : str or os.PathLike
        The checkpoint folder; created when missing.
    name : str
        What the folder is to the user, named in errors (``"checkpoint_dir"``).

    Raises
    ------
    RuntimeError
        When another stream holds the lock, naming the folder and the holder.
    """

    def __init__(self, folder, name="checkpoint_dir"):
        import fcntl

        self.folder = Path(folder)
        check_writable(self.folder, name)
        self._file = open(self.folder / _LOCK_FILE, "a+")  # noqa: SIM115 - held open
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.seek(0)
            holder = self._file.read().strip() or "another process"
            self._file.close()
            here = ""
            if holder.startswith(f"pid {os.getpid()} on {socket.gethostname()} "):
                here = (" That stream is another estimator in this process (such as the "
                        "one a checkpoint was resumed from); it holds the folder until it "
                        "calls fit or is deleted.")
            raise RuntimeError(
                f"{name}={os.fspath(self.folder)!r} is in use by another stream "
                f"({holder}), which writes its checkpoints there. Two streams in one "
                f"folder would replace each other's checkpoints: give this one another "
                f"{name}, or wait for that stream to end.{here}"
            ) from None
        self._file.seek(0)
        self._file.truncate()
        self._file.write(
            f"pid {os.getpid()} on {socket.gethostname()} since "
            f"{datetime.datetime.now().isoformat(timespec='seconds')}\n")
        self._file.flush()
        clean_leftovers(self.folder)  # of writers killed part-way; never an only copy

    def holds(self, folder):
        """Whether this lock is held and on ``folder``."""
        return not self._file.closed and os.path.abspath(folder) == os.path.abspath(
            self.folder)

    def release(self):
        """Let another stream write the folder (closing the file releases the lock)."""
        self._file.close()

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __del__(self):
        with contextlib.suppress(Exception):
            self._file.close()


def check_newer(root, step, name="checkpoint_dir"):
    """Refuse a folder holding a checkpoint newer than ``step``: another run's."""
    newer = [p.name for p in checkpoints_in(root) if _step(p) > step]
    if newer:
        raise ValueError(
            f"{name} {os.fspath(root)!r} already holds {newer[-1]}, newer than "
            f"step {step} of this run: it belongs to another run. Continue that run with "
            "BertTextClassifier.resume, or give this run an empty checkpoint_dir."
        )


def check_writable(folder, name):
    """Refuse, before any work, a folder that cannot be created or written.

    Creates ``folder`` (and its parents) when missing, then creates and removes one
    small file in it, so that a read-only file system, a full disk of zero free inodes
    or missing permissions are found before hours of training, not after.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder to probe.
    name : str
        What the folder is to the user (``"checkpoint_dir"``, ``"--out"``), named in
        the error.

    Raises
    ------
    OSError
        Naming ``name``, the folder and why it cannot be written.
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".skbert-write-probe-", dir=folder)
        try:
            os.write(fd, b"0")
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(probe)
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"{name}={os.fspath(folder)!r} cannot be written "
            f"({exc.strerror or type(exc).__name__}); nothing was done. Free space, fix "
            f"its permissions, or choose another folder.",
        ) from exc


def latest_checkpoint(root):
    """The newest complete checkpoint folder under ``root``.

    Raises
    ------
    FileNotFoundError
        When ``root`` holds no complete checkpoint.
    """
    found = checkpoints_in(root)
    if not found:
        raise FileNotFoundError(
            f"No checkpoint found in {os.fspath(root)!r}: expected folders named "
            "ckpt-<step> written by BertTextClassifier(checkpoint_dir=...).partial_fit."
        )
    return found[-1]


@contextlib.contextmanager
def atomic_write(path):
    """Yield a temporary path next to ``path``; move it onto ``path`` once written.

    The temporary file is created empty (with the permissions a new file gets) in the
    same folder, so the final ``os.replace`` is atomic: ``path`` is at every moment
    absent, the previous file, or the complete new one. When the ``with`` block
    raises, the temporary file is removed and ``path`` is left as it was.

    Parameters
    ----------
    path : str or os.PathLike
        The file to write.

    Yields
    ------
    tmp : pathlib.Path
        Where to write; a name starting with "." and ending with ".tmp".

    Examples
    --------
    >>> with atomic_write("preds.csv") as tmp:  # doctest: +SKIP
    ...     frame.to_csv(tmp)
    """
    path = Path(path)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
