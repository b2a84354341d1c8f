"""Variant quality control as PLINK 2 defines it: missing calls, Hardy–Weinberg, allele frequency, imputation quality.

A :class:`VariantQc` holds the thresholds of ``--geno``, ``--hwe``, ``--maf``, ``--mac`` and
``--min-info`` and :meth:`VariantQc.passing` applies them to one block of dosages over the
analysis samples, in plink2's order, so each variant that fails is counted once, under the
first filter it fails (the counts plink2's log prints):

1. ``--geno``: more than that fraction of the samples without a hard call;
2. ``--hwe``: Hardy–Weinberg exact test p-value (Wigginton, Cutler & Abecasis 2005; mid-p
   optional: ties with the observed count weigh half) of the hard calls below it;
3. ``--maf`` / ``--mac``: minor allele frequency / count, from dosages over the called samples, below it;
4. ``--min-info``: MaCH r² (the variance of the dosages over its binomial expectation, plink2's
   ``--mach-r2-filter`` and ``--freq cols=+machr2``) below it; a monomorphic variant (r² undefined) passes.

Hard calls are plink2's: a dosage within :data:`HARD_CALL_THRESHOLD` of 0, 1 or 2 is that call,
any other dosage (and a missing one) is no call. Hardy–Weinberg and MaCH r² are computed on the
autosomes and XY (X's pseudo-autosomal regions) only: plink2 tests chromosome X by Graffelman and Weir's
method, which needs each sample's sex, and computes no MaCH r² on X and MT. On X, a male's call counts one
allele in --maf and --mac, as in plink2. numpy and numba only, no file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse

from biolake.lake.chromosomes import AUTOSOMES

HARD_CALL_THRESHOLD = 0.1            # plink2 --hard-call-threshold's default
DIPLOID = frozenset([*AUTOSOMES, "XY"])   # where --hwe and --min-info apply (XY: X's pseudo-autosomal regions)
FILTERS = ("--geno", "--hwe", "--maf/--mac", "--min-info")   # plink2's order; a failing variant counts under the first


@dataclass(frozen=True)
class VariantQc:
    """Thresholds of the variant filters (None or 0: not applied); see the module docstring.

    Examples
    --------
    >>> calls = np.array([[0.0, 1, 2, 1, 0, 1], [0, 0, 0, 0, 0, 1], [2, 2, 0, 0, 0, 0]])
    >>> no_call = scipy.sparse.csr_array(calls.shape)
    >>> kept, removed = VariantQc(min_mac=2, hwe=0.05).passing(calls, no_call, chrom="1")
    >>> kept.tolist(), removed
    ([True, False, False], {'--hwe': 1, '--maf/--mac': 1})
    """

    max_missing: float | None = None   # --geno: largest fraction of samples without a hard call
    hwe: float | None = None           # --hwe: smallest Hardy–Weinberg exact test p-value
    hwe_midp: bool = False             # --hwe's mid-p variant
    min_maf: float = 0.0               # --maf: smallest minor allele frequency
    min_mac: float = 0.0               # --mac: smallest minor allele count (dosage)
    min_info: float | None = None      # --min-info: smallest MaCH r²

    @property
    def applied(self) -> list[str]:
        """The filters these thresholds set (of :data:`FILTERS`, in order)."""
        return [name for name, value in zip(FILTERS, (self.max_missing, self.hwe, self.min_maf or self.min_mac or None,
                                                      self.min_info)) if value is not None]

    @property
    def active(self) -> bool:
        """Whether any filter applies."""
        return bool(self.applied)

    def passing(self, dosages: np.ndarray, missing: scipy.sparse.csr_array, *, chrom: str,
                haploid: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, int]]:
        """Which variants (rows of ``dosages``, 0 where ``missing`` marks a call as missing) pass every filter,
        and how many each filter :attr:`applied` removed. ``haploid`` marks the samples with one copy of
        ``chrom`` (males on X, their dosages stored 0/2): their calls count one allele each in --maf and --mac,
        as plink2 counts them."""
        marked = np.diff(missing.indptr)
        kept = np.ones(len(dosages), bool)
        removed = dict.fromkeys(self.applied, 0)
        diploid = chrom in DIPLOID
        counts = hard_call_counts(dosages, marked) if self.max_missing is not None or (
            self.hwe is not None and diploid) else None

        def apply(name: str, fails: np.ndarray) -> None:
            removed[name] = int((kept & fails).sum())
            kept[fails] = False

        if self.max_missing is not None:
            apply("--geno", counts[:, 3] > most(self.max_missing, dosages.shape[1]))
        if self.hwe is not None and diploid:
            apply("--hwe", hwe_exact_p(counts[:, 1], counts[:, 0], counts[:, 2], midp=self.hwe_midp) < self.hwe)
        if self.min_maf > 0 or self.min_mac > 0:
            alt, alleles = allele_counts(dosages, missing, haploid)
            minor = np.minimum(alt, alleles - alt)
            with np.errstate(invalid="ignore", divide="ignore"):
                frequency = minor / alleles     # NaN without a call: fails, as every comparison with NaN
            apply("--maf/--mac", ~(frequency >= self.min_maf) | ~(minor >= self.min_mac))
        if self.min_info is not None and diploid:
            apply("--min-info", mach_r2(dosages, marked) < self.min_info)
        return kept, removed


def most(fraction: float, total: int) -> float:
    """The largest count that is at most ``fraction`` of ``total`` (what --geno and --mind allow), with a margin
    for the rounding of ``fraction`` itself (0.05 × 300 is 15.000000000000002).

    >>> most(0.05, 300), most(0.1, 15)
    (15.0, 1.0)
    """
    return float(np.floor(fraction * total * (1 + 1e-9)))


def allele_counts(dosages: np.ndarray, missing: scipy.sparse.csr_array,
                  haploid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per variant: its alt allele dosage and its called alleles, a ``haploid`` sample's call (stored 0/2)
    counting one allele.

    >>> calls = np.array([[0.0, 2, 2, 1]])
    >>> allele_counts(calls, scipy.sparse.csr_array(calls.shape))
    (array([5.]), array([8.]))
    >>> allele_counts(calls, scipy.sparse.csr_array(calls.shape), haploid=np.array([False, True, True, False]))
    (array([3.]), array([6.]))
    """
    called = dosages.shape[1] - np.diff(missing.indptr)
    if haploid is None or not haploid.any():
        return dosages.sum(axis=1, dtype=np.float64), 2.0 * called
    haploid_missing = np.asarray(missing[:, haploid].sum(axis=1)).ravel()
    alt = dosages[:, ~haploid].sum(axis=1, dtype=np.float64) + dosages[:, haploid].sum(axis=1, dtype=np.float64) / 2
    return alt, 2.0 * called - (haploid.sum() - haploid_missing)


