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
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
import pyarrow as pa

from biolake.cluster import block_map, summed_over_shares
from biolake.frame import DesignReport, VariantJobRequest
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries import connect
from biolake.queries.blocks import SLICE_BYTES, Block, GenotypeBlock, genotype_blocks, read_genotype_blocks
from biolake.queries.design import Design, genotype_sexes
from biolake.queries.sql import LakeConnection
from biolake.queries.variants import VariantChoice
from biolake.run import KernelOutput, Piece, Run, RunFiles
from biolake.stats.multiple import family_threshold
from biolake.stats.qc import VariantQc, missing_calls_per_sample, most
from biolake.stats.summary import ScanSummary

Progress = Callable[[str, int, int], None]
Kernel = Callable[[Any, Block], Iterator[KernelOutput]]          # (the job's inputs, a row group) → its rows
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
    return part, pa.concat_tables([tested.rows for tested in kernel(inputs, fragment)])


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

    @property
    def slice_bytes(self) -> int:
        """The most bytes of dosages a task decodes and tests at once (a row group is read in such slices)."""
        return SLICE_BYTES


class VariantTests(Protocol):
    """What a variant job sends to its workers: how to read blocks and what to test in them."""

    n_samples: int                 # length of the stored sample vector
    samples: np.ndarray | None     # positions of the analysis samples in it (None: all, in order)
    dtype: type
    schema: pa.Schema
    qc: VariantQc                  # the variants that fail it (over the analysis samples) are not tested
    slice_bytes: int               # the most bytes of dosages tested at once (TaskInputs.slice_bytes)

    @property
    def phenotype_names(self) -> list[str]: ...

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray | Scores | None]:
        """The block's results table, and its headline −log10 p for the summary of a kind whose headline is not its
        rows' (GxE): variants × phenotypes, or :class:`Scores` of other tests (epistasis: pairs, only some of which
        are rows); None where the rows carry it."""


class Scores(NamedTuple):
    """A block's headline tests apart from its rows: −log10 p (tests × phenotypes, NaN where one did not run) of the
    tests ``features`` names."""

    features: np.ndarray
    log10p: np.ndarray


@dataclass(frozen=True, eq=False)
class VariantScan:
    """What every block task of a variant scan gets: the job's tests, the analysis samples with one X (males:
    :class:`ScanDesign`), and whether their X dosages are halved (--xchr-model 1) before the tests."""

    tests: VariantTests
    males_x: np.ndarray | None = None
    halve_x: bool = False


def variant_results(scan: VariantScan, fragment: Block) -> Iterator[KernelOutput]:
    """The kernel of a variant job: decoded genotype slices of a row group through ``tests.qc`` (a slice's removed
    variants counted even when none is left to test; on the dosages as stored, a male's X call one allele), then
    (on X, males' dosages halved if asked) tested by ``tests``."""
    tests = scan.tests
    haploid = scan.males_x if fragment.chrom == "X" else None
    for block in read_genotype_blocks(fragment, n_samples=tests.n_samples, samples=tests.samples, dtype=tests.dtype,
                                      max_bytes=tests.slice_bytes):
        removed: dict[str, int] = {}
        if tests.qc.active:
            kept, removed = tests.qc.passing(block.dosages, block.missing, chrom=fragment.chrom, haploid=haploid)
            if not kept.all():
                block = block.take(np.flatnonzero(kept))
        if not block.variants.num_rows:
            yield KernelOutput(tests.schema.empty_table(), None, None, removed)
            continue
        if scan.halve_x and haploid is not None:
            block = block.halved(haploid)
        table, headline = tests.test(block)
        features, log10p = headline if isinstance(headline, Scores) else (
            block.variants.column("variant_id").to_numpy(zero_copy_only=False), headline)
        yield KernelOutput(table, features, log10p, removed)


@dataclass(frozen=True, kw_only=True)
class ScanReport(DesignReport):
    """What a variant scan wrote and found: its rows, the summary of its headline test, and how many variants each
    quality-control filter removed (those the request set, in plink2's order)."""

    rows: int
    summary: ScanSummary = field(repr=False)
    removed: dict[str, int] = field(default_factory=dict)


def scan_variants(lake: Lake, name: str, tests: VariantTests, blocks: list[Block], *,
                  provenance: dict, step: str, scheduler: str | None = None, workers: int | None = None,
                  progress: Progress | None = None, fdr: tuple[Sequence[str], str] | None = None,
                  replace: bool = False, males_x: np.ndarray | None = None, xchr_model: int = 2,
                  headline: bool = False) -> tuple[int, ScanSummary, dict[str, int]]:
    """Run ``tests`` over every genotype row group on dask; commit the results as ``LAKE/results/name``.

    Returns the committed version, the per-phenotype summary of the headline test, which
    is also stored in the provenance (tests, hits, λGC, top variant) with the family-wide
    Bonferroni threshold (5e-8 over the number of phenotypes), and the variants each filter of
    ``tests.qc`` removed (in the provenance too, as ``variants_removed``). ``males_x`` marks the samples with
    one X (:class:`ScanDesign`): their X calls count one allele in --maf/--mac, and with ``xchr_model`` 1 their X
    dosages are halved. With ``fdr`` = (group
    columns, −log10 p column), the committed rows also carry their BH q-value ``fdr``
    within each group (:func:`biolake.run.with_fdr`). An existing results table ``name``
    is replaced only with ``replace``. With ``headline`` (always for a kind of several scans per phenotype: GxE's
    rows are per exposure, its headline a joint test), the summary is of the tests' headline apart from their rows
    (:meth:`VariantTests.test`).
    """
    kind = RESULTS_KINDS[provenance["kind"]]
    headline = headline or bool(kind.extra_group)
    run = Run(lake, name, kind=kind, phenotypes=tests.phenotype_names, headline=headline)
    map_lake_blocks(run, variant_results, VariantScan(tests, males_x, xchr_model == 1), blocks, schema=tests.schema,
                    step=step,
                    scheduler=scheduler, workers=workers, progress=progress)
    summary = run.headline if run.headline is not None else run.summary
    removed = {name: run.removed[name] for name in tests.qc.applied}
    provenance = {**provenance, "phenotype_summary": summary.per_phenotype(),
                  "family_threshold": family_threshold(len(summary.phenotypes)),
                  **({"variants_removed": removed} if removed else {})}
    version = run.publish(schema=tests.schema, provenance=provenance, replace=replace, fdr=fdr, progress=progress)
    return version, summary, removed


