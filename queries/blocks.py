"""Genotype and methylation blocks of a release, as the association engines take them.

A block is one Parquet row group of the ``genotypes`` or ``methylation`` table (ingest
sizes them at ~16 MB of sample vectors), listed from the Delta log, never from a
directory. A :class:`Block` names (lake root, file, row group) and no credentials, so it
can travel in a dask task graph: the worker reads the bytes itself, with credentials
from its own environment, and they go straight to the worker that decodes them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import scipy.sparse

from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.storage import Location
from biolake.lake.vectors import (Missing, Rows, byte_matrix, decode_calls_filled, decode_dosages_filled,
                                  sample_columns, zero_filled)
from biolake.queries.variants import VariantChoice, VariantList, chosen_variants


SLICE_BYTES = 32 << 20   # dosages decoded at once by a task: its memory stays bounded whatever the row group


@dataclass(frozen=True)
class GenotypeBlock:
    """Some variants and their alt dosages for the analysis samples.

    ``dosages`` is variants × samples with 0 at missing calls, ``missing`` marks those
    (variants × samples, sparse): the form :func:`stats.linear_association` takes.
    """

    variants: pa.Table          # variant_id, chrom, pos, ref, alt: one row per variant
    dosages: np.ndarray         # variants × samples
    missing: scipy.sparse.csr_array

    def common(self, min_maf: float) -> GenotypeBlock:
        """The variants whose minor allele frequency over the called samples is at least ``min_maf``
        (what ``plink2 --maf`` keeps)."""
        called = self.dosages.shape[1] - np.diff(self.missing.indptr)
        with np.errstate(invalid="ignore", divide="ignore"):
            alt_freq = self.dosages.sum(axis=1, dtype=np.float64) / (2.0 * called)
        keep = np.flatnonzero(np.minimum(alt_freq, 1.0 - alt_freq) >= min_maf)
        return self if len(keep) == len(alt_freq) else self.take(keep)

    def halved(self, samples: np.ndarray) -> GenotypeBlock:
        """This block with the dosages of ``samples`` (a mask over its columns) halved: one copy of the
        chromosome, coded 0/1 (plink2 --xchr-model 1 for males on X)."""
        dosages = self.dosages.copy()
        dosages[:, samples] *= 0.5
        return GenotypeBlock(self.variants, dosages, self.missing)

    def take(self, rows: np.ndarray) -> GenotypeBlock:
        """The variants at positions ``rows`` of this block."""
        return GenotypeBlock(self.variants.take(rows), self.dosages[rows], self.missing[rows])

    @staticmethod
    def concat(blocks: Sequence[GenotypeBlock]) -> GenotypeBlock:
        """One block of the variants of ``blocks`` (at least one, all of the same samples), in their order."""
        if len(blocks) == 1:
            return blocks[0]
        return GenotypeBlock(pa.concat_tables([block.variants for block in blocks]),
                             np.concatenate([block.dosages for block in blocks]),
                             scipy.sparse.csr_array(scipy.sparse.vstack([block.missing for block in blocks])))


@dataclass(frozen=True)
class MethylationBlock:
    """Some CpGs and their values (M-values or betas) for the analysis samples.

    ``values`` is CpGs × samples with 0 where missing, ``missing`` marks those.
    """

    cpgs: pa.Table              # cpg_id, chrom, pos: one row per CpG
    values: np.ndarray          # CpGs × samples
    missing: scipy.sparse.csr_array


@dataclass(frozen=True)
class Block:
    """One row group of a table's file: what a task needs to read it, and no secret."""

    location: Location    # the lake's root and its non-secret storage options
    table_uri: str
    path: str             # the file, relative to the table
    row_group: int
    chrom: str            # its partition
    chosen: np.ndarray | None = field(default=None, compare=False)   # its variant_index values to read (None: all)

    def read(self, columns: list[str]) -> pa.Table:
        filesystem = self.location.arrow_filesystem(self.table_uri)
        fragment = ds.ParquetFileFormat().make_fragment(self.path, filesystem=filesystem, row_groups=[self.row_group])
        return fragment.to_table(columns=columns)


