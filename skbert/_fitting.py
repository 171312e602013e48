"""What the estimators' ``fit`` and ``partial_fit`` need around the one loop.

Building an estimator's :class:`~skbert._engine.Trainer` (pretrained parts, head, seeded
initialisation, optimizer, plan), rebuilding it from a saved training state, the batch
sources of a fit, loss weights, the validation split, and the checks of a stream.
Functions of an estimator's parameters; the estimator calls them. Of skbert it uses
``_engine``, ``_inputs``, ``_modeling``, ``_patches``, ``_pretrained``, ``_training``,
``_batching``, ``_tokenization`` and ``_validation``.
"""

import contextlib
import warnings
from numbers import Integral

import numpy as np
import torch
from tqdm.auto import tqdm

from . import _modeling, _pretrained, _training
from ._batching import count_batches, smallest_batch, sorted_batches
from ._engine import Trainer, TrainingPlan, TrainingState
from ._inputs import FeatureBatches, TokenBatches
from ._patches import masks_without_sync
from ._tokenization import pool_windows

# Default token budget of a prediction batch (padded length times texts). On a
# 2-core AVX-512 CPU 2,048 was fastest in benchmarks/bench_predict.py (larger batches
# spill the cache); accelerators want far more work per kernel.
PREDICT_BATCH_TOKENS = {"cpu": 2048, "cuda": 65536, "mps": 16384}


def batch_tokens(estimator, device):
    """Token budget of a prediction batch on ``device``."""
    return estimator.predict_batch_tokens or PREDICT_BATCH_TOKENS.get(device.type, 4096)


def plan(estimator, n_train, incremental):
    """The schedule of a new run over ``n_train`` training rows (texts, or their
    windows): ``fit`` decays linearly over all its epochs; a stream warms up over the
    first chunk (or ``max_steps``) and then decays linearly to 0 at ``max_steps``, or as
    the inverse square root without it."""
    per_pass = count_batches(n_train, estimator.batch_size,
                             length_grouped=not estimator.freeze_base)
    fraction = estimator.warmup_fraction
    if not incremental:
        total = per_pass * estimator.max_iter
        return TrainingPlan(int(fraction * total), total, "linear")
    if estimator.max_steps:
        return TrainingPlan(int(fraction * estimator.max_steps), estimator.max_steps, "linear")
    return TrainingPlan(max(1, round(fraction * per_pass)), None, "inverse_sqrt")


def tokenizer_for(estimator, incremental):
    """The tokenizer of a new run: the fitted one when ``partial_fit`` continues a fitted
    network, else the pretrained model's."""
    if incremental and hasattr(estimator, "model_"):
        return estimator.tokenizer_
    return _pretrained.load_tokenizer(estimator.model_name_or_path, estimator.revision)


def new_trainer(estimator, tokenizer, n_outputs, n_train, seed, incremental, device,
                parallel):
    """Load the pretrained network (or continue a fitted one) and build its trainer.

    ``n_train`` counts training rows (windows of texts under ``truncation="window"``),
    which the learning-rate schedule plans steps over; ``tokenizer`` is
    ``tokenizer_for``'s.
    """
    warm = incremental and hasattr(estimator, "model_")  # a fitted or loaded estimator
    if warm:
        module = estimator.model_
    else:
        backbone = _pretrained.load_backbone(
            _pretrained.resolve_model_path(estimator.model_name_or_path, estimator.revision)
        )
        _pretrained.check_compatible(backbone.config, tokenizer, estimator.max_length,
                                     estimator.model_name_or_path)
        check_head(estimator.head)
        with _modeling.seeded(seed):
            module = _modeling.build_module(
                backbone, n_outputs, pooling=estimator.pooling, head=estimator.head,
                dropout=estimator.head_dropout, frozen=estimator.freeze_base,
            )
            generator_state = torch.get_rng_state()
    module.to(device)
    state = _new_state(estimator, module, plan(estimator, n_train, incremental), seed, device)
    if not warm and device.type == "cpu":
        # Dropout continues the generator that initialised the head, as it always has.
        state.generator.set_state(generator_state)
    state.label_counts = np.zeros(n_outputs, dtype=np.int64)
    return _trainer(estimator, module, state, device, parallel, tokenizer)


def restore_trainer(estimator, saved, device, parallel):
    """The trainer of a checkpoint: the estimator's network and the saved state.

    Raises
    ------
    ValueError
        When the saved state is not of this estimator's network (classes, shapes).
    """
    counts = saved.get("label_counts") if isinstance(saved, dict) else None
    if counts is not None and len(counts) != estimator._n_outputs():
        noun, described = estimator._outputs_described()
        raise ValueError(
            f"it counts texts of {len(counts)} {noun}, the estimator has "
            f"{estimator._n_outputs()} ({described})"
        )
    module = estimator.model_.to(device)
    state = _new_state(estimator, module, TrainingState.saved_plan(saved), 0, device)
    state.load_state_dict(saved)
    return _trainer(estimator, module, state, device, parallel, estimator.tokenizer_)


