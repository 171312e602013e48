"""MAPIE's split-conformal classifier on a fitted skbert classifier (``prefit=True``)."""

import numpy as np
import pytest

mapie_classification = pytest.importorskip("mapie.classification")


@pytest.mark.any_precision
@pytest.mark.parametrize("confidence", [0.8, 0.9])
def test_mapie_agrees_with_predict_set(fitted, toy_data, confidence):
    """Check that MAPIE's SplitConformalClassifier accepts a fitted BertTextClassifier
    (prefit) and, conformalized on the same texts with the same score (LAC) and
    confidence, gives the same sets as calibrate_sets then predict_set."""
    import pickle

    clf = pickle.loads(pickle.dumps(fitted))  # calibrate a copy: fitted is shared
    _, _, X_test, y_test = toy_data
    labels = np.array(["neg", "pos"])[y_test]
    # A 1-D array of str: MAPIE counts features from its shape (a list has none).
    X_test = np.asarray(X_test)
    X_cal, y_cal, X_new = X_test[:30], labels[:30], X_test[30:]
    mapie = mapie_classification.SplitConformalClassifier(
        clf, confidence_level=confidence, conformity_score="lac", prefit=True)
    mapie.conformalize(X_cal, y_cal)
    point, sets = mapie.predict_set(X_new)
    assert sets.shape == (len(X_new), 2, 1)
    np.testing.assert_array_equal(point, clf.predict(X_new))
    ours = clf.calibrate_sets(X_cal, y_cal).predict_set(X_new, confidence=confidence)
    np.testing.assert_array_equal(ours, sets[:, :, 0])
