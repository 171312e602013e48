"""BertTextRegressor: real targets on the one training loop, and what scikit-learn expects."""

import pickle

import numpy as np
import pytest
import skops.io as sio
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV, KFold, cross_val_score

from skbert import TRUSTED_TYPES, BertTextRegressor
from skbert._sources import Criterion, batch_loss

from .conftest import make_texts


def _targets(y, seed=0):
    """A real target that the class word of ``make_texts`` decides, plus a little noise."""
    rng = np.random.default_rng(seed)
    return 10.0 + 3.0 * y + rng.normal(0, 0.1, len(y))


@pytest.fixture(scope="module")
def data():
    X, y = make_texts(200, seed=1)
    t = _targets(y)
    return X[:140], t[:140], X[140:], t[140:]


@pytest.fixture(scope="module")
def fitted_regressor(tiny_params, data):
    X, t, _, _ = data
    return BertTextRegressor(**tiny_params).fit(X, t)


def test_regressor_learns_in_the_targets_scale(fitted_regressor, data):
    """Check that the regressor learns a text-decided target (held-out R² well above 0)
    and predicts on the targets' scale, 1-D for a 1-D y."""
    _, t, X_test, t_test = data
    reg = fitted_regressor
    pred = reg.predict(X_test)
    assert pred.shape == (len(X_test),) and pred.dtype == np.float64
    assert reg.score(X_test, t_test) > 0.8
    assert reg.score(X_test, t_test) == pytest.approx(r2_score(t_test, pred))
    np.testing.assert_allclose(reg.y_mean_, [t.mean()])
    np.testing.assert_allclose(reg.y_scale_, [t.std()])
    assert reg.n_outputs_ == 1 and reg.loss_curve_[-1] < reg.loss_curve_[0]


def test_standardised_targets_make_scale_irrelevant(tiny_params, data):
    """Check that training sees standardised targets: y and 1000 * y - 5 give the same
    model, so predictions differ by that affine map only."""
    X, t, X_test, _ = data
    params = dict(tiny_params, max_iter=2)
    a = BertTextRegressor(**params).fit(X, t).predict(X_test)
    b = BertTextRegressor(**params).fit(X, 1000 * t - 5).predict(X_test)
    np.testing.assert_allclose(b, 1000 * a - 5, rtol=1e-4, atol=1e-2)


def test_multi_output_and_huber(tiny_params, data):
    """Check that a 2-D y trains one output per column (each learnt), under the Huber loss
    too, and that a (n, 1) y predicts 1-D as MLPRegressor does."""
    X, t, X_test, t_test = data
    Y = np.c_[t, -2 * t + 1]
    for loss in ("squared_error", "huber"):
        reg = BertTextRegressor(**tiny_params, loss=loss).fit(X, Y)
        pred = reg.predict(X_test)
        assert pred.shape == (len(X_test), 2) and reg.n_outputs_ == 2
        Y_test = np.c_[t_test, -2 * t_test + 1]
        assert r2_score(Y_test, pred, multioutput="raw_values").min() > 0.7
    column = BertTextRegressor(**dict(tiny_params, max_iter=1)).fit(X, t[:, None])
    assert column.predict(X_test[:3]).shape == (3,)


def test_losses_are_the_torch_ones():
    """Check the regression criteria against torch's losses and the score against R²."""
    outputs = torch.tensor([[0.5, -1.0], [2.0, 0.0], [-3.0, 1.5]])
    targets = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    weights = torch.tensor([1.0, 2.0, 0.5])
    mse = torch.nn.functional.mse_loss(outputs, targets, reduction="none").mean(1)
    huber = torch.nn.functional.huber_loss(outputs, targets, reduction="none",
                                           delta=0.5).mean(1)
    got = batch_loss(outputs, targets, weights, 3, Criterion("squared_error"))
    assert got.item() == pytest.approx(((mse * weights).sum() / 3).item())
    got = batch_loss(outputs, targets, None, 3, Criterion("huber", epsilon=0.5))
    assert got.item() == pytest.approx((huber.sum() / 3).item())
    assert got.item() < batch_loss(outputs, targets, None, 3, Criterion("squared_error"))
    score = Criterion("squared_error").score(outputs.numpy(), targets.numpy(), [1, 2, 1])
    assert score == pytest.approx(r2_score(targets.numpy(), outputs.numpy(),
                                           sample_weight=[1, 2, 1]))


