"""The kinship job: a release's autosomal genotypes → KING-robust kinship of every pair of participants, as
``plink2 --make-king-table``, and optionally a maximal unrelated set, as ``plink2 --king-cutoff``.

The participants are the release's genotyped ones, or those a sample query keeps
(:func:`biolake.queries.genotyped_samples`). Each dask task sums the pair counts
(:class:`biolake.stats.kinship.KingCounts`: NSNP, HETHET, IBS0 and each sample's heterozygous
calls over the variants both called) over a share of the autosomal genotype row groups, one
share per worker, as the heritability job sums its relationship matrix; the client adds the
shares' counts as they come and turns them into kinship coefficients. Memory: 16 N² bytes
per task and in the client (int32 counts; 1.6 GB at 10,000 samples), plus 8 N² for the kinship
coefficients in the client and, per task, the bit sets of 32,768 variants (5 bits per call:
200 MB at 10,000 samples).

The pairs at or above ``min_kinship`` are committed as ``LAKE/results/NAME`` (kind ``kinship``);
with ``unrelated`` the kept participants as ``LAKE/results/NAME_unrelated`` (kind
``unrelated``), a table a sample query selects from. Withdrawal deletes a participant's pairs
and membership from both.

Examples
--------
>>> report = run_kinship(Lake.open("lake"), KinshipSettings(name="relatives", unrelated=0.0884))
>>> report.samples > report.unrelated > 0, report.unrelated_name
(True, 'relatives_unrelated')
>>> Lake.open("lake").results_dataset("relatives").schema.names
['participant_id_1', 'participant_id_2', 'n_variants', 'hethet', 'ibs0', 'kinship']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import numpy as np
import pyarrow as pa
import scipy.sparse

from biolake.cluster import summed_over_shares
from biolake.frame import Report, SampleRequest, provenance_header, settings_record
from biolake.lake.chromosomes import AUTOSOMES
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake, check_results_name
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries import SampleSelection, connect, genotyped_samples
from biolake.queries.blocks import Block, genotype_blocks, read_genotype_blocks
from biolake.run import publish_parts, publish_table
from biolake.scan import TaskInputs
from biolake.stats.kinship import KING_THIRD_DEGREE, KingCounts, king_robust, pairs_at_least, unrelated_samples

Progress = Callable[[str, int, int], None]
SCHEMA = RESULTS_KINDS["kinship"].arrow_schema()
_PART_PAIRS = 1_000_000       # pairs per part of the table written
UNRELATED_SCHEMA = RESULTS_KINDS["unrelated"].arrow_schema()
ESTIMATOR = ("KING-robust between-family estimator over the autosomal variants called in both, as plink2 "
             "--make-king-table: ½ − (Het_i + Het_j − 2 HETHET + 4 IBS0) / (4 min(Het_i, Het_j)), dosages "
             "hard-called as plink2 --hard-call-threshold 0.1 (the nearest genotype within 0.1, else missing)")


@dataclass(frozen=True, kw_only=True)
class KinshipSettings(SampleRequest):
    """Which participants (``samples``: SQL returning participant_id; default every genotyped one), the smallest
    kinship of a pair the table keeps (``min_kinship``), and the cutoff of the unrelated set (``unrelated``;
    None: no set)."""

    min_kinship: float = KING_THIRD_DEGREE
    unrelated: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        for flag, value in (("min", self.min_kinship), ("unrelated", self.unrelated)):
            if value is not None and not 0.0 <= value <= 0.5:
                raise BiolakeError(f"--{flag} must be a kinship coefficient in [0, 0.5], got {value!r}")
        if self.unrelated is not None:
            check_results_name(self.unrelated_name)

    @property
    def unrelated_name(self) -> str:
        """The results table of the unrelated set: NAME_unrelated. A run with ``replace`` drops the set of an
        earlier run of NAME before committing its pairs, so a set in the lake is always its pairs' own."""
        return f"{self.name}_unrelated"


@dataclass(frozen=True, kw_only=True)
class KinshipReport(Report):
    """What a kinship run wrote: over how many participants and variants, how many pairs it kept, and the
    unrelated set's size and table (None without one)."""

    release: str
    samples: int
    variants: int
    pairs: int
    unrelated: int | None = None
    unrelated_name: str | None = None


