"""Which variants a job reads: by region, by a list of ids or ranges (--region, --extract, --exclude).

A :class:`VariantChoice` is resolved against the release's ``variants`` table (positions and ids, no
genotype) into the ``variant_index`` values it keeps; :func:`biolake.queries.blocks.genotype_blocks`
then reads only the row groups whose statistics hold one of them.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.lake.chromosomes import GenomicRange
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.design import list_record


@dataclass(frozen=True)
class VariantList:
    """Variants a job reads only (``--extract FILE``) or leaves out (``--exclude FILE``): ids and ranges, each with
    the line of the file it is on (:func:`biolake.ingest.variant_lists.read_variant_list` reads them)."""

    flag: str                                          # "--extract" or "--exclude"
    path: str
    ids: Mapping[str, int]                             # variant id → its line
    ranges: tuple[tuple[GenomicRange, int], ...] = ()  # (range, its line)

    def listed(self, variants: pa.Table) -> np.ndarray:
        """Which of ``variants`` (columns variant_id, chrom, pos) the list names, by id or by range."""
        by_id = pc.is_in(variants.column("variant_id"), value_set=pa.array(list(self.ids), pa.string()))
        return by_id.to_numpy(zero_copy_only=False) | in_ranges(variants, [found for found, _ in self.ranges])

    def record(self) -> dict[str, object]:
        """What a results table's provenance keeps of the list (:func:`biolake.queries.design.list_record`)."""
        return list_record(self.path, [*self.ids, *(str(found) for found, _ in self.ranges)], ids=len(self.ids),
                           ranges=len(self.ranges))


@dataclass(frozen=True)
class VariantChoice:
    """Which of its chromosomes' variants a job reads: those in any of ``regions`` (none given: anywhere), listed by
    ``extract``, and not listed by ``exclude`` (plink2's --from-bp/--to-bp, --extract and --exclude)."""

    regions: tuple[GenomicRange, ...] = ()
    extract: VariantList | None = None
    exclude: VariantList | None = None

    def __bool__(self) -> bool:
        return bool(self.regions) or self.extract is not None or self.exclude is not None

    def chosen(self, variants: pa.Table) -> np.ndarray:
        """Which of ``variants`` (columns variant_id, chrom, pos) the choice keeps."""
        kept = in_ranges(variants, self.regions) if self.regions else np.ones(variants.num_rows, bool)
        if self.extract is not None:
            kept &= self.extract.listed(variants)
        if self.exclude is not None:
            kept &= ~self.exclude.listed(variants)
        return kept

    def describe(self) -> str:
        """The flags that made the choice, as a user gave them."""
        return ", ".join([*(f"--region {region}" for region in self.regions),
                          *(f"{listed.flag} {listed.path}" for listed in (self.extract, self.exclude) if listed)])


def in_ranges(variants: pa.Table, ranges: Sequence[GenomicRange]) -> np.ndarray:
    """Which of ``variants`` (columns chrom, pos) fall in any of ``ranges`` (1-based, inclusive): per chromosome
    the ranges merged and sorted, each position found by binary search (a BED file of thousands of exons costs
    no more than one range).

    Examples
    --------
    >>> from biolake.lake.chromosomes import genomic_range
    >>> variants = pa.table({"chrom": ["1", "1", "1", "2"], "pos": [5, 10, 30, 10]})
    >>> in_ranges(variants, [genomic_range("1:1-5"), genomic_range("1:4-12")]).tolist()
    [True, True, False, False]
    """
    chrom = variants.column("chrom").to_numpy(zero_copy_only=False)
    pos = variants.column("pos").to_numpy(zero_copy_only=False)
    inside = np.zeros(len(pos), bool)
    for name in {found.chrom for found in ranges}:
        spans = sorted((found.start, found.end) for found in ranges if found.chrom == name)
        merged = [list(spans[0])]
        for start, end in spans[1:]:
            if start <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        starts, ends = np.array(merged).T
        on = np.flatnonzero(chrom == name)
        span = np.searchsorted(starts, pos[on], side="right") - 1
        inside[on] = (span >= 0) & (pos[on] <= ends[np.maximum(span, 0)])
    return inside


def chosen_variants(lake: Lake, choice: VariantChoice, *, release: str | None = None,
                    chromosomes: Sequence[str] | None = None) -> np.ndarray:
    """The ``variant_index`` of the release's variants (on ``chromosomes``) that ``choice`` keeps, ascending; read
    from the ``variants`` table, without a genotype. An --extract id the release lacks is a warning (plink2 ignores
    it); a choice that keeps no variant is an error naming its flags."""
    variants = lake.read("variants", release=release, columns=["variant_index", "variant_id", "chrom", "pos"])
    if chromosomes is not None:
        variants = variants.filter(pc.is_in(variants.column("chrom"), value_set=pa.array(list(chromosomes))))
    if choice.extract is not None and choice.extract.ids:
        listed = pa.array(list(choice.extract.ids), pa.string())
        unknown = listed.filter(pc.invert(pc.is_in(listed, value_set=variants.column("variant_id")))).to_pylist()
        if unknown:
            warnings.warn(f"--extract {choice.extract.path}: {len(unknown):,} of its {len(choice.extract.ids):,} ids "
                          f"are not variants of the release{' on the chosen chromosomes' if chromosomes else ''}, "
                          f"e.g. {unknown[0]!r} (line {choice.extract.ids[unknown[0]]})", UserWarning, stacklevel=3)
    kept = variants.column("variant_index").to_numpy()[choice.chosen(variants)]
    if not len(kept):
        raise BiolakeError(f"no variant{' on chromosomes ' + ', '.join(chromosomes) if chromosomes else ''} is chosen "
                           f"by {choice.describe()}")
    return np.sort(kept)
