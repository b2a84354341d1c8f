"""The one summary of a run's scans: counts, hits, top test, λGC and the thinned plot points.

A scan is one phenotype (and, for GxE, one exposure) tested at many features. Every
job summarises the tests of a block where it computes them (a dask task), the
summaries of all blocks merge exactly, and the merged summary is what the run stores
(its provenance and the derived ``summary``, ``points`` and ``features`` tables the
browser reads), what the job prints and what reports read. Nothing needs a second pass
over the results:

- counts: tests, failed tests (no p), hits at 5e-8, the top feature;
- λGC: from counts of −log10 p in steps of 1/1000 of a decade
  (:func:`biolake.stats.multiple.histogram_median`);
- plot points: every test with −log10 p above :data:`KEEP_ABOVE` kept with its exact QQ
  rank (the :data:`EXACT_POINTS` strongest, if a scan has more); the others, one test per
  cell of :data:`CELL_BP` base pairs × :data:`CELL_LOG10P`, plus one QQ point per
  :data:`QQ_STEP` of −log10 p from exact counts.

Every part adds up across pieces (counts, maxima, each scan's strongest tests), so its
memory is bounded by the points kept, not by the tests. numpy and Arrow only, no file:
it runs in forked dask workers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy import special

from biolake.lake.schema import PAIR_SEPARATOR
from biolake.stats.multiple import CHI2_MEDIAN, GENOME_WIDE, LOG10P_BINS, histogram_median, log10p_bins

KEEP_ABOVE = 3.0        # −log10 p above which every test is kept for the plots
CELL_BP = 3_000_000     # thinning cell width along a chromosome …
CELL_LOG10P = 0.25      # … and height in −log10 p (about 3 px of a plot 30 units tall)
QQ_STEP = 0.05          # QQ points below KEEP_ABOVE: one per step of −log10 p
EXACT_POINTS = 20_000   # at most this many tests per scan above KEEP_ABOVE kept whole (the strongest)
PINNED_LOG10P = 324.0   # where p = 0 (an underflow in imported statistics) is drawn: past any double
GENOME_WIDE_LOG10P = float(-np.log10(GENOME_WIDE))
POSITIONS_SCHEMA = pa.schema([
    ("chrom", pa.string()), ("pos", pa.int64()), ("feature", pa.string()), ("ref", pa.string()),
    ("alt", pa.string()), ("phenotype", pa.string()), ("exposure", pa.string()), ("effect", pa.float32()),
    ("log10p", pa.float32())])
# a test, its scan numbered; ``pair*``: a pair's other feature, its chromosome and position (null where a row
# tests one feature)
_TESTS = pa.schema([("scan", pa.int64()), ("feature", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()),
                    ("pair", pa.string()), ("pair_chrom", pa.string()), ("pair_pos", pa.int64()),
                    ("effect", pa.float64()), ("log10p", pa.float64())])
_FEATURES = pa.schema([("feature", pa.string()), ("chrom", pa.string()), ("pos", pa.int64())])
_STEPS = int(round(KEEP_ABOVE / QQ_STEP)) + 1   # QQ steps of the tests at or below KEEP_ABOVE


class Roles(Protocol):
    """Which columns of a results table hold a scan's names, the feature, the effect and −log10 p, and a pair's
    other feature (its id, chromosome and position; none where each row tests one feature): a results kind's
    declaration."""

    phenotype: str
    feature: str
    log10p: str
    effect: str
    extra_group: tuple[str, ...]
    pair: tuple[str, ...]


def lambda_gc_of_median(median_log10p: np.ndarray) -> np.ndarray:
    """Genomic inflation from the median −log10 p of each scan: its median χ² over the null median.

    Examples
    --------
    >>> lambda_gc_of_median(np.array([np.log10(2), np.nan])).round(3).tolist()
    [1.0, nan]
    """
    with np.errstate(invalid="ignore"):
        return special.chdtri(1, 10.0 ** -np.asarray(median_log10p, float)) / CHI2_MEDIAN


def with_lambda_gc(summary: pa.Table, *, at: int | None = None) -> pa.Table:
    """A scan summary table with its ``median_log10p`` column turned into ``lambda_gc`` (at position
    ``at``, else last)."""
    median = summary.column("median_log10p").to_numpy(zero_copy_only=False).astype(float)
    lambdas = pa.array(lambda_gc_of_median(median), pa.float64(), from_pandas=True)
    summary = summary.drop_columns(["median_log10p"])
    return summary.append_column("lambda_gc", lambdas) if at is None else summary.add_column(at, "lambda_gc", lambdas)


class ScanSummary:
    """The mergeable summary of some tests of one run (see the module docstring).

    :meth:`add` takes results rows (a block's, a file's), :meth:`add_scores` a block's
    headline −log10 p (features × scans) where there are no rows to read it from,
    :meth:`merge` folds in another piece's summary, :meth:`tables` gives the derived
    ``features``, ``points`` and ``summary`` tables. Per scan it keeps tests, failed tests,
    hits and the top test; counts per 1/1000 decade of −log10 p (for the median and λGC)
    and per QQ step; at most ``exact`` tests above KEEP_ABOVE; and the strongest other test
    of each thinning cell. ``scans`` declares the scans (phenotype, exposure) in the order
    reports list them; others are added as rows name them.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> roles = SimpleNamespace(phenotype="phenotype", feature="variant_id", log10p="log10p", effect="beta",
    ...                         extra_group=(), pair=())
    >>> summary = ScanSummary(roles, scans=[("height", None)])
    >>> summary.add(pa.table({"phenotype": ["height"] * 3, "variant_id": ["rs1", "rs2", "rs3"],
    ...                       "chrom": ["1"] * 3, "pos": [10, 20, 30], "beta": [0.1, 0.5, None],
    ...                       "log10p": [0.1, 9.0, None]})).num_rows
    2
    >>> summary.tests.tolist(), summary.failed.tolist(), summary.hits.tolist(), summary.top_variant.tolist()
    ([2], [1], [1], ['rs2'])
    """

    def __init__(self, roles: Roles, *, scans: Sequence[tuple[str, str | None]] = (),
                 exact: int = EXACT_POINTS) -> None:
        self.kind, self.exact = roles, exact
        self.scans: dict[tuple[str, str | None], int] = {}     # (phenotype, exposure) → row of the arrays below
        self.tests, self.hits = np.zeros(0, np.int64), np.zeros(0, np.int64)
        self.failed = np.zeros(0, np.int64)                   # tests that did not run (no p)
        self.top, self.top_log10p = np.zeros(0, object), np.zeros(0)
        self.counts = np.zeros((0, len(LOG10P_BINS) + 1), np.int64)   # tests per −log10 p bin
        self.steps = np.zeros((0, _STEPS), np.int64)   # tests at or below KEEP_ABOVE per QQ step
        self.far_steps: dict[tuple[int, int], int] = {}   # (scan, step): demoted tests above KEEP_ABOVE
        self.high = _TESTS.empty_table()                  # each scan's strongest tests above KEEP_ABOVE
        self.cells = _TESTS.empty_table()                 # the strongest other test of each thinning cell
        self._cells_kept = 0                              # (rows after the last compaction)
        self.features = _FEATURES.empty_table()
        self._scan_numbers(list(scans))

    @property
    def phenotypes(self) -> list[str]:
        """The phenotype of each scan, in the order of the per-scan arrays."""
        return [phenotype for phenotype, _ in self.scans]

    @property
    def top_variant(self) -> np.ndarray:
        """Each scan's top feature (None without tests)."""
        return self.top

    def lambda_gc(self) -> np.ndarray:
        """Genomic inflation per scan: median χ² over its null median (NaN without tests)."""
        return lambda_gc_of_median(histogram_median(self.counts))

    def per_phenotype(self) -> dict[str, dict[str, object]]:
        """What a run's provenance keeps of each scan, by phenotype: tests, hits at 5e-8, λGC, the
        Bonferroni threshold over its tests, and the top feature with its −log10 p."""
        return {phenotype: {"tests": int(tests), "hits_5e-8": int(hits), "lambda_gc": round(float(lam), 6),
                            "bonferroni_0.05": 0.05 / max(int(tests), 1),
                            "top_variant": top, "top_log10p": round(float(log10p), 6)}
                for phenotype, tests, hits, lam, top, log10p in zip(self.phenotypes, self.tests, self.hits,
                                                                    self.lambda_gc(), self.top, self.top_log10p)}

    def add_scores(self, features: np.ndarray, log10p: np.ndarray) -> None:
        """Fold in a block's headline tests without their rows: ``log10p`` is features × the declared
        scans (NaN where a test did not run). Counts, hits, top and λGC only; no plot points."""
        ran = ~np.isnan(log10p)
        self.failed += (~ran).sum(axis=0)
        scan = np.broadcast_to(np.arange(log10p.shape[1]), log10p.shape)[ran]
        feature = np.broadcast_to(np.asarray(features, object)[:, None], log10p.shape)[ran]
        self._count(scan, log10p[ran], lambda chosen: feature[chosen])

    def add(self, results: pa.Table) -> pa.Table:
        """Fold in some rows of the run (its results schema); returns their tests as positions rows."""
        kind, names = self.kind, results.schema.names

        def column(name: str | None, type_: pa.DataType = pa.string()) -> pa.ChunkedArray:
            if name is None or name not in names:
                return pa.chunked_array([pa.nulls(results.num_rows, type_)])
            return results.column(name).cast(type_)

        pair_id, pair_chrom, pair_pos = kind.pair or (None, None, None)

        value = results.column(kind.log10p).cast(pa.float64())
        rows = pa.table({
            "phenotype": column(kind.phenotype),
            "exposure": column(kind.extra_group[0] if kind.extra_group else None),
            "feature": column(kind.feature), "chrom": column("chrom"), "pos": column("pos", pa.int64()),
            "pair": column(pair_id), "pair_chrom": column(pair_chrom), "pair_pos": column(pair_pos, pa.int64()),
            "ref": column("ref"), "alt": column("alt"), "effect": column(kind.effect, pa.float64()),
            "log10p": pc.if_else(pc.equal(value, np.inf), PINNED_LOG10P, value)})
        rows = rows.filter(pc.is_valid(rows.column("phenotype")))
        scan = self._scan_rows(rows)
        tested = np.asarray(pc.fill_null(pc.and_(
            pc.and_(pc.is_finite(rows.column("log10p")), pc.is_valid(rows.column("feature"))),
            pc.and_(pc.is_valid(rows.column("chrom")), pc.is_valid(rows.column("pos")))), False))
        self.failed += np.bincount(scan[~tested], minlength=len(self.scans))
        tests, scan = rows.filter(pa.array(tested)), scan[tested]
        self._fold(tests, scan)
        by_position = np.lexsort((scan, tests.column("pos").to_numpy()))   # then by scan
        return tests.select(POSITIONS_SCHEMA.names).take(pa.array(by_position)).cast(POSITIONS_SCHEMA)

    def merge(self, other: ScanSummary) -> None:
        """Fold in another piece of the same run."""
        rows = self._scan_numbers(list(other.scans))
        self.tests[rows] += other.tests
        self.failed[rows] += other.failed
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
        qq = pa.table({**{field.name: pa.nulls(len(qq_scan), field.type) for field in _TESTS},
                       "scan": qq_scan, "log10p": qq_low.astype(np.float64)})
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
            self.failed = np.r_[self.failed, np.zeros(grown, np.int64)]
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

    def _count(self, scan: np.ndarray, log10p: np.ndarray, feature_of: Callable[[np.ndarray], np.ndarray]) -> None:
        """Count tests (their scan rows and −log10 p): tests, hits, top (``feature_of`` names the
        features of some of them) and the −log10 p histogram."""
        scans = len(self.scans)
        self.tests += np.bincount(scan, minlength=scans)
        self.hits += np.bincount(scan, weights=log10p > GENOME_WIDE_LOG10P, minlength=scans).astype(np.int64)
        if len(scan):
            order = np.lexsort((log10p, scan))
            last = order[np.r_[np.flatnonzero(np.diff(scan[order])), len(order) - 1]]   # each scan's strongest
            better = log10p[last] > self.top_log10p[scan[last]]
            chosen = last[better]
            self.top[scan[chosen]] = feature_of(chosen)
            self.top_log10p[scan[chosen]] = log10p[chosen]
        self.counts += np.bincount(scan * self.counts.shape[1] + log10p_bins(log10p),
                                   minlength=self.counts.size).reshape(self.counts.shape)

    def _names(self, tests: pa.Table) -> np.ndarray:
        """What the summary calls each test: its feature, or its pair "A × B" where rows test pairs."""
        feature = tests.column("feature")
        if self.kind.pair:
            feature = pc.binary_join_element_wise(tests.column("pair"), feature, PAIR_SEPARATOR)
        return feature.to_numpy(zero_copy_only=False)

    def _fold(self, tests: pa.Table, scan: np.ndarray) -> None:
        """Fold in tests (with their scan rows)."""
        log10p = tests.column("log10p").to_numpy()
        self._count(scan, log10p, lambda chosen: self._names(tests.take(pa.array(chosen))))
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
