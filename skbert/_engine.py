"""The one training loop, and the typed state it advances.

Every trainer of skbert (``BertTextClassifier.fit`` and ``partial_fit``, the frozen base,
``MaskedLMPretrainer``) builds a :class:`TrainingState` with :func:`new_state`, a
:class:`Trainer` around it, and calls :meth:`Trainer.train` with a batch source from
``_sources``. Mixed precision, the per-fit dropout generator, deferred
Ctrl-C, the NaN check, gradient clipping, data parallelism and the optimizer step live
here once. What a run must carry to continue exactly is one :class:`TrainingState`, saved
and restored with ``state_dict()`` / ``load_state_dict()``.

Progress: ``verbose="auto"`` (:func:`resolve_verbose`) shows the bars only when
someone watches (:func:`watched`: stderr is a terminal or a notebook's kernel, in the main
thread of the main process). A bar shows the running loss of recent batches, drawn at
most every ``tqdm`` ``mininterval`` and redrawn at least every ``_REDRAW_SECONDS``.

Ctrl-C: :func:`deferred_interrupt` turns it into a flag read between optimizer steps; the
loop then raises :class:`Interrupted`, which ``fit`` turns into the ``KeyboardInterrupt``
of :func:`interrupted_error` once the estimator holds the weights of the last completed
step.

Of skbert it imports ``_patches`` (the seeded dropout, the kept embedding gradient),
nothing else.
"""

import contextlib
import math
import signal
import sys
import threading
from dataclasses import asdict, dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from ._patches import kept_embedding_gradient, seeded_dropout

_STATE_FORMAT = "skbert-training-state-2"
# The loss of a training bar: an exponential moving average of the batches' losses with
# this weight on the newest (about the last 2 / _LOSS_SMOOTHING batches), bias-corrected
# as Adam's moments so that the first batches are not pulled towards 0.
_LOSS_SMOOTHING = 0.1
# A training bar is redrawn at least this often (elapsed time, rate), however slow a step.
_REDRAW_SECONDS = 2.0


def watched():
    """Whether someone is watching this process's progress bars.

    True when stderr is a terminal or the process is a notebook's kernel (IPython with a
    kernel: Jupyter, Colab, VS Code), and only in the main thread of a process that is
    not a ``multiprocessing`` or joblib worker (``n_jobs`` copies draw over each other).
    False under logs, pipes, CI and pytest's capture.
    """
    import multiprocessing

    if threading.current_thread() is not threading.main_thread():
        return False
    if multiprocessing.parent_process() is not None:  # a loky or multiprocessing worker
        return False
    try:
        if sys.stderr is not None and sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        pass
    ipython = sys.modules.get("IPython")  # imported by a notebook; never imported here
    get_ipython = getattr(ipython, "get_ipython", None)
    shell = get_ipython() if callable(get_ipython) else None
    return getattr(shell, "kernel", None) is not None


def resolve_verbose(verbose):
    """The ``verbose`` level to run with: "auto" is 1 where :func:`watched`, else 0; an
    int (or bool) is itself."""
    if isinstance(verbose, str):
        return 1 if watched() else 0
    return int(verbose)


@contextlib.contextmanager
def redrawn(bar, every=_REDRAW_SECONDS):
    """Redraw the tqdm ``bar`` from a thread at least every ``every`` seconds during the
    block, so that its elapsed time moves during slow steps (none for a disabled bar)."""
    if bar.disable:
        yield bar
        return
    stop = threading.Event()

    def redraw():
        while not stop.wait(every):
            bar.refresh()  # under the bar's own lock, as update's drawing

    thread = threading.Thread(target=redraw, name="skbert-progress", daemon=True)
    thread.start()
    try:
        yield bar
    finally:
        stop.set()
        thread.join()


