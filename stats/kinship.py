"""KING-robust kinship as ``plink2 --make-king-table`` computes it, and the unrelated set of ``--king-cutoff``.

For a pair of samples i, j over the variants called in both (NSNP), with HETHET the variants
where both are heterozygous, IBS0 those where they are opposite homozygotes, and Het_i the
variants where i is heterozygous (and j called), the KING-robust between-family estimator
(Manichaikul et al. 2010), which plink2 uses for every pair, is

    kinship = ½ − (Het_i + Het_j − 2 HETHET + 4 IBS0) / (4 min(Het_i, Het_j)).

Each count over a block of variants is a product of matrices (variants × samples): H
marks the heterozygous calls, L the missing ones (sparse), and X is −1 at a homozygous
reference call, +1 at a homozygous alternate one, 0 elsewhere. HETHET = H'H; NSNP =
m − L'1 − 1'L + L'L and Het_i (j called) = H'1 − H'L, sparse; X'X counts the pairs of same
homozygotes minus IBS0, and the pairs of homozygotes (same or opposite) are NSNP − Het_i −
Het_j + HETHET, so IBS0 is half their difference: two dense products per block (BLAS syrk,
half a full product's work each), in float32, exact while a block holds fewer than 2²⁴
variants; blocks add up in int32 (exact below 2³¹ variants). Symmetric counts are kept as
their upper triangle.

The unrelated set is plink2's greedy pruning (``KinshipPruneDestructive``): while any pair
is above the cutoff, remove the partner of the first sample with one relative left, or
else the first sample with the most relatives.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg.blas
import scipy.sparse

KING_THIRD_DEGREE = 0.0442    # KING's lower bound of 3rd-degree relatives: 2^-4.5


@dataclass
class KingCounts:
    """The pair counts of KING-robust kinship over some variants, samples × samples (int32).

    ``n_variants``, ``hethet`` and ``ibs0`` are symmetric and hold their upper triangle;
    ``het_called[i, j]`` counts the variants where i is heterozygous and j called.
    """

    n_variants: np.ndarray
    hethet: np.ndarray
    ibs0: np.ndarray
    het_called: np.ndarray

    @classmethod
    def zeros(cls, samples: int) -> KingCounts:
        """No variant yet."""
        return cls(*(np.zeros((samples, samples), np.int32) for _ in range(4)))

    def add(self, other: KingCounts) -> KingCounts:
        """Add ``other``'s counts to these, in place (blocks and tasks sum); returns self."""
        for mine, theirs in zip(self.arrays(), other.arrays()):
            np.add(mine, theirs, out=mine, casting="unsafe")
        return self

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The four count matrices, in declared order."""
        return self.n_variants, self.hethet, self.ibs0, self.het_called


def king_counts(dosages: np.ndarray, missing: scipy.sparse.sparray) -> KingCounts:
    """A block's pair counts (float32 products of its indicator matrices; see the module docstring) from its
    ``dosages`` (variants × samples, 0 at the ``missing`` calls, variants × samples sparse), rounded to the
    nearest call.

    Examples
    --------
    >>> dosages = np.array([[1.0, 1, 0], [0, 2, 1], [2, 0, 0]])     # variants × samples
    >>> missing = scipy.sparse.csr_array(np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], bool))
    >>> counts = king_counts(dosages, missing)
    >>> [int(counts.n_variants[0, 1]), int(counts.n_variants[0, 2]), int(counts.hethet[0, 1]), int(counts.ibs0[0, 1])]
    [3, 2, 1, 2]
    >>> [int(counts.het_called[0, 2]), int(counts.het_called[2, 0])]   # 2 is missing where 0 is het
    [0, 1]
    """
    lost = scipy.sparse.csr_array(missing, dtype=np.float32)
    calls = np.rint(dosages).astype(np.float32)
    het = (calls == 1).astype(np.float32)
    sign = calls - 1                     # homozygous: −1 reference, +1 alternate; 0 heterozygous or missing
    sign[lost.nonzero()] = 0
    lost_per_sample = lost.sum(axis=0)
    n_variants = len(calls) - lost_per_sample[:, None] - lost_per_sample[None, :] + (lost.T @ lost).toarray()
    het_called = het.sum(axis=0)[:, None] - (lost.T @ het).T   # minus i het where j is missing
    hethet = scipy.linalg.blas.ssyrk(1.0, het.T, lower=0)
    agreement = scipy.linalg.blas.ssyrk(1.0, sign.T, lower=0)   # same homozygotes − opposite ones
    both_homozygous = np.triu(n_variants - het_called - het_called.T) + hethet
    return KingCounts(n_variants=np.triu(n_variants), hethet=hethet, ibs0=(both_homozygous - agreement) / 2,
                      het_called=het_called)


def king_robust(counts: KingCounts) -> np.ndarray:
    """The KING-robust between-family kinship of every pair (samples × samples, upper triangle; NaN where one
    sample of the pair has no heterozygous call, as plink2 prints nan).

    Examples
    --------
    >>> counts = KingCounts(*(np.array([[0, value], [0, 0]]) for value in (100, 20, 0, 0)))
    >>> counts.het_called[:] = [[0, 40], [44, 0]]
    >>> round(float(king_robust(counts)[0, 1]), 6)   # ½ − (40 + 44 − 40) / 160
    0.225
    """
    het_i, het_j = counts.het_called, counts.het_called.T
    with np.errstate(divide="ignore", invalid="ignore"):
        kinship = 0.5 - (het_i + het_j - 2.0 * counts.hethet + 4.0 * counts.ibs0) / (4.0 * np.minimum(het_i, het_j))
    return np.triu(kinship, 1)


def pairs_at_least(kinship: np.ndarray, minimum: float) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (later sample, earlier sample) whose kinship is at least ``minimum``, in plink2
    --make-king-table's order: by the later sample, then the earlier.

    Examples
    --------
    >>> later, earlier = pairs_at_least(np.array([[0, 0.3, 0.01], [0, 0, 0.25], [0, 0, 0]]), 0.0442)
    >>> later.tolist(), earlier.tolist()
    ([1, 2], [0, 1])
    """
    later, earlier = np.nonzero(np.triu(kinship >= minimum, 1).T)
    return later, earlier


def unrelated_samples(kinship: np.ndarray, cutoff: float) -> np.ndarray:
    """A maximal set of samples with no pair's kinship above ``cutoff`` (their positions, ascending), chosen as
    plink2 --king-cutoff chooses it (see the module docstring).

    Examples
    --------
    >>> kinship = np.triu(np.full((4, 4), 0.01), 1)
    >>> kinship[0, 1] = kinship[1, 2] = 0.25                    # 0-1 and 1-2 related: 1 goes
    >>> unrelated_samples(kinship, 0.0884).tolist()
    [0, 2, 3]
    """
    first, second = np.nonzero(np.triu(kinship > cutoff, 1))
    relatives: list[set[int]] = [set() for _ in range(len(kinship))]
    for a, b in zip(first.tolist(), second.tolist()):
        relatives[a].add(b)
        relatives[b].add(a)
    degree = np.array([len(found) for found in relatives])
    kept = np.ones(len(kinship), bool)
    while degree.any():
        single = np.flatnonzero(degree == 1)
        pruned = min(relatives[single[0]]) if len(single) else int(np.argmax(degree))
        for relative in relatives[pruned]:
            relatives[relative].discard(pruned)
            degree[relative] -= 1
        relatives[pruned].clear()
        degree[pruned] = 0
        kept[pruned] = False
    return np.flatnonzero(kept)
