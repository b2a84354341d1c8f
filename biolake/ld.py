"""The pairwise LD job: r, r², and the haplotype r² and D′ of variant pairs of a release, as ``plink1.9 --r2``.

The first variant of each pair is a listed one (``variants``: plink's ``--ld-snp-list``, each
against every variant within ``window_kb``, itself included) or one of a region's
(``region``: plink's ``--chr --from-bp --to-bp``, each pair of the region's variants within
``window_kb`` once, the first before the second). With ``inter_chr`` there is no window
(plink's ``--r2 inter-chr``): a listed variant meets every variant of the release. Pairs with
r² below ``r2_min`` (plink's ``--ld-window-r2``) are left out. The first variants are decoded
once in the client and sent to every task (12 bytes per sample each); each task reads one
genotype row group and computes its pairs with them in one matrix product per slice
(:func:`biolake.stats.ld.pair_counts`), so its memory is bounded by the slice whatever the
release's size. The client orders the pairs as plink does and commits them as
``LAKE/results/NAME`` (kind ``ld``, declared in :mod:`biolake.lake.schema`).

Examples
--------
>>> settings = LdSettings(name="ld_chr22", region="22:1-51000000", window_kb=10000, r2_min=0.0)
>>> report = run_ld(Lake.open("lake"), settings)
>>> report.pairs > 0, report.release
(True, 'r2')
>>> Lake.open("lake").results_dataset("ld_chr22").schema.names[:6]
['variant_id', 'chrom', 'pos', 'variant_id_b', 'chrom_b', 'pos_b']
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from biolake.frame import Report, Request, provenance_header
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.queries.blocks import (Block, Chromosome, GenotypeBlock, genotype_blocks, genotype_chromosomes,
                                    genotyped_samples, read_chosen_variants, read_genotype_blocks)
from biolake.run import Run
from biolake.run import KernelOutput
from biolake.scan import map_lake_blocks
from biolake.stats.ld import genotype_r, haplotype_ld, ld_features, pair_counts

Progress = Callable[[str, int, int], None]
SCHEMA = RESULTS_KINDS["ld"].arrow_schema()
WITH_ORDER = SCHEMA.append(pa.field("order", pa.int64()))    # the kernel's rows: and the first variant's place
FIRST_CHUNK = 1024    # first variants per matrix product: bounds a task's pair counts (9 × chunk × slice floats)


@dataclass(frozen=True)
class Region:
    """A stretch of one chromosome, both ends included (``--region CHR:FROM-TO``)."""

    chrom: str
    start: int
    stop: int

    @staticmethod
    def parse(text: str) -> Region:
        """``CHR:FROM-TO`` (base pairs, FROM ≤ TO; commas allowed in the numbers) as a region.

        Examples
        --------
        >>> Region.parse("22:16,050,000-16,100,000")
        Region(chrom='22', start=16050000, stop=16100000)
        """
        found = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", text)
        start, stop = (int(found[k].replace(",", "")) for k in (2, 3)) if found else (1, 0)
        if not found or start > stop:
            raise BiolakeError(f"--region {text!r}: expected CHR:FROM-TO with FROM ≤ TO in base pairs, "
                               "e.g. 22:16050000-16100000")
        return Region(found[1], start, stop)


@dataclass(frozen=True, kw_only=True)
class LdSettings(Request):
    """Which pairs: the listed ``variants`` (ids) against their windows, or every pair of a ``region``
    (``CHR:FROM-TO``) within the window; ``window_kb`` (plink --ld-window-kb, both ends included),
    ``r2_min`` (plink --ld-window-r2), ``inter_chr`` (no window: plink --r2 inter-chr)."""

    variants: tuple[str, ...] | None = None
    region: str | None = None
    window_kb: float = 1000.0
    r2_min: float = 0.2
    inter_chr: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.variants is None) == (self.region is None):
            raise BiolakeError("give exactly one of --variants and --region")
        if self.variants is not None and not self.variants:
            raise BiolakeError("--variants lists no variant id")
        if self.region is not None:
            Region.parse(self.region)
        if not self.window_kb > 0:
            raise BiolakeError(f"--window-kb must be positive (plink --ld-window-kb), got {self.window_kb!r}")
        if not 0 <= self.r2_min <= 1:
            raise BiolakeError(f"--r2-min must lie in [0, 1], got {self.r2_min!r}")


@dataclass(frozen=True)
class LdInputs:
    """What every task needs besides its row group: the first variants and their genotypes, and the flags.
    numpy and Arrow only (the tasks may run on threads of one process)."""

    variant_id: np.ndarray     # first variants, in genome order
    chrom: np.ndarray
    pos: np.ndarray
    features: np.ndarray       # 3 × first variants × samples, from ld_features
    window_bp: int | None      # None: no window (inter-chr)
    r2_min: float
    among_first: bool          # a region: pairs of its variants only, each once (the first before the second)
    n_samples: int             # length of the stored genotype sample vector


@dataclass(frozen=True, kw_only=True)
class LdReport(Report):
    """What an LD run wrote: how many pairs, of how many first variants, from which release."""

    pairs: int
    variants: int
    release: str


def run_ld(lake: Lake, settings: LdSettings, *, scheduler: str | None = None, workers: int | None = None,
           progress: Progress | None = None) -> LdReport:
    """Pairwise LD as ``settings`` asks; commit the pairs as ``LAKE/results/NAME`` (``biolake ld --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    release = lake.resolve_release(settings.release).release
    first = first_variants(lake, settings, release)
    n_samples = genotyped_samples(lake, release=release)
    chromosomes = genotype_chromosomes(lake, release=release)
    genotypes = first_genotypes(first, chromosomes, n_samples=n_samples)
    inputs = LdInputs(genotypes.variants.column("variant_id").to_numpy(zero_copy_only=False),
                      genotypes.variants.column("chrom").to_numpy(zero_copy_only=False),
                      genotypes.variants.column("pos").to_numpy(),
                      ld_features(genotypes.dosages, genotypes.missing),
                      None if settings.inter_chr else int(settings.window_kb * 1000), settings.r2_min,
                      settings.region is not None, n_samples)
    # the second variants lie on every chromosome for listed ones without a window, else on the first ones'
    scanned = None if inputs.window_bp is None and not inputs.among_first else first["chrom"].unique().to_list()
    blocks = genotype_blocks(lake, release=release, chromosomes=scanned)
    ranks = {chromosome.chrom: rank for rank, chromosome in enumerate(chromosomes)}
    run = Run(lake, settings.name, kind=RESULTS_KINDS["ld"])
    pairs = map_lake_blocks(run, block_pairs, inputs, blocks, schema=SCHEMA, step="ld", scheduler=scheduler,
                            workers=workers, progress=progress,
                            reduce=lambda rows: (ordered := _in_plinks_order(rows, ranks), ordered.num_rows))
    record = {**provenance_header("ld", release=release),
              "settings": {key: getattr(settings, key) for key in ("variants", "region", "window_kb", "r2_min",
                                                                   "inter_chr")},
              "first_variants": len(inputs.variant_id), "pairs": pairs}
    version = run.publish(schema=SCHEMA, provenance=record, replace=settings.replace, progress=progress)
    return LdReport(name=settings.name, version=version, pairs=pairs, variants=len(inputs.variant_id),
                    release=release)


def first_variants(lake: Lake, settings: LdSettings, release: str) -> pl.DataFrame:
    """The first variants of the pairs (variant_id, chrom, pos): the listed ones, or the region's; an id the
    release lacks, or a region without variants, is an error naming the flag."""
    columns = ["variant_id", "chrom", "pos"]
    if settings.variants is not None:
        found = pl.from_arrow(lake.read("variants", release=release, columns=columns,
                                        filter=pc.field("variant_id").isin(list(settings.variants))))
        unknown = [v for v in dict.fromkeys(settings.variants) if v not in set(found["variant_id"])]
        if unknown:
            raise BiolakeError(f"--variants: release {release} has no variant {', '.join(map(repr, unknown[:5]))}"
                               f"{f' (and {len(unknown) - 5} more)' if len(unknown) > 5 else ''}")
        return found
    region = Region.parse(settings.region)
    found = pl.from_arrow(lake.read("variants", release=release, columns=columns, filter=(
        pc.field("chrom") == region.chrom) & (pc.field("pos") >= region.start) & (pc.field("pos") <= region.stop)))
    if not found.height:
        raise BiolakeError(f"--region {settings.region}: release {release} has no variant there")
    return found


def first_genotypes(first: pl.DataFrame, chromosomes: list[Chromosome], *, n_samples: int) -> GenotypeBlock:
    """The first variants decoded (all samples), in genome order: only their row groups' rows are decoded."""
    chosen = [read_chosen_variants(chromosome.blocks, set(first.filter(pl.col("chrom") == chromosome.chrom)[
        "variant_id"]), n_samples=n_samples) for chromosome in chromosomes if chromosome.chrom in first["chrom"]]
    return GenotypeBlock.concat(chosen)


def block_pairs(inputs: LdInputs, fragment: Block) -> Iterator[KernelOutput]:
    """The kernel: the pairs of the first variants with the variants of one row group, slice by slice, with
    ``order``, the first variant's place among them."""
    found = [slice_pairs(inputs, block, fragment.chrom) for block in
             read_genotype_blocks(fragment, n_samples=inputs.n_samples, dtype=np.float32)]
    yield KernelOutput(pa.concat_tables(found) if found else WITH_ORDER.empty_table())


def slice_pairs(inputs: LdInputs, block: GenotypeBlock, chrom: str) -> pa.Table:
    """The pairs of the first variants with one decoded slice's variants (``chrom``) that the window
    and ``r2_min`` keep; the product runs only over first variants and slice variants with a pair."""
    ids = block.variants.column("variant_id").to_numpy(zero_copy_only=False)
    pos = block.variants.column("pos").to_numpy()
    candidate = pair_candidates(inputs, ids, pos, chrom)          # first variants × slice variants
    firsts, seconds = np.flatnonzero(candidate.any(axis=1)), np.flatnonzero(candidate.any(axis=0))
    if not len(seconds):
        return WITH_ORDER.empty_table()
    features = ld_features(block.dosages[seconds], block.missing[seconds])
    found = []
    for start in range(0, len(firsts), FIRST_CHUNK):
        chunk = firsts[start:start + FIRST_CHUNK]
        counts = pair_counts(inputs.features[:, chunk], features)  # 3 × 3 × chunk × seconds
        r = genotype_r(counts)
        with np.errstate(invalid="ignore"):
            a, b = np.nonzero(candidate[np.ix_(chunk, seconds)] & (r * r >= inputs.r2_min))   # NaN: no pair
        r2_haplotype, dprime = haplotype_ld(counts[:, :, a, b])
        first, second = chunk[a], seconds[b]
        found.append(pa.table({
            "variant_id": inputs.variant_id[first], "chrom": inputs.chrom[first], "pos": inputs.pos[first],
            "variant_id_b": ids[second], "chrom_b": pa.array([chrom] * len(second), pa.string()),
            "pos_b": pos[second], "n": counts[2, 2, a, b].astype(np.int64), "r": r[a, b], "r2": r[a, b] ** 2,
            "r2_haplotype": np.abs(r2_haplotype), "dprime": dprime, "order": first.astype(np.int64)},
            schema=WITH_ORDER))
    return pa.concat_tables(found) if found else WITH_ORDER.empty_table()


def pair_candidates(inputs: LdInputs, ids: np.ndarray, pos: np.ndarray, chrom: str) -> np.ndarray:
    """Which (first variant, slice variant) pairs are asked for: within the window on one chromosome (any
    pair without one), and for a region, pairs of its variants with the first before the second."""
    if inputs.window_bp is None:
        candidate = np.ones((len(inputs.pos), len(pos)), bool)
    else:
        apart = np.abs(inputs.pos[:, None] - pos[None, :])
        candidate = (inputs.chrom == chrom)[:, None] & (apart <= inputs.window_bp)
    if inputs.among_first:
        place = pc.index_in(pa.array(ids, pa.string()), value_set=pa.array(inputs.variant_id, pa.string()))
        place = pc.fill_null(place, -1).to_numpy(zero_copy_only=False)
        candidate &= place[None, :] > np.arange(len(inputs.pos))[:, None]     # -1: not the region's
    return candidate


def _in_plinks_order(pairs: pa.Table, ranks: dict[str, int]) -> pa.Table:
    """The reduce: the pairs as plink lists them (by first variant, then the second in genome order)."""
    frame = pl.from_arrow(pairs).with_columns(rank=pl.col("chrom_b").replace_strict(ranks, return_dtype=pl.Int64))
    return frame.sort(["order", "rank", "pos_b"], maintain_order=True).select(SCHEMA.names).to_arrow().cast(SCHEMA)
