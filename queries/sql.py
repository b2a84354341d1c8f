"""DuckDB over one release of the lake: every table a view, SQL read-only and confined to the lake.

Views read exactly the Parquet files the Delta log lists for the release (never a
directory listing): natively by DuckDB on local lakes (row-group statistics and
bloom filters prune reads), through Arrow datasets on buckets. Two locks make
analysts' SQL safe:

- DuckDB's own settings: external access off, file access allowed only to the
  release's own data files (as the Delta log lists them), a private temp folder,
  configuration locked;
- statement types from DuckDB's parser: only queries (SELECT, and SHOW, DESCRIBE,
  SUMMARIZE, which parse as SELECT) run, and results come back as QueryResult,
  which can be fetched but has no method that writes.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    import polars

from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake, ReleaseInfo, Retraction
from biolake.lake.schema import TABLES
from biolake.lake.vectors import decode_calls, decode_dosages, decode_floats

DOSAGES_VIEW = """
CREATE VIEW dosages AS
SELECT g.chrom, g.pos, g.variant_id, g.ref, g.alt, g.alt_freq,
       UNNEST(s.participant_ids) AS participant_id,
       UNNEST(biolake_dosages(g.calls, g.dosage, s.n)) AS dosage
FROM genotypes g,
     (SELECT list(participant_id ORDER BY sample_index) AS participant_ids, count(*) AS n
      FROM samples WHERE assay = 'genotypes') s
"""
BETAS_VIEW = """
CREATE VIEW betas AS
SELECT m.chrom, m.pos, m.cpg_id,
       UNNEST(s.participant_ids) AS participant_id,
       UNNEST(biolake_betas(m.beta, s.n)) AS beta
FROM methylation m,
     (SELECT list(participant_id ORDER BY sample_index) AS participant_ids, count(*) AS n
      FROM samples WHERE assay = 'methylation') s
