"""The EWAS job: queries → one task per methylation block on dask → limma's eBayes → a results table.

Every CpG is regressed on each exposure (an IDP, a phenotype, any query column) with the
covariates, on the methylation samples: the kernel of the shared map over lake blocks
(:func:`biolake.scan.map_lake_blocks`). Tasks return each CpG's least-squares fit (a few
numbers per CpG, so even an EPIC array's 850,000 fit in the client's memory); the job's
reduce then estimates limma's prior from all of them, moderates every t and adds BH
false-discovery rates, and the run commits the results as ``LAKE/results/NAME``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.frame import DesignReport, JobRequest, provenance
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import ERRORS, RESULTS_KINDS
from biolake.queries import connect
from biolake.queries.blocks import Block, methylation_blocks, read_methylation_blocks
from biolake.run import Run
from biolake.run import KernelOutput
from biolake.scan import TaskInputs, map_lake_blocks
from biolake.stats.ewas import ewas_regressions, moderate
from biolake.stats.linear import LinearModel, prepare_linear
from biolake.stats.multiple import benjamini_hochberg, lambda_gc
from biolake.stats.summary import ScanSummary

Progress = Callable[[str, int, int], None]
ARRAY_WIDE = 9e-8  # EPIC array-wide significance (Mansell et al. 2019)
RESULTS_SCHEMA = RESULTS_KINDS["ewas"].arrow_schema()


@dataclass(frozen=True, kw_only=True)
class EwasSettings(JobRequest):
    """What to test. Exposures/covariates are SQL (``participant_id`` first) or column lists."""

    TESTED: ClassVar[str] = "exposures"

    exposures: str | Sequence[str]
    values: str = "m"                 # "m": M-values, log2 β/(1−β); "beta": betas

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.values not in ("m", "beta"):
            raise BiolakeError(f"values must be 'm' or 'beta', got {self.values!r}")
        if self.transform is not None:
            raise BiolakeError("--transform rank-normalises phenotypes tested against genotypes (gwas, gxe, h2); ewas "
                               "tests each CpG against the exposures and does not take it")
        if self.variant_choice():
            raise BiolakeError(f"{self.variant_choice().describe()} chooses genotyped variants (gwas, gxe, h2, kinship); "
                               "ewas reads CpGs and does not take it")


@dataclass(frozen=True)
class ExposureSummary:
    """One exposure's run: limma's prior, inflation and what passed the thresholds; its tests and
    top CpG are those of the run's scan summary."""

    exposure: str
    cpgs: int
    prior_variance: float
    prior_df: float
    lambda_gc: float
    fdr_hits: int          # FDR < 0.05
    array_wide_hits: int   # moderated p < 9e-8
    top_cpg: str | None
    top_p: float


@dataclass(frozen=True, kw_only=True)
class EwasReport(DesignReport):
    """What an EWAS run wrote and found."""

    exposures: list[ExposureSummary]


@dataclass(frozen=True)
class EwasInputs(TaskInputs):
    """What every EWAS block task needs besides its block."""

    values: str
    model: LinearModel
    exposures: list[str]

    def results(self, fragment: Block) -> Iterator[KernelOutput]:
        """The kernel: each CpG of a methylation row group regressed on each exposure, slice by slice."""
        for block in read_methylation_blocks(fragment, n_samples=self.n_samples, samples=self.samples,
                                             values=self.values):
            fits = ewas_regressions(block.values, self.model, missing=block.missing)
            yield KernelOutput(_fits(block.cpgs, fits, self.exposures))


