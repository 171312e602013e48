"""The skbert command line as a program: version, help, usage errors (status 2), errors
on one line (status 1), Ctrl-C (status 130), and its parts (``--param`` values, typed
parameter flags, atomic writes). Commands run in a subprocess (``python -m skbert``) or
in-process through ``skbert._cli.main``, which runs the same parsing and exit statuses.
"""

import subprocess
import sys
from pathlib import Path

import pytest

import skbert
from skbert import BertTextClassifier
from skbert._checkpoint import atomic_write
from skbert._cli import CommandError, main
from skbert._cli.options import parse_param

from . import _cli_support
from ._cli_support import (
    param_args,
    run_cli,
    run_main,
    write_frame,
)

# The shared fixtures of the command-line tests.
model_path = _cli_support.model_path
test_frame = _cli_support.test_frame


# ------------------------------------------------------------ subprocess runs
def test_version_and_param_without_equals_is_a_usage_error(tmp_path):
    """Check --version, and that --param without '=' exits with argparse's status 2."""
    version = run_cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"skbert {skbert.__version__}"
    usage = run_cli("fit", tmp_path / "x.csv", "--out", tmp_path / "m.skops",
                    "--param", "learning_rate")
    assert usage.returncode == 2
    assert "expected NAME=VALUE, got 'learning_rate'" in usage.stderr


def test_console_script_runs():
    """Check that the installed `skbert` console script starts and lists the commands."""
    script = Path(sys.executable).parent / "skbert"
    if not script.exists():
        pytest.skip("the package is not installed with its console script (pip install -e .)")
    proc = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert all(command in proc.stdout for command in ("fit", "predict", "evaluate"))


def test_errors_are_one_line_unless_debug(tmp_path, test_frame):
    """Check a corrupt model: one line on stderr, status 1; --debug raises the error."""
    model = tmp_path / "broken.skops"
    model.write_bytes(b"not a zip file")
    data = write_frame(test_frame, tmp_path / "test.csv")
    proc = run_cli("predict", model, data, "--out", tmp_path / "p.csv")
    assert proc.returncode == 1
    assert proc.stderr.startswith("skbert: error: Cannot load model file")
    assert "corrupt" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    with pytest.raises(CommandError, match="Cannot load model file"):  # in-process
        main(["--debug", "predict", str(model), str(data), "--out", str(tmp_path / "p.csv")])
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    "args, match",
    [(["--checkpoint-dir", "ckpt"], "--checkpoint-dir streams the file and needs --chunksize"),
     (["--chunksize", "10", "--resume"], "--resume needs --checkpoint-dir"),
     (["--learning-rate", "fast"], "argument --learning-rate: 'fast' is not a valid "
                                   "learning_rate"),
     (["--pooling", "max"], "argument --pooling: invalid choice: 'max'"),
     (["--chunksize", "0"], "expected a positive integer, got '0'")],
)
def test_usage_errors_exit_2(args, match, tmp_path, capsys):
    """Check option combinations argparse refuses with status 2."""
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", str(tmp_path / "t.csv"), "--out", str(tmp_path / "m.skops"), *args])
    assert exit_info.value.code == 2
    assert match in capsys.readouterr().err


