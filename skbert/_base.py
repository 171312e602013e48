"""What every skbert estimator shares: parameters, the one fit path, checkpoints,
prediction of the network's outputs, embeddings and persistence hooks.

An estimator (``BertTextClassifier``, ``BertTextRegressor``) adds what its targets are:
``_targets`` turns ``y`` into what the loss takes (a :class:`_Targets`), and its
``predict*`` methods turn the network's outputs into predictions. Orchestration only:
validation, tokenization, batching, modelling and the training loop live in their own
modules and are called from here.
"""

import os
import threading
import warnings
from numbers import Integral, Real
from typing import NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._validation import check_sample_weight, check_texts, is_pair_input, iter_text_chunks

# Texts validated, tokenized and predicted together: bounds memory on huge inputs.
_PREDICT_CHUNK_SIZE = 16384
# A call warns when more than this share of its texts lose tokens to truncation.
_TRUNCATED_SHARE = 0.05
# The only types skops must trust to load a fitted estimator or checkpoint.
TRUSTED_TYPES = ["skbert._classifier.BertTextClassifier", "skbert._regressor.BertTextRegressor"]
# The persisted estimator's format (pickle, skops, checkpoints). Raise it when the saved
# state changes shape, and teach __setstate__ to read the older ones. Format 0: skbert
# 0.1.0 files before the number existed (no head/frozen entry in the network's state;
# parameters added since are missing). Format 1: the number and skbert's version saved.
# Format 2: a truncation other than "head", which a format-1 reader would ignore (and
# predict from the head of each text); estimators with "head" keep writing format 1.
_FORMAT = 2
# The training state's file in a checkpoint folder (beside estimator.skops).
_STATE_FILE = "training_state.pt"
# Serialises building the int8 copy or OpenVINO compilation of a model when threads
# predict at once.
_DERIVED_LOCK = threading.Lock()

# The parameters of every estimator; each adds those of its targets.
PARAMETER_CONSTRAINTS = {
    "model_name_or_path": [str, os.PathLike],
    "revision": [str, None],
    "max_length": [Interval(Integral, 2, None, closed="left")],
    "truncation": [StrOptions({"head", "head_tail", "window"})],
    "window_stride": [Interval(Integral, 1, None, closed="left"), None],
    "window_pooling": [StrOptions({"mean", "max"})],
    "pooling": [StrOptions({"mean", "cls"})],
    "freeze_base": ["boolean"],
    "head": [None, tuple, callable],
    "head_dropout": [Interval(Real, 0, 1, closed="left"), None],
    "learning_rate": [Interval(Real, 0, None, closed="neither")],
    "head_learning_rate": [Interval(Real, 0, None, closed="neither"), None],
    "layer_decay": [Interval(Real, 0, 1, closed="right")],
    "weight_decay": [Interval(Real, 0, None, closed="left")],
    "warmup_fraction": [Interval(Real, 0, 1, closed="left")],
    "max_grad_norm": [Interval(Real, 0, None, closed="neither"), None],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "early_stopping": ["boolean"],
    "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
    "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "device": [str],
    "training_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16"})],
    "inference_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16", "int8"})],
    "inference_backend": [StrOptions({"torch", "openvino"})],
    "predict_batch_tokens": [Interval(Integral, 8, None, closed="left"), None],
    "max_steps": [Interval(Integral, 1, None, closed="left"), None],
    "checkpoint_dir": [str, os.PathLike, None],
    "checkpoint_every": [Interval(Integral, 1, None, closed="left"), None],
    "keep_checkpoints": [Interval(Integral, 1, None, closed="left")],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
}


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
    criterion : skbert._inputs.Criterion
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