def run_kinship(lake: Lake, settings: KinshipSettings, *, scheduler: str | None = None, workers: int | None = None,
                progress: Progress | None = None) -> KinshipReport:
    """KING-robust kinship of every pair of the chosen participants; commit the pairs at or above
    ``settings.min_kinship`` as ``LAKE/results/NAME`` and, with ``settings.unrelated``, the unrelated set as
    ``LAKE/results/NAME_unrelated`` (``biolake kinship --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    if settings.unrelated is not None:
        lake.check_results_free(settings.unrelated_name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=[settings.samples] if settings.samples else []) as con:
        chosen = genotyped_samples(con, **settings.sample_choice())
    blocks = _autosomal_blocks(lake, settings, release=chosen.release)
    counts, variants = king_count_sum(lake, TaskInputs(chosen.vector_length, chosen.selection), blocks,
                                      scheduler=scheduler, workers=workers, progress=progress)
    kinship = king_robust(counts)
    record = {**provenance_header("kinship", release=chosen.release), "samples": settings.samples,
              "settings": settings_record(settings), "analysis_samples": len(chosen.participant_ids), "variants": variants,
              "estimator": ESTIMATOR}
    kept = None if settings.unrelated is None else unrelated_samples(kinship, settings.unrelated)
    if settings.replace and settings.unrelated_name in lake.results_names():
        lake.drop_results(settings.unrelated_name)   # first: a kill never leaves an older run's set beside new pairs
    version = publish_parts(lake, settings.name, _pair_parts(chosen, counts, kinship, settings.min_kinship),
                            schema=SCHEMA, provenance=record, replace=settings.replace)
    pairs = int(np.count_nonzero(np.triu(kinship >= settings.min_kinship, 1)))
    report = KinshipReport(name=settings.name, version=version, release=chosen.release,
                           samples=len(chosen.participant_ids), variants=variants, pairs=pairs)
    if kept is None:
        return report
    ids = pa.array([chosen.participant_ids[i] for i in kept], pa.string())
    publish_table(lake, settings.unrelated_name, pa.table({"participant_id": ids}, schema=UNRELATED_SCHEMA),
                  provenance={**record, "kind": "unrelated", "kinship": settings.name, "cutoff": settings.unrelated,
                              "rule": "plink2 --king-cutoff: while a pair is above the cutoff, drop the partner of "
                                      "the first participant with one relative left, else the first with the most"},
                  replace=settings.replace)
    return replace(report, unrelated=len(kept), unrelated_name=settings.unrelated_name)


def _autosomal_blocks(lake: Lake, settings: KinshipSettings, *, release: str) -> list[Block]:
    """The release's autosomal genotype row groups (of ``settings.chromosomes``, if given; plink2's KING-robust
    counts autosomes only); refuses none."""
    asked = [chrom for chrom in settings.chromosomes or AUTOSOMES if chrom in AUTOSOMES]
    blocks = genotype_blocks(lake, release=release, chromosomes=asked, choice=settings.variant_choice()) if asked else []
    if not blocks:
        raise BiolakeError(f"release {release!r} has no autosomal genotypes"
                           + (f" on chromosomes {', '.join(settings.chromosomes)}" if settings.chromosomes else "")
                           + ": KING-robust kinship, as plink2's, counts autosomal variants (1-22) only")
    return blocks


def king_count_sum(lake: Lake, inputs: TaskInputs, blocks: list[Block], *, scheduler: str | None = None,
                   workers: int | None = None, progress: Progress | None = None) -> tuple[KingCounts, int]:
    """The KING pair counts of the analysis samples summed over every variant of ``blocks``, and how many
    variants, on dask: one task per worker, each over a contiguous share of the row groups."""
    zeros = KingCounts.zeros(inputs.analysis_samples)
    *counts, variants = summed_over_shares(lake, _king_task, inputs, blocks, [*zeros.arrays(), 0],
                                           step="kinship", scheduler=scheduler, workers=workers, progress=progress)
    return KingCounts(*counts), variants


def _king_task(share: list[Block], inputs: TaskInputs, position: int) -> tuple[np.ndarray | int, ...]:
    """One dask task: the KING pair counts of a share of the row groups, and how many variants it holds."""
    variants = [0]

    def calls() -> Iterator[tuple[np.ndarray, scipy.sparse.csr_array]]:
        for fragment in share:
            for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, samples=inputs.samples,
                                              dtype=np.float32):
                variants[0] += len(block.dosages)
                yield block.dosages, block.missing

    counts = KingCounts.zeros(inputs.analysis_samples).add_calls(calls())
    return *counts.arrays(), variants[0]


def _pair_parts(chosen: SampleSelection, counts: KingCounts, kinship: np.ndarray, minimum: float
                ) -> Iterator[pa.Table]:
    """The pairs at or above ``minimum`` as results rows, in parts of about a million pairs (by the later
    participant), so the table of every pair (``--min 0``) is never built whole."""
    samples = len(kinship)
    step = max(1, _PART_PAIRS // max(samples, 1))
    for start in range(0, samples, step):
        later, earlier = pairs_at_least(kinship, minimum, later=slice(start, start + step))
        yield _pair_rows(chosen, counts, kinship, later, earlier)


def _pair_rows(chosen: SampleSelection, counts: KingCounts, kinship: np.ndarray, later: np.ndarray,
               earlier: np.ndarray) -> pa.Table:
    """The results rows: one per pair kept, the later participant of the sample order first (plink2's IID1)."""
    ids = np.asarray(chosen.participant_ids, dtype=object)
    return pa.table({"participant_id_1": pa.array(ids[later], pa.string()),
                     "participant_id_2": pa.array(ids[earlier], pa.string()),
                     "n_variants": counts.n_variants[earlier, later].astype(np.int64),
                     "hethet": counts.hethet[earlier, later].astype(np.int64),
                     "ibs0": counts.ibs0[earlier, later].astype(np.int64),
                     "kinship": kinship[earlier, later]}, schema=SCHEMA)