def test_keyboard_interrupt_exits_130(
    model_path, test_frame, tiny_params, tmp_path, capsys, monkeypatch
):
    """Check that Ctrl-C ends with status 130, a message, and no output file.

    During predict Ctrl-C raises KeyboardInterrupt. During fit a real SIGINT arrives
    mid-training: the estimator stops after the step in progress with a warning, which
    must not let a half-trained model be saved.
    """
    import signal

    import torch

    def interrupted_predict(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(BertTextClassifier, "predict_proba", interrupted_predict)
    data = write_frame(test_frame, tmp_path / "test.csv")
    status, _, err = run_main(capsys, "predict", model_path, data, "--out", tmp_path / "p.csv")
    assert status == 130 and "interrupted" in err

    steps = []

    def ctrl_c_in_second_step(module, inputs, output):  # Ctrl-C pressed during step 2
        if type(module).__name__ == "BertModel" and module.training:
            steps.append(len(steps) + 1)
            if len(steps) == 2:
                signal.raise_signal(signal.SIGINT)

    hook = torch.nn.modules.module.register_module_forward_hook(ctrl_c_in_second_step)
    try:
        status, _, err = run_main(capsys, "fit", data, "--out", tmp_path / "m.skops",
                                  *param_args(dict(tiny_params, max_iter=3)))
    finally:
        hook.remove()
    assert status == 130 and "interrupted; the output file was not written" in err
    assert len(steps) == 2  # it stopped after the step in progress, of 3 epochs x 4 batches
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv"]


def test_parse_param_values():
    """Check literal values, strings kept as strings, and '=' inside the value."""
    assert parse_param("learning_rate=3e-5") == ("learning_rate", 3e-5)
    assert parse_param("head=(256,)") == ("head", (256,))
    assert parse_param("head_dropout=None") == ("head_dropout", None)
    assert parse_param("device=cuda:0") == ("device", "cuda:0")
    assert parse_param("model_name_or_path=a=b") == ("model_name_or_path", "a=b")


def test_atomic_write_keeps_previous_file_on_failure(tmp_path):
    """Check that a failed write leaves the old file and no temp; a good one replaces it."""
    target = tmp_path / "model.skops"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
    with atomic_write(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".model.skops.")
        tmp.write_text("new")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_fit_help_lists_typed_parameter_flags(capsys):
    """Check that every estimator parameter is a typed flag with its default and the
    first sentence of its numpydoc description, generated so they cannot drift."""
    import inspect

    from skbert._cli.params import OWN_FLAGS, docstring_parameters

    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--learning-rate FLOAT Peak learning rate of AdamW. (default: 5e-05)" in out
    assert "--max-iter INT, --epochs INT Number of epochs" in out
    assert "--pooling {cls,mean,pooler}" in out and "--early-stopping, --no-early-stopping" in out
    assert "--head-dropout FLOAT" in out and "--random-state INT" in out
    docs = docstring_parameters(BertTextClassifier)
    for name in inspect.signature(BertTextClassifier).parameters:
        assert name in docs, f"{name} has no numpydoc entry"
        if name not in OWN_FLAGS:
            assert f"--{name.replace('_', '-')}" in out, name


@pytest.mark.parametrize("category, message, status", [
    ("TrainingInterrupted", "Stopped, reworded.", 130),
    ("UserWarning", "Training interrupted by user after epoch 1; the estimator keeps the "
                    "weights of the last completed step.", 0),
])
def test_interruption_is_told_by_its_warning_category(category, message, status, tmp_path,
                                                     capsys, monkeypatch):
    """Check that fit's interruption is recognised by the warning category
    TrainingInterrupted whatever its text (status 130, no model saved), and that a
    UserWarning with the old text is a warning like any other (the model is saved)."""
    import warnings

    import numpy as np

    from skbert._cli import fit as fit_command
    from skbert.exceptions import TrainingInterrupted

    kind = {"TrainingInterrupted": TrainingInterrupted, "UserWarning": UserWarning}[category]

    def fit_warning(self, X, y, sample_weight=None, **fit_params):
        self.classes_ = np.array([0, 1])
        warnings.warn(message, kind, stacklevel=2)
        return self

    saved = []
    monkeypatch.setattr(BertTextClassifier, "fit", fit_warning)
    monkeypatch.setattr(fit_command, "save_model", lambda model, path: saved.append(path))
    data = tmp_path / "t.csv"
    data.write_text("text,label\na,0\nb,1\n")
    got, _, err = run_main(capsys, "fit", data, "--out", tmp_path / "m.skops")
    assert got == status, err
    if status == 130:
        assert "interrupted; the output file was not written" in err and saved == []
    else:
        assert f"warning: {message}" in err and len(saved) == 1


def test_wings_use_no_private_api():
    """Check that the command line and skbert.dask read no private attribute of an
    estimator, call no private scikit-learn function and import no private skbert module
    but _validation, _io and _checkpoint (and _batching's count_batches, the one batch
    count)."""
    import re

    import skbert._cli

    root = Path(skbert._cli.__file__).parent
    sources = [*sorted(root.glob("*.py")), root.parent / "dask.py"]
    allowed = {"_validation", "_io", "_checkpoint", "_batching"}
    for path in sources:
        text = path.read_text(encoding="utf-8")
        for module in re.findall(r"from \.\.?(_\w+)|import skbert\.(_\w+)", text):
            name = module[0] or module[1]
            assert name in allowed or name == "_cli", f"{path.name} imports {name}"
        assert "sklearn.utils._" not in text and "_validate_params" not in text, path.name
        # attribute reads such as model._trainer or clf._parameter_constraints.
        private = set(re.findall(r"\b(?!skbert\b)[a-z]\w*\.(_[a-z]\w*)", text))
        assert not private, f"{path.name} reads {sorted(private)}"
        assert not re.search(r"\b(model|clf|estimator)\.\w+_ = ", text), path.name


@pytest.mark.any_precision
def test_help_lists_the_commands_without_importing_them(capsys):
    """Check that `skbert --help` lists each command with its module's help line, and
    builds (imports) no command's module: only the command that runs is built."""
    import argparse

    from skbert._cli import COMMANDS, build_parser

    full = build_parser()
    choices = next(a for a in full._actions if isinstance(a, argparse._SubParsersAction))
    assert {c.dest: c.help for c in choices._choices_actions} == COMMANDS
    code = ("import sys; from skbert._cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in sys.modules if m.startswith('skbert._cli.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert "fit       train a model on a labelled file" in out
    assert out.strip().splitlines()[-1] == "['skbert._cli.options']"
