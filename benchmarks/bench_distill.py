"""Teacher, distilled student, cascade and TF-IDF: accuracy against texts per second.

For SST-2 (dev as test) and AG News (benchmarks/_data.ag_news_split), in one process:

- teacher: ``BertTextClassifier`` (the embedded default model) fine-tuned on
  ``--n-teacher`` labelled training texts for ``--epochs`` epochs;
- student: ``teacher.distill(X)`` over every training text, without its label (the
  teacher's probabilities are what it learns);
- cascade: ``CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher))``
  with ``tolerance=0.005``, its threshold chosen on ``--n-val`` labelled training texts
  the teacher did not see (on SST-2, whole sentences of 10 words or more, like the dev
  set, not the short phrases that make up most of its training set);
- TF-IDF (word 1-2 grams) + logistic regression, C chosen by 3-fold cross-validation, on
  the teacher's labelled texts, and on every labelled training text.

Throughput is end to end (raw texts in, labels out) on the test texts, repeated to at least
``--min-texts`` for the fast models, best of ``--repeats``; sizes are the saved folders
(``save_pretrained``) or the pickle. Run it alone: timings on a busy machine mean nothing.

    python bench_distill.py                  # about 25 minutes on 2 cores
    python bench_distill.py --quick          # 1,000 teacher texts, 1 epoch, 5,000 unlabelled
"""

import argparse
import json
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, require, sst2

HERE = Path(__file__).resolve().parent


def folder_mb(path):
    path = Path(path)
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files) / 2**20


def texts_per_second(predict, X, min_texts, repeats):
    """Best-of-``repeats`` texts/s of ``predict`` on ``X`` repeated to ``min_texts``."""
    batch = list(X) * max(1, -(-min_texts // len(X)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        best = min(best, time.perf_counter() - start)
    return len(batch) / best


def tfidf(X, y, seed):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
                         LogisticRegression(max_iter=2000, random_state=seed))
    search = GridSearchCV(pipe, {"logisticregression__C": [1.0, 10.0, 100.0]}, cv=3)
    return search.fit(X, y).best_estimator_


def retime(name, X_train, y_train, X_test, y_test, args, saved):
    """Texts/s of the models a full run saved under ``--save-dir`` (``--time-only``),
    measured again; accuracy and fit times are that run's, except the cascade's, whose
    threshold is chosen again on the held-out rows (``split_rows``)."""
    from sklearn.frozen import FrozenEstimator

    from skbert import BertTextClassifier, CascadeClassifier, StaticTextClassifier

    folder = args.save_dir / name.replace(" ", "_")
    teacher = BertTextClassifier.from_pretrained(folder / "teacher")
    student = StaticTextClassifier.from_pretrained(folder / "student")
    _, val_rows, _ = split_rows(name, X_train, args)
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher),
                                tolerance=args.tolerance)
    cascade.fit([X_train[i] for i in val_rows], y_train[val_rows])
    saved["n_val"] = len(val_rows)
    saved["rows"]["cascade"].update(accuracy=float(np.mean(cascade.predict(X_test) == y_test)),
                                    threshold=float(cascade.threshold_),
                                    deferred_val=float(cascade.deferred_fraction_),
                                    deferred_test=float(np.mean(cascade.defer(X_test))))
    # The teacher first, on enough texts for inference_backend="auto" to probe in its
    # first (untimed) run: the cascade's teacher is the same object and keeps the choice.
    models = {"teacher": (teacher, max(len(X_test), 4096)),
              "student (distilled)": (student, args.min_texts), "cascade": (cascade, len(X_test))}
    for method, row in saved["rows"].items():
        model, min_texts = models.get(method, (None, args.min_texts))
        if model is None:
            model = pickle.loads((folder / f"{method.split(' (')[1][:-1]}.pkl").read_bytes())
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        if method != "cascade":  # the teacher may predict on another path after its probe
            assert abs(accuracy - row["accuracy"]) < 2e-3, (method, accuracy, row["accuracy"])
        texts_per_second(model.predict, X_test, min_texts, 1)  # warm-up (and the probe)
        row["texts_per_s"] = texts_per_second(model.predict, X_test, min_texts, args.repeats)
        print(f"  {method:<28} accuracy {accuracy:.4f}  {row['texts_per_s']:9.0f} texts/s",
              flush=True)
    return saved


def split_rows(name, X_train, args):
    """The teacher's labelled rows, the cascade's held-out rows, and every row in the
    run's random order."""
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(X_train))
    teacher_rows, rest = order[:args.n_teacher], order[args.n_teacher:]
    # The threshold's held-out texts look like the test texts: SST-2's training set is
    # mostly short phrases and its dev set whole sentences, so there they are training
    # texts of at least --val-min-words words.
    min_words = args.val_min_words
    if min_words is None:
        min_words = 10 if name == "SST-2" else 0
    val_rows = np.array([i for i in rest if len(X_train[i].split()) >= min_words]
                        [:args.n_val])
    return teacher_rows, val_rows, order


