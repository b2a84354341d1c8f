"""The logistic kernel against statsmodels Logit (full precision) and plink2 --glm (with Firth)."""

import numpy as np
import pytest
import scipy.sparse
import statsmodels.api as sm
from plink2_glm import run_glm
from scipy import special

from stats.association import MONOMORPHIC, SEPARATION
from stats.logistic import logistic_association


def simulate(rng, *, n=600, variants=25, phenotypes=2, missing_phenotypes=0.05, missing_calls=0.03):
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, (variants, 1)), (variants, n)).astype(float)
    dosages[rng.random(dosages.shape) < missing_calls] = np.nan
    eta = -0.5 + covariates[:, 1:] @ [0.4, -0.3]
    y = np.column_stack([rng.random(n) < special.expit(eta + 0.5 * np.nan_to_num(dosages[j])) for j in range(phenotypes)])
    y = y.astype(float)
    y[rng.random(y.shape) < missing_phenotypes] = np.nan
    return dosages, y, covariates


def kernel_inputs(dosages):
    missing = np.isnan(dosages)
    return np.nan_to_num(dosages), scipy.sparse.csr_array(missing)


def test_logistic_association__matches_statsmodels_logit():
    dosages, y, covariates = simulate(np.random.default_rng(1))
    genotypes, missing = kernel_inputs(dosages)
    result = logistic_association(genotypes, y, covariates, missing=missing, firth="never")
    for v in range(len(dosages)):
        for j in range(y.shape[1]):
            used = ~np.isnan(dosages[v]) & ~np.isnan(y[:, j])
            fit = sm.Logit(y[used, j], np.column_stack([covariates[used], dosages[v, used]])).fit(
                disp=0, method="newton", tol=1e-14, maxiter=100)
            assert result.n[v, j] == used.sum() and result.error[v, j] == 0
            for ours, theirs in [(result.beta, fit.params[-1]), (result.se, fit.bse[-1]),
                                 (result.statistic, fit.tvalues[-1]), (result.p, fit.pvalues[-1])]:
                np.testing.assert_allclose(ours[v, j], theirs, rtol=1e-8)


def test_logistic_association__many_phenotypes_at_once_equal_one_at_a_time():
    dosages, y, covariates = simulate(np.random.default_rng(2), phenotypes=3)
    genotypes, missing = kernel_inputs(dosages)
    together = logistic_association(genotypes, y, covariates, missing=missing)
    for j in range(3):
        alone = logistic_association(genotypes, y[:, [j]], covariates, missing=missing)
        np.testing.assert_allclose(alone.statistic[:, 0], together.statistic[:, j], rtol=1e-12)


@pytest.mark.parametrize("mode, modifiers", [("fallback", ()), ("always", ("firth",))])
def test_logistic_association__matches_plink2_glm_with_firth(tmp_path, mode, modifiers):
    rng = np.random.default_rng(3)
    dosages, y, covariates = simulate(rng, phenotypes=1)
    cases = y[:, 0] == 1
    dosages[0] = np.where(cases & (rng.random(len(cases)) < 0.05), 1.0, 0.0)   # alt only in cases
    dosages[1] = np.where(~cases & (rng.random(len(cases)) < 0.03), 1.0, 0.0)  # alt only in controls
    genotypes, missing = kernel_inputs(dosages)
    ours = logistic_association(genotypes, y, covariates, missing=missing, firth=mode)
    (theirs,) = run_glm(tmp_path, dosages=dosages, phenotypes=y, covariates=covariates[:, 1:], binary=True,
                        glm_modifiers=modifiers)
    np.testing.assert_array_equal(ours.n[:, 0], theirs["n"])
    np.testing.assert_array_equal(ours.firth[:, 0], theirs["firth"])
    assert ours.firth[:2, 0].all() and (mode == "always" or not ours.firth[2:, 0].any())
    # plink2 2.00a3.5 fits logistic models in single precision and stops at sum |Δβ| < 1e-4, so
    # its printed digits are not all exact: ours agree with them to printed precision for most
    # variants and within 1e-3 for all; where they differ by more, statsmodels' exact fit sides
    # with ours to 1e-8 (checked on the plain-logistic rows).
    for column, key in [("beta", "beta"), ("se", "se"), ("statistic", "statistic")]:
        mine, printed = getattr(ours, column)[:, 0], theirs[key]
        relative = np.abs(mine - printed) / np.abs(printed)
        assert np.median(relative) < 1e-5 and relative.max() < 1e-3, (column, relative.max())
        for v in np.flatnonzero((relative > 1e-5) & ~ours.firth[:, 0]):
            used = ~np.isnan(dosages[v]) & ~np.isnan(y[:, 0])
            fit = sm.Logit(y[used, 0], np.column_stack([covariates[used], dosages[v, used]])).fit(
                disp=0, method="newton", tol=1e-14, maxiter=100)
            exact = {"beta": fit.params, "se": fit.bse, "statistic": fit.tvalues}[column][-1]
            np.testing.assert_allclose(mine[v], exact, rtol=1e-8)
    same_z = np.abs(ours.statistic[:, 0] / theirs["statistic"] - 1) < 1e-5
    np.testing.assert_allclose(ours.p[same_z, 0], theirs["p"][same_z], rtol=1e-4)


def test_logistic_association__says_why_a_test_could_not_run():
    rng = np.random.default_rng(4)
    dosages, y, covariates = simulate(rng, phenotypes=1, missing_calls=0.0, missing_phenotypes=0.0)
    dosages[0] = 1.0                                              # monomorphic
    dosages[1] = np.where(y[:, 0] == 1, 1.0, 0.0)                 # perfectly separated
    genotypes, _ = kernel_inputs(dosages)
    never = logistic_association(genotypes, y, covariates, firth="never")
    assert never.error[0, 0] == MONOMORPHIC and never.error[1, 0] == SEPARATION
    assert np.isnan(never.beta[:2, 0]).all()
    fallback = logistic_association(genotypes, y, covariates)
    assert fallback.firth[1, 0] and np.isfinite(fallback.beta[1, 0]) and fallback.error[1, 0] == 0
