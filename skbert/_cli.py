"""The ``skbert`` command line: fit, predict and evaluate on data files.

``skbert fit`` trains a `BertTextClassifier` on a CSV, TSV, Parquet or JSON Lines file
(whole, or streamed chunk by chunk with checkpoints), ``skbert predict`` writes
predictions of a saved model chunk by chunk, and ``skbert evaluate`` prints metrics.
With ``--label-sep`` a label column holds several labels per row ("joy|surprise"), and
the model is a multi-label one that keeps its label names (``label_names_``); with
``--regression`` it holds numbers and the model is a `BertTextRegressor`. Every estimator
parameter is a flag of ``fit`` (``_cli_params``). torch, transformers and skops are
imported inside the commands, so ``skbert --help`` starts fast. See docs/cli.md.
"""

import argparse
import ast
import codecs
import contextlib
import json
import os
import re
import sys
import warnings
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import __version__
from ._io import (
    _binary,
    check_file,
    file_format,
    output_format,
    read_frames,
    resolve_encoding,
    write_frames,
)
from ._validation import is_missing, mixed_label_types

_PROG = "skbert"
_MODEL_SUFFIXES = {".skops": "skops", ".pkl": "joblib", ".pickle": "joblib",
                   ".joblib": "joblib"}
_DEFAULT_CHUNKSIZE = 10_000
_INTERRUPTED = "Training interrupted by user"  # start of the warning of _engine.warn_interrupted
_DEFAULT_LABEL_SEP = "|"  # joins the predicted labels of a model that does not name its own
_COUNT_BLOCK = 1 << 20  # bytes read at a time to count the lines of DATA


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


def _label_separator(text):
    """The --label-sep string: not empty; "\\t" and "tab" mean a tab."""
    if text == "":
        raise argparse.ArgumentTypeError(
            "the separator of the labels in a cell must not be empty; for example "
            "--label-sep '|' for cells such as 'joy|surprise'"
        )
    return _separator(text)


def _add_label_sep(command, help_text):
    command.add_argument("--label-sep", type=_label_separator, metavar="SEP", help=help_text)


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
    _add_label_sep(fit, "multi-label: each label cell holds several labels separated by "
                   "SEP, e.g. --label-sep '|' for 'joy|surprise' (an empty cell: no label)")
    fit.add_argument("--out", required=True, metavar="MODEL",
                     help="where to save the model (.skops, or .pkl / .joblib)")
    fit.add_argument("--param", dest="params", action="append", default=[], type=parse_param,
                     metavar="NAME=VALUE",
                     help="a BertTextClassifier parameter, e.g. learning_rate=3e-5 "
                     "(repeatable; the same as its flag below)")
    fit.add_argument("--chunksize", type=_positive_int, metavar="N",
                     help="stream the file N rows at a time through partial_fit; "
                     "--max-iter (--epochs) passes, 1 unless given")
    fit.add_argument("--checkpoint-dir", metavar="DIR",
                     help="write checkpoints here while streaming")
    fit.add_argument("--checkpoint-every", type=_positive_int, metavar="STEPS",
                     help="optimizer steps between checkpoints (default: after every chunk)")
    fit.add_argument("--resume", action="store_true",
                     help="continue the stream from the newest checkpoint in --checkpoint-dir")
    fit.add_argument("--regression", action="store_true",
                     help="the label column holds numbers: train a BertTextRegressor")
    from ._classifier import BertTextClassifier
    from ._cli_params import add_parameter_flags
    from ._regressor import BertTextRegressor

    add_parameter_flags(fit, BertTextClassifier, aliases={"max_iter": ["--epochs"]})
    add_parameter_flags(fit, BertTextRegressor,
                        skip=set(BertTextClassifier._parameter_constraints))
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
                         help="add a proba_<class> column per class (per label of a "
                         "multi-label model)")
    predict.add_argument("--multilabel-output", choices=("list", "indicator"),
                         help="multi-label model: write the predicted labels as one "
                         "'prediction' column joined by the label separator (list, the "
                         "default), or a 0/1 prediction_<label> column per label (indicator)")
    _add_label_sep(predict, "multi-label model: join the predicted labels with SEP "
                   "(default: the --label-sep the model was trained with)")
    _add_inference_options(predict)
    predict.set_defaults(run=_run_predict)


