"""Small real datasets bundled with skbert for the demo and examples."""

import csv
from importlib import resources

import numpy as np

__all__ = ["load_sst2_sample"]

_SST2_NAMES = np.array(["negative", "positive"], dtype=object)


def _read_sst2(name):
    with resources.files(__package__).joinpath("data", name).open(encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)  # header: sentence, label
        rows = [(text.strip(), int(label)) for text, label in reader]
    texts = [text for text, _ in rows]
    labels = _SST2_NAMES[[label for _, label in rows]]
    return texts, labels


def load_sst2_sample():
    """Load a 4,000-text sample of SST-2 train and the full SST-2 dev set.

    Movie-review sentiment from the GLUE benchmark: training texts are mostly phrases,
    test texts full sentences. Source and licence: ``skbert/datasets/data/SOURCE.md``.

    Returns
    -------
    X_train : list of str
        4,000 training texts.
    y_train : ndarray of object
        Their labels, "negative" or "positive".
    X_test : list of str
        The 872 texts of SST-2 dev.
    y_test : ndarray of object
        Their labels.

    Examples
    --------
    >>> from skbert.datasets import load_sst2_sample
    >>> X_train, y_train, X_test, y_test = load_sst2_sample()
    >>> len(X_train), len(X_test), sorted(set(y_test))
    (4000, 872, ['negative', 'positive'])
    """
    X_train, y_train = _read_sst2("sst2_train_sample.tsv")
    X_test, y_test = _read_sst2("sst2_dev.tsv")
    return X_train, y_train, X_test, y_test
