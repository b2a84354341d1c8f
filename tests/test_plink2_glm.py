"""Self-checks of the PLINK 2 harness against statsmodels, at PLINK 2's printed precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import statsmodels.api as sm
from plink2_glm import run_glm

N_SAMPLES, N_VARIANTS = 300, 20


def _genotypes(rng: np.random.Generator, missing: float = 0.05) -> np.ndarray:
    """Alt counts (variants × samples) with a few missing calls."""
    freqs = rng.uniform(0.05, 0.5, N_VARIANTS)
    dosages = rng.binomial(2, freqs[:, None], (N_VARIANTS, N_SAMPLES)).astype(float)
    dosages[rng.random(dosages.shape) < missing] = np.nan
    return dosages


def _reference_fits(model: type, dosages: np.ndarray, y: np.ndarray, covariates: np.ndarray) -> list:
    """statsmodels fits (intercept, genotype, covariates) on each variant's complete rows."""
    fits = []
    for g in dosages:
        keep = ~np.isnan(g) & ~np.isnan(y)
        design = np.column_stack([np.ones(keep.sum()), g[keep], covariates[keep]])
        fit = model(y[keep], design)
        fits.append((keep, fit.fit(disp=0) if model is sm.Logit else fit.fit()))
    return fits


def test_run_glm__linear_matches_statsmodels_ols(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    dosages, covariates = _genotypes(rng), rng.normal(size=(N_SAMPLES, 2))
    y = 0.3 * np.nan_to_num(dosages[3]) + covariates @ [0.5, -0.2] + rng.normal(size=N_SAMPLES)
    y[rng.random(N_SAMPLES) < 0.1] = np.nan
    (got,) = run_glm(tmp_path, dosages=dosages, phenotypes=y[:, None], covariates=covariates)
    assert list(got["variant_id"]) == [f"v{i}" for i in range(N_VARIANTS)]
    assert set(got["alt"]) == {"T"} and all(e is None for e in got["error"]) and not got["firth"].any()
    for i, (keep, fit) in enumerate(_reference_fits(sm.OLS, dosages, y, covariates)):
        assert got["n"][i] == keep.sum()
        np.testing.assert_allclose(got["alt_freq"][i], dosages[i][keep].mean() / 2, rtol=1e-5)
        expected = [fit.params[1], fit.bse[1], fit.tvalues[1], fit.pvalues[1]]
        actual = [got[key][i] for key in ("beta", "se", "statistic", "p")]
        np.testing.assert_allclose(actual, expected, rtol=1e-5)


def test_run_glm__logistic_matches_statsmodels_logit(tmp_path: Path) -> None:
    rng = np.random.default_rng(12)
    dosages, covariates = _genotypes(rng), rng.normal(size=(N_SAMPLES, 2))
    eta = -0.5 + 0.4 * np.nan_to_num(dosages[2]) + covariates @ [0.6, -0.3]
    y = (rng.random(N_SAMPLES) < 1 / (1 + np.exp(-eta))).astype(float)
    dosages[0] = np.where(y == 1, dosages[0], 0)  # alt allele only in cases: Firth fallback
    (got,) = run_glm(tmp_path, dosages=dosages, phenotypes=y[:, None], covariates=covariates, binary=True)
    assert got["firth"][0] and not got["firth"][1:].any()
    for i, (keep, fit) in enumerate(_reference_fits(sm.Logit, dosages[1:], y, covariates), start=1):
        assert got["n"][i] == keep.sum() and got["error"][i] is None
        expected = [fit.params[1], fit.bse[1], fit.tvalues[1], fit.pvalues[1]]
        actual = [got[key][i] for key in ("beta", "se", "statistic", "p")]
        np.testing.assert_allclose(actual, expected, rtol=1e-4)


def test_run_glm__reports_plink2_error_codes_as_nan_rows(tmp_path: Path) -> None:
    rng = np.random.default_rng(13)
    dosages = _genotypes(rng, missing=0)[:3]
    dosages[0], dosages[1, 1:] = 0, np.nan  # monomorphic; all samples but one missing
    (got,) = run_glm(tmp_path, dosages=dosages, phenotypes=rng.normal(size=(N_SAMPLES, 1)), covariates=None)
    assert list(got["error"]) == ["CONST_OMITTED_ALLELE", "SAMPLE_CT<=PREDICTOR_CT", None]
    assert list(got["n"]) == [N_SAMPLES, 1, N_SAMPLES]
    assert np.isnan(got["beta"][:2]).all() and np.isfinite(got["beta"][2])


def test_run_glm__refuses_a_quantitative_phenotype_plink2_would_read_as_binary(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="case/control"):
        run_glm(tmp_path, dosages=np.zeros((1, 4)), phenotypes=np.array([[0.0], [1], [1], [0]]), covariates=None)
