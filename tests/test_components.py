"""Imaging components (#36 item 2): PCA and FastICA of the lake's IDPs against scikit-learn's on the same
standardised matrix, their tables, their use as phenotypes, and bad requests."""

import numpy as np
import pytest
from click.testing import CliRunner
from sklearn.decomposition import PCA, FastICA

from biolake.cli import main
from biolake.components import ComponentsSettings, run_components
from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design


def tables(lake, name: str) -> tuple[dict, dict]:
    """The scores and loadings of a components run, as columns."""
    return (lake.results_dataset(name).to_table().to_pydict(),
            lake.results_dataset(name + "_loadings").to_table().to_pydict())


ALL_IDPS = "SELECT * EXCLUDE (release) FROM idps"   # the small release's 6 IDPs


def mixtures(idps: list[str]) -> str:
    """Four IDP-like columns mixing three non-Gaussian sources made of the lake's IDPs (uniform ranks, a sign, a
    cube), for ICA to find: Gaussian IDPs would leave their independent components undetermined."""
    sources = (f'percent_rank() OVER (ORDER BY "{idps[0]}")', f'sign("{idps[1]}" - (SELECT median("{idps[1]}") '
               'FROM idps))', f'power("{idps[2]}" - (SELECT avg("{idps[2]}") FROM idps), 3)')
    weights = ((1.0, 0.5, 0.2), (0.3, -1.0, 0.4), (-0.6, 0.2, 1.0), (0.5, 0.5, 0.5))
    return "SELECT participant_id, " + ", ".join(
        " + ".join(f"{w} * ({source})" for w, source in zip(row, sources)) + f" AS mix{j}"
        for j, row in enumerate(weights)) + " FROM idps"


def their_matrix(lake, idps: str | list[str], covariates: list[str]) -> tuple[list[str], np.ndarray]:
    """The participants with every IDP and their IDPs, less the covariates' least-squares fit, each scaled by
    its sample SD: what scikit-learn is given."""
    with connect(lake) as con:
        chosen = design(con, phenotypes=idps, covariates=covariates)
    complete = ~np.isnan(chosen.phenotypes).any(axis=1)
    values, basis = chosen.phenotypes[complete], chosen.covariates[complete]
    residual = values - basis @ np.linalg.solve(basis.T @ basis, basis.T @ values)
    return [pid for pid, keep in zip(chosen.participant_ids, complete) if keep], residual / residual.std(axis=0, ddof=1)


def test_components__pca_equals_scikit_learns(gwas_lake, idps):
    report = run_components(gwas_lake, ComponentsSettings(name="pcs", phenotypes=ALL_IDPS, covariates=["age"], n=4,
                                                          replace=True))
    scores, loadings = tables(gwas_lake, "pcs")
    participants, matrix = their_matrix(gwas_lake, ALL_IDPS, ["age"])
    theirs = PCA(n_components=4, svd_solver="full").fit(matrix)
    assert scores["participant_id"] == participants and len(loadings["idp"]) == 6
    np.testing.assert_allclose(np.column_stack([scores[f"pc{j}"] for j in range(1, 5)]), theirs.transform(matrix),
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(np.array([loadings[f"pc{j}"] for j in range(1, 5)]), theirs.components_,
                               rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(report.variance, theirs.explained_variance_ratio_, rtol=1e-8)
    stored = gwas_lake.results_provenance("pcs")["variance"]
    assert list(stored) == ["pc1", "pc2", "pc3", "pc4"] and stored["pc1"] == pytest.approx(report.variance[0])
    assert "missing an IDP value" in report.dropped                     # the lake's IDPs have gaps


def test_components__ica_recovers_scikit_learns_fastica_with_the_same_seed(gwas_lake, idps):
    run_components(gwas_lake, ComponentsSettings(name="ics", phenotypes=mixtures(idps), covariates=[],
                                                 method="ica", n=3, seed=7, replace=True))
    scores, loadings = tables(gwas_lake, "ics")
    _, matrix = their_matrix(gwas_lake, mixtures(idps), [])
    theirs = FastICA(n_components=3, random_state=7, whiten="unit-variance")
    sources = theirs.fit_transform(matrix)
    ours = np.column_stack([scores[f"ic{j}"] for j in range(1, 4)])
    correlation = np.corrcoef(ours.T, sources.T)[:3, 3:]
    assert (np.abs(np.diag(correlation)) >= 0.999).all(), correlation     # the same components, in the same order
    np.testing.assert_allclose(ours, sources, atol=1e-6)                    # and step for step, the same numbers
    np.testing.assert_allclose(np.column_stack([loadings[f"ic{j}"] for j in range(1, 4)]), theirs.mixing_,
                               atol=1e-6)


def test_components__scores_are_phenotypes_for_gwas(gwas_lake, idps):
    run_components(gwas_lake, ComponentsSettings(name="pcs_gwas", phenotypes=ALL_IDPS, covariates=[], n=2,
                                                 replace=True))
    run_gwas(gwas_lake, GwasSettings(name="gwas_of_pcs", phenotypes="SELECT * FROM results.pcs_gwas",
                                     covariates=["age", "sex"], chromosomes=["1"], replace=True))
    with connect(gwas_lake) as con:
        found = con.sql("SELECT DISTINCT phenotype FROM results.gwas_of_pcs ORDER BY 1").fetchall()
    assert found == [("pc1",), ("pc2",)]


@pytest.mark.parametrize("options, message", [
    (dict(n=7), r"^--n 7: at most 6 components of 6 IDPs"),
    (dict(method="nmf"), r"^--method 'nmf': one of pca, ica"),
    (dict(transform="rint"), r"^--transform rank-normalises"),
])
def test_components__bad_requests_are_one_line(gwas_lake, idps, options, message):
    with pytest.raises(BiolakeError, match=message):
        run_components(gwas_lake, ComponentsSettings(**{"name": "bad", "phenotypes": ALL_IDPS, "covariates": [],
                                                        **options}))


def test_components__an_idp_that_the_covariates_explain_is_named(gwas_lake, idps):
    query = f'SELECT i.participant_id, "{idps[0]}", c.age AS age_again FROM idps i JOIN covariates c USING (participant_id)'
    with pytest.raises(BiolakeError, match=r"^IDP 'age_again' is constant over the participants \(after the "):
        run_components(gwas_lake, ComponentsSettings(name="bad", phenotypes=query, covariates=["age"], n=1))


def test_components_cli__writes_both_tables_and_the_out_file(gwas_lake, idps, tmp_path):
    result = CliRunner().invoke(main, ["components", "--lake", str(gwas_lake.location.root), "--pheno",
                                       ",".join(idps), "--n", "2", "--name", "pcs_cli", "--replace",
                                       "--out", str(tmp_path / "pcs.tsv")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "pcs.tsv").read_text().splitlines()[0].split("\t") == ["participant_id", "pc1", "pc2"]
    with connect(gwas_lake) as con:
        assert con.sql("SELECT count(*) FROM results.pcs_cli_loadings").fetchone()[0] == len(idps)
