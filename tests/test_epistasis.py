"""SNP × SNP interaction scans (#35), against plink1.9 --epistasis (no covariates, missing calls) and statsmodels
OLS (covariates, missing phenotypes), and the count of their pairs against their scope."""

import shutil
import subprocess

import numpy as np
import pyarrow.compute as pc
import pytest
import statsmodels.api as sm
from click.testing import CliRunner

from biolake.cli import main
from biolake.epistasis import EpistasisSettings, run_epistasis
from biolake.lake.errors import BiolakeError
from biolake.lake.schema import ERRORS
from biolake.stats.epistasis import Phenotypes, pair_tests
from biolake.queries import connect, design
from conftest import lake_dosages
from plink2_glm import write_design_files

PLINK19 = shutil.which("plink1.9") or "plink1.9"


def variant_ids(lake, sql: str) -> list[str]:
    with connect(lake) as con:
        return [row[0] for row in con.sql(sql).fetchall()]


def pairs_of(lake, name: str) -> dict[tuple[str, str, str], dict]:
    """The rows of an epistasis table keyed by (phenotype, variant a, variant b)."""
    rows = lake.results_dataset(name).to_table().to_pylist()
    return {(row["phenotype"], row["variant_id_a"], row["variant_id_b"]): row for row in rows}


def test_epistasis__without_covariates_equals_plink19_epistasis(gwas_lake, release_folder, idps, tmp_path):
    """plink1.9 --epistasis (quantitative): BETA_INT per A1 allele (the lake's alt, --keep-allele-order), STAT = t²
    of OLS, each pair on the samples with both calls and the phenotype."""
    chosen_ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '1' ORDER BY pos LIMIT 40")
    set_sql = "SELECT variant_id FROM variants WHERE variant_id IN (" + ", ".join(f"'{v}'" for v in chosen_ids) + ")"
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_plink", phenotypes=idps[:1], covariates=[],
                                               set_sql=set_sql, replace=True))
    ours = pairs_of(gwas_lake, "epi_plink")
    assert len(ours) == 40 * 39 // 2                                # every pair of the set, once
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=idps[:1], covariates=[])
    pheno, _ = write_design_files(chosen, tmp_path)
    (tmp_path / "extract.txt").write_text("\n".join(chosen_ids) + "\n")
    subprocess.run([PLINK19, "--bfile", str(release_folder / "genotypes"), "--pheno", str(pheno), "--pheno-name",
                    "c0", "--extract", str(tmp_path / "extract.txt"), "--epistasis", "--epi1", "1",
                    "--keep-allele-order", "--allow-no-sex", "--threads", "1", "--out", str(tmp_path / "plink")],
                   check=True, capture_output=True)
    lines = (tmp_path / "plink.epi.qt").read_text().splitlines()
    theirs = [line.split() for line in lines[1:]]
    assert len(theirs) == len(ours)
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    y, refused = chosen.phenotypes[:, 0], 0
    for _, a, _, b, beta, stat, _ in theirs:
        row = ours.get((idps[0], a, b)) or ours[(idps[0], b, a)]
        if beta != "nan":
            assert row["error"] is None, row
            assert float(beta) == pytest.approx(row["beta_int"], rel=5e-6, abs=5e-7)   # printed to 6 digits
            assert float(stat) == pytest.approx(row["t_int"] ** 2, rel=5e-6, abs=5e-5)
            continue
        # plink1.9 refuses a pair whose uncentred terms a, b, a·b are collinear by its VIF rule; where the model is
        # estimable biolake reports it, equal to OLS (the tighter reference), else it says why not
        refused += 1
        if row["error"] is None:
            x, z = dosages[ids.index(row["variant_id_a"])], dosages[ids.index(row["variant_id_b"])]
            used = ~np.isnan(y) & ~np.isnan(x) & ~np.isnan(z)
            fit = sm.OLS(y[used], np.column_stack([np.ones(len(y)), x, z, x * z])[used]).fit()
            np.testing.assert_allclose([row["beta_int"], row["t_int"]], [fit.params[-1], fit.tvalues[-1]], rtol=1e-6)
    print(f"plink1.9 --epistasis: {len(theirs) - refused} of {len(theirs)} pairs equal to its digits; it refused "
          f"{refused}, of which biolake tested {sum(ours[key]['error'] is None for key in ours) - (len(theirs) - refused)}"
          " (equal to OLS)")
    assert refused < len(theirs) / 2


