"""Standard checkpoints: a folder written by save_pretrained loads in transformers'
AutoModelForSequenceClassification and pipeline, and in ONNX Runtime through a standard
ONNX export, with no custom code, and gives skbert's answers (float32, within 1e-4)."""

import json
import os

import numpy as np
import pytest
from scipy.special import expit, softmax

from skbert import BertTextClassifier, BertTextRegressor
from tests.conftest import make_multilabel_texts, make_texts

pytestmark = pytest.mark.any_precision  # every model here predicts in float32

ATOL = 1e-4
# Longer than max_length=32 tokens: transformers must cut it where skbert does.
LONG = " ".join(["the", "film", "was", "good", "and", "the", "acting", "really"] * 8)


def _params(tiny_params, **extra):
    return {**tiny_params, "max_iter": 2, "pooling": "pooler", "inference_dtype": "float32",
            **extra}


@pytest.fixture(scope="module")
def folders(tiny_params, tmp_path_factory):
    """kind -> (fitted estimator, its save_pretrained folder, test inputs)."""
    out = {}
    root = tmp_path_factory.mktemp("standard")
    X, y = make_texts(80, seed=3, n_classes=3)
    X_test = X[60:] + [LONG]

    def keep(kind, estimator, inputs):
        out[kind] = (estimator, estimator.save_pretrained(root / kind), inputs)

    keep("binary int labels", BertTextClassifier(**_params(tiny_params)).fit(
        X[:60], (y[:60] > 0).astype(int)), X_test)
    keep("string labels", BertTextClassifier(**_params(tiny_params)).fit(
        X[:60], np.array(["neg", "pos", "mid"])[y[:60]]), X_test)
    filler, _ = make_texts(80, seed=5)
    pairs = list(zip(filler, X, strict=True))
    keep("pairs", BertTextClassifier(**_params(tiny_params)).fit(pairs[:60], y[:60]),
         pairs[60:] + [(LONG, LONG)])
    Xm, Y = make_multilabel_texts(80, seed=2)
    multilabel = BertTextClassifier(**_params(tiny_params)).fit(
        Xm[:60], Y[:60], label_names=["positive", "negative", "middling"])
    keep("multi-label", multilabel, Xm[60:] + [LONG])
    values = np.array([len(t) * 3.0 + 100 for t in X])
    keep("regressor", BertTextRegressor(**_params(tiny_params)).fit(X[:60], values[:60]),
         X_test)
    keep("regressor 2 outputs", BertTextRegressor(**_params(tiny_params)).fit(
        X[:60], np.column_stack([values[:60], -values[:60] / 7])), X_test)
    return out


def _skbert_outputs(estimator):
    """What skbert answers, per output column, in the order of the folder's id2label."""
    if isinstance(estimator, BertTextRegressor):
        return lambda inputs: np.asarray(estimator.predict(inputs)).reshape(len(inputs), -1)
    return estimator.predict_proba


def _as_pipeline_input(inputs):
    """The pipeline's form of texts and of text pairs."""
    return [{"text": x[0], "text_pair": x[1]} if isinstance(x, tuple) else x for x in inputs]


KINDS = ["binary int labels", "string labels", "pairs", "multi-label", "regressor",
         "regressor 2 outputs"]


@pytest.mark.parametrize("kind", KINDS)
def test_config_says_what_the_outputs_are(folders, kind):
    estimator, folder, _ = folders[kind]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    expected = {"multi-label": "multi_label_classification", "regressor": "regression",
                "regressor 2 outputs": "regression"}.get(kind, "single_label_classification")
    assert config["problem_type"] == expected
    if isinstance(estimator, BertTextClassifier):
        names = getattr(estimator, "label_names_", estimator.classes_)
        labels = [str(c) for c in names]
    else:
        labels = ["value"] if estimator.n_outputs_ == 1 else ["output_0", "output_1"]
    assert config["id2label"] == {str(i): label for i, label in enumerate(labels)}
    assert config["label2id"] == {label: i for i, label in enumerate(labels)}
    from transformers import AutoConfig

    assert AutoConfig.from_pretrained(folder).num_labels == len(labels)
    tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
    assert tokenizer_config["model_max_length"] == estimator.max_length
    assert tokenizer_config["truncation_side"] == "right"


@pytest.mark.parametrize("kind", KINDS)
def test_auto_model_gives_skbert_answers(folders, kind):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    estimator, folder, inputs = folders[kind]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    if isinstance(inputs[0], tuple):
        batch = tokenizer([a for a, _ in inputs], [b for _, b in inputs], padding=True,
                          truncation=True, return_tensors="pt")
    else:
        batch = tokenizer(inputs, padding=True, truncation=True, return_tensors="pt")
    assert batch["input_ids"].shape[1] == estimator.max_length  # LONG was cut
    with torch.no_grad():
        logits = model(**batch).logits.double().numpy()
    problem = model.config.problem_type
    got = (softmax(logits, axis=1) if problem == "single_label_classification"
           else expit(logits) if problem == "multi_label_classification" else logits)
    expected = _skbert_outputs(estimator)(inputs)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=1e-5)
    if problem == "single_label_classification":
        np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))


