"""Prediction throughput: skbert against the usual ways of running a BERT on texts.

In one process, on the default model (all-MiniLM-L6-v2) and the same texts (SST-2 dev,
short; AG News, longer), measures real (non-pad) tokens per second of:

- the transformers text-classification pipeline, default and batch_size=64;
- padding every text to 128 in batches of 32 (fp32);
- sorting by length with dynamic padding in batches of 64, fp32 and bf16 autocast (bf16
  only on CPUs with native bf16: elsewhere it is emulated and many times slower);
- skbert's predict_proba end to end (tokenization included), fp32, "auto" precision
  (where it is not fp32, i.e. where bf16 is measured faster on this CPU), "int8" and
  the OpenVINO backend (``inference_backend="openvino"``, its default precision for the
  CPU), with its token budget swept; and the defaults (``inference_backend="auto"``:
  the fastest path measured with fp32's answers), once its probe has chosen (the probe
  runs on a first call of the texts repeated up to ``skbert._probe.PROBE_MIN_TEXTS``;
  its choice, timings and cost are printed and saved);
- the CPU serving anchors of int8 inference, on the same pre-tokenized token-sorted
  batches of 64: torch fp32, ONNX Runtime fp32 and int8 (its dynamic quantization of
  skbert's ``export_onnx`` graph), OpenVINO with its default precision for the CPU
  (bf16 where the CPU has it) on the same graph, and torch's dynamic int8 quantization
  of the Linear layers (``--no-onnx`` skips the ONNX and OpenVINO rows; the OpenVINO
  rows need the ``openvino`` package).

Each path runs ``--repeats`` times after a warm-up; the table shows the median and the
spread (slowest-fastest run), the ratio of skbert's best path to the fastest peer, and
of "auto" to the fastest peer that gives fp32's answers (int8 excluded).

``--profile`` prints instead where skbert's fp32 prediction time goes on each set
(tokenization, length sorting and padding, the network, softmax and order; and the
network's operators from ``torch.profiler``): relative shares, meaningful even on a
busy machine, unlike the absolute times.

Prints one table per dataset with the ratio to the pipeline's default and to a measured
matmul peak (the best GFLOP/s of this CPU in fp32 and, where it is native, bf16, divided
by the model's FLOPs per token), and writes
JSON to benchmarks/results/bench_predict.json. Run it alone: the figures mean nothing
beside another busy process.
"""

import argparse
import copy
import json
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _data import DEFAULT_DATA_DIR, ag_news, cpu_description, require, sst2

from skbert import BertTextClassifier
from skbert._device import cpu_bf16_pays, cpu_has_native_bf16
from skbert._pretrained import DEFAULT_MODEL, quiet_transformers, resolve_model_path

NATIVE_BF16 = cpu_has_native_bf16()
try:
    import openvino  # noqa: F401

    OPENVINO = True
except ImportError:  # the OpenVINO row is left out
    OPENVINO = False
AUTO_IS_BF16 = cpu_bf16_pays()


def timings(fn, repeats):
    """Wall times of ``repeats`` runs of ``fn`` (after one warm-up run)."""
    fn()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - start)
    return seconds


def timed(fn, repeats):
    """Best wall time of ``repeats`` runs of ``fn`` (after one warm-up run)."""
    return min(timings(fn, repeats))