def run_dataset(name, X_train, y_train, X_test, y_test, args):
    from sklearn.frozen import FrozenEstimator

    from skbert import BertTextClassifier, CascadeClassifier

    teacher_rows, val_rows, order = split_rows(name, X_train, args)
    X_teacher = [X_train[i] for i in teacher_rows]
    y_teacher = y_train[teacher_rows]
    X_val, y_val = [X_train[i] for i in val_rows], y_train[val_rows]
    # The student's texts: the training texts without their labels, except the cascade's
    # held-out ones (a student distilled on them would match the teacher there, and the
    # threshold would never defer).
    held_out = set(val_rows.tolist())
    kept = [i for i in order if i not in held_out]
    X_unlabeled = [X_train[i] for i in kept[:args.n_unlabeled]]
    rows, tmp = {}, Path(tempfile.mkdtemp())

    def record(method, model, fit_s, size_mb, min_texts):
        accuracy = float(np.mean(model.predict(X_test) == y_test))
        texts_per_second(model.predict, X_test, min_texts, 1)  # warm-up (and "auto"'s probe)
        speed = texts_per_second(model.predict, X_test, min_texts, args.repeats)
        rows[method] = dict(accuracy=accuracy, texts_per_s=speed, fit_s=fit_s, size_mb=size_mb)
        print(f"  {method:<28} accuracy {accuracy:.4f}  {speed:9.0f} texts/s  "
              f"fit {fit_s:7.1f} s  {size_mb:7.1f} MB", flush=True)

    print(f"{name}: teacher on {len(X_teacher)} texts, student on {len(X_unlabeled)} "
          f"unlabelled, cascade threshold on {len(X_val)}, test {len(X_test)}", flush=True)
    keep = None if args.save_dir is None else args.save_dir / name.replace(" ", "_")
    if args.reuse_teachers and (keep / "teacher").is_dir():  # fitted by an earlier run
        teacher = BertTextClassifier.from_pretrained(keep / "teacher")
        teacher_fit = json.loads((keep / "teacher_fit.json").read_text())["seconds"]
    else:
        start = time.perf_counter()
        teacher = BertTextClassifier(max_iter=args.epochs, random_state=args.seed, verbose=0)
        teacher.fit(X_teacher, y_teacher)
        teacher_fit = time.perf_counter() - start
        if keep is not None:
            teacher.save_pretrained(keep / "teacher")
            (keep / "teacher_fit.json").write_text(json.dumps({"seconds": teacher_fit}))
    record("teacher", teacher, teacher_fit, folder_mb(teacher.save_pretrained(tmp / "t")),
           max(len(X_test), 4096))

    start = time.perf_counter()
    student = teacher.distill(X_unlabeled, random_state=args.seed)
    distill_s = time.perf_counter() - start
    record("student (distilled)", student, distill_s,
           folder_mb(student.save_pretrained(tmp / "s")), args.min_texts)

    start = time.perf_counter()
    cascade = CascadeClassifier(FrozenEstimator(student), FrozenEstimator(teacher),
                                tolerance=args.tolerance).fit(X_val, y_val)
    cascade_s = time.perf_counter() - start
    record("cascade", cascade, cascade_s, rows["teacher"]["size_mb"]
           + rows["student (distilled)"]["size_mb"], len(X_test))
    rows["cascade"].update(threshold=float(cascade.threshold_),
                           deferred_val=float(cascade.deferred_fraction_),
                           deferred_test=float(np.mean(cascade.defer(X_test))))

    for method, (X, y) in {"TF-IDF + LR (teacher's labels)": (X_teacher, y_teacher),
                           "TF-IDF + LR (all labels)": (X_train, y_train)}.items():
        start = time.perf_counter()
        model = tfidf(X, y, args.seed)
        fit_s = time.perf_counter() - start
        (tmp / "tfidf.pkl").write_bytes(pickle.dumps(model))
        record(method, model, fit_s, folder_mb(tmp / "tfidf.pkl"), args.min_texts)
        if keep is not None:
            (keep / f"{method.split(' (')[1][:-1]}.pkl").write_bytes(pickle.dumps(model))
    if keep is not None:  # for --time-only: throughput measured again on a quiet machine
        student.save_pretrained(keep / "student")
    return dict(n_teacher=len(X_teacher), n_unlabeled=len(X_unlabeled), n_val=len(X_val),
                n_test=len(X_test), rows=rows)


