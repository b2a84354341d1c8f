"""Whole-genome ridge regression of many phenotypes at once, and its leave-one-chromosome-out predictions.

REGENIE's step 1 (Mbatchou et al. 2021), fitted for every phenotype in one pass:

- Level 0, per block of B variants (standardised, missing calls mean-imputed per variant, the
  covariates projected out): ridge regressions of every phenotype on the block for R penalties
  λ = M(1 − h²)/h² over ``HERITABILITIES``, M the genome's variant count (REGENIE's: each variant's
  effect variance h²/M, whichever block it is in), by K-fold cross-validation, giving each sample's
  out-of-fold predictions (samples × phenotypes × R). The work is shared by all phenotypes: per
  fold one eigendecomposition of the block's X'X − X_f'X_f, and X'Y for all phenotypes in one
  product. The phenotypes enter residualised on the covariates over their own samples and scaled to
  variance 1, with their missing samples set to 0 (their mean): so one X'Y serves all of them
  whatever their missingness (REGENIE imputes the mean too, at both levels).
- Level 1, per phenotype and on its own samples only (what REGENIE cannot do): a ridge of the
  phenotype on its [blocks · R] level-0 predictions (scaled to variance 1 over those samples), the
  penalty chosen by the same folds' cross-validation over ``HERITABILITIES`` (λ = m(1 − h²)/h² for m
  predictors); each sample's prediction comes from the fit without its fold (REGENIE's out-of-fold
  level-1 predictions), and its LOCO prediction for chromosome c is that prediction without the
  terms of c's blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from biolake.stats.ld import standardized_genotypes

HERITABILITIES = (0.01, 0.25, 0.5, 0.75, 0.99)   # REGENIE's grid: ridge penalties λ = m(1 − h²)/h²
MIN_FOLD_SAMPLES = 2                               # a phenotype's samples in each fold (a fold's error needs some)


def ridge_penalties(predictors: int) -> np.ndarray:
    """The R ridge penalties for ``predictors`` unit-variance predictors in all, m(1 − h²)/h² per h²: a prior
    variance of h²/m on each predictor's effect (level 0: m is the genome's variant count, not the block's).

    Examples
    --------
    >>> ridge_penalties(1000).round(1).tolist()
    [99000.0, 3000.0, 1000.0, 333.3, 10.1]
    """
    h2 = np.asarray(HERITABILITIES)
    return predictors * (1.0 - h2) / h2


def fold_assignment(samples: int, folds: int, *, seed: int) -> np.ndarray:
    """Each sample's cross-validation fold (0 … folds − 1): a permutation drawn from ``seed``, dealt round, so the
    folds differ in size by at most one.

    Examples
    --------
    >>> np.bincount(fold_assignment(12, 5, seed=1)).tolist()
    [3, 3, 2, 2, 2]
    """
    return np.random.default_rng(seed).permutation(samples) % folds


def thin_folds(present: np.ndarray, folds_of: np.ndarray, folds: int) -> list[tuple[int, int]]:
    """The phenotypes (columns of ``present``, samples × phenotypes) with fewer than ``MIN_FOLD_SAMPLES`` of their
    own samples in some fold: (column, that fewest count) each. With more folds than samples allow, every
    phenotype, with the count some fold holds at most (without counting folds one by one)."""
    if folds * MIN_FOLD_SAMPLES > len(present):
        return [(j, int(present[:, j].sum()) // folds) for j in range(present.shape[1])]
    counts = np.stack([present[folds_of == k].sum(axis=0) for k in range(folds)])   # folds × phenotypes
    fewest = counts.min(axis=0)
    return [(int(j), int(fewest[j])) for j in np.flatnonzero(fewest < MIN_FOLD_SAMPLES)]


@dataclass(frozen=True)
class RidgeTargets:
    """The phenotypes as both levels fit them: residualised on the covariates over each one's own samples."""

    values: np.ndarray   # samples × phenotypes: residual / scale, 0 where missing
    present: np.ndarray  # samples × phenotypes, bool
    scales: np.ndarray   # phenotypes: each residual's standard deviation over its samples


def ridge_targets(phenotypes: np.ndarray, covariates: np.ndarray) -> RidgeTargets:
    """``phenotypes`` (samples × P, NaN missing) residualised on ``covariates`` (samples × k) over each phenotype's
    own samples and scaled to variance 1 there; 0 at missing samples."""
    present = ~np.isnan(phenotypes)
    values, scales = np.zeros(phenotypes.shape), np.ones(phenotypes.shape[1])
    for j in range(phenotypes.shape[1]):
        rows = np.flatnonzero(present[:, j])
        fitted, *_ = np.linalg.lstsq(covariates[rows], phenotypes[rows, j], rcond=None)
        residual = phenotypes[rows, j] - covariates[rows] @ fitted
        scales[j] = np.sqrt(residual @ residual / len(rows)) or 1.0
        values[rows, j] = residual / scales[j]
    return RidgeTargets(values, present, scales)


