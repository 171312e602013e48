"""``skbert evaluate``: score a saved model on a labelled data file, chunk by chunk:
accuracy, macro-F1 and MCC of a classifier, micro-, macro- and samples-F1 of a
multi-label one, R² and correlations of a regressor; as text or JSON."""

import json
import os
import warnings

import numpy as np

from . import data as files
from .models import (
    apply_overrides,
    final_estimator,
    is_regressor,
    load_model,
    model_label_names,
    model_label_sep,
    multilabel_predict,
    without_own_bars,
)
from .options import CommandError, add_inference_options, add_label_sep, progress


def add_parser(commands, common):
    """Add the ``evaluate`` command to the subparsers ``commands``."""
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
    add_label_sep(evaluate, "multi-label model: each label cell holds several labels "
                  "separated by SEP; prints micro-, macro- and samples-F1 and subset "
                  "accuracy")
    evaluate.add_argument("--json", action="store_true",
                          help="print the scores (and each class's) as one JSON object")
    add_inference_options(evaluate)
    evaluate.set_defaults(run=run)
    return evaluate


def run(args):
    """Run ``skbert evaluate`` with the parsed command line ``args``."""
    data = files.DataFile(args.data, args.text_column, args.encoding, args.sep,
                          not args.no_header, args.data_format)
    labels = files.LabelColumn(args.label_column, args.label_sep)
    print(evaluate(args.model, data, labels, chunksize=args.chunksize, device=args.device,
                   inference_backend=args.inference_backend, quiet=args.quiet,
                   as_json=args.json))


def evaluate(model_path, data, labels, *, chunksize, device=None, inference_backend=None,
             quiet=False, as_json=False):
    """The scores of the model at ``model_path`` on ``data``, as printed text or JSON."""
    files.check_data(data)
    files.check_first_chunk(data, labels, chunksize)
    model = load_model(model_path)
    apply_overrides(model, device, inference_backend)
    without_own_bars(model)
    total = None if quiet else files.count_rows(data)
    if is_regressor(model):
        scores = _evaluate_regression(model, model_path, data, labels, chunksize, quiet, total)
        return json.dumps(scores) if as_json else "\n".join(
            f"{k + ':':<9} {v:.4f}" if isinstance(v, float) else f"{k + ':':<9} {v}"
            for k, v in scores.items())
    names = model_label_names(model)
    if (names is None) != (labels.sep is None):
        raise CommandError(_label_sep_error(model, model_path, names, labels))
    if names is not None:
        y_true, y_pred = _evaluate_multilabel(model, data, labels, names, chunksize, quiet,
                                              total)
        return (json.dumps(multilabel_scores(y_true, y_pred, names)) if as_json
                else multilabel_report(y_true, y_pred, names))
    classes = model.classes_
    y_true, y_pred = [], []
    with progress(quiet, total, desc="evaluate") as bar:
        for texts, chunk in files.labelled_chunks(data, labels, chunksize):
            y_true.append(files.align_labels(chunk, classes, labels.column, data.path))
            y_pred.append(classes[model.predict_proba(texts).argmax(axis=1)])
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(data.path)!r}.")
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    predicted = np.unique(y_pred)
    if len(predicted) == 1 and len(classes) > 1:
        warnings.warn(
            f"the model predicts {predicted.tolist()[0]!r} for every one of the "
            f"{len(y_pred)} rows: it has not learned to tell the classes apart (MCC is 0). "
            "Train longer, on more (shuffled) data, or with another learning_rate.",
            UserWarning, stacklevel=2)
    return (json.dumps(evaluation_scores(y_true, y_pred)) if as_json
            else evaluation_report(y_true, y_pred))


def _evaluate_regression(model, model_path, data, labels, chunksize, quiet, total):
    """R², mean absolute error, root mean squared error, Pearson and Spearman
    correlations (averaged over the outputs) and the row count of a regressor."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

    if labels.sep is not None:
        raise CommandError(f"--label-sep applies to classifiers; {os.fspath(model_path)!r} "
                           "is a regressor. Drop --label-sep.")
    outputs = final_estimator(model).n_outputs_
    if outputs != 1:
        raise CommandError(f"evaluate reads one target column, but {os.fspath(model_path)!r} "
                           f"predicts {outputs} outputs; score it in Python.")
    targets = files.LabelColumn(labels.column, regression=True)  # numbers
    y_true, y_pred = [], []
    with progress(quiet, total, desc="evaluate") as bar:
        for texts, chunk in files.labelled_chunks(data, targets, chunksize):
            y_true.append(chunk)
            y_pred.append(np.asarray(model.predict(texts)).reshape(len(texts), -1)[:, 0])
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(data.path)!r}.")
    y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
    return {"R2": float(r2_score(y_true, y_pred)),
            "MAE": float(mean_absolute_error(y_true, y_pred)),
            "RMSE": float(np.sqrt(mean_squared_error(y_true, y_pred))),
            "Pearson": float(pearsonr(y_true, y_pred)[0]),
            "Spearman": float(spearmanr(y_true, y_pred)[0]), "rows": int(len(y_true))}


def _label_sep_error(model, model_path, names, labels):
    """The message for --label-sep missing with a multi-label model, or given with one
    of one class per text."""
    where = repr(os.fspath(model_path))
    if names is None:
        return (f"--label-sep applies to multi-label models, but {where} predicts one class "
                f"per text (classes {model.classes_.tolist()!r}). Drop --label-sep.")
    sep = model_label_sep(model)
    trained = f" (it was trained with --label-sep {sep!r})" if sep else ""
    return (f"{where} is a multi-label model (labels {names.tolist()!r}): pass --label-sep "
            f"SEP, the separator of the labels in column {labels.column!r}{trained}.")


def _evaluate_multilabel(model, data, labels, names, chunksize, quiet, total):
    """Predict DATA chunk by chunk; return the true and predicted indicator matrices."""
    known = set(names.tolist())
    y_true, y_pred, offset = [], [], 0
    with progress(quiet, total, desc="evaluate") as bar:
        for texts, rows in files.labelled_chunks(data, labels, chunksize):
            unknown = sorted({name for row in rows for name in row} - known)
            if unknown:
                first = offset + next(i for i, row in enumerate(rows) if set(row) - known)
                raise CommandError(
                    f"Column {labels.column!r} of {os.fspath(data.path)!r} holds labels "
                    f"the model does not know: {', '.join(map(repr, unknown[:5]))}"
                    f"{' ...' if len(unknown) > 5 else ''} (first in row {first}, 0-based); "
                    f"its labels are {names.tolist()!r}. Check --label-column and "
                    f"--label-sep {labels.sep!r}, or drop those labels."
                )
            y_true.append(files.indicator_matrix(rows, names))
            y_pred.append(multilabel_predict(model, texts)[0])
            offset += len(texts)
            bar.update(len(texts))
    if not y_true:
        raise CommandError(f"No rows to evaluate in {os.fspath(data.path)!r}.")
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
