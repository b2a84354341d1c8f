"""The GWAS job end to end (lake → SQL → dask workers → results table) against plink2 --glm."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from click.testing import CliRunner
from conftest import lake_dosages
from limma_ref import r_p_adjust
from plink2_glm import run_glm

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect, design
from biolake.queries.output import export_results

# Three IDPs, each missing for its own ~10 % of participants (on top of the non-imaged).
PHENOTYPES = """
SELECT participant_id,
       CASE WHEN hash(participant_id) % 10 = 0 THEN NULL ELSE "{0}" END AS "{0}",
       CASE WHEN hash(participant_id || 'b') % 10 = 0 THEN NULL ELSE "{1}" END AS "{1}",
       "{2}"
FROM idps"""
COVARIATES = ["age", "sex", "site", "PC1", "PC2"]


def ours_by_phenotype(lake: Lake, name: str) -> dict[str, pl.DataFrame]:
    order = pl.from_arrow(lake.read("variants", columns=["variant_id", "variant_index"]))
    results = pl.from_arrow(lake.results_dataset(name).to_table()).join(order, on="variant_id")
    return {p: frame.sort("variant_index") for (p,), frame in results.group_by("phenotype")}


def test_run_gwas__matches_plink2_glm_with_missing_phenotypes_and_calls(gwas_lake, scheduler, idps, tmp_path):
    phenotypes = PHENOTYPES.format(*idps)
    report = run_gwas(gwas_lake, GwasSettings(name="quant", phenotypes=phenotypes, covariates=COVARIATES),
                      scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=phenotypes, covariates=COVARIATES)
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    assert np.isnan(dosages).any(axis=1).mean() > 0.3, "the release should have missing calls"
    assert len({tuple(np.isnan(c)) for c in chosen.phenotypes.T}) == 3, "three missingness patterns"
    reference = run_glm(tmp_path, dosages=dosages, phenotypes=chosen.phenotypes,
                        covariates=chosen.covariates[:, 1:])
    ours = ours_by_phenotype(gwas_lake, "quant")
    assert report.rows == 3 * len(dosages)
    for name, theirs in zip(chosen.phenotype_names, reference):
        mine = ours[name]
        np.testing.assert_array_equal(mine["n"].to_numpy(), theirs["n"])
        ran = theirs["error"] == None  # noqa: E711  (object array of None / plink2 codes)
        assert ran.mean() > 0.9
        np.testing.assert_array_equal(mine["error"].is_null().to_numpy(), ran)
        np.testing.assert_allclose(mine["alt_freq"].to_numpy(), theirs["alt_freq"], rtol=1e-5)
        for column, key in [("beta", "beta"), ("se", "se"), ("t", "statistic"), ("p", "p")]:
            np.testing.assert_allclose(mine[column].to_numpy()[ran], theirs[key][ran], rtol=1e-5, atol=0,
                                       err_msg=f"{name} {column}")


def test_run_gwas__impute_mean_matches_ols_on_mean_filled_calls(gwas_lake, scheduler, idps):
    report = run_gwas(gwas_lake, GwasSettings(name="imputed", phenotypes=[idps[2]], covariates=COVARIATES,
                                              impute_mean=True, chromosomes=["1"]), scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=[idps[2]], covariates=COVARIATES)
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    ours = ours_by_phenotype(gwas_lake, "imputed")[idps[2]]
    chrom1 = gwas_lake.read("variants", columns=["chrom", "variant_index"]).sort_by("variant_index")
    dosages = dosages[np.asarray(chrom1.column("chrom")) == "1"]
    assert report.rows == len(dosages) == ours.height
    filled = np.where(np.isnan(dosages), np.nanmean(dosages, axis=1, keepdims=True), dosages)
    y = chosen.phenotypes[:, 0]
    for v in np.flatnonzero(np.isnan(dosages).any(axis=1))[:20].tolist():
        fit = sm.OLS(y, np.column_stack([chosen.covariates, filled[v]])).fit()
        assert ours["n"][v] == len(y)
        np.testing.assert_allclose([ours["beta"][v], ours["se"][v], ours["p"][v]],
                                   [fit.params[-1], fit.bse[-1], fit.pvalues[-1]], rtol=1e-8)


def test_run_gwas__results_carry_provenance_and_export_like_plink2(gwas_lake, scheduler, idps, tmp_path):
    run_gwas(gwas_lake, GwasSettings(name="one", phenotypes=[idps[0]], covariates=COVARIATES,
                                     samples="SELECT participant_id FROM covariates WHERE age > 50"),
             scheduler=scheduler)
    provenance = gwas_lake.results_provenance("one")
    assert provenance["release"] == "r1" and provenance["phenotypes"] == [idps[0]]
    assert provenance["samples"].endswith("age > 50") and provenance["settings"]["model"] == "auto"
    assert provenance["biolake_version"] and provenance["dropped"]["not in the sample selection"] > 0
    stored = pl.from_arrow(gwas_lake.results_dataset("one").to_table())
    assert export_results(gwas_lake, "one", str(tmp_path / "one.tsv.gz"), digits=None) == stored.height
    exported = pl.read_csv(tmp_path / "one.tsv.gz", separator="\t", null_values="NA")
    assert exported.columns == ["phenotype", "variant_id", "chrom", "pos", "ref", "alt", "n", "alt_freq",
                                "beta", "se", "t", "p", "log10p", "error"]
    assert exported.height == stored.height
    assert exported.sort("variant_id")["beta"].to_list() == pytest.approx(
        stored.sort("variant_id")["beta"].to_list(), rel=1e-12, nan_ok=True)


def test_run_gwas__adjust_stores_r_bh_q_values_per_phenotype(gwas_lake, scheduler, idps, tmp_path):
    phenotypes = PHENOTYPES.format(*idps)
    for name, adjust in [("plain", False), ("adjusted", True)]:
        run_gwas(gwas_lake, GwasSettings(name=name, phenotypes=phenotypes, covariates=COVARIATES, adjust=adjust),
                 scheduler=scheduler)
    plain, adjusted = ours_by_phenotype(gwas_lake, "plain"), ours_by_phenotype(gwas_lake, "adjusted")
    assert gwas_lake.results_provenance("adjusted")["fdr"] == {"method": "BH", "within": ["phenotype"], "of": "log10p"}
    untested = 0
    for phenotype, rows in adjusted.items():
        assert rows.drop("fdr").equals(plain[phenotype]), "--adjust adds a column and changes nothing else"
        p = rows["p"].fill_null(np.nan).to_numpy()
        untested += np.isnan(p).sum()
        np.testing.assert_allclose(rows["fdr"].fill_null(np.nan).to_numpy(), r_p_adjust(tmp_path / phenotype, p),
                                   rtol=1e-10)
    assert untested, "tests that did not run have no q-value and do not count"
    table = gwas_lake.results("adjusted")
    folder = Path(gwas_lake.results_uri("adjusted"))
    on_disk = sorted(str(path.relative_to(folder)) for path in folder.rglob("*.parquet"))
    committed = table.get_add_actions(flatten=True).column("path").to_pylist()
    assert on_disk == sorted(committed), "the files written before the q-values are gone"


def test_run_gwas__bad_requests_name_what_is_wrong(gwas_lake, scheduler):
    with pytest.raises(BiolakeError, match="not 0/1"):
        run_gwas(gwas_lake, GwasSettings(name="x", phenotypes=["25001-2.0"], covariates=COVARIATES,
                                         model="logistic"), scheduler=scheduler)
    with pytest.raises(BiolakeError, match="no genotypes on chromosomes MT"):
        run_gwas(gwas_lake, GwasSettings(name="x", phenotypes=["25001-2.0"], covariates=COVARIATES,
                                         chromosomes=["MT"]), scheduler=scheduler)
    with pytest.raises(BiolakeError, match="results name"):
        run_gwas(gwas_lake, GwasSettings(name="../x", phenotypes=["25001-2.0"], covariates=COVARIATES),
                 scheduler=scheduler)


def test_gwas_cli__runs_exports_and_refuses_ambiguous_flags(gwas_lake, scheduler, idps, tmp_path):
    runner = CliRunner()
    out = tmp_path / "hits.parquet"
    result = runner.invoke(main, ["gwas", "--lake", gwas_lake.location.root, "--pheno", idps[0],
                                  "--covar", "age,sex,site", "--name", "cli", "--out", str(out),
                                  "--scheduler", scheduler, "--quiet"])
    assert result.exit_code == 0, result.output
    assert pl.read_parquet(out).height == gwas_lake.read("variants").num_rows
    both = runner.invoke(main, ["gwas", "--lake", gwas_lake.location.root, "--pheno", idps[0],
                                "--pheno-sql", "SELECT 1", "--covar", "age"])
    assert both.exit_code == 2 and "exactly one of --pheno-sql and --pheno" in both.output
    unknown = runner.invoke(main, ["gwas", "--lake", gwas_lake.location.root, "--pheno", "nope",
                                   "--covar", "age", "--scheduler", scheduler])
    assert unknown.exit_code == 2
    assert unknown.output.strip().startswith("error: phenotype column 'nope' is not in table idps; it has: ")


def test_gwas_cli__sigkill_mid_run_leaves_the_previous_results(gwas_lake, scheduler, idps):
    root = gwas_lake.location.root

    def gwas(phenotype: str) -> list[str]:
        return [sys.executable, "-c", "from biolake.cli import main; main()", "gwas", "--lake", root,
                "--pheno", phenotype, "--covar", "age,sex", "--name", "crash", "--replace", "--scheduler", scheduler,
                "--quiet"]

    def stored():
        return gwas_lake.results_dataset("crash").to_table().sort_by([("phenotype", "ascending"),
                                                                      ("variant_id", "ascending")])

    subprocess.run(gwas(idps[0]), check=True, capture_output=True)
    before = stored()
    process = subprocess.Popen(gwas(idps[1]), stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "BIOLAKE_FAULT_HOLD": "during:gwas"})
    try:
        assert any(line.startswith("holding at during:gwas") for line in process.stderr), process.wait()
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.stderr.close()
    written = list(Path(root, "results", "crash").rglob("*.parquet"))
    assert len(written) > len(gwas_lake.results("crash").file_uris()), "the killed run wrote files"
    assert stored().equals(before) and gwas_lake.results_provenance("crash")["phenotypes"] == [idps[0]]


def test_run_gwas__reads_plink_coded_case_control_as_binary(gwas_lake, scheduler, idps):
    # 1 control, 2 case, 0 and -9 missing, as PLINK reads them: the same tests as the 0/1 coding
    high = f'"{idps[0]}" > (SELECT median("{idps[0]}") FROM idps)'
    phenotypes = (f"SELECT participant_id, CASE WHEN hash(participant_id) % 10 < 2 THEN NULL "
                  f"ELSE ({high})::INTEGER END AS zero_one, CASE hash(participant_id) % 10 WHEN 0 THEN -9 "
                  f"WHEN 1 THEN 0 ELSE 1 + ({high})::INTEGER END AS plink FROM idps")
    with pytest.warns(UserWarning, match="phenotype 'plink' holds only 1 and 2 .*--model linear"):
        run_gwas(gwas_lake, GwasSettings(name="plink_coded", phenotypes=phenotypes, covariates=COVARIATES,
                                         chromosomes=["1"]), scheduler=scheduler)
    results = ours_by_phenotype(gwas_lake, "plink_coded")
    assert gwas_lake.results_provenance("plink_coded")["logistic_phenotypes"] == ["zero_one", "plink"]
    for column in ("n", "alt_freq", "beta", "se", "z", "p"):
        np.testing.assert_array_equal(results["plink"][column].to_numpy(), results["zero_one"][column].to_numpy(),
                                      err_msg=column)


def _firth_profile(y: np.ndarray, covariates: np.ndarray, dosage: np.ndarray, beta: float) -> float:
    """Firth's penalized log-likelihood, l + ½ log det I, at the variant's ``beta``, maximised over the
    covariates' coefficients (scipy, float64): which of two estimates of beta fits better."""
    from scipy.optimize import minimize

    x = np.column_stack([covariates, dosage])

    def negative(gamma: np.ndarray) -> tuple[float, np.ndarray]:   # and its gradient, Firth's modified score
        eta = covariates @ gamma + dosage * beta
        p = 1 / (1 + np.exp(-eta))
        weights = p * (1 - p)
        information = (x * weights[:, None]).T @ x
        leverage = weights * np.einsum("ij,ij->i", x @ np.linalg.pinv(information), x)
        value = np.sum(y * eta - np.logaddexp(0, eta)) + 0.5 * np.linalg.slogdet(information)[1]
        return -value, -covariates.T @ (y - p + leverage * (0.5 - p))

    start = sm.Logit(y, covariates).fit(disp=0).params
    return -minimize(negative, start, jac=True, method="BFGS", options={"gtol": 1e-10}).fun


