"""One GPU check: the gpu-marked tests, prediction and training speed, peak memory.

Made for one H100/H200: 185 s on an H200 (2026-12-04); ``--device cpu`` runs the same
steps, smaller, to show the script works where no GPU is. In one process, on the default
model (all-MiniLM-L6-v2), it runs and prints one table:

1. ``pytest -m gpu`` (the CUDA tests; they skip without CUDA) in a subprocess;
2. the device's measured bf16 matmul rate (the tensor-core limit this model can reach:
   FLOPs of its Linear layers per token), beside the nominal dense bf16 peak of known
   GPUs;
3. prediction in real tokens/s, end to end (tokenization included), on SST-2 dev
   (replicated to ``--predict-texts``) and AG News: the transformers pipeline
   (batch 64, bf16 weights on CUDA) against skbert's ``predict_proba`` with
   ``inference_dtype="auto"`` (bf16 autocast on CUDA), with each as a share of the
   measured and the nominal limit, and skbert's peak GPU memory;
4. training on ``--train-texts`` SST-2 texts, 1 epoch, batch 32, lr 5e-5: the
   transformers Trainer (``bf16=True`` on CUDA) against skbert (``training_dtype=
   "auto"``: bf16 autocast on CUDA), samples/s, SST-2 dev accuracy and peak memory.

Writes benchmarks/results/gpu_check_<device>.json. Needs the bench extra (accelerate, for
the Trainer). The datasets folder is optional: without it the bundled SST-2 sample is
used and AG News is skipped.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _data import DEFAULT_DATA_DIR, ag_news, cpu_description, sst2, subsample

from skbert import BertTextClassifier
from skbert._pretrained import DEFAULT_MODEL, quiet_transformers, resolve_model_path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).parent / "results"
# Nominal dense bf16 tensor-core peaks (TFLOP/s, SXM parts, no sparsity), by name.
NOMINAL_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0,
                       "L4": 121.0, "A10": 125.0}


def device_description(device):
    if device.type != "cuda":
        return cpu_description()
    props = torch.cuda.get_device_properties(device)
    return (f"{props.name}, {props.total_memory / 2**30:.0f} GiB, capability "
            f"{props.major}.{props.minor}, torch {torch.__version__}, CUDA {torch.version.cuda}")


def nominal_tflops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in NOMINAL_BF16_TFLOPS.items() if k in name), None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_mib(device):
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def reset_memory(device):
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def run_gpu_tests():
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-rs", "-p",
                           "no:cacheprovider", str(ROOT / "tests")],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    lines = (proc.stdout + proc.stderr).strip().splitlines() or ["(no output)"]
    if proc.returncode != 0:  # what failed, before the benchmarks run
        print("\n".join(lines[-60:]), flush=True)
    summary = (proc.stdout.strip().splitlines() or lines)[-1]  # pytest's last line
    return dict(returncode=proc.returncode, summary=summary,
                output_tail="\n".join(lines[-200:]), seconds=time.perf_counter() - start)


def matmul_tflops(device):
    """The best matmul rate of the device in the precision "auto" predicts with (bf16 on
    CUDA and on CPUs where bf16 is measured faster, else fp32), in TFLOP/s."""
    from skbert._device import cpu_bf16_pays

    bf16 = device.type == "cuda" or cpu_bf16_pays()
    dtype = torch.bfloat16 if bf16 else torch.float32
    size = 8192 if device.type == "cuda" else 1024
    a = torch.randn(size, size, dtype=dtype, device=device)
    b = torch.randn(size, size, dtype=dtype, device=device)
    best = float("inf")
    for _ in range(4):
        sync(device)
        start = time.perf_counter()
        for _ in range(10):
            a @ b
        sync(device)
        best = min(best, (time.perf_counter() - start) / 10)
    return 2 * size**3 / best / 1e12


def flops_per_token(module):
    """Matmul FLOPs per token of the model's Linear layers (attention scores excluded)."""
    return 2 * sum(m.weight.numel() for m in module.modules()
                   if isinstance(m, torch.nn.Linear))


