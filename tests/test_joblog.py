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
    assert missing.output.strip() == "error: results 'kin_logged' version 7 has no job log (made before biolake kept " \
                                     "them, or by a job that writes none)"
