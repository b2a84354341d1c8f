"""``biolake serve``: a results browser over the lake (PheWeb-style pages for imaging GWAS).

A Starlette app; every page reads the runs' browse indexes (:mod:`queries.browse`), never
the full results, and draws its plots in the browser with plotly.js (served from the
plotly package, so no page needs the internet). The SQL console uses the same sandboxed
connection as ``biolake sql``. Errors are pages with one plain sentence, never a traceback.
"""

from __future__ import annotations

import html
import io
import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import numpy as np
import plotly
import pyarrow as pa
import pyarrow.csv as pa_csv
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from biolake.browser.catalogue import Catalogue, PairClasses, Run, parse_position
from biolake.estimates import format_estimate, rg_colour, rg_matrix, rg_text
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import PAIR_SEPARATOR, RESULTS_KINDS
from biolake.queries import connect
from biolake.stats.summary import KEEP_ABOVE
from biolake.stats.multiple import GENOME_WIDE, clump_by_distance, clump_pairs_by_distance

HERE = Path(__file__).parent
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
SQL_ROWS_SHOWN = 500           # the console shows this many rows; the CSV download has them all
SQL_CSV_ROWS = 1_000_000
MAX_REGION_BP = 10_000_000
TOP_LOCI = 25
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")   # as --host, and as Host headers
log = logging.getLogger("biolake.browser")


