"""GridSearchCV over the BERT paper's learning rates {2e-5, 3e-5, 5e-5} on an SST-2 slice.

An example of skbert inside scikit-learn's model selection: 3-fold stratified CV on a
slice of SST-2 train, then the refitted best model scored on SST-2 dev. Prints
``cv_results_`` as a table, and writes benchmarks/results/grid_search_lr.json and a chart
beside it (``plot``; ``plots.py`` redraws it from the JSON).
"""

import argparse
import json
from pathlib import Path

import pandas as pd
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2, subsample
from sklearn.model_selection import GridSearchCV

from skbert import BertTextClassifier


def plot(results, path):
    """Mean CV accuracy of each learning rate (with its spread over the folds where it was
    kept), and the refitted best model's SST-2 dev accuracy, as bars from 0."""
    from _plot import BLUE, GREY, cpu_of, figure, hbars, save

    rows = results["rows"]
    fig, (ax,) = figure([0.45 * (len(rows) + 1) + 1.0])
    labels = [f"lr {r['learning_rate']:g}, 3-fold CV" for r in rows]
    labels.append(f"refit, lr {results['best_learning_rate']:g}, SST-2 dev")
    values = [r["mean_test_score"] for r in rows] + [results["dev_accuracy"]]
    texts = [f"{r['mean_test_score']:.3f}"
             + (f" \u00b1 {r['std_test_score']:.3f}" if "std_test_score" in r else "")
             for r in rows] + [f"{results['dev_accuracy']:.3f}"]
    hbars(ax, labels, values, [GREY] * len(rows) + [BLUE], texts, xlabel="accuracy",
          xmax=1.3)
    ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    save(fig, path, f"GridSearchCV over learning rates\n{results['n_train']:,} SST-2 texts, "
         f"{results['max_iter']} epochs", cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=1500)
    parser.add_argument("--max-iter", type=int, default=2)
    args = parser.parse_args(argv)
    require(args.data_dir)
    X, y = subsample(*sst2(args.data_dir, "train"), args.n_train, seed=0)
    X_dev, y_dev = sst2(args.data_dir, "dev")
    search = GridSearchCV(
        BertTextClassifier(max_iter=args.max_iter, random_state=0),
        {"learning_rate": [2e-5, 3e-5, 5e-5]}, cv=3, scoring="accuracy",
    ).fit(X, y)
    table = pd.DataFrame(search.cv_results_)[
        ["param_learning_rate", "mean_test_score", "std_test_score", "rank_test_score",
         "mean_fit_time"]
    ]
    print(f"SST-2 train slice of {len(X)} texts, {args.max_iter} epochs, 3-fold CV")
    print(table.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    dev_accuracy = search.score(X_dev, y_dev)
    print(f"\nbest: {search.best_params_}; refit on all {len(X)} texts, SST-2 dev accuracy "
          f"{dev_accuracy:.3f}")
    results = {"cpu": cpu_description(), "n_train": len(X), "max_iter": args.max_iter,
               "rows": [{"learning_rate": float(r.param_learning_rate),
                         "mean_test_score": r.mean_test_score, "std_test_score": r.std_test_score,
                         "mean_fit_time": r.mean_fit_time} for r in table.itertuples()],
               "best_learning_rate": search.best_params_["learning_rate"],
               "dev_accuracy": dev_accuracy}
    out = Path(__file__).parent / "results" / "grid_search_lr.json"
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
