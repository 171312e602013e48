"""Read and write CSV, TSV, Parquet or JSON Lines files, chunk by chunk.

Errors name the reading options as Python spells them (``encoding=``, ``sep=``); a caller
with other spellings (a command line's flags) passes them as ``names=``.
"""

import codecs
import contextlib
import csv
import os
import re
import warnings
from pathlib import Path

_FORMATS = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".jsonl": "jsonl",
            ".json": "jsonl", ".ndjson": "jsonl"}
# Byte order marks, UTF-32 first: a UTF-32 LE mark starts with the UTF-16 LE one.
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))
# How the errors name the reading options: as keyword arguments of the Python functions.
OPTION_NAMES = {
    "data_format": "data_format=", "encoding": "encoding=", "sep": "sep=",
    "header": "header=False", "text_column": "text_column=",
    "columns": "text_column= / label_column=",
}


def _names(names):
    """``OPTION_NAMES`` updated with a caller's own spellings."""
    return OPTION_NAMES if names is None else {**OPTION_NAMES, **names}


def _spell(names, key, value):
    """The option ``key`` set to ``value``, as the caller spells it: ``sep=';'``, or
    ``NAME VALUE`` for a spelling without "=" (the value quoted unless it is a plain
    word such as cp1252)."""
    name = names[key]
    if name.endswith("="):
        return f"{name}{value!r}"
    text = str(value)
    plain = re.fullmatch(r"[\w.-]+", text) is not None
    return f"{name} {text if plain else repr(value)}"


def file_format(path, data_format=None, *, names=None):
    """The format of ``path``: ``data_format`` when given, else by its extension.

    ".gz" and the other compressions pandas reads are allowed after CSV, TSV and JSON
    Lines extensions. ``names`` maps keys of ``OPTION_NAMES`` to the caller's spelling
    of those options, for the messages.

    Raises
    ------
    ValueError
        When ``data_format`` is not a format skbert reads, or it is None and the
        extension names none.
    """
    names = _names(names)
    if data_format is not None:
        if data_format not in _FORMATS.values():
            raise ValueError(
                f"Unknown data format {_spell(names, 'data_format', data_format)}; use "
                "'csv', 'tsv', 'parquet' or 'jsonl'."
            )
        return data_format
    suffixes = [s.lower() for s in Path(path).suffixes]
    for suffix in reversed(suffixes):
        if suffix in _FORMATS:
            return _FORMATS[suffix]
    raise ValueError(
        f"Cannot tell the format of {os.fspath(path)!r} from its extension; use .csv, "
        f".tsv, .parquet or .jsonl, or name the format with "
        f"{_spell(names, 'data_format', 'tsv')}."
    )


def check_file(path, data_format=None, *, names=None):
    """Refuse a data file that is missing, of an unknown format or empty (0 bytes).

    Parameters
    ----------
    path : str or os.PathLike
    data_format : {"csv", "tsv", "parquet", "jsonl"} or None, default=None
        The format; None tells it by the extension.
    names : dict or None, default=None
        The caller's spellings of the options, as in `file_format`.

    Returns
    -------
    data_format : str
        The format of the file.

    Raises
    ------
    FileNotFoundError
        When ``path`` is not a file.
    ValueError
        When the format is unknown or the file is empty.
    """
    data_format = file_format(path, data_format, names=names)
    if not Path(path).is_file():
        raise FileNotFoundError(f"No such data file: {os.fspath(path)!r}.")
    if Path(path).stat().st_size == 0:
        raise ValueError(
            f"Data file {os.fspath(path)!r} is empty (0 bytes): it holds no header and no "
            "rows. Check the path, or write the file again (a CSV or TSV file needs at "
            "least its header line)."
        )
    return data_format


def resolve_encoding(path, encoding=None, *, names=None):
    """The text encoding to read ``path`` with.

    A byte order mark (UTF-8, UTF-16 or UTF-32, also inside a compressed file) is
    followed when ``encoding`` is None or UTF-8; another ``encoding`` is used as given.

    Parameters
    ----------
    path : str or os.PathLike
    encoding : str or None, default=None
        A Python codec name; None means UTF-8.
    names : dict or None, default=None
        The caller's spellings of the options, as in `file_format`.

    Returns
    -------
    encoding : str
        "utf-8", "utf-8-sig", "utf-16" or "utf-32" after a byte order mark, else
        ``encoding``.

    Raises
    ------
    ValueError
        When ``encoding`` is not a codec Python knows.
    """
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            raise ValueError(
                f"Unknown encoding {encoding!r} ({_names(names)['encoding']}); use a Python "
                "codec name such as utf-8, utf-16, cp1252 or latin-1."
            ) from None
        if name != "utf-8":
            return encoding
    with open_binary(path) as f:
        start = f.read(4)
    return next((codec for bom, codec in _BOMS if start.startswith(bom)), "utf-8")