def _add_evaluate(commands, common):
    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="print accuracy, macro-F1 and MCC of a model",
        description="Score MODEL on the labelled DATA: accuracy, macro-F1, Matthews "
        "correlation and scikit-learn's classification report (for a multi-label model, "
        "with --label-sep: micro-, macro- and samples-F1, subset accuracy and per-label "
        "scores).",
    )
    evaluate.add_argument("model", metavar="MODEL",
                          help="a .skops, .pkl or .joblib model, or a checkpoint folder")
    evaluate.add_argument("data", metavar="DATA",
                          help="labelled texts (.csv, .tsv, .parquet, .jsonl)")
    evaluate.add_argument("--label-column", default="label", metavar="NAME",
                          help="column of the true labels (default: %(default)s); with "
                          "--no-header its number")
    _add_label_sep(evaluate, "multi-label model: each label cell holds several labels "
                   "separated by SEP; prints micro-, macro- and samples-F1 and subset "
                   "accuracy")
    evaluate.add_argument("--json", action="store_true",
                          help="print the scores (and each class's) as one JSON object")
    _add_inference_options(evaluate)
    evaluate.set_defaults(run=_run_evaluate)


def _add_inference_options(command):
    command.add_argument("--chunksize", type=_positive_int, default=_DEFAULT_CHUNKSIZE,
                         metavar="N", help="rows read and predicted at a time "
                         "(default: %(default)s)")
    command.add_argument("--device", metavar="DEVICE",
                         help="override the model's device: cpu, cuda, cuda:1, mps, auto")
    command.add_argument("--inference-backend", choices=("torch", "openvino"),
                         help="override what runs the model: openvino compiles it for this "
                         "CPU (needs the openvino package)")


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


@contextlib.contextmanager
def _progress(args, total, initial=0, desc=None):
    """A bar of rows on stderr, none under --quiet.

    ``total`` may be an estimate (``_count_rows``): a bar that completes at another
    count takes that count as its total, so that it ends full.
    """
    from tqdm import tqdm

    with tqdm(total=total, initial=initial, desc=desc, unit=" rows", file=sys.stderr,
              disable=args.quiet, dynamic_ncols=True) as bar:
        yield bar
        if not bar.disable and bar.total is not None and bar.n != bar.total:
            bar.total = bar.n
            bar.refresh()


@contextlib.contextmanager
def _training_output(args, model, default):
    """Run the estimator's training with the output the command line asks for.

    Its ``verbose`` is 0 under --quiet, the value given by --verbose (or --param), else
    ``default``; its progress bars and epoch lines go to stderr (stdout is for results).
    The model keeps its own ``verbose`` afterwards.
    """
    saved = model.verbose
    shown = 0 if args.quiet else saved if "verbose" in _given_params(args) else default
    model.set_params(verbose=shown)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        model.set_params(verbose=saved)


def _without_own_bars(model):
    """Silence the progress bars of ``model`` (or of a Pipeline's skbert steps): the
    command's bar of rows counts the rows already."""
    from . import BertTextClassifier, BertTextRegressor

    for estimator in [model, *(step for _, step in getattr(model, "steps", ()))]:
        if isinstance(estimator, (BertTextClassifier, BertTextRegressor)):
            estimator.set_params(verbose=0)


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
            _chunk_labels(args, frame, 0)


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
    """Rows of DATA, the total of a progress bar.

    A Parquet file's from its metadata. A CSV, TSV or JSON Lines file's from its line
    breaks, read in blocks (decompressed as the readers do), less the header and the
    blank lines at its end. Where a quoted CSV field holds a line break or blank lines
    stand between rows, that is an over-count, an estimate that ``_progress`` corrects
    when the bar ends. None when the file cannot be read (its reader then says why), and
    under --quiet, which shows no bar.
    """
    if args.quiet:
        return None
    fmt = file_format(args.data, args.data_format)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(args.data).metadata.num_rows
    try:
        lines = _count_lines(args.data, resolve_encoding(args.data, args.encoding))
    except Exception:  # unreadable, corrupt or of an unknown encoding: the reader reports it
        return None
    header = fmt != "jsonl" and not args.no_header
    return max(lines - header, 0)


def _count_lines(path, encoding):
    """Lines of ``path`` up to its last that is not blank (a last line may lack its line
    break). Bytes are counted as they are, except in UTF-16 and UTF-32, which are
    decoded first."""
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace") if wide else None
    newline, blank = ("\n", "\r\n") if wide else (b"\n", b"\r\n")
    count = trailing = 0  # line breaks; those after the last character that is not one
    content = False
    with _binary(path) as f:
        while block := f.read(_COUNT_BLOCK):
            if decoder is not None:
                block = decoder.decode(block)
            count += block.count(newline)
            end = block.rstrip(blank)
            if end:
                content = True
                trailing = block[len(end):].count(newline)
            else:
                trailing += block.count(newline)
    return count - trailing + 1 if content else 0


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


def _targets(frame, column, path, offset):
    """The float targets of ``frame`` (regression); a missing or non-numeric one names
    its row."""
    values = _labels(frame, column, path, offset)
    targets = np.empty(len(values))
    for i, value in enumerate(values.tolist()):
        try:
            if isinstance(value, bool):
                raise ValueError
            targets[i] = float(value)
        except (TypeError, ValueError):
            targets[i] = np.nan
        if not np.isfinite(targets[i]):
            raise CommandError(
                f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) has "
                f"{value!r} in the target column {column!r}; --regression needs a finite "
                "number in every row."
            )
    return targets


