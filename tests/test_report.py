"""Multiple testing, lead hits, plots and the HTML report over real results tables."""

import html

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from limma_ref import r_p_adjust

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sumstats import import_sumstats
from biolake.report import clumping_of, lead_hits, phenotype_summary, plot_results, write_report
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect, design
from biolake.stats.multiple import benjamini_hochberg, bh_fdr_sql, clump_by_distance, effective_tests, \
    family_threshold, lambda_gc, pairwise_correlation
from biolake.stats.plots import thin
from biolake.synth import LdPanel, write_ld_panel
from test_clump import run_plink_clump


def test_lambda_gc_and_family_threshold__follow_their_definitions():
    rng = np.random.default_rng(0)
    assert lambda_gc(rng.uniform(size=200_000)) == pytest.approx(1.0, abs=0.01)
    inflated = 2 * (1 - __import__("scipy").stats.norm.cdf(np.abs(rng.normal(size=200_000) * 1.1)))
    assert lambda_gc(inflated) == pytest.approx(1.21, abs=0.02)
    assert family_threshold(100) == pytest.approx(5e-10)


def test_clump_by_distance__keeps_one_lead_per_window_and_chromosome():
    chrom = np.array(["1"] * 5 + ["2"])
    pos = np.array([1_000, 400_000, 800_000, 1_400_000, 5_000_000, 1_000])
    log10p = np.array([8.0, 10.0, 9.0, 7.9, 7.5, 12.0])
    leads = clump_by_distance(chrom, pos, log10p, window=500_000)
    assert leads.tolist() == [5, 1, 3, 4]   # 0 and 2 lie within 500 kb of the stronger lead 1


def test_thin__keeps_every_strong_point_and_few_weak_ones():
    rng = np.random.default_rng(1)
    x, y = rng.uniform(size=1_000_000), -np.log10(rng.uniform(size=1_000_000))
    y[:50] = 30.0
    kept = thin(x, y)
    assert set(range(50)) <= set(kept.tolist()) and (y > 2).sum() <= len(kept) < 120_000


def test_benjamini_hochberg__is_monotone_in_p():
    p = np.random.default_rng(2).uniform(size=1000) ** 3
    q = benjamini_hochberg(p)
    order = np.argsort(p)
    assert (np.diff(q[order]) >= 0).all() and (q >= p).all()


@pytest.fixture(scope="module")
def two_idps(gwas_lake, scheduler, idps):
    run_gwas(gwas_lake, GwasSettings(name="report", phenotypes=idps[:2], covariates=["age", "sex", "site"]),
             scheduler=scheduler)
    return "report"


def test_phenotype_summary_and_lead_hits__agree_with_the_table(gwas_lake, two_idps):
    table = pl.from_arrow(gwas_lake.results_dataset(two_idps).to_table())
    summary = pl.from_arrow(phenotype_summary(gwas_lake, two_idps))
    for row in summary.iter_rows(named=True):
        mine = table.filter(pl.col("phenotype") == row["phenotype"])
        assert row["tests"] == mine["p"].drop_nulls().len()
        assert row["lambda_gc"] == pytest.approx(lambda_gc(mine["p"].drop_nulls().to_numpy()), rel=1e-6)
        assert row["hits"] == (mine["p"] < 5e-8).sum()
    loose = lead_hits(gwas_lake, two_idps, threshold=1e-3)
    assert loose.num_rows > 0 and (loose.column("p").to_numpy() < 1e-3).all()
    assert lead_hits(gwas_lake, two_idps, threshold=1e-3, family="count").num_rows <= loose.num_rows


def test_plots_and_report__are_written(gwas_lake, two_idps, tmp_path):
    written = plot_results(gwas_lake, two_idps, tmp_path / "plots")
    names = sorted(p.name for p in written)
    assert len(names) == 5 and "manhattan_all.png" in names
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    page = html.unescape(write_report(gwas_lake, two_idps, tmp_path / "report.html").read_text())
    assert page.count("data:image/png;base64,") == 5 and "lambda_gc" in page and '"kind": "gwas"' in page
    with pytest.raises(BiolakeError, match="no phenotype 'nope'"):
        plot_results(gwas_lake, two_idps, tmp_path / "x", phenotypes=["nope"])


