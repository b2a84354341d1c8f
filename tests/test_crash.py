"""SIGKILL at every fault point of `ingest`, `sync`, a results write, `withdraw`, `release retract` and
`results drop` loses nothing (local and s3://).

Each command (a process of its own, forked warm: tests/cli_process.py) first runs clean with
BIOLAKE_FAULT_TRACE set, which lists the fault points it passes (:mod:`lake.faults`); it is then
killed at the first occurrence of every distinct point, each time on a fresh copy of the lake (of
a bucket lake, every tenth point, to keep the suite short). After every kill: the lake opens; every release and
results table that was committed reads back with the same checksums (or, if the command removes
it, is gone whole); readers see whole releases only; and rerunning the command gives exactly
the tables of an uninterrupted run.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from cli_process import CliProcess, run
from click.testing import CliRunner
from test_sync import add_release

from biolake.cli import main
from biolake.cluster import dask_client
from biolake.lake.faults import HOLD_VARIABLE, TRACE_VARIABLE
from biolake.lake.lake import Lake
from biolake.lake.storage import Location
from biolake.queries import connect

pytestmark = pytest.mark.slow


def biolake(args: list[str], env: dict[str, str]) -> None:
    """Run ``biolake ARGS`` as its own process; it must succeed."""
    done = run(args, env=env)
    assert done.returncode == 0, done.stderr


def fault_points(command: list[str], env: dict[str, str]) -> list[tuple[int, str]]:
    """The first occurrence (number, name) of every distinct fault point a clean run passes."""
    done = run(command, env={**env, TRACE_VARIABLE: "1"})
    assert done.returncode == 0, done.stderr
    first: dict[str, int] = {}
    for number, name in re.findall(r"^fault point (\d+): (.+)$", done.stderr, flags=re.M):
        first.setdefault(name, int(number))
    return sorted((number, name) for name, number in first.items())


def kill_at(command: list[str], number: int, env: dict[str, str]) -> None:
    """Run ``command`` until it holds at fault point ``number``, then SIGKILL it."""
    process = CliProcess(command, {**env, HOLD_VARIABLE: f"#{number}"})
    try:
        if not any(line.startswith("holding at") for line in process.stderr_lines()):
            pytest.fail(f"{command[0]} ended without reaching fault point #{number}; exit code {process.wait()}")
        process.kill()
        assert process.wait(timeout=60) == -signal.SIGKILL
    finally:
        process.kill()
        process.finish()


def checksum(table: pa.Table) -> str:
    """sha256 over the sorted 64-bit hashes of the rows, and the schema: equal tables, equal sums."""
    frame = pl.from_arrow(table)
    return hashlib.sha256(np.sort(frame.hash_rows(seed=7).to_numpy()).tobytes()
                          + repr(frame.schema).encode()).hexdigest()


def lake_state(lake: Lake) -> dict[str, str]:
    """A checksum per table of every committed release, and per results table."""
    state = {f"{name}@{info.release}": checksum(lake.release_dataset(name, info).to_table())
             for info in lake.releases() for name in info.tables}
    state |= {f"results/{name}": checksum(lake.results_dataset(name).to_table()) for name in lake.results_names()}
    return state


def check_readers_see_one_release(lake: Lake) -> None:
    """SQL over the latest release sees exactly its rows: never a mix with an uncommitted one. The connection opens
    the release latest when it opens: the one latest before it, or one committed meanwhile."""
    before = lake.releases()[-1].release
    with connect(lake) as con:
        latest = con.release.release
        assert latest in (before, lake.releases()[-1].release)
        for name in ("idps", "variants"):
            seen = con.sql(f"SELECT release, count(*) FROM {name} GROUP BY release").fetchall()
            assert seen == [(latest, lake.read(name, release=latest).num_rows)], name


class Lakes:
    """Fresh copies of a lake, on local disk or in the moto bucket, and the environment the CLI needs."""

    def __init__(self, tmp_path: Path, storage_options: dict[str, str] | None, *, stride: int = 1) -> None:
        self.options = storage_options or {}
        self.kind = "s3://" if self.options else "local"
        self.stride = stride   # for the long commands, kill at every stride-th point only
        self.env = {**os.environ, **self.options}
        self.tmp_path = tmp_path

    def root(self) -> str:
        tag = uuid.uuid4().hex[:8]
        return f"s3://biolake-test/crash-{tag}" if self.options else str(self.tmp_path / f"lake-{tag}")

    def open(self, root: str) -> Lake:
        return Lake.open(root, storage_options=self.options or None)

    def copy(self, base: str) -> str:
        root = self.root()
        if self.options:
            filesystem = Location(base, self.options).filesystem()
            filesystem.copy(base.removeprefix("s3://"), root.removeprefix("s3://"), recursive=True)
        else:
            shutil.copytree(base, root)
        return root


def survive_every_kill(lakes: Lakes, base: str, command: Callable[[str], list[str]], *, stride: int = 1) -> int:
    """Kill ``command`` at each of its fault points (every ``stride``-th, and the last two: the
    commit) on a copy of ``base``; check the lake after each kill and after the rerun. Returns
    the number of points survived."""
    clean = lakes.copy(base)
    points = fault_points(command(clean), lakes.env)
    expected, before = lake_state(lakes.open(clean)), lake_state(lakes.open(base))
    assert len(points) >= 5 and expected != before
    points = sorted(set(points[::stride]) | {points[-2], points[-1]})
    for number, name in points:
        root = lakes.copy(base)
        kill_at(command(root), number, lakes.env)
        lake = lakes.open(root)
        state = lake_state(lake)
        for key, value in state.items():   # what is visible is whole: as before, or as the clean run left it
            assert value in (before.get(key), expected.get(key)), f"killed at {name}: {key} changed"
        assert before.keys() & expected.keys() <= state.keys(), f"killed at {name}: committed tables vanished"
        check_readers_see_one_release(lake)
        # the rerun goes through the same CLI in this process (no second interpreter start-up)
        rerun = CliRunner().invoke(main, command(root), env=lakes.options)
        if state == expected:   # killed after the commit point: the command finds its work done
            assert rerun.exit_code == 0 or "already committed" in rerun.output, rerun.output
        else:
            assert rerun.exit_code == 0, f"rerun after a kill at {name}: {rerun.output}"
        assert rerun.exception is None or isinstance(rerun.exception, SystemExit), rerun.exc_info
        assert lake_state(lakes.open(root)) == expected, f"rerun after a kill at {name} differs from a clean run"
    return len(points)


@pytest.fixture(params=["local", "s3"])
def lakes(request, tmp_path) -> Lakes:
    """Local lakes are killed at every point; bucket lakes (each step an HTTP call) at every tenth."""
    if request.param == "s3":
        return Lakes(tmp_path, request.getfixturevalue("s3_server"), stride=10)
    return Lakes(tmp_path, None)


@pytest.fixture
def workers(lakes, scheduler, monkeypatch) -> Iterator[str]:
    """A dask scheduler whose workers can reach the lake (for a bucket: started with its credentials)."""
    if not lakes.options:
        yield scheduler
        return
    for key, value in lakes.options.items():
        monkeypatch.setenv(key, value)
    with dask_client(workers=1) as client:
        yield client.scheduler.address


# The root of the first base lake of each kind ("local", "s3://") this process made, which later tests copy.
# A cache per process rather than a module fixture, so that xdist shares these tests out one by one (the
# conftest runs a module with fixtures of its own wider than a test on one worker) and each worker makes
# the templates it needs.
TEMPLATES: dict[str, str] = {}


@pytest.fixture
def base_lake(lakes: Lakes, release_folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A lake holding the small release as r1 (made through the CLI, like the runs under test): made once
    per kind and process, each test a copy of it (an ingest into a bucket lake takes 15 s of the suite; a
    copy, 2 s)."""
    if lakes.kind not in TEMPLATES:
        root = Lakes(tmp_path_factory.mktemp("crash-template"), lakes.options).root()
        for args in (["init", root], ["ingest", str(release_folder), "--lake", root, "--release", "r1", "--quiet"]):
            biolake(args, lakes.env)
        TEMPLATES[lakes.kind] = root
    return lakes.copy(TEMPLATES[lakes.kind])


