"""A real SIGKILL of `biolake ingest` at chosen points leaves the lake at its previous release."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lake.lake import Lake

BIOLAKE = [sys.executable, "-c", "from biolake.cli import main; main()"]


def ingest_and_kill(release: Path, lake_root: str, point: str, env_extra: dict | None = None) -> None:
    """Start an ingest that holds at ``point``; SIGKILL it there."""
    env = {**os.environ, "BIOLAKE_FAULT_HOLD": point, **(env_extra or {})}
    process = subprocess.Popen([*BIOLAKE, "ingest", str(release), "--lake", lake_root,
                                "--release", "r2", "--quiet"],
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        for line in process.stderr:
            if line.startswith(f"holding at {point}"):
                break
        else:
            pytest.fail(f"ingest ended without reaching {point}; exit code {process.wait()}")
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        process.kill()
        process.stderr.close()


@pytest.mark.parametrize("point", ["during:methylation", "after:methylation", "after:samples",
                                   "during:genotypes", "after:genotypes", "after:covariates"])
def test_ingest__sigkill_leaves_previous_release_readable(loaded_lake, release_folder, point):
    before = {name: loaded_lake.read(name).to_pylist() for name in ("samples", "idps", "variants")}
    ingest_and_kill(release_folder, loaded_lake.location.root, point)

    reopened = Lake.open(loaded_lake.location.root)
    assert [r.release for r in reopened.releases()] == ["r1"]
    assert {name: reopened.read(name).to_pylist() for name in before} == before

    rerun = subprocess.run([*BIOLAKE, "ingest", str(release_folder), "--lake",
                            loaded_lake.location.root, "--release", "r2", "--quiet"],
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert reopened.read("samples", release="r2").to_pylist() == \
        [dict(row, release="r2") for row in before["samples"]]
    assert reopened.read("samples", release="r1").to_pylist() == before["samples"]
