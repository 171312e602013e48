"""Fine-tuning modes compared: full, frozen base + linear head, frozen base + MLP head,
and further pre-training (masked LM on the training texts) then full fine-tuning.

On SST-2 (train slice -> dev), CoLA (in_domain_train slice -> out_of_domain_dev) and SMS
spam (split by unique text), prints one table of accuracy, macro-F1, MCC and fit seconds,
then the cost of one epoch after the first for full and frozen training (measured as the
difference between fits of different lengths, so loading and feature caching cancel
out), and "mean" against "cls" pooling for the default model. Writes JSON to
benchmarks/results/bench_modes.json and a chart of accuracy against fit time beside it
(``plot``; ``plots.py`` redraws it from the JSON). Run it alone.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from _data import DEFAULT_DATA_DIR, cola, cpu_description, require, sms_spam, sst2, subsample
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

from skbert import BertTextClassifier, MaskedLMPretrainer

FULL = dict(learning_rate=1e-4, max_iter=2, random_state=0)
FROZEN = dict(freeze_base=True, learning_rate=1e-2, max_iter=20, random_state=0)
# The metric each dataset is read by (as in bench_accuracy.py), and each mode's marker.
METRIC = {"SST-2": "accuracy", "CoLA": "mcc", "SMS spam": "accuracy"}
MARKERS = {"full": ("o", "#3b75af"), "frozen + linear head": ("s", "#e08b2c"),
           "frozen + MLP head (256,)": ("^", "#2ca02c"),
           "further pre-training, then full": ("D", "#8a8a8a")}


def scores(y_true, y_pred):
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "macro_f1": f1_score(y_true, y_pred, average="macro"),
        "mcc": matthews_corrcoef(y_true, y_pred),
    }


def run_mode(name, X, y, X_test, y_test, workdir):
    start = time.perf_counter()
    if name == "full":
        clf = BertTextClassifier(**FULL).fit(X, y)
    elif name == "frozen + linear head":
        clf = BertTextClassifier(**FROZEN).fit(X, y)
    elif name == "frozen + MLP head (256,)":
        clf = BertTextClassifier(head=(256,), **FROZEN).fit(X, y)
    else:  # further pre-training, then full
        path = MaskedLMPretrainer(max_iter=1, learning_rate=5e-5, random_state=0).fit(X) \
            .save_pretrained(Path(workdir) / "domain")
        clf = BertTextClassifier(str(path), **FULL).fit(X, y)
    fit_s = time.perf_counter() - start
    return {"mode": name, **scores(y_test, clf.predict(X_test)), "fit_s": fit_s}


def epoch_cost(X, y, params, short, long):
    """Seconds of one epoch after the first: (fit(long) - fit(short)) / (long - short)."""
    times = {}
    for n in (short, long):
        start = time.perf_counter()
        BertTextClassifier(**dict(params, max_iter=n)).fit(X, y)
        times[n] = time.perf_counter() - start
    return (times[long] - times[short]) / (long - short)


def plot(results, path):
    """Each dataset's score against fit seconds, one marker per mode, a panel per dataset."""
    from _plot import cpu_of, figure, label_points, save

    names = list(dict.fromkeys(r["dataset"] for r in results["modes"]))
    fig, axes = figure([2.1] * len(names), sharex=True)
    longest = max(r["fit_s"] for r in results["modes"])
    for ax, name in zip(axes, names, strict=True):
        metric = METRIC.get(name, "accuracy")
        rows = [r for r in results["modes"] if r["dataset"] == name]
        for r in rows:
            marker, color = MARKERS[r["mode"]]
            ax.scatter(r["fit_s"], r[metric], marker=marker, color=color, s=55, zorder=3,
                       label=r["mode"])
        values = [r[metric] for r in rows]
        pad = max(0.02, 0.25 * (max(values) - min(values)))
        ax.set_ylim(max(-1.0, min(values) - pad), min(1.0, max(values) + pad))
        ax.set_xlim(0, longest * 1.18)
        label_points(ax, [r["fit_s"] for r in rows], values, [f"{v:.3f}" for v in values])
        ax.set_ylabel("MCC" if metric == "mcc" else "accuracy")
        ax.set_title(name, loc="left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("fit seconds (loading the model included)")
    axes[0].legend(loc="upper center", bbox_to_anchor=(0.5, 1.62), ncol=2, frameon=False,
                   fontsize="small", handletextpad=0.2, columnspacing=1.0)
    save(fig, path, f"Fine-tuning modes on {results['n_train']:,} training texts",
         cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=2000, help="training texts per dataset")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "bench_modes.json")
    parser.add_argument("--epochs-only", action="store_true",
                        help="only time epochs of full and frozen training")
    args = parser.parse_args(argv)
    require(args.data_dir)

    sms_train, sms_test = sms_spam(args.data_dir)
    datasets = {
        "SST-2": (subsample(*sst2(args.data_dir, "train"), args.n_train),
                  sst2(args.data_dir, "dev")),
        "CoLA": (subsample(*cola(args.data_dir, "in_domain_train"), args.n_train),
                 cola(args.data_dir, "out_of_domain_dev")),
        "SMS spam": (subsample(*sms_train, args.n_train), sms_test),
    }
    modes = ["full", "frozen + linear head", "frozen + MLP head (256,)",
             "further pre-training, then full"]
    results = {"cpu": cpu_description(), "n_train": args.n_train, "full": FULL,
               "frozen": FROZEN, "modes": []}
    with tempfile.TemporaryDirectory() as workdir:
        for dataset, ((X, y), (X_test, y_test)) in datasets.items():
            if args.epochs_only:
                break
            for mode in modes:
                row = {"dataset": dataset, **run_mode(mode, X, y, X_test, y_test, workdir)}
                results["modes"].append(row)
                print(row, flush=True)

    (X, y), _ = datasets["SST-2"]
    full_epoch = epoch_cost(X, y, FULL, 1, 2)
    # Epochs on cached features take milliseconds: time 200 of them to rise above noise.
    frozen_epoch = epoch_cost(X, y, FROZEN, 1, 201)
    results["epoch_seconds"] = {"full": full_epoch, "frozen": frozen_epoch,
                                "ratio": full_epoch / frozen_epoch}
    (X, y), (X_test, y_test) = datasets["SST-2"]
    if args.epochs_only:
        print(f"One epoch after the first on SST-2 ({args.n_train} texts): full "
              f"{full_epoch:.2f} s, frozen {frozen_epoch:.4f} s, "
              f"ratio {full_epoch / frozen_epoch:.0f}x")
        return
    results["pooling"] = {
        pooling: scores(y_test, BertTextClassifier(pooling=pooling, **FULL).fit(X, y)
                        .predict(X_test))["accuracy"]
        for pooling in ("mean", "cls")
    }

    print(f"\n{args.n_train} training texts per dataset; full: {FULL}; frozen: {FROZEN}\n")
    print(f"| {'dataset':<9} | {'mode':<32} | accuracy | macro-F1 |   MCC  | fit s |")
    print(f"|{'-' * 11}|{'-' * 34}|----------|----------|--------|-------|")
    for r in results["modes"]:
        print(f"| {r['dataset']:<9} | {r['mode']:<32} | {r['accuracy']:>8.3f} | "
              f"{r['macro_f1']:>8.3f} | {r['mcc']:>6.3f} | {r['fit_s']:>5.0f} |")
    e = results["epoch_seconds"]
    print(f"\nOne epoch after the first on SST-2 ({args.n_train} texts): full {e['full']:.2f} s, "
          f"frozen {e['frozen']:.4f} s, ratio {e['ratio']:.0f}x")
    print("Pooling on SST-2, full fine-tuning: "
          + ", ".join(f"{k} {v:.3f}" for k, v in results["pooling"].items()))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    plot(results, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
