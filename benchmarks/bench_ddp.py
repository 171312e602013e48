"""What data-parallel training costs: one process against two launched by torchrun.

Fine-tunes the default model for one epoch on an SST-2 training slice, first in this
process (all cores), then in two CPU processes (gloo, one core each) started with
``python -m torch.distributed.run --nproc-per-node=2``, which is what ``torchrun`` and
``accelerate launch`` do. Prints samples/s of each and their dev accuracy, and writes
benchmarks/results/bench_ddp.json. On one machine with 2 cores two processes cannot be
faster than one; the figure is the overhead of the gradient all-reduce, which GPUs with
NCCL make small. Run it alone.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2, subsample

from skbert import BertTextClassifier

PARAMS = dict(learning_rate=5e-5, max_iter=1, batch_size=32, random_state=0, device="cpu")


def train(data_dir, n_train):
    """Fit on the slice; return (seconds, dev accuracy, world size)."""
    import torch.distributed as dist

    X, y = subsample(*sst2(data_dir, "train"), n_train)
    X_dev, y_dev = sst2(data_dir, "dev")
    start = time.perf_counter()
    clf = BertTextClassifier(**PARAMS).fit(X, y)
    seconds = time.perf_counter() - start
    world = dist.get_world_size() if dist.is_initialized() else 1
    return seconds, clf.score(X_dev, y_dev), world


def plot(results, path):
    """Training samples per second of one process and of torchrun, from 0."""
    from _plot import BLUE, ORANGE, cpu_of, figure, hbars, save

    rows = results["rows"]
    base = rows[0]["samples_per_s"]
    labels = [r["setup"].replace("torchrun: ", "torchrun:\n").replace(" (gloo)", ", gloo")
              for r in rows]
    fig, (ax,) = figure([0.6 * len(rows) + 1.0])
    hbars(ax, labels, [r["samples_per_s"] for r in rows],
          [ORANGE if r["setup"].startswith("torchrun") else BLUE for r in rows],
          [f"{r['samples_per_s']:.1f} ({r['samples_per_s'] / base:.2f}x), "
           f"dev acc. {r['dev_accuracy']:.3f}" for r in rows],
          xlabel="training samples per second (1 epoch)")
    save(fig, path, f"Data-parallel training on the CPU:\n{results['n_train']:,} SST-2 texts, "
         "1 epoch, batch 32", cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=1024)
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # JSON output path of a rank
    parser.add_argument("--out", default=Path(__file__).parent / "results" / "bench_ddp.json")
    args = parser.parse_args(argv)
    require(args.data_dir)
    if args.worker:
        seconds, accuracy, world = train(args.data_dir, args.n_train)
        if int(os.environ["RANK"]) == 0:
            Path(args.worker).write_text(json.dumps([seconds, accuracy, world]))
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
        return
    rows = []
    seconds, accuracy, _ = train(args.data_dir, args.n_train)
    rows.append({"setup": f"1 process x {torch.get_num_threads()} threads", "seconds": seconds,
                 "samples_per_s": args.n_train / seconds, "dev_accuracy": accuracy})
    worker_out = Path(args.out).with_suffix(".rank0.tmp")
    subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         __file__, "--data-dir", str(args.data_dir), "--n-train", str(args.n_train),
         "--worker", str(worker_out)],
        check=True, env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    seconds, accuracy, world = json.loads(worker_out.read_text())
    worker_out.unlink()
    rows.append({"setup": f"torchrun: {world} processes x 1 thread (gloo)", "seconds": seconds,
                 "samples_per_s": args.n_train / seconds, "dev_accuracy": accuracy})
    print(f"\n{cpu_description()}; {args.n_train} SST-2 training texts, 1 epoch, batch 32\n")
    print(f"| {'setup':<40} | fit s | samples/s | dev accuracy |")
    print(f"|{'-' * 42}|-------|-----------|--------------|")
    for r in rows:
        print(f"| {r['setup']:<40} | {r['seconds']:>5.0f} | {r['samples_per_s']:>9.1f} | "
              f"{r['dev_accuracy']:>12.3f} |")
    results = {"cpu": cpu_description(), "n_train": args.n_train, "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.out}")
    plot(results, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