def cases(*idps: str) -> str:
    """Case/control phenotypes high0, high1, …: each IDP above its median (1) or not (0), missing where the IDP is
    and, each for other participants, for about one in ten."""
    return "SELECT participant_id, " + ", ".join(
        f'CASE WHEN hash(participant_id || \'{j}\') % 10 = 0 THEN NULL ELSE ("{idp}" > (SELECT median("{idp}") '
        f'FROM idps))::INTEGER END AS high{j}' for j, idp in enumerate(idps)) + " FROM idps"


def logit(y: np.ndarray, columns: np.ndarray):
    return sm.Logit(y, columns).fit(disp=0, method="newton", tol=1e-12, maxiter=100)


def test_epistasis__case_control_equals_plink19_logistic_epistasis_to_its_precision(gwas_lake, release_folder, idps,
                                                                                     tmp_path):
    """plink1.9 --epistasis on a case/control phenotype fits y ~ a + b + a·b by logistic regression and prints
    OR_INT = exp(β) and STAT = z². It fits in single precision, so its OR is off the exact one by up to ~2e-5 and
    its STAT by up to ~1e-3 (relative): biolake's equal plink's within that precision, and statsmodels' exact Logit
    to 1e-8. Where plink prints numbers for a design of rank 3 (a·b a combination of 1, a
    and b on the pair's samples), biolake says collinear."""
    chosen_ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '1' ORDER BY pos LIMIT 30")
    set_sql = "SELECT variant_id FROM variants WHERE variant_id IN (" + ", ".join(f"'{v}'" for v in chosen_ids) + ")"
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_cc", phenotypes=cases(idps[0]), covariates=[],
                                               set_sql=set_sql, replace=True))
    ours = pairs_of(gwas_lake, "epi_cc")
    assert "z_int" in next(iter(ours.values())) and "t_int" not in next(iter(ours.values()))
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=cases(idps[0]), covariates=[])
    y = chosen.phenotypes[:, 0]
    (tmp_path / "pheno.txt").write_text("".join(f"{pid} {pid} {-9 if np.isnan(v) else int(v) + 1}\n"
                                                for pid, v in zip(chosen.participant_ids, y)))
    (tmp_path / "extract.txt").write_text("\n".join(chosen_ids) + "\n")
    subprocess.run([PLINK19, "--bfile", str(release_folder / "genotypes"), "--pheno", str(tmp_path / "pheno.txt"),
                    "--extract", str(tmp_path / "extract.txt"), "--epistasis", "--epi1", "1", "--keep-allele-order",
                    "--allow-no-sex", "--threads", "1", "--out", str(tmp_path / "plink")], check=True,
                   capture_output=True)
    theirs = [line.split() for line in (tmp_path / "plink.epi.cc").read_text().splitlines()[1:]]
    assert len(theirs) == len(ours) == 30 * 29 // 2
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    compared = collinear = 0
    for _, a, _, b, odds_ratio, stat, _ in theirs:
        row = ours.get(("high0", a, b)) or ours[("high0", b, a)]
        x, z = dosages[ids.index(row["variant_id_a"])], dosages[ids.index(row["variant_id_b"])]
        used = ~np.isnan(y) & ~np.isnan(x) & ~np.isnan(z)
        columns = np.column_stack([np.ones(len(y)), x, z, x * z])[used]
        if row["error"] == "collinear":
            assert np.linalg.matrix_rank(columns) < 4
            collinear += 1
            continue
        if odds_ratio == "nan" or row["error"] is not None:
            continue
        compared += 1
        assert float(odds_ratio) == pytest.approx(np.exp(row["beta_int"]), rel=5e-5)
        assert float(stat) == pytest.approx(row["z_int"] ** 2, rel=2e-3, abs=1e-6)
        fit = logit(y[used], columns)
        np.testing.assert_allclose([row["beta_int"], row["se_int"], row["z_int"], row["p_int"]],
                                   [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1]], rtol=1e-8)
    print(f"plink1.9 --epistasis (case/control): {compared} pairs compared, {collinear} of rank 3 said collinear")
    assert compared > len(theirs) / 2


