"""The LD clumping job: a GWAS or meta-analysis results table → ``plink1.9 --clump``'s clumps, as results.

Each phenotype is clumped per chromosome against the genotypes of the release, with all its
genotyped samples (plink's ``--bfile`` of the release; every sample counts as a founder).
One task per chromosome (LD windows cross row groups) reads only the variants within ``kb``
of an index candidate (p ≤ ``p1``), from the row groups that hold them: plink's TOTAL and NSIG
count every variant in LD with the index, whatever its p, so the window's variants are all
needed, and none beyond it. The
client orders the clumps as plink does and commits them as ``LAKE/results/NAME`` (kind
``clump``, declared in :mod:`biolake.lake.schema` with plink's columns in the lake's names).

Examples
--------
>>> report = run_clump(Lake.open("lake"), ClumpSettings(name="demo_clumps", result="demo_idps", p1=1e-3))
>>> report.clumps > 0, report.phenotypes
(True, 10)
>>> Lake.open("lake").results_dataset("demo_clumps").schema.names[:6]
['phenotype', 'variant_id', 'chrom', 'pos', 'beta', 'p']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from biolake.frame import Report, Request, provenance_header
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries.blocks import Chromosome, genotype_chromosomes, genotyped_samples, read_chosen_variants
from biolake.run import Run
from biolake.run import KernelOutput
from biolake.scan import map_lake_blocks
from biolake.stats.ld import BIN_NAMES, WindowLd, bp_radius, clump, ld_features, near_any

Progress = Callable[[str, int, int], None]
CLUMPABLE_KINDS = ("gwas", "meta")
RESULT_COLUMNS = ["phenotype", "variant_id", "chrom", "pos", "beta", "log10p"]
SCHEMA = RESULTS_KINDS["clump"].arrow_schema()


@dataclass(frozen=True, kw_only=True)
class ClumpFlags:
    """plink1.9 --clump's flags and defaults (--clump-p1, --clump-p2, --clump-r2, --clump-kb), checked when
    built: what every clumping takes, a results table's (:class:`ClumpSettings`), lead hits' or a score's weights'."""

    p1: float = 1e-4
    p2: float = 1e-2
    r2: float = 0.5
    kb: float = 250.0

    def __post_init__(self) -> None:
        for flag, value in (("p1", self.p1), ("p2", self.p2)):
            if not 0 < value <= 1:
                raise BiolakeError(f"--{flag} must lie in (0, 1], got {value!r}")
        if self.p1 > self.p2:
            raise BiolakeError(f"--p1 ({self.p1!r}) must not exceed --p2 ({self.p2!r}): index variants are "
                               "the strongest of the clumped ones")
        if not 0 <= self.r2 < 1:
            raise BiolakeError(f"--r2 must lie in [0, 1), got {self.r2!r}")
        if not self.kb >= 0.001:
            raise BiolakeError(f"--kb must be at least 0.001 (1 bp), got {self.kb!r}")


@dataclass(frozen=True, kw_only=True)
class ClumpSettings(ClumpFlags, Request):
    """What to clump: the results ``result`` (their phenotypes, or those listed), with plink1.9 --clump's
    flags and defaults (:class:`ClumpFlags`). ``release`` holds the genotypes giving LD (default: the one
    the results were computed from)."""

    result: str
    phenotypes: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        Request.__post_init__(self)
        ClumpFlags.__post_init__(self)


@dataclass(frozen=True, kw_only=True)
class ClumpReport(Report):
    """What a clumping run wrote: clumps over how many phenotypes, with LD from which release."""

    clumps: int
    phenotypes: int
    release: str


@dataclass(frozen=True)
class ClumpInputs:
    """What every task needs besides its chromosome: the candidate rows and the flags. Arrow, not polars:
    polars' thread pool does not survive the fork of a dask worker."""

    rows: pa.Table            # phenotype, variant_id, chrom, pos, beta, log10p, p: within kb of an index candidate
    n_samples: int            # length of the stored genotype sample vector
    settings: ClumpFlags


def run_clump(lake: Lake, settings: ClumpSettings, *, scheduler: str | None = None, workers: int | None = None,
              progress: Progress | None = None) -> ClumpReport:
    """Clump the results ``settings.result``; commit the clumps as ``LAKE/results/NAME`` (``biolake clump --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    info = lake.results_info(settings.result)
    if info.kind not in CLUMPABLE_KINDS:
        raise BiolakeError(f"results {settings.result!r} are of kind {info.kind!r}; clumping takes "
                           f"{', '.join(CLUMPABLE_KINDS)}")
    release = lake.resolve_release(settings.release or info.release).release
    rows = candidate_rows(lake, settings)
    chromosomes = genotype_chromosomes(lake, release=release, chromosomes=rows["chrom"].unique().to_list(),
                                       variant_ids=rows["variant_id"].unique().to_list())
    n_samples = genotyped_samples(lake, release=release)
    phenotypes = rows["phenotype"].unique(maintain_order=True).to_list()
    run = Run(lake, settings.name, kind=RESULTS_KINDS["clump"], phenotypes=phenotypes)
    ranks = {chromosome.chrom: rank for rank, chromosome in enumerate(chromosomes)}
    if chromosomes:   # else: no phenotype has an index candidate, and the run holds no clump
        map_lake_blocks(run, chromosome_clumps, ClumpInputs(rows.to_arrow(), n_samples, settings), chromosomes,
                        schema=SCHEMA, step="clump", scheduler=scheduler, workers=workers, progress=progress,
                        reduce=lambda clumps: (_in_plinks_order(clumps, ranks), None))
    record = {**provenance_header("clump", release=release), "result": settings.result,
              "settings": {key: getattr(settings, key) for key in ("phenotypes", "p1", "p2", "r2", "kb")},
              "phenotype_summary": run.summary.per_phenotype()}
    version = run.publish(schema=SCHEMA, provenance=record, replace=settings.replace, progress=progress)
    return ClumpReport(name=settings.name, version=version, clumps=int(run.summary.tests.sum()),
                       phenotypes=len(phenotypes), release=release)


def candidate_rows(lake: Lake, settings: ClumpSettings) -> pl.DataFrame:
    """The results' rows (with p) within ``kb`` of an index candidate (p ≤ p1) of their phenotype and chromosome."""
    dataset = lake.results_dataset(settings.result)
    absent = [c for c in RESULT_COLUMNS if c not in dataset.schema.names]
    if absent:
        raise BiolakeError(f"results {settings.result!r} lack column(s) {', '.join(absent)}; "
                           "clumping needs variant positions")
    lazy = pl.scan_pyarrow_dataset(dataset).select(RESULT_COLUMNS).filter(
        pl.col("log10p").is_finite() & pl.col("pos").is_not_null())
    if settings.phenotypes is not None:
        lazy = lazy.filter(pl.col("phenotype").is_in(list(settings.phenotypes)))
    if settings.chromosomes is not None:
        lazy = lazy.filter(pl.col("chrom").is_in(list(settings.chromosomes)))
    rows = lazy.with_columns(p=10.0 ** -pl.col("log10p")).collect()
    radius = bp_radius(settings.kb)
    return pl.concat([scan.filter(near_any(scan["pos"].to_numpy(), np.sort(scan.filter(pl.col("p") <= settings.p1)[
        "pos"].to_numpy()), radius)) for _, scan in rows.group_by("phenotype", "chrom", maintain_order=True)],
        how="vertical") if rows.height else rows


