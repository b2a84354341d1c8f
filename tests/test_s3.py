"""The same lake on s3:// served by moto's S3 server on 127.0.0.1 (a real HTTP API)."""

import os
import subprocess
import sys
import uuid

import polars as pl
import pytest

from ingest.release import ReleaseSources, ingest_release
from lake.lake import Lake
from queries import QueryError, connect, design, scan

BIOLAKE = [sys.executable, "-c", "from biolake.cli import main; main()"]


def fresh_root() -> str:
    return f"s3://biolake-test/lake-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def s3_lake(s3_server, release_folder) -> Lake:
    lake = Lake.init(fresh_root(), storage_options=s3_server)
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    return lake


def test_s3_lake__init_ingest_read_back(s3_server, s3_lake, loaded_lake):
    lake = s3_lake
    reopened = Lake.open(lake.location.root, storage_options=s3_server)
    assert [r.release for r in reopened.releases()] == ["r1"]
    for name in ("samples", "variants", "idps", "covariates", "probes"):
        assert reopened.read(name).sort_by(reopened.read(name).column_names[1]).equals(
            loaded_lake.read(name).sort_by(loaded_lake.read(name).column_names[1])), name
    con = connect(reopened)
    assert con.execute("SELECT count(*) FROM genotypes").fetchone()[0] == \
        loaded_lake.read("variants").num_rows


def test_s3_lake__cli_reads_credentials_from_the_environment(s3_server, release_folder):
    root = fresh_root()
    env = {**os.environ, **s3_server}
    for args in (["init", root], ["ingest", str(release_folder), "--lake", root, "--release", "r1",
                                  "--quiet"]):
        done = subprocess.run([*BIOLAKE, *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    listed = subprocess.run([*BIOLAKE, "releases", "--lake", root], capture_output=True, text=True,
                            env=env)
    assert "r1" in listed.stdout
    assert s3_server["AWS_SECRET_ACCESS_KEY"] not in listed.stdout + listed.stderr


def test_s3_lake__sql_scan_and_design_inputs(s3_server, s3_lake, loaded_lake):
    con = connect(s3_lake.location.root, storage_options=s3_server)
    query = "SELECT count(*), sum(age) FROM covariates WHERE site = ?"
    assert con.execute(query, params=["Reading"]).fetchall() == \
        connect(loaded_lake).execute(query, params=["Reading"]).fetchall()
    frame = scan(s3_lake.location.root, "variants", storage_options=s3_server)
    assert frame.filter(pl.col("chrom") == "1").collect().height == \
        scan(loaded_lake, "variants").filter(pl.col("chrom") == "1").collect().height
    aligned = design(con, phenotypes=["25001-2.0"], covariates=["age", "sex"])
    assert aligned.participant_ids == design(connect(loaded_lake), phenotypes=["25001-2.0"],
                                             covariates=["age", "sex"]).participant_ids
    with pytest.raises(QueryError):
        con.execute("SELECT * FROM read_parquet('s3://other-bucket/x.parquet')").fetchall()
    with pytest.raises(QueryError):
        con.execute(f"COPY covariates TO '{s3_lake.location.root}/stolen.csv'").fetchall()
