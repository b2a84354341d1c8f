"""Logistic regression of case/control phenotypes on each variant, with Firth fallback as plink2.

Every variant needs its own fit (the weights depend on the fit), so the work is Newton's
method run for a whole block of variants at once: each iteration is a handful of matrix
products — the covariate information blocks C'WC of every variant come from one product
of the weights with the rows of C ⊗ C — and one batched (k+1)×(k+1) solve.

Firth's penalised likelihood (Jeffreys prior) replaces plain logistic regression where
plink2's default ``firth-fallback`` does: when the alt allele is carried only by cases or
only by controls (separation), or when the plain fit does not converge. Firth's score adds
h(½ − π), h the diagonal of the hat matrix, computed here with the same products.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy import special

from stats.association import (COLLINEAR, MONOMORPHIC, NOT_CONVERGED, OK, SEPARATION, TOO_FEW_SAMPLES,
                               AssociationResult, p_from_log10p, z_log10p)

FIRTH_MODES = ("fallback", "always", "never")
_TOLERANCE = 1e-10     # largest |Newton step| at convergence
_FIRTH_TOLERANCE = 1e-9  # largest |step taken| at convergence of Firth's (damped) iteration
_MAX_ITERATIONS = 60
_MAX_FIRTH_ITERATIONS = 5000  # near separation Firth's iteration converges linearly, but it converges
_MAX_STEP = 5.0        # a Newton step is shortened to this (in any coefficient) to stay stable
_DIVERGED = 30.0       # |log odds ratio| beyond which a plain fit is taken as separated


@dataclass(frozen=True)
class LogisticResult(AssociationResult):
    """:class:`AssociationResult` (statistic = Wald z) plus where Firth regression was used."""

    firth: np.ndarray | None = None  # variants × phenotypes, bool


def logistic_association(genotypes: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray, *,
                         missing: scipy.sparse.csr_array | None = None,
                         firth: str = "fallback") -> LogisticResult:
    """Wald tests of every variant against every 0/1 phenotype, adjusted for the covariates.

    ``genotypes``: variants × samples alt dosages, 0 where a call is missing (``missing``,
    variants × samples sparse, says where: that sample is dropped for that variant only);
    ``phenotypes``: samples × phenotypes, 0 control, 1 case, NaN missing; ``covariates``:
    samples × k, intercept first, complete. ``firth``: "fallback" (plink2's default),
    "always" or "never".

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.binomial(2, 0.3, size=(3, 500)).astype(float)
    >>> y = (rng.random(500) < special.expit(-1 + 0.8 * g[0]))[:, None].astype(float)
    >>> result = logistic_association(g, y, np.ones((500, 1)))
    >>> bool(result.p[0, 0] < 1e-6), result.firth.any().item()
    (True, False)
    """
    if firth not in FIRTH_MODES:
        raise ValueError(f"firth must be one of {', '.join(FIRTH_MODES)}, got {firth!r}")
    variants, count = genotypes.shape[0], phenotypes.shape[1]
    out = {name: np.full((variants, count), np.nan) for name in ("beta", "se", "z", "log10p")}
    n = np.zeros((variants, count), np.int64)
    error = np.zeros((variants, count), np.int8)
    used_firth = np.zeros((variants, count), bool)
    called = np.ones(genotypes.shape, bool) if missing is None else ~missing.toarray().astype(bool)
    for j in range(count):
        present = ~np.isnan(phenotypes[:, j])
        fit = _fit_phenotype(genotypes[:, present].astype(np.float64), called[:, present],
                             phenotypes[present, j], covariates[present], firth=firth)
        for name in out:
            out[name][:, j] = fit[name]
        n[:, j], error[:, j], used_firth[:, j] = fit["n"], fit["error"], fit["firth"]
    return LogisticResult(out["beta"], out["se"], out["z"], p_from_log10p(out["log10p"]), out["log10p"],
                          n, error, None, used_firth)


def _fit_phenotype(g: np.ndarray, called: np.ndarray, y: np.ndarray, covariates: np.ndarray, *,
                   firth: str) -> dict[str, np.ndarray]:
    """One phenotype's fits for every variant (g: variants × its samples, 0 at missing calls)."""
    variants, k = g.shape[0], covariates.shape[1]
    weight = called.astype(np.float64)               # 1 where the sample counts for that variant
    n = called.sum(axis=1)
    g_sum, g_square = g.sum(axis=1), (g * g).sum(axis=1)
    error = np.zeros(variants, np.int8)
    error[g_square - g_sum ** 2 / np.maximum(n, 1) <= 1e-12 * np.maximum(g_square, 1e-300)] = MONOMORPHIC
    error[(error == OK) & (n <= k + 1)] = TOO_FEW_SAMPLES
    case_alt = g @ y
    separated = (case_alt == 0) | (case_alt == g_sum)  # alt carried by cases only or controls only
    use_firth = np.where(error == OK, firth == "always" or (firth == "fallback" and separated), False)
    if firth == "never":
        error[(error == OK) & separated] = SEPARATION

    start = _null_fit(y, covariates)
    fits = np.full((variants, 3), np.nan)           # beta, se, converged
    for firth_rows in (False, True):
        rows = np.flatnonzero((error == OK) & (use_firth == firth_rows))
        if len(rows):
            fits[rows] = _newton(g[rows], weight[rows], y, covariates, start, firth=firth_rows)
        if not firth_rows:  # plain fits that failed go to Firth (fallback) or fail
            failed = rows[(fits[rows, 2] == 0) | (np.abs(fits[rows, 0]) > _DIVERGED)]
            if firth == "fallback":
                use_firth[failed] = True
            else:
                error[failed] = np.where(np.abs(fits[failed, 0]) > _DIVERGED, SEPARATION, NOT_CONVERGED)
    error[(error == OK) & (fits[:, 2] == 0)] = NOT_CONVERGED
    error[(error == OK) & ~np.isfinite(fits[:, 1])] = COLLINEAR
    ran = error == OK
    beta, se = np.where(ran, fits[:, 0], np.nan), np.where(ran, fits[:, 1], np.nan)
    z = beta / se
    return {"beta": beta, "se": se, "z": z, "log10p": np.where(ran, z_log10p(z), np.nan), "n": n,
            "error": error, "firth": use_firth & ran}


def _null_fit(y: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Covariates-only logistic fit: the starting point of every variant's fit."""
    beta = np.zeros(covariates.shape[1])
    for _ in range(_MAX_ITERATIONS):
        p = special.expit(covariates @ beta)
        w = p * (1 - p)
        step = np.linalg.solve(covariates.T @ (covariates * w[:, None]), covariates.T @ (y - p))
        beta += step
        if np.abs(step).max() < _TOLERANCE:
            break
    return beta


def _newton(g: np.ndarray, weight: np.ndarray, y: np.ndarray, covariates: np.ndarray, start: np.ndarray, *,
            firth: bool) -> np.ndarray:
    """Fit y ~ covariates + g for each row of ``g``; returns rows of (beta, se, converged).

    Newton's method on every variant at once (only unconverged ones keep iterating). With
    ``firth`` the score is Firth's, X'(y − π + h(½ − π)) with h the hat-matrix diagonal, and
    a step that lowers the penalised likelihood (l + ½ log|X'WX|) is halved until it does not,
    as logistf does: near separation the undamped iteration creeps instead of converging.
    """
    variants, k = g.shape[0], covariates.shape[1]
    outer = (covariates[:, :, None] * covariates[:, None, :]).reshape(len(y), k * k)  # samples × k²
    coefficients = np.tile(np.append(start, 0.0), (variants, 1))                   # variants × (k+1)
    converged = np.zeros(variants, bool)
    active = np.arange(variants)
    for _ in range(_MAX_FIRTH_ITERATIONS if firth else _MAX_ITERATIONS):
        if not len(active):
            break
        gs, ws, beta = g[active], weight[active], coefficients[active]
        p, information, likelihood = _state(beta, gs, ws, y, covariates, outer, firth=firth)
        inverse = _inverse(information)
        residual = ws * (y - p)
        if firth:
            hat = ws * p * (1 - p) * _quadratic_forms(inverse, gs, covariates, outer)
            residual = residual + ws * hat * (0.5 - p)
        score = np.hstack([residual @ covariates, (residual * gs).sum(axis=1, keepdims=True)])
        step = np.einsum("vij,vj->vi", inverse, score)
        largest = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, _MAX_STEP / np.maximum(largest, 1e-300))[:, None]
        if firth:  # judged by the step taken: near-collinear X'WX makes the raw step a poor guide
            step = _halve_until_better(step, beta, likelihood, gs, ws, y, covariates, outer)
            largest = np.abs(step).max(axis=1)
        coefficients[active] = beta + step
        done = largest < (_FIRTH_TOLERANCE if firth else _TOLERANCE)
        converged[active[done]] = True
        active = active[~done & np.isfinite(largest)]
    p = special.expit(coefficients[:, :k] @ covariates.T + coefficients[:, k:] * g)
    variance = _inverse(_information(weight * p * (1 - p), g, covariates, outer))[:, k, k]
    return np.column_stack([coefficients[:, k], np.where(np.isfinite(variance), np.sqrt(variance), np.inf),
                            converged])


def _state(beta: np.ndarray, g: np.ndarray, weight: np.ndarray, y: np.ndarray, covariates: np.ndarray,
           outer: np.ndarray, *, firth: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fitted probabilities, information X'WX and (penalised, with ``firth``) log-likelihood."""
    k = covariates.shape[1]
    eta = beta[:, :k] @ covariates.T + beta[:, k:] * g
    p = special.expit(eta)
    information = _information(weight * p * (1 - p), g, covariates, outer)
    likelihood = (weight * (y * eta - np.logaddexp(0.0, eta))).sum(axis=1)
    if firth:
        likelihood += 0.5 * np.linalg.slogdet(information)[1]
    return p, information, likelihood


def _halve_until_better(step: np.ndarray, beta: np.ndarray, likelihood: np.ndarray, g: np.ndarray,
                        weight: np.ndarray, y: np.ndarray, covariates: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """Halve (up to 30 times) each step that does not raise the penalised log-likelihood; a step
    that still does not is dropped (the fit has stopped improving: it is at the optimum to rounding)."""
    worse = np.ones(len(step), bool)
    for _ in range(30):
        _, _, proposed = _state(beta[worse] + step[worse], g[worse], weight[worse], y, covariates, outer,
                                firth=True)
        still = ~(proposed > likelihood[worse])  # only a strict improvement is taken
        rows = np.flatnonzero(worse)
        worse[rows[~still]] = False
        if not worse.any():
            return step
        step[worse] *= 0.5
    step[worse] = 0.0
    return step


def _inverse(information: np.ndarray) -> np.ndarray:
    """Batched inverse of symmetric positive-definite matrices; NaN for (near-)singular ones."""
    inverse = np.full_like(information, np.nan)
    finite = np.flatnonzero(np.isfinite(information).all(axis=(1, 2)))
    eigenvalues = np.linalg.eigvalsh(information[finite])
    regular = finite[eigenvalues[:, 0] > 1e-12 * np.maximum(eigenvalues[:, -1], 1e-300)]
    if len(regular):
        inverse[regular] = np.linalg.inv(information[regular])
    return inverse


def _information(w: np.ndarray, g: np.ndarray, covariates: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """X'WX of every variant, X = [covariates, g]: variants × (k+1) × (k+1), from three products."""
    variants, k = g.shape[0], covariates.shape[1]
    information = np.empty((variants, k + 1, k + 1))
    information[:, :k, :k] = (w @ outer).reshape(variants, k, k)
    information[:, :k, k] = information[:, k, :k] = (w * g) @ covariates
    information[:, k, k] = (w * g * g).sum(axis=1)
    return information


def _quadratic_forms(inverse: np.ndarray, g: np.ndarray, covariates: np.ndarray, outer: np.ndarray) -> np.ndarray:
    """x_i' H⁻¹ x_i for every variant and sample, x_i = (c_i, g_i): variants × samples."""
    k = covariates.shape[1]
    block, column, corner = inverse[:, :k, :k], inverse[:, :k, k], inverse[:, k, k]
    return (block.reshape(len(g), k * k) @ outer.T + 2 * g * (column @ covariates.T)
            + g * g * corner[:, None])