def matmul_peak_tokens_per_s(model, dtype):
    """Peak real tokens/s the model could reach at this CPU's measured matmul rate."""
    linear_params = sum(
        m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    flops_per_token = 2 * linear_params
    rates = []
    for k, n in [(384, 1536), (1536, 384), (384, 384)]:
        a = torch.randn(2048, k, dtype=dtype)
        b = torch.randn(k, n, dtype=dtype)
        seconds = timed(lambda a=a, b=b: [a @ b for _ in range(10)], 3) / 10
        rates.append(2 * 2048 * k * n / seconds)
    return max(rates) / flops_per_token, max(rates)


def manual_batches(model, tokenizer, texts, *, batch_size, sort, pad_to=None, dtype=None):
    """The hand-written loop people write: tokenize, (sort,) pad, forward."""

    def run():
        enc = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
        order = np.argsort([len(e) for e in enc]) if sort else np.arange(len(enc))
        out = np.empty((len(texts), model.config.num_labels), dtype=np.float32)
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            for i in range(0, len(order), batch_size):
                rows = order[i : i + batch_size]
                batch = tokenizer.pad(
                    {"input_ids": [enc[r] for r in rows]},
                    padding="max_length" if pad_to else "longest", max_length=pad_to,
                    return_tensors="pt",
                )
                out[rows] = model(**batch).logits.float().numpy()
        return out

    return run


def presorted_batches(tokenizer, texts, batch_size=64):
    """Token-sorted batches of ``batch_size``, tokenized and padded ahead of timing."""
    ids = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    order = np.argsort([len(e) for e in ids], kind="stable")
    return [
        tokenizer.pad({"input_ids": [ids[r] for r in order[i : i + batch_size]]},
                      return_tensors="np")
        for i in range(0, len(order), batch_size)
    ]


def torch_runner(module, batches):
    def run():
        with torch.inference_mode():
            for b in batches:
                module(input_ids=torch.from_numpy(b["input_ids"]),
                       attention_mask=torch.from_numpy(b["attention_mask"]))

    return run


def onnx_runner(path, batches):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run():
        for b in batches:
            session.run(["logits"], {"input_ids": b["input_ids"].astype(np.int64),
                                     "attention_mask": b["attention_mask"].astype(np.int64)})

    return run


def openvino_runner(path, batches):
    """OpenVINO on the CPU with its default precision (bf16 where the CPU has it)."""
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(path), "CPU",
                                  {"INFERENCE_NUM_THREADS": torch.get_num_threads()})
    request = compiled.create_infer_request()

    def run():
        for b in batches:
            request.infer({"input_ids": b["input_ids"].astype(np.int64),
                           "attention_mask": b["attention_mask"].astype(np.int64)})

    return run, compiled.get_property("INFERENCE_PRECISION_HINT").to_string()


def int8_anchors(clf, tokenizer, texts, add, onnx):
    """The serving anchors: pre-tokenized sorted batches of 64."""
    from torch.ao.quantization import quantize_dynamic

    batches = presorted_batches(tokenizer, texts)
    module = clf.model_.float().eval()
    add("anchor: torch fp32, pre-tokenized sorted batches of 64", torch_runner(module, batches))
    if onnx:
        from onnxruntime.quantization import QuantType
        from onnxruntime.quantization import quantize_dynamic as ort_quantize

        with tempfile.TemporaryDirectory() as tmp:
            folder = clf.export_onnx(Path(tmp) / "onnx")
            add("anchor: ONNX Runtime fp32, same batches",
                onnx_runner(folder / "model.onnx", batches))
            if OPENVINO:
                run, precision = openvino_runner(folder / "model.onnx", batches)
                add(f"anchor: OpenVINO CPU default ({precision}), same batches", run)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ort_quantize(folder / "model.onnx", folder / "model.int8.onnx",
                             weight_type=QuantType.QInt8)
            add("anchor: ONNX Runtime int8 (dynamic quantization)",
                onnx_runner(folder / "model.int8.onnx", batches))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = quantize_dynamic(copy.deepcopy(module), {torch.nn.Linear}, dtype=torch.qint8)
    add("anchor: torch int8 (dynamic quantization of Linear)", torch_runner(quantized, batches))