@contextlib.contextmanager
def open_binary(path):
    """Open ``path`` for reading bytes, decompressed as pandas would (by its extension).

    Parameters
    ----------
    path : str or os.PathLike

    Yields
    ------
    file : binary file object
    """
    from pandas.io.common import get_handle

    with get_handle(path, "rb", compression="infer", is_text=False) as handles:
        yield handles.handle


def _decode_error(path, encoding, cause, names):
    """A ValueError naming the first bytes of ``path`` that ``encoding`` cannot decode:
    their byte offset, their line, and the fix."""
    decoder = codecs.getincrementaldecoder(encoding)()
    offset, line, where = 0, 1, None
    with open_binary(path) as f:
        for raw in f:  # lines split at b"\n", which the decoder joins across
            pending = len(decoder.getstate()[0])
            try:
                line += decoder.decode(raw).count("\n")
            except UnicodeError as exc:
                where = _where(exc, offset - pending, raw)
                break
            offset += len(raw)
        else:
            try:
                decoder.decode(b"", final=True)
            except UnicodeError as exc:
                where = _where(exc, offset - len(decoder.getstate()[0]), b"")
    if where is None:  # pragma: no cover - pandas decoded differently
        where_text = f"({cause})"
    else:
        where_text = (f"the bytes {where[1]!r} at byte offset {where[0]} (on line {line}, "
                      f"counting from 1) are not {encoding} ({where[2]})")
    return ValueError(
        f"Cannot read {os.fspath(path)!r} as {encoding}: {where_text}. "
        f"{_encoding_hint(path, encoding, names)}"
    )


def _where(exc, start, data):
    """(byte offset, bytes, reason) of a decoding error in ``data`` read from ``start``."""
    if isinstance(exc, UnicodeDecodeError):
        return start + exc.start, exc.object[exc.start:exc.end], exc.reason
    return start, data[:4], str(exc)  # such as "UTF-16 stream does not start with BOM"


def _encoding_hint(path, encoding, names):
    """How to read a file that does not decode as ``encoding``."""
    with open_binary(path) as f:
        start = f.read(4096)
    option = names["encoding"]
    if codecs.lookup(encoding).name not in ("utf-8", "utf-8-sig"):
        guess = f"this is not its encoding: give the right one with {option}"
    elif b"\x00" in start:
        guess = (f"it looks like UTF-16 without a byte order mark: add "
                 f"{_spell(names, 'encoding', 'utf-16-le')} (or utf-16-be)")
    else:
        guess = (f"if it was saved by Excel or Windows, add "
                 f"{_spell(names, 'encoding', 'cp1252')} (latin-1 for ISO-8859-1); "
                 f"otherwise give its encoding with {option}")
    return f"The file is in another encoding: {guess}, or re-save it as UTF-8."


def _check_columns(path, available, wanted, names, sep=None):
    missing = [c for c in wanted if c is not None and c not in available]
    if missing:
        raise ValueError(
            f"Column {missing[0]!r} not found in {os.fspath(path)!r}; its columns are "
            f"{list(available)!r}. Pass {names['columns']} to choose."
            f"{_columns_hint(available, sep, names)}"
        )


def _columns_hint(available, sep, names):
    """A hint when a delimited file's one column looks separated by another character,
    or its names look like UTF-16 read as UTF-8."""
    if any("\x00" in str(name) for name in available):
        return (" The names hold NUL characters: the file looks like UTF-16 without a byte "
                f"order mark; pass {_spell(names, 'encoding', 'utf-16-le')}, or utf-16-be.")
    if sep is None or len(available) != 1:
        return ""
    name = str(available[0])
    other = next((c for c in ";\t|," if c != sep and c in name), None)
    if other is None:
        return ""
    return (f" The header line looks separated by {other!r}, not {sep!r}: pass "
            f"{_spell(names, 'sep', other)}.")


def _check_numbers(path, n_columns, wanted, names):
    """Check the column numbers of a file without a header against its first row."""
    for column in wanted:
        if isinstance(column, bool) or not isinstance(column, int) or column < 0:
            raise ValueError(
                f"Without a header ({names['header']}) columns are given by number, "
                f"counted from 0; got {column!r} for {os.fspath(path)!r}. Pass "
                f"{_spell(names, 'text_column', 3)} for the fourth column."
            )
        if column >= n_columns:
            raise ValueError(
                f"Column {column} not found in {os.fspath(path)!r}: its first row has "
                f"{n_columns} columns, numbered 0 to {n_columns - 1} (counted from 0). "
                f"Pass {names['columns']} to choose."
            )


