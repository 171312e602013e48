"""Atomic files, folders and checkpoints: written under a temporary name, renamed when complete.

A checkpoint is a folder ``ckpt-<step>`` of files. It only ever appears under that
name complete, so a crash while writing leaves at most a ``.ckpt-*.tmp-*`` folder,
which is never read. This module imports nothing from skbert.
"""

import contextlib
import os
import re
import secrets
import shutil
import tempfile
from pathlib import Path

_NAME = re.compile(r"^ckpt-(\d{12})$")


def _step(path):
    return int(_NAME.match(path.name).group(1))


def _complete(root):
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
    newer = [p.name for p in _complete(root) if _step(p) > step]
    if newer:
        raise ValueError(
            f"checkpoint_dir {os.fspath(root)!r} already holds {newer[-1]}, newer than "
            f"step {step} of this run: it belongs to another run. Continue that run with "
            "BertTextClassifier.resume, or give this run an empty checkpoint_dir."
        )
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
    for old in [p for p in _complete(root) if p != target][: -keep + 1 or None]:
        shutil.rmtree(old, ignore_errors=True)
    return target


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


def latest_checkpoint(root):
    """The newest complete checkpoint folder under ``root``.

    Raises
    ------
    FileNotFoundError
        When ``root`` holds no complete checkpoint.
    """
    found = _complete(root)
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
