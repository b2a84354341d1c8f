"""Writing a query's result, or a results table, where the user asked: terminal, CSV/TSV, Parquet, JSON."""

from __future__ import annotations

import sys

import polars as pl
import pyarrow as pa

from lake.lake import Lake
from queries.sql import QueryResult

TERMINAL_ROWS = 50


def write_result(query_result: QueryResult, *, output_format: str, out: str | None, all_rows: str = "") -> None:
    """Materialise a query's result in ``output_format`` to ``out`` (stdout when None); see write_table."""
    write_table(query_result.arrow(), output_format=output_format, out=out, all_rows=all_rows)


def write_table(result: pa.Table, *, output_format: str, out: str | None, all_rows: str = "") -> None:
    """Write a table as ``output_format`` (table, csv, tsv, parquet, json) to ``out`` (stdout when None).

    A terminal table shows the first TERMINAL_ROWS rows; ``all_rows`` tells the user how the
    calling command gives every row (its own flags, e.g. "--format csv --out FILE").
    """
    if output_format == "table" and out is None:
        _print_table(result, all_rows=all_rows)
        return
    frame = pl.from_arrow(result)
    if output_format == "parquet":
        if out is None:
            raise ValueError("--format parquet needs --out FILE")
        frame.write_parquet(out)
    elif output_format == "json":
        _emit(frame.write_ndjson(), out)
    else:
        _emit(frame.write_csv(separator="\t" if output_format == "tsv" else ","), out)


