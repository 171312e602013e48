"""MLflow and Optuna around skbert (docs/tracking.md): a real local MLflow store (a SQLite
file in a temp folder, no server) and in-memory Optuna studies, on the tiny BERT.

Nothing here may reach the network: every test runs with outbound connections refused,
MLflow's telemetry is off, and models are logged with explicit ``pip_requirements`` (so
MLflow infers none).
"""

import itertools
import math
import os
import re
import socket
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GridSearchCV

from skbert import TRUSTED_TYPES, BertTextClassifier

pytestmark = [
    pytest.mark.any_precision,  # tracking and search, not numbers of one precision
    # MLflow 3.18's SQLite store uses a loader strategy SQLAlchemy 2.1 deprecates, and its
    # autologged training metrics call scikit-learn 1.9's log_loss with the old keyword:
    # both are MLflow's, not skbert's.
    pytest.mark.filterwarnings("ignore:The ``noload`` loader strategy:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`y_pred` was renamed to `y_proba`:FutureWarning"),
    # pyspark, which mlflow.pyfunc imports when it is installed, about pandas 3.
    pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas:FutureWarning"),
]

ROOT = Path(__file__).resolve().parents[1]
_MLFLOW_MISSING = "MLflow tests need mlflow-skinny (pip install 'skbert[tracking]' or '[test]')"
_OPTUNA_MISSING = "Optuna tests need optuna (pip install 'skbert[tracking]' or '[test]')"


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Refuse every outbound internet connection made during a test."""
    connect = socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError(f"test_tracking: network access refused ({address!r})")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory):
    """mlflow, tracking to a SQLite file in a temp folder (one database per module: its
    tables take seconds to create); restored to MLflow's defaults afterwards."""
    with pytest.MonkeyPatch.context() as env:
        # Read when mlflow is imported: no telemetry thread (pytest alone turns it off
        # only once a test runs, and collection may import mlflow first).
        env.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        env.delenv("MLFLOW_TRACKING_URI", raising=False)  # set_tracking_uri writes it
        mlflow = pytest.importorskip("mlflow", reason=_MLFLOW_MISSING)
        pytest.importorskip("mlflow.sklearn", reason=_MLFLOW_MISSING)
        pytest.importorskip("sqlalchemy", reason="MLflow's SQLite store needs sqlalchemy")

        folder = tmp_path_factory.mktemp("mlflow")
        mlflow.set_tracking_uri(f"sqlite:///{folder / 'mlflow.db'}")
        yield mlflow, folder
        while mlflow.active_run() is not None:
            mlflow.end_run()
        mlflow.sklearn.autolog(disable=True)
        mlflow.set_tracking_uri(None)


@pytest.fixture
def experiment(mlflow_store, request):
    """A fresh experiment of the module's store, its artifacts in the temp folder."""
    mlflow, folder = mlflow_store
    name = request.node.name
    artifacts = (folder / "artifacts" / name).as_uri()
    return mlflow.create_experiment(name, artifact_location=artifacts)


@pytest.fixture(scope="module")
def optuna():
    """optuna, quiet but for warnings."""
    optuna = pytest.importorskip("optuna", reason=_OPTUNA_MISSING)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


# ------------------------------------------------------------------ MLflow
@pytest.mark.parametrize("serialization_format", ["skops", "cloudpickle"])
def test_mlflow_log_model_round_trip_predicts_identically(
        mlflow_store, experiment, fitted, toy_data, serialization_format):
    """Check that mlflow.sklearn.log_model then load_model gives back a classifier that
    predicts bit for bit as the fitted one, in skops and in cloudpickle format."""
    mlflow, _ = mlflow_store
    _, _, X_test, _ = toy_data
    trust = {"skops_trusted_types": TRUSTED_TYPES} if serialization_format == "skops" else {}
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            fitted, name="model", serialization_format=serialization_format,
            pip_requirements=["skbert"], **trust,
        )
    flavor = mlflow.models.get_model_info(info.model_uri).flavors["sklearn"]
    assert flavor["serialization_format"] == serialization_format

    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert type(loaded) is BertTextClassifier and loaded is not fitted
    assert list(loaded.classes_) == ["neg", "pos"]
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    np.testing.assert_array_equal(loaded.predict(X_test), fitted.predict(X_test))


