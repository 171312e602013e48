"""Batch prediction on Spark and Ray against one process: what scaling out costs here.

A classifier saved with ``save_pretrained`` (by default the default model,
all-MiniLM-L6-v2, fitted cheaply: frozen base, one epoch on 200 SST-2 training texts;
throughput does not depend on how well it was trained; or ``--model FOLDER``) predicts
N texts (by default the 872 SST-2 dev sentences from ../shared/datasets, repeated in
order when ``--n`` asks for more):

- in this process, ``predict_proba`` with torch's default threads and with one thread;
- with ``skbert.spark.predict_batch_udf`` on Spark ``local[2]`` (2 task slots, each
  Python worker with ``OMP_NUM_THREADS=1``), over a DataFrame of 8 partitions;
- with ``skbert.ray.SkbertPredictor`` on a local Ray of 2 CPUs, 2 actors, over a
  Dataset of 8 blocks, NumPy batches.

For the engines it reports the start-up (a SparkSession, ``ray.init``), the first call
(workers or actors start, import torch and load the model) and the best of the later
calls (Spark reuses its Python workers and their loaded model; Ray starts a new actor
pool per ``map_batches``, so every Ray call loads the model again), each end to end:
input to collected probabilities. Real (non-pad) tokens per second count the tokens of
the texts after truncation to ``max_length``. Prints a table with the CPU named and
writes JSON to benchmarks/results/bench_engines.json. Run it alone: the figures mean
nothing beside another busy process.
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _data import DEFAULT_DATA_DIR, cpu_description, sst2

from skbert import BertTextClassifier

N_PARTS, N_WORKERS = 8, 2


def best_of(fn, repeats):
    """Best wall time of ``repeats`` runs of ``fn`` and its last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def bench_spark(folder, texts, batch_size, repeats):
    """Start a local[2] SparkSession, time a cold and warm calls, stop it."""
    os.environ["PYSPARK_PYTHON"] = sys.executable  # workers run this interpreter
    from pyspark.sql import SparkSession

    import skbert.spark

    start = time.perf_counter()
    spark = (SparkSession.builder.master(f"local[{N_WORKERS}]").appName("bench_engines")
             .config("spark.ui.enabled", "false")
             .config("spark.default.parallelism", str(N_PARTS))
             .config("spark.sql.shuffle.partitions", str(N_PARTS)).getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    df = spark.createDataFrame(pd.DataFrame({"id": np.arange(len(texts)), "text": texts}))
    df.cache().count()
    startup = time.perf_counter() - start
    udf = skbert.spark.predict_batch_udf(folder, output="proba", batch_size=batch_size)

    def run():
        rows = df.select("id", udf("text").alias("proba")).collect()
        proba = np.empty((len(rows), len(rows[0]["proba"])))
        for row in rows:
            proba[row["id"]] = row["proba"]
        return proba

    try:
        first, out = best_of(run, 1)
        warm, out = best_of(run, repeats)
    finally:
        spark.stop()
    return {"path": f"Spark local[{N_WORKERS}], predict_batch_udf", "startup_s": startup,
            "first_call_s": first, "seconds": warm}, out


def bench_ray(folder, texts, batch_size, repeats):
    """Start a local Ray of 2 CPUs, time a cold and warm calls on 2 actors, shut it down."""
    import ray

    from skbert.ray import SkbertPredictor

    start = time.perf_counter()
    ray.init(num_cpus=N_WORKERS, include_dashboard=False, log_to_driver=False)
    frame = pd.DataFrame({"id": np.arange(len(texts)), "text": texts})
    blocks = [frame.iloc[rows] for rows in np.array_split(np.arange(len(frame)), N_PARTS)]
    ds = ray.data.from_pandas(blocks).materialize()
    startup = time.perf_counter() - start

    def run():
        out = ds.map_batches(
            SkbertPredictor, fn_constructor_kwargs={"path": folder, "output": "proba"},
            compute=ray.data.ActorPoolStrategy(size=N_WORKERS), batch_size=batch_size,
            batch_format="numpy",
        ).to_pandas()
        proba = np.empty((len(out), len(out["proba"].iloc[0])))
        proba[out["id"].to_numpy()] = np.stack(out["proba"].to_numpy())
        return proba

    try:
        first, out = best_of(run, 1)
        warm, out = best_of(run, repeats)
    finally:
        ray.shutdown()
    return {"path": f"Ray, {N_WORKERS} actors, map_batches(SkbertPredictor)",
            "startup_s": startup, "first_call_s": first, "seconds": warm}, out


def print_table(rows, n_texts, real_tokens, base, cpu):
    header = (f"| {'path':<45} | {'start s':>7} | {'1st call s':>10} | {'call s':>6} "
              f"| {'texts/s':>7} | {'tokens/s':>8} | {'x 1 process':>11} |")
    print(f"\n{cpu}; {n_texts} texts, {real_tokens} real tokens")
    print(header)
    print("|" + "|".join("-" * len(c) for c in header.split("|")[1:-1]) + "|")
    for r in rows:
        start = f"{r['startup_s']:.1f}" if "startup_s" in r else ""
        first = f"{r['first_call_s']:.1f}" if "first_call_s" in r else ""
        print(f"| {r['path']:<45} | {start:>7} | {first:>10} | {r['seconds']:>6.2f} "
              f"| {n_texts / r['seconds']:>7,.0f} | {real_tokens / r['seconds']:>8,.0f} "
              f"| {base / r['seconds']:>11.2f} |")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=None,
                        help="texts predicted (default: the 872 SST-2 dev sentences)")
    parser.add_argument("--model", default=None,
                        help="a save_pretrained folder (default: fit the default model)")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--batch-size", type=int, default=256,
                        help="texts per call of the model in the engines")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs; the best is kept")
    parser.add_argument("--engines", default="spark,ray", help="comma-separated: spark,ray")
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "bench_engines.json")
    args = parser.parse_args(argv)
    load_before = os.getloadavg()[0]  # above ~0.5, something else is using the CPUs
    dev, _ = sst2(args.data_dir, "dev")
    n = args.n or len(dev)
    texts = [dev[i % len(dev)] for i in range(n)]

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.model
        if folder is None:
            train, y_train = sst2(args.data_dir, "train")
            clf = BertTextClassifier(freeze_base=True, learning_rate=1e-2, max_iter=1,
                                     random_state=0, device="cpu")
            clf.fit(train[:200], y_train[:200])
            folder = str(Path(tmp) / "model")
            clf.save_pretrained(folder)
        clf = BertTextClassifier.from_pretrained(folder)
        lengths = map(len, clf.tokenizer_(texts, truncation=True, max_length=clf.max_length)[
            "input_ids"])
        real_tokens = int(sum(lengths))
        cpu = cpu_description()
        print(f"{cpu}; torch {torch.__version__}, {torch.get_num_threads()} torch threads, "
              f"inference_dtype={clf.inference_dtype!r}; load average at start "
              f"{load_before:.2f}", flush=True)

        rows = []
        clf.predict_proba(texts[:200])  # warm-up
        seconds, reference = best_of(lambda: clf.predict_proba(texts), args.repeats)
        threads = torch.get_num_threads()
        rows.append({"path": f"one process, {threads} torch threads", "seconds": seconds})
        torch.set_num_threads(1)
        seconds, _ = best_of(lambda: clf.predict_proba(texts), args.repeats)
        torch.set_num_threads(threads)
        rows.append({"path": "one process, 1 torch thread", "seconds": seconds})
        for row in rows:
            print(f"  {row['path']:<45} {row['seconds']:.2f} s", flush=True)

        engines = {"spark": bench_spark, "ray": bench_ray}
        for name in args.engines.split(","):
            row, out = engines[name.strip()](folder, texts, args.batch_size, args.repeats)
            row["max_abs_diff_vs_one_process"] = float(np.abs(out - reference).max())
            rows.append(row)
            print(f"  {row['path']:<45} start {row['startup_s']:.1f} s, first call "
                  f"{row['first_call_s']:.1f} s, then {row['seconds']:.2f} s (max diff "
                  f"{row['max_abs_diff_vs_one_process']:.1e})", flush=True)

    base = rows[0]["seconds"]
    for row in rows:
        row["texts_per_s"] = len(texts) / row["seconds"]
        row["tokens_per_s"] = real_tokens / row["seconds"]
        row["vs_one_process"] = base / row["seconds"]
    print_table(rows, len(texts), real_tokens, base, cpu)
    payload = {
        "cpu": cpu, "torch": torch.__version__, "cpus": os.cpu_count(), "threads": threads,
        "texts": len(texts), "real_tokens": real_tokens, "partitions": N_PARTS,
        "batch_size": args.batch_size, "model": args.model or "all-MiniLM-L6-v2 (default)",
        "inference_dtype": clf.inference_dtype, "load_average_at_start": load_before,
        "rows": rows,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(payload, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
