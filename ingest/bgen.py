"""BGEN v1.2 (with its .sample file) → the genotype tables, read with cbgen.

Probabilities become alt dosages, stored as dosages. The first allele is ALT and the
last is REF, so ``dosage = 2·P(first/first) + P(het)``: the order plink2 writes
(``--export bgen-1.2`` puts REF second, as PLINK 1.9 does) and reads back with
``--bgen FILE ref-last``, checked in tests/test_formats.py. Files written ``ref-first``
(raw UK Biobank imputation) count the other allele: convert them with ``plink2 --bgen
FILE ref-first --export bgen-1.2`` first. Only biallelic, diploid variants are supported.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import cbgen
import numpy as np
import polars as pl
import pyarrow as pa

from biolake.ingest.genotypes import Progress, genotype_batch
from biolake.ingest.plink import SEX_CODES
from biolake.ingest.text import check_unique, read_text_table
from biolake.lake.chromosomes import chromosome
from biolake.lake.errors import InputError


@dataclass(frozen=True)
class BgenFile:
    """A checked BGEN file: samples from its .sample file, variants from its block headers."""

    path: Path
    samples: pl.DataFrame
    variants: pl.DataFrame
    offsets: np.ndarray  # byte offset of each variant's block in the .bgen

    @property
    def bytes_per_variant(self) -> int:
        return 2 * self.samples.height

    def batches(self, *, release: str, block_variants: int,
                progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        """Stream genotype rows of dosages, ``block_variants`` at a time."""
        total = self.variants.height
        with cbgen.bgen_file(self.path) as bgen:
            for start in range(0, total, block_variants):
                stop = min(start + block_variants, total)
                dosages = np.vstack([_alt_dosage(bgen.read_probability(offset), self.path)
                                     for offset in self.offsets[start:stop]])  # variants × samples
                yield genotype_batch(self.variants.slice(start, stop - start), release=release,
                                     start=start, n_samples=self.samples.height, dosages=dosages)
                if progress:
                    progress("genotypes", stop, total)


def open_bgen(path: str | os.PathLike, sample_path: str | os.PathLike) -> BgenFile:
    """Check the .sample file against the BGEN header and index the variants (biallelic only).

    The variant index is built here, by walking the block headers, rather than by cbgen:
    that walk checks every block lies inside the file, so a truncated or corrupt BGEN is
    an InputError instead of a crash inside the C library.
    """
    path, sample_path = Path(path), Path(sample_path)
    samples = read_sample_file(sample_path)
    if not path.exists():
        raise InputError(path, "file not found")
    with open(path, "rb") as handle:
        reader = _BlockReader(handle, path, path.stat().st_size)
        n_variants, n_samples, embedded_ids = _read_header(reader)
        _check_samples(samples, n_samples, embedded_ids, sample_path, path)
        variants, offsets = _read_index(reader, n_variants)
    return BgenFile(path, samples, variants, offsets)


def _check_samples(samples: pl.DataFrame, n_samples: int, embedded_ids: list[str] | None,
                   sample_path: Path, path: Path) -> None:
    """The .sample file must list the BGEN's samples: same count, same ids where the BGEN has ids."""
    if n_samples != samples.height:
        raise InputError(sample_path, f"lists {samples.height:,} samples but {path.name} holds "
                         f"{n_samples:,}")
    listed = samples["participant_id"].to_list()
    if embedded_ids is not None and embedded_ids != listed:
        row = next(i for i, (a, b) in enumerate(zip(embedded_ids, listed)) if a != b)
        raise InputError(sample_path, f"sample {row + 1} is {listed[row]!r} but {path.name} names it "
                         f"{embedded_ids[row]!r}", line=row + 3)


def read_sample_file(path: Path) -> pl.DataFrame:
    """participant_id (ID_2) and sex from an Oxford .sample file (header, then a types line)."""
    frame = read_text_table(path, whitespace=True)
    if "ID_2" not in frame.columns:
        raise InputError(path, f"expected an ID_2 column; found {', '.join(frame.columns)}", line=1)
    frame = frame.slice(1)  # the second line declares column types ("0 0 0 D")
    ids = frame["ID_2"].alias("participant_id")
    check_unique(ids, path=path, what="participant id (ID_2)", first_line=3)
    sex = frame["sex"].replace_strict(SEX_CODES, default=None, return_dtype=pl.String) \
        if "sex" in frame.columns else pl.Series("sex", [None] * frame.height, pl.String)
    return pl.DataFrame([ids, sex.alias("sex")])


