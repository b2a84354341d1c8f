"""Writing a query's result where the user asked: a terminal table, CSV/TSV, Parquet or JSON."""

from __future__ import annotations

import sys

import polars as pl
import pyarrow as pa

from queries.sql import QueryResult

TERMINAL_ROWS = 50


def write_result(query_result: QueryResult, *, output_format: str, out: str | None) -> None:
    """Materialise a query's result in ``output_format`` to ``out`` (stdout when None)."""
    result = query_result.arrow()
    if output_format == "table" and out is None:
        _print_table(result)
        return
    frame = pl.from_arrow(result)
    if output_format == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        frame.write_parquet(out)
    elif output_format == "json":
        _emit(frame.write_ndjson(), out)
    else:
        _emit(frame.write_csv(separator="\t" if output_format == "tsv" else ","), out)


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        with open(out, "w") as handle:
            handle.write(text)


def _print_table(table: pa.Table) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(*table.column_names)
    for row in table.slice(0, TERMINAL_ROWS).to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    console = Console()
    console.print(view)
    if table.num_rows > TERMINAL_ROWS:
        console.print(f"… {table.num_rows - TERMINAL_ROWS:,} more rows (use --format csv --out FILE)")


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    return str(value)
