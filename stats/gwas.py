"""GWAS results as tables: labelling kernel output, and per-phenotype summaries.

One row per (phenotype, variant) with the column names GWAS tools share, so the
results read directly in LocusZoom, FUMA, LDSC munging or a plink2 comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy import stats

from stats.association import ERRORS, AssociationResult

GENOME_WIDE = 5e-8
_CHI2_MEDIAN = stats.chi2.ppf(0.5, 1)  # 0.4549…: the null median of a 1-df χ²
_LOG10P_BINS = np.linspace(0.0, 2.0, 20_001)  # fine enough for λGC to 4 decimals


def results_schema(*, statistics: Sequence[str]) -> pa.Schema:
    """The results table's columns; ``statistics`` is ("t",), ("z",) or both for mixed runs.

    Examples
    --------
    >>> results_schema(statistics=["t"]).names[:6]
    ['phenotype', 'variant_id', 'chrom', 'pos', 'ref', 'alt']
    """
    return pa.schema([
        ("phenotype", pa.string()), ("variant_id", pa.string()), ("chrom", pa.string()), ("pos", pa.int64()),
        ("ref", pa.string()), ("alt", pa.string()), ("n", pa.int64()), ("alt_freq", pa.float64()),
        ("beta", pa.float64()), ("se", pa.float64()), *[(s, pa.float64()) for s in statistics],
        ("p", pa.float64()), ("log10p", pa.float64()), ("error", pa.string()),
        *([("firth", pa.bool_())] if "z" in statistics else []),
    ])


def used_alt_frequency(genotypes: np.ndarray, phenotypes_present: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Alt allele frequency over the samples each test used (variants × phenotypes).

    ``genotypes`` is zero at missing calls, so summing over a phenotype's present samples
    and dividing by twice the used count gives exactly the tested samples' frequency.
    One product per distinct missingness pattern, not per phenotype.
    """
    patterns, inverse = np.unique(phenotypes_present.T, axis=0, return_inverse=True)
    sums = genotypes.astype(np.float64, copy=False) @ patterns.T.astype(np.float64)  # variants × patterns
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, sums[:, inverse.ravel()] / (2.0 * n), np.nan)


def association_table(variants: pa.Table, result: AssociationResult, *, phenotypes: Sequence[str],
                      alt_freq: np.ndarray, statistic: str, schema: pa.Schema,
                      firth: np.ndarray | None = None) -> pa.Table:
    """Kernel output (variants × phenotypes arrays) as long rows, phenotype-major.

    Examples
    --------
    >>> from stats.linear import linear_association, prepare_linear
    >>> rng = np.random.default_rng(0)
    >>> g, y = rng.integers(0, 3, (2, 50)).astype(float), rng.normal(size=(50, 1))
    >>> variants = pa.table({"variant_id": ["rs1", "rs2"], "chrom": ["1", "1"], "pos": [10, 20],
    ...                      "ref": ["C", "C"], "alt": ["T", "T"]})
    >>> result = linear_association(g, prepare_linear(y, np.ones((50, 1))))
    >>> table = association_table(variants, result, phenotypes=["height"], statistic="t",
    ...                           alt_freq=g.mean(axis=1, keepdims=True) / 2,
    ...                           schema=results_schema(statistics=["t"]))
    >>> table.num_rows, table.column("phenotype")[0].as_py()
    (2, 'height')
    """
    n_variants, n_phenotypes = result.beta.shape
    def column(values: np.ndarray) -> pa.Array:  # phenotype-major; NaN (a test that did not run) → null
        return pa.array(np.ascontiguousarray(values.T).ravel(), from_pandas=True)

    labels = {name: pa.concat_arrays([variants.column(name).combine_chunks()] * n_phenotypes)
              for name in ("variant_id", "chrom", "pos", "ref", "alt")}
    errors = column(result.error)
    data = {
        "phenotype": pa.array(np.repeat(np.asarray(phenotypes, dtype=object), n_variants), pa.string()),
        **labels,
        "n": column(result.n), "alt_freq": column(alt_freq), "beta": column(result.beta),
        "se": column(result.se), statistic: column(result.statistic), "p": column(result.p),
        "log10p": column(result.log10p),
        "error": pa.array(np.array(ERRORS, dtype=object)[errors], pa.string()),
    }
    if "firth" in schema.names:
        data["firth"] = column(firth) if firth is not None else np.zeros(len(errors), bool)
    return pa.table({name: data.get(name, pa.nulls(len(errors), schema.field(name).type))
                     for name in schema.names}, schema=schema)


@dataclass
class PhenotypeSummary:
    """Running summary of one phenotype's tests: count, genome-wide hits, top hit, λGC."""

    tests: int = 0
    failed: int = 0
    hits: int = 0
    top_log10p: float = 0.0
    top_variant: str | None = None
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(len(_LOG10P_BINS) + 1, np.int64))

    def add(self, variant_ids: np.ndarray, log10p: np.ndarray) -> None:
        ran = ~np.isnan(log10p)
        self.tests += int(ran.sum())
        self.failed += int((~ran).sum())
        self.hits += int((log10p[ran] > -np.log10(GENOME_WIDE)).sum())
        if ran.any():
            best = int(np.nanargmax(log10p))
            if log10p[best] > self.top_log10p or self.top_variant is None:
                self.top_log10p, self.top_variant = float(log10p[best]), str(variant_ids[best])
        self.histogram += np.bincount(np.searchsorted(_LOG10P_BINS, log10p[ran]),
                                      minlength=len(self.histogram))

    def lambda_gc(self) -> float:
        """Genomic inflation: median χ² over its null median (NaN without tests)."""
        if not self.tests:
            return float("nan")
        median_bin = int(np.searchsorted(np.cumsum(self.histogram), (self.tests + 1) / 2))
        log10p = _LOG10P_BINS[min(median_bin, len(_LOG10P_BINS) - 1)]
        return float(stats.chi2.isf(10.0 ** -log10p, 1) / _CHI2_MEDIAN)


def summarise(table: pa.Table, summaries: dict[str, PhenotypeSummary]) -> None:
    """Fold one block's results table into the per-phenotype summaries."""
    phenotype = table.column("phenotype").to_numpy(zero_copy_only=False)
    log10p = table.column("log10p").to_numpy(zero_copy_only=False)
    ids = table.column("variant_id").to_numpy(zero_copy_only=False)
    bounds = np.flatnonzero(np.r_[True, phenotype[1:] != phenotype[:-1], True])
    for start, stop in zip(bounds[:-1], bounds[1:]):
        summaries.setdefault(phenotype[start], PhenotypeSummary()).add(ids[start:stop], log10p[start:stop])
