"""GWAS results as tables: labelling kernel output, and per-phenotype summaries.

One row per (phenotype, variant) with the column names GWAS tools share, so the
results read directly in LocusZoom, FUMA, LDSC munging or a plink2 comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from scipy import special

from biolake.lake.schema import RESULTS_KINDS
from biolake.stats.association import ERRORS, AssociationResult
from biolake.stats.multiple import CHI2_MEDIAN, GENOME_WIDE, LOG10P_BINS, histogram_median, log10p_bins

VARIANT_COLUMNS = ("variant_id", "chrom", "pos", "ref", "alt")


def results_schema(*, statistics: Sequence[str]) -> pa.Schema:
    """The results table's columns (declared in :data:`biolake.lake.schema.RESULTS_KINDS`);
    ``statistics`` is ("t",), ("z",) or both for mixed runs, and logistic ones (z) add ``firth``.

    Examples
    --------
    >>> results_schema(statistics=["t"]).names[:6]
    ['phenotype', 'variant_id', 'chrom', 'pos', 'ref', 'alt']
    """
    return RESULTS_KINDS["gwas"].arrow_schema(columns=[*statistics, *(["firth"] if "z" in statistics else [])])


def association_table(variants: pa.Table, result: AssociationResult, *, phenotypes: Sequence[str],
                      statistic: str, schema: pa.Schema,
                      firth: np.ndarray | None = None) -> pa.Table:
    """Kernel output (variants × phenotypes arrays) as long rows, phenotype-major.

    Examples
    --------
    >>> from biolake.stats.linear import linear_association, prepare_linear
    >>> rng = np.random.default_rng(0)
    >>> g, y = rng.integers(0, 3, (2, 50)).astype(float), rng.normal(size=(50, 1))
    >>> variants = pa.table({"variant_id": ["rs1", "rs2"], "chrom": ["1", "1"], "pos": [10, 20],
    ...                      "ref": ["C", "C"], "alt": ["T", "T"]})
    >>> result = linear_association(g, prepare_linear(y, np.ones((50, 1))))
    >>> table = association_table(variants, result, phenotypes=["height"], statistic="t",
    ...                           schema=results_schema(statistics=["t"]))
    >>> table.num_rows, table.column("phenotype")[0].as_py()
    (2, 'height')
    """
    n_variants, n_phenotypes = result.beta.shape
    def column(values: np.ndarray) -> pa.Array:  # phenotype-major; NaN (a test that did not run) → null
        return pa.array(np.ascontiguousarray(values.T).ravel(), from_pandas=True)

    labels = variant_labels(variants, repeat=n_phenotypes)
    errors = column(result.error)
    data = {
        "phenotype": pa.array(np.repeat(np.asarray(phenotypes, dtype=object), n_variants), pa.string()),
        **labels,
        "n": column(result.n), "alt_freq": column(result.alt_freq), "beta": column(result.beta),
        "se": column(result.se), statistic: column(result.statistic), "p": column(result.p),
        "log10p": column(result.log10p),
        "error": pa.array(np.array(ERRORS, dtype=object)[errors], pa.string()),
    }
    if "firth" in schema.names:
        data["firth"] = column(firth) if firth is not None else np.zeros(len(errors), bool)
    return pa.table({name: data.get(name, pa.nulls(len(errors), schema.field(name).type))
                     for name in schema.names}, schema=schema)


def variant_labels(variants: pa.Table, *, repeat: int) -> dict[str, pa.Array]:
    """The variant columns of a results block whose rows run over the variants ``repeat`` times."""
    return {name: pa.concat_arrays([variants.column(name).combine_chunks()] * repeat)
            for name in VARIANT_COLUMNS}


@dataclass
class GwasSummary:
    """Per phenotype, a running summary of its tests: count, genome-wide hits, top hit, λGC.

    Blocks are summarised where they are computed and merged, so no results table has
    to be read back. λGC comes from a histogram of −log10 p (:func:`stats.multiple.histogram_median`), so the median needs no second pass.

    Examples
    --------
    >>> summary = GwasSummary.empty(["height"])
    >>> summary.add(np.array(["rs1", "rs2", "rs3"]), np.array([[0.1], [9.0], [np.nan]]))
    >>> summary.tests.tolist(), summary.hits.tolist(), summary.top_variant.tolist()
    ([2], [1], ['rs2'])
    """

    phenotypes: list[str]
    tests: np.ndarray        # per phenotype
    failed: np.ndarray
    hits: np.ndarray         # p < 5e-8
    top_log10p: np.ndarray
    top_variant: np.ndarray  # object: variant ids
    histogram: np.ndarray    # phenotypes × bins of −log10 p

    @classmethod
    def empty(cls, phenotypes: Sequence[str]) -> "GwasSummary":
        count = len(phenotypes)
        return cls(list(phenotypes), np.zeros(count, np.int64), np.zeros(count, np.int64),
                   np.zeros(count, np.int64), np.full(count, -np.inf), np.full(count, None, object),
                   np.zeros((count, len(LOG10P_BINS) + 1), np.int64))

    def add(self, variant_ids: np.ndarray, log10p: np.ndarray) -> None:
        """Fold in a block: ``log10p`` is variants × phenotypes (NaN where a test did not run)."""
        ran = ~np.isnan(log10p)
        self.tests += ran.sum(axis=0)
        self.failed += (~ran).sum(axis=0)
        self.hits += (log10p > -np.log10(GENOME_WIDE)).sum(axis=0)
        if ran.any():
            best = np.nanargmax(np.where(ran, log10p, -np.inf), axis=0)
            value = log10p[best, np.arange(log10p.shape[1])]
            better = ran.any(axis=0) & (value > self.top_log10p)
            self.top_log10p[better], self.top_variant[better] = value[better], np.asarray(variant_ids)[best[better]]
        bins = log10p_bins(log10p) + np.arange(log10p.shape[1]) * self.histogram.shape[1]
        self.histogram += np.bincount(bins[ran], minlength=self.histogram.size).reshape(self.histogram.shape)

    def merge(self, other: "GwasSummary") -> None:
        """Fold in the summary of other blocks of the same phenotypes."""
        assert other.phenotypes == self.phenotypes
        self.tests += other.tests
        self.failed += other.failed
        self.hits += other.hits
        better = other.top_log10p > self.top_log10p
        self.top_log10p[better], self.top_variant[better] = other.top_log10p[better], other.top_variant[better]
        self.histogram += other.histogram

    def lambda_gc(self) -> np.ndarray:
        """Genomic inflation per phenotype: median χ² over its null median (NaN without tests)."""
        with np.errstate(invalid="ignore"):
            return special.chdtri(1, 10.0 ** -histogram_median(self.histogram)) / CHI2_MEDIAN
