"""The EWAS job: queries → one task per methylation block on dask → limma's eBayes → a results table.

Every CpG is regressed on each exposure (an IDP, a phenotype, any query column) with the
covariates, on the methylation samples. Tasks return each CpG's least-squares fit (a few
numbers per CpG, so even an EPIC array's 850,000 fit in the client's memory); the client
then estimates limma's prior from all of them, moderates every t, adds BH false-discovery
rates and commits the results as ``LAKE/results/NAME``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.cluster import lake_client, map_blocks
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import ERRORS, RESULTS_KINDS
from biolake.queries import connect, design
from biolake.queries.blocks import Block, methylation_blocks, read_methylation_blocks
from biolake.queries.browse import IndexParts, index_after_job, write_positions
from biolake.stats.ewas import ewas_regressions, moderate
from biolake.stats.linear import LinearModel, prepare_linear
from biolake.stats.multiple import benjamini_hochberg, lambda_gc

Progress = Callable[[str, int, int], None]
ARRAY_WIDE = 9e-8  # EPIC array-wide significance (Mansell et al. 2019)
RESULTS_SCHEMA = RESULTS_KINDS["ewas"].arrow_schema()


@dataclass(frozen=True)
class EwasSettings:
    """What to test. Exposures/covariates are SQL (``participant_id`` first) or column lists."""

    name: str
    exposures: str | Sequence[str]
    covariates: str | Sequence[str]
    samples: str | None = None
    release: str | None = None
    values: str = "m"                 # "m": M-values, log2 β/(1−β); "beta": betas
    chromosomes: Sequence[str] | None = None
    replace: bool = False             # replace an existing results table of this name (else refused)


@dataclass(frozen=True)
class ExposureSummary:
    """One exposure's run: limma's prior, inflation and what passed the thresholds."""

    exposure: str
    cpgs: int
    prior_variance: float
    prior_df: float
    lambda_gc: float
    fdr_hits: int          # FDR < 0.05
    array_wide_hits: int   # moderated p < 9e-8
    top_cpg: str | None
    top_p: float


@dataclass(frozen=True)
class EwasReport:
    """What an EWAS run wrote and found."""

    name: str
    version: int
    samples: int
    covariates: list[str]
    dropped: str
    exposures: list[ExposureSummary]


@dataclass(frozen=True)
class EwasInputs:
    """What every block task needs besides its block: sent to the cluster once (see
    :func:`biolake.cluster.map_blocks`)."""

    n_samples: int
    samples: np.ndarray | None
    values: str
    model: LinearModel
    exposures: list[str]


def run_ewas(lake: Lake, settings: EwasSettings, *, scheduler: str | None = None, workers: int | None = None,
             progress: Progress | None = None) -> EwasReport:
    """Run an EWAS on ``lake`` and write its results table; see ``biolake ewas --help``.

    Examples
    --------
    >>> report = run_ewas(Lake.open("/tmp/lake"), EwasSettings(                  # doctest: +SKIP
    ...     name="stress", exposures="SELECT participant_id, stress FROM covariates",
    ...     covariates=["age", "sex", "site"]))
    >>> report.exposures[0].prior_df, report.exposures[0].fdr_hits              # doctest: +SKIP
    """
    if settings.values not in ("m", "beta"):
        raise BiolakeError(f"values must be 'm' or 'beta', got {settings.values!r}")
    lake.check_results_free(settings.name, replace=settings.replace)
    with connect(lake, release=settings.release) as con:
        chosen = design(con, phenotypes=settings.exposures, covariates=settings.covariates,
                        samples=settings.samples, assay="methylation", role="exposure")
    blocks = methylation_blocks(lake, release=chosen.release, chromosomes=settings.chromosomes)
    if not blocks:
        raise BiolakeError(f"release {chosen.release!r} has no methylation data")
    inputs = EwasInputs(chosen.vector_length, chosen.selection, settings.values,
                        prepare_linear(chosen.phenotypes, chosen.covariates), chosen.phenotype_names)
    with lake_client(lake, scheduler=scheduler, workers=workers) as client:
        fits = pa.concat_tables(map_blocks(client, _ewas_task, blocks, inputs, step="ewas", progress=progress))
    table, summaries = _moderated_results(fits, chosen.phenotype_names)
    files, positions_files = lake.results_files(settings.name), lake.browse_files(settings.name, "positions")
    actions, positions, parts = [], [], IndexParts(RESULTS_KINDS["ewas"])   # the browse index, from the rows in hand
    for chrom in pc.unique(table.column("chrom")).to_pylist():
        rows = table.filter(pc.equal(table.column("chrom"), chrom))
        output = files.open(RESULTS_SCHEMA, partition={"chrom": chrom}, part="ewas")
        output.write(rows)
        actions.append(output.close())
        positions += write_positions(positions_files, [parts.add(rows)], part="ewas")
    provenance = {
        "kind": "ewas", "release": chosen.release, "created_at": datetime.now(timezone.utc).isoformat(),
        "exposures": settings.exposures, "covariates": settings.covariates, "samples": settings.samples,
        "settings": {k: v for k, v in asdict(settings).items() if k not in ("exposures", "covariates", "samples")},
        "analysis_samples": len(chosen.participant_ids), "covariate_columns": chosen.covariate_names,
        "dropped": chosen.dropped.counts, "exposure_summaries": [asdict(s) for s in summaries],
    }
    version = lake.commit_results(files, actions, schema=RESULTS_SCHEMA, partition_by=["chrom"],
                                  provenance=provenance, replace=settings.replace)
    index_after_job(lake, settings.name, version=version, pieces=(parts, positions_files, positions))
    return EwasReport(settings.name, version, len(chosen.participant_ids), chosen.covariate_names,
                      str(chosen.dropped), summaries)


def _ewas_task(fragment: Block, inputs: EwasInputs, position: int) -> pa.Table:
    """One dask task: each CpG of a methylation row group regressed on each exposure."""
    parts = []
    for block in read_methylation_blocks(fragment, n_samples=inputs.n_samples, samples=inputs.samples,
                                         values=inputs.values):
        fit = ewas_regressions(block.values, inputs.model, missing=block.missing)
        count = block.cpgs.num_rows

        def column(values: np.ndarray) -> np.ndarray:  # exposure-major
            return np.ascontiguousarray(values.T).ravel()

        parts.append(pa.table({
            "exposure": np.repeat(np.asarray(inputs.exposures, dtype=object), count),
            **{name: pa.concat_arrays([block.cpgs.column(name).combine_chunks()] * len(inputs.exposures))
               for name in ("cpg_id", "chrom", "pos")},
            "n": column(fit.n), "coefficient": column(fit.coefficient), "se": column(fit.se), "t": column(fit.t),
            "log10p": column(fit.log10p), "sigma2": column(fit.sigma2), "df": column(fit.df),
            "unscaled": column(fit.unscaled), "error": column(fit.error),
        }))
    return pa.concat_tables(parts)


def _moderated_results(fits: pa.Table, exposures: list[str]) -> tuple[pa.Table, list[ExposureSummary]]:
    """limma's eBayes and BH-FDR per exposure over all CpGs; the results table and summaries."""
    tables, summaries = [], []
    for exposure in exposures:
        fit = fits.filter(pc.equal(fits.column("exposure"), exposure))
        get = {name: fit.column(name).to_numpy() for name in
               ("coefficient", "sigma2", "df", "unscaled", "log10p", "error", "se", "t")}
        moderated = moderate(get["coefficient"], get["sigma2"], get["df"].astype(np.float64), get["unscaled"])
        moderated_p, fdr = moderated.p, benjamini_hochberg(moderated.p)
        tables.append(pa.table({
            **{name: fit.column(name) for name in ("exposure", "cpg_id", "chrom", "pos", "n")},
            "beta": pa.array(get["coefficient"], from_pandas=True),
            **{name: pa.array(get[name], from_pandas=True) for name in ("se", "t")},
            "p": pa.array(10.0 ** -get["log10p"], from_pandas=True),
            "moderated_t": pa.array(moderated.t, from_pandas=True),
            "moderated_p": pa.array(moderated_p, from_pandas=True),
            "log10p": pa.array(moderated.log10p, from_pandas=True), "fdr": pa.array(fdr, from_pandas=True),
            "error": pa.array(np.array(ERRORS, dtype=object)[get["error"]], pa.string()),
        }, schema=RESULTS_SCHEMA))
        tested = ~np.isnan(moderated_p)
        best = int(np.nanargmin(moderated_p)) if tested.any() else None
        summaries.append(ExposureSummary(
            exposure, int(tested.sum()), moderated.prior_variance, moderated.prior_df, lambda_gc(moderated_p),
            int((fdr < 0.05).sum()), int((moderated_p < ARRAY_WIDE).sum()),
            None if best is None else fit.column("cpg_id")[best].as_py(),
            float("nan") if best is None else float(moderated_p[best])))
    return pa.concat_tables(tables), summaries