def test_ingest__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, release_folder, reliability):
    survived = survive_every_kill(lakes, base_lake, lambda root: [
        "ingest", str(release_folder), "--lake", root, "--release", "r2", "--quiet"], stride=lakes.stride)
    assert survived >= 20 // lakes.stride
    reliability[f"SIGKILLs survived: biolake ingest, {lakes.kind} lake"] += survived


def test_sync__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, release_folder, tmp_path, reliability):
    incoming = tmp_path / "incoming"
    for name in ("2026-09", "2026-10"):
        add_release(incoming, release_folder, name)
    survived = survive_every_kill(lakes, base_lake, lambda root: [
        "sync", str(incoming), "--lake", root, "--quiet"], stride=2 * lakes.stride)
    assert survived >= 10 // lakes.stride
    reliability[f"SIGKILLs survived: biolake sync (every other point), {lakes.kind} lake"] += survived


def test_results_write__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, workers, reliability):
    def gwas(root: str, *phenotypes: str, adjust: bool = True) -> list[str]:
        return ["gwas", "--lake", root, "--pheno", ",".join(phenotypes), "--covar", "age,sex",
                "--name", "assoc", "--replace", "--scheduler", workers, "--quiet", *(["--adjust"] if adjust else [])]

    biolake(gwas(base_lake, "25001-2.0", adjust=False), lakes.env)
    # a bucket lake at every third point (its writes are slow HTTP calls to moto; suite time)
    survived = survive_every_kill(lakes, base_lake, lambda root: gwas(root, "25001-2.0", "25002-2.0"),
                                  stride=3 if lakes.options else 1)
    assert survived >= 4
    reliability[f"SIGKILLs survived: biolake gwas --adjust results write, {lakes.kind} lake"] += survived