def create_app(lake: Lake, *, sql_timeout: float = 30.0, sql_console: bool = True,
               allowed_hosts: Sequence[str] = LOOPBACK, announce: Callable[[str], None] = print) -> Starlette:
    """The browser app over ``lake``; builds any missing browse index first.

    Requests must name one of ``allowed_hosts`` (so a web page elsewhere cannot reach a
    loopback server through DNS rebinding); ``sql_console`` turns the console on: it can
    read participant-level tables, so ``biolake serve`` turns it off beyond loopback
    unless asked.

    Examples
    --------
    >>> import uvicorn
    >>> app = create_app(Lake.open("lake"))
    >>> # serves until stopped, so the doctests skip it:
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)     # doctest: +SKIP
    """
    catalogue = Catalogue(lake, log=announce)
    pages = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(["html"]))
    pages.filters["p"] = _format_p
    pages.filters["effect"] = _format_effect
    pages.filters["lambda_gc"] = _format_lambda_gc
    pages.filters["estimate"] = format_estimate
    pages.filters["value"] = _format_value
    pages.globals.update(phenotype_url=_phenotype_url, variant_url=_variant_url, region_url=_region_url,
                         pair_url=_pair_url, class_labels=_class_labels,
                         genome_wide_log10p=-np.log10(GENOME_WIDE), sql_console=sql_console,
                         rg_text=rg_text, rg_colour=rg_colour, label=lambda phenotype: _label(catalogue, phenotype))

    def render(template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return HTMLResponse(pages.get_template(template).render(**values), status_code=status)

    def home(request: Request) -> HTMLResponse:
        catalogue.refresh()
        return render("home.html", runs=list(catalogue.runs.values()), estimates=list(catalogue.estimates.values()))

    def run_page(request: Request) -> HTMLResponse:
        run = _run(catalogue, request.path_params["name"])
        return render("run.html", run=run, scans=[{**scan, "name": _label(catalogue, scan["phenotype"])}
                                                  for scan in run.scans()], clump_runs=catalogue.clump_runs(run))

    def estimates_page(request: Request) -> HTMLResponse:
        catalogue.refresh()
        name = request.path_params["name"]
        table = catalogue.estimates.get(name)
        if table is None:
            raise HTTPException(404, f"no h² or rg results named {name!r} in this lake")
        if table.kind == "rg":
            matrix = rg_matrix(table.rows)
            return render("rg.html", run=table, matrix=matrix, rows=list(zip(matrix.rows, matrix.cells)),
                          pairs=table.rows.to_pylist())
        return render("h2.html", run=table, rows=table.rows.to_pylist(), columns=table.rows.column_names,
                      source=catalogue.runs.get(table.provenance.get("result")))

    def phenotype_page(request: Request) -> HTMLResponse:
        run, phenotype, exposure = _scan(catalogue, request)
        points = run.index.points(phenotype, exposure).to_pylist()
        scan = next(s for s in run.scans() if s["phenotype"] == phenotype and s["exposure"] == exposure)
        pairs = [p for p in points if p.get("pair") is not None]
        return render("phenotype.html", run=run, phenotype=phenotype, exposure=exposure, scan=scan,
                      described=catalogue.describe(phenotype), loci=_top_loci(points),
                      top_pair=max(pairs, key=lambda p: p["log10p"], default=None),
                      clumps=[] if exposure else catalogue.clumps_of(run, phenotype),
                      manhattan=_manhattan_data(run, points), qq=_qq_data(points, scan["lambda_gc"]))

    def pair_page(request: Request) -> HTMLResponse:
        run, phenotype, exposure = _scan(catalogue, request)
        if not run.pair:
            raise HTTPException(404, f"results {run.name!r} ({run.kind}) test one feature per row, not pairs")
        other, feature = request.query_params.get("a", ""), request.query_params.get("b", "")
        row = catalogue.pair_test(run, phenotype, exposure, other, feature)
        if row is None:
            raise HTTPException(404, f"results {run.name!r} hold no test of the pair {other!r} × {feature!r} "
                                     f"for {phenotype!r}")
        try:
            classes, why_not = catalogue.pair_classes(run, phenotype, row), None
        except BiolakeError as exc:   # the release retracted, the phenotype gone from it: the row still shows
            classes, why_not = None, str(exc)
        kind = RESULTS_KINDS[run.kind]
        return render("pair.html", run=run, phenotype=phenotype, exposure=exposure, row=row, kind=kind,
                      places=run.pair_places(row), described=catalogue.describe(phenotype), classes=classes,
                      why_not=why_not, columns=[column for column in kind.columns if column.name in row],
                      interaction=classes and _interaction_data(classes))

    def variant_page(request: Request) -> HTMLResponse:
        feature = request.path_params["feature"]
        catalogue.refresh()
        where, rows = catalogue.phewas(feature)
        if where is None:
            raise HTTPException(404, f"no run tested a variant or CpG named {feature!r}")
        return render("variant.html", feature=feature, chrom=where[0], pos=where[1], rows=rows,
                      alleles=next(((r["ref"], r["alt"]) for r in rows if r["alt"]), None),
                      phewas=_phewas_data(rows))

    def region_page(request: Request) -> HTMLResponse:
        run, phenotype, exposure = _scan(catalogue, request)
        try:
            chrom, start, end = parse_position(request.query_params.get("chrom", ""),
                                               request.query_params.get("start", ""),
                                               request.query_params.get("end"))
        except BiolakeError as exc:
            raise HTTPException(400, str(exc)) from None
        if end - start > MAX_REGION_BP:
            raise HTTPException(400, f"a region may span at most {MAX_REGION_BP:,} bp; this one spans {end - start:,}")
        rows = run.index.region(chrom, start, end, phenotype, exposure).to_pylist()
        grow = min(max(end - start, 1), MAX_REGION_BP - (end - start)) // 2
        return render("region.html", run=run, phenotype=phenotype, exposure=exposure, chrom=chrom, start=start,
                      end=end, rows=rows, described=catalogue.describe(phenotype),
                      wider=(max(start - grow, 0), end + grow) if grow > 0 else None,
                      region=_region_data(rows))

    def search(request: Request) -> Response:
        query = request.query_params.get("q", "")
        catalogue.refresh()
        found = catalogue.search(query)
        if "feature" in found:
            return RedirectResponse(_variant_url(found["feature"]), status_code=303)
        if "position" in found:
            chrom, start, end = found["position"]
            if start == end:
                features = catalogue.features_at(chrom, start)
                if len(features) == 1:
                    return RedirectResponse(_variant_url(features[0]), status_code=303)
                return render("search.html", query=query, search_text=query, features=features, scans=[], region=None,
                              status=200 if features else 404)
            return render("search.html", query=query, search_text=query, features=[], scans=[], status=200,
                          region=_region_choices(catalogue, chrom, start, end))
        scans = found["scans"]
        if len(scans) == 1:
            run, phenotype, exposure, _ = scans[0]
            return RedirectResponse(_phenotype_url(run, phenotype, exposure), status_code=303)
        return render("search.html", query=query, search_text=query, features=[], scans=scans, region=None,
                      status=200 if scans else 404)

    def sql_page(request: Request) -> HTMLResponse:
        if not sql_console:
            raise HTTPException(403, "the SQL console is off on this server (biolake serve --sql-console turns it on)")
        query = request.query_params.get("q", "")
        if not query.strip():
            return render("sql.html", query="", columns=[], rows=[], total=0, error=None)
        try:
            table = run_sql(query, SQL_ROWS_SHOWN + 1)
        except BiolakeError as exc:
            return render("sql.html", query=query, columns=[], rows=[], total=0, error=str(exc), status=400)
        rows = [list(r.values()) for r in table.slice(0, SQL_ROWS_SHOWN).to_pylist()]
        return render("sql.html", query=query, columns=table.column_names, rows=rows, total=table.num_rows,
                      error=None, shown=SQL_ROWS_SHOWN)

    def sql_csv(request: Request) -> Response:
        if not sql_console:
            raise HTTPException(403, "the SQL console is off on this server (biolake serve --sql-console turns it on)")
        try:
            table = run_sql(request.query_params.get("q", ""), SQL_CSV_ROWS + 1)
        except BiolakeError as exc:
            raise HTTPException(400, str(exc)) from None
        out = io.BytesIO()
        pa_csv.write_csv(table.slice(0, SQL_CSV_ROWS), out, pa_csv.WriteOptions(quoting_style="needed"))
        headers = {"Content-Disposition": 'attachment; filename="biolake-query.csv"'}
        if table.num_rows > SQL_CSV_ROWS:
            headers["X-Biolake-Truncated"] = f"first {SQL_CSV_ROWS} rows"
        return Response(out.getvalue(), media_type="text/csv", headers=headers)

    one_query_at_a_time = threading.Semaphore(1)

    def run_sql(query: str, limit: int) -> pa.Table:
        """One read-only query through the sandbox of ``biolake sql``, at most ``limit`` rows computed."""
        if not query.strip():
            raise BiolakeError("empty query")
        if not one_query_at_a_time.acquire(timeout=sql_timeout):
            raise HTTPException(503, "the SQL console is busy with other queries; try again shortly")
        try:
            with connect(lake, timeout=sql_timeout, memory_limit="2GB") as con:
                return con.sql(query).head(limit)
        finally:
            one_query_at_a_time.release()

    def plotly_js(request: Request) -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    def error_page(request: Request, exc: Exception) -> HTMLResponse:
        if isinstance(exc, HTTPException):
            status, message = exc.status_code, exc.detail
        else:   # a bug or a broken lake: say so plainly, keep the details in the server's log
            log.exception("error serving %s", request.url.path)
            status, message = 500, f"the server could not build this page ({type(exc).__name__}); see its log"
        return render("error.html", status=status, code=status, message=message)

    routes = [
        Route("/", home), Route("/run/{name}", run_page), Route("/estimates/{name}", estimates_page),
        Route("/phenotype", phenotype_page), Route("/pair", pair_page),
        Route("/variant/{feature:path}", variant_page), Route("/region", region_page), Route("/search", search),
        Route("/sql", sql_page), Route("/sql.csv", sql_csv), Route("/static/plotly.min.js", plotly_js),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(routes=routes, exception_handlers={HTTPException: error_page, Exception: error_page},
                     middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))])


