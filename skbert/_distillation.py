"""Static token tables from a network: every vocabulary token run through it alone.

Model2Vec's first step (Tulkens and van Dongen, 2024), written here because
``model2vec``'s distillation extra pins ``transformers<5.4`` (releases with published
security advisories): each token ``t`` of the vocabulary goes through the network as
``[CLS] t [SEP]`` and its pooled features (the network's own pooling, the vectors its
head reads) become the token's row. ``_static.project`` then reduces and weights the
table; the static estimators predict from it without torch.

Functions of values (a network, a tokenizer, a device); the features run through
``_prediction.outputs``, the one prediction path. Of skbert it imports
``_batching``, ``_engine``, ``_modeling``, ``_prediction``, ``_pretrained`` and
``_tokenization``.
"""

import functools

import numpy as np
import torch

from ._batching import training_batches
from ._prediction import outputs
from ._tokenization import Encoding, special_tokens


def token_features(module, tokenizer, *, device, budget, dtype=None, progress=None):
    """The pooled features of every vocabulary token, alone between the special tokens.

    Parameters
    ----------
    module : skbert._modeling.TextClassifierModule
        The network (its ``features`` are taken).
    tokenizer : transformers tokenizer
    device : torch.device
    budget : int
        Tokens per batch.
    dtype : torch.dtype or None
        Autocast dtype, or None for full precision.
    progress : tqdm or None

    Returns
    -------
    features : ndarray of float32 of shape (len(tokenizer), hidden_size)
        Rows of zeros for the special tokens, which a static model never sees.
    """
    prefix, suffix = special_tokens(tokenizer)
    n = len(tokenizer)
    width = len(prefix) + 1 + len(suffix)
    ids = np.empty((n, width), dtype=np.int32)
    ids[:, :len(prefix)] = prefix
    ids[:, len(prefix)] = np.arange(n)
    ids[:, len(prefix) + 1:] = suffix
    encoding = Encoding(ids.ravel(), None, np.arange(n + 1, dtype=np.int64) * width)
    features = outputs(module, encoding, pad_id=tokenizer.pad_token_id, device=device,
                       budget=budget, dtype=dtype, features=True, progress=progress)
    features[[i for i in tokenizer.all_special_ids if i < n]] = 0.0
    return features


def tokenizer_json(tokenizer):
    """The fast tokenizer's definition, as the ``tokenizers`` package reads it."""
    return tokenizer.backend_tokenizer.to_str()


@functools.cache
def pretrained_token_features(model_name_or_path, revision=None):
    """:func:`token_features` of a pretrained encoder with mean pooling, on the CPU in
    full precision, and its tokenizer's JSON; once per encoder and process."""
    from ._modeling import build_module
    from ._prediction import PREDICT_BATCH_TOKENS
    from ._pretrained import load_backbone, load_tokenizer, resolve_model_path

    path = resolve_model_path(model_name_or_path, revision)
    tokenizer = load_tokenizer(path, revision)
    module = build_module(load_backbone(path), 1, pooling="mean")
    with torch.inference_mode():
        features = token_features(module, tokenizer, device=torch.device("cpu"),
                                  budget=4 * PREDICT_BATCH_TOKENS["cpu"])
    return features, tokenizer_json(tokenizer)


class _BagNetwork(torch.nn.Module):
    """What a static student computes, in torch: the normalised sum (so, mean) of a
    text's token rows, then a linear head."""

    def __init__(self, table, coef, intercept):
        super().__init__()
        self.table = torch.nn.Parameter(torch.from_numpy(np.array(table, dtype=np.float32)))
        self.head = torch.nn.Linear(table.shape[1], len(coef))
        with torch.no_grad():
            self.head.weight.copy_(torch.from_numpy(np.asarray(coef, dtype=np.float32)))
            self.head.bias.copy_(torch.from_numpy(np.asarray(intercept, dtype=np.float32)))

    def forward(self, ids, starts):
        bags = torch.nn.functional.embedding_bag(ids, self.table, starts, mode="sum")
        return self.head(torch.nn.functional.normalize(bags, dim=1, eps=1e-12))


