"""Meta-analysis of per-cohort effects: inverse-variance fixed effects and DerSimonian–Laird random effects.

Consortia (ENIGMA, CHARGE) share summary statistics, not participants: each site's beta
and se per variant are combined here. Effects must first be on the same allele, which
:func:`align_alleles` decides (a swapped ref/alt flips the sign; strand-ambiguous A/T
and C/G pairs are flagged, as their strand cannot be told from the alleles).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biolake.stats.association import FromLog10p, chi2_log10p, z_log10p

_COMPLEMENT = str.maketrans("ACGT", "TGCA")


@dataclass(frozen=True)
class MetaResult(FromLog10p):
    """Per group (variant × phenotype): fixed and random effects, heterogeneity, cohorts used."""

    cohorts: np.ndarray      # k, cohorts with an estimate
    beta: np.ndarray         # fixed effect Σwβ/Σw, w = 1/se²
    se: np.ndarray
    log10p: np.ndarray
    q: np.ndarray            # Cochran's Q on k − 1 df
    q_log10p: np.ndarray
    i2: np.ndarray           # (Q − (k − 1))/Q, floored at 0 (a fraction, not %)
    tau2: np.ndarray         # DerSimonian–Laird between-cohort variance
    beta_random: np.ndarray
    se_random: np.ndarray
    log10p_random: np.ndarray


def inverse_variance(groups: np.ndarray, beta: np.ndarray, se: np.ndarray, *, size: int | None = None) -> MetaResult:
    """Combine the rows of each group (``groups``: integer labels 0…size−1, one per row).

    Rows whose beta or se is missing (NaN) or whose se is not positive are left out; a
    group left with none gets NaN.

    Examples
    --------
    >>> result = inverse_variance(np.array([0, 0, 0]), np.array([0.10, 0.30, 0.20]), np.array([0.05, 0.10, 0.08]))
    >>> round(float(result.beta[0]), 4), round(float(result.se[0]), 4), int(result.cohorts[0])
    (0.1543, 0.039, 3)
    """
    usable = np.isfinite(beta) & np.isfinite(se) & (se > 0)
    size = (int(groups.max()) + 1 if len(groups) else 0) if size is None else size
    groups, beta, se = groups[usable], beta[usable], se[usable]
    count = np.bincount(groups, minlength=size)
    weight = 1.0 / se ** 2
    sum_w = np.bincount(groups, weight, size)
    with np.errstate(divide="ignore", invalid="ignore"):
        fixed = np.bincount(groups, weight * beta, size) / sum_w
        q = np.bincount(groups, weight * (beta - fixed[groups]) ** 2, size)
        df = count - 1.0
        i2 = np.where(q > 0, np.maximum(0.0, (q - df) / q), 0.0)
        scale = sum_w - np.bincount(groups, weight ** 2, size) / sum_w
        tau2 = np.where(count > 1, np.maximum(0.0, (q - df) / scale), 0.0)
        weight_random = 1.0 / (se ** 2 + tau2[groups])
        sum_random = np.bincount(groups, weight_random, size)
        random = np.bincount(groups, weight_random * beta, size) / sum_random
        se_fixed, se_random = np.sqrt(1.0 / sum_w), np.sqrt(1.0 / sum_random)
        q_log10p = np.where(count > 1, _chi2_by_df(q, df), np.nan)
    none = count == 0
    return MetaResult(
        count, np.where(none, np.nan, fixed), np.where(none, np.nan, se_fixed),
        np.where(none, np.nan, z_log10p(fixed / se_fixed)), np.where(count > 1, q, np.nan), q_log10p,
        np.where(count > 1, i2, np.nan), np.where(none, np.nan, tau2), np.where(none, np.nan, random),
        np.where(none, np.nan, se_random), np.where(none, np.nan, z_log10p(random / se_random)))


def _chi2_by_df(statistic: np.ndarray, df: np.ndarray) -> np.ndarray:
    """−log10 p of χ² statistics whose degrees of freedom differ by group."""
    out = np.full(statistic.shape, np.nan)
    for value in np.unique(df[df > 0]):
        chosen = df == value
        out[chosen] = chi2_log10p(statistic[chosen], int(value))
    return out


def allele_pair(ref: np.ndarray, alt: np.ndarray) -> np.ndarray:
    """A name for each row's variant that does not depend on allele order or strand: rows with
    equal names are one variant (match them with :func:`align_alleles`); a second allele pair at
    the same position (a multi-allelic site split into records) gets a name of its own.

    Examples
    --------
    >>> allele_pair(np.array(["A", "G", "T", "A", "AT"]), np.array(["G", "A", "C", "T", "A"])).tolist()
    ['A/G', 'A/G', 'A/G', 'A/T', 'A/AT']
    """
    def name(a: str, b: str) -> str:
        pairs = [sorted((a, b))]
        if len(a) == len(b) == 1:   # one-base pairs: the other strand names the same variant
            pairs.append(sorted((a.translate(_COMPLEMENT), b.translate(_COMPLEMENT))))
        return "/".join(min(pairs))

    return np.array([name(a, b) for a, b in zip(np.asarray(ref, dtype=str), np.asarray(alt, dtype=str))], dtype=object)


def align_alleles(ref: np.ndarray, alt: np.ndarray, target_ref: np.ndarray,
                  target_alt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How each row's effect maps onto the target alleles: +1 same, −1 swapped, 0 incompatible;
    and whether the pair is strand-ambiguous (A/T, C/G), where a strand flip cannot be seen.

    Single-base alleles on the other strand (complemented) are matched too, except for the
    ambiguous A/T and C/G pairs, which are taken as written (same or swapped) and flagged.

    Examples
    --------
    >>> sign, ambiguous = align_alleles(np.array(["A", "G", "T", "A"]), np.array(["G", "A", "C", "T"]),
    ...                                 np.array(["A", "A", "A", "A"]), np.array(["G", "G", "G", "T"]))
    >>> sign.tolist(), ambiguous.tolist()
    ([1, -1, 1, 1], [False, False, False, True])
    """
    ref, alt = np.asarray(ref, dtype=str), np.asarray(alt, dtype=str)
    target_ref, target_alt = np.asarray(target_ref, dtype=str), np.asarray(target_alt, dtype=str)
    flip_ref = np.array([a.translate(_COMPLEMENT) for a in ref], dtype=str) if len(ref) else ref
    flip_alt = np.array([a.translate(_COMPLEMENT) for a in alt], dtype=str) if len(alt) else alt
    ambiguous = flip_ref == alt
    # the other strand is read only for unambiguous single-base pairs: for A/T, C/G a strand flip
    # looks like a swap, and an indel's other-strand form depends on its representation
    strand = ~ambiguous & (np.char.str_len(ref) == 1) & (np.char.str_len(alt) == 1)
    same = ((ref == target_ref) & (alt == target_alt)) | (strand & (flip_ref == target_ref) & (flip_alt == target_alt))
    swapped = ((ref == target_alt) & (alt == target_ref)) | (strand & (flip_ref == target_alt) & (flip_alt == target_ref))
    return np.where(same, 1, np.where(swapped, -1, 0)).astype(np.int8), ambiguous
