"""GxE: the kernel against statsmodels (robust errors) and plink2 --glm interaction; the job end to end."""

import numpy as np
import polars as pl
import pytest
import scipy.sparse
import statsmodels.api as sm
from click.testing import CliRunner
from conftest import lake_dosages
from plink2_glm import run_glm_interaction
from scipy import stats

from biolake.cli import main
from biolake.gxe import GxeSettings, run_gxe
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.stats.association import COLLINEAR, ERRORS, MONOMORPHIC, OK, TOO_FEW_SAMPLES
from biolake.stats.gxe import gxe_association, prepare_gxe
from biolake.stats.multiple import benjamini_hochberg

COVARIATES = ["age", "sex", "site", "stress", "PC1", "PC2"]


def simulate(rng, *, n=400, variants=24, phenotypes=3, missing_phenotypes=0.08, missing_calls=0.03):
    """Covariates (intercept, normal, binary, exposure), heteroskedastic phenotypes with a planted GxE."""
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n), rng.normal(0.5, 1, n)])
    genotypes = rng.binomial(2, rng.uniform(0.05, 0.95, (variants, 1)), (variants, n)).astype(float)
    scale = 1.0 + 0.5 * np.abs(covariates[:, 3])
    y = covariates @ rng.normal(size=(4, phenotypes)) + rng.normal(size=(n, phenotypes)) * scale[:, None]
    y[:, 0] += 0.4 * genotypes[1] * covariates[:, 3]
    y += 100.0
    y[rng.random(y.shape) < missing_phenotypes] = np.nan
    if phenotypes > 2:
        y[:, 2] = np.where(np.isnan(y[:, 1]), np.nan, y[:, 2])  # two phenotypes share a pattern
    lost = rng.random(genotypes.shape) < missing_calls
    lost[::4] = False
    return np.where(lost, 0.0, genotypes), scipy.sparse.csr_array(lost.astype(float)), y, covariates


@pytest.mark.parametrize("robust", ["hc0", "hc1", "hc2", "hc3"])
@pytest.mark.parametrize("keller", [False, True])
def test_gxe_association__matches_statsmodels_robust_errors(robust, keller):
    genotypes, missing, y, covariates = simulate(np.random.default_rng(11))
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[3], keller=keller, robust=robust),
                             missing=missing)
    lost, e = missing.toarray() > 0, covariates[:, 3]
    for v in range(genotypes.shape[0]):
        for p in range(y.shape[1]):
            used = ~lost[v] & ~np.isnan(y[:, p])
            g = genotypes[v]
            columns = [covariates, g, g * e] + ([covariates[:, 1:3] * e[:, None], g[:, None] * covariates[:, 1:3]]
                                                if keller else [])
            x = np.column_stack(columns)[used]
            plain = sm.OLS(y[used, p], x).fit()
            robust_fit = sm.OLS(y[used, p], x).fit(cov_type=robust.upper())
            both = np.eye(x.shape[1])[[4, 5]]
            assert result.n[v, p] == used.sum() and result.error[v, p] == OK
            np.testing.assert_allclose(
                [*result.beta[v, p], *result.se[v, p], *result.se_robust[v, p], result.joint.f[v, p],
                 result.joint.chisq_robust[v, p], result.interaction.f[v, p]],
                [*plain.params[4:6], *plain.bse[4:6], *robust_fit.bse[4:6], plain.f_test(both).fvalue,
                 robust_fit.wald_test(both, use_f=False, scalar=True).statistic, plain.tvalues[5] ** 2],
                rtol=1e-8, err_msg=f"variant {v}, phenotype {p}")
            np.testing.assert_allclose(10 ** -result.joint.log10p[v, p], plain.f_test(both).pvalue, rtol=1e-8)
            np.testing.assert_allclose(10 ** -result.interaction.log10p_robust[v, p], robust_fit.pvalues[5],
                                       rtol=1e-8)


