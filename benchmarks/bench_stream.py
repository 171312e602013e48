"""Memory of a long partial_fit stream: peak RSS stays flat from chunk to chunk.

Builds a Parquet corpus of at least 200,000 rows by sampling SST-2 train with
replacement (shuffled, so chunks are not single-class), then streams it through
``read_chunks`` + ``partial_fit`` with a tiny BERT (2 layers, hidden size 32) that uses
the default model's real tokenizer, and prints peak and current RSS after each chunk.
Pass: the peak after the last chunk is within 10% of the peak after the first.
Linux only (reads /proc/self/status). Run it alone.
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _data import DEFAULT_DATA_DIR, require, sst2

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
        peaks = []
        for i, (X, y) in enumerate(read_chunks(data, chunksize=args.chunksize)):
            start = time.perf_counter()
            clf.partial_fit(X, y, classes=[0, 1])
            peak, now = rss_mib()
            peaks.append(peak)
            print(f"| {i + 1:>5} | {peak:>12.0f} | {now:>8.0f} | {clf.loss_curve_[-1]:>6.3f} | "
                  f"{time.perf_counter() - start:>5.1f} |", flush=True)
    growth = peaks[-1] / peaks[0] - 1
    print(f"\npeak RSS after chunk 1: {peaks[0]:.0f} MiB; after chunk {len(peaks)}: "
          f"{peaks[-1]:.0f} MiB; growth {growth:+.1%} ({'PASS' if growth <= 0.10 else 'FAIL'})")


if __name__ == "__main__":
    main()
