"""Read and write CSV, TSV, Parquet or JSON Lines files, chunk by chunk."""

import csv
import os
import warnings
from pathlib import Path

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl",
            ".json": "jsonl", ".ndjson": "jsonl"}


def file_format(path):
    """The format of ``path`` by its extension (".gz" etc. allowed on CSV/TSV/JSONL)."""
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in reversed(suffixes):
        if suffix in _FORMATS:
            return _FORMATS[suffix]
    raise ValueError(
        f"Cannot tell the format of {os.fspath(path)!r} from its extension; use .csv, "
        ".tsv, .parquet or .jsonl."
    )


def _check_columns(path, available, wanted):
    missing = [c for c in wanted if c is not None and c not in available]
    if missing:
        raise ValueError(
            f"Column {missing[0]!r} not found in {os.fspath(path)!r}; its columns are "
            f"{list(available)!r}. Pass text_column= / label_column= to choose (on the "
            "command line: --text-column / --label-column / --id-column)."
        )


def read_chunks(path, text_column="text", label_column="label", chunksize=10_000):
    """Yield ``(X, y)`` chunks of a CSV, TSV, Parquet or JSON Lines file.

    The file is read ``chunksize`` rows at a time (Parquet by record batches), so it
    never needs to fit in memory. Feed the chunks to ``partial_fit`` after shuffling
    the file once: a chunk cut from sorted data holds one class.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension (.csv, .tsv, .parquet, .jsonl) picks the reader.
        TSV is read as plain lines split at tabs, with no quoting; a text that looks
        quoted the CSV way is kept as read, with a warning naming its row.
    text_column : str, default="text"
        Column of the texts.
    label_column : str or None, default="label"
        Column of the labels; None yields ``y=None`` (for prediction).
    chunksize : int, default=10000
        Rows per chunk.

    Yields
    ------
    X : list of str
        Texts of the chunk.
    y : ndarray or None
        Their labels.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When a column is missing (naming the columns there are) or the extension is
        not known.
    """
    for frame in read_frames(path, text_column, label_column, chunksize):
        texts = frame[text_column].tolist()
        labels = None if label_column is None else frame[label_column].to_numpy()
        yield texts, labels


def read_frames(path, text_column="text", label_column="label", chunksize=10_000,
                extra_columns=()):
    """Yield the file's rows as DataFrames of the requested columns, chunk by chunk.

    The reader behind `read_chunks`, for callers that need more columns (an id column
    next to the texts, for example). Texts keep their type rules: an empty CSV field
    is "", a missing label is NaN.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension (.csv, .tsv, .parquet, .jsonl) picks the reader.
    text_column : str, default="text"
        Column of the texts.
    label_column : str or None, default="label"
        Column of the labels, or None.
    chunksize : int, default=10000
        Rows per chunk.
    extra_columns : sequence of str, default=()
        Further columns to read.

    Yields
    ------
    frame : pandas.DataFrame
        The next rows (at most ``chunksize``), holding the requested columns only.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        When a column is missing (naming the columns there are) or the extension is
        not known.
    """
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int; got {chunksize!r}.")
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {os.fspath(path)!r}.")
    wanted = [text_column, label_column, *extra_columns]
    columns = list(dict.fromkeys(c for c in wanted if c is not None))
    for frame in _frames(path, fmt, columns, chunksize, text_column, label_column):
        yield frame[columns]


def _frames(path, fmt, columns, chunksize, text_column, label_column):
    import pandas as pd

    if fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path)
        _check_columns(path, parquet.schema_arrow.names, columns)
        for batch in parquet.iter_batches(batch_size=chunksize, columns=columns):
            yield batch.to_pandas()
        return
    if fmt == "jsonl":
        reader = pd.read_json(path, lines=True, chunksize=chunksize, dtype=False)
    else:
        # Texts stay str (an empty field is "", not NaN); labels keep pandas' types.
        # TSV is plain lines split at tabs, as GLUE files are: quotes are text.
        reader = pd.read_csv(
            path, sep="\t" if fmt == "tsv" else ",", chunksize=chunksize,
            dtype={text_column: str}, keep_default_na=False,
            na_values={label_column: [""]} if label_column is not None else None,
            quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL,
        )
    with reader:
        try:
            offset, warned = 0, fmt != "tsv"
            for frame in reader:
                _check_columns(path, frame.columns, columns)
                if not warned:
                    warned = _warn_if_csv_quoted(frame[text_column], path, offset)
                offset += len(frame)
                yield frame
        except pd.errors.ParserError as exc:
            hint = " (in TSV a field cannot hold a tab)" if fmt == "tsv" else ""
            raise ValueError(
                f"Cannot read {os.fspath(path)!r} as {fmt.upper()}{hint}: {exc}"
            ) from None


