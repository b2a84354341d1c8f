"""Consent withdrawal: remove participants from every table of every release, then erase history.

Participant-keyed rows are deleted; genotype and methylation sample vectors lose
the participants' positions (and their allele frequencies are recomputed); the
samples tables are renumbered. Each rewrite is one Delta commit, so a killed
withdrawal is resumed by running it again. Finally every table is vacuumed with
zero retention and its log compacted into a checkpoint, so no older version —
data files, or the column statistics in old log entries — still holds the
participants' values. The ``withdrawals`` table records when and how much, never who: no
digest of the ids is kept anywhere (an unsalted one is tested against every candidate id in seconds),
so only the operator's own copy of the list, checked with ``lake.audit``, ties ids to a withdrawal.
"""

from __future__ import annotations

import functools
import json
import secrets
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, write_deltalake

from biolake.lake.errors import LakeError
from biolake.lake.lake import Lake, ReleaseInfo
from biolake.lake.lock import lake_lock
from biolake.lake.schema import TABLES, participant_columns
from biolake.lake.storage import Location
from biolake.lake.vectors import (allele_summaries, binary_column, byte_matrix, decode_dosages, decode_floats,
                          packed_width, select_calls, select_fixed_width)

PARTICIPANT_TABLES = ("idps", "covariates", "cnvs")
Progress = Callable[[str, int, int], None]
Footprint = dict[str, dict[str, Any]]   # "table@release" or "results/NAME" → rows (and positions) a list removes


@dataclass(frozen=True)
class WithdrawalReport:
    participants: int
    rewritten: list[str]      # "table@release"
    files_removed: int


def withdraw(lake: Lake, participant_ids: Iterable[str], *,
             progress: Progress | None = None) -> WithdrawalReport:
    """Remove ``participant_ids`` from every release of ``lake`` and erase them from its history.

    Rerunning with the same list after an interruption finishes the job: every rewrite is
    committed with the withdrawal's random token, kept in a journal with what the list removes
    (rows and sample positions, counted before any rewrite), so a rerun skips the rewrites done
    (a vector must never lose positions twice). While a journal is open, a list that would remove
    anything else is refused (LakeError) before anything is changed.
    """
    ids = sorted({str(i).strip() for i in participant_ids if str(i).strip()})
    with lake_lock(lake.location, "write"):
        removes = _footprint(lake, ids)
        journal = _Journal(lake.location, participants=len(ids), removes=removes)
        note = {"biolake.withdrawal": journal.token}
        journal.check_same_list(removes, done=lambda step: _committed(lake, step, note))
        journal.record(*lake.drop_uncommitted_rows())  # leftovers of interrupted ingests hold ids too
        releases = lake.releases()
        for step, info in enumerate(releases, start=1):
            _withdraw_from_release(lake, info, set(ids), journal, note=note)
            if progress:
                progress("releases", step, len(releases))
        scored = _withdraw_from_results(lake, ids, note=note)   # results naming participants (scores, kinship)
        journal.record(*(f"results/{name}" for name in scored))
        _drop_id_digests(lake)
        removed = sum(erase_history(table) for table in map(lake.delta_if_exists, TABLES) if table is not None)
        removed += sum(erase_history(lake.results(name)) for name in scored)
        _audit(lake, len(ids), journal.done, removed)
        journal.close()
    return WithdrawalReport(len(ids), journal.done, removed)


