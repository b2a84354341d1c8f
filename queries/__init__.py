"""DuckDB and polars over the lake catalog."""

from queries.sql import connect

__all__ = ["connect"]
