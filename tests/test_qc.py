"""plink2's quality-control filters (#32 item 3): --geno, --mind, --hwe [midp], --maf, --mac, --min-info.

The small release's .bed is edited to give each filter work (variants out of Hardy–Weinberg both ways, variants
and samples with many missing calls), ingested, and scanned with the filters; plink2 reads the same .bed with the
same samples and filters. The counts its log prints, the variants and samples left, its --hardy p-values, its
MaCH r² and its --glm on what is left are what biolake must give.
"""

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from conftest import editable_copy, lake_of
from plink2_glm import plink2, read_bed_codes, write_bed_codes, write_design_files

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect
from biolake.queries.blocks import genotype_blocks, read_genotype_blocks
from biolake.queries.design import design
from biolake.stats.qc import hard_call_counts, hwe_exact_p, mach_r2

COVARIATES = ["age", "sex", "site", "PC1", "PC2"]
FILTERS = dict(max_missing=0.05, max_sample_missing=0.1, hwe=1e-4, min_maf=0.05, min_mac=40)
PLINK2_FILTERS = ["--geno", "0.05", "--mind", "0.1", "--hwe", "1e-4", "--maf", "0.05", "--mac", "40"]


def edit_bed(path: Path, n_samples: int, seed: int = 1) -> None:
    """Give the filters work: 40 variants out of Hardy–Weinberg (20 without heterozygotes, 20 with too many),
    60 variants missing up to 15 % of calls, 12 samples missing 2–30 % of variants."""
    magic, codes = read_bed_codes(path, n_samples)
    rng = np.random.default_rng(seed)
    variants = rng.permutation(len(codes))
    for v in variants[:20]:                                    # no heterozygotes: hets become hom A2
        codes[v][codes[v] == 2] = 3
    for v in variants[20:40]:                                  # too many: half the homozygotes become hets
        homozygous = np.flatnonzero((codes[v] == 0) | (codes[v] == 3))
        codes[v][homozygous[::2]] = 2
    for v in variants[40:100]:
        codes[v][rng.random(n_samples) < rng.uniform(0, 0.15)] = 1
    for j in rng.choice(n_samples, 12, replace=False):
        codes[rng.random(len(codes)) < rng.uniform(0.02, 0.3), j] = 1
    write_bed_codes(path, magic, codes)


@pytest.fixture(scope="module")
def qc_release(tmp_path_factory, release_folder) -> Path:
    copy = editable_copy(release_folder, tmp_path_factory.mktemp("qc") / "release")
    edit_bed(copy / "genotypes.bed", len((copy / "genotypes.fam").read_text().splitlines()))
    return copy


@pytest.fixture(scope="module")
def qc_lake(tmp_path_factory, qc_release) -> Lake:
    return lake_of(qc_release, tmp_path_factory.mktemp("qc_lake"))


def removed_by_plink2(log: str) -> dict[str, int]:
    """The counts plink2's log prints, by filter (as biolake names them)."""
    patterns = {"--mind": r"(\d+) samples? removed due to missing genotype data \(--mind\)",
                "--geno": r"--geno: (\d+) variants? removed", "--hwe": r"--hwe(?: midp)?: (\d+) variants? removed",
                "--maf/--mac": r"(\d+) variants? removed due to allele frequency",
                "--min-info": r"--mach-r2-filter: (\d+) variants? removed"}
    text = " ".join(log.split())
    return {name: int(found.group(1)) for name, pattern in patterns.items()
            if (found := re.search(pattern, text))}


def lake_blocks(lake: Lake, samples: np.ndarray | None = None):
    blocks = genotype_blocks(lake)
    n = lake.read("samples", columns=["assay"]).column(0).to_pylist().count("genotypes")
    return [block for fragment in blocks for block in read_genotype_blocks(fragment, n_samples=n, samples=samples)]


