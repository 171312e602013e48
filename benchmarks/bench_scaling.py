"""Cost as work grows: prediction throughput and peak memory at 1k, 10k and 100k texts,
and training time against training-set size.

Prediction: a classifier fitted briefly on SST-2 (throughput does not depend on how well
it was trained) is saved once; each size then runs in a fresh process that loads it,
reads its texts (SST-2 train sentences, repeated past the 67,349 there are) and calls
``predict_proba`` on all of them while a thread samples its resident memory every 20 ms.
The table shows real (non-pad) tokens per second and the peak's growth over the
process's memory just before the call (model loaded, texts read): throughput should
stay flat and memory bounded, since prediction runs chunk by chunk.

Training: ``fit`` for one epoch on 250 to 2,000 SST-2 texts, in this process; time
should grow linearly with the texts.

Writes benchmarks/results/bench_scaling.json and .png. Run it alone.
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2

HERE = Path(__file__).resolve().parent
PREDICT_SIZES = (1_000, 10_000, 100_000)
TRAIN_SIZES = (250, 500, 1_000, 2_000)


def texts_of(data_dir, n):
    """``n`` SST-2 training sentences, the list repeated as often as needed."""
    texts, _ = sst2(data_dir, "train")
    return (texts * (n // len(texts) + 1))[:n]


def rss_mib():
    """This process's resident memory now, in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def child(model_path, data_dir, n):
    """Runs in its own process: time predict_proba of ``n`` texts; print one JSON line."""
    import skops.io as sio

    from skbert import TRUSTED_TYPES

    clf = sio.load(model_path, trusted=TRUSTED_TYPES)
    texts = texts_of(data_dir, n)
    clf.predict_proba(texts[:64])  # warm-up (and the bf16 probe, if any)
    tokens = sum(map(len, clf.tokenizer_(texts, truncation=True,
                                         max_length=clf.max_length)["input_ids"]))
    before = rss_mib()
    peak, done = [before], threading.Event()

    def sample():  # the resident set every 20 ms while predicting
        while not done.wait(0.02):
            peak[0] = max(peak[0], rss_mib())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    proba = clf.predict_proba(texts)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak = max(peak[0], rss_mib())
    assert proba.shape == (n, 2)
    print(json.dumps({"texts": n, "real_tokens": tokens, "seconds": seconds,
                      "tokens_per_s": tokens / seconds, "texts_per_s": n / seconds,
                      "peak_rss_mib": peak, "rss_before_mib": before,
                      "peak_growth_mib": peak - before}))


def predict_rows(data_dir, model_path, sizes):
    rows = []
    for n in sizes:
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--model", str(model_path),
             "--data-dir", str(data_dir)], capture_output=True, text=True, check=True,
        ).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"  predict {n:>7,} texts: {r['tokens_per_s']:>8,.0f} tokens/s, "
              f"{r['seconds']:7.1f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB "
              f"(+{r['peak_growth_mib']:,.0f} MiB over the loaded model and texts)", flush=True)
    return rows


def train_rows(data_dir, sizes):
    from skbert import BertTextClassifier

    texts, labels = sst2(data_dir, "train")
    order = np.random.default_rng(0).permutation(len(texts))
    rows = []
    BertTextClassifier(max_iter=1, random_state=0).fit(texts[:32], labels[:32])  # warm-up
    for n in sizes:
        X, y = [texts[i] for i in order[:n]], labels[order[:n]]
        start = time.perf_counter()
        BertTextClassifier(max_iter=1, random_state=0).fit(X, y)
        seconds = time.perf_counter() - start
        rows.append({"texts": n, "seconds": seconds, "texts_per_s": n / seconds})
        print(f"  fit 1 epoch on {n:>5,} texts: {seconds:6.1f} s ({n / seconds:.1f} texts/s)",
              flush=True)
    return rows


def plot(results, path):
    """Throughput and memory against texts predicted; training time against texts."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save

    fig, (speed, memory, train) = figure([2.0, 2.0, 2.2])
    sizes = [r["texts"] for r in results["predict"]]
    speed.plot(sizes, [r["tokens_per_s"] for r in results["predict"]], "o-", color=BLUE)
    speed.set_xscale("log")
    speed.set_ylim(0, max(r["tokens_per_s"] for r in results["predict"]) * 1.25)
    speed.set_ylabel("real tokens/s")
    speed.set_title("predict_proba throughput")
    memory.plot(sizes, [r["peak_rss_mib"] for r in results["predict"]], "o-", color=ORANGE,
                label="peak RSS")
    memory.plot(sizes, [r["rss_before_mib"] for r in results["predict"]], "o--", color=BLUE,
                label="model and texts loaded")
    memory.set_xscale("log")
    memory.set_ylim(0, max(r["peak_rss_mib"] for r in results["predict"]) * 1.25)
    memory.set_ylabel("MiB")
    memory.set_xlabel("texts predicted")
    memory.legend(loc="lower right")
    for ax in (speed, memory):
        ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
        ax.grid(alpha=0.3)
    n = [r["texts"] for r in results["train"]]
    train.plot(n, [r["seconds"] for r in results["train"]], "o-", color=BLUE)
    train.set_xlim(0, max(n) * 1.05)
    train.set_ylim(0, max(r["seconds"] for r in results["train"]) * 1.2)
    train.set_xlabel("training texts (1 epoch)")
    train.set_ylabel("fit seconds")
    train.set_title("fit time")
    train.grid(alpha=0.3)
    save(fig, path, "Cost as work grows (SST-2, default model)", cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--out", default=HERE / "results" / "bench_scaling.json")
    parser.add_argument("--predict-sizes", type=int, nargs="+", default=PREDICT_SIZES)
    parser.add_argument("--train-sizes", type=int, nargs="+", default=TRAIN_SIZES)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    require(args.data_dir)
    if args.child:
        return child(args.model, args.data_dir, args.child)
    import skops.io as sio
    import torch

    from skbert import BertTextClassifier

    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    texts, labels = sst2(args.data_dir, "train")
    clf = BertTextClassifier(max_iter=1, random_state=0).fit(texts[:64], labels[:64])
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "model.skops"
        sio.dump(clf, model)
        predict = predict_rows(args.data_dir, model, args.predict_sizes)
    train = train_rows(args.data_dir, args.train_sizes)
    results = {"cpu": cpu_description(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "predict": predict, "train": train}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))
    first, last = predict[0], predict[-1]
    print(f"\nthroughput at {last['texts']:,} / at {first['texts']:,} texts: "
          f"{last['tokens_per_s'] / first['tokens_per_s']:.2f}x; peak growth "
          f"{first['peak_growth_mib']:,.0f} -> {last['peak_growth_mib']:,.0f} MiB")
    per_text = [r["seconds"] / r["texts"] for r in train]
    print(f"fit seconds per text from {train[0]['texts']} to {train[-1]['texts']} texts: "
          f"{per_text[0] * 1000:.1f} -> {per_text[-1] * 1000:.1f} ms")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
