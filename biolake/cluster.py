"""Where a job's block tasks run, and the bounded map over blocks every job shares.

Three places, as dask names them (``--scheduler``):

- ``threads``: dask's threaded scheduler in this process, one thread per core. It starts in
  no time and sends nothing anywhere; the kernels spend their time in numba (compiled with
  ``nogil``), BLAS and Arrow, which all release the GIL, so two threads keep two cores busy.
  The default for a lake on local disk.
- ``processes``: a LocalCluster of worker processes on this machine (forked for a lake on
  local disk, spawned for a bucket lake, whose AWS SDK is not fork-safe). The default for a
  bucket lake, and the choice when a kernel holds the GIL.
- an address (``tcp://host:8786``, or ``$DASK_SCHEDULER_ADDRESS``): a running cluster.

Results are the same wherever tasks run: each task computes one block from the same inputs.
"""

from __future__ import annotations

import logging
import os
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from distributed import Client

    from biolake.lake.lake import Lake

Progress = Callable[[str, int, int], None]
THREADS, PROCESSES = "threads", "processes"
# dask starts workers with MALLOC_TRIM_THRESHOLD_=64 KiB, which turns off glibc's adaptive mmap
# threshold: every array above 128 KiB is then mapped afresh and page-faulted in, and block
# tasks ran 1.6× slower. Arrays up to 32 MiB (glibc's cap) come from the reused heap instead.
_MMAP_THRESHOLD = 32 << 20
_WORKER_ENVIRONMENT = {"MALLOC_MMAP_THRESHOLD_": _MMAP_THRESHOLD}
_M_MMAP_THRESHOLD = -3       # glibc's mallopt parameter number


def _settle_forked_worker() -> None:
    """Give a forked worker what a spawned one takes from its environment at start.

    A fork inherits the client's BLAS thread pool (one thread per core) and its malloc
    state, and reads neither OPENBLAS_NUM_THREADS nor MALLOC_MMAP_THRESHOLD_ again: two
    workers of two BLAS threads each on two cores, with arrays mapped afresh, ran a
    100-phenotype GWAS 2.9× slower. So the limits are set by calls instead.
    """
    import ctypes

    from threadpoolctl import threadpool_limits

    threadpool_limits(1)    # one BLAS/OpenMP thread: the worker processes are the parallelism
    try:
        ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    except (OSError, AttributeError):     # not glibc: its allocator has no such threshold
        pass


def _forked_worker_plugin() -> Any:
    """A dask worker plugin running :func:`_settle_forked_worker` on each worker as it joins."""
    from distributed import WorkerPlugin

    class ForkedWorker(WorkerPlugin):
        name = "biolake-forked-worker"

        def setup(self, worker: Any) -> None:
            _settle_forked_worker()

    return ForkedWorker()


@contextmanager
def dask_client(*, scheduler: str | None = None, workers: int | None = None,
                environment: dict[str, str] | None = None, fork: bool = False) -> Iterator[Client]:
    """A client of the cluster at ``scheduler`` (or at $DASK_SCHEDULER_ADDRESS, dask's convention),
    or else of a LocalCluster of worker processes.

    ``environment`` (the lake's credentials) is set in the local workers' process environment,
    never sent in a task; the workers of an existing cluster must have their own.

    ``fork`` starts the local workers as forks of this process: they begin with every module
    it has imported, where a fresh (spawned) worker spends about 2 s importing numpy, scipy,
    pyarrow and the engines before its first task, and a job of a few seconds is mostly that.
    Only for lakes on local disk: the AWS SDK behind bucket reads is not fork-safe, so the
    workers of a bucket lake are spawned.
    """
    import dask
    from distributed import Client, LocalCluster

    scheduler = scheduler or dask.config.get("scheduler-address", None)

    settings = {f"distributed.nanny.pre-spawn-environ.{key}": value for key, value in _WORKER_ENVIRONMENT.items()}
    settings["distributed.worker.multiprocessing-method"] = "fork" if fork else "spawn"
    with dask.config.set(settings):
        cluster = None if scheduler else LocalCluster(
            n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True, env=environment or {},
            dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR)  # any free port: clusters may coexist
    client = Client(scheduler or cluster, set_as_default=False)
    try:
        if cluster is not None and fork:
            client.register_plugin(_forked_worker_plugin())   # also run on any worker its nanny restarts
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


class BlockMap(Protocol):
    """``task(block, shared, *args, position)`` for every block: the results, one per block."""

    def __call__(self, task: Callable[..., Any], blocks: Sequence[Any], shared: Any, *args: Any, step: str,
                 progress: Progress | None = None) -> Iterator[Any]: ...


def place(lake: Lake, scheduler: str | None = None) -> str:
    """Where ``lake``'s block tasks run (see the module docstring): ``scheduler`` if given, else
    $DASK_SCHEDULER_ADDRESS, else threads for a lake on local disk and processes for a bucket lake.

    Examples
    --------
    >>> import dask
    >>> from biolake.lake.lake import Lake
    >>> with dask.config.set({"scheduler-address": None}):
    ...     place(Lake.open("lake")), place(Lake.open("lake"), "processes")
    ('threads', 'processes')
    """
    import dask

    return scheduler or dask.config.get("scheduler-address", None) or (PROCESSES if lake.location.remote else THREADS)


