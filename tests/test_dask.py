"""dask-ml's Incremental wrapper drives partial_fit over the blocks of a dask array."""

import numpy as np
import pytest

from skbert import BertTextClassifier

from .conftest import make_texts

da = pytest.importorskip("dask.array", reason="dask is in the test extra")
wrappers = pytest.importorskip("dask_ml.wrappers", reason="dask-ml is in the test extra")


def test_dask_ml_incremental_trains(tiny_params, toy_data):
    """Check that Incremental feeds every block to partial_fit and the model learns."""
    _, _, X_test, y_test = toy_data
    X, y = make_texts(200, seed=31)
    dX = da.from_array(np.array(X, dtype=object), chunks=40)
    dy = da.from_array(y, chunks=40)
    params = dict(tiny_params, max_steps=25 * 3, learning_rate=1e-2)  # 25 blocks x 3 steps
    inc = wrappers.Incremental(BertTextClassifier(**params), shuffle_blocks=False)
    for _ in range(5):
        inc.partial_fit(dX, dy, classes=[0, 1])
    fitted = inc.estimator_
    assert fitted.n_iter_ == 25  # 5 blocks, 5 passes
    assert fitted._stream.trainer.state.steps == 25 * 3
    assert fitted.score(X_test, y_test) > 0.85