def test_hwe_exact_p__plink2_hardy_to_its_printed_digits(qc_lake, qc_release, tmp_path):
    blocks = lake_blocks(qc_lake)
    counts = np.vstack([hard_call_counts(b.dosages, np.diff(b.missing.indptr)) for b in blocks])
    ids = np.concatenate([b.variants.column("variant_id").to_numpy(zero_copy_only=False) for b in blocks])
    for modifier, column in (("", "P"), ("midp", "MIDP")):
        plink2("--bfile", str(qc_release / "genotypes"), "--hardy", *[modifier] * bool(modifier),
               "--out", str(tmp_path / "h"))
        theirs = pl.read_csv(tmp_path / "h.hardy", separator="\t")
        assert theirs["ID"].to_list() == ids.tolist()
        # plink2's A1 here is the lake's REF: HOM_A1 counts our 0 calls
        np.testing.assert_array_equal(counts[:, :3], theirs.select(["HOM_A1_CT", "HET_A1_CT", "TWO_AX_CT"]).to_numpy())
        ours = hwe_exact_p(counts[:, 1], counts[:, 0], counts[:, 2], midp=bool(modifier))
        expected = theirs[column].to_numpy()
        assert (expected < 1e-10).sum() >= 20 and (expected > 0.5).sum() > 100
        np.testing.assert_allclose(ours, expected, rtol=5e-6)


def test_mach_r2__plink2_freq_machr2(qc_lake, qc_release, tmp_path):
    plink2("--bfile", str(qc_release / "genotypes"), "--freq", "cols=+machr2", "--out", str(tmp_path / "f"))
    theirs = pl.read_csv(tmp_path / "f.afreq", separator="\t", schema_overrides={"MACH_R2": pl.Float64})["MACH_R2"]
    theirs = theirs.to_numpy()
    ours = np.concatenate([mach_r2(b.dosages, np.diff(b.missing.indptr)) for b in lake_blocks(qc_lake)])
    np.testing.assert_allclose(ours, theirs, rtol=5e-6)
    assert np.nanmin(ours) < 0.6   # the edited variants without heterozygotes


def test_gwas__filters_remove_what_plink2_removes_and_test_what_it_tests(qc_lake, qc_release, tmp_path):
    phenotype = [c for c in qc_lake.read("idps").column_names if c not in ("participant_id", "release")][0]
    report = run_gwas(qc_lake, GwasSettings(name="qc", phenotypes=[phenotype], covariates=COVARIATES, **FILTERS))
    with connect(qc_lake) as con:   # the analysis samples before --mind: plink2 applies --mind to them itself
        everyone = design(con, phenotypes=[phenotype], covariates=COVARIATES)
    keep = tmp_path / "keep.txt"
    keep.write_text("".join(f"{pid}\t{pid}\n" for pid in everyone.participant_ids))
    pheno, covar = write_design_files(everyone, tmp_path)
    log = plink2("--bfile", str(qc_release / "genotypes"), "--keep", str(keep), *PLINK2_FILTERS,
                 "--pheno", str(pheno), "--covar", str(covar), "--no-psam-pheno", "--no-input-missing-phenotype",
                 "--glm", "hide-covar", "omit-ref", "--write-samples", "--out", str(tmp_path / "glm"))
    theirs = removed_by_plink2(log)
    assert all(theirs[name] > 0 for name in ("--mind", "--geno", "--hwe", "--maf/--mac")), theirs
    mind = {reason: count for reason, count in qc_lake.results_provenance("qc")["dropped"].items()
            if "(--mind 0.1" in reason}
    assert list(mind.values()) == [theirs.pop("--mind")]
    assert report.removed == theirs == qc_lake.results_provenance("qc")["variants_removed"]
    assert report.samples == len((tmp_path / "glm.id").read_text().splitlines()) - 1
    glm = pl.read_csv(tmp_path / "glm.c0.glm.linear", separator="\t", null_values="NA")
    ours = pl.from_arrow(qc_lake.results_dataset("qc").to_table()).join(
        glm.select(variant_id="ID", their_n="OBS_CT", their_beta="BETA", their_p="P"), on="variant_id", how="full")
    assert ours.height == glm.height == report.rows == 1500 - sum(report.removed.values())
    np.testing.assert_array_equal(ours["n"].to_numpy(), ours["their_n"].to_numpy())
    for column in ("beta", "p"):
        np.testing.assert_allclose(ours[column].to_numpy(), ours[f"their_{column}"].to_numpy(), rtol=1e-5)