def _new_state(estimator, module, schedule, seed, device):
    groups = _modeling.parameter_groups(
        module, estimator.learning_rate,
        estimator.head_learning_rate or estimator.learning_rate,
        estimator.weight_decay, estimator.layer_decay,
    )
    scaler = None
    dtype = _training.training_dtype(estimator.training_dtype, device)
    if dtype is torch.float16:  # fp16 gradients underflow without scaling
        scaler = torch.amp.GradScaler("cuda")
    return TrainingState(_training.adamw(groups, device), schedule, seed=seed, device=device,
                         scaler=scaler)


def _trainer(estimator, module, state, device, parallel, tokenizer):
    network = module.head if estimator.freeze_base else module
    return Trainer(
        network, module, state, device=device,
        dtype=_training.training_dtype(estimator.training_dtype, device),
        max_grad_norm=estimator.max_grad_norm, parallel=parallel, tokenizer=tokenizer,
    )


def sources(estimator, trainer, encoding, train_rows, val_rows, targets, weights, criterion):
    """The training batch source and the validation scorer (None without early stopping).

    Full fine-tuning trains on token batches. With ``freeze_base`` the frozen backbone's
    pooled features are computed once (length-sorted, no grad) and are the input. Under
    ``truncation="window"`` every window of a text is a training row with the text's
    target and weight, and a held-out text's outputs pool its windows'. The
    validation score is the estimator's ``score`` (``criterion.score``) on the held-out
    rows, weighted as ``score(X, y, sample_weight)`` would weigh them.
    """
    module, device = trainer.module, trainer.device
    pad_id = trainer.tokenizer.pad_token_id
    sequences, owner = encoding.sequences(train_rows)
    of_row = train_rows if owner is None else train_rows[owner]  # each window its text's
    w_train = None if weights is None else weights[of_row]
    show = estimator.verbose > 0 and trainer.is_main
    if estimator.freeze_base:
        features = _features(estimator, module, encoding, sequences, pad_id, device,
                             n_texts=len(train_rows), show=show, desc="features")
        source = FeatureBatches(features, targets[of_row], w_train,
                                batch_size=estimator.batch_size, criterion=criterion,
                                n_texts=len(train_rows))
    else:
        source = TokenBatches(encoding, sequences, targets[of_row], w_train,
                              pad_id=pad_id, batch_size=estimator.batch_size, device=device,
                              criterion=criterion, n_texts=len(train_rows))
    if val_rows is None or not estimator.early_stopping:
        return source, None
    if estimator.freeze_base:
        val_sequences, val_owner = encoding.sequences(val_rows)
        val_features = _features(estimator, module, encoding, val_sequences, pad_id, device,
                                 n_texts=len(val_rows), show=show,
                                 desc="validation features")

        def val_logits():
            with torch.inference_mode():
                out = module.head(val_features).float().cpu().numpy()
            return pool_windows(out, val_owner, estimator.window_pooling)
    else:
        def val_logits():
            return logits(estimator, module, encoding, val_rows, pad_id, device)

    w_val = None if weights is None else weights[val_rows]

    def validation():
        return criterion.score(val_logits(), targets[val_rows], w_val)

    return source, validation


def unsynced_masks(module, device):
    """Attention masks that do not wait for the device, off the CPU (see
    ``_patches.masks_without_sync``); nothing changes on a CPU."""
    if device.type == "cpu":
        return contextlib.nullcontext()
    return masks_without_sync(module)


def _features(estimator, module, encoding, rows, pad_id, device, *, n_texts, show, desc):
    """The frozen base's pooled features of the sequences ``rows`` (of ``n_texts``
    texts), on ``device``; with ``show``, a progress bar in texts labelled ``desc``."""
    budget = batch_tokens(estimator, device)
    batches = sorted_batches(np.diff(encoding[2])[rows], budget,
                             multiple_of=_training.pad_multiple(device.type))
    with tqdm(total=n_texts, desc=desc, unit=" texts", disable=not show, leave=False) as bar, \
            unsynced_masks(module, device):
        out = _training.predict_batches(module.features, encoding, rows, batches,
                                        pad_id=pad_id, device=device,
                                        progress=text_progress(bar, n_texts, len(rows)))
    return torch.from_numpy(out).to(device)


def text_progress(bar, n_texts, n_rows):
    """A progress callback of ``predict_batches`` that advances ``bar`` by ``n_texts``
    in all over its ``n_rows`` sequences (a text of several windows counts once), in
    whole texts; None without a bar."""
    if bar is None:
        return None
    done = shown = 0

    def advance(n):
        nonlocal done, shown
        done += n
        now = done * n_texts // max(n_rows, 1)
        bar.update(now - shown)
        shown = now

    return advance


