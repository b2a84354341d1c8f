"""The lake: Delta tables under one root, grouped into named, atomic releases.

Every table carries a ``release`` partition column. Ingest writes a release's
rows into each table (replacing any leftovers of an earlier, interrupted attempt
at the same release), then appends one row to the ``releases`` table. That last
commit is the release's single atomic point: readers only ever see releases that
are in the registry, so a killed ingest leaves nothing visible, and a rerun
simply overwrites its own leftovers. Keeping the release as data (not as a Delta
version) lets a withdrawal rewrite every release in place and keep each readable.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import re
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version as package_version
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
from deltalake import (BloomFilterProperties, ColumnProperties, CommitProperties, DeltaTable,
                       WriterProperties, write_deltalake)
from deltalake import Schema as DeltaSchema
from deltalake.transaction import AddAction, create_table_with_add_actions
from deltalake.exceptions import TableNotFoundError

from biolake.lake.catalog import Catalog
from biolake.lake.errors import LakeError, ReleaseError
from biolake.lake.faults import fault_point
from biolake.lake.lock import lake_lock
from biolake.lake.results import DERIVED_FOLDER, RESULTS_FOLDER, ResultsFiles, StagedFile
from biolake.lake.schema import TABLES, ResultsKind, TableSpec, results_kind, spec
from biolake.lake.storage import Location

# Files kept beside each version of a results table (see Lake.write_attachment): kind → folder, extension, what it is
ATTACHMENTS = {"log": ("_logs", "log", "job log"),
               "estimates": ("_estimates", "parquet", "fitted estimates (a model later runs apply)")}

_RELEASE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_REGISTRY = "releases"
_RETRACTIONS = "retractions"
_DROPPED_RESULTS = "dropped_results"


def biolake_version() -> str:
    try:
        return package_version("biolake")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


def check_release_name(name: str) -> str:
    """Release names are short identifiers: letters, digits, '.', '_' and '-'."""
    if not _RELEASE_NAME.match(name):
        raise ReleaseError(f"release name {name!r} is not allowed: use 1-64 letters, digits, "
                           "'.', '_' or '-', starting with a letter or digit")
    return name


def check_results_name(name: str) -> str:
    """Results names follow the release-name rule (they become folder names)."""
    if not _RELEASE_NAME.match(name):
        raise LakeError(f"results name {name!r} is not allowed: use 1-64 letters, digits, "
                        "'.', '_' or '-', starting with a letter or digit")
    return name


@dataclass(frozen=True)
class Retraction:
    """A release withdrawn from use (``biolake release retract``): when, and why."""

    release: str
    retracted_at: datetime
    why: str

    def __str__(self) -> str:
        return f"release {self.release!r} was retracted on {self.retracted_at:%Y-%m-%d}: {self.why}"

    def of_results(self, name: str) -> str:
        """What a reader of the results ``name``, computed from this release, must be told (one line)."""
        return (f"results {name!r} were computed from release {self.release!r}, "
                f"retracted on {self.retracted_at:%Y-%m-%d}: {self.why}")


@dataclass(frozen=True)
class ReleaseInfo:
    """One committed release, as the registry records it (and its retraction, if it was retracted)."""

    release: str
    sequence: int
    committed_at: datetime
    tables: tuple[str, ...]
    table_versions: dict[str, int]
    source: str
    source_checksums: dict[str, str]
    biolake_version: str
    source_stats: dict[str, list[int]]   # file → [size, mtime_ns] at ingest; empty if not recorded
    retraction: Retraction | None = None


@dataclass(frozen=True)
class ResultsInfo:
    """One results table, as ``biolake results list`` shows it: what made it, from which release, how big."""

    name: str
    kind: str | None
    release: str | None           # the release it was computed from (None: meta-analyses, imports)
    rows: int
    created_at: str | None        # ISO time, as its provenance records it
    retraction: Retraction | None  # set when that release has since been retracted

    def origin(self) -> str:
        """Where it came from, in words: 'gwas of release r1 on 2026-12-06'."""
        return " ".join([self.kind or "unknown kind", *([f"of release {self.release}"] if self.release else []),
                         *([f"on {self.created_at[:10]}"] if self.created_at else [])])

    def flags(self) -> list[str]:
        """Warnings a reader of these results must see (today: computed from a retracted release)."""
        return [f"computed from retracted release {self.release}"] if self.retraction else []


class Lake:
    """A biolake lake: its catalog, its Delta tables and its release registry.

    Examples
    --------
    >>> lake = Lake.init("new_lake")
    >>> [r.release for r in lake.releases()]
    []
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.location = catalog.location

    # -- opening -----------------------------------------------------------------
    @classmethod
    def init(cls, root: str | os.PathLike, *, storage_options: dict[str, Any] | None = None,
             exist_ok: bool = False) -> "Lake":
        """Create an empty lake at ``root``: its catalog.yaml and an empty release registry."""
        location = Location.parse(root, storage_options)
        lake = cls(Catalog.fresh(location, storage_options))
        if lake._registry_exists():
            if exist_ok:
                return cls.open(location.root, storage_options=storage_options)
            raise LakeError(f"{location.root}: a lake already exists here")
        lake.catalog.save()
        DeltaTable.create(lake.table_uri(_REGISTRY), TABLES[_REGISTRY].arrow_schema(),
                          storage_options=location.delta_options())
        return lake

    @classmethod
    def open(cls, where: str | os.PathLike, *, storage_options: dict[str, Any] | None = None) -> "Lake":
        """Open a lake from its root URL or from a catalog.yaml that points at it."""
        lake = cls(Catalog.load(where, storage_options=storage_options))
        if not lake._registry_exists():
            raise LakeError(f"{lake.location.root}: not an initialised lake (no release registry); "
                            f"run 'biolake init {lake.location.root}'")
        return lake

    def _registry_exists(self) -> bool:
        return self._open_delta(self.table_uri(_REGISTRY)) is not None

    def _open_delta(self, uri: str) -> DeltaTable | None:
        """The Delta table at ``uri``, or None if there is none: one load of its log (on a
        bucket, checking first and then opening would load it twice, each a few requests)."""
        try:
            return DeltaTable(uri, storage_options=self.location.delta_options())
        except TableNotFoundError:
            return None

    # -- tables ------------------------------------------------------------------
    def table_uri(self, name: str) -> str:
        return self.location.join(name)

    def has_table(self, name: str) -> bool:
        return DeltaTable.is_deltatable(self.table_uri(name), self.location.delta_options())

    def delta_if_exists(self, name: str) -> DeltaTable | None:
        """The Delta table ``name``, or None if the lake has none: one load of its log, where
        :meth:`has_table` then :meth:`delta` would load it twice."""
        return self._open_delta(self.table_uri(name))

    def delta(self, name: str, *, version: int | None = None) -> DeltaTable:
        """The Delta table ``name`` (latest version unless ``version`` asks for time travel)."""
        table = self._open_delta(self.table_uri(name))
        if table is None:
            raise LakeError(f"{self.location.root}: no table {name!r} in this lake")
        if version is not None and version != table.version():
            if not 0 <= version <= table.version():
                raise LakeError(f"table {name!r} has no version {version} "
                                f"(versions 0 to {table.version()})")
            table.load_as_version(version)
        return table

    def dataset(self, name: str, *, release: str | None = None,
                version: int | None = None) -> ds.Dataset:
        """A pyarrow dataset of one release's rows of a table (files pruned by partition).

        The files come from the Delta log of that version, never from listing the folder.
        """
        if "release" not in spec(name).partition_by:  # lake-wide tables: the registry, the audit
            return self._arrow_dataset(self.delta(name, version=version))
        return self.release_dataset(name, self.resolve_release(release), version=version)

    def release_dataset(self, name: str, chosen: ReleaseInfo, *, version: int | None = None) -> ds.Dataset:
        """As :meth:`dataset`, for a release the caller resolved already (one resolution for many tables)."""
        if name not in chosen.tables:
            raise LakeError(f"release {chosen.release!r} has no table {name!r}; "
                            f"it has: {', '.join(chosen.tables)}")
        return self._arrow_dataset(self.delta(name, version=version),
                                   file_pruning_predicate=[("release", "=", chosen.release)])

    def _arrow_dataset(self, table: DeltaTable, **options: Any) -> ds.Dataset:
        return table.to_pyarrow_dataset(
            filesystem=self.location.arrow_filesystem(table.table_uri.removeprefix("file://")),
            **options)

    def read(self, name: str, *, release: str | None = None, columns: list[str] | None = None,
             filter: ds.Expression | None = None, version: int | None = None) -> pa.Table:
        """Read (part of) a table for one release into memory."""
        return self.dataset(name, release=release, version=version).to_table(columns=columns,
                                                                              filter=filter)

    # -- releases ----------------------------------------------------------------
    def releases(self, *, retracted: bool = False,
                 retractions: dict[str, Retraction] | None = None) -> list[ReleaseInfo]:
        """Committed releases in commit order; retracted ones (with their retraction) only if asked.

        ``retractions``: :meth:`retractions` as the caller read it already (one read of that
        table serves many calls, e.g. every view of a connection); read here if not given.
        """
        retractions = self.retractions() if retractions is None else retractions
        rows = self.dataset(_REGISTRY).to_table().sort_by("sequence").to_pylist()
        known = [ReleaseInfo(r["release"], r["sequence"], r["committed_at"], tuple(r["tables"]),
                             json.loads(r["table_versions"]), r["source"],
                             json.loads(r["source_checksums"]), r["biolake_version"],
                             json.loads(r.get("source_stats") or "{}"), retractions.get(r["release"]))
                 for r in rows]
        return [info for info in known if retracted or info.retraction is None]

    def retractions(self) -> dict[str, Retraction]:
        """The retracted releases (release → its retraction), from the ``retractions`` table."""
        table = self._open_delta(self.table_uri(_RETRACTIONS))
        if table is None:
            return {}
        return {r["release"]: Retraction(r["release"], r["retracted_at"], r["why"])
                for r in self._arrow_dataset(table).to_table().to_pylist()}

    def resolve_release(self, release: str | None = None, *,
                        retractions: dict[str, Retraction] | None = None) -> ReleaseInfo:
        """The named release, or the latest one not retracted when ``release`` is None.

        Naming a retracted release is a ReleaseError saying when and why it was retracted.
        ``retractions`` as for :meth:`releases`.
        """
        known = self.releases(retracted=True, retractions=retractions)
        current = [info for info in known if info.retraction is None]
        if release is None:
            if not current:
                raise ReleaseError(f"{self.location.root}: the lake has no "
                                   f"{'current ' if known else ''}releases yet; load one with 'biolake ingest'")
            return current[-1]
        for info in known:
            if info.release == release:
                if info.retraction is not None:
                    raise ReleaseError(str(info.retraction))
                return info
        raise ReleaseError(f"unknown release {release!r}; committed releases: "
                           f"{', '.join(r.release for r in current)}")

    def begin_release(self, name: str, *, source: str,
                      checksums: dict[str, str] | None = None) -> "ReleaseWriter":
        """Start writing a new release; nothing is visible until ``ReleaseWriter.commit``.

        ``checksums`` (source file → sha256, or ``blake3:HEX``) are recorded with the release,
        so a later sync can tell an already-loaded release from a changed one; so are the
        writer's ``source_stats`` (file → [size, mtime_ns]), for a check that reads no file.
        """
        self.check_new_release(name)
        return ReleaseWriter(self, name, source=source, checksums=checksums or {})

    def check_new_release(self, name: str) -> None:
        """Raise ReleaseError unless ``name`` is a well-formed release name not yet committed."""
        check_release_name(name)
        if any(r.release == name for r in self.releases(retracted=True)):
            raise ReleaseError(f"release {name!r} is already committed in {self.location.root}; "
                               "releases are immutable (a retracted one too), choose a new name")

    def replace_release_rows(self, name: str, release: str,
                             data: pa.Table | pa.RecordBatchReader | Iterator[pa.RecordBatch], *,
                             schema: pa.Schema | None = None, row_group_rows: int | None = None,
                             note: dict[str, str] | None = None) -> tuple[int, int]:
        """Replace every row of ``release`` in table ``name`` with ``data``, in one Delta commit.

        The one write path of the lake (ingest and withdrawal both use it). Tables of sample
        vectors (genotypes, methylation) are written as Parquet files on worker threads and
        committed as add actions; the others through ``write_deltalake``. Returns the rows
        written and the table's new version. An exception raised while ``data`` streams is
        re-raised as itself, and nothing is committed. ``note`` is kept in the commit's
        metadata (see :meth:`committed_with`).
        """
        table_spec = spec(name)
        if isinstance(data, pa.Table):
            schema, batches = data.schema, iter(data.to_batches())
        else:
            schema = data.schema if isinstance(data, pa.RecordBatchReader) else schema
            assert schema is not None, "an iterator of batches needs its schema"
            batches = iter(data)
        table_spec.validate(schema)
        uri, options = self.table_uri(name), self.location.delta_options()
        existing = self._open_delta(uri)
        partition_by = list(table_spec.partition_by)
        committed = CommitProperties(custom_metadata={
            "biolake.release": release, "biolake.version": biolake_version(), **(note or {})})
        if _vector_columns(table_spec):
            actions, rows = _stage_in_parallel(self.location, uri, schema, batches, label=name,
                                               partition_by=partition_by, row_group_rows=row_group_rows,
                                               parquet_options=_parquet_options(table_spec),
                                               bloom_columns=table_spec.lookup_columns)
            if existing is None:
                create_table_with_add_actions(uri, DeltaSchema.from_arrow(schema), actions, mode="append",
                                              partition_by=partition_by, storage_options=options,
                                              commit_properties=committed)
            else:
                existing.create_write_transaction(actions, mode="overwrite", schema=schema, partition_by=partition_by,
                                                  partition_filters=[("release", "=", check_release_name(release))],
                                                  commit_properties=committed)
        else:
            rows = _write_streamed(
                uri if existing is None else existing, schema, batches, label=name,
                mode="append" if existing is None else "overwrite",
                predicate=None if existing is None else f"release = '{check_release_name(release)}'",
                partition_by=partition_by or None,
                schema_mode="merge" if table_spec.wide else None,
                storage_options=options,
                writer_properties=_writer_properties(table_spec, row_group_rows),
                commit_properties=committed,
            )
        fault_point(f"written:{name}")
        if existing is None:
            return rows, DeltaTable(uri, storage_options=options).version()
        existing.update_incremental()   # reads the new commit only, not the whole log again
        return rows, existing.version()

    def releases_with_rows(self, name: str) -> set[str]:
        """Release values that have rows in table ``name``, committed or not (from the Delta log)."""
        table = self.delta_if_exists(name) if "release" in spec(name).partition_by else None
        return set() if table is None else {partition["release"] for partition in table.partitions()}

    def drop_release_rows(self, name: str, release: str) -> DeltaTable:
        """Delete every row of ``release`` from table ``name`` (one Delta commit); returns the table
        as the delete left it, for a caller with more to do to it (no second load of its log)."""
        table = self.delta(name)
        table.delete(f"release = '{check_release_name(release)}'")
        return table

    def drop_uncommitted_rows(self) -> list[str]:
        """Delete rows that belong to no committed release (left by interrupted ingests)."""
        committed = {info.release for info in self.releases()}
        dropped = []
        for name in TABLES:
            for release in sorted(self.releases_with_rows(name) - committed):
                self.drop_release_rows(name, release)
                dropped.append(f"{name}@{release}")
        return dropped

    def replace_genotype_rows(self, release: str, batches: Iterator[pa.RecordBatch], *,
                              row_group_rows: int | None = None) -> dict[str, int]:
        """Replace a release's genotypes, then its variants table, derived from them.

        Returns the new version of each of the two tables.
        """
        _, genotypes = self.replace_release_rows("genotypes", release, batches,
                                                 schema=TABLES["genotypes"].arrow_schema(),
                                                 row_group_rows=row_group_rows)
        return {"genotypes": genotypes, "variants": self.derive_variants(release)}

    def derive_variants(self, release: str, *, note: dict[str, str] | None = None) -> int:
        """Rewrite a release's variants table from its genotypes; returns its new version.

        The variants are read back from the genotype files (their small columns only), so
        memory stays flat in the number of variants.
        """
        variant_schema = TABLES["variants"].arrow_schema()
        written = self._arrow_dataset(self.delta("genotypes"),
                                      file_pruning_predicate=[("release", "=", release)])
        variant_rows = (batch.cast(variant_schema)
                        for batch in written.to_batches(columns=variant_schema.names))
        return self.replace_release_rows("variants", release, variant_rows, schema=variant_schema, note=note)[1]

    def committed_with(self, name: str, release: str, note: dict[str, str]) -> bool:
        """Whether a commit to table ``name`` for ``release`` carries ``note`` in its metadata:
        how a rerun knows a rewrite that must not happen twice has already happened."""
        table = self.delta_if_exists(name)
        if table is None:
            return False
        wanted = {"biolake.release": release, **note}
        return any(all(entry.get(k) == v for k, v in wanted.items()) for entry in table.history())

    # -- results -----------------------------------------------------------------
    def results_uri(self, name: str) -> str:
        return self.location.join(RESULTS_FOLDER, check_results_name(name))

    def results_files(self, name: str) -> ResultsFiles:
        """Where a new run of the results ``name`` writes its files (see :mod:`lake.results`)."""
        return ResultsFiles(self.location, check_results_name(name))

    def write_attachment(self, name: str, version: int, kind: str, data: bytes) -> str:
        """Keep a file of ``kind`` (ATTACHMENTS) for ``version`` of the results ``name`` beside the table, as
        ``FOLDER/vVERSION.EXT`` (the Delta log never names it: no reader sees it, vacuum leaves it, and dropping
        the table drops it); returns its location."""
        folder, extension, _ = ATTACHMENTS[kind]
        folder = self.location.join(RESULTS_FOLDER, check_results_name(name), folder)
        filesystem = self.location.arrow_filesystem(folder)
        if not self.location.remote:   # a bucket has no folders to make
            filesystem.create_dir(".", recursive=True)
        with filesystem.open_output_stream(f"v{version}.{extension}") as sink:
            sink.write(data)
        return f"{folder}/v{version}.{extension}"

    def read_attachment(self, name: str, kind: str, version: int | None = None) -> bytes:
        """The file of ``kind`` :meth:`write_attachment` kept for ``version`` (default: the current one) of the
        results ``name``."""
        current = self.results(name).version()
        if version is not None and not 0 <= version <= current:
            raise LakeError(f"results {name!r} has no version {version} (its versions are 0 to {current})")
        version = current if version is None else version
        folder, extension, what = ATTACHMENTS[kind]
        folder = self.location.join(RESULTS_FOLDER, check_results_name(name), folder)
        try:
            with self.location.arrow_filesystem(folder).open_input_stream(f"v{version}.{extension}") as source:
                return source.read()
        except FileNotFoundError:
            raise LakeError(f"results {name!r} version {version} has no {what} (made before biolake kept them, "
                            "or by a job that writes none)") from None

    def write_job_log(self, name: str, version: int, text: str) -> str:
        """Keep the log of the job that committed ``version`` of the results ``name`` (``_logs/vVERSION.log``)."""
        return self.write_attachment(name, version, "log", text.encode())

    def read_job_log(self, name: str, version: int | None = None) -> str:
        """The log :meth:`write_job_log` kept for ``version`` (default: the current one) of the results ``name``."""
        return self.read_attachment(name, "log", version).decode()

    def check_results_free(self, name: str, *, replace: bool = False) -> None:
        """Refuse a new run under the name of an existing results table unless ``replace``.

        Jobs call it before computing anything; :meth:`commit_results` calls it again under
        the table's lock, so two runs started together cannot both think the name free.
        """
        if self._drop_pending(check_results_name(name)):
            raise LakeError(f"results table {name!r} is being dropped; finish with 'biolake results drop {name}'")
        if not replace and self._open_delta(self.results_uri(name)) is not None:
            raise LakeError(f"results table {name!r} exists (from {self.results_info(name).origin()}); "
                            "use --replace or another --name")

    def commit_results(self, files: ResultsFiles, actions: list[AddAction], *, schema: pa.Schema,
                       partition_by: list[str], provenance: dict[str, Any], replace: bool = False) -> int:
        """Make a run's files the results table ``files.name`` in one commit; an earlier run of that
        name is replaced only with ``replace`` (see :meth:`check_results_free`).

        ``provenance`` (query text, release, parameters, …) is stored as JSON in the commit
        and in the table's description, so the numbers always say where they came from.
        Results hold summary statistics only, never a participant's data. Returns the version.
        ``schema`` must be one of the kind the provenance names (:data:`lake.schema.RESULTS_KINDS`).
        """
        results_kind(provenance.get("kind"), table=files.name).validate(schema, table=files.name)
        described = json.dumps({"biolake_version": biolake_version(), **provenance}, default=str)
        with lake_lock(self.location, f"results-{files.name}"):
            self.check_results_free(files.name, replace=replace)
            _check_staged(files, actions)
            fault_point(f"before:commit:results/{files.name}")
            create_table_with_add_actions(
                files.uri, DeltaSchema.from_arrow(schema), actions, mode="overwrite", partition_by=partition_by,
                name=files.name, description=described, storage_options=self.location.delta_options(),
                commit_properties=CommitProperties(custom_metadata={"biolake.provenance": described}))
            fault_point(f"after:commit:results/{files.name}")
            return DeltaTable(files.uri, storage_options=self.location.delta_options()).version()

    def results(self, name: str, *, dropping: set[str] | None = None) -> DeltaTable:
        """The results table ``name`` (one whose drop has begun is gone already).

        ``dropping``: :meth:`drops_pending` as the caller listed it already (one listing of
        ``_locks/`` serves many tables, e.g. every view of a connection); listed here if not given.
        """
        table = self._open_delta(self.results_uri(name))
        if table is None or name in (self.drops_pending() if dropping is None else dropping):
            raise LakeError(f"{self.location.root}: no results named {name!r}")
        return table

    def results_info(self, name: str) -> ResultsInfo:
        """What the results ``name`` are: kind, release, rows, when made, and whether that release is retracted."""
        table = self.results(name)
        provenance = json.loads(table.metadata().description)
        release = provenance.get("release")
        return ResultsInfo(name, provenance.get("kind"), release, table.count(), provenance.get("created_at"),
                           self.retractions().get(release) if release else None)

    def results_kind(self, name: str, *, scans: bool = False) -> ResultsKind:
        """The declaration of the kind of the results ``name`` (its provenance records which);
        ``scans`` as for :func:`lake.schema.results_kind`."""
        return results_kind(self.results_provenance(name).get("kind"), table=name, scans=scans)

    def results_retraction(self, name: str) -> Retraction | None:
        """The retraction of the release the results ``name`` were computed from, if it has been retracted."""
        release = json.loads(self.results(name).metadata().description).get("release")
        return self.retractions().get(release) if release else None

    def results_provenance(self, name: str, *, retractions: dict[str, Retraction] | None = None,
                           dropping: set[str] | None = None) -> dict[str, Any]:
        """Where the results ``name`` came from: query text, release, parameters, biolake version; and,
        under ``retracted``, when and why that release was retracted, if it was.

        ``retractions`` as for :meth:`releases`, ``dropping`` as for :meth:`results`.
        """
        provenance = json.loads(self.results(name, dropping=dropping).metadata().description)
        retraction = (self.retractions() if retractions is None else retractions).get(provenance.get("release"))
        return provenance | ({"retracted": str(retraction)} if retraction else {})

    def results_names(self, *, dropping: set[str] | None = None) -> list[str]:
        """The names of the lake's results tables (folders under ``results/`` holding a Delta log);
        ``dropping`` as for :meth:`results`."""
        root = self.location.join(RESULTS_FOLDER)
        filesystem = self.location.arrow_filesystem(root)
        try:
            entries = filesystem.get_file_info(pafs.FileSelector("", allow_not_found=True))
        except FileNotFoundError:
            return []
        dropping = self.drops_pending() if dropping is None else dropping
        return sorted(entry.base_name for entry in entries if entry.type == pafs.FileType.Directory
                      and entry.base_name not in dropping
                      and filesystem.get_file_info(f"{entry.base_name}/_delta_log").type == pafs.FileType.Directory)

    def drop_results(self, name: str) -> dict[str, Any]:
        """Delete the results ``name`` and the tables derived from them, and record the drop; returns the record.

        Crash-safe: the commit point is a marker under ``_locks/`` holding the record, written
        before anything is deleted; from then on the table reads as gone, and a rerun after a
        kill finishes the deletion. The record goes into ``dropped_results`` (once), then the
        marker is removed.
        """
        marker, filesystem = self._drop_marker(check_results_name(name)), self.location.filesystem()
        with lake_lock(self.location, f"results-{name}"):
            if self._drop_pending(name):
                record = json.loads(filesystem.cat_file(marker))
            else:
                info = self.results_info(name)
                record = {"name": name, "dropped_at": datetime.now(timezone.utc).isoformat(), "kind": info.kind,
                          "release": info.release, "rows": info.rows, "created_at": info.created_at}
                fault_point(f"before:commit:drop/{name}")
                filesystem.pipe_file(marker, json.dumps(record).encode())
                fault_point(f"after:commit:drop/{name}")
            for folder in (DERIVED_FOLDER, RESULTS_FOLDER):
                try:
                    filesystem.rm(self.location.join(folder, name), recursive=True)
                except FileNotFoundError:   # deleted by the attempt a kill interrupted, or never built
                    pass
                fault_point(f"deleted:{folder}/{name}")
            self._record_drop(record)
            filesystem.rm_file(marker)
        return record

    def _record_drop(self, record: dict[str, Any]) -> None:
        """Append the drop to ``dropped_results``, unless a killed attempt at it already did."""
        row = {**record, "dropped_at": datetime.fromisoformat(record["dropped_at"])}
        audit = self._open_delta(self.table_uri(_DROPPED_RESULTS))
        if audit is not None and any(
                (r["name"], r["dropped_at"]) == (row["name"], row["dropped_at"])
                for r in self._arrow_dataset(audit).to_table(columns=["name", "dropped_at"]).to_pylist()):
            return
        self.append_record(_DROPPED_RESULTS, row)
        fault_point(f"recorded:drop/{record['name']}")

    def append_record(self, table: str, row: dict[str, Any]) -> None:
        """Append one row to an audit table declared in lake/schema.py (withdrawals, retractions,
        dropped results), in one commit."""
        write_deltalake(self.table_uri(table), pa.Table.from_pylist([row], schema=TABLES[table].arrow_schema()),
                        mode="append", storage_options=self.location.delta_options())

    def _drop_marker(self, name: str) -> str:
        return self.location.join("_locks", f"drop-results-{name}.json")

    def _drop_pending(self, name: str) -> bool:
        """Whether a drop of the results ``name`` has been committed but not finished."""
        return name in self.drops_pending()

    def drops_pending(self) -> set[str]:
        """The results names whose drop has been committed but not finished: one fresh listing of
        ``_locks/`` (never a cached one, which a long-running reader would keep)."""
        try:
            listed = self.location.filesystem().ls(self.location.join("_locks"), detail=False, refresh=True)
        except FileNotFoundError:
            return set()
        names = (path.rsplit("/", 1)[-1] for path in listed)
        return {n.removeprefix("drop-results-").removesuffix(".json") for n in names
                if n.startswith("drop-results-") and n.endswith(".json")}

    def results_dataset(self, name: str, *, dropping: set[str] | None = None) -> ds.Dataset:
        """The results table ``name`` as a pyarrow dataset (files from its Delta log); ``dropping``
        as for :meth:`results`."""
        return self._arrow_dataset(self.results(name, dropping=dropping))

    # -- tables derived from a results table (rebuilt from it, deleted with it) -------
    def derived_uri(self, name: str, part: str) -> str:
        """Where the table ``part`` derived from the results ``name`` lives."""
        return self.location.join(DERIVED_FOLDER, check_results_name(name), part)

    def write_derived(self, name: str, part: str, batches: pa.RecordBatchReader, *, partition_by: list[str],
                      row_group_rows: int, note: dict[str, str]) -> None:
        """Replace the table ``part`` derived from the results ``name`` (one commit carrying ``note``).

        All derived tables of one results table share one fault point name: they are rebuilt
        whole, and a crash test kills their writing once rather than once per table.
        """
        uri = self.derived_uri(name, part)
        _write_streamed(uri, batches.schema, batches, label=f"{DERIVED_FOLDER}/{name}",
                        mode="overwrite", schema_mode="overwrite", partition_by=partition_by or None,
                        storage_options=self.location.delta_options(),
                        writer_properties=WriterProperties(compression="ZSTD", max_row_group_size=row_group_rows),
                        commit_properties=CommitProperties(custom_metadata=note))
        self._vacuum_derived(uri, note)

    def derived_files(self, name: str, part: str) -> ResultsFiles:
        """Where the tasks of a run write the files of the table ``part`` derived from the results
        ``name`` (committed by :meth:`commit_derived`)."""
        return ResultsFiles(self.location, check_results_name(name), derived=part)

    def commit_derived(self, files: ResultsFiles, actions: list[AddAction], *, schema: pa.Schema,
                       partition_by: list[str], note: dict[str, str]) -> None:
        """Make ``files`` (written by tasks) the derived table they belong to, in one commit carrying ``note``."""
        assert files.derived is not None
        fault_point(f"writing:{DERIVED_FOLDER}/{files.name}")
        create_table_with_add_actions(files.uri, DeltaSchema.from_arrow(schema), actions, mode="overwrite",
                                      partition_by=partition_by, storage_options=self.location.delta_options(),
                                      commit_properties=CommitProperties(custom_metadata=note))
        self._vacuum_derived(files.uri, note)

    def _vacuum_derived(self, uri: str, note: dict[str, str]) -> None:
        """Delete the files of derived-table versions replaced over an hour ago: a reader that
        listed the previous version's files keeps them long enough to finish and refresh."""
        try:   # housekeeping: a failure leaves old files behind, nothing worse
            DeltaTable(uri, storage_options=self.location.delta_options()).vacuum(
                retention_hours=1, enforce_retention_duration=False, dry_run=False,
                commit_properties=CommitProperties(custom_metadata=note))
        except Exception as exc:
            warnings.warn(f"{uri}: old files not vacuumed ({str(exc).splitlines()[0]})", stacklevel=3)

    def derived(self, name: str, part: str) -> DeltaTable | None:
        """The table ``part`` derived from the results ``name``, or None if it was never built."""
        return self._open_delta(self.derived_uri(name, part))

    def dataset_of(self, table: DeltaTable) -> ds.Dataset:
        """A Delta table of this lake, as loaded, as a pyarrow dataset (files from its Delta log)."""
        return self._arrow_dataset(table)


