"""Writing a query's result where the user asked: a terminal table, CSV/TSV, Parquet or JSON."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

TERMINAL_ROWS = 50


def write_relation(relation: duckdb.DuckDBPyRelation | None, *, output_format: str,
                   out: str | None) -> None:
    """Materialise a DuckDB relation in ``output_format`` to ``out`` (stdout when None)."""
    if relation is None:  # a statement without a result
        return
    result = relation.to_arrow_table()
    if output_format == "table" and out is None:
        _print_table(result)
    elif output_format == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        pq.write_table(result, out)
    elif output_format == "json":
        text = "\n".join(_json_lines(result))
        _emit(text + "\n", out)
    else:
        delimiter = "\t" if output_format == "tsv" else ","
        sink = pa.BufferOutputStream()
        pacsv.write_csv(result, sink, write_options=pacsv.WriteOptions(delimiter=delimiter,
                                                                         quoting_style="needed"))
        _emit(sink.getvalue().to_pybytes().decode(), out)


def _json_lines(table: pa.Table) -> Iterator[str]:
    for row in table.to_pylist():
        yield json.dumps(row, default=str)


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
