"""Shared fixtures: a small synthetic release, fresh lakes, and a real S3 server (moto) on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
import yaml

from biolake.cluster import dask_client
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.synth import write_synthetic_release
from biolake.lake.lake import Lake
from biolake.lake.vectors import decode_calls
from biolake.queries import connect

# Figures of the reliability tests (issue #9), printed at the end of the run: each test adds what it proved.
RELIABILITY: Counter[str] = Counter()
SMALL = {"samples": 301, "variants": 1500, "idps": 6, "cpgs": 300, "seed": 7}


@pytest.fixture(scope="session")
def release_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic release (read-only: copy it before changing a file)."""
    out = tmp_path_factory.mktemp("synthetic") / "release"
    write_synthetic_release(out, methylation_samples=120, **SMALL)
    return out


def editable_copy(release_folder: Path, target: Path) -> Path:
    """A copy of a release at ``target`` whose manifest lists no checksums, so that its files may be edited."""
    copy = Path(shutil.copytree(release_folder, target))
    manifest = yaml.safe_load((copy / "release.yaml").read_text())
    del manifest["checksums"]
    (copy / "release.yaml").write_text(yaml.safe_dump(manifest))
    return copy


def lake_of(release: Path, folder: Path) -> Lake:
    """A new lake under ``folder`` holding ``release`` as 'r1'."""
    lake = Lake.init(folder / "lake")
    sources, _ = ReleaseSources.from_folder(release)
    ingest_release(lake, sources, release="r1", source=str(release))
    return lake


@pytest.fixture
def editable_release(release_folder: Path, tmp_path: Path) -> Path:
    """A private copy of the small release whose manifest lists no checksums, for tests that edit files."""
    return editable_copy(release_folder, tmp_path / "release")


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake.init(tmp_path / "lake")


@pytest.fixture
def loaded_lake(lake: Lake, release_folder: Path) -> Lake:
    """A lake holding the small release as 'r1'."""
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    return lake


@pytest.fixture(scope="session")
def gwas_lake(tmp_path_factory: pytest.TempPathFactory, release_folder: Path) -> Lake:
    """The small release ingested once, for the association jobs (each writes its own results)."""
    lake = Lake.init(tmp_path_factory.mktemp("gwas") / "lake")
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    return lake


@pytest.fixture
def monomorphic_lake(editable_release: Path, lake: Lake) -> tuple[Lake, str]:
    """A lake holding the small release as 'r1' with its first variant homozygous ref in every
    sample (no missing call), and that variant's id."""
    bed = editable_release / "genotypes.bed"
    calls = bytearray(bed.read_bytes())
    row = (SMALL["samples"] + 3) // 4
    calls[3:3 + row] = b"\xff" * row                    # after the 3-byte header: the first variant's calls
    bed.write_bytes(bytes(calls))
    sources, _ = ReleaseSources.from_folder(editable_release)
    ingest_release(lake, sources, release="r1", source=str(editable_release))
    variants = lake.read("variants", columns=["variant_id", "variant_index"]).sort_by("variant_index")
    return lake, variants["variant_id"][0].as_py()


@pytest.fixture(scope="session")
def scheduler() -> Iterator[str]:
    """A real dask cluster of two worker processes, shared by the association jobs' tests."""
    with dask_client(workers=2) as client:
        yield client.scheduler.address


@pytest.fixture(scope="session")
def idps(gwas_lake: Lake) -> list[str]:
    """The first three IDP columns of the small release."""
    with connect(gwas_lake) as con:
        return [c for c in con.sql("SELECT * FROM idps LIMIT 0").columns if c not in ("participant_id", "release")][:3]


def lake_dosages(lake: Lake, samples: np.ndarray) -> np.ndarray:
    """Every variant's alt dosages (NaN missing) for ``samples``, in variant order."""
    genotypes = lake.read("genotypes", columns=["variant_index", "calls"]).sort_by("variant_index")
    n = lake.read("samples", columns=["assay"]).column(0).to_pylist().count("genotypes")
    return decode_calls(genotypes.column("calls"), n)[:, samples]


@pytest.fixture(scope="session")
def s3_request_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The file where the S3 server logs each request it answers, one line each (method, path, client)."""
    return tmp_path_factory.mktemp("s3") / "requests.log"


@pytest.fixture(scope="session")
def s3_server(s3_request_log: Path) -> Iterator[dict[str, str]]:
    """moto's S3 server, as its own process on 127.0.0.1 (a real HTTP API); yields storage options."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("s3_server.py")), str(port),
                               str(s3_request_log)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    options = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true"}
    try:
        _wait_for_port(port, seconds=30)
        client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        client.create_bucket(Bucket="biolake-test")
        yield options
    finally:
        server.terminate()
        server.wait(timeout=30)


def _wait_for_port(port: int, *, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto S3 server did not listen on 127.0.0.1:{port} within {seconds} s")


@pytest.fixture(scope="session")
def reliability() -> Counter[str]:
    """Add to a reliability figure (kill points survived, bad inputs refused, …) once it is proved."""
    return RELIABILITY


def pytest_sessionfinish(session: pytest.Session) -> None:
    """An xdist worker hands its reliability figures to the main process (see pytest_testnodedown)."""
    if hasattr(session.config, "workeroutput"):
        session.config.workeroutput["reliability"] = dict(RELIABILITY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    """The main process adds up the figures of each xdist worker as it finishes."""
    RELIABILITY.update(getattr(node, "workeroutput", {}).get("reliability", {}))


def pytest_terminal_summary(terminalreporter) -> None:
    if RELIABILITY:
        terminalreporter.write_sep("-", "reliability figures (#9)")
        for what, count in sorted(RELIABILITY.items()):
            terminalreporter.write_line(f"{count:5d}  {what}")
