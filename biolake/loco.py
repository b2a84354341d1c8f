"""The LOCO part of the GWAS job (``biolake gwas --lmm loco``): REGENIE's step 1 on the lake, then the plain scan.

Level 0 runs on dask, one task per genotype row group of the release (every chromosome, whatever
``--chrom`` tests): the row group's variants that K would take (MAF ≥ 0.01, ≤ 5 % missing calls,
GEMMA's defaults as ``biolake h2``), cut into blocks of ``block_size``, each block's out-of-fold
ridge predictions of every phenotype (:func:`biolake.stats.loco.level0_predictions`). The client
stacks them (phenotypes × samples × blocks · R, float32: 4 N · P · blocks · R bytes, 4 GB for 100
IDPs × 10,000 samples × 200 blocks × 5 penalties) and fits level 1 per phenotype on its own samples
(:func:`biolake.stats.loco.loco_predictions`). Each phenotype minus its LOCO prediction for a
chromosome is then that chromosome's phenotype in the plain GWAS's exact linear kernel
(:class:`biolake.gwas.BlockInputs`): same columns, each phenotype still on its own samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import polars as pl
import pyarrow as pa

from biolake.cluster import block_map
from biolake.heritability import (GEMMA_MAX_MISSING, GEMMA_MIN_MAF, RelationshipInputs, kept_genotypes,
                                  refuse_unfittable)
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import Block, GenotypeBlock, genotype_blocks, genotyped_samples
from biolake.queries.design import Design
from biolake.scan import TaskInputs
from biolake.stats.qc import VariantQc
from biolake.stats.linear import LinearModel, Residualizer, prepare_linear
from biolake.stats.loco import (HERITABILITIES, MIN_FOLD_SAMPLES, RidgeTargets, block_predictors, fold_assignment,
                                level0_predictions, loco_predictions, ridge_penalties, ridge_targets, thin_folds)

if TYPE_CHECKING:
    from biolake.gwas import BlockInputs

Progress = Callable[[str, int, int], None]
FOLD_SEED = 1   # the folds' permutation: fixed, so a rerun gives the same predictions


@dataclass(frozen=True)
class Level0Inputs(RelationshipInputs):
    """What every level-0 task needs besides its row group: the targets, the covariates' basis, the folds."""

    basis: np.ndarray       # samples × k, orthonormal, spanning the covariates
    targets: np.ndarray     # samples × phenotypes (ridge targets, 0 where missing)
    folds_of: np.ndarray    # samples: each one's fold
    folds: int
    block_size: int
    penalties: np.ndarray   # the R ridge penalties, of the genome's variant count


@dataclass(frozen=True)
class LocoBlockInputs(TaskInputs):
    """A LOCO block task: the plain GWAS's inputs, with each chromosome's phenotypes minus their LOCO predictions."""

    plain: BlockInputs                 # the plain GWAS's, its linear model replaced per chromosome
    models: dict[str, LinearModel]     # chromosome → the linear model of the phenotypes minus their LOCO predictions

    @property
    def phenotype_names(self) -> list[str]:
        return self.plain.phenotype_names

    @property
    def dtype(self) -> type:
        return self.plain.dtype

    @property
    def schema(self) -> pa.Schema:
        return self.plain.schema

    @property
    def qc(self) -> VariantQc:
        return self.plain.qc

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray]:
        chrom = block.variants.column("chrom")[0].as_py()
        return replace(self.plain, linear=self.models[chrom]).test(block)


def loco_block_inputs(lake: Lake, chosen: Design, plain: BlockInputs, *, tested: list[str], folds: int, block_size: int,
                      scheduler: str | None = None, workers: int | None = None, progress: Progress | None = None
                      ) -> tuple[LocoBlockInputs, dict[str, Any]]:
    """The block inputs of a LOCO scan of the ``chosen`` design over the ``tested`` chromosomes, from the plain
    GWAS's ``plain``; and what its provenance records: the mode, folds, block size, level-0 variants and blocks,
    each phenotype's level-1 penalty."""
    refuse_unfittable(chosen)
    folds_of = fold_assignment(len(chosen.participant_ids), folds, seed=FOLD_SEED)
    targets = ridge_targets(chosen.phenotypes, chosen.covariates)
    _refuse_thin_folds(chosen, targets, folds_of, folds)
    genome = genome_variants(lake, chosen.release)
    inputs = Level0Inputs(chosen.vector_length, chosen.selection, GEMMA_MIN_MAF, GEMMA_MAX_MISSING,
                          Residualizer.from_covariates(chosen.covariates).basis, targets.values, folds_of, folds,
                          block_size, ridge_penalties(max(genome, 1)))
    predictors, chromosome_of, chromosomes, variants = _level0(lake, inputs, genotype_blocks(lake, release=chosen.release),
                                                               scheduler=scheduler, workers=workers, progress=progress)
    if not variants:
        raise BiolakeError(f"release {chosen.release!r} has no variant with MAF ≥ {GEMMA_MIN_MAF:g} and at most "
                           f"{GEMMA_MAX_MISSING:.0%} missing calls for the level-0 ridge regressions")
    names = chromosomes + [c for c in tested if c not in chromosomes]
    loco = loco_predictions(predictors, targets, np.array([names.index(c) for c in chromosome_of], int), len(names),
                            folds_of, folds)
    models = {chrom: prepare_linear(chosen.phenotypes - loco.values[:, :, names.index(chrom)], chosen.covariates)
              for chrom in tested}
    facts = {"lmm": {"mode": "loco", "folds": folds, "fold_seed": FOLD_SEED, "block_size": block_size,
                     "heritabilities": list(HERITABILITIES), "level0_variants": variants,
                     "level0_penalties": inputs.penalties.tolist(),
                     "level0_blocks": len(chromosome_of) // len(HERITABILITIES),
                     "level1_penalty": {name: float(loco.penalties[j])
                                        for j, name in enumerate(chosen.phenotype_names)}}}
    return LocoBlockInputs(chosen.vector_length, chosen.selection, plain, models), facts


