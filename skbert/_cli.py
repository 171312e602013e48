"""The ``skbert`` command line: fit, predict and evaluate on data files.

``skbert fit`` trains a `BertTextClassifier` on a CSV, TSV, Parquet or JSON Lines file
(whole, or streamed chunk by chunk with checkpoints), ``skbert predict`` writes
predictions of a saved model chunk by chunk, and ``skbert evaluate`` prints metrics.
torch, transformers and skops are imported inside the commands, so ``skbert --help``
starts fast. See docs/cli.md.
"""

import argparse
import ast
import difflib
import os
import re
import sys
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from ._io import check_file, file_format, output_format, read_frames, write_frames
from ._validation import is_missing, mixed_label_types

_PROG = "skbert"
_MODEL_SUFFIXES = {".skops": "skops", ".pkl": "joblib", ".pickle": "joblib",
                   ".joblib": "joblib"}
_DEFAULT_CHUNKSIZE = 10_000
_INTERRUPTED = "Training interrupted by user"  # start of the warning of _engine.warn_interrupted


class CommandError(Exception):
    """An error the command line reports as one line, without a traceback."""


# ---------------------------------------------------------------------- parser
def parse_param(text):
    """Parse ``NAME=VALUE`` into ``(name, value)``.

    The value is read with `ast.literal_eval` (numbers, None, True, tuples, dicts...)
    where it parses, and kept as a string otherwise.

    Parameters
    ----------
    text : str
        The argument of ``--param``.

    Returns
    -------
    name : str
    value : object

    Raises
    ------
    argparse.ArgumentTypeError
        When ``text`` has no "=" or no name.
    """
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE, got {text!r}; for example --param learning_rate=3e-5"
        )
    try:
        value = ast.literal_eval(raw.strip())
    except Exception:  # not a Python literal: a plain string such as cpu or mean
        value = raw.strip()
    return name, value


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser():
    """The argument parser of ``skbert`` and its commands.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description="Fine-tune BERT text classifiers and predict from CSV, TSV, Parquet "
        "or JSON Lines files.",
        epilog="Run 'skbert COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--text-column", default="text", metavar="NAME",
                        help="column of the texts (default: %(default)s); with --no-header "
                        "its number, counted from 0")
    _add_reading_options(common)
    common.add_argument("--quiet", action="store_true",
                        help="no progress bar or summary on stderr")
    # SUPPRESS: a subcommand's default must not overwrite "skbert --debug COMMAND".
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_fit(commands, common)
    _add_predict(commands, common)
    _add_evaluate(commands, common)
    return parser


def _add_reading_options(common):
    common.add_argument("--encoding", metavar="CODEC",
                        help="text encoding of DATA, e.g. cp1252, latin-1, utf-16 (default: "
                        "utf-8; a UTF-8 or UTF-16 byte order mark is read in any case)")
    common.add_argument("--sep", type=_separator, metavar="CHAR",
                        help="field separator of a CSV or TSV DATA, e.g. ';' or '\\t' "
                        "(default: ',' for CSV, a tab for TSV)")
    common.add_argument("--no-header", action="store_true",
                        help="the first line of a CSV or TSV DATA is a row, not column names: "
                        "give columns by number, counted from 0 (--text-column 3)")
    common.add_argument("--data-format", choices=("csv", "tsv", "parquet", "jsonl"),
                        help="format of DATA when its extension does not tell it")


def _separator(text):
    """The --sep character; "\\t" and "tab" mean a tab."""
    return "\t" if text in ("\\t", "tab") else text


def _add_fit(commands, common):
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
    fit.add_argument("--out", required=True, metavar="MODEL",
                     help="where to save the model (.skops, or .pkl / .joblib)")
    fit.add_argument("--param", dest="params", action="append", default=[], type=parse_param,
                     metavar="NAME=VALUE",
                     help="a BertTextClassifier parameter, e.g. learning_rate=3e-5 "
                     "(repeatable)")
    fit.add_argument("--chunksize", type=_positive_int, metavar="N",
                     help="stream the file N rows at a time through partial_fit")
    fit.add_argument("--epochs", type=_positive_int, metavar="N",
                     help="passes over the file when streaming (default: 1)")
    fit.add_argument("--checkpoint-dir", metavar="DIR",
                     help="write checkpoints here while streaming")
    fit.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                     help="optimizer steps between checkpoints (default: after every chunk)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the stream from the newest checkpoint in --checkpoint-dir")
    fit.set_defaults(run=_run_fit)


def _add_predict(commands, common):
    predict = commands.add_parser(
        "predict", parents=[common], help="write predictions of a saved model",
        description="Predict the texts of DATA with MODEL, chunk by chunk, and write one "
        "row per text to --out.",
    )
    predict.add_argument("model", metavar="MODEL",
                         help="a .skops, .pkl or .joblib model, or a checkpoint folder")
    predict.add_argument("data", metavar="DATA", help="texts (.csv, .tsv, .parquet, .jsonl)")
    predict.add_argument("--out", required=True, metavar="FILE",
                         help="predictions file (.csv, .tsv, .parquet, .jsonl; .gz for text)")
    predict.add_argument("--id-column", metavar="NAME",
                         help="copy this column to the output (default: a 'row' column of "
                         "0-based row numbers); with --no-header its number, written as "
                         "column 'id'")
    predict.add_argument("--proba", action="store_true",
                         help="add a proba_<class> column per class")
    _add_inference_options(predict)
    predict.set_defaults(run=_run_predict)


def _add_evaluate(commands, common):
    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="print accuracy, macro-F1 and MCC of a model",
        description="Score MODEL on the labelled DATA: accuracy, macro-F1, Matthews "
        "correlation and scikit-learn's classification report.",
    )
    evaluate.add_argument("model", metavar="MODEL",
                          help="a .skops, .pkl or .joblib model, or a checkpoint folder")
    evaluate.add_argument("data", metavar="DATA",
                          help="labelled texts (.csv, .tsv, .parquet, .jsonl)")
    evaluate.add_argument("--label-column", default="label", metavar="NAME",
                          help="column of the true labels (default: %(default)s); with "
                          "--no-header its number")
    _add_inference_options(evaluate)
    evaluate.set_defaults(run=_run_evaluate)


def _add_inference_options(command):
    command.add_argument("--chunksize", type=_positive_int, default=_DEFAULT_CHUNKSIZE,
                         metavar="N", help="rows read and predicted at a time "
                         "(default: %(default)s)")
    command.add_argument("--device", metavar="DEVICE",
                         help="override the model's device: cpu, cuda, cuda:1, mps, auto")


# ------------------------------------------------------------------------ main
def main(argv=None):
    """Run the ``skbert`` command line.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments; None reads ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 on success, 1 on an error (reported on one line of stderr), 130 when
        interrupted. Usage errors exit with 2 from argparse.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    try:
        with warnings.catch_warnings():  # restores showwarning for callers of main()
            warnings.showwarning = _show_warning
            # fit and partial_fit turn Ctrl-C into this warning and return; the command
            # must stop instead, before a half-trained chunk is checkpointed or saved.
            warnings.filterwarnings("error", message=_INTERRUPTED, category=UserWarning)
            args.run(args)
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        if isinstance(exc, UserWarning) and str(exc).startswith(_INTERRUPTED):
            return _interrupted()
        if args.debug:
            raise
        print(f"{_PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    return 0


def _interrupted():
    print(f"{_PROG}: interrupted; the output file was not written.", file=sys.stderr)
    return 130


def _one_line(exc):
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (CommandError, ValueError, TypeError, OSError, LookupError)):
        return message
    return f"{type(exc).__name__}: {message} (run with --debug for the traceback)"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{_PROG}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _check_usage(parser, args):
    """Refuse option combinations that make no sense (exit status 2)."""
    if args.no_header:
        _column_numbers(parser, args)
    if args.command != "fit":
        return
    streaming = {"--epochs": args.epochs, "--checkpoint-dir": args.checkpoint_dir,
                 "--checkpoint-every": args.checkpoint_every, "--resume": args.resume or None}
    given = [option for option, value in streaming.items() if value is not None]
    if args.chunksize is None and given:
        hint = " (without it, use --param max_iter=N)" if given[0] == "--epochs" else ""
        parser.error(f"{given[0]} streams the file and needs --chunksize N{hint}")
    if args.resume and args.checkpoint_dir is None:
        parser.error("--resume needs --checkpoint-dir DIR, the folder of the checkpoints")