def test_hits_cli__prints_and_writes(gwas_lake, two_idps, tmp_path):
    result = CliRunner().invoke(main, ["hits", "--lake", gwas_lake.location.root, "--result", two_idps,
                                       "--threshold", "1e-3", "--out", str(tmp_path / "hits.tsv")])
    assert result.exit_code == 0, result.output
    assert pl.read_csv(tmp_path / "hits.tsv", separator="\t").height > 0


def test_results_tables__are_views_in_lake_sql(gwas_lake, two_idps):
    from biolake.queries import connect

    with connect(gwas_lake) as con:
        joined = con.sql(f"SELECT count(*) FROM results.{two_idps} r JOIN variants v USING (variant_id)").fetchone()
    assert joined[0] == gwas_lake.results_dataset(two_idps).count_rows()


def test_lead_hits__fdr_uses_benjamini_hochberg_within_each_phenotype(gwas_lake, two_idps):
    table = pl.from_arrow(gwas_lake.results_dataset(two_idps).to_table())
    leads = pl.from_arrow(lead_hits(gwas_lake, two_idps, fdr=0.2, window=0))
    for phenotype, mine in table.filter(pl.col("p").is_not_null()).group_by("phenotype"):
        q = benjamini_hochberg(mine["p"].to_numpy())
        expected = dict(zip(mine["variant_id"].to_list(), q))
        found = leads.filter(pl.col("phenotype") == phenotype[0])
        assert set(found["variant_id"]) == {v for v, value in expected.items() if value <= 0.2}
        np.testing.assert_allclose(found["fdr"].to_numpy(), [expected[v] for v in found["variant_id"]], rtol=1e-9)


def test_gwas_provenance__stores_each_phenotypes_summary(gwas_lake, two_idps):
    stored = gwas_lake.results_provenance(two_idps)
    summary = pl.from_arrow(phenotype_summary(gwas_lake, two_idps))
    for row in summary.iter_rows(named=True):
        kept = stored["phenotype_summary"][row["phenotype"]]
        assert kept["tests"] == row["tests"] and kept["hits_5e-8"] == row["hits"]
        assert kept["lambda_gc"] == pytest.approx(row["lambda_gc"], rel=5e-3)   # from a histogram of −log10 p
    assert stored["family_threshold"] == pytest.approx(2.5e-8)


def test_pairwise_correlation__equals_pandas_pairwise_complete_corr():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6)) + 50.0      # correlated, off centre
    values[rng.random(values.shape) < 0.15] = np.nan
    values[:150, 5] = 3.0                      # constant where it meets some columns' values, not others'
    values[150:, 4] = np.nan
    np.testing.assert_allclose(pairwise_correlation(values), pd.DataFrame(values).corr().to_numpy(), rtol=1e-12)


def test_effective_tests__follow_nyholt_and_li_ji():
    """Nyholt: 1 + (M − 1)(1 − Var(λ)/M); Li & Ji: Σ [|λ| ≥ 1] + (|λ| − ⌊|λ|⌋); both between 1 and M."""
    rng = np.random.default_rng(5)
    correlation = np.corrcoef(rng.normal(size=(8, 200)) + rng.normal(size=(1, 200)))
    eigenvalues = np.linalg.eigvalsh(correlation)
    found = effective_tests(correlation)
    assert found["nyholt"] == pytest.approx(1 + 7 * (1 - eigenvalues.var(ddof=1) / 8), rel=1e-9)
    assert found["li_ji"] == pytest.approx(sum((v >= 1) + v % 1 for v in np.abs(eigenvalues)), rel=1e-9)
    assert 1 < found["li_ji"] < 8 and 1 < found["nyholt"] < 8


def test_hits__family_meff_divides_by_the_runs_effective_number_of_phenotypes(gwas_lake, two_idps, idps):
    stored = gwas_lake.results_provenance(two_idps)["phenotype_meff"]
    with connect(gwas_lake) as con:
        chosen = design(con, phenotypes=idps[:2], covariates=["age", "sex", "site"])
    assert stored == pytest.approx(effective_tests(pd.DataFrame(chosen.phenotypes).corr().to_numpy()), rel=1e-9)
    assert 1 <= stored["li_ji"] <= 2
    table = pl.from_arrow(gwas_lake.results_dataset(two_idps).to_table())
    threshold = 1e-3 / stored["li_ji"]
    leads = pl.from_arrow(lead_hits(gwas_lake, two_idps, threshold=1e-3, family="meff", window=0))
    assert set(leads["variant_id"]) == set(table.filter(pl.col("p") < threshold)["variant_id"])
    result = CliRunner().invoke(main, ["hits", "--lake", gwas_lake.location.root, "--result", two_idps,
                                       "--threshold", "1e-3", "--family", "meff", "--window", "0"])
    assert result.exit_code == 0, result.output
    assert f"{leads.height:,} lead hits" in result.output