"""
MAX_QUERY_CHARACTERS = 1_000_000   # parsing is bounded too: DuckDB refuses nesting deeper than 1,000
M_VALUE_MACRO = "CREATE MACRO m_value(beta) AS log2(beta / (1 - beta))"


class QueryError(BiolakeError):
    """A query was refused (not read-only) or failed (bad SQL, unknown column, …)."""


class QueryResult:
    """The result of one read-only query: it can be fetched, never written anywhere.

    Unlike a DuckDB relation it has no ``write_csv``/``to_parquet``/``query`` that could
    write files or run further statements. The query runs once, on first fetch.
    """

    def __init__(self, relation: duckdb.DuckDBPyRelation, *, interrupt: Callable[[], None],
                 timeout: float | None = None) -> None:
        self._relation = relation
        self._interrupt, self._timeout = interrupt, timeout
        self._table: pa.Table | None = None

    def arrow(self) -> pa.Table:
        """The whole result as a pyarrow Table (stopped with a QueryError past the time limit)."""
        if self._table is None:
            self._table = self._run(self._relation.to_arrow_table)
        return self._table

    def head(self, rows: int) -> pa.Table:
        """At most ``rows`` rows, computed as such: a huge result is never held in memory."""
        return self._run(lambda: self._relation.limit(rows).to_arrow_table())

    def _run(self, fetch: Callable[[], Any]) -> Any:
        """Run the query through ``fetch`` under the time limit, with DuckDB's errors as QueryErrors.

        The timer interrupts the connection only while this query runs (checked under a
        lock), so a late timer can never stop a later query on the same connection.
        """
        guard, state = threading.Lock(), {"running": True, "stopped": False}

        def stop() -> None:
            with guard:
                if state["running"]:
                    state["stopped"] = True
                    self._interrupt()

        timer = threading.Timer(self._timeout, stop) if self._timeout else None
        if timer:
            timer.start()
        try:
            return fetch()
        except (duckdb.InterruptException, RuntimeError) as exc:
            if state["stopped"]:
                raise QueryError(f"query stopped after {self._timeout:g} s, its time limit "
                                 "(--timeout); narrow it, or give it longer") from None
            if isinstance(exc, duckdb.InterruptException) or "interrupted" in str(exc).lower():
                raise KeyboardInterrupt from None   # Ctrl-C
            raise
        except duckdb.OutOfMemoryException as exc:
            raise QueryError(f"query needs more memory than its limit (--memory-limit): "
                             f"{_first_line(exc)}") from None
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None
        finally:
            with guard:
                state["running"] = False
            if timer:
                timer.cancel()

    def pl(self) -> polars.DataFrame:
        """The whole result as a polars DataFrame."""
        import polars   # not on the path of the jobs, which never need it (0.5 s of start-up)

        return polars.from_arrow(self.arrow())

    def fetchall(self) -> list[tuple]:
        table = self.arrow()
        return list(zip(*(column.to_pylist() for column in table.columns))) if table.num_columns else []

    def fetchone(self) -> tuple | None:
        rows = self.fetchall()
        return rows[0] if rows else None

    @property
    def columns(self) -> list[str]:
        return list(self._relation.columns)

    def show(self) -> None:
        print(self)

    def __str__(self) -> str:
        return self._run(lambda: str(self._relation))


class LakeConnection:
    """Read-only SQL over one release: ``sql`` and ``execute`` give QueryResults.

    Examples
    --------
    >>> con = connect(Lake.open("lake"))
    >>> con.sql("SELECT site, count(*) FROM covariates GROUP BY site ORDER BY site").fetchall()
    [('Bristol', 51), ('Cheadle', 210), ('Newcastle', 143), ('Reading', 96)]
    >>> con.sql("SELECT chrom, pos FROM variants WHERE variant_id = ?", params=["rs1006"]).pl().rows()
    [('1', 20512429)]
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, release: ReleaseInfo, spill: str, *,
                 timeout: float | None = None) -> None:
        self._connection = connection
        self.release = release
        self.timeout = timeout   # seconds a query may run before it is stopped (None: no limit)
        # DuckDB's private temp folder goes on close, or when the connection is garbage-collected
        self._remove_spill = weakref.finalize(self, shutil.rmtree, spill, ignore_errors=True)

    def sql(self, query: str, *, params: Sequence[Any] | dict[str, Any] | None = None) -> QueryResult:
        """One read-only query, run when fetched; ``params`` are bound (``?`` or ``$name``)."""
        check_read_only(query)
        try:
            return QueryResult(self._connection.sql(query, params=params), interrupt=self._connection.interrupt,
                               timeout=self.timeout)
        except duckdb.Error as exc:
            raise QueryError(_first_line(exc)) from None

    def execute(self, query: str, *, params: Sequence[Any] | dict[str, Any] | None = None
                ) -> QueryResult:
        """One read-only query, run now (errors surface here)."""
        result = self.sql(query, params=params)
        result.arrow()
        return result

    def tables(self) -> list[str]:
        return sorted(row[0] for row in self._connection.execute("SHOW TABLES").fetchall())

    def close(self) -> None:
        self._connection.close()
        self._remove_spill()

    def __enter__(self) -> "LakeConnection":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def connect(lake: Lake | str | os.PathLike, *, release: str | None = None,
            storage_options: dict[str, str] | None = None,
            memory_limit: str = "4GB", timeout: float | None = None,
            queries: Sequence[str] | None = None) -> LakeConnection:
    """Open read-only SQL over one release (default: the latest) of a lake.

    Queries use at most ``memory_limit`` (DuckDB spills to a private temp folder beyond
    it, or fails) and are stopped after ``timeout`` seconds when one is given.

    ``lake`` is a Lake, a lake root (path or ``s3://…`` URL) or a catalog.yaml.
    Views: one per table of the release under its catalog name, ``releases``
    (the registry; ``retracted`` says when and why, for a retracted release), ``withdrawals`` and ``retractions`` (the audits, once there are
    any), ``dosages`` (participant × variant, long), ``betas`` (participant × CpG,
    long) and ``results.NAME`` for every results table; the macro ``m_value(beta)``
    gives M-values, log2(β / (1 − β)).

    ``queries``, when the caller knows all the SQL it will run (a job's phenotype, covariate
    and sample queries), limits the ``results.NAME`` views to the tables they name: each
    view reads its table's log, about 50 ms, so a lake of many runs made every job slower.
    """
    if not isinstance(lake, Lake):
        lake = Lake.open(lake, storage_options=storage_options)
    retractions = lake.retractions()   # read once for the whole connection (several requests on a bucket)
    chosen = lake.resolve_release(release, retractions=retractions)
    # DuckDB allows reads under its temp directory: keep that a private, empty folder
    spill = tempfile.mkdtemp(prefix="biolake-duckdb-")
    try:
        try:
            con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": spill,
                                         # no extension is fetched or loaded behind the user's back
                                         "autoinstall_known_extensions": False, "autoload_known_extensions": False})
        except duckdb.Error as exc:
            raise QueryError(f"memory limit {memory_limit!r}: {_first_line(exc)}") from None
        readable: list[str] = []
        for name in chosen.tables:
            readable += _create_view(con, lake, name, chosen)
        con.register("releases", _registry_view(lake.dataset("releases").to_table(), retractions))
        for audit in ("withdrawals", "retractions"):
            if lake.has_table(audit):   # the declared columns: never the ids_sha256 of older withdrawals
                recorded = lake.dataset(audit)
                con.register(audit, recorded.to_table(columns=[
                    name for name in TABLES[audit].arrow_schema().names if name in recorded.schema.names]))
        if "genotypes" in chosen.tables and "samples" in chosen.tables:
            con.create_function("biolake_dosages", _dosages_udf, ["BLOB", "BLOB", "BIGINT"], "DOUBLE[]",
                                type="arrow", null_handling="special")
            con.execute(DOSAGES_VIEW)
        if "methylation" in chosen.tables and "samples" in chosen.tables:
            con.create_function("biolake_betas", _betas_udf, ["BLOB", "BIGINT"], "DOUBLE[]", type="arrow")
            con.execute(BETAS_VIEW)
        con.execute(M_VALUE_MACRO)
        _create_results_views(con, lake, results_named(queries) if queries is not None else None)
        if readable:  # exactly the release's data files: no other release, log or leftover
            con.execute("SET allowed_paths = $paths", {"paths": readable})
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        raise
    return LakeConnection(con, chosen, spill, timeout=timeout)


