"""Reporting on SNP × SNP pairs (kind epistasis): hits are pairs, named "A × B", clumped by distance around both
their variants, in `biolake hits`, the per-phenotype summary and the HTML report."""

import functools
import html
import itertools

import numpy as np
import pytest
from click.testing import CliRunner

from biolake import report
from biolake.cli import main
from biolake.epistasis import EpistasisSettings, run_epistasis
from biolake.report import clumping_of, lead_hits, phenotype_summary, write_report
from biolake.stats.multiple import clump_pairs_by_distance

LOOSE = 1e-2   # real interactions are rare on the small lake: a loose threshold gives pairs enough to clump
PAIR_COLUMNS = ["phenotype", "variant_id_a", "chrom_a", "pos_a", "variant_id_b", "chrom", "pos", "beta_int",
                "log10p_int", "locus_hits", "members", "p"]


def test_clump_pairs_by_distance__puts_each_pair_in_the_locus_of_its_strongest_near_lead():
    chrom_a, pos_a = np.array(["1", "1", "1", "2", "1"]), np.array([100, 700_000, 350_000, 100, 5_000])
    chrom_b, pos_b = np.array(["2", "2", "2", "1", "3"]), np.array([100, 100, 100, 400_000, 100])
    lead = clump_pairs_by_distance(chrom_a, pos_a, chrom_b, pos_b, np.array([9.0, 8.0, 7.0, 6.0, 5.0]))
    # 2 lies near both leads 0 and 1 (600 kb apart in a), and joins the stronger; 3 is 0 turned round; 4's b is far
    assert lead.tolist() == [0, 1, 0, 0, 4]


@pytest.fixture(scope="module")
def pairs(gwas_lake, idps) -> str:
    """Every pair of chromosome 3's variants tested on two IDPs (pairs on one chromosome: either variant may lie
    near either of another pair's)."""
    run_epistasis(gwas_lake, EpistasisSettings(name="epi_report", phenotypes=idps[:2], covariates=[],
                                               set_sql="SELECT variant_id FROM variants WHERE chrom = '3'",
                                               replace=True))
    return "epi_report"


def hit_pairs(lake, name: str, phenotype: str) -> dict[str, dict]:
    """The pairs of one phenotype past LOOSE, as rows keyed by "A × B"."""
    rows = lake.results_dataset(name).to_table().to_pylist()
    return {f"{row['variant_id_a']} × {row['variant_id_b']}": row for row in rows
            if row["phenotype"] == phenotype and row["p_int"] is not None and row["p_int"] < LOOSE}


def near(one: dict, other: dict, window: int) -> bool:
    """Whether both variants of pair ``one`` lie within ±window bp of ``other``'s two, either way round."""
    def close(chrom, pos, other_chrom, other_pos) -> bool:
        return chrom == other_chrom and abs(pos - other_pos) <= window

    a, b = (one["chrom_a"], one["pos_a"]), (one["chrom"], one["pos"])
    other_a, other_b = (other["chrom_a"], other["pos_a"]), (other["chrom"], other["pos"])
    return (close(*a, *other_a) and close(*b, *other_b)) or (close(*a, *other_b) and close(*b, *other_a))


