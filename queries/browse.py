"""The browse index of a results table: what a results browser reads instead of the results.

A run of 1,000 IDPs × 1 M variants holds a billion rows; no page may scan them. So each
run stores, with its results, four tables derived from them (written by
:mod:`biolake.index` from the run's :class:`biolake.stats.summary.ScanSummary`):

- ``positions``: every test's feature, position, effect and −log10 p (float32), sorted by
  position within each piece's file: a variant's PheWAS and a region's association plot
  are a few row groups.
- ``features``: feature id → chrom, pos, sorted by id, so a lookup by id prunes by
  row-group statistics.
- ``points``: the Manhattan and QQ plot data, thinned (see :mod:`biolake.stats.summary`),
  sorted by scan, so a phenotype's points are a few row groups; where each row tests a pair
  (a kind with a ``pair`` role: SNP × SNP), ``pair`` names the pair's other feature.
- ``summary``: per scan (phenotype, and exposure for GxE): tests, median −log10 p, hits at
  5e-8, the top feature; and the results version the index was built from (a stale or
  missing index is rebuilt; it is written last, so it is the index's commit).

Reads (:class:`BrowseIndex`) are DuckDB queries on those files with the filters pushed
into the Parquet reader; nothing here writes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from biolake.lake.lake import Lake

PARTS = ("positions", "features", "points", "summary")
VERSION_NOTE = "biolake.results_version"     # in the summary's commit: the results version indexed


def indexed_version(lake: Lake, name: str) -> int | None:
    """The results version the browse index of ``name`` was built from (None: never built)."""
    summary = lake.derived(name, "summary")
    if summary is None:
        return None
    for commit in summary.history(10):    # newest first; housekeeping commits may carry no note
        if VERSION_NOTE in commit:
            return int(commit[VERSION_NOTE])
    return None


def index_is_current(lake: Lake, name: str) -> bool:
    """Whether the browse index of ``name`` exists and was built from its latest version."""
    return indexed_version(lake, name) == lake.results(name).version()


class BrowseIndex:
    """Reads of one run's browse index; each is a DuckDB query over a few row groups.

    Examples
    --------
    >>> index = BrowseIndex(Lake.open("lake"), "demo_idps")
    >>> index.points("25010-2.0").num_rows
    454
    """

    def __init__(self, lake: Lake, name: str) -> None:
        self.lake, self.name = lake, name
        self._con = duckdb.connect(config={"autoload_known_extensions": False, "memory_limit": "1GB"})
        self._lock = threading.Lock()
        for part in PARTS:
            table = lake.derived(name, part)
            if table is None:
                raise LookupError(f"results {name!r} have no browse index; run `biolake index`")
            _register(self._con, lake, part, table)

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        with self._lock:   # one connection (its registered tables are its own), queries of a few ms each
            return self._con.sql(sql, params=list(params)).to_arrow_table()

    def summary(self) -> pa.Table:
        """Per scan: tests, median −log10 p, hits at 5e-8, top feature and its −log10 p."""
        return self._query("SELECT * FROM summary ORDER BY top_log10p DESC NULLS LAST, phenotype, exposure")

    def points(self, phenotype: str, exposure: str | None = None) -> pa.Table:
        """The thinned Manhattan/QQ points of one scan (see the module docstring)."""
        return self._query("SELECT * FROM points WHERE phenotype = ? AND exposure IS NOT DISTINCT FROM ?",
                           (phenotype, exposure))

    def position_of(self, feature: str) -> tuple[str, int] | None:
        """Where ``feature`` lies (chrom, pos), or None if the run did not test it."""
        rows = self._query("SELECT chrom, pos FROM features WHERE feature = ?", (feature,)).to_pylist()
        return (rows[0]["chrom"], rows[0]["pos"]) if rows else None

    def chromosome_extents(self) -> dict[str, int]:
        """The last tested position of each chromosome (for a genome-wide axis)."""
        rows = self._query("SELECT chrom, max(pos) AS last FROM features GROUP BY chrom").to_pylist()
        return {row["chrom"]: int(row["last"]) for row in rows}

    def at(self, chrom: str, pos: int, feature: str | None = None) -> pa.Table:
        """Every test at one position (of one feature, when given): a PheWAS row per scan."""
        return self._query("SELECT * FROM positions WHERE chrom = ? AND pos = ? AND (? IS NULL OR feature = ?)",
                           (chrom, pos, feature, feature))

    def strongest_in(self, chrom: str, start: int, end: int, *, limit: int = 50) -> pa.Table:
        """The scans with the strongest test in ``chrom:start-end`` (their best −log10 p), best first."""
        return self._query("SELECT phenotype, exposure, max(log10p) AS log10p FROM positions "
                           "WHERE chrom = ? AND pos BETWEEN ? AND ? GROUP BY ALL ORDER BY log10p DESC LIMIT ?",
                           (chrom, start, end, limit))

    def region(self, chrom: str, start: int, end: int, phenotype: str, exposure: str | None = None) -> pa.Table:
        """One scan's tests in ``chrom:start-end``."""
        return self._query("SELECT * FROM positions WHERE chrom = ? AND pos BETWEEN ? AND ? AND phenotype = ? "
                           "AND exposure IS NOT DISTINCT FROM ? ORDER BY pos",
                           (chrom, start, end, phenotype, exposure))


def _register(con: duckdb.DuckDBPyConnection, lake: Lake, part: str, table: DeltaTable) -> None:
    """A view of one Delta table as loaded: DuckDB's own Parquet reader on local lakes (it spills
    and prunes row groups), Arrow datasets on buckets."""
    if lake.location.remote:
        con.register(part, lake.dataset_of(table))
        return
    files = [uri.removeprefix("file://") for uri in table.file_uris()]
    if not files:   # a run with no tests
        con.register(part, table.schema().to_arrow().empty_table())
        return
    partitions = table.metadata().partition_columns
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    hive = (", hive_partitioning = true, hive_types = {" + ", ".join(f"'{c}': VARCHAR" for c in partitions) + "}"
            if partitions else "")
    con.execute(f"CREATE VIEW {part} AS SELECT * FROM read_parquet({listed}{hive})")