def test_early_stopping_scores_r2_on_the_held_out_rows(tiny_params, data):
    """Check that early stopping keeps the epoch of the best validation R²: re-scoring the
    held-out rows with the kept weights gives ``best_validation_score_``."""
    from sklearn.utils import check_random_state

    from skbert import _sources

    X, t, _, _ = data
    params = dict(tiny_params, early_stopping=True, max_iter=6, validation_fraction=0.25,
                  inference_dtype="float32")
    reg = BertTextRegressor(**params).fit(X, t)
    seed = check_random_state(0).randint(np.iinfo(np.int32).max)
    _, val_rows = _sources.validation_split(t, seed, 0.25, why="early_stopping",
                                            stratify=False)
    held_out = reg.score([X[i] for i in val_rows], t[val_rows])
    assert held_out == pytest.approx(reg.best_validation_score_, abs=1e-5)
    assert reg.best_validation_score_ == max(reg.validation_scores_)


def test_text_pairs(tiny_params):
    """Check that pairs train as one [SEP] sequence: the target is the sum of the two
    texts' polarities, which needs both texts; single texts are refused after."""
    X1, y1 = make_texts(160, seed=2)
    X2, y2 = make_texts(160, seed=3)
    pairs = np.c_[X1, X2]
    target = (y1 + y2).astype(float)
    reg = BertTextRegressor(**dict(tiny_params, max_iter=10)).fit(pairs[:120], target[:120])
    assert reg.text_pairs_
    assert reg.score(pairs[120:], target[120:]) > 0.5
    with pytest.raises(ValueError, match="fitted on text pairs; X must be text pairs too"):
        reg.predict(X1[:2])


def test_partial_fit_stream_resumes_from_its_checkpoint(tiny_params, data, tmp_path):
    """Check that a stream standardises with its first chunk, and that resuming from its
    checkpoint continues exactly as the stream in memory does."""
    X, t, X_test, _ = data
    params = dict(tiny_params, checkpoint_dir=str(tmp_path / "a"))
    reg = BertTextRegressor(**params)
    reg.partial_fit(X[:70], t[:70])
    np.testing.assert_allclose(reg.y_mean_, [t[:70].mean()])
    resumed = BertTextRegressor.resume(tmp_path / "a")
    resumed.set_params(checkpoint_dir=str(tmp_path / "b"))
    reg.partial_fit(X[70:], t[70:])
    resumed.partial_fit(X[70:], t[70:])
    assert reg.n_iter_ == resumed.n_iter_ == 2
    np.testing.assert_allclose(reg.y_mean_, [t[:70].mean()])  # fixed by the first chunk
    np.testing.assert_allclose(resumed.predict(X_test), reg.predict(X_test), rtol=1e-5)
    with pytest.raises(ValueError, match="y has 2 target columns, but this stream has 1"):
        reg.partial_fit(X[:10], np.c_[t[:10], t[:10]])


@pytest.mark.parametrize("how", ["pickle", "skops"])
def test_persistence_round_trip(fitted_regressor, data, tmp_path, how):
    """Check that pickle and skops (with the trusted types only) predict the same."""
    _, _, X_test, _ = data
    if how == "pickle":
        loaded = pickle.loads(pickle.dumps(fitted_regressor))
    else:
        sio.dump(fitted_regressor, tmp_path / "r.skops")
        loaded = sio.load(tmp_path / "r.skops", trusted=TRUSTED_TYPES)
    assert isinstance(loaded, BertTextRegressor)
    np.testing.assert_array_equal(loaded.predict(X_test), fitted_regressor.predict(X_test))


@pytest.mark.parametrize(
    "y, message",
    [
        ([1.0, np.nan, 2.0, 3.0], r"missing \(NaN\) target at index 1"),
        ([1.0, 2.0, np.inf, 3.0], "infinite target at index 2"),
        ([[1.0, 2.0], [1.0, np.nan], [0.0, 1.0], [2.0, 2.0]],
         r"NaN\) target at index 1, column 1"),
        (["1.5", "2", "high", "3"], "y must hold numbers; got str 'high' at index 2"),
        ([1.0, 2.0, 3.0], "inconsistent lengths: 4 texts and 3 targets"),
        (None, "y is required"),
    ],
)
def test_bad_targets_are_named(tiny_params, y, message):
    """Check that bad targets fail before training, naming the row (and column)."""
    with pytest.raises(ValueError, match=message):
        BertTextRegressor(**tiny_params).fit(["a", "b", "c", "d"], y)


