"""``skbert predict``: write the predictions of a saved model for the texts of a data
file, chunk by chunk, with ids and probabilities (a column per label of a multi-label
model, or one cell of the predicted labels)."""

import os
from typing import NamedTuple

import numpy as np

from .._io import output_format, write_frames
from . import data as files
from .models import (
    apply_overrides,
    final_estimator,
    is_regressor,
    load_model,
    model_label_names,
    multilabel_predict,
    prediction_sep,
    without_own_bars,
)
from .options import CommandError, add_inference_options, add_label_sep, note, progress


def add_parser(commands, common):
    """Add the ``predict`` command to the subparsers ``commands``."""
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
    add_label_sep(predict, "multi-label model: join the predicted labels with SEP "
                  "(default: '|', or the separator a model of an earlier skbert kept)")
    add_inference_options(predict)
    predict.set_defaults(run=run)
    return predict


class Output(NamedTuple):
    """What ``skbert predict`` writes, besides the predictions."""

    id_column: object = None  # copied to the output; None writes row numbers
    proba: bool = False  # a probability column per class or label
    label_sep: str = None  # multi-label: joins the predicted labels
    multilabel_output: str = None  # multi-label: "list" or "indicator"


class _Multilabel(NamedTuple):
    """The predictions of a multi-label model as written."""

    names: np.ndarray  # the label names, in the order of the model's label columns
    sep: str  # joins the predicted names in the 'prediction' column
    indicator: bool  # a 0/1 prediction_<name> column per label instead


def run(args):
    """Run ``skbert predict`` with the parsed command line ``args``."""
    data = files.DataFile(args.data, args.text_column, args.encoding, args.sep,
                          not args.no_header, args.data_format)
    output = Output(args.id_column, args.proba, args.label_sep, args.multilabel_output)
    predict(args.model, data, args.out, output, chunksize=args.chunksize,
            device=args.device, inference_backend=args.inference_backend, quiet=args.quiet)


def predict(model_path, data, out, output, *, chunksize, device=None,
            inference_backend=None, quiet=False):
    """Write the predictions of the model at ``model_path`` for ``data`` to ``out``."""
    import pandas as pd

    from .._checkpoint import atomic_write

    fmt, gzipped = output_format(out)
    files.check_out(out, data.path)
    files.check_data(data)
    extra = [] if output.id_column is None else [output.id_column]
    files.check_first_chunk(data, None, chunksize, extra)
    model = load_model(model_path)
    apply_overrides(model, device, inference_backend)
    without_own_bars(model)
    if is_regressor(model):
        for flag, value in (("--proba", output.proba or None), ("--label-sep", output.label_sep),
                            ("--multilabel-output", output.multilabel_output)):
            if value is not None:
                raise CommandError(f"{flag} applies to classifiers; "
                                   f"{os.fspath(model_path)!r} is a regressor. Drop {flag}.")
        multilabel = None
    else:
        multilabel = _multilabel_options(model, model_path, output)
    total = None if quiet else files.count_rows(data)
    frames = _prediction_frames(model, data, output, multilabel, chunksize, quiet, total, pd)
    try:
        with atomic_write(out) as tmp:
            n_rows = write_frames(frames, tmp, fmt, gzipped)
    except OSError as exc:  # reading DATA raises CommandError: this is --out
        raise files.out_error(out, exc) from exc
    note(quiet, f"wrote {n_rows} predictions to {out}")


def _multilabel_options(model, model_path, output):
    """How to write the predictions of a multi-label model (None for another model);
    --label-sep and --multilabel-output are refused for a model of one class per text."""
    names = model_label_names(model)
    if names is None:
        for flag, value in (("--label-sep", output.label_sep),
                            ("--multilabel-output", output.multilabel_output)):
            if value is not None:
                raise CommandError(
                    f"{flag} applies to multi-label models, but {os.fspath(model_path)!r} "
                    f"predicts one class per text (classes {model.classes_.tolist()!r}). "
                    f"Drop {flag}."
                )
        return None
    indicator = output.multilabel_output == "indicator"
    if indicator and output.label_sep is not None:
        raise CommandError(
            "--label-sep joins the labels of the 'prediction' column of --multilabel-output "
            "list; --multilabel-output indicator writes a 0/1 column per label instead. "
            "Drop one of the two."
        )
    return _Multilabel(names, prediction_sep(model, output.label_sep), indicator)


def _id_name(id_column):
    """The output's first column: the --id-column name ("id" for a column number)."""
    if id_column is None:
        return "row"
    return "id" if isinstance(id_column, int) else id_column


def _prediction_columns(model, output, multilabel):
    """The output's columns: id, the prediction(s), and the probabilities."""
    columns = [_id_name(output.id_column)]
    if is_regressor(model):
        outputs = final_estimator(model).n_outputs_
        return columns + (["prediction"] if outputs == 1
                          else [f"prediction_{j}" for j in range(outputs)])
    if multilabel is None:
        names = model.classes_
        columns.append("prediction")
    else:
        names = multilabel.names
        columns += ([f"prediction_{n}" for n in names] if multilabel.indicator
                    else ["prediction"])
    if output.proba:
        columns += [f"proba_{n}" for n in names]
    return columns


def _prediction_frames(model, data, output, multilabel, chunksize, quiet, total, pd):
    """Yield the output table chunk by chunk: id, prediction and probabilities."""
    columns = _prediction_columns(model, output, multilabel)
    extra = [] if output.id_column is None else [output.id_column]
    offset = 0
    with progress(quiet, total, desc="predict") as bar:
        for frame in files.frames(data, None, chunksize, extra):
            if len(frame):
                texts = files.texts(frame, data, offset)
                if output.id_column is not None:
                    ids = frame[output.id_column].to_numpy()
                else:
                    ids = np.arange(offset, offset + len(texts))
                if multilabel is None:
                    out = _predict_chunk(model, texts, ids, columns, output.proba)
                else:
                    out = _predict_multilabel_chunk(model, texts, ids, columns[0],
                                                    multilabel, output.proba)
                yield pd.DataFrame(out, columns=columns)
                offset += len(frame)
                bar.update(len(frame))
    if offset == 0:
        yield pd.DataFrame(columns=columns)


def _predict_chunk(model, texts, ids, columns, proba):
    """The output columns of one chunk, as a dict of arrays."""
    if is_regressor(model):
        predicted = np.asarray(model.predict(texts)).reshape(len(texts), -1)
        return {columns[0]: ids, **{name: predicted[:, j]
                                    for j, name in enumerate(columns[1:])}}
    probabilities = model.predict_proba(texts)
    out = {columns[0]: ids, "prediction": model.classes_[probabilities.argmax(axis=1)]}
    if proba:
        out.update({name: probabilities[:, j] for j, name in enumerate(columns[2:])})
    return out


def _predict_multilabel_chunk(model, texts, ids, id_name, multilabel, proba):
    """The output columns of one chunk of a multi-label model, as a dict of arrays."""
    predicted, probabilities = multilabel_predict(model, texts)
    out = {id_name: ids}
    names = multilabel.names
    if multilabel.indicator:
        out.update({f"prediction_{n}": predicted[:, j] for j, n in enumerate(names)})
    else:
        out["prediction"] = [multilabel.sep.join(names[row.astype(bool)]) for row in predicted]
    if proba:
        out.update({f"proba_{n}": probabilities[:, j] for j, n in enumerate(names)})
    return out
