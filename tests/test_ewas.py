"""EWAS against limma (lmFit + eBayes) on the same matrices: the kernel, and the job from the lake."""


import numpy as np
import polars as pl
import pytest
import scipy.sparse
from limma_ref import r_p_adjust, run_limma

from biolake.ewas import EwasSettings, run_ewas
from biolake.lake.vectors import decode_floats
from biolake.queries import connect, design
from biolake.stats.ewas import ewas_regressions, moderate
from biolake.stats.multiple import benjamini_hochberg
from biolake.stats.linear import prepare_linear


def simulate(rng, *, cpgs=400, samples=120, missing=0.0):
    covariates = np.column_stack([np.ones(samples), rng.normal(60, 8, samples), rng.integers(0, 2, samples),
                                  rng.integers(0, 3, samples) == 1])
    exposure = rng.normal(size=samples)
    m = (rng.normal(0, 1, (cpgs, 1)) + rng.normal(0, 1, (cpgs, 1)) * 0.01 * covariates[:, 1]
         + rng.normal(size=(cpgs, samples)) * rng.uniform(0.3, 1.5, (cpgs, 1)))
    m[:20] += 0.6 * exposure
    m[rng.random(m.shape) < missing] = np.nan
    return m, exposure, covariates.astype(float)


@pytest.mark.parametrize("missing", [0.0, 0.05])
def test_ewas__matches_limma_lmfit_ebayes(tmp_path, missing):
    m, exposure, covariates = simulate(np.random.default_rng(7), missing=missing)
    design = np.column_stack([covariates[:, 0], exposure, covariates[:, 1:]])
    reference = run_limma(tmp_path, methylation=m, design=design)
    fit = ewas_regressions(np.nan_to_num(m), prepare_linear(exposure[:, None], covariates),
                           missing=scipy.sparse.csr_array(np.isnan(m)))
    moderated = moderate(fit.coefficient[:, 0], fit.sigma2[:, 0], fit.df[:, 0], fit.unscaled[:, 0])
    np.testing.assert_array_equal(fit.df[:, 0], reference["df"].to_numpy())
    np.testing.assert_allclose(moderated.prior_variance, reference["prior_variance"][0], rtol=1e-6)
    np.testing.assert_allclose(moderated.prior_df, reference["prior_df"][0], rtol=1e-6)
    for ours, theirs in [(fit.coefficient[:, 0], "beta"), (fit.t[:, 0], "t"), (fit.p[:, 0], "p"),
                         (moderated.t, "moderated_t"), (moderated.p, "moderated_p")]:
        np.testing.assert_allclose(ours, reference[theirs].to_numpy(), rtol=1e-6, err_msg=theirs)


def test_benjamini_hochberg__matches_r_p_adjust(tmp_path):
    p = np.random.default_rng(2).uniform(size=200) ** 3
    p[[5, 50]] = np.nan
    np.testing.assert_allclose(benjamini_hochberg(p), r_p_adjust(tmp_path, p), rtol=1e-12)


def test_run_ewas__matches_limma_on_the_lake_data(loaded_lake, tmp_path):
    exposure, covariates = "SELECT participant_id, stress FROM covariates", ["age", "sex", "site"]
    report = run_ewas(loaded_lake, EwasSettings(name="stress", exposures=exposure, covariates=covariates),
                      workers=1)
    with connect(loaded_lake) as con:
        chosen = design(con, phenotypes=exposure, covariates=covariates, assay="methylation")
    rows = loaded_lake.read("methylation", columns=["cpg_index", "cpg_id", "beta"]).sort_by("cpg_index")
    n = loaded_lake.read("samples", columns=["assay"]).column(0).to_pylist().count("methylation")
    betas = decode_floats(rows.column("beta"), n)[:, chosen.sample_index]
    assert np.isnan(betas).any(), "the release should have missing betas"
    design_matrix = np.column_stack([chosen.covariates[:, 0], chosen.phenotypes[:, 0], chosen.covariates[:, 1:]])
    reference = run_limma(tmp_path, methylation=np.log2(betas / (1 - betas)), design=design_matrix)
    ours = pl.from_arrow(loaded_lake.results_dataset("stress").to_table()).join(
        pl.from_arrow(rows.select(["cpg_index", "cpg_id"])), on="cpg_id").sort("cpg_index")
    for column in ("beta", "t", "p", "moderated_t", "moderated_p"):
        np.testing.assert_allclose(ours[column].to_numpy(), reference[column].to_numpy(), rtol=1e-6, err_msg=column)
    np.testing.assert_allclose(report.exposures[0].prior_df, reference["prior_df"][0], rtol=1e-6)
    np.testing.assert_allclose(ours["fdr"].to_numpy(), benjamini_hochberg(reference["moderated_p"].to_numpy()),
                               rtol=1e-6)
    assert loaded_lake.results_provenance("stress")["exposures"] == exposure


def test_ewas_cli__runs_and_exports(loaded_lake, tmp_path):
    from click.testing import CliRunner

    from biolake.cli import main

    out = tmp_path / "stress.tsv"
    result = CliRunner().invoke(main, ["ewas", "--lake", loaded_lake.location.root, "--exposure-sql",
                                       "SELECT participant_id, stress FROM covariates", "--covar", "age,sex",
                                       "--values", "beta", "--workers", "1", "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert "stress: 300 CpGs, prior df" in result.output
    exported = pl.read_csv(out, separator="\t", null_values="NA")
    assert exported.columns[:5] == ["exposure", "cpg_id", "chrom", "pos", "n"] and exported.height == 300


def test_ewas_cli__drop_counts_speak_of_exposures(loaded_lake):
    from click.testing import CliRunner

    from biolake.cli import main

    result = CliRunner().invoke(main, ["ewas", "--lake", loaded_lake.location.root, "--exposure-sql",
                                       "SELECT participant_id, stress FROM covariates", "--covar", "age,sex",
                                       "--workers", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "no exposure values: " in result.output and "phenotype" not in result.output
