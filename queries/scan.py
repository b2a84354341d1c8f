"""polars over the lake: one release of a table as a LazyFrame.

polars reads the Delta log itself and scans only the release's files with its
native Parquet reader, so filters and column selections are pushed down.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from biolake.lake.lake import Lake

if TYPE_CHECKING:
    import polars as pl


def scan(lake: Lake | str | os.PathLike, table: str, *, release: str | None = None,
         storage_options: dict[str, str] | None = None) -> pl.LazyFrame:
    """A LazyFrame of ``table`` for one release (default: the latest).

    Examples
    --------
    >>> import polars as pl
    >>> variants = scan("lake", "variants")
    >>> variants.filter(pl.col("chrom") == "12", pl.col("pos").is_between(15e6, 16e6)).collect().height
    47
    """
    import polars as pl   # here, not at import: the jobs import queries and never need polars

    if not isinstance(lake, Lake):
        lake = Lake.open(lake, storage_options=storage_options)
    chosen = lake.resolve_release(release)
    if table not in chosen.tables:
        lake.dataset(table, release=chosen.release)  # raises the explanatory LakeError
    frame = pl.scan_delta(lake.table_uri(table), storage_options=lake.location.delta_options())
    return frame.filter(pl.col("release") == chosen.release)
