"""skbert: fine-tune BERT-family models as scikit-learn text classifiers and regressors."""

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what documentation tools and type checkers read; not run
    from ._base import TRUSTED_TYPES
    from ._cascade import CascadeClassifier
    from ._classifier import BertTextClassifier
    from ._io import read_chunks
    from ._pretraining import MaskedLMPretrainer
    from ._regressor import BertTextRegressor
    from ._static import StaticTextClassifier, StaticTextRegressor

__version__ = "0.1.0"
__all__ = [
    "BertTextClassifier",
    "BertTextRegressor",
    "CascadeClassifier",
    "MaskedLMPretrainer",
    "StaticTextClassifier",
    "StaticTextRegressor",
    "TRUSTED_TYPES",
    "read_chunks",
    "__version__",
]
# The public names, each imported from its module on first use (PEP 562), so that
# ``skbert --help`` and ``import skbert._io`` do not import scikit-learn.
_LAZY = {"BertTextClassifier": "_classifier", "BertTextRegressor": "_regressor",
         "MaskedLMPretrainer": "_pretraining", "TRUSTED_TYPES": "_base",
         "read_chunks": "_io", "StaticTextClassifier": "_static",
         "StaticTextRegressor": "_static", "CascadeClassifier": "_cascade"}


def __getattr__(name):
    if name in _LAZY:
        value = getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + list(_LAZY))
