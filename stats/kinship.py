"""KING-robust kinship as ``plink2 --make-king-table`` computes it, and the unrelated set of ``--king-cutoff``.

For a pair of samples i, j over the variants called in both (NSNP), with HETHET the variants
where both are heterozygous, IBS0 those where they are opposite homozygotes, and Het_i the
variants where i is heterozygous (and j called), the KING-robust between-family estimator
(Manichaikul et al. 2010), which plink2 uses for every pair, is

    kinship = ½ − (Het_i + Het_j − 2 HETHET + 4 IBS0) / (4 min(Het_i, Het_j)).

The counts are plink2's, counted in two parts. HETHET and IBS0 are popcounts of ANDs of each
sample's bit sets (heterozygous, homozygous reference, homozygous alternate; 64 variants a word; an
uncalled variant in none), in a compiled loop over pairs blocked by 32 × 32 samples so both blocks'
words stay in cache, one sample against two at a time; a set's words are contiguous, so the loop
compiles to vector popcounts. The counts that need the calls of both samples come from the uncalled
ones, which are few: with u_i the variants i did not call, NSNP = M − u_i − u_j + (both uncalled),
and Het_i over j's calls = Het_i − (i heterozygous where j is uncalled); the two corrections of
sample j are sums of the variant-major bit rows (heterozygous, uncalled) of the variants j did not
call, added bit-sliced (64 samples a word) — about a third of the pair loop's time at 2 % missing
calls and 10,000 samples, where a popcount of every pair's called sets would cost as much as HETHET
and IBS0 together. Counts add up in int32 (exact below 2³¹ variants); symmetric ones are kept as
their upper triangle.

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
HARD_CALL_THRESHOLD = 0.1     # plink2 --hard-call-threshold: a dosage further than this from every genotype is missing
_TILE_WORDS = 256             # 16,384 variants of the bit sets per sweep over the pairs
_BLOCK_SAMPLES = 32           # pairs counted by blocks of 32 × 32 samples: 2 × 192 kB of bit sets (a tile's)
_CHUNK_VARIANTS = 32_768      # variants packed before counting: 5 bits per call (200 MB at 10,000 samples)


@dataclass
class KingCounts:
    """The pair counts of KING-robust kinship over some variants, samples × samples (int32).

    ``n_variants``, ``hethet`` and ``ibs0`` hold their upper triangle (i < j);
    ``het_called[j, i]`` counts the variants where i is heterozygous and j called.
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
        calls) and its missing calls (variants × samples, sparse). A dosage is called as plink2 hard-calls dosages
        (``--hard-call-threshold 0.1``): the nearest genotype if within 0.1 of it, else missing. Blocks are packed
        as bit sets about 32,768 variants at a time, each pack swept over the pairs 16,384 variants a tile (a sweep
        costs as much for fewer); returns self.

        Examples
        --------
        >>> dosages = np.array([[1.0, 1, 0], [0, 2, 1], [2, 0, 0]])     # variants × samples
        >>> missing = scipy.sparse.csr_array(np.array([[0, 0, 1], [0, 0, 0], [0, 0, 0]], bool))
        >>> counts = KingCounts.zeros(3).add_calls([(dosages[:1], missing[:1]), (dosages[1:], missing[1:])])
        >>> [int(counts.n_variants[0, 1]), int(counts.n_variants[0, 2]), int(counts.hethet[0, 1]),
        ...  int(counts.ibs0[0, 1])]
        [3, 2, 1, 2]
        >>> [int(counts.het_called[2, 0]), int(counts.het_called[0, 2])]   # 2 is missing where 0 is het
        [0, 1]
        """
        pending: list[CallBits] = []
        for dosages, missing in blocks:
            pending.append(call_bit_sets(dosages, missing))
            if sum(bits.variants for bits in pending) >= _CHUNK_VARIANTS:
                self._add_chunk(CallBits.concatenate(pending))
                pending = []
        if pending:
            self._add_chunk(CallBits.concatenate(pending))
        return self

    def _add_chunk(self, bits: CallBits) -> None:
        """Add the counts of one chunk of packed calls."""
        _add_hethet_ibs0(bits.by_sample, self.hethet, self.ibs0)
        _add_called_counts(bits.by_sample, bits.by_variant, self.n_variants, self.het_called)


@dataclass
class CallBits:
    """Some variants' calls as bit sets, each sample's (``by_sample``: samples × 3 × words, uint64: heterozygous,
    homozygous reference, homozygous alternate, 64 variants a word, variant v at bit v % 64 of word v // 64 within
    each packed block, whose last word is padded with uncalled variants) and each
    variant's (``by_variant``: variants × sample words × 2, sample s at bit s % 64 of word s // 64: heterozygous,
    uncalled). An uncalled variant is in none of a sample's sets."""

    by_sample: np.ndarray
    by_variant: np.ndarray

    @property
    def variants(self) -> int:
        """How many variants."""
        return len(self.by_variant)

    @classmethod
    def concatenate(cls, parts: list[CallBits]) -> CallBits:
        """The parts' variants one after another (each part's sample words padded to whole words: never called)."""
        if len(parts) == 1:
            return parts[0]
        return cls(np.concatenate([part.by_sample for part in parts], axis=2),
                   np.concatenate([part.by_variant for part in parts]))


