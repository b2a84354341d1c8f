"""The data path every variant-by-variant job shares (GWAS, GxE): blocks → dask tasks → one commit.

A job describes its tests with a :class:`VariantTests` object (the small inputs, sent to
the cluster once) whose ``test`` turns one decoded genotype block into a results
table. Each task reads one genotype row group straight from the lake, tests it slice by
slice and writes its own Parquet file of the run; only the file's add action and a
per-phenotype summary travel back, and one commit then publishes ``LAKE/results/NAME``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Protocol

import numpy as np
import pyarrow as pa
from deltalake.transaction import AddAction

from biolake.cluster import lake_client, map_blocks
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.results import ResultsFiles
from biolake.lake.schema import RESULTS_KINDS, ResultsKind
from biolake.queries.blocks import Block, GenotypeBlock, read_genotype_blocks
from biolake.queries.browse import IndexParts, index_after_job, write_positions
from biolake.queries.fdr import remove_files, with_fdr
from biolake.stats.gwas import GwasSummary
from biolake.stats.multiple import family_threshold

Progress = Callable[[str, int, int], None]


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


def scan_variants(lake: Lake, name: str, tests: VariantTests, blocks: list[Block], *,
                  provenance: dict, step: str, scheduler: str | None = None, workers: int | None = None,
                  progress: Progress | None = None, fdr: tuple[Sequence[str], str] | None = None,
                  replace: bool = False) -> tuple[int, GwasSummary]:
    """Run ``tests`` over every genotype row group on dask; commit the results as ``LAKE/results/name``.

    Returns the committed version and the per-phenotype summary of the headline test, which
    is also stored in the provenance (tests, hits, λGC, top variant) with the family-wide
    Bonferroni threshold (5e-8 over the number of phenotypes). With ``fdr`` = (group
    columns, −log10 p column), the committed rows also carry their BH q-value ``fdr``
    within each group (:mod:`queries.fdr`: one more out-of-core pass over the results). An existing
    results table ``name`` is replaced only with ``replace``.
    """
    files, positions_files = lake.results_files(name), lake.browse_files(name, "positions")
    kind = RESULTS_KINDS[provenance["kind"]]
    actions, positions, summary, parts = [], [], GwasSummary.empty(tests.phenotype_names), IndexParts(kind)
    with lake_client(lake, scheduler=scheduler, workers=workers) as client:
        # tasks carry the run's files without credentials: workers take those from their environment
        for action, block_summary, block_parts, block_positions in map_blocks(
                client, _scan_task, blocks, tests, files.public(), positions_files.public(), kind, step=step,
                progress=progress):
            actions.append(action)
            positions += block_positions
            summary.merge(block_summary)
            parts.merge(block_parts)
    lambdas = summary.lambda_gc()
    per_phenotype = {name: {"tests": int(tests), "hits_5e-8": int(hits), "lambda_gc": round(float(lam), 6),
                            "bonferroni_0.05": 0.05 / max(int(tests), 1),
                            "top_variant": top, "top_log10p": round(float(log10p), 6)}
                     for name, tests, hits, lam, top, log10p in zip(summary.phenotypes, summary.tests, summary.hits,
                                                                     lambdas, summary.top_variant, summary.top_log10p)}
    provenance = {**provenance, "phenotype_summary": per_phenotype,
                  "family_threshold": family_threshold(len(summary.phenotypes))}
    schema, staged = tests.schema, []
    if fdr is not None:
        if progress:
            progress("q-values", 0, 1)
        staged = actions
        actions, schema = with_fdr(files, staged, schema, groups=fdr[0], log10p=fdr[1])
        provenance["fdr"] = {"method": "BH", "within": list(fdr[0]), "of": fdr[1]}
        if progress:
            progress("q-values", 1, 1)
    version = lake.commit_results(files, actions, schema=schema, partition_by=["chrom"], provenance=provenance,
                                  replace=replace)
    remove_files(files, staged)
    index_after_job(lake, name, version=version, pieces=(parts, positions_files, positions))
    return version, summary


def check_min_maf(min_maf: float) -> None:
    """Refuse a minimum minor allele frequency outside [0, ½)."""
    if not 0.0 <= min_maf < 0.5:
        raise BiolakeError(f"the minimum minor allele frequency must be in [0, 0.5), got {min_maf}")


def _scan_task(fragment: Block, tests: VariantTests, files: ResultsFiles, positions_files: ResultsFiles,
               kind: ResultsKind, part: int) -> tuple[AddAction, GwasSummary, IndexParts, list[AddAction]]:
    """One dask task: read a genotype row group from the lake, test it slice by slice, and
    write the results as one Parquet file of the run, and their browse-index positions as
    another; only the add actions and the block's summaries go back."""
    summary, parts = GwasSummary.empty(tests.phenotype_names), IndexParts(kind)
    output = files.open(tests.schema, partition={"chrom": fragment.chrom}, part=f"{part:06d}")

    def tested() -> Iterator[pa.Table]:
        for block in read_genotype_blocks(fragment, n_samples=tests.n_samples, samples=tests.samples,
                                          dtype=tests.dtype):
            if tests.min_maf > 0:
                block = block.common(tests.min_maf)
            if not block.variants.num_rows:
                continue
            table, log10p = tests.test(block)
            summary.add(block.variants.column("variant_id").to_numpy(zero_copy_only=False), log10p)
            output.write(table)
            yield parts.add(table)

    positions = write_positions(positions_files, tested(), part=f"{part:06d}")
    return output.close(), summary, parts, positions