@dataclass(frozen=True)
class TrainingPlan:
    """The learning-rate schedule of a run, fixed when it starts.

    Parameters
    ----------
    warmup_steps : int
        Steps of linear warmup from 0.
    total_steps : int or None
        Linear decay to 0 at this step; None: after the warmup, ``decay`` decides.
    decay : {"linear", "inverse_sqrt", "constant"}
        "linear" needs ``total_steps``; "inverse_sqrt" falls as
        ``sqrt(warmup / step)`` after the warmup; "constant" stays at the peak rate
        (no warmup).
    """

    warmup_steps: int
    total_steps: int | None = None
    decay: str = "linear"

    def factor(self, step):
        """Multiplier of the peak learning rate at optimizer step ``step`` (0-based)."""
        if self.decay == "constant":
            return 1.0
        if self.decay == "inverse_sqrt":
            warmup = max(1, self.warmup_steps)
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return math.sqrt(warmup / (step + 1))
        if step < self.warmup_steps:
            return (step + 1) / (self.warmup_steps + 1)
        return max(0.0, (self.total_steps - step) / max(1, self.total_steps - self.warmup_steps))

    def ended(self, step):
        """Whether the learning rate is 0 from ``step`` on."""
        return self.decay == "linear" and step >= self.total_steps

    @classmethod
    def of_run(cls, per_pass, *, warmup_fraction, passes, max_steps=None, incremental=False):
        """The schedule of a new run of ``per_pass`` batches a pass.

        ``fit`` (not ``incremental``) decays linearly over its ``passes``; a stream warms
        up over its first chunk (or ``max_steps``) and then decays linearly to 0 at
        ``max_steps``, or as the inverse square root without it.
        """
        if not incremental:
            total = per_pass * passes
            return cls(int(warmup_fraction * total), total, "linear")
        if max_steps:
            return cls(int(warmup_fraction * max_steps), max_steps, "linear")
        return cls(max(1, round(warmup_fraction * per_pass)), None, "inverse_sqrt")


