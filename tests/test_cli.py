import json
import re
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from click.testing import CliRunner
from snapshot import lake_files

from biolake.cli import main


def run(*args: str) -> "CliRunner.invoke":
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_main__help_teaches_a_session():
    result = run("--help")
    assert result.exit_code == 0
    for command in ("synth", "init", "ingest", "releases", "sql", "demo"):
        assert command in result.output
    assert "biolake ingest /tmp/r --lake /tmp/lake --release r1" in result.output


def test_cli__synth_init_ingest_releases_sql(tmp_path):
    release, lake = tmp_path / "r", tmp_path / "lake"
    assert run("synth", release, "--samples", 120, "--variants", 400, "--idps", 4, "--cpgs", 100,
               "--seed", 1, "--quiet").exit_code == 0
    assert run("init", lake).exit_code == 0
    ingested = run("ingest", release, "--lake", lake, "--release", "r1", "--quiet")
    assert ingested.exit_code == 0, ingested.output
    assert "committed release 'r1'" in ingested.output
    listed = run("releases", "--lake", lake)
    assert "r1" in listed.output
    answer = run("sql", "SELECT count(*) AS n FROM variants", "--lake", lake, "--format", "json")
    assert json.loads(answer.output) == {"n": 400}


def test_cli__user_errors_are_one_line_with_status_2(tmp_path):
    result = run("releases", "--lake", tmp_path / "missing")
    assert result.exit_code == 2
    assert result.output.startswith("error: ") and "biolake init" in result.output
    assert "Traceback" not in result.output


