"""`biolake serve`, tested as a person would use it: a real server on 127.0.0.1 and a real browser.

The server runs as its own process (the CLI command a user types); chromium (Debian's,
installed by `make tools`) is driven by playwright. Screenshots of every page go to
test-output/browser/ at the repository root.
"""

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest
from snapshot import lake_files

from biolake.epistasis import EpistasisSettings, run_epistasis
from biolake.ewas import EwasSettings, run_ewas
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sumstats import import_sumstats
from biolake.synth import write_synthetic_release
from biolake.lake.lake import Lake
from biolake.queries import connect, design
from conftest import lake_dosages

SCREENSHOTS = Path(__file__).parent.parent / "test-output" / "browser"
HOSTILE = "</script><script>alert('phenotype')</script>"


@pytest.fixture(scope="module")
def planted(tmp_path_factory, scheduler):
    """A release big enough for its planted SNP→IDP effects to pass 5e-8, a GWAS of all its IDPs, an EWAS and an
    epistasis run of its first planted SNP × SNP interaction (see :func:`_planted_pair`)."""
    folder = tmp_path_factory.mktemp("browser")
    write_synthetic_release(folder / "release", samples=1500, variants=3000, idps=8, cpgs=300, seed=11,
                            methylation_samples=150)
    lake = Lake.init(folder / "lake")
    sources, _ = ReleaseSources.from_folder(folder / "release")
    ingest_release(lake, sources, release="r1", source=str(folder / "release"))
    run_gwas(lake, GwasSettings(name="idps", phenotypes="SELECT * EXCLUDE (release) FROM idps",
                                covariates=["age", "sex", "site"]), scheduler=scheduler)
    run_ewas(lake, EwasSettings(name="stress", exposures="SELECT participant_id, stress FROM covariates",
                                covariates=["age", "sex"]), scheduler=scheduler)
    # published statistics with hostile names, p = 0 (an underflow) and a missing beta
    published = folder / "published.tsv"
    published.write_text("variant_id\tchrom\tpos\teffect_allele\tother_allele\tbeta\tse\tp\n"
                         "rs1<b>x</b>\t1\t1000\tA\tG\t0.5\t0.01\t0\n"
                         "rs2\t1\t2000\tA\tG\tNA\tNA\t0.5\n"
                         "rs3\t2\t3000\tA\tG\t-0.1\t0.05\t0.04\n")
    import_sumstats(lake, published, name="published", phenotype=HOSTILE)
    pair = _planted_pair(lake)
    run_epistasis(lake, EpistasisSettings(name="pairs", phenotypes=[pair["idp"]], covariates=["age", "sex"],
                                          candidates=[pair["variant_a"]["variant_id"]],
                                          chromosomes=[str(pair["variant_b"]["chrom"])]), scheduler=scheduler)
    truth = json.loads((folder / "release" / "truth.json").read_text())
    return lake, max(truth["snp_idp"], key=lambda effect: effect["variance_explained"])


def _planted_pair(lake: Lake) -> dict:
    """The planted release's first SNP × SNP interaction (its truth); the run ``pairs`` tests its first variant
    against every variant of its partner's chromosome, for its IDP."""
    release = Path(lake.location.root).parent / "release"
    return json.loads((release / "truth.json").read_text())["snp_snp"][0]


