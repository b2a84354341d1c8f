"""DuckDB over the lake: every table of a release as a view under its catalog name.

Views read the tables' Arrow datasets, whose files come from the Delta log of
the table (never from listing folders), pruned to the chosen release.
"""

from __future__ import annotations

import duckdb

from lake.lake import Lake


def connect(lake: Lake, *, release: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per table of the release (default: latest).

    Examples
    --------
    >>> con = connect(Lake.open("catalog.yaml"))                      # doctest: +SKIP
    >>> con.execute("SELECT count(*) FROM idps").fetchone()              # doctest: +SKIP
    (2000,)
    """
    chosen = lake.resolve_release(release)
    con = duckdb.connect()
    for name in chosen.tables:
        con.register(f"_arrow_{name}", lake.dataset(name, release=chosen.release))
        con.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_arrow_{name}"')
    con.register("_arrow_releases", lake.dataset("releases"))
    con.execute('CREATE VIEW "releases" AS SELECT * EXCLUDE (table_versions) FROM "_arrow_releases"')
    return con
