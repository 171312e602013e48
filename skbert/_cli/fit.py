"""``skbert fit``: train a `BertTextClassifier` (or, with ``--regression``, a
`BertTextRegressor`) on a data file, whole or streamed through ``partial_fit`` with
checkpoints and ``--resume``, and save it."""

import os
from collections import Counter
from typing import NamedTuple

import numpy as np

from .._validation import mixed_label_types
from . import data as files
from .models import model_kind, save_model
from .options import (
    DEFAULT_CHUNKSIZE,
    CommandError,
    add_label_sep,
    note,
    parse_param,
    positive_int,
    progress,
    training_output,
)
from .params import add_parameter_flags, flag_values, make_estimator, merge_params


def add_parser(commands, common):
    """Add the ``fit`` command to the subparsers ``commands``."""
    from .. import BertTextClassifier, BertTextRegressor
    from .._validation import parameter_kinds

    fit = commands.add_parser(
        "fit", parents=[common], help="train a model on a labelled file",
        description="Train BertTextClassifier(**params) on DATA and save it to --out. "
        "With --chunksize the file is streamed through partial_fit, with checkpoints "
        "and --resume.",
    )
    fit.add_argument("data", metavar="DATA", help="training data (.csv, .tsv, .parquet, .jsonl)")
    fit.add_argument("--label-column", default="label", metavar="NAME",
                     help="column of the labels (default: %(default)s); with --no-header "
                     "its number")
    add_label_sep(fit, "multi-label: each label cell holds several labels separated by "
                  "SEP, e.g. --label-sep '|' for 'joy|surprise' (an empty cell: no label)")
    fit.add_argument("--out", required=True, metavar="MODEL",
                     help="where to save the model (.skops, or .pkl / .joblib)")
    fit.add_argument("--param", dest="params", action="append", default=[], type=parse_param,
                     metavar="NAME=VALUE",
                     help="a BertTextClassifier parameter, e.g. learning_rate=3e-5 "
                     "(repeatable; the same as its flag below)")
    fit.add_argument("--chunksize", type=positive_int, metavar="N",
                     help="stream the file N rows at a time through partial_fit; "
                     "--max-iter (--epochs) passes, 1 unless given")
    fit.add_argument("--checkpoint-dir", metavar="DIR",
                     help="write checkpoints here while streaming")
    fit.add_argument("--checkpoint-every", type=positive_int, metavar="STEPS",
                     help="optimizer steps between checkpoints (default: after every chunk)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the stream from the newest checkpoint in --checkpoint-dir")
    fit.add_argument("--regression", action="store_true",
                     help="the label column holds numbers: train a BertTextRegressor")
    add_parameter_flags(fit, BertTextClassifier, aliases={"max_iter": ["--epochs"]})
    add_parameter_flags(fit, BertTextRegressor, skip=set(parameter_kinds(BertTextClassifier)))
    fit.set_defaults(run=run, check_usage=check_usage)
    return fit


def check_usage(parser, args):
    """Refuse option combinations that make no sense (exit status 2)."""
    streaming = {"--checkpoint-dir": args.checkpoint_dir,
                 "--checkpoint-every": args.checkpoint_every, "--resume": args.resume or None}
    given = [option for option, value in streaming.items() if value is not None]
    if args.chunksize is None and given:
        parser.error(f"{given[0]} streams the file and needs --chunksize N")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir DIR, the folder of the checkpoints")
    if args.regression and args.label_sep is not None:
        parser.error("--regression reads one number per row; --label-sep reads several "
                     "labels: give one of them")


class Stream(NamedTuple):
    """A streamed fit's options."""

    chunksize: int
    checkpoint_dir: str = None
    checkpoint_every: int = None
    resume: bool = False


def run(args):
    """Run ``skbert fit`` with the parsed command line ``args``."""
    data = files.DataFile(args.data, args.text_column, args.encoding, args.sep,
                          not args.no_header, args.data_format)
    labels = files.LabelColumn(args.label_column, args.label_sep, args.regression)
    stream = None if args.chunksize is None else Stream(
        args.chunksize, args.checkpoint_dir, args.checkpoint_every, args.resume)
    params = merge_params(args.params, flag_values(args))
    fit(data, labels, args.out, params, stream, quiet=args.quiet)


