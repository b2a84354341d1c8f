"""Every job's log (#32 item 5): NAME.log beside --out and under the lake's results, as plink2's PREFIX.log."""

from click.testing import CliRunner

from biolake.cli import main


def test_gwas_log__options_counts_warnings_and_where_results_went(gwas_lake, tmp_path):
    remove = tmp_path / "remove.txt"
    remove.write_text("nobody_here\n")
    out = tmp_path / "idps.tsv.gz"
    result = CliRunner().invoke(main, ["gwas", "--lake", str(gwas_lake.location.root), "--pheno", "25001-2.0",
                                       "--covar", "age,sex", "--remove", str(remove), "--geno", "--hwe", "1e-6",
                                       "--threads", "2", "--name", "logged", "--out", str(out)])
    assert result.exit_code == 0, result.output
    beside = tmp_path / "idps.log"
    assert f"log written to {beside}" in result.output
    text = beside.read_text()
    for line in ["Options in effect:", "  biolake gwas", f"  --lake {gwas_lake.location.root}", "  --pheno 25001-2.0",
                 "  --geno 0.1", "  --hwe 1e-06", "  --workers 2", "Release: r1",
                 f"Warning: --remove {remove}: 1 of its 1 ids are not in release 'r1'",
                 "--geno: 0 variants removed due to missing genotype data.",
                 f"Results: {gwas_lake.results_uri('logged')} (version 0)", f"Exported to {out}"]:
        assert line in text.splitlines() or any(row.startswith(line) for row in text.splitlines()), line
    assert "--hwe: " in text and "λGC" in text and text.splitlines()[-1].startswith("End time: ")
    assert "--covar-sql" not in text    # options left at their defaults are not listed, as plink2
    assert gwas_lake.read_job_log("logged") == text
    shown = CliRunner().invoke(main, ["results", "log", "logged", "--lake", str(gwas_lake.location.root)])
    assert shown.exit_code == 0 and shown.output == text


def test_every_job_keeps_a_log_under_the_lake_without_out(gwas_lake):
    result = CliRunner().invoke(main, ["kinship", "--lake", str(gwas_lake.location.root), "--name", "kin_logged",
                                       "--replace"])
    assert result.exit_code == 0, result.output
    text = gwas_lake.read_job_log("kin_logged")
    assert "  biolake kinship" in text and "Results: " in text and "kin_logged" in text
    missing = CliRunner().invoke(main, ["results", "log", "kin_logged", "--version", "7", "--lake",
                                        str(gwas_lake.location.root)])
    assert missing.output.strip() == "error: results 'kin_logged' has no version 7 (its versions are 0 to 0)"


def test_a_job_that_stops_leaves_its_log_beside_out(gwas_lake, tmp_path):
    out = tmp_path / "none.tsv"
    result = CliRunner().invoke(main, ["gwas", "--lake", str(gwas_lake.location.root), "--pheno", "25001-2.0",
                                       "--covar", "age", "--chrom", "22", "--region", "1:1-1000", "--name", "none",
                                       "--out", str(out)])
    assert result.exit_code == 2 and not out.exists()
    text = (tmp_path / "none.log").read_text()
    assert "  --region 1:1-1000" in text and "Error: no variant on chromosomes 22 is chosen by --region 1:1-1000" in text
    assert "Results: none (the job stopped)" in text
