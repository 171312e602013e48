"""skbert: fine-tune BERT-family models as scikit-learn text classifiers."""

from ._classifier import BertTextClassifier

__version__ = "0.1.0"
__all__ = ["BertTextClassifier", "__version__"]