def _check_staged(files: ResultsFiles, actions: list[AddAction]) -> None:
    """Refuse to commit a run's files when some are gone: a ``results drop`` of its name, run while
    the run was writing them, deleted the folder (one listing of it, not a request per file)."""
    listed = files.location.arrow_filesystem(files.uri).get_file_info(
        pafs.FileSelector("", recursive=True, allow_not_found=True))
    present = {entry.path for entry in listed if entry.type == pafs.FileType.File}
    if any(action.path not in present for action in actions):
        raise LakeError(f"results {files.name} were dropped while this run was writing them; run it again")


def _write_streamed(uri: str | DeltaTable, schema: pa.Schema, batches: Iterator[pa.RecordBatch], *, label: str,
                    **options: Any) -> int:
    """``write_deltalake`` from a stream of batches; returns the rows written.

    An exception raised while the batches stream is re-raised as itself (deltalake
    would wrap it), and nothing is committed. Each batch is a fault point ``writing:label``.
    """
    rows, failure = 0, None

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal rows, failure
        try:
            for batch in batches:
                fault_point(f"writing:{label}")
                rows += batch.num_rows
                yield batch
        except Exception as exc:
            failure = exc
            raise

    try:
        write_deltalake(uri, pa.RecordBatchReader.from_batches(schema, counted()), **options)
    except Exception:
        if failure is not None:
            raise failure from None
        raise
    return rows


