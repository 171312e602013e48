"""What int8 (and bf16) prediction costs in accuracy, on fine-tuned models.

Fine-tunes the default model on an SST-2 training slice (scored on SST-2 dev) and on an
AG News slice (its test.csv split 80/20 with a fixed seed, scored on the 20%), then
predicts the held-out texts with ``inference_dtype`` "float32", "bfloat16" and "int8".
Prints accuracy, the share of predictions equal to fp32's, the largest probability
difference from fp32 and the throughput of each, and writes
benchmarks/results/bench_int8_accuracy.json and a chart beside it (``plot``; ``plots.py``
redraws it from the JSON). Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, require, sst2, subsample
from sklearn.metrics import accuracy_score

from skbert import BertTextClassifier
from skbert._device import cpu_has_native_bf16

# bf16 only where the CPU computes it natively (emulated, it is far slower than fp32).
DTYPES = ("float32", "bfloat16", "int8") if cpu_has_native_bf16() else ("float32", "int8")


def compare(name, clf, X_test, y_test):
    n_tokens = sum(len(ids) for ids in clf.tokenizer_(X_test, truncation=True,
                                                         max_length=clf.max_length)["input_ids"])
    rows, reference = [], None
    for dtype in DTYPES:
        clf.set_params(inference_dtype=dtype)
        clf.predict_proba(X_test[:64])  # warm-up (and the one-off int8 quantization)
        start = time.perf_counter()
        proba = clf.predict_proba(X_test)
        seconds = time.perf_counter() - start
        reference = proba if reference is None else reference
        rows.append({
            "dataset": name, "inference_dtype": dtype,
            "accuracy": accuracy_score(y_test, clf.classes_[proba.argmax(1)]),
            "agree_with_fp32": float(np.mean(proba.argmax(1) == reference.argmax(1))),
            "max_abs_proba_diff": float(np.abs(proba - reference).max()),
            "tokens_per_s": n_tokens / seconds,
        })
    return rows


def plot(results, path):
    """Throughput and accuracy of each dataset and precision, as bars from 0."""
    from _plot import BLUE, GREEN, ORANGE, cpu_of, figure, hbars, save

    rows = results["rows"]
    short = {"float32": "fp32", "bfloat16": "bf16", "int8": "int8"}
    labels = [f"{r['dataset'].replace(' dev', '').replace(' 20% split', '')}, "
              f"{short.get(r['inference_dtype'])}" for r in rows]
    colors = [{"float32": BLUE, "bfloat16": ORANGE}.get(r["inference_dtype"], GREEN) for r in rows]
    fig, (speed, accuracy) = figure([0.3 * len(rows) + 0.8] * 2)
    hbars(speed, labels, [r["tokens_per_s"] for r in rows], colors, "{:,.0f}".format,
          xlabel="real tokens per second")
    hbars(accuracy, labels, [r["accuracy"] for r in rows], colors,
          [f"{r['accuracy']:.4f} ({r['agree_with_fp32']:.1%} same as fp32)" for r in rows],
          xlabel="accuracy on held-out texts", xmax=1.75)
    accuracy.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    save(fig, path, f"Each precision on fine-tuned models\n({results['n_train']:,} training texts)",
         cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=2000, help="training texts per dataset")
    parser.add_argument("--out",
                        default=Path(__file__).parent / "results" / "bench_int8_accuracy.json")
    args = parser.parse_args(argv)
    require(args.data_dir)
    X, y = subsample(*sst2(args.data_dir, "train"), args.n_train)
    X_dev, y_dev = sst2(args.data_dir, "dev")
    (X_ag, y_ag), (X_ag_test, y_ag_test) = ag_news_split(args.data_dir)
    X_ag, y_ag = subsample(X_ag, y_ag, args.n_train)
    rows = []
    for name, (X_tr, y_tr, X_te, y_te) in {
        "SST-2 dev": (X, y, X_dev, y_dev), "AG News 20% split": (X_ag, y_ag, X_ag_test, y_ag_test),
    }.items():
        start = time.perf_counter()
        clf = BertTextClassifier(learning_rate=1e-4, max_iter=2, random_state=0).fit(X_tr, y_tr)
        print(f"{name}: fitted on {len(X_tr)} texts in {time.perf_counter() - start:.0f} s",
              flush=True)
        rows += compare(name, clf, X_te, y_te)
    print(f"\n{cpu_description()}")
    print(f"| {'dataset':<18} | {'dtype':<8} | accuracy | agree fp32 | max |dp| | tokens/s |")
    print("|" + "|".join("-" * w for w in (20, 10, 10, 12, 10, 10)) + "|")
    for r in rows:
        print(f"| {r['dataset']:<18} | {r['inference_dtype']:<8} | {r['accuracy']:>8.4f} | "
              f"{r['agree_with_fp32']:>10.4f} | {r['max_abs_proba_diff']:>8.4f} | "
              f"{r['tokens_per_s']:>8,.0f} |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {"cpu": cpu_description(), "n_train": args.n_train, "rows": rows}
    Path(args.out).write_text(json.dumps(results, indent=2))
    plot(results, Path(args.out).with_suffix(".png"))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
