"""The residualise-once kernel against statsmodels OLS at full precision."""

import numpy as np
import pytest
import statsmodels.api as sm

from stats.linear import Residualizer, linear_association


@pytest.fixture
def data():
    rng = np.random.default_rng(42)
    n = 400
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n), rng.normal(size=n)])
    genotypes = rng.binomial(2, rng.uniform(0.05, 0.5, size=(30, 1)), size=(30, n)).astype(float)
    phenotypes = covariates @ rng.normal(size=(4, 3)) + rng.normal(size=(n, 3))
    phenotypes[:, 0] += 1.0 * genotypes[3]
    return genotypes, phenotypes, covariates


def test_linear_association__matches_statsmodels_ols(data):
    genotypes, phenotypes, covariates = data
    result = linear_association(genotypes, phenotypes, Residualizer.from_covariates(covariates))
    for v in range(genotypes.shape[0]):
        for p in range(phenotypes.shape[1]):
            fit = sm.OLS(phenotypes[:, p], np.column_stack([covariates, genotypes[v]])).fit()
            np.testing.assert_allclose(result.beta[v, p], fit.params[-1], rtol=1e-8)
            np.testing.assert_allclose(result.se[v, p], fit.bse[-1], rtol=1e-8)
            np.testing.assert_allclose(result.t[v, p], fit.tvalues[-1], rtol=1e-8)
            np.testing.assert_allclose(result.p[v, p], fit.pvalues[-1], rtol=1e-8)
    assert result.dof == genotypes.shape[1] - covariates.shape[1] - 1


def test_linear_association__many_phenotypes_at_once_equal_one_at_a_time(data):
    genotypes, phenotypes, covariates = data
    residualizer = Residualizer.from_covariates(covariates)
    together = linear_association(genotypes, phenotypes, residualizer)
    for p in range(phenotypes.shape[1]):
        alone = linear_association(genotypes, phenotypes[:, [p]], residualizer)
        np.testing.assert_allclose(alone.t[:, 0], together.t[:, p], rtol=1e-12)


def test_linear_association__log10p_stays_exact_below_double_precision():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, size=(1, 5000)).astype(float)
    y = (3.0 * g[0] + 0.1 * rng.normal(size=5000))[:, None]
    result = linear_association(g, y, Residualizer.from_covariates(np.ones((5000, 1))))
    assert result.p[0, 0] == 0.0 and result.log10p[0, 0] > 300


def test_linear_association__monomorphic_variant_is_nan_and_planted_effect_found(data):
    genotypes, phenotypes, covariates = data
    genotypes = np.vstack([genotypes, np.ones((1, genotypes.shape[1]))])
    result = linear_association(genotypes, phenotypes, Residualizer.from_covariates(covariates))
    assert np.isnan(result.beta[-1]).all() and np.isnan(result.p[-1]).all()
    assert result.p[3, 0] < 1e-8


@pytest.mark.parametrize("covariates, message", [
    (np.column_stack([np.ones(10), np.arange(10.0), 2 * np.arange(10.0)]), "collinear"),
    (np.column_stack([np.ones(10), [np.nan] + [0.0] * 9]), "missing"),
])
def test_residualizer__refuses_bad_covariates(covariates, message):
    with pytest.raises(ValueError, match=message):
        Residualizer.from_covariates(covariates)