def check_read_only(query: str) -> None:
    """Refuse anything but queries, judged by DuckDB's own parser (not by string matching)."""
    if len(query) > MAX_QUERY_CHARACTERS:
        raise QueryError(f"query is {len(query):,} characters long; the limit is {MAX_QUERY_CHARACTERS:,}")
    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise QueryError(_first_line(exc)) from None
    if not statements:
        raise QueryError("empty query")
    if len(statements) > 1:
        raise QueryError(f"one statement at a time; this has {len(statements)} (separated by ';')")
    for statement in statements:
        if statement.type != duckdb.StatementType.SELECT:
            kind = statement.type.name.replace("_", " ")
            raise QueryError(f"refused: {kind} statement; lake SQL is read-only "
                             "(SELECT, SHOW, DESCRIBE and SUMMARIZE are allowed)")


def _create_view(con: duckdb.DuckDBPyConnection, lake: Lake, name: str, chosen: ReleaseInfo) -> list[str]:
    """Create the view of one table of the release ``chosen``; return the local files it reads (none on buckets)."""
    if lake.location.remote:
        con.register(name, lake.release_dataset(name, chosen))
        return []
    table = lake.delta(name)  # one log read gives both the release's files and the partitioning
    files = [uri.removeprefix("file://") for uri in
             table.file_uris(file_pruning_predicate=[("release", "=", chosen.release)])]
    if not files:  # a table with no rows in this release
        empty = TABLES[name].arrow_schema().empty_table() if name in TABLES else pa.table({})
        con.register(name, empty)
        return []
    partitions = table.metadata().partition_columns
    hive_types = "{" + ", ".join(f"'{column}': VARCHAR" for column in partitions) + "}"
    con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM read_parquet({_sql_list(files)}, '
                f'hive_partitioning = true, hive_types = {hive_types}, union_by_name = true)')
    return files


