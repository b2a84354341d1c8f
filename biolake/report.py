"""Reporting on a results table: per-phenotype summaries, lead hits, plots and a one-page HTML report.

Works on any results table of the lake with scans (GWAS, EWAS, GxE, SNP × SNP pairs, meta-analysis):
the run's kind, read from its provenance, says which columns hold the phenotype, the feature (variant
or CpG; of a pair, the partner, and the pair's other variant) and the headline −log10 p. Summaries
are DuckDB aggregates over the table's files, so they scale with the table, not with memory. A
report of h² or rg (kinds h2, rg: a row per phenotype or pair) shows the table whole, rg as a matrix
(:mod:`biolake.estimates`).
"""

from __future__ import annotations

import base64
import functools
import html
import json
import operator
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from biolake.clump import ClumpFlags, clumps_of
from biolake.estimates import ESTIMATE_KINDS, format_estimate, rg_colour, rg_matrix, rg_text
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import PAIR_SEPARATOR, ResultsKind
from biolake.stats.multiple import (GENOME_WIDE, bh_fdr_sql, clump_by_distance, clump_pairs_by_distance,
                                    family_threshold)
from biolake.stats.summary import with_lambda_gc


def phenotype_summary(lake: Lake, name: str) -> pa.Table:
    """Per phenotype: tests, λGC, hits at 5e-8, and the top feature (or pair, "A × B") with its −log10 p.

    Examples
    --------
    >>> phenotype_summary(Lake.open("lake"), "demo_idps").column_names
    ['phenotype', 'tests', 'lambda_gc', 'hits', 'top', 'top_log10p']
    """
    kind = lake.results_kind(name, scans=True)
    table = _query(lake, name, f"""
        SELECT "{kind.phenotype}" AS phenotype, count("{kind.log10p}") AS tests,
               -log10(median(pow(10.0, -"{kind.log10p}"))) AS median_log10p,   -- the median p, as λGC's definition
               count(*) FILTER (WHERE "{kind.log10p}" > {-np.log10(GENOME_WIDE)}) AS hits,
               arg_max({_name_sql(kind)}, "{kind.log10p}") AS top, max("{kind.log10p}") AS top_log10p
        FROM results GROUP BY 1 ORDER BY top_log10p DESC NULLS LAST""")
    return with_lambda_gc(table, at=2)


def _name_sql(kind: ResultsKind) -> str:
    """SQL naming a row's feature: its id, or for a pair "A × B" (the pair's other feature first)."""
    return f"""("{kind.pair[0]}" || '{PAIR_SEPARATOR}' || "{kind.feature}")""" if kind.pair else f'"{kind.feature}"'


LEAD_R2 = 0.1   # hits in LD above this with a stronger one join its locus (FUMA's lead SNPs: r² < 0.1 apart)


@dataclass(frozen=True)
class HitClumping:
    """How lead hits are told apart: by LD with the genotypes of ``release`` (r² above ``r2`` within
    ±``window`` bp, as plink1.9 --clump), or, where ``release`` is None, by distance (±``window`` bp),
    for the reason ``why``; hits that are ``pairs`` of variants by distance around both."""

    window: int
    r2: float
    release: str | None = None
    why: str = ""
    pairs: bool = False

    def __str__(self) -> str:
        if self.pairs:
            return f"pair clumping by distance: one lead pair per ±{self.window:,} bp around both its variants"
        if self.release is not None:
            return (f"LD clumping: r² > {self.r2:g} within ±{self.window:,} bp, genotypes of release "
                    f"{self.release} (as plink1.9 --clump)")
        return f"distance clumping: one lead per ±{self.window:,} bp ({self.why})"