def bench_dataset(name, texts, clf, seq_model, tokenizer, pipe, repeats, peak, onnx):
    ids = tokenizer(texts, truncation=True, max_length=128)["input_ids"]
    real_tokens = sum(map(len, ids))
    rows = []

    def add(label, fn):
        # One run is one sample on these CPUs: the median of several, and their spread.
        runs = np.array(timings(fn, repeats))
        seconds = float(np.median(runs))
        low, high = real_tokens / runs.max(), real_tokens / runs.min()
        rows.append({"path": label, "tokens_per_s": real_tokens / seconds, "seconds": seconds,
                     "tokens_per_s_min": low, "tokens_per_s_max": high,
                     "runs_seconds": runs.tolist()})
        print(f"  {label:<52} {real_tokens / seconds:>9,.0f} tokens/s "
              f"({low:,.0f}-{high:,.0f})", flush=True)

    print(f"{name}: {len(texts)} texts, {real_tokens} real tokens")
    add("transformers pipeline, default", lambda: pipe(texts, truncation=True, max_length=128))
    add("transformers pipeline, batch_size=64",
        lambda: pipe(texts, batch_size=64, truncation=True, max_length=128))
    add("pad everything to 128, batches of 32, fp32",
        manual_batches(seq_model, tokenizer, texts, batch_size=32, sort=False, pad_to=128))
    add("sort by length, dynamic padding, batches of 64, fp32",
        manual_batches(seq_model, tokenizer, texts, batch_size=64, sort=True))
    if NATIVE_BF16:  # emulated bf16 is many times slower than fp32: not worth a row
        add("same under CPU bf16 autocast",
            manual_batches(seq_model, tokenizer, texts, batch_size=64, sort=True,
                           dtype=torch.bfloat16))
    int8_anchors(clf, tokenizer, texts, add, onnx)
    reference = None
    # Where bf16 does not pay, "auto" is float32: its rows would repeat those of float32.
    settings = [("torch", "float32")] + [("torch", "auto")] * AUTO_IS_BF16 + [("torch", "int8")]
    settings += [("openvino", "auto")] * OPENVINO
    for backend, dtype in settings:
        for budget in BUDGETS:
            clf.set_params(inference_backend=backend, inference_dtype=dtype,
                           predict_batch_tokens=budget)
            setting = dtype if backend == "torch" else f"{backend}, {dtype}"
            add(f"skbert predict_proba, {setting}, budget {budget}",
                lambda: clf.predict_proba(texts))
            proba = clf.predict_proba(texts)
            if reference is None:
                reference = proba
            agree = np.mean(proba.argmax(1) == reference.argmax(1))
            rows[-1]["argmax_agreement_with_fp32"] = float(agree)
            rows[-1]["max_abs_proba_diff"] = float(np.abs(proba - reference).max())
    auto_row(clf, texts, add, rows, reference)
    clf.set_params(inference_backend="torch", inference_dtype="auto", predict_batch_tokens=None)
    base = rows[0]["tokens_per_s"]
    for row in rows:
        row["vs_pipeline"] = row["tokens_per_s"] / base
        row["of_peak"] = row["tokens_per_s"] / peak
    return {"dataset": name, "texts": len(texts), "real_tokens": real_tokens, "rows": rows}