_STAGED_FILE_BYTES = 64 << 20   # a file of a vector table holds about this much of its batches
_WRITER_THREADS = 2              # compression is most of an ingest's work: one writer per core here


def _stage_in_parallel(location: Location, uri: str, schema: pa.Schema, batches: Iterator[pa.RecordBatch], *,
                       label: str, partition_by: list[str], row_group_rows: int | None,
                       parquet_options: dict, bloom_columns: tuple[str, ...]) -> tuple[list[AddAction], int]:
    """Write ``batches`` as Parquet files under ``uri`` on worker threads, to commit as add actions.

    One writer compresses on one core, and compression is most of the work of writing sample
    vectors, so files are written side by side: one per run of consecutive rows with the same
    partition values, cut at about ``_STAGED_FILE_BYTES``. Batches are taken, and the fault points
    ``writing:label`` raised, in this thread only, so their order never varies. If ``batches`` or a
    writer raises, the files written so far are deleted and the exception re-raised. Each file gets
    bloom filters on ``bloom_columns`` sized to its rows. Returns the add actions and the rows written.
    """
    run, files = uuid.uuid4().hex[:12], []
    pool = concurrent.futures.ThreadPoolExecutor(_WRITER_THREADS, thread_name_prefix=f"write-{label}")
    pending: collections.deque[concurrent.futures.Future] = collections.deque()
    actions: list[AddAction] = []
    group: list[pa.RecordBatch] = []
    group_key, group_bytes, rows = None, 0, 0

    def write_file(part: int, key: tuple, pieces: list[pa.RecordBatch]) -> AddAction:
        table = pa.Table.from_batches(pieces).cast(schema)   # nullability as declared
        blooms = dict.fromkeys(bloom_columns, {"ndv": table.num_rows, "fpp": 0.01})
        file = StagedFile(location, uri, schema, partition=dict(zip(partition_by, key)),
                          name=f"{run}-{part:05d}", row_group_rows=row_group_rows,
                          parquet_options=parquet_options | {"bloom_filter_options": blooms})
        files.append(file)
        file.write(table)
        return file.close()

    def submit_group() -> None:
        nonlocal group, group_bytes
        if group:
            pending.append(pool.submit(write_file, len(actions) + len(pending), group_key, group))
            group, group_bytes = [], 0
        while len(pending) > _WRITER_THREADS:   # at most one file per thread in memory, plus the next
            actions.append(pending.popleft().result())

    try:
        for batch in batches:
            fault_point(f"writing:{label}")
            rows += batch.num_rows
            for key, piece in _partition_runs(batch, partition_by):
                if key != group_key or group_bytes >= _STAGED_FILE_BYTES:
                    submit_group()
                    group_key = key
                group.append(piece)
                group_bytes += piece.nbytes
        submit_group()
        actions.extend(future.result() for future in pending)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        for file in files:
            file.discard()
        raise
    finally:
        pool.shutdown()
    return actions, rows


