"""Memory of a long partial_fit stream: peak RSS stays flat from chunk to chunk.

Builds a Parquet corpus of at least 200,000 rows by sampling SST-2 train with
replacement (shuffled, so chunks are not single-class), then streams it through
``read_chunks`` + ``partial_fit`` with a tiny BERT (2 layers, hidden size 32) that uses
the default model's real tokenizer, and prints peak and current RSS after each chunk.
Pass: the peak after the last chunk is within 10% of the peak after the first.
Writes benchmarks/results/bench_stream.json and a chart beside it (``plot``; ``plots.py``
redraws it from the JSON). Linux only (reads /proc/self/status). Run it alone.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2

from skbert import BertTextClassifier, read_chunks
from skbert._pretrained import DEFAULT_MODEL, load_tokenizer


def rss_mib():
    """(peak, current) resident set size of this process in MiB."""
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def tiny_model(folder):
    """A random 2-layer BERT with the default model's tokenizer, saved to ``folder``."""
    import torch
    from transformers import BertConfig, BertModel

    tokenizer = load_tokenizer(DEFAULT_MODEL)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def plot(results, path):
    """Peak and current RSS after each chunk against rows streamed, from 0 MiB, with the
    10% bound over the first chunk's peak."""
    from _plot import BLUE, GREY, ORANGE, cpu_of, figure, save

    chunks = results["chunks"]
    fig, (ax,) = figure([2.8])
    rows = [c["rows_seen"] / 1000 for c in chunks]
    peaks = [c["peak_mib"] for c in chunks]
    every = [c["chunk"] for c in chunks] == list(range(1, len(chunks) + 1))
    ax.plot(rows, peaks, "o-" if every else "o", color=BLUE, zorder=3,
            label="peak RSS" if every else "peak RSS (the run kept these chunks only)")
    if all("rss_mib" in c for c in chunks):
        ax.plot(rows, [c["rss_mib"] for c in chunks], ".-", color=ORANGE, label="current RSS")
    elif "rss_mib_range" in results:  # a run that kept only the range of its current RSS
        low, high = results["rss_mib_range"]
        ax.fill_between([rows[0], rows[-1]], low, high, color=ORANGE, alpha=0.3, lw=0,
                        label=f"current RSS, {low:.0f}-{high:.0f} MiB")
    ax.axhline(1.1 * peaks[0], color=GREY, linestyle="--", linewidth=1,
               label="first peak + 10%")
    for x, v, ha in [(rows[0], peaks[0], "left"), (rows[-1], peaks[-1], "right")]:
        ax.annotate(f"{v:.0f} MiB", (x, v), textcoords="offset points", xytext=(0, -18),
                    ha=ha, fontsize="small")
    ax.set_ylim(0, 1.3 * max(peaks))
    ax.set_xlim(0, results["rows"] / 1000 * 1.04)
    ax.set_xlabel("rows streamed (thousands)")
    ax.set_ylabel("MiB")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    save(fig, path, f"partial_fit: {results['rows']:,} rows, chunks of "
         f"{results['chunksize']:,}", cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--chunksize", type=int, default=10_000)
    args = parser.parse_args(argv)
    require(args.data_dir)
    texts, labels = sst2(args.data_dir, "train")
    rng = np.random.default_rng(0)
    rows = rng.integers(0, len(texts), size=args.rows)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "corpus.parquet"
        pd.DataFrame({"text": np.array(texts, dtype=object)[rows], "label": labels[rows]}) \
            .to_parquet(data, row_group_size=args.chunksize)
        del texts, labels, rows
        model = tiny_model(Path(tmp) / "tiny")
        clf = BertTextClassifier(str(model), learning_rate=1e-3, batch_size=64, max_length=64,
                                 device="cpu", random_state=0,
                                 max_steps=-(-args.rows // 64))
        print(f"{args.rows} rows in chunks of {args.chunksize}")
        print(f"| {'chunk':>5} | {'peak RSS MiB':>12} | {'RSS MiB':>8} | {'loss':>6} | {'s':>5} |")
        print("|-------|--------------|----------|--------|-------|")
        peaks, chunks = [], []
        for i, (X, y) in enumerate(read_chunks(data, chunksize=args.chunksize)):
            start = time.perf_counter()
            clf.partial_fit(X, y, classes=[0, 1])
            peak, now = rss_mib()
            peaks.append(peak)
            chunks.append({"chunk": i + 1, "rows_seen": (i + 1) * args.chunksize,
                           "peak_mib": peak, "rss_mib": now, "loss": clf.loss_curve_[-1],
                           "seconds": time.perf_counter() - start})
            print(f"| {i + 1:>5} | {peak:>12.0f} | {now:>8.0f} | {clf.loss_curve_[-1]:>6.3f} | "
                  f"{time.perf_counter() - start:>5.1f} |", flush=True)
    growth = peaks[-1] / peaks[0] - 1
    print(f"\npeak RSS after chunk 1: {peaks[0]:.0f} MiB; after chunk {len(peaks)}: "
          f"{peaks[-1]:.0f} MiB; growth {growth:+.1%} ({'PASS' if growth <= 0.10 else 'FAIL'})")
    results = {"cpu": cpu_description(), "rows": args.rows, "chunksize": args.chunksize,
               "growth": growth, "chunks": chunks}
    out = Path(__file__).parent / "results" / "bench_stream.json"
    out.write_text(json.dumps(results, indent=2))
    plot(results, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