def _label_lists(frame, column, path, offset, sep, empty_is_none):
    """The label names of each row of ``frame``: the cells split at ``sep``.

    Names are stripped of surrounding whitespace and empty pieces dropped, so an empty
    cell is a row without labels. ``empty_is_none``: the format reads an empty cell as
    missing (CSV and TSV); elsewhere a missing value (null) is an error naming its row.
    """
    rows = []
    for i, cell in enumerate(frame[column].tolist()):
        if is_missing(cell):
            if not empty_is_none:
                raise CommandError(
                    f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) "
                    f"has no value in the label column {column!r} (null). With --label-sep "
                    "a row without labels holds an empty string; write one or drop the row."
                )
            cell = ""
        cell = _integral_str(cell)
        if not isinstance(cell, (str, int, float)):  # a bool is an int
            raise CommandError(
                f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) has "
                f"{cell!r} ({type(cell).__name__}) in the label column {column!r}; with "
                f"--label-sep {sep!r} each cell must be a string of labels separated by "
                f"{sep!r}, such as {sep.join(['joy', 'surprise'])!r}."
            )
        rows.append(tuple(sorted({name.strip() for name in str(cell).split(sep)} - {""})))
    return rows


def _chunk_labels(args, frame, offset):
    """The labels of one chunk: an array, or under --label-sep the names of each row
    (regression: float targets)."""
    if getattr(args, "regression", False):
        return _targets(frame, args.label_column, args.data, offset)
    if getattr(args, "label_sep", None) is None:
        return _labels(frame, args.label_column, args.data, offset)
    delimited = file_format(args.data, args.data_format) in ("csv", "tsv")
    return _label_lists(frame, args.label_column, args.data, offset, args.label_sep,
                        empty_is_none=delimited)


def _labelled_chunks(args, chunksize):
    """Yield validated ``(texts, labels)`` chunks of ``args.data``; under --label-sep
    the labels are a list of tuples of label names, one per row."""
    offset = 0
    for frame in _frames(args, args.label_column, chunksize):
        if len(frame):
            yield (_texts(frame, args.text_column, args.data, offset),
                   _chunk_labels(args, frame, offset))
        offset += len(frame)


def _label_names(args, counts, n_rows):
    """The sorted label names of a multi-label DATA from their row counts; a label on
    every row (it cannot be learned), or fewer than two labels, is an error."""
    names = sorted(counts)
    where = f"column {args.label_column!r} of {os.fspath(args.data)!r}"
    if len(names) < 2:
        found = f"only the label {names[0]!r}" if names else "no label at all"
        raise CommandError(
            f"With --label-sep {args.label_sep!r}, {where} holds {found}; a multi-label "
            "model needs at least 2 labels. Check --label-sep and --label-column, or fit "
            "without --label-sep for one label per row."
        )
    for name in names:
        if counts[name] == n_rows:
            raise CommandError(
                f"Label {name!r} (label column {names.index(name)} of the indicator "
                f"matrix) is on every one of the {n_rows} rows of {where}, so the model "
                f"cannot learn it: it needs texts with and without each label. Drop "
                f"{name!r} from the file, or add texts without it."
            )
    return np.array(names, dtype=str)