def lead_hits(lake: Lake, name: str, *, threshold: float = GENOME_WIDE, family: str | None = None,
              fdr: float | None = None, window: int = 500_000, r2: float = LEAD_R2,
              ld_release: str | None = None) -> pa.Table:
    """One lead feature per locus and phenotype, with the other hits of its locus.

    A hit passes ``threshold``, divided, with a ``family``, by the size of the run's phenotype
    family: ``count``, the number of its phenotypes (Bonferroni over the family, as BIG40 does
    for IDPs), or ``meff``, their effective number (Li & Ji's, which the run keeps: correlated
    IDPs count as fewer tests; :func:`biolake.stats.multiple.effective_tests`); or, with
    ``fdr``, has a Benjamini–Hochberg q-value (within its scan: phenotype, and exposure for
    GxE) at most ``fdr``; the run's stored ``fdr`` column is used when it has one.

    The hits of each scan are clumped by LD, with the clump job's kernel
    (:func:`biolake.clump.clumps_of`): the strongest hit not yet clumped leads a locus holding
    every other such hit within ±``window`` bp whose r² with it exceeds ``r2`` (plink1.9
    --clump with --clump-p1 and --clump-p2 at the hits' threshold), r² from the genotypes of
    ``ld_release`` (default: the release the results were computed from). Where those
    genotypes are not at hand (CpGs, results naming no release, hits that are not variants
    of it, ``window`` 0), hits are clumped by distance instead: one lead per ±``window`` bp.
    :func:`clumping_of` the table says which was done, and why. ``locus_hits`` counts the
    hits each lead stands for; ``members`` lists the others, in genome order.

    Where each row tests a pair of variants (kind epistasis), a hit is a pair: its columns are the
    pair's other variant (id, chromosome, position) before the feature's, ``members`` names pairs
    "A × B", and pairs are clumped by distance around both their variants
    (:func:`biolake.stats.multiple.clump_pairs_by_distance`): a pair not yet in a locus leads one
    holding every other hit pair whose variants each lie within ±``window`` bp of the lead's two,
    either way round (LD is between variants, not pairs).

    Examples
    --------
    >>> leads = lead_hits(Lake.open("lake"), "demo_idps", threshold=1e-5)
    >>> clumping_of(leads)
    'LD clumping: r² > 0.1 within ±500,000 bp, genotypes of release r2 (as plink1.9 --clump)'
    """
    flags = ClumpFlags(p1=1.0, p2=1.0, r2=r2, kb=max(window, 1) / 1000)   # refuses a bad --r2 before any read
    kind = lake.results_kind(name, scans=True)
    hits = _hits(lake, name, kind, threshold=threshold, family=family, fdr=fdr)
    clumping, located = _hit_clumping(lake, name, kind, hits, window=window, r2=r2, ld_release=ld_release)
    if located is None:
        table = (_pair_leads if clumping.pairs else _distance_leads)(kind, hits, window)
    else:
        table = _ld_leads(lake, kind, hits, located, flags, release=clumping.release)
    table = table.append_column("p", pc.power(10.0, pc.negate(table.column(kind.log10p))))
    return table.sort_by([(kind.log10p, "descending")]).replace_schema_metadata({"clumping": str(clumping)})


def clumping_of(leads: pa.Table) -> str:
    """How :func:`lead_hits` clumped the hits of ``leads``: by LD (with which release) or by distance (and why)."""
    return leads.schema.metadata[b"clumping"].decode()


def _hits(lake: Lake, name: str, kind: ResultsKind, *, threshold: float, family: str | None,
          fdr: float | None) -> pa.Table:
    """The rows of the results ``name`` that are hits (see :func:`lead_hits`)."""
    columns = [*_hit_columns(kind), kind.effect, kind.log10p]
    results = lake.results_dataset(name)
    if fdr is not None and "fdr" in results.schema.names:   # stored by the run (EWAS; GWAS/GxE --adjust)
        return results.to_table(columns=[*columns, "fdr"], filter=pc.field("fdr") <= float(fdr))
    if fdr is not None:
        selected = ", ".join(f'"{c}"' for c in columns)
        return _query(lake, name, f"""SELECT {selected}, fdr FROM ({bh_fdr_sql(
            f'(SELECT {selected} FROM results)', groups=kind.groups, log10p=kind.log10p)})
            WHERE fdr <= {float(fdr)!r}""")
    if family is not None:
        threshold = family_threshold(_family_size(lake, name, kind, family), alpha=threshold)
    return results.to_table(columns=columns, filter=pc.field(kind.log10p) > float(-np.log10(threshold)))


FAMILIES = ("count", "meff")   # how lead_hits sizes a run's phenotype family


