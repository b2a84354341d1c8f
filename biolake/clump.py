"""The LD clumping job (draft): a GWAS or meta-analysis results table → ``plink1.9 --clump``'s clumps.

Each phenotype is clumped per chromosome against the genotypes of the release, with all its
genotyped samples (plink's ``--bfile`` of the release; every sample counts as a founder).
Only the variants within ``kb`` of an index candidate (p ≤ ``p1``) are read and decoded:
plink's TOTAL and NSIG count every variant in LD with the index, whatever its p, so the
window's variants are all needed, and none beyond it. p = 10^−log10p.

The table returned has one row per clump, ordered by phenotype, then as plink orders its
``.clumped`` report (by p, ties in genome order). Its columns are plink's, in the lake's
names where the lake has one:

============  ==========  ===========================================================
column        plink       meaning
============  ==========  ===========================================================
phenotype     —           the scan clumped
chrom         CHR         chromosome of the index variant
pos           BP          its position
variant_id    SNP         the index variant (joins the results on phenotype, variant_id)
p             P           its p-value (plink prints 3 digits; this is the full value)
total         TOTAL       variants in the clump besides the index (any p)
nsig          NSIG        … of them with p ≥ 0.05
s05           S05         … with 0.01 ≤ p < 0.05
s01           S01         … with 0.001 ≤ p < 0.01
s001          S001        … with 1e-4 ≤ p < 0.001
s0001         S0001       … with p < 1e-4
sp2           SP2         the ids of those with p < ``p2``, in genome order (list)
============  ==========  ===========================================================

plink's F column (which ``--clump`` file) is always 1 here and left out.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import Block, genotype_blocks, read_genotype_blocks
from biolake.stats.ld import BIN_NAMES, WindowLd, bp_radius, clump, ld_features

CLUMPABLE_KINDS = ("gwas", "meta")
RESULT_COLUMNS = ["phenotype", "variant_id", "chrom", "pos", "log10p"]
CLUMPS_SCHEMA = pa.schema([("phenotype", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()),
                           ("variant_id", pa.string()), ("p", pa.float64()), ("total", pa.int64()),
                           *[(name, pa.int64()) for name in BIN_NAMES], ("sp2", pa.list_(pa.string()))])


@dataclass(frozen=True)
class ClumpSettings:
    """plink1.9 --clump's flags and defaults: --clump-p1, --clump-p2, --clump-r2, --clump-kb."""

    p1: float = 1e-4
    p2: float = 1e-2
    r2: float = 0.5
    kb: float = 250.0

    def __post_init__(self) -> None:
        for flag, value in (("p1", self.p1), ("p2", self.p2)):
            if not 0 < value <= 1:
                raise BiolakeError(f"--{flag} must lie in (0, 1], got {value!r}")
        if self.p1 > self.p2:
            raise BiolakeError(f"--p1 ({self.p1!r}) must not exceed --p2 ({self.p2!r}): index variants are "
                               "the strongest of the clumped ones")
        if not 0 <= self.r2 < 1:
            raise BiolakeError(f"--r2 must lie in [0, 1), got {self.r2!r}")
        if not self.kb >= 0.001:
            raise BiolakeError(f"--kb must be at least 0.001 (1 bp), got {self.kb!r}")


def clump_results(lake: Lake, *, result: str, release: str | None = None,
                  phenotypes: list[str] | None = None, settings: ClumpSettings = ClumpSettings()) -> pa.Table:
    """The LD clumps of every phenotype (or those listed) of the results ``result``, as ``plink1.9 --clump``.

    ``release`` holds the genotypes giving LD (default: the one the results were computed from).

    Examples
    --------
    >>> clumps = clump_results(Lake.open("/tmp/lake"), result="idps")      # doctest: +SKIP
    >>> clumps.column_names[:5]                                            # doctest: +SKIP
    ['phenotype', 'chrom', 'pos', 'variant_id', 'p']
    """
    info = lake.results_info(result)
    if info.kind not in CLUMPABLE_KINDS:
        raise BiolakeError(f"results {result!r} are of kind {info.kind!r}; clumping takes {', '.join(CLUMPABLE_KINDS)}")
    chosen = lake.resolve_release(release or info.release).release
    rows = _windowed_rows(lake, result, phenotypes, settings)
    n_samples = lake.read("samples", release=chosen, columns=["assay"]).column(0).to_pylist().count("genotypes")
    blocks_by_chrom: dict[str, list[Block]] = {}
    for block in genotype_blocks(lake, release=chosen, chromosomes=rows["chrom"].unique().to_list()):
        blocks_by_chrom.setdefault(block.chrom, []).append(block)    # in genome order
    parts, seen = [], 0
    for chrom, blocks in blocks_by_chrom.items():
        on_chrom = rows.filter(pl.col("chrom") == chrom)
        variants, features = _genotypes(blocks, set(on_chrom["variant_id"].to_list()), n_samples, release=chosen)
        parts.extend(part.with_columns(pl.col("order") + seen)    # genome order across chromosomes
                     for part in _clump_chromosome(on_chrom, variants, features, settings=settings))
        seen += variants.height
    if not parts:
        return CLUMPS_SCHEMA.empty_table()
    clumps = pl.concat(parts).sort(["phenotype", "p", "order"], maintain_order=True).drop("order")
    return clumps.to_arrow().cast(CLUMPS_SCHEMA)


