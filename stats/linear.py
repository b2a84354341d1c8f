"""Linear association of many variants with many phenotypes: exact under missingness, one big product.

By Frisch–Waugh–Lovell the t-test of a variant g in y ~ C + g needs only cross-products.
With Q an orthonormal basis of the covariates C over all n samples and ỹ = y − QQ'y
(filled where missing, then zeroed there), a test over any subset S of the samples is

    g'ỹ|S − b'A⁻¹c,   g'g|S − b'A⁻¹b,   ỹ'ỹ|S − c'A⁻¹c,
    with A = Q'Q|S,  b = Q'g|S,  c = Q'ỹ|S,

where ·|S sums over S only. Zero-filling both sides makes g'ỹ|S a plain entry of the
one big product G₀'Ỹ₀, whatever S is. Everything else is a downdate by the (few) samples
left out: the phenotype's own missing set U (shared by every phenotype of the same
missingness pattern, so A⁻¹ is computed once per pattern) and each variant's missing
calls, which change A per variant and are handled only for the variants that have them.
Nothing is imputed: each test uses exactly its complete samples, as ``plink2 --glm`` does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse

from biolake.stats.association import (COLLINEAR, MONOMORPHIC, OK, TOO_FEW_SAMPLES, AssociationResult,
                               p_from_log10p, t_log10p)

_SINGULAR = 1e-10     # smallest eigenvalue of A (whose eigenvalues are ≤ 1) still taken as full rank
_MONOMORPHIC = 1e-12  # genotype variance over the used samples, relative to its mean square
_MAX_VIF = 50.0       # genotype variance / variance left after the covariates: plink2's --vif default
_PHENOTYPE_CHUNK = 64  # phenotypes per step of the missing-call downdate (bounds its memory)


@dataclass(frozen=True)
class Residualizer:
    """Projects the covariates out of any samples × columns block.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> covariates = np.column_stack([np.ones(100), rng.normal(size=100)])
    >>> residualizer = Residualizer.from_covariates(covariates)
    >>> residualizer.basis.shape
    (100, 2)
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

    def transform(self, block: np.ndarray) -> np.ndarray:
        """``block`` (samples × columns) minus its projection on the covariates."""
        return block - self.basis @ (self.basis.T @ block)


@dataclass(frozen=True)
class MissingnessPattern:
    """Phenotypes that are missing for exactly the same samples."""

    columns: np.ndarray         # phenotype columns with this pattern
    missing: np.ndarray         # sample indices left out (sorted)


