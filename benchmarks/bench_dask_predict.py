"""Prediction on a Dask cluster against one process: what scaling out costs on this machine.

The default model (all-MiniLM-L6-v2), fitted cheaply (frozen base, one epoch on 200
texts: throughput does not depend on how well it was trained), predicts the 4,000 texts
of the bundled SST-2 training sample:

- in this process, with torch's default threads and with one thread;
- with ``skbert.dask.predict_proba`` over a Parquet copy of the texts in 8 partitions,
  on a ``distributed.LocalCluster`` of 2 workers x 1 thread and of 1 worker x 2 threads
  (worker processes get ``OMP_NUM_THREADS=1`` from their nanny), each with Dask's
  defaults and with the nanny's ``MALLOC_TRIM_THRESHOLD_=65536`` unset ("no malloc
  trim");
- with ``dask_ml.wrappers.ParallelPostFit`` on an (n, 1) object dask array in 8 blocks,
  on the 2 x 1 cluster.

For the clusters it reports the start-up time, the first call (workers import torch and
unpickle the estimator) and the best of the later calls, each end to end: scattering the
estimator, reading Parquet, predicting, gathering the result. Real (non-pad) tokens per
second count the tokens of the texts after truncation to ``max_length``. Prints a table
and writes JSON to benchmarks/results/bench_dask_predict.json. Run it alone: the
figures mean nothing beside another busy process.
"""

import argparse
import json
import os
import pickle
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _data import cpu_description

from skbert import BertTextClassifier
from skbert.datasets import load_sst2_sample

N_PARTITIONS = 8
TRIM_KEY = "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"