def _partition_runs(batch: pa.RecordBatch, columns: list[str]) -> Iterator[tuple[tuple, pa.RecordBatch]]:
    """Consecutive runs of rows of ``batch`` that share their values of ``columns``, with those values."""
    values = [batch.column(name).to_numpy(zero_copy_only=False) for name in columns]
    changes = np.zeros(max(batch.num_rows - 1, 0), bool)
    for column in values:
        changes |= column[1:] != column[:-1]
    starts = [0, *(np.flatnonzero(changes) + 1).tolist(), batch.num_rows]
    for start, stop in zip(starts[:-1], starts[1:]):
        yield tuple(column[start] for column in values), batch.slice(start, stop - start)


def _vector_columns(table_spec: TableSpec) -> list[str]:
    """The table's sample-vector columns (binary): large, unique, never filtered on."""
    return [c.name for c in table_spec.columns if c.type == pa.binary()]


def _parquet_options(table_spec: TableSpec) -> dict:
    """pyarrow Parquet writer settings of a vector table: its codec (zstd but for float vectors);
    no dictionary and no min/max statistics on sample vectors, which are unique and never filtered
    on (bloom filters on its lookup columns are sized per file, by ``_stage_in_parallel``)."""
    others = [c.name for c in table_spec.columns if c.name not in _vector_columns(table_spec)]
    return {"compression": table_spec.compression.lower(), "use_dictionary": others, "write_statistics": others}


