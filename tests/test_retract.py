"""Retracting a mistaken release: out of use at once, its rows gone for good, its results flagged."""

import re
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pytest
from click.testing import CliRunner
from test_sync import add_release

from biolake.cli import main
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sync import sync
from biolake.lake.errors import ReleaseError
from biolake.lake.schema import RESULTS_KINDS
from biolake.lake.retract import retract
from biolake.queries import connect


def run(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args], env={"COLUMNS": "250"})


@pytest.fixture
def two_releases(loaded_lake, release_folder):
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(loaded_lake, sources, release="r2", source="test")
    return loaded_lake


def results_from(lake, name: str, release: str) -> None:
    """A tiny results table whose provenance names ``release`` (as every job's does)."""
    table = pa.Table.from_pylist([{"phenotype": "y", "p": 0.5}], schema=RESULTS_KINDS["gwas"].arrow_schema())
    files = lake.results_files(name)
    output = files.open(table.schema, partition={}, part="t")
    output.write(table)
    lake.commit_results(files, [output.close()], schema=table.schema, partition_by=[], provenance={
        "kind": "gwas", "release": release, "created_at": datetime.now(timezone.utc).isoformat()})


def test_retract__the_latest_other_release_becomes_the_default_and_reads_say_why(two_releases):
    lake = two_releases
    assert lake.resolve_release().release == "r2"

    retract(lake, "r2", why="wrong genotype build")

    assert lake.resolve_release().release == "r1"
    assert [info.release for info in lake.releases()] == ["r1"]
    (_, gone) = lake.releases(retracted=True)
    assert gone.retraction.why == "wrong genotype build"
    said = rf"^release 'r2' was retracted on {datetime.now(timezone.utc):%Y-%m-%d}: wrong genotype build$"
    with pytest.raises(ReleaseError, match=said):
        connect(lake, release="r2")
    with pytest.raises(ReleaseError, match=said):
        lake.read("idps", release="r2")
    assert lake.read("retractions").column("release").to_pylist() == ["r2"]
    with connect(lake) as con:
        assert con.release.release == "r1"
        assert con.sql("SELECT release, why FROM retractions").fetchall() == [("r2", "wrong genotype build")]


def test_retract__deletes_and_vacuums_every_row_of_the_release(two_releases):
    lake = two_releases
    before = {name: lake.read(name, release="r1") for name in lake.resolve_release("r1").tables}

    report = retract(lake, "r2", why="bad ingest")

    assert sorted(report.deleted) == sorted(lake.resolve_release("r1").tables) and report.files_removed > 0
    root = Path(lake.location.root)
    left = [path for path in root.rglob("*") if "release=r2" in str(path) and path.is_file()]
    assert not left, left   # no data file of r2 remains, so no older version can show its rows
    for name, table in before.items():
        assert "r2" not in lake.releases_with_rows(name)
        assert lake.read(name, release="r1").equals(table), name
        versions = range(lake.delta(name).version() + 1)
        assert not any("r2" in {p["release"] for p in _partitions(lake, name, v)} for v in versions), name


def _partitions(lake, name: str, version: int) -> list[dict]:
    try:
        return lake.delta(name, version=version).partitions()
    except Exception:   # an erased version: its log is gone
        return []


def test_retract__flags_results_computed_from_the_release(two_releases):
    lake = two_releases
    results_from(lake, "from_r2", "r2")
    results_from(lake, "from_r1", "r1")

    retract(lake, "r2", why="bad ingest")

    assert lake.results_info("from_r2").flags() == ["computed from retracted release r2"]
    assert lake.results_info("from_r1").flags() == []
    assert lake.results_provenance("from_r2")["retracted"].startswith("release 'r2' was retracted on ")
    listed = run("results", "list", "--lake", lake.location.root)
    assert listed.exit_code == 0, listed.output
    line = next(line for line in listed.output.splitlines() if "from_r2" in line)
    assert "computed from retracted release r2" in line
    assert "retracted" not in next(line for line in listed.output.splitlines() if "from_r1" in line)


def test_release_retract__cli_records_why_and_lists_it_as_retracted(two_releases):
    root = two_releases.location.root
    done = run("release", "retract", "r2", "--why", "wrong genotype build", "--lake", root)
    assert done.exit_code == 0, done.output
    assert "retracted release 'r2'" in done.output
    listed = run("releases", "--lake", root).output
    r1, r2 = (next(line for line in listed.splitlines() if f" {name} " in line) for name in ("r1", "r2"))
    assert "default" in r1 and "retracted" in r2 and "wrong genotype build" in r2 and "default" not in r2
    refused = run("sql", "SELECT 1", "--release", "r2", "--lake", root)
    assert refused.exit_code == 2
    assert re.fullmatch(r"error: release 'r2' was retracted on \S+: wrong genotype build\n", refused.output)


