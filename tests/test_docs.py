"""README code blocks and docstring examples run as tests (real default model: slow)."""

import doctest
import re
from pathlib import Path

import pytest

import skbert._classifier
import skbert.datasets

ROOT = Path(__file__).resolve().parents[1]


def _python_blocks(path):
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_python_examples():
    """Check that the README examples this module runs are found."""
    assert len(_python_blocks(ROOT / "README.md")) >= 2


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch):
    """Check that the README's python blocks run in order, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in _python_blocks(ROOT / "README.md"):
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
    assert (tmp_path / "model.skops").exists()


@pytest.mark.parametrize("module", [skbert.datasets, skbert._classifier], ids=lambda m: m.__name__)
@pytest.mark.slow
def test_docstring_examples(module):
    """Check that the docstring examples of the module pass as doctests."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