def print_table(results):
    print(f"\nCPU: {results['cpu']}")
    print("| dataset | method | accuracy | texts/s | x teacher | fit / distill s | size MB |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, data in results["datasets"].items():
        base = data["rows"]["teacher"]["texts_per_s"]
        for method, r in data["rows"].items():
            extra = (f" (defers {r['deferred_test']:.0%})" if "deferred_test" in r else "")
            print(f"| {name} | {method}{extra} | {r['accuracy']:.4f} | {r['texts_per_s']:,.0f} "
                  f"| {r['texts_per_s'] / base:.1f} | {r['fit_s']:.1f} | {r['size_mb']:.1f} |")
    print("\nTargets: student >= 30x the teacher at <= 2 points below it; cascade >= 5x at "
          "<= 0.5 points below; student above TF-IDF.")
    for name, data in results["datasets"].items():
        r = data["rows"]
        t, s, c = r["teacher"], r["student (distilled)"], r["cascade"]
        best_tfidf = max(v["accuracy"] for k, v in r.items() if k.startswith("TF-IDF"))
        print(f"{name}: student {s['texts_per_s'] / t['texts_per_s']:.0f}x, "
              f"{100 * (t['accuracy'] - s['accuracy']):+.1f} points below the teacher; cascade "
              f"{c['texts_per_s'] / t['texts_per_s']:.1f}x, "
              f"{100 * (t['accuracy'] - c['accuracy']):+.1f} points below; student - best "
              f"TF-IDF {100 * (s['accuracy'] - best_tfidf):+.1f} points")


def plot(results, path):
    from _plot import BLUE, GREEN, GREY, ORANGE, cpu_of, figure, label_points, save

    colors = {"teacher": BLUE, "student (distilled)": GREEN, "cascade": ORANGE}
    names = list(results["datasets"])
    fig, axes = figure([2.6] * len(names))
    for ax, name in zip(axes, names, strict=True):
        rows = results["datasets"][name]["rows"]
        xs = [r["texts_per_s"] for r in rows.values()]
        ys = [100 * r["accuracy"] for r in rows.values()]
        ax.scatter(xs, ys, color=[colors.get(m, GREY) for m in rows], zorder=3)
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 8)
        pad = max(1.0, 0.15 * (max(ys) - min(ys)))
        ax.set_ylim(min(ys) - pad, max(ys) + pad)
        label_points(ax, xs, ys, [m.replace(" + LR", "") for m in rows])
        ax.set_title(name)
        ax.set_ylabel("accuracy %")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("texts per second, end to end (log scale)")
    save(fig, path, "Teacher, distilled student, cascade, TF-IDF", cpu_of(results))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR)
    parser.add_argument("--datasets", nargs="+", default=["sst2", "ag_news"],
                        choices=["sst2", "ag_news"])
    parser.add_argument("--n-teacher", type=int, default=4000)
    parser.add_argument("--n-val", type=int, default=1000)
    parser.add_argument("--n-unlabeled", type=int, default=None,
                        help="unlabelled texts for the student (default: every training text)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--val-min-words", type=int, default=None,
                        help="words a held-out text of the cascade needs (default: 10 on "
                        "SST-2, whose dev texts are sentences, 0 on AG News)")
    parser.add_argument("--min-texts", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--save-dir", type=Path, default=None,
                        help="keep the fitted models here (for --time-only)")
    parser.add_argument("--reuse-teachers", action="store_true",
                        help="load the teachers an earlier run saved under --save-dir "
                        "(with their fit times) instead of fitting them again")
    parser.add_argument("--time-only", action="store_true",
                        help="measure texts/s again with the models and JSON a run with "
                        "--save-dir left (accuracy and fit times are that run's)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.quick:
        args.n_teacher, args.epochs, args.n_unlabeled = 1000, 1, 5000
        args.repeats, args.min_texts = 1, 5000
    require(args.data_dir)
    out = args.out or HERE / "results" / ("bench_distill_quick.json" if args.quick
                                          else "bench_distill.json")
    results = dict(cpu=cpu_description(), args={k: str(v) for k, v in vars(args).items()},
                   datasets={})
    saved = json.loads(out.read_text())["datasets"] if args.time_only else None
    for name in args.datasets:
        if name == "sst2":
            X_train, y_train = sst2(args.data_dir, "train")
            X_test, y_test = sst2(args.data_dir, "dev")
            label = "SST-2"
        else:
            (X_train, y_train), (X_test, y_test) = ag_news_split(args.data_dir)
            label = "AG News"
        if args.time_only:
            results["datasets"][label] = retime(label, X_train, y_train, X_test, y_test, args,
                                                saved[label])
        else:
            results["datasets"][label] = run_dataset(label, X_train, y_train, X_test, y_test,
                                                     args)
    print_table(results)
    out.write_text(json.dumps(results, indent=2) + "\n")
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
