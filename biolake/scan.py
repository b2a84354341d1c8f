"""The one map over lake blocks every job shares (GWAS, GxE, EWAS): row groups → dask tasks → one run.

A job describes its work per block with a *kernel*, a function of the job's small inputs
(sent to the cluster once) and one row group of the lake, which it reads straight from
the lake and turns into results rows, slice by slice. Each task writes those rows as one
Parquet file of the job's :class:`~biolake.run.Run`, with their browse positions, and
sends back only the add actions and the summary of its tests. A job whose results need
every block at once (EWAS: limma's prior is estimated from all CpGs) gives a *reduce*
instead: its tasks send their rows back, and the reduce turns all of them into the
results rows the client writes. Either way :meth:`Run.publish` then commits
``LAKE/results/NAME``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from biolake.cluster import block_map
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import Block, GenotypeBlock, read_genotype_blocks
from biolake.lake.schema import RESULTS_KINDS
from biolake.run import Piece, Run, RunFiles
from biolake.stats.multiple import family_threshold
from biolake.stats.summary import ScanSummary

Progress = Callable[[str, int, int], None]
Tested = tuple[pa.Table, np.ndarray | None, np.ndarray | None]   # rows, features, headline −log10 p (or None)
Kernel = Callable[[Any, Block], Iterator[Tested]]                # (the job's inputs, a row group) → its rows
Reduce = Callable[[pa.Table], tuple[pa.Table, Any]]              # all rows → results rows, and what the job keeps


def map_lake_blocks(run: Run, kernel: Kernel, inputs: Any, blocks: Sequence[Block], *, schema: pa.Schema,
                    step: str, scheduler: str | None = None, workers: int | None = None,
                    progress: Progress | None = None, reduce: Reduce | None = None) -> Any:
    """``kernel(inputs, block)`` over every row group ``blocks`` on dask, into ``run`` (see the
    module docstring); ``kernel`` is a module-level function, so a task graph names it.

    Without ``reduce`` the tasks write the kernel's rows as the run's files (of ``schema``).
    With it, the rows of every task come back, ``reduce`` turns them into results rows of
    ``schema``, written in the client; the second thing ``reduce`` returns is returned
    (None without one).
    """
    with block_map(run.lake, scheduler=scheduler, workers=workers) as map_over:
        if reduce is None:
            # tasks carry the run's files without credentials: workers take those from their environment
            for piece in map_over(_scan_task, blocks, inputs, kernel, run.task_files(), schema, step=step,
                                  progress=progress):
                run.receive(piece)
            return None
        # in block order, not as tasks complete: the reduce's sums (EWAS's prior) come out the same every run
        pieces = sorted(map_over(_rows_task, blocks, inputs, kernel, step=step, progress=progress),
                        key=lambda piece: piece[0])
        rows = pa.concat_tables([piece_rows for _, piece_rows in pieces])
    results, kept = reduce(rows)
    run.write(results, schema=schema, part=step)
    return kept


def _scan_task(fragment: Block, inputs: Any, kernel: Kernel, files: RunFiles, schema: pa.Schema,
               part: int) -> Piece:
    """One dask task: the kernel's rows of one row group, written as one file of the run (and its
    browse-index positions as another); only the add actions and the summaries go back."""
    return files.write(kernel(inputs, fragment), schema=schema, chrom=fragment.chrom, part=f"{part:06d}")


def _rows_task(fragment: Block, inputs: Any, kernel: Kernel, part: int) -> tuple[int, pa.Table]:
    """One dask task: the kernel's rows of one row group (and its place), sent back for the job's reduce."""
    return part, pa.concat_tables([rows for rows, _, _ in kernel(inputs, fragment)])


@dataclass(frozen=True)
class TaskInputs:
    """The base of what a job's block tasks need besides their block, sent to the cluster once (see
    :func:`biolake.cluster.map_blocks`): where the analysis samples sit in the stored sample vector."""

    n_samples: int                 # length of the stored sample vector
    samples: np.ndarray | None     # positions of the analysis samples in it (None: all, in order)

    @property
    def analysis_samples(self) -> int:
        """How many samples the job analyses."""
        return self.n_samples if self.samples is None else len(self.samples)


class VariantTests(Protocol):
    """What a variant job sends to its workers: how to read blocks and what to test in them."""

    n_samples: int                 # length of the stored sample vector
    samples: np.ndarray | None     # positions of the analysis samples in it (None: all, in order)
    dtype: type
    schema: pa.Schema
    min_maf: float                 # variants with a rarer minor allele (over the analysis samples) are skipped

    @property
    def phenotype_names(self) -> list[str]: ...

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray]:
        """The block's results table, and its headline −log10 p (variants × phenotypes) for the summary."""


def variant_results(tests: VariantTests, fragment: Block) -> Iterator[Tested]:
    """The kernel of a variant job: decoded genotype slices of a row group, tested by ``tests``."""
    for block in read_genotype_blocks(fragment, n_samples=tests.n_samples, samples=tests.samples, dtype=tests.dtype):
        if tests.min_maf > 0:
            block = block.common(tests.min_maf)
        if not block.variants.num_rows:
            continue
        table, log10p = tests.test(block)
        yield table, block.variants.column("variant_id").to_numpy(zero_copy_only=False), log10p


def scan_variants(lake: Lake, name: str, tests: VariantTests, blocks: list[Block], *,
                  provenance: dict, step: str, scheduler: str | None = None, workers: int | None = None,
                  progress: Progress | None = None, fdr: tuple[Sequence[str], str] | None = None,
                  replace: bool = False) -> tuple[int, ScanSummary]:
    """Run ``tests`` over every genotype row group on dask; commit the results as ``LAKE/results/name``.

    Returns the committed version and the per-phenotype summary of the headline test, which
    is also stored in the provenance (tests, hits, λGC, top variant) with the family-wide
    Bonferroni threshold (5e-8 over the number of phenotypes). With ``fdr`` = (group
    columns, −log10 p column), the committed rows also carry their BH q-value ``fdr``
    within each group (:func:`biolake.run.with_fdr`). An existing results table ``name``
    is replaced only with ``replace``.
    """
    kind = RESULTS_KINDS[provenance["kind"]]
    headline = bool(kind.extra_group)   # GxE: rows per exposure, the headline a joint test per phenotype
    run = Run(lake, name, kind=kind, phenotypes=tests.phenotype_names, headline=headline)
    map_lake_blocks(run, variant_results, tests, blocks, schema=tests.schema, step=step, scheduler=scheduler,
                    workers=workers, progress=progress)
    summary = run.headline if run.headline is not None else run.summary
    provenance = {**provenance, "phenotype_summary": summary.per_phenotype(),
                  "family_threshold": family_threshold(len(summary.phenotypes))}
    version = run.publish(schema=tests.schema, provenance=provenance, replace=replace, fdr=fdr, progress=progress)
    return version, summary


def check_min_maf(min_maf: float) -> None:
    """Refuse a minimum minor allele frequency outside [0, ½)."""
    if not 0.0 <= min_maf < 0.5:
        raise BiolakeError(f"the minimum minor allele frequency must be in [0, 0.5), got {min_maf}")
