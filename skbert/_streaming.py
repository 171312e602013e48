"""``partial_fit`` streams: the chunk transaction, the checkpoint folder's lock, and the
bodies of ``save_checkpoint`` and ``resume``.

A stream in memory is one :class:`Stream` (its trainer, the lock on its
``checkpoint_dir``, its one-off warnings, or why it halted), held by the estimator as
``_stream``. :class:`StreamingMixin` gives the estimators the methods that run it: a
chunk either completes (weights, counters, fitted attributes and the checkpoint advance
together, :meth:`StreamingMixin._commit_chunk`) or halts the stream counted at its last
completed chunk. Of skbert it imports ``_validation``, and ``_checkpoint``, ``_device``,
``_distributed``, ``_engine``, ``_modeling`` and ``_pretrained`` inside the functions.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ._validation import is_pair_input

# The training state's file in a checkpoint folder (beside estimator.skops).
STATE_FILE = "training_state.pt"
MODEL_FILE = "estimator.skops"
# A one-label chunk is flagged when a shuffled stream gives one this rarely.
_UNSHUFFLED_P = 1e-3


class Stream:
    """A ``partial_fit`` stream held in memory.

    Parameters
    ----------
    trainer : skbert._engine.Trainer or None
        The network and training state the chunks advance (None once halted).

    Attributes
    ----------
    lock : skbert._checkpoint.FolderLock or None
        The lock on the checkpoint folder the stream writes, held for its life.
    warned : set of str
        One-off warnings already given in this stream.
    halted : str or None
        Why the stream cannot continue and how to go on, once a chunk failed.
    """

    def __init__(self, trainer, *, halted=None):
        self.trainer, self.halted = trainer, halted
        self.lock = None
        self.warned = set()

    def hold(self, lock):
        """Hold ``lock`` (from ``_stream_lock``) for the rest of the stream, letting go of
        the one held before; None keeps the one held."""
        if lock is not None and lock is not self.lock:
            self.release()
            self.lock = lock

    def release(self):
        """Let go of the checkpoint folder's lock."""
        if self.lock is not None:
            self.lock.release()
            self.lock = None


