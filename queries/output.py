"""Writing a query's result, or a results table, where the user asked: terminal, CSV/TSV, Parquet, JSON."""

from __future__ import annotations

import sys

import numpy as np
import polars as pl
import pyarrow as pa

from biolake.lake.lake import Lake
from biolake.queries.sql import QueryResult

TERMINAL_ROWS = 50
# Significant digits of the numbers in text exports (None: every digit, the float's round-trip form).
# plink2 prints 6; 7 keep each value within 5e-7 relative of ours, a tenth of the last digit plink2
# prints, so ours and plink2's still agree to plink2's printed digits (our tests compare at 1e-5), where
# 6 would add a second rounding as large as plink2's own. A 50-IDP × 20k-variant GWAS .tsv.gz: 52.9 → 31.7 MB.
TEXT_DIGITS = 7
_EXACT_POWERS = np.array([float(f"1e{j}") for j in range(23)])   # 10⁰ … 10²², exact in float64


def write_result(query_result: QueryResult, *, output_format: str, out: str | None, all_rows: str = "") -> None:
    """Materialise a query's result in ``output_format`` to ``out`` (stdout when None), every digit:
    a query returns data as stored, not a results export; see write_table."""
    write_table(query_result.arrow(), output_format=output_format, out=out, digits=None, all_rows=all_rows)


