"""Linear association of many variants with many phenotypes, covariates projected out once.

By Frisch–Waugh–Lovell, the coefficient of a variant g in y ~ C + g equals that of
g̃ in ỹ ~ g̃, where ~ means "residualised on C". So the covariates are factored once
(QR), every block of variants and phenotypes is projected, and one matrix product
G̃'Ỹ gives every variant × phenotype statistic. This kernel takes complete data
(no missing values); exact per-phenotype and per-call missingness builds on it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

_LN10 = np.log(10.0)


@dataclass(frozen=True)
class Residualizer:
    """Projects the covariates out of any samples × columns block.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> covariates = np.column_stack([np.ones(100), rng.normal(size=100)])
    >>> residualizer = Residualizer.from_covariates(covariates)
    >>> residualizer.dof
    97
    >>> np.allclose(covariates.T @ residualizer.transform(rng.normal(size=(100, 3))), 0)
    True
    """

    basis: np.ndarray  # samples × covariates, orthonormal columns spanning the covariates

    @classmethod
    def from_covariates(cls, covariates: np.ndarray) -> "Residualizer":
        """Factor the covariates (samples × k, intercept included); they must have full column rank."""
        if np.isnan(covariates).any():
            raise ValueError("covariates contain missing values; drop those samples first")
        q, r = np.linalg.qr(covariates)
        diagonal = np.abs(np.diag(r))
        if diagonal.size and diagonal.min() <= 1e-10 * diagonal.max():
            raise ValueError("covariates are collinear (not of full column rank)")
        return cls(q)

    @property
    def dof(self) -> int:
        """Residual degrees of freedom of the test of one variant: n − k − 1."""
        return self.basis.shape[0] - self.basis.shape[1] - 1

    def transform(self, block: np.ndarray) -> np.ndarray:
        """``block`` (samples × columns) minus its projection on the covariates."""
        return block - self.basis @ (self.basis.T @ block)


@dataclass(frozen=True)
class LinearResult:
    """Per variant × phenotype: effect of one alt allele, its standard error, t and p."""

    beta: np.ndarray    # variants × phenotypes
    se: np.ndarray
    t: np.ndarray
    p: np.ndarray
    log10p: np.ndarray  # −log10 p, exact where p underflows
    dof: int


def linear_association(genotypes: np.ndarray, phenotypes: np.ndarray,
                       residualizer: Residualizer) -> LinearResult:
    """t-tests of every variant against every phenotype, adjusted for the covariates.

    ``genotypes``: variants × samples alt dosages; ``phenotypes``: samples × phenotypes.
    Both complete. A variant constant after adjustment (e.g. monomorphic) gets NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.integers(0, 3, size=(5, 200)).astype(float)   # variants × samples
    >>> y = (1.0 * g[0] + rng.normal(size=200))[:, None]     # samples × 1
    >>> result = linear_association(g, y, Residualizer.from_covariates(np.ones((200, 1))))
    >>> bool(result.p[0, 0] < 1e-6), result.beta.shape
    (True, (5, 1))
    """
    if np.isnan(genotypes).any() or np.isnan(phenotypes).any():
        raise ValueError("linear_association takes complete data; missing values need the exact path")
    g = residualizer.transform(genotypes.T)   # samples × variants
    y = residualizer.transform(phenotypes)    # samples × phenotypes
    gy = g.T @ y                              # variants × phenotypes: the one big product
    gg = np.einsum("ij,ij->j", g, g)[:, None]
    yy = np.einsum("ij,ij->j", y, y)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        constant = gg <= 1e-12 * np.maximum(np.einsum("ij,ij->i", genotypes, genotypes)[:, None], 1.0)
        beta = np.where(constant, np.nan, gy / gg)
        rss = yy - beta * gy
        se = np.sqrt(rss / (residualizer.dof * gg))
        t = beta / se
    log10p = -(np.log(2.0) + stats.t.logsf(np.abs(t), residualizer.dof)) / _LN10
    return LinearResult(beta, se, t, 10.0 ** -log10p, log10p, residualizer.dof)
