"""Batch sources of the training loop: what a batch is, and the loss share of one.

Each source has ``batches(rng)`` (row positions of each batch, drawn anew every pass;
``_batching.count_batches`` says how many) and ``loss(network, batch, part)``: the loss of the
positions ``part`` of ``batch`` (this process's share; ``slice(None)`` for all), such that
the shares of a batch add up to its mean loss; ``n_texts`` is what a complete pass counts
as trained on (the texts, also when a text is several windows). Sources hold tensors and
arrays only, no estimator.
A :class:`Criterion` says what the targets are (classes, labels, real values) and how
outputs are scored against them.

- :class:`TokenBatches`: token ids through the whole network (full fine-tuning);
- :class:`FeatureBatches`: pooled features of a frozen base, computed once, through the
  head only;
- :class:`MaskedTokenBatches`: masked language modelling of unlabelled texts.

Which rows train and which are held out (:func:`validation_split`) and the loss weights
of texts and labels (:func:`loss_weights`, :func:`pos_weights`) are here too. Of skbert
it imports ``_batching`` and ``_device``.
"""

from numbers import Integral

import numpy as np
import torch

from ._batching import training_batches
from ._device import batch_to_device, host_to_device


class Criterion:
    """What a batch's targets are and how outputs are scored against them.

    Parameters
    ----------
    kind : {"multiclass", "multilabel", "squared_error", "huber"}
        Class indices (int64, 1-D) take the cross-entropy; a 0/1 indicator matrix
        (multi-label) the binary cross-entropy of each label, averaged over the labels;
        real targets (2-D, standardised) the squared error or the Huber loss of each
        output, averaged over the outputs.
    pos_weight : ndarray of shape (n_labels,) or None
        Multi-label only: the weight of each label's positives.
    epsilon : float
        Huber only: where the loss turns from squared to linear.
    """

    def __init__(self, kind, pos_weight=None, epsilon=1.0):
        if kind not in ("multiclass", "multilabel", "squared_error", "huber"):
            raise ValueError(f"unknown criterion kind {kind!r}")
        self.kind, self.epsilon = kind, epsilon
        self.pos_weight = None if pos_weight is None else torch.as_tensor(
            np.asarray(pos_weight, dtype=np.float32))

    def to(self, device):
        """This criterion with its tensors on ``device``."""
        if self.pos_weight is not None:
            self.pos_weight = self.pos_weight.to(device)
        return self

    def target_tensor(self, targets, device):
        """``targets`` as the tensor the loss takes, on ``device``."""
        dtype = np.int64 if self.kind == "multiclass" else np.float32
        return torch.from_numpy(np.asarray(targets).astype(dtype)).to(device)

    def losses(self, outputs, targets):
        """The loss of each row of ``outputs`` (float32) against ``targets``."""
        functional = torch.nn.functional
        if self.kind == "multiclass":
            return functional.cross_entropy(outputs, targets, reduction="none")
        if self.kind == "multilabel":
            return functional.binary_cross_entropy_with_logits(
                outputs, targets, pos_weight=self.pos_weight, reduction="none").mean(1)
        if self.kind == "huber":
            return functional.huber_loss(outputs, targets, reduction="none",
                                         delta=self.epsilon).mean(1)
        return functional.mse_loss(outputs, targets, reduction="none").mean(1)

    def score(self, outputs, targets, weights=None):
        """The validation score of ``outputs`` (ndarray), as the estimator's ``score``:
        accuracy, subset accuracy (every label right at 0.5), or R² averaged over the
        outputs (unchanged by the targets' standardisation)."""
        if self.kind in ("squared_error", "huber"):
            from sklearn.metrics import r2_score

            return float(r2_score(targets, outputs, sample_weight=weights))
        if self.kind == "multiclass":
            correct = outputs.argmax(1) == targets
        else:
            correct = ((outputs > 0) == (targets > 0.5)).all(1)
        return float(np.average(correct, weights=weights))


def batch_loss(outputs, targets, weights, n_batch, criterion):
    """Summed (weighted) loss of ``outputs`` under ``criterion``, divided by the batch size."""
    losses = criterion.losses(outputs.float(), targets)
    if weights is not None:
        losses = losses * weights
    return losses.sum() / n_batch


