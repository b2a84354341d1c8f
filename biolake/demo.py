"""The main job on the embedded default lake: a synthetic release, ingested, then queried.

Each step is skipped when its output already exists, so the demo can be rerun.
Later stages (GWAS, EWAS, GxE, results) plug in after the SQL step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from ingest.release import ReleaseSources, ingest_release
from lake.catalog import Catalog
from lake.lake import Lake
from queries import connect

DEMO_SIZE = {"samples": 2000, "variants": 20000, "idps": 50, "cpgs": 5000, "seed": 1}
DEMO_QUERIES = {
    "participants per table": """
        SELECT 'genotyped' AS what, count(*) AS n FROM samples WHERE assay = 'genotypes'
        UNION ALL SELECT 'methylation', count(*) FROM samples WHERE assay = 'methylation'
        UNION ALL SELECT 'with IDPs', count(*) FROM idps
        UNION ALL SELECT 'with covariates', count(*) FROM covariates""",
    "variants per chromosome (first 5)": """
        SELECT chrom, count(*) AS variants, round(avg(alt_freq), 3) AS mean_alt_freq
        FROM variants GROUP BY chrom ORDER BY CAST(chrom AS INTEGER) LIMIT 5""",
    "the first IDP by imaging site (long format through the data dictionary)": """
        WITH long AS (
            UNPIVOT (SELECT * EXCLUDE (release) FROM idps)
            ON COLUMNS(* EXCLUDE (participant_id)) INTO NAME field VALUE value)
        SELECT f.name, f.unit, c.site, count(*) AS n, round(avg(value), 1) AS mean
        FROM long JOIN idp_fields f USING (field) JOIN covariates c USING (participant_id)
        WHERE field = (SELECT min(field) FROM idp_fields)
        GROUP BY ALL ORDER BY n DESC""",
}


def run_demo(catalog_path: Path, *, progress: Callable[[str, int, int], None],
             echo: Callable[[str], None]) -> Lake:
    """Build (or reuse) the default lake described by ``catalog_path`` and query it."""
    catalog = Catalog.load(catalog_path)
    root = Path(catalog.location.root)
    release_folder = root.parent / "sources" / f"synthetic-s{DEMO_SIZE['seed']}"
    if not (release_folder / "release.yaml").exists():
        from ingest.synth import write_synthetic_release
        echo(f"1/3 synthesising a release into {release_folder}")
        write_synthetic_release(release_folder, progress=progress, **DEMO_SIZE)
    else:
        echo(f"1/3 synthetic release already at {release_folder}")
    lake = Lake.init(root, exist_ok=True)
    sources, release = ReleaseSources.from_folder(release_folder)
    if any(info.release == release for info in lake.releases()):
        echo(f"2/3 release {release!r} already in the lake at {root}")
    else:
        echo(f"2/3 ingesting release {release!r} into {root}")
        ingest_release(lake, sources, release=release, source=str(release_folder), progress=progress)
    echo("3/3 SQL over the lake")
    con = connect(lake)
    for title, query in DEMO_QUERIES.items():
        echo(f"\n-- {title}")
        echo(str(con.sql(query)))
    return lake
