"""Look for any trace of participants anywhere in a lake: the check that a withdrawal worked.

Readers trust the transaction log; an audit must not. It lists every file under the lake
root — every table's and results table's data files, whether or not a version still
references them, and the logs, whose column statistics can hold ids — and searches each.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from biolake.lake.lake import Lake
from biolake.lake.schema import participant_columns


@dataclass(frozen=True)
class AuditReport:
    """Where the ids were found (file → how many of them), and how much was searched."""

    traces: dict[str, int]
    files: int

    @property
    def clean(self) -> bool:
        return not self.traces


def audit(lake: Lake, participant_ids: Iterable[str]) -> AuditReport:
    """Search every data file and log entry of ``lake`` (tables and results) for ``participant_ids``.

    Examples
    --------
    >>> from biolake.lake.withdraw import withdraw
    >>> lake = Lake.open("lake")
    >>> audit(lake, ["1007150"]).clean
    False
    >>> withdrawn = withdraw(lake, ["1007150"])
    >>> audit(lake, ["1007150"]).clean
    True
    """
    ids = sorted({str(i).strip() for i in participant_ids if str(i).strip()})
    wanted = pa.array(ids, pa.string())
    filesystem = lake.location.arrow_filesystem(lake.location.root)
    entries = filesystem.get_file_info(pafs.FileSelector("", recursive=True, allow_not_found=True))
    traces, searched = {}, 0
    for entry in entries:
        if entry.type != pafs.FileType.File or entry.path.startswith("_locks/"):
            continue
        searched += 1
        if entry.path.endswith(".parquet") and "_delta_log/" not in entry.path:
            found = _in_parquet(filesystem, entry.path, wanted)
        elif "_delta_log/" in entry.path:
            found = _in_log(filesystem, entry.path, ids)
        else:
            continue
        if found:
            traces[entry.path] = found
    return AuditReport(traces, searched)


def _in_parquet(filesystem: pafs.FileSystem, path: str, wanted: pa.Array) -> int:
    """How many of the ids a data file's participant columns hold (participant_id; a kinship pair's two), 0 if it
    has none."""
    with filesystem.open_input_file(path) as handle:
        parquet = pq.ParquetFile(handle)
        columns = participant_columns(parquet.schema_arrow.names)
        if not columns:
            return 0
        table = parquet.read(columns=columns)
    column = pa.chunked_array([chunk.cast(pa.string()) for name in columns for chunk in table.column(name).chunks],
                              pa.string())
    return len(pc.unique(column.filter(pc.is_in(column, value_set=wanted))))


def _in_log(filesystem: pafs.FileSystem, path: str, ids: list[str]) -> int:
    """How many of the ids appear, as quoted strings, in a log file (a JSON commit, or a checkpoint's
    rows, whose file statistics can carry a column's min and max)."""
    if path.endswith(".parquet"):
        with filesystem.open_input_file(path) as handle:
            text = json.dumps(pq.read_table(handle).to_pylist(), default=str)
    else:
        with filesystem.open_input_stream(path) as handle:
            text = handle.read().decode("utf-8", errors="replace")
    return sum(1 for i in ids if f'"{i}"' in text or f'\\"{i}\\"' in text)
