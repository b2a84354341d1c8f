"""The LD score job: a release's genotypes → each variant's LD score as ``ldsc --l2``, as results.

A variant's LD score is the sum of its bias-corrected r² (r² − (1 − r²)/(N − 2), r the
correlation of mean-imputed standardised genotypes over all N samples of the release) with
every variant of its chromosome within the window: ``window_cm`` centimorgans on the
release's genetic map (the ``cm`` of its variants, from a .bim's third column), or
``window_kb`` kb. Variants LDSC leaves out (monomorphic, or every sample heterozygous or
missing, or with ``min_maf``, LDSC's --maf, a minor allele frequency at or below it) get no
score and count in no one's. One task per chromosome streams its row groups
in genome order through :class:`biolake.stats.ld.WindowLdScores`, holding one window of
genotypes at a time. The reduce counts M and M_5_50 per chromosome (the variants scored, and
those with MAF above 5 %), which LDSC's regression needs; they are stored in the run's
provenance, not a second table: one run commits one table, and the counts are a handful of
numbers per chromosome that also follow from the table (``count(*)``, and with
``maf > 0.05``, grouped by chrom). The scores are committed as ``LAKE/results/NAME``
(kind ``ldscore``, declared in :mod:`biolake.lake.schema`).

Examples
--------
>>> report = run_ldscores(Lake.open("lake"), LdScoreSettings(name="ld_scores", window_kb=1000))
>>> report.window, report.variants == sum(report.m.values()) > 0
('1000 kb', True)
>>> Lake.open("lake").results_dataset("ld_scores").schema.names
['chrom', 'variant_id', 'pos', 'cm', 'maf', 'l2']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from biolake.frame import Report, Request, provenance_header
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries.blocks import Chromosome, genotype_chromosomes, read_genotype_blocks
from biolake.run import Run
from biolake.run import KernelOutput
from biolake.scan import map_lake_blocks
from biolake.stats.ld import WindowLdScores, ldsc_genotypes

Progress = Callable[[str, int, int], None]
SCHEMA = RESULTS_KINDS["ldscore"].arrow_schema()
COMMON_MAF = 0.05     # LDSC's M_5_50 counts the variants with a MAF above this
DEFAULT_KB, DEFAULT_CM = 1000.0, 1.0


@dataclass(frozen=True, kw_only=True)
class LdScoreSettings(Request):
    """Which window: ``window_cm`` centimorgans (LDSC's --ld-wind-cm) or ``window_kb`` kb (--ld-wind-kb),
    at most one; neither gives 1 cM where every variant of the release has a cM position, else 1000 kb.
    Which variants: with ``min_maf`` (LDSC's --maf), only those with a minor allele frequency above it."""

    window_cm: float | None = None
    window_kb: float | None = None
    min_maf: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.window_cm is not None and self.window_kb is not None:
            raise BiolakeError("give one of --window-cm and --window-kb, not both")
        for flag, value in (("window-cm", self.window_cm), ("window-kb", self.window_kb)):
            if value is not None and not value > 0:
                raise BiolakeError(f"--{flag} must be positive, got {value!r}: a window holds the variants within "
                                   "that distance")
        if self.min_maf is not None and not 0 <= self.min_maf < 0.5:
            raise BiolakeError(f"--maf must be at least 0 and below 0.5, got {self.min_maf!r}: variants with a minor "
                               "allele frequency at or below it are left out (0.5 would leave none)")


@dataclass(frozen=True, kw_only=True)
class LdScoreReport(Report):
    """What an LD score run wrote: how many variants it scored, in which window, and LDSC's M counts."""

    variants: int
    window: str                 # e.g. "1 cM", "1000 kb"
    release: str
    m: dict[str, int]           # per chromosome: variants scored (LDSC's .l2.M)
    m_5_50: dict[str, int]      # … of them with MAF above 5 % (LDSC's .l2.M_5_50)
    min_maf: float | None       # variants with MAF at or below it left out (LDSC's --maf)


@dataclass(frozen=True)
class LdScoreInputs:
    """What every task needs besides its chromosome."""

    n_samples: int              # length of the stored genotype sample vector (LDSC's N: every sample)
    coordinate: str             # "cm" or "pos"
    max_dist: float             # in the coordinate's unit (bp for pos)
    min_maf: float              # variants with MAF at or below it get no score (0: every polymorphic one)


def run_ldscores(lake: Lake, settings: LdScoreSettings, *, scheduler: str | None = None,
                 workers: int | None = None, progress: Progress | None = None) -> LdScoreReport:
    """LD scores of the release's variants; committed as ``LAKE/results/NAME`` (``biolake ldscores --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    release = lake.resolve_release(settings.release).release
    variants = pl.from_arrow(lake.read("variants", release=release, columns=[
        "variant_index", "chrom", "variant_id", "pos", "cm"])).sort("variant_index")
    if settings.chromosomes is not None:
        variants = variants.filter(pl.col("chrom").is_in(list(settings.chromosomes)))
    coordinate, max_dist, window = choose_window(settings, variants, release=release)
    check_genome_order(variants, coordinate)
    chromosomes = genotype_chromosomes(lake, release=release, chromosomes=settings.chromosomes)
    if not chromosomes:
        raise BiolakeError(f"release {release!r} has no genotypes"
                           + (" on the chromosomes asked for" if settings.chromosomes else ""))
    n_samples = lake.read("samples", release=release, columns=["assay"]).column(0).to_pylist().count("genotypes")
    run = Run(lake, settings.name, kind=RESULTS_KINDS["ldscore"])
    inputs = LdScoreInputs(n_samples, coordinate, max_dist, settings.min_maf or 0.0)
    m, m_5_50 = map_lake_blocks(run, chromosome_ldscores, inputs, chromosomes,
                                schema=SCHEMA, step="ldscores", scheduler=scheduler, workers=workers,
                                progress=progress, reduce=lambda scores: (scores, m_counts(scores)))
    record = {**provenance_header("ldscore", release=release), "window": window, "n_samples": n_samples,
              "estimator": "r² − (1 − r²)/(N − 2) of mean-imputed standardised genotypes (ldsc --l2)",
              "min_maf": settings.min_maf, "chromosomes": settings.chromosomes, "m": m, "m_5_50": m_5_50}
    version = run.publish(schema=SCHEMA, provenance=record, replace=settings.replace, progress=progress)
    return LdScoreReport(name=settings.name, version=version, variants=sum(m.values()), window=window,
                         release=release, m=m, m_5_50=m_5_50, min_maf=settings.min_maf)


def choose_window(settings: LdScoreSettings, variants: pl.DataFrame, *, release: str) -> tuple[str, float, str]:
    """The coordinate (cm or pos), the distance in its unit, and the window as words; --window-cm needs a
    cM position on every variant."""
    unmapped = variants.filter(pl.col("cm").is_null())
    if settings.window_kb is not None or (settings.window_cm is None and unmapped.height):
        kb = settings.window_kb or DEFAULT_KB
        return "pos", kb * 1000, f"{kb:g} kb"
    if unmapped.height:
        raise BiolakeError(f"--window-cm: {unmapped.height:,} of the {variants.height:,} variants of release "
                           f"{release!r} have no cM position (first: {unmapped['variant_id'][0]!r}); ingest a .bim "
                           "with genetic positions in its third column, or use --window-kb")
    cm = settings.window_cm or DEFAULT_CM
    return "cm", cm, f"{cm:g} cM"


def check_genome_order(variants: pl.DataFrame, coordinate: str) -> None:
    """Refuse a release whose variants are not in order of ``coordinate`` within each chromosome (as stored):
    windows are read as runs of neighbouring variants, as LDSC reads them."""
    backwards = variants.with_columns(previous=pl.col(coordinate).shift(1).over("chrom")).filter(
        pl.col(coordinate) < pl.col("previous"))
    if backwards.height:
        row = backwards.row(0, named=True)
        unit = "cM position" if coordinate == "cm" else "position"
        raise BiolakeError(f"variant {row['variant_id']!r} of chromosome {row['chrom']} comes after a variant at a "
                           f"later {unit} ({row['previous']} > {row[coordinate]}); LD scores need each chromosome's "
                           "variants in genome order")


def chromosome_ldscores(inputs: LdScoreInputs, chromosome: Chromosome) -> Iterator[KernelOutput]:
    """The kernel: the LD scores of one chromosome's variants, its row groups streamed in genome order."""
    scores = WindowLdScores(max_dist=inputs.max_dist, n_samples=inputs.n_samples)
    pending: list[pa.Table] = []        # variants whose windows are still open, in order
    for fragment in chromosome.blocks:
        maps, start = fragment.read(["pos", "cm"]), 0     # the columns read_genotype_blocks leaves out
        # hard calls as uint8 counts (exact integer products), a block with dosages as float64
        for block in read_genotype_blocks(fragment, n_samples=inputs.n_samples, dtype=np.uint8):
            genotypes = ldsc_genotypes(block.dosages, block.missing, min_maf=inputs.min_maf)
            kept = np.flatnonzero(genotypes.kept)
            positions = maps.slice(start, block.variants.num_rows).take(kept)
            start += block.variants.num_rows
            pending.append(pa.table({
                "chrom": pa.array([chromosome.chrom] * len(kept), pa.string()),
                "variant_id": block.variants.column("variant_id").take(kept), "pos": positions.column("pos"),
                "cm": positions.column("cm"), "maf": genotypes.maf[kept]}))
            coordinates = positions.column(inputs.coordinate).to_numpy(zero_copy_only=False).astype(np.float64)
            yield from _finished(pending, scores.add(coordinates, genotypes if len(kept) == len(genotypes.kept)
                                                     else genotypes.take(kept)))
    yield from _finished(pending, scores.finish())


def _finished(pending: list[pa.Table], l2: np.ndarray) -> Iterator[KernelOutput]:
    """The rows of the first ``len(l2)`` pending variants with their scores (taken off ``pending``)."""
    if not len(l2):
        return
    held = pa.concat_tables(pending)
    pending[:] = [held.slice(len(l2))]
    done = held.slice(0, len(l2)).append_column("l2", pa.array(l2, pa.float64()))
    yield KernelOutput(done.cast(SCHEMA))


def m_counts(scores: pa.Table) -> tuple[dict[str, int], dict[str, int]]:
    """The reduce's numbers: per chromosome, the variants scored (M) and those with MAF > 5 % (M_5_50).

    Examples
    --------
    >>> m_counts(pa.table({"chrom": ["1", "1", "2"], "maf": [0.3, 0.01, 0.2]}))
    ({'1': 2, '2': 1}, {'1': 1, '2': 1})
    """
    counts = pl.from_arrow(scores).group_by("chrom", maintain_order=True).agg(
        m=pl.len(), m_5_50=(pl.col("maf") > COMMON_MAF).sum())
    return (dict(zip(counts["chrom"].to_list(), counts["m"].to_list())),
            dict(zip(counts["chrom"].to_list(), counts["m_5_50"].to_list())))