def test_gxe_association__several_exposures_give_a_joint_interaction_test():
    genotypes, missing, y, covariates = simulate(np.random.default_rng(12), phenotypes=3)
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[2, 3]), missing=missing)
    lost = missing.toarray() > 0
    for v in range(0, genotypes.shape[0], 5):
        used = ~lost[v] & ~np.isnan(y[:, 0])
        g = genotypes[v]
        x = np.column_stack([covariates, g, g * covariates[:, 2], g * covariates[:, 3]])[used]
        fit = sm.OLS(y[used, 0], x).fit(cov_type="HC3")
        interactions = np.eye(x.shape[1])[[5, 6]]
        np.testing.assert_allclose(result.se_robust[v, 0], fit.bse[4:7], rtol=1e-8)
        np.testing.assert_allclose(result.interaction.chisq_robust[v, 0],
                                   fit.wald_test(interactions, use_f=False, scalar=True).statistic, rtol=1e-8)
        assert result.interaction.df == 2 and result.joint.df == 3


def test_gxe_association__many_phenotypes_and_any_block_split_change_nothing():
    # 12 phenotypes take the matrix-product route to the robust variances, one alone the compiled loop.
    genotypes, missing, y, covariates = simulate(np.random.default_rng(13), phenotypes=12, missing_phenotypes=0.0)
    model = prepare_gxe(y, covariates, exposures=[3])
    together = gxe_association(genotypes, model, missing=missing)
    for p in range(12):
        alone = gxe_association(genotypes, prepare_gxe(y[:, [p]], covariates, exposures=[3]), missing=missing)
        np.testing.assert_allclose(alone.se_robust[:, 0], together.se_robust[:, p], rtol=1e-10)
        np.testing.assert_allclose(alone.joint.log10p[:, 0], together.joint.log10p[:, p], rtol=1e-10)
    halves = [gxe_association(genotypes[rows], model, missing=missing[rows]) for rows in (slice(0, 7), slice(7, None))]
    np.testing.assert_allclose(np.concatenate([h.beta for h in halves]), together.beta, rtol=1e-12)


def test_gxe_association__chunks_of_the_compiled_route_change_nothing(monkeypatch):
    # variants without missing calls go through the compiled pass in chunks (Q(Q'D) one product per chunk)
    genotypes, missing, y, covariates = simulate(np.random.default_rng(17), variants=30, missing_calls=0.0)
    model = prepare_gxe(y, covariates, exposures=[3])
    whole = gxe_association(genotypes, model)
    monkeypatch.setattr("biolake.stats.gxe._CACHE_ELEMENTS", 7 * 2 * len(y))   # 7 variants × 2 terms × samples
    chunked = gxe_association(genotypes, model)
    for name in ("beta", "se", "se_robust", "dof", "n", "alt_freq", "error"):
        np.testing.assert_allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-12, err_msg=name)
    np.testing.assert_allclose(chunked.joint.log10p_robust, whole.joint.log10p_robust, rtol=1e-12)


def test_gxe_association__flags_what_cannot_be_tested():
    rng = np.random.default_rng(14)
    n = 60
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n).astype(float)])
    genotypes = rng.binomial(2, 0.4, (5, n)).astype(float)
    genotypes[0] = 1.0                                   # monomorphic
    genotypes[1] = 2.0 * covariates[:, 2]                # g×e = 2e² = 2e: collinear with the exposure
    y = rng.normal(size=(n, 2))
    y[:n - 5, 1] = np.nan                                # 5 samples for 5 parameters
    y[0, 0] = np.nan
    no_calls = np.zeros(genotypes.shape, bool)
    no_calls[4] = True                                   # every call missing
    genotypes[4] = 0.0
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[2]),
                             missing=scipy.sparse.csr_array(no_calls.astype(np.int8)))
    assert result.error[4, 0] == TOO_FEW_SAMPLES and result.n[4, 0] == 0 and np.isnan(result.alt_freq[4]).all()
    assert result.error[0, 0] == MONOMORPHIC and result.error[1, 0] == COLLINEAR
    assert result.error[2, 1] == TOO_FEW_SAMPLES and result.error[3, 0] == OK
    assert np.isnan(result.beta[:2, 0]).all() and ERRORS[result.error[1, 0]] == "collinear"



