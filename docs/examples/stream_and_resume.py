"""Stream a CSV larger than memory through partial_fit, checkpoint, crash, and resume.

The script writes a CSV of bundled SST-2 sentences (or takes yours), reads it chunk by
chunk with ``skbert.read_chunks``, and trains one ``partial_fit`` pass per chunk with
checkpoints in a folder. Halfway it stops, as a crashed process would, and a new
estimator continues from the newest checkpoint with ``BertTextClassifier.resume``,
skipping the chunks the checkpoint already counts::

    python stream_and_resume.py
    python stream_and_resume.py big.csv --text-column body --label-column queue \\
        --classes billing bug other --chunksize 10000 --workdir run1

Nothing is downloaded: the default model ships with skbert.
"""

import argparse
import math
import tempfile
from pathlib import Path

import pandas as pd

from skbert import BertTextClassifier, read_chunks


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", nargs="?", help="a shuffled CSV; default: one written from "
                        "the bundled SST-2 sample")
    parser.add_argument("--text-column", default="text")
    parser.add_argument("--label-column", default="label")
    parser.add_argument("--classes", nargs="+", default=["negative", "positive"])
    parser.add_argument("--n-rows", type=int, default=640, help="rows of the SST-2 CSV")
    parser.add_argument("--chunksize", type=int, default=160)
    parser.add_argument("--crash-after", type=int, default=2, help="chunks before the crash")
    parser.add_argument("--checkpoint-every", type=int, default=None, help="optimizer "
                        "steps between checkpoints; default: two chunks' worth")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--model", default=None, help="model id or folder; default: skbert's")
    parser.add_argument("--n-test", type=int, default=None, help="at most this many of the "
                        "872 SST-2 dev sentences to score")
    parser.add_argument("--workdir", default=None, help="folder for the CSV and checkpoints "
                        "(default: a temporary one)")
    args = parser.parse_args(argv)

    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="skbert-stream-"))
    workdir.mkdir(parents=True, exist_ok=True)
    path, X_test, y_test = args.csv, None, None
    if path is None:
        from skbert.datasets import load_sst2_sample

        X_train, y_train, X_test, y_test = load_sst2_sample()
        X_test, y_test = X_test[:args.n_test], y_test[:args.n_test]
        path = workdir / "train.csv"
        pd.DataFrame({args.text_column: X_train[:args.n_rows],
                      args.label_column: y_train[:args.n_rows]}).to_csv(path, index=False)
    n_rows = sum(len(y) for _, y in read_chunks(path, args.text_column, args.label_column,
                                                chunksize=args.chunksize))
    n_chunks = math.ceil(n_rows / args.chunksize)
    # max_steps: the whole stream's optimizer steps, so that the learning rate decays to
    # 0 at its end as in fit (one step per batch for chunks of up to 50 batches).
    steps_per_chunk = math.ceil(args.chunksize / args.batch_size)
    checkpoint_dir = workdir / "ckpt"
    params = dict(learning_rate=1e-4, batch_size=args.batch_size, max_length=args.max_length,
                  max_steps=n_chunks * steps_per_chunk, checkpoint_dir=checkpoint_dir,
                  checkpoint_every=args.checkpoint_every or 2 * steps_per_chunk,
                  keep_checkpoints=2, random_state=0)
    if args.model:
        params["model_name_or_path"] = args.model
    print(f"{path}: {n_rows} rows in {n_chunks} chunks of {args.chunksize}; "
          f"max_steps={params['max_steps']}, a checkpoint every "
          f"{params['checkpoint_every']} steps")

    def chunks():
        return read_chunks(path, args.text_column, args.label_column, chunksize=args.chunksize)

    stream = BertTextClassifier(**params)
    for i, (X, y) in enumerate(chunks()):
        if i == args.crash_after:
            print(f"-- crash before chunk {i + 1}: the process dies, its memory is lost --")
            break
        stream.partial_fit(X, y, classes=args.classes)
        print(f"chunk {i + 1}: loss {stream.loss_curve_[-1]:.4f}, "
              f"checkpoints {sorted(p.name for p in checkpoint_dir.glob('ckpt-*'))}")
    del stream

    resumed = BertTextClassifier.resume(checkpoint_dir)
    print(f"resumed from the newest checkpoint: n_iter_={resumed.n_iter_} chunks, "
          f"{resumed.n_samples_seen_} texts seen")
    for i, (X, y) in enumerate(chunks()):
        if i < resumed.n_iter_:  # chunks the checkpoint already counts
            continue
        resumed.partial_fit(X, y)
        print(f"chunk {i + 1}: loss {resumed.loss_curve_[-1]:.4f}")
    final = resumed.save_checkpoint(checkpoint_dir)  # one now, whatever checkpoint_every says
    print(f"done: n_iter_={resumed.n_iter_}, {resumed.n_samples_seen_} texts seen; "
          f"saved {Path(final).name}")
    if X_test is not None:
        print(f"accuracy on {len(X_test)} SST-2 dev sentences: "
              f"{resumed.score(X_test, y_test):.3f}")


if __name__ == "__main__":
    main()
