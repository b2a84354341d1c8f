"""The results browser at biobank scale: page times of `biolake serve` over P phenotypes × M variants.

A GWAS of that size would take hours here, and the pages never read the GWAS itself,
so the results are synthesised: P·M rows with the GWAS columns, written as a GWAS job
writes them (one Parquet file per 4,096-variant block, rows phenotype-major), null
p-values with peaks planted in a few phenotypes. Then the browse index is built (timed,
with its size) and a real server (`biolake serve`, its own process) answers each page
kind repeatedly; the table gives the median and slowest answer, and the server's memory
(RSS) at the end.

    python bench/browser.py --phenotypes 1000 --variants 100000     # 100 M rows, ~6 GB of results
    python bench/browser.py --phenotypes 100 --variants 1000000     # the M dimension
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import psutil
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from biolake.lake.lake import Lake  # noqa: E402
from biolake.index import index_results  # noqa: E402
from biolake.stats.gwas import results_schema  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
BLOCK = 4096
CHROMOSOME_MB = [248, 242, 198, 190, 181, 171, 159, 145, 138, 134, 135, 133, 114, 107, 102, 90, 83, 80, 59, 64, 47, 51]
REPEATS = 15


def synthesise(lake: Lake, name: str, phenotypes: int, variants: int, *, seed: int = 1) -> tuple[list[str], dict]:
    """Write the results table; returns the phenotype names and one planted peak (variant, phenotype)."""
    rng = np.random.default_rng(seed)
    share = np.array(CHROMOSOME_MB, float) / sum(CHROMOSOME_MB)
    per_chrom = np.maximum(np.round(share * variants).astype(int), 1)
    chrom = np.repeat([str(c) for c in range(1, 23)], per_chrom)[:variants]
    pos = np.concatenate([np.sort(rng.choice(mb * 1_000_000, n, replace=False)) + 1
                          for mb, n in zip(CHROMOSOME_MB, per_chrom)])[:variants]
    ids = np.array([f"rs{i + 1}" for i in range(len(chrom))], dtype=object)
    names = [f"{25000 + k}-2.0" for k in range(phenotypes)]
    peaks = rng.choice(len(chrom), size=max(phenotypes // 20, 1))       # one peak in every 20th phenotype
    schema = results_schema(statistics=["t"])
    files = lake.results_files(name)
    actions = []
    for part, start in enumerate(range(0, len(chrom), BLOCK)):
        rows = slice(start, min(start + BLOCK, len(chrom)))
        for c in np.unique(chrom[rows]):
            mine = np.arange(len(chrom))[rows][chrom[rows] == c]
            m = len(mine)
            p = rng.uniform(size=(phenotypes, m))
            for k, peak in enumerate(peaks):
                near = np.abs(pos[mine] - pos[peak]) < 200_000
                if chrom[peak] == c and near.any():
                    p[k * 20, near] = 10.0 ** -rng.uniform(8, 30, near.sum())
            beta = rng.normal(size=(phenotypes, m)) * 0.01
            output = files.open(schema, partition={"chrom": str(c)}, part=f"{part:06d}")
            output.write(pa.table({
                "phenotype": np.repeat(names, m), "variant_id": np.tile(ids[mine], phenotypes),
                "chrom": np.full(phenotypes * m, c), "pos": np.tile(pos[mine], phenotypes),
                "ref": np.full(phenotypes * m, "A"), "alt": np.full(phenotypes * m, "G"),
                "n": np.full(phenotypes * m, 10_000), "alt_freq": np.tile(rng.uniform(0.05, 0.5, m), phenotypes),
                "beta": beta.ravel(), "se": np.full(phenotypes * m, 0.01), "t": (beta / 0.01).ravel(),
                "p": p.ravel(), "log10p": -np.log10(p.ravel()), "error": pa.nulls(phenotypes * m, pa.string()),
            }, schema=schema))
            actions.append(output.close())
    lake.commit_results(files, actions, schema=schema, partition_by=["chrom"],
                        provenance={"kind": "gwas", "synthetic": True,
                                    "created_at": datetime.now(timezone.utc).isoformat()}, replace=True)
    return names, {"variant": ids[peaks[0]], "phenotype": names[0], "chrom": chrom[peaks[0]],
                   "pos": int(pos[peaks[0]])}


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def time_pages(url: str, pages: dict[str, str]) -> list[tuple[str, float, float, int]]:
    """Median and slowest seconds of REPEATS requests of each page, and its size."""
    rows = []
    for label, path in pages.items():
        seconds, size = [], 0
        for _ in range(REPEATS):
            start = time.perf_counter()
            with urllib.request.urlopen(url + path) as response:
                size = len(response.read())
            seconds.append(time.perf_counter() - start)
        rows.append((label, statistics.median(seconds), max(seconds), size))
    return rows


def time_drawn(url: str, pages: dict[str, tuple[str, str]]) -> list[tuple[str, float]]:
    """Seconds from navigation to the plot drawn (plotly done), in headless chromium, median of 5."""
    chromium = shutil.which("chromium")
    if chromium is None:
        return []
    from playwright.sync_api import sync_playwright
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        for label, (path, plot) in pages.items():
            seconds = []
            for _ in range(5):
                start = time.perf_counter()
                page.goto(url + path)
                page.wait_for_selector(f"#{plot}[data-ready='1']")
                seconds.append(time.perf_counter() - start)
            rows.append((label, statistics.median(seconds)))
        browser.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phenotypes", type=int, default=1000)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--keep", action="store_true", help="keep the synthetic lake under bench/.data")
    args = parser.parse_args()
    root = DATA / f"browser-{args.phenotypes}x{args.variants}"
    shutil.rmtree(root, ignore_errors=True)
    lake = Lake.init(root)
    start = time.perf_counter()
    names, peak = synthesise(lake, "big", args.phenotypes, args.variants)
    written = time.perf_counter() - start
    start = time.perf_counter()
    index_results(lake, "big")
    indexed = time.perf_counter() - start
    results_size, index_size = folder_bytes(root / "results"), folder_bytes(root / "browse")

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen([str(Path(sys.executable).parent / "biolake"), "serve", "--lake", str(root),
                                "--port", str(port)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("biolake serve did not start listening within 60 s")
        server = psutil.Process(process.pid)
        quoted = urllib.parse.quote
        pages = {
            "runs (/)": "/",
            f"run: {args.phenotypes} scans": "/run/big",
            "phenotype: Manhattan + QQ + loci": f"/phenotype?run=big&phenotype={peak['phenotype']}",
            f"variant: PheWAS of {args.phenotypes}": f"/variant/{peak['variant']}",
            "region: 1 Mb": (f"/region?run=big&phenotype={peak['phenotype']}&chrom={peak['chrom']}"
                             f"&start={max(peak['pos'] - 500_000, 0)}&end={peak['pos'] + 500_000}"),
            "search: rsID (redirect)": "/search?q=" + quoted(peak["variant"]),
            "search: field name": "/search?q=" + quoted(names[-1]),
            "search: region (best scans)": f"/search?q={peak['chrom']}:{peak['pos'] - 500_000}-{peak['pos'] + 500_000}",
        }
        timings = time_pages(url, pages)
        drawn = time_drawn(url, {"phenotype page": (pages["phenotype: Manhattan + QQ + loci"], "manhattan"),
                                 "variant page": (pages[f"variant: PheWAS of {args.phenotypes}"], "phewas")})
        peak_rss = server.memory_info().rss
    finally:
        process.terminate()
        process.wait(timeout=30)
    rows = args.phenotypes * args.variants
    print(f"\nbiolake serve over {args.phenotypes:,} phenotypes × {args.variants:,} variants = {rows:,} tests")
    print(f"results written in {written:.0f} s ({results_size / 1e9:.2f} GB); browse index built in "
          f"{indexed:.0f} s ({index_size / 1e9:.2f} GB, {index_size / results_size:.0%} of the results)\n")
    print(f"| page | median | slowest of {REPEATS} | bytes |")
    print("|---|---|---|---|")
    for label, median, slowest, size in timings:
        print(f"| {label} | {median * 1000:.0f} ms | {slowest * 1000:.0f} ms | {size:,} |")
    for label, seconds in drawn:
        print(f"| {label}, drawn in chromium (plotly done) | {seconds * 1000:.0f} ms | | |")
    print(f"\nserver memory (RSS) after the run: {peak_rss / 1e6:.0f} MB")
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
