"""Hugging Face folders: save_pretrained, from_pretrained, push_to_hub, revision."""

import json

import numpy as np
import pytest
import torch

from skbert import BertTextClassifier, BertTextRegressor
from skbert._hub import CONFIG_NAME, HEAD_NAME

from .conftest import make_multilabel_texts


def wide_head(in_features, n_outputs):
    """A module-level head factory (saved by reference)."""
    return torch.nn.Sequential(torch.nn.Linear(in_features, 8), torch.nn.Tanh(),
                               torch.nn.Linear(8, n_outputs))


def _same_fitted(a, b):
    for name in ("classes_", "n_iter_", "loss_curve_", "n_samples_seen_", "text_pairs_",
                 "multilabel_", "thresholds_", "y_mean_", "y_scale_", "n_outputs_"):
        if hasattr(a, name):
            np.testing.assert_array_equal(getattr(b, name), getattr(a, name))
            assert type(getattr(b, name)) is type(getattr(a, name)), name


def test_folder_round_trip_predicts_identically(fitted, toy_data, tmp_path):
    """Check the files, that AutoModel and AutoTokenizer load the encoder with no custom
    code, and that from_pretrained predicts exactly as the saved estimator."""
    from transformers import AutoModel, AutoTokenizer

    _, _, X_test, _ = toy_data
    folder = fitted.save_pretrained(tmp_path / "model")
    names = {p.name for p in folder.iterdir()}
    assert {"config.json", "model.safetensors", CONFIG_NAME, HEAD_NAME, "README.md",
            "tokenizer.json"} <= names
    assert not any(n.endswith((".pkl", ".bin", ".pt", ".skops")) for n in names)
    encoder = AutoModel.from_pretrained(folder, trust_remote_code=False)
    for key, value in fitted.model_.backbone.state_dict().items():
        torch.testing.assert_close(encoder.state_dict()[key], value, rtol=0, atol=0)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert tokenizer("good film")["input_ids"] == fitted.tokenizer_("good film")["input_ids"]

    loaded = BertTextClassifier.from_pretrained(folder)
    assert loaded.get_params() == fitted.get_params()
    _same_fitted(fitted, loaded)
    np.testing.assert_array_equal(loaded.predict_proba(X_test), fitted.predict_proba(X_test))
    assert loaded.predict(X_test).tolist() == fitted.predict(X_test).tolist()
    config = json.loads((folder / CONFIG_NAME).read_text())
    assert config["estimator"] == "BertTextClassifier" and config["format"] == 1


def test_multilabel_windows_and_regressor_round_trip(tiny_params, tmp_path):
    """Check multi-label thresholds, window truncation and a regressor's scaling."""
    X, Y = make_multilabel_texts(60, seed=4)
    clf = BertTextClassifier(**dict(tiny_params, max_iter=2, tune_thresholds=True,
                                    validation_fraction=0.3, truncation="window",
                                    max_length=8, window_stride=3, class_weight={1: 2.0}))
    clf.fit(X, Y)
    loaded = BertTextClassifier.from_pretrained(clf.save_pretrained(tmp_path / "ml"))
    _same_fitted(clf, loaded)
    assert loaded.class_weight == {1: 2.0} and loaded.truncation == "window"
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), clf.predict(X))

    y = np.column_stack([Y.sum(1), Y[:, 0] * 3.5])
    reg = BertTextRegressor(**dict(tiny_params, max_iter=2, loss="huber")).fit(X, y)
    back = BertTextRegressor.from_pretrained(reg.save_pretrained(tmp_path / "reg"))
    _same_fitted(reg, back)
    np.testing.assert_array_equal(back.predict(X), reg.predict(X))
    with pytest.raises(ValueError, match="holds a BertTextRegressor, not a BertTextClassifier"):
        BertTextClassifier.from_pretrained(tmp_path / "reg")


def test_custom_head_is_imported_only_when_trusted(tiny_params, toy_data, tmp_path):
    """Check that a head factory is saved by reference and imported only when trusted."""
    X, y, X_test, _ = toy_data
    clf = BertTextClassifier(**dict(tiny_params, max_iter=1, head=wide_head)).fit(X, y)
    folder = clf.save_pretrained(tmp_path / "custom")
    reference = f"{__name__}:wide_head"
    with pytest.raises(ValueError, match=rf"callable {reference!r}.*trusted=\[{reference!r}\]"):
        BertTextClassifier.from_pretrained(folder)
    loaded = BertTextClassifier.from_pretrained(folder, trusted=[reference])
    assert loaded.head is wide_head
    np.testing.assert_array_equal(loaded.predict_proba(X_test), clf.predict_proba(X_test))


