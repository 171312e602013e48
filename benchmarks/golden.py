"""Record or compare golden fp32 outputs of the training paths on a tiny random BERT.

Run once before a change to the training code and once after::

    python benchmarks/golden.py --out before.npz
    python benchmarks/golden.py --compare before.npz

Scenarios: ``fit`` (full fine-tuning), ``stream`` (3 ``partial_fit`` chunks with a
checkpoint and ``resume`` after the second), ``frozen`` (``freeze_base=True``) and
``mlm`` (``MaskedLMPretrainer`` then ``fit`` on its output). Each records the fp32 CPU
probabilities on held-out texts and the loss curve.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from conftest import build_tiny_bert, make_texts  # noqa: E402


def scenarios(folder):
    from skbert import BertTextClassifier, MaskedLMPretrainer

    model = build_tiny_bert(Path(folder, "tiny"))
    X, y = make_texts(180, seed=1)
    X_train, y_train, X_test = X[:120], y[:120], X[120:]
    params = dict(model_name_or_path=model, learning_rate=5e-3, max_iter=4, batch_size=16,
                  max_length=32, device="cpu", random_state=0, inference_dtype="float32")
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
                             max_iter=2, device="cpu", random_state=0).fit(X_train)
    mlm.save_pretrained(Path(folder, "mlm"))
    clf = BertTextClassifier(**{**params, "model_name_or_path": str(Path(folder, "mlm"))})
    clf.fit(X_train, y_train)
    out["mlm"] = (clf.predict_proba(X_test), mlm.loss_curve_ + clf.loss_curve_)
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--out", help="write the outputs to this .npz")
    group.add_argument("--compare", help="compare with the outputs in this .npz")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = scenarios(folder)
    if args.out:
        arrays = {}
        for name, (proba, curve) in out.items():
            arrays[f"{name}_proba"], arrays[f"{name}_loss"] = proba, np.asarray(curve)
        np.savez(args.out, **arrays)
        print(f"wrote {args.out}")
        return
    old = np.load(args.compare)
    print(f"{'scenario':<8} {'max |dp|':>10} {'argmax same':>12} {'max |dloss|':>12}")
    for name, (proba, curve) in out.items():
        before, loss = old[f"{name}_proba"], old[f"{name}_loss"]
        dloss = (np.abs(np.asarray(curve) - loss).max() if len(curve) == len(loss)
                 else float("nan"))
        same = np.mean(before.argmax(1) == proba.argmax(1))
        print(f"{name:<8} {np.abs(before - proba).max():>10.2e} {same:>12.1%} {dloss:>12.2e}")


if __name__ == "__main__":
    main()