def _column_numbers(parser, args):
    """Turn the column options into numbers under --no-header."""
    for option in ("text_column", "label_column", "id_column"):
        value = getattr(args, option, None)
        if value is None:
            continue
        if not re.fullmatch(r"\d+", value):
            flag = "--" + option.replace("_", "-")
            parser.error(f"--no-header gives columns by number, counted from 0: pass {flag} N "
                         f"(the first column is 0); got {flag} {value!r}")
        setattr(args, option, int(value))


def _note(args, message):
    if not args.quiet:
        print(f"{_PROG}: {message}", file=sys.stderr)


def _progress(args, total, initial=0, desc=None):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=" rows",
                file=sys.stderr, disable=args.quiet, dynamic_ncols=True)


# ------------------------------------------------------------------ data files
def _reading(args):
    """The options of `read_frames` given on the command line."""
    return dict(encoding=args.encoding, sep=args.sep, header=not args.no_header,
                data_format=args.data_format)


def _frames(args, label_column, chunksize, extra=()):
    """`read_frames` of DATA; an OSError while reading names DATA (and is not taken for a
    failure to write --out)."""
    try:
        yield from read_frames(args.data, args.text_column, label_column, chunksize, extra,
                               **_reading(args))
    except OSError as exc:
        raise CommandError(f"Cannot read {os.fspath(args.data)!r}: {exc}") from exc


