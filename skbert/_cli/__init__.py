"""The ``skbert`` command line: fit, predict and evaluate on data files.

``skbert fit`` trains a `BertTextClassifier` on a CSV, TSV, Parquet or JSON Lines file
(whole, or streamed chunk by chunk with checkpoints), ``skbert predict`` writes
predictions of a saved model chunk by chunk, and ``skbert evaluate`` prints metrics.
With ``--label-sep`` a label column holds several labels per row ("joy|surprise"), and
the model is a multi-label one fitted with its label names (``label_names``); with
``--regression`` it holds numbers and the model is a `BertTextRegressor`.

This module assembles the parser from one module per command (`fit`, `predict`,
`evaluate`: each has ``add_parser`` and ``run``), and turns errors into one line and an
exit status. The commands share `options` (option types, the options of every command,
output), `data` (reading DATA, checking ``--out``), `models` (model files) and `params`
(every estimator parameter as a flag of ``fit``). They use skbert's public API and
`skbert._validation`, `skbert._io` and `skbert._checkpoint`. torch, transformers and
skops are imported inside the commands, so ``skbert --help`` starts fast. See
docs/cli.md.
"""

import argparse
import re
import sys
import warnings

from .. import __version__
from ..exceptions import TrainingInterrupted
from . import evaluate, fit, predict
from .options import PROG, CommandError, common_options

__all__ = ["CommandError", "build_parser", "main"]

COMMANDS = (fit, predict, evaluate)
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser():
    """The argument parser of ``skbert`` and its commands.

    Returns
    -------
    parser : argparse.ArgumentParser
    """
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Fine-tune BERT text classifiers and predict from CSV, TSV, Parquet "
        "or JSON Lines files.",
        epilog="Run 'skbert COMMAND --help' for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show the full traceback of an error")
    common = common_options()
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands, common)
    return parser


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
            warnings.filterwarnings("error", category=TrainingInterrupted)
            args.run(args)
    except (KeyboardInterrupt, TrainingInterrupted):
        print(f"{PROG}: interrupted; the output file was not written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _one_line(exc):
    message = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (CommandError, ValueError, TypeError, OSError, LookupError)):
        return message
    return f"{type(exc).__name__}: {message} (run with --debug for the traceback)"


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def _check_usage(parser, args):
    """Refuse option combinations that make no sense (exit status 2): column names under
    --no-header, and what the command checks itself."""
    if args.no_header:
        for option in ("text_column", "label_column", "id_column"):
            value = getattr(args, option, None)
            if value is None:
                continue
            if not re.fullmatch(r"\d+", value):
                flag = "--" + option.replace("_", "-")
                parser.error(f"--no-header gives columns by number, counted from 0: pass "
                             f"{flag} N (the first column is 0); got {flag} {value!r}")
            setattr(args, option, int(value))
    check = getattr(args, "check_usage", None)
    if check is not None:
        check(parser, args)
