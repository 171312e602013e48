"""The data files of the commands: reading DATA chunk by chunk with its checks (texts,
labels, multi-label cells, targets), counting its rows, and checking ``--out``.

Every function takes values (a `DataFile`, a `LabelColumn`, paths), not the parsed
command line.
"""

import codecs
import os
import re
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .._io import check_file, file_format, open_binary, read_frames, resolve_encoding
from .._validation import check_text, is_missing
from .options import CommandError

COUNT_BLOCK = 1 << 20  # bytes read at a time to count the lines of DATA
# How the messages of skbert._io name its options on the command line.
FLAG_NAMES = {"data_format": "--data-format", "encoding": "--encoding", "sep": "--sep",
              "header": "--no-header", "text_column": "--text-column",
              "columns": "--text-column / --label-column / --id-column"}


class DataFile(NamedTuple):
    """DATA and how to read it."""

    path: str
    text_column: object = "text"  # a name, or a number under --no-header
    encoding: str = None
    sep: str = None
    header: bool = True
    data_format: str = None


class LabelColumn(NamedTuple):
    """The column of the labels and how to read its cells."""

    column: object = "label"
    sep: str = None  # multi-label: several labels per cell, separated by sep
    regression: bool = False  # a number per cell


def _rows(path):
    """Where a row's number counts from, for messages."""
    return f"of {os.fspath(path)!r} (0-based, header not counted)"


# ---------------------------------------------------------------------- reading
def frames(data, label_column, chunksize, extra=()):
    """`skbert._io.read_frames` of ``data``; an OSError while reading names the file
    (and is not taken for a failure to write --out)."""
    try:
        yield from read_frames(data.path, data.text_column, label_column, chunksize, extra,
                               encoding=data.encoding, sep=data.sep, header=data.header,
                               data_format=data.data_format, names=FLAG_NAMES)
    except OSError as exc:
        raise CommandError(f"Cannot read {os.fspath(data.path)!r}: {exc}") from exc


def check_data(data):
    """Fail early on an unknown extension or a missing or empty file."""
    try:
        check_file(data.path, data.data_format, names=FLAG_NAMES)
    except FileNotFoundError as exc:
        raise CommandError(str(exc)) from None


def check_first_chunk(data, labels, chunksize, extra=()):
    """Read and check the first chunk of ``data`` (columns, encoding, texts and
    ``labels``, or None), so that a wrong option is reported before a model is loaded or
    trained."""
    chunks = frames(data, None if labels is None else labels.column, chunksize, extra)
    try:
        frame = next(chunks, None)
    finally:
        chunks.close()
    if frame is not None:
        texts(frame, data, 0)
        if labels is not None:
            chunk_labels(frame, data, labels, 0)


def labelled_chunks(data, labels, chunksize):
    """Yield validated ``(texts, labels)`` chunks of ``data``; for a multi-label column
    the labels are a list of tuples of label names, one per row."""
    offset = 0
    for frame in frames(data, labels.column, chunksize):
        if len(frame):
            yield texts(frame, data, offset), chunk_labels(frame, data, labels, offset)
        offset += len(frame)


def texts(frame, data, offset):
    """The texts of ``frame`` as a list; a missing or non-text value names its row."""
    where = f"row {{index}} {_rows(data.path)}, column {data.text_column!r}"
    where = where.replace("{", "{{").replace("}", "}}").replace("{{index}}", "{index}")
    return [check_text(text, offset + i, where=where)
            for i, text in enumerate(frame[data.text_column].tolist())]


def chunk_labels(frame, data, labels, offset):
    """The labels of one chunk: an array, float targets (regression), or for a
    multi-label column the label names of each row."""
    if labels.regression:
        return targets(frame, labels.column, data.path, offset)
    if labels.sep is None:
        return class_labels(frame, labels.column, data.path, offset)
    delimited = file_format(data.path, data.data_format) in ("csv", "tsv")
    return label_lists(frame, labels.column, data.path, offset, labels.sep,
                       empty_is_none=delimited)


def class_labels(frame, column, path, offset):
    """The labels of ``frame``; a missing label names its row."""
    values = frame[column].to_numpy()
    for i, label in enumerate(values.tolist()):
        if is_missing(label):
            raise CommandError(
                f"Row {offset + i} {_rows(path)} has no label in column {column!r}. Fill it "
                "or drop the row."
            )
    return values


def targets(frame, column, path, offset):
    """The float targets of ``frame`` (regression); a missing or non-numeric one names
    its row."""
    values = class_labels(frame, column, path, offset)
    out = np.empty(len(values))
    for i, value in enumerate(values.tolist()):
        try:
            if isinstance(value, bool):
                raise ValueError
            out[i] = float(value)
        except (TypeError, ValueError):
            out[i] = np.nan
        if not np.isfinite(out[i]):
            raise CommandError(
                f"Row {offset + i} {_rows(path)} has {value!r} in the target column "
                f"{column!r}; --regression needs a finite number in every row."
            )
    return out


