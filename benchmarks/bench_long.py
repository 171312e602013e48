"""Long documents on 20 Newsgroups: truncation "head", "head_tail" and "window".

Posts have headers, signatures and quotes removed (``newsgroups/SOURCE.md``); 43% are
longer than 100 words, so at ``max_length=128`` most of a long post is cut under
"head". Rows, on the bydate split (accuracy on a seeded subsample of the 7,532 test
posts, the same for every row):

- TF-IDF (1-2 grams, sublinear tf) + LinearSVC, C by 3-fold CV: on all 11,314
  training posts, and on skbert's training subsample;
- skbert's default model (all-MiniLM-L6-v2) at ``max_length=128`` with
  ``truncation="head"``, ``"head_tail"`` and ``"window"`` (the default stride, half a
  window; mean-pooled logits), each fitted on the same seeded subsample (lr 1e-4, 2
  epochs), with fit and predict seconds and the training sequences (windows) it made.

Then, on the random 80/20 split of all posts that the x4nth055 tutorial used (77.8%
with bert-base-uncased at max_length 512 and the Trainer), TF-IDF + LinearSVC on its
15,076 training posts and skbert ``"window"`` on a subsample, beside the reported
figure.

Writes benchmarks/results/bench_long[_quick].json and a chart beside it (``plot``;
``plots.py`` redraws it from the JSON). About 25 minutes on a
2-core CPU; ``--quick``: 600 training posts, 300 test posts, one epoch, no tutorial
split (5 minutes). Run it alone: the figures are seconds on this CPU.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import (
    DEFAULT_DATA_DIR,
    cpu_description,
    newsgroups,
    newsgroups_tutorial_split,
    require,
    subsample,
)
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.svm import LinearSVC

from skbert import BertTextClassifier
from skbert._device import cpu_bf16_pays
from skbert._tokenization import encode

RESULTS = Path(__file__).parent / "results"
TUTORIAL_ACCURACY = 0.778  # bert-base-uncased, Trainer, max_length 512 (datasets README)


def tfidf_svc(X, y):
    search = GridSearchCV(
        make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=2),
                      LinearSVC()),
        {"linearsvc__C": [0.1, 0.3, 1.0]}, cv=3, n_jobs=1,
    )
    start = time.perf_counter()
    search.fit(X, y)
    return search, time.perf_counter() - start


def run_skbert(mode, X, y, X_test, y_test, args, dtype):
    clf = BertTextClassifier(max_length=args.max_length, truncation=mode,
                             window_stride=args.stride,
                             learning_rate=args.learning_rate, max_iter=args.epochs,
                             batch_size=32, training_dtype=dtype, random_state=0)
    start = time.perf_counter()
    clf.fit(X, y)
    fit_s = time.perf_counter() - start
    start = time.perf_counter()
    accuracy = float(np.mean(clf.predict(X_test) == y_test))
    predict_s = time.perf_counter() - start
    rows = len(encode(clf.tokenizer_, X, args.max_length, truncation=mode,
                      stride=args.stride).offsets) - 1  # sequences: texts or windows
    print(f"  {mode}: accuracy {accuracy:.3f}, fit {fit_s:.0f} s, predict {predict_s:.0f} s, "
          f"{rows} training sequences", flush=True)
    return dict(model=f"skbert, truncation={mode!r}", truncation=mode,
                train_texts=len(X), train_sequences=rows, test_texts=len(X_test),
                accuracy=accuracy, fit_s=fit_s, predict_s=predict_s)


def plot(results, path):
    """Accuracy of each model on the bydate split and on the tutorial's split (bars from
    0), and skbert's accuracy against its fit + predict seconds, stacked."""
    from _plot import BLUE, GREY, LIGHT, cpu_of, figure, hbars, label_points, save, wrap

    def bars(ax, rows, title):
        names = [wrap(r["model"].replace("skbert, truncation=", "skbert ")
                      .replace(" (CV C)", "").replace(", Trainer", "")
                      .replace("max_length 512 (tutorial)", "512 tokens (reported)"), 24)
                 + f"\n{r['train_texts']:,} posts" for r in rows]
        colors = [GREY if r["model"].startswith("TF-IDF") else
                  LIGHT if "tutorial" in r["model"] else BLUE for r in rows]
        hbars(ax, names, [r["accuracy"] for r in rows], colors, "{:.3f}".format,
              xlabel="accuracy", xmax=1.12)
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
        ax.set_title(title)

    rows = [r for r in results["results"] if "accuracy" in r]
    tutorial = results.get("tutorial_split") or []
    timed = [r for r in rows if "predict_s" in r]
    heights = [0.5 * len(rows) + 0.9] + ([0.6 * len(tutorial) + 1.0] if tutorial else []) + [2.6]
    fig, axes = figure(heights)
    bars(axes[0], rows, f"bydate split, {rows[0]['test_texts']:,} test posts")
    if tutorial:
        bars(axes[1], tutorial, "the tutorial's 80/20 split (light: reported)")
    right = axes[-1]
    seconds = [r["fit_s"] + r["predict_s"] for r in timed]
    right.scatter(seconds, [r["accuracy"] for r in timed], s=40, color=BLUE, zorder=3)
    right.set_xlim(0, 1.15 * max(seconds))
    right.set_ylim(0, 1)
    label_points(right, seconds, [r["accuracy"] for r in timed],
                 [f"{r['truncation']} ({r['train_sequences']:,} "
                  f"{'windows' if r['truncation'] == 'window' else 'texts'})" for r in timed])
    right.set_xlabel("skbert's fit + predict seconds")
    right.set_ylabel("accuracy, bydate split")
    right.set_title("skbert: accuracy against time")
    right.grid(alpha=0.3)
    save(fig, path, f"20 Newsgroups, long posts at max_length {results['max_length']}",
         cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-train", type=int, default=1000)
    parser.add_argument("--n-test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--stride", type=int, default=None,
                        help="window_stride (default: half a window)")
    parser.add_argument("--modes", default="head,head_tail,window")
    parser.add_argument("--no-tutorial", action="store_true",
                        help="skip the rows on the tutorial's 80/20 split")
    args = parser.parse_args()
    require(args.data_dir)
    if args.quick:
        args.n_train, args.n_test, args.epochs, args.no_tutorial = 600, 300, 1, True
    X, y, _ = newsgroups(args.data_dir, "train")
    X_test, y_test, _ = newsgroups(args.data_dir, "test")
    X_sub, y_sub = subsample(X, y, args.n_train, seed=0)
    X_test, y_test = subsample(X_test, y_test, args.n_test, seed=1)
    dtype = "bfloat16" if cpu_bf16_pays() else "float32"
    cpu = cpu_description()
    print(f"20 Newsgroups bydate: {len(X_sub)} of {len(X)} training posts, {len(X_test)} test "
          f"posts; CPU: {cpu}; training dtype {dtype}", flush=True)

    results = []
    for name, (X_fit, y_fit) in [("all training posts", (X, y)),
                                 ("skbert's subsample", (X_sub, y_sub))]:
        model, fit_s = tfidf_svc(X_fit, y_fit)
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        print(f"  TF-IDF + LinearSVC, {name}: accuracy {accuracy:.3f}", flush=True)
        results.append(dict(model="TF-IDF + LinearSVC (CV C)", train_texts=len(X_fit),
                            test_texts=len(X_test), accuracy=accuracy, fit_s=fit_s))
    for mode in args.modes.split(","):
        results.append(run_skbert(mode, X_sub, y_sub, X_test, y_test, args, dtype))

    tutorial = []
    if not args.no_tutorial:
        (T, t), (T_test, t_test) = newsgroups_tutorial_split(args.data_dir)
        n_tutorial_test = len(T_test)
        T_sub, t_sub = subsample(T, t, args.n_train, seed=0)
        T_test, t_test = subsample(T_test, t_test, args.n_test, seed=1)
        print(f"Tutorial split: {len(T_sub)} of {len(T)} training posts, {len(T_test)} test "
              "posts", flush=True)
        model, fit_s = tfidf_svc(T, t)
        tutorial.append(dict(model="TF-IDF + LinearSVC (CV C)", train_texts=len(T),
                             test_texts=len(T_test), fit_s=fit_s,
                             accuracy=float(np.mean(model.predict(T_test) == t_test))))
        row = run_skbert("window", T_sub, t_sub, T_test, t_test, args, dtype)
        tutorial.append(row)
        tutorial.append(dict(model="bert-base-uncased, Trainer, max_length 512 (tutorial)",
                             train_texts=len(T), test_texts=n_tutorial_test,
                             accuracy=TUTORIAL_ACCURACY))

    print(f"\n20 Newsgroups bydate test ({len(X_test)} posts); CPU: {cpu}")
    print(f"{'model':<44} {'train':>7} {'seqs':>6} {'accuracy':>8} {'fit s':>7} "
          f"{'predict s':>9}")
    for r in results + [dict(model="-- tutorial's 80/20 split --")] + tutorial:
        if "accuracy" not in r:
            print(r["model"])
            continue
        fit = f"{r['fit_s']:.0f}" if "fit_s" in r else "-"
        predict = f"{r['predict_s']:.0f}" if "predict_s" in r else "-"
        print(f"{r['model']:<44} {r['train_texts']:>7} {r.get('train_sequences', '-'):>6} "
              f"{r['accuracy']:>8.3f} {fit:>7} {predict:>9}")
    RESULTS.mkdir(exist_ok=True)
    stem = f"bench_long{'_quick' if args.quick else ''}"
    saved = dict(cpu=cpu, training_dtype=dtype, max_length=args.max_length, stride=args.stride,
                 epochs=args.epochs, learning_rate=args.learning_rate, results=results,
                 tutorial_split=tutorial)
    (RESULTS / f"{stem}.json").write_text(json.dumps(saved, indent=2) + "\n")
    plot(saved, RESULTS / f"{stem}.png")
    print(f"wrote {RESULTS / stem}.json and .png")


if __name__ == "__main__":
    main()
