"""Mixed-model association on the eigenbasis of the relationship matrix, as GEMMA 0.98.5's ``-lmm 1`` (Wald).

The model is y = Wα + xβ + g + e, g ~ N(0, σ²g K), e ~ N(0, σ²e I), λ = σ²g/σ²e. K is
centred over each phenotype's samples and decomposed once per missingness pattern
(:func:`biolake.stats.heritability.centred_eigenbasis`: K = U diag(d) U'); rotated by U', the
variance is diagonal, σ²e·(λd + 1), so every likelihood evaluation is a weighted sum over the
samples, O(n) per variant. The null model (covariates only) gets λ by REML; then

- ``exact``: λ is re-estimated by REML for every variant with x among the fixed effects, as
  GEMMA's ``CalcLambda('R', …)`` does: the derivative of the restricted log-likelihood on 10
  regions evenly spaced in log λ over [1e-5, 1e5] (``-lmin``, ``-lmax``, ``-region``), each sign
  change bracketed to 10 % and polished by Newton's method to a step below 1e-5 relative
  (GEMMA's Brent then Newton; the iterate before the last kept, as GEMMA keeps it), the best of
  those roots and both ends taken;
- ``null-ratio``: λ stays the null model's for every variant (EMMAX): all variants of a block at
  once, one product U'G and a weighted regression per phenotype.

Either way the test is GEMMA's Wald test: weighted least squares at that λ, β = x'Py/x'Px,
se² = y'P₍ₓ₎y/(df·x'Px), df = n − c − 1, p from Student's t (GEMMA's F(1, df)). Missing calls
are the variant's mean over the phenotype's samples with a call (GEMMA's rule); a phenotype's
missing values drop only its own samples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import scipy.sparse

from biolake.stats.association import COLLINEAR, MONOMORPHIC, OK, TOO_FEW_SAMPLES, AssociationResult, \
    p_from_log10p, t_log10p
from biolake.stats.heritability import centred_eigenbasis, phenotype_patterns

MODES = ("exact", "null-ratio")
LAMBDA_MIN, LAMBDA_MAX, LAMBDA_REGIONS = 1e-5, 1e5, 10   # GEMMA's -lmin, -lmax, -region defaults
_BRACKET = 0.1          # GEMMA's Brent stage stops when the bracket is within 10 % of its ends
_NEWTON_STEP = 1e-5     # and Newton's method when a step is below this share of λ
_ITERATIONS = 100       # at most, per stage (GEMMA's max_iter)
_COLLINEAR_R2 = 0.9999  # a variant whose r² with the covariates reaches this is not tested (GEMMA's -r2)
_MONOMORPHIC = 1e-12    # genotype variance over the phenotype's samples, relative to its mean square
_VARIANT_CHUNK = 512    # variants per step of the exact mode (bounds its memory: chunk × samples × 3)
_NO_VARIANCE = 1e-8     # K's trace per sample left once the covariates are projected out, below which K has none
_NEGATIVE = 1e-6        # eigenvalues of K below 0 summing beyond this share of its trace: not rounding


@dataclass(frozen=True)
class _Rotated:
    """One phenotype's rotated model: K's eigenvalues d, U'[W | y] and optionally U'x of some variants, whose
    weighted cross-products M(w) = [W x y]' diag(w) [W x y] make every likelihood term."""

    eigenvalues: np.ndarray          # d: samples
    fixed: np.ndarray                # U'[W | y]: samples × (c + 1)
    genotypes: np.ndarray | None     # U'x: variants × samples, or None (the null model)

    @property
    def rows(self) -> int:
        """Models fitted side by side: one per variant, or the null model's one."""
        return 1 if self.genotypes is None else len(self.genotypes)

    @cached_property
    def _outer(self) -> np.ndarray:
        """Per sample, the outer product of its row of U'[W | y] (samples × (c + 1)²)."""
        return np.einsum("ni,nj->nij", self.fixed, self.fixed).reshape(len(self.fixed), -1)

    def take(self, rows: np.ndarray) -> _Rotated:
        """The models of ``rows`` only."""
        return self if self.genotypes is None else _Rotated(self.eigenvalues, self.fixed, self.genotypes[rows])

    def moments(self, weights: np.ndarray) -> np.ndarray:
        """M(w) per row (rows × m × m, columns W, then x if any, then y) for ``weights`` (rows or 1 × samples)."""
        width = self.fixed.shape[1]
        base = (weights @ self._outer).reshape(-1, width, width)
        if self.genotypes is None:
            return base
        weighted = self.genotypes * weights
        cross, square = weighted @ self.fixed, np.einsum("vn,vn->v", weighted, self.genotypes)
        at = np.r_[0:width - 1, width]             # W and y around x (at index c)
        m = np.empty((len(self.genotypes), width + 1, width + 1))
        m[:, at[:, None], at] = base
        m[:, width - 1, at], m[:, at, width - 1], m[:, width - 1, width - 1] = cross, cross, square
        return m


