"""VCF/BCF → the genotype tables, read with cyvcf2 (htslib).

GT gives hard calls; a DS FORMAT field (or GP, as P(het) + 2·P(hom-alt)) gives
imputed dosages, which are kept as dosages, with INFO/R2 (or INFO/INFO) as the
imputation score. Only biallelic records are supported: a multi-allelic record
is an error naming the variant — split it first with ``bcftools norm -m-``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
from cyvcf2 import VCF

from biolake.ingest.genotypes import Progress, genotype_batch
from biolake.ingest.text import check_unique
from biolake.lake.chromosomes import chromosome
from biolake.lake.errors import InputError
from biolake.lake.vectors import encode_calls


@dataclass(frozen=True)
class VcfFile:
    """A checked VCF/BCF: its samples, its biallelic variants, and which field carries dosages."""

    path: Path
    samples: pl.DataFrame
    variants: pl.DataFrame
    dosage_field: str | None  # "DS", "GP" or None (hard calls from GT)
    info_field: str | None

    @property
    def bytes_per_variant(self) -> int:
        return 2 * self.samples.height

    def batches(self, *, release: str, block_variants: int,
                progress: Progress | None = None) -> Iterator[pa.RecordBatch]:
        """Stream genotype rows, ``block_variants`` records at a time."""
        n, total = self.samples.height, self.variants.height
        reader = _open(self.path)
        records = _records(reader, self.path)
        try:
            for start in range(0, total, block_variants):
                stop = min(start + block_variants, total)
                block = [next(records) for _ in range(stop - start)]
                meta = self.variants.slice(start, stop - start)
                info = self._info(block)
                if self.dosage_field:
                    yield genotype_batch(meta, release=release, start=start, n_samples=n,
                                         dosages=np.vstack([self._dosages(r) for r in block]), info=info)
                else:
                    counts = np.vstack([r.gt_types for r in block]).astype(np.float64)  # variants × samples
                    counts[counts == VCF.UNKNOWN] = np.nan
                    yield genotype_batch(meta, release=release, start=start, n_samples=n,
                                         calls=encode_calls(counts), info=info)
                if progress:
                    progress("genotypes", stop, total)
        finally:
            reader.close()

    def _dosages(self, record) -> np.ndarray:
        """One record's alt dosages from DS, or from GP as P(het) + 2·P(hom-alt); NaN missing."""
        values = _floats(record.format(self.dosage_field))
        return values[:, 0] if self.dosage_field == "DS" else values[:, 1] + 2 * values[:, 2]

    def _info(self, block: list) -> np.ndarray | None:
        if not self.info_field:
            return None
        return np.array([float(r.INFO.get(self.info_field, np.nan)) for r in block])


def open_vcf(path: str | os.PathLike) -> VcfFile:
    """Read the header and every record's position and alleles (checking them) before any write."""
    path = Path(path)
    reader = _open(path)
    try:
        samples = pl.Series("participant_id", list(reader.samples), pl.String)
        if samples.is_empty():
            raise InputError(path, "the VCF has no sample columns")
        check_unique(samples, path=path, what="sample id in the header", first_line=1)
        rows = []
        for record in _records(reader, path):
            if len(record.ALT) > 1:
                raise InputError(path, f"variant {record.ID or record.POS} at {record.CHROM}:{record.POS} "
                                 f"has {len(record.ALT)} ALT alleles; only biallelic records are supported")
            chrom = chromosome(record.CHROM)
            if chrom is None:
                raise InputError(path, f"unknown chromosome code {record.CHROM!r} at position {record.POS}")
            alt = record.ALT[0] if record.ALT else "."  # ALT '.': a monomorphic site, kept as PLINK does
            rows.append((chrom, record.ID or f"{chrom}:{record.POS}:{record.REF}:{alt}",
                         record.POS, alt, record.REF))
        dosage_field = next((f for f in ("DS", "GP") if _has(reader, f, "FORMAT")), None)
        info_field = next((f for f in ("R2", "INFO") if _has(reader, f, "INFO")), None)
    finally:
        reader.close()
    if not rows:
        raise InputError(path, "the VCF has no variant records")
    variants = pl.DataFrame(rows, schema={"chrom": pl.String, "variant_id": pl.String, "pos": pl.Int64,
                                          "alt": pl.String, "ref": pl.String}, orient="row")
    sex = pl.Series("sex", [None] * samples.len(), pl.String)
    return VcfFile(path, pl.DataFrame([samples, sex]), variants, dosage_field, info_field)


def _open(path: Path) -> VCF:
    if not path.exists():
        raise InputError(path, "file not found")
    try:
        return VCF(str(path), gts012=True, lazy=True)
    except OSError as exc:
        raise InputError(path, f"not a readable VCF/BCF ({exc})") from None


def _floats(values: np.ndarray) -> np.ndarray:
    """htslib float32 FORMAT values → float64, NaN where missing.

    htslib marks missing values and vector ends with signalling NaNs, which numpy warns
    about when cast; they are found by their bits and replaced before the cast.
    """
    exponent = np.uint32(0x7F800000)
    missing = (values.view(np.uint32) & exponent) == exponent
    out = np.where(missing, np.float32(0), values).astype(np.float64)
    out[missing] = np.nan
    return out


def _records(reader: VCF, path: Path) -> Iterator:
    """The reader's records; a record htslib cannot parse is an InputError naming the file."""
    records, last = iter(reader), "the header"
    while True:
        try:
            record = next(records)
        except StopIteration:
            return
        except Exception as exc:  # noqa: BLE001 — cyvcf2 raises a bare Exception on htslib parse errors
            raise InputError(path, f"cannot parse the record after {last} ({exc})") from None
        last = f"{record.CHROM}:{record.POS}"
        yield record


def _has(reader: VCF, field: str, section: str) -> bool:
    """Whether the header declares ``field`` in ``section`` (``##FORMAT=<ID=DS,…>``)."""
    return any(line.type == section and line.info().get("ID") == field for line in reader.header_iter())