def genome_variants(lake: Lake, release: str) -> int:
    """M of the level-0 penalties λ = M(1 − h²)/h²: the release's variants that level 0 keeps (MAF ≥ 0.01, ≤ 5 %
    missing calls), counted from the variants table, over every genotyped sample (level 0 filters over the
    analysis samples, so the two counts may differ by a few variants; the penalties hardly move)."""
    n = genotyped_samples(lake, release=release)
    variants = pl.from_arrow(lake.read("variants", release=release, columns=["alt_freq", "n_called"]))
    kept = variants.filter((pl.min_horizontal(pl.col("alt_freq"), 1 - pl.col("alt_freq")) >= GEMMA_MIN_MAF)
                           & (pl.col("n_called") >= (1 - GEMMA_MAX_MISSING) * n))
    return kept.height


def _refuse_thin_folds(chosen: Design, targets: RidgeTargets, folds_of: np.ndarray, folds: int) -> None:
    """Refuse a phenotype with fewer than MIN_FOLD_SAMPLES of its samples in some cross-validation fold."""
    thin = thin_folds(targets.present, folds_of, folds)
    if thin:
        column, fewest = thin[0]
        raise BiolakeError(f"phenotype {chosen.phenotype_names[column]!r}: {int(targets.present[:, column].sum())} "
                           f"samples leave {fewest} in a cross-validation fold; --cv-folds {folds} needs at least "
                           f"{MIN_FOLD_SAMPLES} per fold (fewer folds, or more samples)")


def _level0(lake: Lake, inputs: Level0Inputs, blocks: list[Block], **passes: Any
            ) -> tuple[np.ndarray, list[str], list[str], int]:
    """Every row group's level-0 predictions on dask, stacked in variant order: phenotypes × samples × (blocks · R)
    float32; each of those predictors' chromosome; the chromosomes in order; the count of variants used."""
    with block_map(lake, scheduler=passes["scheduler"], workers=passes["workers"]) as map_over:
        pieces = sorted(map_over(_level0_task, blocks, inputs, step="level 0", progress=passes["progress"]),
                        key=lambda piece: piece[0])
    chromosome_of = [chrom for _, chrom, predictions, _ in pieces for _ in range(predictions.shape[2])]
    variants = sum(piece[3] for piece in pieces)
    # filled piece by piece, each dropped once copied: the pages of np.empty are touched only as written, so the
    # client holds the predictions about once, not twice
    stacked = np.empty((inputs.targets.shape[1], inputs.analysis_samples, len(chromosome_of)), np.float32)
    start = 0
    for position in range(len(pieces)):
        predictions = pieces[position][2]
        stacked[:, :, start:start + predictions.shape[2]] = predictions
        start += predictions.shape[2]
        pieces[position] = pieces[position][:2]
    return stacked, chromosome_of, list(dict.fromkeys(chromosome_of)), variants


def _level0_task(fragment: Block, inputs: Level0Inputs, position: int) -> tuple[int, str, np.ndarray, int]:
    """One dask task: the level-0 predictions (phenotypes × samples × blocks · R, float32) of one row group's
    blocks of ``block_size`` kept variants, its place and chromosome, and how many variants it used."""
    parts, variants = [], 0
    for block in _variant_blocks(kept_genotypes([fragment], inputs), inputs.block_size):
        predictors = block_predictors(block.dosages, block.missing, inputs.basis)
        parts.append(level0_predictions(predictors, inputs.targets, inputs.folds_of, inputs.folds, inputs.penalties)
                     .transpose(1, 0, 2))
        variants += predictors.shape[1]
    return position, fragment.chrom, _stacked(parts, inputs), variants


def _stacked(parts: list[np.ndarray], inputs: Level0Inputs) -> np.ndarray:
    """Level-0 predictions (each phenotypes × samples × predictors) side by side; none: an empty such array."""
    empty = np.zeros((inputs.targets.shape[1], inputs.analysis_samples, 0), np.float32)
    return np.concatenate([empty, *parts], axis=2)


def _variant_blocks(slices: Iterator[GenotypeBlock], size: int) -> Iterator[GenotypeBlock]:
    """``slices`` of consecutive variants regrouped into blocks of ``size`` (the last one smaller)."""
    buffered: list[GenotypeBlock] = []
    count = 0
    for block in slices:
        buffered.append(block)
        count += len(block.dosages)
        while count >= size:
            whole = GenotypeBlock.concat(buffered)
            yield whole.take(np.arange(size))
            rest = whole.take(np.arange(size, count))
            buffered, count = ([rest] if len(rest.dosages) else []), count - size
    if count:
        yield GenotypeBlock.concat(buffered)

