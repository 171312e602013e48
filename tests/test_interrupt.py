"""Ctrl-C and progress in a real child process: a SIGINT sent from outside stops ``fit``,
a script and a ``GridSearchCV`` (the estimator stays usable to whoever catches it), and
``verbose="auto"`` draws bars on a terminal (a pseudo-terminal here) and none on a pipe."""

import os
import select
import signal
import struct
import subprocess
import sys
import textwrap
import time

import pytest

# Processes, signals and bars, not numbers of one precision: run once in CI.
pytestmark = [
    pytest.mark.any_precision,
    pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals and pseudo-terminals"),
]

# What every child runs first: the toy task, and a head that says when training began
# ("TRAINING" on stdout) and slows each training step, so that Ctrl-C lands mid-fit.
_PRELUDE = """
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)  # not SIG_IGN of a background job
import numpy as np
from torch import nn
from skbert import BertTextClassifier
sys.path.insert(0, {tests!r})
from conftest import make_texts

X, y = make_texts(64, seed=1)


class SlowHead(nn.Linear):
    def forward(self, x):
        if self.training:
            if not getattr(self, "started", False):
                self.started = True
                print("TRAINING", flush=True)
            time.sleep({sleep})
        return super().forward(x)


PARAMS = dict(model_name_or_path={model!r}, max_length=32, batch_size=16, device="cpu",
              random_state=0, learning_rate=5e-3, max_iter={max_iter}, verbose={verbose!r})
"""


def _script(body, model, *, sleep=0.05, max_iter=100, verbose="auto"):
    tests = os.path.dirname(os.path.abspath(__file__))
    prelude = _PRELUDE.format(tests=tests, model=model, sleep=sleep, max_iter=max_iter,
                              verbose=verbose)
    return prelude + textwrap.dedent(body)


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1",
                PYTHONUNBUFFERED="1")


def _interrupt_at_each_start(proc, times, timeout=240):
    """Send SIGINT to ``proc`` each time a fit prints TRAINING, ``times`` times; return
    what it printed on stdout and stderr."""
    out, deadline = [], time.monotonic() + timeout
    while times and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if line.strip() == "TRAINING":
            proc.send_signal(signal.SIGINT)
            times -= 1
    rest, err = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    return "".join(out) + rest, err


def _start(script):
    return subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())


def test_ctrl_c_in_fit_keeps_a_usable_estimator_and_stops_the_script(tiny_model_dir):
    """Check, in a child process sent SIGINT mid-fit, that fit raises KeyboardInterrupt
    after the step in progress, that whoever catches it holds a fitted estimator with
    interrupted_=True that predicts (and that a normal fit sets interrupted_=False), and
    that a script that does not catch it stops there: the statement after fit does not
    run. Its stderr is a pipe, so verbose="auto" draws no bar."""
    proc = _start(_script("""
        clf = BertTextClassifier(**PARAMS, head=lambda d, k: SlowHead(d, k))
        try:
            clf.fit(X, y)
        except KeyboardInterrupt as exc:
            print("CAUGHT", exc)
        print("STATE", clf.interrupted_, clf.n_iter_, len(clf.loss_curve_),
              clf.predict(X[:5]).shape, np.isfinite(clf.predict_proba(X)).all())
        clone = BertTextClassifier(**dict(PARAMS, max_iter=1))
        print("NORMAL", clone.fit(X, y).interrupted_)
        BertTextClassifier(**PARAMS, head=lambda d, k: SlowHead(d, k)).fit(X, y)
        print("AFTER FIT")
    """, tiny_model_dir))
    out, err = _interrupt_at_each_start(proc, 2)
    assert proc.returncode == -signal.SIGINT, err  # died of the KeyboardInterrupt
    assert "CAUGHT Training interrupted by user during epoch 1" in out, err
    assert "interrupted_=True" in out
    assert "STATE True 1 1 (5,) True" in out
    assert "NORMAL False" in out
    assert out.count("TRAINING") == 2 and "AFTER FIT" not in out
    assert "KeyboardInterrupt: Training interrupted by user during epoch 1" in err
    assert "Epoch 1" not in err and "batch/s" not in err  # a pipe: no bar under "auto"


def test_ctrl_c_stops_a_grid_search(tiny_model_dir):
    """Check, in a child process sent SIGINT during the first candidate's fit, that
    GridSearchCV stops with KeyboardInterrupt (no further fit starts, the statement
    after it does not run) instead of going on with a half-trained candidate."""
    proc = _start(_script("""
        from sklearn.model_selection import GridSearchCV

        search = GridSearchCV(BertTextClassifier(**PARAMS, head=lambda d, k: SlowHead(d, k)),
                              {"learning_rate": [1e-3, 5e-3]}, cv=2)
        search.fit(X, y)
        print("AFTER SEARCH")
    """, tiny_model_dir))
    out, err = _interrupt_at_each_start(proc, 1)
    assert proc.returncode == -signal.SIGINT, err
    assert out.count("TRAINING") == 1 and "AFTER SEARCH" not in out
    assert "KeyboardInterrupt: Training interrupted by user" in err


def _run_on_pty(script, timeout=240):
    """Run ``script`` with its stderr on a pseudo-terminal; return (status, stderr)."""
    import fcntl
    import pty
    import termios

    master, slave = pty.openpty()
    # A terminal of 24 x 100 (a new pseudo-terminal is 0 x 0, where tqdm draws nothing).
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.DEVNULL,
                            stderr=slave, env=_env())
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        status = proc.wait(timeout=max(1, deadline - time.monotonic()))
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
    return status, b"".join(chunks).decode("utf-8", "replace")


def test_auto_verbose_draws_bars_on_a_terminal(tiny_model_dir):
    """Check that verbose="auto" draws the epoch bar, with its loss, when stderr is a
    terminal (a pseudo-terminal), and that a short predict under "auto" draws none
    (its bar waits AUTO_BAR_DELAY seconds)."""
    status, err = _run_on_pty(_script("""
        clf = BertTextClassifier(**PARAMS).fit(X, y)
        print("PREDICT", file=sys.stderr, flush=True)
        clf.predict(X[:3])
    """, tiny_model_dir, sleep=0, max_iter=2))
    assert status == 0, err
    assert "Epoch 1:" in err and "Epoch 2:" in err and "loss=" in err
    assert "batch/s" in err or "s/batch" in err
    assert "predict:" not in err.split("PREDICT", 1)[1]  # a short call: no bar
