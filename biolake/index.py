"""Writing the browse index of a results table (read by :class:`biolake.queries.browse.BrowseIndex`).

The index is four tables derived from the results (``positions``, ``features``,
``points``, ``summary``; see :mod:`biolake.queries.browse`). A job's tasks summarise the
tests they compute (:class:`biolake.stats.summary.ScanSummary`) and write their
``positions`` files as they go, so :class:`biolake.run.Run` commits the index from what
the tasks sent back; a run without it (imported results, repairs, an index gone stale) is
read back file by file by :func:`index_results`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
from deltalake.transaction import AddAction

from biolake.lake.lake import Lake
from biolake.lake.lock import lake_lock
from biolake.lake.results import ResultsFiles
from biolake.queries.browse import VERSION_NOTE
from biolake.lake.schema import ResultsKind
from biolake.stats.summary import EXACT_POINTS, POSITIONS_SCHEMA, ScanSummary

ROW_GROUP_ROWS = {"positions": 65_536, "features": 65_536, "points": 16_384, "summary": 65_536}


def positions_files(lake: Lake, name: str) -> ResultsFiles:
    """Where a run's tasks write the ``positions`` files of the index of the results ``name``."""
    return lake.derived_files(name, "positions")


def write_positions(files: ResultsFiles, positions: Iterable[pa.Table], *, part: str) -> list[AddAction]:
    """Write position-sorted rows (in position order, piece after piece) as one file per chromosome."""
    open_files = {}
    for table in positions:
        chromosomes = table.column("chrom").unique().to_pylist()
        for chrom in chromosomes:
            if chrom not in open_files:
                open_files[chrom] = files.open(POSITIONS_SCHEMA, partition={"chrom": chrom}, part=part,
                                               row_group_rows=ROW_GROUP_ROWS["positions"])
            open_files[chrom].write(table if len(chromosomes) == 1 else   # a block's rows: one chromosome
                                    table.filter(pc.equal(table.column("chrom"), chrom)))
    return [file.close() for file in open_files.values()]


def summarise_results(lake: Lake, name: str, results: DeltaTable, kind: ResultsKind, *,
                      exact: int) -> tuple[ScanSummary, list[AddAction]]:
    """Summarise one version of a results table file by file, writing its ``positions`` files on the way."""
    summary, actions = ScanSummary(kind, exact=exact), []
    files = positions_files(lake, name)
    dataset = lake.dataset_of(results)
    for number, fragment in enumerate(dataset.get_fragments()):
        actions += write_positions(files, (summary.add(batch) for batch in
                                           _tables(fragment.to_batches(schema=dataset.schema, batch_size=1 << 20))),
                                   part=f"{number:06d}")
    return summary, actions


def _tables(batches: Iterable[pa.RecordBatch]) -> Iterable[pa.Table]:
    return (pa.Table.from_batches([batch]) for batch in batches if batch.num_rows)


def commit_index(lake: Lake, name: str, summary: ScanSummary, positions: list[AddAction], *, version: int,
                 files: ResultsFiles | None = None) -> None:
    """Write the index of results ``name`` at ``version`` from its merged summary and positions files;
    the summary table last, carrying the version (the index's commit)."""
    note = {VERSION_NOTE: str(version)}
    lake.commit_derived(files or positions_files(lake, name), positions, schema=POSITIONS_SCHEMA,
                        partition_by=["chrom"], note=note)
    for part, table in summary.tables().items():
        lake.write_derived(name, part, table.to_reader(), partition_by=[], row_group_rows=ROW_GROUP_ROWS[part],
                           note=note)


def index_results(lake: Lake, name: str, *, wait: float = 600.0, exact: int = EXACT_POINTS) -> None:
    """Build (or rebuild) the browse index of the results ``name`` from the results themselves.

    Each scan keeps its ``exact`` strongest tests above KEEP_ABOVE as they are (a page
    draws a few tens of thousands of points, however inflated the scan).

    One builder at a time per run (a lake lock, waited for up to ``wait`` seconds); the
    index is built from one pinned version of the results, which its summary records.
    """
    kind = lake.results_kind(name, scans=True)
    with lake_lock(lake.location, f"browse-{name}", wait=wait):
        results = lake.results(name)      # one version, read throughout
        summary, positions = summarise_results(lake, name, results, kind, exact=exact)
        commit_index(lake, name, summary, positions, version=results.version())


def index_after_job(lake: Lake, name: str, *, version: int,
                    pieces: tuple[ScanSummary, ResultsFiles, list[AddAction]] | None = None) -> None:
    """Index a job's freshly committed results (``version``) — from the ``pieces`` its tasks
    summarised (the merged summary, where they wrote positions, those files) or else file by
    file. Nothing is written if a newer run has replaced the results since (its own job
    indexes it). A failure here is a warning, not the job's failure (the results stand, and
    the browser or `biolake index` builds the index later)."""
    try:
        with lake_lock(lake.location, f"browse-{name}", wait=600.0):
            results = lake.results(name)
            if results.version() != version:
                return
            if pieces is None:
                summary, positions = summarise_results(lake, name, results, lake.results_kind(name, scans=True),
                                                       exact=EXACT_POINTS)
                files = None
            else:
                summary, files, positions = pieces
            commit_index(lake, name, summary, positions, version=version, files=files)
    except Exception as exc:   # whatever went wrong, the committed results stand
        warnings.warn(f"results {name!r} are committed, but their browse index was not built "
                      f"({str(exc).splitlines()[0]}); `biolake index --result {name}` builds it", stacklevel=2)
