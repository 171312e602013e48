"""What rounding padded lengths up to a multiple of 8 costs on this machine.

skbert pads each batch to its own longest text; on CUDA it rounds that length up to a
multiple of 8 (tensor cores want it), on the CPU it does not. This fits the default
model for one epoch on an SST-2 training slice, alternating between the two settings in
one process, and times predict_proba on SST-2 dev the same way, so that the comparison
sees the same machine state. Writes benchmarks/results/bench_padding.json and a chart
beside it (``plot``; ``plots.py`` redraws it from the JSON). Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2, subsample

from skbert import BertTextClassifier, _training

SETTINGS = {"multiple of 8": 8, "no rounding": 1}


def timed_fit(X, y):
    clf = BertTextClassifier(max_iter=1, batch_size=32, learning_rate=5e-5, random_state=0,
                             device="cpu", inference_dtype="float32")
    start = time.perf_counter()
    clf.fit(X, y)
    return time.perf_counter() - start, clf


def timed_predict(clf, texts):
    start = time.perf_counter()
    clf.predict_proba(texts)
    return time.perf_counter() - start


def plot(results, path):
    """Fit and predict rates of each setting: every run as a dot, their mean as a bar."""
    from _plot import BLUE, GREY, cpu_of, figure, save

    rows = results["rows"]
    fig, axes = figure([1.6, 1.6])
    for ax, key, label in [(axes[0], "fit_samples_per_s", "fit: training samples per second"),
                           (axes[1], "predict_texts_per_s", "predict: texts per second")]:
        y = range(len(rows))[::-1]
        means = [sum(r[key]) / len(r[key]) for r in rows]
        ax.barh(y, means, color=[GREY, BLUE][:len(rows)], height=0.6)
        for yi, r in zip(y, rows, strict=True):
            ax.scatter(r[key], [yi] * len(r[key]), color="black", s=14, zorder=3)
            runs = " / ".join(f"{v:.1f}" if v < 100 else f"{v:.0f}" for v in r[key])
            ax.text(max(r[key]), yi, "  " + runs, va="center", fontsize="small")
        ax.set_yticks(list(y), [r["padding"] for r in rows])
        ax.set_xlim(0, 1.45 * max(max(r[key]) for r in rows))
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
        ax.set_axisbelow(True)
    save(fig, path, "Padding on the CPU\neach run (dots) and their mean (bar)",
         cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    require(args.data_dir)
    X, y = subsample(*sst2(args.data_dir, "train"), args.n_train, seed=1)
    X_dev, _ = sst2(args.data_dir, "dev")
    original = _training.pad_multiple
    fit_rates = {name: [] for name in SETTINGS}
    predict_rates = {name: [] for name in SETTINGS}
    try:
        _, clf = timed_fit(X, y)  # warm-up
        for repeat in range(args.repeats):
            names = list(SETTINGS) if repeat % 2 == 0 else list(SETTINGS)[::-1]
            for name in names:
                _training.pad_multiple = lambda device, m=SETTINGS[name]: m
                seconds, _ = timed_fit(X, y)
                fit_rates[name].append(len(X) / seconds)
                predict_rates[name].append(len(X_dev) / timed_predict(clf, X_dev))
    finally:
        _training.pad_multiple = original
    print(f"{cpu_description()}; fit: {len(X)} SST-2 texts, 1 epoch, fp32; predict: SST-2 dev")
    print("| padding on the CPU | fit samples/s | predict texts/s |\n|---|---|---|")
    for name in SETTINGS:
        fits = " / ".join(f"{r:.1f}" for r in fit_rates[name])
        predicts = " / ".join(f"{r:.0f}" for r in predict_rates[name])
        print(f"| {name} | {fits} | {predicts} |")
    results = {"cpu": cpu_description(), "n_train": len(X), "repeats": args.repeats,
               "rows": [{"padding": name, "fit_samples_per_s": fit_rates[name],
                         "predict_texts_per_s": predict_rates[name]} for name in SETTINGS]}
    out = Path(__file__).parent / "results" / "bench_padding.json"
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
