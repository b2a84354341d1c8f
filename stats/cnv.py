"""Copy-number variants on arrays: per-participant burden, carriers of recurrent loci, and effect sizes.

Segments come as parallel arrays (one entry per segment: its participant's position in the called set, start and
end in base pairs, 1-based and inclusive, and whether it is a deletion); nothing here reads a table.

- :func:`burden`: per participant, how many segments and how many kb, all and by type, as PLINK 1.07's
  ``.cnv.indiv`` counts them (kb = (end − start) / 1000, added in the order of the segments given: their source
  file's, as PLINK adds them; a participant without a segment has 0).
- :func:`reciprocal_overlap`: the share of the segment and of the locus their overlap covers; a carrier of a
  locus has a segment of the type covering at least a set share of both (50 % by default, as in the UK
  Biobank CNV studies, e.g. Crawford et al. 2019, J Med Genet 56:131).
- :func:`carrier_doses`: per participant and locus, −1 (deletion), +1 (duplication) or 0.
- :func:`cohens_d`: the standardised mean difference of carriers and non-carriers from a regression's t, with its
  95 % interval.
- :func:`merged`: a caller's fragments of one CNV joined, as PennCNV's ``clean_cnv.pl combineseg`` joins them.
- :func:`window_doses`: per window of a genome-wide CNV scan, each participant's dose.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import scipy.sparse

BURDEN_MEASURES = ("n_segments", "kb_total", "kb_mean", "n_del", "kb_del", "n_dup", "kb_dup")


@dataclass(frozen=True)
class Segments:
    """CNV segments as parallel arrays: ``owner`` is each one's participant (a position in the called set)."""

    owner: np.ndarray      # int, segments
    chrom: np.ndarray      # int, segments: the chromosome as PLINK numbers it (1-22, X 23, Y 24, XY 25, MT 26)
    start: np.ndarray      # int, 1-based first base pair
    end: np.ndarray        # int, last base pair (inclusive)
    deletion: np.ndarray   # bool: a deletion (copy number below 2), else a duplication

    @property
    def kb(self) -> np.ndarray:
        """Each segment's length in kb as PLINK counts it: (end − start) / 1000."""
        return (self.end - self.start) / 1000.0


def burden(segments: Segments, participants: int) -> dict[str, np.ndarray]:
    """Per participant (``participants`` of them, in the called set's order) each of BURDEN_MEASURES: segments and
    kb, in all and per type, and the mean kb of a segment (0 without one, as PLINK's KBAVG).

    Examples
    --------
    >>> found = burden(Segments(np.array([0, 0, 2]), np.array([1, 2, 1]), np.array([1000, 5000, 100]),
    ...                         np.array([3000, 9000, 600]), np.array([True, False, True])), 3)
    >>> {name: values.tolist() for name, values in found.items()}["kb_mean"], found["n_dup"].tolist()
    ([3.0, 0.0, 0.5], [1, 0, 0])
    """
    def summed(weights: np.ndarray | None, chosen: np.ndarray) -> np.ndarray:   # added in the segments' order
        if weights is None:
            return np.bincount(segments.owner[chosen], minlength=participants)
        return np.bincount(segments.owner[chosen], weights[chosen], minlength=participants).astype(float)

    every, kb = np.ones(len(segments.owner), bool), segments.kb
    counts, total = summed(None, every), summed(kb, every)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, total / counts, 0.0)
    return {"n_segments": counts, "kb_total": total, "kb_mean": mean,
            "n_del": summed(None, segments.deletion), "kb_del": summed(kb, segments.deletion),
            "n_dup": summed(None, ~segments.deletion), "kb_dup": summed(kb, ~segments.deletion)}


def reciprocal_overlap(start: np.ndarray, end: np.ndarray, locus_start: int, locus_end: int) -> np.ndarray:
    """The smaller of the shares of each segment and of the locus that their overlap covers (0 apart); positions
    1-based and inclusive at both ends.

    Examples
    --------
    >>> reciprocal_overlap(np.array([100, 150, 500]), np.array([199, 349, 600]), 100, 299).round(3).tolist()
    [0.5, 0.75, 0.0]
    """
    overlap = np.clip(np.minimum(end, locus_end) - np.maximum(start, locus_start) + 1, 0, None)
    return np.minimum(overlap / (end - start + 1), overlap / (locus_end - locus_start + 1))


def carrier_doses(segments: Segments, participants: int, loci: list[tuple[int, int, int]],
                  min_overlap: float = 0.5) -> np.ndarray:
    """Per participant and locus (participants × loci; each locus chromosome (PLINK's number), start, end): −1 with a
    deletion, +1
    with a duplication, whose reciprocal overlap with the locus is at least ``min_overlap``, else 0. A participant
    with both (mosaic or a caller's split) counts as neither: NaN, left out of that locus's tests.

    Examples
    --------
    >>> segments = Segments(np.array([0, 1, 2, 2]), np.array([22] * 4), np.array([100, 120, 100, 260]),
    ...                     np.array([300, 310, 200, 300]), np.array([True, False, True, False]))
    >>> carrier_doses(segments, 4, [(22, 100, 300)]).ravel().tolist()   # 2: its deletion covers half the locus
    [-1.0, 1.0, -1.0, 0.0]
    """
    doses = np.zeros((participants, len(loci)))
    for k, (chrom, start, end) in enumerate(loci):
        covers = (segments.chrom == chrom) & (reciprocal_overlap(segments.start, segments.end, start, end)
                                              >= min_overlap)
        deleted = np.bincount(segments.owner[covers & segments.deletion], minlength=participants) > 0
        duplicated = np.bincount(segments.owner[covers & ~segments.deletion], minlength=participants) > 0
        doses[:, k] = np.where(deleted & duplicated, np.nan, duplicated.astype(float) - deleted)
    return doses


