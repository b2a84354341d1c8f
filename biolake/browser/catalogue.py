"""What the browser knows of a lake: its runs, their browse indexes and the IDP data dictionary.

Runs are loaded once and refreshed (new or rewritten results get their index built) at
most every :data:`REFRESH_SECONDS`, so a page never reads the Delta logs of every run.
A run of LD clumps (``biolake clump``: one row per locus, as small as an index) is read
whole when loaded, so the pages of the results it clumped list its clumps; so are tables of
h² and rg (a row per phenotype or pair, :data:`biolake.estimates.ESTIMATE_KINDS`), which
have no scans and no index. A run whose rows each test a pair (SNP × SNP) also finds a pair's row and its
phenotype by the two variants' genotype classes, for the pair's page.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.estimates import ESTIMATE_KINDS
from biolake.frame import recorded_design
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake, Retraction
from biolake.index import index_results
from biolake.queries.browse import BrowseIndex, indexed_version
from biolake.queries.pairs import pair_genotypes, pair_row
from biolake.lake.schema import RESULTS_KINDS
from biolake.stats.genotype_classes import class_means
from biolake.stats.plots import chromosome_order
from biolake.stats.summary import with_lambda_gc

REFRESH_SECONDS = 30.0
CLUMP_COLUMNS = ["phenotype", "variant_id", "chrom", "pos", "beta", "log10p", "total", "sp2"]
_POSITION = re.compile(r"^(?:chr)?([0-9]{1,2}|X|Y|XY|MT|M):([0-9][0-9,]*)(?:-([0-9][0-9,]*))?$", re.IGNORECASE)


@dataclass(frozen=True)
class Field:
    """One entry of the IDP data dictionary."""

    field: str
    field_id: str
    name: str
    unit: str
    category: str


@dataclass
class Run:
    """One results table (at one version) and its browse index."""

    name: str
    kind: str
    results_version: int
    index_version: int                   # the Delta version of its summary (a rebuild changes it)
    provenance: dict[str, Any]
    index: BrowseIndex
    summary: pa.Table                    # per scan, with lambda_gc
    offsets: dict[str, int] = field(default_factory=dict)   # chromosome → start on the genome-wide axis
    clumps: pa.Table | None = None       # a clump run's clumps (CLUMP_COLUMNS)

    @property
    def retracted(self) -> str | None:
        """When and why the release these results were computed from was retracted, if it was."""
        return self.provenance.get("retracted")

    def scans(self) -> list[dict[str, Any]]:
        return self.summary.to_pylist()

    def has_scan(self, phenotype: str, exposure: str | None) -> bool:
        return any(s["phenotype"] == phenotype and s["exposure"] == exposure for s in self.scans())

    @property
    def pair(self) -> tuple[str, ...]:
        """The columns of a pair's other feature (id, chromosome, position) where each row tests a pair, else ()."""
        return RESULTS_KINDS[self.kind].pair

    def pair_places(self, row: dict[str, Any]) -> list[tuple[str, str, int]]:
        """The two features a row of pairs tests, as (id, chromosome, position): the pair's other, then the one
        placing the row."""
        kind = RESULTS_KINDS[self.kind]
        return [tuple(row[column] for column in columns) for columns in (kind.pair, (kind.feature, *kind.position))]


@dataclass(frozen=True)
class PairClasses:
    """A tested pair's phenotype by genotype class (:func:`biolake.stats.genotype_classes.class_means`): its
    variants (variant_id, chrom, pos, ref, alt; the pair's other feature first), the 3 × 3 means, how many
    samples they are over, the release read, and the flags of the run not replayed in rebuilding its samples
    (:func:`biolake.frame.recorded_design`)."""

    variants: list[dict[str, Any]]
    means: list[dict[str, Any]]
    samples: int
    release: str
    unreplayed: list[str]

    @property
    def grid(self) -> list[list[dict[str, Any]]]:
        """The means as 3 × 3 rows: a row per class of the first variant, a cell per class of the second."""
        return [self.means[k:k + 3] for k in range(0, 9, 3)]


@dataclass(frozen=True)
class Estimates:
    """A results table of h² per phenotype or rg per pair (one version), read whole."""

    name: str
    kind: str
    results_version: int
    provenance: dict[str, Any]
    rows: pa.Table

    @property
    def retracted(self) -> str | None:
        """When and why the release these results were computed from was retracted, if it was."""
        return self.provenance.get("retracted")


