"""A phenotype by the joint genotype classes of two variants: the 3 × 3 table behind an interaction plot.

A sample's class at a variant is its hard call, the alt dosage rounded to 0, 1 or 2 copies (what plink's hard
calls of dosages are, less their missingness threshold). An SNP × SNP interaction shows as means whose
differences across one variant's classes change with the other's class.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

CLASSES = (0, 1, 2)   # alt copies


def class_means(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> pa.Table:
    """The count, mean, SD and standard error of the mean of ``y`` in each genotype class of variant ``a`` × each
    of ``b`` (alt dosages, NaN where uncalled), over the samples with ``y`` and both calls (NaN elsewhere).

    Nine rows, ``a``'s class then ``b``'s (columns class_a, class_b, n, mean, sd, se); a class without samples
    has n = 0 and no mean, one with one sample no SD or SE.

    Examples
    --------
    >>> a = np.array([0.0, 0.0, 0.0, 1.0, 2.0, np.nan])
    >>> b = np.array([0.0, 0.1, 1.9, 1.0, 2.0, 1.0])
    >>> y = np.array([1.0, 3.0, 4.0, 6.0, np.nan, 7.0])
    >>> table = class_means(a, b, y)
    >>> table.column("n").to_pylist()
    [2, 0, 1, 0, 1, 0, 0, 0, 0]
    >>> [round(v, 4) if v is not None else None for v in table.slice(0, 3).column("sd").to_pylist()]
    [1.4142, None, None]
    >>> table.slice(0, 3).column("mean").to_pylist(), table.column("se")[0].as_py()
    ([2.0, None, 4.0], 1.0)
    """
    used = ~(np.isnan(a) | np.isnan(b) | np.isnan(y))
    width = len(CLASSES)
    cell = _hard_calls(a[used]) * width + _hard_calls(b[used])
    values = y[used]
    n = np.bincount(cell, minlength=width * width)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(cell, weights=values, minlength=width * width) / n
        squares = np.bincount(cell, weights=(values - mean[cell]) ** 2, minlength=width * width)
        sd = np.where(n > 1, np.sqrt(squares / np.maximum(n - 1, 1)), np.nan)
    return pa.table({"class_a": np.repeat(CLASSES, width), "class_b": np.tile(CLASSES, width), "n": n,
                     "mean": pa.array(mean, from_pandas=True), "sd": pa.array(sd, from_pandas=True),
                     "se": pa.array(sd / np.sqrt(np.maximum(n, 1)), from_pandas=True)})


def _hard_calls(dosages: np.ndarray) -> np.ndarray:
    """Alt dosages as hard calls: the nearest whole number of copies, 0 to 2."""
    return np.clip(np.rint(dosages), 0, 2).astype(np.int64)