class TrainingState:
    """Everything a run needs to continue exactly where it stopped.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
        Over the trained parameters, in groups whose number and order depend on the
        network only (not on learning rates), so a saved state always loads back.
    plan : TrainingPlan
        The schedule; it drives a ``LambdaLR`` over ``optimizer``.
    seed : int
        Seeds the batch order (``rng``) and the dropout generator (``generator``).
    device : torch.device
        Where the dropout generator draws.
    scaler : torch.amp.GradScaler or None
        The fp16 loss scaler.
    generator_state : torch.Tensor or None
        Start the dropout generator from this state instead of ``seed``.

    Attributes
    ----------
    steps : int
        Optimizer steps taken.
    chunks : int
        Completed ``partial_fit`` calls (epochs of ``fit`` are not chunks).
    samples_seen : int
        Texts trained on in completed passes (counted at the end of each pass).
    label_counts : ndarray of int64 or None
        Texts of each class in completed chunks (for the unshuffled-stream check).
    last_checkpoint : int
        ``steps`` when the last checkpoint was written.
    """

    def __init__(self, optimizer, plan, *, seed, device, scaler=None, generator_state=None):
        self.optimizer, self.plan, self.scaler = optimizer, plan, scaler
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, plan.factor)
        self.rng = np.random.default_rng(seed)
        self.generator = torch.Generator(device)
        if generator_state is None:
            self.generator.manual_seed(seed)
        else:
            self.generator.set_state(generator_state)
        self.steps = self.chunks = self.samples_seen = self.last_checkpoint = 0
        self.label_counts = None

    def step(self, parameters, max_grad_norm):
        """Unscale and clip the gradients; step the optimizer and the schedule.

        With a fused optimizer and no loss scaler, the clipping is done by the
        optimizer's own pass over the gradients: it divides them by its ``grad_scale``
        (the contract ``GradScaler`` uses), set to ``norm / max_grad_norm`` where that
        is above 1, as ``clip_grad_norm_`` would multiply them by its inverse. That
        saves ``clip_grad_norm_``'s separate pass, which read and wrote every gradient
        (~5% of a CPU training step of short texts).
        """
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        in_step = self.scaler is None and self.optimizer.defaults.get("fused")
        if max_grad_norm is not None and in_step:
            norm = torch.nn.utils.get_total_norm(
                [p.grad for p in parameters if p.grad is not None])
            # As clip_grad_norm_: factor max_norm / (norm + 1e-6), at most 1.
            self.optimizer.grad_scale = torch.clamp((norm + 1e-6) / max_grad_norm, min=1.0)
        elif max_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_(parameters, max_grad_norm)
        try:
            if self.scaler is not None:
                self.scaler.step(self.optimizer)
                self.scaler.update()
            else:
                self.optimizer.step()
        finally:
            self.optimizer.__dict__.pop("grad_scale", None)
        self.scheduler.step()
        self.steps += 1

    def state_dict(self):
        """Plain tensors and values (``torch.load(weights_only=True)`` reads them)."""
        return {
            "format": _STATE_FORMAT,
            "optimizer": self.optimizer.state_dict(),
            "scaler": None if self.scaler is None else self.scaler.state_dict(),
            "plan": asdict(self.plan),
            "rng": self.rng.bit_generator.state,
            "generator": self.generator.get_state(),
            "steps": int(self.steps), "chunks": int(self.chunks),
            "samples_seen": int(self.samples_seen), "last_checkpoint": int(self.last_checkpoint),
            "label_counts": None if self.label_counts is None
            else torch.from_numpy(self.label_counts),
        }

    def load_state_dict(self, state):
        """Restore what ``state_dict`` returned; the plan must be this state's."""
        if self.saved_plan(state) != self.plan:
            raise ValueError(f"The saved plan {state['plan']} is not this state's {self.plan}.")
        self._check_same_network(state["optimizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state["scaler"] is not None:
            self.scaler.load_state_dict(state["scaler"])
        self.rng.bit_generator.state = state["rng"]
        saved, own = state["generator"], self.generator.get_state()
        if saved.numel() != own.numel():  # a CPU generator's state is 5,056 bytes, CUDA's 16
            raise ValueError(
                f"its dropout generator was saved on another kind of device than "
                f"{self.generator.device.type} (a state of {saved.numel()} bytes, not "
                f"{own.numel()}); resume on the kind of device the stream trained on (set "
                "device= before resuming, or load the checkpoint's estimator.skops to "
                "predict)"
            )
        self.generator.set_state(saved)
        self.steps, self.chunks = int(state["steps"]), int(state["chunks"])
        self.samples_seen = int(state["samples_seen"])
        self.last_checkpoint = int(state["last_checkpoint"])
        counts = state["label_counts"]
        self.label_counts = None if counts is None else counts.numpy().copy()
        # The schedule is a function of the plan, the saved peak rates and the step:
        # rebuild it at that step (not from the rates the groups were built with).
        self.scheduler.base_lrs = [g["initial_lr"] for g in self.optimizer.param_groups]
        for group in self.optimizer.param_groups:
            group["lr"] = group["initial_lr"] * self.plan.factor(self.steps)
        self.scheduler.last_epoch = self.steps
        self.scheduler._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _check_same_network(self, saved):
        """Refuse an optimizer state of another network, before loading any tensor.

        torch checks only the number of parameters per group; moments of another shape
        (another hidden size, head or number of classes) would load and fail at the
        next step. The saved moments tell each parameter's shape.
        """
        groups, saved_groups = self.optimizer.param_groups, saved["param_groups"]
        sizes = [len(g["params"]) for g in groups]
        saved_sizes = [len(g["params"]) for g in saved_groups]
        if sizes != saved_sizes:
            raise ValueError(
                f"it trains {sum(saved_sizes)} parameter tensors in groups of {saved_sizes}, "
                f"this network {sum(sizes)} in groups of {sizes}: another architecture or head"
            )
        saved_ids = [i for g in saved_groups for i in g["params"]]
        params = [p for g in groups for p in g["params"]]
        for k, (i, param) in enumerate(zip(saved_ids, params, strict=True)):
            moment = saved["state"].get(i, {}).get("exp_avg")
            if moment is not None and tuple(moment.shape) != tuple(param.shape):
                raise ValueError(
                    f"its parameter tensor {k} has shape {tuple(moment.shape)}, this "
                    f"network's {tuple(param.shape)}: another hidden size, head or number "
                    "of classes"
                )

    @staticmethod
    def saved_plan(state):
        """The ``TrainingPlan`` of a saved ``state_dict`` (which must be of this format)."""
        if not isinstance(state, dict) or state.get("format") != _STATE_FORMAT:
            found = state.get("format") if isinstance(state, dict) else type(state).__name__
            raise ValueError(
                f"Not a training state of this skbert version: format {found!r}, expected "
                f"{_STATE_FORMAT!r}."
            )
        return TrainingPlan(**state["plan"])


def adamw(groups, device):
    """AdamW over parameter ``groups``, fused into one kernel where torch has one.

    The default for-loop AdamW of torch walks the parameters one tensor at a time; on
    a CPU its step took about as long as the forward pass of a batch. The fused kernel
    (CPU and CUDA, torch >= 2.4) does the same update in one pass over memory.
    """
    if device.type in ("cpu", "cuda"):
        try:
            return torch.optim.AdamW(groups, fused=True)
        except (RuntimeError, ValueError, TypeError):  # an older torch or odd dtypes
            pass
    return torch.optim.AdamW(groups)


def new_state(groups, plan, seed, device, dtype):
    """The :class:`TrainingState` of a new run: AdamW over parameter ``groups`` (fused
    where torch has it), the schedule ``plan``, generators seeded by ``seed`` on
    ``device``, and a loss scaler when ``dtype`` is fp16 (whose gradients underflow
    without one)."""
    scaler = torch.amp.GradScaler("cuda") if dtype is torch.float16 else None
    return TrainingState(adamw(groups, device), plan, seed=seed, device=device, scaler=scaler)


class Interrupted(Exception):
    """Ctrl-C stopped a pass after a complete optimizer step.

    Attributes
    ----------
    losses : list of float
        Mean loss of each pass, the interrupted one included (over its completed steps).
    during_pass : bool
        Whether a pass was cut short (else Ctrl-C came between passes).
    """

    def __init__(self, losses, during_pass=True):
        super().__init__("training interrupted by user")
        self.losses, self.during_pass = losses, during_pass


@contextlib.contextmanager
def deferred_interrupt():
    """Turn Ctrl-C (SIGINT) into a flag read between optimizer steps.

    A step is never cut in half. Only the main thread can own the handler; elsewhere
    Ctrl-C behaves as usual.
    """
    flag = {"requested": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        flag["requested"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class EarlyStopping:
    """Validation scores, patience, and a CPU copy of the best weights of ``module``.

    As scikit-learn's MLP: any gain keeps the weights as the best; only a gain of more
    than ``tol`` resets the patience.
    """

    def __init__(self, module, patience, tol):
        self.module, self.patience, self.tol = module, patience, tol
        self.scores, self.best_score, self._best_weights = [], -np.inf, None
        self._stale = 0

    def update(self, score):
        """Record ``score``; return True when training should stop."""
        self.scores.append(score)
        self._stale = 0 if score > self.best_score + self.tol else self._stale + 1
        if score > self.best_score:
            self.best_score = score
            self._best_weights = {
                k: v.detach().cpu().clone() for k, v in self.module.state_dict().items()
            }
        return self._stale >= self.patience

    def restore_best(self):
        """Load the best weights seen back into the module (none yet: keep the current)."""
        if self._best_weights is not None:
            self.module.load_state_dict(self._best_weights)


class Trainer:
    """A network, its training state, and how its steps run.

    Parameters
    ----------
    network : torch.nn.Module
        What the batch sources call; in a data-parallel run, wrapped in
        ``DistributedDataParallel`` by ``parallel``.
    module : torch.nn.Module
        The whole model (in train mode during passes, eval mode after).
    state : TrainingState
    device : torch.device
    dtype : torch.dtype or None
        Autocast dtype of the forward passes, or None for full precision.
    max_grad_norm : float or None
    parallel : _distributed.DataParallel or None
    tokenizer : transformers.PreTrainedTokenizerFast or None
        The tokenizer of the texts, carried for the trainers that make token batches.
    """

    def __init__(self, network, module, state, *, device, dtype=None, max_grad_norm=None,
                 parallel=None, tokenizer=None):
        self.module, self.state, self.device, self.dtype = module, state, device, dtype
        self.max_grad_norm, self.parallel, self.tokenizer = max_grad_norm, parallel, tokenizer
        self.network = network if parallel is None else parallel.wrap(network)
        self.parameters = [p for group in state.optimizer.param_groups for p in group["params"]]

    @property
    def is_main(self):
        """Whether this process shows progress and writes checkpoints."""
        return self.parallel is None or self.parallel.is_main

    def train(self, source, passes=1, *, validation=None, stopper=None, verbose=0,
              description="Epoch", score_name="validation accuracy"):
        """Run up to ``passes`` passes over ``source``; return each pass's mean loss.

        Parameters
        ----------
        source : batch source of ``_sources``
            Makes the batches (``batches(rng)``) and the loss share of a batch
            (``loss(network, batch, part)``).
        passes : int
            Epochs to run.
        validation : callable or None
            ``validation()`` scores the module after each pass (higher is better).
        stopper : EarlyStopping or None
            Decides from the scores when to stop.
        verbose : int or "auto"
            Above 0: a progress bar per pass and one line after it; "auto": so where
            someone watches (:func:`resolve_verbose`).
        description : str
            Label of the progress bar and the line.
        score_name : str
            What the line calls the validation score.

        Returns
        -------
        losses : list of float

        Raises
        ------
        Interrupted
            After Ctrl-C, once the step in progress is complete.
        FloatingPointError
            When a batch's loss is not finite; the weights are not updated with it.
        """
        losses = []
        verbose = resolve_verbose(verbose)
        try:
            # Under data parallelism every gradient must reach the reducer through
            # autograd: the embedding's stays autograd's there.
            with deferred_interrupt() as flag, \
                    seeded_dropout(self.module, self.state.generator), \
                    kept_embedding_gradient(self.module, enabled=self.parallel is None):
                for epoch in range(passes):
                    if self._epoch(source, flag, epoch, passes, losses, validation, stopper,
                                   verbose, description, score_name):
                        break
        finally:
            for p in self.parameters:  # free the gradients (the next step sets them anew)
                p.grad = None
        return losses

    def _epoch(self, source, flag, epoch, passes, losses, validation, stopper, verbose,
               description, score_name):
        """One pass and its validation; True when training should stop."""
        self.module.train()
        try:
            losses.append(self._pass(source, flag, verbose, f"{description} {epoch + 1}"))
        except Interrupted as stop:
            raise Interrupted(losses + stop.losses) from None
        finally:
            self.module.eval()
        if self.parallel is not None:
            self.parallel.broadcast_buffers(self.module)  # one set of statistics
        message = f"{description} {epoch + 1}/{passes}: loss={losses[-1]:.4f}"
        stop = False
        if validation is not None:
            score = validation()
            if self.parallel is not None:  # rank 0 decides for every process
                score = self.parallel.broadcast_score(score)
            message += f", {score_name}={score:.4f}"
            stop = stopper.update(score)
        if verbose > 0 and self.is_main:
            print(message)
        if not stop and epoch + 1 < passes and flag["requested"]:  # pressed in validation
            raise Interrupted(losses, during_pass=False)
        return stop

    def _pass(self, source, flag, verbose, description):
        total, count, recent = 0.0, 0, 0.0
        batches = source.batches(self.state.rng)
        progress = verbose > 0 and self.is_main
        with tqdm(total=len(batches), desc=description, unit="batch", disable=not progress,
                  leave=False) as bar, redrawn(bar, _REDRAW_SECONDS):
            for step, rows in enumerate(batches):
                total, count, value = self._step(source, rows, flag, total, count)
                if progress:
                    # The running loss of recent batches, from the host float the step
                    # has already; tqdm draws it at most every mininterval seconds.
                    recent += _LOSS_SMOOTHING * (value - recent)
                    shown = recent / (1 - (1 - _LOSS_SMOOTHING) ** (step + 1))
                    bar.set_postfix(loss=f"{shown:.4f}", refresh=False)
                bar.update()
            if progress:  # the end of the pass: its mean loss, as the epoch's line
                bar.set_postfix(loss=f"{total / max(count, 1):.4f}", refresh=False)
            bar.refresh()  # however fast it ran
        self.state.samples_seen += source.n_texts  # a complete pass
        return total / max(count, 1)

    def _step(self, source, rows, flag, total, count):
        """One optimizer step on the batch ``rows``; the loss sums updated, and the
        batch's loss."""
        part, scale = (
            (slice(None), 1.0) if self.parallel is None else self.parallel.shard(len(rows))
        )
        with torch.autocast(self.device.type, dtype=self.dtype,
                            enabled=self.dtype is not None):
            loss = source.loss(self.network, rows, part)
        if scale != 1.0:
            loss = loss * scale
        self.state.optimizer.zero_grad(set_to_none=True)
        (loss if self.state.scaler is None else self.state.scaler.scale(loss)).backward()
        value, stop = loss.item(), flag["requested"]
        if self.parallel is not None:  # every process agrees on the loss and on stopping
            value, stop = self.parallel.agree(value, stop)
        if not math.isfinite(value):
            raise FloatingPointError(
                f"The training loss became {value} at optimizer step "
                f"{self.state.steps + 1} (a batch of {len(rows)} rows); the weights were "
                "not updated with it. Lower learning_rate or set max_grad_norm."
            )
        self.state.step(self.parameters, self.max_grad_norm)
        total += value * len(rows)
        count += len(rows)
        if stop:  # pressed during this step, which is complete
            raise Interrupted([total / count])
        return total, count, value


def oom_error(device, batch_size, max_length):
    """A RuntimeError naming what to lower after running out of memory in training."""
    return RuntimeError(
        f"Out of memory on {device} while training with batch_size={batch_size} and "
        f"max_length={max_length}. Lower batch_size or max_length (or use "
        "freeze_base=True) and fit again."
    )


def interrupted_message(stop):
    """What a training run stopped by Ctrl-C (an :class:`Interrupted`) says."""
    when = "during" if stop.during_pass else "after"
    return (f"Training interrupted by user {when} epoch {len(stop.losses)}; the estimator "
            "keeps the weights of the last completed step.")


def interrupted_error(stop):
    """The ``KeyboardInterrupt`` that ``fit`` raises after Ctrl-C (an
    :class:`Interrupted`), once the estimator holds the weights of the last completed
    step: a script or a search stops, and whoever catches it can still predict."""
    return KeyboardInterrupt(
        f"{interrupted_message(stop)} It is fitted (interrupted_=True, n_iter_="
        f"{len(stop.losses)}) and predicts with them; call fit again to train it fully."
    )