def test_numeric_strings_are_targets(tiny_params):
    """Check that numbers read as strings (a CSV column) are taken as numbers."""
    reg = BertTextRegressor(**dict(tiny_params, max_iter=1)).fit(
        ["good film", "bad film", "fine", "awful"], ["4.5", "1", "3.5", "0.5"])
    np.testing.assert_allclose(reg.y_mean_, [2.375])


def test_grid_search_and_cross_val_score(tiny_params, data):
    """Check that GridSearchCV over learning rates with KFold and cross_val_score (R²)
    work as for any scikit-learn regressor."""
    X, t, _, _ = data
    params = dict(tiny_params, max_iter=3)
    search = GridSearchCV(BertTextRegressor(**params), {"learning_rate": [1e-5, 5e-3]},
                          cv=KFold(2, shuffle=True, random_state=0)).fit(X, t)
    assert search.best_params_ == {"learning_rate": 5e-3}  # 1e-5 learns nothing in 3 epochs
    scores = cross_val_score(BertTextRegressor(**params), X, t, cv=2, scoring="r2")
    assert scores.shape == (2,) and scores.min() > 0.1  # better than the mean


def test_frozen_base_trains_the_head(tiny_params, data):
    """Check that a frozen base leaves the encoder as loaded and still fits the head."""
    X, t, X_test, t_test = data
    reg = BertTextRegressor(**dict(tiny_params, freeze_base=True, learning_rate=5e-2,
                                   max_iter=30)).fit(X, t)
    assert reg.score(X_test, t_test) > 0.0
    fresh = BertTextRegressor(**dict(tiny_params, freeze_base=True, max_iter=1)).fit(X, t)
    np.testing.assert_allclose(reg.transform(X_test[:5]), fresh.transform(X_test[:5]),
                               rtol=1e-5, atol=1e-6)


@settings(max_examples=5, deadline=None)
@given(st.permutations(range(12)), st.integers(16, 400))
def test_predict_is_order_and_budget_invariant(fitted_regressor, order, budget):
    """Check that predictions follow the input order whatever the batch token budget."""
    texts = make_texts(12, seed=5)[0]
    reg = pickle.loads(pickle.dumps(fitted_regressor))
    reg.set_params(predict_batch_tokens=budget, inference_dtype="float32")
    expected = pickle.loads(pickle.dumps(fitted_regressor)).set_params(
        inference_dtype="float32").predict(texts)
    got = reg.predict([texts[i] for i in order])
    np.testing.assert_allclose(got, expected[list(order)], rtol=1e-4, atol=1e-4)


def test_stream_of_a_near_constant_first_chunk_stays_finite(tiny_params):
    """Check that a first chunk constant up to rounding (std 1e-17) is centred, not
    divided by its rounding error, with a warning; the next chunk trains finitely."""
    X, _ = make_texts(30, seed=8)
    reg = BertTextRegressor(**dict(tiny_params, max_grad_norm=None))
    with pytest.warns(UserWarning, match=r"constant value in target column\(s\) \[0\]"):
        reg.partial_fit(X[:3], [0.1, 0.1, 0.1])
    assert reg.y_scale_.tolist() == [1.0]
    reg.partial_fit(X[3:], np.linspace(0, 1000, 27))
    assert np.isfinite(reg.loss_curve_).all() and np.isfinite(reg.predict(X)).all()


def test_held_out_rows_must_be_two_and_streams_refuse_early_stopping(tiny_params):
    """Check that early stopping refuses a held-out split of one text (R² of one text is
    undefined) and that partial_fit refuses early_stopping for a regressor too."""
    X, _ = make_texts(10, seed=9)
    y = np.arange(10.0)
    with pytest.raises(ValueError, match="which is 1 text; a validation score needs at "
                                         "least 2"):
        BertTextRegressor(**dict(tiny_params, early_stopping=True)).fit(X, y)
    with pytest.raises(ValueError, match="partial_fit does not support early_stopping"):
        BertTextRegressor(**dict(tiny_params, early_stopping=True)).partial_fit(X, y)
