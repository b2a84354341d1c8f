"""Chromosome X (#32 item 6): males' dosages coded as plink2 --glm codes them (--xchr-model 2: 0/2, the default;
1: 0/1), ploidy from the sex the genotype source gives, sex a covariate on X as plink2 makes it.

The small release's chromosome 22 is relabelled 23 (PLINK's X) in its .bim, and males' heterozygous calls there
become missing (a male has one X: a .bed stores his calls as homozygous)."""

import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from conftest import editable_copy, lake_of
from plink2_glm import plink2, read_bed_codes, write_bed_codes, write_design_files

from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect, design

PHENOTYPE = "25001-2.0"


@pytest.fixture(scope="module")
def x_release(tmp_path_factory, release_folder) -> Path:
    copy = editable_copy(release_folder, tmp_path_factory.mktemp("chrx") / "release")
    bim = [line.split("\t") for line in (copy / "genotypes.bim").read_text().splitlines()]
    on_x = np.array([fields[0] == "22" for fields in bim])
    (copy / "genotypes.bim").write_text("".join("\t".join(["23" if x else fields[0], *fields[1:]]) + "\n"
                                                for fields, x in zip(bim, on_x)))
    males = np.array([line.split()[4] == "1" for line in (copy / "genotypes.fam").read_text().splitlines()])
    magic, codes = read_bed_codes(copy / "genotypes.bed", len(males))
    x_codes = codes[on_x]
    x_codes[(x_codes == 2) & males] = 1
    codes[on_x] = x_codes
    write_bed_codes(copy / "genotypes.bed", magic, codes)
    return copy


@pytest.fixture(scope="module")
def x_lake(tmp_path_factory, x_release) -> Lake:
    return lake_of(x_release, tmp_path_factory.mktemp("chrx_lake"))


def plink2_glm_x(lake: Lake, release: Path, folder: Path, *args: str) -> pl.DataFrame:
    """plink2 --glm on chromosome X, its covariates age alone: plink2 adds sex there itself (with sex in --covar
    too, it stops: the covariates are collinear)."""
    with connect(lake) as con:
        chosen = design(con, phenotypes=[PHENOTYPE], covariates=["age"])
    pheno, covar = write_design_files(chosen, folder)
    plink2("--bfile", str(release / "genotypes"), "--pheno", str(pheno), "--covar", str(covar), "--chr", "X",
           "--no-psam-pheno", "--no-input-missing-phenotype", "--glm", "hide-covar", "omit-ref", "cols=+a1freq", *args,
           "--out", str(folder / "x"))
    return pl.read_csv(folder / "x.c0.glm.linear", separator="\t", null_values="NA")


@pytest.mark.parametrize("model", [2, 1])
def test_gwas_chrx__plink2_xchr_model(x_lake, x_release, tmp_path, model):
    report = run_gwas(x_lake, GwasSettings(name=f"x{model}", phenotypes=[PHENOTYPE], covariates=["age", "sex"],
                                           chromosomes=["X"], xchr_model=model))
    theirs = plink2_glm_x(x_lake, x_release, tmp_path, "--xchr-model", str(model))
    ours = pl.from_arrow(x_lake.results_dataset(f"x{model}").to_table()).join(
        theirs.select(variant_id="ID", their_n="OBS_CT", their_freq="A1_FREQ", their_beta="BETA", their_se="SE",
                      their_p="P"), on="variant_id")
    assert ours.height == theirs.height == report.rows > 20
    assert (ours["chrom"] == "X").all()
    np.testing.assert_array_equal(ours["n"].to_numpy(), ours["their_n"].to_numpy())
    for column in ("beta", "se", "p"):
        np.testing.assert_allclose(ours[column].to_numpy(), ours[f"their_{column}"].to_numpy(), rtol=1e-5)
    if model == 2:   # plink2's A1_FREQ under --xchr-model 2 counts a male's call as two alleles, as biolake
        np.testing.assert_allclose(ours["alt_freq"].to_numpy(), ours["their_freq"].to_numpy(), rtol=1e-5)


def test_gwas_chrx__without_sex_among_covariates_is_one_line(x_lake):
    with pytest.raises(BiolakeError, match=r"^chromosome X is tested with sex among the covariates, as plink2 --glm "
                                           r"adds it there; add sex to the covariates \(as the genotype source gives "
                                           r"it\), or leave X out \(--chrom\)$"):
        run_gwas(x_lake, GwasSettings(name="nosex", phenotypes=[PHENOTYPE], covariates=["age"], chromosomes=["X"]))
    with pytest.raises(BiolakeError, match=r"--xchr-model must be 1 \(males 0/1\) or 2 \(males 0/2, plink2's "
                                           r"default\), got 0"):
        GwasSettings(name="x", phenotypes=[PHENOTYPE], covariates=["age"], xchr_model=0)


def test_gwas_chrx__maf_counts_a_males_call_as_one_allele_as_plink2(x_lake, x_release, tmp_path):
    report = run_gwas(x_lake, GwasSettings(name="xmaf", phenotypes=[PHENOTYPE], covariates=["age", "sex"],
                                           chromosomes=["X"], min_maf=0.3, min_mac=60))
    keep = tmp_path / "keep.txt"
    with connect(x_lake) as con:
        keep.write_text("".join(f"{pid}\t{pid}\n" for pid in design(con, phenotypes=[PHENOTYPE],
                                                                    covariates=["age", "sex"]).participant_ids))
    log = plink2("--bfile", str(x_release / "genotypes"), "--keep", str(keep), "--chr", "X", "--maf", "0.3", "--mac",
                 "60", "--write-snplist", "--out", str(tmp_path / "maf"))
    theirs = int(re.search(r"(\d+) variants? removed due to allele frequency", " ".join(log.split())).group(1))
    assert report.removed == {"--maf/--mac": theirs} and 0 < theirs < report.rows + theirs
    tested = x_lake.results_dataset("xmaf").to_table(columns=["variant_id"]).column(0).to_pylist()
    assert tested == (tmp_path / "maf.snplist").read_text().split()
