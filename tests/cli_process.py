"""``biolake`` commands as real processes, forked from one interpreter that imported the CLI's modules once.

The crash tests start a command a few hundred times (once per fault point, to SIGKILL it
there). A fresh interpreter spends ~2 s importing numpy, pyarrow, polars, deltalake, duckdb
and dask before it does anything; a process forked from a warm one starts in ~0.1 s. Each
run is still its own process, with its own environment and file descriptors, killed for
real (multiprocessing's fork server: one clean process, started once, that only imports and
forks; the test process itself, with its threads and dask clusters, is never forked).

Examples
--------
>>> done = run(["--version"], env=dict(os.environ))
>>> done.returncode, done.stdout.startswith("biolake, version")
(0, True)
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# Imported once by the fork server: what every lake command loads (the jobs import lazily on top).
PRELOAD = ["numpy", "pyarrow", "pyarrow.dataset", "pyarrow.compute", "polars", "deltalake", "duckdb", "fsspec",
           "s3fs", "dask", "distributed", "scipy.stats", "biolake.cli", "biolake.lake.lake", "biolake.ingest",
           "biolake.queries", "biolake.run", "biolake.cluster", "biolake.gwas"]

_FORKS = multiprocessing.get_context("forkserver")
_FORKS.set_forkserver_preload(PRELOAD)


def enter_command(env: dict[str, str], streams: dict[int, int], cwd: str | None = None) -> None:
    """In a child forked to be a command: its standard streams (``{target: descriptor}``, each
    descriptor moved onto its target), working directory and environment (dask's configuration
    re-read from it: dask read its environment variables at import, in the warm parent)."""
    for target, descriptor in streams.items():
        os.dup2(descriptor, target)
        os.close(descriptor)
    if cwd is not None:
        os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    import dask.config
    dask.config.refresh()


def _main(args: list[str], env: dict[str, str], stdout: str, stderr: str) -> None:
    """The child: the given environment, stdout and stderr into those files, then ``biolake ARGS``."""
    enter_command(env, {1: os.open(stdout, os.O_WRONLY | os.O_TRUNC), 2: os.open(stderr, os.O_WRONLY | os.O_TRUNC)})
    from biolake.cli import main
    main(args, prog_name="biolake")


def _scratch_file(suffix: str) -> str:
    handle, path = tempfile.mkstemp(prefix="biolake-cli-", suffix=suffix)
    os.close(handle)
    return path


class CliProcess:
    """One running ``biolake ARGS``: its stderr as it comes, its exit code, SIGKILL, its output."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args = args
        self.stdout, self.stderr = _scratch_file(".out"), _scratch_file(".err")
        self.process = _FORKS.Process(target=_main, args=(args, env, self.stdout, self.stderr))
        self.process.start()

    def stderr_lines(self, poll: float = 0.01) -> Iterator[str]:
        """The lines of stderr as they are written, until the process ends."""
        with open(self.stderr) as err:
            pending = ""
            while True:
                ended = not self.process.is_alive()
                pending += err.read()
                *complete, pending = pending.split("\n")
                yield from complete
                if ended:
                    if pending:
                        yield pending
                    return
                time.sleep(poll)

    def wait(self, timeout: float | None = None) -> int:
        """The exit code (−9 when SIGKILLed)."""
        self.process.join(timeout)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()

    def finish(self, timeout: float | None = None) -> subprocess.CompletedProcess:
        """Wait for the end: exit code, stdout and stderr, as ``subprocess.run`` gives them (the files go)."""
        code = self.wait(timeout)
        out, err = (Path(path).read_text() for path in (self.stdout, self.stderr))
        for path in (self.stdout, self.stderr):
            Path(path).unlink(missing_ok=True)
        return subprocess.CompletedProcess(["biolake", *self.args], code, out, err)


def run(args: list[str], *, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``biolake ARGS`` run to the end, as ``subprocess.run(..., capture_output=True, text=True)`` would."""
    return CliProcess(args, env).finish()
