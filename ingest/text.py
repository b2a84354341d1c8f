"""Reading delimited text sources with errors that name file, line and column.

Fast path: polars reads every cell as text; checks and conversions are then
vectorised, and a failing row is reported by its line number in the file.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import polars as pl

from lake.errors import InputError

MISSING_TOKENS = ("", "NA", "NaN", "nan", "N/A", "null")
PARTICIPANT_HEADERS = ("eid", "IID", "participant_id", "SubjID")  # UK Biobank, PLINK, ours, ENIGMA


def read_text_table(path: str | os.PathLike, *, separator: str | None = None,
                    has_header: bool = True, expected_columns: int | None = None,
                    whitespace: bool = False, skip_lines: int = 0) -> pl.DataFrame:
    """All cells as strings (nulls for missing tokens); errors for empty or ragged files.

    ``whitespace=True`` reads fields split by runs of spaces and tabs (PLINK text files);
    ``skip_lines`` skips leading lines (meta lines before a header).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "file not found")
    if path.stat().st_size == 0:
        raise InputError(path, "file is empty")
    source: Path | bytes = path
    if whitespace:
        source, separator = re.sub(rb"[ \t]+", b"\t", path.read_bytes()), "\t"
    separator = separator or _sniff_separator(path)
    if has_header and not skip_lines:
        _check_header(path, separator)
    try:
        frame = pl.read_csv(source, separator=separator, has_header=has_header, infer_schema=False,
                            skip_rows=skip_lines,
                            null_values=list(MISSING_TOKENS), raise_if_empty=True)
    except pl.exceptions.NoDataError:
        raise InputError(path, "file is empty") from None
    except (pl.exceptions.ComputeError, pl.exceptions.PolarsError) as exc:
        raise InputError(path, f"cannot parse as {separator!r}-delimited text: "
                         f"{str(exc).splitlines()[0]}") from None
    if expected_columns is not None and frame.width != expected_columns:
        raise InputError(path, f"expected {expected_columns} columns, found {frame.width} "
                         f"(separator {separator!r})", line=1)
    if frame.height == 0:
        raise InputError(path, "has a header but no data rows")
    return frame


def _check_header(path: Path, separator: str) -> None:
    """Column names must be unique (polars would silently rename a repeated one)."""
    with open(path, "rb") as handle:
        names = handle.readline().decode("utf-8-sig", errors="replace").rstrip("\r\n").split(separator)
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(path, f"column name {repeated[0]!r} appears more than once in the header",
                         line=1)


def _sniff_separator(path: Path) -> str:
    with open(path, "rb") as handle:
        first = handle.readline().decode("utf-8", errors="replace")
    for candidate in (",", "\t"):
        if candidate in first:
            return candidate
    return " " if " " in first.strip() else ","


def to_float(frame: pl.DataFrame, column: str, *, path: str | os.PathLike,
             first_line: int = 2) -> np.ndarray:
    """A text column as float64 (NaN for missing); a non-numeric cell is an InputError."""
    text = frame.get_column(column)
    values = text.cast(pl.Float64, strict=False)
    bad = values.is_null() & text.is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"expected a number, found {text[row]!r}",
                         line=first_line + row, column=column)
    return values.fill_null(float("nan")).to_numpy()


def is_text_column(frame: pl.DataFrame, column: str) -> bool:
    """True when no present cell parses as a number (a categorical column such as site or sex)."""
    text = frame.get_column(column)
    return not (text.cast(pl.Float64, strict=False).is_not_null()).any() and text.is_not_null().any()


def check_unique(values: pl.Series, *, path: str | os.PathLike, what: str, first_line: int = 2) -> None:
    """Duplicates are an InputError naming the first repeated value and both lines."""
    duplicated = values.is_duplicated()
    if duplicated.any():
        rows = duplicated.arg_true()
        value = values[int(rows[0])]
        lines = [first_line + int(r) for r in rows if values[int(r)] == value][:2]
        raise InputError(path, f"duplicate {what} {value!r} (lines {lines[0]} and {lines[1]})")


def participant_column(frame: pl.DataFrame, *, path: str | os.PathLike) -> str:
    """The participant-id column: the first one, headed eid, IID or participant_id."""
    first = frame.columns[0]
    if first not in PARTICIPANT_HEADERS:
        raise InputError(path, f"first column must be the participant id, headed one of "
                         f"{', '.join(PARTICIPANT_HEADERS)}; found {first!r}", line=1)
    ids = frame.get_column(first)
    if ids.null_count():
        row = int(ids.is_null().arg_true()[0])
        raise InputError(path, "participant id is missing", line=2 + row, column=first)
    check_unique(ids, path=path, what="participant id")
    return first
