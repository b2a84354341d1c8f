"""Methylation beta matrices (CpG × sample) plus probe annotation → the methylation and probes tables.

Matrices come as CSV or TSV (gzip or other compression detected from the name) or
Parquet: first column the CpG id, then one column per participant. The matrix
streams in row blocks (EPIC arrays have 850,000 CpGs), each CpG's
betas stored as one float32 vector in the order of the methylation samples.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from biolake.ingest.genotypes import Progress, chromosome_column
from biolake.ingest.text import MISSING_TOKENS, check_unique, read_text_table
from biolake.lake.errors import InputError
from biolake.lake.schema import TABLES
from biolake.lake.vectors import encode_floats

_ARROW_ROW = re.compile(r"column #(\d+): Row #(\d+)", re.IGNORECASE)


def read_probes(path: str | os.PathLike, *, release: str) -> pa.Table:
    """The probes table: ``cpg``, ``chrom``, ``pos`` (further columns are ignored)."""
    frame = read_text_table(path)
    for required in ("cpg", "chrom", "pos"):
        if required not in frame.columns:
            raise InputError(path, f"expected a {required!r} column; found {', '.join(frame.columns)}",
                             line=1)
    check_unique(frame["cpg"], path=path, what="CpG id")
    positions = frame["pos"].cast(pl.Int64, strict=False)
    bad = positions.is_null() & frame["pos"].is_not_null()
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"position {frame['pos'][row]!r} is not an integer",
                         line=row + 2, column="pos")
    return pa.table({
        "release": pa.array([release] * frame.height, pa.string()),
        "cpg_index": pa.array(np.arange(frame.height, dtype=np.int64)),
        "cpg_id": frame["cpg"].to_arrow().cast(pa.string()),
        "chrom": chromosome_column(frame["chrom"], path=path, first_line=2).to_arrow().cast(pa.string()),
        "pos": positions.to_arrow(),
    })


def matrix_samples(path: str | os.PathLike) -> list[str]:
    """Participant ids from the matrix header (every column after the CpG id column)."""
    header, _ = _header(Path(path))
    if len(header) < 2:
        raise InputError(path, "expected a CpG id column followed by one column per participant",
                         line=1)
    samples = header[1:]
    check_unique(pl.Series(samples), path=path, what="participant id in the header", first_line=1)
    return samples


def methylation_batches(path: str | os.PathLike, probes: pa.Table, *, release: str,
                        progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
    """Stream the methylation table's rows; betas must lie in [0, 1]."""
    path = Path(path)
    header, delimiter = _header(path)
    annotation = {cpg: i for i, cpg in enumerate(probes.column("cpg_id").to_pylist())}
    chrom, pos = probes.column("chrom").to_pylist(), probes.column("pos").to_pylist()
    schema = TABLES["methylation"].arrow_schema()
    seen, ids_seen = 0, set()
    for batch in _matrix_blocks(path, header, delimiter):
        ids = batch.column(0).to_pylist()
        betas = np.column_stack([batch.column(i).to_numpy(zero_copy_only=False)
                                 for i in range(1, batch.num_columns)])  # CpGs × samples
        _check_betas(betas, path=path, first_line=seen + 2, header=header)
        for cpg in ids:
            if cpg in ids_seen:
                raise InputError(path, f"CpG {cpg!r} appears more than once in the matrix")
            ids_seen.add(cpg)
        missing = [cpg for cpg in ids if cpg not in annotation]
        if missing:
            raise InputError(path, f"CpG {missing[0]!r} is not in the probe annotation")
        index = [annotation[cpg] for cpg in ids]
        yield pa.RecordBatch.from_pydict({
            "release": pa.array([release] * len(ids), pa.string()),
            "chrom": pa.array([chrom[i] or "NA" for i in index], pa.string()),
            "cpg_index": pa.array(index, pa.int64()),
            "cpg_id": pa.array(ids, pa.string()),
            "pos": pa.array([pos[i] for i in index], pa.int64()),
            "n_present": pa.array((~np.isnan(betas)).sum(axis=1), pa.int64()),
            "beta": pa.array(encode_floats(betas), pa.binary()),
        }, schema=schema)
        seen += len(ids)
        if progress:
            progress("methylation", seen, probes.num_rows)
    if seen == 0:
        raise InputError(path, "has a header but no CpG rows")


