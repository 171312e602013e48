"""Real file-system faults for tests: a full disk, a read-only folder, SIGKILL.

Each fault runs in a child Python process, so that the test process keeps its own
file system and survives the kill. ``run_with_fault(code, folder, ...)`` runs ``code``
with ``FOLDER`` set to ``folder`` and two functions in scope:

- ``fill_disk(leave=0)``: from then on writes under ``FOLDER`` fail as on a full disk
  (``leave`` bytes still fit, so that a small probe passes and a large write fails). Where
  user and mount namespaces work (``unshare -rm``), ``FOLDER`` is a small tmpfs that is
  filled to the last byte (ENOSPC); elsewhere the file-size limit is lowered
  (``RLIMIT_FSIZE``, EFBIG), which stops files from growing as a full disk would.
- ``make_read_only()``: ``FOLDER`` becomes read-only: a read-only bind mount in the
  namespace (EROFS), else ``chmod`` without write permission when not running as root
  (EACCES).

In the namespace, the tmpfs is mounted over ``FOLDER`` before ``code`` runs and
vanishes with the process: ``code`` itself prepares what must survive, causes the
fault and checks (by assertions) that nothing was lost. The test skips with a reason
only when neither way of making the fault works here. ``SKBERT_FAULT_FALLBACK=1``
forces the fallbacks, to check them on a machine with namespaces.
"""

import functools
import os
import subprocess
import sys
import textwrap

import pytest

_PREAMBLE = '''
import os, resource, signal, stat, subprocess, sys
FOLDER = os.environ["SKBERT_FAULT_DIR"]
_MODE = os.environ["SKBERT_FAULT_MODE"]

def fill_disk(leave=0):
    """Fill FOLDER's disk, leaving about ``leave`` bytes free (whole pages)."""
    if _MODE == "namespace":
        with open(os.path.join(FOLDER, ".filler"), "wb", buffering=0) as f:
            for size in (1 << 20, 1 << 12, 1):
                try:
                    while True:
                        f.write(b"\\0" * size)
                except OSError:
                    pass
            if leave:
                f.truncate(max(0, f.tell() - leave))
    else:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max(512, leave), hard))

def make_read_only():
    if _MODE == "namespace":
        subprocess.run(["mount", "--bind", FOLDER, FOLDER], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", FOLDER], check=True)
    else:
        for root, dirs, files in os.walk(FOLDER):
            os.chmod(root, 0o555)
'''


@functools.cache
def namespaces_work():
    """Whether ``unshare -rm`` can mount a tmpfs and a read-only bind mount here."""
    try:
        done = subprocess.run(
            ["unshare", "-rm", "sh", "-c",
             "mount -t tmpfs -o size=1m tmpfs /mnt && mount --bind /mnt /mnt "
             "&& mount -o remount,bind,ro /mnt"],
            capture_output=True, timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def run_with_fault(code, folder, *, fault, size_mb=64, timeout=300, env=None):
    """Run ``code`` in a child Python process with ``fill_disk``/``make_read_only``.

    Parameters
    ----------
    code : str
        Python source; ``FOLDER``, ``fill_disk`` and ``make_read_only`` are defined.
    folder : path
        The folder that fills up or becomes read-only (created when missing).
    fault : {"full", "read_only"}
        Which fault ``code`` will cause; decides how it can be made here.
    size_mb : int
        Size of the tmpfs in the namespace.

    Returns
    -------
    done : subprocess.CompletedProcess
        With text ``stdout`` and ``stderr``.
    """
    os.makedirs(folder, exist_ok=True)
    source = _PREAMBLE + textwrap.dedent(code)
    command = [sys.executable, "-c", source]
    if namespaces_work() and os.environ.get("SKBERT_FAULT_FALLBACK") != "1":
        mode = "namespace"
        mount = (f"mount -t tmpfs -o size={size_mb}m tmpfs \"$SKBERT_FAULT_DIR\" && "
                 if fault == "full" else "")
        command = ["unshare", "-rm", "sh", "-c", mount + 'exec "$@"', "sh", *command]
    elif fault == "full":
        mode = "rlimit"
    elif os.geteuid() != 0:
        mode = "chmod"
    else:
        pytest.skip("cannot make a read-only folder here: user namespaces are not "
                    "available and root ignores file permissions")
    child_env = dict(os.environ, **(env or {}), SKBERT_FAULT_DIR=os.fspath(folder),
                     SKBERT_FAULT_MODE=mode)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                          env=child_env, cwd=os.getcwd())


def run_killed(code, timeout=300, env=None):
    """Run ``code`` in a child Python process that is expected to die of SIGKILL.

    ``code`` patches the function the kill should land in so that it calls
    ``kill_now()``; the test then checks what the killed process left behind.
    """
    source = ("import os, signal\n"
              "def kill_now():\n    os.kill(os.getpid(), signal.SIGKILL)\n"
              + textwrap.dedent(code))
    done = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True,
                          timeout=timeout, env=dict(os.environ, **(env or {})))
    assert done.returncode == -9, (done.returncode, done.stdout, done.stderr[-3000:])
    return done
