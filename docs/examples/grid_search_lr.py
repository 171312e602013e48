"""GridSearchCV over learning rates for BertTextClassifier.

Each candidate fine-tunes a fresh copy of the pretrained model on each fold; the best
learning rate is refitted on all the training texts and scored on held-out ones::

    python grid_search_lr.py
    python grid_search_lr.py --learning-rates 2e-5 5e-5 1e-4 --cv 3 --n-train 1000

Prints ``cv_results_`` as a table and the refitted model's test accuracy. Data: the
bundled SST-2 sample; nothing is downloaded.
"""

import argparse

import pandas as pd
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skbert import BertTextClassifier
from skbert.datasets import load_sst2_sample


def plot(table, best, test_accuracy, path, title):
    """Mean CV accuracy per learning rate with its spread over the folds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    ax.errorbar(table["learning_rate"], table["mean_test_score"], yerr=table["std_test_score"],
                marker="o", capsize=4, color="#1f77b4", label="mean CV accuracy (± std)")
    ax.scatter([best], [test_accuracy], marker="*", s=160, color="#d62728", zorder=3,
               label=f"refit at {best:g}: test accuracy {test_accuracy:.3f}")
    ax.set_xscale("log")
    ax.set_xticks(table["learning_rate"], [f"{lr:g}" for lr in table["learning_rate"]])
    ax.minorticks_off()
    ax.set_xlabel("learning_rate")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.4, 1.0)
    ax.axhline(0.5, color="#9e9e9e", linewidth=0.8, linestyle=":")
    ax.set_title(title, fontsize=11)
    ax.legend(loc="lower left", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"\nchart: {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--learning-rates", type=float, nargs="+",
                        default=[2e-5, 1e-4, 1e-3])
    parser.add_argument("--cv", type=int, default=2, help="folds (stratified)")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=None, help="at most this many of the "
                        "872 SST-2 dev sentences")
    parser.add_argument("--max-iter", type=int, default=2, help="epochs per fit")
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    parser.add_argument("--plot", help="write a chart of the scores to this PNG")
    args = parser.parse_args(argv)

    X_train, y_train, X_test, y_test = load_sst2_sample()
    X, y = X_train[:args.n_train], y_train[:args.n_train]
    X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
    estimator = BertTextClassifier(max_iter=args.max_iter, max_length=args.max_length,
                                   random_state=0)
    if args.model:
        estimator.set_params(model_name_or_path=args.model)
    search = GridSearchCV(estimator, {"learning_rate": args.learning_rates},
                          cv=StratifiedKFold(args.cv, shuffle=True, random_state=0),
                          scoring="accuracy")
    search.fit(X, y)

    table = pd.DataFrame(search.cv_results_)[
        ["param_learning_rate", "mean_test_score", "std_test_score", "rank_test_score",
         "mean_fit_time"]].rename(columns={"param_learning_rate": "learning_rate"})
    table["learning_rate"] = table["learning_rate"].astype(float)
    print(f"SST-2: {len(X)} training texts, {args.cv}-fold CV, {args.max_iter} epochs per fit")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    test_accuracy = search.score(X_test, y_test)
    best = search.best_params_["learning_rate"]
    print(f"\nbest: {search.best_params_}; refitted on all {len(X)} texts, "
          f"accuracy on {len(X_test)} SST-2 dev sentences: {test_accuracy:.3f}")
    if args.plot:
        plot(table, best, test_accuracy, args.plot,
             f"GridSearchCV over learning rates: {len(X)} SST-2 texts, {args.cv}-fold CV, "
             f"{args.max_iter} epochs")


if __name__ == "__main__":
    main()