def _family_size(lake: Lake, name: str, kind: ResultsKind, family: str) -> float:
    """The size of the phenotype family of the results ``name``: its number of phenotypes (``count``), or their
    effective number (``meff``: Li & Ji's, from their correlations, which the run's provenance keeps)."""
    if family == "count":
        return _query(lake, name, f'SELECT count(DISTINCT "{kind.phenotype}") FROM results').column(0)[0].as_py()
    if family != "meff":
        raise BiolakeError(f"--family {family!r}: one of {', '.join(FAMILIES)}")
    meff = lake.results_provenance(name).get("phenotype_meff")
    if meff is None:
        raise BiolakeError(f"results {name!r} keep no effective number of phenotypes (made before biolake stored "
                           "it); rerun the job, or use --family count")
    return meff["li_ji"]


def _hit_columns(kind: ResultsKind) -> list[str]:
    """The columns saying which hit a row is: its scan, the pair's other feature (where rows are pairs), the feature
    and its position."""
    return [*kind.groups, *kind.pair, kind.feature, "chrom", "pos"]


def _hit_clumping(lake: Lake, name: str, kind: ResultsKind, hits: pa.Table, *, window: int, r2: float,
                  ld_release: str | None) -> tuple[HitClumping, pl.DataFrame | None]:
    """LD clumping with the release giving it, and where that release holds the hits' variants (variant_id,
    chrom, pos); or distance clumping, and why; or, for pairs of variants, distance clumping around both."""
    def by_distance(why: str) -> tuple[HitClumping, None]:
        return HitClumping(window, r2, why=why), None

    if kind.pair:
        return HitClumping(window, r2, pairs=True), None
    if window == 0:
        return by_distance("--window 0: no LD asked for")
    if kind.feature != "variant_id":
        return by_distance(f"{kind.feature}s have no genotypes to give LD")
    release = ld_release or lake.results_provenance(name).get("release")
    if release is None:
        return by_distance(f"results {name!r} name no release; --ld-release names one")
    retraction = None if ld_release else lake.retractions().get(release)
    if retraction is not None:
        return by_distance(f"release {release} was retracted")
    if "genotypes" not in lake.resolve_release(release).tables:
        return by_distance(f"release {release} holds no genotypes")
    ids = pc.unique(hits.column(kind.feature))
    located = pl.from_arrow(lake.read("variants", release=release, columns=["variant_id", "chrom", "pos"],
                                      filter=pc.field("variant_id").isin(ids)))
    if located.height != len(ids):
        found = located["variant_id"].n_unique()
        return by_distance(f"{len(ids) - found:,} of {len(ids):,} hits are not variants of release {release}"
                           if found < len(ids) else f"variant ids repeat in release {release}")
    return HitClumping(window, r2, release), located


def _ld_leads(lake: Lake, kind: ResultsKind, hits: pa.Table, located: pl.DataFrame, flags: ClumpFlags, *,
              release: str) -> pa.Table:
    """Each scan's hits clumped by LD (p1 = p2 = 1: every hit may lead, every clumped hit is listed)."""
    frame = pl.from_arrow(hits)
    scans = frame.select(kind.groups).unique(maintain_order=True).with_row_index("scan")
    frame = frame.join(scans, on=kind.groups, how="left", coalesce=True)
    rows = frame.select("scan", kind.feature, kind.effect, kind.log10p).join(located, on="variant_id").select(
        pl.col("scan").cast(pl.String).alias("phenotype"), "variant_id", "chrom", "pos",
        pl.col(kind.effect).alias("beta"), pl.col(kind.log10p).alias("log10p"),
        # p only orders the hits: a rank of −log10 p, which keeps the order of p past float64's underflow
        p=pl.col(kind.log10p).rank("dense", descending=True).over("scan") / (pl.len() + 1))
    clumps = pl.from_arrow(clumps_of(lake, rows, flags, release=release)).select(
        pl.col("phenotype").cast(pl.UInt32).alias("scan"), "variant_id", pl.col("sp2").alias("members"))
    leads = frame.join(clumps, on=["scan", kind.feature], how="inner")
    schema = _with_locus_columns(hits.schema)
    return leads.with_columns(locus_hits=1 + pl.col("members").list.len()).select(schema.names).to_arrow().cast(
        schema)


Loci = tuple[np.ndarray, list[np.ndarray], np.ndarray]   # one scan's leads, each one's locus, each hit's name


