"""Answers with a guarantee, from held-out probabilities: pure NumPy (and SciPy).

Split conformal prediction sets (the LAC score, ``1 - p(true class)``, with the
finite-sample quantile), and thresholds whose error rate on the texts they answer is
controlled with a binomial test (Learn then Test, Angelopoulos et al. 2021): the
abstention rule of a single-label model, and the per-label precision or recall
thresholds of a multi-label one. Every function takes arrays of probabilities and
truths; none knows an estimator. Imports nothing from skbert.
"""

import math

import numpy as np

# Round-off allowed when a probability meets the conformal threshold (as MAPIE allows).
EPSILON = 1e-8
# The candidate thresholds of a risk-controlled rule: fixed before the data is seen (a
# Bonferroni correction over them keeps the guarantee), a few more near 1, where
# fine-tuned models put most of their confidence. Few, because each costs calibration
# texts: with m candidates, an error-free answered part must hold
# log(delta / m) / log(1 - max_error) texts to pass (25 for 26 candidates at
# max_error=0.2, delta=0.1; 32 for 121).
GRID = np.unique(np.r_[np.linspace(0.0, 1.0, 21), 0.975, 0.99, 0.995, 0.999, 0.9999])


def check_level(value, name):
    """``value`` as a float strictly between 0 and 1, else a ValueError naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating)) or not (
            0 < value < 1):
        raise ValueError(f"{name} must be a float strictly between 0 and 1; got {value!r}.")
    return float(value)


def lac_scores(proba, y):
    """Conformity scores ``1 - proba[i, y[i]]`` of calibration rows (LAC, or "score").

    Parameters
    ----------
    proba : ndarray of shape (n_samples, n_classes)
        Class probabilities.
    y : ndarray of int of shape (n_samples,)
        The column of each row's true class.

    Returns
    -------
    scores : ndarray of float64 of shape (n_samples,)
        Higher means the true class looked less likely.
    """
    proba = np.asarray(proba, dtype=np.float64)
    return 1.0 - proba[np.arange(len(proba)), np.asarray(y, dtype=np.int64)]


def min_calibration_size(confidence):
    """The fewest calibration rows whose finite-sample quantile exists at ``confidence``."""
    return math.ceil(confidence / (1.0 - confidence) - 1e-9)


def conformal_quantile(scores, confidence):
    """The split-conformal quantile: the ``ceil((n + 1) * confidence)``-th smallest score.

    A new row's score is at most it with probability at least ``confidence`` when the
    rows are exchangeable (and at most ``confidence + 1 / (n + 1)`` without ties).
    Computed as MAPIE computes it, so that the sets agree.

    Raises
    ------
    ValueError
        When ``ceil((n + 1) * confidence) > n``: too few rows for that confidence.
    """
    scores = np.sort(np.asarray(scores, dtype=np.float64))
    n = len(scores)
    alpha = 1.0 - confidence
    k = int(np.ceil((n + 1) * (1 - alpha)))
    if k > n:
        raise ValueError(
            f"confidence={confidence} needs at least {min_calibration_size(confidence)} "
            f"calibration texts (ceil((n + 1) * confidence) <= n); the calibration holds "
            f"{n}. Calibrate on more texts, or lower confidence."
        )
    return float(scores[k - 1])


def prediction_sets(proba, quantile):
    """The LAC sets: each class whose probability is at least ``1 - quantile``.

    Returns
    -------
    sets : ndarray of bool of shape (n_samples, n_classes)
        A set may be empty (no class is plausible enough) or hold several classes.
    """
    return (1.0 - np.asarray(proba, dtype=np.float64)) - quantile <= EPSILON


def binomial_pvalues(errors, counts, max_rate):
    """p-values of "the error rate exceeds ``max_rate``" after ``errors`` in ``counts``
    trials: ``P(Binomial(counts, max_rate) <= errors)``; 1 where nothing was tried."""
    from scipy.stats import binom

    errors, counts = np.asarray(errors), np.asarray(counts)
    with np.errstate(all="ignore"):
        p = binom.cdf(errors, np.maximum(counts, 1), max_rate)
    return np.where(counts > 0, p, 1.0)


def selective_threshold(confidence, correct, max_error, delta, grid=GRID):
    """The lowest threshold on ``confidence`` whose answered rows err at most
    ``max_error`` of the time, with probability at least ``1 - delta``.

    A row is answered when its confidence is at least the threshold. Each candidate of
    ``grid`` is tested (binomial test of its calibration errors at level
    ``delta / len(grid)``, Bonferroni: the error rate of the answered part is not
    monotone in the threshold), and the lowest accepted one answers the most.

    Parameters
    ----------
    confidence : ndarray of shape (n_samples,)
        What the rule thresholds (the top class's probability, a label's probability).
    correct : ndarray of bool of shape (n_samples,)
        Whether answering that row would be right.
    max_error : float
        The error rate allowed on the answered rows.
    delta : float
        The chance allowed that the calibration draw is unlucky.
    grid : ndarray, default=GRID
        The candidate thresholds, fixed in advance.

    Returns
    -------
    threshold : float or None
        None when no candidate passes: nothing can be answered with that guarantee.
    """
    confidence = np.asarray(confidence, dtype=np.float64)
    wrong = ~np.asarray(correct, dtype=bool)
    answered = confidence[None, :] >= grid[:, None]
    counts = answered.sum(1)
    errors = (answered & wrong[None, :]).sum(1)
    passed = binomial_pvalues(errors, counts, max_error) <= delta / len(grid)
    return float(grid[np.flatnonzero(passed)[0]]) if passed.any() else None


def recall_threshold(proba, positive, recall, delta, grid=GRID):
    """The highest threshold that keeps a label's recall at least ``recall`` with
    probability at least ``1 - delta`` (0 when the calibration cannot show more).

    Misses only grow with the threshold, so the candidates are tested in order from 0
    up, each at level ``delta``, stopping at the first that fails (fixed-sequence
    testing needs no correction). Threshold 0 predicts every text: recall 1.
    """
    scores = np.asarray(proba, dtype=np.float64)[np.asarray(positive, dtype=bool)]
    if scores.size == 0:
        return 0.0
    misses = (scores[None, :] < grid[:, None]).sum(1)
    passed = binomial_pvalues(misses, np.full(len(grid), scores.size), 1.0 - recall) <= delta
    passed[grid <= 0] = True
    first_fail = np.flatnonzero(~passed)
    last = (first_fail[0] if first_fail.size else len(grid)) - 1
    return float(grid[max(last, 0)])


def abstention_rule(proba, y, max_error, delta):
    """The least confidence at which a single-label model answers (its top class) so
    that the answered texts err at most ``max_error`` of the time, with probability at
    least ``1 - delta`` over the calibration rows ``proba`` (true columns ``y``); None
    when no threshold can promise that."""
    proba = np.asarray(proba, dtype=np.float64)
    correct = proba.argmax(1) == np.asarray(y)
    return selective_threshold(proba.max(1), correct, max_error, delta)
