"""The CNV jobs: per-participant burden, carriers of recurrent loci, and their association with IDPs.

Every job reads the release's ``cnvs`` table through one filter (:class:`biolake.queries.cnvs.CnvFilter`: PLINK
1.07's ``--cnv-kb``, ``--cnv-sites``, ``--cnv-score`` and their maxima, ``--cnv-del``/``--cnv-dup``), over the
participants the calls were made for (those without a segment count too: a burden of 0, a non-carrier).

- ``burden`` (kind ``cnv_burden``): a row per participant called, as PLINK 1.07's ``.cnv.indiv`` counts it, by
  type too, and the genes hit when a gene list is given (as PLINK's ``--cnv-count``, :func:`genes_hit`).
- ``carriers`` (kind ``cnv_carriers``): a row per participant and locus carried, a segment of that type covering
  at least ``min_overlap`` of the locus and of itself (:data:`biolake.cnv_loci.GENOMIC_DISORDER_LOCI` by default).
- ``assoc`` (kind ``cnv_assoc``): each IDP regressed on carrier status per locus (deletion carriers against
  non-carriers, duplication carriers against non-carriers, and the dose −1/0/+1) and on each burden measure, with
  the covariates; each IDP keeps its own missingness (the GWAS kernel, :func:`biolake.stats.linear.linear_association`);
  Cohen's d with its interval for the carrier contrasts (:func:`biolake.stats.cnv.cohens_d`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse

from biolake.cnv_loci import BUILDS, GENOMIC_DISORDER_LOCI, Locus
from biolake.frame import DesignReport, JobRequest, Report, Request, provenance, provenance_header, settings_record
from biolake.ingest.text import read_text_table
from biolake.lake.chromosomes import chromosome, plink_number
from biolake.lake.errors import BiolakeError, InputError
from biolake.lake.lake import Lake
from biolake.lake.schema import ERRORS
from biolake.queries import connect
from biolake.queries.cnvs import CnvFilter, cnv_called, cnv_segments
from biolake.run import publish_table
from biolake.stats.cnv import BURDEN_MEASURES, Segments, burden, carrier_doses, cohens_d, reciprocal_overlap
from biolake.stats.linear import linear_association, prepare_linear

CARRIER_MODELS = ("del", "dup", "dose")   # deletion vs non-carriers, duplication vs non-carriers, −1/0/+1


@dataclass(frozen=True)
class Region:
    """A named stretch of a chromosome (1-based, inclusive): a gene of a gene list, a locus of a locus list."""

    name: str
    chrom: str
    start: int
    end: int

    @property
    def number(self) -> int:
        """Its chromosome as PLINK numbers it, as segments carry it."""
        return plink_number(self.chrom)


def read_regions(path: str | Path, *, flag: str) -> list[Region]:
    """A region list as PLINK's ``--cnv-count``/``--cnv-intersect`` read one: CHR BP1 BP2 NAME per line,
    whitespace-separated, no header; errors name the line."""
    table = read_text_table(path, whitespace=True, has_header=False, expected_columns=4)
    if table.width != 4:
        raise InputError(path, f"{flag}: expected 4 fields per line (CHR BP1 BP2 NAME), got {table.width}", line=1)
    regions = []
    for line, (chrom, start, end, name) in enumerate(table.iter_rows(), start=1):
        code = chromosome(chrom)
        if code is None or not (start.isdigit() and end.isdigit()) or int(end) < int(start):
            raise InputError(path, f"{flag}: expected CHR BP1 BP2 NAME with a known chromosome and BP1 ≤ BP2, got "
                             f"{' '.join((chrom, start, end, name))!r}", line=line)
        regions.append(Region(name, code, int(start), int(end)))
    return regions


def _segments(table: pa.Table) -> Segments:
    return Segments(*(table.column(name).to_numpy(zero_copy_only=False)
                      for name in ("owner", "chrom", "start", "end", "deletion")))


def genes_hit(segments: Segments, participants: int, genes: list[Region]) -> np.ndarray:
    """Per participant, the genes its segments overlap, summed over its segments, as PLINK 1.07's ``--cnv-count``
    counts them (COUNT): a gene overlapped by two segments counts twice, and a segment sharing only an end base with
    a gene does not overlap it.

    Examples
    --------
    >>> segments = Segments(np.array([0, 0, 1]), np.array([1, 1, 1]), np.array([100, 300, 200]),
    ...                     np.array([250, 400, 300]), np.array([True, True, False]))
    >>> genes_hit(segments, 2, [Region("A", "1", 200, 350), Region("B", "1", 300, 500)]).tolist()
    [3, 1]
    """
    counts = np.zeros(participants, np.int64)
    for gene in genes:
        on = (segments.chrom == gene.number) & (segments.start < gene.end) & (segments.end > gene.start)
        counts += np.bincount(segments.owner[on], minlength=participants)
    return counts


@dataclass(frozen=True, kw_only=True)
class CnvBurdenSettings(Request):
    """Which segments count (``cnv_filter``) and, optionally, a gene list (``genes``: CHR BP1 BP2 NAME)."""

    cnv_filter: CnvFilter = field(default_factory=CnvFilter)
    genes: str | None = None


@dataclass(frozen=True, kw_only=True)
class CnvBurdenReport(Report):
    """What a burden run wrote: participants, and segments counted of those the filter saw."""

    participants: int
    segments: int


def run_cnv_burden(lake: Lake, settings: CnvBurdenSettings) -> CnvBurdenReport:
    """Count each called participant's segments and kb; commit ``LAKE/results/NAME`` (``biolake cnv burden``).

    Examples
    --------
    >>> report = run_cnv_burden(Lake.open("lake"), CnvBurdenSettings(name="burden", cnv_filter=CnvFilter(min_kb=100)))
    >>> report.participants
    500
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    genes = read_regions(settings.genes, flag="--genes") if settings.genes else None
    with connect(lake, release=settings.release) as con:
        called = cnv_called(con)
        segments = _segments(cnv_segments(con, settings.cnv_filter))
        release = con.release
    measures = burden(segments, len(called))
    if genes is not None:
        measures["genes"] = genes_hit(segments, len(called), genes)
    table = pa.table({"participant_id": pa.array(called, pa.string()), **measures})
    record = {**provenance_header("cnv_burden", release=release), "settings": settings_record(settings),
              "filter": settings.cnv_filter.record(), "segments": len(segments.owner),
              **({"genes": len(genes)} if genes is not None else {})}
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    return CnvBurdenReport(name=settings.name, version=version, participants=len(called),
                           segments=len(segments.owner))