class _BertTextEstimator(BaseEstimator):
    """The shared machinery of skbert's estimators (not public: use a subclass).

    Subclasses declare their parameters in ``__init__`` (scikit-learn reads them from
    its signature) and define ``fit``, ``partial_fit`` and ``predict``, and the hooks
    ``_targets`` (``y`` as a :class:`_Targets`), ``_n_outputs`` and
    ``_outputs_described``; ``_after_fit``, ``_check_chunk`` and ``_upgrade_state``
    are optional.
    """

    _parameter_constraints = PARAMETER_CONSTRAINTS
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

    def _upgrade_state(self, state):
        """Fill in what a state saved by an earlier skbert lacks (``__setstate__``)."""
        return state

    # ------------------------------------------------------------------ fitting
    def _start_fit(self, X, y, sample_weight):
        """``fit``: a new run, ending any ``partial_fit`` stream."""
        stream = self.__dict__.pop("_trainer", None)
        if stream is not None and stream.lock is not None:
            stream.lock.release()
        self.__dict__.pop("_halted", None)
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, *, classes=None, incremental):
        """Validate, set up training (on a run's first call), and train: the one data path."""
        import torch

        from . import _fitting
        from ._cache import texts_digest
        from ._distributed import data_parallel
        from ._engine import EarlyStopping, Interrupted, oom_error, warn_interrupted
        from ._training import resolve_device

        if incremental and self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: a chunk has no "
                "held-out data. Set early_stopping=False, or use fit."
            )
        texts = check_texts(X)
        sample_weight = check_sample_weight(sample_weight, len(texts))
        trainer = self.__dict__.get("_trainer")
        if incremental:
            self._check_stream_continues(texts)
        target = self._targets(y, len(texts), sample_weight, classes, incremental)
        targets = target.values
        tokenizer = (trainer.tokenizer if trainer is not None
                     else _fitting.tokenizer_for(self, incremental))
        encoding = self._encode(tokenizer, texts, cache=True)
        self._warn_truncated(tokenizer, texts, encoding, stacklevel=6)
        seed, parallel = None, None if trainer is None else trainer.parallel
        if trainer is None:  # a new run: its seed, device and processes
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            device = resolve_device(self.device)
            parallel = data_parallel(device)
            if parallel is not None:  # every process shuffles, splits and trains alike
                seed = parallel.broadcast_seed(seed)
        if parallel is not None:
            parallel.check_same_input(texts_digest(texts + [str(t) for t in targets]))
        lock = self._checkpoint_lock(trainer, parallel) if incremental else None
        why = None if incremental else (
            "early_stopping" if self.early_stopping else target.holdout)
        train_rows, val_rows = _fitting.validation_split(
            targets, seed, self.validation_fraction, why=why, stratify=target.stratify)
        n_train = len(encoding.sequences(train_rows)[0])  # rows: texts or their windows
        if trainer is None:
            trainer = _fitting.new_trainer(self, tokenizer, len(target.counts), n_train, seed,
                                           incremental, device, parallel)
        if lock is not None and trainer.lock is not lock:
            if trainer.lock is not None:
                trainer.lock.release()
            trainer.lock = lock
        _fitting.check_batch_norm(self, trainer.module, n_train, parallel)
        if incremental:
            self._check_chunk(target, trainer.state.label_counts)
        source, validation = _fitting.sources(self, trainer, encoding, train_rows, val_rows,
                                              targets, target.weights, target.criterion)
        fitted = dict(target.fitted, model_=trainer.module, tokenizer_=trainer.tokenizer,
                      text_pairs_=is_pair_input(texts))
        if incremental:
            losses = self._train_chunk(trainer, source)
            self._commit_chunk(trainer, fitted, losses, target.counts, source.n_texts)
            return self
        stopper = None if validation is None else EarlyStopping(
            trainer.module, self.n_iter_no_change, self.tol)
        try:
            losses = trainer.train(source, self.max_iter, validation=validation,
                                   stopper=stopper, verbose=self.verbose)
        except Interrupted as stop:
            losses = stop.losses
            warn_interrupted(stop)
        except torch.OutOfMemoryError as exc:
            raise oom_error(trainer.device, self.batch_size, self.max_length) from exc
        for name in ("_derived_model", "validation_scores_", "best_validation_score_",
                     *self._run_attributes):
            self.__dict__.pop(name, None)  # of the network fitted before
        self.__dict__.update(fitted, n_iter_=len(losses), loss_curve_=losses,
                             n_samples_seen_=trainer.state.samples_seen)
        if stopper is not None:
            stopper.restore_best()
            self.validation_scores_ = stopper.scores
            self.best_validation_score_ = stopper.best_score
        self._after_fit(trainer, encoding, val_rows, targets)
        return self

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

    def _warn_truncated(self, tokenizer, texts, encoding, stacklevel):
        """Warn when more than ``_TRUNCATED_SHARE`` of ``texts`` were cut; return whether
        it warned."""
        from ._tokenization import count_truncated

        cut = count_truncated(tokenizer, texts, encoding, self.max_length)
        if cut <= _TRUNCATED_SHARE * len(texts):
            return False
        kept = ("its first" if self.truncation == "head"
                else "the first quarter and the last of its")
        warnings.warn(
            f"{cut} of {len(texts)} texts ({cut / len(texts):.0%}) are longer than "
            f"max_length={self.max_length} tokens; truncation={self.truncation!r} keeps "
            f"{kept} {self.max_length} tokens. Raise max_length (up to the model's "
            "max_position_embeddings), or set truncation='window' to read every token.",
            UserWarning, stacklevel=stacklevel,
        )
        return True

    def _check_stream_continues(self, texts):
        """Refuse a halted stream, a network ``set_params`` would rebuild, and a switch
        between single texts and text pairs."""
        from ._fitting import check_built_like

        if "_halted" in self.__dict__:
            raise RuntimeError(self._halted)
        if hasattr(self, "model_"):  # continues a fitted network
            check_built_like(self, self.model_)
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                other = "single texts" if self.text_pairs_ else "text pairs"
                raise ValueError(
                    f"This {type(self).__name__} was trained on {kind}; partial_fit got "
                    f"{other}. Every chunk of a stream must be {kind}."
                )

    def _checkpoint_lock(self, trainer, parallel):
        """The lock on ``checkpoint_dir`` for this stream, taken before it trains.

        Taken on the stream's first chunk (and when ``checkpoint_dir`` changed), by the
        process that writes checkpoints: the folder is probed for writing, another
        stream writing it is refused, and so is a folder holding a newer run's
        checkpoints, all before any training.
        """
        from ._checkpoint import FolderLock, check_newer

        if self.checkpoint_dir is None or not (parallel is None or parallel.is_main):
            return None
        held = None if trainer is None else trainer.lock
        if held is not None and held.holds(self.checkpoint_dir):
            return held
        lock = FolderLock(self.checkpoint_dir)
        try:
            check_newer(self.checkpoint_dir, 0 if trainer is None else trainer.state.steps)
        except BaseException:
            lock.release()
            raise
        return lock

    def _train_chunk(self, trainer, source):
        """One pass over a chunk; on failure the stream halts, counted at its last chunk."""
        import torch

        from ._engine import Interrupted, oom_error

        try:
            return trainer.train(source, 1, verbose=self.verbose)
        except Interrupted:
            raise KeyboardInterrupt(self._halt(trainer, "was interrupted (Ctrl-C)")) from None
        except torch.OutOfMemoryError as exc:
            self._halt(trainer, "ran out of memory")
            raise oom_error(trainer.device, self.batch_size, self.max_length) from exc
        except FloatingPointError as exc:
            raise FloatingPointError(
                f"{exc} {self._halt(trainer, 'stopped on a non-finite loss')}") from None

    def _commit_chunk(self, trainer, fitted, losses, counts, n_texts):
        """Count a completed chunk of ``n_texts`` texts (``counts`` of each output) and
        write its checkpoint when one is due, together: when the write fails, nothing is
        counted and the stream halts."""
        state = trainer.state  # the loop counted the chunk's texts at the end of its pass
        before = (state.chunks, state.samples_seen - n_texts, state.label_counts)
        state.chunks += 1
        state.label_counts = state.label_counts + counts
        # A stream's curves count its own chunks (the resume loop skips n_iter_ chunks),
        # so the first chunk after fit starts them anew and drops the fit's scores.
        first = state.chunks == 1
        fitted.update(
            n_iter_=state.chunks, loss_curve_=([] if first else self.loss_curve_) + losses,
            n_samples_seen_=state.samples_seen,
        )
        due = self.checkpoint_dir is not None and trainer.is_main and (
            self.checkpoint_every is None
            or state.steps - state.last_checkpoint >= self.checkpoint_every
        )
        if due:
            # The estimator as it will be once committed (a plain copy of attributes:
            # copy.copy would go through __getstate__ and serialise the network).
            candidate = object.__new__(type(self))
            candidate.__dict__.update(self.__dict__, **fitted, _trainer=trainer)
            try:
                candidate.save_checkpoint(self.checkpoint_dir)
            except BaseException as exc:
                state.chunks, state.samples_seen, state.label_counts = before
                advice = self._halt(trainer, "could not write its checkpoint")
                if not isinstance(exc, Exception):
                    raise
                raise OSError(
                    f"partial_fit could not write a checkpoint to checkpoint_dir="
                    f"{os.fspath(self.checkpoint_dir)!r} ({type(exc).__name__}: {exc}); the "
                    f"checkpoints there before are intact. {advice}"
                ) from exc
        for name in ("_derived_model",) + (
                ("validation_scores_", "best_validation_score_") if first else ()):
            self.__dict__.pop(name, None)
        self.__dict__.update(fitted, _trainer=trainer)
        self._warn_past_max_steps(trainer)

    def _halt(self, trainer, why):
        """Stop a stream whose chunk did not complete; return how the user can go on.

        A stream whose first chunk failed on an unfitted estimator is forgotten (nothing
        was fitted); any other refuses ``partial_fit`` until ``fit`` or ``resume``.
        """
        chunk = trainer.state.chunks + 1
        self.__dict__.pop("_trainer", None)
        if trainer.lock is not None:
            trainer.lock.release()
        if not hasattr(self, "model_"):
            return (f"partial_fit {why} during the first chunk; nothing was fitted or "
                    "counted. Call partial_fit again to start the stream.")
        resume = "call fit, or start a new stream on a new estimator"
        if self.checkpoint_dir is not None:
            resume = (f"resume from the last checkpoint with {type(self).__name__}.resume("
                      f"{os.fspath(self.checkpoint_dir)!r}) and feed the chunks after its "
                      "n_iter_, or call fit")
        self._halted = (
            f"partial_fit {why} during chunk {chunk} of the stream. That chunk is not "
            f"counted (n_iter_ is still {self.n_iter_}), but the weights were trained on "
            f"(part of) it, so this stream cannot continue in memory without training on "
            f"it twice: {resume}. Predictions use the weights of the last completed step."
        )
        return self._halted

    def _warn_past_max_steps(self, trainer):
        """Warn, once per stream, when it has stepped past its schedule's end (rate 0)."""
        state = trainer.state
        end = state.plan.total_steps  # the schedule's, even after set_params
        if end is None or state.steps <= end or "end" in trainer.warned:
            return
        trainer.warned.add("end")
        changed = ""
        if self.max_steps != end:
            changed = (f" (max_steps={self.max_steps!r} was set after the stream began, "
                       "which does not change its schedule)")
        warnings.warn(
            f"partial_fit has taken {state.steps} optimizer steps, more than max_steps="
            f"{end}{changed}: the learning rate reached 0 at step {end}, so later steps "
            "no longer change the trained weights, but BatchNorm running statistics and "
            "the optimizer's moments still follow the data. Set max_steps to the steps of "
            "the whole stream (each chunk takes at least ceil(rows / batch_size)) "
            "before its first chunk.",
            UserWarning, stacklevel=6,
        )

    def save_checkpoint(self, checkpoint_dir):
        """Write the estimator and its training state as a new checkpoint folder.

        The folder ``ckpt-<step>`` holds ``estimator.skops`` (parameters, weights,
        tokenizer) and ``training_state.pt`` (the ``state_dict()`` of the training
        state: optimizer, schedule plan, random states, counters; read back with
        ``torch.load(weights_only=True)``). It is written under a temporary name and
        renamed when complete; the ``keep_checkpoints`` newest are kept. A folder that
        another stream holds (its ``.lock``) is refused.

        Parameters
        ----------
        checkpoint_dir : str or os.PathLike
            Folder of the checkpoints.

        Returns
        -------
        path : pathlib.Path
            The new checkpoint folder.

        Raises
        ------
        RuntimeError
            When another stream writes ``checkpoint_dir``.
        """
        import io

        import skops.io as sio
        import torch

        from ._checkpoint import FolderLock, write_checkpoint

        check_is_fitted(self)
        trainer = self.__dict__.get("_trainer")
        if trainer is None:
            raise ValueError("save_checkpoint needs a partial_fit stream to save; call "
                             "partial_fit first (a model from fit is saved with skops).")
        buffer = io.BytesIO()
        torch.save(trainer.state.state_dict(), buffer)
        files = {"estimator.skops": sio.dumps(self), _STATE_FILE: buffer.getvalue()}
        held = trainer.lock is not None and trainer.lock.holds(checkpoint_dir)
        lock = None if held else FolderLock(checkpoint_dir)  # refuses another stream's
        try:
            path = write_checkpoint(checkpoint_dir, trainer.state.steps, files,
                                    keep=self.keep_checkpoints)
        finally:
            if lock is not None:
                lock.release()
        trainer.state.last_checkpoint = trainer.state.steps
        return path

    @classmethod
    def resume(cls, checkpoint_dir, *, trusted=None):
        """Load the newest complete checkpoint of ``checkpoint_dir`` to continue training.

        The returned estimator continues exactly where the checkpoint left off: call
        ``partial_fit`` on the chunks after the first ``n_iter_`` ones.

        Parameters
        ----------
        checkpoint_dir : str or os.PathLike
            Folder written by ``partial_fit`` with ``checkpoint_dir`` set.
        trusted : list of str, default=None
            Extra types for skops to trust, such as a custom head factory; the
            estimator's own type is always trusted.

        Returns
        -------
        estimator : BertTextClassifier or BertTextRegressor
            Of the class ``resume`` is called on.

        Raises
        ------
        ValueError
            When a file of the checkpoint is corrupt, holds untrusted types or custom
            code, or its training state is of another network; the message names the
            file, and nothing is changed.
        """
        import skops.io as sio
        import torch
        from skops.io.exceptions import UntrustedTypesFoundException

        from ._checkpoint import latest_checkpoint
        from ._distributed import data_parallel
        from ._fitting import restore_trainer
        from ._training import resolve_device

        path = latest_checkpoint(checkpoint_dir)
        model_file, state_file = path / "estimator.skops", path / _STATE_FILE
        trusted = TRUSTED_TYPES + list(trusted or [])

        def broken(file, exc):
            return ValueError(
                f"Checkpoint file {os.fspath(file)!r} is corrupt, truncated or not written "
                f"by skbert ({type(exc).__name__}: {exc}). Nothing was changed; remove the "
                f"folder {path.name} to resume from the checkpoint before it."
            )

        try:
            estimator = sio.load(model_file, trusted=trusted)
        except UntrustedTypesFoundException:
            untrusted = sio.get_untrusted_types(file=model_file)
            raise ValueError(
                f"Checkpoint {os.fspath(path)!r} holds types that are not trusted: "
                f"{[t for t in untrusted if t not in trusted]}, such as a custom head "
                "factory. If you trust them, pass them: resume(checkpoint_dir, "
                "trusted=[...])."
            ) from None
        except Exception as exc:
            raise broken(model_file, exc) from exc
        if not isinstance(estimator, cls):
            raise broken(model_file, TypeError(f"it holds a {type(estimator).__name__}"))
        try:
            # Onto the CPU first: each process then moves the state to its own device
            # (and a GPU checkpoint read on a CPU-only machine gets a message, not a
            # CUDA error).
            state = torch.load(state_file, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise TypeError(f"it holds a {type(state).__name__}, not a training state")
        except Exception as exc:
            raise broken(state_file, exc) from exc
        device = resolve_device(estimator.device)
        try:
            estimator._trainer = restore_trainer(estimator, state, device,
                                                 data_parallel(device))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"Checkpoint file {os.fspath(state_file)!r} does not belong to "
                f"{model_file.name} beside it: {exc}. Nothing was changed; remove the folder "
                f"{path.name} to resume from the checkpoint before it."
            ) from exc
        return estimator

    # --------------------------------------------------------------- prediction
    def _prediction_module(self, device):
        """The fitted network on ``device``; under ``inference_dtype="int8"`` its int8
        copy, under ``inference_backend="openvino"`` its OpenVINO compilation.

        Either derivative is made once per fitted model and setting, and kept (not
        pickled); fitting again discards it.
        """
        if self.inference_backend == "openvino":
            from ._openvino import check_openvino, compile_network

            check_openvino(self.inference_dtype, device)
            self.model_.to(device)  # transform's features stay in torch, on the CPU
            return self._derived(("openvino", self.inference_dtype), lambda: compile_network(
                self.model_, text_pairs=self.text_pairs_, inference_dtype=self.inference_dtype))
        if self.inference_dtype != "int8":
            return self.model_.to(device)
        if device.type != "cpu":
            raise ValueError(
                f"inference_dtype='int8' runs on the CPU only; got device={self.device!r} "
                f"({device}). Use inference_dtype='auto' on {device.type}, or device='cpu'."
            )
        from ._modeling import quantize_int8

        return self._derived(("int8",), lambda: quantize_int8(self.model_))

    def _derived(self, key, make):
        """The network derived from ``model_`` for prediction setting ``key``, made by
        ``make()`` on first use (one at a time) and kept until ``model_`` changes."""
        with _DERIVED_LOCK:
            cached = self.__dict__.get("_derived_model")
            if cached is None or cached[0] is not self.model_ or cached[1] != key:
                cached = (self.model_, key, make())
                self._derived_model = cached
        return cached[2]

    def _iter_logits(self, X, chunk_size, *, features=False):
        """Yield the logits of ``X`` chunk by chunk, in input order (with ``features``,
        the pooled features the head maps to them).

        The next chunk is tokenized in a thread (the fast tokenizer releases the GIL)
        while the model runs on the current one. With ``verbose`` above 0, one progress
        bar on stderr counts the texts of the call (of a total known when ``X`` has a
        length), batch by batch.
        """
        from concurrent.futures import ThreadPoolExecutor

        from tqdm.auto import tqdm

        from ._fitting import logits
        from ._pretrained import check_max_length
        from ._training import resolve_device

        check_max_length(self.model_.backbone.config, self.max_length)  # set_params after fit
        device = resolve_device(self.device)
        module = self._prediction_module(device)
        pad_id = self.tokenizer_.pad_token_id

        def checked_encode(texts):
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                raise ValueError(
                    f"This {type(self).__name__} was fitted on {kind}; X must be {kind} too.")
            return texts, self._encode(self.tokenizer_, texts)

        warned = False

        def encoded(pending):  # the encoding of a chunk; a call warns once about cuts
            nonlocal warned
            texts, encoding = pending.result()
            if not warned:
                warned = self._warn_truncated(self.tokenizer_, texts, encoding, stacklevel=6)
            return encoding

        try:
            total = len(X)
        except TypeError:  # a generator, a file: the bar counts without a total
            total = None
        with ThreadPoolExecutor(max_workers=1) as pool, tqdm(
                total=total, desc="transform" if features else "predict", unit=" texts",
                disable=self.verbose <= 0) as bar:
            pending = None
            for texts in iter_text_chunks(X, chunk_size):
                if not texts:
                    continue
                upcoming = pool.submit(checked_encode, texts)
                if pending is not None:
                    yield logits(self, module, encoded(pending), None, pad_id, device,
                                 features=features, progress=bar)
                pending = upcoming
            if pending is not None:
                yield logits(self, module, encoded(pending), None, pad_id, device,
                             features=features, progress=bar)

    def _predict_logits(self, X, *, features=False):
        """Logits (or features) of all of ``X``; no rows for no texts."""
        chunks = list(self._iter_logits(X, _PREDICT_CHUNK_SIZE, features=features))
        if not chunks:
            width = (self.model_.backbone.config.hidden_size if features
                     else self._n_outputs())
            return np.empty((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    def transform(self, X):
        """Pooled features of texts ``X`` from the fitted encoder: embeddings.

        The vectors the head maps to logits (after the ``pooling`` step), batched like
        ``predict``. They let a fine-tuned (or frozen-base) skbert model feed another
        estimator, e.g. in a ``Pipeline``. There is no ``fit_transform`` of its own: a
        ``Pipeline`` step calls ``fit(X, y)`` and then ``transform(X)``, so the
        features of the training texts come from the network fine-tuned on them.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the model was fitted on pairs.

        Returns
        -------
        features : ndarray of float32 of shape (n_samples, hidden_size)
            One row per text, in input order.
        """
        check_is_fitted(self)
        return self._predict_logits(X, features=True)

    # ------------------------------------------------------ Hugging Face folders
    def save_pretrained(self, path, *, metrics=None, data_description=None):
        """Write the fitted estimator as a Hugging Face folder, atomically.

        The folder holds the fine-tuned encoder (``config.json``, ``model.safetensors``:
        ``transformers.AutoModel.from_pretrained(path)`` loads it with no custom code),
        the tokenizer's files, the head's weights (``skbert_head.safetensors``), the
        estimator's class, parameters and fitted attributes (``skbert.json``) and a
        model card (``README.md``). Nothing is pickled. ``from_pretrained`` restores
        an estimator that predicts identically.

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write; an existing one is replaced only once the new one is
            complete.
        metrics : dict of str to float, default=None
            Scores to list in the model card, such as ``{"accuracy": 0.91}``.
        data_description : str, default=None
            What the training data was, for the model card.

        Returns
        -------
        path : pathlib.Path

        Raises
        ------
        TypeError
            When a parameter cannot be written as JSON (a ``random_state`` that is a
            ``RandomState`` instance, a head factory that is not a module-level
            function), naming it.
        """
        from ._hub import save_folder

        check_is_fitted(self)
        return save_folder(self, path, metrics=metrics, data_description=data_description)

    @classmethod
    def from_pretrained(cls, name_or_path, *, revision=None, trusted=None):
        """Load an estimator written by ``save_pretrained`` or ``push_to_hub``.

        Parameters
        ----------
        name_or_path : str or os.PathLike
            A local folder, or a Hugging Face repository id (downloaded once into the
            Hugging Face cache; ``HF_HUB_OFFLINE=1`` reads only the cache).
        revision : str, default=None
            Branch, tag or commit hash of a repository id.
        trusted : list of str, default=None
            Head factories (``"module:qualname"``) that may be imported: a custom
            ``head`` is saved by reference, and nothing is imported unless named here.

        Returns
        -------
        estimator : BertTextClassifier or BertTextRegressor
            Of the class ``from_pretrained`` is called on, fitted.

        Raises
        ------
        ValueError
            When the folder is not an skbert folder, holds another estimator class, was
            written by a newer skbert, or names an untrusted head factory.
        """
        from ._hub import load_folder

        return load_folder(cls, name_or_path, revision=revision, trusted=trusted)

    def push_to_hub(self, repo_id, *, private=None, token=None, revision=None,
                    commit_message=None, metrics=None, data_description=None):
        """Upload the ``save_pretrained`` folder to a Hugging Face repository.

        The repository is created if needed (``huggingface_hub.HfApi.create_repo``)
        and the folder uploaded in one commit (``upload_folder``), model card included.

        Parameters
        ----------
        repo_id : str
            Such as ``"user/my-skbert-model"``.
        private : bool, default=None
            Whether a new repository is private (None: the hub's default).
        token : str, default=None
            A Hugging Face token; None uses the one ``huggingface-cli login`` saved.
        revision : str, default=None
            The branch to commit to.
        commit_message : str, default=None
        metrics : dict of str to float, default=None
            Scores for the model card.
        data_description : str, default=None
            What the training data was, for the model card.

        Returns
        -------
        commit : huggingface_hub.CommitInfo
        """
        from ._hub import push_folder

        check_is_fitted(self)
        return push_folder(self, repo_id, private=private, token=token, revision=revision,
                           commit_message=commit_message, metrics=metrics,
                           data_description=data_description)

    # -------------------------------------------------------- tags, persistence
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        return tags

    def __getstate__(self):
        """Replace the network and tokenizer by plain values and bytes.

        pickle and skops then store no torch or transformers objects, and loading
        needs neither the network nor the original model folder.
        """
        state = super().__getstate__()
        # The training state of a partial_fit stream travels in checkpoints only.
        # The int8 copy or OpenVINO compilation is rebuilt on demand.
        state = {k: v for k, v in state.items() if k not in ("_trainer", "_derived_model")}
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
        state = self._upgrade_state(state)
        if isinstance(state.get("model_"), dict):
            from ._modeling import module_from_state
            from ._pretrained import tokenizer_from_state

            state = dict(state)
            state["model_"] = module_from_state(state["model_"])
            state["tokenizer_"] = tokenizer_from_state(state["tokenizer_"])
        super().__setstate__(state)
