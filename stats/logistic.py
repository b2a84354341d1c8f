"""Logistic regression of case/control phenotypes on each variant, with Firth fallback as plink2.

Every variant needs its own fit (the weights depend on it), so Newton's method runs for a
block of variants at once: one step is a few matrix products — the covariate blocks C'WC
of every variant come from one product of the weights (variants × samples) with the rows
of C ⊗ C (samples × k(k+1)/2) — and one batched (k+1) × (k+1) inverse. Only the variants
not yet converged take the next step.

The rules are those of ``plink2 --glm`` (PLINK v2.00a3.5), worked out against the binary
(tests/test_logistic.py checks them):

* **Separation.** Where the alt allele or the ref allele is absent from all the cases or
  all the controls of a test (dosage exactly 0, or exactly 2), the logistic estimate is
  infinite. plink2 says SEPARATION with ``no-firth`` and uses Firth regression otherwise.
* **Logistic fit.** Newton's method from the covariates-only fit until Σ|Δβ| < 1e-4.
  Within plink2's 13 steps it has failed (LOGISTIC_CONVERGE_FAIL; the fallback then uses
  Firth) when a step is not finite or X'WX is singular, or, after the 4th step, when
  Σ|Δβ| > 20 and more than 10 times its smallest value so far, or, after the 7th, when
  Σ|Δβ| is within 1e-3 of 1 (the mark of a diverging fit). Where plink2 gives up after
  those 13 steps (UNFINISHED: it prints its last iterate and does not fall back to Firth)
  we go on, up to 50 steps: a fit that converges then is reported (plink2's UNFINISHED
  numbers are near it when its fit was), one that does not — its estimate is infinite,
  as under a separation the allele check misses — is NOT_CONVERGED.
* **Firth regression** is logistf's: every coefficient starts at 0; a step is the inverse
  information times Firth's score X'(y − π + h(½ − π)), h the diagonal of the hat matrix,
  shortened to at most 5 in any coefficient and halved (up to 5 times) until the penalised
  log-likelihood l(β) + ½ log|X'WX| rises. It has converged when the largest step and the
  largest score are both ≤ 1e-4. plink2 gives up after 25 steps (UNFINISHED); near
  separation the steps shrink slowly, so we allow 200 before NOT_CONVERGED. The SE is
  from the inverse information at the estimate.

plink2 starts its logistic fits at 0 (ours start at the covariates-only fit: the same
estimates in fewer steps; 13 steps from there reproduce its verdicts), computes in single
precision, stops at the tolerances above and reports the SE of the iterate before its
last step, so its printed numbers are a little off the exact estimates: about 1e-5
relative for logistic fits, up to about 1e-3 for Firth near separation, where its steps
shrink slowly. Once converged by its rule, our fits go on to full double precision.
A variant with no case or no control among its samples is TOO_FEW_SAMPLES here (plink2
calls it separated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy import special

from biolake.stats.association import (NOT_CONVERGED, OK, SEPARATION, TOO_FEW_SAMPLES, AssociationResult,
                               p_from_log10p, z_log10p)
from biolake.stats.linear import cross_products, prepare_linear

FIRTH_MODES = ("fallback", "always", "never")

_BLOCK = 1 << 20          # variants × samples per block: bounds each working array to 8 MB
_TOLERANCE = 1e-4         # plink2: the logistic fit has converged when Σ|Δβ| is below this
_HORIZON = 13             # plink2's Newton steps: its failure rules apply, then it gives up
_MAX_STEPS = 50           # we give up here
_EXACT = 1e-9             # then we go on until Σ|Δβ| is below this ...
_MAX_EXTRA_STEPS = 8      # ... or for at most this many more steps
_FIRTH_TOLERANCE = 1e-4   # plink2/logistf: largest step and largest score at convergence
_FIRTH_MAX_STEPS = 200    # we give up here (plink2 after 25)
_FIRTH_MAX_STEP = 5.0     # largest change of any coefficient in one step
_FIRTH_HALVINGS = 5       # logistf's maxhs
_FIRTH_EXACT = 1e-9       # largest step at which we stop ...
_FIRTH_MAX_EXTRA_STEPS = 100  # ... or after this many more steps (convergence is linear)
_SINGULAR = 1e-12         # smallest Cholesky pivot², relative to the largest diagonal entry
_CONVERGED, _FAILED, _UNFINISHED = range(3)  # how a fit ended


@dataclass(frozen=True)
class LogisticResult(AssociationResult):
    """:class:`AssociationResult` of logistic tests (``statistic`` is the Wald z), plus ``firth``.

    ``firth`` (variants × phenotypes, bool) is True where the test used Firth regression:
    every test with ``firth="always"``; with "fallback" those separated or whose logistic
    fit failed. Like plink2's ``FIRTH?`` column it is True whether or not the Firth fit
    then converged (``error`` says). :func:`logistic_association` always sets it.
    """

    firth: np.ndarray | None = None


@dataclass(frozen=True)
class _Phenotype:
    """One phenotype over its present samples: what every block's fits share."""

    y: np.ndarray               # samples, 0/1
    covariates: np.ndarray      # samples × k
    products: np.ndarray        # samples × k(k+1)/2: c_i c_j (i ≤ j), so w @ products is C'WC
    upper: tuple[np.ndarray, np.ndarray]  # where each column of products lies in C'WC
    groups: np.ndarray          # samples × 2: is case, is control
    signs: np.ndarray           # samples: 2y − 1
    start: np.ndarray           # covariates-only logistic fit: every logistic fit starts there

    @classmethod
    def of(cls, y: np.ndarray, covariates: np.ndarray) -> _Phenotype:
        upper = np.triu_indices(covariates.shape[1])
        products = covariates[:, upper[0]] * covariates[:, upper[1]]
        return cls(y, covariates, products, upper, np.column_stack([y, 1 - y]), 2 * y - 1,
                   _null_fit(y, covariates))