@pytest.mark.parametrize("window", [20_000, 500_000])   # the variants lie in three clusters of ~200 kb
def test_lead_hits__clump_pairs_by_distance_around_both_variants(gwas_lake, idps, pairs, window):
    leads = lead_hits(gwas_lake, pairs, threshold=LOOSE, window=window)
    assert leads.column_names == PAIR_COLUMNS
    assert clumping_of(leads) == (f"pair clumping by distance: one lead pair per ±{window:,} bp around both its "
                                  "variants")
    assert (leads.column("p").to_numpy() < LOOSE).all()
    grouped = 0
    for phenotype in idps[:2]:
        hits = hit_pairs(gwas_lake, pairs, phenotype)
        mine = [row for row in leads.to_pylist() if row["phenotype"] == phenotype]
        named = [f"{row['variant_id_a']} × {row['variant_id_b']}" for row in mine]
        listed = named + [member for row in mine for member in row["members"]]
        assert sorted(listed) == sorted(hits)                             # every hit pair once, as lead or member
        for lead, row in zip(named, mine):
            assert row["locus_hits"] == 1 + len(row["members"])
            assert all(near(hits[member], hits[lead], window) for member in row["members"])
            order = [(hits[m]["pos_a"], hits[m]["pos"]) for m in row["members"]]   # one chromosome: genome order
            assert order == sorted(order)
        assert not any(near(one, other, window) for one, other in itertools.combinations(mine, 2))
        grouped += sum(row["locus_hits"] > 1 for row in mine)
    assert len(leads) >= 4 and grouped > 0                                # the test sees leads and loci


def test_lead_hits__of_pairs_take_family_and_fdr_as_other_kinds(gwas_lake, pairs):
    loose = lead_hits(gwas_lake, pairs, threshold=LOOSE)
    family = lead_hits(gwas_lake, pairs, threshold=LOOSE, family="count")   # two IDPs: LOOSE / 2
    assert family.column_names == PAIR_COLUMNS and (family.column("p").to_numpy() < LOOSE / 2).all()
    assert sum(family.column("locus_hits").to_pylist()) < sum(loose.column("locus_hits").to_pylist())
    by_fdr = lead_hits(gwas_lake, pairs, fdr=0.99)
    assert by_fdr.column_names == [*PAIR_COLUMNS[:-3], "fdr", *PAIR_COLUMNS[-3:]]
    assert by_fdr.num_rows > 0 and (by_fdr.column("fdr").to_numpy() <= 0.99).all()


def test_phenotype_summary__names_the_top_pair(gwas_lake, pairs):
    rows = gwas_lake.results_dataset(pairs).to_table().to_pylist()
    for summary in phenotype_summary(gwas_lake, pairs).to_pylist():
        best = max((row for row in rows if row["phenotype"] == summary["phenotype"] and row["log10p_int"] is not None),
                   key=lambda row: row["log10p_int"])
        assert summary["top"] == f"{best['variant_id_a']} × {best['variant_id_b']}"
        assert summary["top_log10p"] == pytest.approx(best["log10p_int"])


def test_report__shows_both_variants_of_each_lead_pair(gwas_lake, pairs, tmp_path, monkeypatch):
    """The page's lead hits (past LOOSE here: none reach 5e-8 on the small lake) name both variants of each pair."""
    monkeypatch.setattr(report, "lead_hits", functools.partial(lead_hits, threshold=LOOSE))
    page = html.unescape(write_report(gwas_lake, pairs, tmp_path / "pairs.html").read_text())
    assert "pair clumping by distance" in page and "<th>variant_id_a</th>" in page and "<th>members</th>" in page
    lead = lead_hits(gwas_lake, pairs, threshold=LOOSE).to_pylist()[0]
    assert f"<td>{lead['variant_id_a']}</td><td>3</td><td>{lead['pos_a']}</td><td>{lead['variant_id_b']}</td>" in page
    for summary in phenotype_summary(gwas_lake, pairs).to_pylist():
        assert f"<td>{summary['top']}</td>" in page


def test_hits_cli__prints_pairs_and_how_they_were_clumped(gwas_lake, pairs, tmp_path):
    out = tmp_path / "pairs.tsv"
    result = CliRunner().invoke(main, ["hits", "--lake", gwas_lake.location.root, "--result", pairs,
                                       "--threshold", str(LOOSE), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "pair clumping by distance: one lead pair per ±500,000 bp around both its variants" in result.output
    lines = out.read_text().splitlines()
    assert lines[0].split("\t") == PAIR_COLUMNS
    assert len(lines) - 1 == lead_hits(gwas_lake, pairs, threshold=LOOSE).num_rows