def _windowed_rows(lake: Lake, result: str, phenotypes: list[str] | None, settings: ClumpSettings) -> pl.DataFrame:
    """The results' rows (with p) within ``kb`` of an index candidate of their phenotype and chromosome."""
    dataset = lake.results_dataset(result)
    absent = [c for c in RESULT_COLUMNS if c not in dataset.schema.names]
    if absent:
        raise BiolakeError(f"results {result!r} lack column(s) {', '.join(absent)}; clumping needs variant positions")
    chosen = None if phenotypes is None else pc.field("phenotype").isin(phenotypes)
    rows = pl.from_arrow(dataset.to_table(columns=RESULT_COLUMNS, filter=chosen))
    rows = rows.filter(pl.col("log10p").is_not_null() & pl.col("log10p").is_finite() & pl.col("pos").is_not_null())
    rows = rows.with_columns(p=10.0 ** -pl.col("log10p")).drop("log10p")
    radius = bp_radius(settings.kb)
    kept = []
    for _, scan in rows.group_by("phenotype", "chrom", maintain_order=True):
        centres = np.sort(scan.filter(pl.col("p") <= settings.p1)["pos"].to_numpy())
        if len(centres):
            pos = scan["pos"].to_numpy()
            first = np.minimum(np.searchsorted(centres, pos - radius), len(centres) - 1)   # first centre ≥ pos − radius
            kept.append(scan.filter(pl.Series(np.abs(centres[first] - pos) <= radius)))
    return pl.concat(kept) if kept else rows.clear()


def _genotypes(blocks: list[Block], wanted: set[str], n_samples: int, *,
               release: str) -> tuple[pl.DataFrame, np.ndarray]:
    """The ``wanted`` variants of one chromosome's ``blocks`` in genome order (variant_id, pos, order)
    and their LD features (3 × variants × samples)."""
    found, features = [], [np.zeros((3, 0, n_samples), np.float32)]
    for block in blocks:
        for decoded in read_genotype_blocks(block, n_samples=n_samples, dtype=np.float32):
            ids = decoded.variants.column("variant_id").to_pylist()
            keep = np.array([i for i, v in enumerate(ids) if v in wanted], dtype=np.intp)
            if len(keep):
                found.append(pl.from_arrow(decoded.variants.take(keep).select(["variant_id", "pos"])))
                features.append(ld_features(decoded.dosages[keep], decoded.missing[keep]))
    variants = pl.concat(found) if found else pl.DataFrame(schema={"variant_id": pl.String, "pos": pl.Int64})
    repeated = variants.filter(pl.col("variant_id").is_duplicated())
    if repeated.height:
        raise BiolakeError(f"variant id {repeated['variant_id'][0]!r} names several variants of release "
                           f"{release!r}; results are matched to genotypes by id")
    return variants.with_row_index("order"), np.concatenate(features, axis=1)


def _clump_chromosome(rows: pl.DataFrame, variants: pl.DataFrame, features: np.ndarray, *,
                      settings: ClumpSettings) -> list[pl.DataFrame]:
    """Each phenotype's clumps on one chromosome, as frames of the output's columns plus ``order``;
    the phenotypes share the r² rows of their common index variants."""
    variants = variants.sort("pos", "order")
    ld = WindowLd(features[:, variants["order"].to_numpy()], variants["pos"].to_numpy(), kb=settings.kb)
    ids = variants["variant_id"].to_numpy()
    parts = []
    for (phenotype,), scan in rows.group_by("phenotype", maintain_order=True):
        p = variants.join(scan.select("variant_id", "p"), on="variant_id", how="left", maintain_order="left")["p"]
        found = clump(ld, p.fill_null(np.nan).to_numpy(), p1=settings.p1, p2=settings.p2, r2=settings.r2)
        if len(found.index):
            index = variants[found.index.tolist()]
            parts.append(index.select(pl.lit(phenotype).alias("phenotype"), pl.lit(scan["chrom"][0]).alias("chrom"),
                                      "pos", "variant_id", p.gather(found.index).alias("p")).with_columns(
                total=pl.Series(found.bins.sum(axis=1)),
                **{name: pl.Series(found.bins[:, k]) for k, name in enumerate(BIN_NAMES)},
                sp2=pl.Series([ids[members].tolist() for members in found.members], dtype=pl.List(pl.String)),
                order=index["order"]))
    return parts
