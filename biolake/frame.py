"""The frame every association job stands on: one validated request and one provenance record.

Every job writing a results table is asked for a results name, a release, chromosomes and
``replace`` (:class:`Request`); GWAS, GxE and EWAS also take a sample query, the tested
columns and covariates (:class:`JobRequest`), and the variant scans (GWAS, GxE) plink2's
quality-control filters (:class:`VariantJobRequest`). Each is declared once and refuses a bad
request when it is built, before any data is read. Each job's settings are one of them plus
its own options, checked in its ``__post_init__``.
:func:`provenance` writes what a results table records about the run that made it.
"""

from __future__ import annotations

import warnings
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from datetime import datetime, timezone
from typing import Any, ClassVar

import numpy as np

from biolake.lake.chromosomes import GenomicRange, chromosome_list, genomic_range
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake, check_results_name
from biolake.queries.variants import VariantChoice, VariantList
from biolake.queries.design import Design, SampleList, design
from biolake.queries.sql import LakeConnection, connect
from biolake.stats.multiple import effective_tests, pairwise_correlation
from biolake.stats.qc import VariantQc
from biolake.stats.transform import TRANSFORMS, transform_phenotypes


# the settings that choose a run's samples beyond its queries, which its provenance cannot replay
UNREPLAYED = {"keep": "--keep", "remove": "--remove", "max_sample_missing": "--mind"}
PLINK_CASE_CONTROL = {1.0, 2.0, 0.0, -9.0}   # PLINK's phenotype coding: 1 control, 2 case, 0 and -9 missing


def plink_case_control(values: set[float]) -> bool:
    """Whether a phenotype's distinct values are PLINK's case/control coding: 1 and 2, perhaps 0 and -9."""
    return {1.0, 2.0} <= values <= PLINK_CASE_CONTROL


def check_min_maf(min_maf: float) -> None:
    """Refuse a --maf outside [0, ½)."""
    if not 0.0 <= min_maf < 0.5:
        raise BiolakeError(f"--maf must be a minor allele frequency, at least 0 and below 0.5, got {min_maf}")


@dataclass(frozen=True, kw_only=True)
class Request:
    """What every job that writes a results table is asked: its name, the release it reads, which
    chromosomes, whether it may replace a table of that name; checked at construction (a
    BiolakeError names what is wrong). Jobs add their own fields and checks (``__post_init__``).

    Examples
    --------
    >>> Request(name="idps").release is None
    True
    >>> Request(name="idps", chromosomes=["chr1", "23"]).chromosomes
    ['1', 'X']
    >>> Request(name="../idps")   # doctest: +ELLIPSIS
    Traceback (most recent call last):
    biolake.lake.errors.LakeError: results name '../idps' is not allowed: use 1-64 letters, digits, ...
    """

    name: str                                   # the results table LAKE/results/NAME
    release: str | None = None                  # default: the latest
    chromosomes: Sequence[str] | None = None    # default: all
    replace: bool = False                       # replace an existing results table of this name (else refused)

    def __post_init__(self) -> None:
        check_results_name(self.name)
        if self.chromosomes is not None:   # spelled as the lake spells them: chr1 → 1, 23 → X, 1-4 → 1, 2, 3, 4
            try:
                object.__setattr__(self, "chromosomes", chromosome_list(self.chromosomes))
            except ValueError as exc:
                raise BiolakeError(str(exc)) from None