def logits(estimator, module, encoding, rows, pad_id, device, *, features=False,
           progress=None):
    """Logits of the texts ``rows`` of ``encoding`` (all when None), in that order,
    length-sorted under the token budget; the budget halves after running out of memory.
    With ``features``, the pooled features that the head maps to the logits. A text of
    several windows gets the mean (or max: ``window_pooling``) of its windows' rows.
    ``progress`` (a tqdm bar or None) advances by the number of texts as batches run."""
    texts = np.arange(encoding.n_texts) if rows is None else rows
    rows, owner = encoding.sequences(texts)
    module.eval()
    budget = batch_tokens(estimator, device)
    dtype = _training.inference_dtype(estimator.inference_dtype, device)
    start = None if progress is None else progress.n
    while True:
        batches = sorted_batches(np.diff(encoding[2])[rows], budget,
                                 multiple_of=_training.pad_multiple(device.type))
        try:
            with unsynced_masks(module, device):
                out = _training.predict_batches(
                    module.features if features else module, encoding, rows, batches,
                    pad_id=pad_id, device=device, dtype=dtype,
                    progress=text_progress(progress, len(texts), len(rows)))
            return pool_windows(out, owner, estimator.window_pooling)
        except torch.OutOfMemoryError:
            if budget <= MIN_BATCH_TOKENS:
                raise
            if progress is not None:  # the retry counts these texts again
                progress.update(start - progress.n)
            budget //= 2
            if device.type == "cuda":
                torch.cuda.empty_cache()
            warnings.warn(
                f"Out of memory on {device} while predicting; retrying with "
                f"predict_batch_tokens={budget}.", UserWarning, stacklevel=5,
            )


# Prediction halves its token budget after running out of memory, down to this.
MIN_BATCH_TOKENS = 64


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


def check_head(head):
    """Refuse a tuple head with sizes that are not positive ints."""
    if isinstance(head, tuple):
        bad = [h for h in head if isinstance(h, bool) or not isinstance(h, Integral) or h < 1]
        if bad:
            raise ValueError(f"head hidden sizes must be positive ints; got {head!r}.")


def check_built_like(estimator, module):
    """Refuse to continue training ``module`` under parameters that would build another
    network, or a ``max_length`` beyond its positions (``set_params`` after fitting)."""
    _pretrained.check_max_length(module.backbone.config, estimator.max_length)
    built = {"head": module.head_spec, "head_dropout": module.head_dropout_spec,
             "pooling": module.pooling, "freeze_base": module.frozen}
    for name, value in built.items():
        if getattr(estimator, name) != value:
            raise ValueError(
                f"{name}={getattr(estimator, name)!r}, but the fitted network was built with "
                f"{name}={value!r}; partial_fit continues that network. Set {name} "
                "back, or call fit to build a new network."
            )


def check_batch_norm(estimator, module, n_train, parallel):
    """Refuse batches of one text for a head with BatchNorm (which needs two), in
    every process's share of a batch in a data-parallel run."""
    from torch.nn.modules.batchnorm import _BatchNorm

    if not any(isinstance(m, _BatchNorm) for m in module.head.modules()):
        return
    smallest = smallest_batch(n_train, estimator.batch_size,
                              length_grouped=not estimator.freeze_base)
    world = 1 if parallel is None else parallel.world_size
    # A batch of b texts splits into shares of b // world or one more (array_split):
    # all of them hold 2 or more, or none, only from 2 * world texts on.
    if smallest >= 2 * world:
        return
    what = (f"a chunk of {n_train} text" if n_train == 1
            else f"{n_train} training texts with batch_size={estimator.batch_size}")
    split = f", split over {world} processes," if world > 1 else ""
    raise ValueError(
        f"head={module.head_spec!r} has BatchNorm layers, which need at least 2 texts "
        f"per batch, but {what}{split} leave a batch of 1 text. Use batch_size >= "
        f"{2 * world + 1} and chunks of at least {2 * world} texts, or a head without "
        "BatchNorm."
    )


# A one-label chunk is flagged when a shuffled stream gives one this rarely.
_UNSHUFFLED_P = 1e-3


def warn_if_unshuffled(targets, classes, seen):
    """Warn when a chunk's labels look like an unshuffled slice of the stream.

    Only where the chunk is large enough to judge: one label throughout must be
    improbable (below ``_UNSHUFFLED_P``) under the class balance seen so far (uniform
    before any), and the chi-square test needs expected counts that it can judge
    (Cochran's rule: none below 1, at most a fifth below 5). Small chunks of many
    classes are never flagged.
    """
    from scipy.stats import chisquare

    counts = np.bincount(targets, minlength=len(classes))
    balance = (seen + 1) / (seen + 1).sum()  # uniform before any chunk
    if np.count_nonzero(counts) == 1:
        if np.sum(balance ** counts.sum()) >= _UNSHUFFLED_P:
            return  # a plausible draw for so few texts
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
    expected = balance * counts.sum()
    if expected.min() < 1 or np.mean(expected < 5) > 0.2:
        return  # too few texts per class to judge
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
