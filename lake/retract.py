"""Retraction: take a mistaken release out of use, and out of the lake.

The retraction is committed first, as one row appended to the ``retractions`` table: from
then on the release is no longer the default, and reading it is an error that says when and
why it was retracted. Then every table's rows of that release are deleted (one Delta commit
per table) and each table is vacuumed and its log compacted with the machinery of a
withdrawal (:func:`lake.withdraw.erase_history`), so time travel cannot bring them back. A
marker under ``_locks/``, written before the commit, tells a rerun after a kill that the
retraction is unfinished, so it completes the deletion rather than refuse an already
retracted release. The registry row itself stays: release names are never reused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone

from deltalake import DeltaTable

from biolake.lake.errors import ReleaseError
from biolake.lake.faults import fault_point
from biolake.lake.lake import Lake, ReleaseInfo, check_release_name
from biolake.lake.lock import lake_lock
from biolake.lake.schema import TABLES
from biolake.lake.withdraw import erase_history


@dataclass(frozen=True)
class RetractionReport:
    release: str
    deleted: list[str]        # tables whose rows of the release this run deleted
    files_removed: int


def retract(lake: Lake, release: str, *, why: str) -> RetractionReport:
    """Retract ``release`` of ``lake`` for the reason ``why``; rerun after a kill to finish it.

    Examples
    --------
    >>> report = retract(Lake.open("lake"), "r2", why="wrong genotype build")
    >>> report.release, report.deleted[:3]
    ('r2', ['samples', 'variants', 'genotypes'])
    """
    why = " ".join(why.split())
    if not why:
        raise ReleaseError(f"say why release {release!r} is retracted (--why TEXT)")
    filesystem = lake.location.filesystem()
    unfinished = lake.location.join("_locks", f"retract-{check_release_name(release)}.json")
    with lake_lock(lake.location, "write"):
        info = _retractable(lake, release, resuming=filesystem.exists(unfinished))
        if info.retraction is None:
            filesystem.pipe_file(unfinished, json.dumps({"why": why}).encode())   # before the commit point
            fault_point(f"before:commit:retraction/{release}")
            _commit_retraction(lake, release, why)
            fault_point(f"after:commit:retraction/{release}")
        deleted: dict[str, DeltaTable] = {}   # each table as its delete left it
        for name in TABLES:
            if release in lake.releases_with_rows(name):
                deleted[name] = lake.drop_release_rows(name, release)
                fault_point(f"deleted:{name}@{release}")
        removed = 0
        # the registry's tables, and any other table that held rows of the release: all its history goes
        for name in [*info.tables, *(name for name in deleted if name not in info.tables)]:
            removed += erase_history(deleted[name] if name in deleted else lake.delta(name))
            fault_point(f"erased:{name}")
        filesystem.rm_file(unfinished)
    return RetractionReport(release, list(deleted), removed)


def _retractable(lake: Lake, release: str, *, resuming: bool) -> ReleaseInfo:
    """The registry's entry of ``release``: known, and not retracted already (unless an interrupted
    retraction of it is being finished)."""
    known = {info.release: info for info in lake.releases(retracted=True)}
    if release not in known:
        raise ReleaseError(f"unknown release {release!r}; committed releases: {', '.join(known) or 'none'}")
    info = known[release]
    if info.retraction is not None and not resuming:
        raise ReleaseError(f"{info.retraction}; it is retracted already")
    return info


def _commit_retraction(lake: Lake, release: str, why: str) -> None:
    row = {"release": release, "retracted_at": datetime.now(timezone.utc), "why": why}
    lake.append_record("retractions", row)
