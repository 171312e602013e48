"""GridSearchCV wall time with and without skbert's in-process caches.

A grid search fits the same pretrained checkpoint on the same folds many times. skbert
reads each checkpoint from disk once per process (every fit gets a copy) and reuses the
token ids of texts it tokenized before. This runs the same GridSearchCV (learning rates
{2e-5, 3e-5, 5e-5}, 3-fold CV, the default model, one epoch on an SST-2 slice) with the
caches on and off, checks that the results are identical, and prints both wall times.
Writes benchmarks/results/bench_cache.json and a chart beside it (``plot``; ``plots.py``
redraws it from the JSON). Run it alone.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2, subsample
from sklearn.model_selection import GridSearchCV

from skbert import BertTextClassifier, _cache


def search(X, y, max_iter):
    start = time.perf_counter()
    grid = GridSearchCV(BertTextClassifier(max_iter=max_iter, random_state=0),
                        {"learning_rate": [2e-5, 3e-5, 5e-5]}, cv=3).fit(X, y)
    return time.perf_counter() - start, grid.cv_results_["mean_test_score"]


def plot(results, path):
    """Wall seconds of the grid search with the caches off and on, from 0."""
    from _plot import BLUE, GREY, cpu_of, figure, hbars, save

    fig, (ax,) = figure([1.9])
    off, on = results["off_s"], results["on_s"]
    hbars(ax, ["caches off", "caches on"], [off, on], [GREY, BLUE],
          [f"{off:.1f} s", f"{on:.1f} s ({1 - on / off:.0%} less)"],
          xlabel="GridSearchCV wall seconds (best of the runs)")
    save(fig, path, f"GridSearchCV: 3 rates x 3 folds + refit\n{results['n_train']} texts, "
         f"{results['max_iter']} epoch(s)",
         cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--max-iter", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each setting")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "bench_cache.json")
    args = parser.parse_args(argv)
    require(args.data_dir)
    X, y = subsample(*sst2(args.data_dir, "train"), args.n_train, seed=0)
    rows = {}
    for _ in range(args.repeats):  # alternate, keep each setting's best wall time
        for label, size in (("caches off", 0), ("caches on", None)):
            _cache.clear()
            sizes = (_cache.PRETRAINED.size, _cache.ENCODINGS.size)
            if size is not None:
                _cache.PRETRAINED.size = _cache.ENCODINGS.size = size
            try:
                seconds, scores = search(X, y, args.max_iter)
            finally:
                _cache.PRETRAINED.size, _cache.ENCODINGS.size = sizes
            best = rows.get(label, (np.inf, None))[0]
            rows[label] = (min(best, seconds), scores)
    (off, off_scores), (on, on_scores) = rows["caches off"], rows["caches on"]
    assert np.array_equal(off_scores, on_scores), (off_scores, on_scores)
    print(cpu_description())
    print(f"GridSearchCV: 3 learning rates x 3 folds + refit = 10 fits of {args.n_train} "
          f"texts x {args.max_iter} epoch(s)")
    print(f"best of {args.repeats} runs of each setting, alternating")
    print("| caches | wall s |\n|---|---|")
    print(f"| off | {off:.1f} |\n| on | {on:.1f} |")
    print(f"on/off: {on / off:.3f} (saved {off - on:.1f} s); identical cv scores: yes")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {"cpu": cpu_description(), "n_train": args.n_train, "max_iter": args.max_iter,
               "off_s": off, "on_s": on, "mean_test_scores": list(on_scores)}
    Path(args.out).write_text(json.dumps(results, indent=2))
    plot(results, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
