"""CCA and PLS between two blocks (#36 item 1): weights, scores and correlations against scikit-learn's CCA,
PLSCanonical and PLSSVD on the same centred, scaled data; held-out and test-set correlations; permutation
p-values uniform under the null; bad requests."""

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats
from sklearn.cross_decomposition import CCA, PLSSVD, PLSCanonical

from biolake.cca import CcaSettings, run_cca
from biolake.cli import main
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.stats.cca import _first_correlation, _without, bootstrap_stability, chosen_penalty, fit, \
    held_out_correlations, permutation_p
from conftest import lake_dosages

ALL_IDPS = "SELECT * EXCLUDE (release) FROM idps"
CHR1 = "SELECT variant_id FROM variants WHERE chrom = '1' ORDER BY pos LIMIT 12"
# scikit-learn's CCA stops its power iterations when the squared change of the X weights is below tol (1e-6 by
# default: weights within ~1e-3 of the solution); a tighter tol makes it the reference to 1e-6
REFERENCES = {"cca": lambda n: CCA(n_components=n, max_iter=100_000, tol=1e-15),
              "pls-canonical": lambda n: PLSCanonical(n_components=n, max_iter=100_000, tol=1e-15),
              "pls-svd": lambda n: PLSSVD(n_components=n)}


def blocks(lake, test_sql: str | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The blocks run_cca fits, built here from the lake: the 12 variants' dosages (a missing call its variant's
    mean over the participants fitted to) and the 6 IDPs of the participants with every IDP; and which participants
    the test SQL sets apart."""
    with connect(lake) as con:
        chosen = design(con, phenotypes=ALL_IDPS, covariates=[])
        ids = [row[0] for row in con.sql(CHR1).fetchall()]
        order = [row[0] for row in con.sql("SELECT variant_id FROM variants ORDER BY variant_index").fetchall()]
        tested = set() if test_sql is None else {row[0] for row in con.sql(test_sql).fetchall()}
    complete = ~np.isnan(chosen.phenotypes).any(axis=1)
    x = lake_dosages(lake, chosen.sample_index)[[order.index(v) for v in sorted(ids, key=order.index)]].T[complete]
    test = np.array([pid in tested for pid in np.array(chosen.participant_ids)[complete]])
    x = np.where(np.isnan(x), np.nanmean(x[~test], axis=0), x)       # the means of the participants fitted to
    return x, chosen.phenotypes[complete], test


def weights_of(lake, name: str, block: str, n: int) -> np.ndarray:
    table = lake.results_dataset(name + "_weights").to_table().to_pydict()
    rows = [j for j, b in enumerate(table["block"]) if b == block]
    return np.array([[table[f"c{k}"][j] for k in range(1, n + 1)] for j in rows])


@pytest.mark.parametrize("method", ["cca", "pls-canonical", "pls-svd"])
def test_cca__weights_and_correlations_equal_scikit_learns(gwas_lake, method):
    report = run_cca(gwas_lake, CcaSettings(name=f"cca_{method}", phenotypes=ALL_IDPS, x_variants=CHR1,
                                            covariates=[], n=3, method=method, permutations=0, replace=True))
    x, y, _ = blocks(gwas_lake)
    theirs = REFERENCES[method](3).fit(x, y)
    np.testing.assert_allclose(weights_of(gwas_lake, f"cca_{method}", "x", 3), theirs.x_weights_, atol=1e-6)
    np.testing.assert_allclose(weights_of(gwas_lake, f"cca_{method}", "y", 3), theirs.y_weights_, atol=1e-6)
    x_scores, y_scores = theirs.transform(x, y)
    r = [np.corrcoef(x_scores[:, k], y_scores[:, k])[0, 1] for k in range(3)]
    np.testing.assert_allclose([pair["r"] for pair in report.pairs], r, atol=1e-6)
    assert report.pairs[0]["n_train"] == len(x) and report.x_columns == 12 and report.y_columns == 6


def test_cca__a_held_out_site_is_scored_by_the_fit_to_the_others(gwas_lake):
    test_sql = "SELECT participant_id FROM covariates WHERE site = 'Reading'"
    report = run_cca(gwas_lake, CcaSettings(name="cca_site", phenotypes=ALL_IDPS, x_variants=CHR1, covariates=[],
                                            n=2, permutations=0, test_sql=test_sql, replace=True))
    x, y, test = blocks(gwas_lake, test_sql)
    theirs = REFERENCES["cca"](2).fit(x[~test], y[~test])
    x_scores, y_scores = theirs.transform(x[test], y[test])
    assert report.pairs[0]["n_test"] == test.sum() > 10 and report.pairs[0]["n_train"] == (~test).sum()
    np.testing.assert_allclose([pair["r_test"] for pair in report.pairs],
                               [np.corrcoef(x_scores[:, k], y_scores[:, k])[0, 1] for k in range(2)], atol=1e-6)


def test_held_out_correlations__see_through_overfitting():
    """40 + 10 null variables over 200 participants: the first canonical correlation in sample is large, out of
    sample near 0; a planted shared factor keeps its correlation out of sample."""
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(200, 40)), rng.normal(size=(200, 10))
    folds = rng.permutation(np.arange(200) % 5)
    null_in, null_out = fit(x, y, 1).correlations(x, y)[0], held_out_correlations(x, y, 1, "cca", folds).mean()
    shared = rng.normal(size=200)
    x[:, 0] += 2 * shared
    y[:, 0] += 2 * shared
    planted_out = held_out_correlations(x, y, 1, "cca", folds).mean()
    assert null_in > 0.5 and abs(null_out) < 0.2 and planted_out > 0.6


def test_permutation_p__is_uniform_under_the_null():
    """200 null data sets, 99 permutations each, the whole model refitted each time: the p-values of the first
    pair are uniform (Kolmogorov–Smirnov p > 0.01)."""
    rng = np.random.default_rng(11)
    p = [permutation_p(rng.normal(size=(60, 3)), rng.normal(size=(60, 2)), 1, "cca", 99, rng)[0]
         for _ in range(200)]
    assert stats.kstest(p, "uniform").pvalue > 0.01


def test_permutation_p__refits_cca_exactly_by_its_singular_values():
    """The CCA shortcut (the largest singular value of Q_xᵀQ_y, Y's rows shuffled) is the first correlation of a
    full refit on the shuffled data, also with earlier pairs' scores regressed out (the step-down statistic)."""
    rng = np.random.default_rng(12)
    x, y = rng.normal(size=(80, 5)), rng.normal(size=(80, 4))
    y[:, 0] += 0.5 * x[:, 1]
    x_scores, y_scores = fit(x, y, 2).scores(x, y)
    for k in (0, 1):
        xr, yr = _without(x, x_scores[:, :k]), _without(y, y_scores[:, :k])
        shortcut = _first_correlation(xr, yr, "cca", (1.0, 1.0))
        for rows in (np.arange(80), *(rng.permutation(80) for _ in range(5))):
            assert shortcut(rows) == pytest.approx(fit(xr, yr[rows], 1).correlations(xr, yr[rows])[0], abs=1e-12)


def test_permutation_p__of_a_null_second_pair_is_not_small_beside_a_strong_first():
    """Step-down (Winkler et al. 2020): one strong pair, the second null; its p-value is at most 0.05 in about 5 %
    of 200 data sets (not the quarter that comparing pair ranks under full permutations gives)."""
    rng = np.random.default_rng(21)
    p = []
    for _ in range(200):
        x, y = rng.normal(size=(100, 5)), rng.normal(size=(100, 4))
        y[:, 0] += x[:, 0]
        p.append(permutation_p(x, y, 2, "cca", 99, rng))
    p = np.array(p)
    assert (p[:, 0] == 0.01).all() and (p[:, 1] <= 0.05).mean() < 0.1


def test_permutation_p__finds_a_planted_association(gwas_lake):
    rng = np.random.default_rng(2)
    shared = rng.normal(size=150)
    x = rng.normal(size=(150, 4)) + shared[:, None] * np.array([1.0, 0.5, 0, 0])
    y = rng.normal(size=(150, 3)) + shared[:, None] * np.array([0.8, 0, 0])
    assert permutation_p(x, y, 2, "cca", 199, rng)[0] == pytest.approx(1 / 200)


def test_sparse_cca__selects_the_planted_variables_where_cca_cannot_fit():
    """300 X and 40 Y variables over 150 participants (more variables than participants: CCA overfits anything),
    a factor shared by 3 X and 2 Y variables (each 69 % of their variance): the penalties cross-validation chooses keep those, leave most
    others out, and the pair correlates out of sample."""
    rng = np.random.default_rng(8)
    shared = rng.normal(size=150)
    x, y = rng.normal(size=(150, 300)), rng.normal(size=(150, 40))
    x[:, [10, 50, 90]] += 1.5 * shared[:, None]
    y[:, [3, 7]] += 1.5 * shared[:, None]
    folds = rng.permutation(np.arange(150) % 5)
    penalty = chosen_penalty(x, y, folds)
    found = fit(x, y, 1, "sparse-cca", penalty=penalty)
    selected_x, selected_y = np.flatnonzero(found.x_weights[:, 0]), np.flatnonzero(found.y_weights[:, 0])
    assert {10, 50, 90} <= set(selected_x) and len(selected_x) < 30
    assert {3, 7} <= set(selected_y) and len(selected_y) < 20
    held_out = held_out_correlations(x, y, 1, "sparse-cca", folds, penalty=penalty)[:, 0].mean()
    assert held_out > 0.4 and found.correlations(x, y)[0] > held_out - 0.1


def test_bootstrap_stability__keeps_a_planted_weights_sign_and_refits_the_whole_model():
    rng = np.random.default_rng(6)
    shared = rng.normal(size=400)
    x, y = rng.normal(size=(400, 5)), rng.normal(size=(400, 4))
    x[:, 2] += shared
    y[:, 1] += shared
    found = fit(x, y, 1)
    stability = bootstrap_stability(x, y, found, "cca", 200, rng)
    assert stability.x_same_sign[2, 0] == stability.y_same_sign[1, 0] == 1.0
    assert np.median(np.delete(stability.x_same_sign[:, 0], 2)) < 0.95
    theirs = [fit(x[rows], y[rows], 1).x_weights[:, 0] for rows in np.random.default_rng(0).integers(0, 400, (200, 400))]
    theirs = [w * np.sign(w @ found.x_weights[:, 0]) for w in theirs]
    np.testing.assert_allclose(stability.x_se[:, 0], np.std(theirs, axis=0, ddof=1), rtol=0.35)   # another draw


def test_sparse_cca__reports_its_penalty_and_the_variables_of_each_pair(gwas_lake):
    report = run_cca(gwas_lake, CcaSettings(name="scca", phenotypes=ALL_IDPS, x_variants=CHR1, covariates=[],
                                            n=2, method="sparse-cca", permutations=9, replace=True))
    penalty = gwas_lake.results_provenance("scca")["penalty"]
    assert penalty["chosen_by"].startswith("5-fold cross-validation") and 0 < penalty["x"] <= 1
    assert all(1 <= pair["x_variables"] <= 12 and 1 <= pair["y_variables"] <= 6 for pair in report.pairs)
    assert all(pair["r_cv"] is not None and pair["p_permutation"] > 0 for pair in report.pairs)
    weights = weights_of(gwas_lake, "scca", "x", 2)
    assert [int((weights[:, k] != 0).sum()) for k in range(2)] == [pair["x_variables"] for pair in report.pairs]
    stability = gwas_lake.results_dataset("scca_weights").to_table().to_pydict()
    assert all(0 <= share <= 1 for share in stability["c1_same_sign"]) and all(se >= 0 for se in stability["c1_se"])


def test_cca__a_monomorphic_variant_of_x_variants_is_left_out_with_a_warning(monomorphic_lake):
    lake, variant = monomorphic_lake
    listed = "SELECT variant_id FROM variants ORDER BY variant_index LIMIT 8"
    with pytest.warns(UserWarning, match=rf"^--x-variants: 1 of 8 variants are constant .*e\.g\. {variant}\); left out"):
        report = run_cca(lake, CcaSettings(name="cca_mono", phenotypes=ALL_IDPS, x_variants=listed, covariates=[],
                                           n=1, permutations=0))
    assert report.x_columns == 7
    assert variant not in lake.results_dataset("cca_mono_weights").to_table().column("variable").to_pylist()


@pytest.mark.parametrize("options, message", [
    (dict(penalty=(0.5, 1.5), method="sparse-cca"), r"^--penalty 0.5,1.5: sparse-cca's s of X and of Y"),
    (dict(penalty=(0.5, 0.5)), r"^--penalty 0.5,0.5: sparse-cca's"),
    (dict(samples="SELECT participant_id FROM covariates LIMIT 12", folds=2),
     r"^CCA of 12 X and 6 Y variables over \d+ participants is not estimable without a penalty"),
    (dict(x_sql="SELECT participant_id, 1.0 AS flat, age FROM covariates", x_variants=None),
     r"^--x-sql: column 'flat' is constant"),
    (dict(samples="SELECT participant_id FROM covariates LIMIT 40", method="pls-svd", folds=20),
     r"^--folds 20: \d+ participants to fit leave fewer than 3 per fold"),
    (dict(x_variants=None), r"^give block X by --x-sql"),
    (dict(x_sql="SELECT participant_id, age FROM covariates"), r"^give block X by --x-sql"),
    (dict(n=7), r"^--n 7: at most 6 pairs"),
    (dict(x_sql="SELECT participant_id, age, 2 * age AS twice, sex = 'M' AS male FROM covariates", x_variants=None,
          n=3), r"^--n 3: the blocks' columns span 2 and 6 dimensions"),
    (dict(x_sql="SELECT participant_id, age FROM covariates UNION ALL SELECT participant_id, age FROM covariates "
                "LIMIT 400", x_variants=None), r"^--x-sql returns participant '\d+' on two rows"),
])
def test_cca__bad_requests_are_one_line(gwas_lake, options, message):
    with pytest.raises(BiolakeError, match=message):
        run_cca(gwas_lake, CcaSettings(**{"name": "bad", "phenotypes": ALL_IDPS, "x_variants": CHR1,
                                          "covariates": [], "permutations": 0, "replace": True, **options}))


def test_cca_cli__writes_both_tables_and_the_out_file(gwas_lake, tmp_path):
    result = CliRunner().invoke(main, ["cca", "--lake", str(gwas_lake.location.root), "--y-sql", ALL_IDPS,
                                       "--x-variants", CHR1, "--covar", "age,sex", "--permutations", "19",
                                       "--name", "cca_cli", "--replace", "--out", str(tmp_path / "pairs.tsv")])
    assert result.exit_code == 0, result.output
    assert "pair 1: r " in result.output and "permutation p" in result.output
    header = (tmp_path / "pairs.tsv").read_text().splitlines()[0].split("\t")
    assert header[:3] == ["component", "r", "r_cv"] and "p_permutation" in header
    with connect(gwas_lake) as con:
        assert con.sql("SELECT count(*) FROM results.cca_cli_weights").fetchone()[0] == 12 + 6
    plotted = CliRunner().invoke(main, ["plot", "--lake", str(gwas_lake.location.root), "--result", "cca_cli",
                                        "--out", str(tmp_path / "plots")])
    assert plotted.exit_code == 0, plotted.output
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["correlations.png", "weights_pair1.png",
                                                                       "weights_pair2.png"]
    reported = CliRunner().invoke(main, ["report", "--lake", str(gwas_lake.location.root), "--result", "cca_cli",
                                         "--out", str(tmp_path / "cca.html")])
    assert reported.exit_code == 0, reported.output
    page = (tmp_path / "cca.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "r_cv" in page and "largest weights" in page
