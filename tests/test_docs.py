"""README and docs/ code blocks and docstring examples run as tests.

They use the real default model (bundled offline), so they are marked slow. A python block
in docs/ whose first line is ``# skip: <reason>`` is illustrative (it needs a GPU or a file
a test machine lacks): it is only compiled, and reported as skipped with that reason.
"""

import doctest
import re
from pathlib import Path

import pytest

import skbert._classifier
import skbert.datasets

ROOT = Path(__file__).resolve().parents[1]
DOC_PAGES = sorted((ROOT / "docs").glob("*.md"))
_SKIP = re.compile(r"#\s*skip:\s*(\S.*)")


def _python_blocks(path):
    """The fenced python blocks of a Markdown file, in order (fences at line starts)."""
    text = path.read_text(encoding="utf-8")
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _skip_reason(block):
    """The reason of a ``# skip: <reason>`` first line, or None for a block that runs."""
    match = _SKIP.fullmatch(block.split("\n", 1)[0].strip())
    return match.group(1).strip() if match else None


def _doc_blocks(run):
    """``(page, index, block)`` of the docs' python blocks that run (or are skipped)."""
    return [
        (page, i, block)
        for page in DOC_PAGES
        for i, block in enumerate(_python_blocks(page))
        if (_skip_reason(block) is None) == run
    ]


def test_readme_has_python_examples():
    """Check that the README examples this module runs are found."""
    assert len(_python_blocks(ROOT / "README.md")) >= 2


@pytest.mark.slow
def test_readme_examples_run(tmp_path, monkeypatch):
    """Check that the README's python blocks run in order, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    import contextlib
    import io

    namespace, printed = {}, []
    for block in _python_blocks(ROOT / "README.md"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102
        printed.append(out.getvalue().splitlines())
    assert (tmp_path / "model.skops").exists()
    # The first example visibly learns, and prints what its comments say.
    assert float(printed[0][0]) > 0.75 and printed[0][1] == "['positive' 'negative']"
    assert printed[1][0] == "{'learning_rate': 0.0001}"


@pytest.mark.parametrize("module", [skbert.datasets, skbert._classifier], ids=lambda m: m.__name__)
@pytest.mark.slow
def test_docstring_examples(module):
    """Check that the docstring examples of the module pass as doctests."""
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0


def test_docs_have_python_examples():
    """Check that the docs' python blocks are found, and that a skip marker has a reason."""
    assert len(_doc_blocks(run=True)) >= 10
    for page, i, block in _doc_blocks(run=True):
        assert "skip:" not in block.split("\n", 1)[0], f"{page.name} block {i}: no reason"


@pytest.mark.slow
@pytest.mark.parametrize(
    "page", sorted({page for page, _, _ in _doc_blocks(run=True)}), ids=lambda p: p.name
)
def test_docs_examples_run(page, tmp_path, monkeypatch):
    """Check that a docs page's runnable python blocks run in order, in a scratch folder."""
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for _, i, block in (entry for entry in _doc_blocks(run=True) if entry[0] == page):
        exec(compile(block, f"docs/{page.name} (python block {i})", "exec"), namespace)  # noqa: S102


@pytest.mark.parametrize(
    "page, index, block",
    [pytest.param(*entry, id=f"{entry[0].name}-{entry[1]}") for entry in _doc_blocks(run=False)],
)
def test_docs_illustrative_examples_compile(page, index, block):
    """Check that a ``# skip:`` block at least compiles, then report it as skipped."""
    compile(block, f"docs/{page.name} (python block {index})", "exec")
    pytest.skip(f"docs/{page.name} python block {index}: {_skip_reason(block)}")


# A Markdown image or link: ![alt](target "title") or [text](target), and a snippet include.
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SNIPPET = re.compile(r"^-{1,}8<-{1,}\s+[\"']([^\"']+)[\"']", flags=re.M)
_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1", flags=re.S | re.M)


def _local_targets(path):
    """``(target, resolved path)`` of the relative images, links and ``--8<--`` snippets of
    a Markdown file, outside code (fences and inline code); URLs and pure anchors skipped,
    ``#fragments`` and ``?queries`` stripped."""
    text = path.read_text(encoding="utf-8")
    found = [(m, ROOT / m) for m in _SNIPPET.findall(text)]  # pymdownx.snippets base: root
    prose = re.sub(r"`[^`\n]*`", "", _FENCE.sub("", text))
    for target in _LINK.findall(prose):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I) or target.startswith("#"):
            continue  # http(s), mailto and other URLs; anchors on the same page
        local = target.split("#", 1)[0].split("?", 1)[0]
        found.append((target, (path.parent / local) if local else path))
    return found


@pytest.mark.parametrize("page", [*DOC_PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_docs_images_and_links_exist(page):
    """Check that every relative image, link and snippet of a docs page or the README
    names a file that exists (resolved from the page; snippets from the project root)."""
    targets = _local_targets(page)
    missing = [target for target, resolved in targets if not resolved.exists()]
    assert not missing, f"{page.relative_to(ROOT)} names files that do not exist: {missing}"


def test_docs_link_check_sees_images_links_and_snippets():
    """Check that the link check finds what it checks: the charts, the pages' links to each
    other, and the changelog's snippet."""
    targets = {target for page in DOC_PAGES for target, _ in _local_targets(page)}
    assert "assets/bench_accuracy.png" in targets
    assert "speed.md" in targets
    assert "CHANGELOG.md" in targets


def _test_references(text):
    """``(file, test)`` of every ``test_x.py::test_y`` in ``text``; a bare ``::test_z``
    names a test of the file named before it."""
    found, current = [], None
    for file, name in re.findall(r"`(test_\w+\.py)?::(test_\w+)", text):
        current = file or current
        found.append((current, name))
    return found


def test_guarantees_name_tests_that_exist():
    """Check that every test docs/guarantees.md (or any docs page) points to as the proof
    of a promise exists, so that the page cannot claim a test that was renamed or
    removed."""
    missing, seen = [], 0
    for page in DOC_PAGES:
        for file, name in _test_references(page.read_text(encoding="utf-8")):
            seen += 1
            path = ROOT / "tests" / (file or "")
            if file is None or not path.is_file() or not re.search(
                    rf"^def {name}\(", path.read_text(encoding="utf-8"), flags=re.M):
                missing.append(f"{page.name}: {file}::{name}")
    assert seen > 20  # the check sees the page's references
    assert not missing, "\n".join(missing)
