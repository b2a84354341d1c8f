"""The reads of one tested pair (a results kind whose rows each test two features, e.g. SNP × SNP): its results row,
and its two variants' genotypes over a design's samples. Nothing here writes.

A pair's row is found as the browse index places it: by its scan, the feature whose chromosome and position place
the row (pruning the table's chromosome partitions and, by their statistics, row groups) and the pair's other
feature, whose column the kind's ``pair`` role names.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from biolake.lake.chromosomes import GenomicRange
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import ResultsKind
from biolake.queries.blocks import genotype_blocks, read_chosen_variants
from biolake.queries.design import Design
from biolake.queries.variants import VariantChoice

Place = tuple[str, str, int]   # a variant's id, chromosome and position


def pair_row(lake: Lake, name: str, kind: ResultsKind, *, phenotype: str, exposure: str | None, other: str,
             feature: str, place: tuple[str, int]) -> dict[str, Any] | None:
    """The row of the results ``name`` (of ``kind``, which has a ``pair`` role) testing ``other`` (the pair's other
    feature) with ``feature`` at ``place`` (chromosome, position) in the scan ``phenotype`` (and ``exposure``, for a
    kind with one), or None where the table holds no such row."""
    chrom, pos = kind.position
    wanted = ((ds.field(kind.phenotype) == phenotype) & (ds.field(chrom) == place[0]) & (ds.field(pos) == place[1])
              & (ds.field(kind.feature) == feature) & (ds.field(kind.pair[0]) == other))
    if kind.extra_group:
        wanted &= ds.field(kind.extra_group[0]) == exposure
    rows = lake.results_dataset(name).to_table(filter=wanted)
    return rows.slice(0, 1).to_pylist()[0] if rows.num_rows else None


def pair_genotypes(lake: Lake, places: Sequence[Place], chosen: Design) -> tuple[pa.Table, np.ndarray]:
    """The variants at ``places`` in the release of the design ``chosen``: their rows (variant_id, chrom, pos, ref,
    alt) and alt dosages over its samples (variants × samples, NaN where uncalled), in the order of ``places``; a
    place the release holds no such variant at is a BiolakeError naming it.

    Examples
    --------
    >>> from biolake.queries import connect
    >>> from biolake.queries.design import design
    >>> lake = Lake.open("lake")
    >>> with connect(lake) as con:
    ...     chosen = design(con, phenotypes=["25010-2.0"], covariates=["age"])
    ...     places = con.sql("SELECT variant_id, chrom, pos FROM variants ORDER BY pos DESC LIMIT 2").fetchall()
    >>> variants, dosages = pair_genotypes(lake, places, chosen)
    >>> variants.column("variant_id").to_pylist() == [variant for variant, _, _ in places]
    True
    >>> dosages.shape == (2, len(chosen.participant_ids)), set(np.unique(dosages[~np.isnan(dosages)])) <= {0, 1, 2}
    (True, True)
    """
    ids = [variant for variant, _, _ in places]
    held = lake.read("variants", release=chosen.release, columns=["variant_id", "chrom", "pos"],
                     filter=pc.field("variant_id").isin(ids)).to_pydict()
    missing = [place for place in places if place not in set(zip(held["variant_id"], held["chrom"], held["pos"]))]
    if missing:
        variant, chrom, pos = missing[0]
        raise BiolakeError(f"release {chosen.release!r} holds no variant {variant!r} at {chrom}:{pos}")
    choice = VariantChoice(regions=tuple(GenomicRange(chrom, pos, pos) for _, chrom, pos in places))
    blocks = genotype_blocks(lake, release=chosen.release, chromosomes=sorted({chrom for _, chrom, _ in places}),
                             choice=choice)
    found = read_chosen_variants(blocks, set(ids), n_samples=chosen.vector_length, dtype=np.float64)
    order = [found.variants.column("variant_id").to_pylist().index(variant) for variant in ids]
    found = found.take(np.array(order, np.intp))
    dosages = np.where(found.missing.toarray().astype(bool), np.nan, found.dosages)[:, chosen.sample_index]
    return found.variants.select(["variant_id", "chrom", "pos", "ref", "alt"]), dosages
