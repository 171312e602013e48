"""The examples gallery (docs/examples/*.py, shown on docs/examples.md) runs as tests.

Each script runs in a subprocess, as a user runs it, on the tiny BERT of conftest.py
(``--model``) and a few dozen texts, so that the module takes seconds; the outputs and
charts shown on the docs page come from runs with the default model. Nothing may be
downloaded: the scripts read bundled data or files the test writes.
"""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from .conftest import make_texts

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "docs" / "examples"
PAGE = ROOT / "docs" / "examples.md"

pytestmark = pytest.mark.any_precision  # the scripts run; their numbers are not checked

# Arguments that keep each script to seconds on the tiny model (max_position_embeddings
# 64), and a line its output must hold.
RUNS = {
    "tfidf_vs_bert.py": (["{csv}", "--text-column", "body", "--label-column", "sentiment",
                          "--max-iter", "1"], r"BertTextClassifier"),
    "grid_search_lr.py": (["--learning-rates", "1e-3", "5e-3", "--cv", "2", "--n-train", "40",
                           "--n-test", "20", "--max-iter", "1", "--plot", "{tmp}/grid.png"],
                          r"best: \{'learning_rate': 0\.00[15]\}"),
    "stream_and_resume.py": (["--n-rows", "60", "--chunksize", "20", "--crash-after", "2",
                              "--n-test", "20", "--workdir", "{tmp}/stream"],
                             r"resumed from the newest checkpoint: n_iter_=2 chunks"),
    "multilabel.py": (["--n-train", "40", "--n-test", "20", "--max-iter", "1"],
                      r"micro avg"),
    "text_pairs.py": (["--n-train", "12", "--n-test", "6", "--max-iter", "1"],
                      r"BertTextClassifier on \(review, aspect\) pairs"),
    "serve_with_transformers.py": (["--n-train", "40", "--n-test", "20", "--max-iter", "1"],
                                   r"same top label on 100% of the texts"),
}


def test_every_example_runs_here_and_is_on_the_page():
    """Check that every script of docs/examples/ is run by this module and shown on
    docs/examples.md (its source and its printed output)."""
    scripts = sorted(p.name for p in EXAMPLES.glob("*.py"))
    assert scripts == sorted(RUNS)
    page = PAGE.read_text(encoding="utf-8")
    for name in scripts:
        assert f'--8<-- "docs/examples/{name}"' in page, name
        output = f"docs/examples/output/{Path(name).stem}.txt"
        assert f'--8<-- "{output}"' in page and (ROOT / output).is_file(), output


@pytest.mark.parametrize("script", sorted(RUNS))
def test_example_runs(script, tiny_model_dir, tmp_path):
    """Check that the example script runs to the end on the tiny model, printing what it
    prints with the default model, and writes its chart where asked."""
    X, y = make_texts(60, seed=3)
    csv = tmp_path / "reviews.csv"
    pd.DataFrame({"body": X, "sentiment": pd.Series(y).map({0: "neg", 1: "pos"})}).to_csv(
        csv, index=False)
    args, expected = RUNS[script]
    args = [a.format(csv=csv, tmp=tmp_path) for a in args]
    if "--plot" in args and importlib.util.find_spec("matplotlib") is None:
        del args[args.index("--plot"):args.index("--plot") + 2]  # charts need the bench extra
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script), *args, "--model", tiny_model_dir,
         "--max-length", "32"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(expected, done.stdout), done.stdout
    if "--plot" in args:
        png = Path(args[args.index("--plot") + 1])
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