def fit(data, labels, out, params, stream=None, *, quiet=False):
    """Train on ``data`` with the estimator ``params`` and save the model to ``out``.

    Parameters
    ----------
    data : DataFile
    labels : LabelColumn
    out : str
        The model file.
    params : dict
        Estimator parameters (of ``--param`` and the parameter flags).
    stream : Stream or None
        Stream the file through ``partial_fit``; None fits it whole.
    quiet : bool
        No bars or notes.
    """
    from .. import BertTextClassifier, BertTextRegressor

    cls = BertTextRegressor if labels.regression else BertTextClassifier
    model_kind(out)
    files.check_out(out, data.path, "model")
    files.check_data(data)
    model = None
    if stream is None or not stream.resume:
        model = make_estimator(
            cls, params, **({} if stream is None else dict(
                checkpoint_dir=stream.checkpoint_dir,
                checkpoint_every=stream.checkpoint_every)))
    if stream is not None:
        _check_checkpoint_dir(stream)
    files.check_first_chunk(data, labels, (stream and stream.chunksize) or DEFAULT_CHUNKSIZE)
    shown = 0 if quiet else params["verbose"] if "verbose" in params else None
    if stream is None:
        _fit_whole(data, labels, model, quiet, 1 if shown is None else shown)
    else:
        if stream.resume:
            model = _resumed(cls, stream, params)
        _fit_stream(data, labels, model, stream, params, quiet, shown)
    try:
        save_model(model, out)
    except OSError as exc:
        raise files.out_error(out, exc, " The trained model was not saved.") from exc
    if labels.regression:
        note(quiet, f"saved the regressor ({model.n_outputs_} output) to {out}")
    elif labels.sep is None:
        note(quiet, f"saved the model ({len(model.classes_)} classes) to {out}")
    else:
        note(quiet, f"saved the multi-label model ({len(model.label_names_)} labels: "
                    f"{', '.join(model.label_names_)}) to {out}")


def _check_checkpoint_dir(stream):
    """Refuse, before any training, an unwritable --checkpoint-dir, and one holding an
    earlier run's checkpoints without --resume."""
    from .._checkpoint import check_writable, checkpoints_in

    if stream.checkpoint_dir is None:
        return
    check_writable(stream.checkpoint_dir, "--checkpoint-dir")
    found = checkpoints_in(stream.checkpoint_dir)
    if found and not stream.resume:
        raise CommandError(
            f"--checkpoint-dir {os.fspath(stream.checkpoint_dir)!r} already holds "
            f"{len(found)} checkpoint(s) of an earlier run (the newest is {found[-1].name}). "
            "To continue that run, add --resume; to start a new one, give an empty "
            "--checkpoint-dir."
        )


def _resumed(cls, stream, params):
    """The estimator of the newest checkpoint, checkpointing on into --checkpoint-dir.

    It keeps the checkpoint's parameters: the same command line with ``--resume`` added
    works, but a --param that differs from the checkpoint's value is an error.
    """
    from .params import check_param_names

    try:
        model = cls.resume(stream.checkpoint_dir)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc} Run without --resume to start a new stream.") from exc
    saved = model.get_params()
    check_param_names(params, saved, cls.__name__)
    for name, value in params.items():
        if name == "max_iter":  # more epochs than the schedule covers: _check_resumable
            model.set_params(max_iter=value)
        elif name == "verbose":  # what it shows, not how it trains
            model.set_params(verbose=value)
        elif name != "checkpoint_dir" and value != saved[name]:
            raise CommandError(
                f"--param {name}={value!r} differs from the checkpoint's {name}="
                f"{saved[name]!r}; a resumed stream keeps its parameters. Drop the --param, "
                "or start a new stream without --resume."
            )
    model.set_params(checkpoint_dir=stream.checkpoint_dir)
    if stream.checkpoint_every is not None:
        model.set_params(checkpoint_every=stream.checkpoint_every)
    return model


def _fit_whole(data, labels, model, quiet, verbose):
    texts, chunks = [], []
    for chunk_texts, chunk_labels in files.labelled_chunks(data, labels, DEFAULT_CHUNKSIZE):
        texts += chunk_texts
        chunks.append(chunk_labels)
    if not texts:
        raise CommandError(f"No rows to train on in {os.fspath(data.path)!r}.")
    fit_params = {}
    if labels.sep is None:
        y = np.concatenate(chunks)
    else:
        rows = [row for chunk in chunks for row in chunk]
        names = files.label_names(Counter(name for row in rows for name in row), len(rows),
                                  data.path, labels)
        y = files.indicator_matrix(rows, names)
        fit_params["label_names"] = names
    note(quiet, f"training on {len(texts)} rows")
    with training_output(model, verbose):
        model.fit(texts, y, **fit_params)


def _scan(data, labels, chunksize, quiet):
    """One pass over the file: validate it, count the rows of each chunk, find the classes
    (of a multi-label column the label names, which every chunk's indicator matrix
    needs)."""
    sizes, classes, counts = [], set(), Counter()
    total = None if quiet else files.count_rows(data)
    with progress(quiet, total, desc="scanning") as bar:
        for texts, chunk in files.labelled_chunks(data, labels, chunksize):
            sizes.append(len(texts))
            if labels.regression:
                pass  # targets checked; a regressor has no classes
            elif labels.sep is None:
                classes.update(chunk.tolist())
            else:
                counts.update(name for row in chunk for name in row)
            bar.update(len(texts))
    if not sizes:
        raise CommandError(f"No rows to train on in {os.fspath(data.path)!r}.")
    if labels.sep is not None:
        return sizes, files.label_names(counts, sum(sizes), data.path, labels)
    if labels.regression:
        return sizes, None
    try:
        return sizes, np.array(sorted(classes))
    except TypeError:
        error = mixed_label_types(classes, f"Column {labels.column!r} of "
                                           f"{os.fspath(data.path)!r}")
        raise CommandError(str(error)) from None