def _check_data(args):
    """Fail early on an unknown extension or a missing or empty file."""
    try:
        check_file(args.data, args.data_format)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None


def _check_first_chunk(args, label_column, extra=()):
    """Read and check the first chunk of DATA (columns, encoding, texts and labels), so
    that a wrong option is reported before a model is loaded or trained."""
    frames = _frames(args, label_column, args.chunksize or _DEFAULT_CHUNKSIZE, extra)
    try:
        frame = next(frames, None)
    finally:
        frames.close()
    if frame is not None:
        _texts(frame, args.text_column, args.data, 0)
        if label_column is not None:
            _labels(frame, label_column, args.data, 0)


def _check_out(args, kind="output"):
    """Refuse an --out in a missing or unwritable folder, or that is DATA itself."""
    parent = Path(args.out).resolve().parent
    if not parent.is_dir():
        raise CommandError(
            f"Cannot write {kind} {os.fspath(args.out)!r}: folder {os.fspath(parent)!r} does "
            "not exist. Create it first."
        )
    if _same_file(args.out, args.data):
        raise CommandError(
            f"--out {os.fspath(args.out)!r} is the DATA file {os.fspath(args.data)!r}: "
            f"writing it would destroy the input. Give --out another path."
        )
    from ._checkpoint import check_writable

    check_writable(parent, "--out")


def _same_file(a, b):
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def _out_error(path, exc, lost=""):
    """The OSError of a failed write of --out, saying that a previous file is intact."""
    return OSError(
        exc.errno,
        f"Cannot write --out {os.fspath(path)!r} ({exc.strerror or exc}); any previous file "
        f"at that path is intact and no partial file is left.{lost} Free space or fix the "
        "folder's permissions, or choose another --out, and run the command again.",
    )


def _count_rows(args):
    """Rows of a Parquet file from its metadata; None (unknown) for the text formats."""
    if file_format(args.data, args.data_format) != "parquet":
        return None
    import pyarrow.parquet as pq

    return pq.ParquetFile(args.data).metadata.num_rows


def _texts(frame, column, path, offset):
    """The texts of ``frame`` as a list; a missing or non-text value names its row."""
    texts = frame[column].tolist()
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise CommandError(
                f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) has "
                f"no text in column {column!r}: got {text!r}. Fill it (an empty string is a "
                "valid text) or drop the row."
            )
    return texts


