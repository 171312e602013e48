"""Redraw the benchmark charts from the JSON saved in benchmarks/results/, without rerunning.

    python benchmarks/plots.py                 # every chart
    python benchmarks/plots.py bench_modes     # the charts of some scripts
    python benchmarks/plots.py --docs          # and copy those the docs show to docs/assets/

Each results/<script>[_suffix].json is drawn by its script's ``plot(results, path)`` into
results/<script>[_suffix].png (see _plot.py); demo.py writes no JSON, and results/demo.json
is its table in docs/benchmarks.md, transcribed. Importing a script loads torch, so this
takes a few seconds per script; nothing is trained or measured.
"""

import argparse
import importlib
import json
import re
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ASSETS = HERE.parent / "docs" / "assets"
# The scripts that draw charts, longest name first (a JSON belongs to the longest match).
CHARTED = sorted(["bench_accuracy", "bench_cache", "bench_calibration", "bench_dask_predict",
                  "bench_ddp", "bench_defaults", "bench_distill", "bench_fewshot",
                  "bench_int8_accuracy", "bench_long",
                  "bench_modes", "bench_multilabel", "bench_padding", "bench_predict",
                  "bench_scaling", "bench_stream", "bench_stsb", "bench_train", "demo",
                  "gpu_check", "grid_search_lr", "bench_uncertainty"], key=len, reverse=True)


def script_of(json_path):
    """The script that wrote ``json_path`` and draws its chart, or None."""
    stem = json_path.stem
    return next((s for s in CHARTED if stem == s or stem.startswith(s + "_")), None)


def shown_in_docs():
    """The file names of the charts the docs pages show from assets/."""
    pages = (HERE.parent / "docs").glob("*.md")
    return {m for page in pages
            for m in re.findall(r"assets/([\w.-]+\.png)", page.read_text(encoding="utf-8"))}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scripts", nargs="*", help=f"some of {sorted(CHARTED)} (default: all)")
    parser.add_argument("--docs", action="store_true",
                        help="copy the redrawn charts that docs/*.md show to docs/assets/")
    args = parser.parse_args(argv)
    unknown = set(args.scripts) - set(CHARTED)
    if unknown:
        parser.error(f"no chart for {sorted(unknown)}; choose from {sorted(CHARTED)}")
    docs = shown_in_docs()
    for json_path in sorted(RESULTS.glob("*.json")):
        script = script_of(json_path)
        if script is None or (args.scripts and script not in args.scripts):
            continue
        png = json_path.with_suffix(".png")
        importlib.import_module(script).plot(json.loads(json_path.read_text()), png)
        print(f"drew {png.relative_to(HERE.parent)}")
        if args.docs and png.name in docs:
            shutil.copyfile(png, ASSETS / png.name)
            print(f"  copied to docs/assets/{png.name}")


if __name__ == "__main__":
    main()
