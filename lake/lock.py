"""An exclusive, named lock on a local lake (e.g. so two ``biolake sync`` runs cannot interleave).

The lock is a file created with O_EXCL under ``LAKE/_locks/``, holding the owner's
host and pid. A lock left by a process that died (SIGKILL, power loss) is stale:
its pid no longer runs on this host, so the next run takes it over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lake.errors import LakeError
from lake.storage import Location


@contextmanager
def lake_lock(location: Location, name: str) -> Iterator[None]:
    """Hold the lock ``name`` on the lake for the duration of the block, or raise LakeError."""
    if location.remote:
        raise LakeError(f"{location.root}: locks on bucket lakes are not supported yet; "
                        "run the job from one scheduler only")
    path = Path(location.root) / "_locks" / f"{name}.lock"
    path.parent.mkdir(exist_ok=True)
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    for _ in range(2):
        try:
            with open(path, "x") as handle:
                json.dump(owner, handle)
            break
        except FileExistsError:
            holder = _read_holder(path)
            if not _is_stale(holder):
                raise LakeError(f"{location.root}: another {name} (pid {holder.get('pid')} on "
                                f"{holder.get('host')}) holds the lock {path}") from None
            path.unlink(missing_ok=True)
    else:
        raise LakeError(f"{location.root}: could not take the {name} lock {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _read_holder(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _is_stale(holder: dict) -> bool:
    """A lock whose owner is gone: same host, pid not running (an unreadable lock counts as stale)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return not holder
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