def test_plots__draw_an_ewas_by_cpg_position(gwas_lake, scheduler, tmp_path):
    from biolake.ewas import EwasSettings, run_ewas

    run_ewas(gwas_lake, EwasSettings(name="report_ewas", exposures="SELECT participant_id, stress FROM covariates",
                                     covariates=["age", "sex"]), scheduler=scheduler)
    written = plot_results(gwas_lake, "report_ewas", tmp_path)
    assert sorted(p.name for p in written) == ["manhattan_stress.png", "qq_stress.png"]
    assert lead_hits(gwas_lake, "report_ewas", fdr=0.05).column_names[:2] == ["exposure", "cpg_id"]


def test_results_files__filters_on_any_column_see_every_row(gwas_lake, two_idps):
    """Each results file records min/max of every column: a filter on beta, n or error must not skip files."""
    import pyarrow.compute as pc

    dataset = gwas_lake.results_dataset(two_idps)
    everything = pl.from_arrow(dataset.to_table())
    for expression, expected in ((pc.field("beta") > 0, (everything["beta"] > 0).sum()),
                                 (pc.field("n") > 0, everything.height),
                                 (pc.field("error").is_null(), everything["error"].is_null().sum())):
        assert dataset.to_table(filter=expression).num_rows == expected


def test_results_file__range_covers_values_too_long_for_the_parquet_statistics(lake):
    """A structural variant's id over 4 KB leaves its row group without Parquet min/max; the file's
    Delta range must still cover it, or a filter on variant_id would skip the file."""
    import pyarrow.compute as pc
    from deltalake.transaction import create_table_with_add_actions
    from deltalake import Schema

    schema = pa.schema([("variant_id", pa.string()), ("beta", pa.float64())])
    files = lake.results_files("long_ids")
    output = files.open(schema, partition={}, part="0")
    output.write(pa.table({"variant_id": ["1:5:A:C", "1:6:A:G"], "beta": [0.1, 0.2]}))
    output.write(pa.table({"variant_id": ["1:1:" + "A" * 5000 + ":T", "1:9:A:T"], "beta": [0.3, 0.4]}))
    create_table_with_add_actions(files.uri, Schema.from_arrow(schema), [output.close()], mode="overwrite",
                                  partition_by=[], storage_options=lake.location.delta_options())
    dataset = lake.results("long_ids").to_pyarrow_dataset()
    assert dataset.to_table(filter=pc.field("variant_id") == "1:9:A:T").num_rows == 1
    assert dataset.to_table(filter=pc.field("variant_id") < "1:2").num_rows == 1


def test_bh_fdr_sql__matches_r_p_adjust_with_ties_nan_and_groups(tmp_path):
    rng = np.random.default_rng(4)
    p = np.round(rng.uniform(size=400) ** 4, 3)            # many ties, some p = 0 after rounding
    p[[3, 30, 300]] = np.nan
    with np.errstate(divide="ignore"):
        log10p = -np.log10(p)
    with duckdb.connect() as con:
        con.register("frame", pa.table({"phenotype": np.repeat(["a", "b"], 200), "log10p": log10p,
                                        "row": np.arange(400)}))
        got = con.sql(f"SELECT row, fdr FROM ({bh_fdr_sql('frame', groups=['phenotype'], log10p='log10p')}) "
                      "ORDER BY row").fetchall()
    fdr = np.array([np.nan if q is None else q for _, q in got])
    for half in (slice(0, 200), slice(200, 400)):
        np.testing.assert_allclose(fdr[half], r_p_adjust(tmp_path / str(half.start), p[half]), rtol=1e-10)


def test_hits_cli__a_long_table_points_to_its_own_out_flag(gwas_lake, two_idps):
    result = CliRunner().invoke(main, ["hits", "--lake", gwas_lake.location.root, "--result", two_idps,
                                       "--threshold", "1", "--window", "0"])
    assert result.exit_code == 0, result.output
    assert "more rows (all of them: --out FILE.tsv)" in result.output and "--format" not in result.output


