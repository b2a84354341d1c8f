"""Participant-keyed wide tables (IDPs, covariates) and the IDP data dictionary → lake tables.

The first column is the participant id (``eid``, ``IID``, ``participant_id`` or
ENIGMA's ``SubjID``), kept as text. Columns are numeric or, when no cell parses
as a number, text (sex, site, scanner); a column mixing the two is an error.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from biolake.ingest.text import (PARTICIPANT_HEADERS, check_unique, is_text_column, participant_column, read_text_table,
                         to_float)
from biolake.lake.errors import InputError
from biolake.lake.schema import TABLES

_UKB_FIELD = re.compile(r"^(\d+)-(\d+)\.(\d+)$")
OVERLAP_WARNING = 0.5   # a table with fewer than half its participants genotyped is warned of


def read_participant_table(path: str | os.PathLike, *, release: str) -> pa.Table:
    """A wide CSV/TSV → ``release, participant_id, <columns>`` with float64 (or text) values."""
    path = Path(path)
    frame = read_text_table(path)
    id_column = participant_column(frame, path=path)
    if frame.width < 2:
        raise InputError(path, "no value columns beside the participant id", line=1)
    columns: dict[str, pa.Array] = {
        "release": pa.array([release] * frame.height, pa.string()),
        "participant_id": frame.get_column(id_column).to_arrow().cast(pa.string()),
    }
    for name in frame.columns[1:]:
        if name in columns:
            raise InputError(path, f"column name {name!r} is reserved", line=1)
        if is_text_column(frame, name):
            columns[name] = frame.get_column(name).to_arrow().cast(pa.string())
        else:
            columns[name] = pa.array(to_float(frame, name, path=path), pa.float64(),
                                     from_pandas=True)
    return pa.table(columns)


def field_dictionary(fields: list[str], *, release: str,
                     path: str | os.PathLike | None = None) -> pa.Table:
    """The idp_fields table: from a dictionary file when given, else derived from field names.

    Field ids, instances and arrays come from UK Biobank style names (``25010-2.0``).
    Every IDP column must have an entry when a dictionary file is given.
    """
    described: dict[str, dict] = {}
    if path is not None:
        frame = read_text_table(path)
        if "field" not in frame.columns:
            raise InputError(path, f"expected a 'field' column; found {', '.join(frame.columns)}",
                             line=1)
        check_unique(frame["field"], path=path, what="field")
        for key in ("field_id", "instance", "array"):
            if key in frame.columns:
                to_float(frame, key, path=path)  # a number, or an error naming the line
        described = {row["field"]: row for row in frame.to_dicts()}
        missing = [f for f in fields if f not in described]
        if missing:
            raise InputError(path, f"no entry for {len(missing)} IDP column(s), "
                             f"e.g. {', '.join(missing[:3])}")
    rows = []
    for field in fields:
        entry = described.get(field, {})
        parts = _UKB_FIELD.match(field)
        numbers = [int(p) for p in parts.groups()] if parts else [None] * 3
        rows.append({"release": release, "field": field,
                     **{key: _as_int(entry.get(key), default) for key, default in
                        zip(("field_id", "instance", "array"), numbers)},
                     **{key: entry.get(key) for key in ("name", "unit", "category", "structure", "hemisphere",
                                                        "measure")}})
    return pa.Table.from_pylist(rows, schema=TABLES["idp_fields"].arrow_schema())


def _as_int(text: str | None, default: int | None) -> int | None:
    return int(float(text)) if text not in (None, "") else default


def participant_ids(table: pa.Table) -> set[str]:
    return set(table.column("participant_id").to_pylist())


def value_fields(table: pa.Table) -> list[str]:
    """The value columns of a wide participant table."""
    return [name for name in table.column_names if name not in ("release", "participant_id")]


def empty_columns(table: pa.Table, *, path: str | os.PathLike) -> list[str]:
    """A warning for each value column with no value in any row (a field the export left empty): it
    would land as a column of nulls, and a GWAS of it would stop with 'no values'."""
    return [f"{path}, column {name!r}: no values in any of its {table.num_rows:,} rows"
            for name in value_fields(table) if table.column(name).null_count == table.num_rows]


@dataclass(frozen=True)
class OverlapRule:
    """How many of a participant-keyed table's participants (IDPs, covariates, methylation samples)
    must be genotyped in the same release.

    A table sharing no participant with the genotypes, or fewer than ``min_share`` of its
    participants, is refused: it is the wrong file, or its ids are another numbering (another
    application's eids), and as the latest release it would be every later query's default.
    ``allow_partial`` lets it in. A table with under half its participants genotyped is warned of.
    """

    min_share: float = 0.0
    allow_partial: bool = False

    def check(self, ids: set[str], *, genotyped: set[str], path: str | os.PathLike) -> list[str]:
        """Warnings for the table of participants ``ids`` read from ``path`` (none, or one when under
        half are ``genotyped``); an InputError when it is refused."""
        assert ids, "a participant table has rows"
        shared = len(ids & genotyped)
        share = shared / len(ids)
        found = f"{shared:,} of its {len(ids):,} participants ({share:.1%}) are genotyped in this release"
        if not self.allow_partial and (shared == 0 or share < self.min_share):
            wanted = f"at least {self.min_share:.1%} (--min-overlap)" if self.min_share else "some"
            unknown = ", ".join(sorted(ids - genotyped)[:3])
            raise InputError(path, f"{found}, expected {wanted} (not genotyped: {unknown}, …); is it the "
                             "right file? --allow-partial-overlap ingests it anyway")
        return [f"{path}: only {found}"] if share < OVERLAP_WARNING else []


def read_id_list(path: Path) -> list[str]:
    """Participant ids, one per line (first field of a CSV/TSV line); a header line is skipped."""
    if not path.exists():
        raise InputError(path, "file not found")
    ids = [line.replace("\t", ",").split(",")[0].strip() for line in path.read_text().splitlines()]
    ids = [i for i in ids if i]
    if ids and ids[0] in PARTICIPANT_HEADERS:
        ids = ids[1:]
    if not ids:
        raise InputError(path, "no participant ids in the file")
    return ids


def read_sample_list(path: str | os.PathLike) -> dict[str, int]:
    """The participants a ``--keep`` or ``--remove`` file names, each with the line it is first on, read as
    plink2 reads such a file: whitespace-separated, one id per line, or PLINK's FID and IID columns (the
    IID is the participant id), further columns ignored; a header (``#FID IID``, ``#IID``, ``FID IID``
    or one of ours: ``eid``, ``IID``, ``participant_id``, ``SubjID``) names the columns; blank lines and
    other lines starting with ``#`` are skipped.

    Examples
    --------
    >>> import tempfile
    >>> listed = Path(tempfile.mkdtemp()) / "keep.txt"
    >>> _ = listed.write_text("#FID IID\\nfam1 1000017\\n# the second family\\nfam2 1000025\\n")
    >>> read_sample_list(listed)
    {'1000017': 2, '1000025': 4}
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    columns, id_column, listed = None, 0, {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        fields = line.split()
        named = _header_id_column(fields) if columns is None else None
        if named is not None:   # a header names the id's column; the lines may hold more (ignored, as plink2)
            columns, id_column = 0, named
            continue
        if not fields or fields[0].startswith("#"):
            continue
        if columns is None:
            columns, id_column = len(fields), (1 if len(fields) >= 2 else 0)
        if len(fields) <= id_column or columns and (columns == 1) != (len(fields) == 1):   # more columns: ignored
            raise InputError(path, f"expected {'FID IID' if id_column else 'one id'} per line as above, "
                             f"found {len(fields)} whitespace-separated column(s)", line=number)
        listed.setdefault(fields[id_column], number)
    if not listed:
        raise InputError(path, "no participant ids in the file")
    return listed


def _header_id_column(fields: list[str]) -> int | None:
    """The id's column if ``fields`` are a header line (PLINK's ``#FID IID`` or ``#IID``, with or without the
    ``#``, or a participant-id header of ours), else None."""
    names = [field.lstrip("#") for field in fields[:2]]
    if names == ["FID", "IID"]:
        return 1
    return 0 if names and names[0] in PARTICIPANT_HEADERS else None


def check_columns(table: pa.Table, *, path: Path, lake_schema: pa.Schema | None) -> None:
    """Column names unique ignoring case (Delta's rule), and types agreeing with earlier releases.

    A column that was numbers in an earlier release and is text now (or the reverse)
    would otherwise be coerced in the shared table, or fail half-way through a write.
    """
    seen: dict[str, str] = {}
    for name in table.column_names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise InputError(path, f"columns {other!r} and {name!r} differ only in case; "
                             "the lake treats them as one", line=1, column=name)
    if lake_schema is None:
        return
    existing = {field.name.lower(): field for field in lake_schema}
    for field in table.schema:
        before = existing.get(field.name.lower())
        if before is None:
            continue
        if before.name != field.name:
            raise InputError(path, f"earlier releases spell this column {before.name!r}", line=1,
                             column=field.name)
        if before.type != field.type:
            kind = {pa.string(): "text", pa.float64(): "numbers"}
            raise InputError(path, f"holds {kind.get(field.type, field.type)} but earlier releases "
                             f"hold {kind.get(before.type, before.type)} in this column; recode it "
                             "or rename the column", column=field.name)
