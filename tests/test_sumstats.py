"""Summary statistics in and out: GWAS-SSF, REGENIE and PLINK 2 layouts, round trips and real plink2 output."""

import hashlib
import subprocess

import numpy as np
import polars as pl
import pytest
import yaml
from click.testing import CliRunner

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.sumstats import import_sumstats, read_sumstats
from biolake.lake.errors import InputError
from biolake.queries.output import export_dialect
from plink2_glm import PLINK2
from biolake.lake.vectors import encode_calls


@pytest.fixture(scope="module")
def one_idp(gwas_lake, scheduler, idps):
    run_gwas(gwas_lake, GwasSettings(name="sumstats", phenotypes=[idps[0]], covariates=["age", "sex"]),
             scheduler=scheduler)
    return "sumstats"


@pytest.mark.parametrize("dialect, suffix", [("gwas-ssf", ".tsv.gz"), ("regenie", ".regenie"), ("plink2", ".glm.linear")])
def test_export_then_import__gives_back_the_same_numbers(gwas_lake, one_idp, tmp_path, dialect, suffix):
    out = str(tmp_path / f"out{suffix}")
    rows = export_dialect(gwas_lake, one_idp, out, dialect=dialect, digits=None)
    assert import_sumstats(gwas_lake, out, name=f"back_{dialect.replace('-', '_')}", phenotype="y") == rows
    ours = pl.from_arrow(gwas_lake.results_dataset(one_idp).to_table()).sort("variant_id")
    back = pl.from_arrow(gwas_lake.results_dataset(f"back_{dialect.replace('-', '_')}").to_table()).sort("variant_id")
    assert back["alt"].to_list() == ours["alt"].to_list() and back["pos"].to_list() == ours["pos"].to_list()
    for column in ("beta", "se", "p"):
        np.testing.assert_allclose(back[column].to_numpy(), ours[column].to_numpy(), rtol=1e-12, err_msg=column)
    if dialect == "gwas-ssf":
        meta = yaml.safe_load((tmp_path / f"out{suffix}-meta.yaml").read_text())
        assert meta["data_file_md5sum"] == hashlib.md5((tmp_path / f"out{suffix}").read_bytes()).hexdigest()
        assert meta["file_type"] == "GWAS-SSF v1.0"
        written = pl.read_csv(out, separator="\t", null_values="#NA", infer_schema_length=None)
        assert written.columns == [
            "chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
            "effect_allele_frequency", "p_value", "neg_log_10_p_value", "rsid", "variant_id", "n"]
        assert written["chromosome"].dtype == pl.Int64 and written["chromosome"].is_sorted()
        assert written["rsid"].str.contains(r"^rs[0-9]+$").all()
        first = written.row(0, named=True)
        assert first["variant_id"] == f"{first['chromosome']}_{first['base_pair_location']}_" \
                                      f"{first['other_allele']}_{first['effect_allele']}"


def test_export_dialect__gwas_ssf_leaves_out_untested_rows_and_counts_them(monomorphic_lake, scheduler, tmp_path):
    # GWAS-SSF requires beta, standard_error and p_value on every row: the monomorphic variant's test did not run
    lake, monomorphic = monomorphic_lake
    run_gwas(lake, GwasSettings(name="ssf", phenotypes=["25001-2.0"], covariates=["age", "sex"], chromosomes=["1"]),
             scheduler=scheduler)
    stored = pl.from_arrow(lake.results_dataset("ssf").to_table())
    out = tmp_path / "ssf.tsv.gz"
    assert export_dialect(lake, "ssf", str(out), dialect="gwas-ssf") == stored.height - 1
    written = pl.read_csv(out, separator="\t", null_values="#NA", infer_schema_length=None)
    meta = yaml.safe_load((tmp_path / "ssf.tsv.gz-meta.yaml").read_text())
    assert meta["untested_rows_omitted"] == 1 and meta["untested_rows_by_reason"] == {"monomorphic": 1}
    assert monomorphic not in written["rsid"].to_list() and written.height == stored.height - 1
    # the standard's mandatory columns, in order, each on every row and within its range
    mandatory = ["chromosome", "base_pair_location", "effect_allele", "other_allele", "beta", "standard_error",
                 "effect_allele_frequency", "p_value"]
    assert written.columns[:8] == mandatory and written.select(mandatory).null_count().sum_horizontal().item() == 0
    assert written.select(pl.col("beta", "standard_error", "p_value").is_finite().all()).row(0) == (True,) * 3
    assert written["chromosome"].is_between(1, 25).all() and (written["p_value"] > 0).all()
    assert (written["p_value"] <= 1).all() and written["effect_allele_frequency"].is_between(0, 1).all()
    assert written.select(pl.col("effect_allele", "other_allele").str.contains("^[ACGT]+$").all()).row(0) == (True,) * 2