def results_named(queries: Sequence[str]) -> set[str] | None:
    """The results tables ``queries`` read (``results.NAME``), as DuckDB's parser finds them
    (None when one does not parse: its own error is reported when it runs).

    Examples
    --------
    >>> sorted(results_named(["SELECT * FROM results.height h JOIN idps USING (participant_id)",
    ...                       'SELECT participant_id FROM covariates WHERE age > (SELECT 1 FROM results."g w")']))
    ['g w', 'height']
    """
    named: set[str] = set()
    with duckdb.connect() as parser:
        for query in queries:
            tree = json.loads(parser.execute("SELECT json_serialize_sql($query)", {"query": query}).fetchall()[0][0])
            if tree["error"]:
                return None
            named |= {node["table_name"] for node in _nodes(tree)
                      if node.get("type") == "BASE_TABLE" and node.get("schema_name") == "results"}
    return named


def _nodes(tree: Any) -> Iterator[dict]:
    """Every object in a parsed JSON tree."""
    if isinstance(tree, dict):
        yield tree
        tree = list(tree.values())
    if isinstance(tree, list):
        for value in tree:
            yield from _nodes(value)


def _create_results_views(con: duckdb.DuckDBPyConnection, lake: Lake, wanted: set[str] | None) -> None:
    """The results tables of the lake (those in ``wanted``; None: all) as the views ``results.NAME``
    (they belong to no release)."""
    dropping = lake.drops_pending()   # one listing of _locks/ for every results view
    names = [name for name in lake.results_names(dropping=dropping) if wanted is None or name in wanted]
    if names:
        con.execute("CREATE SCHEMA results")
    for name in names:
        hidden = f"__results_{name}"
        con.register(hidden, lake.results_dataset(name, dropping=dropping))
        con.execute(f'CREATE VIEW results."{name}" AS SELECT * FROM "{hidden}"')


def _registry_view(registry: pa.Table, retractions: dict[str, Retraction]) -> pa.Table:
    """The registry as SQL shows it: without its bookkeeping columns, and with ``retracted`` saying
    when and why a release was retracted (NULL for one in use)."""
    shown = registry.drop_columns([name for name in ("table_versions", "source_checksums", "source_stats")
                                   if name in registry.column_names])
    reasons = [str(retractions[r]) if r in retractions else None for r in shown.column("release").to_pylist()]
    return shown.append_column("retracted", pa.array(reasons, pa.string()))


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def _dosages_udf(calls: pa.Array, dosage: pa.Array, n: pa.Array) -> pa.Array:
    """Per variant: the list of alt dosages in sample order (hard calls or imputed dosages)."""
    n_samples = int(n[0].as_py()) if len(n) else 0
    out = np.full((len(calls), n_samples), np.nan)
    has_calls = np.asarray(calls.is_valid())
    if has_calls.any():
        out[has_calls] = decode_calls(calls.filter(pa.array(has_calls)), n_samples)
    has_dosage = np.asarray(dosage.is_valid())
    if has_dosage.any():
        out[has_dosage] = decode_dosages(dosage.filter(pa.array(has_dosage)), n_samples)
    flat = pa.array(out.ravel(), from_pandas=True)
    offsets = pa.array(np.arange(len(calls) + 1, dtype=np.int32) * n_samples)
    return pa.ListArray.from_arrays(offsets, flat)


def _betas_udf(beta: pa.Array, n: pa.Array) -> pa.Array:
    """Per CpG: the list of betas in methylation-sample order (NaN missing)."""
    n_samples = int(n[0].as_py()) if len(n) else 0
    values = decode_floats(beta, n_samples)
    offsets = pa.array(np.arange(len(beta) + 1, dtype=np.int32) * n_samples)
    return pa.ListArray.from_arrays(offsets, pa.array(values.ravel(), from_pandas=True))


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0]
