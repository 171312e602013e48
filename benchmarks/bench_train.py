"""Training speed: skbert against the transformers Trainer, same model, data and settings.

In one process: the default model (all-MiniLM-L6-v2), an 8,000-text slice of SST-2
train, batch 32, learning rate 5e-5, 1 epoch, 10% warmup then linear decay,
max_length 128, on the CPU. The Trainer runs in its default fp32 and, where the CPU has
native bf16, once more with ``bf16=True``; skbert with its default
``training_dtype="auto"`` (bf16 where the probe finds bf16 products faster) and, where
the CPU has native bf16, in the other precision. The Trainer gets
AutoModelForSequenceClassification with DataCollatorWithPadding (per-batch padding,
random batches); skbert its defaults (length-grouped batches). Ratios are to the
default Trainer. skbert's time includes
loading the model and tokenizing; the Trainer's does not. Prints samples/s, real
tokens/s and SST-2 dev accuracy, and the ratios to the Trainer. Needs the bench extra
(accelerate, for the Trainer). Writes benchmarks/results/bench_train.json (``--out``) and a
chart beside it (``plot``; ``plots.py`` redraws it from the JSON). Run it alone.
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _data import DEFAULT_DATA_DIR, cpu_description, require, sst2, subsample

from skbert import BertTextClassifier
from skbert._device import cpu_has_native_bf16
from skbert._device import training_dtype as resolve_training_dtype
from skbert._pretrained import DEFAULT_MODEL, quiet_transformers, resolve_model_path

SETTINGS = dict(batch_size=32, learning_rate=5e-5, epochs=1, warmup=0.1, max_length=128)


def run_trainer(X, y, X_dev, y_dev, workdir, bf16=False):
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainingArguments,
    )

    path = resolve_model_path(DEFAULT_MODEL)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        torch.manual_seed(0)
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    enc = tokenizer(X, truncation=True, max_length=SETTINGS["max_length"])
    train = [{"input_ids": ids, "attention_mask": m, "labels": int(label)}
             for ids, m, label in zip(enc["input_ids"], enc["attention_mask"], y, strict=True)]
    args = TrainingArguments(
        output_dir=str(workdir), per_device_train_batch_size=SETTINGS["batch_size"],
        learning_rate=SETTINGS["learning_rate"], num_train_epochs=SETTINGS["epochs"],
        warmup_steps=SETTINGS["warmup"], lr_scheduler_type="linear", weight_decay=0.01,
        max_grad_norm=1.0, use_cpu=True, report_to=[], save_strategy="no",
        eval_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
        dataloader_num_workers=0, bf16=bf16,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer))
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    model.eval()
    dev = tokenizer(X_dev, truncation=True, max_length=SETTINGS["max_length"], padding=True,
                    return_tensors="pt")
    with torch.inference_mode():  # in fp32, as skbert's (inference_dtype="float32")
        pred = model.float()(**dev).logits.argmax(1).numpy()
    return seconds, float(np.mean(pred == y_dev)), sum(map(len, enc["input_ids"]))


def run_skbert(X, y, X_dev, y_dev, training_dtype="auto"):
    clf = BertTextClassifier(
        batch_size=SETTINGS["batch_size"], learning_rate=SETTINGS["learning_rate"],
        max_iter=SETTINGS["epochs"], warmup_fraction=SETTINGS["warmup"],
        max_length=SETTINGS["max_length"], device="cpu", random_state=0,
        training_dtype=training_dtype, inference_dtype="float32",
    )
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start  # includes loading and tokenizing
    return seconds, clf.score(X_dev, y_dev)


def plot(results, path):
    """Samples per second of each path, from 0, with the ratio to the Trainer."""
    from _plot import BLUE, GREY, ORANGE, cpu_of, figure, hbars, save

    rows = results["rows"]
    labels = [r["path"].replace("transformers Trainer", "Trainer").replace("float32", "fp32")
              .replace("bfloat16", "bf16 autocast") for r in rows]
    colors = [GREY if r["path"].startswith("transformers") else
              ORANGE if "bfloat16" in r["path"] else BLUE for r in rows]
    fig, (ax,) = figure([0.55 * len(rows) + 0.9])
    hbars(ax, labels, [r["samples_per_s"] for r in rows], colors,
          [f"{r['samples_per_s']:.1f} ({r['vs_trainer']:.2f}x), "
           f"dev acc. {r['dev_accuracy']:.3f}" for r in rows],
          xlabel="training samples per second")
    save(fig, path, f"Training speed: {results['n_train']:,} SST-2 texts, 1 epoch",
         cpu_of(results))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-train", type=int, default=8000)
    parser.add_argument("--no-trainer-bf16", action="store_true",
                        help="leave out the Trainer with bf16=True (run where bf16 is native)")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: 1,000 training texts")
    parser.add_argument("--out", default=None,
                        help="JSON to write (default: results/bench_train.json, or "
                             "bench_train_quick.json with --quick)")
    args = parser.parse_args(argv)
    args.out = args.out or Path(__file__).parent / "results" / (
        "bench_train_quick.json" if args.quick else "bench_train.json")
    if args.quick:
        args.n_train = min(args.n_train, 1000)
    require(args.data_dir)
    X, y = subsample(*sst2(args.data_dir, "train"), args.n_train, seed=0)
    X_dev, y_dev = sst2(args.data_dir, "dev")
    with tempfile.TemporaryDirectory() as workdir:
        trainer_s, trainer_acc, tokens = run_trainer(X, y, X_dev, y_dev, workdir)
    rows = [("transformers Trainer", trainer_s, trainer_acc)]
    if cpu_has_native_bf16() and not args.no_trainer_bf16:
        with tempfile.TemporaryDirectory() as workdir:
            seconds, acc, _ = run_trainer(X, y, X_dev, y_dev, workdir, bf16=True)
        rows.append(("transformers Trainer, bf16=True", seconds, acc))
    # "auto" (the default) takes bf16 where the probe finds bf16 products faster; the
    # other precision runs too, where the CPU has native bf16 (emulated, it is slow).
    auto = "bfloat16" if resolve_training_dtype("auto", torch.device("cpu")) else "float32"
    rows.append((f"skbert, auto = {auto}", *run_skbert(X, y, X_dev, y_dev, "auto")))
    if cpu_has_native_bf16():
        other = "float32" if auto == "bfloat16" else "bfloat16"
        rows.append((f"skbert, {other}", *run_skbert(X, y, X_dev, y_dev, other)))
    print(cpu_description())
    print(f"{len(X)} SST-2 training texts ({tokens} real tokens), {SETTINGS}")
    print(f"| {'path':<31} | {'samples/s':>9} | {'tokens/s':>8} | {'dev accuracy':>12} |")
    print(f"|{'-' * 33}|{'-' * 11}|{'-' * 10}|{'-' * 14}|")
    for name, seconds, acc in rows:
        print(f"| {name:<31} | {len(X) / seconds:>9.1f} | {tokens / seconds:>8.0f} | "
              f"{acc:>12.3f} |")
    for name, seconds, acc in rows[1:]:
        print(f"{name} / Trainer (default, fp32) samples/s: {trainer_s / seconds:.2f}x; "
              f"dev accuracy difference {acc - trainer_acc:+.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    results = {
        "cpu": cpu_description(), "settings": SETTINGS, "n_train": len(X), "real_tokens": tokens,
        "rows": [{"path": n, "seconds": s_, "samples_per_s": len(X) / s_,
                  "dev_accuracy": a, "vs_trainer": trainer_s / s_} for n, s_, a in rows],
    }
    Path(args.out).write_text(json.dumps(results, indent=2))
    plot(results, Path(args.out).with_suffix(".png"))


if __name__ == "__main__":
    main()
