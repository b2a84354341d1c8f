"""The GWAS job: queries → one task per genotype block on dask → a results table in the lake.

The design (phenotypes, covariates, samples) comes from SQL; phenotypes are
residualised once and the small inputs go to the cluster once, as a task it can
compute again if the worker holding them dies. Each task reads one genotype row
group straight from the lake, decodes it and runs the kernels, so memory is bounded
by the block, not by the number of variants (:mod:`biolake.scan`). Results stream into
one Delta commit under ``LAKE/results/NAME``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import scipy.sparse

from biolake.frame import DesignReport, VariantJobRequest, plink_case_control, provenance
from biolake.scan import ScanReport, TaskInputs, scan_design, scan_variants
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import Block, GenotypeBlock
from biolake.queries.design import Design
from biolake.stats.gwas import association_table, results_schema
from biolake.stats.linear import LinearModel, linear_association, prepare_linear
from biolake.stats.lmm import MODES as EIGEN_MODES
from biolake.stats.qc import VariantQc

Progress = Callable[[str, int, int], None]
MODELS = ("auto", "linear", "logistic")
PRECISIONS = {"float64": np.float64, "float32": np.float32}
LMM_MODES = ("loco", *EIGEN_MODES)   # loco: REGENIE's step 1, then the plain linear kernel; the rest on K's eigenbasis
LOCO_CV_FOLDS = 5              # loco's ridge regressions: cross-validation folds (REGENIE's default)
LOCO_BLOCK_SIZE = 1000         # loco's level-0 blocks: variants per block (REGENIE's --bsize)
MAX_LMM_BLOCK_SIZE = 10_000   # loco's level-0 blocks: each fold decomposes a block × block matrix (800 MB at this)


@dataclass(frozen=True, kw_only=True)
class GwasSettings(VariantJobRequest):
    """What to test, and how. Phenotypes/covariates are SQL (``participant_id`` first) or column lists."""

    phenotypes: str | Sequence[str]
    model: str = "auto"            # auto: a phenotype coded 0/1, or PLINK's 1/2, is binary (logistic)
    firth: str = "fallback"        # as plink2: fallback, always, never
    impute_mean: bool = False      # missing calls → the variant's mean (REGENIE); default drops them (plink2)
    precision: str = "float64"
    adjust: bool = False           # store BH q-values (column fdr) per phenotype, as plink2 --adjust
    lmm: str | None = None         # a mixed model (loco; exact, null-ratio: GEMMA's -lmm 1 Wald test); None: plain
    cv_folds: int | None = None    # loco only: the ridge regressions' cross-validation folds (None: LOCO_CV_FOLDS)
    lmm_block_size: int | None = None   # loco only: variants per level-0 block (None: LOCO_BLOCK_SIZE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in MODELS:
            raise BiolakeError(f"model {self.model!r} is not one of {', '.join(MODELS)}")
        if self.firth not in ("fallback", "always", "never"):
            raise BiolakeError(f"firth {self.firth!r} is not one of fallback, always, never")
        if self.precision not in PRECISIONS:
            raise BiolakeError(f"precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")
        if self.lmm is not None and self.lmm not in LMM_MODES:
            raise BiolakeError(f"--lmm {self.lmm!r} is not one of {', '.join(LMM_MODES)}")
        if self.lmm is not None and self.model == "logistic":
            raise BiolakeError("--lmm fits a linear mixed model (GEMMA's -lmm is linear, loco tests each phenotype minus "
                               "its LOCO prediction by linear regression; a 0/1 phenotype is tested as quantitative): "
                               "it does not combine with --model logistic")
        if self.lmm in EIGEN_MODES and self.precision != "float64":
            raise BiolakeError("--lmm runs in float64 (its Wald tests on the eigenbasis, as GEMMA's): it does not combine "
                               f"with --precision {self.precision}")
        loco_settings = {"--cv-folds": self.cv_folds, "--lmm-block-size": self.lmm_block_size}
        if self.lmm != "loco" and (given := [flag for flag, value in loco_settings.items() if value is not None]):
            raise BiolakeError(f"{given[0]} sets --lmm loco's ridge regressions; it does not apply to "
                               + (f"--lmm {self.lmm}" if self.lmm else "plain regression (add --lmm loco)"))
        if self.cv_folds is not None and self.cv_folds < 2:
            raise BiolakeError(f"--cv-folds must be at least 2 (each fold's predictions come from the others), got "
                               f"{self.cv_folds}")
        if self.lmm_block_size is not None and not 1 <= self.lmm_block_size <= MAX_LMM_BLOCK_SIZE:
            raise BiolakeError(f"--lmm-block-size must be 1 to {MAX_LMM_BLOCK_SIZE:,} variants (each level-0 fold "
                               f"decomposes a block × block matrix), got {self.lmm_block_size}")


@dataclass(frozen=True, kw_only=True)
class GwasReport(ScanReport):
    """What a GWAS run wrote and found."""


@dataclass(frozen=True)
class BlockInputs(TaskInputs):
    """Everything a GWAS block task needs besides its block."""

    dtype: type
    impute_mean: bool
    linear: LinearModel | None
    linear_names: list[str]
    binary: np.ndarray             # samples × binary phenotypes (0/1, NaN missing)
    binary_names: list[str]
    covariates: np.ndarray         # samples × k, intercept first
    firth: str
    schema: pa.Schema
    qc: VariantQc

    @property
    def phenotype_names(self) -> list[str]:
        """In the order of the rows of each results block: linear phenotypes, then binary ones."""
        return self.linear_names + self.binary_names

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray]:
        table = gwas_block(block, self)
        log10p = table.column("log10p").to_numpy(zero_copy_only=False).reshape(-1, block.variants.num_rows)
        return table, log10p.T


def run_gwas(lake: Lake, settings: GwasSettings, *, scheduler: str | None = None, workers: int | None = None,
             progress: Progress | None = None) -> GwasReport:
    """Run a GWAS on ``lake`` and write its results table; see ``biolake gwas --help``.

    Examples
    --------
    >>> report = run_gwas(Lake.open("lake"), GwasSettings(
    ...     name="idps", phenotypes=["25010-2.0"], covariates=["age", "sex", "site"]))
    >>> report.summary.lambda_gc().round(1)
    array([1.6])
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    chosen, blocks, males_x = scan_design(lake, settings, scheduler=scheduler, workers=workers,
                                          progress=progress)
    if settings.lmm is None:
        inputs = block_inputs(chosen, settings=settings)
        facts = {"linear_phenotypes": inputs.linear_names, "logistic_phenotypes": inputs.binary_names}
    else:
        inputs, facts = _mixed_model_inputs(lake, chosen, settings, blocks, scheduler=scheduler, workers=workers,
                                          progress=progress)
        facts = {"linear_phenotypes": inputs.phenotype_names, "logistic_phenotypes": [], **facts}
    record = provenance("gwas", settings, chosen, **facts)
    version, summary, removed = scan_variants(lake, settings.name, inputs, blocks, provenance=record, step="gwas",
                                     scheduler=scheduler, workers=workers, progress=progress, replace=settings.replace,
                                     males_x=males_x, xchr_model=settings.xchr_model,
                                     fdr=(["phenotype"], "log10p") if settings.adjust else None)
    rows = int(summary.tests.sum() + summary.failed.sum())
    return GwasReport(name=settings.name, version=version, rows=rows, summary=summary, removed=removed,
                      **DesignReport.of(chosen))


