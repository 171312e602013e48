"""The measured choice of prediction path: what ``inference_backend="auto"`` runs.

"auto" means the fastest path, measured here, that gives fp32's answers. On the first
large enough prediction of a fitted model in a process (a call, or its first chunk, of
at least :data:`PROBE_MIN_TEXTS` texts), the candidate paths (:func:`candidates`) each
predict the same :data:`PROBE_TEXTS` texts drawn from the call with ``random_state``
(:func:`probe_rows`); a path whose answers differ from torch fp32's (another top
column on a probe text, or a probability further than :data:`ATOL` away: :func:`agree`)
is rejected, and the fastest of the others wins (:func:`choose`). The probe stops timing
once it has spent :data:`PROBE_SECONDS`; its choice, its timings and its cost are an
:class:`InferencePath`.

Functions of values (callables that build and run a network, arrays, numbers); no
torch, no estimator. Of skbert it imports nothing.
"""

import logging
import time
from dataclasses import dataclass, field

import numpy as np

# A call (or its first chunk) of fewer texts does not probe: it runs torch with
# inference_dtype's precision. At about 500 texts/s (MiniLM, 2 CPU cores) 4,096 texts take
# some 8 s: the probe's cost (about 1 to 5 s, OpenVINO's compilation included) is then a
# fraction of one call, and later calls of this model in the process pay nothing.
PROBE_MIN_TEXTS = 4096
# Texts of the call that every candidate predicts.
PROBE_TEXTS = 128
# Timed runs of each agreeing candidate after its first (which checks the answers).
PROBE_REPEATS = 2
# Once the probe has run this long, candidates not yet built are skipped and the timing
# rounds stop (the reference, torch fp32, always runs).
PROBE_SECONDS = 20.0
# Largest absolute difference from fp32 in a probability (classifiers: softmax or
# sigmoid) or an output (regressors: standardised targets) that a path may show.
ATOL = 1e-2

REFERENCE = "torch float32"

logger = logging.getLogger("skbert")


@dataclass(frozen=True)
class InferencePath:
    """What ``inference_backend="auto"`` chose, and why (``inference_path_``).

    Attributes
    ----------
    chosen : str
        The path that predicts: "torch float32", "torch bfloat16", "openvino float32"
        or "openvino bfloat16".
    seconds : dict of str to float
        Best time of each agreeing path on the probe's texts.
    rejected : dict of str to str
        Each path left out, and why (answers unlike fp32's, out of time, not built).
    probe_texts : int
        Texts the probe predicted with each path.
    probe_seconds : float
        What the probe cost in all (building the paths, e.g. compiling, included).
    call_texts : int
        Texts of the prediction (or chunk) that probed.
    """

    chosen: str
    seconds: dict = field(default_factory=dict)
    rejected: dict = field(default_factory=dict)
    probe_texts: int = 0
    probe_seconds: float = 0.0
    call_texts: int = 0

    def __str__(self):
        timed = ", ".join(f"{name} {s * 1000:.0f} ms" for name, s in self.seconds.items())
        out = "; ".join(f"{name}: {why}" for name, why in self.rejected.items()) or "none"
        return (f"{self.chosen} (on {self.probe_texts} of {self.call_texts} texts: {timed}; "
                f"rejected: {out}; probe {self.probe_seconds:.2f} s)")


def candidates(inference_dtype, *, native_bf16, openvino):
    """The paths "auto" times under ``inference_dtype``, fastest-expected first.

    Parameters
    ----------
    inference_dtype : {"auto", "float32", "bfloat16"}
        "auto" takes every precision; an explicit one restricts the candidates to it.
    native_bf16 : bool
        Whether the CPU computes bf16 natively (AVX512-BF16, AMX): emulated bf16 is many
        times slower, so without it "auto" does not time bf16.
    openvino : bool
        Whether the ``openvino`` package is installed.

    Returns
    -------
    names : list of str
        "<backend> <dtype>" for each candidate; int8 is never one.
    """
    if inference_dtype == "auto":
        dtypes = ["bfloat16", "float32"] if native_bf16 else ["float32"]
    elif inference_dtype in ("float32", "bfloat16"):
        dtypes = [inference_dtype]
    else:
        raise ValueError(
            f"inference_backend='auto' probes inference_dtype 'auto', 'float32' or 'bfloat16'; "
            f"got inference_dtype={inference_dtype!r}."
        )
    backends = ["openvino", "torch"] if openvino else ["torch"]
    return [f"{backend} {dtype}" for dtype in dtypes for backend in backends]


