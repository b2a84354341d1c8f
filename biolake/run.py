"""The one publish path of a results table: stage, summarise, (q-values), commit, index.

A job opens a :class:`Run`; its tasks write the run's Parquet files and their browse
``positions`` files through :class:`RunFiles` (picklable, without credentials) and send
back a :class:`Piece`: add actions and the :class:`~biolake.stats.summary.ScanSummary` of
the tests they wrote. Work that needs every test at once (EWAS's eBayes) writes through
:meth:`Run.write` in the client instead. :meth:`Run.publish` then applies the optional BH
rewrite, makes the files ``LAKE/results/NAME`` in one commit, and writes the tables derived
from them (the browse index) from the merged summary — no pass reads the results back.
"""

from __future__ import annotations

import dataclasses
import itertools
import shutil
import tempfile
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake.transaction import AddAction

from biolake.index import index_after_job, positions_files, write_positions
from biolake.lake.faults import fault_point
from biolake.lake.lake import Lake
from biolake.lake.results import ResultsFiles, StagedFile
from biolake.lake.schema import RESULTS_KINDS, ResultsKind
from biolake.stats.multiple import bh_fdr_sql
from biolake.stats.summary import ScanSummary

Progress = Callable[[str, int, int], None]
Scan = tuple[str, str | None]          # (phenotype, exposure)
ROWS_PER_FILE = 20_000_000  # q-value files of a run are cut at this many rows


class KernelOutput(NamedTuple):
    """What a job's kernel makes of one slice of a row group: results rows, and what the run's summary needs."""

    rows: pa.Table
    features: np.ndarray | None = None     # the tested features (variant ids), for a headline apart from the rows
    log10p: np.ndarray | None = None       # that headline −log10 p, features × phenotypes (GxE's joint test)
    removed: Mapping[str, int] = {}        # features the quality-control filters left out of the slice, by filter


@dataclass
class Piece:
    """What one task sends back: its files' add actions, the summaries of the tests it wrote, and how many
    features each quality-control filter removed before testing."""

    actions: list[AddAction]
    positions: list[AddAction]
    summary: ScanSummary
    headline: ScanSummary | None = None   # per phenotype, when a job's headline is not its rows' −log10 p (GxE)
    removed: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class RunFiles:
    """Where the tasks of one run write (its results files and their browse positions files), and
    what the rows mean; picklable and without credentials (workers take theirs from their
    environment)."""

    results: ResultsFiles
    positions: ResultsFiles
    kind: ResultsKind
    phenotypes: tuple[str, ...] = ()      # declared scans, in report order (others as rows name them)
    headline: bool = False                # see Piece.headline

    def summary(self) -> ScanSummary:
        """An empty summary of this run's scans."""
        return ScanSummary(self.kind, scans=self.scans())

    def scans(self) -> list[Scan]:
        """The scans declared up front: one per phenotype, unless rows name more (GxE's exposures)."""
        return [(phenotype, None) for phenotype in self.phenotypes] if not self.kind.extra_group else []

    def headline_summary(self) -> ScanSummary:
        """An empty summary of a headline test per phenotype (see :attr:`Piece.headline`)."""
        return ScanSummary(self.kind, scans=[(phenotype, None) for phenotype in self.phenotypes])

    def write(self, outputs: Iterable[KernelOutput], *, schema: pa.Schema, chrom: str, part: str) -> Piece:
        """Write results rows of one chromosome as one file of the run (and their positions),
        summarising them on the way (the headline, only for a run with a headline apart from its rows)
        and counting the features the filters removed."""
        summary, headline = self.summary(), self.headline_summary() if self.headline else None
        output = self.results.open(schema, partition={"chrom": chrom}, part=part)
        removed: Counter[str] = Counter()
        if not self.kind.scans:   # rows without tests (LD pairs, LD scores): nothing to summarise or index
            for found in outputs:
                output.write(found.rows)
            return Piece([output.close()], [], summary, headline)

        def positions() -> Iterable[pa.Table]:
            for found in outputs:
                removed.update(found.removed)
                if headline is not None and found.log10p is not None:   # tests that wrote no row count too
                    headline.add_scores(found.features, found.log10p)
                if not found.rows.num_rows:
                    continue
                output.write(found.rows)
                yield summary.add(found.rows)

        written = write_positions(self.positions, positions(), part=part)
        return Piece([output.close()], written, summary, headline, removed)