@pytest.fixture(scope="module")
def server(planted, tmp_path_factory):
    lake, _ = planted
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with log.open("w") as out:
        process = subprocess.Popen([str(Path(sys.executable).parent / "biolake"), "serve", "--lake",
                                    lake.location.root, "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for(port, process, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)


def _wait_for(port: int, process: subprocess.Popen, log: Path) -> None:
    import time
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"biolake serve exited: {log.read_text()}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError("biolake serve did not listen within 60 s")


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read().decode()


def test_bad_requests__get_a_plain_page_and_leave_the_lake_alone(planted, server):
    lake, effect = planted
    before = lake_files(lake.location.root)
    quote = urllib.parse.quote
    cases = {
        "/variant/rs0000000": (404, "no run tested a variant or CpG named"),
        "/run/nope": (404, "no results named"),
        "/phenotype?run=idps&phenotype=99999-9.9": (404, "have no phenotype"),
        f"/region?run=idps&phenotype={effect['idp']}&chrom=1&start=ten&end=20": (400, "whole numbers"),
        f"/region?run=idps&phenotype={effect['idp']}&chrom=1&start=500&end=100": (400, "start ≤ end"),
        f"/region?run=idps&phenotype={effect['idp']}&chrom=1&start=0&end=90000000": (400, "at most"),
        "/search?q=" + quote("<script>alert(1)</script>"): (404, "Nothing matches"),
        "/sql?q=" + quote("SELEC nonsense"): (400, "syntax error"),
        "/sql?q=" + quote("SELECT * FROM read_text('/etc/passwd')"): (400, "disabled"),
        "/sql?q=" + quote(f"COPY (SELECT 1) TO '{lake.location.root}/x.csv'"): (400, "read-only"),
        "/sql?q=" + quote("ATTACH '/tmp/x.db' AS x"): (400, "read-only"),
        "/sql?q=" + quote("SELECT 1; DROP TABLE idps"): (400, "one statement at a time"),
        "/sql.csv?q=" + quote("DELETE FROM idps"): (400, "read-only"),
        "/no/such/page": (404, ""),
        "/pair?run=pairs&phenotype=99999-9.9&a=rs1&b=rs2": (404, "have no phenotype"),
        f"/pair?run=pairs&phenotype={_planted_pair(lake)['idp']}&a=rs1&b=rs2": (
            404, "results &#39;pairs&#39; hold no test of the pair &#39;rs1&#39; × &#39;rs2&#39; for"),
        f"/pair?run=idps&phenotype={effect['idp']}&a=rs1&b=rs2": (404, "test one feature per row, not pairs"),
    }
    for path, (status, message) in cases.items():
        code, body = _get(server + path)
        assert code == status, (path, code, body[-500:])
        assert message in body, (path, body[-500:])
        assert "Traceback" not in body and "<script>alert(1)" not in body, path
    assert lake_files(lake.location.root) == before


def test_pages__answer_with_the_index_numbers(planted, server):
    lake, effect = planted
    code, body = _get(f"{server}/search?q={effect['variant_id']}")
    assert code == 200 and effect["idp"] in body    # redirected to the variant page, planted IDP listed
    code, body = _get(f"{server}/search?q={effect['chrom']}:{effect['pos']}")
    assert code == 200 and effect["variant_id"] in body
    code, csv_text = _get(server + "/sql.csv?q=" + urllib.parse.quote("SELECT 42 AS answer, 'x, y' AS y"))
    assert code == 200 and list(csv.reader(io.StringIO(csv_text))) == [["answer", "y"], ["42", "x, y"]]
    # a huge result is cut where it is computed: the page shows 500 rows, the server holds no more
    code, body = _get(server + "/sql?q=" + urllib.parse.quote("SELECT * FROM range(10000000000)"))
    assert code == 200 and "the first 500 rows" in body and body.count("<tr>") == 501
    code, body = _get(f"{server}/run/stress")        # an EWAS run: CpGs are features too
    assert code == 200 and "stress" in body


def test_hostile_names_and_odd_numbers__are_shown_as_text(planted, server):
    """Imported statistics: a phenotype named like a script, a variant id with markup, p = 0, NA beta."""
    code, body = _get(f"{server}/run/published")
    assert code == 200 and "<script>alert" not in body and "&lt;/script&gt;&lt;script&gt;" in body
    code, body = _get(f"{server}/phenotype?" + urllib.parse.urlencode({"run": "published", "phenotype": HOSTILE}))
    assert code == 200 and "<script>alert" not in body and "rs1<b>" not in body
    assert "rs1&lt;b&gt;" in body and "1.00e-324" in body   # p = 0 is drawn past any double's underflow
    code, body = _get(f"{server}/variant/rs2")
    assert code == 200 and "NA" in body                      # a missing beta is NA, not an error
    code, body = _get(f"{server}/variant/" + urllib.parse.quote("rs1<b>x</b>", safe=""))
    assert code == 200 and "rs1<b>" not in body


def test_requests_for_other_hosts__are_refused(server):
    """A page elsewhere cannot reach the loopback server through DNS rebinding."""
    request = urllib.request.Request(server + "/", headers={"Host": "attacker.example"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    refused.value.close()


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        message = "chromium is not installed (make tools installs Debian's)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


def test_a_person_finds_the_planted_hit_and_its_idps(planted, server, browser, tmp_path):
    lake, effect = planted
    page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)

    def shot(name: str) -> None:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    page.goto(server + "/")
    assert page.locator("a", has_text="idps").count() >= 1
    shot("1-runs")

    page.fill("#search", effect["variant_id"])
    page.press("#search", "Enter")
    page.wait_for_url(f"**/variant/{effect['variant_id']}")
    page.wait_for_selector("#phewas[data-ready='1']")
    first = page.locator("#phewas-table tr").nth(1)
    assert effect["idp"] in first.inner_text()          # the PheWAS puts the planted IDP first
    # every IDP of the run is in the PheWAS, with its dictionary category
    assert page.locator("#phewas-table tr").count() - 1 >= 8
    shot("2-variant-phewas")

    first.locator("a", has_text=effect["idp"]).click()
    page.wait_for_selector("#manhattan[data-ready='1']")
    page.wait_for_selector("#qq[data-ready='1']")
    points = page.evaluate("document.getElementById('manhattan').data[0].x.length")
    hover = page.evaluate("document.getElementById('manhattan').data[0].text.join(' ')")
    assert points > 100 and effect["variant_id"] in hover   # interactive: hover names the variant
    loci = page.locator("#loci").inner_text()
    assert f"{effect['chrom']}:" in loci and "e-" in loci
    shot("3-phenotype-manhattan-qq")

    page.locator("#loci tr").nth(1).locator("a", has_text="region").click()
    page.wait_for_selector("#region[data-ready='1']")
    assert page.evaluate("document.getElementById('region').data[0].x.length") > 0
    shot("4-region")

    page.goto(server + "/sql")
    page.fill("#sql", "SELECT phenotype, variant_id, p FROM results.idps ORDER BY p LIMIT 5")
    page.click("#run-sql")
    page.wait_for_selector("#sql-result")
    assert page.locator("#sql-result tr").count() == 6
    with page.expect_download() as download:
        page.click("#csv")
    saved = tmp_path / "query.csv"
    download.value.save_as(saved)
    rows = list(csv.reader(io.StringIO(saved.read_text())))
    assert rows[0] == ["phenotype", "variant_id", "p"] and len(rows) == 6
    shot("5-sql-console")

    page.fill("#sql", "SELECT * FROM read_text('/etc/passwd')")
    page.click("#run-sql")
    page.wait_for_selector("#sql-error")
    assert "root:" not in page.content()
    shot("6-sql-refused")

    page.goto(server + "/variant/rs0000000")
    assert "no run tested" in page.locator("#error-message").inner_text()
    shot("7-unknown-variant")
    page.close()


def _pair_path(phenotype: str, a: str, b: str) -> str:
    return "/pair?" + urllib.parse.urlencode({"run": "pairs", "phenotype": phenotype, "a": a, "b": b})


def _classes_by_numpy(x: np.ndarray, z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Counts and means of ``y`` by the hard calls of dosages x × z (3 × 3, row by row), over the samples with all
    three (NaN: missing)."""
    used = ~(np.isnan(x) | np.isnan(z) | np.isnan(y))
    cells = [used & (np.round(x) == i) & (np.round(z) == j) for i in range(3) for j in range(3)]
    return (np.array([cell.sum() for cell in cells]),
            np.array([y[cell].mean() if cell.any() else np.nan for cell in cells]))


def _classes_shown(page: str) -> tuple[np.ndarray, np.ndarray]:
    """The counts and means of a pair page's 3 × 3 table, row by row (NaN for a class marked empty)."""
    table = page[page.index('id="classes"'):].split("</table>")[0]
    cells = re.findall(r'<td(?: class="empty")? data-n="(\d+)"(?: data-mean="([^"]+)")?', table)
    assert len(cells) == 9 and table.count("no sample") == sum(n == "0" for n, _ in cells)
    return np.array([int(n) for n, _ in cells]), np.array([float(mean) if mean else np.nan for _, mean in cells])


def test_a_pair_page__shows_both_variants_its_row_and_the_means_by_genotype_class(planted, server):
    """The 3 × 3 means equal numpy's over the samples the test used (they add up to its n), an empty class is
    marked; the page names both variants with their positions and alleles, and the row's numbers."""
    lake, _ = planted
    pair = _planted_pair(lake)
    phenotype, a, b = pair["idp"], pair["variant_a"]["variant_id"], pair["variant_b"]["variant_id"]
    rows = {row["variant_id_b"]: row for row in lake.results_dataset("pairs").to_table(
        filter=pc.is_valid(pc.field("n"))).to_pylist()}
    with connect(lake) as con:   # the run's design
        chosen = design(con, phenotypes=[phenotype], covariates=["age", "sex"])
        ids = [row[0] for row in con.sql("SELECT variant_id FROM variants ORDER BY variant_index").fetchall()]
    dosages = lake_dosages(lake, chosen.sample_index)

    def by_numpy(partner: str) -> tuple[np.ndarray, np.ndarray]:
        return _classes_by_numpy(dosages[ids.index(a)], dosages[ids.index(partner)], chosen.phenotypes[:, 0])

    rare = next(v for v in rows if 0 in by_numpy(v)[0])   # a partner with a class no sample of the pair has
    for partner in (b, rare):
        row = rows[partner]
        code, page = _get(server + _pair_path(phenotype, a, partner))
        assert code == 200, page[-500:]
        n, means = _classes_shown(page)
        expected_n, expected_means = by_numpy(partner)
        np.testing.assert_array_equal(n, expected_n)
        np.testing.assert_allclose(means, expected_means, rtol=1e-12)
        assert n.sum() == row["n"] and "samples the test used" in page
        for variant, chrom, pos, ref, alt in ((a, row["chrom_a"], row["pos_a"], row["ref_a"], row["alt_a"]),
                                              (partner, row["chrom"], row["pos"], row["ref_b"], row["alt_b"])):
            assert f">{variant}</a>" in page and f"{chrom}:{pos:,}" in page and f"{ref}&gt;{alt}" in page
        for column in ("n", "beta_int", "se_int", "p_int", "p_joint"):
            value = row[column]
            assert f"<td>{column}</td><td>{value:,}</td>" in page if column == "n" else \
                f"<td>{column}</td><td>{value:.4g}</td>" in page
    assert "no sample" in page                         # the rare partner's empty class
    assert pair["variant_a"]["alt_allele"] in page


def test_a_person_follows_a_pair_from_its_phenotype_page(planted, server, browser):
    """An epistasis run's phenotype page names its points and top loci as pairs "A × B", each linked to the pair's
    page, whose interaction plot draws a line per genotype class of A."""
    lake, _ = planted
    pair = _planted_pair(lake)
    phenotype, a, b = pair["idp"], pair["variant_a"]["variant_id"], pair["variant_b"]["variant_id"]
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(server + "/phenotype?" + urllib.parse.urlencode({"run": "pairs", "phenotype": phenotype}))
    page.wait_for_selector("#manhattan[data-ready='1']")
    hover = page.evaluate("document.getElementById('manhattan').data[0].text")
    assert hover and all(text.startswith(f"{a} × ") for text in hover) and f"{a} × {b}<br>" in " ".join(hover)
    links = page.locator("#loci a", has_text=" × ")
    assert links.count() >= 1 and all(links.nth(k).get_attribute("href").startswith("/pair?")
                                      for k in range(links.count()))
    lead = page.locator("#loci tr").nth(1)              # the planted pair's locus: b, or a variant in LD with it
    chrom, pos = lead.locator("td").nth(2).inner_text().split(":")
    assert chrom == str(pair["variant_b"]["chrom"]) and abs(int(pos.replace(",", "")) - pair["variant_b"]["pos"]) < 5e5
    shown = lead.locator("a", has_text=" × ").inner_text()
    assert shown.startswith(f"{a} × ") and "e-" in lead.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "8-pairs-phenotype.png"), full_page=True)

    lead.locator("a", has_text=" × ").click()
    page.wait_for_selector("#interaction[data-ready='1']")
    assert page.evaluate("document.getElementById('interaction').data.length") == 3   # a line per class of a
    assert shown in page.locator("h1").inner_text()
    page.screenshot(path=str(SCREENSHOTS / "9-pair.png"), full_page=True)
    page.close()


def _page(app, path: str, query: str = "", **path_params: str) -> str:
    """The HTML a route of ``app`` answers (its endpoint called directly: no server, no network)."""
    from starlette.requests import Request

    route = next(route for route in app.routes if getattr(route, "path", None) == path)
    request = Request({"type": "http", "method": "GET", "path": path, "query_string": query.encode(),
                       "headers": [], "path_params": path_params})
    return route.endpoint(request).body.decode()


def test_a_run_of_a_retracted_release__is_flagged_on_its_pages_even_when_cached(
        loaded_lake, release_folder, scheduler, monkeypatch):
    from biolake.browser import catalogue
    from biolake.browser.app import create_app
    from biolake.lake.retract import retract

    lake = loaded_lake
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r2", source="test")
    run_gwas(lake, GwasSettings(name="from_r2", phenotypes="SELECT participant_id, age AS y FROM covariates",
                                covariates=["sex"], release="r2"), scheduler=scheduler)
    monkeypatch.setattr(catalogue, "REFRESH_SECONDS", 0.0)
    app = create_app(lake, announce=lambda _: None)
    assert "retracted" not in _page(app, "/run/{name}", name="from_r2")      # cached, not retracted yet

    retract(lake, "r2", why="bad <ingest>")

    banner = "Computed from a retracted release: release &#39;r2&#39; was retracted on"
    assert banner in _page(app, "/run/{name}", name="from_r2") and "bad &lt;ingest&gt;" in _page(app, "/")
    assert banner in _page(app, "/phenotype", urllib.parse.urlencode({"run": "from_r2", "phenotype": "y"}))
    assert 'class="retracted"' in _page(app, "/")


def test_catalogue_refresh__reads_retractions_and_pending_drops_once(planted, monkeypatch):
    """A refresh reads the retractions and lists _locks/ once for all runs, not once per run."""
    from test_queries import count_calls

    from biolake.browser.catalogue import Catalogue

    lake, _ = planted
    catalogue = Catalogue(lake, log=lambda _: None)
    assert len(catalogue.runs) > 1
    counts = count_calls(monkeypatch, Lake, ["retractions", "drops_pending"])
    catalogue.refresh(build_now=True)
    assert counts == {"retractions": 1, "drops_pending": 1}


def test_clumps__are_listed_with_the_hits_they_clump(planted, scheduler, monkeypatch):
    """A run's page names the clump runs made from it; a phenotype's page lists its LD clumps (biolake clump)."""
    from biolake.browser import catalogue
    from biolake.browser.app import create_app
    from biolake.clump import ClumpSettings, run_clump

    lake, effect = planted
    run_clump(lake, ClumpSettings(name="idps_loci", result="idps", p1=5e-8, r2=0.1, kb=1000), scheduler=scheduler)
    index = lake.results_dataset("idps_loci").to_table(filter=pc.field("phenotype") == effect["idp"]).column(
        "variant_id").to_pylist()
    monkeypatch.setattr(catalogue, "REFRESH_SECONDS", 0.0)
    app = create_app(lake, announce=lambda _: None)
    assert '<a href="/run/idps_loci">idps_loci</a>' in _page(app, "/run/{name}", name="idps")
    query = urllib.parse.urlencode({"run": "idps", "phenotype": effect["idp"]})
    page = _page(app, "/phenotype", query)
    assert "LD clumps" in page and "r² &gt; 0.1 within ±1000 kb, LD from release r1" in page
    assert index and all(f">{variant}</a>" in page for variant in index)
    assert all(f">{variant}</a>" in _page(app, "/phenotype", query.replace("run=idps", "run=idps_loci"))
               for variant in index)
    assert "<td>NA</td>" in _page(app, "/run/{name}", name="idps_loci")   # a run of clumps has no λGC


def test_h2_and_rg_tables__have_pages_with_each_estimate_and_the_rg_matrix(loaded_lake, monkeypatch):
    """The home page lists h² and rg tables; an h² page shows h² ± SE per IDP, named from the dictionary; an rg
    page the matrix of rg ± SE (NA without an estimate) and every pair."""
    from test_report import commit_h2_and_rg

    from starlette.exceptions import HTTPException

    from biolake.browser import catalogue
    from biolake.browser.app import create_app

    lake = loaded_lake
    fields = lake.release_dataset("idp_fields", lake.resolve_release("r1")).to_table().to_pylist()[:3]
    h2, rg = commit_h2_and_rg(lake, [field["field"] for field in fields])
    monkeypatch.setattr(catalogue, "REFRESH_SECONDS", 0.0)
    app = create_app(lake, announce=lambda _: None)
    home = _page(app, "/")
    assert '<a href="/estimates/heritability">heritability</a>' in home and "h² (ldsc)" in home
    assert '<a href="/estimates/correlations">correlations</a>' in home and "3 pairs" in home
    page = re.sub(r">\s+<", "><", _page(app, "/estimates/{name}", name="heritability"))
    for row, field in zip(h2.to_pylist(), fields):
        assert (f"<tr><td>{field['field']}</td><td>{field['name']}</td><td>ldsc</td><td>{row['h2']:.4g}</td>"
                f"<td>{row['h2_se']:.4g}</td><td>{row['intercept']:.4g}</td>") in page
        assert f"<td>{row['mean_chisq']:.4g}</td><td>{row['lambda_gc']:.4g}</td>" in page
    page = _page(app, "/estimates/{name}", name="correlations")
    matrix = page[page.index('id="rg-matrix"'):].split("</table>")[0]
    assert matrix.count("<tr>") == 4 and all(field["name"] in matrix for field in fields)
    assert matrix.count(">0.654 ± 0.088</td>") == matrix.count(">-0.322 ± 0.111</td>") == 2
    assert matrix.count(">NA</td>") == 2 and "rgba(178,24,43,0.46)" in matrix
    assert all(f"<td>{row['rg']:.4g}</td><td>{row['rg_se']:.4g}</td>" in page for row in rg.to_pylist()
               if row["rg"] == row["rg"])
    with pytest.raises(HTTPException, match="no h² or rg results named 'nope'"):
        _page(app, "/estimates/{name}", name="nope")
