"""Pooling of the default model: "mean" (skbert's default) against "pooler" (the first
token through the backbone's own pooler, what ``BertForSequenceClassification`` does, so
that ``save_pretrained`` writes a standard checkpoint) and "cls".

On SST-2 (train slice -> dev), AG News (the split of bench_accuracy.py) and GoEmotions
(multi-label, train slice -> test, thresholds tuned on held-out texts), fine-tunes the
default model (all-MiniLM-L6-v2) at one budget for every pooling: the same
``--n-train`` training texts (seeded subsample), ``--epochs`` epochs, every other
parameter at its default (GoEmotions: ``max_length=64``, ``learning_rate=1e-4`` and
``tune_thresholds=True``, as in bench_multilabel.py), and scores the same ``--n-test``
test texts: accuracy, and micro- and macro-F1 for GoEmotions. One seed per cell.

Prints one table with the CPU named and writes benchmarks/results/bench_pooling.json.
Accuracy does not depend on what else runs on the machine; the fit seconds do.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import (
    DEFAULT_DATA_DIR,
    ag_news_split,
    cpu_description,
    goemotions,
    require,
    sst2,
    subsample,
)
from sklearn.metrics import accuracy_score, f1_score

from skbert import BertTextClassifier

POOLINGS = ("mean", "pooler", "cls")
RESULTS = Path(__file__).parent / "results"


def splits(data_dir, n_train, n_test):
    """Name -> (X_train, y_train, X_test, y_test, extra parameters)."""
    (ag_X, ag_y), (ag_Xt, ag_yt) = ag_news_split(data_dir)
    out = {}
    for name, (X, y, Xt, yt) in {"SST-2": (*sst2(data_dir, "train"), *sst2(data_dir, "dev")),
                                 "AG News": (ag_X, ag_y, ag_Xt, ag_yt)}.items():
        X, y = subsample(X, np.asarray(y), n_train, seed=0)
        Xt, yt = subsample(Xt, np.asarray(yt), n_test, seed=0)
        out[name] = (list(X), y, list(Xt), yt, {})
    X, Y, _ = goemotions(data_dir, "train")
    Xt, Yt, _ = goemotions(data_dir, "test")
    rng = np.random.default_rng(0)
    rows = np.sort(rng.permutation(len(X))[:n_train])
    test_rows = np.sort(rng.permutation(len(Xt))[:n_test])
    out["GoEmotions"] = ([X[i] for i in rows], Y[rows], [Xt[i] for i in test_rows],
                         Yt[test_rows], dict(max_length=64, learning_rate=1e-4,
                                             tune_thresholds=True))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--poolings", nargs="+", default=list(POOLINGS), choices=POOLINGS)
    parser.add_argument("--out", default=str(RESULTS / "bench_pooling.json"))
    args = parser.parse_args()
    require(args.data_dir)
    cpu = cpu_description()
    rows = []
    for name, (X, y, Xt, yt, extra) in splits(args.data_dir, args.n_train,
                                              args.n_test).items():
        for pooling in args.poolings:
            clf = BertTextClassifier(pooling=pooling, max_iter=args.epochs, random_state=0,
                                     **extra)
            start = time.perf_counter()
            clf.fit(X, y)
            fit_s = time.perf_counter() - start
            pred = clf.predict(Xt)
            row = dict(dataset=name, pooling=pooling, fit_s=round(fit_s, 1),
                       n_train=len(X), n_test=len(Xt), epochs=args.epochs, **extra)
            if name == "GoEmotions":
                row.update(micro_f1=f1_score(yt, pred, average="micro", zero_division=0),
                           macro_f1=f1_score(yt, pred, average="macro", zero_division=0))
            else:
                row.update(accuracy=accuracy_score(yt, pred))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(f"\nPooling of the default model; CPU: {cpu}")
    print(f"{'dataset':<11} {'pooling':<7} {'accuracy':>8} {'micro-F1':>8} {'macro-F1':>8} "
          f"{'fit s':>6}")
    for r in rows:
        cells = [f"{r[k]:.3f}" if k in r else "-" for k in ("accuracy", "micro_f1", "macro_f1")]
        print(f"{r['dataset']:<11} {r['pooling']:<7} {cells[0]:>8} {cells[1]:>8} {cells[2]:>8} "
              f"{r['fit_s']:>6.0f}")
    out = Path(args.out)
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(cpu=cpu, command="python benchmarks/bench_pooling.py "
                                   f"--n-train {args.n_train} --n-test {args.n_test} "
                                   f"--epochs {args.epochs}", rows=rows), indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