def write_table(result: pa.Table, *, output_format: str, out: str | None, digits: int | None = TEXT_DIGITS,
                all_rows: str = "") -> None:
    """Write a table as ``output_format`` (table, csv, tsv, parquet, json) to ``out`` (stdout when None);
    CSV/TSV numbers to ``digits`` significant digits (None: every digit).

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
        _emit(as_text(frame, digits).write_csv(separator="\t" if output_format == "tsv" else ","), out)


def as_text(frame: pl.DataFrame, digits: int | None) -> pl.DataFrame:
    """``frame`` ready for a CSV/TSV cell each: floats to ``digits`` (:func:`with_digits`), and lists (a
    clump's variants) joined by commas, as plink writes them.

    Examples
    --------
    >>> as_text(pl.DataFrame({"p": [0.123456789], "sp2": [["rs1", "rs2"]]}), 3).rows()
    [(0.123, 'rs1,rs2')]
    """
    return with_digits(frame, digits).with_columns(
        pl.col(name).list.join(",") for name, dtype in frame.schema.items() if dtype == pl.List(pl.String))


def with_digits(frame: pl.DataFrame, digits: int | None) -> pl.DataFrame:
    """``frame`` with its float columns rounded to ``digits`` significant digits (None: unchanged),
    so that they print (shortest round-trip form) with at most that many; nulls stay null."""
    if digits is None:
        return frame
    return frame.with_columns(
        pl.when(pl.col(name).is_not_null()).then(pl.Series(name, round_significant(frame[name].to_numpy(), digits)))
        .alias(name)
        for name, dtype in frame.schema.items() if dtype.is_float())


def round_significant(values: np.ndarray, digits: int) -> np.ndarray:
    """``values`` rounded to ``digits`` significant digits, each the float64 nearest its rounded decimal
    (which is what makes it print with no more digits); 0, NaN and ±inf stay as they are.

    Examples
    --------
    >>> round_significant(np.array([0.123456789, -2.5e-300, 123456789.0, 0.0, np.nan]), 3).tolist()
    [0.123, -2.5e-300, 123000000.0, 0.0, nan]
    """
    out = np.array(values, dtype=np.float64)
    finite = np.isfinite(out) & (out != 0)
    x = out[finite]
    exponent = np.floor(np.log10(np.abs(x))) - (digits - 1)          # x ≈ mantissa · 10^exponent
    half = np.floor(exponent / 2)                                     # two factors: 10^±330 overflows
    mantissa = np.round(x * 10.0 ** -half * 10.0 ** (half - exponent))
    # mantissa and 10^|exponent| ≤ 10²² are exact, so one product or quotient is correctly rounded
    power = _EXACT_POWERS[np.minimum(np.abs(exponent), 22).astype(np.int64)]
    nearest = np.where(exponent < 0, mantissa / power, mantissa * power)
    far = np.abs(exponent) > 22                                      # p-values below 1e-16: read back as text
    if far.any():
        text = (pl.Series(mantissa[far].astype(np.int64)).cast(pl.String) + "e"
                + pl.Series(exponent[far].astype(np.int64)).cast(pl.String))
        nearest[far] = text.cast(pl.Float64).to_numpy()
    out[finite] = nearest
    return out


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


SPLIT_FILES_OPEN = 256       # a split export writes this many files at most per pass over the table
SPLIT_ROWS_PER_WRITE = 1 << 16   # and buffers each file's rows to this many per write (a Parquet row group)


def export_results(lake: Lake, name: str, out: str, *, digits: int | None = TEXT_DIGITS,
                   split_by: str | None = None) -> int:
    """Stream the results table ``name`` to ``out`` (format from its extension); returns rows.

    Text formats write 'NA' for tests that did not run, as PLINK 2 does, so the file
    reads directly in LocusZoom, FUMA or R, and numbers to ``digits`` significant digits
    (None: every digit); Parquet keeps the stored values. With ``split_by`` (a column:
    ``phenotype``) each of its values gets a file of its own rows (:func:`split_path`, REGENIE's
    ``PREFIX_PHENO`` layout): SPLIT_FILES_OPEN values per pass over the table, each file's rows
    written SPLIT_ROWS_PER_WRITE at a time.
    """
    import pyarrow.compute as pc

    if not out.endswith(RESULT_FORMATS):
        raise ValueError(f"{out}: unknown results format; use one of {', '.join(RESULT_FORMATS)}")
    dataset = lake.results_dataset(name)
    if split_by is None:
        with _ResultsWriter(out, out, dataset.schema, digits) as writer:
            for batch in dataset.to_batches():
                writer.write(pa.Table.from_batches([batch]))
            return writer.rows
    values = sorted(pc.unique(dataset.to_table(columns=[split_by]).column(split_by)).drop_null().to_pylist())
    rows = 0
    for start in range(0, len(values), SPLIT_FILES_OPEN):
        chosen = values[start:start + SPLIT_FILES_OPEN]
        writers = {value: _ResultsWriter(split_path(out, str(value)), out, dataset.schema, digits) for value in chosen}
        try:
            for batch in dataset.to_batches(filter=pc.field(split_by).isin(chosen)):
                frame = pl.from_arrow(pa.Table.from_batches([batch]))
                for (value,), part in frame.partition_by(split_by, as_dict=True).items():
                    writers[value].add(part.to_arrow())
        finally:
            for writer in writers.values():
                writer.close()
        rows += sum(writer.rows for writer in writers.values())
    return rows


def split_path(out: str, value: str) -> str:
    """Where the rows of one ``value`` of a split export go: ``out`` with ``_VALUE`` before its extension
    (characters other than letters, digits, '.', '_' and '-' become '_').

    >>> split_path("run/idps.tsv.gz", "25001-2.0"), split_path("run/x.parquet", "left/right hippocampus")
    ('run/idps_25001-2.0.tsv.gz', 'run/x_left_right_hippocampus.parquet')
    """
    import re

    extension = next(e for e in sorted(RESULT_FORMATS, key=len, reverse=True) if out.endswith(e))
    return f"{out[:-len(extension)]}_{re.sub(r'[^A-Za-z0-9._-]', '_', value)}{extension}"


class _ResultsWriter:
    """One export file, written as the rows come (``add`` buffers them to SPLIT_ROWS_PER_WRITE): Parquet as
    stored, or text with 'NA' and ``digits``, its separator from the name the user gave (``out``)."""

    def __init__(self, path: str, out: str, schema: pa.Schema, digits: int | None) -> None:
        import gzip

        import pyarrow.parquet as pq

        self.digits, self.rows, self.pending = digits, 0, []
        self.parquet = pq.ParquetWriter(path, schema, compression="zstd") if path.endswith(".parquet") else None
        self.separator = "," if ".csv" in out else "\t"
        self.handle = None if self.parquet else (gzip.open(path, "wb") if path.endswith(".gz") else open(path, "wb"))

    def __enter__(self) -> _ResultsWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def add(self, table: pa.Table) -> None:
        self.pending.append(table)
        if sum(part.num_rows for part in self.pending) >= SPLIT_ROWS_PER_WRITE:
            self.write(pa.concat_tables(self.pending))
            self.pending = []

    def write(self, table: pa.Table) -> None:
        if self.parquet is not None:
            self.parquet.write_table(table.cast(self.parquet.schema))
        else:
            as_text(pl.from_arrow(table), self.digits).write_csv(self.handle, separator=self.separator,
                                                                  null_value="NA", include_header=self.rows == 0)
        self.rows += table.num_rows

    def close(self) -> None:
        if self.pending:
            self.write(pa.concat_tables(self.pending))
            self.pending = []
        (self.parquet or self.handle).close()


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


def export_dialect(lake: Lake, name: str, out: str, *, dialect: str, phenotype: str | None = None,
                   digits: int | None = TEXT_DIGITS) -> int:
    """One phenotype of a GWAS results table in another tool's layout; returns rows.

    ``gwas-ssf`` (the GWAS Catalog standard: its columns in order, ``#NA``, and the metadata
    YAML ``OUT-meta.yaml`` beside the file), ``regenie`` (``.regenie``, space-separated) or
    ``plink2`` (``.glm.linear``-like, tab-separated). Rows come sorted by chromosome (1-22, X, XY,
    Y, MT) and position, numbers to ``digits`` significant digits (None: every digit).
    GWAS-SSF requires beta, standard error and p on every row, and a chromosome 1-25: rows
    without them (tests that did not run) are left out, and counted by reason in the YAML.
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
    omitted: dict[str, int] = {}
    if dialect == "gwas-ssf":
        table, omitted = _ssf_rows(table)

    def column(ours: str) -> pl.Expr:
        if ours in CONSTANTS:
            return pl.lit(ours)
        return pl.col(ours) if ours in table.columns else pl.lit(None)   # written as the layout's NA

    frame = with_digits(table.select([column(ours).alias(theirs) for theirs, ours in DIALECTS[dialect]]), digits)
    for theirs in (theirs for theirs, ours in DIALECTS[dialect] if ours == "p"):
        frame = frame.with_columns(_p_text(frame[theirs], table["log10p"], digits).alias(theirs))
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
            "untested_rows_omitted": sum(omitted.values()), "untested_rows_by_reason": omitted,
            **({"retracted": provenance["retracted"]} if "retracted" in provenance else {}),
        }
        with open(f"{out}-meta.yaml", "w") as handle:
            yaml.safe_dump(metadata, handle, sort_keys=False, default_flow_style=False)
    return frame.height


