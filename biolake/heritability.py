"""The individual-level heritability job: queries → the genetic relationship matrix over the lake's
genotype blocks on dask → Haseman–Elston regression or REML per phenotype → a results table.

The design (phenotypes, covariates, samples) comes from SQL as in the GWAS
(:func:`biolake.queries.design`). The relationship matrix K is GEMMA's ``-gk 2`` over the
analysis samples (:mod:`biolake.stats.heritability`): variants with a minor allele frequency
of at least ``min_maf`` and at most ``max_missing`` missing calls over those samples (GEMMA's
``-maf`` and ``-miss``, at its defaults). Each task sums over a share of the genotype row
groups, one share per worker: what a task sends back is as large as the client's sum, so the
tasks are as few as the workers and the client adds their sums as they come (as the
polygenic-score job adds its scores; the shared map's reduce would hold one per row group).

K is exact (``trace`` exact; auto while N ≤ 20,000): the tasks sum Z'Z, an N × N matrix in the
client's memory (8 N² bytes: 800 MB at 10,000 samples, 3.2 GB at 20,000), then one fit for
every phenotype, on its own samples (a sub-matrix of K): HE for all of them at once (the
products with K shared by the phenotypes missing for the same samples), or REML. Beyond
(``trace`` randomized, HE only: method ``rhe``, as RHE-mc) K is never formed: the tasks apply
it to a stack of vectors twice, each pass returning Z'(ZV) and the per-sample Σ z², and HE is
exact but for tr((PKP)²), Hutchinson's estimate over ``probes`` Gaussian vectors drawn from
``seed`` (:func:`biolake.stats.heritability.haseman_elston_randomized`). Its memory is the stack:
8 N × Σ(covariates + phenotypes + probes) bytes over the missingness patterns, a few times.

Examples
--------
>>> report = run_heritability(Lake.open("lake"), HeritabilitySettings(
...     name="h2_he", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex", "site"]))
>>> report.method, report.variants > 0, len(report.h2)
('he', True, 2)
>>> Lake.open("lake").results_dataset("h2_he").schema.names
['phenotype', 'method', 'h2', 'h2_se', 'n_variants', 'n']
>>> run_heritability(Lake.open("lake"), HeritabilitySettings(name="h2_rhe", phenotypes=["25001-2.0"],
...     covariates=["age", "sex", "site"], trace="randomized", probes=20)).estimator
'Haseman–Elston, randomized trace (20 probes, seed 1)'
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pyarrow as pa

from biolake.cluster import summed_over_shares
from biolake.frame import DesignReport, JobRequest, check_min_maf, provenance
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries import Design, connect
from biolake.run import publish_table
from biolake.queries.blocks import Block, GenotypeBlock, genotype_blocks, read_genotype_blocks
from biolake.scan import TaskInputs
from biolake.stats.heritability import (Heritability, RandomizedHeritability, fit_problems, haseman_elston,
                                        haseman_elston_randomized, relationship_cross, relationship_product, reml,
                                        symmetric)

Progress = Callable[[str, int, int], None]
GEMMA_MIN_MAF, GEMMA_MAX_MISSING = 0.01, 0.05   # the variants K takes: GEMMA's -maf and -miss defaults
METHODS = {"he": haseman_elston, "reml": reml}
TRACES = ("auto", "exact", "randomized")
EXACT_MAX_SAMPLES = 20_000   # trace auto: K exact up to this many analysis samples (8 N² bytes: 3.2 GB)
SCHEMA = RESULTS_KINDS["h2"].arrow_schema()
RELATIONSHIP = ("GEMMA -gk 2: K = ZZ'/p, Z the kept variants' genotypes over the analysis samples, missing calls "
                "set to the mean, centred and scaled to variance 1; exact (an N × N matrix) for he and reml, "
                "never formed for rhe (applied twice to a stack of vectors, tr((PKP)²) by Hutchinson's estimate)")


@dataclass(frozen=True, kw_only=True)
class HeritabilitySettings(JobRequest):
    """Which phenotypes, covariates and samples (as the GWAS takes them), the estimator (``he`` or ``reml``), which
    variants make the relationship matrix (GEMMA's -maf and -miss, at its defaults) and whether HE's traces are
    exact or randomized (``probes`` Gaussian vectors drawn from ``seed``)."""

    phenotypes: str | Sequence[str]
    method: str = "he"
    min_maf: float = GEMMA_MIN_MAF
    max_missing: float = GEMMA_MAX_MISSING
    trace: str = "auto"
    probes: int = 100
    seed: int = 1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise BiolakeError(f"method {self.method!r} is not one of {', '.join(METHODS)}")
        check_min_maf(self.min_maf)
        if not 0.0 <= self.max_missing <= 1.0:
            raise BiolakeError(f"--max-missing must be a share of the samples in [0, 1], got {self.max_missing!r}")
        if self.trace not in TRACES:
            raise BiolakeError(f"--trace {self.trace!r} is not one of {', '.join(TRACES)}")
        if self.trace == "randomized" and self.method != "he":
            raise BiolakeError(f"--trace randomized applies only to --method he (--method {self.method} needs K itself)")
        if self.seed < 0:
            raise BiolakeError(f"--seed must be a whole number ≥ 0 (it draws the probes), got {self.seed}")
        if self.probes < 2:
            raise BiolakeError(f"--probes must be at least 2 (their spread enters the standard error), got "
                               f"{self.probes}")

    def estimator(self, samples: int) -> str:
        """The method run for ``samples`` analysis samples: he, reml, or rhe (HE with a randomized trace)."""
        exact = self.trace == "exact" or (self.trace == "auto" and samples <= EXACT_MAX_SAMPLES)
        return self.method if self.method != "he" or exact else "rhe"

    def described(self, method: str) -> str:
        """``method`` in words, with the probes and seed of a randomized trace."""
        return {"he": "Haseman–Elston, exact relationship matrix", "reml": "AI-REML, exact relationship matrix",
                "rhe": f"Haseman–Elston, randomized trace ({self.probes} probes, seed {self.seed})"}[method]


@dataclass(frozen=True, kw_only=True)
class HeritabilityReport(DesignReport):
    """What a heritability run wrote: per phenotype its h² and standard error, from how many variants, by which
    estimator (the method, and in words)."""

    method: str
    estimator: str
    variants: int
    h2: dict[str, tuple[float, float]]     # phenotype → (h², its SE)


@dataclass(frozen=True)
class RelationshipInputs(TaskInputs):
    """What every relationship task needs besides its share of the row groups: which variants count."""

    min_maf: float
    max_missing: float


@dataclass(frozen=True)
class ProductInputs(RelationshipInputs):
    """A relationship task that applies K to ``vectors`` (analysis samples × k) instead of forming it."""

    vectors: np.ndarray


def run_heritability(lake: Lake, settings: HeritabilitySettings, *, scheduler: str | None = None,
                     workers: int | None = None, progress: Progress | None = None) -> HeritabilityReport:
    """Estimate the SNP heritability of every phenotype asked; commit ``LAKE/results/NAME`` (``biolake h2 --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con)
    refuse_unfittable(chosen)
    blocks = genotype_blocks(lake, release=chosen.release, chromosomes=settings.chromosomes,
                             choice=settings.variant_choice())
    inputs = RelationshipInputs(chosen.vector_length, chosen.selection, settings.min_maf, settings.max_missing)
    method = settings.estimator(len(chosen.participant_ids))
    passes = dict(scheduler=scheduler, workers=workers, progress=progress)
    if method == "rhe":
        fit, variants = _randomized_he(lake, settings, chosen, inputs, blocks, **passes)
        trace = {"estimator": "randomized", "probes": settings.probes, "seed": settings.seed}
    else:
        cross, variants = relationship_sum(lake, inputs, blocks, **passes)
        check_relationship_variants(variants, inputs, release=chosen.release, chromosomes=settings.chromosomes)
        fit = METHODS[method](symmetric(cross) / variants, chosen.phenotypes, chosen.covariates)
        trace = {"estimator": "exact"}
    record = provenance("h2", settings, chosen, method=method, relationship=RELATIONSHIP, trace=trace,
                        variants=variants, components=_components(fit, chosen.phenotype_names))
    version = publish_table(lake, settings.name, _rows(fit, chosen.phenotype_names, method=method,
                                                       variants=variants), provenance=record, replace=settings.replace)
    return HeritabilityReport(name=settings.name, version=version, method=method, estimator=settings.described(method),
                              variants=variants, h2={name: (float(fit.h2[j]), float(fit.h2_se[j]))
                                                     for j, name in enumerate(chosen.phenotype_names)},
                              **DesignReport.of(chosen))


def _randomized_he(lake: Lake, settings: HeritabilitySettings, chosen: Design, inputs: RelationshipInputs,
                   blocks: list[Block], **passes: Any) -> tuple[RandomizedHeritability, int]:
    """HE with a randomized trace: K applied twice over the genotype blocks (:func:`relationship_products`), the
    probes (analysis samples × ``settings.probes``, standard normal) drawn from ``settings.seed``; and the count of
    variants."""
    counted: list[int] = []

    def apply_k(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        product, diagonal, variants = relationship_products(lake, inputs, blocks, vectors,
                                                            step=f"relationship products {len(counted) + 1}", **passes)
        check_relationship_variants(variants, inputs, release=chosen.release, chromosomes=settings.chromosomes)
        counted.append(variants)
        return product / variants, diagonal / variants

    probes = np.random.default_rng(settings.seed).standard_normal((len(chosen.participant_ids), settings.probes))
    return haseman_elston_randomized(apply_k, chosen.phenotypes, chosen.covariates, probes=probes), counted[0]


def refuse_unfittable(chosen: Design) -> None:
    """Refuse a design with a phenotype no variance component can be fitted for, naming it and why."""
    problems = fit_problems(chosen.phenotypes, chosen.covariates)
    if problems:
        column, why = problems[0]
        raise BiolakeError(f"phenotype {chosen.phenotype_names[column]!r}: {why}")


def check_relationship_variants(variants: int, inputs: RelationshipInputs, *, release: str,
                                chromosomes: Sequence[str] | None) -> None:
    """Refuse a relationship matrix of no variant, naming the filters (``inputs``) that left none."""
    if not variants:
        raise BiolakeError(f"release {release!r} has no variant with MAF ≥ {inputs.min_maf:g} and at most "
                           f"{inputs.max_missing:.0%} missing calls over the {inputs.analysis_samples:,} "
                           "analysis samples" + (f" on chromosomes {', '.join(chromosomes)}" if chromosomes else ""))


def relationship_sum(lake: Lake, inputs: RelationshipInputs, blocks: list[Block], *, scheduler: str | None = None,
                     workers: int | None = None, progress: Progress | None = None) -> tuple[np.ndarray, int]:
    """Z'Z summed over every kept variant of ``blocks`` (samples × samples, upper triangle) and the count of
    those variants, on dask: one task per worker, each over a contiguous share of the row groups."""
    n = inputs.analysis_samples
    cross, variants = summed_over_shares(lake, _relationship_task, inputs, blocks, [np.zeros((n, n)), 0],
                                         step="relationship", scheduler=scheduler, workers=workers, progress=progress)
    return cross, variants


def relationship_products(lake: Lake, inputs: RelationshipInputs, blocks: list[Block], vectors: np.ndarray, *,
                          step: str, scheduler: str | None = None, workers: int | None = None,
                          progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray, int]:
    """Z'(Z·``vectors``) (samples × k) and Σ z² per sample, summed over every kept variant of ``blocks``, and the
    count of those variants: K·vectors and K's diagonal times that count, as :func:`relationship_sum` shares the
    work; Z's N × p and K's N × N are never held."""
    product, diagonal, variants = summed_over_shares(
        lake, _product_task, ProductInputs(**vars(inputs), vectors=vectors), blocks,
        [np.zeros(vectors.shape), np.zeros(len(vectors)), 0], step=step, scheduler=scheduler, workers=workers,
        progress=progress)
    return product, diagonal, variants


def kept_genotypes(share: list[Block], inputs: RelationshipInputs) -> Iterator[GenotypeBlock]:
    """The genotypes (float32) of a share of the row groups' variants that K takes: MAF and missing calls."""
    for fragment in share:
        for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, samples=inputs.samples,
                                          dtype=np.float32):
            block = block.common(inputs.min_maf)
            kept = np.flatnonzero(np.diff(block.missing.indptr) <= inputs.max_missing * inputs.analysis_samples)
            if len(kept):
                yield block.take(kept)


def _relationship_task(share: list[Block], inputs: RelationshipInputs, position: int) -> tuple[np.ndarray, int]:
    """One dask task: Z'Z of the kept variants of a share of the row groups, and how many were kept."""
    n = inputs.analysis_samples
    cross, variants = np.zeros((n, n)), 0
    for block in kept_genotypes(share, inputs):
        cross += relationship_cross(block.dosages, block.missing)
        variants += len(block.dosages)
    return cross, variants


def _product_task(share: list[Block], inputs: ProductInputs, position: int) -> tuple[np.ndarray, np.ndarray, int]:
    """One dask task: Z'(Z·vectors) and Σ z² per sample of the kept variants of a share of the row groups, and how
    many were kept."""
    vectors = inputs.vectors.astype(np.float32)
    product, diagonal, variants = np.zeros(vectors.shape), np.zeros(len(vectors)), 0
    for block in kept_genotypes(share, inputs):
        block_product, block_diagonal = relationship_product(block.dosages, block.missing, vectors)
        product += block_product
        diagonal += block_diagonal
        variants += len(block.dosages)
    return product, diagonal, variants


def _rows(fit: Heritability, phenotypes: list[str], *, method: str, variants: int) -> pa.Table:
    """The results rows: one per phenotype."""
    return pa.table({"phenotype": phenotypes, "method": [method] * len(phenotypes), "h2": fit.h2,
                     "h2_se": fit.h2_se, "n_variants": np.full(len(phenotypes), variants, np.int64),
                     "n": fit.n_samples.astype(np.float64)}, schema=SCHEMA)


def _components(fit: Heritability, phenotypes: list[str]) -> dict[str, dict[str, float]]:
    """Per phenotype, the variance components and GEMMA's pve as its log prints them (for the provenance), and for
    rhe the probes' share of h²'s standard error."""
    names = [field.name for field in fields(fit) if field.name not in ("h2", "h2_se", "n_samples")]
    return {phenotype: {name: float(getattr(fit, name)[j]) for name in names} for j, phenotype in
            enumerate(phenotypes)}