def chosen_loci(build: str, path: str | None) -> list[Region]:
    """The loci of a carriers or assoc run: a locus list (``path``: CHR BP1 BP2 NAME) or the shipped genomic-disorder
    loci in ``build``."""
    if build not in BUILDS:
        raise BiolakeError(f"--build {build!r}: one of {', '.join(BUILDS)}")
    if path:
        return read_regions(path, flag="--loci")
    return [Region(locus.name, *locus.stretch(build)) for locus in GENOMIC_DISORDER_LOCI]


@dataclass(frozen=True, kw_only=True)
class CarrierChoice:
    """How carriers are called: the loci (``loci``: a CHR BP1 BP2 NAME file; None: the shipped genomic-disorder
    loci of ``build``) and the reciprocal overlap a segment needs (``min_overlap``)."""

    loci: str | None = None
    build: str = "hg19"
    min_overlap: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.min_overlap <= 1:
            raise BiolakeError(f"--min-overlap {self.min_overlap:g}: a share of the locus and of the segment, in "
                               "(0, 1]")
        if self.build not in BUILDS:
            raise BiolakeError(f"--build {self.build!r}: one of {', '.join(BUILDS)}")

    def regions(self) -> list[Region]:
        return chosen_loci(self.build, self.loci)

    def record(self) -> dict:
        return {"loci": self.loci or f"genomic-disorder loci ({self.build})", "min_overlap": self.min_overlap}