@dataclass(frozen=True)
class _Profile:
    """The restricted log-likelihood in λ (up to a constant) and its first two derivatives, per row."""

    logl: np.ndarray
    slope: np.ndarray
    curvature: np.ndarray


def _profile(rotated: _Rotated, lam: np.ndarray, df: float, *, curvature: bool = True) -> _Profile:
    """GEMMA's LogRL_f, LogRL_dev1 and LogRL_dev2 at ``lam`` (one per row): with H = λ diag(d) + I, X = [W x],
    ℓ = −½ log|H| − ½ log|X'H⁻¹X| − ½ df log y'Py; ℓ' = −½ tr(PD) + ½ df y'PDPy/y'Py and ℓ'' from
    M(h), M(h') and M(h'') (h = 1/(λd + 1), h' = −dh², h'' = 2d²h³), P never formed."""
    d = rotated.eigenvalues
    h = 1.0 / (lam[:, None] * d + 1.0)
    m0, m1 = rotated.moments(h), rotated.moments(-d * h * h)
    k = m0.shape[1] - 1
    a_inverse = np.linalg.inv(m0[:, :k, :k])
    u = np.concatenate([-a_inverse @ m0[:, :k, k:], np.ones((len(m0), 1, 1))], axis=1)   # [−β; 1]
    residual = (u.transpose(0, 2, 1) @ m0 @ u)[:, 0, 0]             # y'Py
    m1u = m1 @ u
    residual_slope = (u.transpose(0, 2, 1) @ m1u)[:, 0, 0]          # −y'PDPy
    a_m1 = a_inverse @ m1[:, :k, :k]
    logl = (-0.5 * np.log(lam[:, None] * d + 1.0).sum(axis=1) - 0.5 * np.linalg.slogdet(m0[:, :k, :k])[1]
            - 0.5 * df * np.log(residual))
    slope = -0.5 * ((d * h).sum(axis=1) + np.trace(a_m1, axis1=1, axis2=2)) - 0.5 * df * residual_slope / residual
    if not curvature:
        return _Profile(logl, slope, np.full_like(slope, np.nan))
    m2 = rotated.moments(2.0 * d * d * h ** 3)
    q = m1u[:, :k]
    residual_curvature = ((u.transpose(0, 2, 1) @ m2 @ u)[:, 0, 0]
                          - 2.0 * (q.transpose(0, 2, 1) @ a_inverse @ q)[:, 0, 0])
    log_det_curvature = (np.trace(a_inverse @ m2[:, :k, :k], axis1=1, axis2=2)
                         - np.trace(a_m1 @ a_m1, axis1=1, axis2=2))
    curvature_ = (-0.5 * (-(d * d * h * h).sum(axis=1) + log_det_curvature)
                  - 0.5 * df * (residual_curvature / residual - (residual_slope / residual) ** 2))
    return _Profile(logl, slope, curvature_)


