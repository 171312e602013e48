"""Risk-coverage: the error on the answered texts against the share answered.

AG News (our 80/20 split of its test file, 4 classes): skbert's default model is
fine-tuned on ``--n-train`` texts of the 80% part, calibrated with ``calibrate_sets`` on
``--n-cal`` *other* texts of that part (never texts it trained on), and scored on
``--n-test`` texts of the 20% part:

- the risk-coverage curve: answering the texts whose top-class probability is highest
  first, the error rate of the answered texts at each share answered;
- ``predict_or_abstain`` at several ``max_error`` (``delta=0.1``): the share it answers
  and the error of what it answers, which should stay at or under ``max_error``;
- ``predict_set`` at several confidences: the coverage on the test texts from this one
  calibration draw, and the mean coverage over ``DRAWS`` random calibration/test splits
  of the same held-out texts (the guarantee is about that mean), and the mean set size.

GoEmotions (28 emotions, multi-label; ``--ml-train`` texts of train.tsv, max_length 64):
two fits with the same seed, budget (``--ml-epochs``) and held-out split
(``tune_thresholds=True``, ``validation_fraction=0.1``), one with ``early_stopping``
(scored with the mean average precision) and one without; micro- and macro-F1 on all of
test.tsv at the thresholds each tuned on its held-out split. For the early-stopping
model, the risk-coverage curve of whole label sets: a text is answered when every
label's decision (set at ``thresholds_``, or not) has probability at least ``t`` (``p``
for a set label, ``1 - p`` for an unset one), and it is wrong unless its predicted set
is exactly its true set; the points pick ``t`` with the Learn-then-Test rule of
``predict_or_abstain`` on dev.tsv (``skbert._conformal.selective_threshold``).

Writes benchmarks/results/bench_uncertainty[_quick].json and the chart beside it
(``plot``; ``plots.py`` redraws it from the JSON). ``--quick``: fewer texts, fewer
epochs. ``--model`` takes another model folder (a tiny one checks that the script runs).
Run it alone.
"""

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, goemotions, require
from sklearn.metrics import f1_score

from skbert import BertTextClassifier
from skbert._conformal import (
    conformal_quantile,
    lac_scores,
    prediction_sets,
    selective_threshold,
)
from skbert._pretrained import DEFAULT_MODEL

RESULTS = Path(__file__).parent / "results"
MAX_ERRORS = [0.01, 0.02, 0.05, 0.1, 0.2]
ML_MAX_ERRORS = [0.1, 0.2, 0.3, 0.4, 0.5]
CONFIDENCES = [0.8, 0.9, 0.95]
DRAWS = 500  # random calibration/test splits of the held-out texts per confidence


def datasets(data_dir, seed=0):
    """``{name: (train, calibration pool, test)}``, each a pair ``(texts, labels)``; a pool
    of None means "the training pair's texts that the fit does not train on"."""
    (train_x, train_y), (test_x, test_y) = ag_news_split(data_dir, seed=seed)
    return {"AG News": ((train_x, train_y), None, (test_x, test_y))}


def _take(pair, n, rng, exclude=()):
    texts, labels = pair
    rows = np.setdiff1d(np.arange(len(texts)), np.asarray(exclude, dtype=np.int64))
    rows = rng.choice(rows, size=min(n, len(rows)), replace=False)
    return [texts[i] for i in rows], np.asarray(labels)[rows], rows


def draw(train, pool, test, n_train, n_cal, n_test, seed=0):
    """Training, calibration and test samples: ``((texts, labels),) * 3``.

    The calibration texts come from ``pool``, or, when ``pool`` is None, from the rows of
    ``train`` that the training sample does not hold: a calibration text the network
    trained on has a lower score than a new text, and the sets then under-cover.
    """
    rng = np.random.default_rng(seed)
    X_train, y_train, used = _take(train, n_train, rng)
    X_cal, y_cal, _ = (_take(train, n_cal, rng, exclude=used) if pool is None
                       else _take(pool, n_cal, rng))
    X_test, y_test, _ = _take(test, n_test, rng)
    return (X_train, y_train), (X_cal, y_cal), (X_test, y_test)


def mean_coverage(proba_cal, y_cal, proba_test, y_test, confidence, draws=DRAWS, seed=0):
    """The mean test coverage of LAC sets over ``draws`` random splits of the held-out
    texts (calibration and test pooled) into ``len(y_cal)`` calibration texts and the rest.

    Split conformal promises ``confidence`` on average over calibration draws; one draw
    of a few hundred texts spreads a few points around it.
    """
    proba, truth = np.r_[proba_cal, proba_test], np.r_[y_cal, y_test]
    rng, n_cal, covered = np.random.default_rng(seed), len(y_cal), []
    for _ in range(draws):
        order = rng.permutation(len(truth))
        cal, test = order[:n_cal], order[n_cal:]
        q = conformal_quantile(lac_scores(proba[cal], truth[cal]), confidence)
        covered.append(prediction_sets(proba[test], q)[np.arange(len(test)), truth[test]]
                       .mean())
    return float(np.mean(covered)), float(np.std(covered))


