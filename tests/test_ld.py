"""Pairwise LD checked against ``plink1.9 --r2`` / ``--r`` on genotypes with real-looking LD and missing calls.

The panel (biolake.synth.write_ld_panel) has haplotype blocks of ~100 kb and 5 % missing
calls on average; it is ingested into a lake, and plink1.9 reads the same .bed with
``--keep-allele-order`` (plink 1.9 otherwise counts each variant's minor allele, which flips
the sign of r and D′ where alt is the major one). Every pair plink prints must be ours, in
its order, with r, r², the haplotype r² and D′ equal to plink's 6 printed digits; windows by
``--ld-window-kb`` (plink's variant-count window set beyond reach: ``--ld-window 999999``),
``--ld-window-r2``, ``inter-chr``, ``dprime`` and ``dprime-signed``. A missing plink1.9 fails
these tests, never skips them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from biolake.cli import main
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.ld import LdSettings, Region, run_ld
from biolake.queries import connect
from biolake.stats.ld import genotype_r, haplotype_ld, ld_features, pair_counts
from biolake.synth import LdPanel, write_ld_panel

PLINK19 = shutil.which("plink1.9") or "plink1.9"
WIDE_OPEN = ["--ld-window", "999999"]      # biolake's windows are in kb only


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> LdPanel:
    return write_ld_panel(tmp_path_factory.mktemp("ld") / "panel", samples=400, variants=1200, seed=5,
                          missing_calls=0.05)


@pytest.fixture(scope="module")
def ld_lake(tmp_path_factory, panel) -> Lake:
    lake = Lake.init(tmp_path_factory.mktemp("ld-lake") / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="r1", source=str(panel.prefix))
    return lake


def run_plink_ld(bfile: Path, flags: list[str], out: Path) -> list[dict]:
    """plink1.9 ``flags`` (an --r2 or --r report) on ``bfile`` with --keep-allele-order, as rows of its .ld."""
    subprocess.run([PLINK19, "--bfile", str(bfile), "--keep-allele-order", *flags, "--out", str(out)],
                   check=True, capture_output=True)
    lines = Path(f"{out}.ld").read_text().split("\n")
    return [dict(zip(lines[0].split(), line.split())) for line in lines[1:] if line.strip()]


def our_pairs(lake: Lake, name: str, **settings) -> list[dict]:
    run_ld(lake, LdSettings(name=name, replace=True, **settings), workers=1)
    return pl.from_arrow(lake.results_dataset(name).to_table()).to_dicts()


def assert_same_pairs(ours: list[dict], plinks: list[dict], columns: dict[str, str]) -> None:
    """Same pairs in the same order; each of ``columns`` (plink's name → ours) to plink's printed digits."""
    assert len(plinks) >= 20
    assert [(row["variant_id"], row["variant_id_b"]) for row in ours] == [(row["SNP_A"], row["SNP_B"])
                                                                          for row in plinks]
    for mine, theirs in zip(ours, plinks):
        assert (mine["chrom"], str(mine["pos"]), mine["chrom_b"], str(mine["pos_b"])) == (
            theirs["CHR_A"], theirs["BP_A"], theirs["CHR_B"], theirs["BP_B"])
        for plinks_name, name in columns.items():
            assert float(f"{mine[name]:.6g}") == float(theirs[plinks_name]), (theirs["SNP_A"], theirs["SNP_B"], name)


def region_flags(region: str) -> list[str]:
    chosen = Region.parse(region)
    return ["--chr", chosen.chrom, "--from-bp", str(chosen.start), "--to-bp", str(chosen.stop)]


@pytest.mark.parametrize("window_kb, r2_min", [(1000, 0.2), (30, 0.0), (250, 0.6)],
                         ids=["defaults", "all-pairs-30kb", "strong-250kb"])
def test_run_ld__region_equals_plink19_r2_and_r(ld_lake, panel, tmp_path, window_kb, r2_min):
    region = f"1:1-{int(panel.pos[panel.chrom == '1'][250])}"
    ours = our_pairs(ld_lake, "region", region=region, window_kb=window_kb, r2_min=r2_min)
    window = ["--ld-window-kb", str(window_kb), "--ld-window-r2", str(r2_min), *WIDE_OPEN, *region_flags(region)]
    assert_same_pairs(ours, run_plink_ld(panel.prefix, ["--r2", *window], tmp_path / "r2"), {"R2": "r2"})
    assert_same_pairs(ours, run_plink_ld(panel.prefix, ["--r", *window], tmp_path / "r"), {"R": "r"})


def test_run_ld__variants_equal_plink19_ld_snp_list(ld_lake, panel, tmp_path):
    listed = [str(v) for v in panel.variant_id[[3, 40, 41, 700, 1100]]]
    (tmp_path / "listed.txt").write_text("\n".join(listed) + "\n")
    ours = our_pairs(ld_lake, "listed", variants=tuple(listed), window_kb=150, r2_min=0.05)
    plinks = run_plink_ld(panel.prefix, ["--r2", "--ld-snp-list", str(tmp_path / "listed.txt"), "--ld-window-kb",
                                         "150", "--ld-window-r2", "0.05", *WIDE_OPEN], tmp_path / "listed")
    assert_same_pairs(ours, plinks, {"R2": "r2"})
    assert {row["variant_id"] for row in ours} == set(listed)


def test_run_ld__inter_chr_equals_plink19(ld_lake, panel, tmp_path):
    """No window: the listed variants meet every variant of both chromosomes."""
    listed = [str(v) for v in panel.variant_id[[10, 900]]]
    (tmp_path / "listed.txt").write_text("\n".join(listed) + "\n")
    ours = our_pairs(ld_lake, "inter", variants=tuple(listed), inter_chr=True, r2_min=0.01)
    plinks = run_plink_ld(panel.prefix, ["--r2", "inter-chr", "--ld-snp-list", str(tmp_path / "listed.txt"),
                                         "--ld-window-r2", "0.01"], tmp_path / "inter")
    assert_same_pairs(ours, plinks, {"R2": "r2"})
    assert any(row["chrom"] != row["chrom_b"] for row in ours)


def test_run_ld__region_inter_chr_equals_plink19_all_pairs(ld_lake, panel, tmp_path):
    region = f"2:1-{int(panel.pos[panel.chrom == '2'][60])}"
    ours = our_pairs(ld_lake, "all_pairs", region=region, inter_chr=True, r2_min=0.3)
    plinks = run_plink_ld(panel.prefix, ["--r2", "inter-chr", "--ld-window-r2", "0.3", *region_flags(region)],
                          tmp_path / "all")
    assert_same_pairs(ours, plinks, {"R2": "r2"})


def test_run_ld__haplotype_r2_and_dprime_equal_plink19_dprime(ld_lake, panel, tmp_path):
    """plink's dprime modifiers switch R and R2 to the EM haplotype estimate: our r2_haplotype and dprime."""
    region = f"2:1-{int(panel.pos[panel.chrom == '2'][150])}"
    ours = our_pairs(ld_lake, "dprime", region=region, window_kb=100, r2_min=0.0)
    window = ["--ld-window-kb", "100", "--ld-window-r2", "0", *WIDE_OPEN, *region_flags(region)]
    plinks = run_plink_ld(panel.prefix, ["--r2", "dprime", *window], tmp_path / "dprime")
    assert_same_pairs(ours, plinks, {"R2": "r2_haplotype"})
    for mine, theirs in zip(ours, plinks):
        assert float(f"{abs(mine['dprime']):.6g}") == float(theirs["DP"]), theirs["SNP_B"]
    signed = run_plink_ld(panel.prefix, ["--r", "dprime-signed", *window], tmp_path / "signed")
    assert_same_pairs(ours, signed, {"DP": "dprime"})
    assert any(row["dprime"] < 0 for row in ours)


def test_genotype_r__equals_pearson_correlation_over_samples_called_at_both(panel):
    dosages = panel.dosages[:60]
    features = ld_features(np.nan_to_num(dosages), np.isnan(dosages))
    r = genotype_r(pair_counts(features, features))
    both = ~np.isnan(dosages[0]) & ~np.isnan(dosages[7])
    np.testing.assert_allclose(r[0, 7], np.corrcoef(dosages[0, both], dosages[7, both])[0, 1], rtol=1e-12)
    np.testing.assert_allclose(r, r.T, rtol=1e-12)
    np.testing.assert_allclose(np.diag(r), 1.0, rtol=1e-12)


def test_pair_counts__one_product_equals_pairs_one_at_a_time(panel):
    """Blocking does not change a pair's counts: the whole matrix equals each pair computed alone."""
    features = ld_features(np.nan_to_num(panel.dosages[:30]), np.isnan(panel.dosages[:30]))
    whole = pair_counts(features[:, :12], features)
    alone = pair_counts(features[:, 5:6], features[:, 20:21])[:, :, 0, 0]
    np.testing.assert_array_equal(whole[:, :, 5, 20], alone)
    r2, dprime = haplotype_ld(whole[:, :, 5])
    assert r2.shape == dprime.shape == (30,) and np.all(np.abs(dprime[np.isfinite(dprime)]) <= 1 + 1e-12)


def test_ld_cli__results_view_and_out_file(ld_lake, panel, tmp_path):
    """``biolake ld`` commits a results table of kind ld that SQL reads as results.NAME, exported with --out."""
    out = tmp_path / "pairs.tsv"
    region = f"1:1-{int(panel.pos[panel.chrom == '1'][100])}"
    done = CliRunner().invoke(main, ["ld", "--lake", ld_lake.location.root, "--region", region, "--window-kb", "50",
                                     "--name", "cli_ld", "--replace", "--out", str(out), "--workers", "1", "--quiet"])
    assert done.exit_code == 0, done.output
    with connect(ld_lake) as con:
        (count,) = con.sql("SELECT count(*) FROM results.cli_ld WHERE r2 >= 0.2").fetchone()
    exported = pl.read_csv(out, separator="\t")
    assert count > 0 and exported.height == count and ld_lake.results_info("cli_ld").kind == "ld"
    assert ld_lake.derived("cli_ld", "summary") is None      # pairs hold no tests: no browse index
    assert exported.columns == ["variant_id", "chrom", "pos", "variant_id_b", "chrom_b", "pos_b", "n", "r", "r2",
                                "r2_haplotype", "dprime"]


@pytest.mark.parametrize("settings, named", [
    ({}, "exactly one of --variants and --region"), ({"variants": ("a",), "region": "1:1-2"}, "exactly one"),
    ({"region": "1:20-10"}, "--region"), ({"region": "chr1"}, "--region"), ({"variants": ()}, "--variants"),
    ({"region": "1:1-10", "window_kb": 0}, "--window-kb"), ({"region": "1:1-10", "r2_min": 1.5}, "--r2-min"),
])
def test_ld_settings__bad_flags_name_the_flag(settings, named):
    with pytest.raises(BiolakeError, match=named):
        LdSettings(name="ld", **settings)


def test_run_ld__unknown_ids_and_empty_region_refused(ld_lake, panel):
    first_id = str(panel.variant_id[0])
    with pytest.raises(BiolakeError, match=r"--variants: release r1 has no variant 'rs_nowhere'"):
        run_ld(ld_lake, LdSettings(name="x", variants=(first_id, "rs_nowhere")), workers=1)
    with pytest.raises(BiolakeError, match=r"--region 2:1-2: release r1 has no variant there"):
        run_ld(ld_lake, LdSettings(name="x", region="2:1-2"), workers=1)
