"""SNP heritability from individual genotypes: the genetic relationship matrix, Haseman–Elston
regression and AI-REML, as GEMMA 0.98.5 computes them.

The relationship matrix is GEMMA's ``-gk 2`` (standardised): K = Z Z'/p over the p variants
kept, Z their genotypes with missing calls set to the variant's mean, centred and scaled to
variance 1 over the samples (the population variance, imputed calls included). Standardised
rather than GEMMA's default centred ``-gk 1``: every variant then carries the same expected
share of h² whatever its frequency, the model LD score regression assumes too, so h² from
summary statistics and from genotypes estimate the same quantity. K is a sum over variants,
so it is built block by block: each block adds its Z'Z (:func:`relationship_cross`).

Each phenotype is fitted on its own samples (a sub-matrix of K), covariates (intercept
first) as fixed effects. :func:`haseman_elston` is GEMMA's ``-vc 1`` moment estimator
(``VC::CalcVChe``) for every phenotype at once: phenotypes missing for the same samples share
every product with K. :func:`reml` is average-information REML of one variance component and
a residual, on the eigenvectors of K (one decomposition per missingness pattern); its
standard error is the observed information's at the optimum, which is what GEMMA's ``-lmm``
null model states (the curvature of the profile restricted likelihood in λ = σ²g/σ²e).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import scipy.sparse

from biolake.stats.ld import standardized_genotypes
from biolake.stats.linear import Residualizer

MIN_DEGREES = 10        # samples beyond the covariates a phenotype needs for a variance component
_NO_VARIANCE = 1e-12    # residual variance relative to the phenotype's: none left after the covariates
_ZEROED = 1e-10         # eigenvalues of K below this are 0, as GEMMA's EigenDecomp_Zeroed sets them
_REML_TOLERANCE = 1e-10  # AI-REML stops when no variance component moves more than this share of var(y)
_REML_ITERATIONS = 200


@dataclass(frozen=True)
class Heritability:
    """One fit per phenotype (arrays of length P).

    ``h2`` is σ²g·tr(K)/n over the phenotype's variance after the covariates: GEMMA's ``pve``
    for the phenotype with the covariates projected out (HE), or σ²g·tr(K)/n ÷ (σ²g·tr(K)/n + σ²e)
    (REML, GEMMA's null-model pve); tr(K)/n is the mean diagonal of K centred over the
    phenotype's samples. ``pve`` is GEMMA's own HE pve, over the variance before the covariates.
    """

    h2: np.ndarray
    h2_se: np.ndarray
    sigma2_g: np.ndarray          # genetic variance component (per unit of K's mean diagonal: GEMMA's sigma2)
    sigma2_g_se: np.ndarray
    sigma2_e: np.ndarray          # residual variance
    sigma2_e_se: np.ndarray
    pve: np.ndarray               # HE: GEMMA's printed pve; REML: equal to h2
    pve_se: np.ndarray
    n_samples: np.ndarray         # samples of each phenotype


def relationship_cross(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray) -> np.ndarray:
    """A block's share of K·p: Z'Z (samples × samples, float64, upper triangle only) of its standardised
    genotypes (``dosages``: variants × samples, 0 at the ``missing`` calls). The product runs in
    float32 (one BLAS syrk, half a full product's work); blocks add up in float64.

    Examples
    --------
    >>> dosages = np.array([[0.0, 1, 2, 1], [2, 2, 0, 0]])
    >>> cross = relationship_cross(dosages, np.zeros((2, 4), bool))
    >>> np.allclose(np.triu(symmetric(cross)), cross), round(float(cross[0, 0]), 4)
    (True, 3.0)
    """
    z = standardized_genotypes(dosages, missing)        # variants × samples
    return scipy.linalg.blas.ssyrk(1.0, z.T, lower=0).astype(np.float64)


def symmetric(upper: np.ndarray) -> np.ndarray:
    """The symmetric matrix whose upper triangle is ``upper``'s."""
    return np.triu(upper) + np.triu(upper, 1).T


def phenotype_patterns(phenotypes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Phenotypes (samples × P, NaN missing) grouped by their samples: (columns, samples present), each group
    fitted on its own sub-matrix of K.

    Examples
    --------
    >>> y = np.array([[1.0, 2, np.nan], [3, 4, 5], [6, np.nan, 7]])
    >>> [(c.tolist(), s.tolist()) for c, s in phenotype_patterns(y)]
    [([0], [0, 1, 2]), ([1], [0, 1]), ([2], [1, 2])]
    """
    present = ~np.isnan(phenotypes)
    unique, inverse = np.unique(present.T, axis=0, return_inverse=True)
    for index in reversed(range(len(unique))):
        yield np.flatnonzero(inverse.ravel() == index), np.flatnonzero(unique[index])


def fit_problems(phenotypes: np.ndarray, covariates: np.ndarray) -> list[tuple[int, str]]:
    """Phenotypes no variance component can be fitted for, and why (column, reason): fewer than
    MIN_DEGREES samples beyond the covariates, or no variance left once the covariates are projected out.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=30)
    >>> fit_problems(np.column_stack([x, 2 * x + 1, rng.normal(size=30)]), np.column_stack([np.ones(30), x]))
    [(0, 'no variance left after the covariates'), (1, 'no variance left after the covariates')]
    """
    problems = []
    for columns, samples in phenotype_patterns(phenotypes):
        w, y = covariates[samples], phenotypes[np.ix_(samples, columns)]
        if len(samples) - w.shape[1] < MIN_DEGREES:
            why = (f"{len(samples)} samples for {w.shape[1]} covariate columns; a variance component needs at "
                   f"least {MIN_DEGREES} more samples than covariates")
        elif np.linalg.matrix_rank(w) < w.shape[1]:
            why = f"the covariates are collinear over its {len(samples)} samples"
        else:
            left = Residualizer.from_covariates(w).transform(y)
            spread = np.sum((y - y.mean(axis=0)) ** 2, axis=0)
            problems += [(int(column), "no variance left after the covariates") for column, total, kept in
                         zip(columns, spread, np.einsum("ij,ij->j", left, left)) if kept <= _NO_VARIANCE * total]
            continue
        problems += [(int(column), why) for column in columns]
    return sorted(problems)


def haseman_elston(grm: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray) -> Heritability:
    """Haseman–Elston regression of every phenotype (samples × P, NaN missing) on ``grm`` (samples ×
    samples), ``covariates`` (samples × c, complete, intercept first) projected out, as GEMMA ``-vc 1``.

    On a phenotype's n samples, with P = I − W(W'W)⁻¹W', d the mean diagonal of PKP, Kₛ = PKP/d,
    y standardised after projection (y'y = n) and r = n/(n − c): the estimate is
    q/S with q = y'Kₛy − rn and S = tr(Kₛ²) − rn, and its variance 2[τ·u'Kₛu + (1 − τ)·u'u]/S²
    for u = Kₛy − ry. Neither PKP nor Kₛ is formed, nor a phenotype's sub-matrix of K copied: K's
    products with Q (an orthonormal basis of W) and with the phenotypes, zero-filled off the
    phenotype's samples, give every term for all phenotypes of a pattern at once, and K's sums
    are downdated by the samples left out.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=(400, 200))
    >>> grm = z @ z.T / 200
    >>> y = z @ rng.normal(0, np.sqrt(0.6 / 200), 200) + rng.normal(0, np.sqrt(0.4), 400)
    >>> fit = haseman_elston(grm, y[:, None], np.ones((400, 1)))
    >>> bool(0.2 < fit.h2[0] < 1.0), fit.n_samples.tolist()
    (True, [400])
    """
    width = phenotypes.shape[1]
    out = {name: np.full(width, np.nan) for name in Heritability.__dataclass_fields__ if name != "n_samples"}
    n_samples = np.zeros(width, np.int64)
    sums = _GrmSums.of(grm)
    for columns, samples in phenotype_patterns(phenotypes):
        w, y = covariates[samples], phenotypes[np.ix_(samples, columns)]
        n = len(samples)
        sub = sums.without(np.setdiff1d(np.arange(len(grm)), samples))   # sums over K's sub-matrix

        def product(v: np.ndarray) -> np.ndarray:    # K_S v without copying K_S: v zero-filled off S
            filled = np.zeros((len(grm), v.shape[1]))
            filled[samples] = v
            return (grm @ filled)[samples]

        residualizer = Residualizer.from_covariates(w)
        q = residualizer.basis
        var_y = y.var(axis=0)
        projected = residualizer.transform(y)
        var_new = projected.var(axis=0)
        ys = (projected - projected.mean(axis=0)) / np.sqrt(var_new)
        kq, kys = np.split(product(np.hstack([q, residualizer.transform(ys)])), [q.shape[1]], axis=1)   # one pass
        qkq = q.T @ kq
        trace_centred = (sub.trace - sub.total / n) / n           # GEMMA's v_traceG: K centred by the mean
        d = (sub.trace - np.trace(qkq)) / n                       # mean diagonal of PKP
        tr_pkpk = sub.squares - 2 * np.sum(kq * kq) + np.sum(qkq * qkq)
        r = n / (n - w.shape[1])
        s = tr_pkpk / d ** 2 - r * n

        def scaled(v: np.ndarray) -> np.ndarray:   # Kₛv = PKPv/d
            return residualizer.transform(product(residualizer.transform(v))) / d

        u = residualizer.transform(kys) / d - r * ys
        tau = np.einsum("ij,ij->j", u, ys) / s
        variance = 2 * (tau * np.einsum("ij,ij->j", u, scaled(u)) + (1 - tau) * np.einsum("ij,ij->j", u, u)) / s ** 2
        se = np.sqrt(variance)
        genetic = var_new / d                    # σ²g per unit of the transformed estimate
        out["sigma2_g"][columns], out["sigma2_g_se"][columns] = tau * genetic, se * genetic
        out["sigma2_e"][columns], out["sigma2_e_se"][columns] = (1 - tau) * r * var_new, se * r * var_new
        out["pve"][columns], out["pve_se"][columns] = (tau * genetic * trace_centred / var_y,
                                                       se * genetic * trace_centred / var_y)
        out["h2"][columns], out["h2_se"][columns] = tau * genetic * trace_centred / var_new, \
            se * genetic * trace_centred / var_new
        n_samples[columns] = n
    return Heritability(**out, n_samples=n_samples)


@dataclass(frozen=True)
class _Sums:
    """A symmetric matrix's trace, sum of entries and sum of squared entries."""

    trace: float
    total: float
    squares: float


@dataclass(frozen=True)
class _GrmSums:
    """K's sums (:class:`_Sums`) and per row its sum and sum of squares: a sub-matrix's sums follow by
    downdating the rows and columns left out, so no phenotype's sub-matrix of K is ever copied."""

    grm: np.ndarray
    whole: _Sums
    row_sums: np.ndarray
    row_squares: np.ndarray

    @classmethod
    def of(cls, grm: np.ndarray) -> _GrmSums:
        row_sums, row_squares = grm.sum(axis=1), np.einsum("ij,ij->i", grm, grm)
        return cls(grm, _Sums(float(np.trace(grm)), float(row_sums.sum()), float(row_squares.sum())), row_sums,
                   row_squares)

    def without(self, left: np.ndarray) -> _Sums:
        """The sums over the sub-matrix of the samples not in ``left``."""
        corner = self.grm[np.ix_(left, left)]
        return _Sums(self.whole.trace - float(self.grm.diagonal()[left].sum()),
                     self.whole.total - 2 * float(self.row_sums[left].sum()) + float(corner.sum()),
                     self.whole.squares - 2 * float(self.row_squares[left].sum()) + float(np.sum(corner * corner)))


def reml(grm: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray) -> Heritability:
    """AI-REML of y = Wβ + g + e, g ~ N(0, σ²g K), e ~ N(0, σ²e I), for every phenotype (samples × P,
    NaN missing) on its own samples; ``covariates`` (samples × c, intercept first) are the fixed effects.

    K is centred over the phenotype's samples and decomposed once per missingness pattern
    (K = U diag(λ) U', eigenvalues below 1e-10 set to 0 as GEMMA does); in that basis V is
    diagonal and each average-information step costs O(n c²). Iterations start from
    var(y)/2 each and stop when neither component moves more than 1e-10 var(y); a component
    that would turn negative is held at 1e-6 var(y) (as GCTA does). ``h2`` is
    σ²g·tr(K)/n ÷ (σ²g·tr(K)/n + σ²e); its standard error comes from the observed
    information at the optimum by the delta method.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=(400, 200))
    >>> y = z @ rng.normal(0, np.sqrt(0.6 / 200), 200) + rng.normal(0, np.sqrt(0.4), 400)
    >>> fit = reml(z @ z.T / 200, y[:, None], np.ones((400, 1)))
    >>> bool(0.2 < fit.h2[0] < 1.0), bool(fit.h2_se[0] < 0.5)
    (True, True)
    """
    width = phenotypes.shape[1]
    out = {name: np.full(width, np.nan) for name in Heritability.__dataclass_fields__ if name != "n_samples"}
    n_samples = np.zeros(width, np.int64)
    for columns, samples in phenotype_patterns(phenotypes):
        k = grm[np.ix_(samples, samples)]
        k = k - k.mean(axis=0) - k.mean(axis=1)[:, None] + k.mean()
        eigenvalues, vectors = np.linalg.eigh(k)
        eigenvalues[eigenvalues < _ZEROED] = 0.0
        trace = eigenvalues.mean()
        x = vectors.T @ covariates[samples]
        rotated = vectors.T @ phenotypes[np.ix_(samples, columns)]
        for j, column in enumerate(columns):
            fit = _ai_reml(eigenvalues, x, rotated[:, j], trace)
            for name, value in fit.items():
                out[name][column] = value
        n_samples[columns] = len(samples)
    return Heritability(**out, n_samples=n_samples)


def _ai_reml(eigenvalues: np.ndarray, x: np.ndarray, y: np.ndarray, trace: float) -> dict[str, float]:
    """One phenotype's AI-REML in K's eigenbasis (``x``, ``y`` rotated), its estimates and standard errors."""
    scale = float(np.var(y))
    theta = np.array([scale / 2, scale / 2])                    # σ²g, σ²e
    for _ in range(_REML_ITERATIONS):
        parts = _reml_parts(eigenvalues, x, y, theta)
        step = np.linalg.solve(parts.average_information, parts.score)
        updated = np.maximum(theta + step, 1e-6 * scale)
        moved = np.max(np.abs(updated - theta))
        theta = updated
        if moved < _REML_TOLERANCE * scale:
            break
    parts = _reml_parts(eigenvalues, x, y, theta)
    covariance = np.linalg.inv(parts.observed_information)
    genetic, residual = theta[0] * trace, theta[1]
    total = genetic + residual
    h2 = genetic / total
    gradient = np.array([trace * residual, -genetic]) / total ** 2
    h2_se = float(np.sqrt(gradient @ covariance @ gradient))
    return {"h2": h2, "h2_se": h2_se, "pve": h2, "pve_se": h2_se,
            "sigma2_g": theta[0], "sigma2_g_se": float(np.sqrt(covariance[0, 0])),
            "sigma2_e": theta[1], "sigma2_e_se": float(np.sqrt(covariance[1, 1]))}


@dataclass(frozen=True)
class _RemlParts:
    """The restricted likelihood's score, average information and observed information in (σ²g, σ²e)."""

    score: np.ndarray
    average_information: np.ndarray
    observed_information: np.ndarray


def _reml_parts(eigenvalues: np.ndarray, x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> _RemlParts:
    """With V = diag(σ²g λ + σ²e) and P = V⁻¹ − V⁻¹X(X'V⁻¹X)⁻¹X'V⁻¹ (n × n, never formed), V₁ = diag(λ), V₂ = I:
    score ½(y'PVᵢPy − tr PVᵢ), AI ½ y'PVᵢPVⱼPy, observed information y'PVᵢPVⱼPy − ½ tr(PVᵢPVⱼ)."""
    w = 1.0 / (theta[0] * eigenvalues + theta[1])
    a_inverse = np.linalg.inv(x.T @ (w[:, None] * x))
    leverage = np.einsum("ij,jk,ik->i", x, a_inverse, x)          # x_k' A⁻¹ x_k

    def apply_p(v: np.ndarray) -> np.ndarray:
        wv = w * v
        return wv - w * (x @ (a_inverse @ (x.T @ wv)))

    py = apply_p(y)
    derivatives = (eigenvalues, np.ones_like(eigenvalues))
    vpy = [d * py for d in derivatives]
    pvpy = [apply_p(v) for v in vpy]
    traces = np.array([np.sum(w * d) - np.sum(d * w * w * leverage) for d in derivatives])
    score = 0.5 * (np.array([v @ py for v in vpy]) - traces)
    ai = 0.5 * np.array([[vi @ pvj for pvj in pvpy] for vi in vpy])
    weighted = [x.T @ ((w * w * d)[:, None] * x) for d in derivatives]   # X'V⁻¹VᵢV⁻¹X

    def trace_pp(i: int, j: int) -> float:       # tr(P Vᵢ P Vⱼ)
        di, dj = derivatives[i], derivatives[j]
        return float(np.sum(w * w * di * dj) - 2 * np.sum(w ** 3 * di * dj * leverage)
                     + np.trace(a_inverse @ weighted[i] @ a_inverse @ weighted[j]))

    observed = np.array([[2 * ai[i, j] - 0.5 * trace_pp(i, j) for j in range(2)] for i in range(2)])
    return _RemlParts(score, ai, observed)

