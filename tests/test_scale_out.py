"""The jobs on a dask cluster: losing a worker mid-run changes nothing; the scheduler address convention."""

import os
import signal

import polars as pl

from biolake.cluster import dask_client
from biolake.gwas import GwasSettings, run_gwas

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
    from threadpoolctl import threadpool_info
    return [pool["num_threads"] for pool in threadpool_info()]


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