@dataclass(frozen=True, kw_only=True)
class SampleRequest(Request):
    """A :class:`Request` of a job over chosen participants: ``samples``, SQL returning the ``participant_id``
    to keep (``--samples-sql``), and the participants listed in files to keep and to leave out (``--keep``,
    ``--remove``, as plink2's); all three apply. The jobs that read genotypes (gwas, gxe, h2, kinship) also read
    only the variants of their chromosomes in one of ``regions`` (``--region``; none: anywhere), listed by
    ``extract`` and not by ``exclude`` (:meth:`variant_choice`).

    Examples
    --------
    >>> SampleRequest(name="kinship").sample_choice()
    {'samples': None, 'keep': None, 'remove': None}
    >>> SampleRequest(name="kinship", regions=["chr2:1,000-2,000"]).variant_choice().describe()
    '--region 2:1000-2000'
    """

    samples: str | None = None
    keep: SampleList | None = None
    remove: SampleList | None = None
    regions: Sequence[GenomicRange] = ()      # --region: only variants in one of these (none: anywhere)
    extract: VariantList | None = None        # --extract FILE: only the variants it lists
    exclude: VariantList | None = None        # --exclude FILE: not the variants it lists

    def __post_init__(self) -> None:
        super().__post_init__()
        try:   # spelled as on the command line: CHR:FROM-TO
            object.__setattr__(self, "regions", tuple(
                region if isinstance(region, GenomicRange) else genomic_range(region) for region in self.regions))
        except ValueError as exc:
            raise BiolakeError(f"--region {exc}") from None

    def variant_choice(self) -> VariantChoice:
        """The variants the job reads on its chromosomes: by --region, --extract and --exclude."""
        return VariantChoice(tuple(self.regions), self.extract, self.exclude)

    def sample_choice(self) -> dict[str, Any]:
        """The keywords of :func:`biolake.queries.design.design` (and ``genotyped_samples``) that choose the
        participants."""
        return {"samples": self.samples, "keep": self.keep, "remove": self.remove}


def settings_record(request: Request) -> dict[str, Any]:
    """A request's fields as its results table's provenance keeps them: a sample or variant list as its file, size
    and checksum, a region as CHR:FROM-TO (what their ``record()`` says).

    Examples
    --------
    >>> listed = SampleList("--keep", "keep.txt", {"1000017": 1, "1000025": 2})
    >>> record = settings_record(SampleRequest(name="kinship", keep=listed))["keep"]
    >>> record["path"].endswith("/keep.txt"), record["participants"], record["sha256"][:12]
    (True, 2, '5cfb6cf6496e')
    """
    def recorded(value: Any) -> Any:
        if hasattr(value, "record"):
            return value.record()
        return [recorded(item) for item in value] if isinstance(value, list | tuple) else value

    return {field.name: recorded(getattr(request, field.name)) for field in fields(request)}


@dataclass(frozen=True, kw_only=True)
class JobRequest(SampleRequest):
    """A :class:`SampleRequest` of an association job (GWAS, GxE, EWAS): it also tests columns against
    covariates in a sample.

    ``covariates`` is SQL returning ``participant_id`` first, or a list of columns of
    ``covariates``; the samples are chosen as :class:`SampleRequest` says; ``transform``
    (:mod:`biolake.stats.transform`: rint, rint-residuals) rank-normalises each tested column
    over its own samples before the scan, and ``standardize`` scales each covariate column to
    mean 0 and variance 1 over the analysed samples (no test of a tested column changes: the
    covariates span the same space). Subclasses add the tested columns as the field
    :attr:`TESTED` names (``phenotypes``; EWAS: ``exposures``), their own options, and their
    checks of them in ``__post_init__``.

    Examples
    --------
    >>> JobRequest(name="idps", covariates=["age", "sex"]).samples is None
    True
    """

    TESTED: ClassVar[str] = "phenotypes"     # the subclass's field of tested columns, SQL or a column list

    covariates: str | Sequence[str]
    transform: str | None = None             # None, or one of stats.transform.TRANSFORMS
    standardize: bool = False                # covariates to mean 0, variance 1 (plink2 --covar-variance-standardize)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.transform is not None and self.transform not in TRANSFORMS:
            raise BiolakeError(f"--transform {self.transform!r} is not one of {', '.join(TRANSFORMS)}")

    def design_less(self, con: LakeConnection, chosen: Design, left_out: Mapping[str, Collection[str]]) -> Design:
        """``chosen`` (this request's design) less the participants ``left_out`` (reason → their ids; a reason
        without any is not reported), counted under those reasons; its warnings, shown when it was first made,
        not shown again."""
        left = {reason: ids for reason, ids in left_out.items() if ids}
        if not left:
            return chosen
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.design(con, excluded=left)

    def design(self, con: LakeConnection, *, excluded: Mapping[str, Collection[str]] | None = None,
               **assay: str) -> Design:
        """The request's design (:func:`biolake.queries.design.design` of its tested columns, covariates and
        samples, less the ``excluded`` participants; ``assay``: its assay and role), the tested columns
        transformed as ``transform`` says."""
        chosen = design(con, phenotypes=getattr(self, self.TESTED), covariates=self.covariates,
                        **self.sample_choice(), excluded=excluded, **assay)
        if self.standardize:
            columns = chosen.covariates[:, 1:]
            chosen = replace(chosen, covariates=np.column_stack([chosen.covariates[:, 0], (
                columns - columns.mean(axis=0)) / columns.std(axis=0, ddof=1)]))
        if self.transform is None:
            return chosen
        for name, column in zip(chosen.phenotype_names, chosen.phenotypes.T):
            values = set(np.unique(column[~np.isnan(column)]).tolist())
            if len(values) <= 2 or plink_case_control(values):
                raise BiolakeError(f"--transform {self.transform} ranks quantitative phenotypes; {name!r} takes "
                                   f"{len(values)} value(s){', PLINK case/control coding' if len(values) > 2 else ''}"
                                   " (a binary trait: test it without --transform)")
        return replace(chosen, phenotypes=transform_phenotypes(chosen.phenotypes, chosen.covariates, self.transform))

    def queries(self) -> list[str]:
        """The SQL the request runs: its tested columns, covariates and samples given as queries."""
        return [q for q in (getattr(self, self.TESTED), self.covariates, self.samples) if isinstance(q, str)]


