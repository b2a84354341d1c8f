"""The browse index of a results table: what a results browser reads instead of the results.

A run of 1,000 IDPs × 1 M variants holds a billion rows; no page may scan them. So when
a run is written, one out-of-core DuckDB pass over it writes four small Delta tables
under ``LAKE/browse/NAME/``:

- ``points``: the Manhattan and QQ plot data, thinned. Every test with −log10 p above
  :data:`KEEP_ABOVE` is kept with its exact QQ rank (the :data:`EXACT_POINTS` strongest,
  if a scan has more); the others, one test per cell of :data:`CELL_BP` base pairs ×
  :data:`CELL_LOG10P`, plus one QQ point per :data:`QQ_STEP` of −log10 p from exact
  counts. Sorted by scan, so a phenotype's points are a few row groups.
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
import warnings
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
from deltalake import DeltaTable

from lake.lake import Lake
from lake.lock import lake_lock
from queries.kinds import ResultKind, result_kind
from stats.multiple import GENOME_WIDE

KEEP_ABOVE = 3.0        # −log10 p above which every test is kept for the plots
CELL_BP = 3_000_000     # thinning cell width along a chromosome …
CELL_LOG10P = 0.25      # … and height in −log10 p (about 3 px of a plot 30 units tall)
QQ_STEP = 0.05          # QQ points below KEEP_ABOVE: one per step of −log10 p
EXACT_POINTS = 20_000   # at most this many tests per scan above KEEP_ABOVE kept whole (the strongest)
PINNED_LOG10P = 324.0   # where p = 0 (an underflow in imported statistics) is drawn: past any double
GROUPS_PER_PASS = 2_000_000   # thinning cells aggregated at once …
ROWS_PER_PASS = 30_000_000    # … and tests whose medians are taken at once (bound a pass's memory)
GENOME_WIDE_LOG10P = float(-np.log10(GENOME_WIDE))
PARTS = ("positions", "features", "points", "summary")
VERSION_NOTE = "biolake.results_version"     # in the summary's commit: the results version indexed
ROW_GROUP_ROWS = {"positions": 65_536, "features": 65_536, "points": 16_384, "summary": 65_536}


def index_results(lake: Lake, name: str, *, memory_limit: str = "2GB", wait: float = 600.0,
                  exact: int = EXACT_POINTS) -> None:
    """Build (or rebuild) the browse index of the results ``name``; see the module docstring.

    Each scan keeps its ``exact`` strongest tests above KEEP_ABOVE as they are (a page
    draws a few tens of thousands of points, however inflated the scan).

    One builder at a time per run (a lake lock, waited for up to ``wait`` seconds); the
    index is built from one pinned version of the results, which its summary records.
    """
    kind = result_kind(lake, name)
    with lake_lock(lake.location, f"browse-{name}", wait=wait):
        results = lake.results(name)      # one version, read throughout
        version = results.version()
        spill = tempfile.mkdtemp(prefix="biolake-browse-")
        try:
            with duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill,
                                        "preserve_insertion_order": False,
                                        "autoload_known_extensions": False}) as con:
                _register(con, lake, "results", results)
                columns = con.sql("SELECT * FROM results").columns
                con.execute(f"CREATE TEMP VIEW tests AS {_tests_sql(kind, columns)}")
                con.execute(f"CREATE TEMP VIEW scans AS {_scans_sql(kind)}")
                note = {VERSION_NOTE: str(version)}
                # passes over chromosomes (the position sort) and phenotype ranges (thinning, medians);
                # a run without tests still gets its (empty) tables from one pass that matches nothing
                ranges = [{"low": low, "high": high} for low, high in _phenotype_ranges(con)] or [{"low": "", "high": ""}]
                chromosomes = [{"chrom": c} for (c,) in con.sql("SELECT DISTINCT chrom FROM tests").fetchall()]
                points = [{**r, "exact": exact} for r in ranges]
                for part, rows in (("positions", lambda: _in_passes(con, POSITIONS_SQL, chromosomes or [{"chrom": ""}])),
                                   ("features", lambda: con.sql(FEATURES_SQL).to_arrow_reader()),
                                   ("points", lambda: _in_passes(con, POINTS_SQL, points)),
                                   ("summary", lambda: _in_passes(con, SUMMARY_SQL, ranges))):
                    # one query streams at a time: a DuckDB connection has one open result
                    lake.write_browse(name, part, rows(), partition_by=["chrom"] if part == "positions" else [],
                                      row_group_rows=ROW_GROUP_ROWS[part], note=note)
        finally:
            shutil.rmtree(spill, ignore_errors=True)


def index_after_job(lake: Lake, name: str) -> None:
    """Index a job's freshly committed results; a failure is a warning, not the job's failure
    (the results stand, and the browser or `biolake index` builds the index later)."""
    try:
        index_results(lake, name)
    except Exception as exc:   # whatever went wrong, the committed results stand
        warnings.warn(f"results {name!r} are committed, but their browse index was not built "
                      f"({str(exc).splitlines()[0]}); `biolake index --result {name}` builds it", stacklevel=2)


def indexed_version(lake: Lake, name: str) -> int | None:
    """The results version the browse index of ``name`` was built from (None: never built)."""
    summary = lake.browse(name, "summary")
    if summary is None:
        return None
    for commit in summary.history(10):    # newest first; housekeeping commits may carry no note
        if VERSION_NOTE in commit:
            return int(commit[VERSION_NOTE])
    return None


def index_is_current(lake: Lake, name: str) -> bool:
    """Whether the browse index of ``name`` exists and was built from its latest version."""
    return indexed_version(lake, name) == lake.results(name).version()


def _tests_sql(kind: ResultKind, columns: Sequence[str]) -> str:
    """Every test of the run in the index's own column names (untested and unplaceable rows left out)."""
    def column(name: str, cast: str = "VARCHAR") -> str:
        return f'"{name}"' if name in columns else f"NULL::{cast}"
    value = f'"{kind.log10p}"'
    return f"""
        SELECT "{kind.phenotype}" AS phenotype, {_exposure(kind)} AS exposure, "{kind.feature}" AS feature,
               chrom, pos, {column("ref")} AS ref, {column("alt")} AS alt, "{kind.effect}" AS effect,
               CASE WHEN {value} = 'inf'::DOUBLE THEN {PINNED_LOG10P} ELSE {value} END AS log10p
        FROM results
        WHERE {value} IS NOT NULL AND NOT isnan({value}) AND chrom IS NOT NULL AND pos IS NOT NULL
              AND "{kind.feature}" IS NOT NULL AND "{kind.phenotype}" IS NOT NULL"""


