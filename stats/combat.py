"""ComBat: site (scanner, batch) effects removed from many features at once, biological covariates kept.

Johnson, Li & Rabinovic (2007), as Fortin et al. (2017, 2018) adapted it to imaging and as neuroCombat
computes it. With Y the samples × features values, one-hot batch indicators Z and covariates X (no
intercept: the batch columns span it):

1. Least squares of Y on [Z X] gives B; the grand mean of a feature is the batch coefficients
   weighted by the batches' sizes, its pooled variance σ² the mean squared residual (over n, not n − p),
   and the standardised data s = (Y − grand mean − X B_X) / σ.
2. Per batch b and feature g: γ̂ the mean of s, δ̂ its variance (n_b − 1; a zero variance becomes 1).
3. Empirical Bayes across features, per batch: γ ~ N(γ̄, τ²) (the mean and variance of γ̂ over
   features), δ ~ InvGamma(a, b) (by moments of δ̂). *Parametric*: γ*, δ* by the fixed-point iteration
   of the posterior mean and variance, from γ̂, δ̂, until neither changes by more than 10⁻⁴ relative
   (sva's and neuroCombat's rule, so the numbers are theirs). *Non-parametric*: γ*, δ* are the means of
   the other features' γ̂, δ̂ weighted by the likelihood of this feature's data under each (computed on
   the log scale: neuroCombat's direct product underflows to 0/0 for batches of a few hundred samples).
   Without empirical Bayes, γ* = γ̂ and δ* = δ̂.
4. Harmonised Y = (s − γ*_b) / √δ*_b · σ + grand mean + X B_X.

Every feature needs a value for every sample (neuroCombat's pooled variance is NaN otherwise): the job
chooses complete participants. numpy only; no file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONVERGENCE = 1e-4   # the parametric iteration stops when no γ* or δ* changes by more than this, relatively


@dataclass(frozen=True)
class CombatFit:
    """What ComBat estimated: per feature its grand mean and pooled variance, per batch and feature γ*, δ*
    (and γ̂, δ̂ before shrinkage), per batch the priors."""

    grand_mean: np.ndarray         # features
    var_pooled: np.ndarray         # features
    covariate_effects: np.ndarray  # covariates × features (B_X)
    gamma_hat: np.ndarray          # batches × features
    delta_hat: np.ndarray          # batches × features
    gamma_star: np.ndarray         # batches × features
    delta_star: np.ndarray         # batches × features
    gamma_bar: np.ndarray          # batches
    tau2: np.ndarray               # batches
    a_prior: np.ndarray            # batches
    b_prior: np.ndarray            # batches


BATCH_ESTIMATES = ("gamma_hat", "delta_hat", "gamma_star", "delta_star", "gamma_bar", "tau2", "a_prior", "b_prior")


def combat(values: np.ndarray, batch: np.ndarray, covariates: np.ndarray | None = None, *, eb: bool = True,
           parametric: bool = True, reference: CombatFit | None = None) -> tuple[np.ndarray, CombatFit]:
    """``values`` (samples × features, complete) harmonised across the batches ``batch`` (samples; integer codes
    0 … B − 1, each batch with two samples or more), keeping the effects of ``covariates`` (samples × k, no
    intercept column); see the module docstring.

    With a ``reference`` (the fit of an earlier run, its batches coded 0 … R − 1 here), nothing of it is
    re-estimated: the values are standardised by its grand mean, pooled variance and covariate effects, and
    batches it knows are adjusted by its γ*, δ*. Batches coded R and above (sites joining later) get γ*, δ* of
    their own, estimated from their standardised data as in steps 2 and 3 (what neuroHarmonize's
    ``harmonizationLearn(orig_model=...)`` does). The returned fit is the reference with those batches appended.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> batch = np.repeat([0, 1, 2], 40)
    >>> values = rng.normal(size=(120, 5)) + np.array([0.0, 2.0, -1.0])[batch, None]   # a shift per site
    >>> harmonised, fit = combat(values, batch)
    >>> site_means = lambda data: [round(float(data[batch == b].mean()), 2) for b in range(3)]
    >>> site_means(values), site_means(harmonised)
    ([0.02, 1.91, -0.99], [0.31, 0.31, 0.32])

    A fourth site joins later, shifted by 3; it lands on the first three without refitting them:

    >>> later = rng.normal(size=(30, 5)) + 3.0
    >>> joined, extended = combat(later, np.full(30, 3), reference=fit)
    >>> round(float(joined.mean()), 2), extended.gamma_star.shape
    (0.31, (4, 5))
    """
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    covariates = np.zeros((n, 0)) if covariates is None else np.asarray(covariates, dtype=np.float64)
    if reference is None:
        grand_mean, var_pooled, covariate_effects = _location_and_scale(values, batch, covariates)
        known = 0
    else:
        grand_mean, var_pooled, covariate_effects = (reference.grand_mean, reference.var_pooled,
                                                     reference.covariate_effects)
        known = len(reference.gamma_star)
    covariate_mean = covariates @ covariate_effects   # samples × features arrays are updated in place below:
    standardised = values - covariate_mean            # at 40,000 × 4,000 each is 1.3 GB
    standardised -= grand_mean
    standardised /= np.sqrt(var_pooled)
    fresh = _batch_effects(standardised, batch, range(known, int(batch.max()) + 1), eb=eb, parametric=parametric)
    fit = CombatFit(grand_mean, var_pooled, covariate_effects, *(
        np.concatenate([getattr(reference, field), estimate]) if reference is not None else estimate
        for field, estimate in zip(BATCH_ESTIMATES, fresh)))
    harmonised = standardised    # γ* and δ* removed batch by batch, σ, the grand mean and the covariates put back
    for b in np.unique(batch):
        rows = batch == b
        harmonised[rows] = (standardised[rows] - fit.gamma_star[b]) / np.sqrt(fit.delta_star[b])
    harmonised *= np.sqrt(var_pooled)
    harmonised += grand_mean
    harmonised += covariate_mean
    return harmonised, fit


def _location_and_scale(values: np.ndarray, batch: np.ndarray,
                        covariates: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Step 1: each feature's grand mean and pooled variance, and the covariates' effects (covariates × features)."""
    n, batches = len(values), int(batch.max()) + 1
    onehot = np.zeros((n, batches))
    onehot[np.arange(n), batch] = 1.0
    design = np.column_stack([onehot, covariates])
    coefficients = np.linalg.solve(design.T @ design, design.T @ values)
    grand_mean = (onehot.sum(axis=0) / n) @ coefficients[:batches]
    residuals = values - design @ coefficients
    residuals **= 2
    return grand_mean, residuals.mean(axis=0), coefficients[batches:]