@pytest.fixture(scope="module")
def ld_lake(tmp_path_factory) -> tuple[Lake, LdPanel]:
    """A lake whose release r1 is an LD panel (haplotype blocks of ~100 kb, 2 % missing calls), and the
    panel's planted association imported as the results 'panel' (imported statistics name no release)."""
    folder = tmp_path_factory.mktemp("ld_lake")
    panel = write_ld_panel(folder / "panel", samples=800, variants=2000, seed=5)
    lake = Lake.init(folder / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="r1", source="ld panel")
    signs = np.random.default_rng(5).choice([-1.0, 1.0], len(panel.p))
    pl.DataFrame({"variant_id": panel.variant_id, "chrom": panel.chrom, "pos": panel.pos, "effect_allele": "T",
                  "other_allele": "C", "beta": 0.1 * signs, "se": 0.05, "p": panel.p}).write_csv(
        folder / "panel.tsv", separator="\t")
    import_sumstats(lake, folder / "panel.tsv", name="panel", phenotype="trait")
    return lake, panel


HIT_P = 2e-3   # the hits of the panel's association: its planted loci and a few by chance


@pytest.mark.parametrize("window, r2", [(500_000, 0.1), (100_000, 0.5)])
def test_lead_hits__ld_clumps_equal_plink19_clump_of_the_hits(ld_lake, tmp_path, window, r2):
    """Leads and their loci are plink1.9 --clump's index variants and SP2, with --clump-p1 and --clump-p2 at
    the hits' threshold."""
    lake, panel = ld_lake
    assert HIT_P not in panel.p
    leads = lead_hits(lake, "panel", threshold=HIT_P, window=window, r2=r2, ld_release="r1")
    assert clumping_of(leads) == (f"LD clumping: r² > {r2:g} within ±{window:,} bp, genotypes of release r1 "
                                  "(as plink1.9 --clump)")
    plinks = run_plink_clump(panel.prefix, panel.variant_id, panel.p, tmp_path / "hits",
                             {"p1": HIT_P, "p2": HIT_P, "r2": r2, "kb": window / 1000})
    theirs = {row["SNP"]: [] if row["SP2"] == "NONE" else [m.split("(")[0] for m in row["SP2"].split(",")]
              for row in plinks}
    ours = {row["variant_id"]: row["members"] for row in leads.to_pylist()}
    assert len(theirs) >= 4 and ours == theirs
    assert leads.column("locus_hits").to_pylist() == [1 + len(row["members"]) for row in leads.to_pylist()]
    distance = lead_hits(lake, "panel", threshold=HIT_P, window=window)
    assert set(distance.column("variant_id").to_pylist()) != set(ours)   # the test tells the two apart


def test_lead_hits__without_genotypes_clump_by_distance_and_say_why(ld_lake):
    lake, panel = ld_lake
    leads = lead_hits(lake, "panel", threshold=HIT_P)
    assert clumping_of(leads) == ("distance clumping: one lead per ±500,000 bp (results 'panel' name no release; "
                                  "--ld-release names one)")
    hits = panel.p < HIT_P
    for row in leads.to_pylist():
        near = hits & (panel.chrom == row["chrom"]) & (np.abs(panel.pos - row["pos"]) <= 500_000)
        assert row["members"] == [v for v in panel.variant_id[near] if v != row["variant_id"]]
    assert clumping_of(lead_hits(lake, "panel", threshold=HIT_P, window=0, ld_release="r1")) == (
        "distance clumping: one lead per ±0 bp (--window 0: no LD asked for)")


def test_hits_cli__says_how_it_clumped(gwas_lake, two_idps, ld_lake):
    lake, _ = ld_lake
    for root, args, said in ((gwas_lake.location.root, ["--result", two_idps, "--threshold", "1e-3"],
                              "genotypes of release r1"),
                             (lake.location.root, ["--result", "panel", "--threshold", "2e-3"], "name no release"),
                             (lake.location.root, ["--result", "panel", "--threshold", "2e-3", "--ld-release", "r1",
                                                   "--r2", "0.5"], "LD clumping: r² > 0.5")):
        result = CliRunner().invoke(main, ["hits", "--lake", root, *args])
        assert result.exit_code == 0 and said in result.output, result.output
    refused = CliRunner().invoke(main, ["hits", "--lake", lake.location.root, "--result", "panel",
                                        "--ld-release", "nope"])
    assert refused.exit_code == 2 and "unknown release 'nope'" in refused.output, refused.output


