"""Few-shot: skbert's few-shot mode against its default fine-tuning, SetFit and TF-IDF.

For SST-2 (dev as the test set), AG News (our 80/20 split of its test file) and SMS spam
(80/20 by unique text), ``--sizes`` labelled texts per class are drawn from the training
part, ``--draws`` times (draw ``d`` uses seed ``d``); every method trains on the same
draws and is scored on the same test texts (``--test-size`` of them drawn once with seed
0, all by default): accuracy, F1 of "spam" for SMS spam. Methods:

- ``skbert few-shot``: ``BertTextClassifier(few_shot=True, random_state=draw)``;
- ``skbert default``: ``BertTextClassifier(few_shot=False, random_state=draw)``;
- ``SetFit``: setfit's ``SetFitModel`` on the same all-MiniLM-L6-v2 weights (the folder
  skbert resolves the default model to, offline), default ``TrainingArguments``
  (``seed=draw``);
- ``TF-IDF + LR``: 1-2 gram TF-IDF and ``LogisticRegression``.

Prints mean ± standard deviation over the draws of the score and of the fit time, with the
CPU; writes benchmarks/results/bench_fewshot[_quick].json and a chart beside it
(``plot``; ``plots.py`` redraws it). SetFit is slow on a few CPU cores (minutes per fit,
hours at 64 per class: its pairs grow with the square of the texts): ``--methods`` leaves
methods out, and each SetFit result (score, fit seconds, the load average and CPU it was
measured on) is kept in benchmarks/results/bench_fewshot_setfit_cache.json under its
dataset, size, draw and test subset, and reused by later runs (``--refit-setfit`` fits it
again; ``--setfit-cache`` names another file). ``--param NAME=VALUE`` passes a
``BertTextClassifier`` parameter to the skbert methods (to compare settings on the same
draws). ``--quick``: sizes 8, 1 draw, 500 test texts. Run it alone: fit times measured
while other work runs are not comparable.
"""

import argparse
import ast
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, ag_news_split, cpu_description, require, sms_spam, sst2
from sklearn.metrics import accuracy_score, f1_score

RESULTS = Path(__file__).parent / "results"
METHODS = ("skbert few-shot", "skbert default", "SetFit", "TF-IDF + LR")
DATASETS = ("sst2", "ag_news", "sms_spam")
SETFIT_CACHE = RESULTS / "bench_fewshot_setfit_cache.json"


def load(name, data_dir):
    """(train texts, train labels), (test texts, test labels) of a dataset."""
    if name == "sst2":
        return sst2(data_dir, "train"), sst2(data_dir, "dev")
    if name == "ag_news":
        return ag_news_split(data_dir)
    return sms_spam(data_dir)


def draw(y, per_class, seed):
    """Row indices of ``per_class`` texts of each class, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    y = np.asarray(y)
    return np.concatenate([rng.choice(np.flatnonzero(y == c), per_class, replace=False)
                           for c in np.unique(y)])


def score(name, y_true, y_pred):
    """Accuracy, or the F1 of "spam" for SMS spam."""
    if name == "sms_spam":
        return float(f1_score(y_true, y_pred, pos_label="spam"))
    return float(accuracy_score(y_true, y_pred))


def fit_predict(method, X, y, X_test, seed, params=None):
    """Fit ``method`` on (X, y); return its predictions of ``X_test`` and fit seconds.
    ``params``: extra ``BertTextClassifier`` parameters of the skbert methods."""
    if method.startswith("skbert"):
        from skbert import BertTextClassifier

        clf = BertTextClassifier(few_shot=method == "skbert few-shot", random_state=seed,
                                 verbose=0, **(params or {}))
        start = time.perf_counter()
        clf.fit(X, y)
        return clf.predict(X_test), time.perf_counter() - start
    if method == "SetFit":
        return setfit_fit_predict(X, y, X_test, seed)
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    clf = make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
                        LogisticRegression(max_iter=1000))
    start = time.perf_counter()
    clf.fit(X, y)
    return clf.predict(X_test), time.perf_counter() - start


def setfit_fit_predict(X, y, X_test, seed):
    """SetFit 1.x with default training arguments on skbert's default model folder."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    from skbert._pretrained import DEFAULT_MODEL, resolve_model_path

    classes, index = np.unique(np.asarray(y), return_inverse=True)
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        model = SetFitModel.from_pretrained(str(resolve_model_path(DEFAULT_MODEL)))
        args = TrainingArguments(output_dir=out, seed=seed, report_to="none",
                                 show_progress_bar=False, save_strategy="no")
        data = Dataset.from_dict({"text": list(X), "label": index.tolist()})
        Trainer(model=model, args=args, train_dataset=data).train()
        seconds = time.perf_counter() - start
    return classes[np.asarray(model.predict(list(X_test)))], seconds


def cache_key(name, size, seed, test_size):
    """The SetFit cache's key of a dataset, size, draw and test subset."""
    return f"{name}/{size}/{seed}/{test_size or 'all'}"


def load_cache(path):
    """SetFit's cached results (key -> score, fit seconds...), empty without a file."""
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else {}


def save_cache(cache, path):
    """Write the SetFit cache atomically (a fit takes minutes: keep each one)."""
    path = Path(path)
    path.parent.mkdir(exist_ok=True)
    staged = path.with_suffix(".tmp")
    staged.write_text(json.dumps(cache, indent=1, sort_keys=True))
    os.replace(staged, path)