def test_console_script__ends_as_python_would_without_the_teardown(loaded_lake, tmp_path):
    """The installed ``biolake`` (``biolake.cli:run``) leaves by os._exit, after what Python does at exit: its
    status, and its output whole in a file or pipe; a user error is one line, status 2."""
    script = str(Path(sys.executable).parent / "biolake")
    rows = tmp_path / "variants.csv"
    with rows.open("w") as out:
        done = subprocess.run([script, "sql", "SELECT * FROM variants", "--lake", loaded_lake.location.root,
                               "--format", "csv"], stdout=out, stderr=subprocess.PIPE, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert pl.read_csv(rows).height == loaded_lake.read("variants").num_rows
    refused = subprocess.run([script, "releases", "--lake", str(tmp_path / "missing")], capture_output=True,
                             text=True, timeout=120)
    assert (refused.returncode, refused.stdout, refused.stderr.count("\n")) == (2, "", 1), refused.stderr
    assert refused.stderr.startswith("error: ")


def test_ingest__requires_sources(tmp_path):
    run("init", tmp_path / "lake")
    result = run("ingest", "--lake", tmp_path / "lake", "--release", "r1")
    assert result.exit_code == 2 and "nothing to ingest" in result.output


def test_ingest__check_prints_the_plan_and_writes_nothing(tmp_path):
    release, lake = tmp_path / "r", tmp_path / "lake"
    run("synth", release, "--samples", 60, "--variants", 200, "--idps", 4, "--cpgs", 100, "--quiet")
    run("init", lake)
    before = lake_files(lake)
    checked = run("ingest", release, "--lake", lake, "--release", "r1", "--check", "--quiet")
    assert checked.exit_code == 0, checked.output
    assert "release 'r1' passes every check; nothing was written" in checked.output
    assert "  genotypes: 200 rows" in checked.output and "  idps: 60 rows" in checked.output
    assert lake_files(lake) == before
    assert run("ingest", release, "--lake", lake, "--release", "r1", "--quiet").exit_code == 0


def small_lake(tmp_path):
    """A lake holding a 60-participant synthetic release as r1, made by the CLI."""
    release, lake = tmp_path / "r", tmp_path / "lake"
    run("synth", release, "--samples", 60, "--variants", 200, "--idps", 4, "--cpgs", 100, "--quiet")
    run("init", lake)
    run("ingest", release, "--lake", lake, "--release", "r1", "--quiet")
    return lake


def test_sql__formats_and_prompt(tmp_path):
    lake = small_lake(tmp_path)
    query = "SELECT chrom, count(*) AS n FROM variants GROUP BY chrom ORDER BY CAST(chrom AS INT) LIMIT 2"
    csv = run("sql", query, "--lake", lake, "--format", "csv")
    assert csv.output.splitlines()[0] == "chrom,n"
    run("sql", query, "--lake", lake, "--format", "parquet", "--out", tmp_path / "out.parquet")
    assert pl.read_parquet(tmp_path / "out.parquet").columns == ["chrom", "n"]
    refused = run("sql", "COPY variants TO 'x.csv'", "--lake", lake)
    assert refused.exit_code == 2 and "read-only" in refused.output
    prompt = CliRunner().invoke(main, ["sql", "--lake", str(lake)],
                                input="SELECT count(*) AS n\nFROM idps;\nDROP VIEW idps;\n.quit\n")
    assert prompt.exit_code == 0
    assert "60" in prompt.output and "refused: DROP" in prompt.output


def test_releases__without_a_lake_says_how_to_name_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("BIOLAKE_LAKE", raising=False)
    unnamed = run("releases")
    assert unnamed.exit_code == 2 and "--lake LAKE" in unnamed.output and "$BIOLAKE_LAKE" in unnamed.output
    assert "biolake init LAKE" in unnamed.output and "init catalog.yaml" not in unnamed.output
    missing_catalog = run("releases", "--lake", "elsewhere.yaml")
    assert missing_catalog.exit_code == 2 and "init elsewhere.yaml" not in missing_catalog.output
    assert "biolake init ROOT" in missing_catalog.output


def test_sql__a_long_result_says_how_to_get_every_row(tmp_path):
    lake = small_lake(tmp_path)
    query = "SELECT * FROM variants"
    assert "more rows (all of them: --format csv --out FILE)" in run("sql", query, "--lake", lake).output
    prompt = CliRunner().invoke(main, ["sql", "--lake", str(lake)], input=query + ";\n")
    assert "more rows (all of them: biolake sql 'QUERY' --format csv --out FILE)" in prompt.output


def write_sumstats(path) -> str:
    path.write_text("variant_id\tchrom\tpos\teffect_allele\tother_allele\tbeta\tse\tp\n"
                    "rs1\t1\t100\tA\tG\t0.1\t0.05\t0.04\nrs2\t2\t200\tC\tT\t-0.2\t0.1\t0.05\n")
    return str(path)


JOBS_NAMING_RESULTS = {   # every job that writes a results table, with inputs it would fail on if it started
    "gwas": ["gwas", "--pheno", "no_such_idp", "--covar", "age"],
    "ewas": ["ewas", "--exposure", "no_such_idp", "--covar", "age"],
    "gxe": ["gxe", "--pheno", "no_such_idp", "--covar", "age", "--exposure", "age"],
    "meta": ["meta", "--result", "no_such_a", "--result", "no_such_b"],
    "prs": ["prs", "--weights", "no_such_file.tsv"],
    "import-sumstats": ["import-sumstats", "no_such_file.tsv"],
}


@pytest.mark.parametrize("job", sorted(JOBS_NAMING_RESULTS))
def test_results_jobs__refuse_an_existing_name_before_starting(loaded_lake, tmp_path, job):
    root = loaded_lake.location.root
    assert run("import-sumstats", write_sumstats(tmp_path / "s.tsv"), "--lake", root, "--name", "taken").exit_code == 0
    version = loaded_lake.results("taken").version()
    refused = CliRunner().invoke(main, [*JOBS_NAMING_RESULTS[job], "--lake", root, "--name", "taken"])
    assert refused.exit_code == 2
    assert re.fullmatch(r"error: results table 'taken' exists \(from gwas on \d{4}-\d\d-\d\d\); "
                        r"use --replace or another --name", refused.output.strip()), refused.output
    assert loaded_lake.results("taken").version() == version


def test_import_sumstats__replace_rewrites_an_existing_name(loaded_lake, tmp_path):
    root, file = loaded_lake.location.root, write_sumstats(tmp_path / "s.tsv")
    assert run("import-sumstats", file, "--lake", root, "--name", "taken").exit_code == 0
    again = run("import-sumstats", file, "--lake", root, "--name", "taken", "--replace")
    assert again.exit_code == 0, again.output
    assert loaded_lake.results("taken").version() == 1


def test_results_list_and_drop(loaded_lake, tmp_path):
    root = loaded_lake.location.root
    for name in ("first", "second"):
        run("import-sumstats", write_sumstats(tmp_path / "s.tsv"), "--lake", root, "--name", name)
    listed = CliRunner().invoke(main, ["results", "list", "--lake", root], env={"COLUMNS": "200"})
    assert listed.exit_code == 0
    rows = [line for line in listed.output.splitlines() if "first" in line or "second" in line]
    assert len(rows) == 2 and all(" gwas " in row and " 2 " in row for row in rows), listed.output
    dropped = run("results", "drop", "first", "--lake", root)
    assert dropped.exit_code == 0 and "dropped results 'first' (gwas, 2 rows)" in dropped.output
    assert loaded_lake.results_names() == ["second"]
    assert not (tmp_path / "lake" / "browse" / "first").exists() and (tmp_path / "lake" / "browse" / "second").exists()
    assert [row["name"] for row in loaded_lake.read("dropped_results").to_pylist()] == ["first"]
    missing = CliRunner().invoke(main, ["results", "drop", "first", "--lake", root])
    assert missing.exit_code == 2 and "no results named 'first'" in missing.output


def test_gwas__threads_is_plink2s_name_for_workers(loaded_lake):
    """--threads N (plink2's and REGENIE's flag) sets the cores as --workers N does; the numbers never change."""
    tables = {}
    for flag, count in (("--threads", "1"), ("--workers", "2")):
        result = run("gwas", "--lake", loaded_lake.location.root, "--pheno", "25001-2.0", "--covar", "age,sex",
                     "--name", f"cores{count}", flag, count, "--quiet")
        assert result.exit_code == 0, result.output
        tables[count] = pl.from_arrow(loaded_lake.results_dataset(f"cores{count}").to_table()).sort("variant_id")
    assert tables["1"].equals(tables["2"])
