"""Static-embedding estimators: a token table and a linear head, predicting without torch.

Model2Vec's idea (Tulkens and van Dongen, 2024) behind the scikit-learn contract: every
token of the vocabulary is run once through an encoder, alone; the table of its pooled
outputs is reduced by PCA and weighted by how rare each token is (SIF weights); a text
is the normalised mean of its tokens' rows, and a linear head maps that to the answer.
Prediction is a tokenizer call (Hugging Face ``tokenizers``, in Rust) and two NumPy
products: tens of thousands of texts a second on one CPU core, and no torch import.

:class:`StaticTextClassifier` and :class:`StaticTextRegressor` are made two ways:
``fit(X, y)`` takes the table of a pretrained encoder (the embedded default model) and
trains the head on labels; ``BertTextClassifier.distill(X)`` takes the table of the
*fine-tuned* network and trains the head on the teacher's probabilities over unlabelled
texts. The table's computation needs torch (``_distillation``); nothing here does.
Of skbert it imports ``_checkpoint``, ``_pretrained`` (reading files) and
``_validation``, none of which imports torch.
"""

import json
import os
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._checkpoint import staged_folder
from ._pretrained import DEFAULT_MODEL, read_file
from ._validation import (
    check_indicator,
    check_labels,
    check_targets,
    check_texts,
    is_indicator,
    is_pair_input,
)

# Texts embedded at once (bounds the memory of the gathered token rows).
_CHUNK = 8192
# The folder's own file, its marker (see _checkpoint.FOLDER_KINDS["static"]).
STATIC_JSON = "skbert_static.json"
# Format of the folder and of the pickled state.
_FORMAT = 1


def project(features, counts, dims, sif_coefficient):
    """The token table: ``features`` reduced to ``dims`` by PCA, rows weighted by rarity.

    Parameters
    ----------
    features : ndarray of shape (n_tokens, hidden_size)
        Each vocabulary token's pooled encoder output; rows of zeros (special tokens)
        stay zeros.
    counts : ndarray of int of shape (n_tokens,)
        How often each token occurs in the training texts.
    dims : int
        Columns kept (at most ``hidden_size``).
    sif_coefficient : float
        ``a`` of the SIF weight ``a / (a + p)``, where ``p`` is the token's smoothed
        frequency in the training texts: frequent tokens ("the", ".") weigh little.

    Returns
    -------
    table : ndarray of float32 of shape (n_tokens, min(dims, hidden_size))
    """
    features = np.asarray(features, dtype=np.float64)
    used = np.any(features != 0, axis=1)
    mean = features[used].mean(axis=0)
    _, _, vt = np.linalg.svd(features[used] - mean, full_matrices=False)
    table = (features - mean) @ vt[:dims].T
    p = (counts + 1.0) / (counts.sum() + len(counts))
    table *= (sif_coefficient / (sif_coefficient + p))[:, None]
    table[~used] = 0.0
    return table.astype(np.float32)


def load_tokenizer(tokenizer_json):
    """A ``tokenizers.Tokenizer`` from its JSON, without padding or truncation."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.no_padding()
    tokenizer.no_truncation()
    return tokenizer


def token_ids(tokenizer, texts, max_length):
    """The first ``max_length`` token ids of each text, without special tokens.

    Returns
    -------
    ids : ndarray of int64
        All texts' ids, concatenated.
    offsets : ndarray of int64 of shape (len(texts) + 1,)
        Text ``i`` is ``ids[offsets[i]:offsets[i + 1]]``.
    """
    encodings = tokenizer.encode_batch_fast(texts, add_special_tokens=False)
    rows = [e.ids[:max_length] for e in encodings]
    offsets = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum([len(r) for r in rows], out=offsets[1:])
    ids = np.fromiter((i for r in rows for i in r), dtype=np.int64, count=offsets[-1])
    return ids, offsets


def embed(table, ids, offsets):
    """Each text's mean token row, scaled to unit length (zeros for a text of no tokens)."""
    n = len(offsets) - 1
    out = np.zeros((n, table.shape[1]), dtype=np.float32)
    lengths = np.diff(offsets)
    full = lengths > 0
    if full.any():
        out[full] = np.add.reduceat(table[ids], offsets[:-1][full], axis=0)
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    return out / np.maximum(norms, 1e-12)


