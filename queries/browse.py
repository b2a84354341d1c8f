"""The browse index of a results table: what a results browser reads instead of the results.

A run of 1,000 IDPs × 1 M variants holds a billion rows; no page may scan them. So the
tests of a run are summarised as they are written, piece by piece (each GWAS or GxE dask
task summarises the block it tested; other runs, and repairs, are read file by file), and
the small summaries (:class:`IndexParts`) are merged into four Delta tables under
``LAKE/browse/NAME/``:

- ``positions``: every test's feature, position, effect and −log10 p (float32), sorted by
  position within each piece's file: a variant's PheWAS and a region's association plot
  are a few row groups. Written by the tasks themselves, so no pass sorts the whole run.
- ``features``: feature id → chrom, pos, sorted by id, so a lookup by id prunes by
  row-group statistics.
- ``points``: the Manhattan and QQ plot data, thinned. Every test with −log10 p above
  :data:`KEEP_ABOVE` is kept with its exact QQ rank (the :data:`EXACT_POINTS` strongest,
  if a scan has more); the others, one test per cell of :data:`CELL_BP` base pairs ×
  :data:`CELL_LOG10P`, plus one QQ point per :data:`QQ_STEP` of −log10 p from exact
  counts. Sorted by scan, so a phenotype's points are a few row groups.
- ``summary``: per scan (phenotype, and exposure for GxE): tests, median −log10 p (from
  counts in steps of 1/1000 of a decade), hits at 5e-8, the top feature; and the results
  version the index was built from (a stale or missing index is rebuilt; it is written
  last, so it is the index's commit).

Every part of a summary adds up across pieces (counts, maxima, each scan's strongest tests),
so merging is exact and its memory is bounded by the points kept, not by the tests.
Reads (:class:`BrowseIndex`) are DuckDB queries on those files with the filters pushed
into the Parquet reader.
"""

from __future__ import annotations

import threading
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from biolake.lake.lake import Lake
from biolake.lake.lock import lake_lock
from biolake.lake.results import ResultsFiles
from biolake.lake.schema import ResultsKind
from biolake.stats.multiple import GENOME_WIDE, LOG10P_BINS, histogram_median, log10p_bins

KEEP_ABOVE = 3.0        # −log10 p above which every test is kept for the plots
CELL_BP = 3_000_000     # thinning cell width along a chromosome …
CELL_LOG10P = 0.25      # … and height in −log10 p (about 3 px of a plot 30 units tall)
QQ_STEP = 0.05          # QQ points below KEEP_ABOVE: one per step of −log10 p
EXACT_POINTS = 20_000   # at most this many tests per scan above KEEP_ABOVE kept whole (the strongest)
PINNED_LOG10P = 324.0   # where p = 0 (an underflow in imported statistics) is drawn: past any double
GENOME_WIDE_LOG10P = float(-np.log10(GENOME_WIDE))
PARTS = ("positions", "features", "points", "summary")
VERSION_NOTE = "biolake.results_version"     # in the summary's commit: the results version indexed
ROW_GROUP_ROWS = {"positions": 65_536, "features": 65_536, "points": 16_384, "summary": 65_536}
POSITIONS_SCHEMA = pa.schema([
    ("chrom", pa.string()), ("pos", pa.int64()), ("feature", pa.string()), ("ref", pa.string()),
    ("alt", pa.string()), ("phenotype", pa.string()), ("exposure", pa.string()), ("effect", pa.float32()),
    ("log10p", pa.float32())])
_TESTS = pa.schema([("scan", pa.int64()), ("feature", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()),
                    ("effect", pa.float64()), ("log10p", pa.float64())])   # a test, its scan numbered
_FEATURES = pa.schema([("feature", pa.string()), ("chrom", pa.string()), ("pos", pa.int64())])
_STEPS = int(round(KEEP_ABOVE / QQ_STEP)) + 1   # QQ steps of the tests at or below KEEP_ABOVE


