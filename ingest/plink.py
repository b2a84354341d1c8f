"""PLINK 1 binary filesets (.bed/.bim/.fam) → the genotypes, variants and samples tables.

A .bed row already is the lake's packed call vector, so ingest copies bytes and
counts alleles with bit operations, never decoding the calls.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from biolake.ingest.genotypes import Progress, chromosome_column, genotype_batch
from biolake.ingest.mapped import mapped_bytes
from biolake.ingest.text import check_unique, read_text_table
from biolake.lake.errors import InputError
from biolake.lake.vectors import packed_width

BED_MAGIC = bytes([0x6C, 0x1B, 0x01])
SEX_CODES = {"1": "M", "2": "F"}  # PLINK and Oxford sex codes


@dataclass(frozen=True)
class PlinkFileset:
    """A validated .bed/.bim/.fam trio: sample and variant lists plus the .bed path."""

    bed: Path
    samples: pl.DataFrame   # participant_id, sex
    variants: pl.DataFrame  # chrom, variant_id, pos, alt, ref

    @property
    def n_samples(self) -> int:
        return self.samples.height

    @property
    def n_variants(self) -> int:
        return self.variants.height

    @property
    def bytes_per_variant(self) -> int:
        return packed_width(self.n_samples)

    def batches(self, *, release: str, block_variants: int,
                progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        """Stream genotype table rows, ``block_variants`` at a time; the .bed bytes are kept as is
        (mapped from the page cache, not copied)."""
        width = self.bytes_per_variant
        with open(self.bed, "rb") as handle:
            for start in range(0, self.n_variants, block_variants):
                stop = min(start + block_variants, self.n_variants)
                calls = mapped_bytes(handle, len(BED_MAGIC) + start * width, (stop - start) * width)
                yield genotype_batch(self.variants.slice(start, stop - start), release=release,
                                     start=start, n_samples=self.n_samples,
                                     calls=calls.reshape(stop - start, width))  # variants × bytes
                if progress:
                    progress("genotypes", stop, self.n_variants)


def open_bfile(prefix: str | os.PathLike) -> PlinkFileset:
    """Read and check .fam and .bim, and check the .bed's magic bytes and size against them."""
    prefix = str(prefix).removesuffix(".bed")
    bed, bim, fam = (Path(f"{prefix}.{ext}") for ext in ("bed", "bim", "fam"))
    samples, variants = read_fam(fam), read_bim(bim)
    check_bed(bed, n_samples=samples.height, n_variants=variants.height)
    return PlinkFileset(bed, samples, variants)


def read_fam(path: Path) -> pl.DataFrame:
    """participant_id (the IID) and sex (M/F/null) in .fam order."""
    frame = read_text_table(path, has_header=False, expected_columns=6, whitespace=True)
    ids = frame.get_column(frame.columns[1]).alias("participant_id")
    check_unique(ids, path=path, what="participant id (IID)", first_line=1)
    sex = frame.get_column(frame.columns[4]).replace_strict(SEX_CODES, default=None, return_dtype=pl.String)
    return pl.DataFrame([ids, sex.alias("sex")])


def read_bim(path: Path) -> pl.DataFrame:
    """chrom, variant_id, pos, alt (column 5, A1), ref (column 6, A2) and cm (column 3) in .bim order."""
    frame = read_text_table(path, has_header=False, expected_columns=6, whitespace=True)
    chrom, variant_id, cm_text, pos_text, alt, ref = frame.columns
    chromosomes = chromosome_column(frame.get_column(chrom), path=path, first_line=1)
    positions = frame.get_column(pos_text).cast(pl.Int64, strict=False)
    bad = positions.is_null() | (positions < 0)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"position {frame[row, pos_text]!r} is not a non-negative integer",
                         line=row + 1)
    variants = pl.DataFrame({"chrom": chromosomes, "variant_id": frame.get_column(variant_id),
                             "pos": positions, "alt": frame.get_column(alt),
                             "ref": frame.get_column(ref), "cm": read_cm(frame.get_column(cm_text), path=path)})
    same_place = variants.select(pl.concat_str(["variant_id", "chrom", pl.col("pos").cast(pl.String)],
                                               separator=":")).to_series()
    check_unique(same_place, path=path, what="variant id at the same position (id:chrom:pos)",
                 first_line=1)
    return variants


def read_cm(texts: pl.Series, *, path: Path) -> pl.Series:
    """A .bim's genetic positions (centimorgans) as float64, with 0 as null: PLINK writes 0 for 'unknown'.
    Anything but a finite number is an InputError naming its line."""
    cm = texts.cast(pl.Float64, strict=False)
    bad = cm.is_null() | ~cm.is_finite().fill_null(False)
    if bad.any():
        row = int(bad.arg_true()[0])
        raise InputError(path, f"genetic position (column 3) {texts[row]!r} is not a number of centimorgans",
                         line=row + 1)
    return cm.replace(0.0, None).alias("cm")


def check_bed(path: Path, *, n_samples: int, n_variants: int) -> None:
    """Magic bytes (SNP-major) and a size that matches the .bim and .fam counts."""
    if not path.exists():
        raise InputError(path, "file not found")
    with open(path, "rb") as handle:
        magic = handle.read(3)
    if magic[:2] != BED_MAGIC[:2]:
        raise InputError(path, f"not a PLINK .bed file: magic bytes {magic.hex()} (expected 6c1b01)")
    if magic[2:] != BED_MAGIC[2:]:
        raise InputError(path, "individual-major .bed is not supported; "
                         "convert with 'plink --make-bed' to SNP-major")
    expected = 3 + n_variants * packed_width(n_samples)
    actual = path.stat().st_size
    if actual != expected:
        raise InputError(path, f"size {actual:,} bytes does not match {n_variants:,} variants "
                         f"(.bim) × {n_samples:,} samples (.fam): expected {expected:,} bytes"
                         + (" — the file looks truncated" if actual < expected else ""))
