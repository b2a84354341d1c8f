"""DuckDB and polars over one release of the lake, and the aligned inputs of the engines."""

from biolake.queries.design import Design, DesignWarning, DropReport, SampleSelection, design, genotyped_samples
from biolake.queries.scan import scan
from biolake.queries.sql import LakeConnection, QueryError, QueryResult, check_read_only, connect

__all__ = ["Design", "DesignWarning", "DropReport", "LakeConnection", "QueryError", "QueryResult", "SampleSelection",
           "check_read_only", "connect", "design", "genotyped_samples", "scan"]