def best_seconds(fn, device, repeats):
    fn()  # warm-up: kernels, allocator, autotuning
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def bench_predict(name, texts, clf, device, repeats, limits):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    path = resolve_model_path(DEFAULT_MODEL)
    tokenizer = AutoTokenizer.from_pretrained(path)
    real_tokens = sum(len(ids) for ids in
                      tokenizer(texts, truncation=True, max_length=128)["input_ids"])
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    with quiet_transformers():
        model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2,
                                                                   dtype=dtype)
        pipe = pipeline("text-classification", model=model, tokenizer=tokenizer,
                        device=device, batch_size=64)
    rows = []
    seconds = best_seconds(lambda: pipe(texts, truncation=True, max_length=128), device,
                           repeats)
    rows.append(dict(path="transformers pipeline, batch 64", seconds=seconds))
    pipe = model = None  # free the pipeline's copy before measuring skbert's memory
    reset_memory(device)
    seconds = best_seconds(lambda: clf.predict_proba(texts), device, repeats)
    rows.append(dict(path='skbert predict_proba, "auto"', seconds=seconds,
                     peak_mib=peak_memory_mib(device)))
    for row in rows:
        row.update(dataset=name, texts=len(texts), real_tokens=real_tokens,
                   tokens_per_s=real_tokens / row["seconds"])
        row["measured_share"] = row["tokens_per_s"] / limits["measured_tokens_per_s"]
        if limits.get("nominal_tokens_per_s"):
            row["nominal_share"] = row["tokens_per_s"] / limits["nominal_tokens_per_s"]
    rows[1]["vs_pipeline"] = rows[1]["tokens_per_s"] / rows[0]["tokens_per_s"]
    return rows


def run_trainer(X, y, X_dev, y_dev, device, workdir):
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
    enc = tokenizer(X, truncation=True, max_length=128)
    train = [{"input_ids": ids, "attention_mask": m, "labels": int(label)}
             for ids, m, label in zip(enc["input_ids"], enc["attention_mask"], y, strict=True)]
    cuda = device.type == "cuda"
    args = TrainingArguments(
        output_dir=str(workdir), per_device_train_batch_size=32, learning_rate=5e-5,
        num_train_epochs=1, warmup_steps=0.1, lr_scheduler_type="linear", weight_decay=0.01,
        max_grad_norm=1.0, use_cpu=not cuda, bf16=cuda, report_to=[], save_strategy="no",
        eval_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      data_collator=DataCollatorWithPadding(tokenizer))
    reset_memory(device)
    sync(device)
    start = time.perf_counter()
    trainer.train()
    sync(device)
    seconds = time.perf_counter() - start
    peak = peak_memory_mib(device)
    model.eval()
    dev = tokenizer(X_dev, truncation=True, max_length=128, padding=True, return_tensors="pt")
    with torch.inference_mode():
        pred = model(**{k: v.to(model.device) for k, v in dev.items()}).logits.argmax(1)
    return dict(path="transformers Trainer" + (", bf16=True" if cuda else ", fp32"),
                seconds=seconds, peak_mib=peak,
                dev_accuracy=float(np.mean(pred.cpu().numpy() == y_dev)))


def run_skbert_fit(X, y, X_dev, y_dev, device):
    clf = BertTextClassifier(batch_size=32, learning_rate=5e-5, max_iter=1, max_length=128,
                             device=str(device), random_state=0)
    reset_memory(device)
    sync(device)
    start = time.perf_counter()
    clf.fit(X, y)
    sync(device)
    seconds = time.perf_counter() - start  # includes loading and tokenizing
    peak = peak_memory_mib(device)
    return clf, dict(path='skbert fit, training_dtype="auto"', seconds=seconds,
                     peak_mib=peak, dev_accuracy=float(clf.score(X_dev, y_dev)))