@dataclass(frozen=True)
class LeftOutSamples:
    """Every pattern's left-out samples in one array, with their rows of (1 | Q).

    Per pattern, a test needs Σg, Q'g and g'g over its present samples: the full-sample
    sums minus those over its left-out ones, which :meth:`sums` computes for every pattern
    in one compiled pass, at a cost proportional to the left-out entries, not to n.
    """

    starts: np.ndarray          # patterns + 1 offsets into ``samples`` (multiples of _UNROLL)
    samples: np.ndarray         # each pattern's left-out sample indices, padded with sample 0
    weights: np.ndarray         # len(samples) × (k + 2): (1 | Q | 1) at those samples, 0 on padding

    @classmethod
    def of(cls, patterns: Sequence[MissingnessPattern], basis: np.ndarray) -> LeftOutSamples:
        """The left-out samples of ``patterns``, each padded to a multiple of _UNROLL entries."""
        sizes = [-(-len(p.missing) // _UNROLL) * _UNROLL for p in patterns]
        samples = np.zeros(sum(sizes), np.int64)
        weights = np.zeros((len(samples), basis.shape[1] + 2))
        starts = np.cumsum([0] + sizes, dtype=np.int64)
        for pattern, start in zip(patterns, starts):
            stop = start + len(pattern.missing)
            samples[start:stop] = pattern.missing
            weights[start:stop] = np.hstack([np.ones((stop - start, 1)), basis[pattern.missing],
                                             np.ones((stop - start, 1))])
        return cls(starts, samples, weights)

    def sums(self, genotypes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per variant and pattern, Σg and Q'g over its left-out samples (variants × patterns × (1 + k))
        and g'g over them (variants × patterns)."""
        variants, n = genotypes.shape
        patterns, width = len(self.starts) - 1, self.weights.shape[1]
        out = np.zeros((patterns, width, variants))      # the kernel adds along variants (contiguous)
        if len(self.samples):
            if len(self.samples) > n // 8:   # many: every sample's row of the transposed block
                rows, at = np.ascontiguousarray(genotypes.T), self.samples
            else:                            # few: only the left-out columns, gathered once
                rows, at = np.ascontiguousarray(genotypes[:, self.samples].T), np.arange(len(self.samples))
            _left_out_kernel(rows, self.starts, at, self.weights, out)
        return out[:, :-1].transpose(2, 0, 1), out[:, -1].T


_UNROLL = 4   # left-out entries added per pass along the variants


@numba.njit(cache=True, nogil=True, fastmath=True)
def _left_out_kernel(rows, starts, at, weights, out):  # pragma: no cover
    """out[p, c] += Σ_u weights[u, c] · g_u for c < last, and out[p, last] += Σ_u weights[u, last] · g_u²,
    g_u = rows[at[u]], over pattern p's entries u, four at a time.

    ``rows``: samples × variants (one contiguous row per sample), so each update runs along
    the variants; ``out``: patterns × width × variants.
    """
    width, variants = weights.shape[1], rows.shape[1]
    for p in range(len(starts) - 1):
        for u in range(starts[p], starts[p + 1], 4):
            g0, g1, g2, g3 = rows[at[u]], rows[at[u + 1]], rows[at[u + 2]], rows[at[u + 3]]
            for c in range(width - 1):
                w0, w1, w2, w3 = weights[u, c], weights[u + 1, c], weights[u + 2, c], weights[u + 3, c]
                target = out[p, c]
                for v in range(variants):
                    target[v] += w0 * g0[v] + w1 * g1[v] + w2 * g2[v] + w3 * g3[v]
            w0, w1, w2, w3 = weights[u, -1], weights[u + 1, -1], weights[u + 2, -1], weights[u + 3, -1]
            target = out[p, width - 1]
            for v in range(variants):
                target[v] += w0 * g0[v] * g0[v] + w1 * g1[v] * g1[v] + w2 * g2[v] * g2[v] + w3 * g3[v] * g3[v]


@dataclass(frozen=True)
class LinearModel:
    """Phenotypes residualised once on the covariates, grouped by missingness pattern.

    Build it with :func:`prepare_linear`; it is the (small) object every block task needs.
    Per-pattern quantities are stacked in arrays so a block is processed without a loop
    over patterns (a release's IDPs may have hundreds of distinct missingness patterns).
    """

    products: np.ndarray       # samples × (P + k + 1): Ỹ₀ | Q | 1, so one product G·(Ỹ₀|Q|1) gives
                               # every g'ỹ, Q'g and Σg of a block
    n_phenotypes: int
    basis_outer: np.ndarray    # rows of Q ⊗ Q: samples × k², for per-variant downdates of A
    residual_squares: np.ndarray  # ỹ₀'ỹ₀ per phenotype
    covariate_cross: np.ndarray   # c = Q'ỹ₀: k × phenotypes
    patterns: tuple[MissingnessPattern, ...]
    left_out: LeftOutSamples
    pattern_of: np.ndarray     # pattern index of each phenotype
    gram_inverse: np.ndarray   # per pattern, (Q'Q over its present samples)⁻¹: patterns × k × k
    full_rank: np.ndarray      # per pattern: False when the covariates are collinear on its samples
    present: np.ndarray        # per pattern, samples present
    residual_squares_adjusted: np.ndarray     # ỹ'ỹ − c'A⁻¹c per phenotype
    intercept: float | None    # the constant of Q's first column when the covariates start with one

    @property
    def residuals(self) -> np.ndarray:
        """Ỹ₀: samples × phenotypes, zero where missing."""
        return self.products[:, :self.n_phenotypes]

    @property
    def basis(self) -> np.ndarray:
        """Q: samples × k."""
        return self.products[:, self.n_phenotypes:-1]

    @property
    def n_covariates(self) -> int:
        return self.products.shape[1] - self.n_phenotypes - 1


def prepare_linear(phenotypes: np.ndarray, covariates: np.ndarray) -> LinearModel:
    """Residualise the phenotypes (samples × P, NaN missing) on the covariates (samples × k, complete).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(50, 3)); y[:5, 0] = np.nan; y[:5, 2] = np.nan
    >>> model = prepare_linear(y, np.ones((50, 1)))
    >>> [(p.columns.tolist(), int(n)) for p, n in zip(model.patterns, model.present)]
    [([1], 50), ([0, 2], 45)]
    """
    q = Residualizer.from_covariates(covariates).basis
    n, k = q.shape
    present = ~np.isnan(phenotypes)
    means = np.nanmean(np.where(present.any(axis=0), phenotypes, 0.0), axis=0) if phenotypes.size else 0.0
    residuals = Residualizer(q).transform(np.where(present, phenotypes, means))
    residuals[~present] = 0.0
    unique, inverse = np.unique(~present.T, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    patterns, grams = [], []
    for index, missing_row in enumerate(unique):
        columns, missing = np.flatnonzero(inverse == index), np.flatnonzero(missing_row)
        patterns.append(MissingnessPattern(columns, missing))
        grams.append(np.eye(k) - q[missing].T @ q[missing])
    left_out = LeftOutSamples.of(patterns, q)
    grams = np.array(grams).reshape(len(patterns), k, k)
    full_rank = np.linalg.eigvalsh(grams)[:, 0] > _SINGULAR if k else np.ones(len(patterns), bool)
    gram_inverse = np.zeros_like(grams)
    gram_inverse[full_rank] = np.linalg.inv(grams[full_rank])
    cross = q.T @ residuals
    squares = np.einsum("ij,ij->j", residuals, residuals)
    adjusted = squares - np.einsum("kj,jkl,lj->j", cross, gram_inverse[inverse], cross)
    constant = k and np.ptp(covariates[:, 0]) == 0 and covariates[0, 0] != 0
    return LinearModel(
        np.hstack([residuals, q, np.ones((n, 1))]), phenotypes.shape[1],
        (q[:, :, None] * q[:, None, :]).reshape(n, k * k), squares, cross, tuple(patterns), left_out, inverse,
        gram_inverse,
        full_rank, np.array([n - len(p.missing) for p in patterns]), adjusted,
        float(q[0, 0]) if constant else None)


@dataclass(frozen=True)
class CrossProducts:
    """Per row (variant, CpG) × phenotype, the adjusted sums every linear test is made of.

    With g̃ and ỹ the row and the phenotype residualised on the covariates over exactly the
    samples of that test: ``gy`` = g̃'ỹ, ``gg`` = g̃'g̃, ``yy`` = ỹ'ỹ; ``n`` samples, ``sums``
    and ``squares`` Σg and Σg² over them, ``error`` an :data:`ERRORS` index (monomorphic,
    too few samples, collinear). The GWAS t-test and the EWAS regressions both read these.
    """

    gy: np.ndarray
    gg: np.ndarray
    yy: np.ndarray
    n: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    error: np.ndarray
    n_covariates: int

    @property
    def dof(self) -> np.ndarray:
        """Residual degrees of freedom of one test: n − k − 1."""
        return self.n - self.n_covariates - 1


def cross_products(genotypes: np.ndarray, model: LinearModel, *, missing: scipy.sparse.csr_array | None = None,
                   rows_are_predictors: bool = True) -> CrossProducts:
    """The adjusted cross-products of every row of ``genotypes`` with every phenotype of ``model``.

    ``genotypes``: rows × samples, 0 where a value is missing; ``missing``: rows × samples
    sparse, nonzero at those values (each such sample is dropped for that row only). With
    float32 rows the products run in float32 (sums of whole-number hard calls stay exact);
    everything after them is float64. ``rows_are_predictors`` (GWAS) flags constant rows and
    rows collinear with the covariates; in an EWAS the rows are responses and need neither.
    """
    k, pattern_of = model.n_covariates, model.pattern_of
    products = (genotypes @ model.products.astype(genotypes.dtype, copy=False)).astype(np.float64)
    gy, gq, g_sum = products[:, :model.n_phenotypes], products[:, model.n_phenotypes:-1], products[:, -1]
    if model.intercept is not None:  # exact even in float32 (hard-call sums are exact integers)
        gq[:, 0] = g_sum * model.intercept
    gg = np.einsum("ij,ij->i", genotypes, genotypes).astype(np.float64)

    # Per pattern: Σg, g'g and b = Q'g over its present samples (rows × patterns [× k]).
    left_sums, left_squares = model.left_out.sums(genotypes)
    sums, b = g_sum[:, None] - left_sums[:, :, 0], gq[:, None, :] - left_sums[:, :, 1:]
    squares = gg[:, None] - left_squares
    gy_adj, gg_adj = np.empty_like(gy), np.empty(squares.shape)
    _adjust(b, model.gram_inverse, model.covariate_cross, pattern_of, gy, squares, gy_adj, gg_adj)
    gg_adj = gg_adj[:, pattern_of]
    yy_adj = np.broadcast_to(model.residual_squares_adjusted, gy.shape).copy()
    n = np.broadcast_to(model.present[pattern_of], gy.shape).copy()
    if missing is not None and missing.nnz:
        rows = np.flatnonzero(np.diff(missing.indptr))
        n[rows] -= _drop_calls(missing[rows].astype(np.float64), model, b[rows], gy[rows],
                               squares[rows], out=(gy_adj, gg_adj, yy_adj), rows=rows)
    sums, squares = sums[:, pattern_of], squares[:, pattern_of]

    error = np.where(model.full_rank[pattern_of], OK,
                     np.where(model.present[pattern_of] > k, COLLINEAR, TOO_FEW_SAMPLES)).astype(np.int8)
    error = np.broadcast_to(error, gy.shape).copy()
    error[(error == OK) & (n - k - 1 < 1)] = TOO_FEW_SAMPLES
    if rows_are_predictors:
        with np.errstate(divide="ignore", invalid="ignore"):
            g_centred = squares - sums ** 2 / np.maximum(n, 1)
            error[(error == OK) & (g_centred <= _MONOMORPHIC * np.maximum(squares, 1e-300))] = MONOMORPHIC
            error[(error == OK) & (gg_adj * _MAX_VIF < g_centred)] = COLLINEAR
    return CrossProducts(gy_adj, gg_adj, yy_adj, n, sums, squares, error, k)


@numba.njit(cache=True, nogil=True)
def _adjust(b, gram_inverse, cross, pattern_of, gy, squares, gy_adj, gg_adj):  # pragma: no cover
    """Per variant v and pattern p, with β = A_p⁻¹b: g'g − b'β into gg_adj[v, p], and per phenotype j
    g'ỹ − β'c_j into gy_adj[v, j] (b: variants × patterns × k, c = cross: k × phenotypes)."""
    variants, patterns, k = b.shape
    solved = np.empty((patterns, k))
    for v in range(variants):
        for p in range(patterns):
            quadratic = 0.0
            for i in range(k):
                value = 0.0
                for m in range(k):
                    value += b[v, p, m] * gram_inverse[p, m, i]
                solved[p, i] = value
                quadratic += b[v, p, i] * value
            gg_adj[v, p] = squares[v, p] - quadratic
        for j in range(gy.shape[1]):
            p, value = pattern_of[j], 0.0
            for i in range(k):
                value += solved[p, i] * cross[i, j]
            gy_adj[v, j] = gy[v, j] - value


def linear_association(genotypes: np.ndarray, model: LinearModel, *,
                       missing: scipy.sparse.csr_array | None = None) -> AssociationResult:
    """t-tests of every variant (rows of ``genotypes``) against every phenotype of ``model``.

    ``genotypes``: variants × samples alt dosages, 0 where a call is missing; ``missing``:
    variants × samples sparse, nonzero at those calls (each such sample is dropped for that
    variant only), as in :func:`cross_products`.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.integers(0, 3, size=(5, 200)).astype(float)   # variants × samples
    >>> y = (1.0 * g[0] + rng.normal(size=200))[:, None]     # samples × 1
    >>> result = linear_association(g, prepare_linear(y, np.ones((200, 1))))
    >>> bool(result.p[0, 0] < 1e-6), result.beta.shape, int(result.n[0, 0])
    (True, (5, 1), 200)
    """
    cross = cross_products(genotypes, model, missing=missing)
    failed, dof = cross.error != OK, np.maximum(cross.dof, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        alt_freq = np.where(cross.n > 0, cross.sums / (2.0 * cross.n), np.nan)
        beta = np.where(failed, np.nan, cross.gy / cross.gg)
        rss = np.maximum(cross.yy - beta * cross.gy, 0.0)
        se = np.where(failed, np.nan, np.sqrt(rss / (dof * cross.gg)))
        t = beta / se
        log10p = np.where(failed, np.nan, t_log10p(t, dof))
    return AssociationResult(beta, se, t, p_from_log10p(log10p), log10p, cross.n, cross.error, alt_freq)


def _drop_calls(missing_rows: scipy.sparse.csr_array, model: LinearModel, b: np.ndarray, gy: np.ndarray,
                squares: np.ndarray, *, out: tuple[np.ndarray, np.ndarray, np.ndarray],
                rows: np.ndarray) -> np.ndarray:
    """Exact statistics for the variants that have missing calls (``rows``), pattern by pattern.

    Their missing samples (beyond the pattern's own) come out of A, c and ỹ'ỹ per variant:
    A_v = A − Σ q_i q_iᵀ, c_v = c − Σ q_i ỹ_i, ỹ'ỹ_v = ỹ'ỹ − Σ ỹ_i², sums over the variant's
    missing calls (ỹ₀ is already zero on the pattern's missing samples). b and g'g need no
    downdate: the genotype is zero at its own missing calls. Overwrites the adjusted g'ỹ, g'g
    and ỹ'ỹ in ``out`` at ``rows``; returns how many samples each variant loses, per phenotype.
    """
    k = model.n_covariates
    gy_adj, gg_adj, yy_adj = out
    called_lost = np.asarray(missing_rows.sum(axis=1)).ravel().astype(np.int64)
    lost = np.empty((len(rows), model.n_phenotypes), np.int64)
    outer_called_lost = missing_rows @ model.basis_outer
    for index, pattern in enumerate(model.patterns):
        cols, outer_lost, lost_here = pattern.columns, outer_called_lost, called_lost
        if len(pattern.missing):
            overlap = missing_rows[:, pattern.missing]
            lost_here = called_lost - np.asarray(overlap.sum(axis=1)).ravel().astype(np.int64)
            outer_lost = outer_called_lost - overlap @ model.basis_outer[pattern.missing]
        basis_missing = model.basis[pattern.missing]
        gram = np.eye(k) - basis_missing.T @ basis_missing - outer_lost.reshape(-1, k, k)
        singular = np.linalg.eigvalsh(gram)[:, 0] <= _SINGULAR if k else np.zeros(len(rows), bool)
        gram[singular] = np.eye(k)
        b_p = b[:, index]
        b_solved = np.linalg.solve(gram, b_p[:, :, None])[:, :, 0]
        gg_adj[rows[:, None], cols] = (squares[:, index] - np.einsum("vk,vk->v", b_p, b_solved))[:, None]
        for start in range(0, len(cols), _PHENOTYPE_CHUNK):
            chunk = cols[start:start + _PHENOTYPE_CHUNK]
            y = model.residuals[:, chunk]
            c = model.covariate_cross[:, chunk][None] - (
                missing_rows @ (model.basis[:, :, None] * y[:, None, :]).reshape(len(y), -1)
            ).reshape(len(rows), k, len(chunk))                          # variants × k × phenotypes
            c_solved = np.linalg.solve(gram, c)
            gy_adj[rows[:, None], chunk] = gy[:, chunk] - np.einsum("vk,vkj->vj", b_p, c_solved)
            yy_adj[rows[:, None], chunk] = (model.residual_squares[chunk] - missing_rows @ (y * y)
                                            - np.einsum("vkj,vkj->vj", c, c_solved))
        gg_adj[rows[singular][:, None], cols] = 0.0   # reported as collinear
        lost[:, cols] = lost_here[:, None]
    return lost