def _run(catalogue: Catalogue, name: str) -> Run:
    catalogue.refresh()     # at most every REFRESH_SECONDS
    try:
        return catalogue.run(name)
    except LookupError as exc:
        raise HTTPException(404, str(exc)) from None


def _scan(catalogue: Catalogue, request: Request) -> tuple[Run, str, str | None]:
    """The run and scan a page's query parameters name (run, phenotype, exposure for GxE)."""
    run = _run(catalogue, request.query_params.get("run", ""))
    phenotype, exposure = request.query_params.get("phenotype", ""), request.query_params.get("exposure") or None
    if not run.has_scan(phenotype, exposure):
        scan = f"{phenotype!r}" + (f" × {exposure!r}" if exposure else "")
        raise HTTPException(404, f"results {run.name!r} have no phenotype {scan}")
    return run, phenotype, exposure


def _label(catalogue: Catalogue, phenotype: str) -> str:
    described = catalogue.describe(phenotype)
    return described.name if described else phenotype


def _phenotype_url(run: str, phenotype: str, exposure: str | None) -> str:
    return "/phenotype?" + urlencode({"run": run, "phenotype": phenotype, **({"exposure": exposure} if exposure else {})})


def _pair_url(run: str, phenotype: str, exposure: str | None, other: str, feature: str) -> str:
    """The page of one pair's test: ``other`` (the pair role's feature) × ``feature`` (the one placing the row)."""
    return "/pair?" + urlencode({"run": run, "phenotype": phenotype, **({"exposure": exposure} if exposure else {}),
                                 "a": other, "b": feature})


