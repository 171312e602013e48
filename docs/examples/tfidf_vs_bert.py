"""TF-IDF + LogisticRegression against BertTextClassifier on your own CSV.

Run it on the bundled SST-2 sample (no file needed), or on a CSV or TSV of yours::

    python tfidf_vs_bert.py
    python tfidf_vs_bert.py tickets.csv --text-column body --label-column queue

A file of yours is split 80/20 (stratified); SST-2 trains on the first ``--n-train``
sentences of its training sample and tests on its 872 dev sentences. Both models get the
same texts; the script prints scikit-learn's ``classification_report`` for each, then one
summary table. Nothing is downloaded: the default model ships with skbert.
"""

import argparse
import time

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline

from skbert import BertTextClassifier


def load(args):
    """Training and test texts and labels: the CSV's, or the bundled SST-2 sample."""
    if args.csv is None:
        from skbert.datasets import load_sst2_sample

        X_train, y_train, X_test, y_test = load_sst2_sample()
        return X_train, y_train, X_test, y_test, "bundled SST-2 sample"
    sep = "\t" if args.csv.endswith((".tsv", ".tab")) else ","
    frame = pd.read_csv(args.csv, sep=sep)
    missing = [c for c in (args.text_column, args.label_column) if c not in frame.columns]
    if missing:
        raise SystemExit(f"{args.csv} has no column {missing[0]!r}; its columns are "
                         f"{list(frame.columns)}. Pass --text-column and --label-column.")
    frame = frame.dropna(subset=[args.text_column, args.label_column])
    X_train, X_test, y_train, y_test = train_test_split(
        frame[args.text_column].astype(str).tolist(), frame[args.label_column].to_numpy(),
        test_size=args.test_size, stratify=frame[args.label_column], random_state=0)
    return X_train, y_train, X_test, y_test, args.csv


def evaluate(name, model, X_train, y_train, X_test, y_test):
    """Fit, predict, print the classification report; return the summary row."""
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    predicted = model.predict(X_test)
    predict_s = time.perf_counter() - start
    print(f"\n{name}\n{classification_report(y_test, predicted, digits=3)}")
    labels = np.unique(np.asarray(y_test))
    return {"model": name, "accuracy": accuracy_score(y_test, predicted),
            "macro-F1": f1_score(y_test, predicted, average="macro"),
            "F1 per class": f1_score(y_test, predicted, average=None, labels=labels),
            "labels": labels, "fit s": fit_s, "predict s": predict_s}


def plot(rows, path, title):
    """Per-class and macro F1 of each model, as grouped horizontal bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [str(label) for label in rows[0]["labels"]] + ["macro average"]
    fig, ax = plt.subplots(figsize=(6.4, 0.7 * len(labels) + 2.0))
    height = 0.8 / len(rows)
    for i, (row, colour) in enumerate(zip(rows, ["#9e9e9e", "#1f77b4"], strict=False)):
        values = [*row["F1 per class"], row["macro-F1"]]
        ys = np.arange(len(labels)) + i * height
        ax.barh(ys, values, height, color=colour, label=row["model"])
        for y, value in zip(ys, values, strict=True):
            ax.text(value + 0.01, y, f"{value:.3f}", va="center", fontsize=9)
    ax.set_yticks(np.arange(len(labels)) + height * (len(rows) - 1) / 2, labels)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.15)
    ax.set_xlabel("F1 on the test texts")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22), fontsize=9, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", help="a CSV (or .tsv) file; default: bundled SST-2")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--test-size", type=float, default=0.2, help="for a CSV of yours")
    parser.add_argument("--n-train", type=int, default=1000, help="at most this many "
                        "training texts (fine-tuning time grows with it)")
    parser.add_argument("--n-test", type=int, default=None, help="at most this many test texts")
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    parser.add_argument("--max-iter", type=int, default=2, help="epochs of fine-tuning")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--plot", help="write a chart of the F1 scores to this PNG")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test, source = load(args)
    X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    print(f"{source}: {len(X_train)} training texts, {len(X_test)} test texts")

    bert = BertTextClassifier(learning_rate=args.learning_rate, max_iter=args.max_iter,
                              max_length=args.max_length, random_state=0)
    if args.model:
        bert.set_params(model_name_or_path=args.model)
    rows = [
        evaluate("TF-IDF (1-2 grams) + LogisticRegression",
                 make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                               LogisticRegression(C=10, max_iter=1000)),
                 X_train, y_train, X_test, y_test),
        evaluate(f"BertTextClassifier ({bert.model_name_or_path.rsplit('/', 1)[-1]})", bert,
                 X_train, y_train, X_test, y_test),
    ]
    table = pd.DataFrame(rows)[["model", "accuracy", "macro-F1", "fit s", "predict s"]]
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    if args.plot:
        plot(rows, args.plot, f"{source}: {len(X_train)} training texts")


if __name__ == "__main__":
    main()