class _Journal:
    """An unfinished withdrawal, kept in the lake until it ends: the random token its rewrites are
    committed with, how many participants it names, what it removes from each table (rows, and
    per assay the sample count and positions, taken before any rewrite) and the rewrites
    ("table@release") done. Nothing in it derives from the ids themselves, so nothing in it can
    be tested against candidate ids; while it exists, the ids are still in the tables not yet
    rewritten anyway."""

    def __init__(self, location: Location, *, participants: int, removes: Footprint) -> None:
        self.fs, self.path = location.filesystem(), location.join("_locks", "withdraw-journal.json")
        _refuse_legacy_journal(self.fs, location)
        self.resumed = self.fs.exists(self.path)
        state = json.loads(self.fs.cat_file(self.path)) if self.resumed else \
            {"token": secrets.token_hex(16), "participants": participants, "removes": removes, "done": []}
        self.token, self.participants = state["token"], state["participants"]
        self.removes, self.done = state["removes"], list(state["done"])
        if self.participants != participants:
            raise self.pending_error()
        self.record()   # the plan is kept before anything is rewritten

    def check_same_list(self, removes: Footprint, *, done: Callable[[str], bool]) -> None:
        """Refuse a rerun whose list is not the interrupted one: each step done must find nothing
        of the list left, and each step not done must find exactly what the journal planned
        (the same rows, and the same positions among as many samples)."""
        if not self.resumed:
            return
        for step, planned in self.removes.items():
            found = removes.get(step)   # None: the release was retracted meanwhile
            if found is not None and found != planned and not (found["rows"] == 0 and done(step)):
                raise self.pending_error()

    def pending_error(self) -> LakeError:
        return LakeError(f"{self.path}: a withdrawal of {self.participants:,} participants was interrupted and "
                         f"is pending with another list: finish it with the same list ({self.participants:,} ids) "
                         f"before withdrawing others")

    def record(self, *steps: str) -> None:
        self.done += steps
        state = {"token": self.token, "participants": self.participants, "removes": self.removes, "done": self.done}
        self.fs.pipe_file(self.path, json.dumps(state).encode())

    def close(self) -> None:
        if self.fs.exists(self.path):
            self.fs.rm_file(self.path)


def _refuse_legacy_journal(fs: Any, location: Location) -> None:
    """Earlier biolake versions named their journal after a digest of the ids and committed the
    vector rewrites with that digest, which this version cannot tell from undone work: resuming
    here would take positions out of those vectors a second time."""
    legacy = [path for path in fs.glob(location.join("_locks", "withdraw-*.json"))
              if not path.endswith("withdraw-journal.json")]
    if legacy:
        raise LakeError(f"{legacy[0]}: a withdrawal interrupted under an earlier biolake version; finish it "
                        f"with that version (rerun its biolake withdraw with the same list), then upgrade")


def _footprint(lake: Lake, ids: list[str]) -> Footprint:
    """What withdrawing ``ids`` removes from the lake as it is now, in counts and positions only:
    per participant table and release the rows they hold; per samples table and release those
    rows and, per assay, its sample count and their positions; per results table keyed by
    participant the rows they hold."""
    listed, removes = pa.array(ids, pa.string()), {}
    for info in lake.releases():
        for name in (t for t in info.tables if t in PARTICIPANT_TABLES):
            removes[f"{name}@{info.release}"] = {"rows": _rows_of(_read(lake, name, info), listed)}
        if "samples" in info.tables:
            samples = _read(lake, "samples", info)
            removes[f"samples@{info.release}"] = {"rows": _rows_of(samples, listed),
                                                  "positions": _positions(samples, listed)}
    for name, columns in _participant_results(lake).items():
        rows = lake.results(name).to_pyarrow_table(columns=columns)
        removes[f"results/{name}"] = {"rows": _rows_of(rows, listed, columns=columns)}
    return removes


def _read(lake: Lake, name: str, info: ReleaseInfo) -> pa.Table:
    """Table ``name`` of a release resolved already (on a bucket, resolving it again per table
    would read the registry and the retractions again each time)."""
    return lake.release_dataset(name, info).to_table()


def _rows_of(table: pa.Table, listed: pa.Array, *, columns: Sequence[str] = ("participant_id",)) -> int:
    """How many rows of ``table`` name a ``listed`` participant in any of its participant ``columns``."""
    named = functools.reduce(pc.or_, (pc.is_in(table.column(column), listed) for column in columns))
    return pc.sum(named).as_py() or 0


