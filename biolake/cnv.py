"""The CNV jobs: per-participant burden, carriers of recurrent loci, and their association with IDPs.

Every job reads the release's ``cnvs`` table through one filter (:class:`biolake.queries.cnvs.CnvFilter`: PLINK
1.07's ``--cnv-kb``, ``--cnv-sites``, ``--cnv-score`` and their maxima, ``--cnv-del``/``--cnv-dup``), over the
participants the calls were made for (those without a segment count too: a burden of 0, a non-carrier).

- ``burden`` (kind ``cnv_burden``): a row per participant called, as PLINK 1.07's ``.cnv.indiv`` counts it, by
  type too, and the genes hit when a gene list is given (as PLINK's ``--cnv-count``, :func:`genes_hit`).
- ``carriers`` (kind ``cnv_carriers``): a row per participant, locus and segment covering at least ``min_overlap`` of
  the locus and of itself (:data:`biolake.cnv_loci.GENOMIC_DISORDER_LOCI` by default); each segment is judged alone
  (a call split in pieces, each under the share, makes no carrier) unless a participant's fragments are first
  joined (``merge_gap``, as PennCNV's clean_cnv.pl combineseg), and a participant with both a deletion and a
  duplication there is listed with both but left out of that locus's tests.
- ``assoc`` (kind ``cnv_assoc``, a scan per IDP): each IDP regressed on carrier status per locus, and per window
  of a genome-wide CNV scan (deletion carriers against non-carriers, duplication carriers against non-carriers,
  and the dose −1/0/+1), with the covariates; each IDP keeps its own missingness (the GWAS kernel,
  :func:`biolake.stats.linear.linear_association`); Cohen's d with its interval for the carrier contrasts
  (:func:`biolake.stats.cnv.cohens_d`). Its ``NAME_burden`` (kind ``cnv_burden_assoc``): each IDP against each
  burden measure.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import scipy.sparse

from biolake.cnv_loci import BUILDS, GENOMIC_DISORDER_LOCI, Locus
from biolake.frame import DesignReport, JobRequest, Report, Request, provenance, provenance_header, settings_record
from biolake.lake.chromosomes import PLINK_ORDER, chromosome, plink_number
from biolake.lake.errors import BiolakeError, InputError
from biolake.lake.lake import Lake
from biolake.queries import connect
from biolake.queries.cnvs import CnvFilter, cnv_called, cnv_segments
from biolake.queries.sql import LakeConnection
from biolake.run import publish_table
from biolake.stats.cnv import (BURDEN_MEASURES, Segments, burden, carrier_doses, cohens_d, merged,
                               reciprocal_overlap, window_doses)
from biolake.stats.association import OK, TOO_FEW_SAMPLES, AssociationResult
from biolake.stats.linear import LinearModel, linear_association, prepare_linear

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
    """A region list as PLINK's ``--cnv-count``/``--cnv-intersect`` read one: CHR BP1 BP2 [NAME] per line
    (whitespace-separated, no header; a region without a name is called CHR:BP1-BP2), blank lines skipped; a region
    listed twice counts once, as in PLINK. Errors name the flag, the file and the line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, f"{flag}: file not found")
    regions: dict[tuple[str, int, int], Region] = {}
    for line, text in enumerate(path.read_text().splitlines(), start=1):
        fields = text.split()
        if not fields:
            continue
        code = chromosome(fields[0]) if len(fields) in (3, 4) else None
        if code is None or not (fields[1].isdigit() and fields[2].isdigit()) or int(fields[2]) < int(fields[1]):
            raise InputError(path, f"{flag}: expected CHR BP1 BP2 [NAME] with a known chromosome and BP1 ≤ BP2, got "
                             f"{text.strip()[:80]!r}", line=line)
        stretch = (code, int(fields[1]), int(fields[2]))
        regions.setdefault(stretch, Region(fields[3] if len(fields) == 4 else f"{code}:{fields[1]}-{fields[2]}",
                                           *stretch))
    return list(regions.values())