@pytest.mark.parametrize("kind", KINDS)
def test_pipeline_gives_skbert_answers(folders, kind):
    from transformers import pipeline

    estimator, folder, inputs = folders[kind]
    pipe = pipeline("text-classification", model=os.fspath(folder), device="cpu")
    rows = pipe(_as_pipeline_input(inputs), top_k=None, truncation=True)
    labels = list(pipe.model.config.id2label.values())
    got = np.array([[{r["label"]: r["score"] for r in row}[label] for label in labels]
                    for row in rows])
    expected = _skbert_outputs(estimator)(inputs)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=1e-5)
    if isinstance(estimator, BertTextClassifier) and not estimator.multilabel_:
        top = [row[0]["label"] for row in rows]  # top_k=None sorts by score
        assert top == [str(c) for c in estimator.predict(inputs)]


def test_onnx_export_of_the_folder_gives_skbert_answers(folders, tmp_path):
    """A standard ONNX export of the folder's AutoModelForSequenceClassification (what
    optimum's exporter does; optimum-onnx does not install beside transformers 5), run in
    ONNX Runtime on the folder's tokenizer, which tokenizes as skbert does."""
    import onnxruntime as ort
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from skbert._tokenization import encode

    estimator, folder, inputs = folders["string labels"]
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = tokenizer(inputs, truncation=True)["input_ids"]
    encoding = encode(estimator.tokenizer_, inputs, estimator.max_length)
    skbert_ids = [encoding.ids[a:b].tolist()
                  for a, b in zip(encoding.offsets[:-1], encoding.offsets[1:], strict=True)]
    assert ids == skbert_ids

    example = tokenizer(inputs[:2], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    program = torch.onnx.export(
        model, (), kwargs={n: example[n] for n in names}, dynamo=True, input_names=names,
        output_names=["logits"], dynamic_shapes={n: {0: batch, 1: sequence} for n in names},
        verbose=False,
    )
    program.save(os.fspath(tmp_path / "model.onnx"))
    session = ort.InferenceSession(os.fspath(tmp_path / "model.onnx"),
                                   providers=["CPUExecutionProvider"])
    feed = tokenizer(inputs, padding=True, truncation=True, return_tensors="np")
    (logits,) = session.run(["logits"], {n: feed[n].astype(np.int64) for n in names})
    proba = softmax(logits.astype(np.float64), axis=1)
    np.testing.assert_allclose(proba, estimator.predict_proba(inputs), atol=ATOL)


@pytest.mark.parametrize("kind", KINDS)
def test_folder_round_trips_through_skbert(folders, kind):
    estimator, folder, inputs = folders[kind]
    back = type(estimator).from_pretrained(folder)
    np.testing.assert_array_equal(back.predict(inputs), estimator.predict(inputs))
    if kind == "multi-label":
        np.testing.assert_array_equal(back.thresholds_, estimator.thresholds_)


def test_folder_holds_no_code(folders):
    from skbert._pretrained import check_model_folder

    for _, folder, _ in folders.values():
        names = sorted(os.listdir(folder))
        assert names == sorted(["README.md", "config.json", "model.safetensors", "skbert.json",
                                "skbert_head.safetensors", "tokenizer.json",
                                "tokenizer_config.json"])
        config = json.loads((folder / "config.json").read_text())
        assert "auto_map" not in config
        check_model_folder(folder)  # no pickles, no code, regular files


@pytest.mark.parametrize(("change", "parameter"), [
    (dict(pooling="mean"), "pooling"),
    (dict(head=(8,)), "head"),
    (dict(truncation="window"), "truncation"),
])
def test_standard_true_refuses_naming_the_parameter(tiny_params, tmp_path, change, parameter):
    X, y = make_texts(40, seed=1)
    clf = BertTextClassifier(**dict(_params(tiny_params, max_iter=1), **change)).fit(X, y)
    with pytest.raises(ValueError, match=rf"standard=True.*\(parameter {parameter}\)"):
        clf.save_pretrained(tmp_path / "model", standard=True)
    assert not (tmp_path / "model").exists()
    # standard=None writes skbert's own layout instead, which transformers reads as a
    # bare encoder and skbert reads whole.
    folder = clf.save_pretrained(tmp_path / "model")
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertModel"]
    np.testing.assert_array_equal(
        BertTextClassifier.from_pretrained(folder).predict_proba(X), clf.predict_proba(X))


def test_standard_false_writes_skbert_layout(folders, tmp_path):
    estimator, _, inputs = folders["string labels"]
    folder = estimator.save_pretrained(tmp_path / "plain", standard=False)
    assert json.loads((folder / "config.json").read_text())["architectures"] == ["BertModel"]
    np.testing.assert_array_equal(
        BertTextClassifier.from_pretrained(folder).predict_proba(inputs),
        estimator.predict_proba(inputs))


def test_standard_folder_is_a_model_to_fine_tune(folders, tiny_params):
    """The encoder of a standard folder is what a new fit starts from."""
    _, folder, _ = folders["string labels"]
    X, y = make_texts(40, seed=7)
    clf = BertTextClassifier(**dict(tiny_params, model_name_or_path=os.fspath(folder),
                                    max_iter=1)).fit(X, y)
    assert clf.predict(X).shape == (40,)