def test_epistasis__case_control_with_covariates_equals_statsmodels_and_the_screen_chooses_the_rows(gwas_lake, idps):
    """With covariates and missing phenotypes: β, SE, z, p and the joint Wald χ² (b and a·b) equal statsmodels'
    Logit to 1e-8. With --prefilter-p the rows are the pairs whose least-squares test passes (the screen: what
    --model linear reports), with the logistic fit's numbers, and the summary counts every pair."""
    candidate = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '2' ORDER BY pos LIMIT 1")[0]
    common = dict(phenotypes=cases(idps[1], idps[2]), covariates=["age", "sex"], candidates=[candidate], chromosomes=["3"],
                  replace=True)
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_logit", **common))
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_screen", model="linear", **common))
    screened = run_epistasis(gwas_lake, EpistasisSettings(name="epi_logit_p", prefilter_p=0.2, **common))
    full, screen, kept = (pairs_of(gwas_lake, name) for name in ("epi_logit", "epi_screen", "epi_logit_p"))
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=cases(idps[1], idps[2]), covariates=["age", "sex"])
    assert np.isnan(chosen.phenotypes).any()
    ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    a = dosages[ids.index(candidate)]
    tested = [row for row in full.values() if row["error"] is None]
    assert len(tested) > len(full) / 2
    for row in np.random.default_rng(1).choice(tested, 12, replace=False):
        b, y = dosages[ids.index(row["variant_id_b"])], chosen.phenotypes[:, int(row["phenotype"][-1])]
        used = ~np.isnan(y) & ~np.isnan(a) & ~np.isnan(b)
        columns = np.column_stack([chosen.covariates, a, b, a * b])[used]
        fit = logit(y[used], columns)
        joint = fit.wald_test(np.eye(columns.shape[1])[-2:], scalar=True)
        assert row["n"] == used.sum()
        np.testing.assert_allclose([row["beta_int"], row["se_int"], row["z_int"], row["p_int"], row["chisq_joint"],
                                    row["p_joint"]], [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1],
                                                      float(joint.statistic), float(joint.pvalue)], rtol=1e-8)
    passing = {key for key, row in screen.items() if row["error"] is None and row["p_int"] <= 0.2}
    assert kept.keys() == passing and 0 < len(passing) < len(screen)
    for key, row in kept.items():
        assert row["error"] == full[key]["error"] and (row["error"] is not None or row["z_int"] == pytest.approx(
            full[key]["z_int"], rel=1e-10))
    assert screened.tested == sum(row["error"] is None for row in screen.values())


