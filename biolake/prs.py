"""The polygenic score job: published (or our own) summary statistics → per-participant scores in the lake.

Weights are matched to the release's variants by id; a weight on the ALT allele counts
the alt dosage, one on the REF allele counts 2 − alt dosage, and one on neither allele is
left out and counted. Every genotype block is one dask task returning its share of the
scores; the client adds them up and writes ``LAKE/results/NAME`` (participant_id, one
column per p-value threshold), queryable as ``results.NAME`` and removed from by a consent
withdrawal like every participant table.

With clumping (clumping + thresholding, C+T), the weights are first LD-clumped against the
release's genotypes by the clump job (:func:`biolake.clump.clumps_of`), as plink1.9 --clump
would clump them, and only the index variants are scored.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from biolake.clump import ClumpFlags, clumps_of
from biolake.cluster import block_map
from biolake.frame import provenance_header
from biolake.ingest.sumstats import read_sumstats
from biolake.lake.errors import BiolakeError, InputError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries.blocks import Block, genotype_blocks, read_genotype_blocks
from biolake.stats.prs import block_scores, threshold_weights

Progress = Callable[[str, int, int], None]
THRESHOLDS = (5e-8, 1e-5, 1e-3, 0.05, 1.0)
# clumping + thresholding as PRSice-2 and plink's C+T (Choi, Mak & O'Reilly 2020, Nat Protoc): every weight
# may index a clump (p1 = 1), r² 0.1, ±250 kb
PRS_CLUMP = ClumpFlags(p1=1.0, p2=1.0, r2=0.1, kb=250.0)


@dataclass(frozen=True)
class PrsReport:
    """What a scoring run wrote: participants, and how many weights each threshold used."""

    name: str
    version: int
    participants: int
    variants: dict[str, int]     # score column → variants with a non-zero weight
    unmatched: int               # weights whose variant the release lacks
    allele_mismatch: int         # weights on an allele the variant does not have
    clumped_out: int = 0         # weights left out by clumping: in LD with a stronger one


@dataclass(frozen=True)
class PrsInputs:
    """Sent to the cluster once (see :func:`biolake.cluster.map_blocks`): the weights by variant id,
    and the sample vector length."""

    n_samples: int
    weights: dict[str, tuple[np.ndarray, bool]]   # variant_id → (weights per threshold, weight on REF)
    width: int


def score_column(threshold: float) -> str:
    """The column name of one threshold's score, e.g. ``prs_p5e_08``, ``prs_p0_05``, ``prs_p1``."""
    return "prs_p" + f"{threshold:g}".replace(".", "_").replace("-", "_").replace("+", "")


def mean_column(threshold: float) -> str:
    """The column name of one threshold's average score (plink2 --score's default), e.g. ``prs_avg_p0_05``."""
    return score_column(threshold).replace("prs_p", "prs_avg_p", 1)


def read_weights(path: str | Path) -> pl.DataFrame:
    """Summary statistics as variant_id, effect_allele, beta, p (any dialect :mod:`ingest.sumstats` reads);
    one weight per variant."""
    frame = read_sumstats(path, require=("variant_id", "alt", "beta", "p"))
    repeated = frame["variant_id"].is_duplicated()
    if repeated.any():
        raise InputError(path, f"variant {frame['variant_id'].filter(repeated)[0]!r} appears more than once; give "
                         "one weight per variant (one phenotype's summary statistics per file)")
    return frame.select("variant_id", pl.col("alt").alias("effect_allele"), "beta", "p")


