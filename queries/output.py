"""Writing a query's result, or a results table, where the user asked: terminal, CSV/TSV, Parquet, JSON."""

from __future__ import annotations

import sys

import polars as pl
import pyarrow as pa

from lake.lake import Lake
from queries.sql import QueryResult

TERMINAL_ROWS = 50


def write_result(query_result: QueryResult, *, output_format: str, out: str | None) -> None:
    """Materialise a query's result in ``output_format`` to ``out`` (stdout when None)."""
    write_table(query_result.arrow(), output_format=output_format, out=out)


def write_table(result: pa.Table, *, output_format: str, out: str | None) -> None:
    """Write a table as ``output_format`` (table, csv, tsv, parquet, json) to ``out`` (stdout when None)."""
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


RESULT_FORMATS = (".tsv", ".tsv.gz", ".csv", ".csv.gz", ".parquet")


def export_results(lake: Lake, name: str, out: str) -> int:
    """Stream the results table ``name`` to ``out`` (format from its extension); returns rows.

    Text formats write 'NA' for tests that did not run, as PLINK 2 does, so the file
    reads directly in LocusZoom, FUMA or R.
    """
    import gzip

    import pyarrow.parquet as pq

    if not out.endswith(RESULT_FORMATS):
        raise ValueError(f"{out}: unknown results format; use one of {', '.join(RESULT_FORMATS)}")
    dataset = lake.results_dataset(name)
    rows = 0
    if out.endswith(".parquet"):
        with pq.ParquetWriter(out, dataset.schema, compression="zstd") as writer:
            for batch in dataset.to_batches():
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    separator = "," if ".csv" in out else "\t"
    with (gzip.open(out, "wb") if out.endswith(".gz") else open(out, "wb")) as handle:
        for batch in dataset.to_batches():
            pl.from_arrow(pa.Table.from_batches([batch])).write_csv(
                handle, separator=separator, null_value="NA", include_header=rows == 0)
            rows += batch.num_rows
    return rows