def _writer_properties(table_spec: TableSpec, row_group_rows: int | None) -> WriterProperties:
    """``write_deltalake``'s settings for a table without sample vectors: its codec, and bloom filters
    on the columns users look rows up by."""
    bloom = ColumnProperties(bloom_filter_properties=BloomFilterProperties(True, fpp=0.01))
    return WriterProperties(compression=table_spec.compression, max_row_group_size=row_group_rows,
                            column_properties=dict.fromkeys(table_spec.lookup_columns, bloom) or None)


class ReleaseWriter:
    """Writes one release's tables, then commits the release in a single registry append.

    Use as a context manager: the release is committed when the block ends without
    an exception, and stays invisible otherwise.
    """

    def __init__(self, lake: Lake, release: str, *, source: str, checksums: dict[str, str]) -> None:
        self.lake, self.release, self.source, self.checksums = lake, release, source, checksums
        self.source_stats: dict[str, list[int]] = {}
        self._versions: dict[str, int] = {}

    def __enter__(self) -> "ReleaseWriter":
        return self

    def __exit__(self, exc_type: type | None, *_: object) -> None:
        if exc_type is None:
            self.commit()

    def write(self, name: str, data: pa.Table | pa.RecordBatchReader | Iterator[pa.RecordBatch], *,
              schema: pa.Schema | None = None, row_group_rows: int | None = None) -> int:
        """Write this release's rows of table ``name`` (all of them, in one call); return the row count.

        Rows of the same release left by an interrupted attempt are replaced, in the same
        Delta commit. ``data`` may stream (a reader or an iterator of batches with ``schema``).
        """
        rows, version = self.lake.replace_release_rows(name, self.release, data, schema=schema,
                                                       row_group_rows=row_group_rows)
        self._versions[name] = version
        return rows

    def write_genotypes(self, batches: Iterator[pa.RecordBatch], *,
                        row_group_rows: int | None = None) -> None:
        """Write this release's genotypes and, from the same stream, its variants table."""
        self._versions.update(self.lake.replace_genotype_rows(self.release, batches,
                                                              row_group_rows=row_group_rows))

    def commit(self) -> ReleaseInfo:
        """Make the release visible: one append to the registry.

        Rows an earlier, interrupted attempt at this release left in tables this attempt did
        not write are deleted first, so the release holds exactly what this attempt wrote.
        """
        if not self._versions:
            raise ReleaseError(f"release {self.release!r} has no tables; nothing to commit")
        for name in TABLES:
            if name not in self._versions and self.release in self.lake.releases_with_rows(name):
                self.lake.drop_release_rows(name, self.release)
        registry = self.lake.delta(_REGISTRY)
        sequence = registry.count() + 1
        row = {
            "release": self.release, "sequence": sequence,
            "committed_at": datetime.now(timezone.utc), "tables": sorted(self._versions),
            "table_versions": json.dumps(self._versions, sort_keys=True),
            "source": self.source, "source_checksums": json.dumps(self.checksums, sort_keys=True),
            "biolake_version": biolake_version(),
            "source_stats": json.dumps(self.source_stats, sort_keys=True),
        }
        fault_point(f"before:commit:release/{self.release}")
        write_deltalake(self.lake.table_uri(_REGISTRY),   # merged: registries made before source_stats gain it
                        pa.Table.from_pylist([row], schema=TABLES[_REGISTRY].arrow_schema()),
                        mode="append", schema_mode="merge", storage_options=self.lake.location.delta_options())
        fault_point(f"after:commit:release/{self.release}")
        return self.lake.resolve_release(self.release)