def remle_lambda(rotated: _Rotated, df: float, *, lower: float = LAMBDA_MIN, upper: float = LAMBDA_MAX,
                 regions: int = LAMBDA_REGIONS) -> np.ndarray:
    """λ maximising the restricted likelihood of each row, as GEMMA's CalcLambda('R', …) finds it (module
    docstring); with ``lower`` = ``upper`` that λ itself."""
    rows = rotated.rows
    grid = lower * np.exp(np.log(upper / lower) / regions * np.arange(regions + 1))
    slopes = np.column_stack([_profile(rotated, np.full(rows, at), df, curvature=False).slope for at in grid])
    best, best_logl = np.full(rows, np.nan), np.full(rows, -np.inf)
    for region in range(regions):
        changed = np.flatnonzero(slopes[:, region] * slopes[:, region + 1] <= 0)
        if not len(changed):
            continue
        some = rotated.take(changed)
        root = _newton(some, _bracketed(some, df, grid[region], grid[region + 1]), df, lower, upper)
        logl = _profile(some, root, df, curvature=False).logl
        better = logl > best_logl[changed]         # the first root found wins a tie, as in GEMMA
        best[changed[better]], best_logl[changed[better]] = root[better], logl[better]
    ends = [(_profile(rotated, np.full(rows, end), df, curvature=False).logl, end) for end in (lower, upper)]
    none = np.isnan(best)
    best[none] = np.where(ends[0][0][none] >= ends[1][0][none], lower, upper)
    for logl, end in ends:
        beaten = ~none & (logl > best_logl)
        best[beaten], best_logl[beaten] = end, logl[beaten]
    return best


def _bracketed(rotated: _Rotated, df: float, low: float, high: float) -> np.ndarray:
    """Per row, the root of the slope in [low, high] to 10 % (GEMMA's Brent stage, GSL's ``brent`` solver step
    for step, so that Newton's method then starts where GEMMA's does)."""
    def slope(rows: np.ndarray, at: np.ndarray) -> np.ndarray:
        return _profile(rotated.take(rows), at, df, curvature=False).slope

    every = np.arange(rotated.rows)
    a, b = np.full(rotated.rows, low), np.full(rotated.rows, high)
    fa, fb = slope(every, a), slope(every, b)
    state = _Brent(a, b, b.copy(), fa, fb, fb.copy(), b - a, b - a)
    root, active = 0.5 * (a + b), every
    for _ in range(_ITERATIONS):
        if not len(active):
            break
        root[active], lower, upper = state.iterate(active, slope)
        active = active[upper - lower >= _BRACKET * np.minimum(np.abs(lower), np.abs(upper))]
    return root


@dataclass
class _Brent:
    """The state of GSL's Brent root finder (roots/brent.c: bisection or inverse quadratic interpolation), one entry
    per row."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    fa: np.ndarray
    fb: np.ndarray
    fc: np.ndarray
    d: np.ndarray
    e: np.ndarray

    def iterate(self, rows: np.ndarray, f: Callable[[np.ndarray, np.ndarray], np.ndarray]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One step of GSL's brent_iterate for ``rows`` (``f(rows, x)`` the function there): the root estimate
        and the bracket."""
        a, b, c, fa, fb, fc, d, e = (getattr(self, name)[rows] for name in "a b c fa fb fc d e".split())
        same = _same_sign(fb, fc)
        c, fc, d, e = np.where(same, a, c), np.where(same, fa, fc), np.where(same, b - a, d), np.where(same, b - a, e)
        swap = np.abs(fc) < np.abs(fb)
        a, b, c = np.where(swap, b, a), np.where(swap, c, b), np.where(swap, b, c)
        fa, fb, fc = np.where(swap, fb, fa), np.where(swap, fc, fb), np.where(swap, fb, fc)
        ac_equal = same | swap
        tol, m = 0.5 * np.finfo(float).eps * np.abs(b), 0.5 * (c - b)
        done = (fb == 0) | (np.abs(m) <= tol)
        with np.errstate(divide="ignore", invalid="ignore"):
            s, q_, r = fb / fa, fa / fc, fb / fc
            p = np.where(ac_equal, 2 * m * s, s * (2 * m * q_ * (q_ - r) - (b - a) * (r - 1)))
            q = np.where(ac_equal, 1 - s, (q_ - 1) * (r - 1) * (s - 1))
            q, p = np.where(p > 0, -q, q), np.abs(p)
            interpolated = ~((np.abs(e) < tol) | (np.abs(fa) <= np.abs(fb))) & (
                2 * p < np.minimum(3 * m * q - np.abs(tol * q), np.abs(e * q)))
            e, d = np.where(interpolated, d, m), np.where(interpolated, p / q, m)
        step = np.where(np.abs(d) > tol, d, np.where(m > 0, tol, -tol))
        moving = rows[~done]
        new_b = b + step
        new_fb = fb.copy()
        new_fb[~done] = f(moving, new_b[~done])
        kept = ~done
        for name, value in (("a", b), ("fa", fb), ("b", new_b), ("fb", new_fb), ("c", c), ("fc", fc), ("d", d),
                            ("e", e)):
            getattr(self, name)[moving] = value[kept]
        # the rows that stopped keep their state, their bracket b and c (GSL returns before stepping)
        root = np.where(done, b, new_b)
        c_after = np.where(done, np.where(fb == 0, b, c), np.where(_same_sign(new_fb, fc), b, c))
        return root, np.minimum(root, c_after), np.maximum(root, c_after)


