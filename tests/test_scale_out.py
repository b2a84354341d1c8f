"""The jobs on a dask cluster: losing a worker at any moment changes nothing; the scheduler address convention."""

import os
import signal
import uuid
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from distributed import WorkerPlugin

from biolake.cluster import dask_client, threaded_map
from biolake.ewas import EwasSettings, run_ewas
from biolake.gwas import GwasSettings, run_gwas
from biolake.gxe import GxeSettings, run_gxe
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.lake import Lake

SETTINGS = dict(phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex"])


def test_gwas__a_worker_killed_mid_run_is_replaced_and_the_results_are_identical(gwas_lake, scheduler):
    run_gwas(gwas_lake, GwasSettings(name="undisturbed", **SETTINGS), scheduler=scheduler)
    with dask_client(workers=2) as client:
        victims = list(client.run(os.getpid).values())
        killed = []

        def kill_one_worker(step: str, done: int, total: int) -> None:
            if done == 3 and not killed:
                os.kill(victims[0], signal.SIGKILL)
                killed.append(victims[0])

        run_gwas(gwas_lake, GwasSettings(name="disturbed", **SETTINGS), scheduler=client.scheduler.address,
                 progress=kill_one_worker)
        assert killed and victims[0] not in client.run(os.getpid).values()
    undisturbed, disturbed = (pl.from_arrow(gwas_lake.results_dataset(name).to_table()).sort("phenotype", "variant_id")
                              for name in ("undisturbed", "disturbed"))
    assert disturbed.height == undisturbed.height > 0 and disturbed.equals(undisturbed)


class KillOneWorker(WorkerPlugin):
    """SIGKILL the first worker to reach ``phase`` of a job, at a point of its state machine
    rather than after some seconds (timings drift on a loaded 2-core machine): "inputs" as
    the job's shared inputs (its model) land in the worker's memory, "block-start" as it
    begins its second block task, "block-done" as it finishes it (the task's files written,
    its result not yet reported). Only the first worker to create ``marker`` is killed; the
    one its nanny starts in its place carries on."""

    name = "kill-one-worker"

    def __init__(self, phase: str, marker: Path, *, task: str) -> None:
        self.phase, self.marker, self.task = phase, str(marker), task

    def setup(self, worker) -> None:
        self.worker, self.blocks = worker, 0

    def transition(self, key, start: str, finish: str, **kwargs) -> None:
        if self._reached(str(key), finish) and _first_to_create(self.marker):
            os.kill(os.getpid(), signal.SIGKILL)

    def _reached(self, key: str, finish: str) -> bool:
        if self.phase == "inputs":
            return finish == "memory" and type(self.worker.data.get(key)).__name__ == "VariantScan"   # its model
        if not key.startswith(f"{self.task}-"):
            return False
        self.blocks += finish == "executing"
        return self.blocks == 2 and (self.phase, finish) in {("block-start", "executing"), ("block-done", "memory")}


def _first_to_create(path: str) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
        return True
    except FileExistsError:
        return False


JOBS = {"gwas": (lambda name: GwasSettings(name=name, **SETTINGS), run_gwas),
        "gxe": (lambda name: GxeSettings(name=name, exposures=["age"], **SETTINGS), run_gxe)}


def results(lake: Lake, name: str) -> pl.DataFrame:
    return pl.from_arrow(lake.results_dataset(name).to_table()).sort(pl.all())


@pytest.fixture(scope="module")
def s3_gwas_lake(s3_server, release_folder) -> Lake:
    """The small release in the moto bucket."""
    lake = Lake.init(f"s3://biolake-test/workerloss-{uuid.uuid4().hex[:8]}", storage_options=s3_server)
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    return lake


@pytest.fixture(scope="module")
def undisturbed() -> Callable[[Lake, str, str], pl.DataFrame]:
    """A job's results on a lake from a run on ``scheduler`` that lost no worker (once per lake and job)."""
    done: dict[tuple[str, str], pl.DataFrame] = {}

    def results_of(lake: Lake, job: str, scheduler: str) -> pl.DataFrame:
        if (lake.location.root, job) not in done:
            settings, run = JOBS[job]
            run(lake, settings(f"undisturbed-{job}"), scheduler=scheduler)
            done[lake.location.root, job] = results(lake, f"undisturbed-{job}")
        return done[lake.location.root, job]
    return results_of


# every phase on a local lake; on a bucket lake (slow HTTP to moto), the model's and a block's; and
# a cluster of one worker, whose replacement holds nothing: the model must be computed again
@pytest.mark.parametrize("where, job, phase, workers", [
    ("local", "gwas", "inputs", 2), ("local", "gwas", "block-start", 2), ("local", "gwas", "block-done", 2),
    ("local", "gwas", "commit", 2), ("local", "gxe", "inputs", 2), ("s3", "gwas", "inputs", 2),
    ("s3", "gwas", "block-done", 2), ("local", "gwas", "block-start", 1)])
def test_scan_variants__a_worker_killed_at_any_phase_leaves_the_results_identical(where, job, phase, workers,
                                                                                undisturbed, request, tmp_path):
    """Killed as the model lands, as a block starts, as a block's files are written, or as the
    client commits: the job still succeeds, with exactly the undisturbed run's rows."""
    lake = request.getfixturevalue("gwas_lake" if where == "local" else "s3_gwas_lake")
    marker, (settings, run) = tmp_path / "killed", JOBS[job]
    # its own cluster, as this one loses a worker; spawned (a fork of this busy process may hang)
    with dask_client(workers=workers, environment=lake.location.secrets()) as client:
        expected = undisturbed(lake, job, client.scheduler.address)
        victim = next(iter(client.run(os.getpid).values()))

        def kill_as_the_client_commits(step: str, done: int, total: int) -> None:
            if phase == "commit" and done == total and _first_to_create(str(marker)):
                os.kill(victim, signal.SIGKILL)

        client.register_plugin(KillOneWorker(phase, marker, task="_scan_task"))
        run(lake, settings(f"killed-{job}-{phase}-{workers}"), scheduler=client.scheduler.address,
            progress=kill_as_the_client_commits)
    assert marker.exists(), f"no worker reached {phase}"
    assert results(lake, f"killed-{job}-{phase}-{workers}").equals(expected)


BLOCK_MAPS = {  # a scan whose tasks write their files, and one whose rows come back to a reduce (limma's prior)
    "gwas": JOBS["gwas"],
    "ewas": (lambda name: EwasSettings(name=name, exposures="SELECT participant_id, stress FROM covariates",
                                       covariates=["age", "sex"]), run_ewas),
}


@pytest.mark.parametrize("job", BLOCK_MAPS)
def test_jobs__threads_in_process_and_worker_processes_give_identical_results(gwas_lake, scheduler, job):
    """The default for a lake on local disk (dask's threaded scheduler, in process) and a cluster of
    worker processes compute the same bits."""
    settings, run = BLOCK_MAPS[job]
    run(gwas_lake, settings(f"{job}-threads"), scheduler="threads", workers=2)
    run(gwas_lake, settings(f"{job}-processes"), scheduler=scheduler)
    threads, processes = (results(gwas_lake, f"{job}-{place}") for place in ("threads", "processes"))
    assert threads.height > 0 and threads.equals(processes)


def test_threaded_map__runs_every_block_on_one_blas_thread_each_and_reports_progress():
    seen = []

    def task(block: int, shared: int, position: int) -> tuple[int, int, list[int]]:
        return block * shared, position, _blas_threads()

    results = list(threaded_map(task, [3, 4, 5], 10, step="s", workers=2,
                                progress=lambda step, done, total: seen.append((step, done, total))))
    assert [(value, position) for value, position, _ in results] == [(30, 0), (40, 1), (50, 2)]
    assert all(set(threads) == {1} for _, _, threads in results)
    assert seen == [("s", 1, 3), ("s", 2, 3), ("s", 3, 3)]
    assert list(threaded_map(task, [], 10, step="s")) == []


def test_dask_client__takes_the_scheduler_from_dask_scheduler_address(scheduler, monkeypatch):
    monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", scheduler)
    import dask
    dask.config.refresh()
    try:
        with dask_client() as client:
            assert client.scheduler.address == scheduler
    finally:
        monkeypatch.delenv("DASK_SCHEDULER_ADDRESS")
        dask.config.refresh()


def _blas_threads() -> list[int]:
    """The threads of each BLAS pool loaded (OpenMP pools, such as scikit-learn's libgomp once a reference test has
    imported it, keep a setting per thread and run no task's work)."""
    from threadpoolctl import threadpool_info
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_dask_client__forked_and_spawned_workers_each_run_one_blas_thread():
    """A fork keeps the client's BLAS pool (a thread per core): two such workers on two cores
    ran a GWAS 2.9× slower. Forked workers are limited by a plugin, spawned ones by their environment."""
    import numpy  # noqa: F401  (the client's BLAS pool exists before the fork)
    for fork in (True, False):
        with dask_client(workers=1, fork=fork) as client:
            threads, = client.run(_blas_threads).values()
            assert threads and set(threads) == {1}, (fork, threads)
            client.restart()      # a worker its nanny starts again is limited too
            threads, = client.run(_blas_threads).values()
            assert set(threads) == {1}, (fork, threads)
