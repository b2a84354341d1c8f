"""The browse index of a results table: what a results browser reads instead of the results.

A run of 1,000 IDPs × 1 M variants holds a billion rows; no page may scan them. So when
a run is written, one out-of-core DuckDB pass over it writes four small Delta tables
under ``LAKE/browse/NAME/``:

- ``points``: the Manhattan and QQ plot data, thinned. Every test with −log10 p above
  :data:`KEEP_ABOVE` is kept (with its exact QQ rank); below it, one test per cell of
  :data:`CELL_BP` base pairs × :data:`CELL_LOG10P`, plus one QQ point per −log10 p cell
  from exact counts. Sorted by scan, so a phenotype's points are a few row groups.
- ``positions``: every test's feature, position, effect and −log10 p (float32), sorted by
  position: a variant's PheWAS and a region's association plot are a few row groups.
- ``features``: feature id → chrom, pos, sorted by id, so a lookup by id prunes by
  row-group statistics.
- ``summary``: per scan (phenotype, and exposure for GxE): tests, median −log10 p,
  hits at 5e-8, the top feature; and the results version the index was built from (a
  stale or missing index is rebuilt; it is written last, so it is the index's commit).

Reads (:class:`BrowseIndex`) are DuckDB queries on those files with the filters pushed
into the Parquet reader.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Sequence

import duckdb
import pyarrow as pa
from deltalake import DeltaTable

from lake.lake import Lake
from queries.kinds import ResultKind, result_kind

KEEP_ABOVE = 3.0        # −log10 p above which every test is kept for the plots
CELL_BP = 3_000_000     # thinning cell width along a chromosome …
CELL_LOG10P = 0.1       # … and height in −log10 p
GENOME_WIDE_LOG10P = 7.30103
PARTS = ("positions", "features", "points", "summary")


def index_results(lake: Lake, name: str, *, memory_limit: str = "1GB") -> None:
    """Build (or rebuild) the browse index of the results ``name``; see the module docstring."""
    kind = result_kind(lake, name)
    version = lake.results(name).version()
    spill = tempfile.mkdtemp(prefix="biolake-browse-")
    try:
        with duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill,
                                    "autoload_known_extensions": False}) as con:
            con.register("results", lake.results_dataset(name))
            columns = con.sql("SELECT * FROM results").columns
            con.execute(f"CREATE TEMP VIEW tests AS {_tests_sql(kind, columns)}")
            con.execute(f"CREATE TEMP VIEW scans AS {_scans_sql(kind)}")
            for part, sql in (("positions", POSITIONS_SQL), ("features", FEATURES_SQL), ("points", POINTS_SQL),
                              ("summary", SUMMARY_SQL.format(version=int(version)))):
                lake.write_browse(name, part, con.sql(sql).to_arrow_reader(),
                                  partition_by=["chrom"] if part == "positions" else [],
                                  row_group_rows=ROW_GROUP_ROWS[part])
    finally:
        shutil.rmtree(spill, ignore_errors=True)


def index_is_current(lake: Lake, name: str) -> bool:
    """Whether the browse index of ``name`` exists and was built from its latest version."""
    summary = lake.browse(name, "summary")
    if summary is None:
        return False
    built_from = summary.to_pyarrow_table(columns=["results_version"]).column(0).unique().to_pylist()
    return built_from == [lake.results(name).version()]


ROW_GROUP_ROWS = {"positions": 65_536, "features": 65_536, "points": 16_384, "summary": 65_536}


def _tests_sql(kind: ResultKind, columns: Sequence[str]) -> str:
    """Every test of the run in the index's own column names (untested rows left out)."""
    def column(name: str, cast: str = "VARCHAR") -> str:
        return f'"{name}"' if name in columns else f"NULL::{cast}"
    exposure = _exposure(kind)
    return f"""
        SELECT "{kind.phenotype}" AS phenotype, {exposure} AS exposure, "{kind.feature}" AS feature,
               chrom, pos, {column("ref")} AS ref, {column("alt")} AS alt,
               "{kind.effect}" AS effect, "{kind.log10p}" AS log10p
        FROM results WHERE isfinite("{kind.log10p}")"""


def _scans_sql(kind: ResultKind) -> str:
    """Every scan of the run, tested or not (a scan whose every test failed is listed with 0 tests)."""
    return f'SELECT DISTINCT "{kind.phenotype}" AS phenotype, {_exposure(kind)} AS exposure FROM results'


def _exposure(kind: ResultKind) -> str:
    return f'"{kind.extra_group[0]}"' if kind.extra_group else "NULL::VARCHAR"


POSITIONS_SQL = """
    SELECT chrom, pos, feature, ref, alt, phenotype, exposure, effect::FLOAT AS effect, log10p::FLOAT AS log10p
    FROM tests ORDER BY chrom, pos, feature, phenotype, exposure"""

FEATURES_SQL = """
    SELECT feature, min(chrom) AS chrom, min(pos) AS pos FROM tests GROUP BY feature ORDER BY feature"""