def test_withdraw__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, tmp_path, reliability):
    ids = tmp_path / "withdrawn.txt"
    ids.write_text("\n".join(lakes.open(base_lake).read("idps").column("participant_id").to_pylist()[:3]) + "\n")
    survived = survive_every_kill(lakes, base_lake, lambda root: [
        "withdraw", "--lake", root, "--ids", str(ids), "--quiet"], stride=lakes.stride)
    assert survived >= 10 // lakes.stride
    reliability[f"SIGKILLs survived: biolake withdraw, {lakes.kind} lake"] += survived


def test_retract__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, release_folder, reliability):
    biolake(["ingest", str(release_folder), "--lake", base_lake, "--release", "r2", "--quiet"], lakes.env)
    survived = survive_every_kill(lakes, base_lake, lambda root: [
        "release", "retract", "r2", "--why", "bad ingest", "--lake", root], stride=lakes.stride)
    assert survived >= 15 // lakes.stride
    reliability[f"SIGKILLs survived: biolake release retract, {lakes.kind} lake"] += survived


def test_results_drop__sigkill_at_every_fault_point_loses_nothing(lakes, base_lake, tmp_path, reliability):
    sumstats = tmp_path / "published.tsv"
    sumstats.write_text("variant_id\tchrom\tpos\teffect_allele\tother_allele\tbeta\tse\tp\n"
                        "rs1\t1\t100\tA\tG\t0.1\t0.05\t0.04\nrs2\t2\t200\tC\tT\t-0.2\t0.1\t0.05\n")
    biolake(["import-sumstats", str(sumstats), "--lake", base_lake, "--name", "assoc"], lakes.env)
    survived = survive_every_kill(lakes, base_lake, lambda root: [
        "results", "drop", "assoc", "--lake", root], stride=lakes.stride)
    assert survived >= 3
    reliability[f"SIGKILLs survived: biolake results drop, {lakes.kind} lake"] += survived