def test_run_gwas__binary_phenotypes_get_logistic_regression_like_plink2(gwas_lake, scheduler, idps, tmp_path):
    phenotypes = (f'SELECT participant_id, ("{idps[0]}" > (SELECT median("{idps[0]}") FROM idps))::INTEGER AS high '
                  "FROM idps")
    run_gwas(gwas_lake, GwasSettings(name="binary", phenotypes=phenotypes, covariates=COVARIATES),
             scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=phenotypes, covariates=COVARIATES)
    (theirs,) = run_glm(tmp_path, dosages=lake_dosages(gwas_lake, chosen.sample_index),
                        phenotypes=chosen.phenotypes, covariates=chosen.covariates[:, 1:], binary=True)
    ours = ours_by_phenotype(gwas_lake, "binary")["high"]
    assert "z" in ours.columns and "t" not in ours.columns
    np.testing.assert_array_equal(ours["n"].to_numpy(), theirs["n"])
    np.testing.assert_array_equal(ours["firth"].fill_null(False).to_numpy(), theirs["firth"])
    # plink2 prints numbers with UNFINISHED when its (single-precision) fit stops at 15 iterations
    ran = np.isin(theirs["error"], [None, "UNFINISHED"])
    np.testing.assert_array_equal(ours["error"].is_null().to_numpy(), ran)
    # plink2 2.00a3.5 fits logistic models in single precision and stops at sum |Δβ| < 1e-4 (Firth:
    # 25 iterations, then UNFINISHED). Where it finished, its printed digits agree with ours for
    # most variants, and Firth fits within its tolerance; every other plain fit is checked against
    # statsmodels' exact one (plink2's SE drifts by up to 20 % near collinearity with the intercept).
    dosages, y = lake_dosages(gwas_lake, chosen.sample_index), chosen.phenotypes[:, 0]
    firth, finished = ours["firth"].to_numpy(), theirs["error"] == None  # noqa: E711
    disagree = np.zeros(len(dosages), bool)
    firth_apart = np.zeros(len(dosages), bool)
    for column, key in [("beta", "beta"), ("se", "se"), ("z", "statistic")]:
        relative = np.abs(ours[column].to_numpy() / theirs[key] - 1)
        assert np.median(relative[ran]) < 1e-5, column
        firth_apart |= firth & finished & (relative > 1e-3)
        disagree |= ran & ~firth & (relative > 1e-4)
    # Where a Firth fit of plink2's is further off (carriers of a singleton or doubleton, whose penalized
    # likelihood is flat), ours is the tighter one: its β has the higher profile penalized likelihood.
    for v in np.flatnonzero(firth_apart).tolist():
        used = ~np.isnan(dosages[v])
        profile = [_firth_profile(y[used], chosen.covariates[used], dosages[v, used], beta)
                   for beta in (ours["beta"][v], theirs["beta"][v])]
        assert profile[0] >= profile[1] - 1e-9, (v, profile)
    for v in np.flatnonzero(disagree).tolist():
        used = ~np.isnan(dosages[v])
        fit = sm.Logit(y[used], np.column_stack([chosen.covariates[used], dosages[v, used]])).fit(
            disp=0, method="newton", tol=1e-14, maxiter=200)
        np.testing.assert_allclose([ours["beta"][v], ours["se"][v]], [fit.params[-1], fit.bse[-1]], rtol=1e-6)


