"""`make demo` runs: benchmarks/demo.py end to end on the tiny model."""

import os
import re
import subprocess
import sys
from pathlib import Path

DEMO = Path(__file__).resolve().parents[1] / "benchmarks" / "demo.py"


def test_demo_prints_the_comparison_table(tiny_model_dir):
    """Check that the demo loads the bundled data, fits both models and prints one row
    of scores each, with an exit status that says whether skbert won."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(DEMO), "--model", tiny_model_dir, "--max-length", "32",
         "--n-train", "64", "--max-iter", "1", "--verbose", "0"],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert result.returncode in (0, 1), result.stderr
    assert "64 training texts (bundled sample), 872 test" in result.stdout
    rows = re.findall(r"^(TF-IDF.*|BertTextClassifier.*?)\s+(0\.\d{3}|1\.000)\s+(0\.\d{3}|1\.000)"
                      r"\s+\d+\.\d\s+\d+\.\d\d$", result.stdout, re.MULTILINE)
    assert [name.split()[0] for name, *_ in rows] == ["TF-IDF", "BertTextClassifier"]
    accuracy = {name.split()[0]: float(acc) for name, acc, _ in rows}
    gain = float(re.search(r"skbert - TF-IDF accuracy: ([-+]\d\.\d{3})", result.stdout)[1])
    assert abs(gain - (accuracy["BertTextClassifier"] - accuracy["TF-IDF"])) < 2e-3
    assert result.returncode == (0 if gain > 0 else 1)
    assert re.search(r"^fit: about \d+ s on this machine \(from the first 2 of 2 batches\)$",
                     result.stdout, re.MULTILINE), result.stdout


def test_demo_quick_mode_arguments():
    """Check that --quick (make demo QUICK=1) trains on 1,000 texts for one epoch at the
    quick learning rate, that given values win over it, and that the full demo keeps its
    4,000 texts, 3 epochs and 5e-5."""
    sys.path.insert(0, str(DEMO.parent))
    try:
        import demo
    finally:
        sys.path.remove(str(DEMO.parent))
    quick = demo.settings(["--quick"])
    assert (quick.n_train, quick.max_iter, quick.learning_rate) == (1000, 1, 1e-4)
    mixed = demo.settings(["--quick", "--max-iter", "2", "--n-train", "500"])
    assert (mixed.n_train, mixed.max_iter, mixed.learning_rate) == (500, 2, 1e-4)
    full = demo.settings([])
    assert (full.n_train, full.max_iter, full.learning_rate) == (None, 3, 5e-5)
    makefile = (DEMO.parents[1] / "Makefile").read_text()
    assert "$(if $(QUICK),--quick)" in makefile