def _labels(frame, column, path, offset):
    """The labels of ``frame``; a missing label names its row."""
    labels = frame[column].to_numpy()
    for i, label in enumerate(labels.tolist()):
        if is_missing(label):
            raise CommandError(
                f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) has "
                f"no label in column {column!r}. Fill it or drop the row."
            )
    return labels


def _labelled_chunks(args, chunksize):
    """Yield validated ``(texts, labels)`` chunks of ``args.data``."""
    offset = 0
    for frame in _frames(args, args.label_column, chunksize):
        if len(frame):
            yield (_texts(frame, args.text_column, args.data, offset),
                   _labels(frame, args.label_column, args.data, offset))
        offset += len(frame)


# ---------------------------------------------------------------------- models
def _model_kind(path):
    kind = _MODEL_SUFFIXES.get(Path(path).suffix.lower())
    if kind is None:
        raise CommandError(
            f"Cannot tell the model format of {os.fspath(path)!r} from its extension; use "
            ".skops (safe to load), or .pkl / .joblib (pickle: trusts the file)."
        )
    return kind


def save_model(model, path):
    """Save ``model`` to ``path`` atomically: skops for .skops, joblib for .pkl/.joblib.

    A failure leaves any previous file at ``path`` untouched.
    """
    from ._checkpoint import atomic_write

    kind = _model_kind(path)
    with atomic_write(path) as tmp:
        if kind == "skops":
            import skops.io as sio

            sio.dump(model, tmp)
        else:
            import joblib

            joblib.dump(model, tmp)


def load_model(path):
    """Load a fitted classifier from a .skops, .pkl or .joblib file or checkpoint folder.

    skops files are loaded trusting only ``skbert._classifier.BertTextClassifier``.
    .pkl and .joblib files are unpickled with joblib, which runs any code the file
    names: load only files you trust. A folder is a checkpoint (``ckpt-<step>``) or a
    ``checkpoint_dir``, whose newest complete checkpoint is loaded.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    model : classifier with ``predict_proba`` and ``classes_``

    Raises
    ------
    CommandError
        When the path is missing, its extension unknown, or the file unreadable,
        corrupt, untrusted or not a fitted classifier.
    """
    path = Path(path)
    if not path.exists():
        raise CommandError(
            f"No such model file or folder: {os.fspath(path)!r}. Give a .skops, .pkl or "
            ".joblib file written by 'skbert fit', or a checkpoint folder."
        )
    if path.is_dir():
        from ._checkpoint import latest_checkpoint

        if not (path / "estimator.skops").is_file():
            path = latest_checkpoint(path)
        path, kind = path / "estimator.skops", "skops"
    else:
        kind = _model_kind(path)
    model = _load_skops(path) if kind == "skops" else _load_pickle(path)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")):
        raise CommandError(
            f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted classifier "
            "with predict_proba and classes_."
        )
    return model


def _load_skops(path):
    import skops.io as sio
    from skops.io.exceptions import UntrustedTypesFoundException

    from ._classifier import TRUSTED_TYPES

    try:
        return sio.load(path, trusted=TRUSTED_TYPES)
    except UntrustedTypesFoundException:
        untrusted = sio.get_untrusted_types(file=path)
        raise CommandError(
            f"Model file {os.fspath(path)!r} holds types skbert does not trust: "
            f"{untrusted}. Only {TRUSTED_TYPES} is trusted; if you trust the file's source, "
            "load it in Python with skops.io.load(path, trusted=[...])."
        ) from None
    except Exception as exc:
        raise CommandError(
            f"Cannot load model file {os.fspath(path)!r}: it is corrupt or not a skops "
            f"file ({type(exc).__name__}: {exc})."
        ) from exc


def _load_pickle(path):
    import joblib

    try:
        return joblib.load(path)
    except Exception as exc:
        raise CommandError(
            f"Cannot load model file {os.fspath(path)!r}: it is corrupt or not a pickle "
            f"({type(exc).__name__}: {exc})."
        ) from exc


