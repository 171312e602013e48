"""GridSearchCV over the BERT paper's learning rates {2e-5, 3e-5, 5e-5} on an SST-2 slice.

An example of skbert inside scikit-learn's model selection: 3-fold stratified CV on a
slice of SST-2 train, then the refitted best model scored on SST-2 dev. Prints
``cv_results_`` as a table.
"""

import argparse

import pandas as pd
from _data import DEFAULT_DATA_DIR, require, sst2, subsample
from sklearn.model_selection import GridSearchCV

from skbert import BertTextClassifier


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
    print(f"\nbest: {search.best_params_}; refit on all {len(X)} texts, SST-2 dev accuracy "
          f"{search.score(X_dev, y_dev):.3f}")


if __name__ == "__main__":
    main()
