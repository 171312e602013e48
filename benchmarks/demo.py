"""`make demo`: fine-tune the default model on bundled SST-2 and compare with TF-IDF.

Trains on 4,000 SST-2 training texts shipped with skbert, tests on the 872 texts of
SST-2 dev, and prints accuracy, macro-F1 and seconds for TF-IDF + LogisticRegression
and for BertTextClassifier with its default model (all-MiniLM-L6-v2, loaded offline).
"""

import argparse
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-iter", type=int, default=3, help="epochs of fine-tuning")
    parser.add_argument("--learning-rate", type=float, default=5e-5)
    parser.add_argument("--verbose", type=int, default=1)
    parser.add_argument("--model", default=None,
                        help="Hugging Face id or folder (default: the embedded default model)")
    parser.add_argument("--max-length", type=int, default=128, help="tokens kept per text")
    parser.add_argument("--n-train", type=int, default=None,
                        help="train on the first N bundled texts only (default: all 4,000)")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = load_sst2_sample()
    X_train, y_train = X_train[:args.n_train], y_train[:args.n_train]
    print(f"SST-2: {len(X_train)} training texts (bundled sample), {len(X_test)} test (dev)")
    rows = [
        evaluate(
            "TF-IDF (1-2 grams) + LogisticRegression",
            make_pipeline(
                TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                LogisticRegression(max_iter=1000),
            ),
            X_train, y_train, X_test, y_test,
        ),
        evaluate(
            f"BertTextClassifier ({args.model or 'all-MiniLM-L6-v2'})"[:42],
            BertTextClassifier(
                **({} if args.model is None else {"model_name_or_path": args.model}),
                learning_rate=args.learning_rate, max_iter=args.max_iter,
                max_length=args.max_length, random_state=0, verbose=args.verbose,
            ),
            X_train, y_train, X_test, y_test,
        ),
    ]
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