def _distance_leads(kind: ResultsKind, hits: pa.Table, window: int) -> pa.Table:
    """Each scan's hits clumped by distance (:func:`biolake.stats.multiple.clump_by_distance`)."""
    def loci(mine: pa.Table) -> Loci:
        chrom, pos = _array(mine, "chrom"), _array(mine, "pos")
        leads = clump_by_distance(chrom, pos, _array(mine, kind.log10p), window=window)
        near = [np.flatnonzero((chrom == chrom[i]) & (np.abs(pos - pos[i]) <= window)) for i in leads]
        return leads, [n[np.argsort(pos[n], kind="stable")] for n in near], _array(mine, kind.feature)

    return _loci_per_scan(kind, hits, loci)


def _pair_leads(kind: ResultsKind, hits: pa.Table, window: int) -> pa.Table:
    """Each scan's hit pairs clumped by distance around both variants
    (:func:`biolake.stats.multiple.clump_pairs_by_distance`), each pair named "A × B"."""
    from biolake.stats.plots import chromosome_order   # matplotlib's import stays off the other kinds' path

    other_id, other_chrom, other_pos = kind.pair

    def loci(mine: pa.Table) -> Loci:
        chrom_a, pos_a, chrom, pos = (_array(mine, c) for c in (other_chrom, other_pos, "chrom", "pos"))
        lead = clump_pairs_by_distance(chrom_a, pos_a, chrom, pos, _array(mine, kind.log10p), window=window)
        genome = np.lexsort((pos, chromosome_order(chrom), pos_a, chromosome_order(chrom_a)))
        leads = np.flatnonzero(lead == np.arange(len(lead)))
        names = pc.binary_join_element_wise(mine.column(other_id), mine.column(kind.feature), PAIR_SEPARATOR)
        return leads, [genome[lead[genome] == i] for i in leads], names.to_numpy(zero_copy_only=False)

    return _loci_per_scan(kind, hits, loci)


def _loci_per_scan(kind: ResultsKind, hits: pa.Table, loci: Callable[[pa.Table], Loci]) -> pa.Table:
    """The leads of each scan's hits with the columns of their locus: ``loci`` takes one scan's hits and gives the
    leads' indices, each lead's locus (indices of its hits, the lead among them, in genome order) and each hit's
    name as ``members`` lists it."""
    parts = []
    for scan in hits.select(kind.groups).group_by(kind.groups).aggregate([]).to_pylist():
        mine = hits.filter(functools.reduce(operator.and_, [pc.field(c) == v for c, v in scan.items()]))
        leads, locus, names = loci(mine)
        parts.append(mine.take(leads).append_column("locus_hits", pa.array([len(n) for n in locus], pa.int64()))
                     .append_column("members", pa.array([names[n[n != i]].tolist() for i, n in zip(leads, locus)],
                                                        pa.list_(pa.string()))))
    return pa.concat_tables(parts) if parts else _with_locus_columns(hits.schema).empty_table()


def _array(table: pa.Table, column: str) -> np.ndarray:
    """One column as a NumPy array (strings as objects)."""
    return table.column(column).to_numpy(zero_copy_only=False)


def _with_locus_columns(schema: pa.Schema) -> pa.Schema:
    """The hits' schema with the columns of their locus: how many hits a lead stands for, and the others."""
    return schema.append(pa.field("locus_hits", pa.int64())).append(pa.field("members", pa.list_(pa.string())))