def setfit_version():
    """The installed setfit's version (kept with each cached result)."""
    from importlib.metadata import version

    return version("setfit")


def run(args):
    """All the fits: the results object that the JSON holds."""
    results = {"cpu": cpu_description(), "sizes": args.sizes, "draws": args.draws,
               "test_size": args.test_size, "methods": args.methods,
               "params": args.params, "rows": []}
    cache = load_cache(args.setfit_cache)
    for name in args.datasets:
        (X_train, y_train), (X_test, y_test) = load(name, args.data_dir)
        y_train, y_test = np.asarray(y_train), np.asarray(y_test)
        if args.test_size and args.test_size < len(X_test):
            keep = np.random.default_rng(0).choice(len(X_test), args.test_size, replace=False)
            X_test, y_test = [X_test[i] for i in keep], y_test[keep]
        for size in args.sizes:
            for method in args.methods:
                scores, seconds = [], []
                for d in range(args.draws):
                    key = cache_key(name, size, d, args.test_size)
                    if method == "SetFit" and not args.refit_setfit and key in cache:
                        got, took = cache[key]["score"], cache[key]["fit_seconds"]
                        note = " (cached)"
                    else:
                        rows = draw(y_train, size, d)
                        pred, took = fit_predict(method, [X_train[i] for i in rows],
                                                 y_train[rows], X_test, d, args.params)
                        got, note = score(name, y_test, pred), ""
                        if method == "SetFit":
                            cache[key] = {"score": got, "fit_seconds": took,
                                          "load_average": os.getloadavg()[0],
                                          "cpu": results["cpu"], "setfit": setfit_version()}
                            save_cache(cache, args.setfit_cache)
                    scores.append(got)
                    seconds.append(took)
                    print(f"  {name} {size}/class {method} draw {d}: {got:.3f} "
                          f"({took:.1f} s){note}", flush=True)
                results["rows"].append({
                    "dataset": name, "per_class": size, "method": method,
                    "metric": "F1 (spam)" if name == "sms_spam" else "accuracy",
                    "n_test": len(X_test), "scores": scores, "fit_seconds": seconds,
                })
    return results


def table(results):
    """The printed table: mean ± std of the score and of the fit time per row."""
    lines = [f"CPU: {results['cpu']}; {results['draws']} draw(s) per size",
             f"{'dataset':<9} {'per class':>9}  {'method':<16} {'score':>15} "
             f"{'fit s':>15}  metric (test texts)", "-" * 90]
    for row in results["rows"]:
        s, t = np.asarray(row["scores"]), np.asarray(row["fit_seconds"])
        lines.append(f"{row['dataset']:<9} {row['per_class']:>9}  {row['method']:<16} "
                     f"{s.mean():>7.3f} ± {s.std():.3f} {t.mean():>7.1f} ± {t.std():>5.1f}  "
                     f"{row['metric']} ({row['n_test']})")
    return "\n".join(lines)


def plot(results, path):
    """Mean score per method and size, one panel per dataset."""
    from _plot import BLUE, GREY, LIGHT, ORANGE, figure, save

    datasets = list(dict.fromkeys(r["dataset"] for r in results["rows"]))
    methods = list(dict.fromkeys(r["method"] for r in results["rows"]))
    colors = dict(zip(METHODS, (BLUE, LIGHT, ORANGE, GREY), strict=True))
    fig, axes = figure([2.4] * len(datasets))
    for ax, name in zip(axes, datasets, strict=True):
        rows = [r for r in results["rows"] if r["dataset"] == name]
        sizes = sorted({r["per_class"] for r in rows})
        width = 0.8 / len(methods)
        for k, method in enumerate(methods):
            means = [np.mean(next((r["scores"] for r in rows if r["per_class"] == s
                                   and r["method"] == method), [np.nan])) for s in sizes]
            ax.bar(np.arange(len(sizes)) + (k - (len(methods) - 1) / 2) * width, means,
                   width, label=method, color=colors.get(method, GREY))
        ax.set_xticks(np.arange(len(sizes)), [f"{s} per class" for s in sizes])
        ax.set_ylim(0, 1)
        ax.set_ylabel(rows[0]["metric"])
        ax.set_title(name)
    axes[0].legend(loc="lower right", ncol=2)
    save(fig, path, "Few-shot: mean score over draws", results["cpu"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16, 64])
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--test-size", type=int, default=None,
                        help="score on this many test texts drawn once (default: all)")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--quick", action="store_true",
                        help="sizes 8, 1 draw, 500 test texts")
    parser.add_argument("--out", default=None, help="JSON path (default under results/)")
    parser.add_argument("--setfit-cache", default=str(SETFIT_CACHE),
                        help="JSON of SetFit's results per dataset, size, draw and test "
                             "subset, reused instead of refitting (default: %(default)s)")
    parser.add_argument("--refit-setfit", action="store_true",
                        help="fit SetFit again even where the cache has the result")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                        help="a BertTextClassifier parameter of the skbert methods "
                             "(Python literal), e.g. --param max_iter=2")
    args = parser.parse_args()
    args.params = {k: ast.literal_eval(v) for k, v in (p.split("=", 1) for p in args.param)}
    require(args.data_dir)
    if args.quick:
        args.sizes, args.draws, args.test_size = [8], 1, 500
    results = run(args)
    print(table(results))
    out = Path(args.out) if args.out else RESULTS / (
        "bench_fewshot_quick.json" if args.quick else "bench_fewshot.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    plot(results, out.with_suffix(".png"))
    print(f"wrote {out} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
