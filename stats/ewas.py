"""Epigenome-wide association: every CpG regressed on an exposure, with limma's moderated t.

Per CpG, methylation ~ exposure + covariates. The design is shared by every CpG (only the
samples with a missing value differ), so the whole array is the GWAS kernel turned round:
the CpG rows take the genotypes' place, the exposure the phenotype's, and the same
adjusted cross-products give each CpG's coefficient, residual variance and t exactly
(missing values drop that CpG's samples only, as limma's ``lmFit`` does).

limma's empirical Bayes (``eBayes``, ``robust=FALSE``) then squeezes every CpG's residual
variance s² toward a prior s₀² with d₀ prior degrees of freedom, both estimated from all
CpGs by matching the moments of log s² (``fitFDist``). It needs every CpG's s², so
:func:`moderate` runs once the blocks are in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy import special

from biolake.stats.association import OK, FromLog10p, t_log10p, z_log10p
from biolake.stats.linear import LinearModel, cross_products


@dataclass(frozen=True)
class EwasFit(FromLog10p):
    """Per CpG × exposure, the ordinary least-squares fit (limma's ``lmFit`` quantities)."""

    coefficient: np.ndarray   # methylation change per unit of exposure
    se: np.ndarray            # ordinary standard error
    t: np.ndarray
    log10p: np.ndarray
    sigma2: np.ndarray        # residual variance s²
    df: np.ndarray            # residual degrees of freedom (n − k − 1)
    unscaled: np.ndarray      # se / s: 1/√(ẽ'ẽ) over the CpG's samples
    n: np.ndarray
    error: np.ndarray         # ERRORS index


@dataclass(frozen=True)
class Moderated(FromLog10p):
    """limma's ``eBayes`` for one exposure: the prior, and every CpG's moderated t and p."""

    prior_variance: float     # s₀²
    prior_df: float           # d₀ (inf when the variances vary no more than chance)
    t: np.ndarray
    df_total: np.ndarray
    log10p: np.ndarray


def ewas_regressions(methylation: np.ndarray, model: LinearModel, *,
                     missing: scipy.sparse.csr_array | None = None) -> EwasFit:
    """Regress every CpG (rows of ``methylation``: CpGs × samples, 0 where missing) on each
    exposure of ``model`` (its "phenotypes"), adjusted for its covariates.

    Examples
    --------
    >>> from biolake.stats.linear import prepare_linear
    >>> rng = np.random.default_rng(0)
    >>> exposure = rng.normal(size=(300, 1))
    >>> m = rng.normal(size=(4, 300)); m[0] += 0.5 * exposure[:, 0]
    >>> fit = ewas_regressions(m, prepare_linear(exposure, np.ones((300, 1))))
    >>> round(float(fit.coefficient[0, 0]), 1), bool(fit.p[0, 0] < 1e-10), int(fit.df[0, 0])
    (0.5, True, 298)
    """
    cross = cross_products(methylation, model, missing=missing, rows_are_predictors=False)
    failed, df = cross.error != OK, cross.dof
    with np.errstate(divide="ignore", invalid="ignore"):
        coefficient = np.where(failed, np.nan, cross.gy / cross.yy)
        sigma2 = np.where(failed, np.nan, np.maximum(cross.gg - cross.gy * coefficient, 0.0) / df)
        unscaled = 1.0 / np.sqrt(cross.yy)
        se = np.sqrt(sigma2) * unscaled
        t = coefficient / se
        log10p = np.where(failed, np.nan, t_log10p(t, np.maximum(df, 1)))
    return EwasFit(coefficient, se, t, log10p, sigma2, df, unscaled, cross.n, cross.error)


def moderate(coefficient: np.ndarray, sigma2: np.ndarray, df: np.ndarray, unscaled: np.ndarray) -> Moderated:
    """limma's ``eBayes`` (robust=FALSE, trend=FALSE) over all CpGs of one exposure (1-D arrays).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> sigma2 = rng.chisquare(20, 5000) / 20 * 0.3
    >>> fit = moderate(rng.normal(size=5000) * 0.1, sigma2, np.full(5000, 20), np.full(5000, 0.2))
    >>> round(fit.prior_variance, 2), fit.prior_df > 100
    (0.3, True)
    """
    prior_variance, prior_df = fit_f_distribution(sigma2, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.isfinite(prior_df):
            posterior = (df * sigma2 + prior_df * prior_variance) / (df + prior_df)
        else:
            posterior = np.where(np.isfinite(sigma2), prior_variance, np.nan)
        t = coefficient / unscaled / np.sqrt(posterior)
    df_total = np.minimum(df + prior_df, np.nansum(np.where(np.isfinite(sigma2), df, 0)))
    log10p = np.where(np.isinf(df_total), z_log10p(t), t_log10p(t, np.where(np.isinf(df_total), 1, df_total)))
    return Moderated(prior_variance, prior_df, t, df_total, np.where(np.isnan(t), np.nan, log10p))


def fit_f_distribution(sigma2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior variance s₀² and prior df d₀ from the residual variances, as limma's ``fitFDist``.

    log s² − ψ(d/2) + log(d/2) has mean log s₀² − ψ(d₀/2) + log(d₀/2) and variance
    ψ′(d/2) + ψ′(d₀/2); solving for d₀ inverts the trigamma function.
    """
    ok = np.isfinite(sigma2) & np.isfinite(df) & (sigma2 > -1e-15) & (df > 1e-15)
    x, d = np.maximum(sigma2[ok], 0.0), df[ok].astype(np.float64)
    if not len(x):
        return float("nan"), float("nan")
    median = np.median(x)
    x = np.maximum(x, 1e-5 * (median if median > 0 else 1.0))
    e = np.log(x) - special.digamma(d / 2) + np.log(d / 2)
    mean = e.mean()
    excess = ((e - mean) ** 2).sum() / (len(e) - 1) - special.polygamma(1, d / 2).mean()
    if excess > 0:
        prior_df = 2 * trigamma_inverse(excess)
        return float(np.exp(mean + special.digamma(prior_df / 2) - np.log(prior_df / 2))), float(prior_df)
    return float(np.exp(mean)), float("inf")


def trigamma_inverse(x: float) -> float:
    """y with ψ′(y) = x, by limma's Newton iteration (``trigammaInverse``)."""
    if x > 1e7:
        return 1 / np.sqrt(x)
    if x < 1e-6:
        return 1 / x
    y = 0.5 + 1 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        step = tri * (1 - tri / x) / special.polygamma(2, y)
        y += step
        if -step / y < 1e-8:
            break
    return float(y)
