from pathlib import Path

import pyarrow as pa
import pytest
import yaml

from biolake.lake.catalog import Catalog
from biolake.lake.errors import LakeError, ReleaseError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS, TABLES
from biolake.lake.storage import Location, fsspec_options

REPO = Path(__file__).resolve().parents[1]


def samples_rows(release: str, ids: list[str]) -> pa.Table:
    rows = [{"release": release, "assay": "genotypes", "sample_index": i, "participant_id": p, "sex": None}
            for i, p in enumerate(ids)]
    return pa.Table.from_pylist(rows, schema=TABLES["samples"].arrow_schema())


def test_init__creates_catalog_and_empty_registry(tmp_path):
    lake = Lake.init(tmp_path / "lake")
    assert (tmp_path / "lake" / "catalog.yaml").exists()
    assert lake.releases() == []
    assert Lake.open(tmp_path / "lake").location.root == str(tmp_path / "lake")


def test_init__refuses_an_existing_lake(lake):
    with pytest.raises(LakeError, match="already exists"):
        Lake.init(lake.location.root)


def test_open__explains_a_missing_lake(tmp_path):
    with pytest.raises(LakeError, match="biolake init"):
        Lake.open(tmp_path / "nowhere")


def test_release_writer__commits_whole_releases_in_order(lake):
    for name, ids in [("r1", ["a", "b"]), ("r2", ["a", "b", "c"])]:
        with lake.begin_release(name, source="test") as writer:
            writer.write("samples", samples_rows(name, ids))
    assert [r.release for r in lake.releases()] == ["r1", "r2"]
    assert lake.read("samples").num_rows == 3
    assert lake.read("samples", release="r1").column("participant_id").to_pylist() == ["a", "b"]


def test_release_writer__failed_release_stays_invisible_and_can_be_retried(lake):
    with lake.begin_release("r1", source="test") as writer:
        writer.write("samples", samples_rows("r1", ["a"]))
    with pytest.raises(RuntimeError):
        with lake.begin_release("r2", source="test") as writer:
            writer.write("samples", samples_rows("r2", ["x", "y"]))
            raise RuntimeError("killed")
    assert [r.release for r in lake.releases()] == ["r1"]
    assert lake.read("samples").column("participant_id").to_pylist() == ["a"]
    with lake.begin_release("r2", source="test") as writer:  # the retry replaces the leftovers
        writer.write("samples", samples_rows("r2", ["z"]))
    assert lake.read("samples", release="r2").column("participant_id").to_pylist() == ["z"]


def test_begin_release__releases_are_immutable(lake):
    with lake.begin_release("r1", source="test") as writer:
        writer.write("samples", samples_rows("r1", ["a"]))
    with pytest.raises(ReleaseError, match="immutable"):
        lake.begin_release("r1", source="test")


@pytest.mark.parametrize("name", ["", "a b", "r1'; DROP", "../x", "x" * 65])
def test_begin_release__rejects_unsafe_names(lake, name):
    with pytest.raises(ReleaseError, match="not allowed"):
        lake.begin_release(name, source="test")


def test_resolve_release__names_the_committed_ones(lake):
    with pytest.raises(ReleaseError, match="no releases"):
        lake.resolve_release()
    with lake.begin_release("r1", source="test") as writer:
        writer.write("samples", samples_rows("r1", ["a"]))
    with pytest.raises(ReleaseError, match="committed releases: r1"):
        lake.resolve_release("r9")


def test_read__time_travel_by_delta_version(lake):
    for name, ids in [("r1", ["a"]), ("r2", ["b"])]:
        with lake.begin_release(name, source="test") as writer:
            writer.write("samples", samples_rows(name, ids))
    first = lake.resolve_release("r1").table_versions["samples"]
    assert lake.read("samples", release="r1", version=first).num_rows == 1
    with pytest.raises(LakeError, match="no version 99"):
        lake.read("samples", release="r1", version=99)
    assert lake.read("samples", release="r2").num_rows == 1


def test_write__validates_the_declared_schema(lake):
    writer = lake.begin_release("r1", source="test")
    with pytest.raises(LakeError, match="missing column 'assay'"):
        writer.write("samples", pa.table({"release": ["r1"]}))


def test_catalog__repository_catalog_declares_every_table():
    catalog = Catalog.load(REPO / "catalog.yaml")
    assert catalog.location.root == str(REPO / ".biolake" / "lake")
    assert catalog.tables == {name: spec.to_catalog_entry() for name, spec in TABLES.items()}


def test_catalog__relative_root_and_env_secrets(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY_FOR_TEST", "hunter2")
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({
        "lake": {"root": "data/lake", "storage_options": {"AWS_SECRET_ACCESS_KEY": "${SECRET_KEY_FOR_TEST}"}},
        "tables": {}}))
    catalog = Catalog.load(tmp_path / "c.yaml")
    assert catalog.location.root == str(tmp_path / "data" / "lake")
    assert catalog.location.storage_options["AWS_SECRET_ACCESS_KEY"] == "hunter2"
    assert "hunter2" not in repr(catalog) and "hunter2" not in catalog.to_yaml()


def test_fsspec_options__translates_object_store_names_for_s3fs():
    options = fsspec_options("s3", {"AWS_ENDPOINT_URL": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "k",
                                    "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-2",
                                    "AWS_ALLOW_HTTP": "true"})
    assert options == {"client_kwargs": {"endpoint_url": "http://127.0.0.1:1", "region_name": "eu-west-2"},
                       "key": "k", "secret": "s"}


