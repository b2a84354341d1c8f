"""The linear kernel against statsmodels OLS at full precision, missing values included."""

import numpy as np
import pytest
import scipy.sparse
import statsmodels.api as sm

from biolake.stats.association import COLLINEAR, ERRORS, MONOMORPHIC, TOO_FEW_SAMPLES
from biolake.stats.linear import Residualizer, linear_association, prepare_linear


def simulate(rng, *, n=400, variants=30, phenotypes=4, missing_phenotypes=0.0, missing_calls=0.0):
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n),
                                  rng.normal(50, 8, n)])
    genotypes = rng.binomial(2, rng.uniform(0.05, 0.5, size=(variants, 1)), size=(variants, n)).astype(float)
    y = covariates @ rng.normal(size=(4, phenotypes)) + rng.normal(size=(n, phenotypes))
    y[:, 0] += 0.8 * genotypes[3]
    y += 1000.0  # a far-from-zero mean, like brain volumes
    y[rng.random(y.shape) < missing_phenotypes] = np.nan
    if phenotypes > 2:
        y[:, 2] = np.where(np.isnan(y[:, 1]), np.nan, y[:, 2])  # two phenotypes share a pattern
    calls_missing = rng.random(genotypes.shape) < missing_calls
    calls_missing[::3] = False  # some variants complete
    genotypes[calls_missing] = 0.0
    return genotypes, scipy.sparse.csr_array(calls_missing), y, covariates


def ols(genotype, missing, y, covariates):
    used = ~missing & ~np.isnan(y)
    return sm.OLS(y[used], np.column_stack([covariates[used], genotype[used]])).fit(), used.sum()


@pytest.mark.parametrize("missing_phenotypes, missing_calls", [(0.0, 0.0), (0.1, 0.0), (0.0, 0.05), (0.1, 0.05)])
def test_linear_association__matches_statsmodels_ols(missing_phenotypes, missing_calls):
    genotypes, missing, y, covariates = simulate(np.random.default_rng(42), missing_phenotypes=missing_phenotypes,
                                                 missing_calls=missing_calls)
    result = linear_association(genotypes, prepare_linear(y, covariates), missing=missing)
    dense_missing = missing.toarray()
    for v in range(genotypes.shape[0]):
        for p in range(y.shape[1]):
            fit, used = ols(genotypes[v], dense_missing[v], y[:, p], covariates)
            assert result.n[v, p] == used and result.error[v, p] == 0
            for ours, theirs in [(result.beta, fit.params[-1]), (result.se, fit.bse[-1]),
                                 (result.statistic, fit.tvalues[-1]), (result.p, fit.pvalues[-1])]:
                np.testing.assert_allclose(ours[v, p], theirs, rtol=1e-8)


def test_linear_association__many_phenotypes_at_once_equal_one_at_a_time():
    genotypes, missing, y, covariates = simulate(np.random.default_rng(5), missing_phenotypes=0.1,
                                                 missing_calls=0.05)
    together = linear_association(genotypes, prepare_linear(y, covariates), missing=missing)
    for p in range(y.shape[1]):
        alone = linear_association(genotypes, prepare_linear(y[:, [p]], covariates), missing=missing)
        np.testing.assert_allclose(alone.statistic[:, 0], together.statistic[:, p], rtol=1e-10)


def test_linear_association__block_split_does_not_change_results():
    genotypes, missing, y, covariates = simulate(np.random.default_rng(6), missing_phenotypes=0.1,
                                                 missing_calls=0.05)
    model = prepare_linear(y, covariates)
    whole = linear_association(genotypes, model, missing=missing)
    halves = [linear_association(genotypes[rows], model, missing=missing[rows])
              for rows in (slice(0, 11), slice(11, None))]
    np.testing.assert_allclose(np.vstack([h.statistic for h in halves]), whole.statistic, rtol=1e-12)


def test_linear_association__float32_keeps_p_within_1e_4():
    genotypes, missing, y, covariates = simulate(np.random.default_rng(8), missing_calls=0.02)
    model = prepare_linear(y, covariates)
    exact = linear_association(genotypes, model, missing=missing)
    single = linear_association(genotypes.astype(np.float32), model, missing=missing)
    np.testing.assert_allclose(single.p, exact.p, rtol=1e-4)


def test_linear_association__log10p_stays_exact_below_double_precision():
    rng = np.random.default_rng(3)
    g = rng.integers(0, 3, size=(1, 5000)).astype(float)
    y = (3.0 * g[0] + 0.1 * rng.normal(size=5000))[:, None]
    result = linear_association(g, prepare_linear(y, np.ones((5000, 1))))
    assert result.p[0, 0] == 0.0 and 300 < result.log10p[0, 0] < np.inf


def test_linear_association__says_why_a_test_could_not_run():
    rng = np.random.default_rng(4)
    n = 60
    covariates = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=(n, 2))
    y[4:, 1] = np.nan                                    # second phenotype: 4 samples, k + 1 = 3 parameters
    genotypes = np.vstack([np.ones(n),                   # monomorphic
                           2 * covariates[:, 1] + 7,     # collinear with a covariate (dosage-like)
                           rng.integers(0, 3, n)]).astype(float)
    result = linear_association(genotypes, prepare_linear(y, covariates))
    assert result.error[:, 0].tolist() == [MONOMORPHIC, COLLINEAR, 0]
    assert result.error[2, 1] in (0, TOO_FEW_SAMPLES) and result.n[2, 1] == 4
    assert np.isnan(result.beta[:2, 0]).all() and np.isnan(result.p[:2, 0]).all()
    assert ERRORS[MONOMORPHIC] == "monomorphic"


@pytest.mark.parametrize("covariates, message", [
    (np.column_stack([np.ones(10), np.arange(10.0), 2 * np.arange(10.0)]), "collinear"),
    (np.column_stack([np.ones(10), [np.nan] + [0.0] * 9]), "missing"),
])
def test_residualizer__refuses_bad_covariates(covariates, message):
    with pytest.raises(ValueError, match=message):
        Residualizer.from_covariates(covariates)
