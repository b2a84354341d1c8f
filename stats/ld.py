"""Linkage disequilibrium between variants, and greedy LD clumping as ``plink1.9 --clump`` does it.

The r² here is the one PLINK 1.9's clumping uses: from unphased hard calls, over the samples
called at both variants, the two-locus haplotype frequencies are the maximum-likelihood
solution of the EM cubic (double heterozygotes are the only ambiguous phase), and
r² = D² / (p₁ (1 − p₁) q₁ (1 − q₁)). It is not the Pearson r² of allele counts that
``plink1.9 --r2`` prints; the two agree closely under Hardy-Weinberg equilibrium.

Every pairwise statistic comes from one matrix product: each variant contributes three
sample vectors (allele count, heterozygote indicator, called indicator), and one product of
the index variant's three against a window's gives the per-pair haplotype counts of every
variant in the window (sgkit / tensorQTL style: no loop over pairs).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse

from biolake.stats.integer_products import count_products

# PLINK 1.9's tolerances (plink_common.h), so threshold decisions fall the same way.
_EPSILON = 2.0**-30             # roots of the EM cubic closer than this are one root
_SMALLISH_EPSILON = 2.0**-35    # slack on the feasible interval of the double-het share
_SMALL_EPSILON = 2.0**-44       # |D| below this counts as r² = 0

# p-value bins of plink's .clumped report: NSIG (p ≥ 0.05), S05, S01, S001, S0001 (p < 1e-4).
BIN_EDGES = (0.05, 0.01, 0.001, 0.0001)
BIN_NAMES = ("nsig", "s05", "s01", "s001", "s0001")


def ld_features(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray) -> np.ndarray:
    """3 × variants × samples float32: allele count, heterozygote and called indicators.

    ``dosages`` are variants × samples alt dosages (0 at missing calls, which ``missing``
    marks, dense or sparse). Dosages are rounded to hard calls, which is all PLINK 1.9 reads.
    The counts stay exact in float32 products below 2²² samples.

    Examples
    --------
    >>> ld_features(np.array([[0.0, 1.0, 2.0, 0.0]]), np.array([[False, False, False, True]]))[:, 0].tolist()
    [[0.0, 1.0, 2.0, 0.0], [0.0, 1.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0]]
    """
    assert dosages.shape[1] < 2**22, "float32 haplotype counts would lose exactness"
    features = np.empty((3, *dosages.shape), np.float32)
    features[2] = 1
    if scipy.sparse.issparse(missing):
        rows, columns = missing.nonzero()
        features[2][rows, columns] = 0
    else:
        features[2][np.asarray(missing, bool)] = 0
    np.rint(dosages, out=features[0], casting="same_kind")
    features[0] *= features[2]
    np.equal(features[0], 1, out=features[1], casting="unsafe")
    return features


def haplotype_r2(index: np.ndarray, window: np.ndarray) -> np.ndarray:
    """Signed r² (sign of D) of one variant against each of a window's, as ``plink1.9 --clump``.

    ``index`` is 3 × samples and ``window`` 3 × variants × samples, both from :func:`ld_features`.
    NaN where either variant is monomorphic over the samples called at both (plink leaves
    such a pair out of every clump).

    Examples
    --------
    >>> g = ld_features(np.array([[0.0, 1, 2, 1, 0], [0, 1, 2, 1, 0], [2, 1, 0, 1, 2], [2, 2, 2, 2, 2]]),
    ...                 np.zeros((4, 5), bool))
    >>> haplotype_r2(g[:, 0], g).round(6).tolist()
    [1.0, 1.0, -1.0, nan]
    """
    # index feature × window feature × variant; each product reads one contiguous feature of the window
    # (variants × samples @ samples × 3: OpenBLAS is ~6× slower with the 3-row operand on the left)
    index = np.ascontiguousarray(index)
    counts = np.stack([feature @ index.T for feature in window]).transpose(2, 0, 1).astype(np.float64)  # exact
    d, freq1x, freqx1 = _em_d(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        return _signed_r2(d, freq1x, freqx1)


def _em_d(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """D of the ML haplotype frequencies, and the allele-1 frequencies at the first and second variant,
    from :func:`pair_counts`' sums of one pair per column (3 × 3 × pairs); D is NaN where the EM
    has no solution (a variant monomorphic over the samples called at both)."""
    both_counts, first_count_sum, second_count_sum = counts[0, 0], counts[0, 2], counts[2, 0]
    double_hets, both_called = counts[1, 1], counts[2, 2]
    known11 = (both_counts - double_hets) / 2           # haplotypes of phase-known genotypes
    known12 = first_count_sum - double_hets - known11
    known21 = second_count_sum - double_hets - known11
    known22 = 2 * (both_called - double_hets) - known11 - known12 - known21
    with np.errstate(divide="ignore", invalid="ignore"):
        reciprocal = 1.0 / (known11 + known12 + known21 + known22 + 2 * double_hets)
        f11, f12, f21, f22 = (known * reciprocal for known in (known11, known12, known21, known22))
        half_share = double_hets * reciprocal
        freq1x = f11 + f12 + half_share                 # allele 1 at the first variant
        freqx1 = f11 + f21 + half_share                 # allele 1 at the second variant
        increment = _best_double_het_share(known11, known12, known21, known22, double_hets,
                                           f11, f12, f21, f22, half_share)
        d = f11 + increment - freqx1 * freq1x
    unsolvable = ~np.isfinite(reciprocal) | ((double_hets == 0) & (f11 * f22 == 0) & (f12 * f21 == 0))
    return np.where(unsolvable, np.nan, d), freq1x, freqx1


def _signed_r2(d: np.ndarray, freq1x: np.ndarray, freqx1: np.ndarray) -> np.ndarray:
    """r² (with the sign of D) of haplotype frequencies, 0 where |D| is below plink's epsilon."""
    return np.where(np.abs(d) >= _SMALL_EPSILON, np.abs(d) * d / (freqx1 * freq1x * (1 - freq1x) * (1 - freqx1)),
                    np.where(np.isnan(d), np.nan, 0.0))