def output_format(path):
    """The ``(format, gzipped)`` to write ``path`` in, by its extension.

    The last extension must name the format; CSV, TSV and JSON Lines may add ".gz".

    Raises
    ------
    ValueError
        When the extension names no format skbert writes.
    """
    suffixes = [s.lower() for s in Path(path).suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    fmt = _FORMATS.get(suffixes[-1]) if suffixes else None
    if fmt is None or (gzipped and fmt == "parquet"):
        raise ValueError(
            f"Cannot tell which format to write {os.fspath(path)!r} in from its extension; "
            "use .csv, .tsv, .parquet or .jsonl (.csv.gz, .tsv.gz and .jsonl.gz compress)."
        )
    return fmt, gzipped


def write_frames(frames, path, fmt, gzipped=False):
    """Write DataFrames one after another as the rows of one table.

    Parameters
    ----------
    frames : iterable of pandas.DataFrame
        Chunks with the same columns; each is written as it arrives, so memory holds
        one chunk at a time.
    path : str or os.PathLike
        The file to write (its extension is not looked at).
    fmt : {"csv", "tsv", "parquet", "jsonl"}
        The format, as `output_format` returns it.
    gzipped : bool, default=False
        Gzip a CSV, TSV or JSON Lines file.

    Returns
    -------
    n_rows : int
        Rows written.
    """
    if fmt == "parquet":
        return _write_parquet(frames, path)
    import gzip

    n_rows, header = 0, True
    opener = gzip.open if gzipped else open
    with opener(path, "wt", encoding="utf-8", newline="") as f:
        for frame in frames:
            if fmt == "jsonl":
                if len(frame):
                    frame.to_json(f, orient="records", lines=True, force_ascii=False)
            elif fmt == "tsv":
                _check_tsv_values(frame, path)
                frame.to_csv(f, sep="\t", index=False, header=header, quoting=csv.QUOTE_NONE)
            else:
                frame.to_csv(f, index=False, header=header)
            header = False
            n_rows += len(frame)
    return n_rows


def _check_tsv_values(frame, path):
    """Refuse a value with a tab or a line break, which plain TSV cannot hold (under
    QUOTE_NONE the csv module would even write a carriage return bare)."""
    import pandas as pd

    for name in frame.columns:
        values = frame[name]
        if pd.api.types.is_numeric_dtype(values):
            continue
        if values.map(lambda v: isinstance(v, str) and any(c in v for c in "\t\r\n")).any():
            raise ValueError(
                f"Cannot write {os.fspath(path)!r} as TSV: a value holds a tab or a line "
                "break, which TSV cannot hold; write .csv, .parquet or .jsonl."
            )


def _warn_if_csv_quoted(texts, path, offset):
    """Warn (and return True) when a TSV text looks quoted the CSV way, as pandas'
    ``to_csv(sep="\\t")`` writes a field with a quote: TSV here keeps quotes as text."""
    for i, text in enumerate(texts.tolist()):
        if (isinstance(text, str) and len(text) > 2 and text[0] == text[-1] == '"'
                and '""' in text[1:-1]):
            warnings.warn(
                f"Row {offset + i} of {os.fspath(path)!r} (0-based, header not counted) "
                f"reads as {text!r}, which looks quoted the CSV way. TSV files are read "
                "as plain tab-separated lines (as GLUE's are), so quotes stay in the "
                "text. Write the file with quoting=csv.QUOTE_NONE, or as .csv.",
                UserWarning, stacklevel=2,
            )
            return True
    return False


def _write_parquet(frames, path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    writer, n_rows = None, 0
    try:
        for frame in frames:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                writer = pq.ParquetWriter(path, table.schema)
            else:
                table = table.cast(writer.schema)
            writer.write_table(table)
            n_rows += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return n_rows
