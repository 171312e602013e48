"""The warning about texts cut by truncation: once per process for a setting, on the
user's line (not `sys:1` or a line of scikit-learn), however many fits a search runs."""

import warnings

import pytest
from sklearn.model_selection import GridSearchCV

from skbert import BertTextClassifier, _tokenization

from .conftest import make_texts

# Which warnings and where, not numbers of one precision: run once in CI.
pytestmark = pytest.mark.any_precision


@pytest.fixture
def long_task():
    texts, y = make_texts(32, seed=4)
    return [" ".join([text] * 6) for text in texts], y  # every text beyond 8 tokens


def _cut(caught):
    return [w for w in caught if "are longer than max_length=8" in str(w.message)]


def test_grid_search_warns_once_on_the_users_line(tiny_params, long_task, monkeypatch):
    """Check that a grid search of 2 candidates x 2 folds on texts that are all cut
    warns once, under the default filters,
    attributed to the line of search.fit in this file; and every time under "always"."""
    monkeypatch.setattr(_tokenization, "_TRUNCATION_WARNED", set())
    X, y = long_task
    search = GridSearchCV(
        BertTextClassifier(**dict(tiny_params, max_iter=1, max_length=8)),
        {"learning_rate": [1e-3, 5e-3]}, cv=2, error_score="raise")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        search.fit(X, y)
    cut = _cut(caught)
    # 5 fits and 4 scorings: one warning (a fold's predict says the same words on the
    # same line, which Python's "default" shows once).
    assert len(cut) == 1, [str(w.message) for w in cut]
    assert {w.filename for w in cut} == {__file__}
    assert "16 of 16 texts (100%)" in str(cut[0].message)  # a fold's fit
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        search.best_estimator_.predict(X)
        search.best_estimator_.predict(X)
    assert len(_cut(caught)) == 2 and {w.filename for w in _cut(caught)} == {__file__}