class StreamingMixin:
    """The ``partial_fit`` stream of an skbert estimator, its checkpoints and ``resume``."""

    def _end_stream(self):
        """Forget the stream in memory (``fit`` starts a new run), releasing its lock."""
        stream = vars(self).get("_stream")
        if stream is not None:
            stream.release()
            del self._stream

    def _running_stream(self, texts):
        """The stream ``partial_fit`` continues (None for a new one), after refusing a
        halted stream, a network ``set_params`` would rebuild, and a switch between
        single texts and text pairs."""
        stream = vars(self).get("_stream")
        if stream is not None and stream.halted is not None:
            raise RuntimeError(stream.halted)
        if hasattr(self, "model_"):  # continues a fitted network
            check_built_like(self.model_, head=self.head, head_dropout=self.head_dropout,
                             pooling=self.pooling, freeze_base=self.freeze_base,
                             max_length=self.max_length)
            if is_pair_input(texts) != self.text_pairs_:
                kind = "text pairs" if self.text_pairs_ else "single texts"
                other = "single texts" if self.text_pairs_ else "text pairs"
                raise ValueError(
                    f"This {type(self).__name__} was trained on {kind}; partial_fit got "
                    f"{other}. Every chunk of a stream must be {kind}."
                )
        return stream

    def _stream_lock(self, stream, parallel):
        """The lock on ``checkpoint_dir`` for the chunk of ``stream`` (None: a new one),
        taken before it trains and before a new stream loads its network.

        Taken on the stream's first chunk (and when ``checkpoint_dir`` changed), by the
        process that writes checkpoints: the folder is probed for writing, another
        stream writing it is refused, and so is a folder holding a newer run's
        checkpoints, all before any training.
        """
        from ._checkpoint import FolderLock, check_newer

        if self.checkpoint_dir is None or not (parallel is None or parallel.is_main):
            return None
        held = None if stream is None else stream.lock
        if held is not None and held.holds(self.checkpoint_dir):
            return held
        lock = FolderLock(self.checkpoint_dir)
        try:
            check_newer(self.checkpoint_dir, 0 if stream is None else stream.trainer.state.steps)
        except BaseException:
            lock.release()
            raise
        return lock

    def _restore_trainer(self, saved, device, parallel):
        """The trainer of a checkpoint: this estimator's network and the ``saved`` state.

        Raises
        ------
        ValueError
            When the saved state is not of this estimator's network (classes, shapes).
        """
        from ._engine import TrainingState

        counts = saved.get("label_counts")
        if counts is not None and len(counts) != self._n_outputs():
            noun, described = self._outputs_described()
            raise ValueError(
                f"it counts texts of {len(counts)} {noun}, the estimator has "
                f"{self._n_outputs()} ({described})"
            )
        trainer = self._trainer_for(self.model_.to(device), TrainingState.saved_plan(saved),
                                    0, device, parallel, self.tokenizer_)
        trainer.state.load_state_dict(saved)
        return trainer

    def _train_chunk(self, stream, source):
        """One pass over a chunk; on failure the stream halts, counted at its last chunk.

        Ctrl-C raises ``KeyboardInterrupt`` once the step in progress is complete, as in
        ``fit``: an estimator fitted before predicts with the weights of that step and has
        ``interrupted_=True``; one whose first chunk it was stays unfitted."""
        import torch

        from ._engine import Interrupted, oom_error

        trainer = stream.trainer
        try:
            return trainer.train(source, 1, verbose=self.verbose)
        except Interrupted:
            halted = self._halt(stream, "was interrupted (Ctrl-C)")
            if hasattr(self, "model_"):
                self.interrupted_ = True
            raise KeyboardInterrupt(halted) from None
        except torch.OutOfMemoryError as exc:
            self._halt(stream, "ran out of memory")
            raise oom_error(trainer.device, self.batch_size, self.max_length) from exc
        except FloatingPointError as exc:
            raise FloatingPointError(
                f"{exc} {self._halt(stream, 'stopped on a non-finite loss')}") from None

    def _commit_chunk(self, stream, fitted, losses, counts, n_texts):
        """Count a completed chunk of ``n_texts`` texts (``counts`` of each output), set
        the fitted attributes ``fitted`` and write its checkpoint when one is due, all
        together: when the write fails, nothing is counted or set, and the stream halts."""
        state = stream.trainer.state  # the loop counted the chunk's texts at the end of its pass
        before = (state.chunks, state.samples_seen - n_texts, state.label_counts)
        state.chunks += 1
        state.label_counts = state.label_counts + counts
        # A stream's curves count its own chunks (the resume loop skips n_iter_ chunks),
        # so the first chunk after fit starts them anew and drops the fit's scores.
        first = state.chunks == 1
        fitted = dict(fitted, n_iter_=state.chunks, n_samples_seen_=state.samples_seen,
                      interrupted_=False,
                      loss_curve_=([] if first else self.loss_curve_) + losses, _stream=stream)
        dropped = ("_derived_model",) + (
            ("validation_scores_", "best_validation_score_") if first else ())
        undo = _assign(self, fitted, dropped)
        due = self.checkpoint_dir is not None and stream.trainer.is_main and (
            self.checkpoint_every is None
            or state.steps - state.last_checkpoint >= self.checkpoint_every
        )
        if due:
            try:
                self.save_checkpoint(self.checkpoint_dir)
            except BaseException as exc:
                _assign(self, undo)
                state.chunks, state.samples_seen, state.label_counts = before
                advice = self._halt(stream, "could not write its checkpoint")
                if not isinstance(exc, Exception):
                    raise
                raise OSError(
                    f"partial_fit could not write a checkpoint to checkpoint_dir="
                    f"{os.fspath(self.checkpoint_dir)!r} ({type(exc).__name__}: {exc}); the "
                    f"checkpoints there before are intact. {advice}"
                ) from exc
        self._warn_past_max_steps(stream)

    def _halt(self, stream, why):
        """Stop a stream whose chunk did not complete; return how the user can go on.

        A stream whose first chunk failed on an unfitted estimator is forgotten (nothing
        was fitted); any other refuses ``partial_fit`` until ``fit`` or ``resume``.
        """
        chunk = stream.trainer.state.chunks + 1
        self._end_stream()
        stream.release()
        if not hasattr(self, "model_"):
            return (f"partial_fit {why} during the first chunk; nothing was fitted or "
                    "counted. Call partial_fit again to start the stream.")
        resume = "call fit, or start a new stream on a new estimator"
        if self.checkpoint_dir is not None:
            resume = (f"resume from the last checkpoint with {type(self).__name__}.resume("
                      f"{os.fspath(self.checkpoint_dir)!r}) and feed the chunks after its "
                      "n_iter_, or call fit")
        halted = (
            f"partial_fit {why} during chunk {chunk} of the stream. That chunk is not "
            f"counted (n_iter_ is still {self.n_iter_}), but the weights were trained on "
            f"(part of) it, so this stream cannot continue in memory without training on "
            f"it twice: {resume}. Predictions use the weights of the last completed step."
        )
        self._stream = Stream(None, halted=halted)
        return halted

    def _warn_past_max_steps(self, stream):
        """Warn, once per stream, when it has stepped past its schedule's end (rate 0)."""
        state = stream.trainer.state
        end = state.plan.total_steps  # the schedule's, even after set_params
        if end is None or state.steps <= end or "end" in stream.warned:
            return
        stream.warned.add("end")
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

    def save_checkpoint(self, checkpoint_dir: str | os.PathLike) -> Path:
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
        import skops.io as sio
        import torch

        from ._checkpoint import FolderLock, write_checkpoint

        check_is_fitted(self)
        stream = vars(self).get("_stream")
        if stream is None or stream.trainer is None:
            raise ValueError("save_checkpoint needs a partial_fit stream to save; call "
                             "partial_fit first (a model from fit is saved with skops).")
        state = stream.trainer.state
        buffer = io.BytesIO()
        torch.save(state.state_dict(), buffer)
        files = {MODEL_FILE: sio.dumps(self), STATE_FILE: buffer.getvalue()}
        held = stream.lock is not None and stream.lock.holds(checkpoint_dir)
        lock = None if held else FolderLock(checkpoint_dir)  # refuses another stream's
        try:
            path = write_checkpoint(checkpoint_dir, state.steps, files,
                                    keep=self.keep_checkpoints)
        finally:
            if lock is not None:
                lock.release()
        state.last_checkpoint = state.steps
        return path

    @classmethod
    def resume(cls, checkpoint_dir: str | os.PathLike, *,
               trusted: list[str] | None = None):
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
        estimator : BertTextClassifier or BertTextRegressor
            Of the class ``resume`` is called on.

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
        from ._device import resolve_device
        from ._distributed import data_parallel

        path = latest_checkpoint(checkpoint_dir)
        model_file, state_file = path / MODEL_FILE, path / STATE_FILE
        trusted = list(cls._trusted_types) + list(trusted or [])

        def broken(file, exc):
            return ValueError(
                f"Checkpoint file {os.fspath(file)!r} is corrupt, truncated or not written "
                f"by skbert ({_described(exc)}). Nothing was changed; remove the "
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
            # Onto the CPU first: each process then moves the state to its own device
            # (and a GPU checkpoint read on a CPU-only machine gets a message, not a
            # CUDA error).
            state = torch.load(state_file, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise TypeError(f"it holds a {type(state).__name__}, not a training state")
        except Exception as exc:
            raise broken(state_file, exc) from None
        device = resolve_device(estimator.device)
        try:
            trainer = estimator._restore_trainer(state, device, data_parallel(device))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"Checkpoint file {os.fspath(state_file)!r} does not belong to "
                f"{model_file.name} beside it: {exc}. Nothing was changed; remove the folder "
                f"{path.name} to resume from the checkpoint before it."
            ) from exc
        estimator._stream = Stream(trainer)
        return estimator


def _described(exc):
    """``exc`` as "Type: text" in one line, without torch's advice to load with
    ``weights_only=False`` (which would run whatever code a crafted file holds): of a
    weights-only refusal, what torch found (an unsupported opcode, a blocked global)."""
    import pickle

    text = str(exc)
    if isinstance(exc, pickle.UnpicklingError) or "weights_only" in text:
        found = [line.strip() for line in text.splitlines()
                 if line.strip() and "weights_only" not in line and "torch.load" not in line
                 and not line.startswith("Please file an issue")]
        return f"not a plain training state: {found[0].rstrip('.') if found else 'unreadable'}"
    return f"{type(exc).__name__}: {' '.join(text.split())}"


def _assign(estimator, values, dropped=()):
    """Set the attributes ``values`` of ``estimator`` (a value of ``_MISSING`` deletes
    one) and delete ``dropped``; return what undoes it."""
    own = vars(estimator)
    undo = {name: own.get(name, _MISSING) for name in (*values, *dropped)}
    for name in dropped:
        own.pop(name, None)
    for name, value in values.items():
        if value is _MISSING:
            own.pop(name, None)
        else:
            setattr(estimator, name, value)
    return undo


_MISSING = object()


def check_built_like(module, *, head, head_dropout, pooling, freeze_base, max_length):
    """Refuse to continue training ``module`` under parameters that would build another
    network, or a ``max_length`` beyond its positions (``set_params`` after fitting)."""
    from ._modeling import head_dropout as dropout_of
    from ._pretrained import check_max_length

    config = module.backbone.config
    check_max_length(config, max_length)
    requested = {"head": head, "head_dropout": head_dropout, "pooling": pooling,
                 "freeze_base": freeze_base}
    built = {"head": module.head_spec, "head_dropout": module.head_dropout_spec,
             "pooling": module.pooling, "freeze_base": module.frozen}
    for name, value in built.items():
        # head_dropout=None means the backbone's dropout: the same network as that value
        # (files of the first release stored the value, not None).
        same = (dropout_of(config, requested[name]) == dropout_of(config, value)
                if name == "head_dropout" else requested[name] == value)
        if not same:
            raise ValueError(
                f"{name}={requested[name]!r}, but the fitted network was built with "
                f"{name}={value!r}; partial_fit continues that network. Set {name} "
                "back, or call fit to build a new network."
            )


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