def test_gxe_association__flags_a_variant_without_alt_alleles_as_monomorphic():
    # a variant of 0 calls only has H = 0 exactly, which the compiled route (few phenotypes, no missing
    # call) scaled to correlations by dividing by √(1e-300 · 1e-300) = 0: ZeroDivisionError
    genotypes, _, y, covariates = simulate(np.random.default_rng(19), phenotypes=1, missing_calls=0.0)
    genotypes[0], genotypes[1] = 0.0, 2.0
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[3]))
    assert result.error[:2, 0].tolist() == [MONOMORPHIC] * 2 and np.isnan(result.beta[:2]).all()
    assert (result.error[2:] == OK).all()

def test_gxe_association__matches_plink2_interaction_including_common_alt_alleles(tmp_path):
    genotypes, missing, y, covariates = simulate(np.random.default_rng(15), n=500, variants=40, phenotypes=2)
    genotypes[:3] = np.random.default_rng(1).binomial(2, 0.985, (3, 500))  # alt allele nearly fixed
    lost = missing.toarray()
    lost[:3] = 0
    missing = scipy.sparse.csr_array(lost)
    dosages = np.where(missing.toarray() > 0, np.nan, genotypes)
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[3]), missing=missing)
    reference = run_glm_interaction(tmp_path, dosages=dosages, phenotypes=y, covariates=covariates[:, 1:],
                                    exposures=[2])
    for p, theirs in enumerate(reference):
        assert (theirs["error"] == None).all()  # noqa: E711  (plink2 codes VIFs on the minor allele too)
        assert (result.error[:, p] == OK).all()
        np.testing.assert_array_equal(result.n[:, p], theirs["n"])
        np.testing.assert_allclose(result.alt_freq[:, p], theirs["alt_freq"], rtol=1e-5)
        t_log10p, _ = result.log10p_terms()
        for ours, key in [(result.beta[:, p, 0], "beta_g"), (result.se[:, p, 0], "se_g"),
                          (result.beta[:, p, 1], "beta_gxe"), (result.se[:, p, 1], "se_gxe"),
                          (result.t()[:, p, 1], "t_gxe"), (10 ** -t_log10p[:, p, 1], "p_gxe"),
                          (result.joint.f[:, p], "f_joint")]:
            expected = theirs[key][:, 0] if theirs[key].ndim == 2 else theirs[key]
            np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=0, err_msg=key)
        # plink2 2.00a3.5 takes the joint F's p on (2, OBS_CT) degrees of freedom; ours (and statsmodels')
        # use the residual degrees of freedom, n - 7 here, so only that p differs, by that choice.
        np.testing.assert_allclose(stats.f.sf(result.joint.f[:, p], 2, theirs["n"]), theirs["p_joint"], rtol=1e-5)
        np.testing.assert_allclose(10 ** -result.joint.log10p[:, p],
                                   stats.f.sf(result.joint.f[:, p], 2, result.dof[:, p]), rtol=1e-10)


def test_gxe_association__keller_terms_match_plink2(tmp_path):
    genotypes, missing, y, covariates = simulate(np.random.default_rng(16), n=400, variants=20, phenotypes=1,
                                                 missing_phenotypes=0.0)
    result = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[3], keller=True), missing=missing)
    with_products = np.column_stack([covariates[:, 1:], covariates[:, 1:3] * covariates[:, [3]]])
    (theirs,) = run_glm_interaction(tmp_path, dosages=np.where(missing.toarray() > 0, np.nan, genotypes),
                                    phenotypes=y, covariates=with_products, exposures=[2], interacting=[0, 1, 2])
    for ours, key in [(result.beta[:, 0, 1], "beta_gxe"), (result.se[:, 0, 1], "se_gxe"),
                      (result.joint.f[:, 0], "f_joint")]:
        expected = theirs[key][:, 0] if theirs[key].ndim == 2 else theirs[key]
        np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=0, err_msg=key)