def test_epistasis__with_covariates_and_missing_phenotypes_equals_statsmodels(gwas_lake, idps):
    """The interaction's β, SE, t and p, and the joint F of b and a·b (2 df), as statsmodels' OLS and its f_test."""
    candidate = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '2' ORDER BY pos LIMIT 1")[0]
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_ols", phenotypes=idps[:2], covariates=["age", "sex"],
                                               candidates=[candidate], chromosomes=["3"], replace=True))
    table = gwas_lake.results_dataset("epi_ols").to_table()
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=idps[:2], covariates=["age", "sex"])
    assert np.isnan(chosen.phenotypes).any()                         # phenotypes with missing values
    ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    a = dosages[ids.index(candidate)]
    rng = np.random.default_rng(0)
    tested = [row for row in table.to_pylist() if row["error"] is None]
    assert len(tested) > table.num_rows / 2
    for row in rng.choice(tested, 12, replace=False):
        b = dosages[ids.index(row["variant_id_b"])]
        y = chosen.phenotypes[:, idps.index(row["phenotype"])]
        used = ~np.isnan(y) & ~np.isnan(a) & ~np.isnan(b)
        columns = np.column_stack([chosen.covariates, a, b, a * b])[used]
        fit = sm.OLS(y[used], columns).fit()
        assert row["n"] == used.sum()
        np.testing.assert_allclose([row["beta_int"], row["se_int"], row["t_int"], row["p_int"]],
                                   [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1]], rtol=1e-8)
        joint = fit.f_test(np.eye(columns.shape[1])[-2:])            # b and a·b together (2 df)
        np.testing.assert_allclose([row["f_joint"], row["p_joint"]], [float(joint.fvalue), float(joint.pvalue)],
                                   rtol=1e-8)


def test_epistasis__rows_count_the_scope_and_the_skipped_pairs(gwas_lake, idps):
    on_3 = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '3' ORDER BY pos")
    candidate = on_3[len(on_3) // 2]
    report = run_epistasis(gwas_lake, EpistasisSettings(name="epi_count", phenotypes=idps[:2], covariates=["age"],
                                                        candidates=[candidate], chromosomes=["3"],
                                                        min_distance_kb=500, max_r2=0.5, replace=True))
    table = gwas_lake.results_dataset("epi_count").to_table()
    assert report.pairs == len(on_3) - 1 and table.num_rows == 2 * (len(on_3) - 1)   # every partner but itself
    with connect(gwas_lake) as con:
        pos = dict(con.sql("SELECT variant_id, pos FROM variants WHERE chrom = '3'").fetchall())
    close = {v for v in on_3 if v != candidate and abs(pos[v] - pos[candidate]) < 500_000}
    errors = dict(zip(table.column("variant_id_b").to_pylist(), table.column("error").to_pylist()))
    assert close and {v for v, error in errors.items() if error == "closer than --min-distance"} == close
    skipped = table.filter(pc.equal(table.column("error"), "closer than --min-distance"))
    assert skipped.column("beta_int").null_count == skipped.num_rows == 2 * len(close)


def test_epistasis__a_set_is_filtered_as_its_partners_are(gwas_lake, idps):
    """--maf removes a set's rare variants both as candidates and as partners: the rows are every pair of those
    that pass, once."""
    ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '5' ORDER BY pos LIMIT 60")
    set_sql = "SELECT variant_id FROM variants WHERE variant_id IN (" + ", ".join(f"'{v}'" for v in ids) + ")"
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_maf", phenotypes=idps[:1], covariates=[], set_sql=set_sql,
                                               min_maf=0.2, replace=True))
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=idps[:1], covariates=[])
    all_ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    frequency = np.array([np.nanmean(dosages[all_ids.index(v)]) / 2 for v in ids])
    passing = {v for v, f in zip(ids, frequency) if min(f, 1 - f) >= 0.2}
    table = gwas_lake.results_dataset("epi_maf").to_table()
    pairs = set(zip(table.column("variant_id_a").to_pylist(), table.column("variant_id_b").to_pylist()))
    assert 2 < len(passing) < len(ids) and len(pairs) == table.num_rows == len(passing) * (len(passing) - 1) // 2
    assert {v for pair in pairs for v in pair} == passing