def logistic_association(genotypes: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray, *,
                         missing: scipy.sparse.csr_array | None = None,
                         firth: str = "fallback") -> LogisticResult:
    """Wald tests of every variant against every case/control phenotype, adjusted for covariates.

    Parameters
    ----------
    genotypes
        variants × samples alt-allele dosages (0..2), 0 where a call is missing.
    phenotypes
        samples × phenotypes: 0 control, 1 case, NaN missing (that sample is dropped for
        that phenotype only).
    covariates
        samples × k, intercept column first, complete and of full column rank.
    missing
        variants × samples, True at missing calls: that sample is dropped for that variant.
    firth
        "fallback" (plink2's default ``firth-fallback``), "always" (``firth``) or "never"
        (``no-firth``): when to use Firth's penalised likelihood instead of the logistic one.

    Returns
    -------
    LogisticResult
        variants × phenotypes: ``beta`` the log odds ratio per alt allele, its ``se``, Wald
        ``statistic`` z, ``p``, ``log10p``, samples used ``n``, their ``alt_freq``, the
        ``error`` code (monomorphic, too few samples — or no case or no control —,
        collinear (VIF > 50), separation (only with "never"), not converged; numbers are NaN
        where it is not 0) and ``firth``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g = rng.binomial(2, 0.3, size=(3, 500)).astype(float)           # variants × samples
    >>> g[2] = np.where(rng.random(500) < 0.02, 1.0, 0.0)
    >>> y = (rng.random(500) < special.expit(-1 + 0.8 * g[0])).astype(float)
    >>> g[2, y == 0] = 0.0                                              # alt seen only in cases
    >>> result = logistic_association(g, y[:, None], np.ones((500, 1)))
    >>> bool(result.p[0, 0] < 1e-6), result.firth[:, 0].tolist()
    (True, [False, False, True])
    """
    _check_inputs(genotypes, phenotypes, covariates, missing=missing, firth=firth)
    cross = cross_products(genotypes, prepare_linear(phenotypes, covariates), missing=missing)
    error = cross.error.copy()
    beta, se = np.full(error.shape, np.nan), np.full(error.shape, np.nan)
    used_firth = np.zeros(error.shape, bool)
    variants, samples = genotypes.shape
    block = max(1, _BLOCK // max(samples, 1))
    if missing is not None and not missing.nnz:
        missing = None
    for j in range(phenotypes.shape[1]):
        present = ~np.isnan(phenotypes[:, j])
        phenotype = _Phenotype.of(phenotypes[present, j], covariates[present])
        for start in range(0, variants, block):
            rows = slice(start, start + block)
            g = np.asarray(genotypes[rows] if present.all() else genotypes[rows][:, present], dtype=np.float64)
            called = None if missing is None else ~missing[rows].toarray().astype(bool)[:, present]
            beta[rows, j], se[rows, j], error[rows, j], used_firth[rows, j] = _test_block(
                g, None if called is None or called.all() else called, phenotype, error[rows, j], firth=firth)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = beta / se
        alt_freq = np.where(cross.n > 0, cross.sums / (2.0 * cross.n), np.nan)
    log10p = np.where(error == OK, z_log10p(z), np.nan)
    return LogisticResult(beta, se, z, p_from_log10p(log10p), log10p, cross.n, error, alt_freq, used_firth)


def _check_inputs(genotypes: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray, *,
                  missing: scipy.sparse.csr_array | None, firth: str) -> None:
    """Refuse inputs the kernel would read wrongly, naming the argument at fault."""
    if firth not in FIRTH_MODES:
        raise ValueError(f"firth must be one of {', '.join(FIRTH_MODES)}, got {firth!r}")
    if genotypes.ndim != 2 or phenotypes.ndim != 2 or covariates.ndim != 2:
        raise ValueError("genotypes, phenotypes and covariates must all be 2-D")
    samples = genotypes.shape[1]
    if phenotypes.shape[0] != samples or covariates.shape[0] != samples:
        raise ValueError(f"genotypes have {samples} samples but phenotypes have {phenotypes.shape[0]} "
                         f"and covariates {covariates.shape[0]}")
    if missing is not None and missing.shape != genotypes.shape:
        raise ValueError(f"missing is {missing.shape}, genotypes are {genotypes.shape}")
    if genotypes.size and not (genotypes.min() >= 0 and genotypes.max() <= 2):
        raise ValueError("genotypes must be alt-allele dosages between 0 and 2 (0 at missing calls)")
    coded = np.isnan(phenotypes) | (phenotypes == 0) | (phenotypes == 1)
    if not coded.all():
        column = int(np.flatnonzero(~coded.all(axis=0))[0])
        raise ValueError(f"phenotype column {column} has values other than 0, 1 and NaN")


def _test_block(g: np.ndarray, called: np.ndarray | None, phenotype: _Phenotype, error: np.ndarray, *,
                firth: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One phenotype's tests of a block of variants (g: variants × its samples, 0 at missing calls).

    ``error`` holds the checks already made (monomorphic, collinear, too few samples).
    Returns beta, se, error and whether Firth regression was used.
    """
    error = error.copy()
    if called is None:  # used cases and controls; alt and ref dosage sums over each
        used = np.broadcast_to(phenotype.groups.sum(axis=0), (len(g), 2))
        ref = 2.0 - g
    else:
        used = called.astype(np.float64) @ phenotype.groups
        ref = np.where(called, 2.0 - g, 0.0)
    error[(error == OK) & (used == 0).any(axis=1)] = TOO_FEW_SAMPLES
    separated = ((g @ phenotype.groups) == 0).any(axis=1) | ((ref @ phenotype.groups) == 0).any(axis=1)

    beta, se = np.full(len(g), np.nan), np.full(len(g), np.nan)
    ok = error == OK
    logistic = ok & ~separated if firth != "always" else np.zeros(len(g), bool)
    failed = np.zeros(len(g), bool)
    if logistic.any():
        fit_beta, fit_se, status = _logistic(g[logistic], _rows(called, logistic), phenotype)
        beta[logistic], se[logistic] = fit_beta, fit_se
        failed[logistic] = status == _FAILED
        error[np.flatnonzero(logistic)[status == _UNFINISHED]] = NOT_CONVERGED
    if firth == "never":
        error[ok & separated] = SEPARATION
        error[failed] = NOT_CONVERGED
    use_firth = {"always": ok, "fallback": ok & (separated | failed), "never": np.zeros(len(g), bool)}[firth]
    if use_firth.any():
        fit_beta, fit_se, status = _firth(g[use_firth], _rows(called, use_firth), phenotype)
        beta[use_firth], se[use_firth] = fit_beta, fit_se
        error[np.flatnonzero(use_firth)[status != _CONVERGED]] = NOT_CONVERGED
    failed_test = error != OK
    beta[failed_test], se[failed_test] = np.nan, np.nan
    return beta, se, error, use_firth


def _rows(called: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    """Those rows of the called-sample mask (None, all called, stays None)."""
    return None if called is None else called[rows]


def _null_fit(y: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Covariates-only logistic fit (zeros when it does not converge, e.g. no case or control)."""
    beta = np.zeros(covariates.shape[1])
    for _ in range(_MAX_STEPS):
        p = special.expit(covariates @ beta)
        information = covariates.T @ (covariates * (p * (1 - p))[:, None])
        try:
            step = np.linalg.solve(information, covariates.T @ (y - p))
        except np.linalg.LinAlgError:
            break
        beta = beta + step
        if np.abs(step).sum() < _EXACT:
            return beta
    return np.zeros(covariates.shape[1])


def _logistic(g: np.ndarray, called: np.ndarray | None,
              phenotype: _Phenotype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Logistic fit of y ~ covariates + g for each row of ``g``: beta, se and how it ended.

    Newton's method for every row at once, from the covariates-only fit, judged by plink2's
    rules (module docstring); a converged row goes on until Σ|Δβ| < ``_EXACT``. The SE is
    from the information at the start of that last, negligible step. A row that fails
    within plink2's horizon ends ``_FAILED`` (Firth's turn), one that never converges
    ``_UNFINISHED``.
    """
    variants, k = g.shape[0], phenotype.covariates.shape[1]
    coefficients = np.tile(np.append(phenotype.start, 0.0), (variants, 1))   # variants × (k+1)
    beta, se = np.full(variants, np.nan), np.full(variants, np.nan)
    status = np.full(variants, _UNFINISHED, np.int8)
    smallest = np.full(variants, np.inf)      # smallest Σ|Δβ| so far
    settled = np.full(variants, -1)           # the step at which plink2's rule said converged
    active = np.arange(variants)
    work = np.empty((3, variants, len(phenotype.y)))      # reused buffers: variants × samples
    for step_index in range(_MAX_STEPS + _MAX_EXTRA_STEPS):
        count, x = active.size, coefficients[active]
        gs = g if count == variants else g[active]
        t, w, product = work[:, :count]                        # π = (1 + t) / 2 with t = tanh(η / 2):
        np.matmul(0.5 * x[:, :k], phenotype.covariates.T, out=t)
        np.multiply(gs, 0.5 * x[:, k:], out=product)
        t += product
        np.tanh(t, out=t)
        np.multiply(t, t, out=w)
        np.subtract(1.0, w, out=w)                             # 4W = 1 − t²
        residual = np.subtract(phenotype.signs, t, out=t)      # 2(y − π) = (2y − 1) − t
        if called is not None:
            counted = called if count == variants else called[active]
            w *= counted
            residual *= counted
        inverse, _ = _inverse(0.25 * _information(w, gs, phenotype, out=product))
        score = 0.5 * np.column_stack([residual @ phenotype.covariates, np.einsum("vi,vi->v", residual, gs)])
        step = np.einsum("vij,vj->vi", inverse, score)
        delta = np.abs(step).sum(axis=1)      # NaN where X'WX is singular
        smallest[active] = np.fmin(smallest[active], delta)
        still = settled[active] < 0
        failed = (step_index < _HORIZON) & (~np.isfinite(delta) | (still & (step_index > 3) & (
            ((delta > 20) & (delta > 10 * smallest[active])) | ((step_index > 6) & (np.abs(1 - delta) < 1e-3)))))
        coefficients[active] = x + step
        beta[active], se[active] = coefficients[active, k], np.sqrt(inverse[:, k, k])
        settled[active[still & ~failed & (delta < _TOLERANCE)]] = step_index
        finished = settled[active] >= 0
        done = ~failed & finished & ((delta < _EXACT) | (step_index - settled[active] >= _MAX_EXTRA_STEPS))
        status[active[failed]] = _FAILED
        status[active[done]] = _CONVERGED
        active = active[~failed & ~done & np.isfinite(delta) & (finished | (step_index + 1 < _MAX_STEPS))]
        if not active.size:
            break
    status[active[settled[active] >= 0]] = _CONVERGED
    return beta, se, status


def _firth(g: np.ndarray, called: np.ndarray | None,
           phenotype: _Phenotype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth-penalised fit of y ~ covariates + g for each row of ``g``: beta, se, how it ended.

    logistf's iteration for every row at once (module docstring), from all coefficients 0;
    once converged by its rule, a row goes on until its largest step (before halving) is
    below ``_FIRTH_EXACT``. Steps are halved until the penalised log-likelihood rises, which
    also damps the iteration's oscillations (it is not Newton's method on that likelihood);
    where rounding hides any change of it, a step is taken if the next one is less than
    half as long.
    """
    variants, k = g.shape[0], phenotype.covariates.shape[1]
    coefficients = np.zeros((variants, k + 1))
    likelihood, score, inverse = _penalised(coefficients, g, called, phenotype)
    status = np.full(variants, _UNFINISHED, np.int8)
    settled = np.full(variants, -1)
    active = np.arange(variants)
    for step_index in range(_FIRTH_MAX_STEPS + _FIRTH_MAX_EXTRA_STEPS):
        step = np.einsum("vij,vj->vi", inverse[active], score[active])
        largest = np.abs(step).max(axis=1)
        step *= np.minimum(1.0, _FIRTH_MAX_STEP / np.fmax(largest, 1e-300))[:, None]
        largest = np.minimum(largest, _FIRTH_MAX_STEP)
        proposed = coefficients[active] + step
        old = likelihood[active]
        state = _penalised(proposed, g[active], _rows(called, active), phenotype)
        for halving in range(1, _FIRTH_HALVINGS + 1):
            # better: the penalised likelihood rose or, within its rounding, the steps shrink
            flat = np.abs(state[0] - old) <= 1e-12 * np.abs(old)
            shrinking = np.abs(np.einsum("vij,vj->vi", state[2], state[1])).max(axis=1) < 0.5 * largest
            worse = ~((state[0] > old) | (flat & shrinking))     # NaN counts as worse
            if not worse.any():
                break
            proposed[worse] -= step[worse] * 0.5 ** halving
            rows = np.flatnonzero(worse)
            again = _penalised(proposed[rows], g[active[rows]], _rows(called, active[rows]), phenotype)
            for part, value in zip(state, again):
                part[rows] = value
        coefficients[active] = proposed
        likelihood[active], score[active], inverse[active] = state
        failed = ~np.isfinite(largest) | ~np.isfinite(state[0])
        still = settled[active] < 0
        settled[active[still & ~failed & (largest <= _FIRTH_TOLERANCE)
                       & (np.abs(state[1]).max(axis=1) <= _FIRTH_TOLERANCE)]] = step_index
        finished = settled[active] >= 0
        done = ~failed & finished & ((largest < _FIRTH_EXACT) | (step_index - settled[active] >= _FIRTH_MAX_EXTRA_STEPS))
        status[active[failed]] = _FAILED
        status[active[done]] = _CONVERGED
        active = active[~failed & ~done & (finished | (step_index + 1 < _FIRTH_MAX_STEPS))]
        if not active.size:
            break
    status[active[settled[active] >= 0]] = _CONVERGED
    return coefficients[:, k], np.sqrt(inverse[:, k, k]), status


def _penalised(coefficients: np.ndarray, g: np.ndarray, called: np.ndarray | None,
               phenotype: _Phenotype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth's penalised log-likelihood, score X'(y − π + h(½ − π)) and (X'WX)⁻¹ at each row's coefficients.

    With t = tanh(η/2): π = (1 + t)/2, W = (1 − t²)/4, y − π = (s − t)/2 and ½ − π = −t/2,
    s = 2y − 1; each sample adds log((1 + s·t)/2) to the log-likelihood.
    """
    k = phenotype.covariates.shape[1]
    t = np.matmul(0.5 * coefficients[:, :k], phenotype.covariates.T)
    t += g * (0.5 * coefficients[:, k:])
    np.tanh(t, out=t)
    w = 1.0 - t * t                                                  # 4W
    with np.errstate(divide="ignore"):                               # −inf where π rounds to 0 or 1
        terms = np.log1p(phenotype.signs * t)
    if called is not None:
        w, terms = w * called, np.where(called, terms, 0.0)
    inverse, log_determinant = _inverse(0.25 * _information(w, g, phenotype))
    residual = phenotype.signs - t                                   # 2(y − π) ...
    residual -= 0.25 * w * _quadratic_forms(inverse, g, phenotype) * t   # ... + 2h(½ − π)
    if called is not None:
        residual *= called
    score = 0.5 * np.column_stack([residual @ phenotype.covariates, np.einsum("vi,vi->v", residual, g)])
    used = len(phenotype.y) if called is None else called.sum(axis=1)
    return terms.sum(axis=1) - used * np.log(2.0) + 0.5 * log_determinant, score, inverse


def _information(w: np.ndarray, g: np.ndarray, phenotype: _Phenotype, *, out: np.ndarray | None = None) -> np.ndarray:
    """X'WX of every variant, X = [covariates, g]: variants × (k+1) × (k+1), from three products.

    ``out`` (variants × samples) is scratch space for W·g.
    """
    variants, k = g.shape[0], phenotype.covariates.shape[1]
    information = np.empty((variants, k + 1, k + 1))
    packed = w @ phenotype.products
    information[:, phenotype.upper[0], phenotype.upper[1]] = packed
    information[:, phenotype.upper[1], phenotype.upper[0]] = packed
    wg = np.multiply(w, g, out=out)
    information[:, :k, k] = information[:, k, :k] = wg @ phenotype.covariates
    information[:, k, k] = np.einsum("vi,vi->v", wg, g)
    return information


def _inverse(information: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched inverse and log-determinant of positive-definite matrices (NaN and -inf where singular)."""
    inverse = np.full_like(information, np.nan)
    log_determinant = np.full(len(information), -np.inf)
    candidates = np.flatnonzero(np.isfinite(information).all(axis=(1, 2)))
    try:
        factor = np.linalg.cholesky(information[candidates])
    except np.linalg.LinAlgError:  # some are not positive definite: factor them one by one
        factor = np.zeros_like(information[candidates])
        for index, matrix in enumerate(information[candidates]):
            try:
                factor[index] = np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                pass
    pivots = np.diagonal(factor, axis1=1, axis2=2)
    scale = np.diagonal(information[candidates], axis1=1, axis2=2).max(axis=1, initial=0.0)
    regular = (pivots ** 2).min(axis=1, initial=np.inf) > _SINGULAR * scale
    if regular.any():
        inverse[candidates[regular]] = np.linalg.inv(information[candidates[regular]])
        log_determinant[candidates[regular]] = 2.0 * np.log(pivots[regular]).sum(axis=1)
    return inverse, log_determinant


def _quadratic_forms(inverse: np.ndarray, g: np.ndarray, phenotype: _Phenotype) -> np.ndarray:
    """x_i'(X'WX)⁻¹x_i for every variant and sample, x_i = (c_i, g_i): variants × samples."""
    k = phenotype.covariates.shape[1]
    upper = phenotype.upper
    packed = inverse[:, upper[0], upper[1]] * np.where(upper[0] == upper[1], 1.0, 2.0)
    return (packed @ phenotype.products.T + 2 * g * (inverse[:, :k, k] @ phenotype.covariates.T)
            + g * g * inverse[:, k, k][:, None])