def plot_results(lake: Lake, name: str, out: Path, *, phenotypes: list[str] | None = None,
                 limit: int = 20) -> list[Path]:
    """Manhattan and QQ PNGs per phenotype (the ``limit`` strongest unless ``phenotypes`` are named),
    and a combined Manhattan of the best p per feature across all phenotypes. Returns the files."""
    from biolake.stats.plots import manhattan, qq

    if lake.results_kind(name).name == "cca":
        return _cca_plots(lake, name, out)
    kind, results = lake.results_kind(name, scans=True), lake.results_dataset(name)
    summary = phenotype_summary(lake, name)
    chosen = phenotypes or summary.column("phenotype").to_pylist()[:limit]
    out.mkdir(parents=True, exist_ok=True)
    written = []
    lambdas = dict(zip(summary.column("phenotype").to_pylist(), summary.column("lambda_gc").to_pylist()))
    for phenotype in chosen:
        if phenotype not in lambdas:
            raise BiolakeError(f"results {name!r} have no {kind.phenotype} {phenotype!r}")
        rows = results.to_table(columns=["chrom", "pos", kind.log10p], filter=pc.field(kind.phenotype) == phenotype)
        log10p = rows.column(kind.log10p).to_numpy(zero_copy_only=False).astype(float)
        stem = _file_stem(phenotype)
        for figure, path in ((manhattan(rows.column("chrom").to_numpy(zero_copy_only=False), rows.column("pos").to_numpy(),
                                        log10p, title=f"{name}: {phenotype}"), out / f"manhattan_{stem}.png"),
                             (qq(log10p, title=f"{name}: {phenotype}", lambda_gc=lambdas[phenotype]),
                              out / f"qq_{stem}.png")):
            figure.savefig(path)
            written.append(path)
    if len(lambdas) > 1:
        best = _query(lake, name, f'SELECT chrom, pos, max("{kind.log10p}") AS log10p FROM results GROUP BY chrom, pos')
        figure = manhattan(best.column("chrom").to_numpy(zero_copy_only=False), best.column("pos").to_numpy(),
                           best.column("log10p").to_numpy(zero_copy_only=False).astype(float),
                           title=f"{name}: best of {len(lambdas)} {kind.phenotype}s",
                           threshold=family_threshold(len(lambdas)))
        figure.savefig(out / "manhattan_all.png")
        written.append(out / "manhattan_all.png")
    return written


def _cca_plots(lake: Lake, name: str, out: Path) -> list[Path]:
    """A cca run's plots: each pair's correlation in and out of sample, and each pair's largest weights."""
    from biolake.stats.plots import cca_correlations, cca_weights

    pairs = lake.results_dataset(name).to_table().sort_by("component").to_pydict()
    weights = lake.results_dataset(lake.results_provenance(name)["weights"]).to_table().to_pydict()
    out.mkdir(parents=True, exist_ok=True)

    def values(column: list) -> np.ndarray:
        return np.array([np.nan if v is None else v for v in column], float)

    figures = [(cca_correlations(values(pairs["r"]), values(pairs["r_cv"]), values(pairs["r_cv_sd"]),
                                 values(pairs["r_test"]), title=f"{name}: correlations"), out / "correlations.png")]
    figures += [(cca_weights(weights["variable"], weights["block"], values(weights[f"c{k}"]),
                             values(weights[f"c{k}_same_sign"]) if f"c{k}_same_sign" in weights else None,
                             title=f"{name}: pair {k}"), out / f"weights_pair{k}.png") for k in pairs["component"]]
    for figure, path in figures:
        figure.savefig(path)
    return [path for _, path in figures]


def write_report(lake: Lake, name: str, out: Path, *, limit: int = 6) -> Path:
    """One self-contained HTML page: provenance, then for scans the λGC table, lead hits with their loci
    (LD-clumped where the lake holds the genotypes, see :func:`lead_hits`) and the plots (inlined); for h²
    (kind h2) each phenotype's estimate with its SE; for genetic correlations (kind rg) the rg matrix and its pairs;
    for a cca run its pairs, the first pair's largest weights and its plots."""
    kind = lake.results_kind(name)
    if kind.name not in (*ESTIMATE_KINDS, "cca"):
        kind = lake.results_kind(name, scans=True)   # refuses the other kinds without scans (prs, ld, ldscore)
    sections = (_estimate_sections(lake, name, kind.name) if kind.name in ESTIMATE_KINDS
                else _cca_sections(lake, name) if kind.name == "cca" else _scan_sections(lake, name, kind, limit=limit))
    provenance = lake.results_provenance(name)
    warning = (f"<p><strong>Warning: computed from a retracted release; {html.escape(provenance['retracted'])}"
               "</strong></p>" if "retracted" in provenance else "")
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>biolake: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:100%}}figure{{margin:1em 0}}
pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}</style></head><body>
<h1>{html.escape(name)}</h1>{warning}
<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>
{sections}
</body></html>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