def should_probe(n_texts):
    """Whether a call (or chunk) of ``n_texts`` texts is large enough to probe."""
    return n_texts >= PROBE_MIN_TEXTS


def probe_rows(n_texts, random_state, size=None):
    """Positions (sorted) of the ``size`` (None: :data:`PROBE_TEXTS`) texts of
    ``n_texts`` that the probe predicts, drawn without replacement with
    ``random_state`` (an int repeats the draw)."""
    from sklearn.utils import check_random_state

    size = min(PROBE_TEXTS if size is None else size, n_texts)
    return np.sort(check_random_state(random_state).choice(n_texts, size, replace=False))


def agree(answers, reference, atol=ATOL, *, top=True):
    """Whether ``answers`` give ``reference``'s answers: the same top column on every
    row (with ``top``: a classifier's label), and every value within ``atol``; returns
    ``(bool, reason)``."""
    answers, reference = np.asarray(answers), np.asarray(reference)
    if answers.shape != reference.shape:
        return False, f"shape {answers.shape} instead of {reference.shape}"
    flipped = int(np.sum(answers.argmax(1) != reference.argmax(1))) if top else 0
    if flipped:
        return False, f"top answer unlike fp32's on {flipped} of {len(reference)} probe texts"
    gap = float(np.abs(answers - reference).max()) if answers.size else 0.0
    if not gap <= atol:  # NaN fails too
        return False, f"differs from fp32 by {gap:.2g} (tolerance {atol:g})"
    return True, ""


def choose(builders, *, eligible=None, fallback=REFERENCE, answers=None, top=True,
           atol=ATOL, budget=None, repeats=None, timer=None):
    """Time the paths of ``builders`` and pick the fastest that agrees with fp32.

    Parameters
    ----------
    builders : dict of str to callable
        ``builders[name]()`` builds a path (e.g. compiles it) and returns ``run``, which
        ``run()`` predicts the probe's texts and returns their outputs. It must hold
        :data:`REFERENCE`, which is built and run first.
    eligible : collection of str or None
        The paths that may be chosen (all when None); the reference runs anyway, for
        its answers.
    fallback : str
        What is chosen when no eligible path agrees (the reference agrees with itself,
        so only when it is not eligible: an explicit ``inference_dtype="bfloat16"``).
    answers : callable or None
        Maps outputs to what is compared (a classifier's probabilities); None compares
        the outputs themselves.
    top : bool
        Whether the top column must agree too (a label; not for regressors' outputs).
    atol : float
        Tolerance of :func:`agree`.
    budget : float or None
        Seconds after which no more paths are built and the timing rounds stop (None:
        :data:`PROBE_SECONDS`).
    repeats : int or None
        Timed rounds after each path's first run (None: :data:`PROBE_REPEATS`); the
        rounds alternate the paths so that a change of load on the machine hits them
        all.
    timer : callable or None
        Seconds (None: ``time.perf_counter``).

    Returns
    -------
    path : InferencePath
    runs : dict of str to callable
        The ``run`` of each agreeing path (the chosen one among them).
    """
    answers = answers or (lambda out: out)
    budget = PROBE_SECONDS if budget is None else budget
    repeats = PROBE_REPEATS if repeats is None else repeats
    timer = timer or time.perf_counter
    start = timer()
    names = [REFERENCE] + [name for name in builders if name != REFERENCE]
    runs, seconds, rejected = {}, {}, {}
    eligible = set(builders) if eligible is None else set(eligible)
    reference = None
    for name in names:
        if name != REFERENCE and timer() - start > budget:
            rejected[name] = f"not timed: the probe's {budget:g} s were spent"
            continue
        try:
            run = builders[name]()
            began = timer()
            out = answers(run())
            took = timer() - began
        except Exception as exc:  # noqa: BLE001  a path that cannot run is not chosen
            if name == REFERENCE:
                raise
            rejected[name] = f"failed: {type(exc).__name__}: {exc}"
            continue
        if reference is None:
            reference = out
        ok, why = agree(out, reference, atol, top=top)
        if not ok:
            rejected[name] = why
        elif name in eligible:
            runs[name], seconds[name] = run, took
    for _ in range(repeats):
        if timer() - start > budget:
            break
        for name, run in runs.items():
            began = timer()
            run()
            seconds[name] = min(seconds[name], timer() - began)
    chosen = min(seconds, key=seconds.get) if seconds else fallback
    return InferencePath(chosen=chosen, seconds=seconds, rejected=rejected,
                         probe_seconds=timer() - start), runs


def log_choice(path):
    """The debug line of a probe's choice on the "skbert" logger."""
    logger.debug("inference_backend='auto' chose %s", path)