class IndexParts:
    """The mergeable summary of some tests of one run: everything in its index but ``positions``.

    :meth:`add` takes results rows (a block's, a file's), :meth:`merge` folds in another
    piece's summary, :meth:`tables` gives the index tables. Per scan it keeps tests, hits
    and the top test; counts per 1/1000 decade of −log10 p (for the median) and per QQ
    step; at most ``exact`` tests above KEEP_ABOVE; and the strongest other test of each
    thinning cell. numpy and Arrow only: it runs in forked dask workers.
    """

    def __init__(self, kind: ResultsKind, *, exact: int = EXACT_POINTS) -> None:
        self.kind, self.exact = kind, exact
        self.scans: dict[tuple[str, str | None], int] = {}     # (phenotype, exposure) → row of the arrays below
        self.tests, self.hits = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.top, self.top_log10p = np.zeros(0, object), np.zeros(0)
        self.counts = np.zeros((0, len(LOG10P_BINS) + 1), np.int64)   # tests per −log10 p bin
        self.steps = np.zeros((0, _STEPS), np.int64)   # tests at or below KEEP_ABOVE per QQ step
        self.far_steps: dict[tuple[int, int], int] = {}   # (scan, step): demoted tests above KEEP_ABOVE
        self.high = _TESTS.empty_table()                  # each scan's strongest tests above KEEP_ABOVE
        self.cells = _TESTS.empty_table()                 # the strongest other test of each thinning cell
        self._cells_kept = 0                              # (rows after the last compaction)
        self.features = _FEATURES.empty_table()

    def add(self, results: pa.Table) -> pa.Table:
        """Fold in some rows of the run (its results schema); returns their tests as positions rows."""
        kind, names = self.kind, results.schema.names

        def text(name: str | None) -> pa.ChunkedArray:
            if name is None or name not in names:
                return pa.chunked_array([pa.nulls(results.num_rows, pa.string())])
            return results.column(name).cast(pa.string())

        value = results.column(kind.log10p).cast(pa.float64())
        rows = pa.table({
            "phenotype": text(kind.phenotype), "exposure": text(kind.extra_group[0] if kind.extra_group else None),
            "feature": text(kind.feature), "chrom": text("chrom"), "pos": results.column("pos").cast(pa.int64()),
            "ref": text("ref"), "alt": text("alt"), "effect": results.column(kind.effect).cast(pa.float64()),
            "log10p": pc.if_else(pc.equal(value, np.inf), PINNED_LOG10P, value)})
        rows = rows.filter(pc.is_valid(rows.column("phenotype")))
        scan = self._scan_rows(rows)
        tested = np.asarray(pc.fill_null(pc.and_(
            pc.and_(pc.is_finite(rows.column("log10p")), pc.is_valid(rows.column("feature"))),
            pc.and_(pc.is_valid(rows.column("chrom")), pc.is_valid(rows.column("pos")))), False))
        tests, scan = rows.filter(pa.array(tested)), scan[tested]
        self._fold(tests, scan)
        by_position = np.lexsort((scan, tests.column("pos").to_numpy()))   # then by scan
        return tests.select(POSITIONS_SCHEMA.names).take(pa.array(by_position)).cast(POSITIONS_SCHEMA)

    def merge(self, other: IndexParts) -> None:
        """Fold in another piece of the same run."""
        rows = self._scan_numbers(list(other.scans))
        self.tests[rows] += other.tests
        self.hits[rows] += other.hits
        better = other.top_log10p > self.top_log10p[rows]
        self.top[rows[better]], self.top_log10p[rows[better]] = other.top[better], other.top_log10p[better]
        self.counts[rows] += other.counts
        self.steps[rows] += other.steps
        for (scan, step), k in other.far_steps.items():
            self._count_step(rows[scan], step, k)
        self._keep(high=_rescan(other.high, rows), cells=_rescan(other.cells, rows), features=other.features)

    def tables(self) -> dict[str, pa.Table]:
        """The ``features``, ``points`` and ``summary`` tables of the index."""
        cells = _strongest_per_cell(self.cells)
        scans = len(self.scans)
        names = pa.table({"phenotype": pa.array([k[0] for k in self.scans], pa.string()),
                          "exposure": pa.array([k[1] for k in self.scans], pa.string())})
        m = self.tests + 1.0
        high = self.high.sort_by([("scan", "ascending"), ("log10p", "descending")])
        high_scan = high.column("scan").to_numpy()
        rank = np.arange(len(high_scan)) - np.searchsorted(high_scan, high_scan) + 1.0   # within its scan
        kept = np.bincount(high_scan, minlength=scans)
        # one QQ point per step holding tests, at the count of tests at or above its lower edge
        # (the steps above KEEP_ABOVE hold tests demoted from an inflated scan's strongest)
        far = sorted(self.far_steps.items(), key=lambda item: (item[0][0], -item[0][1]))
        far_scan = np.array([s for (s, _), _ in far], np.int64)
        far_step = np.array([step for (_, step), _ in far], np.int64)
        far_count = np.array([k for _, k in far], np.int64)
        far_cumulative = np.cumsum(far_count) - np.r_[0, np.cumsum(far_count)][np.searchsorted(far_scan, far_scan)]
        above = kept + np.bincount(far_scan, weights=far_count, minlength=scans).astype(np.int64)
        at_least = np.cumsum(self.steps[:, ::-1], axis=1)[:, ::-1] + above[:, None]
        shown_scan, shown_step = np.nonzero(self.steps > 0)
        shown_scan, shown_step = shown_scan[shown_step > 0], shown_step[shown_step > 0]
        qq_scan = np.r_[shown_scan, far_scan].astype(np.int64)
        qq_low = np.r_[shown_step, far_step] * QQ_STEP
        qq_at_least = np.r_[at_least[shown_scan, shown_step], far_cumulative + kept[far_scan]]
        qq = pa.table({"scan": qq_scan, "feature": pa.nulls(len(qq_scan), pa.string()),
                       "chrom": pa.nulls(len(qq_scan), pa.string()), "pos": pa.nulls(len(qq_scan), pa.int64()),
                       "effect": pa.nulls(len(qq_scan), pa.float64()), "log10p": qq_low.astype(np.float64)})
        points = pa.concat_tables([
            _with_expected(high, -np.log10(rank / m[high_scan])),
            _with_expected(cells, None),
            _with_expected(qq.cast(_TESTS), -np.log10(qq_at_least / m[qq_scan]))])
        points = _named(points, names).sort_by([("phenotype", "ascending"), ("exposure", "ascending"),
                                                ("chrom", "ascending"), ("pos", "ascending")])
        tested = self.tests > 0
        summary = names.append_column("tests", pa.array(self.tests)).append_column(
            "median_log10p", pa.array(histogram_median(self.counts), from_pandas=True)).append_column(
            "hits", pa.array(self.hits)).append_column(
            "top", pa.array(np.where(tested, self.top, None), pa.string())).append_column(
            "top_log10p", pa.array(np.where(tested, self.top_log10p, np.nan), from_pandas=True))
        summary = summary.sort_by([("top_log10p", "descending"), ("phenotype", "ascending")])
        return {"features": _first_places(self.features).sort_by("feature"), "points": points, "summary": summary}

    def _scan_numbers(self, keys: Sequence[tuple[str, str | None]]) -> np.ndarray:
        """The rows of scans ``keys`` in the per-scan arrays (new rows for scans not seen yet)."""
        new = [key for key in dict.fromkeys(keys) if key not in self.scans]
        if new:
            self.scans.update(zip(new, range(len(self.scans), len(self.scans) + len(new))))
            grown = len(new)
            self.tests, self.hits = np.r_[self.tests, np.zeros(grown, np.int64)], np.r_[self.hits, np.zeros(grown, np.int64)]
            self.top = np.r_[self.top, np.full(grown, None, object)]
            self.top_log10p = np.r_[self.top_log10p, np.full(grown, -np.inf)]
            self.counts = np.vstack([self.counts, np.zeros((grown, self.counts.shape[1]), np.int64)])
            self.steps = np.vstack([self.steps, np.zeros((grown, _STEPS), np.int64)])
        return np.array([self.scans[key] for key in keys], np.int64)

    def _scan_rows(self, rows: pa.Table) -> np.ndarray:
        """Each row's scan, registering every scan present (tested or not)."""
        tag = pc.fill_null(pc.binary_join_element_wise("", rows.column("exposure"), "="), "")  # "=exposure" or ""
        keys = pc.binary_join_element_wise(rows.column("phenotype"), tag, "\x1f").combine_chunks().dictionary_encode()
        scans = self._scan_numbers([(phenotype, exposure[1:] if exposure else None) for phenotype, exposure in
                                    (key.split("\x1f", 1) for key in keys.dictionary.to_pylist())])
        return scans[keys.indices.to_numpy(zero_copy_only=False)] if len(scans) else np.zeros(0, np.int64)

    def _fold(self, tests: pa.Table, scan: np.ndarray) -> None:
        """Fold in tests (with their scan rows)."""
        log10p = tests.column("log10p").to_numpy()
        scans = len(self.scans)
        self.tests += np.bincount(scan, minlength=scans)
        self.hits += np.bincount(scan, weights=log10p > GENOME_WIDE_LOG10P, minlength=scans).astype(np.int64)
        if len(scan):
            order = np.lexsort((log10p, scan))
            last = order[np.r_[np.flatnonzero(np.diff(scan[order])), len(order) - 1]]   # each scan's strongest
            better = log10p[last] > self.top_log10p[scan[last]]
            chosen = last[better]
            self.top[scan[chosen]] = tests.column("feature").take(pa.array(chosen)).to_numpy(zero_copy_only=False)
            self.top_log10p[scan[chosen]] = log10p[chosen]
        self.counts += np.bincount(scan * self.counts.shape[1] + log10p_bins(log10p),
                                   minlength=self.counts.size).reshape(self.counts.shape)
        low = log10p <= KEEP_ABOVE
        step = np.clip(np.floor(log10p[low] / QQ_STEP).astype(np.int64), 0, _STEPS - 1)
        self.steps += np.bincount(scan[low] * _STEPS + step, minlength=self.steps.size).reshape(self.steps.shape)
        scanned = tests.select(_TESTS.names[1:]).add_column(0, "scan", pa.array(scan))
        features = tests.select(_FEATURES.names).group_by(["feature", "chrom"], use_threads=False).aggregate(
            [("pos", "min")]).rename_columns(_FEATURES.names)
        self._keep(high=scanned.filter(pa.array(~low)), cells=_strongest_per_cell(scanned.filter(pa.array(low))),
                   features=features)

    def _keep(self, *, high: pa.Table, cells: pa.Table, features: pa.Table) -> None:
        """Add pieces, then compact: each scan's ``exact`` strongest high tests stay, the rest join
        the cells and the QQ counts; one test per cell; one place per feature."""
        high = pa.concat_tables([self.high, high]).sort_by([("scan", "ascending"), ("log10p", "descending")])
        scan = high.column("scan").to_numpy()
        rank = np.arange(len(scan)) - np.searchsorted(scan, scan)
        demoted = high.filter(pa.array(rank >= self.exact))
        self.high = high.filter(pa.array(rank < self.exact))
        for (s, step), k in Counter(zip(demoted.column("scan").to_numpy().tolist(),
                                        np.floor(demoted.column("log10p").to_numpy() / QQ_STEP).astype(int).tolist())
                                    ).items():
            self._count_step(s, step, k)
        self.cells = pa.concat_tables([self.cells, cells, demoted])
        if self.cells.num_rows > 2 * self._cells_kept + 100_000:   # compact now and then, not on every piece
            self.cells = _strongest_per_cell(self.cells)
            self._cells_kept = self.cells.num_rows
        self.features = pa.concat_tables([self.features, features])

    def _count_step(self, scan: int, step: int, k: int) -> None:
        """Count ``k`` tests in QQ step ``step`` of ``scan``."""
        if step < _STEPS:
            self.steps[scan, step] += k
        else:
            self.far_steps[scan, step] = self.far_steps.get((scan, step), 0) + k


