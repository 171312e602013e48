"""skbert: fine-tune BERT-family models as scikit-learn text classifiers."""

from ._classifier import BertTextClassifier
from ._io import read_chunks
from ._pretraining import MaskedLMPretrainer

__version__ = "0.1.0"
__all__ = ["BertTextClassifier", "MaskedLMPretrainer", "read_chunks", "__version__"]