def _scans_sql(kind: ResultKind) -> str:
    """Every scan of the run, tested or not (a scan whose every test failed is listed with 0 tests)."""
    return (f'SELECT DISTINCT "{kind.phenotype}" AS phenotype, {_exposure(kind)} AS exposure FROM results '
            f'WHERE "{kind.phenotype}" IS NOT NULL')


def _exposure(kind: ResultKind) -> str:
    return f'"{kind.extra_group[0]}"' if kind.extra_group else "NULL::VARCHAR"


def _phenotype_ranges(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    """Consecutive ranges of phenotypes, each small enough for one pass of POINTS_SQL or SUMMARY_SQL:
    at most GROUPS_PER_PASS thinning cells and ROWS_PER_PASS tests (the medians hold every value)."""
    counts = con.sql("""SELECT s.phenotype, count(*) AS scans, any_value(t.n) AS n
                         FROM scans s LEFT JOIN (SELECT phenotype, count(*) AS n FROM tests GROUP BY ALL) t
                         USING (phenotype) GROUP BY ALL ORDER BY 1""").fetchall()
    cells_per_scan = 3_200_000_000 // CELL_BP * int(np.ceil(KEEP_ABOVE / CELL_LOG10P))   # a human genome's worth
    ranges: list[list] = []
    rows = cells = 0
    for phenotype, scans, n in counts:     # scans: one per exposure for GxE
        n, more = n or 0, scans * cells_per_scan
        if not ranges or rows + n > ROWS_PER_PASS or cells + more > GROUPS_PER_PASS:
            ranges.append([phenotype, phenotype])
            rows = cells = 0
        ranges[-1][1] = phenotype
        rows, cells = rows + n, cells + more
    return [(low, high) for low, high in ranges]


def _in_passes(con: duckdb.DuckDBPyConnection, sql: str, passes: list[dict[str, object]]) -> pa.RecordBatchReader:
    """``sql`` run once per set of parameters in ``passes``, the results as one stream."""
    schema = con.sql(sql, params=passes[0]).limit(0).to_arrow_table().schema

    def batches():
        for params in passes:
            yield from con.sql(sql, params=params).to_arrow_reader()
    return pa.RecordBatchReader.from_batches(schema, batches())


# one chromosome per pass: the sort (out of core) never holds more than the largest chromosome
POSITIONS_SQL = """
    SELECT chrom, pos, feature, ref, alt, phenotype, exposure, effect::FLOAT AS effect, log10p::FLOAT AS log10p
    FROM tests WHERE chrom = $chrom ORDER BY pos, feature, phenotype, exposure"""

# a feature's position is one row's (chrom, pos), the first along the genome if it was tested at several
FEATURES_SQL = """
    SELECT feature, place.chrom AS chrom, place.pos AS pos
    FROM (SELECT feature, min_by({'chrom': chrom, 'pos': pos}, (chrom, pos)) AS place FROM tests GROUP BY feature)
    ORDER BY feature"""

# Manhattan points (expected NULL unless the point is also exact on the QQ plot) and QQ-only
# points (feature NULL), for the phenotypes $low … $high: the strongest $exact tests above
# KEEP_ABOVE with their exact rank; every other test thinned to one per cell; and one QQ point
# per QQ_STEP of −log10 p among those others, at the exact count of tests at or above it.
POINTS_SQL = f"""
    WITH mine AS (
        SELECT * FROM tests WHERE phenotype BETWEEN $low AND $high),
    counted AS (
        SELECT phenotype, exposure, count(*) AS m FROM mine GROUP BY ALL),
    ranked AS (
        SELECT *, row_number() OVER (PARTITION BY phenotype, exposure ORDER BY log10p DESC) AS rank
        FROM mine WHERE log10p > {KEEP_ABOVE}),
    high AS (
        SELECT * FROM ranked WHERE rank <= $exact),
    rest AS (
        SELECT phenotype, exposure, feature, chrom, pos, effect, log10p FROM mine WHERE log10p <= {KEEP_ABOVE}
        UNION ALL
        SELECT phenotype, exposure, feature, chrom, pos, effect, log10p FROM ranked WHERE rank > $exact),
    cells AS (
        SELECT phenotype, exposure, chrom,
               arg_max({{'feature': feature, 'pos': pos, 'effect': effect, 'log10p': log10p}}, log10p) AS best
        FROM rest GROUP BY phenotype, exposure, chrom, pos // {CELL_BP}, floor(log10p / {CELL_LOG10P})),
    qq_cells AS (
        SELECT phenotype, exposure, floor(log10p / {QQ_STEP}) * {QQ_STEP} AS low, count(*) AS k
        FROM rest GROUP BY ALL),
    high_counts AS (
        SELECT phenotype, exposure, count(*) AS k FROM high GROUP BY ALL),
    qq AS (   -- tests with −log10 p ≥ the step's lower edge: those of higher steps and every high test
        SELECT q.phenotype, q.exposure, q.low,
               sum(q.k) OVER (PARTITION BY q.phenotype, q.exposure ORDER BY q.low DESC) + coalesce(h.k, 0) AS at_least
        FROM qq_cells q LEFT JOIN high_counts h
             ON q.phenotype = h.phenotype AND q.exposure IS NOT DISTINCT FROM h.exposure)
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
        FROM tests WHERE phenotype BETWEEN $low AND $high GROUP BY ALL)
    SELECT s.phenotype, s.exposure, coalesce(t.tests, 0) AS tests, t.median_log10p, coalesce(t.hits, 0) AS hits,
           t.top, t.top_log10p
    FROM scans s LEFT JOIN tested t ON s.phenotype = t.phenotype AND s.exposure IS NOT DISTINCT FROM t.exposure
    WHERE s.phenotype BETWEEN $low AND $high
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