def _matrix_blocks(path: Path, header: list[str], delimiter: str | None) -> Iterator[pa.RecordBatch]:
    """Row blocks of the matrix (CpG id, then one float64 column per participant), from CSV/TSV
    (possibly compressed) or Parquet; read errors become InputErrors naming line and column."""
    try:
        if delimiter is None:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=20_000):
                yield batch.cast(pa.schema([pa.field(header[0], pa.string())] +
                                           [pa.field(name, pa.float64()) for name in header[1:]]))
            return
        reader = _open_matrix(path, header, delimiter)
        while True:
            try:
                yield reader.read_next_batch()
            except StopIteration:
                return
    except pa.ArrowInvalid as exc:
        raise _arrow_error(path, exc, header) from None
    except (OSError, EOFError) as exc:  # e.g. a gzip stream cut short
        raise InputError(path, f"cannot read the matrix: {exc}") from None


def _header(path: Path) -> tuple[list[str], str | None]:
    """Column names of the matrix and its delimiter (tab if the header has one, else comma;
    None for Parquet)."""
    if not path.exists():
        raise InputError(path, "file not found")
    if path.suffix == ".parquet":
        try:
            return pq.ParquetFile(path).schema_arrow.names, None
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(path, f"not a readable Parquet file ({exc})") from None
    first = _first_line(path)
    if not first:
        raise InputError(path, "file is empty")
    delimiter = "\t" if "\t" in first else ","
    names = [name.strip() for name in next(csv.reader([first], delimiter=delimiter))]
    if "" in names:
        raise InputError(path, f"column {names.index('') + 1} of the header has no name", line=1)
    return names, delimiter


def _first_line(path: Path) -> str:
    """The header line, read through any compression without loading the file."""
    head = b""
    try:
        with pa.input_stream(str(path), compression="detect") as stream:
            while b"\n" not in head:
                chunk = stream.read(1 << 16)
                if not chunk:
                    break
                head += chunk
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(path, f"cannot read the header: {exc}") from None
    return head.split(b"\n", 1)[0].decode("utf-8", errors="replace").rstrip("\r")


def _open_matrix(path: Path, header: list[str], delimiter: str) -> pacsv.CSVStreamingReader:
    types = {name: pa.float64() for name in header[1:]}
    types[header[0]] = pa.string()
    return pacsv.open_csv(
        pa.input_stream(str(path), compression="detect"),
        read_options=pacsv.ReadOptions(block_size=1 << 24),  # ~16 MB of text per batch
        parse_options=pacsv.ParseOptions(delimiter=delimiter),
        convert_options=pacsv.ConvertOptions(column_types=types, null_values=list(MISSING_TOKENS),
                                             strings_can_be_null=False),
    )


def _check_betas(betas: np.ndarray, *, path: Path, first_line: int, header: list[str]) -> None:
    with np.errstate(invalid="ignore"):
        outside = (betas < 0) | (betas > 1) | np.isinf(betas)
    if outside.any():
        row, col = (int(i) for i in np.argwhere(outside)[0])
        raise InputError(path, f"beta value {betas[row, col]:g} is outside [0, 1]",
                         line=first_line + row, column=header[col + 1])


def _arrow_error(path: Path, exc: pa.ArrowInvalid, header: list[str]) -> InputError:
    message = str(exc).splitlines()[0]
    found = _ARROW_ROW.search(message)
    if found:
        column, row = int(found.group(1)), int(found.group(2))
        return InputError(path, f"expected a number ({message.split(':')[-1].strip()})",
                          line=row + 1, column=header[column] if column < len(header) else None)
    return InputError(path, f"cannot read the matrix: {message}")
