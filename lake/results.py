"""Results tables written in parallel and committed once.

Association runs produce up to billions of rows. Each dask task writes its own Parquet
file straight into the results table's folder (no rows travel back to the client) and
returns a Delta *add* action; the client then commits every file of the run in one Delta
transaction. Until that commit no reader sees any of them, and a run that dies leaves only
unreferenced files, named by their run id, that the next successful run supersedes.
"""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake.transaction import AddAction

from biolake.lake.storage import Location

RESULTS_FOLDER = "results"  # LAKE/results/NAME: one Delta table per association run
DERIVED_FOLDER = "browse"   # LAKE/browse/NAME/PART: tables derived from the results NAME, deleted with them


@dataclass(frozen=True)
class ResultsFiles:
    """Where one run writes its result files (or, with ``derived``, the files of one table derived
    from its results); picklable, so every worker writes its own."""

    location: Location
    name: str
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    derived: str | None = None          # a derived table's name: LAKE/browse/NAME/DERIVED

    def public(self) -> "ResultsFiles":
        """The same run without credentials, for task graphs (workers use their environment's)."""
        return dataclasses.replace(self, location=self.location.public())

    @property
    def uri(self) -> str:
        if self.derived is not None:
            return self.location.join(DERIVED_FOLDER, self.name, self.derived)
        return self.location.join(RESULTS_FOLDER, self.name)

    def open(self, schema: pa.Schema, *, partition: dict[str, str], part: str,
             row_group_rows: int | None = None) -> "StagedFile":
        """A new Parquet file of this run in the partition ``partition`` (e.g. {"chrom": "7"}); each
        write is one row group, or row groups of ``row_group_rows``."""
        return StagedFile(self.location, self.uri, schema, partition=partition, name=f"{self.run}-{part}",
                          row_group_rows=row_group_rows)


_FOOTER_STATISTICS_BYTES = 4096   # the Parquet writer keeps no min/max of a row group holding a longer value


def _widen(ranges: dict[str, list], name: str, low: object, high: object) -> None:
    """Widen the [min, max] of column ``name`` in ``ranges`` to cover ``low`` … ``high`` (None: no values)."""
    if low is None:
        return
    if name not in ranges:
        ranges[name] = [low, high]
    ranges[name] = [min(ranges[name][0], low), max(ranges[name][1], high)]


class StagedFile:
    """One Parquet file of a Delta table, written in row groups as rows arrive (memory stays bounded)
    and described by an add action for a later commit: a run's results, or a release's vectors."""

    def __init__(self, location: Location, uri: str, schema: pa.Schema, *, partition: dict[str, str], name: str,
                 row_group_rows: int | None = None, parquet_options: dict | None = None) -> None:
        folder = "".join(f"{key}={value}/" for key, value in partition.items())
        self.path, self.partition = f"{folder}part-{name}.parquet", partition
        self._filesystem = location.arrow_filesystem(uri)
        if not location.remote:  # buckets have no folders to make (each level would be a request)
            self._filesystem.create_dir(folder.rstrip("/") or ".", recursive=True)
        self._schema = pa.schema([f for f in schema if f.name not in partition])
        self._footer: list[pq.FileMetaData] = []    # the file's metadata, once closed
        self._sink = self._filesystem.open_output_stream(self.path)   # its position at the end is the size
        self._writer = pq.ParquetWriter(self._sink, self._schema, metadata_collector=self._footer,
                                        **({"compression": "zstd"} | (parquet_options or {})))
        self._rows, self._row_group_rows = 0, row_group_rows
        self._strings = [f.name for f in self._schema if pa.types.is_string(f.type)]
        self._long: dict[str, list] = {}       # string columns with values the footer has no range for

    def write(self, table: pa.Table) -> None:
        table = table.select(self._schema.names)
        self._writer.write_table(table, row_group_size=self._row_group_rows)
        self._rows += table.num_rows
        for name in self._strings:   # a value too long for the footer's statistics: its range from the data
            column = table.column(name)
            if (pc.max(pc.binary_length(column)).as_py() or 0) >= _FOOTER_STATISTICS_BYTES:
                bounds = pc.min_max(column)
                _widen(self._long, name, bounds["min"].as_py(), bounds["max"].as_py())

    @property
    def rows(self) -> int:
        """Rows written so far."""
        return self._rows

    def discard(self) -> None:
        """Delete the file (of a write that failed); it was never committed, so no reader knows it."""
        try:
            self._writer.close()
            self._sink.close()
        finally:
            self._filesystem.delete_file(self.path)

    def close(self) -> AddAction:
        """Finish the file and describe it for the run's single commit.

        The Delta statistics are the Parquet writer's own, summed over row groups: null
        counts, and min/max of every orderable column (readers skip files by them, and a
        column without them would read as "no value can match" to deltalake's file pruning).
        """
        self._writer.close()
        size = self._sink.tell()   # no request to ask the store how big the file came out
        self._sink.close()
        (footer,) = self._footer
        ranged = {f.name for f in self._schema
                  if pa.types.is_integer(f.type) or pa.types.is_floating(f.type) or pa.types.is_string(f.type)}
        nulls, ranges = dict.fromkeys(self._schema.names, 0), dict(self._long)
        for group in range(footer.num_row_groups):
            for index in range(footer.num_columns):
                column = footer.row_group(group).column(index)
                name, stats = column.path_in_schema, column.statistics
                if stats is None or not stats.has_null_count:   # unknown (vectors keep no statistics)
                    nulls.pop(name, None)
                elif name in nulls:
                    nulls[name] += stats.null_count
                if name in ranged and stats is not None and stats.has_min_max:
                    _widen(ranges, name, stats.min, stats.max)
        low, high = {name: r[0] for name, r in ranges.items()}, {name: r[1] for name, r in ranges.items()}
        statistics = json.dumps({"numRecords": self._rows, "minValues": low, "maxValues": high, "nullCount": nulls})
        return AddAction(self.path, size, self.partition, int(time.time() * 1000), True, statistics)