def _rescan(table: pa.Table, rows: np.ndarray) -> pa.Table:
    """``table`` with its scan column renumbered through ``rows`` (another piece's scans → this one's)."""
    return table.set_column(0, "scan", pa.array(rows[table.column("scan").to_numpy()], pa.int64()))


def _with_expected(points: pa.Table, expected: np.ndarray | None) -> pa.Table:
    """Points with their QQ position (null: drawn on the Manhattan plot only)."""
    values = pa.nulls(points.num_rows, pa.float64()) if expected is None else pa.array(expected, pa.float64())
    return points.append_column("expected", values)


def _named(points: pa.Table, names: pa.Table) -> pa.Table:
    """Points with their scan's phenotype and exposure in place of its number."""
    scan = points.column("scan")
    return pa.table({"phenotype": names.column("phenotype").take(scan), "exposure": names.column("exposure").take(scan),
                     **{name: points.column(name) for name in points.schema.names[1:]}})


def _first_places(features: pa.Table) -> pa.Table:
    """One row per feature: its first place along the genome (chrom, then pos), if it was tested at several."""
    first = features.sort_by([("chrom", "ascending"), ("pos", "ascending")]).group_by(
        "feature", use_threads=False).aggregate([("chrom", "first"), ("pos", "first")])
    return first.rename_columns(_FEATURES.names)