def _best_double_het_share(known11, known12, known21, known22, double_hets, f11, f12, f21, f22,
                           half_share) -> np.ndarray:
    """The share of double heterozygotes phased 11/22, picked among the EM cubic's roots as plink does."""
    prod_1122, prod_1221 = f11 * f22, f12 * f21
    roots, count = _cubic_real_roots(
        0.5 * (f11 + f22 - f12 - f21 - 3 * half_share),
        0.5 * (prod_1122 + prod_1221 + half_share * (f12 + f21 - f11 - f22 + half_share)),
        -0.5 * half_share * prod_1122)
    order = np.arange(3)[None, :]
    feasible = (order < count[:, None]) & (roots >= -_SMALLISH_EPSILON) & (roots <= (half_share + _SMALLISH_EPSILON)[:, None])
    # none feasible: a double root sits on a boundary, so both boundaries compete
    lost = ~feasible.any(axis=1)
    boundaries = np.stack([np.zeros_like(half_share), half_share, np.full_like(half_share, np.nan)], axis=1)
    roots = np.where(lost[:, None], boundaries, roots)
    feasible = np.where(lost[:, None], order < 2, feasible)
    first, last = feasible.argmax(axis=1), 2 - feasible[:, ::-1].argmax(axis=1)
    rows = np.arange(len(roots))
    roots[rows, first] = np.maximum(roots[rows, first], 0.0)
    roots[rows, last] = np.minimum(roots[rows, last], half_share)
    # no phase-known haplotype pairs: the roots are known in closed form
    xx, xy = f11 + f22, f12 + f21
    three = (xx + _SMALLISH_EPSILON < half_share + xy) & (xy + _SMALLISH_EPSILON < half_share + xx)
    closed = np.stack([np.zeros_like(half_share), np.where(three, (half_share + xy - xx) * 0.5, half_share),
                       np.where(three, half_share, np.nan)], axis=1)
    no_known_pairs = (prod_1122 == 0) & (prod_1221 == 0)
    roots = np.where(no_known_pairs[:, None], closed, roots)
    feasible = np.where(no_known_pairs[:, None], np.isfinite(closed), feasible)
    share = _plinks_pick(roots, feasible, known11, known12, known21, known22, double_hets, f11, f12, f21, f22, half_share)
    return np.where(double_hets > 0, share, 0.0)


def _plinks_pick(roots, feasible, known11, known12, known21, known22, double_hets, f11, f12, f21, f22,
                 half_share) -> np.ndarray:
    """plink 1.9 keeps the first feasible root, then takes each later root whose log-likelihood beats
    that first root's (it never updates the bar), so the last such root wins."""
    def log_likelihood(share):
        h11, h22 = f11[:, None] + share, f22[:, None] + share
        h12, h21 = f12[:, None] + (half_share[:, None] - share), f21[:, None] + (half_share[:, None] - share)
        total = double_hets[:, None] * np.log(h11 * h22 + h12 * h21)
        for known, freq in ((known11, h11), (known12, h12), (known21, h21), (known22, h22)):
            total = total + np.where(known[:, None] != 0, known[:, None] * np.log(freq), 0.0)
        return total

    rows = np.arange(len(roots))
    first = feasible.argmax(axis=1)
    likelihood = log_likelihood(np.where(feasible, roots, 0.0))
    beats = feasible & (np.arange(3)[None, :] > first[:, None]) & (likelihood > likelihood[rows, first][:, None])
    chosen = np.where(beats.any(axis=1), 2 - beats[:, ::-1].argmax(axis=1), first)
    return roots[rows, chosen]