class Catalogue:
    """The lake's runs (kinds the browser knows) and the dictionary of IDP fields of its releases.

    Pages read ``runs`` while :meth:`refresh` replaces it whole (one assignment), so a page
    sees either the old set of runs or the new one. Missing or stale indexes are built
    before the server starts, and later in a background thread; meanwhile a rewritten run
    is served at its previous version.
    """

    def __init__(self, lake: Lake, *, log: Callable[[str], None] = print) -> None:
        self.lake, self._log = lake, log
        self.runs: dict[str, Run] = {}
        self.estimates: dict[str, Estimates] = {}
        self.fields: dict[str, Field] = {}
        self._refreshing = threading.Lock()
        self._checked = -np.inf
        self._failed: dict[str, int] = {}      # run → version whose indexing failed (not retried)
        self._building: set[str] = set()       # runs a background thread is indexing
        self.refresh(build_now=True)

    def refresh(self, *, build_now: bool = False) -> None:
        """Pick up new and rewritten results, at most every REFRESH_SECONDS (one refresh at a time)."""
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            if not build_now and time.monotonic() - self._checked < REFRESH_SECONDS:
                return
            self._checked = time.monotonic()
            runs, estimates, stale = {}, {}, []
            # read once per refresh, not per run (each is several requests on a bucket)
            retractions, dropping = self.lake.retractions(), self.lake.drops_pending()
            for name in self.lake.results_names(dropping=dropping):
                try:
                    provenance = self.lake.results_provenance(name, retractions=retractions, dropping=dropping)
                    kind = RESULTS_KINDS.get(provenance.get("kind"))
                    if kind is None or not (kind.scans or kind.name in ESTIMATE_KINDS):
                        continue                       # polygenic scores and the like: nothing to plot
                    version = self.lake.results(name, dropping=dropping).version()
                    if kind.name in ESTIMATE_KINDS:
                        estimates[name] = self._estimates(name, version, provenance, dropping)
                        continue
                    current = self.runs.get(name)
                    if current is not None and current.results_version == version:
                        current = replace(current, provenance=provenance)   # "retracted" may be new
                    summary = self.lake.derived(name, "summary")
                    if (current is not None and current.results_version == version
                            and summary is not None and current.index_version == summary.version()):
                        runs[name] = current
                    elif summary is not None and indexed_version(self.lake, name) == version:
                        runs[name] = _load_run(self.lake, name, version, provenance)
                    else:
                        if self._failed.get(name) != version and name not in self._building:
                            stale.append(name)
                        if current is not None:
                            runs[name] = current
                except Exception as exc:   # one broken run must not take the others down
                    self._log(f"results {name!r} left out of the browser: {type(exc).__name__}: {exc}")
            self.runs, self.estimates = runs, estimates
            self.fields = _load_fields(self.lake, retractions)
        finally:
            self._refreshing.release()
        if stale:
            self._building.update(stale)
            if build_now:
                self._build(stale)
            else:
                threading.Thread(target=self._build, args=(stale,), daemon=True).start()

    def _estimates(self, name: str, version: int, provenance: dict[str, Any], dropping: set[str]) -> Estimates:
        """The h² or rg table ``name`` at ``version``: the one loaded, if it is that version, else read whole."""
        loaded = self.estimates.get(name)
        if loaded is not None and loaded.results_version == version:
            return replace(loaded, provenance=provenance)   # "retracted" may be new
        return Estimates(name, provenance["kind"], version, provenance,
                         self.lake.results_dataset(name, dropping=dropping).to_table())

    def _build(self, names: list[str]) -> None:
        """Index the runs ``names``, then load them."""
        try:
            for name in names:
                self._log(f"indexing results {name!r} for the browser …")
                version = -1
                try:
                    version = self.lake.results(name).version()
                    index_results(self.lake, name, wait=0.0)
                except Exception as exc:    # logged; the run stays out (or at its old version)
                    self._failed[name] = version
                    self._log(f"results {name!r} could not be indexed ({type(exc).__name__}: {exc}); "
                              "`biolake index` retries")
        finally:
            self._building.difference_update(names)
        self._checked = -np.inf
        self.refresh()

    def run(self, name: str) -> Run:
        runs = self.runs     # one snapshot: a refresh may swap the dict meanwhile
        if name not in runs:
            raise LookupError(f"no results named {name!r} in this lake")
        return runs[name]

    def describe(self, phenotype: str) -> Field | None:
        """The dictionary entry of a phenotype column (an IDP field such as 25010-2.0), if any."""
        return self.fields.get(phenotype)

    def phewas(self, feature: str) -> tuple[tuple[str, int] | None, list[dict[str, Any]]]:
        """Every test of ``feature`` in every run: (its position, rows with run, scan, effect, log10p)."""
        where, rows = None, []
        for run in list(self.runs.values()):
            position = run.index.position_of(feature)
            if position is None:
                continue
            where = where or position
            for row in run.index.at(*position, feature).to_pylist():
                described = self.describe(row["phenotype"])
                rows.append({**row, "run": run.name, "kind": run.kind,
                             "name": described.name if described else row["phenotype"],
                             "category": described.category if described else run.name})
        rows.sort(key=lambda r: -r["log10p"])
        return where, rows

    def clump_runs(self, run: Run) -> list[Run]:
        """The runs of LD clumps of ``run``'s results (``biolake clump --result``)."""
        return [other for other in list(self.runs.values())
                if other.clumps is not None and other.provenance.get("result") == run.name]

    def clumps_of(self, run: Run, phenotype: str) -> list[tuple[Run, list[dict[str, Any]]]]:
        """``phenotype``'s LD clumps, strongest first, in ``run`` if it is a clump run and in its :meth:`clump_runs`."""
        return [(other, other.clumps.filter(pc.equal(other.clumps.column("phenotype"), phenotype)).sort_by(
            [("log10p", "descending")]).to_pylist())
            for other in ([run] if run.clumps is not None else []) + self.clump_runs(run)]

    def pair_test(self, run: Run, phenotype: str, exposure: str | None, other: str,
                  feature: str) -> dict[str, Any] | None:
        """The row of ``run`` (a run of pairs) testing ``other`` × ``feature`` in a scan, or None if it has none."""
        place = run.index.position_of(feature)
        if place is None:
            return None
        return pair_row(self.lake, run.name, RESULTS_KINDS[run.kind], phenotype=phenotype, exposure=exposure,
                        other=other, feature=feature, place=place)

    def pair_classes(self, run: Run, phenotype: str, row: dict[str, Any]) -> PairClasses:
        """The phenotype of a pair's ``row`` by the genotype classes of its two variants, over the samples of the
        run's design (rebuilt from its provenance) with the phenotype and both calls."""
        chosen, unreplayed = recorded_design(self.lake, run.provenance)
        if phenotype not in chosen.phenotype_names:
            raise BiolakeError(f"the run's queries, run again on release {chosen.release!r}, no longer give "
                               f"{phenotype!r} values to test")
        variants, dosages = pair_genotypes(self.lake, run.pair_places(row), chosen)
        y = chosen.phenotypes[:, chosen.phenotype_names.index(phenotype)]
        means = class_means(dosages[0], dosages[1], y)
        return PairClasses(variants.to_pylist(), means.to_pylist(), int(pc.sum(means.column("n")).as_py()),
                           chosen.release, unreplayed)

    def features_at(self, chrom: str, pos: int) -> list[str]:
        """The features any run tested at chrom:pos."""
        found: set[str] = set()
        for run in self.runs.values():
            found.update(run.index.at(chrom, pos).column("feature").to_pylist())
        return sorted(found)

    def search(self, query: str) -> dict[str, Any]:
        """What a search box entry names: a position or region, a feature id, or phenotypes.

        Returns {"position": (chrom, start, end)} for chrom:pos[-end], {"feature": id}
        for an id some run tested, or {"scans": [(run, phenotype, exposure, label), …]}
        for phenotype names, columns or field ids containing the text (case-insensitive).
        """
        text = query.strip()
        if not text:
            return {"scans": []}
        located = _POSITION.match(text)
        if located:
            chrom = {"M": "MT"}.get(located.group(1).upper(), located.group(1).upper())
            start = int(located.group(2).replace(",", ""))
            end = int(located.group(3).replace(",", "")) if located.group(3) else start
            return {"position": (chrom, start, end)}
        if any(run.index.position_of(text) is not None for run in self.runs.values()):
            return {"feature": text}
        needle = text.lower()
        scans = []
        for run in self.runs.values():
            for scan in run.scans():
                described = self.describe(scan["phenotype"])
                words = [scan["phenotype"], scan["exposure"] or ""]
                if described:
                    words += [described.name, described.field_id, described.category]
                if any(needle in w.lower() for w in words) or (described and needle == described.field_id):
                    label = described.name if described else scan["phenotype"]
                    scans.append((run.name, scan["phenotype"], scan["exposure"], label))
        return {"scans": scans}