def label_lists(frame, column, path, offset, sep, empty_is_none):
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
                    f"Row {offset + i} {_rows(path)} has no value in the label column "
                    f"{column!r} (null). With --label-sep a row without labels holds an "
                    "empty string; write one or drop the row."
                )
            cell = ""
        cell = integral_str(cell)
        if not isinstance(cell, (str, int, float)):  # a bool is an int
            raise CommandError(
                f"Row {offset + i} {_rows(path)} has {cell!r} ({type(cell).__name__}) in "
                f"the label column {column!r}; with --label-sep {sep!r} each cell must be a "
                f"string of labels separated by {sep!r}, such as "
                f"{sep.join(['joy', 'surprise'])!r}."
            )
        rows.append(tuple(sorted({name.strip() for name in str(cell).split(sep)} - {""})))
    return rows


def label_names(counts, n_rows, path, labels):
    """The sorted label names of a multi-label column from their row counts; a label on
    every row (it cannot be learned), or fewer than two labels, is an error."""
    names = sorted(counts)
    where = f"column {labels.column!r} of {os.fspath(path)!r}"
    if len(names) < 2:
        found = f"only the label {names[0]!r}" if names else "no label at all"
        raise CommandError(
            f"With --label-sep {labels.sep!r}, {where} holds {found}; a multi-label "
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
    column = {name: j for j, name in enumerate(np.asarray(names).tolist())}
    Y = np.zeros((len(label_lists), len(column)), dtype=np.uint8)
    for i, row in enumerate(label_lists):
        Y[i, [column[name] for name in row]] = 1
    return Y


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
        values = [integral_str(v) for v in values]
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


def integral_str(value):
    """An integer (or a float of integral value) as a str; anything else as it is."""
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


# --------------------------------------------------------------------- counting
def count_rows(data):
    """Rows of ``data``, the total of a progress bar.

    A Parquet file's from its metadata. A CSV, TSV or JSON Lines file's from its line
    breaks, read in blocks (decompressed as the readers do), less the header and the
    blank lines at its end. Where a quoted CSV field holds a line break or blank lines
    stand between rows, that is an over-count, an estimate that `options.progress`
    corrects when the bar ends. None when the file cannot be read (its reader then says
    why).
    """
    fmt = file_format(data.path, data.data_format, names=FLAG_NAMES)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.ParquetFile(data.path).metadata.num_rows
    try:
        lines = count_lines(data.path, resolve_encoding(data.path, data.encoding))
    except Exception:  # unreadable, corrupt or of an unknown encoding: the reader reports it
        return None
    header = fmt != "jsonl" and data.header
    return max(lines - header, 0)


def count_lines(path, encoding, block=None):
    """Lines of ``path`` up to its last that is not blank (a last line may lack its line
    break), read ``block`` bytes at a time (default `COUNT_BLOCK`). Bytes are counted as
    they are, except in UTF-16 and UTF-32, which are decoded first."""
    block = block or COUNT_BLOCK
    wide = codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace") if wide else None
    newline, blank = ("\n", "\r\n") if wide else (b"\n", b"\r\n")
    count = trailing = 0  # line breaks; those after the last character that is not one
    content = False
    with open_binary(path) as f:
        while piece := f.read(block):
            if decoder is not None:
                piece = decoder.decode(piece)
            count += piece.count(newline)
            end = piece.rstrip(blank)
            if end:
                content = True
                trailing = piece[len(end):].count(newline)
            else:
                trailing += piece.count(newline)
    return count - trailing + 1 if content else 0


# ------------------------------------------------------------------------ --out
def check_out(out, data, kind="output"):
    """Refuse an ``--out`` in a missing or unwritable folder, or that is the DATA file
    ``data``; the messages name the path given."""
    from .._checkpoint import check_writable

    parent = Path(out).resolve().parent
    if not parent.is_dir():
        raise CommandError(
            f"Cannot write {kind} {os.fspath(out)!r}: folder {os.fspath(parent)!r} does "
            "not exist. Create it first."
        )
    if same_file(out, data):
        raise CommandError(
            f"--out {os.fspath(out)!r} is the DATA file {os.fspath(data)!r}: "
            f"writing it would destroy the input. Give --out another path."
        )
    try:
        check_writable(parent, "--out")
    except OSError as exc:
        cause = exc.__cause__ if isinstance(exc.__cause__, OSError) else exc
        raise CommandError(
            f"--out={os.fspath(out)!r} cannot be written: its folder {os.fspath(parent)!r} "
            f"takes no new file ({cause.strerror or type(cause).__name__}); nothing was "
            "done. Free space, fix the folder's permissions, or choose another --out."
        ) from exc


def same_file(a, b):
    """Whether paths ``a`` and ``b`` name the same file (a hard link included)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist
        return False


def out_error(path, exc, lost=""):
    """The OSError of a failed write of --out, saying that a previous file is intact."""
    return OSError(
        exc.errno,
        f"Cannot write --out {os.fspath(path)!r} ({exc.strerror or exc}); any previous file "
        f"at that path is intact and no partial file is left.{lost} Free space or fix the "
        "folder's permissions, or choose another --out, and run the command again.",
    )