def _strongest_per_cell(tests: pa.Table) -> pa.Table:
    """One test per thinning cell (scan, chromosome, CELL_BP of position, CELL_LOG10P of −log10 p): its strongest."""
    if not tests.num_rows:
        return tests
    chrom = tests.column("chrom").combine_chunks().dictionary_encode()
    parts = [tests.column("scan").to_numpy(), chrom.indices.to_numpy(zero_copy_only=False).astype(np.int64),
             tests.column("pos").to_numpy() // CELL_BP,
             np.maximum(np.floor(tests.column("log10p").to_numpy() / CELL_LOG10P), 0).astype(np.int64)]
    cell = np.zeros(tests.num_rows, np.int64)
    for part in parts:                       # one integer per cell, mixed radix
        cell = cell * (int(part.max()) + 1) + part
    order = np.lexsort((tests.column("log10p").to_numpy(), cell))
    last = order[np.r_[np.flatnonzero(np.diff(cell[order])), len(order) - 1]]
    return tests.take(pa.array(last))


def index_pieces(lake: Lake, name: str, results: DeltaTable, kind: ResultsKind, *,
                 exact: int) -> tuple[IndexParts, list[AddAction]]:
    """Summarise one version of a results table file by file, writing its ``positions`` files on the way."""
    parts, actions = IndexParts(kind, exact=exact), []
    files = lake.browse_files(name, "positions")
    dataset = lake.dataset_of(results)
    for number, fragment in enumerate(dataset.get_fragments()):
        actions += write_positions(files, (parts.add(batch) for batch in
                                           _tables(fragment.to_batches(schema=dataset.schema, batch_size=1 << 20))),
                                   part=f"{number:06d}")
    return parts, actions