def test_mlflow_skops_artifact_loads_trusting_only_skbert(
        mlflow_store, experiment, fitted, toy_data):
    """Check that the skops file MLflow logs asks to trust skbert's class alone, and loads
    with skops trusting ``TRUSTED_TYPES`` (not the list the artifact carries)."""
    import skops.io as sio

    mlflow, _ = mlflow_store
    _, _, X_test, _ = toy_data
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            fitted, name="model", serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES, pip_requirements=["skbert"],
        )
    # MLflow's load_model trusts the types written in the artifact's MLmodel file...
    flavor = mlflow.models.get_model_info(info.model_uri).flavors["sklearn"]
    assert flavor["skops_trusted_types"] == TRUSTED_TYPES
    # ...so from a source you do not control, load the file with your own list.
    folder = mlflow.artifacts.download_artifacts(info.model_uri)
    path = f"{folder}/model.skops"
    assert sio.get_untrusted_types(file=path) == ["skbert._classifier.BertTextClassifier"]
    loaded = sio.load(path, trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))


def test_mlflow_docs_recipe_logs_signature_and_input_example(
        mlflow_store, experiment, fitted, toy_data, caplog):
    """Check that docs/tracking.md's recipe, under MLflow 3.18's defaults (a SQLite store,
    skops with ``TRUSTED_TYPES``), logs a signature of one string column and an input
    example, and that the model loads back, as scikit-learn and as pyfunc, and predicts
    as the fitted one."""
    import pandas as pd
    from mlflow.models import infer_signature

    mlflow, _ = mlflow_store
    _, _, X_test, _ = toy_data
    recipe = _python_block(ROOT / "docs" / "tracking.md", "mlflow.sklearn.log_model(")
    for needed in ("sqlite:///", "skops_trusted_types=TRUSTED_TYPES", "signature=infer_signature(",
                   "input_example=example", "mlflow.pyfunc.load_model("):
        assert needed in recipe, f"docs/tracking.md's recipe lacks {needed}"

    example = X_test[:2]
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            fitted, name="model", serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES, pip_requirements=["skbert"],
            signature=infer_signature(example, fitted.predict(example)), input_example=example,
        )
    # MLflow predicted the input example when logging; a failure there only logs a warning.
    assert "Failed to validate serving input" not in caplog.text
    model_info = mlflow.models.get_model_info(info.model_uri)
    assert [spec.type.name for spec in model_info.signature.inputs] == ["string"]
    assert model_info.signature.outputs is not None
    assert model_info.saved_input_example_info is not None
    folder = mlflow.artifacts.download_artifacts(info.model_uri)
    assert {"input_example.json", "serving_input_example.json", "model.skops"} <= set(
        os.listdir(folder))

    loaded = mlflow.sklearn.load_model(info.model_uri)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    served = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(served.predict(X_test), fitted.predict(X_test))
    np.testing.assert_array_equal(  # a request: one column of texts
        served.predict(pd.DataFrame({"text": X_test[:5]})), fitted.predict(X_test[:5]))


def _python_block(path, containing):
    """The first fenced python block of a Markdown page that contains ``containing``."""
    blocks = re.findall(r"^```python\n(.*?)^```", path.read_text(encoding="utf-8"),
                        flags=re.S | re.M)
    return next(block for block in blocks if containing in block)


# The autologged training metrics of a candidate that predicts one class.
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.UndefinedMetricWarning")
def test_mlflow_autolog_grid_search_logs_parent_and_child_runs(
        mlflow_store, experiment, tiny_params, toy_data):
    """Check that mlflow.sklearn.autolog around GridSearchCV over skbert logs a parent run
    with the best parameters and score, and one child run per candidate with skbert's
    parameters and its cross-validated score."""
    mlflow, _ = mlflow_store
    X, y, _, _ = toy_data
    # An ndarray (or DataFrame) of texts: with a list, MLflow 3.18 drops the child runs.
    X = np.asarray(X[:60], dtype=object)
    grid = {"learning_rate": [1e-3, 5e-3], "max_iter": [1, 2]}
    mlflow.sklearn.autolog(log_models=False, silent=True)
    try:
        with mlflow.start_run(experiment_id=experiment) as parent:
            search = GridSearchCV(BertTextClassifier(**tiny_params), grid, cv=2).fit(X, y[:60])
    finally:
        mlflow.sklearn.autolog(disable=True)

    run = mlflow.get_run(parent.info.run_id)
    assert run.data.params["best_learning_rate"] == str(search.best_params_["learning_rate"])
    assert run.data.params["best_max_iter"] == str(search.best_params_["max_iter"])
    assert run.data.metrics["best_cv_score"] == pytest.approx(search.best_score_)
    children = mlflow.search_runs(
        experiment_ids=[experiment], output_format="list",
        filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
    )
    logged = {(c.data.params["learning_rate"], c.data.params["max_iter"]): c for c in children}
    assert set(logged) == {(str(lr), str(n)) for lr, n in itertools.product(*grid.values())}
    for params, score in zip(search.cv_results_["params"],
                             search.cv_results_["mean_test_score"], strict=True):
        child = logged[str(params["learning_rate"]), str(params["max_iter"])]
        assert child.data.metrics["mean_test_score"] == pytest.approx(score)
        assert child.data.params["batch_size"] == str(tiny_params["batch_size"])
        assert child.data.params["model_name_or_path"] == tiny_params["model_name_or_path"]


