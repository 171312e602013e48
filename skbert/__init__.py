"""skbert: fine-tune BERT-family models as scikit-learn text classifiers and regressors."""

from ._base import TRUSTED_TYPES
from ._classifier import BertTextClassifier
from ._io import read_chunks
from ._pretraining import MaskedLMPretrainer
from ._regressor import BertTextRegressor

__version__ = "0.1.0"
__all__ = [
    "BertTextClassifier",
    "BertTextRegressor",
    "MaskedLMPretrainer",
    "TRUSTED_TYPES",
    "read_chunks",
    "__version__",
]
