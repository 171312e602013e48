"""An estimator's parameters as typed command-line flags, made from what its constraints
accept (`skbert._validation.parameter_kinds`), its signature and its numpydoc docstring,
so that the flags cannot drift from the estimator: ``--learning-rate FLOAT (default:
5e-05)``.

Also the suggestions for a parameter name that does not exist, including the names other
libraries use for the same thing (``lr``, ``epochs``, ``num_train_epochs``, ``seed``,
``warmup_ratio``), and the estimator built from the flags, its values checked before any
data is read.
"""

import argparse
import ast
import difflib
import inspect
import re

from .._validation import check_params, parameter_kinds
from .options import CommandError

# Names that users of Hugging Face, Keras, PyTorch Lightning and skorch type for a
# parameter of skbert's estimators.
ALIASES = {
    "lr": "learning_rate", "learningrate": "learning_rate",
    "epochs": "max_iter", "num_train_epochs": "max_iter", "n_epochs": "max_iter",
    "num_epochs": "max_iter", "max_epochs": "max_iter", "iterations": "max_iter",
    "seed": "random_state", "random_seed": "random_state",
    "warmup_ratio": "warmup_fraction", "warmup": "warmup_fraction",
    "per_device_train_batch_size": "batch_size", "train_batch_size": "batch_size",
    "max_seq_length": "max_length", "max_len": "max_length", "maxlen": "max_length",
    "model": "model_name_or_path", "model_name": "model_name_or_path",
    "pretrained_model_name_or_path": "model_name_or_path",
    "early_stopping_patience": "n_iter_no_change", "patience": "n_iter_no_change",
    "dropout": "head_dropout", "classifier_dropout": "head_dropout",
    "gradient_clip_val": "max_grad_norm", "clipnorm": "max_grad_norm",
    "validation_split": "validation_fraction",
    "bf16": "training_dtype", "fp16": "training_dtype", "precision": "training_dtype",
    "warmup_steps": "warmup_fraction", "max_train_steps": "max_steps",
    "truncation_side": "truncation", "stride": "window_stride",
}
# Parameters the command line sets with flags of its own (same meaning).
OWN_FLAGS = {"checkpoint_dir", "checkpoint_every"}


