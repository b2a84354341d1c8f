"""What every genotype source format provides, and the one place genotype table rows are built.

A source (PLINK 1 .bed, and the other formats) exposes its samples and variants
as small frames and streams blocks of sample vectors; ``genotype_batch`` turns a
block into rows of the ``genotypes`` table, computing allele frequencies from
the vectors themselves so every format yields identical tables for identical data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from biolake.lake.chromosomes import CHROMOSOME_ALIASES, CHROMOSOMES
from biolake.lake.errors import InputError
from biolake.lake.schema import TABLES
from biolake.lake.vectors import allele_summaries, binary_column, encode_dosages

Progress = Callable[[str, int, int], None]
def chromosome_column(codes: pl.Series, *, path: object, first_line: int) -> pl.Series:
    """A column of chromosome codes spelled the lake's way; an unknown code is an InputError naming
    its line (null codes stay null)."""
    spelled = codes.str.strip_chars().str.to_uppercase().str.replace(r"^CHR", "") \
        .replace(CHROMOSOME_ALIASES)
    unknown = spelled.is_not_null() & ~spelled.is_in(list(CHROMOSOMES))
    if unknown.any():
        row = int(unknown.arg_true()[0])
        raise InputError(path, f"unknown chromosome code {codes[row]!r} (expected 1-22, X, Y, XY or MT, "
                         "with or without 'chr'; PLINK's 23-26 and M are understood)",
                         line=first_line + row)
    return spelled


class GenotypeSource(Protocol):
    """A genotype file set opened and checked, ready to stream."""

    samples: pl.DataFrame   # participant_id, sex (M/F/null), in sample-vector order
    variants: pl.DataFrame  # chrom, variant_id, pos, alt, ref (and cm, where the format has one), in file order

    @property
    def bytes_per_variant(self) -> int: ...

    def batches(self, *, release: str, block_variants: int,
                progress: Progress | None = None) -> Iterator[pa.RecordBatch]: ...


def genotype_batch(variants: pl.DataFrame, *, release: str, start: int, n_samples: int,
                   calls: np.ndarray | None = None, dosages: np.ndarray | None = None,
                   info: np.ndarray | None = None) -> pa.RecordBatch:
    """Rows of the genotypes table for ``variants`` (a slice starting at ``start``).

    Give ``calls`` (variants × packed bytes, .bed coding) for hard calls, or ``dosages``
    (variants × samples, alt dosage in [0, 2], NaN missing) for imputed data.
    """
    rows = variants.height
    alt_freq, called = allele_summaries(calls=calls, dosages=dosages, n_samples=n_samples)
    if calls is not None:
        vectors = {"calls": binary_column(calls), "dosage": pa.nulls(rows, pa.binary())}
    else:
        vectors = {"calls": pa.nulls(rows, pa.binary()),
                   "dosage": pa.array(encode_dosages(dosages), pa.binary())}
    columns = {
        "release": pa.array([release] * rows, pa.string()),
        "chrom": variants["chrom"].to_arrow(), "variant_index": pa.array(np.arange(start, start + rows)),
        "variant_id": variants["variant_id"].to_arrow(), "pos": variants["pos"].to_arrow(),
        "cm": variants["cm"].to_arrow() if "cm" in variants.columns else pa.nulls(rows, pa.float64()),
        "ref": variants["ref"].to_arrow(), "alt": variants["alt"].to_arrow(),
        "alt_freq": pa.array(alt_freq, from_pandas=True), "n_called": pa.array(called, pa.int64()),
        "info": pa.nulls(rows, pa.float64()) if info is None else pa.array(info, from_pandas=True),
        **vectors,
    }
    schema = TABLES["genotypes"].arrow_schema()
    return pa.RecordBatch.from_pydict({f.name: columns[f.name].cast(f.type) for f in schema}, schema=schema)