def load_texts(data_dir):
    """SST-2 train and dev (and AG News texts) from the datasets folder, else the
    bundled SST-2 sample and no AG News."""
    if Path(data_dir).is_dir():
        X, y = sst2(data_dir, "train")
        X_dev, y_dev = sst2(data_dir, "dev")
        return X, y, X_dev, y_dev, ag_news(data_dir)[0]
    from skbert.datasets import load_sst2_sample

    X, y, X_dev, y_dev = load_sst2_sample()
    classes = np.unique(y)
    return X, np.searchsorted(classes, y), X_dev, np.searchsorted(classes, y_dev), None


def print_table(result):
    print(f"\nGPU check on {result['device']}")
    tests = result["tests"]
    print(f"pytest -m gpu: {tests['summary']} (exit {tests['returncode']}, "
          f"{tests['seconds']:.0f} s)")
    limits = result["limits"]
    nominal = limits.get("nominal_tflops")
    print(f"matmul: measured {limits['measured_tflops']:.1f} TFLOP/s"
          + (f", nominal bf16 {nominal:.0f}" if nominal else "")
          + f"; model {limits['flops_per_token'] / 1e6:.1f} MFLOP/token -> limit "
          f"{limits['measured_tokens_per_s']:,.0f} tokens/s (measured)")
    print(f"\n| {'step':<44} | {'tokens/s':>10} | {'samples/s':>9} | {'x pipeline/Trainer':>18} "
          f"| {'% measured':>10} | {'% nominal':>9} | {'peak MiB':>8} | {'dev acc':>7} |")
    print("|" + "|".join("-" * (w + 2) for w in (44, 10, 9, 18, 10, 9, 8, 7)) + "|")

    def cell(value, fmt):
        return "-" if value is None else format(value, fmt)

    for r in result["predict"]:
        print(f"| {r['dataset'] + ': ' + r['path']:<44} | {r['tokens_per_s']:>10,.0f} | "
              f"{r['texts'] / r['seconds']:>9,.0f} | {cell(r.get('vs_pipeline'), '.2f'):>18} | "
              f"{100 * r['measured_share']:>10.2f} | "
              f"{cell(r.get('nominal_share') and 100 * r['nominal_share'], '.2f'):>9} | "
              f"{cell(r.get('peak_mib'), ',.0f'):>8} | {'-':>7} |")
    for r in result["train"]:
        print(f"| {'train: ' + r['path']:<44} | {'-':>10} | "
              f"{r['texts'] / r['seconds']:>9,.1f} | {cell(r.get('vs_trainer'), '.2f'):>18} | "
              f"{'-':>10} | {'-':>9} | {cell(r.get('peak_mib'), ',.0f'):>8} | "
              f"{r['dev_accuracy']:>7.3f} |")