def _scan_sections(lake: Lake, name: str, kind: ResultsKind, *, limit: int) -> str:
    """A scan report's body: the λGC table, lead hits and their loci, the plots."""
    summary, hits = phenotype_summary(lake, name), lead_hits(lake, name)
    images = _inlined_plots(lake, name, limit=limit)
    return f"""<h2>Per phenotype (λGC; hits at p &lt; 5e-8)</h2>{_html_table(summary)}
<h2>Lead hits (p &lt; 5e-8) and their loci</h2><p>{html.escape(clumping_of(hits))}; members: the other hits of the locus.</p>
{_html_table(hits.select([*_hit_columns(kind), kind.effect, "p", "locus_hits", "members"]))}
<h2>Plots</h2>{images}"""


def _inlined_plots(lake: Lake, name: str, *, limit: int = 6) -> str:
    """A run's plots (:func:`plot_results`) as HTML figures with the PNGs inlined, a combined Manhattan first."""
    with tempfile.TemporaryDirectory() as folder:
        pictures = plot_results(lake, name, Path(folder), limit=limit)
        return "".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                       f'alt="{html.escape(p.stem)}"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
                       for p in sorted(pictures, key=lambda p: (p.stem != "manhattan_all", p.stem)))


def _cca_sections(lake: Lake, name: str) -> str:
    """A cca report's body: each pair's correlations in and out of sample with its p, each block's largest weights
    of the first pair, the plots."""
    pairs = lake.results_dataset(name).to_table().sort_by("component")
    weights = pl.from_arrow(lake.results_dataset(lake.results_provenance(name)["weights"]).to_table())
    largest = pl.concat([weights.filter(pl.col("block") == block).sort(pl.col("c1").abs(), descending=True).head(15)
                         for block in ("x", "y")])
    return f"""<h2>Pairs of components (r in sample; r_cv over held-out folds; r_test on the participants set apart)</h2>
{_html_table(pairs, rows=pairs.num_rows)}
<h2>The first pair's largest weights</h2>{_html_table(largest.to_arrow(), rows=30)}
<h2>Plots</h2>{_inlined_plots(lake, name)}"""


def _estimate_sections(lake: Lake, name: str, kind: str) -> str:
    """An h² report's body: every phenotype's row (h², SE and, for LD score regression, the intercept, ratio,
    mean χ² and λGC); an rg report's: the matrix of rg ± SE, coloured by rg, then every pair's row."""
    table = lake.results_dataset(name).to_table()
    if kind == "h2":
        return f"<h2>SNP heritability per phenotype</h2>{_html_table(table, rows=table.num_rows)}"
    matrix = rg_matrix(table)
    head = "".join(f"<th>{html.escape(matrix.label(one))}</th>" for one in matrix.columns)
    body = "".join(f"<tr><th>{html.escape(matrix.label(one))}</th>" + "".join(
        f'<td style="background:{rg_colour(cell)}">{rg_text(cell)}</td>' for cell in cells) + "</tr>"
        for one, cells in zip(matrix.rows, matrix.cells))
    return f"""<h2>Genetic correlations (rg ± SE; red positive, blue negative)</h2>
<table class="rg"><tr><th></th>{head}</tr>{body}</table>
<h2>Every pair</h2>{_html_table(table, rows=table.num_rows)}"""


def _query(lake: Lake, name: str, sql: str) -> pa.Table:
    """Run ``sql`` with the results ``name`` as the table ``results`` (DuckDB over its Parquet files)."""
    with duckdb.connect() as con:
        con.register("results", lake.results_dataset(name))
        return con.sql(sql).to_arrow_table()


def _html_table(table: pa.Table, *, rows: int = 200) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table.column_names)
    body = "".join("<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row.values()) + "</tr>"
                   for row in table.slice(0, rows).to_pylist())
    more = f"<p>… {table.num_rows - rows:,} more rows in the results table</p>" if table.num_rows > rows else ""
    return f"<table><tr>{head}</tr>{body}</table>{more}"


def _cell(value: object) -> str:
    if isinstance(value, float):
        return format_estimate(value)
    if isinstance(value, list):   # a lead's locus
        return html.escape(", ".join(value))
    return html.escape("" if value is None else str(value))


def _file_stem(phenotype: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in phenotype)