@dataclass(frozen=True, kw_only=True)
class CnvCarriersSettings(Request):
    """Which segments count (``cnv_filter``) and how carriers are called (``carriers``)."""

    cnv_filter: CnvFilter = field(default_factory=CnvFilter)
    carriers: CarrierChoice = field(default_factory=CarrierChoice)


@dataclass(frozen=True, kw_only=True)
class CnvCarriersReport(Report):
    """What a carriers run wrote: per locus its deletion and duplication carriers."""

    carriers: dict[str, tuple[int, int]]


def run_cnv_carriers(lake: Lake, settings: CnvCarriersSettings) -> CnvCarriersReport:
    """Call carriers of each locus; commit ``LAKE/results/NAME``, a row per participant and locus carried
    (``biolake cnv carriers``).

    Examples
    --------
    >>> report = run_cnv_carriers(Lake.open("lake"), CnvCarriersSettings(name="carriers"))
    >>> sorted(report.carriers)[:2]
    ['15q11.2_BP1-BP2', '15q13.3_BP4-BP5']
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    loci = settings.carriers.regions()
    with connect(lake, release=settings.release) as con:
        called = cnv_called(con)
        segments = _segments(cnv_segments(con, settings.cnv_filter))
        release = con.release
    rows, counts = [], {}
    for locus in loci:
        overlap = np.where(segments.chrom == locus.number,
                           reciprocal_overlap(segments.start, segments.end, locus.start, locus.end), 0.0)
        for k in np.flatnonzero(overlap >= settings.carriers.min_overlap):
            rows.append({"participant_id": called[segments.owner[k]], "locus": locus.name, "chrom": locus.chrom,
                         "start": int(segments.start[k]), "end": int(segments.end[k]),
                         "type": "DEL" if segments.deletion[k] else "DUP", "overlap": float(overlap[k])})
        carried = [row["type"] for row in rows if row["locus"] == locus.name]
        counts[locus.name] = (carried.count("DEL"), carried.count("DUP"))
    schema = pa.schema([("participant_id", pa.string()), ("locus", pa.string()), ("chrom", pa.string()),
                        ("start", pa.int64()), ("end", pa.int64()), ("type", pa.string()), ("overlap", pa.float64())])
    record = {**provenance_header("cnv_carriers", release=release), "settings": settings_record(settings),
              "filter": settings.cnv_filter.record(), **settings.carriers.record(),
              "carriers": {name: {"del": deleted, "dup": duplicated} for name, (deleted, duplicated) in counts.items()}}
    version = publish_table(lake, settings.name, pa.Table.from_pylist(rows, schema=schema), provenance=record,
                            replace=settings.replace)
    return CnvCarriersReport(name=settings.name, version=version, carriers=counts)


@dataclass(frozen=True, kw_only=True)
class CnvAssocSettings(JobRequest):
    """IDPs (``phenotypes``) against carrier status of each locus and each burden measure (``burden_measures``:
    none to skip them), with ``covariates``; a locus test runs with at least ``min_carriers`` carriers among an
    IDP's participants."""

    phenotypes: str | list[str]
    cnv_filter: CnvFilter = field(default_factory=CnvFilter)
    carriers: CarrierChoice = field(default_factory=CarrierChoice)
    burden_measures: tuple[str, ...] = BURDEN_MEASURES
    min_carriers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.burden_measures) - set(BURDEN_MEASURES))
        if unknown:
            raise BiolakeError(f"--burden {','.join(unknown)}: not burden measures ({', '.join(BURDEN_MEASURES)})")
        if self.min_carriers < 1:
            raise BiolakeError(f"--min-carriers {self.min_carriers}: at least 1")


@dataclass(frozen=True, kw_only=True)
class CnvAssocReport(DesignReport):
    """What an assoc run wrote: its tests (locus × model and burden measures) and rows."""

    tests: int
    rows: int