def genotype_blocks(lake: Lake, *, release: str | None = None, chromosomes: Sequence[str] | None = None,
                    choice: VariantChoice | None = None) -> list[Block]:
    """The release's genotype row groups, one block each, in variant order. With a ``choice`` of variants,
    only the row groups holding one of them, each block naming its chosen variants (read alone).

    Examples
    --------
    >>> from biolake.lake.chromosomes import genomic_range
    >>> blocks = genotype_blocks(Lake.open("lake"), chromosomes=["22"])
    >>> first = next(read_genotype_blocks(blocks[0], n_samples=500))
    >>> first.dosages.shape   # variants × samples
    (36, 500)
    >>> region = VariantChoice(regions=(genomic_range("22:1-38940000"),))
    >>> [len(block.chosen) for block in genotype_blocks(Lake.open("lake"), choice=region)]
    [4]
    """
    if not choice:
        return _row_groups(lake, "genotypes", "variant_index", release=release, chromosomes=chromosomes)
    return _row_groups(lake, "genotypes", "variant_index", release=release, chromosomes=chromosomes,
                       chosen=chosen_variants(lake, choice, release=release, chromosomes=chromosomes))


@dataclass(frozen=True)
class Chromosome:
    """One chromosome's genotype row groups, in variant order: the unit of work whose windows cross
    row groups (LD clumping)."""

    chrom: str
    blocks: tuple[Block, ...]


def genotype_chromosomes(lake: Lake, *, release: str | None = None, chromosomes: Sequence[str] | None = None,
                         variant_ids: Sequence[str] | None = None) -> list[Chromosome]:
    """The release's genotype row groups grouped by chromosome, in genome order. With ``variant_ids``, only the row
    groups holding one of those variants, each block naming its own (LD clumping's candidates: a GWAS's few loci
    read, not its genome); ids the release lacks are passed over.

    Examples
    --------
    >>> [(c.chrom, len(c.blocks)) for c in genotype_chromosomes(Lake.open("lake"), chromosomes=["21", "22"])]
    [('21', 1), ('22', 1)]
    >>> [(c.chrom, len(c.blocks[0].chosen)) for c in genotype_chromosomes(Lake.open("lake"), variant_ids=["rs20640"])]
    [('22', 1)]
    """
    if variant_ids is None:
        blocks = genotype_blocks(lake, release=release, chromosomes=chromosomes)
    else:
        variants = lake.read("variants", release=release, columns=["variant_index", "variant_id", "chrom"])
        listed = pc.is_in(variants.column("variant_id"), value_set=pa.array(list(variant_ids), pa.string()))
        if chromosomes is not None:
            on = pc.is_in(variants.column("chrom"), value_set=pa.array(list(chromosomes), pa.string()))
            listed = pc.and_(listed, on)
        chosen = np.sort(variants.column("variant_index").filter(listed).to_numpy())
        blocks = _row_groups(lake, "genotypes", "variant_index", release=release, chromosomes=chromosomes,
                             chosen=chosen)
    grouped: dict[str, list[Block]] = {}
    for block in blocks:
        grouped.setdefault(block.chrom, []).append(block)
    return [Chromosome(chrom, tuple(blocks)) for chrom, blocks in grouped.items()]


def genotyped_samples(lake: Lake, *, release: str) -> int:
    """How many samples the release's genotype vectors hold (their length).

    Examples
    --------
    >>> genotyped_samples(Lake.open("lake"), release="r1")
    500
    """
    return lake.read("samples", release=release, columns=["assay"]).column(0).to_pylist().count("genotypes")


def methylation_blocks(lake: Lake, *, release: str | None = None,
                       chromosomes: Sequence[str] | None = None) -> list[Block]:
    """The release's methylation row groups, one block each, in CpG order."""
    return _row_groups(lake, "methylation", "cpg_index", release=release, chromosomes=chromosomes)


def _row_groups(lake: Lake, table: str, order: str, *, release: str | None,
                chromosomes: Sequence[str] | None, chosen: np.ndarray | None = None) -> list[Block]:
    """The table's row groups in ``order``; with ``chosen`` (ascending values of ``order``), only those whose
    range of it (the row group's statistics: no byte of data read) holds one of them, each naming its own."""
    dataset = lake.dataset(table, release=release)
    on = None if chromosomes is None else pc.field("chrom").isin(pa.array(list(chromosomes), pa.string()))
    location, uri = lake.location.public(), lake.table_uri(table)
    blocks = []
    for fragment in dataset.get_fragments(filter=on):
        chrom = ds.get_partition_keys(fragment.partition_expression)["chrom"]  # not in the file itself
        for piece in fragment.split_by_row_group():
            group = piece.row_groups[0]
            first, last = group.statistics[order]["min"], group.statistics[order]["max"]
            mine = None
            if chosen is not None:
                mine = chosen[np.searchsorted(chosen, first):np.searchsorted(chosen, last, side="right")]
                if not len(mine):
                    continue
            whole = mine is None or len(mine) == group.num_rows == last - first + 1   # every row of the group chosen
            blocks.append((first, Block(location, uri, piece.path, group.id, chrom, None if whole else mine)))
    return [block for _, block in sorted(blocks, key=lambda pair: pair[0])]