def test_run_gxe__matches_plink2_from_the_lake_and_writes_readable_results(gwas_lake, scheduler, idps, tmp_path):
    phenotypes = (f'SELECT participant_id, "{idps[0]}", CASE WHEN hash(participant_id) % 10 = 0 THEN NULL '
                  f'ELSE "{idps[1]}" END AS sparse FROM idps')
    report = run_gxe(gwas_lake, GxeSettings(name="gxe", phenotypes=phenotypes, covariates=COVARIATES,
                                            exposures=["stress"], min_maf=0.0), scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=phenotypes, covariates=COVARIATES)
    stress = chosen.covariate_names.index("stress")
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    reference = run_glm_interaction(tmp_path, dosages=lake_dosages(gwas_lake, chosen.sample_index),
                                    phenotypes=chosen.phenotypes, covariates=chosen.covariates[:, 1:],
                                    exposures=[stress - 1])
    order = pl.from_arrow(gwas_lake.read("variants", columns=["variant_id", "variant_index"]))
    results = pl.from_arrow(gwas_lake.results_dataset("gxe").to_table()).join(order, on="variant_id")
    assert report.terms == ["g", "g×stress"] and report.rows == results.height == 2 * order.height
    for name, theirs in zip(chosen.phenotype_names, reference):
        ours = results.filter(pl.col("phenotype") == name).sort("variant_index")
        ran = theirs["error"] == None  # noqa: E711
        assert ran.mean() > 0.9
        np.testing.assert_array_equal(ours["error"].is_null().to_numpy(), ran)
        np.testing.assert_array_equal(ours["n"].to_numpy(), theirs["n"])
        for column, key in [("beta_gxe", "beta_gxe"), ("se_gxe", "se_gxe"), ("p_gxe", "p_gxe"),
                            ("beta_g", "beta_g"), ("f_joint", "f_joint")]:
            expected = theirs[key][:, 0] if theirs[key].ndim == 2 else theirs[key]
            np.testing.assert_allclose(ours[column].to_numpy()[ran], expected[ran], rtol=1e-5, err_msg=column)
    run_gxe(gwas_lake, GxeSettings(name="gxe_common", phenotypes=phenotypes, covariates=COVARIATES,
                                   exposures=["stress"], adjust=True), scheduler=scheduler)
    alt_freq = np.nanmean(dosages, axis=1) / 2
    in_order = order.sort("variant_index")["variant_id"].to_numpy()
    common = set(in_order[np.minimum(alt_freq, 1 - alt_freq) >= 0.05])
    kept = pl.from_arrow(gwas_lake.results_dataset("gxe_common").to_table(columns=["variant_id"]))
    assert set(kept["variant_id"]) == common and len(common) < order.height
    adjusted = pl.from_arrow(gwas_lake.results_dataset("gxe_common").to_table())
    for _, rows in adjusted.group_by("phenotype", "exposure"):  # --adjust: q-values of the robust interaction test
        np.testing.assert_allclose(rows["fdr"].fill_null(np.nan).to_numpy(),
                                   benjamini_hochberg(rows["p_gxe_robust"].fill_null(np.nan).to_numpy()), rtol=1e-10)
    provenance = gwas_lake.results_provenance("gxe")
    assert provenance["kind"] == "gxe" and provenance["exposure_columns"] == ["stress"]
    assert provenance["settings"]["robust"] == "hc3"


