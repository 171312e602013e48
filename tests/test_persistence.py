"""pickle, joblib and skops round-trips carry weights and tokenizer inside."""

import pickle
import pickletools
import re
import shutil

import joblib
import numpy as np
import pytest
import skops.io as sio
import torch

from skbert import BertTextClassifier

TRUSTED = ["skbert._classifier.BertTextClassifier"]


def _pickled_modules(blob):
    """Module names of every class or function a pickle refers to."""
    modules, strings = set(), []
    for opcode, arg, _ in pickletools.genops(blob):
        if opcode.name in ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE"):
            strings.append(arg)
        elif opcode.name == "STACK_GLOBAL":
            modules.add(strings[-2])
        elif opcode.name == "GLOBAL":
            modules.add(arg.split(" ")[0])
    return modules


def test_pickle_refers_to_no_torch_or_transformers(fitted):
    """Check that the pickle stores plain values: no torch or transformers classes."""
    modules = _pickled_modules(pickle.dumps(fitted))
    assert "skbert._classifier" in modules
    assert not {m for m in modules if m.split(".")[0] in ("torch", "transformers", "tokenizers")}


@pytest.mark.parametrize("how", ["pickle", "joblib", "skops"])
def test_round_trip_predicts_identically_without_model_folder(
    how, tiny_params, toy_data, tmp_path, tiny_model_dir
):
    """Check that a saved estimator predicts identically after its folder is gone."""
    X, y, X_test, _ = toy_data
    folder = tmp_path / "model-copy"
    shutil.copytree(tiny_model_dir, folder)
    clf = BertTextClassifier(**dict(tiny_params, model_name_or_path=str(folder), max_iter=2))
    clf.fit(X, np.array(["neg", "pos"])[y])
    expected = clf.predict_proba(X_test)
    path = tmp_path / f"model.{how}"
    if how == "pickle":
        path.write_bytes(pickle.dumps(clf))
    elif how == "joblib":
        joblib.dump(clf, path)
    else:
        sio.dump(clf, path)
    shutil.rmtree(folder)
    if how == "pickle":
        loaded = pickle.loads(path.read_bytes())
    elif how == "joblib":
        loaded = joblib.load(path)
    else:
        loaded = sio.load(path, trusted=TRUSTED)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), expected)
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert loaded.get_params() == clf.get_params()
    assert loaded.loss_curve_ == clf.loss_curve_


def test_skops_needs_only_the_documented_trusted_type(fitted, tmp_path):
    """Check that skops asks to trust exactly the one documented type."""
    path = tmp_path / "model.skops"
    sio.dump(fitted, path)
    assert sio.get_untrusted_types(file=path) == TRUSTED


def test_skops_refuses_untrusted_type(fitted, tmp_path):
    """Check that a file holding an unexpected type is refused when loading."""
    path = tmp_path / "crafted.skops"
    sio.dump({"model": fitted, "extra": pickle.loads}, path)
    with pytest.raises(Exception, match="[Uu]ntrusted"):
        sio.load(path, trusted=TRUSTED)


@pytest.mark.parametrize("change", [{"head": (16,)}, {"head_dropout": 0.5},
                                    {"pooling": "cls"}, {"freeze_base": True}])
def test_set_params_after_fit_neither_breaks_saving_nor_retrains_another_network(
    tiny_params, toy_data, change
):
    """Check that a model saved after set_params changed how a network is built still
    loads as fitted, and that partial_fit refuses to continue it under those params."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1)).fit(X, y)
    expected = clf.predict_proba(X_test)
    clf.set_params(**change)
    loaded = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(loaded.predict_proba(X_test), expected, atol=1e-6)
    (name, value), = change.items()
    message = re.escape(f"{name}={value!r}, but the fitted network was built with {name}=")
    with pytest.raises(ValueError, match=message):
        loaded.partial_fit(X, y)
    clf.set_params(**{name: tiny_params.get(name, BertTextClassifier().get_params()[name])})
    clf.partial_fit(X, y)  # back as built: continues
    assert clf.n_iter_ == 1


@pytest.mark.parametrize("change", [{"head": (16,)}, {"head_dropout": 0.5},
                                    {"pooling": "cls"}, {"freeze_base": True},
                                    {"max_length": 100_000}])
def test_partial_fit_refuses_a_changed_network_between_chunks(tiny_params, toy_data, change):
    """Check that set_params between partial_fit calls of one stream is refused, naming
    the parameter, rather than ignored."""
    X, y, _, _ = toy_data
    clf = BertTextClassifier(**tiny_params).partial_fit(X, y, classes=np.unique(y))
    weights = [p.detach().clone() for p in clf.model_.parameters()]
    clf.set_params(**change)
    (name, value), = change.items()
    with pytest.raises(ValueError, match=re.escape(f"{name}={value!r}")):
        clf.partial_fit(X, y)
    assert clf.n_iter_ == 1
    assert all(torch.equal(a, b) for a, b in zip(weights, clf.model_.parameters(), strict=True))