def run_ewas(lake: Lake, settings: EwasSettings, *, scheduler: str | None = None, workers: int | None = None,
             progress: Progress | None = None) -> EwasReport:
    """Run an EWAS on ``lake`` and write its results table; see ``biolake ewas --help``.

    Examples
    --------
    >>> report = run_ewas(Lake.open("lake"), EwasSettings(
    ...     name="stress", exposures="SELECT participant_id, stress FROM covariates",
    ...     covariates=["age", "sex", "site"]))
    >>> round(report.exposures[0].prior_df, 1), report.exposures[0].fdr_hits
    (4.0, 5)
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con, assay="methylation", role="exposure")
    blocks = methylation_blocks(lake, release=chosen.release, chromosomes=settings.chromosomes)
    if not blocks:
        raise BiolakeError(f"release {chosen.release!r} has no methylation data")
    inputs = EwasInputs(chosen.vector_length, chosen.selection, settings.values,
                        prepare_linear(chosen.phenotypes, chosen.covariates), chosen.phenotype_names)
    run = Run(lake, settings.name, kind=RESULTS_KINDS["ewas"], phenotypes=chosen.phenotype_names)
    moderations = map_lake_blocks(run, EwasInputs.results, inputs, blocks, schema=RESULTS_SCHEMA, step="ewas",
                                  scheduler=scheduler, workers=workers, progress=progress,
                                  reduce=lambda fits: _moderated_results(fits, chosen.phenotype_names))
    summaries = _exposure_summaries(moderations, run.summary)
    record = provenance("ewas", settings, chosen, exposure_summaries=[asdict(s) for s in summaries])
    version = run.publish(schema=RESULTS_SCHEMA, provenance=record, replace=settings.replace)
    return EwasReport(name=settings.name, version=version, exposures=summaries, **DesignReport.of(chosen))


def _fits(cpgs: pa.Table, fit, exposures: list[str]) -> pa.Table:
    """One block's least-squares fits as rows, exposure-major."""
    count = cpgs.num_rows

    def column(values: np.ndarray) -> np.ndarray:  # exposure-major
        return np.ascontiguousarray(values.T).ravel()

    return pa.table({
        "exposure": np.repeat(np.asarray(exposures, dtype=object), count),
        **{name: pa.concat_arrays([cpgs.column(name).combine_chunks()] * len(exposures))
           for name in ("cpg_id", "chrom", "pos")},
        "n": column(fit.n), "beta": column(fit.coefficient), "se": column(fit.se), "t": column(fit.t),
        "log10p": column(fit.log10p), "sigma2": column(fit.sigma2), "df": column(fit.df),
        "unscaled": column(fit.unscaled), "error": column(fit.error),
    })


@dataclass(frozen=True)
class Moderation:
    """What the reduce keeps of one exposure besides its rows: limma's prior and the EWAS thresholds."""

    prior_variance: float
    prior_df: float
    lambda_gc: float       # exact: the reduce holds every moderated p
    fdr_hits: int
    array_wide_hits: int
    top_p: float


def _moderated_results(fits: pa.Table, exposures: list[str]) -> tuple[pa.Table, list[Moderation]]:
    """The reduce: limma's eBayes and BH-FDR per exposure over all CpGs; the results rows, and per
    exposure its prior and threshold counts."""
    tables, moderations = [], []
    for exposure in exposures:
        fit = fits.filter(pc.equal(fits.column("exposure"), exposure))
        get = {name: fit.column(name).to_numpy() for name in
               ("beta", "sigma2", "df", "unscaled", "log10p", "error", "se", "t")}
        moderated = moderate(get["beta"], get["sigma2"], get["df"].astype(np.float64), get["unscaled"])
        moderated_p, fdr = moderated.p, benjamini_hochberg(moderated.p)
        tables.append(pa.table({
            **{name: fit.column(name) for name in ("exposure", "cpg_id", "chrom", "pos", "n")},
            **{name: pa.array(get[name], from_pandas=True) for name in ("beta", "se", "t")},
            "p": pa.array(10.0 ** -get["log10p"], from_pandas=True),
            "moderated_t": pa.array(moderated.t, from_pandas=True),
            "moderated_p": pa.array(moderated_p, from_pandas=True),
            "log10p": pa.array(moderated.log10p, from_pandas=True), "fdr": pa.array(fdr, from_pandas=True),
            "error": pa.array(np.array(ERRORS, dtype=object)[get["error"]], pa.string()),
        }, schema=RESULTS_SCHEMA))
        tested = ~np.isnan(moderated_p)
        moderations.append(Moderation(
            moderated.prior_variance, moderated.prior_df, lambda_gc(moderated_p), int((fdr < 0.05).sum()),
            int((moderated_p < ARRAY_WIDE).sum()), float(moderated_p[tested].min()) if tested.any() else float("nan")))
    return pa.concat_tables(tables), moderations


def _exposure_summaries(moderations: list[Moderation], summary: ScanSummary) -> list[ExposureSummary]:
    """Each exposure's summary: its tests and top CpG from the run's scan summary, the rest from the reduce."""
    return [ExposureSummary(exposure, int(tests), m.prior_variance, m.prior_df, m.lambda_gc, m.fdr_hits,
                            m.array_wide_hits, top, m.top_p)
            for exposure, tests, top, m in zip(summary.phenotypes, summary.tests, summary.top, moderations)]