@pytest.mark.parametrize("suffix", [".tsv.gz", ".parquet"])
def test_gwas_cli__split_by_phenotype_writes_each_phenotype_to_its_own_file(gwas_lake, scheduler, idps, tmp_path,
                                                                           suffix):
    out = tmp_path / f"split{suffix}"
    args = ["gwas", "--lake", gwas_lake.location.root, "--pheno", ",".join(idps[:2]), "--covar", "age,sex",
            "--name", "split", "--replace", "--scheduler", scheduler, "--quiet", "--digits", "full"]
    result = CliRunner().invoke(main, [*args, "--out", str(out), "--split-by-phenotype"])
    assert result.exit_code == 0, result.output
    stored = pl.from_arrow(gwas_lake.results_dataset("split").to_table())
    assert sorted(path.name for path in tmp_path.glob("split_*")) == sorted(f"split_{p}{suffix}" for p in idps[:2])
    for phenotype in idps[:2]:
        path = tmp_path / f"split_{phenotype}{suffix}"
        written = pl.read_parquet(path) if suffix == ".parquet" else pl.read_csv(path, separator="\t",
                                                                                 null_values="NA")
        expected = stored.filter(pl.col("phenotype") == phenotype)
        assert written.columns == stored.columns and written.height == expected.height
        assert written.sort("variant_id")["p"].to_list() == pytest.approx(
            expected.sort("variant_id")["p"].to_list(), rel=1e-15, nan_ok=True)
    refused = CliRunner().invoke(main, [*args, "--split-by-phenotype"])
    assert refused.exit_code == 2 and "--split-by-phenotype splits the --out file: give --out" in refused.output