class _BlockReader:
    """Little-endian fields read from a BGEN file, refusing any read past its end."""

    def __init__(self, handle: BinaryIO, path: Path, size: int) -> None:
        self.handle, self.path, self.size = handle, path, size

    def take(self, n: int) -> bytes:
        data = self.handle.read(n)
        if len(data) != n:
            raise InputError(self.path, f"ends inside a block at byte {self.handle.tell():,}; "
                             "the file looks truncated")
        return data

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "little")

    def text(self, length_bytes: int) -> str:
        return self.take(self.uint(length_bytes)).decode()

    def skip(self, n: int) -> None:
        if self.handle.tell() + n > self.size:
            raise InputError(self.path, f"a block at byte {self.handle.tell():,} runs {n:,} bytes, past "
                             f"the end of the file ({self.size:,} bytes); the file looks truncated")
        self.handle.seek(n, os.SEEK_CUR)


def _read_header(reader: _BlockReader) -> tuple[int, int, list[str] | None]:
    """Variant count, sample count and embedded sample ids (or None) of a BGEN v1.2 header."""
    first_block = reader.uint(4) + 4
    header_length, n_variants, n_samples, magic = reader.uint(4), reader.uint(4), reader.uint(4), reader.take(4)
    if magic not in (b"bgen", bytes(4)) or header_length < 20:
        raise InputError(reader.path, f"not a BGEN file (magic bytes {magic!r}, expected b'bgen')")
    reader.skip(header_length - 20)  # free data
    flags = reader.uint(4)
    layout = (flags >> 2) & 0xF
    if layout != 2:
        raise InputError(reader.path, f"BGEN layout {layout} (v1.1 or older) is not supported; "
                         "convert with 'plink2 --bgen FILE ref-last --export bgen-1.2'")
    embedded_ids = None
    if flags >> 31:
        reader.skip(8)  # block length, sample count
        embedded_ids = [reader.text(2) for _ in range(n_samples)]
    reader.handle.seek(first_block)
    return n_variants, n_samples, embedded_ids


def _read_index(reader: _BlockReader, n_variants: int) -> tuple[pl.DataFrame, np.ndarray]:
    """chrom, variant_id, pos, alt (first allele), ref (last) and each genotype block's offset."""
    rows, offsets = [], np.empty(n_variants, np.int64)
    for number in range(n_variants):
        snp_id, rsid, chrom, pos = reader.text(2), reader.text(2), reader.text(2), reader.uint(4)
        alleles = [reader.text(4) for _ in range(reader.uint(2))]
        name = rsid or snp_id
        if len(alleles) != 2:
            raise InputError(reader.path, f"variant {name} has {len(alleles)} alleles; "
                             "only biallelic variants are supported")
        spelled = chromosome(chrom)
        if spelled is None:
            raise InputError(reader.path, f"unknown chromosome code {chrom!r} (variant {name})")
        offsets[number] = reader.handle.tell()
        reader.skip(reader.uint(4))  # the genotype probabilities, read later by cbgen
        rows.append((spelled, name, pos, alleles[0], alleles[1]))
    schema = {"chrom": pl.String, "variant_id": pl.String, "pos": pl.Int64, "alt": pl.String, "ref": pl.String}
    return pl.DataFrame(rows, schema=schema, orient="row"), offsets


def _alt_dosage(probabilities: np.ndarray, path: Path) -> np.ndarray:
    """samples × 3 genotype probabilities (first/first, het, last/last) → dosage of the first allele."""
    if probabilities.shape[1] != 3:
        raise InputError(path, "only diploid, unphased, biallelic probabilities are supported")
    return 2 * probabilities[:, 0] + probabilities[:, 1]  # NaN rows (missing) stay NaN