def hard_call_counts(dosages: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """Per variant: samples with hard call 0, 1 and 2, and without one (plink2's hard calls: a dosage within
    :data:`HARD_CALL_THRESHOLD` of a whole number); ``marked`` counts each row's missing calls (held as 0).

    Examples
    --------
    >>> hard_call_counts(np.array([[0.0, 1.0, 2.0, 0.05, 1.5, 0.0]]), np.array([1])).tolist()
    [[2, 1, 1, 2]]
    """
    counts = np.zeros((len(dosages), 4), np.int64)
    _hard_call_kernel(dosages, HARD_CALL_THRESHOLD, counts)
    counts[:, 0] -= marked        # a missing call is held as dosage 0
    counts[:, 3] += marked
    return counts


@numba.njit(cache=True, nogil=True)
def _hard_call_kernel(dosages, threshold, counts):  # pragma: no cover
    for v in range(dosages.shape[0]):
        for j in range(dosages.shape[1]):
            value = dosages[v, j]
            call = np.rint(value)
            counts[v, int(call) if abs(value - call) <= threshold else 3] += 1


def missing_calls_per_sample(dosages: np.ndarray, missing: scipy.sparse.csr_array) -> np.ndarray:
    """Per sample (column of ``dosages``): the variants without a hard call, missing or a dosage too far from a
    whole number (what plink2's --mind counts).

    Examples
    --------
    >>> marks = scipy.sparse.csr_array(np.array([[0, 1, 0], [0, 1, 0]]))
    >>> missing_calls_per_sample(np.array([[0.0, 0.0, 1.0], [0.5, 0.0, 2.0]]), marks).tolist()
    [1, 2, 0]
    """
    off = np.abs(dosages - np.rint(dosages)) > HARD_CALL_THRESHOLD
    return np.bincount(missing.indices, minlength=dosages.shape[1]) + off.sum(axis=0)


def hwe_exact_p(het: np.ndarray, hom1: np.ndarray, hom2: np.ndarray, *, midp: bool = False) -> np.ndarray:
    """Hardy–Weinberg exact test p-value of each variant's genotype counts (Wigginton, Cutler & Abecasis 2005),
    as plink2's ``--hardy`` and ``--hwe``; with ``midp``, the counts as likely as the observed one count half
    (its 'midp' modifier). A variant without calls, or monomorphic, has p = 1 (mid-p ½).

    Examples
    --------
    >>> hwe_exact_p(np.array([0, 50, 20]), np.array([50, 25, 40]), np.array([50, 25, 40])).round(6).tolist()
    [0.0, 1.0, 0.0]
    >>> float(hwe_exact_p(np.array([5]), np.array([90]), np.array([5]))[0])   # doctest: +ELLIPSIS
    9.629...e-06
    """
    het, hom1, hom2 = (np.asarray(a, np.int64) for a in (het, hom1, hom2))
    out = np.empty(len(het))
    _hwe_kernel(het, hom1, hom2, midp, out)
    return out


@numba.njit(cache=True, nogil=True)
def _hwe_kernel(het, hom1, hom2, midp, out):  # pragma: no cover
    """Wigginton et al.'s recursion over the possible heterozygote counts, relative to the most likely one."""
    probs = np.empty(2 * int((het + hom1 + hom2).max()) + 3 if len(het) else 1)
    for v in range(len(het)):
        rare_hom, common_hom = min(hom1[v], hom2[v]), max(hom1[v], hom2[v])
        genotypes = het[v] + rare_hom + common_hom
        rare = 2 * rare_hom + het[v]
        if rare == 0:           # one possible count, the observed one: a tie with itself
            out[v] = 0.5 if midp else 1.0
            continue
        mid = rare * (2 * genotypes - rare) // (2 * genotypes)
        if (mid % 2) != (rare % 2):
            mid += 1
        probs[:rare + 1] = 0.0
        probs[mid] = 1.0
        total = 1.0
        homr, homc = (rare - mid) // 2, genotypes - mid - (rare - mid) // 2
        hets = mid
        while hets > 1:
            probs[hets - 2] = probs[hets] * hets * (hets - 1.0) / (4.0 * (homr + 1.0) * (homc + 1.0))
            total += probs[hets - 2]
            hets -= 2
            homr += 1
            homc += 1
        homr, homc = (rare - mid) // 2, genotypes - mid - (rare - mid) // 2
        hets = mid
        while hets <= rare - 2:
            probs[hets + 2] = probs[hets] * 4.0 * homr * homc / ((hets + 2.0) * (hets + 1.0))
            total += probs[hets + 2]
            hets += 2
            homr -= 1
            homc -= 1
        observed = probs[het[v]]
        rarer, tied = 0.0, 0.0        # counts as likely as the observed one (within rounding) are ties
        for i in range(rare % 2, rare + 1, 2):
            if probs[i] < observed * (1.0 - 1e-9):
                rarer += probs[i]
            elif probs[i] <= observed * (1.0 + 1e-9):
                tied += probs[i]
        out[v] = min(1.0, (rarer + (0.5 * tied if midp else tied)) / total)


def mach_r2(dosages: np.ndarray, marked: np.ndarray) -> np.ndarray:
    """MaCH r² of each variant over its called samples: the variance of the dosages over the binomial
    variance 2p(1 − p) their mean implies (plink2's ``--freq cols=+machr2``); NaN when monomorphic.

    Examples
    --------
    >>> mach_r2(np.array([[0.0, 1, 1, 2], [0.9, 1.1, 1, 1], [1, 1, 1, 1]]), np.zeros(3, int)).round(3).tolist()
    [1.0, 0.01, 0.0]
    """
    called = dosages.shape[1] - marked
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = dosages.sum(axis=1, dtype=np.float64) / called
        variance = np.einsum("ij,ij->i", dosages, dosages, dtype=np.float64) / called - mean ** 2
        p = mean / 2.0
        expected = 2.0 * p * (1.0 - p)
        return np.where(expected > 0, variance / np.where(expected > 0, expected, 1.0), np.nan)