def _called_segments(con: LakeConnection, cnv_filter: CnvFilter) -> tuple[list[str], Segments]:
    """The participants the release's CNVs were called for, and their segments passing ``cnv_filter``."""
    table = cnv_segments(con, cnv_filter)
    return cnv_called(con), Segments(*(table.column(name).to_numpy(zero_copy_only=False)
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
        called, segments = _called_segments(con, settings.cnv_filter)
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
    if path:
        return read_regions(path, flag="--loci")
    return [Region(locus.name, *locus.stretch(build)) for locus in GENOMIC_DISORDER_LOCI]


@dataclass(frozen=True, kw_only=True)
class CarrierChoice:
    """How carriers are called: the loci (``loci``: a CHR BP1 BP2 NAME file; None: the shipped genomic-disorder
    loci of ``build``), the reciprocal overlap a segment needs (``min_overlap``), and the gap, as a share of the
    stretch two calls of one type span, up to which a participant's calls are first joined (``merge_gap``:
    :func:`biolake.stats.cnv.merged`; 0: only touching or overlapping calls)."""

    loci: str | None = None
    build: str = "hg19"
    min_overlap: float = 0.5
    merge_gap: float = 0.0

    def __post_init__(self) -> None:
        if not 0 < self.min_overlap <= 1:
            raise BiolakeError(f"--min-overlap {self.min_overlap:g}: a share of the locus and of the segment, in "
                               "(0, 1]")
        if self.build not in BUILDS:
            raise BiolakeError(f"--build {self.build!r}: one of {', '.join(BUILDS)}")
        if not 0 <= self.merge_gap < 1:
            raise BiolakeError(f"--merge-gap {self.merge_gap:g}: a share of the stretch two calls span, in [0, 1)")

    def regions(self) -> list[Region]:
        return chosen_loci(self.build, self.loci)

    def joined(self, segments: Segments) -> Segments:
        """The segments carriers are judged by: a participant's fragments of one call joined (:attr:`merge_gap`)."""
        return merged(segments, self.merge_gap)

    def record(self) -> dict:
        return {"loci": self.loci or f"genomic-disorder loci ({self.build})", "min_overlap": self.min_overlap,
                "merge_gap": self.merge_gap}


@dataclass(frozen=True, kw_only=True)
class CnvCarriersSettings(Request):
    """Which segments count (``cnv_filter``) and how carriers are called (``carriers``)."""

    cnv_filter: CnvFilter = field(default_factory=CnvFilter)
    carriers: CarrierChoice = field(default_factory=CarrierChoice)


@dataclass(frozen=True, kw_only=True)
class CnvCarriersReport(Report):
    """What a carriers run wrote: per locus its deletion and duplication carriers (participants)."""

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
        called, segments = _called_segments(con, settings.cnv_filter)
        release = con.release
    segments = settings.carriers.joined(segments)
    rows, counts = [], {}
    for locus in loci:
        overlap = np.where(segments.chrom == locus.number,
                           reciprocal_overlap(segments.start, segments.end, locus.start, locus.end), 0.0)
        for k in np.flatnonzero(overlap >= settings.carriers.min_overlap):
            rows.append({"participant_id": called[segments.owner[k]], "locus": locus.name, "chrom": locus.chrom,
                         "start": int(segments.start[k]), "end": int(segments.end[k]),
                         "type": "DEL" if segments.deletion[k] else "DUP", "overlap": float(overlap[k])})
        carried = {(row["participant_id"], row["type"]) for row in rows if row["locus"] == locus.name}
        counts[locus.name] = tuple(sum(kind == wanted for _, kind in carried) for wanted in ("DEL", "DUP"))
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
    """IDPs (``phenotypes``) against carrier status of each locus, of each window of ``scan_kb`` kb with a CNV (None:
    no window scan), and against each burden measure (``burden_measures``: none to skip them), with ``covariates``;
    a locus or window test runs with at least ``min_carriers`` carriers among an IDP's participants."""

    phenotypes: str | list[str]
    cnv_filter: CnvFilter = field(default_factory=CnvFilter)
    carriers: CarrierChoice = field(default_factory=CarrierChoice)
    burden_measures: tuple[str, ...] = BURDEN_MEASURES
    scan_kb: float | None = None
    min_carriers: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        unknown = sorted(set(self.burden_measures) - set(BURDEN_MEASURES))
        if unknown:
            raise BiolakeError(f"--burden {','.join(unknown)}: not burden measures ({', '.join(BURDEN_MEASURES)})")
        if self.min_carriers < 1:
            raise BiolakeError(f"--min-carriers {self.min_carriers}: at least 1")
        if self.scan_kb is not None and not 1 <= self.scan_kb <= 100_000:
            raise BiolakeError(f"--scan-kb {self.scan_kb:g}: a window of 1 kb to 100 Mb")


@dataclass(frozen=True, kw_only=True)
class CnvAssocReport(DesignReport):
    """What an assoc run wrote: its locus and window tests (each model a test) and their rows, and the burden
    measures tested (``NAME_burden``)."""

    tests: int
    rows: int
    windows: int
    measures: int


BURDEN = "_burden"        # the burden tests' table: the run's name with this after it
WINDOW_CHUNK = 16         # windows tested at a time (3 models each: dense rows of every participant)


def run_cnv_assoc(lake: Lake, settings: CnvAssocSettings) -> CnvAssocReport:
    """Test each IDP against each locus's carriers (and each window's, with ``scan_kb``), and each burden measure;
    commit ``LAKE/results/NAME`` (kind ``cnv_assoc``, a scan per IDP that hits, reports and the browser show) and
    ``NAME_burden`` (kind ``cnv_burden_assoc``) (``biolake cnv assoc``).

    Examples
    --------
    >>> report = run_cnv_assoc(Lake.open("lake"), CnvAssocSettings(
    ...     name="cnv_idps", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex"]))
    >>> report.rows == 2 * report.tests, report.measures
    (True, 7)
    """
    burden_name = settings.name + BURDEN
    for name in (settings.name, burden_name):
        lake.check_results_free(name, replace=settings.replace)
    loci = settings.carriers.regions()
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con, assay="cnv")
        called, segments = _called_segments(con, settings.cnv_filter)
    analysed = chosen.sample_index   # the analysed participants' positions in the called set
    model = prepare_linear(chosen.phenotypes, chosen.covariates)
    present = ~np.isnan(chosen.phenotypes)                                    # samples × phenotypes
    doses = carrier_doses(settings.carriers.joined(segments), len(called),
                          [(locus.number, locus.start, locus.end) for locus in loci],
                          settings.carriers.min_overlap)[analysed]
    parts = [_carrier_tests(doses.T, [(locus.name, locus.chrom, locus.start, locus.end) for locus in loci], model,
                            present, chosen.phenotype_names, settings.min_carriers)]
    windows = 0
    if settings.scan_kb is not None:
        width = round(settings.scan_kb * 1000)
        chrom, index, window_doses_all = window_doses(segments, len(called), width)
        in_sample = window_doses_all[:, analysed]
        carried = np.flatnonzero(np.diff(in_sample.indptr) >= settings.min_carriers)
        windows = len(carried)
        for first in range(0, windows, WINDOW_CHUNK):
            chunk = carried[first:first + WINDOW_CHUNK]
            named = [(f"{PLINK_ORDER[chrom[k] - 1]}:{index[k] * width + 1}-{(index[k] + 1) * width}",
                      PLINK_ORDER[chrom[k] - 1], int(index[k] * width + 1), int((index[k] + 1) * width)) for k in chunk]
            parts.append(_carrier_tests(in_sample[chunk].toarray(), named, model, present, chosen.phenotype_names,
                                        settings.min_carriers))
    table = pa.concat_tables(parts)
    record = provenance("cnv_assoc", settings, chosen, filter=settings.cnv_filter.record(),
                        **settings.carriers.record(), scan_kb=settings.scan_kb, windows=windows)
    if settings.burden_measures:
        measures = burden(segments, len(called))
        publish_table(lake, burden_name, _burden_tests(
            np.array([measures[m][analysed] for m in settings.burden_measures], dtype=float),
            list(settings.burden_measures), model, chosen.phenotype_names),
            provenance={**record, "kind": "cnv_burden_assoc", "carriers": settings.name}, replace=settings.replace)
    version = publish_table(lake, settings.name, table, provenance={**record, "burden": burden_name
                                                                    if settings.burden_measures else None},
                            replace=settings.replace)
    return CnvAssocReport(name=settings.name, version=version,
                          tests=table.num_rows // max(len(chosen.phenotype_names), 1), rows=table.num_rows,
                          windows=windows, measures=len(settings.burden_measures),
                          **DesignReport.of(chosen))


def _carrier_tests(doses: np.ndarray, stretches: list[tuple[str, str, int, int]], model: LinearModel,
                   present: np.ndarray, phenotypes: list[str], min_carriers: int) -> pa.Table:
    """The cnv_assoc rows of some loci or windows: ``doses`` (stretches × samples: −1, 0, +1, NaN) tested as deletion
    carriers against non-carriers (del), duplication carriers against non-carriers (dup) and dose, against every
    phenotype of ``model`` (``present``: samples × phenotypes); ``stretches``: each one's name, chromosome, start, end.
    A test with fewer than ``min_carriers`` carriers among a phenotype's samples is no test ("too few samples")."""
    values = np.concatenate([np.where(doses > 0, np.nan, -doses), np.where(doses < 0, np.nan, doses), doses])
    models = np.repeat(CARRIER_MODELS, len(stretches))
    named = stretches * len(CARRIER_MODELS)
    missing = np.isnan(values)
    result = linear_association(np.where(missing, 0.0, values), model, missing=scipy.sparse.csr_array(missing))
    carriers = ((values != 0) & ~missing).astype(float) @ present              # tests × phenotypes
    result = replace(result, error=np.where((carriers < min_carriers) & (result.error == OK), TOO_FEW_SAMPLES,
                                            result.error))
    ran = result.error == OK
    d, lower, upper = cohens_d(result.statistic, carriers, result.n - carriers)
    binary = ran & (models != "dose")[:, None]
    count = len(phenotypes)

    def repeated(values: list, type_: pa.DataType) -> pa.Array:
        return pa.array(np.repeat(np.array(values, dtype=object), count), type_)

    return pa.table({
        "phenotype": pa.array(np.tile(phenotypes, len(models)), pa.string()),
        "test": repeated([f"{name} {kind}" for (name, *_), kind in zip(named, models)], pa.string()),
        "locus": repeated([name for name, *_ in named], pa.string()),
        "model": repeated(list(models), pa.string()),
        "chrom": repeated([chrom for _, chrom, _, _ in named], pa.string()),
        "pos": repeated([start for *_, start, _ in named], pa.int64()),
        "end": repeated([end for *_, end in named], pa.int64()),
        "n": pa.array(result.n.ravel(), pa.int64()), "n_carriers": pa.array(carriers.ravel().astype(np.int64)),
        **_estimates(result, ran), "cohens_d": _masked(d, binary), "cohens_d_lower": _masked(lower, binary),
        "cohens_d_upper": _masked(upper, binary), "error": pa.array(result.error_names().ravel(), pa.string())})


def _burden_tests(values: np.ndarray, measures: list[str], model: LinearModel, phenotypes: list[str]) -> pa.Table:
    """The cnv_burden_assoc rows: each burden measure (``values``: measures × samples) against every phenotype."""
    result = linear_association(values, model)
    return pa.table({"phenotype": pa.array(np.tile(phenotypes, len(measures)), pa.string()),
                     "measure": pa.array(np.repeat(measures, len(phenotypes)), pa.string()),
                     "n": pa.array(result.n.ravel(), pa.int64()), **_estimates(result, result.error == OK),
                     "error": pa.array(result.error_names().ravel(), pa.string())})


def _masked(values: np.ndarray, kept: np.ndarray) -> pa.Array:
    """``values`` (tests × phenotypes) as one column, null where not ``kept``."""
    return pa.array(np.where(kept, values, np.nan).ravel(), pa.float64(), from_pandas=True)


def _estimates(result: AssociationResult, ran: np.ndarray) -> dict[str, pa.Array]:
    """The columns beta, se, t, p and log10p of the tests that ran."""
    return {name: _masked(values, ran) for name, values in (("beta", result.beta), ("se", result.se),
                                                             ("t", result.statistic), ("p", result.p),
                                                             ("log10p", result.log10p))}


__all__ = ["CnvAssocSettings", "CnvBurdenSettings", "CnvCarriersSettings", "Locus", "run_cnv_assoc",
           "run_cnv_burden", "run_cnv_carriers"]
