"""docs/architecture.md is true: every module is listed with what it may import, and the
code imports nothing more; the wings touch no private attribute.

The page's table is the rule: a row per module of ``skbert/`` (a package such as
``_cli/`` is one row), whose last column lists the skbert modules it may import
("nothing" for a leaf; ``skbert`` for the public API). Imports inside functions count.
"""

import ast
import functools
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skbert"
PAGE = ROOT / "docs" / "architecture.md"
# The command line and the integrations: public API plus these modules only (the command
# line also plans a stream's steps with _batching's one batch count).
WINGS = ("_cli/", "dask", "spark", "ray")
WING_MAY_USE = {"skbert", "exceptions", "_validation", "_io", "_checkpoint"}
EXTRA = {"_cli/": {"_batching"}}


def _unit(path):
    """The row of ``path``: its module name, or its package's folder ("_cli/")."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] + "/" if len(rel.parts) > 1 else rel.stem


def _units():
    return {_unit(p): None for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(name):
    """The row a name imported from the package stands for (``skbert``: public API)."""
    if (PACKAGE / f"{name}.py").exists():
        return name
    if (PACKAGE / name / "__init__.py").exists():
        return name + "/"
    return "skbert"


def imports_of(path):
    """The rows whose code ``path`` imports, anywhere in it (functions included)."""
    package = path.relative_to(PACKAGE).parts[:-1]  # () for a top-level module
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            inside = list(package[: len(package) - node.level + 1])
            target = inside + (node.module.split(".") if node.module else [])
            if target:
                found.add(_resolve(target[0]))
            else:  # from . import X, from the package's top
                found.update(_resolve(alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "skbert":
            parts = node.module.split(".")
            found.update([_resolve(parts[1])] if len(parts) > 1
                         else [_resolve(alias.name) for alias in node.names])
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "skbert":
                    found.add(_resolve(parts[1]) if len(parts) > 1 else "skbert")
    return found


@functools.cache
def _graph():
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        unit = _unit(path)
        graph.setdefault(unit, set()).update(imports_of(path) - {unit})
    return graph


def documented_rules():
    """{row: set of rows it may import} from the page's table."""
    rules = {}
    for line in PAGE.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not re.fullmatch(r"`[\w/.]+`", cells[0]):
            continue
        name = cells[0].strip("`").removesuffix(".py")
        may = set() if cells[2] == "nothing" else set(re.findall(r"`([\w/.]+)`", cells[2]))
        rules[name] = {m.removesuffix(".py") for m in may}
    return rules


def test_every_module_is_on_the_page_and_nothing_else():
    """Check that the table lists each module of skbert/ once, and no module that is gone."""
    assert set(documented_rules()) == set(_units())


@pytest.mark.parametrize("unit", sorted(_units()))
def test_module_imports_only_what_the_page_allows(unit):
    """Check that a module imports (anywhere in it) only the modules its row allows."""
    extra = _graph()[unit] - documented_rules().get(unit, set())
    assert not extra, f"{unit} imports {sorted(extra)}, which docs/architecture.md does not allow"


def test_wings_use_only_the_public_api_and_the_shared_checks():
    """Check that the command line and skbert.dask import the public API, exceptions,
    _validation, _io and _checkpoint only (the command line also _batching), and that the
    page says so."""
    rules = documented_rules()
    for wing in WINGS:
        allowed = WING_MAY_USE | EXTRA.get(wing, set())
        assert rules[wing] <= allowed, wing
        assert _graph()[wing] <= allowed, wing


def _private_reads(path):
    """``obj._name`` reads and writes in ``path`` where ``obj`` is not ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if (isinstance(node, ast.Attribute) and node.attr.startswith("_")
                and not (node.attr.startswith("__") and node.attr.endswith("__"))
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    return found


def test_wings_read_no_private_attribute():
    """Check that no module of the wings reads or writes a private attribute of anything
    (an estimator, a module of skbert, scikit-learn): they stay on public API."""
    paths = [p for p in sorted(PACKAGE.rglob("*.py"))
             if _unit(p) in WINGS or _unit(p).rstrip("/") + "/" in WINGS]
    assert paths
    found = [hit for path in paths for hit in _private_reads(path)]
    assert not found, "\n".join(found)


def test_import_rules_catch_a_forbidden_import(tmp_path, monkeypatch):
    """Check that the import scan sees an import inside a function, so the rules can fail."""
    module = tmp_path / "_leaf.py"
    module.write_text("def f():\n    from ._engine import Trainer\n    return Trainer\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", tmp_path)
    assert imports_of(module) == {"skbert"}  # _engine does not exist in tmp_path
    (tmp_path / "_engine.py").write_text("")
    assert imports_of(module) == {"_engine"}