def risk_coverage(confidence, wrong, points=50):
    """The error rate of the most confident texts at ``points`` shares answered."""
    order = np.argsort(-np.asarray(confidence), kind="stable")
    wrong = np.asarray(wrong)[order]
    shares = np.linspace(1 / points, 1, points)
    counts = np.maximum(1, np.round(shares * len(order)).astype(int))
    errors = np.cumsum(wrong)[counts - 1] / counts
    return shares.tolist(), errors.tolist()


def run_one(name, train, pool, test, args, seed=0):
    """Fit, calibrate and score one single-label dataset."""
    (X_train, y_train), (X_cal, y_cal), (X_test, y_test) = draw(
        train, pool, test, args.n_train, args.n_cal, args.n_test, seed=seed)
    clf = BertTextClassifier(args.model, learning_rate=args.learning_rate,
                             max_iter=args.epochs, max_length=args.max_length,
                             random_state=seed)
    start = time.perf_counter()
    clf.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    seen = np.isin(y_cal, clf.classes_)  # calibrate on the classes the model knows
    clf.calibrate_sets([x for x, k in zip(X_cal, seen, strict=True) if k], y_cal[seen])
    proba = clf.predict_proba(X_test)
    known = np.isin(y_test, clf.classes_)  # a rare class may miss the training sample
    proba, y_test, X_test = proba[known], y_test[known], [x for x, k in
                                                         zip(X_test, known, strict=True) if k]
    y_index = np.searchsorted(clf.classes_, y_test)
    shares, errors = risk_coverage(proba.max(1), proba.argmax(1) != y_index)
    abstain = []
    for max_error in MAX_ERRORS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "every text abstains"
            pred = clf.predict_or_abstain(X_test, max_error=max_error, delta=0.1)
        answered = np.array([p is not None for p in pred])
        error = (float(np.mean(pred[answered] != y_test[answered])) if answered.any()
                 else None)
        abstain.append(dict(max_error=max_error, answered=float(answered.mean()),
                            error=error))
    sets = []
    for confidence in CONFIDENCES:
        s = clf.predict_set(X_test, confidence=confidence)
        mean, spread = mean_coverage(clf.calibration_proba_, clf.calibration_y_, proba,
                                     y_index, confidence)
        sets.append(dict(confidence=confidence,
                         coverage=float(s[np.arange(len(y_index)), y_index].mean()),
                         mean_coverage=mean, coverage_sd=spread,
                         mean_size=float(s.sum(1).mean()),
                         empty=float((s.sum(1) == 0).mean())))
    result = dict(dataset=name, n_train=len(X_train), n_cal=len(clf.calibration_y_),
                  n_test=len(y_index), n_classes=len(clf.classes_),
                  accuracy=float(np.mean(proba.argmax(1) == y_index)), fit_s=fit_s,
                  curve=dict(answered=shares, error=errors), abstain=abstain, sets=sets)
    print(f"{name}: accuracy {result['accuracy']:.3f}, fit {fit_s:.0f} s")
    for a in abstain:
        err = "-" if a["error"] is None else f"{a['error']:.3f}"
        print(f"  max_error {a['max_error']:<5} answers {a['answered']:.3f}, error {err}")
    for s in sets:
        print(f"  confidence {s['confidence']:<5} coverage {s['coverage']:.3f} (this draw), "
              f"{s['mean_coverage']:.3f} +- {s['coverage_sd']:.3f} over {DRAWS} draws, "
              f"mean size {s['mean_size']:.2f}")
    return result


def _decision_confidence(proba, thresholds):
    """Per text, the least probability among its label decisions: ``p`` of each label
    set (``p >= threshold``), ``1 - p`` of each label not set."""
    chosen = proba >= thresholds
    return np.where(chosen, proba, 1.0 - proba).min(1), chosen


def _f1s(Y, chosen):
    return dict(micro_f1=float(f1_score(Y, chosen, average="micro", zero_division=0.0)),
                macro_f1=float(f1_score(Y, chosen, average="macro", zero_division=0.0)))