def _p_text(p: pl.Series, log10p: pl.Series, digits: int | None) -> pl.Series:
    """``p``, written from −log10 p where it fell below float64's range (1e-323) and reads 0:
    GWAS-SSF requires p > 0, and plink2 prints such p too (as ``3.162278e-401``)."""
    underflow = (p == 0) & log10p.is_finite() & (log10p > 0)
    if not underflow.any():
        return p
    exponent = log10p.ceil()
    mantissa = (10.0 ** (exponent - log10p)).round((digits or 17) - 1)
    text = pl.format("{}e-{}", pl.lit(mantissa), pl.lit(exponent.cast(pl.Int64)))
    return pl.select(pl.when(pl.lit(underflow)).then(text).otherwise(pl.lit(p).cast(pl.String))).to_series()


def _ssf_rows(table: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """The rows a GWAS-SSF file may hold (finite beta, se and p; a chromosome numbered 1-25; alleles
    spelled in nucleotides), and how many others there were per reason: the test's error, or what
    GWAS-SSF cannot write."""
    estimated = pl.all_horizontal(pl.col(c).is_not_null() & pl.col(c).is_finite() for c in ("beta", "se", "p"))
    spelled = pl.all_horizontal(pl.col(c).str.contains("^[ACGTacgt]+$") for c in ("ref", "alt"))
    reason = (pl.when(pl.col("ssf_chromosome").is_null()).then(pl.format("chromosome {}", "chrom"))
              .when(~spelled).then(pl.lit("alleles other than A, C, G, T"))
              .otherwise(pl.col("error") if "error" in table.columns else pl.lit(None, pl.String))
              .fill_null("no estimate"))
    keep = estimated & pl.col("ssf_chromosome").is_not_null() & spelled
    counts = table.filter(~keep).group_by(reason.alias("reason")).len().sort("reason")
    return table.filter(keep), dict(counts.iter_rows())