class Run:
    """One run of a job, from its first file to its index (see the module docstring).

    Examples
    --------
    >>> run = Run(Lake.open("/tmp/lake"), "idps", kind=RESULTS_KINDS["gwas"], phenotypes=["25010-2.0"])  # doctest: +SKIP
    >>> run.receive(piece)                                             # doctest: +SKIP
    >>> version = run.publish(schema=schema, provenance={"kind": "gwas"})   # doctest: +SKIP
    """

    def __init__(self, lake: Lake, name: str, *, kind: ResultsKind, phenotypes: Sequence[str] = (),
                 headline: bool = False) -> None:
        self.lake, self.name = lake, name
        self.files = RunFiles(lake.results_files(name), positions_files(lake, name), kind, tuple(phenotypes),
                              headline)
        self.summary = self.files.summary()
        self.headline = self.files.headline_summary() if headline else None   # see Piece.headline
        self.removed: Counter[str] = Counter()   # features the filters removed before testing, by filter
        self._actions: list[AddAction] = []
        self._positions: list[AddAction] = []

    def task_files(self) -> RunFiles:
        """What tasks write through: this run's files without credentials."""
        return dataclasses.replace(self.files, results=self.files.results.public(),
                                   positions=self.files.positions.public())

    def receive(self, piece: Piece) -> None:
        """Take in what a task wrote."""
        self._actions += piece.actions
        self._positions += piece.positions
        self.summary.merge(piece.summary)
        self.removed.update(piece.removed)
        if self.headline is not None:
            self.headline.merge(piece.headline)

    def write(self, rows: pa.Table, *, schema: pa.Schema, part: str) -> None:
        """Write results rows held in the client (one file per chromosome) and take them in; for runs
        whose rows hold their headline test."""
        for chrom in pc.unique(rows.column("chrom")).to_pylist():
            mine = rows.filter(pc.equal(rows.column("chrom"), chrom))
            self.receive(self.files.write([KernelOutput(mine)], schema=schema, chrom=chrom, part=part))

    def publish(self, *, schema: pa.Schema, provenance: dict, replace: bool = False,
                fdr: tuple[Sequence[str], str] | None = None, progress: Progress | None = None) -> int:
        """Commit the run as ``LAKE/results/NAME`` and build its browse index (kinds with scans); returns the
        version.

        With ``fdr`` = (group columns, −log10 p column), the committed rows also carry their
        BH q-value ``fdr`` within each group (:func:`with_fdr`: one more out-of-core pass over
        the run's files). An existing results table of the name is replaced only with ``replace``.
        """
        files, actions, staged = self.files.results, self._actions, []
        if fdr is not None:
            if progress:
                progress("q-values", 0, 1)
            staged = actions
            actions, schema = with_fdr(files, staged, schema, groups=fdr[0], log10p=fdr[1])
            provenance = {**provenance, "fdr": {"method": "BH", "within": list(fdr[0]), "of": fdr[1]}}
            if progress:
                progress("q-values", 1, 1)
        version = self.lake.commit_results(files, actions, schema=schema, partition_by=["chrom"],
                                           provenance=provenance, replace=replace)
        remove_files(files, staged)
        if self.files.kind.scans:
            index_after_job(self.lake, self.name, version=version,
                            pieces=(self.summary, self.files.positions, self._positions))
        return version


def with_fdr(files: ResultsFiles, staged: list[AddAction], schema: pa.Schema, *, groups: Sequence[str],
             log10p: str, partition: str = "chrom", memory_limit: str = "1GB") -> tuple[list[AddAction], pa.Schema]:
    """Rewrite a run's files with the column ``fdr`` (BH within ``groups``, of ``log10p``), as plink2's ``--adjust``.

    A q-value needs every p-value of its group, and a run's p-values are computed in
    blocks on many workers, so it cannot be written with them. Instead the run's files
    (``staged``: written by its tasks, not yet committed) are read once more by DuckDB,
    which sorts each group's tests out of core (bounded memory, spilling to disk) and
    streams the rows back with ``fdr`` added into new files of the same run. Returns the
    add actions of the new files, partitioned by ``partition`` as before, and the schema
    with ``fdr``; the staged files are left for :func:`remove_files`.
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


def publish_table(lake: Lake, name: str, table: pa.Table, *, provenance: dict, replace: bool = False) -> int:
    """Commit one small results table whole (a row per phenotype or pair: h², rg) as ``LAKE/results/NAME``,
    unpartitioned, in one file; returns the version. Scans over blocks publish through :class:`Run`."""
    return publish_parts(lake, name, [table], schema=table.schema, provenance=provenance, replace=replace)


def publish_parts(lake: Lake, name: str, parts: Iterable[pa.Table], *, schema: pa.Schema, provenance: dict,
                  replace: bool = False) -> int:
    """Commit a results table written part by part into its one file (a table too large to build whole in memory:
    every pair of 10,000 participants), as :func:`publish_table`; returns the version. A kind with scans (a CNV
    scan's) gets its browse index, built from the committed rows."""
    files = lake.results_files(name)
    output = files.open(schema, partition={}, part=provenance["kind"])
    for part in parts:
        output.write(part)
    version = lake.commit_results(files, [output.close()], schema=schema, partition_by=[],
                                  provenance=provenance, replace=replace)
    if RESULTS_KINDS[provenance["kind"]].scans:
        index_after_job(lake, name, version=version)
    return version