def plot(results, path):
    """Prediction tokens/s against the pipeline and training samples/s against the
    Trainer, from 0, with each ratio, share of the measured matmul limit and accuracy."""
    from _plot import BLUE, GREY, figure, hbars, save

    def short(path):
        return (path.replace("transformers ", "").replace(" predict_proba", "")
                .replace(" fit", "").replace("training_dtype=", ""))

    predict, train = results["predict"], results["train"]
    limit = results["limits"]["measured_tokens_per_s"]
    fig, (speed, fit) = figure([0.4 * len(predict) + 1.4, 0.45 * len(train) + 1.1])
    hbars(speed, [f"{r['dataset']}: {short(r['path']).split(',')[0]}" for r in predict],
          [r["tokens_per_s"] for r in predict],
          [BLUE if r["path"].startswith("skbert") else GREY for r in predict],
          [(f"{r['tokens_per_s']:,.0f} ({r['vs_pipeline']:.2f}x), " if "vs_pipeline" in r
            else f"{r['tokens_per_s']:,.0f}, ") + f"{r['measured_share']:.1%} of limit"
           for r in predict],
          xlabel=f"real tokens/s (limit: measured matmul rate,\n{limit:,.0f} tokens/s)")
    speed.set_title('skbert predict_proba, "auto", against the transformers\n'
                    f"pipeline, batch 64 ({predict[0]['texts']:,} texts each)", fontsize="medium")
    hbars(fit, [short(r["path"]) for r in train], [r["texts"] / r["seconds"] for r in train],
          [BLUE if r["path"].startswith("skbert") else GREY for r in train],
          [f"{r['texts'] / r['seconds']:.1f}"
           + (f" ({r['vs_trainer']:.2f}x)" if "vs_trainer" in r else "")
           + f", dev acc. {r['dev_accuracy']:.3f}" for r in train],
          xlabel="training samples/s (1 epoch, batch 32)")
    fit.set_title(f"fit against the Trainer ({train[0]['texts']:,} SST-2 texts)",
                  fontsize="medium")
    gpu = results.get("device_type", "cpu") != "cpu"
    save(fig, path, "GPU check, default model" + ("" if gpu else "\n(run on the CPU)"),
         results["device"], kind="GPU" if gpu else "CPU")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default), cuda:N or cpu")
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--predict-texts", type=int, default=None,
                        help="SST-2 dev replicated to this many texts (default: 20,000 on "
                             "CUDA, 872 on the CPU)")
    parser.add_argument("--train-texts", type=int, default=None,
                        help="SST-2 training texts (default: 20,000 on CUDA, 300 on the CPU)")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--skip-tests", action="store_true")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("No CUDA device here; run with --device cpu to check the script.")
    cuda = device.type == "cuda"
    n_predict = args.predict_texts or (20_000 if cuda else 872)
    n_train = args.train_texts or (20_000 if cuda else 300)
    repeats = args.repeats or (3 if cuda else 1)
    start = time.perf_counter()

    result = dict(device=device_description(device), device_type=device.type)
    print(f"device: {result['device']}", flush=True)
    result["tests"] = (dict(returncode=None, summary="skipped (--skip-tests)", seconds=0.0)
                       if args.skip_tests else run_gpu_tests())
    print(f"pytest -m gpu: {result['tests']['summary']}", flush=True)

    X, y, X_dev, y_dev, ag = load_texts(args.data_dir)
    X_train, y_train = subsample(X, y, n_train, seed=0)
    with tempfile.TemporaryDirectory() as workdir:
        trainer_row = run_trainer(X_train, y_train, X_dev, y_dev, device, workdir)
    print(f"Trainer: {trainer_row['seconds']:.1f} s", flush=True)
    clf, skbert_row = run_skbert_fit(X_train, y_train, X_dev, y_dev, device)
    print(f"skbert fit: {skbert_row['seconds']:.1f} s", flush=True)
    skbert_row["vs_trainer"] = trainer_row["seconds"] / skbert_row["seconds"]
    for row in (trainer_row, skbert_row):
        row["texts"] = len(X_train)
    result["train"] = [trainer_row, skbert_row]

    measured = matmul_tflops(device)
    per_token = flops_per_token(clf.model_)
    limits = dict(measured_tflops=measured, flops_per_token=per_token,
                  measured_tokens_per_s=measured * 1e12 / per_token)
    if nominal_tflops(device):
        limits.update(nominal_tflops=nominal_tflops(device),
                      nominal_tokens_per_s=nominal_tflops(device) * 1e12 / per_token)
    result["limits"] = limits
    sets = [("SST-2 dev", (X_dev * (-(-n_predict // len(X_dev))))[:n_predict])]
    if ag is not None:
        sets.append(("AG News", ag[: min(len(ag), n_predict)]))
    result["predict"] = []
    for name, texts in sets:
        result["predict"] += bench_predict(name, texts, clf, device, repeats, limits)
        print(f"predict {name}: done", flush=True)
    result["seconds"] = time.perf_counter() - start
    print_table(result)
    print(f"\ntotal {result['seconds']:.0f} s")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"gpu_check_{device.type}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    plot(result, out.with_suffix(".png"))


if __name__ == "__main__":
    main()
