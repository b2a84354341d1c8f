"""ComBat harmonisation across sites (#33 item 2), against neuroCombat (Fortin's package) on the same data."""

import contextlib
import io

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from neuroCombat import neuroCombat

from biolake.cli import main
from biolake.harmonize import HarmonizeSettings, run_harmonize
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.stats.combat import combat

INTEGER_AGE = "SELECT participant_id, round(age) AS age, sex FROM covariates"   # neuroCombat casts to float32


def neurocombat(values: np.ndarray, batch: np.ndarray, covariates: dict[str, np.ndarray], *, categorical=(),
                **options) -> np.ndarray:
    """neuroCombat's harmonised values (samples × features) of ``values`` (samples × features), given as a float64
    array: from a DataFrame it would cast them to float32."""
    frame = pd.DataFrame({"batch": batch, **covariates})
    with contextlib.redirect_stdout(io.StringIO()):   # it prints its steps
        found = neuroCombat(np.ascontiguousarray(values.T), frame, "batch", categorical_cols=list(categorical),
                            continuous_cols=[name for name in covariates if name not in categorical], **options)
    return found["data"].T


@pytest.mark.parametrize("parametric", [True, False], ids=["parametric", "non-parametric"])
@pytest.mark.parametrize("with_covariates", [True, False], ids=["covariates", "no-covariates"])
def test_combat__equals_neurocombat(parametric, with_covariates):
    rng = np.random.default_rng(11)
    n, features = 400, 60
    batch = rng.integers(0, 5, n)
    age, sex = rng.integers(45, 82, n).astype(float), rng.integers(0, 2, n)
    values = (rng.normal(size=(n, features)) * (1 + 0.4 * batch[:, None]) + rng.normal(size=5)[batch, None]
              + 0.03 * age[:, None] + 0.5 * sex[:, None]) * rng.uniform(1, 100, features)
    covariates = {"age": age, "sex": sex} if with_covariates else {}
    theirs = neurocombat(values, batch, covariates, categorical=["sex"] if with_covariates else (),
                         parametric=parametric)
    ours, fit = combat(values, batch, np.column_stack([age, sex]) if with_covariates else None, parametric=parametric)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-8 * np.abs(values).max())
    assert fit.gamma_star.shape == (5, features)


def test_combat__without_empirical_bayes_equals_neurocombat_eb_false():
    rng = np.random.default_rng(2)
    batch = np.repeat([0, 1, 2], [30, 50, 40])
    values = rng.normal(size=(120, 8)) * np.array([1.0, 2.0, 0.5])[batch, None] + batch[:, None]
    np.testing.assert_allclose(combat(values, batch, eb=False)[0], neurocombat(values, batch, {}, eb=False),
                               rtol=1e-8, atol=1e-10)


def test_combat__non_parametric_where_neurocombat_underflows_stays_finite():
    """neuroCombat multiplies densities of a whole batch: (2π δ)^(−n/2) is 0 for a few hundred samples, and its
    weights become 0/0. On the log scale they do not."""
    rng = np.random.default_rng(4)
    batch = np.repeat([0, 1], 600)
    values = rng.normal(size=(1200, 10)) + batch[:, None]
    ours = combat(values, batch, parametric=False)[0]
    assert np.isfinite(ours).all()
    assert abs(ours[batch == 0].mean() - ours[batch == 1].mean()) < 0.05


def test_run_harmonize__equals_neurocombat_on_the_lake_and_is_a_table_every_analysis_reads(gwas_lake, idps):
    settings = HarmonizeSettings(name="harmonized", phenotypes=idps, covariates=INTEGER_AGE, batch="site")
    report = run_harmonize(gwas_lake, settings)
    with connect(gwas_lake) as con:   # the same participants: those with every IDP, a site and covariates
        everyone = design(con, phenotypes=idps, covariates=INTEGER_AGE)
        sites = dict(con.sql("SELECT participant_id, site FROM covariates").fetchall())
    complete = ~np.isnan(everyone.phenotypes).any(axis=1)
    values = everyone.phenotypes[complete]
    batch = np.array([sites[pid] for pid, kept in zip(everyone.participant_ids, complete) if kept])
    covariates = dict(zip(everyone.covariate_names[1:], everyone.covariates[complete, 1:].T))
    theirs = neurocombat(values, batch, covariates, categorical=["sex[M]"])
    table = gwas_lake.results_dataset("harmonized").to_table().to_pandas().set_index("participant_id")
    assert list(table.index) == [pid for pid, kept in zip(everyone.participant_ids, complete) if kept]
    np.testing.assert_allclose(table[idps].to_numpy(), theirs, rtol=1e-8)
    record = gwas_lake.results_provenance("harmonized")
    assert record["batches"] == report.batches and sum(report.batches.values()) == complete.sum()
    assert record["dropped"]["missing an IDP value (ComBat needs every one)"] == (~complete).sum() > 0
    with connect(gwas_lake) as con:   # results.NAME in SQL, as idps
        assert con.sql("SELECT count(*) FROM results.harmonized").fetchone()[0] == complete.sum()


def test_harmonize_cli__its_table_feeds_a_gwas(gwas_lake, idps, tmp_path):
    root = str(gwas_lake.location.root)
    result = CliRunner().invoke(main, ["harmonize", "--lake", root, "--pheno", ",".join(idps[:2]), "--batch", "site",
                                       "--covar", "age,sex", "--non-parametric", "--name", "site_free", "--replace",
                                       "--out", str(tmp_path / "h.tsv")])
    assert result.exit_code == 0, result.output
    assert "2 IDPs harmonised across 4 batches" in result.output and (tmp_path / "h.log").exists()
    result = CliRunner().invoke(main, ["gwas", "--lake", root, "--pheno-sql", "SELECT * FROM results.site_free",
                                       "--covar", "age,sex", "--name", "site_free_gwas", "--replace"])
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("options, message", [
    (dict(samples="SELECT participant_id FROM covariates WHERE site <> 'Reading' OR participant_id = "
                  "(SELECT min(participant_id) FROM covariates WHERE site = 'Reading')"),
     r"^--batch site: batch 'Reading' has one analysed participant \(\d+\); ComBat estimates each batch's variance"),
    (dict(phenotypes="SELECT participant_id, CASE WHEN c.site = 'Bristol' THEN 1.5 ELSE i.\"25001-2.0\" END AS flat "
                     "FROM idps i JOIN covariates c USING (participant_id)"),
     r"^IDP 'flat' is constant within batch 'Bristol' \(1.5 for its \d+ participants\): ComBat cannot scale it"),
    (dict(batch="scanner"), r"^--batch 'scanner' is not a column of covariates; it has: age, sex, site"),
    (dict(covariates=["age", "site"]), r"^--batch site is also among the covariates"),
])
def test_harmonize__what_combat_cannot_estimate_is_one_line(gwas_lake, idps, options, message):
    settings = dict(name="bad", phenotypes=idps[:2], covariates=["age"], batch="site") | options
    with pytest.raises(BiolakeError, match=message):
        run_harmonize(gwas_lake, HarmonizeSettings(**settings))