def _tables(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.Table]:
    return (pa.Table.from_batches([batch]) for batch in batches if batch.num_rows)


def write_positions(files: ResultsFiles, positions: Iterable[pa.Table], *, part: str) -> list[AddAction]:
    """Write position-sorted rows (in position order, piece after piece) as one file per chromosome."""
    open_files = {}
    for table in positions:
        for chrom in table.column("chrom").unique().to_pylist():
            if chrom not in open_files:
                open_files[chrom] = files.open(POSITIONS_SCHEMA, partition={"chrom": chrom}, part=part,
                                               row_group_rows=ROW_GROUP_ROWS["positions"])
            open_files[chrom].write(table.filter(pc.equal(table.column("chrom"), chrom)))
    return [file.close() for file in open_files.values()]


def commit_index(lake: Lake, name: str, parts: IndexParts, positions: list[AddAction], *, version: int,
                 files: ResultsFiles | None = None) -> None:
    """Write the index of results ``name`` at ``version`` from its merged parts and positions files;
    the summary last, carrying the version (the index's commit)."""
    note = {VERSION_NOTE: str(version)}
    lake.commit_browse_files(files or lake.browse_files(name, "positions"), positions, schema=POSITIONS_SCHEMA,
                             partition_by=["chrom"], note=note)
    for part, table in parts.tables().items():
        lake.write_browse(name, part, table.to_reader(), partition_by=[], row_group_rows=ROW_GROUP_ROWS[part],
                          note=note)


def index_results(lake: Lake, name: str, *, wait: float = 600.0, exact: int = EXACT_POINTS) -> None:
    """Build (or rebuild) the browse index of the results ``name``; see the module docstring.

    Each scan keeps its ``exact`` strongest tests above KEEP_ABOVE as they are (a page
    draws a few tens of thousands of points, however inflated the scan).

    One builder at a time per run (a lake lock, waited for up to ``wait`` seconds); the
    index is built from one pinned version of the results, which its summary records.
    """
    kind = lake.results_kind(name, scans=True)
    with lake_lock(lake.location, f"browse-{name}", wait=wait):
        results = lake.results(name)      # one version, read throughout
        parts, positions = index_pieces(lake, name, results, kind, exact=exact)
        commit_index(lake, name, parts, positions, version=results.version())


def index_after_job(lake: Lake, name: str, *, version: int,
                    pieces: tuple[IndexParts, ResultsFiles, list[AddAction]] | None = None) -> None:
    """Index a job's freshly committed results (``version``) — from the ``pieces`` its tasks
    summarised (the merged parts, where they wrote positions, those files) or else file by
    file. Nothing is written if a newer run has replaced the results since (its own job
    indexes it). A failure here is a warning, not the job's failure (the results stand, and
    the browser or `biolake index` builds the index later)."""
    try:
        with lake_lock(lake.location, f"browse-{name}", wait=600.0):
            results = lake.results(name)
            if results.version() != version:
                return
            if pieces is None:
                parts, positions = index_pieces(lake, name, results, lake.results_kind(name, scans=True), exact=EXACT_POINTS)
                files = None
            else:
                parts, files, positions = pieces
            commit_index(lake, name, parts, positions, version=version, files=files)
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