class _Labelled:
    """Targets and loss weights of the training rows, on the device; the loss of a share.

    ``targets`` are what ``criterion`` takes: class indices (1-D), a 0/1 indicator
    matrix of multi-label targets, or standardised real targets (2-D).
    """

    def __init__(self, targets, weights, device, batch_size, criterion, n_texts=None):
        self.n_texts = len(targets) if n_texts is None else n_texts
        self.criterion = criterion.to(device)
        self.targets = criterion.target_tensor(targets, device)
        self.weights = None if weights is None else torch.from_numpy(
            np.asarray(weights, dtype=np.float32)).to(device)
        self.device, self.batch_size = device, batch_size

    def loss(self, network, batch, part):
        """Loss share of the positions ``part`` of ``batch`` (row positions)."""
        index = host_to_device(torch.from_numpy(batch[part]), self.device)
        weights = None if self.weights is None else self.weights[index]
        return batch_loss(self._logits(network, batch[part], index), self.targets[index],
                          weights, len(batch), self.criterion)


class TokenBatches(_Labelled):
    """Training texts as token ids, in shuffled length-grouped batches.

    Parameters
    ----------
    encoding : skbert._tokenization.Encoding
        From ``_tokenization.encode``.
    rows : ndarray of int
        The training sequences of ``encoding`` (texts, or windows of texts).
    targets, weights : ndarray
        Target (class index, 0/1 label row or standardised values) and loss weight (or
        None) of each training text.
    pad_id : int
    batch_size : int
    device : torch.device
    criterion : Criterion
    n_texts : int or None
        Texts the rows are of (None: one row a text).
    """

    def __init__(self, encoding, rows, targets, weights, *, pad_id, batch_size, device,
                 criterion, n_texts=None):
        super().__init__(targets, weights, device, batch_size, criterion, n_texts)
        self.encoding, self.rows, self.pad_id = encoding, rows, pad_id
        self.lengths = np.diff(encoding[2])[rows]

    def batches(self, rng):
        return training_batches(self.lengths, self.batch_size, rng, length_grouped=True)

    def _logits(self, network, rows, index):
        return network(**batch_to_device(self.encoding, self.rows[rows], self.pad_id,
                                         self.device))


class FeatureBatches(_Labelled):
    """Pooled features of a frozen base, in shuffled batches through the head.

    Parameters
    ----------
    features : torch.Tensor of shape (n, hidden_size)
        On the training device.
    targets, weights : ndarray
    batch_size : int
    criterion : Criterion
    n_texts : int or None
        Texts the rows are of (None: one row a text).
    """

    def __init__(self, features, targets, weights, *, batch_size, criterion, n_texts=None):
        super().__init__(targets, weights, features.device, batch_size, criterion, n_texts)
        self.features = features

    def batches(self, rng):
        return training_batches(len(self.features), self.batch_size, rng, length_grouped=False)

    def _logits(self, network, rows, index):
        return network(self.features[index])


class MaskedTokenBatches:
    """Unlabelled texts for masked language modelling, masked anew in every batch.

    A batch is masked whole (the same draws in every process of a data-parallel run), so
    each process knows how many tokens the whole batch predicts and its share of the
    loss is exact. A batch in which no token was chosen gets one, so that no step
    divides by zero.

    Parameters
    ----------
    encoding : skbert._tokenization.Encoding
    special_ids : torch.Tensor
        Token ids never masked.
    probability : float
        Share of the other tokens to predict.
    mask_id, vocab_size, pad_id : int
    batch_size : int
    device : torch.device
    generator : torch.Generator
        CPU generator of the masks.
    """

    def __init__(self, encoding, *, special_ids, probability, mask_id, vocab_size, pad_id,
                 batch_size, device, generator):
        self.encoding, self.special_ids, self.probability = encoding, special_ids, probability
        self.mask_id, self.vocab_size, self.pad_id = mask_id, vocab_size, pad_id
        self.batch_size, self.device, self.generator = batch_size, device, generator
        self.lengths = np.diff(encoding[2])
        self.n_texts = len(self.lengths)

    def batches(self, rng):
        return training_batches(self.lengths, self.batch_size, rng, length_grouped=True)

    def loss(self, network, batch, part):
        inputs = batch_to_device(self.encoding, batch, self.pad_id, torch.device("cpu"))
        input_ids, labels = mask_tokens(
            inputs["input_ids"], self.special_ids, self.probability, self.mask_id,
            self.vocab_size, self.generator,
        )
        n_masked = int((labels != -100).sum())
        inputs["input_ids"] = input_ids
        inputs = {k: v[part].to(self.device) for k, v in inputs.items()}
        logits = network(**inputs).logits
        loss = torch.nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]),
            labels[part].to(self.device).reshape(-1), ignore_index=-100, reduction="sum",
        )
        return loss / max(n_masked, 1)


