"""GWAS results as tables: labelling kernel output (summaries: :mod:`biolake.stats.summary`).

One row per (phenotype, variant) with the column names GWAS tools share, so the
results read directly in LocusZoom, FUMA, LDSC munging or a plink2 comparison.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from biolake.lake.schema import RESULTS_KINDS
from biolake.stats.association import ERRORS, AssociationResult

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
