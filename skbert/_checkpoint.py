"""Atomic files, folders and checkpoints: written under a temporary name, renamed when complete.

A checkpoint is a folder ``ckpt-<step>`` of files. It only ever appears under that
name complete, and an old one is renamed to a never-read name before it is deleted, so
a crash (even SIGKILL) while writing or pruning leaves at most a ``.ckpt-*.tmp-*`` or
``.ckpt-*.trash-*`` folder, which is never read and is removed by the next writer. One
stream at a time writes a folder: it holds an exclusive lock on ``<folder>/.lock``.
This module imports nothing from skbert.
"""

import contextlib
import datetime
import os
import re
import secrets
import shutil
import socket
import tempfile
from pathlib import Path

_NAME = re.compile(r"^ckpt-(\d{12})$")
# Left behind by a writer or pruner that was killed: never read, removed under the lock.
_LEFTOVER = re.compile(r"^\.ckpt-\d{12}\.(tmp|trash|old)-")
_LOCK_FILE = ".lock"


def _step(path):
    return int(_NAME.match(path.name).group(1))


def checkpoints_in(root):
    """The complete checkpoints under ``root``, oldest first (none if it is not a folder)."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def write_checkpoint(root, step, files, keep):
    """Write ``files`` ({name: bytes}) as checkpoint ``step`` under ``root``.

    Keeps the ``keep`` newest checkpoints and returns the new folder.
    """
    root = Path(root)
    check_newer(root, step)
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".ckpt-{step:012d}.tmp-", dir=root))
    try:
        for name, data in files.items():
            with open(staging / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        target = replace_folder(staging, root / f"ckpt-{step:012d}")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    for old in [p for p in checkpoints_in(root) if p != target][: -keep + 1 or None]:
        remove_folder(old)
    return target


def remove_folder(path):
    """Delete the folder ``path``, renaming it to a never-read name first.

    A kill part-way then leaves a hidden ``.<name>.trash-*`` folder, never a
    half-deleted folder under a name that is read.
    """
    path = Path(path)
    trash = path.parent / f".{path.name}.trash-{secrets.token_hex(4)}"
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
        for leftover in self.folder.iterdir():  # of writers killed part-way
            if _LEFTOVER.match(leftover.name):
                shutil.rmtree(leftover, ignore_errors=True)

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


def replace_folder(staging, target):
    """Rename the complete folder ``staging`` to ``target``, replacing an old one.

    An existing ``target`` is moved aside first and deleted only once ``staging`` is in
    place, so at every moment ``target`` is either the old folder or the new one.
    """
    staging, target = Path(staging), Path(target)
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, aside / "old")
        try:
            os.replace(staging, target)
        except BaseException:
            os.replace(aside / "old", target)  # put the old folder back
            shutil.rmtree(aside, ignore_errors=True)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(staging, target)
    return target


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
