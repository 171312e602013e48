"""`make demo`: fine-tune the default model on bundled SST-2 and compare with TF-IDF.

Trains on 4,000 SST-2 training texts shipped with skbert, tests on the 872 texts of
SST-2 dev, and prints accuracy, macro-F1 and seconds for TF-IDF + LogisticRegression
and for BertTextClassifier with its default model (all-MiniLM-L6-v2, loaded offline).
From the first batches of the fit it prints how long the whole fit will take on this
machine. ``--quick`` (``make demo QUICK=1``) trains on 1,000 texts for one epoch at a
higher learning rate: a few times faster, and still ahead of TF-IDF.
"""

import argparse
import sys
import time

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score
from sklearn.pipeline import make_pipeline

from skbert import BertTextClassifier
from skbert.datasets import load_sst2_sample


def evaluate(name, model, X_train, y_train, X_test, y_test):
    """Fit and score ``model``; return one table row."""
    start = time.perf_counter()
    model.fit(X_train, y_train)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = model.predict(X_test)
    predict_s = time.perf_counter() - start
    return {
        "model": name,
        "accuracy": accuracy_score(y_test, pred),
        "macro_f1": f1_score(y_test, pred, average="macro"),
        "fit_s": fit_s,
        "predict_s": predict_s,
    }


def plot(results, path):
    """Accuracy and macro-F1, then fit seconds, of TF-IDF and skbert, as bars from 0.

    The demo writes no JSON: ``python benchmarks/plots.py demo`` draws results/demo.json,
    a transcription of the docs' table, without running the demo."""
    from _plot import BLUE, GREY, cpu_of, figure, hbars, save

    rows = results["rows"]
    labels = ["TF-IDF + LogReg" if r["model"].startswith("TF-IDF") else
              r["model"].split(" (")[0].replace("BertTextClassifier", "skbert") for r in rows]
    colors = [GREY if r["model"].startswith("TF-IDF") else BLUE for r in rows]
    fig, (score, seconds) = figure([0.45 * len(rows) + 1.1] * 2)
    hbars(score, labels, [r["accuracy"] for r in rows], colors,
          [f"{r['accuracy']:.3f} (macro-F1 {r['macro_f1']:.3f})" for r in rows],
          xlabel="accuracy on SST-2 dev", xmax=1.6)
    score.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    hbars(seconds, labels, [r["fit_s"] for r in rows], colors,
          [f"{r['fit_s']:.1f} s (predict {r['predict_s']:.2f} s)" for r in rows],
          xlabel="fit seconds")
    save(fig, path, f"make demo: {results['n_train']:,} SST-2 texts,\n"
         "skbert (3 epochs) against TF-IDF", cpu_of(results))


# --quick: fewer texts, one epoch, and the learning rate at which the small default
# model learns fast on small data (the README's grid search picks it).
QUICK = {"n_train": 1000, "max_iter": 1, "learning_rate": 1e-4}
# The estimate of the fit's time is printed after this many training batches.
ESTIMATE_AFTER = 10


class FitEstimate:
    """Print, once, how long a fit of ``n_batches`` batches will take on this machine:
    the time before its first batch (loading, tokenizing) plus ``n_batches`` times the
    mean time of its first ``after`` batches. It wraps skbert's training step
    (``_engine.Trainer._step``, a private hook that this demo may use) for the block."""

    def __init__(self, n_batches, after=ESTIMATE_AFTER):
        self.n_batches, self.after = n_batches, after

    def __enter__(self):
        from skbert import _engine

        self._engine, self._step = _engine, _engine.Trainer._step
        self.start, self.first, self.done = time.perf_counter(), None, 0
        estimate = self

        def step(trainer, *args, **kwargs):
            if estimate.first is None:
                estimate.first = time.perf_counter()
            out = estimate._step(trainer, *args, **kwargs)
            estimate.done += 1
            if estimate.done == min(estimate.after, estimate.n_batches):
                estimate.report()
            return out

        _engine.Trainer._step = step
        return self

    def report(self):
        from tqdm import tqdm

        per_batch = (time.perf_counter() - self.first) / self.done
        total = self.first - self.start + per_batch * self.n_batches
        tqdm.write(f"fit: about {_duration(total)} on this machine (from the first "
                   f"{self.done} of {self.n_batches} batches)", file=sys.stdout)
        sys.stdout.flush()

    def __exit__(self, *exc):
        self._engine.Trainer._step = self._step


def _duration(seconds):
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def settings(argv=None):
    """The demo's parsed command line, with ``--quick``'s values where none was given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help=f"a short run: {QUICK['n_train']:,} texts, one epoch")
    parser.add_argument("--max-iter", type=int, default=None,
                        help="epochs of fine-tuning (default: 3; 1 with --quick)")
    parser.add_argument("--learning-rate", type=float, default=None,
                        help="default: 5e-5; 1e-4 with --quick")
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--model", default=None,
                        help="Hugging Face id or folder (default: the embedded default model)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens kept per text")
    parser.add_argument("--n-train", type=int, default=None,
                        help="train on the first N bundled texts only (default: all 4,000; "
                        "1,000 with --quick)")
    args = parser.parse_args(argv)
    full = {"n_train": None, "max_iter": 3, "learning_rate": 5e-5}
    for name, value in (QUICK if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv=None):
    from skbert._batching import count_batches

    args = settings(argv)

    X_train, y_train, X_test, y_test = load_sst2_sample()
    X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    print(f"SST-2: {len(X_train)} training texts (bundled sample), {len(X_test)} test (dev)"
          + (", quick mode" if args.quick else ""))
    batch_size = BertTextClassifier().batch_size
    n_batches = count_batches(len(X_train), batch_size, length_grouped=True) * args.max_iter
    tfidf = [
        evaluate(
            "TF-IDF (1-2 grams) + LogisticRegression",
            make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                LogisticRegression(max_iter=1000),
            ),
            X_train, y_train, X_test, y_test,
        ),
    ]
    with FitEstimate(n_batches):
        bert = evaluate(
            f"BertTextClassifier ({args.model or 'all-MiniLM-L6-v2'})"[:42],
            BertTextClassifier(
                **({} if args.model is None else {"model_name_or_path": args.model}),
                learning_rate=args.learning_rate, max_iter=args.max_iter,
                max_length=args.max_length, random_state=0, verbose=args.verbose,
            ),
            X_train, y_train, X_test, y_test,
        )
    rows = [*tfidf, bert]
    header = f"{'model':<42} {'accuracy':>9} {'macro-F1':>9} {'fit s':>8} {'predict s':>10}"
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r['model']:<42} {r['accuracy']:>9.3f} {r['macro_f1']:>9.3f} "
            f"{r['fit_s']:>8.1f} {r['predict_s']:>10.2f}"
        )
    gain = rows[1]["accuracy"] - rows[0]["accuracy"]
    print(f"\nskbert - TF-IDF accuracy: {gain:+.3f}")
    return 0 if gain > 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