def _set_device(model, device):
    if device is not None:
        try:
            model.set_params(device=device)
        except ValueError as exc:
            raise CommandError(f"--device {device} does not apply to this model: {exc}") from exc


# ------------------------------------------------------------------------- fit
def _run_fit(args):
    from ._classifier import BertTextClassifier

    _model_kind(args.out)
    _check_out(args, "model")
    _check_data(args)
    model = None
    if not args.resume:
        model = _estimator(args, BertTextClassifier, checkpoint_dir=args.checkpoint_dir,
                           checkpoint_every=args.checkpoint_every)
    _check_checkpoint_dir(args)
    _check_first_chunk(args, args.label_column)
    if args.chunksize is None:
        _fit_whole(args, model)
    else:
        if args.resume:
            model = _resumed(args, BertTextClassifier)
        _fit_stream(args, model)
    try:
        save_model(model, args.out)
    except OSError as exc:
        raise _out_error(args.out, exc, " The trained model was not saved.") from exc
    _note(args, f"saved the model ({len(model.classes_)} classes) to {args.out}")


def _check_checkpoint_dir(args):
    """Refuse, before any training, an unwritable --checkpoint-dir, and one holding an
    earlier run's checkpoints without --resume."""
    from ._checkpoint import check_writable, checkpoints_in

    if args.checkpoint_dir is None:
        return
    check_writable(args.checkpoint_dir, "--checkpoint-dir")
    found = checkpoints_in(args.checkpoint_dir)
    if found and not args.resume:
        raise CommandError(
            f"--checkpoint-dir {os.fspath(args.checkpoint_dir)!r} already holds "
            f"{len(found)} checkpoint(s) of an earlier run (the newest is {found[-1].name}). "
            "To continue that run, add --resume; to start a new one, give an empty "
            "--checkpoint-dir."
        )


def _check_param_names(params, known):
    for name in params:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise CommandError(
                f"Unknown parameter {name!r} in --param {name}=...; {hint}"
                f"BertTextClassifier's parameters are: {', '.join(known)}."
            )


def _estimator(args, cls, **options):
    """``cls(**params)`` from the --param values, checked before any data is read."""
    params = dict(args.params)
    _check_param_names(params, cls().get_params())
    params.update({k: v for k, v in options.items() if v is not None})
    model = cls(**params)
    try:
        model._validate_params()
    except ValueError as exc:
        raise CommandError(f"Bad --param value: {exc}") from exc
    return model


def _resumed(args, cls):
    """The estimator of the newest checkpoint, checkpointing on into --checkpoint-dir.

    It keeps the checkpoint's parameters: the same command line with ``--resume`` added
    works, but a --param that differs from the checkpoint's value is an error.
    """
    try:
        model = cls.resume(args.checkpoint_dir)
    except FileNotFoundError as exc:
        raise CommandError(f"{exc} Run without --resume to start a new stream.") from exc
    saved = model.get_params()
    _check_param_names(dict(args.params), saved)
    for name, value in args.params:
        if name != "checkpoint_dir" and value != saved[name]:
            raise CommandError(
                f"--param {name}={value!r} differs from the checkpoint's {name}="
                f"{saved[name]!r}; a resumed stream keeps its parameters. Drop the --param, "
                "or start a new stream without --resume."
            )
    model.set_params(checkpoint_dir=args.checkpoint_dir)
    if args.checkpoint_every is not None:
        model.set_params(checkpoint_every=args.checkpoint_every)
    return model


def _fit_whole(args, model):
    texts, labels = [], []
    for chunk_texts, chunk_labels in _labelled_chunks(args, _DEFAULT_CHUNKSIZE):
        texts += chunk_texts
        labels.append(chunk_labels)
    if not texts:
        raise CommandError(f"No rows to train on in {os.fspath(args.data)!r}.")
    _note(args, f"training on {len(texts)} rows (add --param verbose=1 for progress bars)")
    model.fit(texts, np.concatenate(labels))