def _positions(samples: pa.Table, listed: pa.Array) -> dict[str, dict[str, Any]]:
    """Per assay of a samples table: its sample count and the sample positions of ``listed``."""
    found = {}
    for assay in sorted(set(samples.column("assay").to_pylist())):
        order = samples.filter(pc.equal(samples.column("assay"), assay)).sort_by("sample_index")
        gone = np.asarray(pc.is_in(order.column("participant_id"), listed))
        found[assay] = {"samples": len(gone), "positions": np.flatnonzero(gone).tolist()}
    return found


def _committed(lake: Lake, step: str, note: dict[str, str]) -> bool:
    """Whether the rewrite ``step`` ("table@release" or "results/NAME") was committed with ``note``."""
    if step.startswith("results/"):
        history = lake.results(step.removeprefix("results/")).history()
        return any(all(entry.get(key) == value for key, value in note.items()) for entry in history)
    table, release = step.split("@")
    return lake.committed_with(table, release, note)


def _withdraw_from_release(lake: Lake, info: ReleaseInfo, ids: set[str], journal: _Journal, *,
                           note: dict[str, str]) -> None:
    """Participant rows go (deleting again is harmless); sample vectors lose the positions once,
    each rewrite committed with ``note``, so a rerun after a kill skips the done ones;
    the samples table, renumbered, comes last."""
    release, tables, listed = info.release, info.tables, pa.array(sorted(ids), pa.string())
    for name in (t for t in tables if t in PARTICIPANT_TABLES):
        table = _read(lake, name, info)
        keep = pc.invert(pc.is_in(table.column("participant_id"), listed))
        if not pc.all(keep).as_py():
            lake.replace_release_rows(name, release, table.filter(keep), note=note)
            journal.record(f"{name}@{release}")
    if "samples" not in tables:
        return
    samples = _read(lake, "samples", info)
    withdrawn = pc.is_in(samples.column("participant_id"), listed)
    if not pc.any(withdrawn).as_py():
        return
    positions = _positions(samples, listed)
    for assay, rewrite in (("genotypes", _rewrite_genotypes), ("methylation", _rewrite_methylation)):
        found = positions.get(assay, {"samples": 0, "positions": []})
        if assay in tables and found["positions"]:
            keep = np.setdiff1d(np.arange(found["samples"]), found["positions"])
            journal.record(*rewrite(lake, release, n_samples=found["samples"], keep=keep, note=note))
    lake.replace_release_rows("samples", release, _renumbered(samples.filter(pc.invert(withdrawn))), note=note)
    journal.record(f"samples@{release}")


def _renumbered(samples: pa.Table) -> pa.Table:
    """Sample indexes made contiguous again within each assay, order kept."""
    parts = []
    for assay in sorted(set(samples.column("assay").to_pylist())):
        part = samples.filter(pc.equal(samples.column("assay"), assay)).sort_by("sample_index")
        parts.append(part.set_column(part.schema.get_field_index("sample_index"), "sample_index",
                                     pa.array(np.arange(part.num_rows, dtype=np.int64))))
    return pa.concat_tables(parts)


def _rewrite_genotypes(lake: Lake, release: str, *, n_samples: int, keep: np.ndarray,
                       note: dict[str, str]) -> list[str]:
    done = []
    if not lake.committed_with("genotypes", release, note):
        source = lake.dataset("genotypes", release=release)  # opened outside the writer's stream
        batches = (batch for chunk in source.to_batches(batch_size=4096)
                   for batch in _drop_from_genotypes(pa.Table.from_batches([chunk]), n_samples, keep)
                   .to_batches())
        lake.replace_release_rows("genotypes", release, batches, schema=TABLES["genotypes"].arrow_schema(),
                                  note=note)
        done.append(f"genotypes@{release}")
    if not lake.committed_with("variants", release, note):   # allele frequencies, from the new vectors
        lake.derive_variants(release, note=note)
        done.append(f"variants@{release}")
    return done


