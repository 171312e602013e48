"""scikit-learn conventions: estimator checks, clone, search, CV and pipelines."""

import numpy as np
import pytest
from sklearn.base import clone, is_classifier, is_regressor
from sklearn.model_selection import GridSearchCV, StratifiedKFold, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as ec

from skbert import BertTextClassifier, BertTextRegressor

# The checks of scikit-learn that apply to an estimator of raw text; the others feed
# numeric matrices (parametrize_with_checks skips string-input estimators anyway).
GENERIC_CHECKS = [
    ec.check_no_attributes_set_in_init,
    ec.check_parameters_default_constructible,
    ec.check_get_params_invariance,
    ec.check_set_params,
    ec.check_estimator_repr,
    ec.check_estimator_cloneable,
    ec.check_mixin_order,
    ec.check_do_not_raise_errors_in_init_or_set_params,
    ec.check_estimators_unfitted,
    ec.check_valid_tag_types,
    ec.check_estimator_tags_renamed,
]


ESTIMATORS = [BertTextClassifier, BertTextRegressor]


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("check", GENERIC_CHECKS, ids=lambda c: c.__name__)
def test_sklearn_generic_check(check, cls):
    """Check that a scikit-learn estimator check passes."""
    check(cls.__name__, cls())


@pytest.mark.parametrize("cls", ESTIMATORS, ids=lambda c: c.__name__)
def test_sklearn_param_validation(tiny_params, cls):
    """Check that every parameter is validated with scikit-learn's own error."""
    ec.check_param_validation(cls.__name__, cls(**tiny_params))


def test_is_classifier_and_tags():
    """Check that scikit-learn sees a classifier of strings, not of 2-D arrays."""
    clf = BertTextClassifier()
    assert is_classifier(clf)
    tags = clf.__sklearn_tags__()
    assert tags.estimator_type == "classifier"
    assert tags.input_tags.string and not tags.input_tags.two_d_array


def test_is_regressor_and_tags():
    """Check that scikit-learn sees a multi-output regressor of strings."""
    reg = BertTextRegressor()
    assert is_regressor(reg) and not is_classifier(reg)
    tags = reg.__sklearn_tags__()
    assert tags.estimator_type == "regressor" and tags.target_tags.multi_output
    assert tags.input_tags.string and not tags.input_tags.two_d_array


def test_import_does_not_load_transformers():
    """Check that import, clone and get_params do not import transformers."""
    import subprocess
    import sys

    code = (
        "import sys, skbert; from sklearn.base import clone; "
        "c = clone(skbert.BertTextClassifier(learning_rate=1e-5)); c.get_params(); "
        "print('transformers' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_clone_of_fitted_is_unfitted(fitted):
    """Check that clone keeps parameters and drops fitted state."""
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_")


def test_grid_search_over_learning_rate(tiny_params, toy_data):
    """Check that GridSearchCV fits, scores and refits over learning rates."""
    X, y, X_test, y_test = toy_data
    search = GridSearchCV(
        BertTextClassifier(**tiny_params),
        {"learning_rate": [1e-5, 5e-3]}, cv=3,
    ).fit(X, y)
    scores = search.cv_results_["mean_test_score"]
    assert scores.shape == (2,)
    # A rate 500x smaller barely moves a random BERT in a few epochs.
    assert scores[1] > scores[0]
    assert search.best_params_ == {"learning_rate": 5e-3}
    assert search.score(X_test, y_test) > 0.8


def test_cross_val_score_with_proba_scorer_in_pipeline(tiny_params, toy_data):
    """Check cross_val_score with roc_auc (needs predict_proba) through a Pipeline."""
    X, y, _, _ = toy_data
    pipe = make_pipeline(
        FunctionTransformer(lambda texts: [t.upper().lower() for t in texts]),
        BertTextClassifier(**tiny_params),
    )
    scores = cross_val_score(pipe, X, y, cv=StratifiedKFold(3), scoring="roc_auc")
    assert scores.shape == (3,)
    assert scores.min() > 0.8
    f1 = cross_val_score(pipe, X, np.array(["b", "a"])[y], cv=3, scoring="f1_macro")
    assert f1.min() > 0.7


# ------------------------------------------------------------------ pandas output
def test_feature_names_out_name_each_embedding_dimension(fitted):
    """Check that get_feature_names_out names transform's columns after the class (as
    PCA does), one per hidden dimension, and refuses an unfitted estimator."""
    from sklearn.exceptions import NotFittedError

    names = fitted.get_feature_names_out()
    width = fitted.model_.backbone.config.hidden_size
    assert names.tolist() == [f"berttextclassifier{i}" for i in range(width)]
    with pytest.raises(NotFittedError):
        BertTextClassifier().get_feature_names_out()


def test_set_output_pandas_in_a_pipeline_and_a_column_transformer(tiny_params, toy_data):
    """Check that set_output(transform="pandas") gives named DataFrame columns from skbert
    as a Pipeline step and inside a ColumnTransformer beside a numeric column, with the
    values of the plain transform."""
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y, X_test, _ = toy_data
    params = dict(tiny_params, max_iter=1, inference_dtype="float32")
    pipe = Pipeline([("bert", BertTextClassifier(**params)), ("scale", StandardScaler())])
    pipe.set_output(transform="pandas").fit(X, y)
    out = pipe.transform(pd.Series(X_test, index=range(100, 100 + len(X_test))))
    assert isinstance(out, pd.DataFrame) and out.columns[0] == "berttextclassifier0"
    assert out.index.tolist() == list(range(100, 100 + len(X_test)))
    frame = pd.DataFrame({"review": X, "stars": np.arange(len(X)) % 5})
    columns = ColumnTransformer([("text", BertTextClassifier(**params), "review"),
                                 ("num", "passthrough", ["stars"])])
    model = Pipeline([("features", columns), ("clf", LogisticRegression(max_iter=200))])
    model.set_output(transform="pandas").fit(frame, y)
    features = model[:-1].transform(frame)
    assert isinstance(features, pd.DataFrame)
    assert features.columns[-1] == "num__stars" and "text__berttextclassifier0" in features
    plain = model.named_steps["features"].named_transformers_["text"]
    np.testing.assert_allclose(
        features.filter(like="text__").to_numpy(), plain.set_output(transform="default")
        .transform(frame["review"]), rtol=1e-6)
    assert model.score(frame, y) > 0.5