def stream_steps(sizes, batch_size, freeze_base):
    """Optimizer steps ``partial_fit`` takes over chunks of ``sizes`` rows."""
    from .._batching import count_batches

    return sum(count_batches(n, batch_size, length_grouped=not freeze_base) for n in sizes)


def _fit_stream(data, labels, model, stream, params, quiet, shown):
    """Train with partial_fit over ``max_iter`` passes of ``--chunksize`` rows: the
    ``--max-iter`` (``--epochs``) given, else one (a resumed stream: its own)."""
    sizes, classes = _scan(data, labels, stream.chunksize, quiet)
    names = None
    if labels.sep is not None:  # the indicator's columns; partial_fit takes no classes
        names, classes = classes, None
    if not stream.resume and "max_iter" not in params:
        model.set_params(max_iter=1)  # saved with the model: --resume knows the passes
    epochs = model.max_iter
    done = model.n_iter_ if stream.resume else 0
    if stream.resume:
        _check_resumed_labels(model, names, stream.checkpoint_dir, labels, data.path)
        _check_resumable(model, sizes, done, stream, data.path)
        classes = None
    elif "max_steps" not in params:
        if model.truncation == "window":  # steps count windows, unknown before tokenizing
            note(quiet, "truncation='window': the steps of a chunk depend on its windows, "
                        "so the learning rate decays as the inverse square root of the step; "
                        "pass --param max_steps=N to decay it linearly to 0 at step N")
        else:
            model.set_params(max_steps=stream_steps(sizes, model.batch_size,
                                                    model.freeze_base) * epochs)
    total = len(sizes) * epochs
    if done >= total:
        note(quiet, f"the checkpoint has trained on all {total} chunks already")
        return
    rows_done = sum(sizes[k % len(sizes)] for k in range(done))
    k = 0
    if shown is None:  # the command's bar of rows stands for the chunks' bars of "auto"
        shown = 0 if model.verbose == "auto" else model.verbose
    verbose = shown
    with progress(quiet, sum(sizes) * epochs, initial=rows_done, desc="training") as bar, \
            training_output(model, verbose):
        for _ in range(epochs):
            for texts, chunk in files.labelled_chunks(data, labels, stream.chunksize):
                if k >= done:
                    if labels.regression:
                        model.partial_fit(texts, chunk)
                    elif names is not None:
                        model.partial_fit(texts, files.indicator_matrix(chunk, names),
                                          label_names=names)
                    else:
                        model.partial_fit(texts, chunk, classes=classes)
                    bar.update(len(texts))
                k += 1


def _check_resumed_labels(model, names, checkpoint_dir, labels, path):
    """Refuse to resume a multi-label stream without --label-sep (or the reverse), or on
    a DATA whose label names differ from the checkpoint's."""
    from .models import model_label_sep

    where = f"The checkpoint in {os.fspath(checkpoint_dir)!r}"
    multilabel = bool(getattr(model, "multilabel_", False))
    if multilabel and names is None:
        sep = model_label_sep(model)
        raise CommandError(
            f"{where} is a multi-label stream; resume it with the --label-sep of the "
            "interrupted run" + (f" (--label-sep {sep!r})." if sep else ".")
        )
    if names is None:
        return
    if not multilabel:
        raise CommandError(
            f"{where} is a stream of one label per row; --label-sep {labels.sep!r} "
            "reads several. Resume without --label-sep, or start a new run."
        )
    saved = np.asarray(getattr(model, "label_names_", np.arange(len(model.classes_))))
    if saved.tolist() != names.tolist():
        raise CommandError(
            f"{where} was trained on the labels {saved.tolist()!r}, but with --label-sep "
            f"{labels.sep!r} {os.fspath(path)!r} holds {names.tolist()!r}. Resume "
            "with the DATA and --label-sep of the interrupted run."
        )


def _check_resumable(model, sizes, done, stream, path):
    """Refuse to resume on other data, another --chunksize than the checkpoint's, or more
    epochs than its learning-rate schedule covers (the rate would be 0 past its end)."""
    needed = stream_steps(sizes, model.batch_size, model.freeze_base) * model.max_iter
    # Under truncation="window" a chunk takes a step per batch of windows, not of rows.
    if model.max_steps is not None and model.truncation != "window" and \
            model.max_steps < needed:
        raise CommandError(
            f"The checkpoint in {os.fspath(stream.checkpoint_dir)!r} was started with a "
            f"schedule of max_steps={model.max_steps} optimizer steps, but --epochs "
            f"{model.max_iter} over this data needs {needed}: past max_steps the "
            "learning rate is 0. Resume with the --epochs of the interrupted run, or "
            "start a new run for more epochs."
        )
    seen = model.n_samples_seen_
    expected = sum(sizes[k % len(sizes)] for k in range(done))
    if seen != expected:
        raise CommandError(
            f"The checkpoint in {os.fspath(stream.checkpoint_dir)!r} has trained on {done} "
            f"chunks of {seen} rows in all, but the first {done} chunks of "
            f"{os.fspath(path)!r} with --chunksize {stream.chunksize} hold {expected} "
            "rows. Resume with the DATA and --chunksize of the interrupted run."
        )
