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
* **Logistic fit.** It starts from the covariates-only fit and has converged when
  Σ|Δβ| < 1e-4. It has failed (plink2's LOGISTIC_CONVERGE_FAIL; the fallback then uses
  Firth) when a step is not finite or X'WX is singular, or, after the 4th step, when
  Σ|Δβ| > 20 and more than 10 times its smallest value so far, or, after the 7th, when
  Σ|Δβ| is within 1e-3 of 1 (the mark of a diverging fit). Not converged after 13 steps is
  plink2's UNFINISHED: it prints the last iterate, we report NOT_CONVERGED; neither falls
  back to Firth.
* **Firth regression** is logistf's: every coefficient starts at 0; a step is the inverse
  information times Firth's score X'(y − π + h(½ − π)), h the diagonal of the hat matrix,
  shortened to at most 5 in any coefficient and halved (up to 5 times) until the penalised
  log-likelihood l(β) + ½ log|X'WX| rises. It has converged when the largest step and the
  largest score are both ≤ 1e-4 within 25 steps (else NOT_CONVERGED; plink2's UNFINISHED).
  The SE is from the inverse information at the estimate.

plink2 computes in single precision and stops at those tolerances, so its printed numbers
are a little off the exact estimates (about 1e-6 relative for logistic fits; for Firth,
whose steps shrink slowly near separation, up to about 1e-3). Once converged by its rule,
our fits go on to full double precision instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse
from scipy import special

from stats.association import (NOT_CONVERGED, OK, SEPARATION, TOO_FEW_SAMPLES, AssociationResult,
                               p_from_log10p, z_log10p)
from stats.linear import cross_products, prepare_linear

FIRTH_MODES = ("fallback", "always", "never")

_BLOCK = 1 << 21          # variants × samples per block: bounds each working array to 16 MB
_TOLERANCE = 1e-4         # plink2: the logistic fit has converged when Σ|Δβ| is below this ...
_MAX_STEPS = 13           # ... within this many Newton steps (UNFINISHED otherwise)
_EXACT = 1e-10            # then we go on until Σ|Δβ| is below this ...
_MAX_EXTRA_STEPS = 8      # ... or for at most this many more steps
_FIRTH_TOLERANCE = 1e-4   # plink2/logistf: largest step and largest score at convergence ...
_FIRTH_MAX_STEPS = 25     # ... within this many steps
_FIRTH_MAX_STEP = 5.0     # largest change of any coefficient in one step
_FIRTH_HALVINGS = 5
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
    start: np.ndarray           # covariates-only logistic fit: every logistic fit starts there

    @classmethod
    def of(cls, y: np.ndarray, covariates: np.ndarray) -> "_Phenotype":
        upper = np.triu_indices(covariates.shape[1])
        products = covariates[:, upper[0]] * covariates[:, upper[1]]
        return cls(y, covariates, products, upper, _null_fit(y, covariates))


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
            g = np.asarray(genotypes[rows][:, present], dtype=np.float64)
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
    y, error = phenotype.y, error.copy()
    counted = np.ones_like(g, dtype=bool) if called is None else called
    cases = counted @ y
    controls = counted.sum(axis=1) - cases
    error[(error == OK) & ((cases == 0) | (controls == 0))] = TOO_FEW_SAMPLES
    alt, ref = g != 0, counted & (g != 2)   # g is 0 at missing calls, so they never count as alt
    separated = np.minimum.reduce([alt @ y, alt @ (1 - y), ref @ y, ref @ (1 - y)]) == 0

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
    use_firth = ok if firth == "always" else (ok & (separated | failed) if firth == "fallback" else ~ok & ok)
    if use_firth.any():
        fit_beta, fit_se, status = _firth(g[use_firth], _rows(called, use_firth), phenotype)
        beta[use_firth], se[use_firth] = fit_beta, fit_se
        error[np.flatnonzero(use_firth)[status != _CONVERGED]] = NOT_CONVERGED
    failed_test = error != OK
    beta[failed_test], se[failed_test] = np.nan, np.nan
    return beta, se, error, use_firth


def _rows(called: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if called is None else called[rows]


def _null_fit(y: np.ndarray, covariates: np.ndarray) -> np.ndarray:
    """Covariates-only logistic fit (zeros when it does not converge, e.g. no case or control)."""
    beta = np.zeros(covariates.shape[1])
    for _ in range(2 * _MAX_STEPS):
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
    rules (module docstring); a converged row goes on to Σ|Δβ| < 1e-10. The SE is from the
    information at the start of the last (negligible) step.
    """
    variants, k = g.shape[0], phenotype.covariates.shape[1]
    coefficients = np.tile(np.append(phenotype.start, 0.0), (variants, 1))   # variants × (k+1)
    beta, se = np.full(variants, np.nan), np.full(variants, np.nan)
    status = np.full(variants, _UNFINISHED, np.int8)
    smallest = np.full(variants, np.inf)      # smallest Σ|Δβ| so far
    settled = np.full(variants, -1)           # the step at which plink2's rule said converged
    active = np.arange(variants)
    for step_index in range(_MAX_STEPS + _MAX_EXTRA_STEPS):
        gs, x = g[active], coefficients[active]
        p = special.expit(x[:, :k] @ phenotype.covariates.T + x[:, k:] * gs)
        w, residual = p * (1 - p), phenotype.y - p
        if called is not None:
            w *= called[active]
            residual *= called[active]
        inverse, _ = _inverse(_information(w, gs, phenotype))
        score = np.column_stack([residual @ phenotype.covariates, np.einsum("vi,vi->v", residual, gs)])
        step = np.einsum("vij,vj->vi", inverse, score)
        delta = np.abs(step).sum(axis=1)      # NaN where X'WX is singular
        smallest[active] = np.fmin(smallest[active], delta)
        still = settled[active] < 0
        failed = ~np.isfinite(delta) | (still & (step_index > 3) & (
            ((delta > 20) & (delta > 10 * smallest[active])) | ((step_index > 6) & (np.abs(1 - delta) < 1e-3))))
        coefficients[active] = x + step
        beta[active], se[active] = coefficients[active, k], np.sqrt(inverse[:, k, k])
        settled[active[still & ~failed & (delta < _TOLERANCE)]] = step_index
        finished = settled[active] >= 0
        done = ~failed & finished & ((delta < _EXACT) | (step_index - settled[active] >= _MAX_EXTRA_STEPS))
        status[active[failed]] = _FAILED
        status[active[done]] = _CONVERGED
        active = active[~failed & ~done & (finished | (step_index + 1 < _MAX_STEPS))]
        if not active.size:
            break
    status[active[settled[active] >= 0]] = _CONVERGED
    return beta, se, status


def _firth(g: np.ndarray, called: np.ndarray | None,
           phenotype: _Phenotype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Firth-penalised fit of y ~ covariates + g for each row of ``g``: beta, se, how it ended.

    logistf's iteration for every row at once (module docstring), from all coefficients 0;
    judged converged by its rule within 25 steps, a row goes on until its largest step is
    below 1e-9. Steps are halved until the penalised log-likelihood rises; within rounding
    of the optimum a step that changes it by less than 1e-12 (relative) is taken as is.
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
            worse = ~(state[0] > old - 1e-12 * np.abs(old))   # NaN counts as worse
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
    """Firth's penalised log-likelihood, score X'(y − π + h(½ − π)) and (X'WX)⁻¹ at each row's coefficients."""
    k = phenotype.covariates.shape[1]
    eta = coefficients[:, :k] @ phenotype.covariates.T + coefficients[:, k:] * g
    p = special.expit(eta)
    w = p * (1 - p)
    terms = phenotype.y * eta - np.logaddexp(0.0, eta)
    residual = phenotype.y - p
    if called is not None:
        w, terms, residual = w * called, terms * called, residual * called
    inverse, log_determinant = _inverse(_information(w, g, phenotype))
    hat = w * _quadratic_forms(inverse, g, phenotype)
    residual += hat * (0.5 - p)
    score = np.column_stack([residual @ phenotype.covariates, np.einsum("vi,vi->v", residual, g)])
    return terms.sum(axis=1) + 0.5 * log_determinant, score, inverse


def _information(w: np.ndarray, g: np.ndarray, phenotype: _Phenotype) -> np.ndarray:
    """X'WX of every variant, X = [covariates, g]: variants × (k+1) × (k+1), from three products."""
    variants, k = g.shape[0], phenotype.covariates.shape[1]
    information = np.empty((variants, k + 1, k + 1))
    packed = w @ phenotype.products
    information[:, phenotype.upper[0], phenotype.upper[1]] = packed
    information[:, phenotype.upper[1], phenotype.upper[0]] = packed
    wg = w * g
    information[:, :k, k] = information[:, k, :k] = wg @ phenotype.covariates
    information[:, k, k] = np.einsum("vi,vi->v", wg, g)
    return information


def _inverse(information: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched inverse and log-determinant of positive-definite matrices (NaN and -inf where singular)."""
    inverse = np.full_like(information, np.nan)
    log_determinant = np.full(len(information), -np.inf)
    regular = np.isfinite(information).all(axis=(1, 2))
    try:
        factor = np.linalg.cholesky(information[regular])
    except np.linalg.LinAlgError:  # some are singular: find them one by one
        factor = np.zeros_like(information[regular])
        for index, matrix in enumerate(information[regular]):
            try:
                factor[index] = np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                pass
    pivots = np.diagonal(factor, axis1=1, axis2=2) ** 2
    scale = np.diagonal(information[regular], axis1=1, axis2=2).max(axis=1, initial=0.0)
    regular[regular] = pivots.min(axis=1, initial=np.inf) > _SINGULAR * scale
    if regular.any():
        inverse[regular] = np.linalg.inv(information[regular])
        chosen = np.diagonal(np.linalg.cholesky(information[regular]), axis1=1, axis2=2)
        log_determinant[regular] = 2.0 * np.log(chosen).sum(axis=1)
    return inverse, log_determinant


def _quadratic_forms(inverse: np.ndarray, g: np.ndarray, phenotype: _Phenotype) -> np.ndarray:
    """x_i'(X'WX)⁻¹x_i for every variant and sample, x_i = (c_i, g_i): variants × samples."""
    k = phenotype.covariates.shape[1]
    upper = phenotype.upper
    packed = inverse[:, upper[0], upper[1]] * np.where(upper[0] == upper[1], 1.0, 2.0)
    return (packed @ phenotype.products.T + 2 * g * (inverse[:, :k, k] @ phenotype.covariates.T)
            + g * g * inverse[:, k, k][:, None])