def run_multilabel(data_dir, args, seed=0):
    """GoEmotions: early stopping against none, and the risk-coverage of label sets."""
    X, Y, names = goemotions(data_dir, "train")
    X_dev, Y_dev, _ = goemotions(data_dir, "dev")
    X_test, Y_test, _ = goemotions(data_dir, "test")
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(X), size=min(args.ml_train, len(X)), replace=False)
    dev = rng.choice(len(X_dev), size=min(args.ml_eval, len(X_dev)), replace=False)
    test = rng.choice(len(X_test), size=min(args.ml_eval, len(X_test)), replace=False)
    X_dev, Y_dev = [X_dev[i] for i in dev], Y_dev[dev]
    X_test, Y_test = [X_test[i] for i in test], Y_test[test]
    fits, models = [], {}
    for early_stopping in (False, True):
        clf = BertTextClassifier(args.model, learning_rate=args.learning_rate,
                                 max_iter=args.ml_epochs, max_length=64, batch_size=32,
                                 tune_thresholds=True, early_stopping=early_stopping,
                                 random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # labels missing from the hold-out
            clf.fit([X[i] for i in rows], Y[rows], label_names=names)
        fit_s = time.perf_counter() - start
        proba = clf.predict_proba(X_test)
        fits.append(dict(early_stopping=early_stopping, epochs_run=int(clf.n_iter_),
                         validation_scores=[float(v) for v in
                                            getattr(clf, "validation_scores_", [])],
                         fit_s=fit_s, tuned=_f1s(Y_test, proba >= clf.thresholds_),
                         at_half=_f1s(Y_test, proba >= 0.5)))
        models[early_stopping] = (clf, proba)
        f = fits[-1]
        print(f"GoEmotions early_stopping={early_stopping}: {f['epochs_run']} epochs, "
              f"tuned micro-F1 {f['tuned']['micro_f1']:.3f} macro-F1 "
              f"{f['tuned']['macro_f1']:.3f}, fit {fit_s:.0f} s")
    clf, proba = models[True]
    conf_test, chosen = _decision_confidence(proba, clf.thresholds_)
    wrong = (chosen != (Y_test == 1)).any(1)
    shares, errors = risk_coverage(conf_test, wrong)
    conf_dev, chosen_dev = _decision_confidence(clf.predict_proba(X_dev), clf.thresholds_)
    correct_dev = ~(chosen_dev != (Y_dev == 1)).any(1)
    abstain = []
    for max_error in ML_MAX_ERRORS:
        t = selective_threshold(conf_dev, correct_dev, max_error, delta=0.1)
        answered = conf_test >= (np.inf if t is None else t)
        abstain.append(dict(max_error=max_error, threshold=t,
                            answered=float(answered.mean()),
                            error=float(wrong[answered].mean()) if answered.any() else None))
        err = "-" if abstain[-1]["error"] is None else f"{abstain[-1]['error']:.3f}"
        print(f"  max_error {max_error:<5} answers {answered.mean():.3f}, error {err}")
    run = dict(dataset="GoEmotions (28 labels, multi-label)", n_train=len(rows),
               n_cal=len(dev), n_test=len(test), n_classes=len(names),
               accuracy=float(1 - wrong.mean()), accuracy_name="exact-set accuracy",
               curve=dict(answered=shares, error=errors), abstain=abstain)
    return run, dict(n_train=len(rows), n_test=len(test), epochs=args.ml_epochs,
                     max_length=64, learning_rate=args.learning_rate, seed=seed, fits=fits)


def plot(results, path):
    """One panel per dataset: the risk-coverage curve and the points of the guaranteed
    abstention rule."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save

    runs = results["runs"]
    fig, axes = figure([2.6] * len(runs))
    for ax, run in zip(axes, runs, strict=True):
        ax.plot(run["curve"]["answered"], run["curve"]["error"], color=BLUE,
                label="answer the most confident first")
        points = [a for a in run["abstain"] if a["error"] is not None]
        rule = ("predict_or_abstain(max_error)" if "sets" in run
                else "Learn then Test on dev (max_error)")
        ax.scatter([a["answered"] for a in points], [a["error"] for a in points],
                   color=ORANGE, zorder=3, label=rule)
        for a in points:
            ax.annotate(f"{a['max_error']:g}", (a["answered"], a["error"]), fontsize="small",
                        textcoords="offset points", xytext=(4, 4))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, None)
        ax.set_xlabel("share of texts answered")
        ax.set_ylabel("error on answered")
        metric = run.get("accuracy_name", "accuracy")
        ax.set_title(f"{run['dataset']} ({metric} {run['accuracy']:.2f})")
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left")
    save(fig, path, "Error against share answered", cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-cal", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1500)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--ml-train", type=int, default=3000,
                        help="GoEmotions training texts")
    parser.add_argument("--ml-epochs", type=int, default=4,
                        help="GoEmotions epochs (the budget of both fits)")
    parser.add_argument("--ml-eval", type=int, default=10_000,
                        help="GoEmotions dev and test texts (at most all of them)")
    parser.add_argument("--skip-multilabel", action="store_true")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON path to write")
    args = parser.parse_args()
    require(args.data_dir)
    if args.quick:
        args.n_train, args.n_cal, args.n_test, args.epochs = 500, 300, 500, 1
        args.ml_train, args.ml_epochs, args.ml_eval = 800, 2, 1000
    start = time.perf_counter()
    runs = [run_one(name, *splits, args) for name, splits in datasets(args.data_dir).items()]
    results = dict(cpu=cpu_description(), model=str(args.model), epochs=args.epochs,
                   runs=runs)
    if not args.skip_multilabel:
        run, results["early_stopping"] = run_multilabel(args.data_dir, args)
        runs.append(run)
    results["wall_s"] = time.perf_counter() - start
    out = args.out or RESULTS / f"bench_uncertainty{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
