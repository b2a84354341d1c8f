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
every product with K. :func:`haseman_elston_randomized` is the same estimator for N too
large for an N × N matrix (as RHE-mc): K is only applied to vectors, twice (each block adds
its Z'(ZV), :func:`relationship_product`), and tr((PKP)²) is estimated from random probes,
their Monte-Carlo error added to the standard error. :func:`reml` is average-information
REML of one variance component and a residual, on the eigenvectors of K (one decomposition
per missingness pattern); its
standard error is the observed information's at the optimum, which is what GEMMA's ``-lmm``
null model states (the curvature of the profile restricted likelihood in λ = σ²g/σ²e).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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


def relationship_product(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray,
                         vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A block's share of K·V·p and of K's diagonal·p without forming K: Z'(Z·``vectors``) (samples × k,
    float64) and Σ z² per sample, Z its standardised genotypes (``dosages``: variants × samples, 0 at the
    ``missing`` calls) as :func:`relationship_cross` takes them. The products run in float32 (``vectors``
    float32, cast once by the caller); blocks add up in float64.

    Examples
    --------
    >>> dosages, missing = np.array([[0.0, 1, 2, 1], [2, 2, 0, 0]]), np.zeros((2, 4), bool)
    >>> vectors = np.eye(4, dtype=np.float32)
    >>> product, diagonal = relationship_product(dosages, missing, vectors)
    >>> bool(np.allclose(product, symmetric(relationship_cross(dosages, missing)))), diagonal.round(4).tolist()
    (True, [3.0, 1.0, 3.0, 1.0])
    """
    z = standardized_genotypes(dosages, missing)        # variants × samples
    return (z.T @ (z @ vectors)).astype(np.float64), np.einsum("ij,ij->j", z, z, dtype=np.float64)


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
    sums = _GrmSums.of(grm)
    fits = []
    for pattern in _HePattern.all_of(phenotypes, covariates):
        sub = sums.without(np.setdiff1d(np.arange(len(grm)), pattern.samples))   # sums over K's sub-matrix

        def product(v: np.ndarray) -> np.ndarray:    # K_S v without copying K_S: v zero-filled off S
            return (grm @ _zero_filled(v, pattern.samples, len(grm)))[pattern.samples]

        q = pattern.residualizer.basis
        kq, kys = np.split(product(pattern.first_columns), [q.shape[1]], axis=1)   # one pass
        qkq = q.T @ kq
        moments = pattern.moments(kys, qkq, trace=sub.trace, total=sub.total,
                                  tr_pkpk=sub.squares - 2 * np.sum(kq * kq) + np.sum(qkq * qkq))
        fits.append((moments, product(moments.second_columns)))
    return Heritability(**_estimates(fits, phenotypes.shape[1]))


@dataclass(frozen=True)
class RandomizedHeritability(Heritability):
    """Haseman–Elston with a randomized trace (:func:`haseman_elston_randomized`): ``h2_se`` includes the probes'
    Monte-Carlo error, whose own share ``h2_se_probes`` is kept apart (h2_se² = sampling variance + h2_se_probes²)."""

    h2_se_probes: np.ndarray


def haseman_elston_randomized(apply_k: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
                              phenotypes: np.ndarray, covariates: np.ndarray, *,
                              probes: np.ndarray) -> RandomizedHeritability:
    """Haseman–Elston regression as :func:`haseman_elston`, never forming K: ``apply_k(V)`` returns K V (samples ×
    k) and K's diagonal (samples), and is called exactly twice. Exact but for one term, tr((PKP)²).

    The first call takes, for every missingness pattern S side by side (each zero-filled off its
    samples), [Q, P·y, P·z₁ … P·z_B]: K's diagonal gives tr(K_S), the products with Q the sums
    centring it (1'K_S1 = a'Q'K_SQa with a = Q'1, the intercept among the covariates) and the
    mean diagonal of PKP, those with P·y the estimate; tr((PKP)²) is Hutchinson's estimate
    (1/B) Σ ||PK_SPz_b||² over the ``probes`` (samples × B, B ≥ 2, E zz' = I: Gaussian). The second
    takes every pattern's P·u for the standard error's u'Kₛu. The probes' Monte-Carlo variance,
    var(||PK_SPz_b||²)/B, is added to the estimate's by the delta method through
    S = tr((PKP)²)/d² − rn.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> z = rng.normal(size=(400, 200))
    >>> y = z @ rng.normal(0, np.sqrt(0.6 / 200), 200) + rng.normal(0, np.sqrt(0.4), 400)
    >>> def apply_k(v):
    ...     return z @ (z.T @ v) / 200, np.einsum("ij,ij->i", z, z) / 200
    >>> fit = haseman_elston_randomized(apply_k, y[:, None], np.ones((400, 1)), probes=rng.normal(size=(400, 100)))
    >>> exact = haseman_elston(z @ z.T / 200, y[:, None], np.ones((400, 1)))
    >>> bool(abs(fit.h2[0] - exact.h2[0]) < 3 * fit.h2_se[0]), bool(0 < fit.h2_se_probes[0] < fit.h2_se[0])
    (True, True)
    """
    length = len(phenotypes)
    patterns = list(_HePattern.all_of(phenotypes, covariates))
    firsts = [np.hstack([pattern.first_columns, pattern.residualizer.transform(probes[pattern.samples])])
              for pattern in patterns]
    k_firsts, diagonal = apply_k(_side_by_side(firsts, [p.samples for p in patterns], length))
    moments = []
    for pattern, k_first in zip(patterns, _split_columns(k_firsts, firsts)):
        q = pattern.residualizer.basis
        kq, kys, kpz = np.split(k_first[pattern.samples], [q.shape[1], pattern.ys.shape[1] + q.shape[1]], axis=1)
        qkq = q.T @ kq
        ones = q.sum(axis=0)                                  # Q'1
        squares = np.sum(pattern.residualizer.transform(kpz) ** 2, axis=0)   # ||PK_SPz_b||² per probe
        moments.append(pattern.moments(kys, qkq, trace=float(diagonal[pattern.samples].sum()),
                                       total=float(ones @ qkq @ ones), tr_pkpk=float(squares.mean()),
                                       tr_pkpk_variance=float(squares.var(ddof=1) / len(squares))))
    seconds = [m.second_columns for m in moments]
    k_seconds, _ = apply_k(_side_by_side(seconds, [p.samples for p in patterns], length))
    fits = [(m, k_second[m.pattern.samples]) for m, k_second in zip(moments, _split_columns(k_seconds, seconds))]
    h2_se_probes = np.full(phenotypes.shape[1], np.nan)
    for m, _ in fits:
        h2_se_probes[m.pattern.columns] = m.h2_scale * np.sqrt(m.probe_variance)
    return RandomizedHeritability(**_estimates(fits, phenotypes.shape[1]), h2_se_probes=h2_se_probes)


@dataclass(frozen=True)
class _HePattern:
    """The phenotypes of one missingness pattern, as Haseman–Elston takes them: on their samples, after the
    covariates, standardised (each column's y'y = n)."""

    columns: np.ndarray          # phenotype columns
    samples: np.ndarray          # their samples
    residualizer: Residualizer   # the covariates over those samples: P v = v − QQ'v
    var_y: np.ndarray            # each phenotype's variance before the covariates
    var_new: np.ndarray          # and after
    ys: np.ndarray               # samples × phenotypes, standardised after the covariates

    @classmethod
    def all_of(cls, phenotypes: np.ndarray, covariates: np.ndarray) -> Iterator[_HePattern]:
        """Every missingness pattern of ``phenotypes`` (samples × P, NaN missing), in :func:`phenotype_patterns`' order."""
        for columns, samples in phenotype_patterns(phenotypes):
            y = phenotypes[np.ix_(samples, columns)]
            residualizer = Residualizer.from_covariates(covariates[samples])
            projected = residualizer.transform(y)
            var_new = projected.var(axis=0)
            yield cls(columns, samples, residualizer, y.var(axis=0), var_new,
                      (projected - projected.mean(axis=0)) / np.sqrt(var_new))

    @property
    def first_columns(self) -> np.ndarray:
        """[Q, P·ys] (samples × (c + phenotypes)): K's products with them give every term but tr((PKP)²) and u'Kₛu."""
        return np.hstack([self.residualizer.basis, self.residualizer.transform(self.ys)])

    def moments(self, kys: np.ndarray, qkq: np.ndarray, *, trace: float, total: float, tr_pkpk: float,
                tr_pkpk_variance: float = 0.0) -> _HeMoments:
        """The estimate from K_S·P·ys, Q'K_SQ, tr(K_S), 1'K_S1 and tr((PK_SP)²) (with the variance of its
        estimate: 0 when exact)."""
        n = len(self.samples)
        trace_centred = (trace - total / n) / n           # GEMMA's v_traceG: K centred by the mean
        d = (trace - np.trace(qkq)) / n                    # mean diagonal of PKP
        r = n / (n - self.residualizer.basis.shape[1])
        s = tr_pkpk / d ** 2 - r * n
        u = self.residualizer.transform(kys) / d - r * self.ys
        tau = np.einsum("ij,ij->j", u, self.ys) / s
        return _HeMoments(self, trace_centred, d, r, s, u, tau, (tau / s) ** 2 * tr_pkpk_variance / d ** 4)


@dataclass(frozen=True)
class _HeMoments:
    """One pattern's Haseman–Elston estimate τ = q/S (per phenotype), before its standard error's u'Kₛu."""

    pattern: _HePattern
    trace_centred: float       # GEMMA's v_traceG
    d: float                   # mean diagonal of PKP
    r: float                   # n/(n − c)
    s: float                   # S = tr(Kₛ²) − rn
    u: np.ndarray              # samples × phenotypes: Kₛys − r·ys
    tau: np.ndarray
    probe_variance: np.ndarray  # τ's variance from a randomized tr((PKP)²), by the delta method (0 when exact)

    @property
    def second_columns(self) -> np.ndarray:
        """P·u: K's product with it gives the standard error's u'Kₛu."""
        return self.pattern.residualizer.transform(self.u)

    @property
    def h2_scale(self) -> float:
        """h² per unit of τ."""
        return self.trace_centred / self.d

    def estimates(self, k_pu: np.ndarray) -> dict[str, np.ndarray]:
        """The pattern's :class:`Heritability` fields, given K_S·P·u (samples × phenotypes)."""
        pattern, u, tau, s = self.pattern, self.u, self.tau, self.s
        scaled_u = pattern.residualizer.transform(k_pu) / self.d          # Kₛu = PKPu/d
        variance = 2 * (tau * np.einsum("ij,ij->j", u, scaled_u) + (1 - tau) * np.einsum("ij,ij->j", u, u)) / s ** 2
        se = np.sqrt(variance + self.probe_variance)
        genetic = pattern.var_new / self.d            # σ²g per unit of the transformed estimate
        var_y, var_new, r, trace_centred = pattern.var_y, pattern.var_new, self.r, self.trace_centred
        return {"sigma2_g": tau * genetic, "sigma2_g_se": se * genetic,
                "sigma2_e": (1 - tau) * r * var_new, "sigma2_e_se": se * r * var_new,
                "pve": tau * genetic * trace_centred / var_y, "pve_se": se * genetic * trace_centred / var_y,
                "h2": tau * genetic * trace_centred / var_new, "h2_se": se * genetic * trace_centred / var_new,
                "n_samples": np.full(len(pattern.columns), len(pattern.samples), np.int64)}


def _estimates(fits: list[tuple[_HeMoments, np.ndarray]], width: int) -> dict[str, np.ndarray]:
    """:class:`Heritability`'s fields for ``width`` phenotypes from each pattern's moments and its K_S·P·u."""
    out = {name: np.full(width, np.nan) for name in Heritability.__dataclass_fields__ if name != "n_samples"}
    out["n_samples"] = np.zeros(width, np.int64)
    for moments, k_pu in fits:
        for name, values in moments.estimates(k_pu).items():
            out[name][moments.pattern.columns] = values
    return out


def _zero_filled(v: np.ndarray, samples: np.ndarray, length: int) -> np.ndarray:
    """``v`` (rows: ``samples``) as ``length`` rows, 0 off those samples."""
    filled = np.zeros((length, v.shape[1]))
    filled[samples] = v
    return filled


def _side_by_side(blocks: list[np.ndarray], samples: list[np.ndarray], length: int) -> np.ndarray:
    """Each pattern's columns zero-filled to ``length`` rows, side by side (length × total columns)."""
    return np.hstack([_zero_filled(block, rows, length) for block, rows in zip(blocks, samples)])


def _split_columns(stacked: np.ndarray, blocks: list[np.ndarray]) -> list[np.ndarray]:
    """``stacked``'s columns back into the widths of ``blocks``."""
    return np.split(stacked, np.cumsum([block.shape[1] for block in blocks])[:-1], axis=1)


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
        eigenvalues, vectors = centred_eigenbasis(grm, samples)
        trace = eigenvalues.mean()
        x = vectors.T @ covariates[samples]
        rotated = vectors.T @ phenotypes[np.ix_(samples, columns)]
        for j, column in enumerate(columns):
            fit = _ai_reml(eigenvalues, x, rotated[:, j], trace)
            for name, value in fit.items():
                out[name][column] = value
        n_samples[columns] = len(samples)
    return Heritability(**out, n_samples=n_samples)


def centred_eigenbasis(grm: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """K over ``samples`` centred there (GEMMA's CenterMatrix) and decomposed, as GEMMA's REML and ``-lmm`` take
    it: its eigenvalues (ascending, those below 1e-10 set to 0 as EigenDecomp_Zeroed does) and eigenvectors
    (samples × samples, one per column).

    Examples
    --------
    >>> values, vectors = centred_eigenbasis(np.eye(3), np.array([0, 2]))
    >>> values.tolist(), vectors.shape
    ([0.0, 1.0], (2, 2))
    """
    k = grm[np.ix_(samples, samples)]
    k = k - k.mean(axis=0) - k.mean(axis=1)[:, None] + k.mean()
    eigenvalues, vectors = np.linalg.eigh(k)
    eigenvalues[eigenvalues < _ZEROED] = 0.0
    return eigenvalues, vectors


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