# ------------------------------------------------------------------ Optuna
def _objective(optuna, params, data, models, learning_rates, epochs):
    """The docs' objective: one ``partial_fit`` pass per epoch under ``fit``'s schedule,
    the held-out accuracy reported after each, pruned when the pruner says so."""
    X_train, y_train, X_val, y_val = data

    def objective(trial):
        learning_rate = trial.suggest_float("learning_rate", *learning_rates, log=True)
        max_iter = trial.suggest_int("max_iter", *epochs)
        steps = max_iter * math.ceil(len(X_train) / params["batch_size"])
        clf = BertTextClassifier(**dict(params, learning_rate=learning_rate,
                                        max_iter=max_iter, max_steps=steps))
        models[trial.number] = clf
        for epoch in range(max_iter):
            clf.partial_fit(X_train, y_train, classes=[0, 1])
            score = clf.score(X_val, y_val)
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return score

    return objective


@pytest.fixture(scope="module")
def split(toy_data):
    """60 training texts and 30 held-out ones."""
    X, y, _, _ = toy_data
    return X[:60], y[:60], X[60:90], y[60:90]


def test_partial_fit_epochs_match_fit(tiny_params, split):
    """Check that ``max_iter`` partial_fit passes over the same texts with ``max_steps`` set
    to their steps train exactly as ``fit``: same schedule, shuffles and weights."""
    X_train, y_train, X_val, _ = split
    params = dict(tiny_params, max_iter=3)
    fitted = BertTextClassifier(**params).fit(X_train, y_train)
    steps = 3 * math.ceil(len(X_train) / params["batch_size"])
    looped = BertTextClassifier(**dict(params, max_steps=steps))
    for _ in range(3):
        looped.partial_fit(X_train, y_train, classes=[0, 1])
    assert looped.n_iter_ == fitted.n_iter_ == 3
    assert looped.loss_curve_ == fitted.loss_curve_
    np.testing.assert_array_equal(looped.predict_proba(X_val), fitted.predict_proba(X_val))


def test_optuna_search_reports_each_epoch_and_keeps_the_best(optuna, tiny_params, split):
    """Check that a 3-trial Optuna study over learning rate and epochs reports one score
    per epoch, stays within its ranges, and that its best value is the held-out accuracy
    of the best trial's estimator."""
    models = {}
    study = optuna.create_study(direction="maximize",
                                sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(_objective(optuna, tiny_params, split, models, (1e-3, 1e-2), (1, 3)),
                   n_trials=3)

    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 3
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == list(range(trial.params["max_iter"]))
        assert trial.value == trial.intermediate_values[trial.params["max_iter"] - 1]
    best = study.best_params
    assert 1e-3 <= best["learning_rate"] <= 1e-2 and 1 <= best["max_iter"] <= 3
    assert study.best_value == max(t.value for t in study.trials)
    clf = models[study.best_trial.number]
    assert clf.n_iter_ == best["max_iter"] and clf.learning_rate == best["learning_rate"]
    _, _, X_val, y_val = split
    assert clf.score(X_val, y_val) == study.best_value


def test_optuna_pruning_stops_training_early(optuna, tiny_params, split):
    """Check that a pruner acting on the per-epoch reports stops a trial's training at
    the epoch it prunes (a threshold no accuracy reaches prunes after the 2nd epoch)."""
    models = {}
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.ThresholdPruner(lower=2.0, n_warmup_steps=1),
    )
    study.optimize(_objective(optuna, tiny_params, split, models, (1e-3, 1e-2), (3, 4)),
                   n_trials=2)

    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    for trial in study.trials:
        assert trial.params["max_iter"] >= 3
        assert sorted(trial.intermediate_values) == [0, 1]
        assert models[trial.number].n_iter_ == 2  # two passes of max_iter were trained
