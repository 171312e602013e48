"""Risk-coverage: the error on the answered texts against the share answered.

For AG News (our 80/20 split of its test file, 4 classes) and GoEmotions (the texts with
exactly one of its 28 emotions, as a 28-class task), skbert's default model is fine-tuned
on ``--n-train`` training texts, calibrated with ``calibrate_sets`` on ``--n-cal`` other
texts, and scored on ``--n-test`` test texts:

- the risk-coverage curve: answering the texts whose top-class probability is highest
  first, the error rate of the answered texts at each share answered;
- ``predict_or_abstain`` at several ``max_error`` (``delta=0.1``): the share it answers
  and the error of what it answers, which should stay at or under ``max_error``;
- ``predict_set`` at several confidences: the coverage on the test texts and the mean
  set size.

Writes benchmarks/results/bench_uncertainty[_quick].json and the chart beside it
(``plot``; ``plots.py`` redraws it from the JSON). ``--quick``: fewer texts, one epoch.
``--model`` takes another model folder (a tiny one checks that the script runs). Run it
alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, goemotions, require

from skbert import BertTextClassifier
from skbert._pretrained import DEFAULT_MODEL

RESULTS = Path(__file__).parent / "results"
MAX_ERRORS = [0.01, 0.02, 0.05, 0.1, 0.2]
CONFIDENCES = [0.8, 0.9, 0.95]


def _single_label(texts, Y):
    """The texts of a multi-label indicator ``Y`` with exactly one label, and that label."""
    one = Y.sum(1) == 1
    return [t for t, keep in zip(texts, one, strict=True) if keep], Y[one].argmax(1)


def datasets(data_dir, seed=0):
    """``{name: (train, calibration pool, test)}``, each a pair ``(texts, labels)``."""
    (train_x, train_y), (test_x, test_y) = ag_news_split(data_dir, seed=seed)
    out = {"AG News": ((train_x, train_y), (train_x, train_y), (test_x, test_y))}
    splits = [_single_label(*goemotions(data_dir, split)[:2]) for split in ("train", "dev",
                                                                            "test")]
    out["GoEmotions (single-label texts)"] = tuple(splits)
    return out


def _take(pair, n, rng, exclude=()):
    texts, labels = pair
    rows = np.setdiff1d(np.arange(len(texts)), np.asarray(exclude, dtype=np.int64))
    rows = rng.choice(rows, size=min(n, len(rows)), replace=False)
    return [texts[i] for i in rows], np.asarray(labels)[rows], rows


def risk_coverage(proba, y_index, points=50):
    """The error rate of the most confident texts at ``points`` shares answered."""
    order = np.argsort(-proba.max(1), kind="stable")
    wrong = (proba.argmax(1) != y_index)[order]
    shares = np.linspace(1 / points, 1, points)
    counts = np.maximum(1, np.round(shares * len(order)).astype(int))
    errors = np.cumsum(wrong)[counts - 1] / counts
    return shares.tolist(), errors.tolist()


def run_one(name, train, pool, test, args, seed=0):
    """Fit, calibrate and score one dataset."""
    rng = np.random.default_rng(seed)
    X_train, y_train, used = _take(train, args.n_train, rng)
    exclude = used if pool is train else ()
    X_cal, y_cal, _ = _take(pool, args.n_cal, rng, exclude=exclude)
    X_test, y_test, _ = _take(test, args.n_test, rng)
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
    shares, errors = risk_coverage(proba, y_index)
    abstain = []
    for max_error in MAX_ERRORS:
        pred = clf.predict_or_abstain(X_test, max_error=max_error, delta=0.1)
        answered = np.array([p is not None for p in pred])
        error = (float(np.mean(pred[answered] != y_test[answered])) if answered.any()
                 else None)
        abstain.append(dict(max_error=max_error, answered=float(answered.mean()),
                            error=error))
    sets = []
    for confidence in CONFIDENCES:
        s = clf.predict_set(X_test, confidence=confidence)
        sets.append(dict(confidence=confidence,
                         coverage=float(s[np.arange(len(y_index)), y_index].mean()),
                         mean_size=float(s.sum(1).mean()),
                         empty=float((s.sum(1) == 0).mean())))
    result = dict(dataset=name, n_train=len(X_train), n_cal=len(X_cal),
                  n_test=len(y_index), n_classes=len(clf.classes_),
                  accuracy=float(np.mean(proba.argmax(1) == y_index)), fit_s=fit_s,
                  curve=dict(answered=shares, error=errors), abstain=abstain, sets=sets)
    print(f"{name}: accuracy {result['accuracy']:.3f}, fit {fit_s:.0f} s")
    for a in abstain:
        err = "-" if a["error"] is None else f"{a['error']:.3f}"
        print(f"  max_error {a['max_error']:<5} answers {a['answered']:.3f}, error {err}")
    for s in sets:
        print(f"  confidence {s['confidence']:<5} coverage {s['coverage']:.3f}, "
              f"mean size {s['mean_size']:.2f}")
    return result


def plot(results, path):
    """One panel per dataset: the risk-coverage curve and predict_or_abstain's points."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save

    runs = results["runs"]
    fig, axes = figure([2.6] * len(runs))
    for ax, run in zip(axes, runs, strict=True):
        ax.plot(run["curve"]["answered"], run["curve"]["error"], color=BLUE,
                label="answer the most confident first")
        points = [a for a in run["abstain"] if a["error"] is not None]
        ax.scatter([a["answered"] for a in points], [a["error"] for a in points],
                   color=ORANGE, zorder=3, label="predict_or_abstain(max_error)")
        for a in points:
            ax.annotate(f"{a['max_error']:g}", (a["answered"], a["error"]), fontsize="small",
                        textcoords="offset points", xytext=(4, 4))
        ax.set_xlim(0, 1)
        ax.set_ylim(0, None)
        ax.set_xlabel("share of texts answered")
        ax.set_ylabel("error on answered")
        ax.set_title(f"{run['dataset']} (accuracy {run['accuracy']:.2f})")
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
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=None, help="JSON path to write")
    args = parser.parse_args()
    require(args.data_dir)
    if args.quick:
        args.n_train, args.n_cal, args.n_test, args.epochs = 500, 300, 500, 1
    runs = [run_one(name, *splits, args) for name, splits in datasets(args.data_dir).items()]
    results = dict(cpu=cpu_description(), model=str(args.model), epochs=args.epochs,
                   runs=runs)
    out = args.out or RESULTS / f"bench_uncertainty{'_quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