# Manhattan points (expected NULL unless the point is also exact on the QQ plot) and QQ-only
# points (feature NULL): the tests above KEEP_ABOVE with their exact rank, one test per cell
# below it, and per −log10 p cell below it the expected value at the cell's exact count.
POINTS_SQL = f"""
    WITH counted AS (
        SELECT phenotype, exposure, count(*) AS m FROM tests GROUP BY ALL),
    high AS (
        SELECT t.*, row_number() OVER (PARTITION BY t.phenotype, t.exposure ORDER BY t.log10p DESC) AS rank
        FROM tests t WHERE t.log10p > {KEEP_ABOVE}),
    cells AS (
        SELECT phenotype, exposure, chrom,
               arg_max({{'feature': feature, 'pos': pos, 'effect': effect, 'log10p': log10p}}, log10p) AS best
        FROM tests WHERE log10p <= {KEEP_ABOVE}
        GROUP BY phenotype, exposure, chrom, pos // {CELL_BP}, floor(log10p / {CELL_LOG10P})),
    qq_cells AS (
        SELECT phenotype, exposure, floor(log10p / {CELL_LOG10P}) * {CELL_LOG10P} AS low, count(*) AS k
        FROM tests WHERE log10p <= {KEEP_ABOVE} GROUP BY ALL),
    qq AS (   -- tests with −log10 p ≥ the cell's lower edge: those of higher cells and every high test
        SELECT q.phenotype, q.exposure, q.low,
               sum(q.k) OVER (PARTITION BY q.phenotype, q.exposure ORDER BY q.low DESC)
               + coalesce((SELECT count(*) FROM high h WHERE h.phenotype = q.phenotype
                           AND h.exposure IS NOT DISTINCT FROM q.exposure), 0) AS at_least
        FROM qq_cells q)
    SELECT h.phenotype, h.exposure, feature, chrom, pos, effect, log10p, -log10(rank / (m + 1)) AS expected
    FROM high h JOIN counted c ON h.phenotype = c.phenotype AND h.exposure IS NOT DISTINCT FROM c.exposure
    UNION ALL
    SELECT phenotype, exposure, best.feature, chrom, best.pos, best.effect, best.log10p, NULL
    FROM cells
    UNION ALL
    SELECT q.phenotype, q.exposure, NULL, NULL, NULL, NULL, low, -log10(at_least / (m + 1))
    FROM qq q JOIN counted c ON q.phenotype = c.phenotype AND q.exposure IS NOT DISTINCT FROM c.exposure
    WHERE low > 0
    ORDER BY phenotype, exposure, chrom, pos"""

SUMMARY_SQL = f"""
    WITH tested AS (
        SELECT phenotype, exposure, count(*) AS tests, median(log10p) AS median_log10p,
               count(*) FILTER (WHERE log10p > {GENOME_WIDE_LOG10P}) AS hits,
               arg_max(feature, log10p) AS top, max(log10p) AS top_log10p
        FROM tests GROUP BY ALL)
    SELECT s.phenotype, s.exposure, coalesce(t.tests, 0) AS tests, t.median_log10p, coalesce(t.hits, 0) AS hits,
           t.top, t.top_log10p, {{version}}::BIGINT AS results_version
    FROM scans s LEFT JOIN tested t ON s.phenotype = t.phenotype AND s.exposure IS NOT DISTINCT FROM t.exposure
    ORDER BY t.top_log10p DESC NULLS LAST, s.phenotype"""


class BrowseIndex:
    """Reads of one run's browse index; each is a DuckDB query over a few row groups.

    Examples
    --------
    >>> index = BrowseIndex(Lake.open("/tmp/lake"), "demo_idps")          # doctest: +SKIP
    >>> index.points("25010-2.0").num_rows                                 # doctest: +SKIP
    3210
    """

    def __init__(self, lake: Lake, name: str) -> None:
        self.lake, self.name = lake, name
        self._con = duckdb.connect(config={"autoload_known_extensions": False, "memory_limit": "1GB"})
        self._lock = threading.Lock()
        for part in PARTS:
            table = lake.browse(name, part)
            if table is None:
                raise LookupError(f"results {name!r} have no browse index; run `biolake index`")
            _register(self._con, lake, part, table)

    def close(self) -> None:
        self._con.close()

    def _query(self, sql: str, params: Sequence[object] = ()) -> pa.Table:
        with self._lock:   # one connection (its registered tables are its own), queries of a few ms each
            return self._con.sql(sql, params=list(params)).to_arrow_table()

    def summary(self) -> pa.Table:
        """Per scan: tests, median −log10 p, hits at 5e-8, top feature and its −log10 p."""
        return self._query("SELECT * EXCLUDE (results_version) FROM summary "
                           "ORDER BY top_log10p DESC NULLS LAST, phenotype, exposure")

    def points(self, phenotype: str, exposure: str | None = None) -> pa.Table:
        """The thinned Manhattan/QQ points of one scan (see the module docstring)."""
        return self._query("SELECT * FROM points WHERE phenotype = ? AND exposure IS NOT DISTINCT FROM ?",
                           (phenotype, exposure))

    def position_of(self, feature: str) -> tuple[str, int] | None:
        """Where ``feature`` lies (chrom, pos), or None if the run did not test it."""
        rows = self._query("SELECT chrom, pos FROM features WHERE feature = ? LIMIT 1", (feature,)).to_pylist()
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
    """A view of one index table: DuckDB's own Parquet reader on local lakes, Arrow on buckets."""
    if lake.location.remote:
        con.register(part, lake.browse_dataset(table))
        return
    files = [uri.removeprefix("file://") for uri in table.file_uris()]
    if not files:   # a run with no tests
        con.register(part, table.schema().to_arrow().empty_table())
        return
    partitioned = bool(table.metadata().partition_columns)
    listed = "[" + ", ".join("'" + f.replace("'", "''") + "'" for f in files) + "]"
    hive = ", hive_partitioning = true, hive_types = {'chrom': VARCHAR}" if partitioned else ""
    con.execute(f"CREATE VIEW {part} AS SELECT * FROM read_parquet({listed}{hive})")
