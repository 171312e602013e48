"""The API reference page (docs/api.md, built by mkdocstrings): what its signatures and
tables show. Reads the source with Griffe, as the docs build does; nothing is built."""

from pathlib import Path

import pytest
import yaml

from skbert._pretrained import DEFAULT_MODEL

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.any_precision  # documentation, no numbers


def _mkdocstrings_options():
    """The python handler's options of mkdocs.yml."""
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    plugin = next(p["mkdocstrings"] for p in config["plugins"]
                  if isinstance(p, dict) and "mkdocstrings" in p)
    return config, plugin["handlers"]["python"]["options"]


@pytest.mark.parametrize("name", ["BertTextClassifier", "BertTextRegressor",
                                  "MaskedLMPretrainer"])
def test_api_signatures_show_the_default_model_by_name(name):
    """Check that, with the Griffe extensions mkdocs.yml loads, the estimators' signatures
    on the API page show the default model's name, not ``DEFAULT_MODEL``."""
    griffe = pytest.importorskip("griffe", reason="the docs extra installs griffe")
    _, options = _mkdocstrings_options()
    extensions = griffe.load_extensions(*[str(ROOT / e) for e in options["extensions"]])
    package = griffe.load("skbert", search_paths=[str(ROOT)], extensions=extensions,
                          docstring_parser="numpy", resolve_aliases=True)
    # docs/api.md's ``::: skbert.<name>`` needs the name visible in skbert/__init__.py's
    # source: a lazy ``__getattr__`` alone hides it (import it under TYPE_CHECKING too).
    assert name in package.members, (
        f"Griffe does not see skbert.{name}: docs/api.md cannot render it; import it in "
        "skbert/__init__.py (under `if TYPE_CHECKING:` when the import is lazy)")
    init = package[name].final_target.members["__init__"]
    default = init.parameters["model_name_or_path"].default
    assert str(default) == repr(DEFAULT_MODEL)


def test_api_tables_keep_parameter_names_whole():
    """Check that the docs' style sheets give the first column of the numpydoc tables
    (parameter names) no break inside a name, overriding extra.css's ``anywhere``."""
    config, _ = _mkdocstrings_options()
    sheets = "\n".join((ROOT / "docs" / sheet).read_text(encoding="utf-8")
                       for sheet in config["extra_css"])
    rule = sheets.split(".md-typeset tr.doc-section-item td:first-child code", 1)[1]
    rule = rule.split("}", 1)[0]
    assert "overflow-wrap: normal" in rule and "word-break: normal" in rule