class ScanDesign(NamedTuple):
    """What a variant scan tests: its design, its genotype row groups, and which analysis samples have one X
    (males; None when X is not tested)."""

    design: Design
    blocks: list[Block]
    males_x: np.ndarray | None


def scan_design(lake: Lake, request: VariantJobRequest, *, choice: VariantChoice | None = None,
                scheduler: str | None = None, workers: int | None = None, progress: Progress | None = None) -> ScanDesign:
    """The design of a variant scan and the genotype row groups it tests (those holding a variant of its
    chromosomes that --region, --extract and --exclude choose; no other is read). With ``--mind``
    (``request.max_sample_missing``), its samples are first counted over every one of those variants, and those
    without a hard call at more than that fraction of them are left out (as plink2 --mind, before the variant
    filters), under their own reason in the drop report. When chromosome X is tested, each sample's ploidy there
    comes from the sex its genotype source gives, and sex must be among the covariates (plink2 --glm adds it).
    ``choice`` replaces the request's own choice of variants (epistasis --set-sql: its set)."""
    with connect(lake, release=request.release, queries=request.queries()) as con:
        chosen = request.design(con)
        blocks = genotype_blocks(lake, release=chosen.release, chromosomes=request.chromosomes,
                                 choice=request.variant_choice() if choice is None else choice)
        if not blocks:
            raise BiolakeError(f"release {chosen.release!r} has no genotypes" + (
                f" on chromosomes {', '.join(request.chromosomes)}" if request.chromosomes else ""))
        if request.max_sample_missing is not None:
            chosen = _without_missing_samples(lake, con, request, chosen, blocks, scheduler=scheduler,
                                              workers=workers, progress=progress)
        males = x_males(con, chosen) if any(block.chrom == "X" for block in blocks) else None
    return ScanDesign(chosen, blocks, males)


def _without_missing_samples(lake: Lake, con: LakeConnection, request: VariantJobRequest, chosen: Design,
                             blocks: list[Block], **where: Any) -> Design:
    """The design less the samples --mind leaves out (see :func:`scan_design`)."""
    inputs = TaskInputs(chosen.vector_length, chosen.selection)
    missing, variants = summed_over_shares(lake, _missing_calls_task, inputs, blocks,
                                           [np.zeros(inputs.analysis_samples, np.int64), 0], step="--mind", **where)
    over = missing > most(request.max_sample_missing, variants)
    if not over.any():
        return chosen
    reason = f"removed due to missing genotype data (--mind {request.max_sample_missing:g}, of {variants:,} variants)"
    with warnings.catch_warnings():   # the design's warnings were shown when it was first made
        warnings.simplefilter("ignore")
        return request.design(con, excluded={reason: [chosen.participant_ids[j] for j in np.flatnonzero(over)]})


def x_males(con: LakeConnection, chosen: Design) -> np.ndarray:
    """Which analysis samples are male (one X), by the sex their genotype source gives (the .fam's, as plink2
    reads it); an analysed participant without one, or a design without sex among its covariates (plink2 --glm
    adds it on chromosome X), is an error."""
    sex = genotype_sexes(con)
    unknown = [pid for pid in chosen.participant_ids if sex.get(pid) not in ("M", "F")]
    if unknown:
        raise BiolakeError(f"chromosome X: {len(unknown):,} analysed participants have no sex in the genotype source "
                           f"(e.g. {unknown[0]!r}), so no known ploidy there; --remove them, or leave X out (--chrom)")
    males = np.array([sex[pid] == "M" for pid in chosen.participant_ids])
    fit = np.linalg.lstsq(chosen.covariates, males.astype(float), rcond=None)[0]
    if np.abs(chosen.covariates @ fit - males).max() > 1e-6:
        raise BiolakeError("chromosome X is tested with sex among the covariates, as plink2 --glm adds it there; "
                           "add sex to the covariates (as the genotype source gives it), or leave X out (--chrom)")
    return males


def _missing_calls_task(share: list[Block], inputs: TaskInputs, position: int) -> tuple[np.ndarray, int]:
    """One dask task: each analysis sample's variants without a hard call in a share of the row groups, and
    how many variants the share holds."""
    missing, variants = np.zeros(inputs.analysis_samples, np.int64), 0
    for fragment in share:
        for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, samples=inputs.samples,
                                          dtype=np.float32):
            missing += missing_calls_per_sample(block.dosages, block.missing)
            variants += len(block.dosages)
    return missing, variants