def chromosome_clumps(inputs: ClumpInputs, chromosome: Chromosome) -> Iterator[KernelOutput]:
    """The kernel: each phenotype's clumps on one chromosome (the phenotypes share the r² rows of
    their common index variants), with ``order``, the index variant's place on the chromosome."""
    rows = inputs.rows.filter(pc.equal(inputs.rows.column("chrom"), chromosome.chrom))
    chosen = read_chosen_variants(chromosome.blocks, set(rows.column("variant_id").to_pylist()),
                                  n_samples=inputs.n_samples)
    ids = chosen.variants.column("variant_id").to_numpy(zero_copy_only=False)
    pos = chosen.variants.column("pos").to_numpy()
    ld = WindowLd(ld_features(chosen.dosages, chosen.missing), pos, kb=inputs.settings.kb)
    place = {variant: k for k, variant in enumerate(ids)}
    with_order, found_clumps = SCHEMA.append(pa.field("order", pa.int64())), []
    for phenotype in pc.unique(rows.column("phenotype")).to_pylist():
        scan = rows.filter(pc.equal(rows.column("phenotype"), phenotype))
        at = np.array([place[variant] for variant in scan.column("variant_id").to_pylist()], np.intp)
        tested = {name: np.full(len(ids), np.nan) for name in ("beta", "p", "log10p")}
        for name, values in tested.items():
            values[at] = scan.column(name).to_numpy(zero_copy_only=False)
        found = clump(ld, tested["p"], p1=inputs.settings.p1, p2=inputs.settings.p2, r2=inputs.settings.r2)
        found_clumps.append(pa.table({
            "phenotype": pa.array([phenotype] * len(found.index), pa.string()),
            "variant_id": pa.array(ids[found.index], pa.string()),
            "chrom": pa.array([chromosome.chrom] * len(found.index), pa.string()), "pos": pos[found.index],
            **{name: values[found.index] for name, values in tested.items()},
            "total": found.bins.sum(axis=1).astype(np.int64),
            **{name: found.bins[:, k].astype(np.int64) for k, name in enumerate(BIN_NAMES)},
            "sp2": pa.array([ids[members].tolist() for members in found.members], pa.list_(pa.string())),
            "order": np.asarray(found.index, np.int64)}, schema=with_order))
    yield KernelOutput(pa.concat_tables(found_clumps) if found_clumps else with_order.empty_table())


def _in_plinks_order(clumps: pa.Table, ranks: dict[str, int]) -> pa.Table:
    """The reduce: every phenotype's clumps as plink orders its .clumped report (by p, ties in genome order)."""
    frame = pl.from_arrow(clumps).with_columns(rank=pl.col("chrom").replace_strict(ranks, return_dtype=pl.Int64))
    return frame.sort(["phenotype", "p", "rank", "order"], maintain_order=True).select(SCHEMA.names).to_arrow().cast(
        SCHEMA)


def clumps_of(lake: Lake, rows: pl.DataFrame, flags: ClumpFlags, *, release: str) -> pa.Table:
    """The clumps of ``rows`` (``RESULT_COLUMNS`` and ``p``; ``phenotype`` names a scan) against the
    genotypes of ``release``, in plink's order, as rows of kind ``clump``: computed here, one chromosome
    after another, and returned rather than committed, for jobs that clump on their way (lead hits, a
    polygenic score's weights). Each row's variant must be one of the release's, on its chromosome.
    """
    chromosomes = genotype_chromosomes(lake, release=release, chromosomes=rows["chrom"].unique().to_list(),
                                       variant_ids=rows["variant_id"].unique().to_list())
    if not chromosomes:
        return SCHEMA.empty_table()
    inputs = ClumpInputs(rows.to_arrow(), genotyped_samples(lake, release=release), flags)
    found = [output.rows for chromosome in chromosomes for output in chromosome_clumps(inputs, chromosome)]
    return _in_plinks_order(pa.concat_tables(found), {chromosome.chrom: rank for rank, chromosome in
                                                      enumerate(chromosomes)})