class BagBatches:
    """A batch source of the one training loop (``_engine.Trainer``): texts as token
    bags, and the loss of the network's outputs against the teacher's.

    Parameters
    ----------
    ids, offsets : ndarray of int64
        The texts' token ids, as ``_static.token_ids`` gives them.
    targets : ndarray of float of shape (n_texts, n_outputs)
        Probability rows (``kind="softmax"``), per-label probabilities ("sigmoid") or
        standardised values ("regression").
    kind : {"softmax", "sigmoid", "regression"}
    batch_size : int
    """

    def __init__(self, ids, offsets, targets, *, kind, batch_size):
        self.ids, self.offsets, self.kind, self.batch_size = ids, offsets, kind, batch_size
        self.targets = torch.from_numpy(np.asarray(targets, dtype=np.float32))
        self.n_texts = len(offsets) - 1

    def batches(self, rng):
        return training_batches(self.n_texts, self.batch_size, rng, length_grouped=False)

    def loss(self, network, batch, part):
        rows = batch[part]
        starts = self.offsets[rows]
        lengths = self.offsets[rows + 1] - starts
        bag_starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        # The rows' ids, gathered at once: position k of bag j is ids[starts[j] + k].
        ids = self.ids[np.repeat(starts - bag_starts, lengths) + np.arange(lengths.sum())]
        outputs = network(torch.from_numpy(ids), torch.from_numpy(bag_starts))
        target = self.targets[torch.from_numpy(rows)]
        if self.kind == "softmax":
            losses = -(target * torch.log_softmax(outputs, dim=1)).sum(dim=1)
        elif self.kind == "sigmoid":
            losses = torch.nn.functional.binary_cross_entropy_with_logits(
                outputs, target, reduction="none").mean(dim=1)
        else:
            losses = ((outputs - target) ** 2).mean(dim=1)
        return losses.sum() / len(batch)


def train_bag(table, coef, intercept, ids, offsets, targets, *, kind, passes,
              batch_size=None, learning_rate=2e-2, seed=0):
    """Train a static student's token ``table`` and its linear head (``coef``,
    ``intercept``) on the teacher's outputs ``targets``, on the one training loop, on
    the CPU.

    fastText's recipe with a teacher's soft targets: the distilled table and the head
    fitted on it are where the training starts, so a few passes move each token towards
    what the fine-tuned network's answers say of it in context.

    Batches hold ``batch_size`` texts: by default 1/32 of the texts, between 16 and
    256, so that a small set still takes a few dozen steps a pass.

    Returns
    -------
    table : ndarray of float32 of shape (n_tokens, n_dims)
    coef : ndarray of float32 of shape (n_outputs, n_dims)
    intercept : ndarray of float32 of shape (n_outputs,)
    """
    from ._engine import Trainer, TrainingPlan, new_state

    device = torch.device("cpu")
    if batch_size is None:
        batch_size = int(np.clip((len(offsets) - 1) // 32, 16, 256))
    network = _BagNetwork(table, coef, intercept)
    source = BagBatches(ids, offsets, targets, kind=kind, batch_size=batch_size)
    per_pass = len(source.batches(np.random.default_rng(0)))
    plan = TrainingPlan.of_run(per_pass, warmup_fraction=0.0, passes=passes)
    groups = [{"params": [network.table], "weight_decay": 0.0, "lr": learning_rate},
              {"params": list(network.head.parameters()), "weight_decay": 0.0,
               "lr": learning_rate}]
    state = new_state(groups, plan, seed, device, None)
    Trainer(network, network, state, device=device).train(source, passes)
    return (network.table.detach().numpy().copy(), network.head.weight.detach().numpy().copy(),
            network.head.bias.detach().numpy().copy())
