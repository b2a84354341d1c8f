"""Manhattan and QQ plots that stay right at biobank size: every point that matters, a thinned null cloud.

Millions of points would take minutes to draw and hide nothing but each other. Points
above ``keep_above`` (−log10 p) are all drawn; below it, one point per screen cell (a
few thousand in all) draws the same picture. Functions return matplotlib figures
(Agg backend, no display needed); callers save them.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from scipy import stats

from biolake.stats.multiple import GENOME_WIDE

_CELLS = (1000, 100)   # cells across and up (below keep_above) for thinning: about 2 px each


def chromosome_order(chrom: np.ndarray) -> np.ndarray:
    """A sort key for chromosome names: 1…22 numerically, then X, Y, MT and others by name."""
    chrom = np.asarray(chrom).astype(str)
    known = {str(c): c for c in range(1, 23)} | {"X": 23, "Y": 24, "XY": 25, "MT": 26}
    return np.array([known.get(c, 27) for c in chrom])


def thin(x: np.ndarray, y: np.ndarray, *, keep_above: float = 2.0) -> np.ndarray:
    """Indices of the points worth drawing: all with y > ``keep_above``, one per screen cell below.

    Examples
    --------
    >>> x, y = np.repeat(np.arange(10.0), 1000), np.tile(np.linspace(0, 1, 1000), 10)
    >>> len(thin(x, y)) < 5000, len(thin(x, np.append(y[:-1], 9.0)))  > 0
    (True, True)
    """
    x, y = np.asarray(x, float), np.asarray(y, float)
    finite = np.isfinite(y)
    high = np.flatnonzero(finite & (y > keep_above))
    low = np.flatnonzero(finite & (y <= keep_above))
    if not len(low):
        return high
    span = max(np.ptp(x[low]), 1e-12)
    cells = (np.floor((x[low] - x[low].min()) / span * (_CELLS[0] - 1)).astype(np.int64) * _CELLS[1]
             + np.floor(y[low] / max(keep_above, 1e-12) * (_CELLS[1] - 1)).astype(np.int64))
    _, first = np.unique(cells, return_index=True)
    return np.sort(np.concatenate([high, low[first]]))


def manhattan(chrom: np.ndarray, pos: np.ndarray, log10p: np.ndarray, *, title: str,
              threshold: float = GENOME_WIDE) -> Figure:
    """−log10 p along the genome, chromosomes in alternating shades, the threshold as a dashed line.

    Examples
    --------
    >>> figure = manhattan(np.array(["1", "2"]), np.array([10, 20]), np.array([1.0, 9.0]), title="demo")
    >>> figure.axes[0].get_title()
    'demo'
    """
    chrom, pos, log10p = np.asarray(chrom).astype(str), np.asarray(pos, np.int64), np.asarray(log10p, float)
    order = np.lexsort((pos, chromosome_order(chrom)))
    chrom, pos, log10p = chrom[order], pos[order], log10p[order]
    names, starts = np.unique(chrom, return_index=True)
    names = names[np.argsort(starts)]
    centres, x, shade = [], np.empty(len(pos), float), np.empty(len(pos), np.int64)
    total = 0.0
    for index, name in enumerate(names):
        rows = chrom == name
        low, high = pos[rows].min(), pos[rows].max()
        x[rows], shade[rows] = pos[rows] - low + total, index % 2
        centres.append(total + (high - low) / 2)
        total += high - low + 1
    figure = Figure(figsize=(12, 4), dpi=150)
    axes = figure.add_subplot()
    shown = thin(x, log10p)
    colours = np.array(["#1f4e79", "#7fa7cf"])[shade[shown]]
    axes.scatter(x[shown], log10p[shown], s=3, c=colours, linewidths=0, rasterized=True)
    axes.axhline(-np.log10(threshold), color="#c0392b", linestyle="--", linewidth=0.8)
    axes.set_xticks(centres, names, fontsize=7)
    axes.set_xlim(-0.01 * total, 1.01 * total)
    axes.set_ylim(0, max(np.nanmax(log10p, initial=0.0), -np.log10(threshold)) * 1.08)
    axes.set_xlabel("chromosome")
    axes.set_ylabel("−log10 p")
    axes.set_title(title)
    figure.tight_layout()
    return figure


def qq(log10p: np.ndarray, *, title: str, lambda_gc: float) -> Figure:
    """Observed against expected −log10 p under the null, λGC in the legend, with a 95 % band."""
    observed = np.sort(np.asarray(log10p, float)[np.isfinite(log10p)])[::-1]
    m = len(observed)
    expected = -np.log10(np.arange(1, m + 1) / (m + 1))
    shown = thin(expected, observed)
    ranks = shown + 1                                 # the band only where points are drawn
    low = -np.log10(stats.beta.ppf(0.975, ranks, m - ranks + 1))
    high = -np.log10(stats.beta.ppf(0.025, ranks, m - ranks + 1))
    figure = Figure(figsize=(4.5, 4.5), dpi=150)
    axes = figure.add_subplot()
    axes.fill_between(expected[shown], low, high, color="#dddddd", linewidth=0)
    axes.scatter(expected[shown], observed[shown], s=4, color="#1f4e79", linewidths=0, rasterized=True,
                 label=f"λGC = {lambda_gc:.3f}")
    top = max(expected.max(initial=1.0), 1.0)
    axes.plot([0, top], [0, top], color="#c0392b", linewidth=0.8)
    axes.set_xlabel("expected −log10 p")
    axes.set_ylabel("observed −log10 p")
    axes.set_title(title)
    axes.legend(loc="upper left", frameon=False)
    figure.tight_layout()
    return figure


def site_effects(before: np.ndarray, after: np.ndarray, batch: np.ndarray, sites: list[str], features: list[str], *,
                 title: str) -> Figure:
    """Each site's mean (top) and SD (bottom) of each feature, in units of the feature's SD over every sample,
    before and after harmonisation: a site's location effects are the spread of the means, its scale effects
    the spread of the SDs."""
    figure = Figure(figsize=(9, 7), dpi=150)
    for row, (statistic, label, level) in enumerate(((np.mean, "site mean", 0.0), (np.std, "site SD", 1.0))):
        for column, (values, when) in enumerate(((before, "before"), (after, "after"))):
            axes = figure.add_subplot(2, 2, 2 * row + column + 1,
                                      sharey=figure.axes[2 * row] if column else None)
            z = (values - values.mean(axis=0)) / values.std(axis=0)
            for b, site in enumerate(sites):
                axes.plot(np.arange(len(features)), statistic(z[batch == b], axis=0), marker="o", linewidth=0.8,
                          label=site)
            axes.axhline(level, color="#999999", linewidth=0.6)
            axes.set_xticks(np.arange(len(features)), features if row else [], rotation=45, ha="right", fontsize=7)
            axes.set_title(f"{title}: {label}s {when}", fontsize=9)
            axes.set_ylabel(f"{label} (SD of the IDP)")
    figure.axes[0].legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return figure


def cca_correlations(r: np.ndarray, r_cv: np.ndarray, r_cv_sd: np.ndarray, r_test: np.ndarray, *,
                     title: str) -> Figure:
    """Each pair's correlation in sample beside out of sample (mean over the folds, ± their SD; and on the
    participants set apart, where there are some): the gap is what the fit owes to its own participants."""
    figure = Figure(figsize=(6, 4), dpi=150)
    axes = figure.add_subplot()
    pairs = np.arange(1, len(r) + 1)
    axes.bar(pairs - 0.27, r, width=0.27, label="in sample", color="#9aa7b8")
    axes.bar(pairs, r_cv, width=0.27, yerr=r_cv_sd, label="held-out folds", color="#3465a4", capsize=3)
    if np.isfinite(r_test).any():
        axes.bar(pairs + 0.27, r_test, width=0.27, label="test participants", color="#cc6600")
    axes.axhline(0, color="#999999", linewidth=0.6)
    axes.set_xticks(pairs, [f"pair {k}" for k in pairs])
    axes.set_ylabel("correlation of the pair's scores")
    axes.set_title(title, fontsize=9)
    axes.legend(frameon=False, fontsize=7)
    figure.tight_layout()
    return figure


def cca_weights(names: list[str], blocks: list[str], weights: np.ndarray, same_sign: np.ndarray | None, *,
                title: str, shown: int = 20) -> Figure:
    """One pair's weights, each block's ``shown`` largest (in absolute value; those not 0) as bars, an open bar
    where fewer than 95 % of the bootstrap refits give the weight its sign (``same_sign``; None: no bootstraps)."""
    figure = Figure(figsize=(9, 5), dpi=150)
    for column, block in enumerate(("x", "y")):
        axes = figure.add_subplot(1, 2, column + 1)
        mine = np.flatnonzero((np.asarray(blocks) == block) & (weights != 0))   # sparse CCA leaves some out
        mine = mine[np.argsort(-np.abs(weights[mine]), kind="stable")[:shown]][::-1]
        stable = np.ones(len(mine), bool) if same_sign is None else same_sign[mine] >= 0.95
        axes.barh(np.arange(len(mine)), weights[mine], color=np.where(stable, "#3465a4", "white"),
                  edgecolor="#3465a4")
        axes.set_yticks(np.arange(len(mine)), [names[j] for j in mine], fontsize=7)
        axes.axvline(0, color="#999999", linewidth=0.6)
        axes.set_title(f"{title}: {block.upper()} weights", fontsize=9)
    figure.tight_layout()
    return figure


def site_share(values: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """The share of each feature's variance (column of ``values``) the batches explain: between-batch sum of
    squares over the total (η² of a one-way ANOVA).

    >>> site_share(np.array([[1.0], [3.0], [2.0], [4.0]]), np.array([0, 0, 1, 1])).round(2).tolist()
    [0.2]
    """
    centred = values - values.mean(axis=0)
    between = sum((batch == b).sum() * centred[batch == b].mean(axis=0) ** 2 for b in np.unique(batch))
    return between / (centred ** 2).sum(axis=0)
