"""ComBat harmonisation across sites (#33 item 2), against neuroCombat (Fortin's package) on the same data, and
sites joining later (``--reference``) against neuroHarmonize 2.5.2, which lives in a venv of its own (``make
tools``: .tools/neuroharmonize; numpy < 2); a missing one fails these tests, never skips them."""

import contextlib
import io
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from neuroCombat import neuroCombat

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.harmonize import HarmonizeSettings, run_harmonize
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.stats.combat import combat

INTEGER_AGE = "SELECT participant_id, round(age) AS age, sex FROM covariates"   # neuroCombat casts to float32
NEUROHARMONIZE = Path(__file__).resolve().parents[1] / ".tools" / "neuroharmonize" / "bin" / "python"
# neuroHarmonize 2.5.2 fitted on the training arrays, then (orig_model) on the new ones. Its orig_model path hands
# neuroCombat 0.2.12 (the version it pins) an info dict without "ref_level" and fails with KeyError; the shims add
# the key (None: no reference batch, as in its training fit), nothing else. That path also standardises new sites
# with a design of as many batch columns as the new data has new sites, so the test gives it as many as training.
NEUROHARMONIZE_SCRIPT = """
import sys
import numpy as np, pandas as pd
import neuroHarmonize
learn = sys.modules["neuroHarmonize.harmonizationLearn"]
def with_ref_level(function):   # the info dict is the argument holding "batch_info"
    return lambda *args, **options: function(*[{"ref_level": None, **arg} if isinstance(arg, dict) and "batch_info"
                                                in arg else arg for arg in args], **options)
for name in ("find_parametric_adjustments", "adjust_data_final"):
    setattr(learn, name, with_ref_level(getattr(learn, name)))
arrays = np.load(sys.argv[1], allow_pickle=True)
def covars(part):
    return pd.DataFrame({"SITE": arrays[part + "_site"], **{f"c{k}": column for k, column in
                         enumerate(arrays[part + "_covariates"].T)}})
model, _ = neuroHarmonize.harmonizationLearn(arrays["train_values"], covars("train"))
_, adjusted = neuroHarmonize.harmonizationLearn(arrays["new_values"], covars("new"), orig_model=model)
known = np.isin(arrays["new_site"], model["SITE_labels"])
applied = neuroHarmonize.harmonizationApply(arrays["new_values"][known], covars("new")[known], model)
np.savez(sys.argv[2], adjusted=adjusted, applied=applied, known=known)
"""


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


def neuroharmonize(folder: Path, train: tuple, new: tuple) -> dict[str, np.ndarray]:
    """neuroHarmonize's values of ``new`` (values, sites, covariates) harmonised to a model fitted on ``train``:
    ``adjusted`` (every row, harmonizationLearn with orig_model) and ``applied`` (the rows of training sites,
    harmonizationApply)."""
    names = ("values", "site", "covariates")
    np.savez(folder / "arrays.npz", **{f"train_{k}": v for k, v in zip(names, train)},
             **{f"new_{k}": v for k, v in zip(names, new)})
    subprocess.run([NEUROHARMONIZE, "-c", NEUROHARMONIZE_SCRIPT, folder / "arrays.npz", folder / "theirs.npz"],
                   check=True, capture_output=True, text=True)
    return dict(np.load(folder / "theirs.npz"))


def test_harmonize__reference_applied_to_sites_joining_later_equals_neuroharmonize(gwas_lake, idps, tmp_path):
    first_two = "SELECT participant_id FROM covariates WHERE site IN ('Bristol', 'Cheadle')"
    trained = run_harmonize(gwas_lake, HarmonizeSettings(name="two_sites", phenotypes=idps, covariates=INTEGER_AGE,
                                                         batch="site", samples=first_two, replace=True))
    joined = run_harmonize(gwas_lake, HarmonizeSettings(name="four_sites", phenotypes=idps, covariates=INTEGER_AGE,
                                                        batch="site", reference="two_sites", replace=True))
    assert sorted(trained.batches) == ["Bristol", "Cheadle"] and joined.estimated == ["Newcastle", "Reading"]
    assert set(joined.batches) == {"Bristol", "Cheadle", "Newcastle", "Reading"}

    def arrays(name: str) -> tuple[list[str], tuple]:   # the complete participants a run harmonised, as inputs
        with connect(gwas_lake) as con:
            sites = dict(con.sql("SELECT participant_id, site FROM covariates").fetchall())
            everyone = design(con, phenotypes=idps, covariates=INTEGER_AGE)
        kept = gwas_lake.results_dataset(name).to_table().column("participant_id").to_pylist()
        rows = [everyone.participant_ids.index(pid) for pid in kept]
        return kept, (everyone.phenotypes[rows], np.array([sites[pid] for pid in kept], dtype=object),
                      everyone.covariates[rows, 1:])
    _, train = arrays("two_sites")
    new_ids, new = arrays("four_sites")
    theirs = neuroharmonize(tmp_path, train, new)
    ours = gwas_lake.results_dataset("four_sites").to_table().to_pandas().set_index("participant_id")[idps]
    np.testing.assert_allclose(ours.to_numpy(), theirs["adjusted"], rtol=1e-8)
    np.testing.assert_allclose(ours.to_numpy()[theirs["known"]], theirs["applied"], rtol=1e-8)
    assert theirs["known"].sum() == joined.batches["Bristol"] + joined.batches["Cheadle"]


@pytest.mark.parametrize("options, message", [
    (dict(phenotypes="idps[:2]"), r"^--reference ref harmonised the IDPs .*; this run has .* \(missing: \S+; not in "
                                  r"the reference: none\)$"),
    (dict(covariates=["age"]), r"^--reference ref harmonised the covariates age, sex\[M\]; this run has age "
                               r"\(missing: sex\[M\]; not in the reference: none\) \(give the same --covar"),
    (dict(reference="gwas_of_ref"), r"^--reference gwas_of_ref is a gwas table, not one biolake harmonize wrote$"),
])
def test_harmonize__a_reference_that_does_not_fit_is_one_line(gwas_lake, idps, options, message):
    run_harmonize(gwas_lake, HarmonizeSettings(name="ref", phenotypes=idps, covariates=["age", "sex"], batch="site",
                                               replace=True))
    if options.get("reference") == "gwas_of_ref":
        run_gwas(gwas_lake, GwasSettings(name="gwas_of_ref", phenotypes="SELECT * FROM results.ref",
                                         covariates=["age"], replace=True))
    options = {**options, **({"phenotypes": idps[:2]} if options.get("phenotypes") == "idps[:2]" else {})}
    settings = dict(name="bad", phenotypes=idps, covariates=["age", "sex"], batch="site", reference="ref") | options
    with pytest.raises(BiolakeError, match=message):
        run_harmonize(gwas_lake, HarmonizeSettings(**settings))