def run_prs(lake: Lake, *, name: str, weights: str | Path, thresholds: Sequence[float] = THRESHOLDS,
            release: str | None = None, clump: ClumpFlags | None = None, score_mean: bool = False,
            scheduler: str | None = None, workers: int | None = None, progress: Progress | None = None,
            replace: bool = False) -> PrsReport:
    """Score every genotyped participant of ``release`` with the summary statistics in ``weights``
    into ``LAKE/results/name`` (an existing table of that name is replaced only with ``replace``).

    With ``clump`` (e.g. :data:`PRS_CLUMP`), the weights matched to the release are LD-clumped
    against its genotypes first and only the index variants are scored (C+T). ``score_mean``
    adds each score's average as ``plink2 --score`` prints it by default (its SUM over its
    DENOM, twice the number of variants it weighs; NaN for a threshold weighing none), as
    ``prs_avg_p…`` columns.

    Examples
    --------
    >>> report = run_prs(Lake.open("lake"), name="prs_height", weights="height.tsv.gz")
    >>> report.variants
    {'prs_p5e_08': 10, 'prs_p1e_05': 17, 'prs_p0_001': 71, 'prs_p0_05': 279, 'prs_p1': 2000}
    """
    thresholds = sorted(set(float(t) for t in thresholds))
    if not thresholds or not all(0 < t <= 1 for t in thresholds):
        raise BiolakeError(f"p-value thresholds must lie in (0, 1], got {thresholds}")
    lake.check_results_free(name, replace=replace)
    chosen = lake.resolve_release(release).release
    table = read_weights(weights).filter(pl.col("beta").is_not_null() & pl.col("p").is_not_null())
    variants = pl.from_arrow(lake.read("variants", release=chosen,
                                       columns=["variant_id", "chrom", "pos", "ref", "alt"]))
    matched = table.join(variants, on="variant_id", how="inner")
    repeated = matched["variant_id"].is_duplicated()
    if repeated.any():   # a weight matched by id must name one variant, or it would be counted twice
        raise BiolakeError(f"variant id {matched['variant_id'].filter(repeated)[0]!r} names "
                           f"{int(repeated.sum() // matched['variant_id'].filter(repeated).n_unique())} variants of "
                           f"release {chosen!r}; weights are matched by id, so ids must be unique (give those "
                           "variants distinct ids, e.g. chr:pos:ref:alt, at ingest)")
    usable = matched.filter((pl.col("effect_allele") == pl.col("alt")) | (pl.col("effect_allele") == pl.col("ref")))
    allele_mismatch, clumped_out = matched.height - usable.height, 0
    if clump is not None:
        kept = usable.filter(pl.col("variant_id").is_in(_index_variants(lake, usable, clump, release=chosen).implode()))
        usable, clumped_out = kept, usable.height - kept.height
    matrix = threshold_weights(usable["beta"].to_numpy(), usable["p"].to_numpy(), thresholds)
    on_ref = (usable["effect_allele"] == usable["ref"]).to_numpy()
    participants = _genotyped(lake, chosen)
    inputs = PrsInputs(
        len(participants),
        {v: (row, bool(flag)) for v, row, flag in zip(usable["variant_id"].to_list(), matrix, on_ref)},
        len(thresholds))
    blocks = genotype_blocks(lake, release=chosen)
    if not blocks:
        raise BiolakeError(f"release {chosen!r} has no genotypes")
    scores = np.zeros((inputs.n_samples, len(thresholds)))
    with block_map(lake, scheduler=scheduler, workers=workers) as map_over:
        for part in map_over(_score_task, blocks, inputs, step="prs", progress=progress):
            scores += part
    columns = {score_column(t): scores[:, j] for j, t in enumerate(thresholds)}
    if score_mean:
        weighed = (usable["p"].to_numpy()[:, None] <= np.asarray(thresholds)[None, :]).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            columns.update({mean_column(t): scores[:, j] / (2.0 * weighed[j]) for j, t in enumerate(thresholds)})
    schema = RESULTS_KINDS["prs"].arrow_schema(columns=list(columns))
    result = pa.table({"participant_id": participants, **columns}, schema=schema)
    files = lake.results_files(name)
    output = files.open(schema, partition={}, part="prs")
    output.write(result)
    used = {score_column(t): int((matrix[:, j] != 0).sum()) for j, t in enumerate(thresholds)}
    provenance = {**provenance_header("prs", release=chosen),
                  "weights": str(weights), "thresholds": thresholds, "variants_used": used,
                  "unmatched": table.height - matched.height,
                  "allele_mismatch": allele_mismatch,
                  "clump": None if clump is None else asdict(clump), "clumped_out": clumped_out,
                  "score_mean": score_mean,
                  "missing_calls": "mean-imputed (2 × allele frequency), as plink2 --score"}
    version = lake.commit_results(files, [output.close()], schema=schema, partition_by=[],
                                  provenance=provenance, replace=replace)
    return PrsReport(name, version, len(participants), used, table.height - matched.height,
                     allele_mismatch, clumped_out)


def _index_variants(lake: Lake, weights: pl.DataFrame, flags: ClumpFlags, *, release: str) -> pl.Series:
    """The weights' variants that index a clump when the weights (with chrom and pos of the release's variants)
    are LD-clumped by their p against the release's genotypes."""
    rows = weights.select(pl.lit("weights").alias("phenotype"), "variant_id", "chrom", "pos", "beta",
                          log10p=-pl.col("p").log10(), p=pl.col("p"))
    return pl.from_arrow(clumps_of(lake, rows, flags, release=release).column("variant_id"))


def _score_task(fragment: Block, inputs: PrsInputs, position: int) -> np.ndarray:
    """One dask task: the scores' share of one genotype row group (samples × thresholds)."""
    scores = np.zeros((inputs.n_samples, inputs.width))
    for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, dtype=np.float64):
        ids = block.variants.column("variant_id").to_pylist()
        rows = [i for i, v in enumerate(ids) if v in inputs.weights]
        if rows:
            weights = np.array([inputs.weights[ids[i]][0] for i in rows])
            on_ref = np.array([inputs.weights[ids[i]][1] for i in rows])
            scores += block_scores(block.dosages[rows], block.missing[rows], weights, on_ref)
    return scores


def _genotyped(lake: Lake, release: str) -> pa.Array:
    samples = lake.read("samples", release=release, columns=["participant_id", "assay", "sample_index"])
    samples = samples.filter(pc.equal(samples.column("assay"), "genotypes")).sort_by("sample_index")
    return samples.column("participant_id").combine_chunks()
