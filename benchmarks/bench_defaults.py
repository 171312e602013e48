"""Defaults chosen by measurement: learning rate and max_length of the default model.

On the four shared datasets (the splits of bench_accuracy.py), fine-tunes the default
model (all-MiniLM-L6-v2) with every other parameter at its default, at one fixed budget
per dataset (the same ``--n-train`` training texts, ``--epochs`` epochs, batch 32), with
``learning_rate`` in {5e-5, 1e-4} and ``max_length`` in {128, 256}, and scores the first
``--n-test`` test texts on the dataset's own metric (MCC for CoLA, accuracy elsewhere).
It also counts the texts longer than 128 tokens, the only ones ``max_length=256``
changes. One seed per cell: differences of a point or two are within seed noise.

Prints one table, writes benchmarks/results/bench_defaults.json and a chart beside it.
Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, cpu_description, require, subsample
from bench_accuracy import FLOORS, datasets
from sklearn.metrics import accuracy_score, matthews_corrcoef

from skbert import BertTextClassifier

LEARNING_RATES = (5e-5, 1e-4)
MAX_LENGTHS = (128, 256)


def score(name, y_true, y_pred):
    metric = FLOORS[name][0]
    value = matthews_corrcoef(y_true, y_pred) if metric == "mcc" else accuracy_score(y_true,
                                                                                     y_pred)
    return metric, float(value)


def run(data_dir, n_train, n_test, epochs):
    rows = []
    for name, (X, y, X_test, y_test) in datasets(data_dir).items():
        X, y = subsample(X, np.asarray(y), n_train, seed=0)
        X_test, y_test = subsample(X_test, np.asarray(y_test), n_test, seed=0)
        lengths = None
        for max_length in MAX_LENGTHS:
            for lr in LEARNING_RATES:
                clf = BertTextClassifier(learning_rate=lr, max_length=max_length,
                                         max_iter=epochs, random_state=0)
                start = time.perf_counter()
                clf.fit(list(X), y)
                fit_s = time.perf_counter() - start
                if lengths is None:
                    ids = clf.tokenizer_(list(X), truncation=False)["input_ids"]
                    lengths = np.array([len(i) for i in ids])
                metric, value = score(name, y_test, clf.predict(list(X_test)))
                rows.append({"dataset": name, "learning_rate": lr, "max_length": max_length,
                             "metric": metric, "score": value, "fit_s": fit_s,
                             "n_train": len(X), "n_test": len(X_test), "epochs": epochs,
                             "share_over_128": float(np.mean(lengths > 128))})
                print(f"  {name:<9} lr {lr:.0e} max_length {max_length}: {metric} "
                      f"{value:.3f}, fit {fit_s:.0f} s", flush=True)
    return rows


def print_table(rows):
    print("\n| dataset | metric | texts > 128 tokens | "
          + " | ".join(f"lr {lr:.0e}, {m}" for m in MAX_LENGTHS for lr in LEARNING_RATES)
          + " |")
    print("|---|---|---:|" + "---:|" * (len(MAX_LENGTHS) * len(LEARNING_RATES)))
    for name in dict.fromkeys(r["dataset"] for r in rows):
        cells = [r for r in rows if r["dataset"] == name]
        print(f"| {name} | {cells[0]['metric']} | {cells[0]['share_over_128']:.1%} | "
              + " | ".join(f"{r['score']:.3f} ({r['fit_s']:.0f} s)" for r in cells) + " |")


def plot(results, path):
    """One panel per dataset: the score of each (learning rate, max_length) cell."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save

    rows = results["rows"]
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    fig, axes = figure([1.3] * len(names))
    low = min(0.0, min(r["score"] for r in rows) - 0.15)  # room for a negative MCC
    for ax, name in zip(axes, names, strict=True):
        cells = [r for r in rows if r["dataset"] == name]
        for k, max_length in enumerate(MAX_LENGTHS):
            values = [next(r["score"] for r in cells if r["learning_rate"] == lr
                           and r["max_length"] == max_length) for lr in LEARNING_RATES]
            y = np.arange(len(LEARNING_RATES)) + 0.38 * k
            ax.barh(y, values, height=0.36, color=(BLUE, ORANGE)[k],
                    label=f"max_length {max_length}")
            for yi, v in zip(y, values, strict=True):
                ax.text(max(v, 0), yi, f" {v:.3f}", va="center", fontsize=8.5)
        ax.set_yticks(np.arange(len(LEARNING_RATES)) + 0.19,
                      [f"lr {lr:.0e}" for lr in LEARNING_RATES])
        ax.set_xlim(low, 1.15)
        ax.axvline(0, color="#555555", linewidth=0.8)
        ax.set_title(f"{name} ({cells[0]['metric']}, {cells[0]['n_train']:,} texts, "
                     f"{cells[0]['epochs']} ep)", fontsize=9.5)
        ax.tick_params(axis="y", length=0)
        ax.grid(axis="x", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[-1].legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.35),
                    ncol=2, frameon=False, fontsize=9)
    save(fig, path, "Learning rate and max_length of the default model", cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "bench_defaults.json")
    args = parser.parse_args(argv)
    require(args.data_dir)
    import torch

    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = run(args.data_dir, args.n_train, args.n_test, args.epochs)
    print_table(rows)
    results = {"cpu": cpu_description(), "torch": torch.__version__, "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
