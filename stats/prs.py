"""Polygenic scores: per-participant sums of effect-allele dosage × weight, one column per weight set.

As ``plink2 --score`` does by default, a missing call counts as the mean dosage (twice the
allele frequency among the called samples), and a weight on the REF allele counts
2 − (alt dosage). With weights zeroed above each p-value threshold, one product gives the
scores of every threshold at once (the clumping-and-thresholding family).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse


def threshold_weights(beta: np.ndarray, p: np.ndarray, thresholds: list[float]) -> np.ndarray:
    """Variants × thresholds: ``beta`` where p ≤ the threshold, else 0 (a missing p is never kept).

    Examples
    --------
    >>> threshold_weights(np.array([0.5, -0.2]), np.array([1e-9, 0.01]), [5e-8, 0.05]).tolist()
    [[0.5, 0.5], [0.0, -0.2]]
    """
    keep = np.asarray(p, float)[:, None] <= np.asarray(thresholds, float)[None, :]
    return np.where(keep, np.asarray(beta, float)[:, None], 0.0)


def block_scores(dosages: np.ndarray, missing: scipy.sparse.csr_array, weights: np.ndarray,
                 on_ref: np.ndarray) -> np.ndarray:
    """One genotype block's share of the scores: samples × weight sets.

    ``dosages``: variants × samples alt dosages, 0 where missing (``missing`` marks those);
    ``weights``: variants × sets; ``on_ref``: variants whose weighted allele is REF.

    Examples
    --------
    >>> g = np.array([[0.0, 1.0, 2.0], [2.0, 0.0, 1.0]])
    >>> lost = scipy.sparse.csr_array((np.ones(1), [1], [0, 0, 1]), shape=(2, 3))
    >>> block_scores(g, lost, np.array([[1.0], [10.0]]), np.array([False, True])).ravel().tolist()
    [0.0, 6.0, 12.0]
    """
    called = dosages.shape[1] - np.diff(missing.indptr)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(called > 0, dosages.sum(axis=1) / np.maximum(called, 1), 0.0)   # 2 × allele frequency
    signed = np.where(on_ref[:, None], -weights, weights)
    scores = dosages.T @ signed + missing.T @ (mean[:, None] * signed)
    return scores + 2.0 * weights[on_ref].sum(axis=0)[None, :]
