"""Golden outputs: every training path gives the outputs it gave when they were recorded.

The scenarios run fp32 on the CPU from the tiny random BERT (``build_tiny_bert``):
``fit``, ``stream`` (three ``partial_fit`` chunks, a checkpoint and ``resume`` after
the second), ``frozen`` (``freeze_base=True``), ``mlm`` (``MaskedLMPretrainer`` then
``fit`` on its folder), ``multilabel`` (tuned thresholds), ``regressor`` and
``window`` (``truncation="window"``). Each records the probabilities (predictions of
the regressor) on held-out texts and the loss curve, in ``tests/data/golden.npz``.

A change that moves code around must leave them as they are. A change meant to alter
what training computes re-records them, and says so in its commit::

    python tests/test_golden.py --write

The tolerance covers what differs between CPUs (vectorised fp32 kernels sum in other
orders); a change of behaviour (another batch order, seed, schedule or initialisation)
moves the outputs by far more.
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).resolve().parent / "data" / "golden.npz"
# Measured: the outputs recorded with torch's AVX2 kernels and with its unvectorised
# ones (ATEN_CPU_CAPABILITY=default) differ by at most 1e-5 (the window scenario; the
# others by 4e-7 at most).
ATOL = 1e-4


def scenarios(folder):
    """Run every scenario in ``folder``; return {name: (outputs, loss curve)}."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from conftest import build_tiny_bert, make_multilabel_texts, make_texts

    from skbert import BertTextClassifier, BertTextRegressor, MaskedLMPretrainer

    model = build_tiny_bert(Path(folder, "tiny"))
    X, y = make_texts(180, seed=1)
    X_train, y_train, X_test = X[:120], y[:120], X[120:]
    params = dict(model_name_or_path=model, learning_rate=5e-3, max_iter=4, batch_size=16,
                  max_length=32, device="cpu", random_state=0, training_dtype="float32",
                  inference_dtype="float32")
    out = {}

    clf = BertTextClassifier(**params).fit(X_train, y_train)
    out["fit"] = (clf.predict_proba(X_test), clf.loss_curve_)

    ckpt = Path(folder, "ckpt")
    clf = BertTextClassifier(**params, max_steps=9, checkpoint_dir=str(ckpt))
    chunks = [slice(0, 40), slice(40, 80), slice(80, 120)]
    for part in chunks[:2]:
        clf.partial_fit(X_train[part], y_train[part], classes=[0, 1])
    clf = BertTextClassifier.resume(ckpt)
    clf.partial_fit(X_train[chunks[2]], y_train[chunks[2]])
    out["stream"] = (clf.predict_proba(X_test), clf.loss_curve_)

    clf = BertTextClassifier(**{**params, "learning_rate": 1e-2}, freeze_base=True)
    clf.fit(X_train, y_train)
    out["frozen"] = (clf.predict_proba(X_test), clf.loss_curve_)

    mlm = MaskedLMPretrainer(model, max_length=32, batch_size=16, learning_rate=1e-3,
                             max_iter=2, device="cpu", random_state=0,
                             training_dtype="float32").fit(X_train)
    mlm.save_pretrained(Path(folder, "mlm"))
    clf = BertTextClassifier(**{**params, "model_name_or_path": str(Path(folder, "mlm"))})
    clf.fit(X_train, y_train)
    out["mlm"] = (clf.predict_proba(X_test), mlm.loss_curve_ + clf.loss_curve_)

    T, Y = make_multilabel_texts(160, seed=2)
    clf = BertTextClassifier(**params, tune_thresholds=True).fit(T[:120], Y[:120])
    out["multilabel"] = (np.vstack([clf.predict_proba(T[120:]), clf.thresholds_[None, :]]),
                         clf.loss_curve_)

    reg = BertTextRegressor(**params).fit(X_train, y_train * 2.0 - 0.5)
    out["regressor"] = (reg.predict(X_test)[:, None], reg.loss_curve_)

    long = [" ".join([text] * 4) for text in X]
    clf = BertTextClassifier(**{**params, "max_length": 12}, truncation="window",
                             window_stride=6)
    clf.fit(long[:120], y_train)
    out["window"] = (clf.predict_proba(long[120:]), clf.loss_curve_)
    return out


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    return scenarios(tmp_path_factory.mktemp("golden"))


@pytest.mark.slow
@pytest.mark.any_precision
@pytest.mark.parametrize(
    "name", ["fit", "stream", "frozen", "mlm", "multilabel", "regressor", "window"])
def test_golden_outputs_unchanged(outputs, name):
    """Check that a training path gives the outputs and loss curve recorded for it."""
    golden = np.load(GOLDEN)
    values, curve = outputs[name]
    np.testing.assert_allclose(values, golden[f"{name}_outputs"], rtol=0, atol=ATOL,
                               err_msg=f"scenario {name!r}: outputs moved")
    np.testing.assert_allclose(curve, golden[f"{name}_loss"], rtol=0, atol=ATOL,
                               err_msg=f"scenario {name!r}: loss curve moved")


def main(argv):
    if argv != ["--write"]:
        sys.exit("usage: python tests/test_golden.py --write")
    with tempfile.TemporaryDirectory() as folder:
        out = scenarios(folder)
    arrays = {}
    for name, (values, curve) in out.items():
        arrays[f"{name}_outputs"], arrays[f"{name}_loss"] = values, np.asarray(curve)
    np.savez(GOLDEN, **arrays)
    print(f"wrote {GOLDEN}")


if __name__ == "__main__":
    main(sys.argv[1:])
