"""BGEN v1.2 (with its .sample file) → the genotype tables, read with cbgen.

Probabilities become alt dosages, stored as dosages. Allele order follows plink2's
default for BGEN (``ref-last``): the first allele is ALT, the last is REF, so
``dosage = 2·P(first/first) + P(het)``. Files written ``ref-first`` (UK Biobank's
imputation) therefore count the other allele: convert with ``plink2 --bgen FILE
ref-first --export bgen-1.2`` first. Only biallelic, diploid variants are supported.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cbgen
import numpy as np
import polars as pl
import pyarrow as pa

from ingest.genotypes import Progress, genotype_batch
from ingest.plink import KNOWN_CHROMOSOMES, SEX_CODES
from ingest.text import check_unique, read_text_table
from lake.errors import InputError



@dataclass(frozen=True)
class BgenFile:
    """A checked BGEN file: samples from its .sample file, variants from a metafile index."""

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
    """Check the .sample file against the BGEN header and index the variants (biallelic only)."""
    path, sample_path = Path(path), Path(sample_path)
    samples = read_sample_file(sample_path)
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        bgen = cbgen.bgen_file(path)
    except RuntimeError:
        raise InputError(path, "not a readable BGEN file") from None
    with bgen, tempfile.TemporaryDirectory(prefix="biolake-bgen-") as index_folder:
        if bgen.nsamples != samples.height:
            raise InputError(sample_path, f"lists {samples.height:,} samples but {path.name} holds "
                             f"{bgen.nsamples:,}")
        metafile = Path(index_folder) / "index.metafile"  # cbgen's variant index, read then dropped
        bgen.create_metafile(metafile)
        variants, offsets = _read_index(metafile, path)
    return BgenFile(path, samples, variants, offsets)


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


def _read_index(metafile: Path, path: Path) -> tuple[pl.DataFrame, np.ndarray]:
    parts = []
    with cbgen.bgen_metafile(metafile) as index:
        for number in range(index.npartitions):
            variants = index.read_partition(number).variants
            parts.append((variants.chromosome, variants.rsid, variants.id, variants.position,
                          variants.allele_ids, variants.nalleles, variants.offset))
    chrom, rsid, vid, pos, alleles, nalleles, offsets = (np.concatenate(column) for column in zip(*parts))
    if (nalleles != 2).any():
        row = int(np.flatnonzero(nalleles != 2)[0])
        raise InputError(path, f"variant {rsid[row].decode()} has {nalleles[row]} alleles; "
                         "only biallelic variants are supported")
    chrom = np.char.decode(chrom).astype(object)
    chrom = np.array([c.removeprefix("chr") for c in chrom], dtype=object)
    unknown = [c for c in chrom if c not in KNOWN_CHROMOSOMES]
    if unknown:
        raise InputError(path, f"unknown chromosome code {unknown[0]!r}")
    first, last = zip(*(a.decode().split(",") for a in alleles))
    names = [r.decode() or i.decode() for r, i in zip(rsid, vid)]
    variants = pl.DataFrame({"chrom": list(chrom), "variant_id": names, "pos": pos.astype(np.int64),
                             "alt": list(first), "ref": list(last)})
    return variants, offsets


def _alt_dosage(probabilities: np.ndarray, path: Path) -> np.ndarray:
    """samples × 3 genotype probabilities (first/first, het, last/last) → dosage of the first allele."""
    if probabilities.shape[1] != 3:
        raise InputError(path, "only diploid, unphased, biallelic probabilities are supported")
    return 2 * probabilities[:, 0] + probabilities[:, 1]  # NaN rows (missing) stay NaN
