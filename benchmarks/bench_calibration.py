"""Calibration: expected calibration error before and after temperature scaling.

For SST-2 (dev) and AG News (our 80/20 split of its test file), skbert's default model is
fine-tuned on a seeded sample of training texts; its probabilities are then scored on
test texts as they are, after ``CalibratedClassifierCV(FrozenEstimator(clf),
method="temperature")`` and after ``method="sigmoid"`` (Platt), both fitted on held-out
texts the classifier did not train on:

- SST-2: trained on ``--n-train`` texts of the bundled training sample, calibrated on
  half of SST-2 dev (436 texts), scored on the other half;
- AG News: trained on ``--n-train`` texts of the 80% part, calibrated on 1,000 other
  texts of it, scored on the 20% part (1,520 texts).

ECE is the top-label expected calibration error over 15 equal-width confidence bins
(the weighted mean gap between accuracy and confidence); also log loss, Brier score
(multi-class: the mean squared error of the probability vector) and accuracy. Writes
benchmarks/results/bench_calibration[_quick].json and reliability diagrams beside it
(``plot``; ``plots.py`` redraws them from the JSON).
``--quick``: 500 training texts. Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, require, subsample
from sklearn.calibration import CalibratedClassifierCV
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import log_loss

from skbert import BertTextClassifier
from skbert._device import cpu_bf16_pays
from skbert.datasets import load_sst2_sample

RESULTS = Path(__file__).parent / "results"
N_BINS = 15


def reliability(proba, y_index, n_bins=N_BINS):
    """Per-bin (confidence, accuracy, count) of the top label, and the ECE."""
    confidence = proba.max(1)
    correct = proba.argmax(1) == y_index
    edges = np.linspace(0, 1, n_bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    bins, ece = [], 0.0
    for b in range(n_bins):
        inside = which == b
        if inside.any():
            gap = abs(correct[inside].mean() - confidence[inside].mean())
            ece += inside.mean() * gap
            bins.append((float(confidence[inside].mean()), float(correct[inside].mean()),
                         int(inside.sum())))
    return bins, float(ece)


def scores(proba, y, classes):
    y_index = np.searchsorted(classes, y)
    bins, ece = reliability(proba, y_index)
    onehot = np.eye(len(classes))[y_index]
    return dict(ece=ece, log_loss=float(log_loss(y_index, proba, labels=range(len(classes)))),
                brier=float(((proba - onehot) ** 2).sum(1).mean()),
                accuracy=float((proba.argmax(1) == y_index).mean()), bins=bins)


def run(name, train, calibrate, test, args, dtype):
    clf = BertTextClassifier(learning_rate=1e-4, max_iter=args.epochs, batch_size=32,
                             training_dtype=dtype, random_state=0)
    start = time.perf_counter()
    clf.fit(*train)
    fit_s = time.perf_counter() - start
    rows = [dict(dataset=name, method="uncalibrated",
                 **scores(clf.predict_proba(test[0]), test[1], clf.classes_))]
    for method in ("temperature", "sigmoid"):
        calibrated = CalibratedClassifierCV(FrozenEstimator(clf), method=method)
        calibrated.fit(*calibrate)
        rows.append(dict(dataset=name, method=method,
                         **scores(calibrated.predict_proba(test[0]), test[1], clf.classes_)))
    for r in rows:
        r.update(train_texts=len(train[0]), calibration_texts=len(calibrate[0]),
                 test_texts=len(test[0]), fit_s=fit_s)
        print(f"  {name} {r['method']:<12} ECE {r['ece']:.4f}  log loss {r['log_loss']:.4f}  "
              f"accuracy {r['accuracy']:.4f}", flush=True)
    return rows


def plot(results, path):
    """A reliability diagram per dataset, stacked: accuracy against confidence by bin."""
    from _plot import BLUE, GREEN, RED, cpu_of, figure, save

    rows = results["results"]
    datasets = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = figure([3.4] * len(datasets))
    styles = {"uncalibrated": (RED, "o"), "temperature": (BLUE, "s"), "sigmoid": (GREEN, "^")}
    for ax, name in zip(axes, datasets, strict=True):
        ax.plot([0, 1], [0, 1], color="#999999", linestyle="--", linewidth=1,
                label="perfect calibration")
        for r in (r for r in rows if r["dataset"] == name):
            color, marker = styles[r["method"]]
            confidence, accuracy, count = (np.array(v) for v in zip(*r["bins"], strict=True))
            ax.plot(confidence, accuracy, color=color, linewidth=1, alpha=0.6)
            ax.scatter(confidence, accuracy, s=8 + 120 * count / count.max(), color=color,
                       marker=marker, label=f"{r['method']} (ECE {r['ece']:.3f})")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("confidence (top-label probability)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{name}: {rows[0]['train_texts']:,} training texts, "
                     f"{next(r for r in rows if r['dataset'] == name)['test_texts']:,} scored")
        ax.legend(loc="lower right")
        ax.grid(alpha=0.3)
    save(fig, path, f"Reliability, {N_BINS} bins\nmarker area: texts in the bin",
         cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    stem = f"bench_calibration{'_quick' if args.quick else ''}"
    require(args.data_dir)
    if args.quick:
        args.n_train, args.epochs = 500, 1
    cpu = cpu_description()
    dtype = "bfloat16" if cpu_bf16_pays() else "float32"
    print(f"CPU: {cpu}; training dtype {dtype}", flush=True)

    X_train, y_train, X_dev, y_dev = load_sst2_sample()  # the bundled sample and SST-2 dev
    half = np.random.default_rng(0).permutation(len(X_dev))
    cal, test = np.sort(half[: len(half) // 2]), np.sort(half[len(half) // 2:])
    rows = run("SST-2", subsample(X_train, y_train, args.n_train, seed=0),
               ([X_dev[i] for i in cal], y_dev[cal]), ([X_dev[i] for i in test], y_dev[test]),
               args, dtype)

    (A, a), (A_test, a_test) = ag_news_split(args.data_dir)
    # Class names, not the file's 1-4: scikit-learn 1.9.1's method="temperature" label-
    # encodes string labels only, and integer labels other than 0..n-1 make it fit
    # uniform probabilities (its log loss is then ln 4).
    names = np.array(["World", "Sports", "Business", "Sci/Tech"])
    a, a_test = names[a - 1], names[a_test - 1]
    order = np.random.default_rng(0).permutation(len(A))
    fit_rows, cal_rows = order[: args.n_train], order[args.n_train: args.n_train + 1000]
    rows += run("AG News", ([A[i] for i in fit_rows], a[fit_rows]),
                ([A[i] for i in cal_rows], a[cal_rows]), (A_test, a_test), args, dtype)

    print(f"\nExpected calibration error ({N_BINS} bins), log loss, Brier, accuracy; CPU: {cpu}")
    print(f"{'dataset':<8} {'method':<13} {'ECE':>7} {'log loss':>9} {'Brier':>7} {'acc':>7}")
    for r in rows:
        print(f"{r['dataset']:<8} {r['method']:<13} {r['ece']:>7.4f} {r['log_loss']:>9.4f} "
              f"{r['brier']:>7.4f} {r['accuracy']:>7.4f}")
    RESULTS.mkdir(exist_ok=True)
    results = dict(cpu=cpu, training_dtype=dtype, epochs=args.epochs, results=rows)
    (RESULTS / f"{stem}.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
