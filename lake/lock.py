"""An exclusive, named lock on a lake (e.g. so two ``biolake sync`` runs cannot interleave).

The lock is an object created only if absent — ``O_EXCL`` on a local lake, a
conditional PUT (``If-None-Match: *``) on S3 — under ``LAKE/_locks/``, holding the
owner's host and pid. A lock left on this host by a process that died (SIGKILL,
power loss) is stale: its pid no longer runs, so the next run takes it over. A lock
held from another host is never broken automatically; the error names the object
to delete once that host is known to be gone.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

from biolake.lake.errors import LakeError
from biolake.lake.storage import Location

_POLL_SECONDS = 0.5


@contextmanager
def lake_lock(location: Location, name: str, *, wait: float = 0.0) -> Iterator[None]:
    """Hold the lock ``name`` on the lake for the duration of the block, or raise LakeError.

    A lock held by a live process is waited for, up to ``wait`` seconds (polled), so
    overlapping runs go one after the other instead of failing.
    """
    if location.remote and not location.root.startswith("s3://"):
        warnings.warn(f"{location.root}: no lock on this kind of bucket (local and s3:// only); "
                      f"run one {name} at a time", stacklevel=3)
        yield
        return
    store = _LockStore(location, location.join("_locks", f"{name}.lock"))
    owner = json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time(),
                        "token": uuid.uuid4().hex})
    deadline = time.monotonic() + wait
    while not store.create(owner):
        held = store.read()
        if held is None:                              # released between our two calls: try again
            continue
        holder = _parse(held)
        if _is_stale(holder):
            store.delete_if(held)                     # only that dead owner's lock, not a newer one
        elif time.monotonic() < deadline:
            time.sleep(min(_POLL_SECONDS, max(deadline - time.monotonic(), 0.0)))
        else:
            raise LakeError(f"{location.root}: another {name} (pid {holder.get('pid')} on "
                            f"{holder.get('host')}) holds the lock {store.path}"
                            f"{f' (waited {wait:g} s)' if wait else ''}; if that process is gone, "
                            "delete the lock") from None
    try:
        yield
    finally:
        store.delete_if(owner)


class _LockStore:
    """Create-if-absent, read and delete of one small object, locally or on S3."""

    def __init__(self, location: Location, path: str) -> None:
        self.path = path
        self.remote = location.remote
        self.fs = location.filesystem()

    def create(self, content: str) -> bool:
        """Write ``content`` unless the object exists; True when this call created it.

        Atomic with its content: a conditional PUT on S3; locally a hard link of a finished
        temporary file, so no reader ever sees an empty lock."""
        try:
            if self.remote:
                bucket, _, key = self.path.removeprefix("s3://").partition("/")
                self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=content.encode(),
                                IfNoneMatch="*")
                return True
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            draft = f"{self.path}.{uuid.uuid4().hex}.draft"
            with open(draft, "x") as handle:
                handle.write(content)
            try:
                os.link(draft, self.path)
            finally:
                os.remove(draft)
        except FileExistsError:
            return False
        return True

    def read(self) -> str | None:
        """The lock's content, or None when there is no lock."""
        try:
            return self.fs.cat_file(self.path).decode()
        except FileNotFoundError:
            return None

    def delete_if(self, content: str) -> None:
        """Delete the lock if it still holds ``content`` (never another owner's lock)."""
        if self.read() == content:
            try:
                self.fs.rm_file(self.path)
            except FileNotFoundError:
                pass


def _parse(content: str) -> dict:
    try:
        holder = json.loads(content)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _is_stale(holder: dict) -> bool:
    """A lock whose owner is gone: same host, pid not running. A lock from another host, or one
    that cannot be read, is never judged stale (the error says to delete it by hand)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