class _StaticTextEstimator(BaseEstimator):
    """What both static estimators share: the table, embedding, folders, pickling."""

    _parameter_constraints = {
        "model_name_or_path": [str, os.PathLike],
        "revision": [str, None],
        "pca_dims": [Interval(Integral, 2, None, closed="left")],
        "max_length": [Interval(Integral, 1, None, closed="left")],
        "sif_coefficient": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(self, model_name_or_path, *, revision, pca_dims, max_length,
                 sif_coefficient):
        self.model_name_or_path = model_name_or_path
        self.revision = revision
        self.pca_dims = pca_dims
        self.max_length = max_length
        self.sif_coefficient = sif_coefficient

    # ---------------------------------------------------------------- the table
    def _fit_table(self, texts, features, tokenizer_json):
        """Set ``embeddings_`` from the encoder's token ``features``, with SIF weights
        counted over ``texts``; return the texts' token ids and offsets."""
        self.tokenizer_json_ = tokenizer_json
        self.__dict__.pop("_tokenizer", None)
        ids, offsets = token_ids(self._loaded_tokenizer(), texts, self.max_length)
        counts = np.bincount(ids, minlength=len(features))[: len(features)]
        self.embeddings_ = project(features, counts, self.pca_dims, self.sif_coefficient)
        return ids, offsets

    def _train_table(self, ids, offsets, targets, kind, epochs, seed):
        """Train ``embeddings_`` and the head (``coef_``, ``intercept_``, as fitted on the
        distilled table) on the teacher's ``targets`` for ``epochs`` passes
        (``_distillation.train_bag``, torch)."""
        from ._distillation import train_bag

        self.embeddings_, self.coef_, self.intercept_ = train_bag(
            self.embeddings_, self.coef_, self.intercept_, ids, offsets, targets,
            kind=kind, passes=epochs, seed=seed)

    def _base_table(self, texts):
        """``_fit_table`` from the pretrained encoder ``model_name_or_path`` (torch, once
        per encoder and process)."""
        from ._distillation import pretrained_token_features

        features, tokenizer_json = pretrained_token_features(self.model_name_or_path,
                                                             self.revision)
        ids, offsets = self._fit_table(texts, features, tokenizer_json)
        return embed(self.embeddings_, ids, offsets)

    def _loaded_tokenizer(self):
        """The ``tokenizers.Tokenizer`` of ``tokenizer_json_``, built once (not pickled)."""
        tokenizer = self.__dict__.get("_tokenizer")
        if tokenizer is None:
            tokenizer = self._tokenizer = load_tokenizer(self.tokenizer_json_)
        return tokenizer

    def transform(self, X):
        """The static embeddings of texts ``X``: the features the head reads.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        embeddings : ndarray of float32 of shape (n_texts, n_dims)
        """
        check_is_fitted(self, "embeddings_")
        texts = _single_texts(X, allow_empty=True)
        tokenizer = self._loaded_tokenizer()
        parts = [embed(self.embeddings_, *token_ids(tokenizer, texts[i:i + _CHUNK],
                                                    self.max_length))
                 for i in range(0, len(texts), _CHUNK)]
        return (np.concatenate(parts) if parts
                else np.empty((0, self.embeddings_.shape[1]), dtype=np.float32))

    def _decision(self, X):
        return self.transform(X) @ self.coef_.T + self.intercept_

    # ----------------------------------------------------------------- pickling
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_tokenizer", None)  # rebuilt from tokenizer_json_
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        return tags

    # ------------------------------------------------------------------ folders
    def save_pretrained(self, path):
        """Write the fitted estimator to the folder ``path``, atomically.

        The folder holds no code and no pickle: ``model.safetensors`` (the token table,
        under "embeddings"), ``tokenizer.json`` and ``config.json`` as Model2Vec writes
        them (so ``model2vec.StaticModel.from_pretrained`` reads the embeddings), and
        ``head.safetensors`` and ``skbert_static.json`` for the head, the classes and
        the parameters. ``from_pretrained`` reads it back.

        Parameters
        ----------
        path : str or os.PathLike
            A missing or empty folder, or one this method wrote.

        Returns
        -------
        path : pathlib.Path
        """
        from safetensors.numpy import save_file

        check_is_fitted(self, "embeddings_")
        meta = {"format": _FORMAT, "class": type(self).__name__,
                "params": {k: os.fspath(v) if isinstance(v, os.PathLike) else v
                           for k, v in self.get_params().items()},
                "fitted": self._fitted_meta()}
        config = {"model_type": "model2vec", "architectures": ["StaticModel"],
                  "normalize": True, "hidden_dim": int(self.embeddings_.shape[1]),
                  "seq_length": self.max_length, "tokenizer_name": str(self.model_name_or_path)}
        with staged_folder(path, name="path", kind="static") as staging:
            save_file({"embeddings": self.embeddings_}, staging / "model.safetensors")
            save_file(self._head_arrays(), staging / "head.safetensors")
            (staging / "tokenizer.json").write_text(self.tokenizer_json_, encoding="utf-8")
            (staging / "config.json").write_text(json.dumps(config, indent=2) + "\n",
                                                 encoding="utf-8")
            (staging / STATIC_JSON).write_text(json.dumps(meta, indent=2) + "\n",
                                               encoding="utf-8")
        return Path(path)

    @classmethod
    def from_pretrained(cls, path):
        """Load an estimator that :meth:`save_pretrained` wrote to ``path``.

        Reads JSON and safetensors only (no code, no pickle), with the sizes checked.

        Parameters
        ----------
        path : str or os.PathLike

        Returns
        -------
        estimator : StaticTextClassifier or StaticTextRegressor
        """
        from safetensors.numpy import load

        folder = Path(path)
        meta_path = folder / STATIC_JSON
        if not meta_path.is_file():
            raise FileNotFoundError(
                f"{os.fspath(folder)!r} holds no {STATIC_JSON}: it is not a folder that "
                f"{cls.__name__}.save_pretrained wrote.")
        meta = json.loads(read_file(meta_path))
        if meta.get("class") != cls.__name__ or meta.get("format", 0) > _FORMAT:
            raise ValueError(
                f"{os.fspath(meta_path)!r} holds a {meta.get('class')!r} of format "
                f"{meta.get('format')!r}; {cls.__name__}.from_pretrained reads its own "
                f"class up to format {_FORMAT} (a newer skbert wrote it?).")
        estimator = cls(**meta["params"])
        tables = load(read_file(folder / "model.safetensors", limit=2**34))
        estimator.embeddings_ = tables["embeddings"]
        estimator.tokenizer_json_ = read_file(folder / "tokenizer.json").decode("utf-8")
        estimator._set_fitted(meta["fitted"], load(read_file(folder / "head.safetensors")))
        return estimator


def _single_texts(X, *, allow_empty=False):
    texts = check_texts(X, allow_empty=allow_empty)
    if is_pair_input(texts):
        raise ValueError("Static estimators take single texts; X holds text pairs.")
    return texts


def _soft_logistic(E, P, C, max_iter, random_state):
    """A multinomial logistic regression on embeddings ``E`` fitted to the probability
    rows ``P`` (the cross-entropy to soft targets: each text once per class, weighted
    by the class's probability); its ``coef_`` and ``intercept_`` in softmax form."""
    from sklearn.linear_model import LogisticRegression

    n, k = P.shape
    X = np.repeat(E, k, axis=0)
    y = np.tile(np.arange(k), n)
    model = LogisticRegression(C=C, max_iter=max_iter, random_state=random_state)
    model.fit(X, y, sample_weight=P.ravel())
    return _softmax_form(model, k)


def _softmax_form(model, k):
    """(coef, intercept) of a fitted LogisticRegression over ``k`` classes such that
    ``softmax(E @ coef.T + intercept)`` is its ``predict_proba`` (a binary model's one
    row becomes two)."""
    coef, intercept = model.coef_, model.intercept_
    if k == 2 and len(coef) == 1:
        coef = np.vstack([-coef / 2, coef / 2])
        intercept = np.array([-intercept[0] / 2, intercept[0] / 2])
    return coef.astype(np.float32), intercept.astype(np.float32)


class StaticTextClassifier(ClassifierMixin, _StaticTextEstimator):
    """A text classifier on static token embeddings: no torch at prediction.

    A text is the normalised, rarity-weighted mean of its tokens' rows in a token table
    taken from an encoder (each token run through it alone, then PCA; Model2Vec's
    recipe), and a logistic regression reads it. ``fit(X, y)`` takes the table of the
    pretrained ``model_name_or_path``; ``BertTextClassifier.distill(X)`` returns one
    whose table comes from the fine-tuned network and whose head learned the teacher's
    probabilities. Predicting needs NumPy and the ``tokenizers`` package only.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="sentence-transformers/all-MiniLM-L6-v2"
        The encoder whose token table ``fit`` uses (the embedded default model).
    revision : str or None, default=None
        As in ``BertTextClassifier``.
    pca_dims : int, default=256
        Columns of the token table after PCA (at most the encoder's hidden size).
    max_length : int, default=512
        Tokens of a text that count (the rest are ignored).
    sif_coefficient : float, default=1e-3
        ``a`` of the SIF weight ``a / (a + p)`` of a token of frequency ``p`` in the
        training texts.
    C : float, default=10.0
        Inverse regularisation of the logistic regression head.
    max_iter : int, default=1000
        Iterations of the head's solver.
    class_weight : dict, "balanced" or None, default=None
        As in ``LogisticRegression`` (``fit`` only).
    random_state : int or None, default=None
        As in ``LogisticRegression``.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The labels (for multi-label targets, the label indices).
    multilabel_ : bool
        Whether targets are multi-label indicators.
    thresholds_ : ndarray of shape (n_labels,)
        Multi-label only: the probability at which each label is predicted (0.5 after
        ``fit``; the teacher's tuned thresholds after ``distill``).
    embeddings_ : ndarray of float32 of shape (n_tokens, n_dims)
        The token table.
    coef_, intercept_ : ndarray
        The head, in softmax form (one row per class; per label for multi-label).
    tokenizer_json_ : str
        The tokenizer, as ``tokenizers`` JSON.
    distilled_from_ : str or None
        The teacher's class when made by ``distill``.

    Examples
    --------
    >>> from skbert import StaticTextClassifier  # doctest: +SKIP
    >>> clf = StaticTextClassifier().fit(["great film", "awful film"], [1, 0])  # doctest: +SKIP
    >>> clf.predict(["a great story"])  # doctest: +SKIP
    array([1])
    """

    _parameter_constraints = {
        **_StaticTextEstimator._parameter_constraints,
        "C": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "class_weight": [dict, StrOptions({"balanced"}), None],
        "random_state": ["random_state"],
    }

    def __init__(self, model_name_or_path=DEFAULT_MODEL, *, revision=None, pca_dims=256,
                 max_length=512, sif_coefficient=1e-3, C=10.0, max_iter=1000,
                 class_weight=None, random_state=None):
        super().__init__(model_name_or_path, revision=revision, pca_dims=pca_dims,
                         max_length=max_length, sif_coefficient=sif_coefficient)
        self.C = C
        self.max_iter = max_iter
        self.class_weight = class_weight
        self.random_state = random_state

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Take the pretrained encoder's token table and fit the head on ``X, y``.

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels, or a 0/1 indicator matrix for multi-label targets.

        Returns
        -------
        self : StaticTextClassifier
        """
        from sklearn.linear_model import LogisticRegression

        texts = _single_texts(X)
        multilabel = is_indicator(y)
        y = check_indicator(y, len(texts)) if multilabel else check_labels(y, len(texts))
        E = self._base_table(texts)
        self.multilabel_, self.distilled_from_ = multilabel, None

        def head():
            return LogisticRegression(C=self.C, max_iter=self.max_iter,
                                      class_weight=self.class_weight,
                                      random_state=self.random_state)

        if multilabel:
            y = np.asarray(y)
            models = [head().fit(E, y[:, j]) for j in range(y.shape[1])]
            self.classes_ = np.arange(y.shape[1])
            self.coef_ = np.vstack([m.coef_ for m in models]).astype(np.float32)
            self.intercept_ = np.concatenate([m.intercept_ for m in models]).astype(np.float32)
            self.thresholds_ = np.full(y.shape[1], 0.5)
        else:
            model = head().fit(E, y)
            self.classes_ = model.classes_
            self.coef_, self.intercept_ = _softmax_form(model, len(model.classes_))
        return self

    def _fit_distilled(self, texts, features, tokenizer_json, proba, *, classes,
                       multilabel, thresholds, teacher, epochs, seed):
        """Fit on a teacher's token ``features`` and its probabilities ``proba`` over
        ``texts`` (called by ``BertTextClassifier.distill``, which validated the
        parameters): with ``epochs``, the table and head trained together; without, a
        logistic-regression head on the table."""
        ids, offsets = self._fit_table(texts, features, tokenizer_json)
        self.classes_, self.multilabel_, self.distilled_from_ = classes, multilabel, teacher
        E = embed(self.embeddings_, ids, offsets)
        if multilabel:
            self.thresholds_ = np.asarray(thresholds, dtype=float)
            heads = [_soft_logistic(E, np.column_stack([1 - p, p]), self.C, self.max_iter,
                                    seed) for p in proba.T]
            self.coef_ = np.vstack([c[1] - c[0] for c, _ in heads])
            self.intercept_ = np.array([b[1] - b[0] for _, b in heads], dtype=np.float32)
        else:
            self.coef_, self.intercept_ = _soft_logistic(E, proba, self.C, self.max_iter,
                                                         seed)
        if epochs:
            self._train_table(ids, offsets, proba, "sigmoid" if multilabel else "softmax",
                              epochs, seed)
        return self

    def predict_proba(self, X):
        """Probabilities of each class (of each label, for multi-label targets).

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        proba : ndarray of shape (n_texts, n_classes)
        """
        from scipy.special import expit, softmax

        check_is_fitted(self, "coef_")
        z = self._decision(X)
        return expit(z) if self.multilabel_ else softmax(z, axis=1)

    def predict(self, X):
        """The predicted class of each text (0/1 indicators for multi-label targets).

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        y : ndarray of shape (n_texts,) or (n_texts, n_labels)
        """
        proba = self.predict_proba(X)
        if self.multilabel_:
            return (proba >= self.thresholds_).astype(np.int64)
        return self.classes_[np.argmax(proba, axis=1)]

    def _fitted_meta(self):
        classes = self.classes_
        return {"classes": classes.tolist(), "classes_kind": classes.dtype.kind,
                "multilabel": bool(self.multilabel_), "distilled_from": self.distilled_from_}

    def _head_arrays(self):
        arrays = {"coef": self.coef_, "intercept": self.intercept_}
        if self.multilabel_:
            arrays["thresholds"] = np.asarray(self.thresholds_, dtype=np.float64)
        return arrays

    def _set_fitted(self, meta, arrays):
        kind = meta["classes_kind"]
        dtype = object if kind in "OUS" else np.dtype(kind + "8") if kind in "iuf" else None
        self.classes_ = np.asarray(meta["classes"], dtype=dtype)
        if kind == "b":
            self.classes_ = self.classes_.astype(bool)
        self.multilabel_ = meta["multilabel"]
        self.distilled_from_ = meta["distilled_from"]
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
        if self.multilabel_:
            self.thresholds_ = arrays["thresholds"]


class StaticTextRegressor(RegressorMixin, _StaticTextEstimator):
    """A text regressor on static token embeddings: no torch at prediction.

    The same token table as :class:`StaticTextClassifier`, read by a ridge regression.
    ``fit(X, y)`` takes the table of the pretrained ``model_name_or_path``;
    ``BertTextRegressor.distill(X)`` returns one whose table comes from the fine-tuned
    network and whose head learned the teacher's predictions.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="sentence-transformers/all-MiniLM-L6-v2"
    revision : str or None, default=None
    pca_dims : int, default=256
    max_length : int, default=512
    sif_coefficient : float, default=1e-3
        See :class:`StaticTextClassifier`.
    alpha : float, default=1e-3
        Regularisation of the ridge head (the embeddings have unit length).

    Attributes
    ----------
    embeddings_, coef_, intercept_, tokenizer_json_, distilled_from_
        As in :class:`StaticTextClassifier`; ``coef_`` has one row per output.
    n_outputs_ : int
        Columns of ``y`` (1 for a 1-d target).
    """

    _parameter_constraints = {
        **_StaticTextEstimator._parameter_constraints,
        "alpha": [Interval(Real, 0, None, closed="left")],
    }

    def __init__(self, model_name_or_path=DEFAULT_MODEL, *, revision=None, pca_dims=256,
                 max_length=512, sif_coefficient=1e-3, alpha=1e-3):
        super().__init__(model_name_or_path, revision=revision, pca_dims=pca_dims,
                         max_length=max_length, sif_coefficient=sif_coefficient)
        self.alpha = alpha

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Take the pretrained encoder's token table and fit the head on ``X, y``.

        Parameters
        ----------
        X : iterable of str
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)

        Returns
        -------
        self : StaticTextRegressor
        """
        texts = _single_texts(X)
        Y = check_targets(y, len(texts))
        return self._fit_head(self._base_table(texts), Y[:, 0] if np.ndim(y) == 1 else Y,
                              teacher=None)

    def _fit_distilled(self, texts, features, tokenizer_json, values, *, teacher, epochs,
                       seed):
        """Fit on a teacher's token ``features`` and its predictions ``values`` over
        ``texts`` (called by ``BertTextRegressor.distill``, which validated the
        parameters): with ``epochs``, the table and head trained together; without, a
        ridge head on the table."""
        ids, offsets = self._fit_table(texts, features, tokenizer_json)
        self._fit_head(embed(self.embeddings_, ids, offsets), values, teacher=teacher)
        if epochs:  # trained on standardised values, then scaled back
            Y = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
            mean, scale = Y.mean(axis=0), np.maximum(Y.std(axis=0), 1e-12)
            self.coef_ = self.coef_ / scale[:, None].astype(np.float32)
            self.intercept_ = ((self.intercept_ - mean) / scale).astype(np.float32)
            self._train_table(ids, offsets, (Y - mean) / scale, "regression", epochs, seed)
            self.coef_ = (self.coef_ * scale[:, None]).astype(np.float32)
            self.intercept_ = (self.intercept_ * scale + mean).astype(np.float32)
        return self

    def _fit_head(self, E, y, *, teacher):
        from sklearn.linear_model import Ridge

        y = np.asarray(y, dtype=np.float64)
        model = Ridge(alpha=self.alpha).fit(E, y.reshape(len(y), -1))
        self.coef_ = np.atleast_2d(model.coef_).astype(np.float32)
        self.intercept_ = np.atleast_1d(model.intercept_).astype(np.float32)
        self.n_outputs_ = 1 if y.ndim == 1 else y.shape[1]
        self.distilled_from_ = teacher
        return self

    def predict(self, X):
        """The predicted value(s) of each text.

        Parameters
        ----------
        X : iterable of str

        Returns
        -------
        y : ndarray of shape (n_texts,) or (n_texts, n_outputs)
        """
        check_is_fitted(self, "coef_")
        z = self._decision(X).astype(np.float64)
        return z[:, 0] if self.n_outputs_ == 1 else z

    def _fitted_meta(self):
        return {"n_outputs": self.n_outputs_, "distilled_from": self.distilled_from_}

    def _head_arrays(self):
        return {"coef": self.coef_, "intercept": self.intercept_}

    def _set_fitted(self, meta, arrays):
        self.n_outputs_ = meta["n_outputs"]
        self.distilled_from_ = meta["distilled_from"]
        self.coef_, self.intercept_ = arrays["coef"], arrays["intercept"]
