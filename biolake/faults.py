"""Fault-injection hold points, for the crash tests.

When ``BIOLAKE_FAULT_HOLD`` names a point (e.g. ``after:genotypes`` or
``during:genotypes``), the process prints ``holding at <point>`` on stderr and
sleeps, so a test can SIGKILL it at exactly that point. Unset, this costs nothing.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

Progress = Callable[[str, int, int], None]

HOLD_VARIABLE = "BIOLAKE_FAULT_HOLD"


def hold_if_requested(point: str) -> None:
    """Block forever at ``point`` if the environment asks for it."""
    if os.environ.get(HOLD_VARIABLE) == point:
        print(f"holding at {point}", file=sys.stderr, flush=True)
        while True:
            time.sleep(3600)


def with_hold_points(progress: Progress) -> Progress:
    """Wrap a progress callback so each step offers the hold point ``during:<step>`` half-way."""
    def report(step: str, done: int, total: int) -> None:
        progress(step, done, total)
        if 2 * done >= total:
            hold_if_requested(f"during:{step}")
    return report