def indicator_matrix(label_lists, names):
    """The 0/1 indicator matrix of rows of label names, one column per name.

    Parameters
    ----------
    label_lists : list of tuple of str
        The label names of each row.
    names : ndarray of str of shape (n_labels,)
        The label names, in column order.

    Returns
    -------
    Y : ndarray of uint8 of shape (n_rows, n_labels)

    Raises
    ------
    KeyError
        When a row holds a name not in ``names``.
    """
    column = {name: j for j, name in enumerate(names.tolist())}
    Y = np.zeros((len(label_lists), len(column)), dtype=np.uint8)
    for i, row in enumerate(label_lists):
        Y[i, [column[name] for name in row]] = 1
    return Y


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
    """Load a fitted classifier from a .skops, .pkl or .joblib file, a checkpoint folder
    or a Hugging Face folder written by ``save_pretrained``.

    skops files are loaded trusting only ``skbert.TRUSTED_TYPES``. .pkl and .joblib
    files are unpickled with joblib, which runs any code the file names: load only files
    you trust. A folder holding ``skbert.json`` is read with
    ``BertTextClassifier.from_pretrained`` (JSON and safetensors only); another folder is
    a checkpoint (``ckpt-<step>``) or a ``checkpoint_dir``, whose newest complete
    checkpoint is loaded.

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
    if path.is_dir() and (path / "skbert.json").is_file():
        return _load_folder(path)
    if path.is_dir():
        from ._checkpoint import latest_checkpoint

        if not (path / "estimator.skops").is_file():
            path = latest_checkpoint(path)
        path, kind = path / "estimator.skops", "skops"
    else:
        kind = _model_kind(path)
    model = _load_skops(path) if kind == "skops" else _load_pickle(path)
    if not (hasattr(model, "predict_proba") and hasattr(model, "classes_")
            or _is_regressor(model)):
        raise CommandError(
            f"{os.fspath(path)!r} holds a {type(model).__name__}, not a fitted classifier "
            "with predict_proba and classes_, nor a fitted BertTextRegressor."
        )
    return model


def _is_regressor(model):
    """Whether ``model`` is a fitted skbert regressor (alone or ending a Pipeline)."""
    return hasattr(_final_estimator(model), "n_outputs_") and hasattr(model, "predict")


def _load_folder(path):
    from . import BertTextClassifier, BertTextRegressor

    try:
        kind = json.loads((path / "skbert.json").read_text(encoding="utf-8")).get("estimator")
        cls = BertTextRegressor if kind == "BertTextRegressor" else BertTextClassifier
        return cls.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CommandError(f"Cannot load the model folder {os.fspath(path)!r}: {exc}") from None


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


def _apply_overrides(model, args):
    """Apply --device and --inference-backend to a loaded model."""
    for option, name in (("--device", "device"), ("--inference-backend", "inference_backend")):
        value = getattr(args, name)
        if value is not None:
            try:
                model.set_params(**{name: value})
            except ValueError as exc:
                raise CommandError(
                    f"{option} {value} does not apply to this model: {exc}") from exc


# ------------------------------------------------------------------------- fit
def _run_fit(args):
    from ._classifier import BertTextClassifier
    from ._regressor import BertTextRegressor

    cls = BertTextRegressor if args.regression else BertTextClassifier
    _model_kind(args.out)
    _check_out(args, "model")
    _check_data(args)
    model = None
    if not args.resume:
        model = _estimator(args, cls, checkpoint_dir=args.checkpoint_dir,
                           checkpoint_every=args.checkpoint_every)
    _check_checkpoint_dir(args)
    _check_first_chunk(args, args.label_column)
    if args.chunksize is None:
        _fit_whole(args, model)
    else:
        if args.resume:
            model = _resumed(args, cls)
        _fit_stream(args, model)
    try:
        save_model(model, args.out)
    except OSError as exc:
        raise _out_error(args.out, exc, " The trained model was not saved.") from exc
    if args.regression:
        _note(args, f"saved the regressor ({model.n_outputs_} output) to {args.out}")
    elif args.label_sep is None:
        _note(args, f"saved the model ({len(model.classes_)} classes) to {args.out}")
    else:
        _note(args, f"saved the multi-label model ({len(model.label_names_)} labels: "
                    f"{', '.join(model.label_names_)}) to {args.out}")


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


def _check_param_names(params, known, kind="BertTextClassifier"):
    from ._cli_params import suggestion

    for name in params:
        if name not in known:
            hint = suggestion(name, known)
            listed = "" if hint else (f"{kind}'s parameters are: {', '.join(known)}. ")
            raise CommandError(
                f"Unknown parameter {name!r} in --param {name}=...; {hint}{listed}"
                "'skbert fit --help' lists each with its type and default."
            )


def _given_params(args):
    """The estimator parameters of --param and of the parameter flags (both at once
    must agree)."""
    from ._cli_params import given_parameters

    params = dict(args.params)
    for name, value in given_parameters(args).items():
        if name in params and params[name] != value:
            raise CommandError(
                f"--{name.replace('_', '-')} {value!r} and --param {name}={params[name]!r} "
                "disagree; give one of them."
            )
        params[name] = value
    return params


def _estimator(args, cls, **options):
    """``cls(**params)`` from the --param values and flags, checked before any data is
    read."""
    params = _given_params(args)
    _check_param_names(params, cls().get_params(), cls.__name__)
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
    given = _given_params(args)
    _check_param_names(given, saved, cls.__name__)
    for name, value in given.items():
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
    if args.label_sep is None:
        y = np.concatenate(labels)
    else:
        rows = [row for chunk in labels for row in chunk]
        names = _label_names(args, Counter(name for row in rows for name in row), len(rows))
        y = indicator_matrix(rows, names)
    _note(args, f"training on {len(texts)} rows")
    with _training_output(args, model, default=1):
        model.fit(texts, y)
    if args.label_sep is not None:
        _name_labels(model, names, args.label_sep)


def _name_labels(model, names, sep):
    """Store the label names and separator of a multi-label DATA on the estimator, so
    that they travel in its file (skops and pickle alike): ``label_names_[j]`` names
    label column ``j`` (``classes_[j]``), ``label_sep_`` joins predicted labels."""
    model.label_names_ = names
    model.label_sep_ = sep


def _scan(args):
    """One pass over the file: validate it, count the rows of each chunk, find the classes
    (under --label-sep the label names, which every chunk's indicator matrix needs)."""
    sizes, classes, counts = [], set(), Counter()
    with _progress(args, _count_rows(args), desc="scanning") as bar:
        for texts, labels in _labelled_chunks(args, args.chunksize):
            sizes.append(len(texts))
            if args.regression:
                pass  # targets checked; a regressor has no classes
            elif args.label_sep is None:
                classes.update(labels.tolist())
            else:
                counts.update(name for row in labels for name in row)
            bar.update(len(texts))
    if not sizes:
        raise CommandError(f"No rows to train on in {os.fspath(args.data)!r}.")
    if args.label_sep is not None:
        return sizes, _label_names(args, counts, sum(sizes))
    if args.regression:
        return sizes, None
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
    """Train with partial_fit over ``max_iter`` passes of ``--chunksize`` rows: the
    ``--max-iter`` (``--epochs``) given, else one (a resumed stream: its own)."""
    sizes, classes = _scan(args)
    names = None
    if args.label_sep is not None:  # the indicator's columns; partial_fit takes no classes
        names, classes = classes, None
    if not args.resume and "max_iter" not in _given_params(args):
        model.set_params(max_iter=1)  # saved with the model: --resume knows the passes
    epochs = model.max_iter
    done = model.n_iter_ if args.resume else 0
    if args.resume:
        _check_resumed_labels(args, model, names)
        _check_resumable(args, model, sizes, done)
        classes = None
    elif "max_steps" not in _given_params(args):
        if model.truncation == "window":  # steps count windows, unknown before tokenizing
            _note(args, "truncation='window': the steps of a chunk depend on its windows, "
                        "so the learning rate decays as the inverse square root of the step; "
                        "pass --param max_steps=N to decay it linearly to 0 at step N")
        else:
            model.set_params(max_steps=_stream_steps(model, sizes) * epochs)
    if names is not None:
        # Named before the first partial_fit, so that every checkpoint holds the names
        # too (for predict from a checkpoint folder, and for --resume to check them).
        _name_labels(model, names, args.label_sep)
    total = len(sizes) * epochs
    if done >= total:
        _note(args, f"the checkpoint has trained on all {total} chunks already")
        return
    rows_done = sum(sizes[k % len(sizes)] for k in range(done))
    k = 0
    with _progress(args, sum(sizes) * epochs, initial=rows_done, desc="training") as bar, \
            _training_output(args, model, default=model.verbose):
        for _ in range(epochs):
            for texts, labels in _labelled_chunks(args, args.chunksize):
                if k >= done:
                    if names is not None:
                        labels = indicator_matrix(labels, names)
                    if args.regression:
                        model.partial_fit(texts, labels)
                    else:
                        model.partial_fit(texts, labels, classes=classes)
                    bar.update(len(texts))
                k += 1


def _check_resumed_labels(args, model, names):
    """Refuse to resume a multi-label stream without --label-sep (or the reverse), or on
    a DATA whose label names differ from the checkpoint's."""
    where = f"The checkpoint in {os.fspath(args.checkpoint_dir)!r}"
    multilabel = bool(getattr(model, "multilabel_", False))
    if multilabel and names is None:
        sep = getattr(model, "label_sep_", _DEFAULT_LABEL_SEP)
        raise CommandError(
            f"{where} is a multi-label stream; resume it with the --label-sep of the "
            f"interrupted run (--label-sep {sep!r})."
        )
    if names is None:
        return
    if not multilabel:
        raise CommandError(
            f"{where} is a stream of one label per row; --label-sep {args.label_sep!r} "
            "reads several. Resume without --label-sep, or start a new run."
        )
    saved = np.asarray(getattr(model, "label_names_", np.arange(len(model.classes_))))
    if saved.tolist() != names.tolist():
        raise CommandError(
            f"{where} was trained on the labels {saved.tolist()!r}, but with --label-sep "
            f"{args.label_sep!r} {os.fspath(args.data)!r} holds {names.tolist()!r}. Resume "
            "with the DATA and --label-sep of the interrupted run."
        )


def _check_resumable(args, model, sizes, done):
    """Refuse to resume on other data, another --chunksize than the checkpoint's, or more
    epochs than its learning-rate schedule covers (the rate would be 0 past its end)."""
    needed = _stream_steps(model, sizes) * model.max_iter
    # Under truncation="window" a chunk takes a step per batch of windows, not of rows.
    if model.max_steps is not None and model.truncation != "window" and \
            model.max_steps < needed:
        raise CommandError(
            f"The checkpoint in {os.fspath(args.checkpoint_dir)!r} was started with a "
            f"schedule of max_steps={model.max_steps} optimizer steps, but --epochs "
            f"{model.max_iter} over this data needs {needed}: past max_steps the "
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
    _apply_overrides(model, args)
    _without_own_bars(model)
    if _is_regressor(model):
        for flag, value in (("--proba", args.proba or None), ("--label-sep", args.label_sep),
                            ("--multilabel-output", args.multilabel_output)):
            if value is not None:
                raise CommandError(f"{flag} applies to classifiers; "
                                   f"{os.fspath(args.model)!r} is a regressor. Drop {flag}.")
        multilabel = None
    else:
        multilabel = _predict_multilabel_options(args, model)
    frames = _prediction_frames(args, model, pd, multilabel)
    try:
        with atomic_write(args.out) as tmp:
            n_rows = write_frames(frames, tmp, fmt, gzipped)
    except OSError as exc:  # reading DATA raises CommandError: this is --out
        raise _out_error(args.out, exc) from exc
    _note(args, f"wrote {n_rows} predictions to {args.out}")


def _predict_multilabel_options(args, model):
    """How to write the predictions of a multi-label model (None for another model);
    --label-sep and --multilabel-output are refused for a model of one class per text."""
    names = _model_label_names(model)
    if names is None:
        for flag, value in (("--label-sep", args.label_sep),
                            ("--multilabel-output", args.multilabel_output)):
            if value is not None:
                raise CommandError(
                    f"{flag} applies to multi-label models, but {os.fspath(args.model)!r} "
                    f"predicts one class per text (classes {model.classes_.tolist()!r}). "
                    f"Drop {flag}."
                )
        return None
    indicator = args.multilabel_output == "indicator"
    if indicator and args.label_sep is not None:
        raise CommandError(
            "--label-sep joins the labels of the 'prediction' column of --multilabel-output "
            "list; --multilabel-output indicator writes a 0/1 column per label instead. "
            "Drop one of the two."
        )
    sep = args.label_sep or getattr(_final_estimator(model), "label_sep_", _DEFAULT_LABEL_SEP)
    return _MultilabelOutput(names, sep, indicator)


class _MultilabelOutput(NamedTuple):
    """The predictions of a multi-label model as written by ``skbert predict``."""

    names: np.ndarray  # label_names_, in the order of the model's label columns
    sep: str  # joins the predicted names in the 'prediction' column
    indicator: bool  # a 0/1 prediction_<name> column per label instead


def _final_estimator(model):
    """The classifier itself, also at the end of a Pipeline."""
    steps = getattr(model, "steps", None)
    return steps[-1][1] if steps else model


def _model_label_names(model):
    """The label names of a multi-label model, or None for a model of one class per text.

    A model fitted by ``skbert fit --label-sep`` names its label columns in
    ``label_names_``; one fitted in Python on an indicator matrix is named by its
    ``classes_`` (the column numbers), as strings.
    """
    estimator = _final_estimator(model)
    if not getattr(estimator, "multilabel_", False):
        return None
    names = getattr(estimator, "label_names_", None)
    if names is None:
        names = [str(c) for c in estimator.classes_]
    names = np.asarray(names, dtype=str)
    if names.shape != estimator.classes_.shape:
        raise CommandError(
            f"The model's label_names_ holds {names.size} names for its "
            f"{len(estimator.classes_)} label columns; set one name per column."
        )
    return names


def _multilabel_predict(model, texts):
    """The 0/1 predictions and the probabilities of a multi-label model: a label is
    predicted where its probability is at least its ``thresholds_``, as ``predict``
    does (one pass through the network for both)."""
    proba = model.predict_proba(texts)
    return (proba >= _final_estimator(model).thresholds_).astype(np.int64), proba


def _prediction_columns(args, model, multilabel):
    """The output's columns: id, the prediction(s), and the probabilities."""
    columns = [_id_name(args)]
    if _is_regressor(model):
        outputs = _final_estimator(model).n_outputs_
        return columns + (["prediction"] if outputs == 1
                          else [f"prediction_{j}" for j in range(outputs)])
    if multilabel is None:
        names = model.classes_
        columns.append("prediction")
    else:
        names = multilabel.names
        columns += ([f"prediction_{n}" for n in names] if multilabel.indicator
                    else ["prediction"])
    if args.proba:
        columns += [f"proba_{n}" for n in names]
    return columns


def _prediction_frames(args, model, pd, multilabel=None):
    """Yield the output table chunk by chunk: id, prediction and probabilities."""
    columns = _prediction_columns(args, model, multilabel)
    extra = [] if args.id_column is None else [args.id_column]
    offset = 0
    with _progress(args, _count_rows(args), desc="predict") as bar:
        for frame in _frames(args, None, args.chunksize, extra):
            if len(frame):
                if multilabel is None:
                    out = _predict_chunk(args, model, frame, offset, columns)
                else:
                    out = _predict_multilabel_chunk(args, model, frame, offset, multilabel)
                yield pd.DataFrame(out, columns=columns)
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
    if args.id_column is not None:
        ids = frame[args.id_column].to_numpy()
    else:
        ids = np.arange(offset, offset + len(texts))
    if _is_regressor(model):
        predicted = np.asarray(model.predict(texts)).reshape(len(texts), -1)
        return {columns[0]: ids, **{name: predicted[:, j]
                                    for j, name in enumerate(columns[1:])}}
    proba = model.predict_proba(texts)
    out = {columns[0]: ids, "prediction": model.classes_[proba.argmax(axis=1)]}
    if args.proba:
        out.update({name: proba[:, j] for j, name in enumerate(columns[2:])})
    return out


def _predict_multilabel_chunk(args, model, frame, offset, multilabel):
    """The output columns of one chunk of a multi-label model, as a dict of arrays."""
    texts = _texts(frame, args.text_column, args.data, offset)
    predicted, proba = _multilabel_predict(model, texts)
    if args.id_column is not None:
        ids = frame[args.id_column].to_numpy()
    else:
        ids = np.arange(offset, offset + len(texts))
    out = {_id_name(args): ids}
    names = multilabel.names
    if multilabel.indicator:
        out.update({f"prediction_{n}": predicted[:, j] for j, n in enumerate(names)})
    else:
        out["prediction"] = [multilabel.sep.join(names[row.astype(bool)]) for row in predicted]
    if args.proba:
        out.update({f"proba_{n}": proba[:, j] for j, n in enumerate(names)})
    return out


# -------------------------------------------------------------------- evaluate
def _run_evaluate(args):
    _check_data(args)
    _check_first_chunk(args, args.label_column)
    model = load_model(args.model)
    _apply_overrides(model, args)
    _without_own_bars(model)
    if _is_regressor(model):
        scores = _evaluate_regression(args, model)
        print(json.dumps(scores) if args.json else "\n".join(
            f"{k + ':':<9} {v:.4f}" if isinstance(v, float) else f"{k + ':':<9} {v}"
            for k, v in scores.items()))
        return
    names = _model_label_names(model)
    if (names is None) != (args.label_sep is None):
        raise CommandError(_evaluate_label_sep_error(args, model, names))
    if names is not None:
        y_true, y_pred = _evaluate_multilabel(args, model, names)
        print(json.dumps(multilabel_scores(y_true, y_pred, names)) if args.json
              else multilabel_report(y_true, y_pred, names))
        return
    classes = model.classes_
    y_true, y_pred = [], []
    with _progress(args, _count_rows(args), desc="evaluate") as bar:
        for texts, labels in _labelled_chunks(args, args.chunksize):
            y_true.append(align_labels(labels, classes, args.label_column, args.data))
            y_pred.append(classes[model.predict_proba(texts).argmax(axis=1)])
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(args.data)!r}.")
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    predicted = np.unique(y_pred)
    if len(predicted) == 1 and len(classes) > 1:
        warnings.warn(
            f"the model predicts {predicted.tolist()[0]!r} for every one of the "
            f"{len(y_pred)} rows: it has not learned to tell the classes apart (MCC is 0). "
            "Train longer, on more (shuffled) data, or with another learning_rate.",
            UserWarning, stacklevel=2)
    print(json.dumps(evaluation_scores(y_true, y_pred)) if args.json
          else evaluation_report(y_true, y_pred))


def _evaluate_regression(args, model):
    """R², mean absolute error, root mean squared error, Pearson and Spearman
    correlations (averaged over the outputs) and the row count of a regressor."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if args.label_sep is not None:
        raise CommandError(f"--label-sep applies to classifiers; {os.fspath(args.model)!r} "
                           "is a regressor. Drop --label-sep.")
    outputs = _final_estimator(model).n_outputs_
    if outputs != 1:
        raise CommandError(f"evaluate reads one target column, but {os.fspath(args.model)!r} "
                           f"predicts {outputs} outputs; score it in Python.")
    args.regression = True  # read the label column as numbers
    y_true, y_pred = [], []
    with _progress(args, _count_rows(args), desc="evaluate") as bar:
        for texts, targets in _labelled_chunks(args, args.chunksize):
            y_true.append(targets)
            y_pred.append(np.asarray(model.predict(texts)).reshape(len(texts), -1)[:, 0])
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(args.data)!r}.")
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    return {"R2": float(r2_score(y_true, y_pred)),
            "MAE": float(mean_absolute_error(y_true, y_pred)),
            "RMSE": float(np.sqrt(mean_squared_error(y_true, y_pred))),
            "Pearson": float(pearsonr(y_true, y_pred)[0]),
            "Spearman": float(spearmanr(y_true, y_pred)[0]), "rows": int(len(y_true))}


def _evaluate_label_sep_error(args, model, names):
    """The message for --label-sep missing with a multi-label model, or given with one
    of one class per text."""
    where = repr(os.fspath(args.model))
    if names is None:
        return (f"--label-sep applies to multi-label models, but {where} predicts one class "
                f"per text (classes {model.classes_.tolist()!r}). Drop --label-sep.")
    sep = getattr(_final_estimator(model), "label_sep_", _DEFAULT_LABEL_SEP)
    return (f"{where} is a multi-label model (labels {names.tolist()!r}): pass --label-sep "
            f"SEP, the separator of the labels in column {args.label_column!r} (it was "
            f"trained with --label-sep {sep!r}).")


def _evaluate_multilabel(args, model, names):
    """Predict DATA chunk by chunk; return the true and predicted indicator matrices."""
    known = set(names.tolist())
    y_true, y_pred, offset = [], [], 0
    with _progress(args, _count_rows(args), desc="evaluate") as bar:
        for texts, rows in _labelled_chunks(args, args.chunksize):
            unknown = sorted({name for row in rows for name in row} - known)
            if unknown:
                first = offset + next(i for i, row in enumerate(rows) if set(row) - known)
                raise CommandError(
                    f"Column {args.label_column!r} of {os.fspath(args.data)!r} holds labels "
                    f"the model does not know: {', '.join(map(repr, unknown[:5]))}"
                    f"{' ...' if len(unknown) > 5 else ''} (first in row {first}, 0-based); "
                    f"its labels are {names.tolist()!r}. Check --label-column and "
                    f"--label-sep {args.label_sep!r}, or drop those labels."
                )
            y_true.append(indicator_matrix(rows, names))
            y_pred.append(_multilabel_predict(model, texts)[0])
            offset += len(texts)
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(args.data)!r}.")
    return np.concatenate(y_true), np.concatenate(y_pred)


def multilabel_report(y_true, y_pred, names):
    """Micro-, macro- and samples-F1, subset accuracy and per-label scores as text.

    A score with nothing to divide by (a label neither true nor predicted in the data, a
    row with no true and no predicted label in samples-F1) counts 0, as
    ``zero_division=0``.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n, n_labels)
        0/1 indicator matrices.
    names : ndarray of str of shape (n_labels,)
        The label names, in column order.

    Returns
    -------
    report : str
    """
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    def f1(average):
        return f1_score(y_true, y_pred, average=average, zero_division=0)

    lines = [
        f"micro-F1:        {f1('micro'):.4f}",
        f"macro-F1:        {f1('macro'):.4f}",
        f"samples-F1:      {f1('samples'):.4f}",
        f"subset accuracy: {accuracy_score(y_true, y_pred):.4f}",
        f"rows:            {len(y_true)}",
        "",
        classification_report(y_true, y_pred, labels=np.arange(len(names)),
                              target_names=names.tolist(), digits=4, zero_division=0),
    ]
    return "\n".join(lines).rstrip("\n")


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


def evaluation_scores(y_true, y_pred):
    """Accuracy, macro-F1, MCC, the row count and each class's precision, recall, F1 and
    support, as a dict for ``evaluate --json``."""
    from sklearn.metrics import (
        accuracy_score,
        classification_report,
        f1_score,
        matthews_corrcoef,
    )

    per_class = classification_report(y_true, y_pred, zero_division=0, output_dict=True)
    return {"accuracy": accuracy_score(y_true, y_pred),
            "macro_f1": f1_score(y_true, y_pred, average="macro"),
            "mcc": matthews_corrcoef(y_true, y_pred), "rows": int(len(y_true)),
            "classes": {str(k): v for k, v in per_class.items()
                        if k not in ("accuracy", "macro avg", "weighted avg")}}


def multilabel_scores(y_true, y_pred, names):
    """Micro-, macro- and samples-F1, subset accuracy, the row count and each label's
    scores, as a dict for ``evaluate --json``."""
    from sklearn.metrics import accuracy_score, classification_report, f1_score

    per_label = classification_report(y_true, y_pred, labels=np.arange(len(names)),
                                      target_names=names.tolist(), zero_division=0,
                                      output_dict=True)
    return {**{f"{a}_f1": f1_score(y_true, y_pred, average=a, zero_division=0)
               for a in ("micro", "macro", "samples")},
            "subset_accuracy": accuracy_score(y_true, y_pred), "rows": int(len(y_true)),
            "labels": {k: v for k, v in per_label.items() if k in set(names.tolist())}}


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