def _point_url(run: str, point: dict[str, Any]) -> str:
    """Where a plotted test leads: its pair's page, or its feature's."""
    if point.get("pair") is None:
        return _variant_url(point["feature"])
    return _pair_url(run, point["phenotype"], point["exposure"], point["pair"], point["feature"])


def _variant_url(feature: str) -> str:
    return "/variant/" + quote(feature, safe="")


def _region_url(run: str, phenotype: str, exposure: str | None, chrom: str, start: int, end: int) -> str:
    return "/region?" + urlencode({"run": run, "phenotype": phenotype, **({"exposure": exposure} if exposure else {}),
                                   "chrom": chrom, "start": max(int(start), 0), "end": int(end)})


def _format_p(log10p: float | None) -> str:
    """p from −log10 p, exact below 1e-300 (e.g. 3.2e-412)."""
    if log10p is None or not np.isfinite(log10p):
        return "NA"
    exponent = np.ceil(log10p)
    mantissa = 10 ** (exponent - log10p)
    if mantissa >= 9.995:
        mantissa, exponent = 1.0, exponent - 1
    return f"{mantissa:.2f}e-{int(exponent)}" if log10p >= 3 else f"{10 ** -log10p:.3g}"


def _format_effect(effect: float | None) -> str:
    """An effect to 4 significant digits with its direction (▲ raises, ▼ lowers); NA when missing."""
    if effect is None or not np.isfinite(effect):
        return "NA"
    return f"{effect:.4g} {'▲' if effect > 0 else '▼'}"