def _load_run(lake: Lake, name: str, version: int, provenance: dict[str, Any]) -> Run:
    index = BrowseIndex(lake, name)
    summary = with_lambda_gc(index.summary())
    index_version = lake.derived(name, "summary").version()
    extents = index.chromosome_extents()
    names = np.array(sorted(extents), dtype=object)
    offsets, total = {}, 0
    for chrom in names[np.argsort(chromosome_order(names), kind="stable")]:   # 1…22, X, Y, MT, then by name
        offsets[chrom] = total
        total += extents[chrom] + 1
    clumps = (lake.results_dataset(name).to_table(columns=CLUMP_COLUMNS) if provenance["kind"] == "clump"
              else None)
    return Run(name, provenance["kind"], version, index_version, provenance, index, summary, offsets, clumps)


def _load_fields(lake: Lake, retractions: dict[str, Retraction]) -> dict[str, Field]:
    """The IDP data dictionary of every release not retracted (a later release's entry wins)."""
    fields: dict[str, Field] = {}
    for release in lake.releases(retractions=retractions):
        if "idp_fields" not in release.tables:
            continue
        for row in lake.release_dataset("idp_fields", release).to_table().to_pylist():
            fields[row["field"]] = Field(row["field"], str(row.get("field_id") or ""), row.get("name") or row["field"],
                                         row.get("unit") or "", row.get("category") or "uncategorised")
    return fields


def parse_position(chrom: str, start: str | int, end: str | int | None = None) -> tuple[str, int, int]:
    """Check a chrom/start/end from a request; BiolakeError says what is wrong."""
    try:
        low = int(start)
        high = int(end) if end not in (None, "") else low
    except (TypeError, ValueError):
        raise BiolakeError(f"positions must be whole numbers, got start={start!r} end={end!r}") from None
    if low < 0 or high < low:
        raise BiolakeError(f"a region needs 0 ≤ start ≤ end, got {low}–{high}")
    return str(chrom), low, high