def test_gxe_cli__hwe_midp_and_mac_counts_are_plink2s(qc_lake, qc_release, tmp_path):
    """The same filters reach GxE through the CLI, with the mid-p test; the lines printed are plink2's."""
    phenotype = [c for c in qc_lake.read("idps").column_names if c not in ("participant_id", "release")][0]
    result = CliRunner().invoke(main, ["gxe", "--lake", str(qc_lake.location.root), "--pheno", phenotype,
                                       "--covar", "age,sex,site,stress", "--exposure", "stress", "--hwe", "1e-4",
                                       "--hwe-midp", "--mac", "40", "--maf", "0", "--scheduler", "threads"])
    assert result.exit_code == 0, result.output
    with connect(qc_lake) as con:
        everyone = design(con, phenotypes=[phenotype], covariates=["age", "sex", "site", "stress"])
    keep = tmp_path / "keep.txt"
    keep.write_text("".join(f"{pid}\t{pid}\n" for pid in everyone.participant_ids))
    theirs = removed_by_plink2(plink2("--bfile", str(qc_release / "genotypes"), "--keep", str(keep), "--hwe", "1e-4",
                                      "midp", "--mac", "40", "--write-snplist", "--out", str(tmp_path / "g")))
    assert f"--hwe: {theirs['--hwe']} variants removed due to Hardy-Weinberg exact test." in result.output
    assert (f"{theirs['--maf/--mac']} variants removed due to allele frequency threshold(s) (--maf/--mac)."
            in result.output)
    assert qc_lake.results_provenance("gxe")["variants_removed"] == theirs


def test_min_info__imputed_dosages_as_plink2_mach_r2_filter(release_folder, tmp_path):
    """Dosages of a VCF's DS field: --min-info removes what plink2 --mach-r2-filter does, and --geno counts a dosage
    plink2 gives no hard call (0.75: beyond --hard-call-threshold 0.1) as missing, as plink2 does."""
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "vcf", "vcf-dosage=DS-force", "id-paste=iid",
           "--out", str(tmp_path / "g"))
    vcf = tmp_path / "g.vcf"
    lines = vcf.read_text().splitlines(keepends=True)
    body = [i for i, line in enumerate(lines) if not line.startswith("#")]
    for i in body[::7]:   # every seventh variant imputed poorly: its hets become 0.75
        lines[i] = lines[i].replace(":1\t", ":0.75\t")
    vcf.write_text("".join(lines))
    lake = Lake.init(tmp_path / "lake")
    ingest_release(lake, ReleaseSources(vcf=vcf), release="r1", source="test")
    settings = dict(min_info=0.9, max_missing=0.05)
    ours = run_gwas(lake, GwasSettings(name="info", **settings,
                                       phenotypes="SELECT participant_id, sample_index % 11 AS y FROM samples",
                                       covariates="SELECT participant_id, sample_index % 7 AS c FROM samples"))
    theirs = removed_by_plink2(plink2("--vcf", str(vcf), "dosage=DS", "--mach-r2-filter", "0.9", "--geno", "0.05",
                                      "--write-snplist", "--out", str(tmp_path / "p")))
    assert theirs["--geno"] > 0 and theirs["--min-info"] > 0
    assert ours.removed == theirs


@pytest.mark.parametrize("flags, message", [
    (["--geno", "1.5"], r"--geno must be a fraction of the samples, from 0 to 1, got 1.5"),
    (["--mind", "2"], r"--mind must be a fraction of the variants, from 0 to 1, got 2.0"),
    (["--hwe", "0"], r"--hwe must be a p-value threshold above 0 and below 1, got 0.0"),
    (["--hwe-midp"], r"--hwe-midp sets --hwe's test: give --hwe P"),
    (["--min-info", "2"], r"--min-info must be a MaCH r² from 0 to 1, got 2.0"),
    (["--maf", "0.5"], r"--maf must be a minor allele frequency, at least 0 and below 0.5, got 0.5"),
    (["--mac=-1"], r"--mac must be an allele count of at least 0, got -1.0"),
])
def test_gwas_cli__a_filter_out_of_range_is_one_line_naming_the_flag(qc_lake, flags, message):
    result = CliRunner().invoke(main, ["gwas", "--lake", str(qc_lake.location.root), "--pheno", "25001-2.0",
                                       "--covar", "age", *flags])
    assert result.exit_code != 0
    assert re.fullmatch(f"error: {message}", result.output.strip()), result.output
    with pytest.raises(BiolakeError):
        GwasSettings(name="x", phenotypes=["y"], covariates=["age"], max_missing=2.0)