def _format_value(value: Any) -> str:
    """A results cell: a float to 4 significant digits, a whole number with thousands separated, NA when missing."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "NA"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _format_lambda_gc(lambda_gc: float | None) -> str:
    """λGC to 3 decimals; NA where a scan has none (a run of LD clumps holds only strong tests)."""
    return "NA" if lambda_gc is None or not np.isfinite(lambda_gc) else f"{lambda_gc:.3f}"


def _tested(row: dict[str, Any]) -> str:
    """What a test tested: its feature, or its pair "A × B" (the pair's other feature first)."""
    return row["feature"] if row.get("pair") is None else f"{row['pair']}{PAIR_SEPARATOR}{row['feature']}"


def _hover(row: dict[str, Any]) -> str:
    """Hover text of a point (plotly reads it as HTML: names from the data are escaped)."""
    return (f"{html.escape(_tested(row))}<br>{html.escape(row['chrom'])}:{row['pos']:,}<br>"
            f"effect {_format_effect(row['effect'])}<br>p {_format_p(row['log10p'])}")


def _manhattan_data(run: Run, points: list[dict[str, Any]]) -> dict[str, Any]:
    shown = [p for p in points if p["feature"] is not None]
    chromosomes = list(run.offsets)
    return {"x": [run.offsets.get(p["chrom"], 0) + p["pos"] for p in shown],
            "y": [p["log10p"] for p in shown],
            "shade": [chromosomes.index(p["chrom"]) % 2 if p["chrom"] in run.offsets else 0 for p in shown],
            "text": [_hover(p) for p in shown], "links": [_point_url(run.name, p) for p in shown],
            "ticks": {"values": [run.offsets[c] for c in chromosomes], "labels": chromosomes},
            "threshold": -np.log10(GENOME_WIDE)}


def _qq_data(points: list[dict[str, Any]], lambda_gc: float) -> dict[str, Any]:
    qq = sorted((p for p in points if p["expected"] is not None), key=lambda p: p["expected"])
    return {"x": [p["expected"] for p in qq], "y": [p["log10p"] for p in qq],
            "text": [html.escape(_tested(p) if p["feature"] else "") for p in qq], "lambda_gc": lambda_gc}


def _top_loci(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The strongest independent signals among the tests kept above KEEP_ABOVE: one lead per ±500 kb (of each
    variant, for pairs)."""
    strong = [p for p in points if p["feature"] is not None and p["log10p"] > KEEP_ABOVE]
    if not strong:
        return []

    def values(name: str) -> np.ndarray:
        return np.array([p[name] for p in strong])

    if strong[0].get("pair") is None:
        leads = clump_by_distance(values("chrom"), values("pos"), values("log10p"))
    else:
        lead = clump_pairs_by_distance(values("pair_chrom"), values("pair_pos"), values("chrom"), values("pos"),
                                       values("log10p"))
        leads = np.flatnonzero(lead == np.arange(len(lead)))
    chosen = sorted((strong[i] for i in leads), key=lambda p: -p["log10p"])[:TOP_LOCI]
    return [{**p, "genome_wide": p["log10p"] > -np.log10(GENOME_WIDE)} for p in chosen]


def _interaction_data(classes: PairClasses) -> dict[str, Any]:
    """The interaction plot: the phenotype's mean ± SE by the second variant's class, a line per class of the first
    (a gap where a class has no sample). plotly reads its labels as HTML: names from the data are escaped."""
    first, second = classes.variants
    return {"x": [html.escape(label) for label in _class_labels(second)], "a": html.escape(first["variant_id"]),
            "b": html.escape(second["variant_id"]),
            "traces": [{"name": html.escape(label), "y": [cell["mean"] for cell in row],
                        "se": [cell["se"] for cell in row], "n": [cell["n"] for cell in row]}
                       for label, row in zip(_class_labels(first), classes.grid)]}


def _class_labels(variant: dict[str, Any]) -> list[str]:
    """A variant's genotype classes named by their alleles: ref/ref (0 alt copies), ref/alt (1), alt/alt (2)."""
    ref, alt = variant["ref"], variant["alt"]
    return [f"{ref}/{ref} (0)", f"{ref}/{alt} (1)", f"{alt}/{alt} (2)"]


def _phewas_data(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """One trace per IDP category, phenotypes side by side along x (BIG40's PheWAS layout)."""
    ordered = sorted(rows, key=lambda r: (r["category"], r["name"], r["run"]))
    traces = []
    for x, r in enumerate(ordered):
        if not traces or traces[-1]["name"] != r["category"]:
            traces.append({"name": r["category"], "x": [], "y": [], "up": [], "text": [], "links": []})
        trace = traces[-1]
        trace["x"].append(x)
        trace["y"].append(r["log10p"])
        trace["up"].append(r["effect"] is not None and r["effect"] > 0)
        exposure = f" × {r['exposure']}" if r["exposure"] else ""
        label = html.escape(f"{r['name']}{exposure} [{r['category']}]")
        trace["text"].append(f"{label}<br>{html.escape(r['run'])}: {html.escape(r['phenotype'])}<br>"
                             f"effect {_format_effect(r['effect'])}<br>p {_format_p(r['log10p'])}")
        trace["links"].append(_phenotype_url(r["run"], r["phenotype"], r["exposure"]))
    return {"traces": traces, "threshold": -np.log10(GENOME_WIDE)}


def _region_data(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return {"x": [r["pos"] for r in rows], "y": [r["log10p"] for r in rows], "text": [_hover(r) for r in rows],
            "links": [_variant_url(r["feature"]) for r in rows], "threshold": -np.log10(GENOME_WIDE)}


def _region_choices(catalogue: Catalogue, chrom: str, start: int, end: int) -> dict[str, Any]:
    """For a region search: the scans with the strongest signal in the window, best first."""
    if end - start > MAX_REGION_BP:
        raise HTTPException(400, f"a region may span at most {MAX_REGION_BP:,} bp; this one spans {end - start:,}")
    best = [(row["log10p"], run.name, row["phenotype"], row["exposure"], _label(catalogue, row["phenotype"]))
            for run in catalogue.runs.values() for row in run.index.strongest_in(chrom, start, end).to_pylist()]
    best.sort(key=lambda b: -b[0])
    return {"chrom": chrom, "start": start, "end": end, "scans": best[:50]}
