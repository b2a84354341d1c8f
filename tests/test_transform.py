"""--transform rint|rint-residuals and --standardize (#32 item 4): REGENIE's rank-based inverse-normal transform, checked against
R (rank with ties averaged, qnorm with Blom's 3/8, as REGENIE's rint_pheno) and, through a GWAS, against plink2
--glm of the R-transformed phenotypes."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
from conftest import lake_dosages
from limma_ref import RSCRIPT
from plink2_glm import run_glm
from test_gwas import ours_by_phenotype

from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.stats.transform import rank_inverse_normal

COVARIATES = ["age", "sex", "site", "PC1", "PC2"]
# REGENIE's --apply-rint as R says it, per column over its present values; with covariates, of the residuals
# of lm(y ~ covariates) on those values (--apply-rerint-cov's first step).
R_RINT = r"""
args <- commandArgs(trailingOnly = TRUE)
y <- as.matrix(read.table(args[1], sep = "\t", na.strings = "NA"))
rint <- function(v) { r <- rank(v, ties.method = "average", na.last = "keep"); qnorm((r - 3/8) / (sum(!is.na(v)) + 1/4)) }
if (length(args) == 3) {
  x <- as.matrix(read.table(args[3], sep = "\t"))
  for (j in seq_len(ncol(y))) { ok <- !is.na(y[, j]); y[ok, j] <- residuals(lm(y[ok, j] ~ x[ok, ] - 1)) }
}
out <- apply(y, 2, rint)
write.table(format(out, digits = 17), args[2], sep = "\t", quote = FALSE, row.names = FALSE, col.names = FALSE)
"""


def r_rint(tmp: Path, values: np.ndarray, covariates: np.ndarray | None = None) -> np.ndarray:
    """R's rank-inverse-normal transform of each column of ``values`` (NaN missing), of the residuals after
    ``covariates`` (intercept included) when given."""
    tmp.mkdir(parents=True, exist_ok=True)
    np.savetxt(tmp / "y.tsv", values, delimiter="\t", fmt="%.17g")
    args = [str(tmp / "y.tsv"), str(tmp / "out.tsv")]
    if covariates is not None:
        np.savetxt(tmp / "x.tsv", covariates, delimiter="\t", fmt="%.17g")
        args.append(str(tmp / "x.tsv"))
    (tmp / "rint.R").write_text(R_RINT)
    done = subprocess.run([RSCRIPT, str(tmp / "rint.R"), *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return np.genfromtxt(tmp / "out.tsv", delimiter="\t", missing_values="NA", filling_values=np.nan).reshape(
        values.shape)


def test_rank_inverse_normal__equals_r_with_ties_averaged(tmp_path):
    rng = np.random.default_rng(3)
    values = np.column_stack([rng.normal(size=200), rng.integers(0, 12, 200).astype(float), rng.gamma(1, size=200)])
    values[rng.random(values.shape) < 0.1] = np.nan
    assert len(np.unique(values[:, 1][~np.isnan(values[:, 1])])) < 13, "ties"
    np.testing.assert_allclose(rank_inverse_normal(values), r_rint(tmp_path, values), rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("transform", ["rint", "rint-residuals"])
def test_run_gwas__transform_equals_plink2_glm_of_r_transformed_phenotypes(gwas_lake, scheduler, idps, tmp_path,
                                                                           transform):
    phenotypes = (f'SELECT participant_id, "{idps[0]}", '
                  f'CASE WHEN hash(participant_id) % 7 = 0 THEN NULL ELSE "{idps[1]}" END AS "{idps[1]}" FROM idps')
    run_gwas(gwas_lake, GwasSettings(name=f"t_{transform}", phenotypes=phenotypes, covariates=COVARIATES,
                                     transform=transform), scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=phenotypes, covariates=COVARIATES)
    transformed = r_rint(tmp_path / "r", chosen.phenotypes,
                         chosen.covariates if transform == "rint-residuals" else None)
    reference = run_glm(tmp_path / "plink2", dosages=lake_dosages(gwas_lake, chosen.sample_index),
                        phenotypes=transformed, covariates=chosen.covariates[:, 1:])
    ours = ours_by_phenotype(gwas_lake, f"t_{transform}")
    for name, theirs in zip(chosen.phenotype_names, reference):
        mine, ran = ours[name], theirs["error"] == None  # noqa: E711  (plink2's error codes, None where it ran)
        np.testing.assert_array_equal(mine["n"].to_numpy(), theirs["n"])
        assert ran.mean() > 0.9
        for column, key in [("beta", "beta"), ("se", "se"), ("p", "p")]:
            np.testing.assert_allclose(mine[column].to_numpy()[ran], theirs[key][ran], rtol=1e-5,
                                       err_msg=f"{transform} {name} {column}")
    assert gwas_lake.results_provenance(f"t_{transform}")["settings"]["transform"] == transform


def test_run_gwas__transform_refuses_a_binary_phenotype(gwas_lake, scheduler):
    binary = "SELECT participant_id, CASE WHEN age > 55 THEN 1 ELSE 0 END AS old FROM covariates"
    with pytest.raises(BiolakeError, match=r"--transform rint ranks quantitative phenotypes; 'old' takes 2 value"):
        run_gwas(gwas_lake, GwasSettings(name="t_binary", phenotypes=binary, covariates=["sex"], transform="rint"),
                 scheduler=scheduler)
    plink_coded = ("SELECT participant_id, CASE hash(participant_id) % 3 WHEN 0 THEN 2 WHEN 1 THEN 1 ELSE -9 END AS old "
                   "FROM covariates")
    with pytest.raises(BiolakeError, match=r"'old' takes 3 value\(s\), PLINK case/control coding"):
        run_gwas(gwas_lake, GwasSettings(name="t_binary", phenotypes=plink_coded, covariates=["sex"],
                                         transform="rint"), scheduler=scheduler)


def test_run_gwas__standardize_equals_plink2_covar_variance_standardize(gwas_lake, scheduler, idps, tmp_path):
    run_gwas(gwas_lake, GwasSettings(name="standardized", phenotypes=[idps[2]], covariates=COVARIATES,
                                     standardize=True), scheduler=scheduler)
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=[idps[2]], covariates=COVARIATES)
    [theirs] = run_glm(tmp_path, dosages=lake_dosages(gwas_lake, chosen.sample_index), phenotypes=chosen.phenotypes,
                       covariates=chosen.covariates[:, 1:], extra_args=["--covar-variance-standardize"])
    mine, ran = ours_by_phenotype(gwas_lake, "standardized")[idps[2]], theirs["error"] == None  # noqa: E711
    np.testing.assert_array_equal(mine["n"].to_numpy(), theirs["n"])
    for column, key in [("beta", "beta"), ("se", "se"), ("p", "p")]:
        np.testing.assert_allclose(mine[column].to_numpy()[ran], theirs[key][ran], rtol=1e-5, err_msg=column)
    assert gwas_lake.results_provenance("standardized")["settings"]["standardize"] is True