def test_export_dialect__writes_p_below_the_float_range_from_log10p(gwas_lake, tmp_path):
    # p = 10^-400.5 reads 0 as a float64, which GWAS-SSF refuses: it is written from −log10 p
    (tmp_path / "tiny.regenie").write_text("CHROM GENPOS ID ALLELE0 ALLELE1 A1FREQ N TEST BETA SE CHISQ LOG10P\n"
                                           "1 100 rs1 A G 0.3 1000 ADD 0.5 0.01 2500 400.5\n"
                                           "1 200 rs2 C T 0.2 1000 ADD 0.1 0.05 4 1.3\n")
    import_sumstats(gwas_lake, tmp_path / "tiny.regenie", name="underflow", phenotype="y")
    for dialect, column in [("gwas-ssf", "p_value"), ("plink2", "P")]:
        export_dialect(gwas_lake, "underflow", str(tmp_path / "out.tsv"), dialect=dialect)
        written = pl.read_csv(tmp_path / "out.tsv", separator="\t", infer_schema_length=0)
        assert written[column].to_list() == ["3.162278e-401", "0.05011872"], dialect


def test_export_results__prints_the_stated_significant_digits(gwas_lake, one_idp, tmp_path):
    stored = pl.from_arrow(gwas_lake.results_dataset(one_idp).to_table()).sort("variant_id")
    default, full = tmp_path / "default.tsv", tmp_path / "full.tsv.gz"
    for out, flags in [(default, []), (full, ["--digits", "full"])]:
        result = CliRunner().invoke(main, ["export", "--lake", gwas_lake.location.root, "--result", one_idp,
                                           "--out", str(out), *flags])
        assert result.exit_code == 0, result.output
    text = pl.read_csv(default, separator="\t", null_values="NA", infer_schema_length=0).sort("variant_id")
    digits = pl.col("beta", "se", "t", "p", "log10p", "alt_freq").str.replace(r"e.*$", "").str.replace(r"^[-0.]*", "") \
        .str.replace(r"\.", "").str.replace(r"0+$", "").str.len_chars()
    assert text.select(digits.max()).max_horizontal().item() == 7         # at most 7 significant digits, and 7 used
    exported = pl.read_csv(default, separator="\t", null_values="NA").sort("variant_id")
    for column in ("beta", "p"):   # within a tenth of the unit of the 6th digit, the last one plink2 prints
        x, printed = stored[column].to_numpy(), exported[column].to_numpy()
        unit = 10.0 ** (np.floor(np.log10(np.abs(x))) - 5)
        assert (np.abs(printed - x) <= 0.05 * unit).all(), column
    back = pl.read_csv(full, separator="\t", null_values="NA").sort("variant_id")
    for column in ("beta", "se", "p", "log10p"):
        assert back[column].to_list() == stored[column].to_list(), column          # every digit: the stored floats
    refused = CliRunner().invoke(main, ["export", "--lake", gwas_lake.location.root, "--result", one_idp,
                                        "--out", str(default), "--digits", "0"])
    assert refused.exit_code == 2 and "significant digits from 1 to 17, or full" in refused.output