def _scan(args):
    """One pass over the file: validate it, count the rows of each chunk, find the classes."""
    sizes, classes = [], set()
    with _progress(args, _count_rows(args), desc="scanning") as bar:
        for texts, labels in _labelled_chunks(args, args.chunksize):
            sizes.append(len(texts))
            classes.update(labels.tolist())
            bar.update(len(texts))
    if not sizes:
        raise CommandError(f"No rows to train on in {os.fspath(args.data)!r}.")
    try:
        return sizes, np.array(sorted(classes))
    except TypeError:
        error = mixed_label_types(classes, f"Column {args.label_column!r} of "
                                           f"{os.fspath(args.data)!r}")
        raise CommandError(str(error)) from None


def _stream_steps(model, sizes):
    """Optimizer steps ``partial_fit`` takes over chunks of ``sizes`` rows."""
    from ._batching import count_batches

    return sum(count_batches(n, model.batch_size, length_grouped=not model.freeze_base)
               for n in sizes)


def _fit_stream(args, model):
    """Train with partial_fit over ``--epochs`` passes of ``--chunksize`` rows."""
    sizes, classes = _scan(args)
    epochs = args.epochs or 1
    done = model.n_iter_ if args.resume else 0
    if args.resume:
        _check_resumable(args, model, sizes, done)
        classes = None
    elif "max_steps" not in dict(args.params):
        model.set_params(max_steps=_stream_steps(model, sizes) * epochs)
    total = len(sizes) * epochs
    if done >= total:
        _note(args, f"the checkpoint has trained on all {total} chunks already")
        return
    rows_done = sum(sizes[k % len(sizes)] for k in range(done))
    k = 0
    with _progress(args, sum(sizes) * epochs, initial=rows_done, desc="training") as bar:
        for _ in range(epochs):
            for texts, labels in _labelled_chunks(args, args.chunksize):
                if k >= done:
                    model.partial_fit(texts, labels, classes=classes)
                    bar.update(len(texts))
                k += 1


def _check_resumable(args, model, sizes, done):
    """Refuse to resume on other data, another --chunksize than the checkpoint's, or more
    epochs than its learning-rate schedule covers (the rate would be 0 past its end)."""
    needed = _stream_steps(model, sizes) * (args.epochs or 1)
    if model.max_steps is not None and model.max_steps < needed:
        raise CommandError(
            f"The checkpoint in {os.fspath(args.checkpoint_dir)!r} was started with a "
            f"schedule of max_steps={model.max_steps} optimizer steps, but --epochs "
            f"{args.epochs or 1} over this data needs {needed}: past max_steps the "
            "learning rate is 0. Resume with the --epochs of the interrupted run, or "
            "start a new run for more epochs."
        )
    seen = model.n_samples_seen_
    expected = sum(sizes[k % len(sizes)] for k in range(done))
    if seen != expected:
        raise CommandError(
            f"The checkpoint in {os.fspath(args.checkpoint_dir)!r} has trained on {done} "
            f"chunks of {seen} rows in all, but the first {done} chunks of "
            f"{os.fspath(args.data)!r} with --chunksize {args.chunksize} hold {expected} "
            "rows. Resume with the DATA and --chunksize of the interrupted run."
        )


# --------------------------------------------------------------------- predict
def _run_predict(args):
    import pandas as pd

    from ._checkpoint import atomic_write

    fmt, gzipped = output_format(args.out)
    _check_out(args)
    _check_data(args)
    extra = [] if args.id_column is None else [args.id_column]
    _check_first_chunk(args, None, extra)
    model = load_model(args.model)
    _set_device(model, args.device)
    frames = _prediction_frames(args, model, pd)
    try:
        with atomic_write(args.out) as tmp:
            n_rows = write_frames(frames, tmp, fmt, gzipped)
    except OSError as exc:  # reading DATA raises CommandError: this is --out
        raise _out_error(args.out, exc) from exc
    _note(args, f"wrote {n_rows} predictions to {args.out}")