def test_gxe_cli__exports_and_names_a_missing_exposure(gwas_lake, scheduler, idps, tmp_path):
    runner = CliRunner()
    out = tmp_path / "gxe.tsv.gz"
    result = runner.invoke(main, ["gxe", "--lake", gwas_lake.location.root, "--pheno", idps[0], "--covar",
                                  "age,sex,site,stress", "--exposure", "stress,sex", "--keller", "--robust", "hc1",
                                  "--chrom", "1", "--name", "cli_gxe", "--out", str(out), "--scheduler", scheduler,
                                  "--quiet"])
    assert result.exit_code == 0, result.output
    assert "per-variant terms: g, g×stress, g×sex[M], g×age, g×site" in result.output
    exported = pl.read_csv(out, separator="\t", null_values="NA")
    assert exported["exposure"].unique().sort().to_list() == ["sex[M]", "stress"]
    assert {"p_interaction_robust", "se_gxe_robust", "p_joint"} <= set(exported.columns)
    missing = runner.invoke(main, ["gxe", "--lake", gwas_lake.location.root, "--pheno", idps[0], "--covar",
                                   "age,sex", "--exposure", "stress", "--replace", "--scheduler", scheduler])
    assert missing.exit_code == 2
    assert "exposure 'stress' is not a column of the covariate query" in missing.output
    with pytest.raises(BiolakeError, match="robust 'hc9'"):
        run_gxe(gwas_lake, GxeSettings(name="x", phenotypes=[idps[0]], covariates=COVARIATES, exposures=["stress"],
                                       robust="hc9"))


def test_gxe_association__does_not_depend_on_the_exposures_units():
    genotypes, missing, y, covariates = simulate(np.random.default_rng(17), phenotypes=1, missing_phenotypes=0.0)
    raw = covariates.copy()
    raw[:, 3] = 50_000 + 20_000 * covariates[:, 3]          # an income-like exposure in raw units
    standard = gxe_association(genotypes, prepare_gxe(y, covariates, exposures=[3]), missing=missing)
    scaled = gxe_association(genotypes, prepare_gxe(y, raw, exposures=[3]), missing=missing)
    assert (scaled.error == standard.error).all()
    np.testing.assert_allclose(scaled.interaction.log10p_robust, standard.interaction.log10p_robust, rtol=1e-7)


def test_gxe_association__flags_phenotypes_it_cannot_fit_instead_of_stopping():
    rng = np.random.default_rng(18)
    n = 100
    site = rng.integers(0, 2, n).astype(float)
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), site, rng.normal(size=n)])
    y = rng.normal(size=(n, 3))
    y[:, 1] = np.nan                    # no values at all
    y[site == 1, 2] = np.nan            # one site only: its indicator is constant there
    result = gxe_association(rng.integers(0, 3, (2, n)).astype(float), prepare_gxe(y, covariates, exposures=[3]))
    assert result.error[:, 0].tolist() == [OK, OK]
    assert result.error[:, 1].tolist() == [TOO_FEW_SAMPLES] * 2 and result.error[:, 2].tolist() == [COLLINEAR] * 2


def test_gxe_cli__flags_monomorphic_variants_as_the_gwas_does(monomorphic_lake, scheduler, tmp_path):
    # biolake gxe --maf 0 stopped with 'internal error, ZeroDivisionError' on a variant without alt alleles
    lake, first = monomorphic_lake
    runner, common = CliRunner(), ["--lake", lake.location.root, "--pheno", "25001-2.0", "--covar", "age,sex,stress",
                                   "--chrom", "1", "--scheduler", scheduler, "--quiet"]
    for job, flags in [("gxe", ["--exposure", "stress", "--maf", "0"]), ("gwas", [])]:
        result = runner.invoke(main, [job, *common, *flags, "--name", job, "--out", str(tmp_path / f"{job}.tsv")])
        assert result.exit_code == 0, result.output
    errors = {job: pl.read_csv(tmp_path / f"{job}.tsv", separator="\t", null_values="NA")
              .filter(pl.col("variant_id") == first)["error"].to_list() for job in ("gxe", "gwas")}
    assert errors == {"gxe": ["monomorphic"], "gwas": ["monomorphic"]}
