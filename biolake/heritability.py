"""The individual-level heritability job: queries → the genetic relationship matrix over the lake's
genotype blocks on dask → Haseman–Elston regression or REML per phenotype → a results table.

The design (phenotypes, covariates, samples) comes from SQL as in the GWAS
(:func:`biolake.queries.design`). The relationship matrix K is GEMMA's ``-gk 2`` over the
analysis samples (:mod:`biolake.stats.heritability`): variants with a minor allele frequency
of at least ``min_maf`` and at most ``max_missing`` missing calls over those samples (GEMMA's
``-maf`` and ``-miss``, at its defaults). Each task sums Z'Z over a share of the genotype row
groups, one share per worker: a sum of n × n floats is what a task sends back, so the tasks
are as few as the workers and the client adds their sums as they come (as the polygenic-score
job adds its scores; the shared map's reduce would hold a matrix per row group). Then one
fit for every phenotype, on its own samples (a sub-matrix of K): HE for all of them at once
(the products with K shared by the phenotypes missing for the same samples), or REML. The
relationship matrix is computed exactly (no randomized trace estimator), so N is bounded by
an N × N matrix in the client's memory (8 N² bytes: 800 MB at 10,000 samples).

Examples
--------
>>> report = run_heritability(Lake.open("lake"), HeritabilitySettings(
...     name="h2_he", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex", "site"]))
>>> report.method, report.variants > 0, len(report.h2)
('he', True, 2)
>>> Lake.open("lake").results_dataset("h2_he").schema.names
['phenotype', 'method', 'h2', 'h2_se', 'n_variants', 'n']
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from biolake.cluster import block_map
from biolake.frame import DesignReport, JobRequest, provenance
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries import connect, design
from biolake.run import publish_table
from biolake.queries.blocks import Block, genotype_blocks, read_genotype_blocks
from biolake.scan import TaskInputs, check_min_maf
from biolake.stats.heritability import Heritability, fit_problems, haseman_elston, relationship_cross, reml, symmetric

Progress = Callable[[str, int, int], None]
METHODS = {"he": haseman_elston, "reml": reml}
SCHEMA = RESULTS_KINDS["h2"].arrow_schema()
RELATIONSHIP = ("GEMMA -gk 2: K = ZZ'/p, Z the kept variants' genotypes over the analysis samples, missing calls "
                "set to the mean, centred and scaled to variance 1; computed exactly (no randomized trace)")


@dataclass(frozen=True, kw_only=True)
class HeritabilitySettings(JobRequest):
    """Which phenotypes, covariates and samples (as the GWAS takes them), the estimator (``he`` or ``reml``) and
    which variants make the relationship matrix (GEMMA's -maf and -miss, at its defaults)."""

    phenotypes: str | Sequence[str]
    method: str = "he"
    min_maf: float = 0.01
    max_missing: float = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise BiolakeError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        check_min_maf(self.min_maf)
        if not 0.0 <= self.max_missing <= 1.0:
            raise BiolakeError(f"--max-missing must be a share of the samples in [0, 1], got {self.max_missing!r}")


@dataclass(frozen=True, kw_only=True)
class HeritabilityReport(DesignReport):
    """What a heritability run wrote: per phenotype its h² and standard error, from how many variants."""

    method: str
    variants: int
    h2: dict[str, tuple[float, float]]     # phenotype → (h², its SE)


@dataclass(frozen=True)
class RelationshipInputs(TaskInputs):
    """What every relationship task needs besides its share of the row groups: which variants count."""

    min_maf: float
    max_missing: float


def run_heritability(lake: Lake, settings: HeritabilitySettings, *, scheduler: str | None = None,
                     workers: int | None = None, progress: Progress | None = None) -> HeritabilityReport:
    """Estimate the SNP heritability of every phenotype asked; commit ``LAKE/results/NAME`` (``biolake h2 --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = design(con, phenotypes=settings.phenotypes, covariates=settings.covariates,
                        samples=settings.samples)
    problems = fit_problems(chosen.phenotypes, chosen.covariates)
    if problems:
        column, why = problems[0]
        raise BiolakeError(f"phenotype {chosen.phenotype_names[column]!r}: {why}")
    blocks = genotype_blocks(lake, release=chosen.release, chromosomes=settings.chromosomes)
    inputs = RelationshipInputs(chosen.vector_length, chosen.selection, settings.min_maf, settings.max_missing)
    cross, variants = relationship_sum(lake, inputs, blocks, scheduler=scheduler, workers=workers,
                                       progress=progress)
    if not variants:
        raise BiolakeError(f"release {chosen.release!r} has no variant with MAF ≥ {settings.min_maf:g} and at most "
                           f"{settings.max_missing:.0%} missing calls over the {len(chosen.participant_ids):,} "
                           "analysis samples" + (f" on chromosomes {', '.join(settings.chromosomes)}"
                                                 if settings.chromosomes else ""))
    fit = METHODS[settings.method](symmetric(cross) / variants, chosen.phenotypes, chosen.covariates)
    record = provenance("h2", settings, chosen, method=settings.method, relationship=RELATIONSHIP,
                        variants=variants, components=_components(fit, chosen.phenotype_names))
    version = publish_table(lake, settings.name, _rows(fit, chosen.phenotype_names, method=settings.method,
                                                       variants=variants), provenance=record, replace=settings.replace)
    return HeritabilityReport(name=settings.name, version=version, method=settings.method, variants=variants,
                              h2={name: (float(fit.h2[j]), float(fit.h2_se[j]))
                                  for j, name in enumerate(chosen.phenotype_names)},
                              **DesignReport.of(chosen))


def relationship_sum(lake: Lake, inputs: RelationshipInputs, blocks: list[Block], *, scheduler: str | None = None,
                     workers: int | None = None, progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """Z'Z summed over every kept variant of ``blocks`` (samples × samples, upper triangle) and the count of
    those variants, on dask: one task per worker, each over a contiguous share of the row groups."""
    n = inputs.n_samples if inputs.samples is None else len(inputs.samples)
    shares = [share for share in np.array_split(np.arange(len(blocks)), max(1, min(
        len(blocks), workers or os.cpu_count() or 1))) if len(share)]
    cross, variants = np.zeros((n, n)), 0
    with block_map(lake, scheduler=scheduler, workers=workers) as map_over:
        for share_cross, share_variants in map_over(_relationship_task, [[blocks[i] for i in share] for share in
                                                                         shares], inputs, step="relationship",
                                                    progress=progress):
            cross += share_cross
            variants += share_variants
    return cross, variants


def _relationship_task(share: list[Block], inputs: RelationshipInputs, position: int) -> tuple[np.ndarray, int]:
    """One dask task: Z'Z of the kept variants of a share of the row groups, and how many were kept."""
    n = inputs.n_samples if inputs.samples is None else len(inputs.samples)
    cross, variants = np.zeros((n, n)), 0
    for fragment in share:
        for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, samples=inputs.samples,
                                          dtype=np.float32):
            block = block.common(inputs.min_maf)
            kept = np.flatnonzero(np.diff(block.missing.indptr) <= inputs.max_missing * n)
            if len(kept):
                block = block.take(kept)
                cross += relationship_cross(block.dosages, block.missing)
                variants += len(kept)
    return cross, variants


def _rows(fit: Heritability, phenotypes: list[str], *, method: str, variants: int) -> pa.Table:
    """The results rows: one per phenotype."""
    return pa.table({"phenotype": phenotypes, "method": [method] * len(phenotypes), "h2": fit.h2,
                     "h2_se": fit.h2_se, "n_variants": np.full(len(phenotypes), variants, np.int64),
                     "n": fit.n_samples.astype(np.float64)}, schema=SCHEMA)


def _components(fit: Heritability, phenotypes: list[str]) -> dict[str, dict[str, float]]:
    """Per phenotype, the variance components and GEMMA's pve as its log prints them (for the provenance)."""
    names = ("sigma2_g", "sigma2_g_se", "sigma2_e", "sigma2_e_se", "pve", "pve_se")
    return {phenotype: {name: float(getattr(fit, name)[j]) for name in names} for j, phenotype in
            enumerate(phenotypes)}
