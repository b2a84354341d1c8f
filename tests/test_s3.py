"""The same lake on s3:// served by moto's S3 server on 127.0.0.1 (a real HTTP API)."""

import json
import os
import pickle
import uuid
from pathlib import Path

import polars as pl
import pytest
import yaml
from cli_process import run

from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sync import sync
from biolake.lake.errors import LakeError
from biolake.lake.lake import Lake
from biolake.lake.lock import lake_lock
from biolake.lake.withdraw import withdraw
from biolake.lake.storage import Location
from biolake.queries import QueryError, connect, design, scan



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
        done = run(args, env=env)
        assert done.returncode == 0, done.stderr
    listed = run(["releases", "--lake", root], env=env)
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


def test_s3_sync__releases_from_a_bucket(s3_server, release_folder, tmp_path):
    incoming = f"s3://biolake-test/incoming-{uuid.uuid4().hex[:8]}"
    fs = Location.parse(incoming, s3_server).filesystem()
    manifest = yaml.safe_load((release_folder / "release.yaml").read_text())
    for name in ("2026-09", "2026-10"):
        for path in filter(Path.is_file, release_folder.iterdir()):   # the release's files (not a site's own)
            fs.put_file(str(path), f"{incoming}/{name}/{path.name}")
        fs.pipe_file(f"{incoming}/{name}/release.yaml", yaml.safe_dump({**manifest, "release": name}).encode())
    lake = Lake.init(tmp_path / "lake")
    assert sync(lake, incoming, storage_options=s3_server).ingested == ["2026-09", "2026-10"]
    again = sync(lake, incoming, storage_options=s3_server)
    assert again.ingested == [] and again.unchanged == ["2026-09", "2026-10"]
    assert lake.read("samples", release="2026-10").num_rows == lake.read("samples", release="2026-09").num_rows
    fs.pipe_file(f"{incoming}/2026-10/covariates.csv", b"eid,age\n1,2\n")   # changed behind its manifest
    assert sync(lake, incoming, storage_options=s3_server).changed_files == []   # no size/mtime check on a bucket
    verified = sync(lake, incoming, storage_options=s3_server, verify=True)
    assert verified.changed == ["2026-10"] and len(verified.changed_files) == 1
    assert verified.changed_files[0].endswith("2026-10/covariates.csv of release 2026-10 changed since it was "
                                              "loaded (checksum)")


def test_s3_lock__a_second_holder_is_refused(s3_server):
    location = Location.parse(fresh_root(), s3_server)
    with lake_lock(location, "sync"):
        with pytest.raises(LakeError, match="holds the lock"):
            with lake_lock(location, "sync"):
                pass
    with lake_lock(location, "sync"):  # released, so it can be taken again
        pass


def test_s3_withdraw__removes_participants_from_a_bucket_lake(s3_server, release_folder):
    lake = Lake.init(fresh_root(), storage_options=s3_server)
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source="test")
    gone = lake.read("idps").column("participant_id").to_pylist()[:2]
    withdraw(lake, gone)
    for table in ("idps", "covariates", "samples"):
        assert not set(gone) & set(lake.read(table).column("participant_id").to_pylist())


def test_s3_gwas_ewas_gxe__dask_workers_read_and_write_the_bucket(s3_server, s3_lake, loaded_lake):
    """Worker processes read genotype/methylation blocks from the bucket and write the results
    files there; the numbers equal those of the same release on a local lake."""
    from biolake.ewas import EwasSettings, run_ewas
    from biolake.gwas import GwasSettings, run_gwas
    from biolake.gxe import GxeSettings, run_gxe

    gwas = GwasSettings(name="g", phenotypes=["25001-2.0"], covariates=["age", "sex"], chromosomes=["1", "2"])
    ewas = EwasSettings(name="e", exposures="SELECT participant_id, stress FROM covariates", covariates=["age"])
    gxe = GxeSettings(name="x", phenotypes=["25001-2.0"], covariates=["age", "stress"], exposures=["stress"],
                      chromosomes=["1"])
    for lake in (s3_lake, loaded_lake):
        run_gwas(lake, gwas, workers=1)
        run_ewas(lake, ewas, workers=1)
        run_gxe(lake, gxe, workers=1)
    assert all(uri.startswith("s3://") for uri in s3_lake.results("g").file_uris())
    for name, key in (("g", "variant_id"), ("e", "cpg_id"), ("x", "variant_id")):
        remote, local = (pl.from_arrow(lake.results_dataset(name).to_table()).sort(key)
                         for lake in (s3_lake, loaded_lake))
        assert remote.height > 0 and remote.equals(local)
        # the browse index is written to the bucket with the results, and reads back the same
        from biolake.queries.browse import BrowseIndex
        indexes = [BrowseIndex(lake, name) for lake in (s3_lake, loaded_lake)]
        assert indexes[0].summary().equals(indexes[1].summary())
        scan = indexes[0].summary().to_pylist()[0]
        remote, local = (index.points(scan["phenotype"], scan["exposure"]).sort_by([("feature", "ascending"),
                         ("log10p", "ascending")]) for index in indexes)
        assert remote.num_rows > 0 and remote.equals(local)
        for index in indexes:
            index.close()