def read_genotype_blocks(block: Block, *, n_samples: int, samples: np.ndarray | None = None,
                         dtype: type = np.float64, max_bytes: int = SLICE_BYTES,
                         variant_ids: pa.Array | None = None) -> Iterator[GenotypeBlock]:
    """Read one block and decode it in slices of at most ``max_bytes`` of dosages each.

    ``samples`` are the positions of the analysis samples in the stored sample vector
    (None: all, in order). Slicing keeps the decoded floats near the CPU caches and the
    worker's memory bounded, whatever the row-group size. With ``variant_ids``, only those
    variants are decoded.
    """
    table = block.read(["variant_index", "variant_id", "pos", "ref", "alt", "calls", "dosage"])
    if block.chosen is not None:
        table = table.filter(pc.is_in(table.column("variant_index"), value_set=pa.array(block.chosen)))
    if variant_ids is not None:
        table = table.filter(pc.is_in(table.column("variant_id"), value_set=variant_ids))
    chrom = block.chrom
    width = n_samples if samples is None else len(samples)
    step = max(1, max_bytes // (width * np.dtype(_decoded_dtype(table, dtype)).itemsize))
    for start in range(0, table.num_rows, step):
        rows = table.slice(start, step)
        values, missing = _decode(rows, n_samples=n_samples, samples=samples, dtype=dtype)
        variants = rows.select(["variant_id", "pos", "ref", "alt"])
        variants = variants.add_column(1, "chrom", pa.array([chrom] * rows.num_rows, pa.string()))
        yield GenotypeBlock(variants, values, _marks(missing, values.shape))


def read_chosen_variants(blocks: Sequence[Block], variant_ids: set[str], *, n_samples: int,
                         dtype: type = np.float32) -> GenotypeBlock:
    """The variants ``variant_ids`` of ``blocks`` (a chromosome's, say) decoded as one block of all the
    samples, in order of position (then as stored). An id naming two of their variants is an error:
    results find their genotypes by id.
    """
    chosen = pa.array(list(variant_ids), pa.string())
    found = [block for fragment in blocks
             for block in read_genotype_blocks(fragment, n_samples=n_samples, dtype=dtype, variant_ids=chosen)]
    variants = pa.concat_tables([block.variants for block in found]) if found else None
    if variants is None or not variants.num_rows:
        return GenotypeBlock(pa.table({"variant_id": pa.array([], pa.string()), "pos": pa.array([], pa.int64())}),
                             np.zeros((0, n_samples), dtype), scipy.sparse.csr_array((0, n_samples)))
    counts = pc.value_counts(variants.column("variant_id"))
    repeated = pc.filter(counts.field("values"), pc.greater(counts.field("counts"), 1))
    if len(repeated):
        raise BiolakeError(f"variant id {repeated[0].as_py()!r} names several variants of chromosome "
                           f"{variants.column('chrom')[0].as_py()}; results find their genotypes by id")
    order = np.lexsort((np.arange(variants.num_rows), variants.column("pos").to_numpy()))
    return GenotypeBlock.concat(found).take(order)


def listed_dosages(lake: Lake, variant_ids: Sequence[str], *, release: str, n_samples: int, samples: np.ndarray,
                   flag: str) -> tuple[pa.Table, np.ndarray]:
    """The variants ``variant_ids`` of ``release`` (variant_id, chrom, pos, ref, alt) and their alt dosages over the
    samples at ``samples`` of its ``n_samples``-long sample vector (variants × samples, NaN where uncalled), in
    genome order; only the row groups holding them are read. An id the release lacks is a warning naming ``flag``
    (as --extract's), a list of none of its variants an error.
    """
    choice = VariantChoice(extract=VariantList(flag, "its SQL", {v: k + 1 for k, v in enumerate(variant_ids)}))
    joined = GenotypeBlock.concat([block for fragment in genotype_blocks(lake, release=release, choice=choice)
                                   for block in read_genotype_blocks(fragment, n_samples=n_samples, samples=samples,
                                                                     dtype=np.float64)])
    dosages = np.where(joined.missing.toarray().astype(bool), np.nan, joined.dosages)
    return joined.variants.select(["variant_id", "chrom", "pos", "ref", "alt"]), dosages


def read_methylation_blocks(block: Block, *, n_samples: int, samples: np.ndarray | None = None,
                            values: str = "m", max_bytes: int = 8 << 20) -> Iterator[MethylationBlock]:
    """Read one methylation block and decode it in slices: M-values (log2 β/(1−β), the default)
    or betas; a missing beta, or a beta of exactly 0 or 1 (infinite M-value), is missing.
    Slices are smaller than genotype ones: float work per value is heavier here."""
    table = block.read(["cpg_id", "pos", "beta"])
    chrom = block.chrom
    width = n_samples if samples is None else len(samples)
    step = max(1, max_bytes // (width * 8))
    for start in range(0, table.num_rows, step):
        rows = table.slice(start, step)
        chosen, missing = decode_betas_filled(rows.column("beta"), n_samples, samples=samples, m_values=values == "m")
        cpgs = rows.select(["cpg_id", "pos"]).add_column(1, "chrom", pa.array([chrom] * rows.num_rows, pa.string()))
        yield MethylationBlock(cpgs, chosen, _marks(missing, chosen.shape))


def decode_betas_filled(rows: Rows, n_samples: int, *, samples: np.ndarray | None = None,
                        m_values: bool = False) -> tuple[np.ndarray, Missing]:
    """float32 beta rows → betas, or M-values log2(β/(1−β)), as float64 with 0 where missing,
    and the missing coordinates (as :func:`biolake.lake.vectors.decode_calls_filled`). A missing beta, or a beta
    of exactly 0 or 1 when M-values are asked for (an infinite M-value), is missing.

    Examples
    --------
    >>> from biolake.lake.vectors import encode_floats
    >>> values, missing = decode_betas_filled(encode_floats(np.array([[0.5, np.nan, 0.8]])), 3, m_values=True)
    >>> values.round(3).tolist(), [m.tolist() for m in missing]
    ([[0.0, 0.0, 2.0]], [[0], [1]])
    """
    betas = byte_matrix(rows, 4 * n_samples).view("<f4")
    columns = sample_columns(n_samples, samples)
    values, lost = np.empty((len(betas), len(columns))), np.empty(len(betas), np.int64)
    _decode_betas_kernel(betas, columns, m_values, values, lost)
    return zero_filled(values, lost)


@numba.njit(cache=True, nogil=True, error_model="numpy")   # β = 1 divides by zero: inf, as numpy, then missing
def _decode_betas_kernel(betas, columns, m_values, values, lost):  # pragma: no cover
    """values[v, j] = betas[v, columns[j]] or its M-value (NaN when not finite); lost[v] counts those."""
    for v in range(values.shape[0]):
        count = 0
        for j in range(columns.shape[0]):
            value = np.float64(betas[v, columns[j]])
            if m_values:
                value = np.log2(value / (1.0 - value))
            if not np.isfinite(value):
                value = np.nan
                count += 1
            values[v, j] = value
        lost[v] = count


def _marks(missing: tuple[np.ndarray, np.ndarray], shape: tuple[int, int]) -> scipy.sparse.csr_array:
    """Missing (row, column) coordinates as the sparse matrix the kernels take (rows in order)."""
    rows, cols = missing
    indptr = np.zeros(shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return scipy.sparse.csr_array((np.ones(len(cols)), cols, indptr), shape=shape)


def _decoded_dtype(table: pa.Table, dtype: type) -> type:
    """What rows decode to when ``dtype`` is asked: float64 where any row holds dosages (float32 sums, and integer
    counts, are exact only for whole-number hard calls)."""
    return np.float64 if table.column("calls").null_count else dtype


def _decode(table: pa.Table, *, n_samples: int, samples: np.ndarray | None,
            dtype: type) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """Hard calls or dosages (either per row) → zero-filled values and missing coordinates."""
    has_calls = table.column("calls").is_valid().to_numpy(zero_copy_only=False)
    width = n_samples if samples is None else len(samples)
    dtype = _decoded_dtype(table, dtype)
    values, rows, cols = None, [], []
    for kind, decode in (("calls", decode_calls_filled), ("dosage", decode_dosages_filled)):
        chosen = has_calls if kind == "calls" else ~has_calls
        if not chosen.any():
            continue
        part, (part_rows, part_cols) = decode(table.column(kind).filter(pa.array(chosen)), n_samples,
                                              dtype=dtype, samples=samples)
        if chosen.all():
            values = part
        else:  # a block mixing hard calls and dosages (e.g. a VCF with DS at some sites only)
            values = np.empty((table.num_rows, width), dtype) if values is None else values
            values[chosen] = part
        rows.append(np.flatnonzero(chosen)[part_rows])
        cols.append(part_cols)
    assert values is not None, "an empty genotype block"
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    order = np.argsort(rows, kind="stable")    # row order (the parts interleave in a mixed block)
    return values, (rows[order], cols[order])
