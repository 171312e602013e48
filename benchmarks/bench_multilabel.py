"""Multi-label classification on GoEmotions (28 labels): skbert against TF-IDF.

Trains on (a seeded subsample of) ``goemotions/train.tsv`` and scores micro- and
macro-F1 on ``test.tsv`` for:

- TF-IDF (1-2 grams, sublinear tf) + one-vs-rest LogisticRegression, C chosen by 3-fold
  cross-validation on micro-F1, all training texts (the subsample under ``--quick``);
- skbert's default model (all-MiniLM-L6-v2), ``max_length=64`` (GoEmotions texts are at
  most 33 words), lr 1e-4 (``--learning-rate``), 3 epochs (``--epochs``), batch 32,
  with ``tune_thresholds=True``: one fitted model,
  scored with its tuned per-label thresholds and with every threshold at 0.5 (and at
  0.3, the threshold of the authors' code);
- beside them the published BERT-base macro-F1 (0.46, Demszky et al. 2020).

Writes benchmarks/results/bench_multilabel[_quick].json and a chart beside it (``plot``;
``plots.py`` redraws it from the JSON). ``--quick``: 2,000 training
texts, one epoch (a few minutes on a 2-core CPU). Run it alone.
"""

import argparse
import json
import re
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, cpu_description, goemotions, require
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline

from skbert import BertTextClassifier
from skbert._device import cpu_bf16_pays

RESULTS = Path(__file__).parent / "results"
PAPER_MACRO_F1 = 0.46  # BERT-base, Demszky et al. 2020 (../shared/datasets/README.md)


def scores(Y_true, Y_pred):
    return {"micro_f1": f1_score(Y_true, Y_pred, average="micro", zero_division=0.0),
            "macro_f1": f1_score(Y_true, Y_pred, average="macro", zero_division=0.0)}


def plot(results, path):
    """Micro- and macro-F1 of each row, as grouped horizontal bars from 0."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save, wrap

    rows = results["results"]
    fig, (ax,) = figure([0.62 * len(rows) + 1.2])
    y = np.arange(len(rows))[::-1]
    for offset, key, color in [(0.19, "micro_f1", BLUE), (-0.19, "macro_f1", ORANGE)]:
        shown = [(yi, r[key]) for yi, r in zip(y, rows, strict=True) if r.get(key) is not None]
        ax.barh([yi + offset for yi, _ in shown], [v for _, v in shown], height=0.36,
                color=color, label=key.replace("_f1", "-F1"))
        for yi, v in shown:
            ax.text(v + 0.005, yi + offset, f"{v:.3f}", va="center", fontsize="small")
    # skbert's settings, "(3 ep, lr 0.0001, 43410 texts)", go once into the title.
    settings = [m.group(1) for r in rows if (m := re.search(r" \((\d+ ep, [^)]*)\)", r["model"]))]
    labels = [re.sub(r" \(\d+ ep, [^)]*\)", "", r["model"]).replace(" one-vs-rest", "")
              .replace(" (CV C)", "") for r in rows]
    ax.set_yticks(y, [wrap(label, 24) for label in labels])
    ax.set_xlim(0, 0.75)
    ax.set_xlabel("F1 on GoEmotions test (28 labels)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)
    title = "GoEmotions multi-label: micro- and macro-F1"
    save(fig, path, title + (f"\nskbert: {settings[0]}" if settings else ""), cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-train", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    args = parser.parse_args()
    out = RESULTS / f"bench_multilabel{'_quick' if args.quick else ''}.json"
    require(args.data_dir)
    X, Y, names = goemotions(args.data_dir, "train")
    X_test, Y_test, _ = goemotions(args.data_dir, "test")
    n_train = 2_000 if args.quick else args.max_train
    epochs = 1 if args.quick else args.epochs
    rows = np.sort(np.random.default_rng(0).permutation(len(X))[:n_train])
    X_sub, Y_sub = [X[i] for i in rows], Y[rows]
    results = []

    start = time.perf_counter()
    tfidf = GridSearchCV(
        make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                      OneVsRestClassifier(LogisticRegression(max_iter=2000))),
        {"onevsrestclassifier__estimator__C": [1, 10, 100]}, cv=KFold(3), scoring="f1_micro",
    )
    X_base, Y_base = (X_sub, Y_sub) if args.quick else (X, Y)
    tfidf.fit(X_base, Y_base)
    fit_s = time.perf_counter() - start
    results.append(dict(model="TF-IDF + one-vs-rest LogisticRegression (CV C)",
                        train_texts=len(X_base), fit_s=fit_s,
                        **scores(Y_test, tfidf.predict(X_test))))

    dtype = "bfloat16" if cpu_bf16_pays() else "float32"
    clf = BertTextClassifier(max_length=64, learning_rate=args.learning_rate, batch_size=32,
                             max_iter=epochs,
                             tune_thresholds=True, training_dtype=dtype, random_state=0)
    start = time.perf_counter()
    clf.fit(X_sub, Y_sub)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    proba = clf.predict_proba(X_test)
    predict_s = time.perf_counter() - start
    label = f"skbert MiniLM-L6 ({epochs} ep, lr {args.learning_rate:g}, {n_train} texts)"
    for name, thresholds in [("tuned thresholds", clf.thresholds_), ("threshold 0.5", 0.5),
                             ("threshold 0.3", 0.3)]:
        results.append(dict(model=f"{label}, {name}", train_texts=n_train, fit_s=fit_s,
                            predict_s=predict_s,
                            **scores(Y_test, (proba >= thresholds).astype(int))))
    results.append(dict(model="BERT-base, paper (Demszky et al. 2020)", train_texts=len(X),
                        macro_f1=PAPER_MACRO_F1))

    cpu = cpu_description()
    print(f"GoEmotions test ({len(X_test)} texts, {len(names)} labels); CPU: {cpu}")
    print(f"{'model':<66} {'micro-F1':>8} {'macro-F1':>8} {'fit s':>7}")
    for r in results:
        micro = f"{r['micro_f1']:.3f}" if "micro_f1" in r else "-"
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else "-"
        print(f"{r['model']:<66} {micro:>8} {r['macro_f1']:>8.3f} {fit:>7}")
    RESULTS.mkdir(exist_ok=True)
    saved = dict(cpu=cpu, training_dtype=dtype, results=results,
                 thresholds=clf.thresholds_.tolist())
    out.write_text(json.dumps(saved, indent=2) + "\n")
    plot(saved, out.with_suffix(".png"))
    print(f"wrote {out} and its .png")


if __name__ == "__main__":
    main()