def test_values_json_cannot_hold_are_refused_by_name(fitted, tmp_path):
    """Check that a RandomState random_state is refused naming it, and nothing written."""
    import copy

    clf = copy.deepcopy(fitted)
    clf.random_state = np.random.RandomState(0)
    with pytest.raises(TypeError, match="parameter random_state is a RandomState"):
        clf.save_pretrained(tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_failed_write_keeps_the_previous_folder(fitted, tmp_path, monkeypatch):
    """Check that a write failing part-way leaves the previous folder as it was."""
    import safetensors.torch

    folder = fitted.save_pretrained(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", disk_full)
    with pytest.raises(OSError, match="No space left"):
        fitted.save_pretrained(folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging folder left


@pytest.mark.parametrize("damage, match", [
    ("no-config", "has no skbert.json: it is not a folder written by skbert"),
    ("newer", "in format 99; this skbert .* reads formats 1 to 1"),
    ("code", "is a code file"),
    ("unknown-param", r"has parameters \['warp_speed'\] that this skbert"),
])
def test_bad_folders_are_refused(fitted, tmp_path, damage, match):
    """Check that a folder that is not skbert's, is newer, or holds code is refused."""
    folder = fitted.save_pretrained(tmp_path / "model")
    config = json.loads((folder / CONFIG_NAME).read_text())
    if damage == "no-config":
        (folder / CONFIG_NAME).unlink()
    elif damage == "newer":
        config["format"] = 99
    elif damage == "code":
        (folder / "modeling_evil.py").write_text("raise SystemExit('ran code')\n")
    else:
        config["params"]["warp_speed"] = 9
    if damage in ("newer", "unknown-param"):
        (folder / CONFIG_NAME).write_text(json.dumps(config))
    with pytest.raises(ValueError, match=match):
        BertTextClassifier.from_pretrained(folder)


def test_push_to_hub_uploads_the_folder_with_a_card(fitted, monkeypatch):
    """Check the calls to huggingface_hub up to the network: the repository, the
    folder's files and a model card with classes, metrics and the data description."""
    import huggingface_hub

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create"] = (repo_id, kwargs)

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        from pathlib import Path

        calls["files"] = sorted(p.name for p in Path(folder_path).iterdir())
        calls["card"] = (Path(folder_path) / "README.md").read_text()
        calls["upload"] = (repo_id, kwargs)
        return "commit"

    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", create_repo)
    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", upload_folder)
    assert fitted.push_to_hub("me/sentiment", private=True, metrics={"accuracy": 0.91},
                              data_description="SST-2 sample, 4,000 texts") == "commit"
    assert calls["create"] == ("me/sentiment", dict(private=True, exist_ok=True,
                                                    repo_type="model"))
    assert calls["upload"][0] == "me/sentiment"
    assert {CONFIG_NAME, HEAD_NAME, "config.json", "model.safetensors"} <= set(calls["files"])
    card = calls["card"]
    assert card.startswith("---\nlibrary_name: skbert\n")
    assert "`neg`, `pos`" in card and "| accuracy | 0.91 |" in card
    assert "SST-2 sample, 4,000 texts" in card
    assert "BertTextClassifier.from_pretrained('me/sentiment')" in card


def test_revision_pins_hub_models(tiny_params, tiny_model_dir, toy_data, monkeypatch):
    """Check that revision= reaches the hub snapshot of model_name_or_path (the cache
    first, then a download of that revision's files) and of from_pretrained."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    from skbert import _hub

    asked = []

    def snapshot_download(repo_id, *, revision=None, local_files_only=False, **kwargs):
        asked.append((repo_id, revision, local_files_only))
        if local_files_only:
            raise LocalEntryNotFoundError("not cached")
        return tiny_model_dir

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda self, *a, **k: None)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    X, y, _, _ = toy_data
    params = dict(tiny_params, model_name_or_path="org/tiny-bert", revision="v1.0", max_iter=1)
    BertTextClassifier(**params).fit(X, y)
    assert asked[:2] == [("org/tiny-bert", "v1.0", True), ("org/tiny-bert", "v1.0", False)]
    asked.clear()
    with pytest.raises(ValueError, match="has no skbert.json"):
        _hub.load_folder(BertTextClassifier, "org/tiny-bert", revision="abc123")
    assert asked == [("org/tiny-bert", "abc123", False)]