def test_release_retract__unknown_or_already_retracted_is_one_line_error(two_releases):
    root = two_releases.location.root
    unknown = run("release", "retract", "r9", "--why", "x", "--lake", root)
    assert unknown.exit_code == 2 and unknown.output.count("\n") == 1 and "unknown release 'r9'" in unknown.output
    assert run("release", "retract", "r2", "--why", "x", "--lake", root).exit_code == 0
    again = run("release", "retract", "r2", "--why", "x", "--lake", root)
    assert again.exit_code == 2 and again.output.count("\n") == 1 and "retracted already" in again.output
    blank = run("release", "retract", "r1", "--why", "  ", "--lake", root)
    assert blank.exit_code == 2 and "say why" in blank.output


def test_retract__a_retracted_name_is_never_reused_and_sync_skips_it(lake, release_folder, tmp_path):
    incoming = tmp_path / "incoming"
    add_release(incoming, release_folder, "2026-09")
    assert sync(lake, incoming).ingested == ["2026-09"]
    retract(lake, "2026-09", why="bad export")

    outcomes = []
    report = sync(lake, incoming, on_release=lambda name, outcome: outcomes.append(outcome))
    assert report.ingested == [] and report.retracted == ["2026-09"] and outcomes == ["retracted"]
    sources, _ = ReleaseSources.from_folder(release_folder)
    with pytest.raises(ReleaseError, match="already committed"):
        ingest_release(lake, sources, release="2026-09", source="test")


@pytest.fixture
def retracted_gwas(two_releases, scheduler):
    """A GWAS (of age, as a phenotype) of release r2, then r2 retracted."""
    from biolake.gwas import GwasSettings, run_gwas

    lake = two_releases
    run_gwas(lake, GwasSettings(name="from_r2", phenotypes="SELECT participant_id, age AS y FROM covariates",
                                covariates=["sex"], release="r2"), scheduler=scheduler)
    retract(lake, "r2", why="bad ingest")
    return lake


def test_retract__commands_reading_its_results_warn_once(retracted_gwas, tmp_path):
    root = retracted_gwas.location.root
    said = (f"warning: results 'from_r2' were computed from release 'r2', "
            f"retracted on {datetime.now(timezone.utc):%Y-%m-%d}: bad ingest")
    commands = [["hits", "--threshold", "1"], ["export", "--out", tmp_path / "all.tsv"],
                ["export", "--format", "gwas-ssf", "--phenotype", "y", "--out", tmp_path / "ssf.tsv"],
                ["plot", "--out", tmp_path / "plots"]]
    for command in commands:
        done = CliRunner().invoke(main, [str(a) for a in [*command, "--result", "from_r2", "--lake", root]])
        assert done.exit_code == 0, (command, done.output)
        assert done.stderr.count(said) == 1 and done.stderr.count("warning:") == 1, (command, done.stderr)
    import yaml
    assert yaml.safe_load((tmp_path / "ssf.tsv-meta.yaml").read_text())["retracted"].startswith(
        "release 'r2' was retracted on ")


def test_retract__sql_releases_view_says_which_and_why(two_releases):
    retract(two_releases, "r2", why="bad ingest")
    with connect(two_releases) as con:
        rows = dict(con.sql("SELECT release, retracted FROM releases ORDER BY sequence").fetchall())
    assert rows["r1"] is None and rows["r2"].endswith(": bad ingest")


def test_retract__erases_the_history_of_tables_the_registry_does_not_list(two_releases, monkeypatch):
    """Rows of the release in a table its registry entry leaves out are deleted, and their history erased too."""
    import dataclasses

    from biolake.lake import retract as retraction

    listed = retraction._retractable
    monkeypatch.setattr(retraction, "_retractable",
                        lambda *args, **kw: dataclasses.replace(listed(*args, **kw), tables=("idps",)))

    report = retract(two_releases, "r2", why="bad ingest")

    assert len(report.deleted) > 1
    root = Path(two_releases.location.root)
    assert not [path for path in root.rglob("*") if "release=r2" in str(path) and path.is_file()]