def test_epistasis__pairs_in_ld_are_rows_saying_so(gwas_lake, idps):
    on_6 = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '6' ORDER BY pos")
    candidate = on_6[len(on_6) // 2]
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_ld", phenotypes=idps[:1], covariates=[],
                                               candidates=[candidate], chromosomes=["6"], max_r2=0.3, replace=True))
    table = gwas_lake.results_dataset("epi_ld").to_table()
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=idps[:1], covariates=[])
    all_ids = variant_ids(gwas_lake, "SELECT variant_id FROM variants ORDER BY variant_index")
    dosages = lake_dosages(gwas_lake, chosen.sample_index)
    a = dosages[all_ids.index(candidate)]

    def r2(variant: str) -> float:
        b = dosages[all_ids.index(variant)]
        both = ~np.isnan(a) & ~np.isnan(b)
        return np.corrcoef(a[both], b[both])[0, 1] ** 2

    linked = {v for v, error in zip(table.column("variant_id_b").to_pylist(), table.column("error").to_pylist())
              if error == "r² above --max-r2"}
    assert linked and linked == {v for v in on_6 if v != candidate and r2(v) > 0.3}


def test_pair_tests__a_phenotype_constant_on_the_pairs_samples_is_no_test():
    """The partner is called only where the phenotype is 1 (all cases): least squares fits it exactly, which is
    no test (too few samples), not an infinite t."""
    rng = np.random.default_rng(1)
    y = np.where(np.arange(60) < 30, 1.0, 0.0)[:, None]
    a, b = rng.integers(0, 3, (2, 60)).astype(float)
    called = (np.arange(60) < 30)[None, :]
    found = pair_tests(a[None, :], b[None, :], called, Phenotypes.of(y, np.ones((60, 1)), binary=[True]),
                       np.zeros((1, 1), int))
    assert ERRORS[found.error[0, 0, 0]] == "too few samples" and np.isnan(found.log10p()[0, 0, 0])


def test_pair_tests__a_variant_constant_on_the_pairs_samples_is_monomorphic():
    """The partner varies (1 on 40 samples, 2 on 10) but the phenotype is missing where it is 2: on the pair's
    samples it is constant, which is monomorphic, not collinear; so is a candidate constant there."""
    rng = np.random.default_rng(0)
    y = np.where(np.arange(50) < 40, rng.normal(size=50), np.nan)[:, None]
    varying, other = rng.integers(0, 3, (2, 50)).astype(float)
    partners = np.vstack([np.where(np.arange(50) < 40, 1.0, 2.0), other])
    found = pair_tests(np.vstack([varying, partners[0]]), partners, np.ones((2, 50), bool),
                       Phenotypes.of(y, np.ones((50, 1))), np.zeros((2, 2), int))
    assert [[ERRORS[code] for code in row] for row in found.error[..., 0]] == [["monomorphic", None],
                                                                                ["monomorphic", "monomorphic"]]


def test_epistasis__all_pairs_with_a_prefilter_write_what_passes_and_count_every_pair(gwas_lake, idps):
    """--all --prefilter-p tests every pair of the chosen variants by the full model: its rows are exactly the set
    scan's rows at p_int ≤ P or not tested, with the same numbers, and its summary counts every pair."""
    on_7 = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '7' ORDER BY pos")
    common = dict(phenotypes=idps[:2], covariates=["age"], min_distance_kb=200, replace=True)
    whole = run_epistasis(gwas_lake, EpistasisSettings(name="epi_whole", set_sql="SELECT variant_id FROM variants "
                                                       "WHERE chrom = '7'", **common))
    report = run_epistasis(gwas_lake, EpistasisSettings(name="epi_all", all_pairs=True, chromosomes=["7"],
                                                        prefilter_p=0.05, **common))
    assert report.pairs == whole.pairs == len(on_7) * (len(on_7) - 1) // 2
    everything = pairs_of(gwas_lake, "epi_whole")
    tested = [row for row in everything.values() if row["error"] is None]
    assert report.tested == len(tested) and 0 < report.tested < len(everything)   # --min-distance skips some
    summaries = [gwas_lake.results_provenance(name)["phenotype_summary"][idps[0]] for name in ("epi_all", "epi_whole")]
    assert summaries[0]["tests"] == summaries[1]["tests"] == sum(row["phenotype"] == idps[0] for row in tested)
    best = max(row["log10p_int"] for row in tested if row["phenotype"] == idps[0])
    tops = {f"{row['variant_id_a']} × {row['variant_id_b']}" for row in tested   # pairs of identical variants tie
            if row["phenotype"] == idps[0] and row["log10p_int"] > best - 1e-9}
    assert {summary["top_variant"] for summary in summaries} <= tops
    kept = {key: row for key, row in everything.items() if row["error"] is None and row["p_int"] <= 0.05}
    written = pairs_of(gwas_lake, "epi_all")
    assert written.keys() == kept.keys() and report.rows == len(written) < len(everything)   # skipped: counted only
    for key, row in written.items():
        np.testing.assert_allclose([row["beta_int"], row["log10p_int"], row["f_joint"]],
                                   [kept[key]["beta_int"], kept[key]["log10p_int"], kept[key]["f_joint"]], rtol=1e-10)