@contextmanager
def block_map(lake: Lake, *, scheduler: str | None = None, workers: int | None = None) -> Iterator[BlockMap]:
    """The map a job on ``lake`` runs its block tasks with, at :func:`place` (``workers``: threads
    or local worker processes, default one per core). Local worker processes get the lake's
    credentials in their environment, and are forked when it is on local disk."""
    where = place(lake, scheduler)
    if where == THREADS:
        yield partial(threaded_map, workers=workers)
        return
    with dask_client(scheduler=None if where == PROCESSES else where, workers=workers,
                     environment=lake.location.secrets(), fork=not lake.location.remote) as client:
        yield partial(map_blocks, client)


def summed_over_shares(lake: Lake, task: Callable[..., tuple], inputs: Any, blocks: Sequence[Any],
                       zeros: list, *, step: str, scheduler: str | None, workers: int | None,
                       progress: Progress | None) -> list:
    """What ``task`` returns (a tuple of arrays and counts) for each share of ``blocks``, summed as the shares come
    (the first share's arrays become the running sums; ``zeros`` gives their dtypes, and is the answer when there is
    no block): one task per worker, each over a contiguous share of the row groups (a sum of N × N arrays is what a
    task sends back, so the tasks are as few as the workers). The relationship matrix, its products and the KING
    counts are summed this way."""
    count = max(1, min(len(blocks), workers or os.cpu_count() or 1))
    sizes = [len(blocks) // count + (k < len(blocks) % count) for k in range(count)]   # as numpy's array_split
    starts = [sum(sizes[:k]) for k in range(count)]
    shares = [list(blocks[start:start + size]) for start, size in zip(starts, sizes) if size]
    sums = None
    with block_map(lake, scheduler=scheduler, workers=workers) as map_over:
        for share_sums in map_over(task, shares, inputs, step=step, progress=progress):
            if sums is None:
                sums = [_running_total(zero, value) for zero, value in zip(zeros, share_sums)]
                continue
            for position, value in enumerate(share_sums):
                sums[position] += value
    return zeros if sums is None else sums


def _running_total(zero: Any, value: Any) -> Any:
    """The first share's ``value`` as the running total of what ``zero`` starts: an array is taken as it comes where
    it is writeable and of ``zero``'s dtype (an N × N array is neither copied nor added to zeros), else copied; a count
    is added."""
    import numpy as np

    if isinstance(zero, np.ndarray):
        return np.require(value, dtype=zero.dtype, requirements="W")
    return zero + value


def threaded_map(task: Callable[..., Any], blocks: Sequence[Any], shared: Any, *args: Any, step: str,
                 progress: Progress | None = None, workers: int | None = None) -> Iterator[Any]:
    """:class:`BlockMap` on dask's threaded scheduler in this process, with ``workers`` threads.

    BLAS runs one thread per task meanwhile (the tasks are the parallelism), as in a worker
    process. The results come in block order once all are done; each is what a task sends
    back (files' add actions, a summary, or a job's rows), so holding them is what the
    caller would do anyway.
    """
    import dask.threaded
    from dask.callbacks import Callback
    from threadpoolctl import threadpool_limits

    # each task a partial, so dask never looks inside its arguments for keys or nested tasks
    keys = [(step, position) for position in range(len(blocks))]
    graph = {key: (partial(task, block, shared, *args, position),) for key, block, position in
             zip(keys, blocks, range(len(blocks)))}
    done = 0

    def count(key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
        nonlocal done
        done += 1
        if progress:
            progress(step, done, len(blocks))

    threads = workers or os.cpu_count() or 1
    with threadpool_limits(1 if threads > 1 else None), Callback(posttask=count):
        results = dask.threaded.get(graph, keys, num_workers=threads) if keys else []
    return iter(results)


def map_blocks(client: Client, task: Callable[..., Any], blocks: Sequence[Any], shared: Any, *args: Any,
               step: str, progress: Progress | None = None) -> Iterator[Any]:
    """``task(block, shared, *args, position)`` for every block, results as they complete.

    ``shared`` (the inputs every task needs: the model) goes to the cluster once, as a task
    whose result is ``shared``: the scheduler keeps that task, so when the worker holding the
    result dies it is computed again on another. (Scattered data lives on workers only: a
    worker killed during the scatter failed the job with a CommClosedError, one killed just
    after with "lost dependencies".) Block tasks lost with a worker run again elsewhere and
    rewrite the same files under the same names, so a rerun replaces, never duplicates. Each
    task carries only its block reference, and at most four tasks per worker are in flight,
    so results never pile up faster than the caller consumes them.
    """
    from distributed import as_completed

    with warnings.catch_warnings():   # a large model is meant to travel in the graph: once, and recomputable
        warnings.filterwarnings("ignore", "Sending large graph", UserWarning)
        shared_future = client.submit(_shared_inputs, shared, key=f"{type(shared).__name__}-{uuid.uuid4().hex}")
    window = 4 * max(len(client.scheduler_info()["workers"]), 1)

    def submit(position: int):
        return client.submit(task, blocks[position], shared_future, *args, position, pure=False)

    running = as_completed([submit(p) for p in range(min(window, len(blocks)))], loop=client.loop)
    queued = iter(range(window, len(blocks)))
    for done, future in enumerate(running, start=1):
        result = future.result()
        future.release()
        if (position := next(queued, None)) is not None:
            running.add(submit(position))
        if progress:
            progress(step, done, len(blocks))
        yield result


def _shared_inputs(shared: Any) -> Any:
    """The task that puts a job's shared inputs on a worker (and again on another, if that one dies)."""
    return shared