def test_report__shows_each_lead_with_its_locus_and_how_hits_were_clumped(gwas_lake, two_idps, tmp_path):
    page = html.unescape(write_report(gwas_lake, two_idps, tmp_path / "report.html").read_text())
    assert "LD clumping: r² > 0.1 within ±500,000 bp, genotypes of release r1" in page
    assert "<th>members</th>" in page


def commit_h2_and_rg(lake: Lake, phenotypes: list[str]) -> tuple[pa.Table, pa.Table]:
    """Commit 'heritability' (kind h2 by LD score regression, of three ``phenotypes``) and 'correlations' (kind rg:
    each pair of them, one without an estimate as LDSC leaves a pair with an h² ≤ 0), as biolake h2/rg write them."""
    from biolake.frame import provenance_header
    from biolake.ldsc import H2_COLUMNS
    from biolake.run import publish_table
    from biolake.lake.schema import RESULTS_KINDS

    h2 = pa.Table.from_pylist([
        {"phenotype": phenotype, "method": "ldsc", "h2": h2, "h2_se": h2 / 7, "intercept": 1.0123 + h2 / 10,
         "intercept_se": 0.0071, "ratio": 0.0456, "ratio_se": 0.0321, "mean_chisq": 1.2345 + h2, "lambda_gc": 1.1717,
         "n_variants": 3456, "n": 1000.0} for phenotype, h2 in zip(phenotypes, [0.4321, 0.2468, -0.0135])],
        schema=RESULTS_KINDS["h2"].arrow_schema(columns=H2_COLUMNS))
    pairs = [(0, 1, 0.6543, 0.0876), (0, 2, float("nan"), float("nan")), (1, 2, -0.3219, 0.1111)]
    rg = pa.Table.from_pylist([
        {"result_1": "idps", "phenotype_1": phenotypes[one], "result_2": "idps", "phenotype_2": phenotypes[other],
         "rg": value, "rg_se": se, "z": value / se, "n_variants": 3456} for one, other, value, se in pairs],
        schema=RESULTS_KINDS["rg"].arrow_schema())
    for name, table in (("heritability", h2), ("correlations", rg)):
        kind = "h2" if "h2" in table.column_names else "rg"
        publish_table(lake, name, table, provenance={**provenance_header(kind, release="r1"), "result": "idps"})
    return h2, rg


def test_report__of_h2_and_rg_shows_each_estimate_and_the_rg_matrix(lake, tmp_path):
    h2, _ = commit_h2_and_rg(lake, ["25010-2.0", "25019-2.0", "25020-2.0"])
    page = write_report(lake, "heritability", tmp_path / "h2.html").read_text()
    for row in h2.to_pylist():
        cells = [f"{value:.4g}" if isinstance(value, float) else value for value in row.values()]
        assert "<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>" in page, row
    assert all(f"<th>{column}</th>" in page for column in ("h2_se", "intercept", "ratio", "lambda_gc"))
    page = write_report(lake, "correlations", tmp_path / "rg.html").read_text()
    matrix = page[page.index('<table class="rg">'):].split("</table>")[0]
    assert matrix.count("<tr>") == 4 and "<th>25010-2.0</th>" in matrix   # three traits down and across
    assert matrix.count(">0.654 ± 0.088</td>") == matrix.count(">-0.322 ± 0.111</td>") == 2   # each pair both ways
    assert matrix.count(">NA</td>") == 2 and "rgba(178,24,43,0.46)" in matrix and "rgba(33,102,172,0.23)" in matrix
    assert "<td>0.6543</td><td>0.0876</td>" in page                                    # the pairs as stored


def test_report__refuses_a_kind_without_scans_or_estimates(lake, tmp_path):
    from test_schema import commit

    from biolake.lake.schema import RESULTS_KINDS

    commit(lake, "scores", RESULTS_KINDS["prs"].arrow_schema(columns=["prs_p1"]).empty_table(), kind="prs")
    with pytest.raises(BiolakeError, match="^results 'scores' are of kind 'prs'; kinds with scans"):
        write_report(lake, "scores", tmp_path / "scores.html")
