"""``skbert evaluate``: the scores as text and JSON, labels read as the model's
classes, and the warning for a model that predicts one class."""


import numpy as np
import pytest

from skbert._cli import CommandError
from skbert._cli.data import align_labels

from . import _cli_support
from ._cli_support import (
    run_main,
    write_frame,
)

# The shared fixtures of the command-line tests.
model_path = _cli_support.model_path
test_frame = _cli_support.test_frame


def test_align_labels():
    """Check ints against str classes and the reverse; unknown labels are an error."""
    str_classes, int_classes = np.array(["0", "1"]), np.array([0, 1])
    assert align_labels(np.array([1, 0]), str_classes).tolist() == ["1", "0"]
    assert align_labels(np.array([1.0, 0.0]), str_classes).tolist() == ["1", "0"]
    assert align_labels(np.array(["1", " 0"], dtype=object), int_classes).tolist() == [1, 0]
    with pytest.raises(CommandError, match=r"does not know: 2; its classes are \[0, 1\]"):
        align_labels(np.array([0, 2]), int_classes)


def test_evaluate_json_matches_the_text_report(model_path, test_frame, tmp_path, capsys):
    """Check evaluate --json: the same scores as the text report, per class too."""
    import json

    data = write_frame(test_frame, tmp_path / "test.csv")
    status, text, _ = run_main(capsys, "evaluate", model_path, data, "--quiet")
    assert status == 0
    status, out, _ = run_main(capsys, "evaluate", model_path, data, "--quiet", "--json")
    scores = json.loads(out)
    assert f"accuracy: {scores['accuracy']:.4f}" in text
    assert f"MCC:      {scores['mcc']:.4f}" in text
    assert scores["rows"] == len(test_frame) and set(scores["classes"]) == {"neg", "pos"}
    assert scores["classes"]["pos"]["support"] == (test_frame["label"] == "pos").sum()


def test_evaluate_warns_when_every_prediction_is_one_class(test_frame, tmp_path, capsys,
                                                           monkeypatch):
    """Check the warning for a model that predicts one class for every row (MCC 0)."""
    from skbert._cli import evaluate

    class OneClass:
        classes_ = np.array(["neg", "pos"])

        def predict_proba(self, texts):
            return np.tile([0.9, 0.1], (len(texts), 1))

    monkeypatch.setattr(evaluate, "load_model", lambda path: OneClass())
    data = write_frame(test_frame, tmp_path / "test.csv")
    status, out, err = run_main(capsys, "evaluate", tmp_path / "m.skops", data, "--quiet")
    assert status == 0 and "MCC:      0.0000" in out
    assert f"warning: the model predicts 'neg' for every one of the {len(test_frame)} rows" in err