def test_location__repr_hides_credentials():
    assert "s3cr3t" not in repr(Location.parse("s3://b/l", {"AWS_SECRET_ACCESS_KEY": "s3cr3t"}))


def test_release_writer__a_retry_drops_tables_the_failed_attempt_wrote(lake):
    with pytest.raises(RuntimeError):
        with lake.begin_release("r1", source="test") as writer:
            writer.write("samples", samples_rows("r1", ["a", "b"]))
            writer.write("idps", pa.table({"release": ["r1"], "participant_id": ["a"], "x": [1.0]}))
            raise RuntimeError("killed")
    with lake.begin_release("r1", source="test") as writer:  # the retry has no IDPs
        writer.write("samples", samples_rows("r1", ["a"]))
    assert lake.releases_with_rows("idps") == set()
    assert lake.resolve_release("r1").tables == ("samples",)


def test_drop_uncommitted_rows__removes_leftovers_of_abandoned_attempts(lake):
    with lake.begin_release("r1", source="test") as writer:
        writer.write("samples", samples_rows("r1", ["a"]))
    with pytest.raises(RuntimeError):
        with lake.begin_release("r2", source="test") as writer:
            writer.write("samples", samples_rows("r2", ["secret"]))
            raise RuntimeError("killed")
    assert lake.releases_with_rows("samples") == {"r1", "r2"}
    assert lake.drop_uncommitted_rows() == ["samples@r2"]
    assert lake.releases_with_rows("samples") == {"r1"}


def tiny_results(lake: Lake, name: str, *, replace: bool = False, p: float = 0.5) -> int:
    """Commit a one-row results table ``name``; returns its version."""
    table = pa.Table.from_pylist([{"phenotype": "y", "p": p}], schema=RESULTS_KINDS["gwas"].arrow_schema())
    files = lake.results_files(name)
    output = files.open(table.schema, partition={}, part="t")
    output.write(table)
    return lake.commit_results(files, [output.close()], schema=table.schema, partition_by=[], replace=replace,
                               provenance={"kind": "gwas", "release": "r1", "created_at": "2026-12-06T10:00:00"})


def test_commit_results__an_existing_name_is_refused_unless_replace(lake):
    tiny_results(lake, "assoc")
    with pytest.raises(LakeError, match=r"^results table 'assoc' exists \(from gwas of release r1 on 2026-12-06\); "
                                        r"use --replace or another --name$"):
        lake.check_results_free("assoc")
    with pytest.raises(LakeError, match="exists"):
        tiny_results(lake, "assoc", p=0.1)
    assert lake.results_dataset("assoc").to_table().column("p").to_pylist() == [0.5]
    tiny_results(lake, "assoc", replace=True, p=0.1)
    assert lake.results_dataset("assoc").to_table().column("p").to_pylist() == [0.1]
    lake.check_results_free("other")


def test_drop_results__deletes_the_table_and_its_browse_index_and_records_it(lake):
    tiny_results(lake, "assoc")
    tiny_results(lake, "kept")
    browse = Path(lake.location.root) / "browse" / "assoc" / "summary"
    browse.mkdir(parents=True)
    (browse / "part.parquet").write_bytes(b"x")

    record = lake.drop_results("assoc")

    assert record["rows"] == 1 and record["kind"] == "gwas"
    assert lake.results_names() == ["kept"]
    assert not (Path(lake.location.root) / "results" / "assoc").exists()
    assert not (Path(lake.location.root) / "browse" / "assoc").exists()
    audit = lake.read("dropped_results").to_pylist()
    assert [(row["name"], row["release"], row["rows"]) for row in audit] == [("assoc", "r1", 1)]
    with pytest.raises(LakeError, match="no results named 'assoc'"):
        lake.drop_results("assoc")
    tiny_results(lake, "assoc")   # the name is free again


def test_drop_results__once_committed_the_table_reads_as_gone_and_a_rerun_finishes(lake, monkeypatch):
    tiny_results(lake, "assoc")
    monkeypatch.setattr("biolake.lake.lake.fault_point", _kill_at("deleted:results/assoc"))
    with pytest.raises(KeyboardInterrupt):
        lake.drop_results("assoc")
    assert lake.results_names() == []
    with pytest.raises(LakeError, match="no results named"):
        lake.results("assoc")
    with pytest.raises(LakeError, match="being dropped"):
        lake.check_results_free("assoc", replace=True)
    monkeypatch.undo()
    lake.drop_results("assoc")
    assert [row["name"] for row in lake.read("dropped_results").to_pylist()] == ["assoc"]
    lake.check_results_free("assoc")


def test_commit_results__a_run_whose_files_a_drop_deleted_is_refused(lake):
    """``results drop`` racing a ``--replace`` run: the run's staged files are gone, so it must not commit."""
    tiny_results(lake, "assoc")
    table = pa.Table.from_pylist([{"phenotype": "y", "p": 0.1}], schema=RESULTS_KINDS["gwas"].arrow_schema())
    files = lake.results_files("assoc")
    output = files.open(table.schema, partition={}, part="t")
    output.write(table)
    staged = output.close()

    lake.drop_results("assoc")      # deletes results/assoc/, the staged file with it

    with pytest.raises(LakeError, match=r"^results assoc were dropped while this run was writing them; run it again$"):
        lake.commit_results(files, [staged], schema=table.schema, partition_by=[], replace=True,
                            provenance={"kind": "gwas", "release": "r1"})
    assert lake.results_names() == []


def _kill_at(point: str):
    def fault_point(name: str) -> None:
        if name == point:
            raise KeyboardInterrupt(name)
    return fault_point
