"""What every association kernel returns, and the p-values they share.

Linear (t) and logistic (z) kernels fill the same :class:`AssociationResult`, so the
GWAS, EWAS and GxE drivers label and write one shape of table. A test that could not
run carries an error code instead of numbers, never a silent NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

_LN10 = np.log(10.0)

# Why a test could not run; code 0 is "ran". Names are what the results tables show.
ERRORS = (None, "monomorphic", "too few samples", "collinear", "separation", "not converged")
OK, MONOMORPHIC, TOO_FEW_SAMPLES, COLLINEAR, SEPARATION, NOT_CONVERGED = range(len(ERRORS))


@dataclass(frozen=True)
class AssociationResult:
    """Per variant × phenotype: the effect of one alt allele and its test.

    ``statistic`` is t for linear models and z for logistic ones; ``log10p`` is −log10 p,
    exact where p itself underflows to 0. ``n`` counts the samples each test used and
    ``error`` holds an index into :data:`ERRORS` (0 where the test ran).
    """

    beta: np.ndarray       # variants × phenotypes
    se: np.ndarray
    statistic: np.ndarray
    p: np.ndarray
    log10p: np.ndarray
    n: np.ndarray          # variants × phenotypes, int64
    error: np.ndarray      # variants × phenotypes, int8 index into ERRORS
    alt_freq: np.ndarray | None = None  # alt allele frequency over the samples each test used

    def error_names(self) -> np.ndarray:
        """The error codes as text (None where the test ran), variants × phenotypes."""
        return np.array(ERRORS, dtype=object)[self.error]


def t_log10p(t: np.ndarray, dof: np.ndarray | int) -> np.ndarray:
    """Two-sided −log10 p of Student's t, exact far beyond where p underflows.

    p = I_x(dof/2, 1/2) with x = dof/(dof + t²). Where p is below 1e-280 it is taken in
    logs: I_x(a, b) = x^a (1−x)^b / (a·B(a, b)) · ₂F₁(a+b, 1; a+1; x) (DLMF 8.17.8).

    Examples
    --------
    >>> t_log10p(np.array([1.96, 1e6]), 1000).round(1).tolist()
    [1.3, 4501.6]
    """
    t, dof = np.broadcast_arrays(np.abs(np.asarray(t, float)), np.asarray(dof, float))
    with np.errstate(divide="ignore", invalid="ignore"):
        log10p = -np.log10(2.0 * special.stdtr(dof, -t))
        far = (log10p > 280) & np.isfinite(t)
        if far.any():
            a, x = dof[far] / 2.0, dof[far] / (dof[far] + t[far] ** 2)
            log_p = (a * np.log(x) + 0.5 * np.log1p(-x) - np.log(a) - special.betaln(a, 0.5)
                     + np.log(special.hyp2f1(a + 0.5, 1.0, a + 1.0, x)))
            log10p[far] = np.where(np.isfinite(log_p), -log_p / _LN10, z_log10p(t[far]))  # huge dof: t ≈ z
    return log10p


def z_log10p(z: np.ndarray) -> np.ndarray:
    """Two-sided −log10 p of a standard normal z (``norm.logsf`` stays exact in the tail).

    Examples
    --------
    >>> z_log10p(np.array([1.959964, 40.0])).round(1)
    array([  1.3, 349.1])
    """
    return -(np.log(2.0) + stats.norm.logsf(np.abs(z))) / _LN10


def p_from_log10p(log10p: np.ndarray) -> np.ndarray:
    """p from −log10 p (0 where it underflows; NaN stays NaN)."""
    return 10.0 ** -log10p