@dataclass(frozen=True, kw_only=True)
class VariantJobRequest(JobRequest):
    """A :class:`JobRequest` of a scan over variants (GWAS, GxE): it also takes plink2's quality-control filters,
    computed over the job's own analysis samples. ``max_sample_missing`` (``--mind``) leaves out samples without a
    hard call at more than that fraction of the variants, before the scan (:func:`biolake.scan.scan_design`); the
    variant filters (:class:`biolake.stats.qc.VariantQc`) then apply to every block, in plink2's order, and
    each variant they remove is counted.

    Examples
    --------
    >>> VariantJobRequest(name="idps", covariates=["age"], max_missing=0.05, hwe=1e-6).variant_qc().active
    True
    >>> VariantJobRequest(name="idps", covariates=["age"], max_missing=1.5)
    Traceback (most recent call last):
    biolake.lake.errors.BiolakeError: --geno must be a fraction of the samples, from 0 to 1, got 1.5
    """

    min_maf: float = 0.0                      # --maf: smallest minor allele frequency over the analysis samples
    min_mac: float = 0.0                      # --mac: smallest minor allele count (dosage)
    max_missing: float | None = None          # --geno: largest fraction of samples without a hard call
    max_sample_missing: float | None = None   # --mind: largest fraction of variants a sample lacks a hard call at
    hwe: float | None = None                  # --hwe: smallest Hardy–Weinberg exact test p-value
    hwe_midp: bool = False                    # --hwe-midp: its mid-p variant
    min_info: float | None = None             # --min-info: smallest MaCH r² (plink2 --mach-r2-filter)
    xchr_model: int = 2                       # males on chromosome X coded 0/2 (plink2's default), or 0/1

    def __post_init__(self) -> None:
        super().__post_init__()
        check_min_maf(self.min_maf)
        if self.xchr_model not in (1, 2):
            raise BiolakeError(f"--xchr-model must be 1 (males 0/1) or 2 (males 0/2, plink2's default), got "
                               f"{self.xchr_model}")
        if not self.min_mac >= 0:
            raise BiolakeError(f"--mac must be an allele count of at least 0, got {self.min_mac}")
        for flag, value in (("--geno", self.max_missing), ("--mind", self.max_sample_missing)):
            if value is not None and not 0.0 <= value <= 1.0:
                raise BiolakeError(f"{flag} must be a fraction of the {'samples' if flag == '--geno' else 'variants'}"
                                   f", from 0 to 1, got {value}")
        if self.hwe is not None and not 0.0 < self.hwe < 1.0:
            raise BiolakeError(f"--hwe must be a p-value threshold above 0 and below 1, got {self.hwe}")
        if self.hwe_midp and self.hwe is None:
            raise BiolakeError("--hwe-midp sets --hwe's test: give --hwe P")
        if self.min_info is not None and not 0.0 <= self.min_info <= 1.0:
            raise BiolakeError(f"--min-info must be a MaCH r² from 0 to 1, got {self.min_info}")

    def variant_qc(self) -> VariantQc:
        """The variant filters the scan's blocks go through."""
        return VariantQc(max_missing=self.max_missing, hwe=self.hwe, hwe_midp=self.hwe_midp, min_maf=self.min_maf,
                         min_mac=self.min_mac, min_info=self.min_info)