def test_epistasis__all_pairs_count_every_pair_where_no_row_is_written(gwas_lake, idps):
    """A strict P leaves most of a task's slices without a row: their pairs still count in the summary."""
    on_8 = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '8' ORDER BY pos")
    report = run_epistasis(gwas_lake, EpistasisSettings(name="epi_strict", all_pairs=True, chromosomes=["8"],
                                                        prefilter_p=1e-9, phenotypes=idps[:1], covariates=[],
                                                        replace=True))
    whole = run_epistasis(gwas_lake, EpistasisSettings(name="epi_strict_set", phenotypes=idps[:1], covariates=[],
                                                       set_sql="SELECT variant_id FROM variants WHERE chrom = '8'",
                                                       replace=True))
    assert report.pairs == whole.pairs == len(on_8) * (len(on_8) - 1) // 2 and report.tested == whole.tested
    assert report.rows == 0 and report.summary.tests.sum() + report.summary.failed.sum() == report.pairs


@pytest.mark.parametrize("options, message", [
    (dict(candidates=["rs_not_there"]), r"^--with: 'rs_not_there' not in release 'r1'"),
    (dict(set_sql="SELECT variant_id FROM variants WHERE false"), r"^--set-sql returned no variant_id"),
    (dict(set_sql="SELECT 'rs' || range::VARCHAR FROM range(10001)"),
     r"^--set-sql returned 10,001 variants \(50,005,000 pairs per phenotype\); at most 10,000.*--all --prefilter-p"),
    (dict(all_pairs=True), r"^--all writes only the pairs that pass --prefilter-p"),
    (dict(all_pairs=True, prefilter_p=2.0), r"^--prefilter-p must lie in \(0, 1\], got 2"),
    (dict(), r"^give one scope: --with"),
    (dict(all_pairs=True, set_sql="SELECT 1", prefilter_p=0.01), r"^give one scope: --with"),
    (dict(candidates=["rs1"], set_sql="SELECT 1"), r"^give one scope: --with"),
])
def test_epistasis__bad_scopes_are_one_line(gwas_lake, idps, options, message):
    with pytest.raises(BiolakeError, match=message):
        run_epistasis(gwas_lake, EpistasisSettings(name="bad", phenotypes=idps[:1], covariates=[], **options))


def test_epistasis_cli__writes_its_table_and_out_file(gwas_lake, idps, tmp_path):
    candidate = variant_ids(gwas_lake, "SELECT variant_id FROM variants WHERE chrom = '4' ORDER BY pos LIMIT 1")[0]
    result = CliRunner().invoke(main, ["epistasis", "--lake", str(gwas_lake.location.root), "--pheno", idps[0],
                                       "--with", candidate, "--chrom", "4", "--name", "epi_cli", "--replace",
                                       "--out", str(tmp_path / "pairs.tsv")])
    assert result.exit_code == 0, result.output
    header = (tmp_path / "pairs.tsv").read_text().splitlines()[0].split("\t")
    assert header[:3] == ["phenotype", "variant_id_a", "chrom_a"] and "beta_int" in header
    with connect(gwas_lake) as con:
        assert con.sql("SELECT count(*) FROM results.epi_cli").fetchone()[0] > 0
