"""What the commands share: the error of one line, option types, the options every
command has, and the output of a run (notes, bars of rows, the estimator's verbosity)."""

import argparse
import ast
import contextlib
import sys

PROG = "skbert"
DEFAULT_CHUNKSIZE = 10_000
DEFAULT_LABEL_SEP = "|"  # joins the predicted labels of a multi-label model


class CommandError(Exception):
    """An error the command line reports as one line, without a traceback."""


# ------------------------------------------------------------------ option types
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


def positive_int(text):
    """An option's positive integer."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def separator(text):
    """The --sep character; "\\t" and "tab" mean a tab."""
    return "\t" if text in ("\\t", "tab") else text


def label_separator(text):
    """The --label-sep string: not empty; "\\t" and "tab" mean a tab."""
    if text == "":
        raise argparse.ArgumentTypeError(
            "the separator of the labels in a cell must not be empty; for example "
            "--label-sep '|' for cells such as 'joy|surprise'"
        )
    return separator(text)


# ----------------------------------------------------------------------- options
def common_options():
    """The parent parser of the options of every command: columns, reading, output."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--text-column", default="text", metavar="NAME",
                        help="column of the texts (default: %(default)s); with --no-header "
                        "its number, counted from 0")
    common.add_argument("--encoding", metavar="CODEC",
                        help="text encoding of DATA, e.g. cp1252, latin-1, utf-16 (default: "
                        "utf-8; a UTF-8 or UTF-16 byte order mark is read in any case)")
    common.add_argument("--sep", type=separator, metavar="CHAR",
                        help="field separator of a CSV or TSV DATA, e.g. ';' or '\\t' "
                        "(default: ',' for CSV, a tab for TSV)")
    common.add_argument("--no-header", action="store_true",
                        help="the first line of a CSV or TSV DATA is a row, not column names: "
                        "give columns by number, counted from 0 (--text-column 3)")
    common.add_argument("--data-format", choices=("csv", "tsv", "parquet", "jsonl"),
                        help="format of DATA when its extension does not tell it")
    common.add_argument("--quiet", action="store_true",
                        help="no progress bar or summary on stderr")
    # SUPPRESS: a subcommand's default must not overwrite "skbert --debug COMMAND".
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    return common


def add_label_sep(command, help_text):
    """Add ``--label-sep SEP`` (multi-label cells) to ``command``."""
    command.add_argument("--label-sep", type=label_separator, metavar="SEP", help=help_text)


def add_inference_options(command):
    """Add the options of a command that predicts: --chunksize, --device and
    --inference-backend."""
    command.add_argument("--chunksize", type=positive_int, default=DEFAULT_CHUNKSIZE,
                         metavar="N", help="rows read and predicted at a time "
                         "(default: %(default)s)")
    command.add_argument("--device", metavar="DEVICE",
                         help="override the model's device: cpu, cuda, cuda:1, mps, auto")
    command.add_argument("--inference-backend", choices=("auto", "torch", "openvino"),
                         help="override what runs the model: auto times the installed paths "
                         "on a large input and keeps the fastest with fp32's answers; openvino "
                         "compiles it for this CPU (needs the openvino package)")


# ------------------------------------------------------------------------ output
def note(quiet, message):
    """Print ``skbert: message`` on stderr, unless ``quiet``."""
    if not quiet:
        print(f"{PROG}: {message}", file=sys.stderr)


@contextlib.contextmanager
def progress(quiet, total, initial=0, desc=None):
    """A bar of rows on stderr, none when ``quiet``.

    ``total`` may be an estimate (`skbert._cli.data.count_rows`): a bar that completes
    at another count takes that count as its total, so that it ends full.
    """
    from tqdm import tqdm

    with tqdm(total=total, initial=initial, desc=desc, unit=" rows", file=sys.stderr,
              disable=quiet, dynamic_ncols=True) as bar:
        yield bar
        if not bar.disable and bar.total is not None and bar.n != bar.total:
            bar.total = bar.n
            bar.refresh()


@contextlib.contextmanager
def training_output(model, verbose):
    """Train ``model`` with ``verbose`` shown, its bars and epoch lines on stderr (stdout
    is for results); the model keeps its own ``verbose`` afterwards."""
    saved = model.verbose
    model.set_params(verbose=verbose)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        model.set_params(verbose=saved)
