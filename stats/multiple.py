"""Multiple testing over a results table: inflation, false-discovery rates, thresholds and lead hits.

Imaging genomics tests thousands of phenotypes at millions of variants; these small
functions turn a run's p-values into what an analyst reports: λGC, BH q-values, the
Bonferroni threshold of a phenotype family (BIG40: 5e-8 over the number of IDPs) and one
lead variant (or pair of variants) per locus.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import special  # scipy.stats alone takes ~0.6 s to import: every CLI run paid it

GENOME_WIDE = 5e-8
CHI2_MEDIAN = special.chdtri(1, 0.5)  # 0.4549…: the null median of a 1-df χ²
LOG10P_BINS = np.linspace(0.0, 3.0, 3_001)  # −log10 p in steps of 0.001 (a null median sits near 0.3)


def lambda_gc(p: np.ndarray) -> float:
    """Genomic inflation: the median 1-df χ² of ``p`` over its null median 0.4549 (NaN ignored).

    Examples
    --------
    >>> round(lambda_gc(np.linspace(0.001, 1, 1000)), 2)
    1.0
    """
    p = np.asarray(p, float)
    p = p[np.isfinite(p)]
    return float(special.chdtri(1, np.median(p)) / CHI2_MEDIAN) if len(p) else float("nan")


def log10p_bins(log10p: np.ndarray) -> np.ndarray:
    """The bin of each −log10 p among the len(LOG10P_BINS) + 1 that :func:`histogram_median` reads."""
    return np.searchsorted(LOG10P_BINS, log10p)


def histogram_median(counts: np.ndarray) -> np.ndarray:
    """The median −log10 p of each row of binned counts (rows × len(LOG10P_BINS) + 1, see
    :func:`log10p_bins`), interpolated within its bin: exact to 1/1000 of a decade, from counts
    that add up across blocks, so no pass over the tests is needed. NaN for an empty row, and
    for a median past the last bin (half the tests at p < 0.001: no genomic-control reading).

    Examples
    --------
    >>> log10p = -np.log10(np.linspace(0.001, 1, 1000))
    >>> counts = np.bincount(log10p_bins(log10p), minlength=len(LOG10P_BINS) + 1)[None]
    >>> round(float(10 ** -histogram_median(counts)[0]), 3)
    0.5
    >>> histogram_median(np.bincount(log10p_bins(np.full(9, 5.0)), minlength=len(LOG10P_BINS) + 1)[None])
    array([nan])
    """
    cumulative = np.cumsum(counts, axis=1)
    tests = cumulative[:, -1]
    median = np.full(len(counts), np.nan)
    for j, (running, target) in enumerate(zip(cumulative, tests / 2.0)):
        upper = int(np.searchsorted(running, target))
        if not tests[j] or upper >= len(LOG10P_BINS):
            continue
        below = running[upper - 1] if upper else 0
        low = LOG10P_BINS[upper - 1] if upper else 0.0
        share = (target - below) / max(running[upper] - below, 1)
        median[j] = low + share * (LOG10P_BINS[upper] - low)
    return median


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH false-discovery rates, or q-values (R's ``p.adjust(p, "BH")``); NaN stays NaN and is not counted.

    Examples
    --------
    >>> benjamini_hochberg(np.array([0.01, 0.04, np.nan, 0.03])).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p, float)
    fdr = np.full(p.shape, np.nan)
    present = np.flatnonzero(~np.isnan(p))
    order = present[np.argsort(p[present], kind="stable")]
    ranked = p[order] * len(order) / np.arange(1, len(order) + 1)
    fdr[order] = np.minimum(1.0, np.minimum.accumulate(ranked[::-1])[::-1])
    return fdr


def bh_fdr_sql(source: str, *, groups: Sequence[str], log10p: str) -> str:
    """SQL adding ``fdr``, R's ``p.adjust(p, "BH")`` within each group, computed from −log10 p.

    The rank and the running minimum are taken on ``log10p`` in log space, so a p below
    1e-300 (stored exactly as −log10 p) keeps its order and its q. A row without a test
    (null, or NaN) has no q and is not counted.

    Examples
    --------
    >>> import duckdb
    >>> sql = bh_fdr_sql("(VALUES ('a', 2.0), ('a', 1.39794), ('a', NULL), ('a', 'nan'::DOUBLE), ('a', 1.52288)) "
    ...                  "t(phenotype, log10p)",
    ...                  groups=["phenotype"], log10p="log10p")
    >>> sorted(round(q, 3) for (q,) in duckdb.sql(f"SELECT fdr FROM ({sql}) WHERE fdr IS NOT NULL").fetchall())
    [0.03, 0.04, 0.04]
    """
    by = ", ".join(f'"{column}"' for column in groups)
    return f"""
        SELECT * EXCLUDE (_value, _rank, _tests),
               CASE WHEN _value IS NOT NULL THEN
                    10 ** least(0, min(log10(_tests) - log10(_rank) - _value)
                                   OVER (PARTITION BY {by} ORDER BY _value NULLS FIRST)) END AS fdr
        FROM (SELECT *, row_number() OVER (PARTITION BY {by} ORDER BY _value DESC NULLS LAST) AS _rank,
                     count(_value) OVER (PARTITION BY {by}) AS _tests
              FROM (SELECT *, CASE WHEN isnan("{log10p}") THEN NULL ELSE "{log10p}" END AS _value
                    FROM {source}))"""


def family_threshold(phenotypes: float, *, alpha: float = GENOME_WIDE) -> float:
    """Bonferroni over a phenotype family: ``alpha`` (genome-wide 5e-8) divided by its size (a count of phenotypes,
    or their effective number, :func:`effective_tests`).

    Examples
    --------
    >>> family_threshold(3935)   # UK Biobank BIG40's IDPs
    1.2706480304955527e-11
    """
    return alpha / max(phenotypes, 1)


def pairwise_correlation(values: np.ndarray) -> np.ndarray:
    """Pearson correlations of the columns of ``values`` (samples × P, NaN missing), each pair over the samples
    with both (pairwise complete, as pandas' ``DataFrame.corr``); NaN where a pair shares fewer than two samples
    or a column is constant on them (its spread there, about its own mean, below 1e-12 of its sum of squares).

    Examples
    --------
    >>> values = np.array([[1.0, 2.0, 1.0], [2.0, 4.1, np.nan], [3.0, 6.0, 0.0], [4.0, np.nan, 2.0]])
    >>> np.round(pairwise_correlation(values), 3).tolist()
    [[1.0, 1.0, 0.327], [1.0, 1.0, -1.0], [0.327, -1.0, 1.0]]
    """
    present = ~np.isnan(values)
    means = np.where(present, values, 0.0).sum(axis=0) / np.maximum(present.sum(axis=0), 1)
    centred = np.where(present, values - means, 0.0)   # centred first: the sums below then cancel little
    weight = present.astype(float)
    count = weight.T @ weight                    # [i, j]: samples with both
    sums = centred.T @ weight                    # [i, j]: Σ x_i over the samples with both
    squares = (centred * centred).T @ weight     # [i, j]: Σ x_i² over them
    with np.errstate(invalid="ignore", divide="ignore"):
        covariance = centred.T @ centred - sums * sums.T / count
        spread = squares - sums ** 2 / count
        correlation = covariance / np.sqrt(spread * spread.T)
    flat = spread <= 1e-12 * np.maximum(squares, np.finfo(float).tiny)   # [i, j]: column i constant on the pair's samples
    correlation[(count < 2) | flat | flat.T] = np.nan
    return np.clip(correlation, -1.0, 1.0)


def effective_tests(correlation: np.ndarray) -> dict[str, float]:
    """The effective number of independent tests among correlated phenotypes (Meff), from the eigenvalues λ of
    their correlation matrix (M × M; a pair without a correlation counts as uncorrelated), by two estimators:

    - Nyholt (2004, Am J Hum Genet 74:765): 1 + (M − 1)(1 − Var(λ)/M), Var with M − 1 in the denominator;
    - Li & Ji (2005, Heredity 95:221): Σ f(|λ|), f(x) = [x ≥ 1] + (x − ⌊x⌋).

    Both are M for uncorrelated phenotypes and 1 for identical ones; Li & Ji's is the less conservative where
    phenotypes form correlated groups, and it is what ``hits --family meff`` divides by.

    Examples
    --------
    >>> effective_tests(np.eye(4))
    {'nyholt': 4.0, 'li_ji': 4.0}
    >>> effective_tests(np.ones((4, 4)))
    {'nyholt': 1.0, 'li_ji': 1.0}
    >>> block = np.kron(np.eye(2), np.full((3, 3), 0.5)) + np.eye(6) * 0.5   # two groups of 3, r = 0.5 within
    >>> {name: round(value, 3) for name, value in effective_tests(block).items()}
    {'nyholt': 5.5, 'li_ji': 4.0}
    """
    eigenvalues = np.linalg.eigvalsh(np.where(np.isnan(correlation), np.eye(len(correlation)), correlation))
    m = len(eigenvalues)
    nyholt = 1 + (m - 1) * (1 - np.var(eigenvalues, ddof=1) / m) if m > 1 else float(m)
    magnitude = np.abs(eigenvalues)
    li_ji = np.sum((magnitude >= 1 - 1e-9) + (magnitude - np.floor(magnitude + 1e-9)).clip(0))
    return {"nyholt": round(float(nyholt), 10), "li_ji": round(float(li_ji), 10)}


def clump_by_distance(chrom: np.ndarray, pos: np.ndarray, log10p: np.ndarray, *, window: int = 500_000) -> np.ndarray:
    """Lead hits: repeatedly take the strongest remaining hit and drop the others within ±``window``
    bp on its chromosome. Returns the indices of the leads, strongest first.

    Call it with one phenotype's hits (those past the threshold).

    Examples
    --------
    >>> clump_by_distance(np.array(["1", "1", "1", "2"]), np.array([100, 300_000, 900_000, 100]),
    ...                   np.array([9.0, 12.0, 8.0, 7.5])).tolist()
    [1, 2, 3]
    """
    order = np.argsort(-np.asarray(log10p, float), kind="stable")
    chrom, pos = np.asarray(chrom).astype(str), np.asarray(pos, np.int64)
    taken: dict[str, list[int]] = {}
    leads = []
    for index in order:
        nearby = taken.setdefault(chrom[index], [])
        if all(abs(pos[index] - other) > window for other in nearby):
            nearby.append(pos[index])
            leads.append(int(index))
    return np.array(leads, dtype=np.int64)


def clump_pairs_by_distance(chrom_a: np.ndarray, pos_a: np.ndarray, chrom_b: np.ndarray, pos_b: np.ndarray,
                            log10p: np.ndarray, *, window: int = 500_000) -> np.ndarray:
    """Loci of hits that are pairs of variants (SNP × SNP): :func:`clump_by_distance` in two dimensions.

    In order of p, a pair not yet in a locus leads one, holding every other such pair whose two
    variants each lie on the same chromosome within ±``window`` bp of the lead's two, in either
    orientation ((a, b) near the lead's (a, b) or its (b, a)): a pair tests the same interaction
    whichever variant is called a. Returns each pair's lead (a lead's own index), so each pair is
    in exactly one locus; the leads are the pairs that are their own.

    Call it with one phenotype's hits (those past the threshold).

    Examples
    --------
    >>> clump_pairs_by_distance(np.array(["1", "2", "1", "1"]), np.array([100, 200_000, 900_000, 100]),
    ...                         np.array(["2", "1", "2", "3"]), np.array([100, 300_000, 100, 100]),
    ...                         np.array([9.0, 12.0, 8.0, 7.5])).tolist()   # 0 is 1 turned round; 2's a, 3's b are far
    [1, 1, 2, 3]
    """
    chrom_a, chrom_b = np.asarray(chrom_a).astype(str), np.asarray(chrom_b).astype(str)
    pos_a, pos_b = np.asarray(pos_a, np.int64), np.asarray(pos_b, np.int64)

    def near(chrom: np.ndarray, pos: np.ndarray, index_chrom: str, index_pos: int) -> np.ndarray:
        return (chrom == index_chrom) & (np.abs(pos - index_pos) <= window)

    lead = np.full(len(pos_a), -1, np.int64)
    for index in np.argsort(-np.asarray(log10p, float), kind="stable"):
        if lead[index] < 0:
            a, b = (chrom_a[index], pos_a[index]), (chrom_b[index], pos_b[index])
            lead[(lead < 0) & ((near(chrom_a, pos_a, *a) & near(chrom_b, pos_b, *b))
                               | (near(chrom_a, pos_a, *b) & near(chrom_b, pos_b, *a)))] = index
    return lead