def test_read_sumstats__takes_plink2_a1_as_the_effect_allele(tmp_path):
    rng = np.random.default_rng(9)
    g = rng.binomial(2, np.r_[np.full(5, 0.2), np.full(5, 0.85)][:, None], (10, 200)).astype(float)
    (tmp_path / "d.bed").write_bytes(bytes([0x6C, 0x1B, 0x01]) + encode_calls(g).tobytes())
    (tmp_path / "d.bim").write_text("".join(f"1\tv{i}\t0\t{100 * (i + 1)}\tT\tC\n" for i in range(10)))
    (tmp_path / "d.fam").write_text("".join(f"s{j}\ts{j}\t0\t0\t0\t-9\n" for j in range(200)))
    y = g[0] * 0.5 + rng.normal(size=200)
    (tmp_path / "p.tsv").write_text("#FID\tIID\ty\n" + "".join(f"s{j}\ts{j}\t{v:.10f}\n" for j, v in enumerate(y)))
    subprocess.run([PLINK2, "--bfile", str(tmp_path / "d"), "--pheno", str(tmp_path / "p.tsv"), "--glm",
                    "allow-no-covars", "--out", str(tmp_path / "o")], check=True, capture_output=True)
    theirs = pl.read_csv(tmp_path / "o.y.glm.linear", separator="\t", null_values="NA")
    assert (theirs["A1"] != theirs["ALT"]).any(), "plink2 reports the minor allele, REF for common ALTs"
    read = read_sumstats(tmp_path / "o.y.glm.linear", require=("variant_id", "alt", "ref", "beta", "se", "p"))
    assert read["alt"].to_list() == theirs["A1"].to_list()
    assert read["ref"].to_list() == [r if a == x else x for a, r, x in zip(theirs["A1"], theirs["REF"], theirs["ALT"])]
    np.testing.assert_array_equal(read["beta"].to_numpy(), theirs["BETA"].to_numpy())


def test_sumstats__bad_files_name_the_problem(gwas_lake, one_idp, tmp_path):
    (tmp_path / "bad.tsv").write_text("SNP\tA1\tP\nrs1\tA\t0.1\n")
    with pytest.raises(InputError, match="bad.tsv: no effect \\(beta\\) column"):
        read_sumstats(tmp_path / "bad.tsv")
    result = CliRunner().invoke(main, ["export", "--lake", gwas_lake.location.root, "--result", one_idp,
                                       "--format", "gwas-ssf", "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and "GWAS-SSF files are .tsv or .tsv.gz" in result.output
    result = CliRunner().invoke(main, ["import-sumstats", str(tmp_path / "bad.tsv"), "--lake",
                                       gwas_lake.location.root, "--name", "bad"])
    assert result.exit_code == 2 and "no chromosome column" in result.output


def test_read_sumstats__keeps_only_additive_rows_and_text_chromosomes(tmp_path):
    rows = ["#CHROM\tPOS\tID\tREF\tALT\tA1\tTEST\tBETA\tSE\tP"]
    rows += [f"1\t{100 + i}\trs{i}\tC\tT\tT\tADD\t0.1\t0.1\t0.5" for i in range(10_050)]
    rows += ["1\t100\trs0\tC\tT\tT\tage\t9.0\t0.1\t1e-300", "X\t5\trsX\tC\tT\tT\tADD\t0.2\t0.1\t0.04"]
    (tmp_path / "glm.linear").write_text("\n".join(rows) + "\n")
    read = read_sumstats(tmp_path / "glm.linear")
    assert read.height == 10_051 and read["beta"].max() == pytest.approx(0.2) and read["chrom"][-1] == "X"
    (tmp_path / "bad.tsv").write_text("SNP\tA1\tBETA\tP\nrs1\tA\tabc\t0.1\nrs2\tA\t0.1\t0.2\n")
    with pytest.raises(InputError, match="bad.tsv: a value does not read as expected"):
        read_sumstats(tmp_path / "bad.tsv")


def test_read_sumstats__spells_chromosomes_the_lakes_way_and_names_an_unknown_one(tmp_path):
    header = "CHR\tBP\tSNP\tA1\tA2\tBETA\tSE\tP\n"
    good = tmp_path / "good.tsv"
    good.write_text(header + "chr1\t10\trs1\tA\tG\t0.1\t0.1\t0.5\n23\t20\trs2\tA\tG\t0.1\t0.1\t0.5\n"
                             "M\t30\trs3\tA\tG\t0.1\t0.1\t0.5\n")
    assert read_sumstats(good)["chrom"].to_list() == ["1", "X", "MT"]
    bad = tmp_path / "bad.tsv"
    bad.write_text(header + "1\t10\trs1\tA\tG\t0.1\t0.1\t0.5\nchrUn_gl000220\t20\trs2\tA\tG\t0.1\t0.1\t0.5\n")
    with pytest.raises(InputError, match=r"bad.tsv.*line 3.*unknown chromosome code 'chrUn_gl000220'"):
        read_sumstats(bad)
