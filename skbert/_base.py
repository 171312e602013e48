"""What every skbert estimator shares: its parameters, the one ``fit`` path (building
the network and its trainer), the prediction entry points, tags and pickling.

An estimator (``BertTextClassifier``, ``BertTextRegressor``) adds what its targets are:
``_targets`` turns ``y`` into what the loss takes (a :class:`_Targets`), and its
``predict*`` methods turn the network's outputs into predictions. ``partial_fit``
streams and checkpoints come from ``_streaming.StreamingMixin``, Hugging Face folders
from ``_hub.HubMixin``. Orchestration only: validation, tokenization, batching, the
network, the training loop and the prediction path live in their own modules, imported
inside the methods so that ``import skbert`` stays light.
"""

from __future__ import annotations

import os
import threading
from numbers import Integral
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from ._hub import HubMixin
from ._streaming import Stream, StreamingMixin
from ._tokenization import pool_windows
from ._validation import PARAMETER_CONSTRAINTS, check_sample_weight, check_texts, is_pair_input

# Texts validated, tokenized and predicted together: bounds memory on huge inputs.

_PREDICT_CHUNK_SIZE = 16384
# A call warns when more than this share of its texts lose tokens to truncation.
_TRUNCATED_SHARE = 0.05
# The only types skops must trust to load a fitted estimator or checkpoint.
TRUSTED_TYPES = ["skbert._classifier.BertTextClassifier", "skbert._regressor.BertTextRegressor",
                 "skbert._static.StaticTextClassifier", "skbert._static.StaticTextRegressor"]
# The persisted estimator's format (pickle, skops, checkpoints). Raise it when the saved
# state changes shape, and teach __setstate__ to read the older ones. Format 0: skbert
# 0.1.0 files before the number existed (no head/frozen entry in the network's state;
# parameters added since are missing). Format 1: the number and skbert's version saved.
# Format 2: a truncation other than "head", which a format-1 reader would ignore (and
# predict from the head of each text); estimators with "head" keep writing format 1.
_FORMAT = 2
# Serialises deriving the int8 copy or OpenVINO compilation of a model.
_DERIVED_LOCK = threading.Lock()

class _Targets(NamedTuple):
    """``y`` of one ``fit`` or ``partial_fit`` call, as the training loop takes it.

    Attributes
    ----------
    values : ndarray
        What the loss takes, one row per text: class indices, a 0/1 indicator matrix,
        or standardised real targets.
    weights : ndarray or None
        Loss weight of each text, with a mean of 1.
    counts : ndarray of int64 of shape (n_outputs,)
        Texts of each class (label, output) of the call, added to the stream's counts.
    criterion : skbert._sources.Criterion
        The loss and the validation score.
    fitted : dict
        Fitted attributes that the call sets once it completes (``classes_``, ...).
    stratify : bool
        Whether a held-out split keeps the share of each of ``values``.
    holdout : str or None
        The parameter besides ``early_stopping`` that needs a held-out split, if set.
    """

    values: np.ndarray
    weights: object
    counts: np.ndarray
    criterion: object
    fitted: dict
    stratify: bool
    holdout: object = None