def test_s3_credentials__never_in_output_errors_provenance_or_the_lake(s3_server, release_folder, tmp_path):
    """Every command, its failures, its dask workers' logs, the results' provenance and every object
    of the lake are searched for the secret key: it appears nowhere."""
    secret = "biolake-secret-" + uuid.uuid4().hex
    env = {**os.environ, **s3_server, "AWS_SECRET_ACCESS_KEY": secret}   # moto takes any key
    root = fresh_root()
    runs = [
        ["init", root, "-o", "AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY}"],
        ["ingest", str(release_folder), "--lake", root, "--release", "r1", "--quiet"],
        ["sql", "SELECT count(*) FROM idps", "--lake", root],
        ["gwas", "--lake", root, "--pheno", "25001-2.0", "--covar", "age,sex", "--chrom", "1", "--workers", "1",
         "--name", "g", "--quiet"],
        ["hits", "--lake", root, "--result", "g", "--threshold", "1"],
        ["sql", "SELECT * FROM read_parquet('s3://biolake-test/elsewhere.parquet')", "--lake", root],  # refused
        ["releases", "--lake", "s3://no-such-bucket/lake"],                                            # fails
        ["ingest", str(tmp_path / "nowhere"), "--lake", root, "--release", "r2"],                      # fails
    ]
    said = ""
    for args in runs:
        done = run(args, env=env)
        assert "Traceback" not in done.stderr, done.stderr
        said += done.stdout + done.stderr
    assert "error:" in said and "(version" in said, said[-3000:]
    assert secret not in said
    lake = Lake.open(root, storage_options={**s3_server, "AWS_SECRET_ACCESS_KEY": secret})
    assert secret not in json.dumps(lake.results_provenance("g"))
    filesystem = lake.location.filesystem()
    stored = [path for path in filesystem.find(root.removeprefix("s3://"))
              if secret.encode() in filesystem.cat_file(path)]
    assert stored == [], "the lake stores the secret"


def test_s3_gwas__credentials_never_travel_in_the_task_graph(s3_server, release_folder, monkeypatch):
    """Blocks and results files go to the workers without the keys; the local workers get them in
    their process environment, and the run still reads and writes the bucket."""
    import biolake.cluster
    from biolake.gwas import GwasSettings, run_gwas

    secret = "graph-secret-" + uuid.uuid4().hex
    lake = Lake.init(fresh_root(), storage_options={**s3_server, "AWS_SECRET_ACCESS_KEY": secret})
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source="test")
    sent = []

    def recording_map_blocks(client, task, blocks, shared, *args, **options):
        sent.append(pickle.dumps((task, blocks, shared, args)))
        return map_blocks(client, task, blocks, shared, *args, **options)

    map_blocks = biolake.cluster.map_blocks
    monkeypatch.setattr(biolake.cluster, "map_blocks", recording_map_blocks)
    run_gwas(lake, GwasSettings(name="g", phenotypes=["25001-2.0"], covariates=["age"], chromosomes=["1"]), workers=1)
    assert sent and all(secret.encode() not in graph and b"testing" not in graph for graph in sent)
    assert lake.results_dataset("g").count_rows() > 0


def test_s3_connect__reads_retractions_and_pending_drops_once_for_all_views(s3_server, release_folder, monkeypatch):
    """On a bucket each read is several requests: every view of a connection shares one of each."""
    from test_lake import tiny_results
    from test_queries import count_calls

    lake = Lake.init(fresh_root(), storage_options=s3_server)
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    tiny_results(lake, "a")
    counts = count_calls(monkeypatch, Lake, ["retractions", "drops_pending"])
    with connect(lake) as con:
        assert con.sql("SELECT count(*) FROM results.a").fetchone() == (1,)
    assert counts == {"retractions": 1, "drops_pending": 1}


def test_s3_withdraw__makes_a_bounded_number_of_requests(s3_server, s3_request_log, release_folder):
    """Each request to a bucket costs 20-50 ms on S3. Withdrawing two participants from a one-release
    lake made 1,138 requests (Arrow's S3 client made anew per file written, a folder marker per level
    and a HEAD per file; the registry, retractions and a table's log read again per table), now 867:
    the bound leaves 15 % headroom and guards against the redundant requests coming back."""
    lake = Lake.init(fresh_root(), storage_options=s3_server)
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source="test")
    gone = lake.read("idps").column("participant_id").to_pylist()[:2]
    before = len(s3_request_log.read_text().splitlines())
    withdraw(lake, gone)
    assert len(s3_request_log.read_text().splitlines()) - before <= 1000