def _same_sign(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Both negative or both positive."""
    return ((x < 0) & (y < 0)) | ((x > 0) & (y > 0))


def _newton(rotated: _Rotated, start: np.ndarray, df: float, lower: float, upper: float) -> np.ndarray:
    """Newton's method on the slope from ``start`` per row until a step is below 1e-5 relative or λ leaves
    (lower, upper); the iterate before the last, within [lower, upper] (GEMMA's)."""
    current, previous = start.copy(), start.copy()
    active = np.arange(rotated.rows)
    for _ in range(_ITERATIONS):
        profile = _profile(rotated.take(active), current[active], df)
        stepped = current[active] - profile.slope / profile.curvature
        previous[active], current[active] = current[active], stepped
        done = ((np.abs(stepped - previous[active]) < _NEWTON_STEP * np.abs(stepped))
                | ~(stepped > lower) | ~(stepped < upper))
        active = active[~done]
        if not len(active):
            break
    return np.clip(previous, lower, upper)


def _wald(rotated: _Rotated, lam: np.ndarray, df: float) -> tuple[np.ndarray, np.ndarray]:
    """GEMMA's CalcRLWald: x's weighted least-squares β and its se at ``lam`` (one per row, or one for all)."""
    h = 1.0 / (np.atleast_1d(lam)[:, None] * rotated.eigenvalues + 1.0)
    m0 = rotated.moments(h)
    k = m0.shape[1] - 1
    a_inverse = np.linalg.inv(m0[:, :k, :k])
    coefficients = (a_inverse @ m0[:, :k, k:])[:, :, 0]
    residual = m0[:, k, k] - np.einsum("vi,vi->v", coefficients, m0[:, k, :k])
    return coefficients[:, k - 1], np.sqrt(residual / df * a_inverse[:, k - 1, k - 1])


@dataclass(frozen=True)
class NullModel:
    """Per phenotype, the null model's REML estimates (as GEMMA's ``-lmm`` log prints them): λ = vg/ve, vg, ve."""

    lam: np.ndarray
    vg: np.ndarray
    ve: np.ndarray


@dataclass(frozen=True)
class LmmPattern:
    """Phenotypes present for the same samples, and K's eigenbasis over those samples."""

    columns: np.ndarray       # phenotype columns
    samples: np.ndarray       # their samples (positions among the analysis samples)
    eigenvalues: np.ndarray   # d: of K centred over the samples
    vectors: np.ndarray       # U: samples × samples
    fixed: np.ndarray         # U'[W | Y]: samples × (c + phenotypes of the pattern)


@dataclass(frozen=True)
class LmmModel:
    """What every block task of a mixed-model scan needs: the eigenbases, the rotated phenotypes and covariates,
    and the null model's λ per phenotype. Build it with :func:`prepare_lmm`."""

    mode: str
    patterns: tuple[LmmPattern, ...]
    null: NullModel
    n_covariates: int

    @property
    def n_phenotypes(self) -> int:
        return len(self.null.lam)


def prepare_lmm(grm: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray, *, mode: str) -> LmmModel:
    """K's eigenbasis per missingness pattern of ``phenotypes`` (samples × P, NaN missing) and each phenotype's null
    model by REML; ``grm`` is K over the same samples, ``covariates`` (samples × c) the fixed effects, intercept
    included. Each pattern needs more samples than covariates (callers check with
    :func:`biolake.stats.heritability.fit_problems`).

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> z = rng.normal(size=(200, 300))
    >>> y = z @ rng.normal(0, np.sqrt(0.5 / 300), 300) + rng.normal(0, np.sqrt(0.5), 200)
    >>> model = prepare_lmm(z @ z.T / 300, y[:, None], np.ones((200, 1)), mode="exact")
    >>> bool(0.1 < model.null.lam[0] < 10), len(model.patterns)
    (True, 1)
    """
    assert mode in MODES, mode
    c, width = covariates.shape[1], phenotypes.shape[1]
    lam, vg, ve = np.full(width, np.nan), np.full(width, np.nan), np.full(width, np.nan)
    patterns = []
    for columns, samples in phenotype_patterns(phenotypes):
        eigenvalues, vectors = centred_eigenbasis(grm, samples)
        fixed = vectors.T @ np.hstack([covariates[samples], phenotypes[np.ix_(samples, columns)]])
        problem = relationship_problem(grm, samples, eigenvalues, fixed[:, :c])
        if problem:
            raise RelationshipError(columns[0], problem)
        patterns.append(LmmPattern(columns, samples, eigenvalues, vectors, fixed))
        df = len(samples) - c
        for j, column in enumerate(columns):
            rotated = _Rotated(eigenvalues, fixed[:, np.r_[0:c, c + j]], None)
            lam[column] = remle_lambda(rotated, df)[0]
            ve[column] = _residual(rotated, lam[column]) / df
            vg[column] = lam[column] * ve[column]
    return LmmModel(mode, tuple(patterns), NullModel(lam, vg, ve), c)


class RelationshipError(ValueError):
    """K over a phenotype's samples fits no mixed model (:func:`relationship_problem` says why); ``column`` is the
    first phenotype of those samples, for the caller to name."""

    def __init__(self, column: int, problem: str) -> None:
        super().__init__(problem)
        self.column = column


def relationship_problem(grm: np.ndarray, samples: np.ndarray, eigenvalues: np.ndarray,
                         covariates: np.ndarray) -> str | None:
    """Why K over ``samples`` fits no mixed model, or None: eigenvalues below 0 beyond rounding (the centred
    eigenvalues, negative ones zeroed, add up to more than the centred K's trace), or no variance left once the
    covariates (rotated onto K's eigenvectors, samples × c) are projected out: trace(P K P) ≈ 0.

    Examples
    --------
    >>> x = np.column_stack([np.ones(4), [0.0, 1, 2, 1]])
    >>> values, vectors = centred_eigenbasis(np.outer(x[:, 1], x[:, 1]), np.arange(4))   # K of one variant
    >>> relationship_problem(np.outer(x[:, 1], x[:, 1]), np.arange(4), values, vectors.T @ x)  # it is a covariate
    'the relationship matrix over its 4 samples has no variance left after the covariates (trace 0 once they are projected out): expected genotypes that vary among these samples beyond the covariates'
    """
    n = len(samples)
    chosen = np.zeros(len(grm))
    chosen[samples] = 1.0
    trace = float(grm[samples, samples].sum() - chosen @ grm @ chosen / n)          # of K centred over the samples
    negative = float(eigenvalues.sum()) - trace
    if negative > _NEGATIVE * abs(trace) + n * 1e-10:
        return (f"the relationship matrix over its {n:,} samples is not positive semi-definite (eigenvalues summing "
                f"to {-negative:.3g} below 0): expected K = Z'Z / M of standardised genotypes")
    weighted = covariates.T @ (eigenvalues[:, None] * covariates)
    left = float(eigenvalues.sum() - np.trace(np.linalg.pinv(covariates.T @ covariates) @ weighted))
    if left <= _NO_VARIANCE * n:
        return (f"the relationship matrix over its {n:,} samples has no variance left after the covariates (trace "
                f"{max(left, 0.0):.3g} once they are projected out): expected genotypes that vary among these samples "
                "beyond the covariates")
    return None


def _residual(rotated: _Rotated, lam: float) -> float:
    """y'Py of the null model at ``lam`` (GEMMA's ve is it over n − c)."""
    m0 = rotated.moments(1.0 / (lam * rotated.eigenvalues[None] + 1.0))[0]
    k = len(m0) - 1
    return float(m0[k, k] - m0[k, :k] @ np.linalg.solve(m0[:k, :k], m0[:k, k]))


def lmm_association(genotypes: np.ndarray, model: LmmModel, *,
                    missing: scipy.sparse.csr_array | None = None) -> AssociationResult:
    """Wald tests of every variant (rows of ``genotypes``: alt dosages over the analysis samples, 0 at the
    ``missing`` calls) against every phenotype of ``model``, λ per ``model.mode``.

    Examples
    --------
    >>> rng = np.random.default_rng(2)
    >>> z = rng.normal(size=(200, 300))
    >>> y = z @ rng.normal(0, np.sqrt(0.5 / 300), 300) + rng.normal(0, np.sqrt(0.5), 200)
    >>> g = rng.integers(0, 3, size=(4, 200)).astype(float)
    >>> y += 0.5 * g[0]
    >>> result = lmm_association(g, prepare_lmm(z @ z.T / 300, y[:, None], np.ones((200, 1)), mode="exact"))
    >>> bool(result.p[0, 0] < 1e-6), result.beta.shape, int(result.n[0, 0])
    (True, (4, 1), 200)
    """
    shape = (len(genotypes), model.n_phenotypes)
    beta, se = np.full(shape, np.nan), np.full(shape, np.nan)
    n, error, alt_freq = np.zeros(shape, np.int64), np.zeros(shape, np.int8), np.full(shape, np.nan)
    c = model.n_covariates
    for pattern in model.patterns:
        dosages, means = _mean_imputed(genotypes[:, pattern.samples],
                                       None if missing is None else missing[:, pattern.samples])
        rotated = dosages @ pattern.vectors                       # variants × samples: (U'x)'
        df = len(pattern.samples) - c - 1
        failed = _untestable(dosages, means, pattern.fixed[:, :c], rotated, df)
        tested = np.flatnonzero(failed == OK)
        for j, column in enumerate(pattern.columns):
            n[:, column], error[:, column], alt_freq[:, column] = len(pattern.samples), failed, means / 2
            fixed = pattern.fixed[:, np.r_[0:c, c + j]]
            for start in range(0, len(tested), _VARIANT_CHUNK):
                rows = tested[start:start + _VARIANT_CHUNK]
                variants = _Rotated(pattern.eigenvalues, fixed, rotated[rows])
                lam = (remle_lambda(variants, df) if model.mode == "exact" else model.null.lam[column])
                beta[rows, column], se[rows, column] = _wald(variants, lam, df)
    t = beta / se
    with np.errstate(invalid="ignore"):
        log10p = np.where(error == OK, t_log10p(t, np.maximum(n - c - 1, 1)), np.nan)
    return AssociationResult(beta, se, t, p_from_log10p(log10p), log10p, n, error, alt_freq)


def _mean_imputed(dosages: np.ndarray, missing: scipy.sparse.csr_array | None) -> tuple[np.ndarray, np.ndarray]:
    """The dosages (variants × samples) with each missing call set to its variant's mean over the called samples,
    and those means."""
    dosages = np.array(dosages, dtype=np.float64)
    if missing is None or not missing.nnz:
        return dosages, dosages.mean(axis=1)
    missing = scipy.sparse.csr_array(missing)
    lost = np.diff(missing.indptr)
    means = dosages.sum(axis=1) / np.maximum(dosages.shape[1] - lost, 1)
    rows, cols = missing.nonzero()
    dosages[rows, cols] = means[rows]
    return dosages, means


def _untestable(dosages: np.ndarray, means: np.ndarray, covariates: np.ndarray, rotated: np.ndarray,
                df: int) -> np.ndarray:
    """Per variant, OK or why its test cannot run: too few samples, no variance, or an r² with the (rotated)
    covariates of at least GEMMA's 0.9999."""
    spread = np.einsum("vn,vn->v", dosages - means[:, None], dosages - means[:, None])
    basis, _ = np.linalg.qr(covariates)
    left = np.einsum("vn,vn->v", rotated, rotated) - np.sum((rotated @ basis) ** 2, axis=1)
    error = np.full(len(dosages), OK, np.int8)
    error[spread <= _MONOMORPHIC * np.maximum(np.einsum("vn,vn->v", dosages, dosages), 1e-300)] = MONOMORPHIC
    error[(error == OK) & (left <= (1 - _COLLINEAR_R2) * spread)] = COLLINEAR
    if df < 1:
        error[:] = TOO_FEW_SAMPLES
    return error
