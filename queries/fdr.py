"""Benjamini–Hochberg q-values for a whole run, stored as the column ``fdr`` (plink2's ``--adjust``).

A q-value needs every p-value of its phenotype, and a run's p-values are computed in
blocks on many workers, so it cannot be written with them. Instead the run's files are
read once more by DuckDB, which sorts each phenotype's tests out of core (bounded
memory, spilling to disk) and streams the rows back with ``fdr`` added into new files
of the same run; the commit then names those files, never the first ones.
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import warnings
from collections.abc import Sequence

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake.transaction import AddAction

from biolake.lake.faults import fault_point
from biolake.lake.results import ResultsFiles, StagedFile

ROWS_PER_FILE = 20_000_000  # q-value files of a run are cut at this many rows


def bh_fdr_sql(source: str, *, groups: Sequence[str], log10p: str) -> str:
    """SQL adding ``fdr``, R's ``p.adjust(p, "BH")`` within each group, computed from −log10 p.

    The rank and the running minimum are taken on ``log10p`` in log space, so a p below
    1e-300 (stored exactly as −log10 p) keeps its order and its q. A row without a test
    (null, or NaN) has no q and is not counted.

    Examples
    --------
    >>> sql = bh_fdr_sql("(VALUES ('a', 2.0), ('a', 1.39794), ('a', NULL), ('a', 'nan'::DOUBLE), ('a', 1.52288)) "
    ...                  "t(phenotype, log10p)",
    ...                  groups=["phenotype"], log10p="log10p")
    >>> sorted(round(q, 3) for (q,) in duckdb.sql(f"SELECT fdr FROM ({sql}) WHERE fdr IS NOT NULL").fetchall())
    [0.03, 0.04, 0.04]
    """
    by = ", ".join(f'"{column}"' for column in groups)
    return f"""
        SELECT * EXCLUDE (_value, _rank, _tests),
               CASE WHEN _value IS NOT NULL THEN
                    10 ** least(0, min(log10(_tests) - log10(_rank) - _value)
                                   OVER (PARTITION BY {by} ORDER BY _value NULLS FIRST)) END AS fdr
        FROM (SELECT *, row_number() OVER (PARTITION BY {by} ORDER BY _value DESC NULLS LAST) AS _rank,
                     count(_value) OVER (PARTITION BY {by}) AS _tests
              FROM (SELECT *, CASE WHEN isnan("{log10p}") THEN NULL ELSE "{log10p}" END AS _value
                    FROM {source}))"""


def with_fdr(files: ResultsFiles, staged: list[AddAction], schema: pa.Schema, *, groups: Sequence[str],
             log10p: str, partition: str = "chrom", memory_limit: str = "1GB") -> tuple[list[AddAction], pa.Schema]:
    """Rewrite a run's files with the column ``fdr`` (BH within ``groups``, of ``log10p``).

    ``staged`` are the run's files as written by its tasks (not yet committed). Returns
    the add actions of the new files, partitioned by ``partition`` as before, and the
    schema with ``fdr``; the staged files are left for :func:`remove_files`.
    """
    staged_rows = ds.dataset([action.path for action in staged], schema=schema, format="parquet",
                             filesystem=files.location.arrow_filesystem(files.uri), partition_base_dir="",
                             partitioning=ds.partitioning(pa.schema([schema.field(partition)]), flavor="hive"))
    out_schema = schema.append(pa.field("fdr", pa.float64()))
    columns = ", ".join(f'"{name}"' for name in out_schema.names)
    spill = tempfile.mkdtemp(prefix="biolake-fdr-")
    writers: dict[str, StagedFile] = {}
    actions: list[AddAction] = []
    numbers = itertools.count()
    try:
        with duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill,
                                    "preserve_insertion_order": False}) as con:
            con.register("staged", staged_rows)
            rows = con.sql(f"SELECT {columns} FROM ({bh_fdr_sql('staged', groups=groups, log10p=log10p)})")
            for batch in rows.arrow():
                fault_point("writing:q-values")
                batch = pa.Table.from_batches([batch]).cast(out_schema)
                for value in pc.unique(batch.column(partition)).to_pylist():
                    writer = writers.get(value)
                    if writer is None or writer.rows >= ROWS_PER_FILE:
                        if writer is not None:
                            actions.append(writer.close())
                        writer = writers[value] = files.open(out_schema, partition={partition: value},
                                                             part=f"fdr-{next(numbers):05d}")
                    writer.write(batch.filter(pc.equal(batch.column(partition), value)))
        actions += [writer.close() for writer in writers.values()]
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    return actions, out_schema


def remove_files(files: ResultsFiles, actions: list[AddAction]) -> None:
    """Delete files a run no longer names (its staged files, once the q-value files are committed).

    Best effort: the run is committed already, so a file that cannot be deleted is only a
    warning (readers never see it: they take files from the Delta log).
    """
    filesystem = files.location.arrow_filesystem(files.uri)
    for action in actions:
        try:
            filesystem.delete_file(action.path)
        except FileNotFoundError:
            pass
        except OSError as exc:
            warnings.warn(f"{files.uri}/{action.path}: not deleted ({exc}); no reader uses it", stacklevel=2)
