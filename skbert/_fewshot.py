"""Few-shot training: a contrastive stage on the encoder, then a head from its embeddings.

With a few labelled texts per class, fine-tuning a freshly initialised head end to end is
unstable (a handful of optimizer steps from random logits). SetFit's recipe works better:
first pull the pooled embeddings of texts of the same class together and push those of
different classes apart (a contrastive stage on the encoder alone), then fit the head on
the adapted embeddings. Here the contrastive stage compares every pair of texts in a
batch (SetFit samples pairs one by one: a batch of 32 texts gives 496 pairs for the
price of 32 forward passes), with SetFit's loss: the squared error between the cosine
similarity of two embeddings and 1 (same class) or 0 (different classes), the two kinds
of pairs weighing alike. The head is then a logistic regression on the embeddings,
folded into the estimator's linear head.

The stage runs on the one training loop (``_engine.Trainer``) with the batch source
:class:`ContrastiveBatches`; :func:`use_few_shot` is the rule of ``few_shot="auto"``.
Functions take values (arrays, a network, numbers), not the estimator. Of skbert it
imports ``_device``.
"""

import json
import math
import os

import numpy as np
import torch

from ._device import batch_to_device

# few_shot="auto" takes the few-shot path when the rarest class has at most this many
# training texts (the sizes of the few-shot benchmark are 8, 16 and 64 per class).
AUTO_MAX_PER_CLASS = 64
# A pass of the contrastive stage puts each training text into this many batches (at
# least MIN_STEPS_PER_PASS batches): SetFit draws each text into 40 pairs by default.
REPEATS_PER_PASS = 8
MIN_STEPS_PER_PASS = 8
# The inverse regularisation strength of the logistic-regression head (scikit-learn's
# default, as SetFit's head), on embeddings scaled to a mean norm of 1.
HEAD_C = 1.0


def is_sentence_encoder(folder):
    """Whether the model folder ``folder`` holds a sentence-transformers model that mean-
    pools its token states (``modules.json`` naming a Pooling module whose
    ``1_Pooling/config.json`` says ``pooling_mode_mean_tokens``), as the default
    all-MiniLM-L6-v2 does. Reads two small JSON files; runs nothing from them."""
    if folder is None or not os.path.isdir(folder):
        return False
    try:
        with open(os.path.join(folder, "modules.json"), encoding="utf-8") as f:
            modules = json.load(f)
        pooling = next((m for m in modules if str(m.get("type", "")).endswith(".Pooling")),
                       None)
        if pooling is None:
            return False
        path = os.path.join(folder, str(pooling.get("path", "")), "config.json")
        with open(path, encoding="utf-8") as f:
            return bool(json.load(f).get("pooling_mode_mean_tokens"))
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def use_few_shot(counts, *, sentence_encoder, max_per_class=AUTO_MAX_PER_CLASS):
    """The rule of ``few_shot="auto"``: few-shot when the rarest of the classes (whose
    training texts number ``counts``) has at most ``max_per_class`` texts and the encoder
    is a sentence-embedding model (``sentence_encoder``), whose mean-pooled embeddings
    the few-shot stages build on."""
    counts = np.asarray(counts)
    return bool(sentence_encoder and len(counts) >= 2 and counts.min() <= max_per_class)


def steps_per_pass(n_rows, batch_size):
    """Batches of one pass of the contrastive stage over ``n_rows`` training rows."""
    per_batch = min(batch_size, n_rows)
    return max(MIN_STEPS_PER_PASS, math.ceil(REPEATS_PER_PASS * n_rows / per_batch))


def contrastive_loss(embeddings, targets):
    """SetFit's cosine-similarity loss over every pair of rows of ``embeddings``.

    The squared error between each pair's cosine similarity and 1 for rows of the same
    target, 0 for rows of different targets; the mean over same-target pairs and the
    mean over different-target pairs weigh alike (a batch without one kind counts the
    other only).

    Parameters
    ----------
    embeddings : torch.Tensor of shape (n, dim)
    targets : torch.Tensor of int64 of shape (n,)

    Returns
    -------
    loss : torch.Tensor (a scalar)
    """
    unit = torch.nn.functional.normalize(embeddings.float(), dim=1)
    cosine = unit @ unit.T
    same = targets[:, None] == targets[None, :]
    pairs = ~torch.eye(len(targets), dtype=torch.bool, device=cosine.device)
    parts = []
    for mask, goal in ((same & pairs, 1.0), (~same, 0.0)):
        if mask.any():
            parts.append(((cosine[mask] - goal) ** 2).mean())
    if not parts:  # a batch of one text: nothing to compare
        return cosine.sum() * 0.0
    return sum(parts) / len(parts)