def _mixed_model_inputs(lake: Lake, chosen: Design, settings: GwasSettings, blocks: list[Block], *,
                        scheduler: str | None, workers: int | None, progress: Progress | None
                        ) -> tuple[TaskInputs, dict]:
    """The block inputs of the mixed-model scan ``settings.lmm`` and what its provenance records: loco's are the
    plain linear kernel's, every phenotype quantitative, with each chromosome's phenotypes minus their LOCO
    predictions (:mod:`biolake.loco`); exact's and null-ratio's test on K's eigenbasis (:mod:`biolake.lmm`)."""
    from biolake.lmm import lmm_block_inputs    # here, not at the top: a plain scan starts without their imports
    from biolake.loco import loco_block_inputs

    if settings.lmm == "loco":
        return loco_block_inputs(lake, chosen, block_inputs(chosen, settings=replace(settings, model="linear")),
                                 tested=list(dict.fromkeys(block.chrom for block in blocks)),
                                 folds=settings.cv_folds or LOCO_CV_FOLDS,
                                 block_size=settings.lmm_block_size or LOCO_BLOCK_SIZE, scheduler=scheduler,
                                 workers=workers, progress=progress)
    return lmm_block_inputs(lake, chosen, mode=settings.lmm, qc=settings.variant_qc(), scheduler=scheduler,
                            workers=workers, progress=progress)