def cohens_d(t: np.ndarray, carriers: np.ndarray, others: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cohen's d of carriers against the others from the t of a regression on carrier status (0/1): d = t ·
    √(1/n₁ + 1/n₀), which without covariates is (mean₁ − mean₀) / pooled SD exactly, and with them the difference
    of the covariate-adjusted means in residual SDs; its 95 % interval d ± 1.96 · √((n₁ + n₀) / (n₁ n₀) + d² /
    (2 (n₁ + n₀))) (Hedges & Olkin 1985; Nakagawa & Cuthill 2007, Biol Rev 82:591, eq. 10 and 16). Returns
    (d, lower, upper).

    Examples
    --------
    >>> d, lower, upper = cohens_d(np.array([-4.0]), np.array([20]), np.array([980]))
    >>> round(float(d[0]), 3), round(float(lower[0]), 3), round(float(upper[0]), 3)
    (-0.904, -1.348, -0.459)
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        d = t * np.sqrt(1 / carriers + 1 / others)
        se = np.sqrt((carriers + others) / (carriers * others) + d**2 / (2 * (carriers + others)))
    return d, d - 1.959963984540054 * se, d + 1.959963984540054 * se


def window_doses(segments: Segments, participants: int, window_bp: int) -> tuple[np.ndarray, np.ndarray,
                                                                                  scipy.sparse.csr_array]:
    """Every window of ``window_bp`` (windows k cover ``k·window_bp + 1 … (k + 1)·window_bp`` of a chromosome) that a
    segment overlaps by a base or more: its chromosome, its index, and each participant's dose in it (windows ×
    participants, sparse: −1 with a deletion overlapping it, +1 with a duplication, NaN with both), as a
    probe-free CNV scan tests them.

    Examples
    --------
    >>> segments = Segments(np.array([0, 1, 1]), np.array([1, 1, 2]), np.array([150, 90, 10]),
    ...                     np.array([250, 120, 20]), np.array([True, False, True]))
    >>> chrom, index, doses = window_doses(segments, 2, 100)
    >>> chrom.tolist(), index.tolist(), doses.toarray().tolist()
    ([1, 1, 1, 2], [0, 1, 2, 0], [[0.0, 1.0], [-1.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    """
    first, last = (segments.start - 1) // window_bp, (segments.end - 1) // window_bp
    spans = last - first + 1
    owner, chrom = np.repeat(segments.owner, spans), np.repeat(segments.chrom, spans)
    window = np.repeat(first, spans) + np.arange(spans.sum()) - np.repeat(np.cumsum(spans) - spans, spans)
    deletion = np.repeat(segments.deletion, spans)
    keys, row = np.unique(np.column_stack([chrom, window]), axis=0, return_inverse=True)

    def carrying(which: np.ndarray) -> scipy.sparse.csr_array:   # 1 where a participant has such a segment there
        found = scipy.sparse.csr_array((which.astype(float), (row.ravel(), owner)), shape=(len(keys), participants))
        found.data = (found.data > 0).astype(float)
        return found

    deleted, duplicated = carrying(deletion), carrying(~deletion)
    doses = duplicated - deleted + deleted.multiply(duplicated).multiply(np.nan)   # both: 1 − 1 + NaN
    doses.eliminate_zeros()
    return keys[:, 0], keys[:, 1], doses.tocsr()


def merged(segments: Segments, fraction: float) -> Segments:
    """Each participant's calls of one type on a chromosome joined where the gap between them is at most
    ``fraction`` of the stretch they span together, as PennCNV's ``clean_cnv.pl combineseg --fraction`` joins a
    caller's fragments of one CNV (in base pairs; 0 joins only calls that touch or overlap).

    Examples
    --------
    >>> pieces = Segments(np.array([0, 0, 0, 1]), np.array([22, 22, 22, 22]), np.array([1000, 5501, 9000, 1000]),
    ...                   np.array([5000, 8000, 9100, 5000]), np.array([True, True, False, True]))
    >>> joined = merged(pieces, 0.2)
    >>> joined.owner.tolist(), joined.start.tolist(), joined.end.tolist(), joined.deletion.tolist()
    ([0, 0, 1], [9000, 1000, 1000], [9100, 8000, 5000], [False, True, True])
    """
    order = np.lexsort((segments.start, segments.deletion, segments.chrom, segments.owner))
    owner, chrom, start, end, deletion = (values[order] for values in (
        segments.owner, segments.chrom, segments.start, segments.end, segments.deletion))
    group = _fragment_groups(owner, chrom, start, end, deletion, float(fraction))
    first = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
    return Segments(owner[first], chrom[first], start[first], np.maximum.reduceat(end, first), deletion[first])


@numba.njit(cache=True)
def _fragment_groups(owner, chrom, start, end, deletion, fraction):  # pragma: no cover (compiled)
    """The group of each call (sorted by participant, chromosome, type and start) that :func:`merged` joins it to."""
    group = np.empty(len(owner), np.int64)
    current, first, last = -1, 0, 0
    for i in range(len(owner)):
        same = (current >= 0 and owner[i] == owner[i - 1] and chrom[i] == chrom[i - 1]
                and deletion[i] == deletion[i - 1])
        if same and start[i] - last - 1 <= fraction * (max(end[i], last) - first + 1):
            last = max(last, end[i])
        else:
            current, first, last = current + 1, start[i], end[i]
        group[i] = current
    return group
