"""Reporting on a results table: per-phenotype summaries, lead hits, plots and a one-page HTML report.

Works on any results table of the lake (GWAS, EWAS, GxE, meta-analysis): the run's kind,
read from its provenance, says which columns hold the phenotype, the feature (variant or
CpG) and the headline −log10 p. Summaries are DuckDB aggregates over the table's files,
so they scale with the table, not with memory.
"""

from __future__ import annotations

import base64
import functools
import html
import json
import operator
import tempfile
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.stats.multiple import GENOME_WIDE, bh_fdr_sql, clump_by_distance, family_threshold
from biolake.stats.summary import with_lambda_gc


def phenotype_summary(lake: Lake, name: str) -> pa.Table:
    """Per phenotype: tests, λGC, hits at 5e-8, and the top feature with its −log10 p.

    Examples
    --------
    >>> phenotype_summary(Lake.open("lake"), "demo_idps").column_names
    ['phenotype', 'tests', 'lambda_gc', 'hits', 'top', 'top_log10p']
    """
    kind = lake.results_kind(name, scans=True)
    table = _query(lake, name, f"""
        SELECT "{kind.phenotype}" AS phenotype, count("{kind.log10p}") AS tests,
               median("{kind.log10p}") AS median_log10p,
               count(*) FILTER (WHERE "{kind.log10p}" > {-np.log10(GENOME_WIDE)}) AS hits,
               arg_max("{kind.feature}", "{kind.log10p}") AS top, max("{kind.log10p}") AS top_log10p
        FROM results GROUP BY 1 ORDER BY top_log10p DESC NULLS LAST""")
    return with_lambda_gc(table, at=2)


def lead_hits(lake: Lake, name: str, *, threshold: float = GENOME_WIDE, family: bool = False,
              fdr: float | None = None, window: int = 500_000) -> pa.Table:
    """One lead feature per locus and phenotype: hits clumped by distance (±``window`` bp).

    A hit passes ``threshold``, divided by the number of phenotypes in the run when
    ``family`` (Bonferroni over the phenotype family, as BIG40 does for IDPs); or, with
    ``fdr``, has a Benjamini–Hochberg q-value (within its scan: phenotype, and exposure for
    GxE) at most ``fdr``; the run's stored ``fdr`` column is used when it has one.
    ``locus_hits`` counts the hits each lead stands for.
    """
    kind = lake.results_kind(name, scans=True)
    columns = [*kind.groups, kind.feature, "chrom", "pos", kind.effect, kind.log10p]
    results = lake.results_dataset(name)
    if fdr is not None and "fdr" in results.schema.names:   # stored by the run (EWAS; GWAS/GxE --adjust)
        hits = results.to_table(columns=[*columns, "fdr"], filter=pc.field("fdr") <= float(fdr))
    elif fdr is not None:
        selected = ", ".join(f'"{c}"' for c in columns)
        hits = _query(lake, name, f"""SELECT {selected}, fdr FROM ({bh_fdr_sql(
            f'(SELECT {selected} FROM results)', groups=kind.groups, log10p=kind.log10p)})
            WHERE fdr <= {float(fdr)!r}""")
    else:
        if family:
            phenotypes = _query(lake, name, f'SELECT count(DISTINCT "{kind.phenotype}") FROM results').column(0)[0]
            threshold = family_threshold(phenotypes.as_py(), alpha=threshold)
        hits = results.to_table(columns=columns, filter=pc.field(kind.log10p) > float(-np.log10(threshold)))
    parts = []
    for scan in hits.select(kind.groups).group_by(kind.groups).aggregate([]).to_pylist():
        mine = hits.filter(functools.reduce(operator.and_, [pc.field(c) == v for c, v in scan.items()]))
        chrom, pos = mine.column("chrom").to_numpy(zero_copy_only=False), mine.column("pos").to_numpy()
        leads = clump_by_distance(chrom, pos, mine.column(kind.log10p).to_numpy(), window=window)
        counts = [int(((chrom == chrom[i]) & (np.abs(pos - pos[i]) <= window)).sum()) for i in leads]
        parts.append(mine.take(leads).append_column("locus_hits", pa.array(counts, pa.int64())))
    table = pa.concat_tables(parts) if parts else pa.table(
        {**{c: pa.array([], hits.schema.field(c).type) for c in hits.column_names}, "locus_hits": pa.array([], pa.int64())})
    table = table.append_column("p", pc.power(10.0, pc.negate(table.column(kind.log10p))))
    return table.sort_by([(kind.log10p, "descending")])


def plot_results(lake: Lake, name: str, out: Path, *, phenotypes: list[str] | None = None,
                 limit: int = 20) -> list[Path]:
    """Manhattan and QQ PNGs per phenotype (the ``limit`` strongest unless ``phenotypes`` are named),
    and a combined Manhattan of the best p per feature across all phenotypes. Returns the files."""
    from biolake.stats.plots import manhattan, qq

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


def write_report(lake: Lake, name: str, out: Path, *, limit: int = 6) -> Path:
    """One self-contained HTML page: provenance, the λGC table, lead hits and the plots (inlined)."""
    kind = lake.results_kind(name, scans=True)
    summary, hits = phenotype_summary(lake, name), lead_hits(lake, name)
    provenance = lake.results_provenance(name)
    warning = (f"<p><strong>Warning: computed from a retracted release; {html.escape(provenance['retracted'])}"
               "</strong></p>" if "retracted" in provenance else "")
    with tempfile.TemporaryDirectory() as folder:
        pictures = plot_results(lake, name, Path(folder), limit=limit)
        images = "".join(f'<figure><img src="data:image/png;base64,{base64.b64encode(p.read_bytes()).decode()}" '
                         f'alt="{html.escape(p.stem)}"><figcaption>{html.escape(p.stem)}</figcaption></figure>'
                         for p in sorted(pictures, key=lambda p: (p.stem != "manhattan_all", p.stem)))
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>biolake: {html.escape(name)}</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}table{{border-collapse:collapse;font-size:13px}}
td,th{{border:1px solid #ccc;padding:2px 6px;text-align:right}}img{{max-width:100%}}figure{{margin:1em 0}}
pre{{background:#f6f6f6;padding:1em;white-space:pre-wrap}}</style></head><body>
<h1>{html.escape(name)}</h1>{warning}
<h2>Provenance</h2><pre>{html.escape(json.dumps(provenance, indent=2, default=str))}</pre>
<h2>Per phenotype (λGC; hits at p &lt; 5e-8)</h2>{_html_table(summary)}
<h2>Lead hits (p &lt; 5e-8, one per ±500 kb)</h2>{_html_table(hits.select([*kind.groups, kind.feature, "chrom", "pos", kind.effect, "p", "locus_hits"]))}
<h2>Plots</h2>{images}
</body></html>"""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page)
    return out


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
        return f"{value:.4g}"
    return html.escape("" if value is None else str(value))


def _file_stem(phenotype: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in phenotype)