def _check_unique(path, names, wanted):
    """Refuse a requested column whose name appears more than once."""
    for column in dict.fromkeys(wanted):
        positions = [i for i, name in enumerate(names) if name == column]
        if len(positions) > 1:
            numbers = ", ".join(map(str, positions[:-1])) + f" and {positions[-1]}"
            raise ValueError(
                f"Column {column!r} appears {len(positions)} times in {os.fspath(path)!r} "
                f"(columns {numbers}, counted from 0), so which one to read is ambiguous. "
                "Rename the columns so that each name is unique."
            )


def read_chunks(path, text_column="text", label_column="label", chunksize=10_000, *,
                encoding=None, sep=None, header=True, data_format=None):
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
    text_column : str or int, default="text"
        Column of the texts: its name, or its number (counted from 0) when
        ``header=False``.
    label_column : str, int or None, default="label"
        Column of the labels; None yields ``y=None`` (for prediction).
    chunksize : int, default=10000
        Rows per chunk.
    encoding : str or None, default=None
        Text encoding of a CSV, TSV or JSON Lines file, a Python codec name ("cp1252",
        "latin-1", "utf-16"...). None (or "utf-8") reads UTF-8, and follows a UTF-8,
        UTF-16 or UTF-32 byte order mark.
    sep : str or None, default=None
        The one-character field separator of a CSV or TSV file (";" for many European
        spreadsheets); None means "," for CSV and a tab for TSV.
    header : bool, default=True
        Whether the first line of a CSV or TSV file names the columns. With False
        every line is a row and columns are given by number.
    data_format : {"csv", "tsv", "parquet", "jsonl"} or None, default=None
        The format, for a file whose extension does not tell it; None reads the
        extension.

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
        When the file is empty, a column is missing (naming the columns there are) or
        duplicated, bytes do not decode (naming their offset and line), or the format
        is not known.
    """
    frames = read_frames(path, text_column, label_column, chunksize, encoding=encoding,
                         sep=sep, header=header, data_format=data_format)
    for frame in frames:
        texts = frame[text_column].tolist()
        labels = None if label_column is None else frame[label_column].to_numpy()
        yield texts, labels


def read_frames(path, text_column="text", label_column="label", chunksize=10_000,
                extra_columns=(), *, encoding=None, sep=None, header=True, data_format=None,
                names=None):
    """Yield the file's rows as DataFrames of the requested columns, chunk by chunk.

    The reader behind `read_chunks`, for callers that need more columns (an id column
    next to the texts, for example). Texts keep their type rules: an empty CSV field
    is "", a missing label is NaN.

    Parameters
    ----------
    path : str or os.PathLike
        The file; its extension (.csv, .tsv, .parquet, .jsonl) picks the reader.
    text_column : str or int, default="text"
        Column of the texts (a number, counted from 0, when ``header=False``).
    label_column : str, int or None, default="label"
        Column of the labels, or None.
    chunksize : int, default=10000
        Rows per chunk.
    extra_columns : sequence of str or int, default=()
        Further columns to read.
    encoding, sep, header, data_format
        As in `read_chunks`.
    names : dict or None, default=None
        How the messages name the options: ``OPTION_NAMES`` (the keyword arguments)
        updated with these, such as a command line's flags.

    Yields
    ------
    frame : pandas.DataFrame
        The next rows (at most ``chunksize``), holding the requested columns only.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        As `read_chunks`.
    """
    if isinstance(chunksize, bool) or not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be a positive int; got {chunksize!r}.")
    path = Path(path)
    names = _names(names)
    fmt = check_file(path, data_format, names=names)
    _check_options(path, fmt, encoding, sep, header, names)
    wanted = [text_column, label_column, *extra_columns]
    columns = list(dict.fromkeys(c for c in wanted if c is not None))
    if fmt == "parquet":
        frames = _parquet_frames(path, columns, chunksize, names)
    elif fmt == "jsonl":
        frames = _jsonl_frames(path, columns, chunksize,
                               resolve_encoding(path, encoding, names=names), names)
    else:
        frames = _delimited_frames(path, fmt, columns, chunksize, text_column, label_column,
                                   dict(encoding=resolve_encoding(path, encoding, names=names),
                                        sep=sep or ("\t" if fmt == "tsv" else ","),
                                        header=header), names)
    for frame in frames:
        yield frame[columns]


def _check_options(path, fmt, encoding, sep, header, names):
    """Refuse reading options that do not apply to the file's format."""
    where = f"{os.fspath(path)!r} is {'Parquet' if fmt == 'parquet' else 'JSON Lines'}"
    if fmt == "parquet" and encoding is not None:
        raise ValueError(f"{names['encoding']} applies to CSV, TSV and JSON Lines files; "
                         f"{where}, which stores its texts as UTF-8. Drop the encoding.")
    if fmt in ("parquet", "jsonl") and (sep is not None or not header):
        option = names["sep"] if sep is not None else names["header"]
        raise ValueError(f"{option} applies to CSV and TSV files only; {where}, whose "
                         "columns have names. Drop the option.")
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1 or sep in '"\r\n'):
        raise ValueError(f"{names['sep']} must be one character other than a quote or a "
                         f"line break, such as ';' or '\\t'; got {sep!r}.")