def suggestion(name, known):
    """What to say about an unknown parameter ``name``: the alias it stands for, or the
    closest known name, or nothing."""
    key = name.lower().replace("-", "_")
    if ALIASES.get(key) in known:
        return f"did you mean {ALIASES[key]!r} (what {name!r} is called elsewhere)? "
    if key in known:
        return f"did you mean {key!r}? "
    close = difflib.get_close_matches(key, known, n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def docstring_parameters(cls):
    """The numpydoc ``Parameters`` of ``cls``: name -> (type line, description)."""
    doc = inspect.getdoc(cls) or ""
    match = re.search(r"^Parameters\n-+\n(.*?)(?:^\S[^\n]*\n-+\n|\Z)", doc, re.M | re.S)
    params, name = {}, None
    for line in (match.group(1) if match else "").splitlines():
        head = re.match(r"^(\w+) : (.*)$", line)
        if head:
            name = head.group(1)
            params[name] = [head.group(2).strip(), []]
        elif name is not None and line.startswith("    "):
            params[name][1].append(line.strip())
    return {k: (t, " ".join(d)) for k, (t, d) in params.items()}


def first_sentence(text):
    """The first sentence of ``text`` (up to ". "), for a flag's help."""
    match = re.match(r"(.+?\.)(\s|$)", text)
    return match.group(1) if match else text


def _none(text):
    return text.strip().lower() in ("none", "null")


# The words a flag of a parameter that takes a bool besides other values (``--few-shot
# true``) reads as True and False.
_BOOLEANS = {"true": True, "yes": True, "on": True, "false": False, "no": False,
             "off": False}


def converter(name, kinds, accepts_none):
    """A function turning a flag's text into a value the parameter may accept, with
    a metavar; scikit-learn's validation checks the rest. A parameter that takes a bool
    besides other values (``few_shot``: "auto" or a bool) reads true/false, yes/no and
    on/off (any case) as the bool.

    ``kinds`` and ``accepts_none`` are as `parameter_kinds` gives them.
    """

    def convert(text):
        if accepts_none and _none(text):
            return None
        if "boolean" in kinds and text.strip().lower() in _BOOLEANS:
            return _BOOLEANS[text.strip().lower()]
        for kind in kinds:
            try:
                if kind == "int":
                    return int(text)
                if kind == "float":
                    value = float(text)
                    return int(value) if "int" in kinds and value.is_integer() else value
                if kind == "tuple":
                    value = ast.literal_eval(text if "," in text or "(" in text
                                             else f"({text},)")
                    return tuple(value) if isinstance(value, (tuple, list)) else (value,)
                if kind in ("choice", "str"):
                    return text
            except (ValueError, SyntaxError):
                continue
        raise argparse.ArgumentTypeError(f"{text!r} is not a valid {name}")

    metavar = ("INT" if kinds[:1] == ["int"] else "FLOAT" if kinds[:1] == ["float"]
               else "SIZES" if "tuple" in kinds
               else "TEXT|true|false" if "boolean" in kinds else "TEXT")
    return convert, metavar


def add_parameter_flags(parser, cls, aliases=None, skip=()):
    """Add a flag per parameter of ``cls`` (not in ``OWN_FLAGS``) to an argument group of
    ``parser``; only flags given on the command line set a value (dest ``param:NAME``).

    Parameters
    ----------
    parser : argparse.ArgumentParser
    cls : type
        A scikit-learn estimator class with a numpydoc docstring.
    aliases : dict of str to list of str, default=None
        Extra flag spellings of a parameter, such as ``{"max_iter": ["--epochs"]}``.
    skip : collection of str, default=()
        Parameters that have flags already (another estimator's group).
    """
    docs = docstring_parameters(cls)
    defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
    accepted = parameter_kinds(cls)
    group = parser.add_argument_group(
        f"{cls.__name__} parameters" + (" (with --regression)" if skip else ""),
        "Each flag sets the estimator parameter of the same name (see the API reference); "
        "--param NAME=VALUE sets any of them too." if not skip else None)
    for name, (kinds, choices, accepts_none, n_constraints) in accepted.items():
        if name in OWN_FLAGS or name in skip:
            continue
        _, description = docs.get(name, ("", ""))
        default = defaults.get(name)
        flags = [f"--{name.replace('_', '-')}", *(aliases or {}).get(name, [])]
        help_text = f"{first_sentence(description)} (default: {default!r})".replace("%", "%%")
        if kinds == ["boolean"] and n_constraints == 1:
            group.add_argument(*flags, dest=f"param:{name}", default=argparse.SUPPRESS,
                               action=argparse.BooleanOptionalAction, help=help_text)
            continue
        convert, metavar = converter(name, kinds, accepts_none)
        only = choices if choices is not None and n_constraints == 1 else None
        if only is not None:  # these strings and nothing else: argparse checks them
            metavar = "{" + ",".join(only) + "}"
        group.add_argument(*flags, dest=f"param:{name}", default=argparse.SUPPRESS,
                           type=convert, metavar=metavar, choices=only, help=help_text)


def flag_values(args):
    """The estimator parameters set by flags of ``add_parameter_flags`` in the parsed
    command line ``args``."""
    return {k.split(":", 1)[1]: v for k, v in vars(args).items() if k.startswith("param:")}


def merge_params(params, flags):
    """The parameters of ``--param`` (a list of ``(name, value)``) and of the parameter
    flags (a dict) together; both at once must agree."""
    merged = dict(params)
    for name, value in flags.items():
        if name in merged and merged[name] != value:
            raise CommandError(
                f"--{name.replace('_', '-')} {value!r} and --param {name}={merged[name]!r} "
                "disagree; give one of them."
            )
        merged[name] = value
    return merged


def check_param_names(params, known, kind="BertTextClassifier"):
    """Refuse a parameter name not in ``known``, suggesting the closest."""
    for name in params:
        if name not in known:
            hint = suggestion(name, known)
            listed = "" if hint else (f"{kind}'s parameters are: {', '.join(known)}. ")
            raise CommandError(
                f"Unknown parameter {name!r} in --param {name}=...; {hint}{listed}"
                "'skbert fit --help' lists each with its type and default."
            )


def make_estimator(cls, params, **options):
    """``cls(**params, **options)`` (options that are not None), its parameter names and
    values checked before any data is read."""
    check_param_names(params, cls().get_params(), cls.__name__)
    params = dict(params, **{k: v for k, v in options.items() if v is not None})
    model = cls(**params)
    try:
        check_params(model)
    except ValueError as exc:
        raise CommandError(f"Bad --param value: {exc}") from exc
    return model
