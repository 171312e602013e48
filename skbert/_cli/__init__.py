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
skops are imported inside the commands, and a command's module (with numpy,
scikit-learn and the estimators' flags) only when that command runs, so ``skbert
--help`` starts fast. See docs/cli.md.
"""

import argparse
import importlib
import re
import sys
import warnings

from .. import __version__
from ..exceptions import TrainingInterrupted
from .options import PROG, CommandError, common_options

__all__ = ["CommandError", "build_parser", "main"]

# Each command, in the order of the help, with its one-line help (what its module's
# ``add_parser`` says; tests/test_cli_main.py checks that they agree).
COMMANDS = {
    "fit": "train a model on a labelled file",
    "predict": "write predictions of a saved model",
    "evaluate": "print accuracy, macro-F1 and MCC of a model",
}
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def build_parser(command=None):
    """The argument parser of ``skbert`` and its commands.

    Parameters
    ----------
    command : str or None, default=None
        Build only this command's options (and import only its module); the others are
        listed with their help and no options. None builds every command's options.

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
    for name, summary in COMMANDS.items():
        if command is None or name == command:
            importlib.import_module(f"{__name__}.{name}").add_parser(commands, common)
        else:
            commands.add_parser(name, help=summary)
    return parser


def _command_of(argv):
    """The command ``argv`` names (its first word that is not an option), or None."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


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
    argv = sys.argv[1:] if argv is None else list(argv)
    command = _command_of(argv)
    # With no command (skbert --help, a typo) only the command names are needed.
    parser = build_parser(command) if command is not None else build_parser("")
    args = parser.parse_args(argv)
    _check_usage(parser, args)
    try:
        with warnings.catch_warnings():  # restores showwarning for callers of main()
            warnings.showwarning = _show_warning
            # fit and partial_fit raise KeyboardInterrupt after Ctrl-C; a trainer that
            # warns with this category instead and returns must stop the command too,
            # before a half-trained model is checkpointed or saved.
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