def _cubic_real_roots(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Real roots of x³ + a x² + b x + c, ascending (n × 3, NaN-padded), and their count, with
    plink's merging of roots closer than its epsilon."""
    a2 = a * a
    qq = (a2 - 3 * b) * (1.0 / 9.0)
    rr = (2 * a2 * a - 9 * a * b + 27 * c) * (1.0 / 54.0)
    r2, q3, a3 = rr * rr, qq * qq * qq, a * (1.0 / 3.0)
    three = r2 < q3
    sq = np.sqrt(np.where(three, qq, 1.0))
    angle = np.arccos(np.clip(np.where(three, rr / (qq * sq), 0.0), -1, 1)) * (1.0 / 3.0)
    trig = np.sort((-2 * sq)[:, None] * np.cos(angle[:, None] + np.array([0, 2 * np.pi / 3, -2 * np.pi / 3]))
                   - a3[:, None], axis=1)
    low_pair, high_pair = trig[:, 1] - trig[:, 0] < _EPSILON, trig[:, 2] - trig[:, 1] < _EPSILON
    trig_count = np.where(low_pair, np.where(trig[:, 2] - trig[:, 0] < _EPSILON, 1, 2), np.where(high_pair, 2, 3))
    trig = np.where(low_pair[:, None], trig[:, [0, 2, 2]], trig)
    # one real root, or a double root beside a single one
    big = -np.power(np.abs(rr) + np.sqrt(np.where(three, 0.0, r2 - q3)), 1 / 3)
    big = np.where(rr < 0, -big, big)
    small = qq / np.where(big == 0, 1.0, big)
    single = big + small - a3
    double = np.abs(big - small) < 8 * _EPSILON
    other = -big - a3
    cardano = np.stack([np.where(double & (big >= 0), other, single),
                        np.where(double & (big >= 0), single, other), np.full_like(a, np.nan)], axis=1)
    cardano[big == 0, 0] = -a3[big == 0]
    cardano_count = np.where(double & (big != 0), 2, 1)
    roots = np.where(three[:, None], trig, cardano)
    count = np.where(three, trig_count, cardano_count)
    roots[np.arange(3)[None, :] >= count[:, None]] = np.nan
    return roots, count


def pair_counts(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """3 × 3 × first variants × second variants float64: every pair's sums over samples of one feature of
    the first variant times one of the second (feature order of :func:`ld_features`), in one matrix product.

    ``first`` and ``second`` are 3 × variants × samples from :func:`ld_features`; the sums are
    exact counts (float32 products stay exact below 2²² samples). Everything pairwise
    (:func:`genotype_r`, :func:`haplotype_ld`) comes from them.
    """
    k, m = first.shape[1], second.shape[1]
    product = first.reshape(3 * k, -1) @ second.reshape(3 * m, -1).T     # (3 first) × (3 second)
    return product.reshape(3, k, 3, m).transpose(0, 2, 1, 3).astype(np.float64)


def genotype_r(counts: np.ndarray) -> np.ndarray:
    """Pearson r of allele counts over the samples called at both variants, as ``plink1.9 --r`` (its
    square is ``--r2``'s R2), from :func:`pair_counts`; NaN where either variant is monomorphic there.

    Examples
    --------
    >>> g = ld_features(np.array([[0.0, 1, 2, 1, 0], [0, 1, 2, 2, 0], [2, 1, 0, 1, 9]]),
    ...                 np.array([[False] * 5, [False] * 5, [False] * 4 + [True]]))
    >>> genotype_r(pair_counts(g[:, :1], g))[0].round(6).tolist()
    [1.0, 0.896421, -1.0]
    """
    # allele count x, heterozygote h, called c of each variant; x² = 2x − h for x in {0, 1, 2}
    called = counts[2, 2]
    sum_first, sum_second, products = counts[0, 2], counts[2, 0], counts[0, 0]
    squares_first, squares_second = 2 * sum_first - counts[1, 2], 2 * sum_second - counts[2, 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        return (called * products - sum_first * sum_second) / np.sqrt(
            (called * squares_first - sum_first**2) * (called * squares_second - sum_second**2))


def haplotype_ld(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r² and D′ (both with the sign of D) of the pairs of :func:`pair_counts` (3 × 3 × pairs), from the
    haplotype frequencies plink1.9 estimates by EM from unphased calls over the samples called at
    both: ``plink1.9 --r2 dprime``'s R2 (which --clump uses too) and ``dprime-signed``'s DP. NaN
    where either variant is monomorphic there.

    Examples
    --------
    >>> g = ld_features(np.array([[0.0, 1, 2, 1, 0], [0, 1, 2, 2, 0]]), np.zeros((2, 5), bool))
    >>> [values.round(6).tolist() for values in haplotype_ld(pair_counts(g[:, :1], g[:, 1:])[:, :, 0])]
    [[0.666667], [1.0]]
    """
    d, freq1x, freqx1 = _em_d(counts)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_max = np.where(d < 0, np.minimum(freq1x * freqx1, (1 - freq1x) * (1 - freqx1)),
                         np.minimum(freq1x * (1 - freqx1), (1 - freq1x) * freqx1))
        return _signed_r2(d, freq1x, freqx1), np.where(np.abs(d) >= _SMALL_EPSILON, d / d_max, d * 0)


def bp_radius(kb: float) -> int:
    """The largest distance in bp from an index variant to a clump member: plink's kb · 1000 − 1.

    Examples
    --------
    >>> bp_radius(250)
    249999
    """
    return int(kb * 1000 * (1 + _SMALL_EPSILON) - 1)


def near_any(pos: np.ndarray, centres: np.ndarray, radius: int) -> np.ndarray:
    """Which positions lie within ``radius`` bp of one of the ``centres`` (sorted): the variants a clump
    of an index candidate may hold, so the only ones whose genotypes clumping reads.

    Examples
    --------
    >>> near_any(np.array([5, 100, 240, 900]), np.array([100, 300]), 60).tolist()
    [False, True, True, False]
    """
    if not len(centres):
        return np.zeros(len(pos), bool)
    nearest = np.minimum(np.searchsorted(centres, pos - radius), len(centres) - 1)   # first centre ≥ pos − radius
    return np.abs(centres[nearest] - pos) <= radius


class WindowLd:
    """One chromosome's variants for clumping, and the r² of index variants against their windows.

    ``features`` (3 × variants × samples, from :func:`ld_features`) and ``pos`` describe the
    variants in genome order (positions non-decreasing). The window of a variant holds those
    within ``kb`` kb of it (plink's --clump-kb); its r² row is computed once, with three matrix
    products, and kept, so the phenotypes of a scan clumped on the same variants share it.
    """

    def __init__(self, features: np.ndarray, pos: np.ndarray, *, kb: float = 250) -> None:
        assert features.shape[1] == len(pos) and bool(np.all(np.diff(pos) >= 0)), "variants in genome order"
        self.features, self.pos, self.radius = features, np.asarray(pos), bp_radius(kb)
        self._rows: dict[int, tuple[int, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.pos)

    def window_r2(self, index: int) -> tuple[int, np.ndarray]:
        """The first variant of ``index``'s window, and the signed r² of ``index`` with each variant of
        the window (itself included)."""
        if index not in self._rows:
            start = int(np.searchsorted(self.pos, self.pos[index] - self.radius, side="left"))
            stop = int(np.searchsorted(self.pos, self.pos[index] + self.radius, side="right"))
            self._rows[index] = start, haplotype_r2(self.features[:, index], self.features[:, start:stop])
        return self._rows[index]


@dataclass(frozen=True)
class Clumps:
    """The clumps of one chromosome's variants, in the order plink reports them (by index p).

    ``index`` are positions into the variants given; ``members[k]`` the positions of clump k's
    variants with p < p2 besides its index, in genome order (plink's SP2); ``bins`` is
    clumps × 5, the counts of all its variants besides the index by p bin (NSIG, S05, S01,
    S001, S0001; their sum is plink's TOTAL).
    """

    index: np.ndarray           # clumps
    bins: np.ndarray            # clumps × 5
    members: list[np.ndarray]   # clumps × (variable)


def clump(ld: WindowLd, p: np.ndarray, *, p1: float = 1e-4, p2: float = 1e-2, r2: float = 0.5) -> Clumps:
    """Greedy LD clumping of one chromosome's variants, as ``plink1.9 --clump`` with the same flags
    (--clump-kb is ``ld``'s window).

    ``p`` are the variants' p-values, NaN for those this scan lacks (they take no part). Each
    variant with p ≤ ``p1``, in order of p (ties by genome order), that no earlier clump took
    becomes an index; its clump takes every untaken variant of its window whose |r²| with it
    exceeds ``r2``, whatever its p. To match plink's TOTAL and NSIG, give every variant of
    the results within the window of an index candidate, not only those with p ≤ ``p2``.

    Examples
    --------
    >>> g = ld_features(np.array([[0.0, 1, 2, 1, 0], [0, 1, 2, 1, 0], [2, 1, 0, 1, 2], [1, 0, 1, 2, 0]]),
    ...                 np.zeros((4, 5), bool))
    >>> found = clump(WindowLd(g, np.array([100, 200, 300, 400])), np.array([1e-9, 0.03, 1e-3, 1e-5]))
    >>> found.index.tolist(), [m.tolist() for m in found.members], found.bins.tolist()
    ([0, 3], [[2], []], [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0]])
    """
    assert len(ld) == len(p)
    usable = np.isfinite(p)
    taken = ~usable
    indexes, bins, members = [], [], []
    for i in (c for c in np.argsort(p, kind="stable") if usable[c] and p[c] <= p1):
        if taken[i]:
            continue
        start, row = ld.window_r2(i)
        window = np.arange(start, start + len(row))
        linked = window[(np.abs(row) > r2) & ~taken[window] & (window != i)]     # NaN never links
        taken[linked] = True
        indexes.append(i)
        bins.append(np.bincount(np.searchsorted(-np.array(BIN_EDGES), -p[linked], side="left"), minlength=5))
        members.append(linked[p[linked] < p2])
    return Clumps(np.array(indexes, dtype=np.intp), np.array(bins, dtype=np.int64).reshape(-1, 5), members)


# -- LD scores, as LDSC's --l2 -----------------------------------------------------------------

@dataclass(frozen=True)
class LdscGenotypes:
    """Variants' genotypes as LDSC's --l2 reads them, and what it makes of each variant (:func:`ldsc_genotypes`).

    LDSC sets a missing call to its variant's mean over the called samples, then centres and
    scales each variant to variance 1 over all N samples, so that the product of two variants'
    vectors over N is their correlation r. Here the genotypes stay as read (``dosages``, 0 at
    a missing call: hard calls as uint8 allele counts 0, 1 or 2, so their products are exact in
    integers; dosages as floats), with the sums that standardisation needs: ``total`` and
    ``called`` (the mean is total / called) and ``spread``, √(Σ over called samples of
    (g − mean)² / N).
    """

    dosages: np.ndarray                 # variants × samples, 0 at missing calls
    missing: scipy.sparse.csr_array     # variants × samples, the missing calls
    total: np.ndarray                   # Σ of dosages over the called samples (float64)
    called: np.ndarray                  # called samples (int64)
    spread: np.ndarray                  # the standard deviation LDSC divides by (0: no variance)
    maf: np.ndarray                     # minor allele frequency over the called samples, as LDSC computes it
    kept: np.ndarray                    # whether LDSC's --l2 keeps the variant (bool)

    def take(self, rows: np.ndarray) -> LdscGenotypes:
        """The variants ``rows`` (positions), in that order."""
        return LdscGenotypes(self.dosages[rows], self.missing[rows], self.total[rows], self.called[rows],
                             self.spread[rows], self.maf[rows], self.kept[rows])


def ldsc_kept(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray, *,
              min_maf: float = 0.0) -> np.ndarray:
    """Which variants LDSC's --l2 keeps (:func:`ldsc_genotypes`' ``kept``).

    ``dosages`` and ``missing`` are variants × samples, as :func:`ld_features` takes them.

    Examples
    --------
    >>> ldsc_kept(np.array([[0.0, 1, 2], [1, 1, 0], [2, 2, 0]]), np.array([[0, 0, 0], [0, 0, 1], [0, 0, 1]], bool)).tolist()
    [True, False, False]
    >>> ldsc_kept(np.array([[0.0, 0, 0, 0, 1], [0, 0, 1, 1, 1]]), np.zeros((2, 5), bool), min_maf=0.1).tolist()
    [False, True]
    """
    return ldsc_genotypes(dosages, missing, min_maf=min_maf).kept


def standardized_genotypes(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray) -> np.ndarray:
    """Variants × samples float32: each variant's dosages with missing calls set to its mean over the
    called samples, centred and scaled to variance 1 over all samples, as LDSC standardises them
    (so one product of two rows over the number of samples is their correlation).

    Examples
    --------
    >>> standardized_genotypes(np.array([[0.0, 2, 0, 0]]), np.array([[0, 0, 0, 1]], bool)).astype(float).round(4).tolist()
    [[-0.8165, 1.633, -0.8165, 0.0]]
    """
    standardized = np.empty(np.shape(dosages), np.float32)
    _ldsc_genotypes(dosages, missing, standardized)
    return standardized


def ldsc_genotypes(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray, *, min_maf: float = 0.0
                   ) -> LdscGenotypes:
    """What LDSC makes of each variant, in one pass over its dosages (uint8 allele counts 0, 1, 2 summed in
    integers, float dosages in float64):

    * the sums that standardise it (:class:`LdscGenotypes`; :func:`standardized_genotypes` applies them);
    * the minor allele frequency over the called samples (0 where none is called), as LDSC computes it: f, the
      frequency of the ref allele (a .bim's A2, the allele LDSC counts), then min(f, 1 − f), so a threshold such
      as ``--maf 0.05`` or M_5_50's falls the same way as LDSC's for a frequency exactly at it;
    * whether LDSC's --l2 keeps it: a minor allele frequency above ``min_maf`` (its --maf; 0, its default, keeps
      every polymorphic variant), and not every sample heterozygous or missing (no usable variance).

    Examples
    --------
    >>> dosages, missing = np.array([[0.0, 2, 0, 0], [1, 1, 0, 0]]), np.array([[0, 0, 0, 1], [0, 0, 1, 1]], bool)
    >>> found = ldsc_genotypes(dosages, missing)
    >>> (found.total / found.called).round(4).tolist(), found.spread.round(4).tolist(), found.maf.round(4).tolist()
    ([0.6667, 1.0], [0.8165, 0.0], [0.3333, 0.5])
    >>> found.kept.tolist()
    [True, False]
    """
    return _ldsc_genotypes(dosages, missing, np.empty((0, 0), np.float32), min_maf=min_maf)


def _ldsc_genotypes(dosages: np.ndarray, missing: np.ndarray | scipy.sparse.sparray, standardized: np.ndarray, *,
                    min_maf: float = 0.0) -> LdscGenotypes:
    """:func:`ldsc_genotypes`, also writing the standardised genotypes into ``standardized`` unless it is empty."""
    dosages = np.ascontiguousarray(dosages)
    lost = scipy.sparse.csr_array(missing != 0 if scipy.sparse.issparse(missing) else np.asarray(missing, bool))
    if _any_stored_at(dosages, lost.indptr, lost.indices):    # the products (and the counts' sums) need 0 there
        dosages = dosages.copy()
        dosages[lost.nonzero()] = 0
    total, called, spread, maf, usable = (np.empty(len(dosages)), np.empty(len(dosages), np.int64),
                                          np.empty(len(dosages)), np.empty(len(dosages)),
                                          np.empty(len(dosages), np.bool_))
    if dosages.dtype == np.uint8 and not standardized.shape[0]:
        _count_rows(dosages, lost.indptr, total, called, spread, maf, usable)
    else:
        _ldsc_rows(dosages, lost.indptr, lost.indices, total, called, spread, maf, usable, standardized)
    return LdscGenotypes(dosages, lost, total, called, spread, maf, usable & (maf > min_maf))


@numba.njit(nogil=True, cache=True)
def _any_stored_at(dosages, indptr, indices):  # pragma: no cover
    """Whether any missing call (``indices[indptr[v]:indptr[v + 1]]`` of row v) holds a value other than 0."""
    for v in range(dosages.shape[0]):
        for at in range(indptr[v], indptr[v + 1]):
            if dosages[v, indices[at]] != 0:
                return True
    return False


@numba.njit(nogil=True, cache=True)
def _count_rows(counts, indptr, total, called, spread, maf, usable):  # pragma: no cover
    """:func:`_ldsc_rows` for allele counts 0, 1, 2 with 0 at the missing calls: one pass of integer sums (the
    count and its low bit, the hets), so the squares about the mean, (n Σ g² − (Σ g)²) / n, are exact."""
    samples = counts.shape[1]
    for v in range(counts.shape[0]):
        row, sums, hets = counts[v], 0, 0
        for s in range(samples):
            sums += row[s]
            hets += row[s] & 1
        count = samples - (indptr[v + 1] - indptr[v])
        squares = hets + 4 * ((sums - hets) // 2)
        total[v], called[v] = sums, count
        spread[v] = np.sqrt((count * squares - sums * sums) / count / samples) if count > 0 else 0.0
        maf[v], usable[v] = _frequency_checks(sums, hets, count, samples)


@numba.njit(nogil=True, cache=True)
def _frequency_checks(sums, hets, count, samples):  # pragma: no cover
    """A variant's minor allele frequency as LDSC computes it (from the ref allele's, over the ``count`` called
    samples whose alt alleles add to ``sums``), and whether it has usable variance (not every sample het or
    missing)."""
    alleles = 2.0 * count
    ref_freq = (alleles - sums) / alleles if alleles > 0 else 0.0
    return min(ref_freq, 1 - ref_freq), hets + samples - count < samples


@numba.njit(nogil=True, cache=True, fastmath={"reassoc"})
def _ldsc_rows(dosages, indptr, indices, total, called, spread, maf, usable, standardized):  # pragma: no cover
    """:func:`ldsc_genotypes`' loop, a variant at a time (its row stays in cache): ``indices[indptr[v]:indptr[v + 1]]``
    are variant v's missing samples, whose stored values never count (sums may be reordered, so they vectorise);
    ``standardized`` (variants × samples, or empty) receives the standardised genotypes."""
    samples = dosages.shape[1]
    lost = np.zeros(samples, np.bool_)
    for v in range(dosages.shape[0]):
        row, gone = dosages[v], indices[indptr[v]:indptr[v + 1]]
        lost[gone] = True
        sums, hets, count = 0.0, 0, 0
        for s in range(samples):
            value = 0.0 if lost[s] else np.float64(row[s])
            sums += value
            hets += (not lost[s]) and value == 1.0
            count += not lost[s]
        maf[v], usable[v] = _frequency_checks(sums, hets, count, samples)
        mean = sums / count if count > 0 else 0.0
        squares = 0.0
        for s in range(samples):
            centred = 0.0 if lost[s] else row[s] - mean
            squares += centred * centred
        total[v], called[v], spread[v] = sums, count, np.sqrt(squares / samples)
        if standardized.shape[0]:
            divisor = spread[v] if spread[v] > 0 else 1.0
            out = standardized[v]
            for s in range(samples):
                out[s] = 0.0 if lost[s] else (row[s] - mean) / divisor
        lost[gone] = False


def unbiased_r2(r: np.ndarray, n_samples: int) -> np.ndarray:
    """LDSC's bias-corrected r²: r² − (1 − r²) / (N − 2), computed in float64.

    Examples
    --------
    >>> unbiased_r2(np.array([1.0, 0.5, 0.0]), 102).tolist()
    [1.0, 0.2425, -0.01]
    """
    r2 = np.square(np.asarray(r, np.float64))
    return r2 - (1 - r2) / _r2_bias_divisor(n_samples)


@numba.njit(nogil=True, cache=True)
def _r2_bias_divisor(n_samples):  # pragma: no cover
    """N − 2, the divisor of LDSC's bias correction (N itself for N ≤ 2, where it is undefined)."""
    return n_samples - 2 if n_samples > 2 else n_samples


WINDOW_BAND = 64   # new variants per product of WindowLdScores: small against a window, wide enough for the kernels


class WindowLdScores:
    """LD scores of one chromosome's variants, streamed in genome order, as ``ldsc --l2``.

    The LD score of a variant is the sum of :func:`unbiased_r2` with every variant whose
    coordinate (bp or cM) lies within ``max_dist`` of its own, itself included (LDSC's
    --ld-wind-kb × 1000 or --ld-wind-cm, exactly, as its --chunk-size 1 computes it). Each call
    of :meth:`add` takes the next variants' coordinates (non-decreasing) and genotypes
    (:class:`LdscGenotypes`), and hands back the scores of the earliest variants no later one
    can reach. Memory holds one window of genotypes, whatever the chromosome's length.

    The r of two variants i, j is never formed from standardised floats. With g their dosages
    (0 at a missing call), c their called indicators, μ and σ their means and spreads:

        N σᵢ σⱼ r = Σ gᵢgⱼ − μⱼ Σ gᵢcⱼ − μᵢ Σ cᵢgⱼ + μᵢμⱼ Σ cᵢcⱼ

    The first sum is the one matrix product, WINDOW_BAND new variants at a time against
    themselves and the earlier variants within reach: for hard calls, an exact integer product
    of allele counts (:func:`biolake.stats.integer_products.count_products`, several times the
    float32 rate). The others need only the missing calls: Σ gᵢcⱼ = totalᵢ − Σ over j's missing
    samples of gᵢ, and Σ cᵢcⱼ = N − mᵢ − mⱼ + (samples missing at both). Those sums add rows of
    the window's genotypes laid out samples × variants (a few windows wide, so the rows the
    missing calls pick stay in cache) and of the band's. The pair sums combine in float64. At 1 %
    missing calls these sums cost about half of what the product does.

    Examples
    --------
    >>> counts = np.array([[0, 1, 2, 1, 0], [0, 1, 2, 1, 0], [2, 1, 0, 0, 1]], np.uint8)
    >>> g = ldsc_genotypes(counts, np.zeros((3, 5), bool))
    >>> scores = WindowLdScores(max_dist=100, n_samples=5)
    >>> scores.add(np.array([100, 150]), g.take([0, 1])).tolist()      # the second may reach a later variant
    []
    >>> scores.add(np.array([300]), g.take([2])).round(3).tolist()      # which lies beyond both
    [2.0, 2.0]
    >>> scores.finish().round(3).tolist()
    [1.0]
    """

    def __init__(self, *, max_dist: float, n_samples: int) -> None:
        self.max_dist, self.n_samples = max_dist, n_samples
        self._coords = np.zeros(0)
        self._buffer = np.zeros((0, n_samples), np.uint8)        # the held variants' genotypes lie in it, from _first
        self._first = 0
        self._columns = np.zeros((n_samples, 0), np.uint8)       # those in reach of the last band, samples × variants:
        self._column_of = 0                                      # held variant h in column h + _column_of
        self._total, self._called, self._spread = np.zeros(0), np.zeros(0, np.int64), np.zeros(0)
        self._lost_at, self._lost = np.zeros(1, np.int64), np.zeros(0, np.int32)   # held missing calls, as CSR
        self._scores = np.zeros(0)                               # the held variants' sums so far

    def add(self, coords: np.ndarray, genotypes: LdscGenotypes) -> np.ndarray:
        """Take in the next variants; return the finished LD scores of the earliest held ones, in order."""
        coords = np.asarray(coords, np.float64)
        assert genotypes.dosages.shape == (len(coords), self.n_samples) and \
            bool(np.all(np.diff(np.r_[self._coords, coords]) >= 0)), "variants in genome order"
        held = len(self._coords)
        self._coords = np.r_[self._coords, coords]
        self._append(genotypes)
        self._scores = np.r_[self._scores, np.zeros(len(coords))]
        for first in range(held, len(self._coords), WINDOW_BAND):   # a band of new variants at a time
            self._add_band(first, min(first + WINDOW_BAND, len(self._coords)))
        if not len(coords):
            return np.zeros(0)
        done = int(np.count_nonzero(np.abs(coords[-1] - self._coords) > self.max_dist))  # a prefix: coords sorted
        return self._retire(done)

    def _append(self, genotypes: LdscGenotypes) -> None:
        """Put new variants' genotypes and sums after the held ones. The buffer moves the held ones to its front,
        or grows (to twice what it must hold), only when they would not fit after them. Hard calls stay uint8
        until a block of dosages arrives; from then on the chromosome's genotypes are float64."""
        dtype = np.uint8 if self._buffer.dtype == genotypes.dosages.dtype == np.uint8 else np.float64
        held, total = len(self._coords) - len(genotypes.dosages), len(self._coords)
        if dtype != self._buffer.dtype or self._first + total > len(self._buffer):
            rows = self._buffer             # moved within (numpy copies an overlap safely)
            if dtype != self._buffer.dtype or total > len(self._buffer):
                rows = np.empty((max(len(self._buffer), 2 * total), self.n_samples), dtype)
            rows[:held] = self._buffer[self._first:self._first + held]
            self._buffer, self._first, self._columns = rows, 0, self._columns.astype(dtype, copy=False)
        self._buffer[self._first + held:self._first + total] = genotypes.dosages
        self._total = np.r_[self._total, genotypes.total]
        self._called = np.r_[self._called, genotypes.called]
        self._spread = np.r_[self._spread, genotypes.spread]
        self._lost_at = np.r_[self._lost_at, self._lost_at[-1] + genotypes.missing.indptr[1:]]
        self._lost = np.r_[self._lost, genotypes.missing.indices.astype(np.int32)]

    def _add_band(self, first: int, stop: int) -> None:
        """Add the r² of the held variants ``first:stop`` (a band) with each other and with every earlier one in
        reach (those the band's first variant reaches): each pair once, to both variants' sums."""
        at = self._first
        start = self._out_of_reach(first, first)
        band = self._buffer[at + first:at + stop].T.copy()                # samples × band, for the product
        column = self._place_columns(start, first, stop)
        self._columns[:, column + first:column + stop] = band
        lost_rows = self._lost[self._lost_at[first]:self._lost_at[stop]]     # the band's missing calls
        lost_counts = np.diff(self._lost_at[first:stop + 1])
        lost_columns = np.repeat(np.arange(stop - first), lost_counts)
        rows = self._buffer[at + start:at + stop]
        if band.dtype == np.uint8:
            sum_type = np.int16 if lost_counts.max() <= _INT16_COUNTS else np.int32
        else:
            sum_type = np.float64
        over_band_missing = np.zeros((stop - first, stop - start), sum_type)
        _add_rows_at(self._columns, column + start, column + stop, self._lost_at[first:stop + 1], self._lost,
                     over_band_missing)                                   # Σ gᵢ over j's missing samples
        if band.dtype == np.uint8:
            products = count_products(rows, band)
            codes = band.astype(np.int16)                                 # gⱼ + 256 at j's missing calls
            codes[lost_rows, lost_columns] = _MISSING_CODE
            over_rows_missing, both_missing = np.empty(products.shape, np.int32), np.empty(products.shape, np.int32)
            _add_codes_at(codes, self._lost_at[start:stop + 1], self._lost, over_rows_missing, both_missing)
        else:
            products = rows @ band
            marks = np.zeros(band.shape, np.float64)                      # 1 at a missing call
            marks[lost_rows, lost_columns] = 1
            over_rows_missing, both_missing = np.zeros(products.shape), np.zeros(products.shape)
            _add_rows_at(band, 0, stop - first, self._lost_at[start:stop + 1], self._lost, over_rows_missing)
            _add_rows_at(marks, 0, stop - first, self._lost_at[start:stop + 1], self._lost, both_missing)
        _add_band_scores(products, over_band_missing, over_rows_missing, both_missing, start, first,
                         self._coords, self._total, self._called, self._spread, self.n_samples, self.max_dist,
                         self._scores)

    def _place_columns(self, start: int, first: int, stop: int) -> int:
        """Make room in the samples × variants layout for the band ``first:stop`` after the held variants
        ``start:first`` in its reach, moving those to the front (or into a larger array, four times the width
        needed) only when the band would not fit; returns the column of held variant 0. The layout stays a few
        windows wide, so the rows the missing calls pick stay in cache."""
        column, width = self._column_of, self._columns.shape[1]
        if column + stop > width:
            columns = self._columns
            if stop - start > width:
                columns = np.empty((self.n_samples, 4 * (stop - start)), self._columns.dtype)
            columns[:, :first - start] = self._columns[:, column + start:column + first]
            self._columns, self._column_of = columns, -start
        return self._column_of

    def _out_of_reach(self, variant: int, before: int) -> int:
        """How many of the held variants before ``before`` lie beyond ``max_dist`` of ``variant``: a prefix, found
        by the same test as the pairs', so a pair exactly ``max_dist`` apart is never dropped by rounding."""
        return int(np.count_nonzero(self._coords[variant] - self._coords[:before] > self.max_dist))

    def finish(self) -> np.ndarray:
        """The LD scores of the variants still held (the chromosome has ended)."""
        return self._retire(len(self._coords))

    def _retire(self, count: int) -> np.ndarray:
        finished = self._scores[:count]
        self._coords, self._scores = self._coords[count:], self._scores[count:]
        self._total, self._called, self._spread = self._total[count:], self._called[count:], self._spread[count:]
        self._lost = self._lost[self._lost_at[count]:]
        self._lost_at = self._lost_at[count:] - self._lost_at[count]
        self._first += count
        self._column_of += count
        return finished


@numba.njit(nogil=True, cache=True)
def _add_rows_at(samples_major, low, high, lost_at, lost, out):  # pragma: no cover
    """out[k] += Σ over the samples s of list k of samples_major[s, low:high], list k being
    ``lost[lost_at[k]:lost_at[k + 1]]`` (a variant's missing samples). Rows are slices of contiguous
    rows, so the adds vectorise."""
    for k in range(out.shape[0]):
        row = out[k]
        for at in range(lost_at[k], lost_at[k + 1]):
            values = samples_major[lost[at]][low:high]
            for c in range(row.shape[0]):
                row[c] += values[c]


_MISSING_CODE = 256   # a missing call's code in _add_codes_at: above any sum of 127 allele counts
_INT16_COUNTS = 16383  # allele counts summed over at most this many samples fit an int16


@numba.njit(nogil=True, cache=True)
def _add_codes_at(codes, lost_at, lost, counts, both):  # pragma: no cover
    """For each list k of samples (``lost[lost_at[k]:lost_at[k + 1]]``, a variant's missing calls) and each band
    variant j: counts[k, j] = Σ of j's allele counts there, both[k, j] = how many of them j misses too. ``codes``
    is samples × band: the allele count, or 256 at a missing call (where the count is 0). For lists of at most
    127 samples the two sums are one int16 sum, count + 256 × both (the count stays below 256), so one narrow add
    serves both; longer lists split each code."""
    acc = np.empty(codes.shape[1], np.int16)
    for k in range(counts.shape[0]):
        first, stop = lost_at[k], lost_at[k + 1]
        if stop - first <= 127:
            acc[:] = 0
            for at in range(first, stop):
                values = codes[lost[at]]
                for c in range(acc.shape[0]):
                    acc[c] += values[c]
            for c in range(acc.shape[0]):
                counts[k, c], both[k, c] = acc[c] & 255, acc[c] >> 8
        else:
            counts[k], both[k] = 0, 0
            for at in range(first, stop):
                values = codes[lost[at]]
                for c in range(acc.shape[0]):
                    counts[k, c] += values[c] & 255
                    both[k, c] += values[c] >> 8


@numba.njit(nogil=True, cache=True)
def _add_band_scores(products, rows_over_band_missing, band_over_rows_missing, both_missing, start, first,
                     coords, total, called, spread, n_samples, max_dist, scores):  # pragma: no cover
    """Each pair of held variant i = start + a (a row) and band variant j = first + b (a column) with i ≤ j and
    |coordᵢ − coordⱼ| ≤ max_dist: r from the sums (see :class:`WindowLdScores`), its bias-corrected r² added to
    both sums (once where i = j)."""
    bias = _r2_bias_divisor(n_samples)
    for a in range(products.shape[0]):
        i = start + a
        mean_i = total[i] / called[i] if called[i] > 0 else 0.0
        scale_i = n_samples * (spread[i] if spread[i] > 0 else 1.0)
        for b in range(products.shape[1]):
            j = first + b
            if j < i or abs(coords[i] - coords[j]) > max_dist:
                continue
            mean_j = total[j] / called[j] if called[j] > 0 else 0.0
            both_called = called[i] + called[j] - n_samples + both_missing[a, b]   # N − mᵢ − mⱼ + both missing
            centred = (products[a, b] - mean_j * (total[i] - rows_over_band_missing[b, a])
                       - mean_i * (total[j] - band_over_rows_missing[a, b]) + mean_i * mean_j * both_called)
            r = centred / (scale_i * (spread[j] if spread[j] > 0 else 1.0))
            share = r * r - (1 - r * r) / bias
            scores[i] += share
            if j != i:
                scores[j] += share
