"""What every association kernel returns, and the p-values they share.

Linear (t) and logistic (z) kernels fill the same :class:`AssociationResult`, so the
GWAS, EWAS and GxE drivers label and write one shape of table. A test that could not
run carries an error code instead of numbers, never a silent NaN.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

from biolake.lake.schema import ERRORS

_LN10 = np.log(10.0)

# Why a test could not run, as an index into ERRORS (declared with the results tables); 0 is "ran".
OK, MONOMORPHIC, TOO_FEW_SAMPLES, COLLINEAR, SEPARATION, NOT_CONVERGED, CLOSE, IN_LD = range(len(ERRORS))


class FromLog10p:
    """A mixin for results that store −log10 p (exact where p underflows) and give p from it."""

    log10p: np.ndarray

    @property
    def p(self) -> np.ndarray:
        return p_from_log10p(self.log10p)


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
            log_p = _log_beta_tail(dof[far] / 2.0, 0.5, dof[far], t[far] ** 2)
            log10p[far] = np.where(np.isfinite(log_p), -log_p / _LN10, z_log10p(t[far]))  # huge dof: t ≈ z
    return log10p


def f_log10p(f: np.ndarray, df_num: int, dof: np.ndarray | int) -> np.ndarray:
    """−log10 p of an F statistic on (``df_num``, ``dof``) degrees of freedom, exact in the far tail.

    Examples
    --------
    >>> f_log10p(np.array([3.0, 1e4]), 2, 1000).round(2).tolist()
    [1.3, 661.11]
    """
    f, dof = np.broadcast_arrays(np.asarray(f, float), np.asarray(dof, float))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        log10p = -np.log10(special.fdtrc(df_num, dof, f))
        far = (log10p > 280) & np.isfinite(f)
        if far.any():
            log_p = _log_beta_tail(dof[far] / 2.0, df_num / 2.0, dof[far], df_num * f[far])
            log10p[far] = np.where(np.isfinite(log_p), -log_p / _LN10,
                                   chi2_log10p(df_num * f[far], df_num))  # huge dof: F·d ≈ χ²
    return log10p


def chi2_log10p(statistic: np.ndarray, df: int) -> np.ndarray:
    """−log10 p of a χ² statistic on ``df`` degrees of freedom, exact in the far tail.

    Far out, Q(a, x) = x^(a−1) e^(−x) / Γ(a) · Σₖ (a−1)⋯(a−k) / x^k (DLMF 8.11.2),
    with a = df/2 and x = statistic/2.

    Examples
    --------
    >>> chi2_log10p(np.array([3.841459, 2000.0]), 1).round(2).tolist()
    [1.3, 436.04]
    """
    statistic = np.asarray(statistic, float)
    a, x = df / 2.0, statistic / 2.0
    with np.errstate(divide="ignore", invalid="ignore"):
        log10p = -np.log10(special.gammaincc(a, x))
        far = (log10p > 280) & np.isfinite(statistic)
        if far.any():
            xf = x[far]
            terms = np.cumprod([np.broadcast_to((a - k) / xf, xf.shape) for k in range(1, 12)], axis=0)
            series = 1.0 + terms.sum(axis=0)
            log_p = (a - 1.0) * np.log(xf) - xf - special.gammaln(a) + np.log(series)
            log10p[far] = -log_p / _LN10
    return log10p


def _log_beta_tail(a: np.ndarray, b: float, dof: np.ndarray, scaled: np.ndarray) -> np.ndarray:
    """ln I_x(a, b) with x = dof/(dof + scaled), for x near 0 where I_x underflows.

    I_x(a, b) = x^a (1−x)^b / (a·B(a, b)) · ₂F₁(a+b, 1; a+1; x) (DLMF 8.17.8); the t test is
    b = ½ with scaled = t², the F test b = d₁/2 with scaled = d₁F.
    """
    x, one_minus_x = dof / (dof + scaled), scaled / (dof + scaled)
    return (a * np.log(x) + b * np.log(one_minus_x) - np.log(a) - special.betaln(a, b)
            + np.log(special.hyp2f1(a + b, 1.0, a + 1.0, x)))


def z_log10p(z: np.ndarray) -> np.ndarray:
    """Two-sided −log10 p of a standard normal z (``norm.logsf`` stays exact in the tail).

    Examples
    --------
    >>> z_log10p(np.array([1.959964, 40.0])).round(1)
    array([  1.3, 349.1])
    """
    return -(np.log(2.0) + special.log_ndtr(-np.abs(z))) / _LN10


def p_from_log10p(log10p: np.ndarray) -> np.ndarray:
    """p from −log10 p (0 where it underflows; NaN stays NaN)."""
    return 10.0 ** -log10p
