"""KING-robust kinship as ``plink2 --make-king-table`` computes it, and the unrelated set of ``--king-cutoff``.

For a pair of samples i, j over the variants called in both (NSNP), with HETHET the variants
where both are heterozygous, IBS0 those where they are opposite homozygotes, and Het_i the
variants where i is heterozygous (and j called), the KING-robust between-family estimator
(Manichaikul et al. 2010), which plink2 uses for every pair, is

    kinship = ½ − (Het_i + Het_j − 2 HETHET + 4 IBS0) / (4 min(Het_i, Het_j)).

The counts are those of plink2 itself: per sample, a block's calls become four bit sets
(heterozygous, homozygous reference, homozygous alternate, called; 64 variants a word),
and each pair's counts are popcounts of their ANDs, word by word (a binary matrix product
of the indicator matrices), in a compiled loop over pairs, tiled by 4,096 variants so a
tile of every sample's words stays in cache. Counts add up in int32 (exact below 2³¹
variants); symmetric ones are kept as their upper triangle.

The unrelated set is plink2's greedy pruning (``KinshipPruneDestructive``): while any pair
is above the cutoff, remove the partner of the first sample with one relative left, or
else the first sample with the most relatives.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse
from numba import types
from numba.extending import intrinsic

KING_THIRD_DEGREE = 0.0442    # KING's lower bound of 3rd-degree relatives: 2^-4.5
_TILE_WORDS = 64              # 4,096 variants of every sample's bit sets per sweep over the pairs


@dataclass
class KingCounts:
    """The pair counts of KING-robust kinship over some variants, samples × samples (int32).

    ``n_variants``, ``hethet`` and ``ibs0`` hold their upper triangle (i < j);
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

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The four count matrices, in declared order."""
        return self.n_variants, self.hethet, self.ibs0, self.het_called

    def add_calls(self, blocks: Iterable[tuple[np.ndarray, scipy.sparse.csr_array]]) -> KingCounts:
        """Add the counts of ``blocks`` of calls, in place: each its dosages (variants × samples, 0 at the missing
        calls, rounded to the nearest call) and its missing calls (variants × samples, sparse). Blocks are packed
        as bit sets and counted 4,096 variants at a time (a sweep over the pairs costs as much for fewer);
        returns self.

        Examples
        --------
        >>> dosages = np.array([[1.0, 1, 0], [0, 2, 1], [2, 0, 0]])     # variants × samples
        >>> missing = scipy.sparse.csr_array(np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], bool))
        >>> counts = KingCounts.zeros(3).add_calls([(dosages[:1], missing[:1]), (dosages[1:], missing[1:])])
        >>> [int(counts.n_variants[0, 1]), int(counts.n_variants[0, 2]), int(counts.hethet[0, 1]),
        ...  int(counts.ibs0[0, 1])]
        [3, 2, 1, 2]
        >>> [int(counts.het_called[0, 2]), int(counts.het_called[2, 0])]   # 2 is missing where 0 is het
        [0, 1]
        """
        pending: list[np.ndarray] = []
        for dosages, missing in blocks:
            pending.append(call_bit_sets(dosages, missing))
            if sum(bits.shape[2] for bits in pending) >= _TILE_WORDS:
                _add_pair_counts(np.concatenate(pending, axis=2), *self.arrays())
                pending = []
        if pending:
            _add_pair_counts(np.concatenate(pending, axis=2), *self.arrays())
        return self


def call_bit_sets(dosages: np.ndarray, missing: scipy.sparse.csr_array) -> np.ndarray:
    """A block's calls as each sample's bit sets (4 × samples × words, uint64, 64 variants a word, variant v at bit
    v % 64 of word v // 64): heterozygous, homozygous reference, homozygous alternate, called.

    Examples
    --------
    >>> bits = call_bit_sets(np.array([[1.0, 2], [0, 0]]), scipy.sparse.csr_array(np.array([[0, 0], [0, 1]], bool)))
    >>> bits[:, 0, 0].tolist(), bits[:, 1, 0].tolist()     # sample 0: het then hom ref; 1: hom alt then missing
    ([1, 2, 0, 3], [0, 0, 1, 1])
    """
    variants, samples = dosages.shape
    bits = np.zeros((4, samples, -(-variants // 64)), np.uint64)
    missing = scipy.sparse.csr_array(missing)
    _pack_calls(dosages, missing.indptr, missing.indices, bits)
    return bits


@numba.njit(cache=True, nogil=True)
def _pack_calls(dosages, lost_indptr, lost_indices, bits):  # pragma: no cover
    """Set each called variant's bits: its call's set (rounded as numpy's rint: 0.5 → 0, 1.5 → 2) and called."""
    variants, samples = dosages.shape
    lost = np.zeros(samples, np.bool_)
    for v in range(variants):
        lost[lost_indices[lost_indptr[v]:lost_indptr[v + 1]]] = True
        word, bit = v >> 6, np.uint64(1) << np.uint64(v & 63)
        for s in range(samples):
            if lost[s]:
                continue
            dosage = dosages[v, s]
            kind = 0 if 0.5 < dosage < 1.5 else (1 if dosage <= 0.5 else 2)   # het, hom ref, hom alt
            bits[kind, s, word] |= bit
            bits[3, s, word] |= bit
        lost[lost_indices[lost_indptr[v]:lost_indptr[v + 1]]] = False


@intrinsic
def _popcount(typingctx, word):
    """The set bits of a uint64 word: LLVM's ctpop, one popcnt instruction."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@numba.njit(cache=True, nogil=True)
def _add_pair_counts(bits, n_variants, hethet, ibs0, het_called):  # pragma: no cover
    """Add every pair's counts of the bit sets (:func:`call_bit_sets`) to the count matrices, tile by tile of
    words."""
    het, hom_ref, hom_alt, called = bits[0], bits[1], bits[2], bits[3]
    _, samples, words = bits.shape
    for start in range(0, words, _TILE_WORDS):
        stop = min(start + _TILE_WORDS, words)
        for i in range(samples):
            for j in range(i + 1, samples):
                both = np.uint64(0)
                both_het = np.uint64(0)
                opposite = np.uint64(0)
                het_i = np.uint64(0)
                het_j = np.uint64(0)
                for k in range(start, stop):
                    both += _popcount(called[i, k] & called[j, k])
                    both_het += _popcount(het[i, k] & het[j, k])
                    opposite += _popcount((hom_ref[i, k] & hom_alt[j, k]) | (hom_alt[i, k] & hom_ref[j, k]))
                    het_i += _popcount(het[i, k] & called[j, k])
                    het_j += _popcount(het[j, k] & called[i, k])
                n_variants[i, j] += both
                hethet[i, j] += both_het
                ibs0[i, j] += opposite
                het_called[i, j] += het_i
                het_called[j, i] += het_j


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