def call_bit_sets(dosages: np.ndarray, missing: scipy.sparse.csr_array) -> CallBits:
    """A block's calls (variants × samples, 0 at the missing calls, ``missing`` sparse) as :class:`CallBits`. A dosage
    more than ``HARD_CALL_THRESHOLD`` from every genotype is uncalled (plink2's hard calls).

    Examples
    --------
    >>> bits = call_bit_sets(np.array([[1.0, 2], [0, 0], [0.5, 1.95]]),
    ...                      scipy.sparse.csr_array(np.array([[0, 0], [0, 1], [0, 0]], bool)))
    >>> bits.by_sample[0, :, 0].tolist(), bits.by_sample[1, :, 0].tolist()  # 0: het, ref, 0.5; 1: alt, missing, alt
    ([1, 2, 0], [0, 0, 5])
    >>> bits.by_variant[:, 0].tolist()                   # per variant: heterozygous, uncalled samples
    [[1, 0], [0, 2], [0, 1]]
    """
    variants, samples = dosages.shape
    by_sample = np.zeros((samples, 3, -(-variants // 64)), np.uint64)
    by_variant = np.zeros((variants, -(-samples // 64), 2), np.uint64)
    missing = scipy.sparse.csr_array(missing)
    _pack_calls(dosages, missing.indptr, missing.indices, HARD_CALL_THRESHOLD, by_sample, by_variant)
    return CallBits(by_sample, by_variant)


@numba.njit(cache=True, nogil=True)
def _pack_calls(dosages, lost_indptr, lost_indices, threshold, by_sample, by_variant):  # pragma: no cover
    """Set each call's bits: its genotype's (the nearest genotype, when within ``threshold`` of the dosage), else
    uncalled."""
    variants, samples = dosages.shape
    lost = np.zeros(samples, np.bool_)
    for v in range(variants):
        lost[lost_indices[lost_indptr[v]:lost_indptr[v + 1]]] = True
        word, bit = v >> 6, np.uint64(1) << np.uint64(v & 63)
        for s in range(samples):
            dosage = dosages[v, s]
            genotype = np.rint(dosage)
            sample_word, sample_bit = s >> 6, np.uint64(1) << np.uint64(s & 63)
            if lost[s] or abs(dosage - genotype) > threshold:
                by_variant[v, sample_word, 1] |= sample_bit
                continue
            by_sample[s, 0 if genotype == 1 else (1 if genotype == 0 else 2), word] |= bit   # het, hom ref, hom alt
            if genotype == 1:
                by_variant[v, sample_word, 0] |= sample_bit
        lost[lost_indices[lost_indptr[v]:lost_indptr[v + 1]]] = False


@intrinsic
def _popcount(typingctx, word):
    """The set bits of a uint64 word: LLVM's ctpop, one popcnt instruction."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@numba.njit(cache=True, nogil=True)
def _add_hethet_ibs0(bits, hethet, ibs0):  # pragma: no cover
    """Add every pair's HETHET and IBS0 of the bit sets (samples × 3 × words) to their upper triangles: per tile of
    words, per block of pairs (``_BLOCK_SAMPLES`` × ``_BLOCK_SAMPLES`` samples, whose words stay in cache), one
    sample against two at a time (its words loaded once). A pair's words are contiguous runs of each set, so the
    word loop compiles to vector popcounts where the CPU has them (AVX-512 VPOPCNTDQ)."""
    samples, _, words = bits.shape
    for start in range(0, words, _TILE_WORDS):
        stop = min(start + _TILE_WORDS, words)
        for first in range(0, samples, _BLOCK_SAMPLES):
            for second in range(first, samples, _BLOCK_SAMPLES):
                end = min(second + _BLOCK_SAMPLES, samples)
                for i in range(first, min(first + _BLOCK_SAMPLES, samples)):
                    het, ref, alt = bits[i, 0, start:stop], bits[i, 1, start:stop], bits[i, 2, start:stop]
                    for j in range(max(second, i + 1), end, 2):
                        k = min(j + 1, end - 1)
                        het_j, ref_j, alt_j = bits[j, 0, start:stop], bits[j, 1, start:stop], bits[j, 2, start:stop]
                        het_k, ref_k, alt_k = bits[k, 0, start:stop], bits[k, 1, start:stop], bits[k, 2, start:stop]
                        hethet_j = opposite_j = hethet_k = opposite_k = np.uint64(0)
                        for w in range(stop - start):
                            het_w, ref_w, alt_w = het[w], ref[w], alt[w]
                            hethet_j += _popcount(het_w & het_j[w])
                            opposite_j += _popcount((ref_w & alt_j[w]) | (alt_w & ref_j[w]))
                            hethet_k += _popcount(het_w & het_k[w])
                            opposite_k += _popcount((ref_w & alt_k[w]) | (alt_w & ref_k[w]))
                        hethet[i, j] += hethet_j
                        ibs0[i, j] += opposite_j
                        if k != j:
                            hethet[i, k] += hethet_k
                            ibs0[i, k] += opposite_k


@numba.njit(cache=True, nogil=True)
def _add_called_counts(by_sample, by_variant, n_variants, het_called):  # pragma: no cover
    """Add NSNP (upper triangle) and each sample's heterozygous calls where the other called (``het_called[j, i]``:
    i heterozygous, j called) from the uncalled variants: for each sample j, the variant rows of the variants j did
    not call, heterozygous and uncalled, summed bit-sliced (:func:`_sliced_sums`)."""
    samples, _, words = by_sample.shape
    variants, sample_words, _ = by_variant.shape
    het = np.zeros(samples, np.int64)
    uncalled = np.full(samples, variants, np.int64)
    for s in range(samples):
        for w in range(words):
            het[s] += _popcount(by_sample[s, 0, w])
            uncalled[s] -= _popcount(by_sample[s, 0, w] | by_sample[s, 1, w] | by_sample[s, 2, w])
    starts = np.zeros(samples + 1, np.int64)                  # each sample's uncalled variants, sample by sample
    starts[1:] = np.cumsum(uncalled)
    found = starts[:-1].copy()
    missed_variants = np.zeros(starts[-1], np.int64)
    for v in range(variants):
        for w in range(sample_words):
            rest = by_variant[v, w, 1]
            while rest:
                lowest = rest & (~rest + np.uint64(1))
                s = w * 64 + _popcount(lowest - np.uint64(1))
                missed_variants[found[s]] = v
                found[s] += 1
                rest ^= lowest
    rows_bits = by_variant.reshape(variants, sample_words * 2)   # a variant's words: heterozygous, uncalled, by turns
    planes = np.zeros((64, sample_words * 2), np.uint64)       # plane b: bit b of every lane's sum (64 bits hold any)
    carries = np.zeros(sample_words * 2, np.uint64)
    missed = np.zeros((2, sample_words * 64), np.int64)       # j's uncalled variants' sums: heterozygous, uncalled
    for j in range(samples):
        depth = _sliced_sums(rows_bits, missed_variants[starts[j]:starts[j + 1]], planes, carries)
        missed[:] = 0
        for b in range(depth):
            for u in range(sample_words * 2):
                plane, kind, low = planes[b, u], u & 1, (u >> 1) * 64
                for lane in range(64):
                    missed[kind, low + lane] += np.int64((plane >> np.uint64(lane)) & np.uint64(1)) << b
        for i in range(samples):
            het_called[j, i] += het[i] - missed[0, i]
        het_called[j, j] = 0
        for i in range(j + 1, samples):
            n_variants[j, i] += variants - uncalled[i] - uncalled[j] + missed[1, i]


@numba.njit(cache=True, nogil=True, inline="always")
def _carry_save(a, b, c):  # pragma: no cover
    """Three words added lane by lane: their sum's low bits and carries."""
    either = a ^ b
    return either ^ c, (a & b) | (either & c)


@numba.njit(cache=True, nogil=True)
def _sliced_sums(rows_bits, rows, planes, carries):  # pragma: no cover
    """The sums, bit by bit, of the ``rows`` of ``rows_bits`` (variants × words), bit-sliced into ``planes`` (plane b,
    word u: bit b of the sums of word u's 64 bits); returns how many planes. Harley and Seal's carry-save adders take
    eight rows at a time down to one word of eights, rippled into the planes from plane 3; each step runs over every
    word of the rows at once, so it is a loop over contiguous words (vector code)."""
    lanes = rows_bits.shape[1]
    depth = 3
    while (1 << depth) <= len(rows):
        depth += 1
    planes[:depth] = 0
    full = len(rows) - len(rows) % 8
    for start in range(0, full, 8):
        r0, r1, r2, r3 = rows_bits[rows[start]], rows_bits[rows[start + 1]], rows_bits[rows[start + 2]], \
            rows_bits[rows[start + 3]]
        r4, r5, r6, r7 = rows_bits[rows[start + 4]], rows_bits[rows[start + 5]], rows_bits[rows[start + 6]], \
            rows_bits[rows[start + 7]]
        for u in range(lanes):
            ones, twos_a = _carry_save(planes[0, u], r0[u], r1[u])
            ones, twos_b = _carry_save(ones, r2[u], r3[u])
            twos, fours_a = _carry_save(planes[1, u], twos_a, twos_b)
            ones, twos_a = _carry_save(ones, r4[u], r5[u])
            ones, twos_b = _carry_save(ones, r6[u], r7[u])
            twos, fours_b = _carry_save(twos, twos_a, twos_b)
            planes[2, u], carries[u] = _carry_save(planes[2, u], fours_a, fours_b)
            planes[0, u], planes[1, u] = ones, twos
        _ripple(planes, carries, 3, depth)
    for row in rows[full:]:
        carries[:] = rows_bits[row]
        _ripple(planes, carries, 0, depth)
    return depth


@numba.njit(cache=True, nogil=True, inline="always")
def _ripple(planes, carries, first, depth):  # pragma: no cover
    """Add ``carries`` (one word per lane) into ``planes`` from plane ``first`` up."""
    for b in range(first, depth):
        for u in range(len(carries)):
            overflow = planes[b, u] & carries[u]
            planes[b, u] ^= carries[u]
            carries[u] = overflow


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
    kinship = np.zeros(counts.hethet.shape)
    _fill_king_robust(counts.hethet, counts.ibs0, counts.het_called, kinship)
    return kinship


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _fill_king_robust(hethet, ibs0, het_called, kinship):  # pragma: no cover
    """Each pair's kinship into the upper triangle of ``kinship``, in one pass (no N × N temporaries)."""
    samples = len(kinship)
    for i in range(samples):
        for j in range(i + 1, samples):
            het_i, het_j = float(het_called[j, i]), float(het_called[i, j])
            kinship[i, j] = 0.5 - (het_i + het_j - 2.0 * hethet[i, j] + 4.0 * ibs0[i, j]) / (4.0 * min(het_i, het_j))


def pairs_at_least(kinship: np.ndarray, minimum: float, *, later: slice = slice(None)) -> tuple[np.ndarray, np.ndarray]:
    """The pairs (later sample, earlier sample) whose kinship is at least ``minimum``, in plink2
    --make-king-table's order: by the later sample, then the earlier; those whose later sample is in ``later``
    (a slice of the samples, so a table of every pair can be built in parts).

    Examples
    --------
    >>> kinship = np.array([[0, 0.3, 0.01], [0, 0, 0.25], [0, 0, 0]])
    >>> [pairs.tolist() for pairs in pairs_at_least(kinship, 0.0442)]
    [[1, 2], [0, 1]]
    >>> [pairs.tolist() for pairs in pairs_at_least(kinship, 0.0442, later=slice(2, 3))]
    [[2], [1]]
    """
    first = later.indices(len(kinship))[0]
    part = kinship[:, later]                                  # every sample × the later ones asked for
    kept = (part >= minimum) & (np.arange(len(kinship))[:, None] < np.arange(first, first + part.shape[1]))
    later_sample, earlier = np.nonzero(kept.T)                # by the later sample, then the earlier
    return later_sample + first, earlier


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
