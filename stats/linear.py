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

from dataclasses import dataclass

import numpy as np
import scipy.sparse

from stats.association import (COLLINEAR, MONOMORPHIC, OK, TOO_FEW_SAMPLES, AssociationResult,
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
    """Phenotypes that are missing for exactly the same samples, and what they share."""

    columns: np.ndarray         # phenotype columns with this pattern
    missing: np.ndarray         # sample indices left out (sorted)
    basis_missing: np.ndarray   # Q at those samples: |missing| × k
    gram_inverse: np.ndarray    # (Q'Q over the present samples)⁻¹: k × k
    full_rank: bool             # False when the covariates are collinear on the present samples
    covariate_cross: np.ndarray  # c = Q'ỹ₀: k × columns
    n: int                      # samples present


@dataclass(frozen=True)
class LinearModel:
    """Phenotypes residualised once on the covariates, grouped by missingness pattern.

    Build it with :func:`prepare_linear`; it is the (small) object every block task needs.
    """

    basis: np.ndarray          # Q: samples × k
    basis_outer: np.ndarray    # rows of Q ⊗ Q: samples × k², for per-variant downdates of A
    residuals: np.ndarray      # Ỹ₀: samples × phenotypes, zero where missing
    residual_squares: np.ndarray  # ỹ₀'ỹ₀ per phenotype
    patterns: tuple[MissingnessPattern, ...]

    @property
    def n_covariates(self) -> int:
        return self.basis.shape[1]


def prepare_linear(phenotypes: np.ndarray, covariates: np.ndarray) -> LinearModel:
    """Residualise the phenotypes (samples × P, NaN missing) on the covariates (samples × k, complete).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(size=(50, 3)); y[:5, 0] = np.nan; y[:5, 2] = np.nan
    >>> model = prepare_linear(y, np.ones((50, 1)))
    >>> [(p.columns.tolist(), p.n) for p in model.patterns]
    [([1], 50), ([0, 2], 45)]
    """
    q = Residualizer.from_covariates(covariates).basis
    present = ~np.isnan(phenotypes)
    means = np.nanmean(np.where(present.any(axis=0), phenotypes, 0.0), axis=0) if phenotypes.size else 0.0
    residuals = Residualizer(q).transform(np.where(present, phenotypes, means))
    residuals[~present] = 0.0
    k = q.shape[1]
    unique, inverse = np.unique(~present.T, axis=0, return_inverse=True)
    patterns = []
    for index, missing_row in enumerate(unique):
        columns = np.flatnonzero(inverse.ravel() == index)
        missing = np.flatnonzero(missing_row)
        basis_missing = q[missing]
        gram = np.eye(k) - basis_missing.T @ basis_missing
        full_rank = bool(np.linalg.eigvalsh(gram)[0] > _SINGULAR) if k else True
        patterns.append(MissingnessPattern(
            columns, missing, basis_missing, np.linalg.inv(gram) if full_rank else np.zeros((k, k)),
            full_rank, q.T @ residuals[:, columns], len(q) - len(missing)))
    outer = (q[:, :, None] * q[:, None, :]).reshape(len(q), k * k)
    return LinearModel(q, outer, residuals, np.einsum("ij,ij->j", residuals, residuals), tuple(patterns))


def linear_association(genotypes: np.ndarray, model: LinearModel, *,
                       missing: scipy.sparse.csr_array | None = None) -> AssociationResult:
    """t-tests of every variant (rows of ``genotypes``) against every phenotype of ``model``.

    ``genotypes``: variants × samples alt dosages, 0 where a call is missing; ``missing``:
    variants × samples sparse, nonzero at those calls (each such sample is dropped for that
    variant only). float32 genotypes make the big product float32; the rest stays float64.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.integers(0, 3, size=(5, 200)).astype(float)   # variants × samples
    >>> y = (1.0 * g[0] + rng.normal(size=200))[:, None]     # samples × 1
    >>> result = linear_association(g, prepare_linear(y, np.ones((200, 1))))
    >>> bool(result.p[0, 0] < 1e-6), result.beta.shape, int(result.n[0, 0])
    (True, (5, 1), 200)
    """
    q, residuals = model.basis, model.residuals
    variants, phenotypes, k = genotypes.shape[0], residuals.shape[1], model.n_covariates
    gy = (genotypes @ residuals.astype(genotypes.dtype, copy=False)).astype(np.float64)
    g64 = genotypes.astype(np.float64, copy=False)
    gq = g64 @ q                                # b before any downdate: variants × k
    gg = np.einsum("ij,ij->i", g64, g64)
    g_sum = g64.sum(axis=1)
    shape = (variants, phenotypes)
    gy_adj, gg_adj, yy_adj = np.empty(shape), np.empty(shape), np.empty(shape)
    n, g_centred, error = np.empty(shape, np.int64), np.empty(shape), np.zeros(shape, np.int8)

    with_missing = (np.flatnonzero(np.diff(missing.indptr)) if missing is not None
                    else np.empty(0, np.int64))
    missing_rows = missing[with_missing].astype(np.float64) if len(with_missing) else None
    for pattern in model.patterns:
        cols = pattern.columns
        u = pattern.missing
        b = gq - g64[:, u] @ pattern.basis_missing                 # Q'g over the present samples
        gg_p = gg - np.einsum("ij,ij->i", g64[:, u], g64[:, u])
        sum_p = g_sum - g64[:, u].sum(axis=1)
        n_p = np.full(variants, pattern.n, np.int64)
        b_solved = b @ pattern.gram_inverse
        gy_adj[:, cols] = gy[:, cols] - b_solved @ pattern.covariate_cross
        gg_adj[:, cols] = (gg_p - np.einsum("ij,ij->i", b, b_solved))[:, None]
        yy_adj[:, cols] = (model.residual_squares[cols]
                           - np.einsum("kj,kj->j", pattern.covariate_cross,
                                       pattern.gram_inverse @ pattern.covariate_cross))[None, :]
        if missing_rows is not None:
            n_p[with_missing] -= _drop_calls(missing_rows, pattern, model, b[with_missing],
                                             gy[with_missing][:, cols], gg_p[with_missing],
                                             out=(gy_adj, gg_adj, yy_adj), rows=with_missing)
        n[:, cols] = n_p[:, None]
        g_centred[:, cols] = (gg_p - sum_p ** 2 / np.maximum(n_p, 1))[:, None]
        if not pattern.full_rank:
            error[:, cols] = COLLINEAR if pattern.n > k else TOO_FEW_SAMPLES

    dof = n - k - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        error[(error == OK) & (g_centred <= _MONOMORPHIC * np.maximum(gg[:, None], 1e-300))] = MONOMORPHIC
        error[(error == OK) & (dof < 1)] = TOO_FEW_SAMPLES
        error[(error == OK) & (gg_adj * _MAX_VIF < g_centred)] = COLLINEAR
        failed = error != OK
        beta = np.where(failed, np.nan, gy_adj / gg_adj)
        rss = np.maximum(yy_adj - beta * gy_adj, 0.0)
        se = np.sqrt(rss / (np.maximum(dof, 1) * gg_adj))
        t = beta / se
        log10p = np.where(failed, np.nan, t_log10p(t, np.maximum(dof, 1)))
    se[failed] = np.nan
    return AssociationResult(beta, se, t, p_from_log10p(log10p), log10p, n, error)


def _drop_calls(missing_rows: scipy.sparse.csr_array, pattern: MissingnessPattern, model: LinearModel,
                b: np.ndarray, gy: np.ndarray, gg: np.ndarray, *,
                out: tuple[np.ndarray, np.ndarray, np.ndarray], rows: np.ndarray) -> np.ndarray:
    """Exact statistics for the variants that have missing calls, under one phenotype pattern.

    Their missing samples (beyond the pattern's own) come out of A, c and ỹ'ỹ per variant:
    A_v = A − Σ q_i q_iᵀ, c_v = c − Σ q_i ỹ_i, ỹ'ỹ_v = ỹ'ỹ − Σ ỹ_i², sums over the variant's
    missing calls (ỹ₀ is already zero on the pattern's missing samples). b and g'g need no
    downdate: the genotype is zero at its own missing calls. Writes the adjusted g'ỹ, g'g and
    ỹ'ỹ into ``out`` at ``rows`` and returns how many samples each variant loses.
    """
    k, cols = model.n_covariates, pattern.columns
    gy_adj, gg_adj, yy_adj = out
    lost = np.asarray(missing_rows.sum(axis=1)).ravel().astype(np.int64)
    outer_lost = missing_rows @ model.basis_outer
    if len(pattern.missing):
        overlap = missing_rows[:, pattern.missing]
        lost -= np.asarray(overlap.sum(axis=1)).ravel().astype(np.int64)
        outer_lost -= overlap @ model.basis_outer[pattern.missing]
    gram = np.eye(k) - (pattern.basis_missing.T @ pattern.basis_missing) - outer_lost.reshape(-1, k, k)
    singular = np.linalg.eigvalsh(gram)[:, 0] <= _SINGULAR if k else np.zeros(len(rows), bool)
    gram[singular] = np.eye(k)
    b_solved = np.linalg.solve(gram, b[:, :, None])[:, :, 0]
    gg_adj[rows[:, None], cols] = (gg - np.einsum("vk,vk->v", b, b_solved))[:, None]
    for start in range(0, len(cols), _PHENOTYPE_CHUNK):
        chunk = cols[start:start + _PHENOTYPE_CHUNK]
        y = model.residuals[:, chunk]
        c = pattern.covariate_cross[:, start:start + _PHENOTYPE_CHUNK][None] - (
            missing_rows @ (model.basis[:, :, None] * y[:, None, :]).reshape(len(y), -1)
        ).reshape(len(rows), k, len(chunk))                          # variants × k × phenotypes
        c_solved = np.linalg.solve(gram, c)
        gy_adj[rows[:, None], chunk] = gy[:, start:start + _PHENOTYPE_CHUNK] - np.einsum("vk,vkj->vj", b, c_solved)
        yy_adj[rows[:, None], chunk] = (model.residual_squares[chunk] - missing_rows @ (y * y)
                                        - np.einsum("vkj,vkj->vj", c, c_solved))
    gg_adj[rows[singular][:, None], cols] = 0.0   # reported as collinear
    return lost