def best_of(fn, repeats):
    """Best wall time of ``repeats`` runs of ``fn`` and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def write_parquet(texts, folder):
    for i, rows in enumerate(np.array_split(np.arange(len(texts)), N_PARTITIONS)):
        frame = pd.DataFrame({"text": [texts[r] for r in rows]}, index=pd.Index(rows, name="id"))
        frame.to_parquet(Path(folder) / f"part.{i:02d}.parquet")


def malloc_trim_threshold():
    """This process's ``MALLOC_TRIM_THRESHOLD_`` (run on the workers)."""
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def bench_cluster(label, clf, folder, reference, repeats, n_workers, threads, post_fit=False,
                  malloc_trim=True):
    """Start a LocalCluster, time a cold and warm calls, check the results, close it.

    ``malloc_trim=False`` unsets the ``MALLOC_TRIM_THRESHOLD_=65536`` that the nanny
    sets in its workers' environment by default.
    """
    import dask
    import dask.array as da
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    import skbert.dask

    # A LocalCluster's nanny copies its pre-spawn variables into this process's environ,
    # which spawned workers inherit: clear it so that each run starts from the config.
    os.environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    config = {} if malloc_trim else {TRIM_KEY: None}
    start = time.perf_counter()
    with dask.config.set(config):
        cluster = LocalCluster(
            n_workers=n_workers, threads_per_worker=threads, processes=True,
            dashboard_address=None,
        )
    client = Client(cluster)
    startup = time.perf_counter() - start
    if post_fit:
        from dask_ml.wrappers import ParallelPostFit

        texts = pd.read_parquet(folder)["text"].tolist()
        blocks = da.from_array(
            np.array(texts, dtype=object)[:, None], chunks=(-(-len(texts) // N_PARTITIONS), 1)
        )
        wrapped = ParallelPostFit(clf, predict_proba_meta=np.empty((0, len(clf.classes_))))

        def run():
            return wrapped.predict_proba(blocks).compute()
    else:
        def run():
            ddf = dd.read_parquet(folder, index="id", calculate_divisions=True)
            return skbert.dask.predict_proba(ddf, clf).compute().to_numpy()

    try:
        first, out = best_of(run, 1)
        warm, out = best_of(run, repeats)
        worker_threads = sorted(set(client.run(torch.get_num_threads).values()))
        trim = sorted(set(client.run(malloc_trim_threshold).values()), key=str)
    finally:
        client.close()
        cluster.close()
    return {
        "path": label, "startup_s": startup, "first_call_s": first, "seconds": warm,
        "torch_threads_per_task": worker_threads, "worker_malloc_trim_threshold": trim,
        "max_abs_diff_vs_one_process": float(np.abs(out - reference).max()),
    }


def print_table(rows, n_texts, real_tokens, base):
    header = (f"| {'path':<50} | {'start s':>7} | {'1st call s':>10} | {'call s':>6} "
              f"| {'texts/s':>7} | {'tokens/s':>8} | {'x 1 process':>11} |")
    print(f"\n{n_texts} texts, {real_tokens} real tokens")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        start = f"{r['startup_s']:.1f}" if "startup_s" in r else ""
        first = f"{r['first_call_s']:.1f}" if "first_call_s" in r else ""
        print(f"| {r['path']:<50} | {start:>7} | {first:>10} | {r['seconds']:>6.2f} "
              f"| {n_texts / r['seconds']:>7,.0f} | {real_tokens / r['seconds']:>8,.0f} "
              f"| {base / r['seconds']:>11.2f} |")


def plot(results, path):
    """Texts/s of each path with the ratio to one process; the clusters' start-up, first
    call and later calls in seconds. All bars from 0."""
    import re

    from _plot import BLUE, GREY, LIGHT, ORANGE, figure, hbars, save

    def short(label):
        """'skbert.dask, 2 workers x 1 thread, no malloc trim' -> 'skbert.dask, 2 x 1,
        no malloc trim' (on two lines)."""
        label = re.sub(r"(\d) workers? x (\d) threads?", r"\1 x \2", label)
        label = label.replace("one process, ", "1 process, ").replace(" torch thread", " thread")
        return label.replace(", no malloc trim", ",\nno malloc trim")

    def color(path):
        return (BLUE if path.startswith("one process") else GREY if "ParallelPostFit" in path
                else ORANGE if "no malloc trim" in path else "#f2c38f")

    rows = results["rows"]
    clusters = [r for r in rows if "startup_s" in r]
    lines = sum(short(r["path"]).count("\n") + 1 for r in rows)
    fig, (speed, times) = figure([0.27 * lines + 1.3, 0.68 * len(clusters) + 1.1])
    hbars(speed, [short(r["path"]) for r in rows], [r["texts_per_s"] for r in rows],
          [color(r["path"]) for r in rows],
          [f"{r['texts_per_s']:,.0f} ({r['vs_one_process']:.2f}x)" for r in rows],
          xlabel="texts per second (best later call)")
    speed.set_title(f"{results['texts']:,} SST-2 texts, {results['partitions']} partitions;\n"
                    "clusters: workers x threads each", fontsize="medium")
    # Per cluster: start-up, first call and best later call, top to bottom, each named in
    # the text after its bar (no legend to cover the bars).
    height = 0.26
    y = np.arange(len(clusters))[::-1]
    top = 0
    for k, (key, name, shade) in enumerate([("startup_s", "start", LIGHT),
                                            ("first_call_s", "1st call", GREY),
                                            ("seconds", "later", BLUE)]):
        at = y + (1 - k) * height
        values = [r[key] for r in clusters]
        times.barh(at, values, height=height * 0.9, color=shade)
        for yi, v in zip(at, values, strict=True):
            times.text(v, yi, f" {name} {v:.1f} s", va="center", fontsize="small")
        top = max(top, *values)
    times.set_yticks(y, [short(r["path"]) for r in clusters])
    times.set_xlim(0, top / 0.72)
    times.set_ylim(-0.55, len(clusters) - 0.45)
    times.set_xlabel("seconds, each end to end")
    times.set_title("Clusters: start-up, first call, later calls", fontsize="medium")
    times.grid(axis="x", alpha=0.3)
    times.set_axisbelow(True)
    times.tick_params(axis="y", length=0)
    cpu = results.get("cpu") or (f"not recorded ({results['cpus']} cores, "
                                 f"torch {results['torch']})")
    save(fig, path, "Prediction on a Dask LocalCluster\nagainst one process", cpu)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-texts", type=int, default=4000, help="texts predicted (<= 4000)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs; the best is kept")
    parser.add_argument(
        "--out", default=Path(__file__).parent / "results" / "bench_dask_predict.json"
    )
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # above ~0.5, something else is using the CPUs
    X_train, _, X_test, y_test = load_sst2_sample()
    texts = X_train[: args.n_texts]
    clf = BertTextClassifier(
        freeze_base=True, learning_rate=1e-2, max_iter=1, random_state=0, device="cpu"
    ).fit(X_test[:200], y_test[:200])
    lengths = map(len, clf.tokenizer_(texts, truncation=True, max_length=clf.max_length)[
        "input_ids"])
    real_tokens = int(sum(lengths))

    start = time.perf_counter()
    blob = pickle.dumps(clf)
    dump_s = time.perf_counter() - start
    start = time.perf_counter()
    pickle.loads(blob)
    load_s = time.perf_counter() - start
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} torch "
          f"threads; pickled estimator {len(blob) / 2**20:.1f} MiB, dumps {dump_s:.2f} s, "
          f"loads {load_s:.2f} s; load average at start {load_before:.2f}", flush=True)

    rows = []
    clf.predict_proba(texts[:200])  # warm-up
    seconds, reference = best_of(lambda: clf.predict_proba(texts), args.repeats)
    rows.append({"path": f"one process, {torch.get_num_threads()} torch threads",
                 "seconds": seconds})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    seconds, _ = best_of(lambda: clf.predict_proba(texts), args.repeats)
    torch.set_num_threads(threads)
    rows.append({"path": "one process, 1 torch thread", "seconds": seconds})
    for row in rows:
        print(f"  {row['path']:<50} {row['seconds']:.2f} s", flush=True)

    with tempfile.TemporaryDirectory() as folder:
        write_parquet(texts, folder)
        for label, n_workers, n_threads, post_fit, trim in [
            ("skbert.dask, 2 workers x 1 thread", 2, 1, False, True),
            ("skbert.dask, 2 workers x 1 thread, no malloc trim", 2, 1, False, False),
            ("skbert.dask, 1 worker x 2 threads", 1, 2, False, True),
            ("skbert.dask, 1 worker x 2 threads, no malloc trim", 1, 2, False, False),
            ("ParallelPostFit, 2 workers x 1 thread", 2, 1, True, True),
        ]:
            # ParallelPostFit ships the weights with every block: one warm run is enough.
            repeats = 1 if post_fit else args.repeats
            row = bench_cluster(label, clf, folder, reference, repeats, n_workers,
                                n_threads, post_fit=post_fit, malloc_trim=trim)
            rows.append(row)
            print(f"  {label:<50} start {row['startup_s']:.1f} s, first call "
                  f"{row['first_call_s']:.1f} s, then {row['seconds']:.2f} s", flush=True)

    base = rows[0]["seconds"]
    for row in rows:
        row["texts_per_s"] = len(texts) / row["seconds"]
        row["tokens_per_s"] = real_tokens / row["seconds"]
        row["vs_one_process"] = base / row["seconds"]
    print_table(rows, len(texts), real_tokens, base)
    payload = {
        "cpu": cpu_description(), "torch": torch.__version__, "cpus": os.cpu_count(),
        "threads": threads,
        "texts": len(texts), "real_tokens": real_tokens, "partitions": N_PARTITIONS,
        "pickled_estimator_bytes": len(blob), "pickle_dumps_s": dump_s,
        "pickle_loads_s": load_s, "inference_dtype": clf.inference_dtype,
        "load_average_at_start": load_before, "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.out}")
    plot(payload, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