def auto_row(clf, texts, add, rows, reference):
    """The defaults' row: ``inference_backend="auto"`` after its probe, which a first call
    of ``texts`` repeated up to ``PROBE_MIN_TEXTS`` runs (its cost is reported, not timed
    in the row: the choice is kept for the model's later calls)."""
    from skbert import _probe

    clf.set_params(inference_backend="auto", inference_dtype="auto", predict_batch_tokens=None)
    repeat = -(-_probe.PROBE_MIN_TEXTS // len(texts))
    clf.predict_proba(list(texts) * repeat)
    path = clf.inference_path_
    print(f"  \"auto\" chose {path}", flush=True)
    add(f"skbert predict_proba, \"auto\" = {path.chosen}",
        lambda: clf.predict_proba(texts))
    proba = clf.predict_proba(texts)
    rows[-1].update(
        argmax_agreement_with_fp32=float(np.mean(proba.argmax(1) == reference.argmax(1))),
        max_abs_proba_diff=float(np.abs(proba - reference).max()),
        auto_chosen=path.chosen, auto_seconds=path.seconds, auto_rejected=path.rejected,
        auto_probe_seconds=path.probe_seconds, auto_probe_texts=path.probe_texts)


def print_table(result):
    print(f"\n{result['dataset']} ({result['texts']} texts, {result['real_tokens']} real tokens)")
    header = (f"| {'path':<52} | {'tokens/s':>9} | {'spread':>15} | {'x pipeline':>10} "
              f"| {'of peak':>12} | {'agree fp32':>10} |")
    print(header)
    print("|" + "|".join("-" * (len(c)) for c in header.split("|")[1:-1]) + "|")
    for r in result["rows"]:
        agree = r.get("argmax_agreement_with_fp32")
        agree = f"{agree:.4f}" if agree is not None else ""
        spread = f"{r['tokens_per_s_min']:,.0f}-{r['tokens_per_s_max']:,.0f}"
        print(f"| {r['path']:<52} | {r['tokens_per_s']:>9,.0f} | {spread:>15} "
              f"| {r['vs_pipeline']:>10.2f} | {r['of_peak']:>12.0%} | {agree:>10} |")
    skbert = max((r for r in result["rows"] if r["path"].startswith("skbert")),
                 key=lambda r: r["tokens_per_s"])
    peers = [r for r in result["rows"] if r["path"].startswith("anchor")]
    if peers:
        fastest = max(peers, key=lambda r: r["tokens_per_s"])
        print(f"skbert's best ({skbert['path']}) / fastest peer ({fastest['path']}): "
              f"{skbert['tokens_per_s'] / fastest['tokens_per_s']:.2f}x")
    auto = next((r for r in result["rows"] if "auto_chosen" in r), None)
    fp32_peers = [r for r in result["rows"]
                  if not r["path"].startswith("skbert") and "int8" not in r["path"]]
    if auto is not None and fp32_peers:
        fastest = max(fp32_peers, key=lambda r: r["tokens_per_s"])
        print(f"\"auto\" ({auto['auto_chosen']}; probe {auto['auto_probe_seconds']:.1f} s) / "
              f"fastest peer with fp32's answers ({fastest['path']}): "
              f"{auto['tokens_per_s'] / fastest['tokens_per_s']:.2f}x; "
              f"{auto['vs_pipeline']:.2f}x the pipeline")


SHORT = [("transformers pipeline", "pipeline"), ("batch_size=64", "batch 64"),
         ("pad everything to 128, batches of 32", "pad to 128, batch 32"),
         ("sort by length, dynamic padding, batches of 64", "sorted, per-batch pad"),
         ("same under CPU bf16 autocast", "sorted, per-batch pad, bf16"),
         (", pre-tokenized sorted batches of 64", ""), (", same batches", ""),
         (" (dynamic quantization of Linear)", ""), (" (dynamic quantization)", ""),
         ("skbert predict_proba, ", "skbert "), ("float32", "fp32"), ("bfloat16", "bf16")]


def plot(results, path):
    """Tokens per second of each path, a bar per dataset, from 0, with the matmul peak."""
    from _plot import BLUE, ORANGE, cpu_of, figure, save, wrap

    def short(label):
        for old, new in SHORT:
            label = label.replace(old, new)
        return wrap(label, 27)

    paths = list(dict.fromkeys(r["path"] for result in results["results"]
                               for r in result["rows"]))
    fig, (ax,) = figure([0.36 * len(paths) * len(results["results"]) / 2 + 1.3])
    height = 0.8 / len(results["results"])
    y = np.arange(len(paths))[::-1]
    top = 0
    for k, (result, color) in enumerate(zip(results["results"], [BLUE, ORANGE], strict=False)):
        rows = {r["path"]: r for r in result["rows"]}
        at = [(yi - (k - 0.5) * height, rows[p]) for yi, p in zip(y, paths, strict=True)
              if p in rows]
        values = np.array([r["tokens_per_s"] for _, r in at])
        spread = None
        if all("tokens_per_s_min" in r for _, r in at):
            spread = [values - [r["tokens_per_s_min"] for _, r in at],
                      [r["tokens_per_s_max"] for _, r in at] - values]
        ax.barh([yi for yi, _ in at], values, height=height, color=color,
                xerr=spread, error_kw=dict(lw=0.8, capsize=1.5, ecolor="#444444"),
                label=result["dataset"])
        for (yi, _), v in zip(at, values, strict=True):
            ax.text(v, yi, f" {v / 1000:.1f}k", va="center", fontsize="small", zorder=4,
                    bbox=dict(facecolor="white", edgecolor="none", alpha=0.7, pad=0))
        top = max(top, values.max(), *(spread[1] + values if spread else []))
    peak = results.get("peak_tokens_per_s") or results.get("bf16_peak_tokens_per_s")
    dtype = str(results.get("peak_dtype", "torch.bfloat16")).replace("torch.", "")
    if peak:
        ax.axvline(peak, color="#555555", linestyle="--", linewidth=1, zorder=1,
                   label=f"{dtype.replace('float32', 'fp32').replace('bfloat16', 'bf16')} "
                         "matmul peak")
        top = max(top, peak)
    ax.set_yticks(y, [short(p) for p in paths])
    ax.set_xlim(0, top * 1.15)
    ax.set_ylim(-0.7, len(paths) - 0.3)
    ax.set_xlabel("real (non-pad) tokens per second")
    ax.xaxis.set_major_formatter(lambda v, _: f"{v / 1000:.0f}k")
    ax.grid(axis="x", alpha=0.3)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)
    ax.legend(loc="lower center", bbox_to_anchor=(0.4, 1.0), ncol=2, frameon=False,
              fontsize="small", handlelength=1.2, columnspacing=0.8)
    save(fig, path, "Prediction speed, default model\n(skbert rows: tokenizing included)",
         cpu_of(results))


