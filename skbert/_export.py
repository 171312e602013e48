"""Export a fitted network to ONNX, with its tokenizer and classes, as one folder.

torch, transformers and the ONNX exporter (``onnx``, ``onnxscript``) are imported inside
the function. This module imports nothing from skbert but the folder helpers of
``_checkpoint`` (the folder is written through ``staged_folder``).
"""

import contextlib
import copy
import io
import json
import logging
import os
import warnings
from pathlib import Path

from ._checkpoint import check_replaceable, check_writable, staged_folder

ONNX_FILE = "model.onnx"
METADATA_FILE = "skbert_onnx.json"
# Loggers of the exporter and the libraries it calls, which log progress and notes such as
# "torchvision is not installed. Skipping torchvision::nms" at WARNING while exporting.
_EXPORTER_LOGGERS = ("torch.onnx", "torch.export", "torch._dynamo", "torch._export",
                     "torch.fx", "onnxscript", "onnx_ir")


def export_onnx(module, tokenizer, classes, path, *, text_pairs, max_length, truncation=None,
                opset=None):
    """Write ``module`` as an ONNX graph with dynamic batch and sequence axes.

    Parameters
    ----------
    module : TextClassifierModule
        The fitted network (exported from a CPU copy; left as it is).
    tokenizer : PreTrainedTokenizerFast
        Saved beside the graph so that the folder is all a serving process needs.
    classes : ndarray
        Label of each logit column, written to the metadata file.
    path : str or os.PathLike
        Folder to create. An existing one is replaced atomically once the new one is
        complete, if ``export_onnx`` wrote it (it holds ``skbert_onnx.json`` and
        ``model.onnx``) or it is empty.
    text_pairs : bool
        Whether the graph takes ``token_type_ids`` (models fitted on text pairs).
    max_length : int
        Truncation length used in training, written to the metadata file.
    truncation : dict or None
        How long texts were cut (``{"truncation": "head"}`` and the settings of the
        others), written to the metadata file.
    opset : int or None
        ONNX opset; None takes the exporter's default.

    Returns
    -------
    path : pathlib.Path
        The folder: ``model.onnx``, the tokenizer files and ``skbert_onnx.json``.

    Raises
    ------
    FileExistsError
        When ``path`` is a file, a link, a folder ``export_onnx`` did not write, or holds
        files it did not write (naming them); checked before exporting.
    OSError
        When writing fails (a full disk), naming ``path``; a folder there before is
        intact.
    """
    import torch

    labels = classes.tolist()
    try:
        json.dumps(labels)
    except TypeError as exc:
        raise TypeError(
            f"export_onnx writes classes_ to JSON, but {labels!r} is not JSON serialisable "
            f"({exc}). Fit with str or int labels to export."
        ) from None
    target = Path(path)
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if text_pairs else [])
    example = tokenizer(
        [["a b", "c"], ["d e f", "g h"]] if text_pairs else ["a b c", "d e"],
        padding=True, return_tensors="pt", return_token_type_ids=text_pairs,
    )
    example = {name: example[name] for name in names}
    batch, sequence = torch.export.Dim("batch"), torch.export.Dim("sequence")
    # A CPU copy: the fitted network may be predicting in another thread meanwhile.
    module = copy.deepcopy(module).cpu().eval()
    check_writable(target.parent, "export_onnx folder")
    check_replaceable(target, name="path", kind="onnx")  # before the export's work
    try:
        with staged_folder(target, name="path", kind="onnx") as staging:
            with _quiet_exporter(), torch.inference_mode(False):
                program = torch.onnx.export(
                    module, (), kwargs=example, dynamo=True, external_data=False,
                    input_names=names, output_names=["logits"], opset_version=opset,
                    dynamic_shapes={name: {0: batch, 1: sequence} for name in names},
                    verbose=False,
                )
                program.save(os.fspath(staging / ONNX_FILE))
            _drop_intermediate_shapes(staging / ONNX_FILE)
            tokenizer.save_pretrained(staging)
            metadata = {"format": "skbert-onnx-1", "classes": labels, "inputs": names,
                        "outputs": ["logits"], "max_length": max_length,
                        "text_pairs": text_pairs, **(truncation or {"truncation": "head"})}
            (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=2),
                                                 encoding="utf-8")
    except FileExistsError:
        raise  # a refusal of the path, which names it
    except OSError as exc:
        raise OSError(
            exc.errno,
            f"export_onnx could not write {os.fspath(target)!r} "
            f"({exc.strerror or exc}); a folder there before is intact and nothing "
            "was left behind. Free space or choose another path.",
        ) from exc
    return target


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the ONNX exporter while it runs: its warnings, its loggers (below ERROR)
    and what it prints to ``sys.stdout``; levels and filters are put back afterwards.

    ``export_onnx`` prints nothing (no printing except under ``verbose``, and it has
    none); an error still raises, with its message, and ERROR records still log.
    """
    loggers = [logging.getLogger(name) for name in _EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(max(logger.getEffectiveLevel(), logging.ERROR))
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")  # deprecation and tracing notes
            yield
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


def _drop_intermediate_shapes(path):
    """Remove the exporter's intermediate shape annotations from the graph at ``path``.

    Some are traced from the example batch and contradict shape inference, which makes
    ONNX Runtime's ``quantize_dynamic`` fail; runtimes infer them again anyway.
    """
    import onnx

    model = onnx.load(os.fspath(path))
    del model.graph.value_info[:]
    onnx.save(model, os.fspath(path))