def _batch_effects(standardised: np.ndarray, batch: np.ndarray, batches: range, *, eb: bool,
                   parametric: bool) -> tuple[np.ndarray, ...]:
    """Steps 2 and 3 for each of ``batches``: γ̂, δ̂, γ*, δ* (batches × features), then the priors γ̄, τ², a, b."""
    found: dict[str, list] = {field: [] for field in BATCH_ESTIMATES}
    for b in batches:
        own = standardised[batch == b]
        gamma_hat, delta_hat = own.mean(axis=0), own.var(axis=0, ddof=1)
        delta_hat[delta_hat == 0] = 1.0
        gamma_bar, tau2 = gamma_hat.mean(), gamma_hat.var(ddof=1)
        mean, spread = delta_hat.mean(), delta_hat.var(ddof=1)
        a_prior, b_prior = (2 * spread + mean ** 2) / spread, (mean * spread + mean ** 3) / spread
        if not eb:
            gamma_star, delta_star = gamma_hat, delta_hat
        elif parametric:
            gamma_star, delta_star = _parametric(own, gamma_hat, delta_hat, gamma_bar, tau2, a_prior, b_prior)
        else:
            gamma_star, delta_star = _non_parametric(own, gamma_hat, delta_hat)
        for field, value in zip(BATCH_ESTIMATES, (gamma_hat, delta_hat, gamma_star, delta_star, gamma_bar, tau2,
                                                  a_prior, b_prior)):
            found[field].append(value)
    features = standardised.shape[1]
    return tuple(np.array(found[field], dtype=np.float64).reshape((-1, features) if k < 4 else (-1,))
                 for k, field in enumerate(BATCH_ESTIMATES))


def _parametric(own: np.ndarray, gamma_hat: np.ndarray, delta_hat: np.ndarray, gamma_bar: float, tau2: float,
                a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """One batch's γ*, δ*: the posterior mean of γ given δ, and of δ given γ, iterated from γ̂, δ̂ to a fixed point
    (stopping as sva's it.sol does)."""
    n = len(own)
    gamma_old, delta_old = gamma_hat, delta_hat
    while True:
        gamma = (tau2 * n * gamma_hat + delta_old * gamma_bar) / (tau2 * n + delta_old)
        delta = (0.5 * ((own - gamma) ** 2).sum(axis=0) + b) / (n / 2.0 + a - 1.0)
        change = max((np.abs(gamma - gamma_old) / gamma_old).max(), (np.abs(delta - delta_old) / delta_old).max())
        gamma_old, delta_old = gamma, delta
        if not change > CONVERGENCE:
            return gamma, delta


def _non_parametric(own: np.ndarray, gamma_hat: np.ndarray, delta_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One batch's γ*, δ*: for each feature, the other features' γ̂ and δ̂ weighted by the likelihood of its
    standardised data under N(γ̂_j, δ̂_j), on the log scale."""
    n = len(own)
    first, second = own.sum(axis=0), (own ** 2).sum(axis=0)
    # Σ over samples of (s_i − γ̂_j)², for feature i (rows) under feature j's location (columns)
    squares = second[:, None] - 2.0 * first[:, None] * gamma_hat[None, :] + n * gamma_hat[None, :] ** 2
    log_likelihood = -0.5 * n * np.log(2 * np.pi * delta_hat)[None, :] - squares / (2.0 * delta_hat[None, :])
    np.fill_diagonal(log_likelihood, -np.inf)   # a feature's own estimates are left out
    weights = np.exp(log_likelihood - log_likelihood.max(axis=1, keepdims=True))
    total = weights.sum(axis=1)
    return weights @ gamma_hat / total, weights @ delta_hat / total
