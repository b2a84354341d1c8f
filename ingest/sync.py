"""Unattended ingestion: load every release of a source folder that the lake does not have yet.

SOURCE holds one folder per release, each with a ``release.yaml`` naming the release.
Folders are taken in name order. A release already in the lake is skipped when the
sha256 of its files matches what the lake recorded at ingest, and is an error when
it does not (a published release must never change). Each release is atomic, so a
killed sync resumes by running again; the lake lock keeps two syncs from interleaving.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ingest.release import MANIFEST, ReleaseSources, ingest_release, load_manifest, source_checksums
from lake.errors import InputError, ReleaseError
from lake.lake import Lake
from lake.lock import lake_lock

Progress = Callable[[str, int, int], None]


@dataclass
class SyncReport:
    """Releases ingested by this run and releases already present (verified by checksum)."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def release_folders(source: str | os.PathLike) -> list[Path]:
    """Sub-folders of ``source`` holding a release manifest, in name order."""
    root = Path(source)
    if not root.is_dir():
        raise InputError(root, "not a folder of releases")
    return sorted(folder for folder in root.iterdir() if (folder / MANIFEST).is_file())


def sync(lake: Lake, source: str | os.PathLike, *, progress: Progress | None = None,
         on_release: Callable[[str, str], None] | None = None) -> SyncReport:
    """Ingest, in order, every release under ``source`` that the lake lacks.

    ``on_release(name, outcome)`` reports each release ('unchanged' or 'ingested').
    """
    report = SyncReport()
    with lake_lock(lake.location, "sync"):
        committed = {info.release: info for info in lake.releases()}
        for folder in release_folders(source):
            name = load_manifest(folder).get("release")
            if not name:
                raise InputError(folder / MANIFEST, "sync needs a 'release:' name in the manifest")
            sources, _ = ReleaseSources.from_folder(folder)
            if name in committed:
                _check_unchanged(name, folder, sources, committed[name].source_checksums)
                report.unchanged.append(name)
            else:
                ingest_release(lake, sources, release=name, source=str(folder.resolve()),
                               progress=progress)
                report.ingested.append(name)
            if on_release:
                on_release(name, "unchanged" if name in committed else "ingested")
    return report


def _check_unchanged(name: str, folder: Path, sources: ReleaseSources, recorded: dict[str, str]) -> None:
    found = source_checksums(sources)
    changed = sorted(file for file in found.keys() | recorded.keys() if found.get(file) != recorded.get(file))
    if changed:
        raise ReleaseError(f"release {name!r} is already in the lake but {folder} differs from what was "
                           f"ingested ({', '.join(changed)}); releases are immutable — publish it under "
                           "a new name")