def run_cnv_assoc(lake: Lake, settings: CnvAssocSettings) -> CnvAssocReport:
    """Test each IDP against each locus's carriers and each burden measure; commit ``LAKE/results/NAME``
    (``biolake cnv assoc``).

    Examples
    --------
    >>> report = run_cnv_assoc(Lake.open("lake"), CnvAssocSettings(
    ...     name="cnv_idps", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex"]))
    >>> report.rows == 2 * report.tests
    True
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    loci = settings.carriers.regions()
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con, assay="cnv")
        called = cnv_called(con)
        segments = _segments(cnv_segments(con, settings.cnv_filter))
    rows = chosen.sample_index   # the analysed participants' positions in the called set
    doses = carrier_doses(segments, len(called), [(locus.number, locus.start, locus.end) for locus in loci],
                          settings.carriers.min_overlap)[rows]
    measures = burden(segments, len(called))
    features, names, models, regions = [], [], [], []
    for k, locus in enumerate(loci):
        dose = doses[:, k]
        for model, values in (("del", np.where(dose > 0, np.nan, -dose)), ("dup", np.where(dose < 0, np.nan, dose)),
                              ("dose", dose)):
            features.append(values)
            names.append(locus.name)
            models.append(model)
            regions.append(locus)
    for measure in settings.burden_measures:
        features.append(measures[measure][rows].astype(float))
        names.append(measure)
        models.append("burden")
        regions.append(None)
    values = np.array(features).reshape(len(features), len(rows))
    missing = np.isnan(values)
    model = prepare_linear(chosen.phenotypes, chosen.covariates)
    result = linear_association(np.where(missing, 0.0, values), model, missing=scipy.sparse.csr_array(missing))
    present = ~np.isnan(chosen.phenotypes)                                   # samples × phenotypes
    carriers = ((values != 0) & ~missing).astype(float) @ present            # tests × phenotypes
    binary = np.isin(models, ["del", "dup"])[:, None]
    error = np.array(ERRORS, dtype=object)[result.error]
    few = np.isin(models, CARRIER_MODELS)[:, None] & (carriers < settings.min_carriers)
    error = np.where(few & (error == None), "too few samples", error)   # noqa: E711 (an object array)
    ran = error == None   # noqa: E711
    d, lower, upper = cohens_d(result.statistic, carriers, result.n - carriers)
    phenotypes = chosen.phenotype_names
    tests, count = len(names), len(phenotypes)

    def column(values: np.ndarray, keep: np.ndarray | None = None) -> pa.Array:
        chosen_values = np.where(ran if keep is None else ran & keep, values, np.nan).ravel()
        return pa.array(chosen_values, pa.float64(), from_pandas=True)

    table = pa.table({
        "phenotype": pa.array(np.tile(phenotypes, tests), pa.string()),
        "test": pa.array(np.repeat(names, count), pa.string()),
        "model": pa.array(np.repeat(models, count), pa.string()),
        "chrom": pa.array(np.repeat([r.chrom if r else None for r in regions], count), pa.string()),
        "start": pa.array(np.repeat([r.start if r else None for r in regions], count), pa.int64()),
        "end": pa.array(np.repeat([r.end if r else None for r in regions], count), pa.int64()),
        "n": pa.array(result.n.ravel(), pa.int64()),
        "n_carriers": pa.array(np.where(np.isin(models, CARRIER_MODELS)[:, None], carriers, np.nan).ravel(),
                               pa.float64(), from_pandas=True).cast(pa.int64()),
        "beta": column(result.beta), "se": column(result.se), "t": column(result.statistic), "p": column(result.p),
        "log10p": column(result.log10p),
        "cohens_d": column(d, binary), "cohens_d_lower": column(lower, binary), "cohens_d_upper": column(upper, binary),
        "error": pa.array(error.ravel(), pa.string())})
    record = provenance("cnv_assoc", settings, chosen, filter=settings.cnv_filter.record(),
                        **settings.carriers.record())
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    return CnvAssocReport(name=settings.name, version=version, tests=tests, rows=table.num_rows,
                          **DesignReport.of(chosen))


__all__ = ["CnvAssocSettings", "CnvBurdenSettings", "CnvCarriersSettings", "Locus", "run_cnv_assoc",
           "run_cnv_burden", "run_cnv_carriers"]
