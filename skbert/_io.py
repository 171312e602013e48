"""Read labelled texts from CSV, TSV, Parquet or JSON Lines files, chunk by chunk."""

import os
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
            f"{list(available)!r}. Pass text_column= / label_column= to choose."
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
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int; got {chunksize!r}.")
    path = Path(path)
    fmt = file_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"No such data file: {os.fspath(path)!r}.")
    columns = [text_column] + ([label_column] if label_column is not None else [])
    for frame in _frames(path, fmt, columns, chunksize, text_column, label_column):
        texts = frame[text_column].tolist()
        labels = None if label_column is None else frame[label_column].to_numpy()
        yield texts, labels


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
        reader = pd.read_csv(
            path, sep="\t" if fmt == "tsv" else ",", chunksize=chunksize,
            dtype={text_column: str}, keep_default_na=False,
            na_values={label_column: [""]} if label_column is not None else None,
        )
    with reader:
        for frame in reader:
            _check_columns(path, frame.columns, columns)
            yield frame