def _drop_from_genotypes(table: pa.Table, n_samples: int, keep: np.ndarray) -> pa.Table:
    table = table.select(TABLES["genotypes"].arrow_schema().names)
    calls, dosage = table.column("calls").combine_chunks(), table.column("dosage").combine_chunks()
    if calls.null_count == 0:
        new = select_calls(byte_matrix(calls, packed_width(n_samples)), n_samples, keep)
        freq, called = allele_summaries(calls=new, n_samples=len(keep))
        vectors = {"calls": binary_column(new)}
    else:
        new = select_fixed_width(byte_matrix(dosage, 2 * n_samples), 2, keep)
        freq, called = allele_summaries(dosages=decode_dosages(new, len(keep)))
        vectors = {"dosage": binary_column(new)}
    updates = {**vectors, "alt_freq": pa.array(freq, from_pandas=True), "n_called": pa.array(called)}
    for name, column in updates.items():
        table = table.set_column(table.schema.get_field_index(name), name,
                                 column.cast(table.schema.field(name).type))
    return table


def _rewrite_methylation(lake: Lake, release: str, *, n_samples: int, keep: np.ndarray,
                         note: dict[str, str]) -> list[str]:
    if lake.committed_with("methylation", release, note):
        return []
    source = lake.dataset("methylation", release=release)  # opened outside the writer's stream

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in source.to_batches(batch_size=8192):
            table = pa.Table.from_batches([batch]).select(TABLES["methylation"].arrow_schema().names)
            beta = select_fixed_width(byte_matrix(table.column("beta"), 4 * n_samples), 4, keep)
            present = (~np.isnan(decode_floats(beta, len(keep)))).sum(axis=1)
            for name, column in (("beta", binary_column(beta)), ("n_present", pa.array(present))):
                table = table.set_column(table.schema.get_field_index(name), name,
                                         column.cast(table.schema.field(name).type))
            yield from table.to_batches()

    lake.replace_release_rows("methylation", release, batches(),
                              schema=TABLES["methylation"].arrow_schema(), note=note)
    return [f"methylation@{release}"]


def _participant_results(lake: Lake) -> dict[str, list[str]]:
    """The results tables that name participants (polygenic scores, unrelated sets: ``participant_id``; kinship
    pairs: ``participant_id_1`` and ``participant_id_2``), each with those columns."""
    named = {name: participant_columns(lake.results(name).schema().to_arrow().names) for name in lake.results_names()}
    return {name: columns for name, columns in named.items() if columns}


def _withdraw_from_results(lake: Lake, ids: list[str], *, note: dict[str, str]) -> list[str]:
    """Delete every row naming one of the participants from every results table that names participants,
    each delete committed with ``note``; their names."""
    listed = ", ".join("'" + i.replace("'", "''") + "'" for i in ids)
    scored = _participant_results(lake)
    for name, columns in scored.items():
        lake.results(name).delete(" OR ".join(f"{column} IN ({listed})" for column in columns),
                                  commit_properties=CommitProperties(custom_metadata=note))
    return list(scored)


def erase_history(table: DeltaTable) -> int:
    """Vacuum with zero retention and compact the log, so no older version can be read back."""
    removed = table.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    table.alter.set_table_properties({"delta.logRetentionDuration": "interval 0 days"})
    table.create_checkpoint()
    table.cleanup_metadata()
    return len(removed)


def _drop_id_digests(lake: Lake) -> None:
    """Drop the ``ids_sha256`` column of withdrawals recorded by earlier biolake versions: an
    unsalted sha256 of the ids, which hashing candidate ids reverses in seconds. The history
    erased next takes the old files and log entries with it."""
    if not lake.has_table("withdrawals"):
        return
    recorded = lake.read("withdrawals")
    if "ids_sha256" in recorded.column_names:
        write_deltalake(lake.table_uri("withdrawals"), recorded.drop_columns(["ids_sha256"]),
                        mode="overwrite", schema_mode="overwrite", storage_options=lake.location.delta_options())


def _audit(lake: Lake, participants: int, rewritten: list[str], removed: int) -> None:
    row = {"withdrawn_at": datetime.now(timezone.utc), "participants": participants,
           "rewritten": rewritten, "files_removed": removed}
    lake.append_record("withdrawals", row)