@dataclass(frozen=True, kw_only=True)
class Report:
    """What a job wrote: its results table and the version committed."""

    name: str
    version: int


@dataclass(frozen=True, kw_only=True)
class DesignReport(Report):
    """What an association job wrote, and whom it analysed (see :meth:`of`)."""

    samples: int               # analysed
    covariates: list[str]      # the design's columns, intercept and indicators included
    dropped: str               # who was left out, and why

    @staticmethod
    def of(chosen: Design) -> dict[str, Any]:
        """The ``chosen`` design's part of a report, as keywords."""
        return {"samples": len(chosen.participant_ids), "covariates": chosen.covariate_names,
                "dropped": str(chosen.dropped)}


def provenance_header(kind: str, *, release: str | None = None) -> dict[str, Any]:
    """How every results table's provenance begins: its kind, the release it read (if any) and when it was made."""
    return {"kind": kind, **({} if release is None else {"release": release}),
            "created_at": datetime.now(timezone.utc).isoformat()}


def provenance(kind: str, request: JobRequest, chosen: Design, **facts: Any) -> dict[str, Any]:
    """What an association job's results table records about its run: the request's queries as given,
    its other settings, who was analysed and dropped (from the ``chosen`` design), then the job's ``facts``.

    Examples
    --------
    >>> from biolake.ewas import EwasSettings
    >>> from biolake.queries.design import DropReport
    >>> chosen = Design("r1", ["p1", "p2"], None, None, ["stress"], None, ["intercept", "age"],
    ...                 DropReport({"no exposure": 0}, {}), 2)
    >>> request = EwasSettings(name="stress", exposures=["stress"], covariates=["age"])
    >>> record = provenance("ewas", request, chosen, exposure_summaries=[])
    >>> {key: value for key, value in record.items() if key != "created_at"}   # doctest: +NORMALIZE_WHITESPACE
    {'kind': 'ewas', 'release': 'r1', 'exposures': ['stress'], 'covariates': ['age'], 'samples': None,
     'settings': {'name': 'stress', 'release': None, 'chromosomes': None, 'replace': False, 'keep': None,
                  'remove': None, 'regions': [], 'extract': None, 'exclude': None, 'transform': None,
                  'standardize': False, 'values': 'm'},
     'analysis_samples': 2, 'covariate_columns': ['intercept', 'age'], 'dropped': {'no exposure': 0},
     'exposure_summaries': []}
    """
    settings = settings_record(request)
    queries = {key: settings.pop(key) for key in (request.TESTED, "covariates", "samples")}
    meff = ({} if chosen.phenotypes is None or not chosen.phenotypes.shape[1] else
            {"phenotype_meff": effective_tests(pairwise_correlation(chosen.phenotypes))})
    return {**provenance_header(kind, release=chosen.release), **queries, "settings": settings,
            "analysis_samples": len(chosen.participant_ids), "covariate_columns": chosen.covariate_names,
            "dropped": chosen.dropped.counts, **meff, **facts}


def recorded_design(lake: Lake, record: Mapping[str, Any]) -> tuple[Design, list[str]]:
    """The design of the run whose provenance is ``record`` (:func:`provenance`) rebuilt over its release: its
    phenotype, covariate and sample queries as recorded (the phenotypes as queried, before any ``--transform``);
    and the flags of the run that chose samples too but cannot be replayed from the record (``--keep`` and
    ``--remove`` keep their file's checksum, not its ids; ``--mind`` its counts). With any of those, or a
    withdrawal since the run, its samples may differ from the run's.

    Examples
    --------
    >>> record = Lake.open("lake").results_provenance("site_a")
    >>> chosen, unreplayed = recorded_design(Lake.open("lake"), record)
    >>> len(chosen.participant_ids) == record["analysis_samples"], unreplayed
    (True, [])
    """
    queries = [record[key] for key in ("phenotypes", "covariates", "samples") if isinstance(record[key], str)]
    with connect(lake, release=record["release"], queries=queries) as con, warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the run showed the design's warnings when it was made
        chosen = design(con, phenotypes=record["phenotypes"], covariates=record["covariates"],
                        samples=record["samples"])
    return chosen, [flag for key, flag in UNREPLAYED.items() if record["settings"].get(key) is not None]