def _emit(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
    else:
        with open(out, "w") as handle:
            handle.write(text)


def _print_table(table: pa.Table, *, all_rows: str) -> None:
    from rich.console import Console
    from rich.table import Table

    view = Table(*table.column_names)
    for row in table.slice(0, TERMINAL_ROWS).to_pylist():
        view.add_row(*(_cell(v) for v in row.values()))
    console = Console()
    console.print(view)
    if table.num_rows > TERMINAL_ROWS:
        console.print(f"… {table.num_rows - TERMINAL_ROWS:,} more rows" + (f" (all of them: {all_rows})" if all_rows else ""))


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    return str(value)


RESULT_FORMATS = (".tsv", ".tsv.gz", ".csv", ".csv.gz", ".parquet")


def export_results(lake: Lake, name: str, out: str) -> int:
    """Stream the results table ``name`` to ``out`` (format from its extension); returns rows.

    Text formats write 'NA' for tests that did not run, as PLINK 2 does, so the file
    reads directly in LocusZoom, FUMA or R.
    """
    import gzip

    import pyarrow.parquet as pq

    if not out.endswith(RESULT_FORMATS):
        raise ValueError(f"{out}: unknown results format; use one of {', '.join(RESULT_FORMATS)}")
    dataset = lake.results_dataset(name)
    rows = 0
    if out.endswith(".parquet"):
        with pq.ParquetWriter(out, dataset.schema, compression="zstd") as writer:
            for batch in dataset.to_batches():
                writer.write_batch(batch)
                rows += batch.num_rows
        return rows
    separator = "," if ".csv" in out else "\t"
    with (gzip.open(out, "wb") if out.endswith(".gz") else open(out, "wb")) as handle:
        for batch in dataset.to_batches():
            pl.from_arrow(pa.Table.from_batches([batch])).write_csv(
                handle, separator=separator, null_value="NA", include_header=rows == 0)
            rows += batch.num_rows
    return rows


# Other tools' layouts of one phenotype's GWAS results: (their column, our column or expression).
DIALECTS = {
    "gwas-ssf": [("chromosome", "ssf_chromosome"), ("base_pair_location", "pos"), ("effect_allele", "alt"),
                 ("other_allele", "ref"), ("beta", "beta"), ("standard_error", "se"),
                 ("effect_allele_frequency", "alt_freq"), ("p_value", "p"), ("neg_log_10_p_value", "log10p"),
                 ("rsid", "ssf_rsid"), ("variant_id", "ssf_variant_id"), ("n", "n")],
    "regenie": [("CHROM", "chrom"), ("GENPOS", "pos"), ("ID", "variant_id"), ("ALLELE0", "ref"), ("ALLELE1", "alt"),
                ("A1FREQ", "alt_freq"), ("N", "n"), ("TEST", "ADD"), ("BETA", "beta"), ("SE", "se"),
                ("CHISQ", "chisq"), ("LOG10P", "log10p")],
    "plink2": [("#CHROM", "chrom"), ("POS", "pos"), ("ID", "variant_id"), ("REF", "ref"), ("ALT", "alt"),
               ("A1", "alt"), ("A1_FREQ", "alt_freq"), ("TEST", "ADD"), ("OBS_CT", "n"), ("BETA", "beta"),
               ("SE", "se"), ("P", "p")],
}
NOT_AVAILABLE = {"gwas-ssf": "#NA", "regenie": "NA", "plink2": "NA"}
SSF_CHROMOSOMES = {**{str(i): i for i in range(1, 23)}, "X": 23, "XY": 23, "Y": 24, "MT": 25}
CONSTANTS = ("ADD",)  # written as is in every row (the additive test)


def export_dialect(lake: Lake, name: str, out: str, *, dialect: str, phenotype: str | None = None) -> int:
    """One phenotype of a GWAS results table in another tool's layout; returns rows.

    ``gwas-ssf`` (the GWAS Catalog standard: its columns in order, ``#NA``, and the metadata
    YAML ``OUT-meta.yaml`` beside the file), ``regenie`` (``.regenie``, space-separated) or
    ``plink2`` (``.glm.linear``-like, tab-separated). Rows come sorted by chromosome (1-22, X, XY,
    Y, MT) and position.
    """
    import gzip
    import hashlib
    from datetime import date

    import pyarrow.compute as pc
    import yaml

    if dialect not in DIALECTS:
        raise ValueError(f"unknown layout {dialect!r}; use one of {', '.join(DIALECTS)}")
    dataset = lake.results_dataset(name)
    phenotypes = pc.unique(dataset.to_table(columns=["phenotype"]).column(0)).to_pylist()
    if phenotype is None and len(phenotypes) == 1:
        phenotype = phenotypes[0]
    if phenotype not in phenotypes:
        raise ValueError(f"results {name!r} hold {len(phenotypes)} phenotypes; choose one with --phenotype "
                         f"({', '.join(map(str, phenotypes[:10]))}{', …' if len(phenotypes) > 10 else ''})")
    table = pl.from_arrow(dataset.to_table(filter=pc.field("phenotype") == phenotype))
    lacking = [c for c in ("chrom", "pos", "variant_id", "ref", "alt", "beta", "se", "p") if c not in table.columns]
    if lacking:
        raise ValueError(f"results {name!r} are not GWAS-shaped: they lack {', '.join(lacking)}")
    # GWAS-SSF numbers chromosomes 1-25 (X 23, Y 24, MT 25; the lake's XY, X's PAR, is X), sorts by them,
    # takes only dbSNP ids as rsid, and names a variant CHR_BP_OTHER_EFFECT
    ssf_chromosome = pl.col("chrom").replace_strict(SSF_CHROMOSOMES, default=None, return_dtype=pl.Int64)
    table = table.with_columns(chisq=(pl.col("beta") / pl.col("se")) ** 2, ssf_chromosome=ssf_chromosome,
                               ssf_rsid=pl.when(pl.col("variant_id").str.contains(r"^rs[0-9]+$"))
                               .then(pl.col("variant_id")),
                               ssf_variant_id=pl.concat_str([ssf_chromosome, "pos", "ref", "alt"], separator="_"),
                               ).sort(["ssf_chromosome", "chrom", "pos"])

    def column(ours: str) -> pl.Expr:
        if ours in CONSTANTS:
            return pl.lit(ours)
        return pl.col(ours) if ours in table.columns else pl.lit(None)   # written as the layout's NA

    frame = table.select([column(ours).alias(theirs) for theirs, ours in DIALECTS[dialect]])
    text = frame.write_csv(separator=" " if dialect == "regenie" else "\t", null_value=NOT_AVAILABLE[dialect],
                           float_precision=None)
    with (gzip.open(out, "wt") if out.endswith(".gz") else open(out, "w")) as handle:
        handle.write(text)
    if dialect == "gwas-ssf":
        provenance = lake.results_provenance(name)
        with open(out, "rb") as handle:
            digest = hashlib.md5(handle.read()).hexdigest()
        metadata = {
            "file_type": "GWAS-SSF v1.0", "data_file_name": out.rsplit("/", 1)[-1], "data_file_md5sum": digest,
            "date_last_modified": date.today().isoformat(), "is_harmonised": False, "is_sorted": True,
            "coordinate_system": "1-based", "genome_assembly": "unknown", "trait_description": [phenotype],
            "effect_statistic": "beta", "analysis_software": f"biolake {provenance.get('biolake_version', '')}".strip(),
            "samples": [{"sample_size": int(table["n"].max() or 0)}],
            "gwas_id": name, "biolake_provenance": {k: provenance[k] for k in ("release", "covariates", "settings")
                                                     if k in provenance},
        }
        with open(f"{out}-meta.yaml", "w") as handle:
            yaml.safe_dump(metadata, handle, sort_keys=False, default_flow_style=False)
    return frame.height
