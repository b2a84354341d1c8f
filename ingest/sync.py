"""Unattended ingestion: load every release of a source folder that the lake does not have yet.

SOURCE (a local folder or a bucket URL such as ``s3://incoming/ukb``) holds one folder
per release, each with a ``release.yaml`` naming the release. Folders are taken in name
order. A release already in the lake is skipped when its files' checksums match
what the lake recorded at ingest, and is an error when they differ: a published release
must never change. A release ingested from its folder recorded the sha256 digests its
manifest lists: when they cover every file, the manifest alone stands for the release
(nothing is downloaded or re-hashed); files recorded by BLAKE3 are hashed again. So that
a file edited or rotted behind an unchanged manifest is still noticed, every run compares
each local file's size and mtime with those recorded at ingest (reading no byte) and warns
of a difference, and ``verify=True`` re-hashes every file of every loaded release and
reports each one that differs or is missing. A release on a bucket is copied to a local
staging folder, then ingested (or verified). Each release is atomic, so a killed sync
resumes by running again; the lake lock keeps two syncs from interleaving.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import fsspec
import yaml

from biolake.ingest.genotypes import Progress
from biolake.ingest.participants import OverlapRule
from biolake.ingest.release import (MANIFEST, ReleaseSources, ingest_release, manifest_release_name,
                            recorded_kind_checksum, size_and_mtime, source_checksums, source_files)
from biolake.lake.errors import InputError, ReleaseError
from biolake.lake.lake import Lake, ReleaseInfo
from biolake.lake.lock import lake_lock
from biolake.lake.storage import Location



@dataclass
class SyncReport:
    """Releases ingested by this run, releases already present, loaded releases whose files
    ``verify`` found changed, one line per changed or missing file (warnings included), and
    releases skipped because they were retracted."""

    ingested: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    changed_files: list[str] = field(default_factory=list)
    retracted: list[str] = field(default_factory=list)


def sync(lake: Lake, source: str, *, storage_options: dict[str, str] | None = None,
         progress: Progress | None = None, wait: float = 0.0, verify: bool = False,
         on_release: Callable[[str, str], None] | None = None,
         on_changed_file: Callable[[str], None] | None = None,
         overlap: OverlapRule = OverlapRule()) -> SyncReport:
    """Ingest, in order, every release under ``source`` that the lake lacks.

    Loaded releases are checked by the size and mtime of their local files (a difference is
    a warning: a copy or a touch changes an mtime, not the content), or with ``verify`` re-hashed
    (a difference is what ``SyncReport.changed`` lists); nothing loaded is ingested again.
    A retracted release is never reloaded (outcome 'retracted'). ``on_release(name, outcome)``
    reports each release ('unchanged', 'changed', 'ingested' or 'retracted'),
    ``on_changed_file(line)`` each changed or missing file. A sync already running, or another
    writer, is waited for up to ``wait`` seconds (then this one finds its work done). Each new
    release is checked as ``ingest_release`` checks it (``overlap`` included): the first bad one
    stops the sync, uncommitted.
    """
    where = Location.parse(source, storage_options)
    fs = where.filesystem()
    report = SyncReport()
    with lake_lock(lake.location, "sync", wait=wait):
        committed = {info.release: info for info in lake.releases(retracted=True)}
        for folder in release_folders(fs, where.root):
            manifest = _manifest(fs, folder)
            name = manifest_release_name(manifest, f"{folder}/{MANIFEST}")
            if not name:
                raise InputError(f"{folder}/{MANIFEST}", "sync needs a 'release:' name in the manifest")
            changed_files: list[str] = []
            if name in committed and committed[name].retraction is not None:
                outcome = "retracted"   # its name is never reused, its data never reloaded
            elif name in committed and verify:
                with _local_copy(fs, folder, remote=where.remote) as local:
                    changed_files = _rehashed_changes(committed[name], folder, local)
                outcome = "changed" if changed_files else "unchanged"
            elif name in committed and _listed_checksums_match(manifest, committed[name].source_checksums):
                changed_files = [] if where.remote else _size_or_mtime_changes(committed[name], folder)
                outcome = "unchanged"
            else:
                with _local_copy(fs, folder, remote=where.remote) as local:
                    sources, _ = ReleaseSources.from_folder(local)
                    if name in committed:
                        _check_unchanged(name, folder, sources, committed[name].source_checksums)
                        outcome = "unchanged"
                    else:
                        ingest_release(lake, sources, release=name, source=folder, progress=progress, wait=wait,
                                       overlap=overlap)
                        outcome = "ingested"
            getattr(report, outcome).append(name)   # the outcomes name the report's lists
            report.changed_files += changed_files
            if on_changed_file:
                for line in changed_files:
                    on_changed_file(line)
            if on_release:
                on_release(name, outcome)
    return report


def release_folders(fs: fsspec.AbstractFileSystem, root: str) -> list[str]:
    """Sub-folders of ``root`` holding a release manifest, in name order."""
    if not fs.isdir(root):
        raise InputError(root, "not a folder of releases")
    folders = [entry["name"] for entry in fs.ls(root, detail=True) if entry["type"] == "directory"]
    return sorted(folder for folder in folders if fs.isfile(f"{folder}/{MANIFEST}"))


def _manifest(fs: fsspec.AbstractFileSystem, folder: str) -> dict:
    try:
        manifest = yaml.safe_load(fs.cat_file(f"{folder}/{MANIFEST}")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{folder}/{MANIFEST}", f"not valid YAML ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(f"{folder}/{MANIFEST}", "expected a mapping (format, release, sources, checksums)")
    return manifest


def _listed_checksums_match(manifest: dict, recorded: dict[str, str]) -> bool:
    listed = manifest.get("checksums")
    return isinstance(listed, dict) and bool(listed) and \
        all(recorded.get(name) == digest for name, digest in listed.items()) and set(recorded) <= set(listed)


@contextmanager
def _local_copy(fs: fsspec.AbstractFileSystem, folder: str, *, remote: bool) -> Iterator[Path]:
    """The release folder itself when local; a staging copy of it when on a bucket."""
    if not remote:
        yield Path(folder)
        return
    with tempfile.TemporaryDirectory(prefix="biolake-sync-") as staging:
        local = Path(staging) / Path(folder).name
        fs.get(f"{folder}/", str(local), recursive=True)
        yield local


def _check_unchanged(name: str, folder: str, sources: ReleaseSources, recorded: dict[str, str]) -> None:
    found = source_checksums(sources, like=recorded)
    changed = sorted(file for file in found.keys() | recorded.keys() if found.get(file) != recorded.get(file))
    if changed:
        raise ReleaseError(f"release {name!r} is already in the lake but {folder} differs from what was "
                           f"ingested ({', '.join(changed)}); releases are immutable — publish it under "
                           "a new name")


def _size_or_mtime_changes(release: ReleaseInfo, folder: str) -> list[str]:
    """Files of a loaded release whose size or mtime differ from those recorded at ingest, one
    line each; reads no byte. Releases loaded before biolake recorded them have none: skipped."""
    if not release.source_stats:
        return []
    sources, _ = ReleaseSources.from_folder(folder, verify=False)
    lines = _changed_files(release.release, folder, release.source_stats, source_files(sources),
                           differs=lambda path, recorded: size_and_mtime(path) != recorded, how="size/mtime")
    return [f"{line}; run biolake sync --verify" for line in lines]


def _rehashed_changes(release: ReleaseInfo, folder: str, local: Path) -> list[str]:
    """Files of a loaded release (in ``local``, its folder or a copy) whose checksum, read again
    past any cache, differs from the one recorded at ingest, or that are missing; one line each."""
    sources, _ = ReleaseSources.from_folder(local, verify=False)
    return _changed_files(release.release, folder, release.source_checksums, source_files(sources),
                          differs=lambda path, recorded: recorded_kind_checksum(path, recorded, reread=True) != recorded,
                          how="checksum")


def _changed_files(release: str, folder: str, recorded: Mapping[str, object], files: dict[str, Path], *,
                   differs: Callable[[Path, object], bool], how: str) -> list[str]:
    """One line for each file in ``recorded`` that ``files`` lacks or that ``differs`` from its record."""
    lines = []
    for name, expected in sorted(recorded.items()):
        path = files.get(name)
        if path is None or not path.is_file():
            lines.append(f"{folder}/{name} of release {release} is missing")
        elif differs(path, expected):
            lines.append(f"{folder}/{name} of release {release} changed since it was loaded ({how})")
    return lines
