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