def gwas_block(block: GenotypeBlock, inputs: BlockInputs) -> pa.Table:
    """Every test of one genotype block: the linear phenotypes together, then the binary ones."""
    if inputs.impute_mean and block.missing.nnz:
        block = _impute_mean(block)
    missing = block.missing if block.missing.nnz else None
    parts = []
    if inputs.linear is not None:
        result = linear_association(block.dosages, inputs.linear, missing=missing)
        parts.append(association_table(
            block.variants, result, phenotypes=inputs.linear_names, statistic="t", schema=inputs.schema))
    if inputs.binary_names:
        from biolake.stats.logistic import logistic_association
        result = logistic_association(block.dosages.astype(np.float64, copy=False), inputs.binary,
                                      inputs.covariates, missing=missing, firth=inputs.firth)
        parts.append(association_table(
            block.variants, result, phenotypes=inputs.binary_names, statistic="z", schema=inputs.schema,
            firth=result.firth))
    return pa.concat_tables(parts)


def _impute_mean(block: GenotypeBlock) -> GenotypeBlock:
    """REGENIE's rule: a missing call becomes the variant's mean dosage over called samples."""
    dosages = block.dosages.copy()
    lost = np.asarray(block.missing.sum(axis=1)).ravel()
    means = dosages.sum(axis=1) / np.maximum(dosages.shape[1] - lost, 1)
    rows, cols = block.missing.nonzero()
    dosages[rows, cols] = means[rows]
    return GenotypeBlock(block.variants, dosages, scipy.sparse.csr_array(block.missing.shape))


def block_inputs(chosen: Design, *, settings: GwasSettings) -> BlockInputs:
    """What every block task of the GWAS ``settings`` on the ``chosen`` design needs besides its block."""
    binary, phenotypes = binary_columns(chosen.phenotypes, settings.model, chosen.phenotype_names)
    quantitative = phenotypes[:, ~binary]
    names = np.array(chosen.phenotype_names, dtype=object)
    statistics = [s for s, used in (("t", (~binary).any()), ("z", binary.any())) if used]
    return BlockInputs(
        n_samples=chosen.vector_length, samples=chosen.selection, dtype=PRECISIONS[settings.precision],
        impute_mean=settings.impute_mean,
        linear=prepare_linear(quantitative, chosen.covariates) if quantitative.shape[1] else None,
        linear_names=list(names[~binary]),
        binary=phenotypes[:, binary], binary_names=list(names[binary]),
        covariates=chosen.covariates, firth=settings.firth, schema=results_schema(statistics=statistics),
        qc=settings.variant_qc())


def binary_columns(phenotypes: np.ndarray, model: str, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Which phenotypes get logistic regression, declared by ``model`` or detected (values all 0/1,
    or PLINK's case/control coding), and the phenotypes with the PLINK-coded ones recoded to 0/1.

    PLINK reads a phenotype of 1 and 2 (0 and -9 missing) as control/case; so does ``auto``,
    with a warning naming it, as a quantitative phenotype can take those values too.
    """
    values = [set(np.unique(column[~np.isnan(column)]).tolist()) for column in phenotypes.T]
    zero_one = np.array([found <= {0.0, 1.0} for found in values], bool)
    plink = np.array([plink_case_control(found) for found in values], bool)
    if model == "linear":
        return np.zeros(len(names), bool), phenotypes
    if model == "logistic" and not (zero_one | plink).all():
        bad = [n for n, ok in zip(names, zero_one | plink) if not ok]
        raise BiolakeError(f"--model logistic needs 0/1 phenotypes (0 control, 1 case) or PLINK's 1/2 (0, -9 "
                           f"missing); not 0/1 nor 1/2: {', '.join(bad[:5])}")
    recoded = phenotypes.copy()
    for j in np.flatnonzero(plink):
        warnings.warn(f"phenotype {names[j]!r} holds only 1 and 2 (0, -9 missing), PLINK's case/control coding: "
                      "tested as 2 case, 1 control by logistic regression (--model linear tests it as quantitative)",
                      stacklevel=3)
        recoded[:, j] = np.select([phenotypes[:, j] == 2.0, phenotypes[:, j] == 1.0], [1.0, 0.0], np.nan)
    return zero_one | plink, recoded