class _BertTextEstimator(StreamingMixin, HubMixin, ClassNamePrefixFeaturesOutMixin,
                         TransformerMixin, BaseEstimator):
    """The shared machinery of skbert's estimators (not public: use a subclass).

    Subclasses declare their parameters in ``__init__`` (scikit-learn reads them from
    its signature) and define ``fit``, ``partial_fit`` and ``predict``, and the hooks
    ``_targets`` (``y`` as a :class:`_Targets`), ``_n_outputs`` and
    ``_outputs_described``; ``_after_fit``, ``_check_chunk`` and ``_upgrade_state``
    are optional.
    """

    _parameter_constraints = PARAMETER_CONSTRAINTS
    # What skops trusts when it loads a checkpoint (``resume``).
    _trusted_types = tuple(TRUSTED_TYPES)
    # Fitted attributes of one run that a new fit drops before it sets its own.
    _run_attributes = ()

    def __init__(
        self, model_name_or_path, *, revision, max_length, truncation, window_stride,
        window_pooling, pooling, freeze_base, head, head_dropout,
        learning_rate, head_learning_rate, layer_decay, weight_decay, warmup_fraction,
        max_grad_norm, batch_size, max_iter, early_stopping, validation_fraction,
        n_iter_no_change, tol, device, training_dtype, inference_dtype,
        inference_backend, predict_batch_tokens, max_steps, checkpoint_dir, checkpoint_every,
        keep_checkpoints, random_state, verbose,
    ):
        self.model_name_or_path = model_name_or_path
        self.revision = revision
        self.max_length = max_length
        self.truncation = truncation
        self.window_stride = window_stride
        self.window_pooling = window_pooling
        self.pooling = pooling
        self.freeze_base = freeze_base
        self.head = head
        self.head_dropout = head_dropout
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.layer_decay = layer_decay
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.device = device
        self.training_dtype = training_dtype
        self.inference_dtype = inference_dtype
        self.inference_backend = inference_backend
        self.predict_batch_tokens = predict_batch_tokens
        self.max_steps = max_steps
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------ subclass hooks
    def _targets(self, y, n_texts, sample_weight, classes, incremental):
        """``y`` of this call as a :class:`_Targets`, checked against the stream's."""
        raise NotImplementedError

    def _n_outputs(self):
        """Width of the network's output (classes, labels or regression outputs)."""
        raise NotImplementedError

    def _outputs_described(self):
        """What the outputs are, for messages: a plural noun and the fitted attribute."""
        raise NotImplementedError

    def _after_fit(self, trainer, encoding, val_rows, targets):
        """Called once ``fit`` has trained (and restored the best weights)."""

    def _check_chunk(self, target, seen):
        """Called before a ``partial_fit`` chunk trains, with the stream's counts so far."""

    def _validation_score(self, criterion, outputs, targets, weights):
        """The score early stopping maximises on the held-out rows: ``criterion.score``
        (the estimator's ``score``) unless the estimator says otherwise."""
        return criterion.score(outputs, targets, weights)

    def _upgrade_state(self, state):
        """Fill in what a state saved by an earlier skbert lacks (``__setstate__``)."""
        return state

    # ------------------------------------------------------------------ fitting
    def _start_fit(self, X, y, sample_weight):
        """``fit``: a new run, ending any ``partial_fit`` stream."""
        self._end_stream()
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, classes=None, incremental):
        """Validate, set up training (on a run's first call), and train: the one data path."""
        from ._batching import smallest_batch
        from ._cache import texts_digest
        from ._modeling import check_batch_norm
        from ._sources import validation_split

        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: a chunk has no "
                "held-out data. Set early_stopping=False, or use fit."
            )
        texts = check_texts(X)
        sample_weight = check_sample_weight(sample_weight, len(texts))
        stream = self._running_stream(texts) if incremental else None
        trainer = None if stream is None else stream.trainer
        target = self._targets(y, len(texts), sample_weight, classes, incremental)
        tokenizer = self._run_tokenizer(incremental) if trainer is None else trainer.tokenizer
        encoding = self._encode(tokenizer, texts, cache=True)
        self._warn_truncated(tokenizer, texts, encoding, "fit")
        seed, device, parallel = (self._new_run() if trainer is None
                                  else (None, trainer.device, trainer.parallel))
        if parallel is not None:
            parallel.check_same_input(texts_digest(texts + [str(t) for t in target.values]))
        lock = self._stream_lock(stream, parallel) if incremental else None
        why = None if incremental else (
            "early_stopping" if self.early_stopping else target.holdout)
        train_rows, val_rows = validation_split(target.values, seed, self.validation_fraction,
                                                why=why, stratify=target.stratify)
        n_train = len(encoding.sequences(train_rows)[0])  # rows: texts or their windows
        if trainer is None:
            trainer = self._new_trainer(tokenizer, len(target.counts), n_train, seed,
                                        incremental, device, parallel)
        check_batch_norm(
            trainer.module, smallest_batch(n_train, self.batch_size,
                                           length_grouped=not self.freeze_base),
            1 if parallel is None else parallel.world_size, n_train, self.batch_size)
        if incremental:
            self._check_chunk(target, trainer.state.label_counts)
        source, validation = self._sources(trainer, encoding, train_rows, val_rows, target)
        fitted = dict(target.fitted, model_=trainer.module, tokenizer_=trainer.tokenizer,
                      text_pairs_=is_pair_input(texts))
        if not incremental:
            return self._train(trainer, source, validation, fitted, encoding, val_rows,
                               target.values)
        stream = Stream(trainer) if stream is None else stream
        stream.hold(lock)
        losses = self._train_chunk(stream, source)
        self._commit_chunk(stream, fitted, losses, target.counts, source.n_texts)
        return self

    def _train(self, trainer, source, validation, fitted, encoding, val_rows, targets):
        """``fit``'s passes, with early stopping when ``validation`` scores them; then set
        the fitted attributes ``fitted`` and those of the run.

        After Ctrl-C (the loop's ``Interrupted``, once the step in progress is complete)
        the estimator is fitted as far as it trained, with ``interrupted_=True``, and then
        ``KeyboardInterrupt`` stops the caller (a script, a search)."""
        import torch

        from ._engine import EarlyStopping, Interrupted, interrupted_error, oom_error

        stopper = None if validation is None else EarlyStopping(
            trainer.module, self.n_iter_no_change, self.tol)
        interrupted = None
        try:
            losses = trainer.train(source, self.max_iter, validation=validation,
                                   stopper=stopper, verbose=self.verbose)
        except Interrupted as stop:
            losses, interrupted = stop.losses, stop
        except torch.OutOfMemoryError as exc:
            raise oom_error(trainer.device, self.batch_size, self.max_length) from exc
        for name in ("_derived_model", "validation_scores_", "best_validation_score_",
                     *self._run_attributes):  # of the network fitted before
            vars(self).pop(name, None)
        fitted.update(n_iter_=len(losses), loss_curve_=losses,
                      n_samples_seen_=trainer.state.samples_seen,
                      interrupted_=interrupted is not None)
        if stopper is not None:
            stopper.restore_best()
            fitted.update(validation_scores_=stopper.scores,
                          best_validation_score_=stopper.best_score)
        for name, value in fitted.items():
            setattr(self, name, value)
        self._after_fit(trainer, encoding, val_rows, targets)
        if interrupted is not None:
            raise interrupted_error(interrupted)
        return self

    def _new_run(self):
        """A new run's seed, device and processes: in a data-parallel run every process
        gets rank 0's seed, so that all shuffle, split and train alike."""
        from ._device import resolve_device
        from ._distributed import data_parallel

        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        device = resolve_device(self.device)
        parallel = data_parallel(device)
        if parallel is not None:
            seed = parallel.broadcast_seed(seed)
        return seed, device, parallel

    def _run_tokenizer(self, incremental):
        """The tokenizer of a new run: the fitted one when ``partial_fit`` continues a
        fitted network, else the pretrained model's."""
        from ._pretrained import load_tokenizer

        if incremental and hasattr(self, "model_"):
            return self.tokenizer_
        return load_tokenizer(self.model_name_or_path, self.revision)

    def _new_trainer(self, tokenizer, n_outputs, n_train, seed, incremental, device, parallel):
        """Load the pretrained network (or continue a fitted one) and build its trainer,
        whose schedule plans the steps over ``n_train`` rows (texts, or their windows)."""
        import torch

        from . import _modeling, _pretrained
        from ._batching import count_batches
        from ._engine import TrainingPlan

        warm = incremental and hasattr(self, "model_")  # a fitted or loaded estimator
        if warm:
            module = self.model_
        else:
            backbone = _pretrained.load_backbone(
                _pretrained.resolve_model_path(self.model_name_or_path, self.revision))
            _pretrained.check_compatible(backbone.config, tokenizer, self.max_length,
                                         self.model_name_or_path)
            _modeling.check_head(self.head)
            with _modeling.seeded(seed):
                module = _modeling.build_module(
                    backbone, n_outputs, pooling=self.pooling, head=self.head,
                    dropout=self.head_dropout, frozen=self.freeze_base,
                )
                generator_state = torch.get_rng_state()
        module.to(device)
        per_pass = count_batches(n_train, self.batch_size, length_grouped=not self.freeze_base)
        plan = TrainingPlan.of_run(per_pass, warmup_fraction=self.warmup_fraction,
                                   passes=self.max_iter, max_steps=self.max_steps,
                                   incremental=incremental)
        trainer = self._trainer_for(module, plan, seed, device, parallel, tokenizer)
        if not warm and device.type == "cpu":
            # Dropout continues the generator that initialised the head, as it always has.
            trainer.state.generator.set_state(generator_state)
        trainer.state.label_counts = np.zeros(n_outputs, dtype=np.int64)
        return trainer

    def _trainer_for(self, module, plan, seed, device, parallel, tokenizer):
        """A :class:`~skbert._engine.Trainer` of ``module`` under this estimator's
        optimizer parameters, precision and clipping (of the head only with
        ``freeze_base``)."""
        from ._device import training_dtype
        from ._engine import Trainer, new_state
        from ._modeling import parameter_groups

        groups = parameter_groups(module, self.learning_rate,
                                  self.head_learning_rate or self.learning_rate,
                                  self.weight_decay, self.layer_decay)
        dtype = training_dtype(self.training_dtype, device)
        return Trainer(module.head if self.freeze_base else module, module,
                       new_state(groups, plan, seed, device, dtype), device=device,
                       dtype=dtype, max_grad_norm=self.max_grad_norm, parallel=parallel,
                       tokenizer=tokenizer)

    def _sources(self, trainer, encoding, train_rows, val_rows, target):
        """The training batch source and the validation scorer (None without early
        stopping).

        Full fine-tuning trains on token batches. With ``freeze_base`` the frozen
        backbone's pooled features are computed once (length-sorted, no grad) and are
        the input. Under ``truncation="window"`` every window of a text is a training
        row with the text's target and weight, and a held-out text's outputs pool its
        windows'. The validation score is the estimator's ``score``
        (``criterion.score``) on the held-out rows, weighted as ``score(X, y,
        sample_weight)`` would weigh them.
        """
        import torch
        from tqdm.auto import tqdm

        from ._engine import resolve_verbose
        from ._prediction import batch_tokens, sequence_outputs
        from ._sources import FeatureBatches, TokenBatches

        module, device = trainer.module, trainer.device
        pad_id = trainer.tokenizer.pad_token_id
        targets, weights, criterion = target.values, target.weights, target.criterion
        sequences, owner = encoding.sequences(train_rows)
        of_row = train_rows if owner is None else train_rows[owner]  # each window its text's
        w_train = None if weights is None else weights[of_row]

        def frozen_features(rows, n_texts, desc):  # of the frozen base, once, on the device
            show = resolve_verbose(self.verbose) > 0 and trainer.is_main
            with tqdm(total=n_texts, desc=desc, unit=" texts", disable=not show,
                      leave=False) as bar:
                out = sequence_outputs(module.features, module, encoding, rows, pad_id=pad_id,
                                       device=device, n_texts=n_texts, progress=bar,
                                       budget=batch_tokens(self.predict_batch_tokens, device))
            return torch.from_numpy(out).to(device)

        if self.freeze_base:
            features = frozen_features(sequences, len(train_rows), "features")
            source = FeatureBatches(features, targets[of_row], w_train,
                                    batch_size=self.batch_size, criterion=criterion,
                                    n_texts=len(train_rows))
        else:
            source = TokenBatches(encoding, sequences, targets[of_row], w_train,
                                  pad_id=pad_id, batch_size=self.batch_size, device=device,
                                  criterion=criterion, n_texts=len(train_rows))
        if val_rows is None or not self.early_stopping:
            return source, None
        if self.freeze_base:
            val_sequences, val_owner = encoding.sequences(val_rows)
            val_features = frozen_features(val_sequences, len(val_rows), "validation features")

            def val_logits():
                with torch.inference_mode():
                    out = module.head(val_features).float().cpu().numpy()
                return pool_windows(out, val_owner, self.window_pooling)
        else:
            def val_logits():
                return self._outputs(module, encoding, val_rows, pad_id, device)

        w_val = None if weights is None else weights[val_rows]

        def validation():
            return self._validation_score(criterion, val_logits(), targets[val_rows], w_val)

        return source, validation

    def _encode(self, tokenizer, texts, *, cache=False):
        """Token sequences of ``texts`` under ``max_length`` and ``truncation``."""
        from ._tokenization import encode

        if self.truncation != "head" and is_pair_input(texts):
            raise ValueError(
                f"truncation={self.truncation!r} applies to single texts; text pairs are "
                "truncated from the end of the longer text of each pair. Use "
                "truncation='head' for text pairs."
            )
        return encode(tokenizer, texts, self.max_length, truncation=self.truncation,
                      stride=self.window_stride, cache=cache)

    def _warn_truncated(self, tokenizer, texts, encoding, call):
        """Warn when more than ``_TRUNCATED_SHARE`` of ``texts`` were cut (once per
        process for this estimator's setting and ``call``, "fit" or "predict", on the
        user's line: ``_tokenization.warn_truncated``); return whether that many were."""
        from ._tokenization import count_truncated, warn_truncated

        cut = count_truncated(tokenizer, texts, encoding, self.max_length)
        if cut <= _TRUNCATED_SHARE * len(texts):
            return False
        warn_truncated(cut, len(texts), self.max_length, self.truncation,
                       setting=(type(self).__name__, str(self.model_name_or_path),
                                self.revision, self.max_length, self.truncation, call))
        return True

    # --------------------------------------------------------------- prediction
    def _prediction_module(self, device):
        """The fitted network on ``device`` as ``inference_dtype`` and
        ``inference_backend`` ask (``_prediction.prediction_network``), its int8 copy,
        OpenVINO compilation or "auto" choice made once per fitted model and kept (not
        pickled)."""
        from ._prediction import prediction_network

        with _DERIVED_LOCK:  # one compilation when threads predict at once
            network, kept = prediction_network(
                self.model_, backend=self.inference_backend,
                inference_dtype=self.inference_dtype, device=device,
                text_pairs=self.text_pairs_, kept=vars(self).get("_derived_model"),
                requested_device=self.device, random_state=self.random_state,
                answers=getattr(self, "_proba", None))
            if kept is not None:
                self._derived_model = kept
        return network

    @property
    def inference_path_(self):
        """What ``inference_backend="auto"`` chose for this fitted model in this process
        (an ``InferencePath``: ``chosen``, ``seconds``, ``rejected``, ``probe_texts``,
        ``probe_seconds``, ``call_texts``); set by the first prediction large enough to
        probe on the CPU, not pickled, gone after a refit or a change of
        ``inference_backend``, ``inference_dtype`` or ``random_state``."""
        kept = vars(self).get("_derived_model")
        path = getattr(kept[2], "path", None) if kept is not None else None
        if path is None or kept[0] is not vars(self).get("model_") or kept[1] != (
                self.inference_backend, self.inference_dtype, kept[1][2], self.random_state):
            raise AttributeError(
                f"This {type(self).__name__} has no inference_path_: inference_backend="
                "'auto' sets it on the first prediction of at least "
                "skbert._probe.PROBE_MIN_TEXTS texts on the CPU.")
        return path

    def _outputs(self, module, encoding, texts, pad_id, device, *, features=False,
                 progress=None):
        """``_prediction.outputs`` under this estimator's prediction settings."""
        from ._device import inference_dtype
        from ._prediction import batch_tokens, outputs

        return outputs(module, encoding, texts, pad_id=pad_id, device=device,
                       budget=batch_tokens(self.predict_batch_tokens, device),
                       dtype=inference_dtype(self.inference_dtype, device),
                       window_pooling=self.window_pooling, features=features,
                       progress=progress)

    def _iter_logits(self, X, chunk_size, *, features=False):
        """Yield the logits of ``X`` chunk by chunk, in input order (with ``features``,
        the pooled features the head maps to them), through ``_prediction``'s one path.

        With ``verbose`` above 0, one progress bar on stderr counts the texts of the
        call (under "auto", where someone watches and once the call has run
        ``_prediction.AUTO_BAR_DELAY`` seconds); a call warns once when too many of its
        texts were truncated.
        """
        from ._device import resolve_device
        from ._engine import resolve_verbose
        from ._prediction import AUTO_BAR_DELAY, iter_chunk_outputs
        from ._pretrained import check_max_length

        check_max_length(self.model_.backbone.config, self.max_length)  # set_params after fit
        device = resolve_device(self.device)
        module = self._prediction_module(device)
        pad_id = self.tokenizer_.pad_token_id
        warned = False

        def encode(texts):
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                raise ValueError(
                    f"This {type(self).__name__} was fitted on {kind}; X must be {kind} too.")
            return self._encode(self.tokenizer_, texts)

        def warn_once(texts, encoding):
            nonlocal warned
            warned = warned or self._warn_truncated(self.tokenizer_, texts, encoding,
                                                    "predict")

        def run(encoding, progress):
            return self._outputs(module, encoding, None, pad_id, device, features=features,
                                 progress=progress)

        yield from iter_chunk_outputs(X, chunk_size, encode=encode, run=run,
                                      on_encoded=warn_once,
                                      show=resolve_verbose(self.verbose) > 0,
                                      delay=AUTO_BAR_DELAY if self.verbose == "auto" else 0,
                                      desc="transform" if features else "predict")

    def _predict_logits(self, X, *, features=False):
        """Logits (or features) of all of ``X``; no rows for no texts."""
        chunks = list(self._iter_logits(X, _PREDICT_CHUNK_SIZE, features=features))
        if not chunks:
            width = (self.model_.backbone.config.hidden_size if features
                     else self._n_outputs())
            return np.empty((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    def transform(self, X: ArrayLike) -> np.ndarray:
        """Pooled features of texts ``X`` from the fitted encoder: embeddings.

        The vectors the head maps to logits (after the ``pooling`` step), batched like
        ``predict``. They let a fine-tuned (or frozen-base) skbert model feed another
        estimator, e.g. in a ``Pipeline`` or a ``ColumnTransformer``. ``fit_transform``
        is ``fit(X, y)`` then ``transform(X)``, so the features of the training texts
        come from the network fine-tuned on them. Their names are
        ``get_feature_names_out()`` ("berttextclassifier0", ...), and
        ``set_output(transform="pandas")`` makes ``transform`` return a DataFrame.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the model was fitted on pairs.

        Returns
        -------
        features : ndarray of float32 of shape (n_samples, hidden_size)
            One row per text, in input order (a DataFrame under
            ``set_output(transform="pandas")``).
        """
        check_is_fitted(self)
        return self._predict_logits(X, features=True)

    # ------------------------------------------------------------- distillation
    def distill(self, X: ArrayLike, *, epochs: int = 5, pca_dims: int = 256,
                max_length: int = 512, sif_coefficient: float = 1e-3, random_state=None,
                **head_params):
        """A static, torch-free student of this fitted model, trained on texts ``X``.

        Model2Vec's recipe on the *fine-tuned* network: every vocabulary token runs
        through it once, alone, and its pooled features (reduced to ``pca_dims`` by PCA,
        weighted by rarity in ``X``) become a token table; the student embeds a text as
        the normalised mean of its tokens' rows, and its linear head learns this model's
        outputs over ``X`` (no labels needed: the probabilities of a classifier, the
        predictions of a regressor). The student predicts with NumPy and the
        ``tokenizers`` package only, many times faster than this model, for some
        accuracy (see docs/distillation.md for measured figures). With ``epochs``, the
        table and the head are then trained together on those outputs (fastText's way,
        starting from the distilled table), which moves each token towards what the
        fine-tuned network says of it in context.

        Parameters
        ----------
        X : iterable of str
            Unlabelled texts like those the student will see (the training texts, or
            more); this model predicts them once. Single texts only.
        epochs : int, default=5
            Passes over ``X`` training the table and the head together, starting from
            the linear head fitted on the distilled table (logistic regression on the
            probabilities, ridge on a regressor's values; AdamW at 2e-2, batches of
            1/32 of ``X`` between 16 and 256 texts, on the CPU); 0 keeps the distilled
            table and that head.
        pca_dims : int, default=256
            Columns of the student's token table.
        max_length : int, default=512
            Tokens of a text the student reads.
        sif_coefficient : float, default=1e-3
            ``a`` of the SIF weight ``a / (a + p)`` of a token of frequency ``p`` in ``X``.
        random_state : int, RandomState or None, default=None
            Of the student's training (batches and head).
        **head_params
            Other parameters of the student (``C``, ``max_iter`` for a classifier,
            ``alpha`` for a regressor).

        Returns
        -------
        student : StaticTextClassifier or StaticTextRegressor
            Fitted, with this model's ``classes_`` (and, multi-label, ``thresholds_``).
        """
        import torch

        from ._device import inference_dtype, resolve_device
        from ._distillation import token_features, tokenizer_json
        from ._prediction import batch_tokens

        check_is_fitted(self, "model_")
        if self.text_pairs_:
            raise ValueError(f"distill makes students of single texts; this "
                             f"{type(self).__name__} was fitted on text pairs.")
        texts = check_texts(X)
        if is_pair_input(texts):
            raise ValueError("distill takes single texts; X holds text pairs.")
        student = self._student(pca_dims=pca_dims, max_length=max_length,
                                sif_coefficient=sif_coefficient, **head_params)
        if "random_state" in student.get_params():
            student.set_params(random_state=random_state)
        student._validate_params()
        if not isinstance(epochs, Integral) or isinstance(epochs, bool) or epochs < 0:
            raise ValueError(f"epochs must be an int >= 0; got {epochs!r}.")
        seed = int(check_random_state(random_state).randint(2**31 - 1))
        targets, fitted = self._distillation_targets(texts)
        device = resolve_device(self.device)
        with torch.inference_mode():
            features = token_features(
                self.model_.to(device), self.tokenizer_, device=device,
                budget=batch_tokens(self.predict_batch_tokens, device),
                dtype=inference_dtype(self.inference_dtype, device))
        return student._fit_distilled(texts, features, tokenizer_json(self.tokenizer_),
                                      targets, teacher=type(self).__name__, epochs=epochs,
                                      seed=seed, **fitted)

    @property
    def _n_features_out(self):
        """Width of ``transform``'s output (for ``get_feature_names_out``)."""
        return self.model_.backbone.config.hidden_size

    # -------------------------------------------------------- tags, persistence
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        tags.transformer_tags.preserves_dtype = []  # transform gives float32 embeddings
        return tags

    def __getstate__(self):
        """Replace the network and tokenizer by plain values and bytes.

        pickle and skops then store no torch or transformers objects, and loading
        needs neither the network nor the original model folder.
        """
        state = super().__getstate__()
        # The training state of a partial_fit stream travels in checkpoints only (a
        # halted stream keeps why it halted). The int8 copy or OpenVINO compilation is
        # rebuilt on demand.
        stream = state.get("_stream")
        state = {k: v for k, v in state.items() if k not in ("_stream", "_derived_model")}
        if stream is not None and stream.halted is not None:
            state["_halted"] = stream.halted
        if "model_" in state:
            from ._modeling import module_to_state
            from ._pretrained import tokenizer_to_state

            state = dict(state)
            state["model_"] = module_to_state(state["model_"], self._n_outputs())
            state["tokenizer_"] = tokenizer_to_state(state["tokenizer_"])
        from . import __version__

        # Paths as str: skops trusts no pathlib type, and a str means the same folder.
        paths = {name: os.fspath(state[name]) for name in ("model_name_or_path", "checkpoint_dir")
                 if isinstance(state.get(name), os.PathLike)}
        fmt = 1 if state.get("truncation", "head") == "head" else 2
        return dict(state, **paths, _skbert_format=fmt, _skbert_version=__version__)

    def __setstate__(self, state):
        """Restore a saved state, reading every earlier format; refuse a newer one.

        Parameters the file predates take their defaults, so an estimator saved by an
        earlier skbert predicts as it did and ``get_params`` works.
        """
        import inspect

        from . import __version__

        state = dict(state)
        fmt = state.pop("_skbert_format", 0)
        saved_by = state.pop("_skbert_version", "0.1.0 (before format numbers)")
        if not isinstance(fmt, int) or not 0 <= fmt <= _FORMAT:
            raise ValueError(
                f"This {type(self).__name__} was saved by skbert {saved_by} in format "
                f"{fmt!r}; this skbert {__version__} reads formats 0 to {_FORMAT}. "
                "Upgrade skbert to load it."
            )
        signature = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            state.setdefault(name, signature[name].default)
        if "_text_pairs" in state:  # saved by skbert 0.1.0 before the redesign
            state["text_pairs_"] = state.pop("_text_pairs")
        if "_halted" in state:  # a stream that halted: partial_fit stays refused
            state["_stream"] = Stream(None, halted=state.pop("_halted"))
        state = self._upgrade_state(state)
        if isinstance(state.get("model_"), dict):
            from ._modeling import module_from_state
            from ._pretrained import tokenizer_from_state

            state = dict(state)
            state["model_"] = module_from_state(state["model_"])
            state["tokenizer_"] = tokenizer_from_state(state["tokenizer_"])
        super().__setstate__(state)