def block_predictors(dosages: np.ndarray, missing: scipy.sparse.csr_array | np.ndarray,
                     basis: np.ndarray) -> np.ndarray:
    """A level-0 block's predictors (samples × variants, float64): each variant mean-imputed and standardised
    (:func:`biolake.stats.ld.standardized_genotypes`), the covariates' orthonormal ``basis`` projected out."""
    z = standardized_genotypes(dosages, missing).T.astype(np.float64)   # samples × variants
    return z - basis @ (basis.T @ z)


def level0_predictions(predictors: np.ndarray, targets: np.ndarray, folds_of: np.ndarray, folds: int,
                       penalties: np.ndarray) -> np.ndarray:
    """Out-of-fold ridge predictions of every target from one block (samples × targets × R, float32).

    ``predictors``: samples × B (:func:`block_predictors`); ``targets``: samples × P (0 where missing);
    ``penalties``: the R ridge penalties (:func:`ridge_penalties` of the genome's variant count). For each
    fold, one eigendecomposition X'X − X_f'X_f = V diag(d) V' serves every penalty and every target:
    the fold's predictions are (X_f V) diag(1/(d + λ)) V'(X'Y − X_f'Y_f).
    """
    gram, cross = predictors.T @ predictors, predictors.T @ targets
    out = np.empty((len(predictors), targets.shape[1], len(penalties)), np.float32)
    for k in range(folds):
        rows = np.flatnonzero(folds_of == k)
        held = predictors[rows]
        d, v = np.linalg.eigh(gram - held.T @ held)
        rotated = v.T @ (cross - held.T @ targets[rows])   # B × P
        projected = held @ v                               # fold samples × B
        for r, penalty in enumerate(penalties):
            out[rows, :, r] = projected @ (rotated / (np.maximum(d, 0.0) + penalty)[:, None])
    return out


@dataclass(frozen=True)
class LocoPredictions:
    """Level 1's result: each phenotype's leave-one-chromosome-out predictions, in its own units, and its penalty."""

    values: np.ndarray     # samples × phenotypes × chromosomes (NaN where the phenotype is missing)
    penalties: np.ndarray  # phenotypes: the level-1 ridge penalty cross-validation chose


def loco_predictions(predictors: np.ndarray, targets: RidgeTargets, chromosome_of: np.ndarray, chromosomes: int,
                     folds_of: np.ndarray, folds: int) -> LocoPredictions:
    """Level 1 of every phenotype (see the module docstring) from its level-0 predictions.

    ``predictors``: phenotypes × samples × m (float32; m = blocks · R); ``chromosome_of``: each of the m
    predictors' chromosome (0 … ``chromosomes`` − 1; a chromosome with none gets the whole prediction).
    """
    phenotypes = targets.values.shape[1]
    values = np.full((len(folds_of), phenotypes, chromosomes), np.nan)
    penalties = np.zeros(phenotypes)
    membership = np.eye(chromosomes)[chromosome_of]   # m × chromosomes
    for j in range(phenotypes):
        rows = np.flatnonzero(targets.present[:, j])
        fits, penalties[j] = _level1(_unit_columns(predictors[j, rows]), targets.values[rows, j], folds_of[rows], folds)
        for held, x, beta in fits:
            total = x @ beta
            values[rows[held], j] = targets.scales[j] * (total[:, None] - (x * beta) @ membership)
    return LocoPredictions(values, penalties)


def _unit_columns(x: np.ndarray) -> np.ndarray:
    """``x`` (float64) with each column centred and scaled to variance 1 (a constant column stays 0)."""
    x = x - x.mean(axis=0, dtype=np.float64)
    spread = np.sqrt((x * x).mean(axis=0))
    return x / np.where(spread > 0, spread, 1.0)


def _level1(x: np.ndarray, y: np.ndarray, folds_of: np.ndarray, folds: int
            ) -> tuple[list[tuple[np.ndarray, np.ndarray, np.ndarray]], float]:
    """One phenotype's level-1 ridge of ``y`` on ``x`` (its samples × m): per fold, the held-out samples, their rows
    of ``x`` and the coefficients fitted without them at the penalty of least cross-validated squared error; and
    that penalty."""
    penalties = ridge_penalties(x.shape[1])
    gram, cross = x.T @ x, x.T @ y
    errors, fitted = np.zeros(len(penalties)), []
    for k in range(folds):
        held = folds_of == k
        x_held = x[held]
        d, v = np.linalg.eigh(gram - x_held.T @ x_held)
        rotated = v.T @ (cross - x_held.T @ y[held])
        betas = v @ (rotated[:, None] / (np.maximum(d, 0.0)[:, None] + penalties[None, :]))   # m × R
        errors += ((y[held, None] - x_held @ betas) ** 2).sum(axis=0)
        fitted.append((held, x_held, betas))
    best = int(np.argmin(errors))
    return [(held, x_held, betas[:, best]) for held, x_held, betas in fitted], float(penalties[best])