def _prediction_frames(args, model, pd):
    """Yield the output table chunk by chunk: id, prediction and probabilities."""
    columns = [_id_name(args), "prediction"]
    if args.proba:
        columns += [f"proba_{c}" for c in model.classes_]
    extra = [] if args.id_column is None else [args.id_column]
    offset = 0
    with _progress(args, _count_rows(args), desc="predict") as bar:
        for frame in _frames(args, None, args.chunksize, extra):
            if len(frame):
                yield pd.DataFrame(_predict_chunk(args, model, frame, offset, columns),
                                   columns=columns)
                offset += len(frame)
                bar.update(len(frame))
    if offset == 0:
        yield pd.DataFrame(columns=columns)


def _id_name(args):
    """The output's first column: the --id-column name ("id" for a column number)."""
    if args.id_column is None:
        return "row"
    return "id" if isinstance(args.id_column, int) else args.id_column


def _predict_chunk(args, model, frame, offset, columns):
    """The output columns of one chunk, as a dict of arrays."""
    texts = _texts(frame, args.text_column, args.data, offset)
    proba = model.predict_proba(texts)
    if args.id_column is not None:
        ids = frame[args.id_column].to_numpy()
    else:
        ids = np.arange(offset, offset + len(texts))
    out = {columns[0]: ids, "prediction": model.classes_[proba.argmax(axis=1)]}
    if args.proba:
        out.update({name: proba[:, j] for j, name in enumerate(columns[2:])})
    return out


# -------------------------------------------------------------------- evaluate
def _run_evaluate(args):
    _check_data(args)
    _check_first_chunk(args, args.label_column)
    model = load_model(args.model)
    _set_device(model, args.device)
    classes = model.classes_
    y_true, y_pred = [], []
    with _progress(args, _count_rows(args), desc="evaluate") as bar:
        for texts, labels in _labelled_chunks(args, args.chunksize):
            y_true.append(align_labels(labels, classes, args.label_column, args.data))
            y_pred.append(classes[model.predict_proba(texts).argmax(axis=1)])
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(args.data)!r}.")
    print(evaluation_report(np.concatenate(y_true), np.concatenate(y_pred)))


def align_labels(labels, classes, column="label", path="data"):
    """Convert labels read from a file to the type of the model's ``classes_``.

    A file may hold ``1`` where the model learned ``"1"`` (or the reverse): integers
    (and floats with integral values) become strings for a model with string classes,
    and strings of digits become integers for a model with integer classes.

    Parameters
    ----------
    labels : ndarray of shape (n,)
    classes : ndarray of shape (n_classes,)
    column, path : str
        Where the labels come from, for the error message.

    Returns
    -------
    labels : ndarray of shape (n,) with the dtype of ``classes``

    Raises
    ------
    CommandError
        When labels remain that are not classes of the model.
    """
    values, known = labels.tolist(), classes.tolist()
    if all(isinstance(c, str) for c in known):
        values = [_integral_str(v) for v in values]
    elif all(isinstance(c, int) and not isinstance(c, bool) for c in known):
        values = [_as_int(v) for v in values]
    unseen = sorted({repr(v) for v in values} - {repr(c) for c in known})
    if unseen:
        raise CommandError(
            f"Column {column!r} of {os.fspath(path)!r} holds labels the model does not know: "
            f"{', '.join(unseen[:5])}{' ...' if len(unseen) > 5 else ''}; its classes are "
            f"{known!r}. Check --label-column, or map the labels to the model's classes."
        )
    return np.asarray(values, dtype=classes.dtype)


def _integral_str(value):
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def _as_int(value):
    if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def evaluation_report(y_true, y_pred):
    """Accuracy, macro-F1, MCC and the classification report as printed text.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n,)

    Returns
    -------
    report : str
    """
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        f1_score,
        matthews_corrcoef,
    )

    lines = [
        f"accuracy: {accuracy_score(y_true, y_pred):.4f}",
        f"macro-F1: {f1_score(y_true, y_pred, average='macro'):.4f}",
        f"MCC:      {matthews_corrcoef(y_true, y_pred):.4f}",
        f"rows:     {len(y_true)}",
        "",
        classification_report(y_true, y_pred, digits=4, zero_division=0),
    ]
    return "\n".join(lines).rstrip("\n")