class ContrastiveBatches:
    """Training texts as token ids, in batches whose every pair is compared.

    A pass is :func:`steps_per_pass` batches; each batch is the next ``batch_size``
    distinct rows of a stream of shuffled permutations of the rows, so every row appears
    about equally often and every batch mixes the classes.

    Parameters
    ----------
    encoding : skbert._tokenization.Encoding
    rows : ndarray of int
        The training sequences of ``encoding``.
    targets : ndarray of int64
        Class index of each row.
    pad_id : int
    batch_size : int
    device : torch.device
    n_texts : int or None
        Texts the rows are of (None: one row a text).
    """

    def __init__(self, encoding, rows, targets, *, pad_id, batch_size, device, n_texts=None):
        self.encoding, self.rows, self.pad_id = encoding, np.asarray(rows), pad_id
        self.batch_size, self.device = min(batch_size, len(self.rows)), device
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.int64)).to(device)
        self.n_texts = len(self.rows) if n_texts is None else n_texts
        self.n_steps = steps_per_pass(len(self.rows), batch_size)

    def batches(self, rng):
        """Row positions of each batch of a pass (drawn from ``rng``)."""
        queue, out = [], []
        for _ in range(self.n_steps):
            batch, deferred = set(), []
            while len(batch) < self.batch_size:
                if not queue:
                    queue = rng.permutation(len(self.rows)).tolist()
                row = queue.pop(0)
                (deferred.append if row in batch else batch.add)(row)
            queue = deferred + queue  # a row met twice waits for the next batch
            out.append(np.array(sorted(batch)))
        return out

    def loss(self, network, batch, part):
        """The contrastive loss of the whole ``batch`` (``part`` must be all of it: the
        pairs of a batch do not split between processes)."""
        inputs = batch_to_device(self.encoding, self.rows[batch], self.pad_id, self.device)
        embeddings = network.features(**inputs)
        index = torch.from_numpy(np.asarray(batch)).to(self.device)
        return contrastive_loss(embeddings, self.targets[index])


def logistic_head(features, targets, n_classes, sample_weight=None, C=HEAD_C):
    """Weights and bias of a linear layer that computes a logistic regression's logits.

    The regression is fitted on ``features`` scaled to a mean norm of 1 (what SetFit's
    head sees of normalised embeddings, up to each text's norm), and the scale is folded
    into the weights, so that the layer takes the unscaled features. Two classes: the
    logits ``-z / 2`` and ``z / 2`` of the decision value ``z`` (the same softmax).

    Parameters
    ----------
    features : ndarray of shape (n, dim)
    targets : ndarray of int of shape (n,)
        Class indices, at least two distinct ones.
    n_classes : int
    sample_weight : ndarray of shape (n,) or None
    C : float
        Inverse regularisation strength.

    Returns
    -------
    weight : ndarray of float32 of shape (n_classes, dim)
    bias : ndarray of float32 of shape (n_classes,)
    """
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(features, dtype=np.float64)
    scale = float(np.linalg.norm(features, axis=1).mean()) or 1.0
    model = LogisticRegression(C=C, max_iter=1000)
    model.fit(features / scale, targets, sample_weight=sample_weight)
    coef, intercept = model.coef_ / scale, model.intercept_
    weight = np.zeros((n_classes, features.shape[1]))
    bias = np.zeros(n_classes)
    if len(model.classes_) == 2:
        low, high = model.classes_
        weight[low], weight[high] = -coef[0] / 2, coef[0] / 2
        bias[low], bias[high] = -intercept[0] / 2, intercept[0] / 2
    else:
        weight[model.classes_], bias[model.classes_] = coef, intercept
    return weight.astype(np.float32), bias.astype(np.float32)


def set_linear_head(head, weight, bias):
    """Copy ``weight`` and ``bias`` into the last ``torch.nn.Linear`` of ``head``."""
    linear = [m for m in head.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight).to(linear.weight))
        linear.bias.copy_(torch.from_numpy(bias).to(linear.bias))