def profile(name, texts, clf, top=12):
    """Where skbert's fp32 prediction of ``texts`` spends its time: each stage of the
    path alone (tokenization, length sorting and padding, the network, softmax and
    order), end to end, and the network's operators (``torch.profiler``)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    from skbert._batching import pad_multiple, sorted_batches
    from skbert._device import batch_to_device
    from skbert._prediction import PREDICT_BATCH_TOKENS

    clf.set_params(inference_backend="torch", inference_dtype="float32",
                   predict_batch_tokens=None)
    module = clf.model_.eval()
    pad_id = clf.tokenizer_.pad_token_id
    cpu = torch.device("cpu")
    encoding = clf._encode(clf.tokenizer_, texts)
    rows = np.arange(len(texts))
    batches = sorted_batches(np.diff(encoding.offsets), PREDICT_BATCH_TOKENS["cpu"],
                             multiple_of=pad_multiple("cpu"))
    padded = [batch_to_device(encoding, rows[b], pad_id, cpu) for b in batches]

    def network():
        with torch.inference_mode():
            return [module(**inputs) for inputs in padded]

    logits = torch.cat(network()).numpy()
    stages = {
        "tokenization (fast tokenizer, one thread)": lambda: clf._encode(clf.tokenizer_, texts),
        "length sorting + padding + tensors": lambda: [
            batch_to_device(encoding, rows[b], pad_id, cpu)
            for b in sorted_batches(np.diff(encoding.offsets), PREDICT_BATCH_TOKENS["cpu"],
                                    multiple_of=pad_multiple("cpu"))],
        "network (forward of the padded batches)": network,
        "softmax + input order": lambda: clf._proba(logits)[np.argsort(np.concatenate(batches))],
        "end to end: predict_proba": lambda: clf.predict_proba(texts),
    }
    seconds = {stage: timed(fn, 3) for stage, fn in stages.items()}
    total = seconds["end to end: predict_proba"]
    print(f"\n{name}: {len(texts)} texts in {len(batches)} batches; stages timed alone "
          f"(best of 3, under whatever load: shares, not speeds)")
    for stage, s in seconds.items():
        print(f"  {stage:<45} {s * 1000:>8.0f} ms  {s / total:>6.1%} of end to end")
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        network()
    events = prof.key_averages()
    busy = sum(e.self_cpu_time_total for e in events)
    print(f"  the network's operators (self CPU time, {len(padded)} batches):")
    for e in sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:top]:
        print(f"    {e.key:<40} {e.self_cpu_time_total / busy:>6.1%}  ({e.count} calls)")
    return {"dataset": name, "seconds": seconds,
            "operators": {e.key: e.self_cpu_time_total / busy for e in events}}


# Token budgets of skbert's rows (--quick: the default only).
BUDGETS = (1024, 2048, 4096)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=DEFAULT_DATA_DIR)
    parser.add_argument("--n-ag-news", type=int, default=2000, help="AG News texts used")
    parser.add_argument("--repeats", type=int, default=5,
                        help="timed runs of each path (after a warm-up); the median is shown")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false",
                        help="skip the ONNX Runtime rows (needs onnxruntime, onnxscript)")
    parser.add_argument("--quick", action="store_true",
                        help="a few minutes: 500 texts of each set, 2 repeats, the default "
                             "token budget only, no ONNX rows")
    parser.add_argument("--profile", action="store_true",
                        help="print where skbert's fp32 prediction time goes on each set "
                             "(stages and the network's operators), and nothing else")
    parser.add_argument("--out", default=None,
                        help="JSON to write (default: results/bench_predict.json, or "
                             "bench_predict_quick.json with --quick)")
    args = parser.parse_args(argv)
    args.out = args.out or Path(__file__).parent / "results" / (
        "bench_predict_quick.json" if args.quick else "bench_predict.json")
    if args.quick:
        global BUDGETS
        BUDGETS = (2048,)
        args.n_ag_news, args.repeats, args.onnx = min(args.n_ag_news, 500), 2, False
    require(args.data_dir)
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

    torch.manual_seed(0)
    path = resolve_model_path(DEFAULT_MODEL)
    with quiet_transformers():
        tokenizer = AutoTokenizer.from_pretrained(path)
        seq_model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).eval()
        pipe = pipeline("text-classification", model=seq_model, tokenizer=tokenizer, device=-1)
    sst_texts, sst_y = sst2(args.data_dir, "dev")
    if args.quick:
        sst_texts = sst_texts[:500]
    ag_texts, _ = ag_news(args.data_dir)
    ag_texts = ag_texts[: args.n_ag_news]
    # A briefly fitted classifier: throughput does not depend on how well it was trained.
    clf = BertTextClassifier(max_iter=1, random_state=0, device="cpu")
    clf.fit(sst_texts[:64], sst_y[:64])
    if args.profile:
        print(f"{cpu_description()}; torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads")
        profiles = [profile("SST-2 dev", sst_texts, clf),
                    profile(f"AG News (first {len(ag_texts)})", ag_texts, clf)]
        out = Path(args.out).with_name("bench_predict_profile.json")
        out.write_text(json.dumps({"cpu": cpu_description(), "profiles": profiles}, indent=2))
        print(f"\nwrote {out}")
        return
    peak, gflops, peak_dtype = max(
        ((*matmul_peak_tokens_per_s(seq_model, dtype), dtype)
         for dtype in ((torch.float32, torch.bfloat16) if NATIVE_BF16 else (torch.float32,))),
        key=lambda measured: measured[0],
    )
    print(f"{cpu_description()}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"native bf16: {NATIVE_BF16}, \"auto\" is bf16: {AUTO_IS_BF16}; "
          f"{peak_dtype} matmul peak {gflops / 1e9:.0f} GFLOP/s = "
          f"{peak:,.0f} tokens/s for this model (\"of peak\" below)")
    results = [
        bench_dataset("SST-2 dev", sst_texts, clf, seq_model, tokenizer, pipe, args.repeats, peak,
                      args.onnx),
        bench_dataset(f"AG News (first {len(ag_texts)})", ag_texts, clf, seq_model, tokenizer,
                      pipe, args.repeats, peak, args.onnx),
    ]
    for result in results:
        print_table(result)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    payload = {"cpu": cpu_description(), "torch": torch.__version__,
               "threads": torch.get_num_threads(), "native_bf16": NATIVE_BF16,
               "auto_is_bf16": AUTO_IS_BF16,
               "peak_dtype": str(peak_dtype), "peak_tokens_per_s": peak,
               "matmul_gflops": gflops / 1e9, "results": results}
    Path(args.out).write_text(json.dumps(payload, indent=2))
    plot(payload, Path(args.out).with_suffix(".png"))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