def mask_tokens(input_ids, special_ids, probability, mask_id, vocab_size, generator):
    """BERT masking: choose ``probability`` of the non-special tokens to predict.

    Of the chosen tokens 80% become ``mask_id``, 10% a random token, 10% stay. When no
    token was chosen, the candidate with the smallest draw is. Labels are -100
    (ignored) everywhere else.

    Returns
    -------
    input_ids, labels : torch.Tensor
    """
    labels = input_ids.clone()
    candidates = ~torch.isin(input_ids, special_ids)
    draws = torch.rand(input_ids.shape, generator=generator)
    chosen = (draws < probability) & candidates
    if not chosen.any() and candidates.any():
        chosen.view(-1)[torch.where(candidates.view(-1), draws.view(-1), 2.0).argmin()] = True
    labels[~chosen] = -100
    draw = torch.rand(input_ids.shape, generator=generator)
    masked = input_ids.clone()
    masked[chosen & (draw < 0.8)] = mask_id
    random_positions = chosen & (draw >= 0.8) & (draw < 0.9)
    masked[random_positions] = torch.randint(
        vocab_size, input_ids.shape, generator=generator
    )[random_positions]
    return masked, labels


def loss_weights(class_weight, classes, y, targets, sample_weight):
    """Per-text loss weights from ``sample_weight`` and ``class_weight``, or None.

    Normalised to a mean of 1 over the texts given, so that only relative weights
    matter: a uniform scale of all weights changes nothing (as in scikit-learn's
    estimators), and the learning rate keeps its meaning.
    """
    from sklearn.utils.class_weight import compute_class_weight

    if isinstance(class_weight, dict):
        unknown = [k for k in class_weight if k not in set(classes.tolist())]
        if unknown:
            raise ValueError(
                f"class_weight has keys {unknown!r} that are not classes in y; "
                f"the classes are {classes.tolist()!r}."
            )
    weights = None
    if class_weight is not None:
        weights = compute_class_weight(class_weight, classes=classes, y=y)[targets]
    if sample_weight is not None:
        weights = sample_weight if weights is None else weights * sample_weight
    if weights is None:
        return None
    total = weights.sum()
    if not total > 0:
        raise ValueError(
            "sample_weight (times class_weight) is 0 for every text: nothing to learn from."
        )
    return weights * (len(weights) / total)


def pos_weights(class_weight, Y):
    """Weights of each label's positives in a multi-label loss, or None.

    "balanced": negatives over positives of each label, so that both weigh alike; a
    dict maps label columns to weights.
    """
    n_labels = Y.shape[1]
    if class_weight is None:
        return None
    if class_weight == "balanced":
        positives = Y.sum(0)
        return (len(Y) - positives) / np.maximum(positives, 1)
    unknown = [k for k in class_weight
               if isinstance(k, bool) or not isinstance(k, Integral) or not 0 <= k < n_labels]
    if unknown:
        raise ValueError(
            f"class_weight has keys {unknown!r} that are not label columns: for a "
            f"multi-label y it maps label columns 0 to {n_labels - 1} to the weight of "
            "their positives."
        )
    weights = np.ones(n_labels)
    for column, weight in class_weight.items():
        weights[column] = weight
    return weights


def validation_split(targets, seed, fraction, *, why, stratify):
    """Row indices for training and, when ``why`` names what needs one (such as
    "early_stopping"), for validation: ``fraction`` of the rows, stratified by
    ``targets`` when ``stratify``, else at random. ``why=None``: all rows train."""
    rows = np.arange(len(targets))
    if why is None:
        return rows, None
    from sklearn.model_selection import train_test_split

    advice = f"Use more data, a larger validation_fraction, or {why}=False."
    try:
        train_rows, val_rows = train_test_split(
            rows, test_size=fraction, random_state=seed,
            stratify=targets if stratify else None,
        )
    except ValueError as exc:
        every = " with every class represented" if stratify else ""
        raise ValueError(
            f"{why} could not hold out validation_fraction={fraction} of {len(rows)} "
            f"texts{every}: {exc} {advice}"
        ) from None
    if len(val_rows) < 2:  # R² (and any score worth stopping on) needs two texts
        raise ValueError(
            f"{why} holds out validation_fraction={fraction} of {len(rows)} texts, which "
            f"is {len(val_rows)} text; a validation score needs at least 2. {advice}"
        )
    return np.sort(train_rows), np.sort(val_rows)