def _parquet_frames(path, columns, chunksize, names):
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    available = parquet.schema_arrow.names
    _check_columns(path, available, columns, names)
    _check_unique(path, available, columns)
    for batch in parquet.iter_batches(batch_size=chunksize, columns=columns):
        yield batch.to_pandas()


def _jsonl_frames(path, columns, chunksize, encoding, names):
    import pandas as pd

    reader = pd.read_json(path, lines=True, chunksize=chunksize, dtype=False,
                          encoding=encoding)
    offset = 0
    with reader:
        while True:
            try:
                frame = next(reader, None)
            except UnicodeError as exc:
                raise _decode_error(path, encoding, exc, names) from None
            except ValueError as exc:
                raise ValueError(
                    f"Cannot read {os.fspath(path)!r} as JSON Lines: rows {offset} to "
                    f"{offset + chunksize - 1} (0-based) hold a line that is not a JSON "
                    f"object ({exc}). Each line must be one object, such as "
                    '{"text": "...", "label": 1}.'
                ) from None
            if frame is None:
                return
            _check_columns(path, frame.columns, columns, names)
            offset += len(frame)
            yield frame


def _delimited_frames(path, fmt, columns, chunksize, text_column, label_column, options,
                      names):
    """CSV or TSV chunks; the first row is checked (names, duplicates) before any chunk."""
    import pandas as pd

    # Texts stay str (an empty field is "", not NaN); labels keep pandas' types.
    # TSV is plain lines split at tabs, as GLUE files are: quotes are text.
    read = dict(sep=options["sep"], encoding=options["encoding"], keep_default_na=False,
                quoting=csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL)
    first = _first_row(path, fmt, read, names)
    if options["header"]:
        _check_columns(path, first, columns, names, options["sep"])
        _check_unique(path, first, columns)
    else:
        _check_numbers(path, len(first), columns, names)
    reader = pd.read_csv(
        path, header=0 if options["header"] else None, chunksize=chunksize,
        dtype={text_column: str},
        na_values={label_column: [""]} if label_column is not None else None, **read,
    )
    with reader:
        offset, warned = 0, fmt != "tsv"
        while (frame := _next_chunk(reader, path, fmt, read, names)) is not None:
            if not warned:
                warned = _warn_if_csv_quoted(frame[text_column], path, offset)
            offset += len(frame)
            yield frame


def _first_row(path, fmt, read, names):
    """The fields of the first line (the header, when there is one), as read."""
    import pandas as pd

    try:
        first = pd.read_csv(path, header=None, nrows=1, dtype=str, **read)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"Data file {os.fspath(path)!r} holds no header and no rows (only blank "
            "lines, or nothing once decompressed). Check the path, or write the file again."
        ) from None
    except UnicodeError as exc:
        raise _decode_error(path, read["encoding"], exc, names) from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, fmt, read["sep"], exc, names) from None
    return first.iloc[0].tolist()


def _next_chunk(reader, path, fmt, read, names):
    import pandas as pd

    try:
        return next(reader, None)
    except UnicodeError as exc:
        raise _decode_error(path, read["encoding"], exc, names) from None
    except pd.errors.ParserError as exc:
        raise _parser_error(path, fmt, read["sep"], exc, names) from None


def _parser_error(path, fmt, sep, exc, names):
    hint = " (in TSV a field cannot hold a tab)" if fmt == "tsv" and sep == "\t" else ""
    return ValueError(
        f"Cannot read {os.fspath(path)!r} as {fmt.upper()}{hint}: {exc}. If its fields "
        f"are separated by another character than {sep!r}, pass it with {names['sep']}."
    )


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

    Notes
    -----
    CSV lines end with "\\r\\n" (RFC 4180), so that a value holding a line break,
    a bare "\\r" included, is quoted and reads back as one value.

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
            else:  # CRLF, as RFC 4180: a value holding a bare "\r" is then quoted
                frame.to_csv(f, index=False, header=header, lineterminator="\r\n")
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
