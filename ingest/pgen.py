"""PLINK 2 filesets (.pgen/.pvar/.psam) → the genotype tables, read with pgenlib.

Hard calls are repacked into the lake's 2-bit vectors; a file that stores dosages
(imputed data) keeps them as dosages. Only biallelic variants are supported: a
multi-allelic ALT (``A,T``) is an error naming its line — split such sites first
(``bcftools norm -m-`` on a VCF export).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pgenlib
import polars as pl
import pyarrow as pa

from biolake.ingest.genotypes import Progress, chromosome_column, genotype_batch
from biolake.ingest.plink import SEX_CODES
from biolake.ingest.text import check_unique, read_text_table
from biolake.lake.errors import InputError
from biolake.lake.vectors import encode_calls


@dataclass(frozen=True)
class PgenFileset:
    """A checked .pgen/.pvar/.psam trio."""

    pgen: Path
    samples: pl.DataFrame
    variants: pl.DataFrame

    @property
    def bytes_per_variant(self) -> int:
        return 2 * self.samples.height  # dosages may be stored; blocks sized for the larger case

    def batches(self, *, release: str, block_variants: int,
                progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        """Stream genotype rows: packed hard calls, or dosages where the file has fractional ones.

        The choice is made per block and is lossless either way: a block whose dosages are
        all 0, 1, 2 or missing is exactly a block of hard calls (queries read both per row).
        """
        n, total = self.samples.height, self.variants.height
        reader = _open_reader(self.pgen, n, total)
        try:
            for start in range(0, total, block_variants):
                stop = min(start + block_variants, total)
                dosages = _read_dosages(reader, self.pgen, start, stop, n)
                meta = self.variants.slice(start, stop - start)
                if np.all(np.isnan(dosages) | (dosages == np.round(dosages))):
                    batch = genotype_batch(meta, release=release, start=start, n_samples=n,
                                           calls=encode_calls(dosages))
                else:
                    batch = genotype_batch(meta, release=release, start=start, n_samples=n,
                                           dosages=dosages)
                yield batch
                if progress:
                    progress("genotypes", stop, total)
        finally:
            reader.close()


def open_pfile(prefix: str | os.PathLike) -> PgenFileset:
    """Read and check .psam and .pvar, and open the .pgen to check its counts and its end."""
    prefix = str(prefix).removesuffix(".pgen")
    pgen, pvar, psam = (Path(f"{prefix}.{ext}") for ext in ("pgen", "pvar", "psam"))
    samples, variants = read_psam(psam), read_pvar(pvar)
    if not pgen.exists():
        raise InputError(pgen, "file not found")
    reader = _open_reader(pgen, samples.height, variants.height)
    try:
        _check_body(reader, pgen, variants.height, samples.height)
    finally:
        reader.close()
    return PgenFileset(pgen, samples, variants)


def read_psam(path: Path) -> pl.DataFrame:
    """participant_id (IID) and sex from a .psam (header ``#FID IID SEX`` or ``#IID SEX``)."""
    frame = read_text_table(path, whitespace=True)
    columns = [c.lstrip("#") for c in frame.columns]
    frame.columns = columns
    if "IID" not in columns:
        raise InputError(path, f"expected an IID column in the header; found {', '.join(columns)}",
                         line=1)
    ids = frame["IID"].alias("participant_id")
    check_unique(ids, path=path, what="participant id (IID)")
    sex = frame["SEX"].replace_strict(SEX_CODES, default=None, return_dtype=pl.String) \
        if "SEX" in columns else pl.Series("sex", [None] * frame.height, pl.String)
    return pl.DataFrame([ids, sex.alias("sex")])


def read_pvar(path: Path) -> pl.DataFrame:
    """chrom, variant_id, pos, alt, ref from a .pvar (## meta lines, then #CHROM POS ID REF ALT …)."""
    header_line = _header_line(path)
    frame = read_text_table(path, whitespace=True, skip_lines=header_line)
    frame.columns = [c.lstrip("#") for c in frame.columns]
    missing = {"CHROM", "POS", "ID", "REF", "ALT"} - set(frame.columns)
    if missing:
        raise InputError(path, f"header lacks {', '.join(sorted(missing))}", line=header_line + 1)
    first_line = header_line + 2
    multi = frame["ALT"].str.contains(",")
    if multi.any():
        row = int(multi.arg_true()[0])
        raise InputError(path, f"variant {frame['ID'][row]!r} is multi-allelic (ALT {frame['ALT'][row]}); "
                         "only biallelic variants are supported", line=first_line + row)
    chromosomes = chromosome_column(frame["CHROM"], path=path, first_line=first_line)
    positions = frame["POS"].cast(pl.Int64, strict=False)
    if positions.is_null().any():
        row = int(positions.is_null().arg_true()[0])
        raise InputError(path, f"position {frame['POS'][row]!r} is not an integer", line=first_line + row)
    return pl.DataFrame({"chrom": chromosomes, "variant_id": frame["ID"], "pos": positions,
                         "alt": frame["ALT"], "ref": frame["REF"]})


def _header_line(path: Path) -> int:
    """Index of the #CHROM header line (after any ## meta lines)."""
    if not path.exists():
        raise InputError(path, "file not found")
    with open(path, "rb") as handle:
        for index, line in enumerate(handle):
            if not line.startswith(b"##"):
                return index
    raise InputError(path, "no #CHROM header line")


def _open_reader(pgen: Path, n_samples: int, n_variants: int) -> pgenlib.PgenReader:
    try:
        reader = pgenlib.PgenReader(bytes(str(pgen), "utf-8"), raw_sample_ct=n_samples)
    except RuntimeError as exc:
        raise InputError(pgen, f"not a readable .pgen ({str(exc).strip().splitlines()[0]})") from None
    found = reader.get_variant_ct()
    if found != n_variants:
        reader.close()
        raise InputError(pgen, f"holds {found:,} variants but the .pvar lists {n_variants:,}")
    return reader


def _check_body(reader: pgenlib.PgenReader, pgen: Path, n_variants: int, n_samples: int) -> None:
    """Decode the last variant: a truncated .pgen fails here, before anything is written."""
    if n_variants:
        _read_dosages(reader, pgen, n_variants - 1, n_variants, n_samples)


def _read_dosages(reader: pgenlib.PgenReader, pgen: Path, start: int, stop: int,
                  n_samples: int) -> np.ndarray:
    """Alt dosages of variants ``start:stop`` (variants × samples, NaN missing)."""
    dosages = np.empty((stop - start, n_samples), np.float64)
    try:
        reader.read_dosages_range(start, stop, dosages)
    except RuntimeError as exc:
        raise InputError(pgen, f"cannot decode variants {start + 1:,}-{stop:,} ({exc}); "
                         "the file looks truncated or corrupt") from None
    dosages[dosages < 0] = np.nan  # pgenlib marks missing as -9
    return dosages
