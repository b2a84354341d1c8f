"""The GxE job: queries → one task per genotype block on dask → a results table in the lake.

The same data path as the GWAS (:mod:`biolake.scan`): the design comes from SQL, the
exposures are columns of the covariate query, each phenotype keeps exactly its own
samples and a missing call drops that sample for that variant. Per variant the model is
y ~ covariates + exposures + g + g×exposures (+ Keller's terms), with model-based and
heteroskedasticity-robust (HC0–HC3) errors.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from biolake.frame import DesignReport, VariantJobRequest, provenance
from biolake.scan import ScanReport, TaskInputs, scan_design, scan_variants
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import GenotypeBlock
from biolake.stats.qc import VariantQc
from biolake.stats.gxe import ROBUST, GxeModel, gxe_association, gxe_schema, gxe_table, prepare_gxe

Progress = Callable[[str, int, int], None]
# Sandwich (HC) errors understate the variance of g×e when few carriers drive it: in the demo
# release (1,779 samples), interaction tests at p < 1e-4 came out 5–40× too often below MAF 3 %,
# and at the expected rate from 4 %. Variants under this minor allele frequency are skipped.
MIN_MAF = 0.05


@dataclass(frozen=True, kw_only=True)
class GxeSettings(VariantJobRequest):
    """What to test. ``exposures`` name columns of the covariate query (a text one: all its levels)."""

    phenotypes: str | Sequence[str]
    exposures: Sequence[str]
    keller: bool = False         # add covariate × exposure and covariate × genotype terms
    robust: str = "hc3"          # the robust standard error: hc0, hc1, hc2, hc3
    min_maf: float = MIN_MAF     # skip rarer variants: robust tests are anti-conservative for them
    adjust: bool = False         # store BH q-values (column fdr) of the robust interaction test

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.robust not in ROBUST:
            raise BiolakeError(f"robust {self.robust!r} is not one of {', '.join(ROBUST)}")
        if not self.exposures:
            raise BiolakeError("give at least one exposure (a column of the covariate query)")


@dataclass(frozen=True, kw_only=True)
class GxeReport(ScanReport):
    """What a GxE run wrote and found; ``summary`` ranks the robust interaction test."""

    exposures: list[str]
    terms: list[str]


@dataclass(frozen=True)
class GxeTests(TaskInputs):
    """What every GxE block task needs besides its block."""

    model: GxeModel
    phenotype_names: list[str]
    exposure_names: list[str]
    schema: pa.Schema
    qc: VariantQc
    dtype: type = np.float64

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray]:
        missing = block.missing if block.missing.nnz else None
        result = gxe_association(block.dosages, self.model, missing=missing)
        table = gxe_table(block.variants, result, phenotypes=self.phenotype_names, exposures=self.exposure_names,
                          schema=self.schema)
        return table, result.interaction.log10p_robust


def run_gxe(lake: Lake, settings: GxeSettings, *, scheduler: str | None = None, workers: int | None = None,
            progress: Progress | None = None) -> GxeReport:
    """Run a GxE scan on ``lake`` and write its results table; see ``biolake gxe --help``.

    Examples
    --------
    >>> report = run_gxe(Lake.open("lake"), GxeSettings(
    ...     name="stress", phenotypes=["25010-2.0"], covariates=["age", "sex", "site", "stress"],
    ...     exposures=["stress"]))
    >>> report.summary.top_variant
    array(['rs9668'], dtype=object)
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    chosen, blocks, males_x = scan_design(lake, settings, scheduler=scheduler, workers=workers,
                                          progress=progress)
    exposures = exposure_columns(chosen.covariate_names, settings.exposures)
    try:
        model = prepare_gxe(chosen.phenotypes, chosen.covariates, exposures=exposures, keller=settings.keller,
                            robust=settings.robust, names=chosen.covariate_names)
    except ValueError as exc:
        raise BiolakeError(f"cannot fit the GxE model: {exc}") from None
    exposure_names = [chosen.covariate_names[j] for j in exposures]
    tests = GxeTests(chosen.vector_length, chosen.selection, model, chosen.phenotype_names, exposure_names,
                     gxe_schema(exposures=len(exposures)), settings.variant_qc())
    record = provenance("gxe", settings, chosen, exposure_columns=exposure_names, per_variant_terms=model.terms)
    version, summary, removed = scan_variants(lake, settings.name, tests, blocks, provenance=record, step="gxe",
                                     scheduler=scheduler, workers=workers, progress=progress, replace=settings.replace,
                                     males_x=males_x, xchr_model=settings.xchr_model,
                                     fdr=(["phenotype", "exposure"], "log10p_gxe_robust") if settings.adjust else None)
    rows = int(summary.tests.sum() + summary.failed.sum()) * len(exposures)
    return GxeReport(name=settings.name, version=version, rows=rows, exposures=exposure_names, terms=model.terms,
                     summary=summary, removed=removed, **DesignReport.of(chosen))


def exposure_columns(covariate_names: list[str], exposures: Sequence[str]) -> list[int]:
    """Positions of the exposures among the design's covariate columns.

    A numeric exposure is its own column; a text one (``site``) became indicator columns
    ``site[…]`` and contributes all of them.

    Examples
    --------
    >>> exposure_columns(["intercept", "age", "site[B]", "site[C]", "stress"], ["stress", "site"])
    [4, 2, 3]
    """
    positions = []
    for exposure in exposures:
        found = [j for j, name in enumerate(covariate_names) if name == exposure or name.startswith(f"{exposure}[")]
        if not found:
            raise BiolakeError(f"exposure {exposure!r} is not a column of the covariate query (columns: "
                               f"{', '.join(covariate_names[1:])}); add it to --covar/--covar-sql")
        if exposure == "intercept":
            raise BiolakeError("the intercept cannot be an exposure")
        positions += found
    if len(set(positions)) != len(positions):
        raise BiolakeError(f"an exposure is named twice: {', '.join(exposures)}")
    return positions
