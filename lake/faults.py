"""Fault points: named places on every write path where a crash test may kill the process.

Unset, they cost one environment lookup. With ``BIOLAKE_FAULT_TRACE`` set, each point
reached prints ``fault point N: NAME`` on stderr, so a test can list a command's points
from one clean run. With ``BIOLAKE_FAULT_HOLD`` naming a point (``after:genotypes``) or
its number (``#17``), the process prints ``holding at NAME`` there and sleeps, so the test
can SIGKILL it at exactly that point. ``BIOLAKE_FAULT_PAUSE=SECONDS`` sleeps at every
point, so concurrency tests can catch a writer half-way. Points are only raised in the process that commits
(never in dask workers), so their numbering is the same from run to run.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]

HOLD_VARIABLE = "BIOLAKE_FAULT_HOLD"
TRACE_VARIABLE = "BIOLAKE_FAULT_TRACE"
PAUSE_VARIABLE = "BIOLAKE_FAULT_PAUSE"
_reached = itertools.count(1)


def fault_point(name: str) -> None:
    """Mark a place where a crash must leave the lake whole; trace it or hold there when asked."""
    hold, trace, pause = (os.environ.get(v) for v in (HOLD_VARIABLE, TRACE_VARIABLE, PAUSE_VARIABLE))
    if not (hold or trace or pause):
        return
    number = next(_reached)
    if pause:
        time.sleep(float(pause))
    if trace:
        print(f"fault point {number}: {name}", file=sys.stderr, flush=True)
    if hold in (name, f"#{number}"):
        print(f"holding at {name} (#{number})", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def with_hold_points(progress: Progress) -> Progress:
    """Wrap a progress callback so each step offers the fault point ``during:<step>`` once, half-way."""
    offered: set[str] = set()

    def report(step: str, done: int, total: int) -> None:
        progress(step, done, total)
        if 2 * done >= total and step not in offered:
            offered.add(step)
            fault_point(f"during:{step}")
    return report
