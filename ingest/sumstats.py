"""Summary statistics from other tools into the lake: GWAS-SSF, PLINK 2 ``.glm``, REGENIE, biolake exports.

Published (or collaborators') results become a results table like our own, so SQL can
join them with our hits, ``biolake meta`` can combine them with our cohorts and
``biolake prs`` can score with them. Columns are found by the names each tool uses; the
effect allele becomes ``alt`` and the other allele ``ref`` (PLINK 2's A1 may be either
of its REF/ALT), so ``beta`` is always per copy of ``alt``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc

from biolake.ingest.genotypes import chromosome_column
from biolake.lake.errors import InputError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS

COLUMNS = {  # our name: what GWAS-SSF, PLINK 2, REGENIE and biolake call it, in order of preference
    "variant_id": ("variant_id", "rsid", "ID", "SNP", "SNPID", "MarkerName"),
    "chrom": ("chrom", "chromosome", "CHROM", "CHR"),
    "pos": ("pos", "base_pair_location", "POS", "GENPOS", "BP"),
    "alt": ("effect_allele", "A1", "ALLELE1", "EA", "alt"),
    "ref": ("other_allele", "ALLELE0", "NEA", "A2", "ref"),
    "beta": ("beta", "BETA", "Effect"),
    "se": ("se", "standard_error", "SE", "StdErr"),
    "p": ("p", "p_value", "P", "PVAL"),
    "log10p": ("log10p", "neg_log_10_p_value", "LOG10P"),
    "alt_freq": ("alt_freq", "effect_allele_frequency", "A1_FREQ", "A1FREQ", "EAF"),
    "n": ("n", "N", "OBS_CT"),
}
REQUIRED = ("variant_id", "alt", "beta")
DESCRIBED = {"variant_id": "variant id", "chrom": "chromosome", "pos": "position", "alt": "effect allele",
             "ref": "other allele", "beta": "effect (beta)", "se": "standard error", "p": "p-value",
             "log10p": "-log10 p", "alt_freq": "effect allele frequency", "n": "sample size"}
MISSING = ["NA", "#NA", "", "."]


def read_sumstats(path: str | Path, *, phenotype: str | None = None, require: tuple[str, ...] = REQUIRED) -> pl.DataFrame:
    """One summary-statistics file as our columns (those it has), phenotype added when absent.

    ``require`` names the columns that must be found; the error names the file and the
    names looked for.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(path, "no such file")
    try:
        frame = pl.read_csv(path, separator=_separator(path), null_values=MISSING, infer_schema_length=10_000,
                            schema_overrides={name: pl.Utf8 for name in (*COLUMNS["chrom"], "#CHROM")})  # 1…22 then X
    except pl.exceptions.PolarsError as exc:
        raise InputError(path, f"not a readable table: {str(exc).splitlines()[0]}") from None
    frame = frame.rename({c: c.strip().lstrip("#") for c in frame.columns})
    spelled = next((name for name in COLUMNS["chrom"] if name in frame.columns), None)
    if spelled:   # chr1, 23, M → the lake's 1, X, MT, so imported results join ours
        frame = frame.with_columns(chromosome_column(frame[spelled], path=path, first_line=2))
    if "TEST" in frame.columns:   # PLINK 2 and REGENIE list covariate and interaction rows too
        tests = frame["TEST"].cast(pl.Utf8).unique().to_list()
        if "ADD" not in tests:
            raise InputError(path, f"no additive-test rows (TEST = ADD); it has {', '.join(map(str, tests[:10]))}",
                             column="TEST")
        frame = frame.filter(pl.col("TEST") == "ADD")
    found = {ours: next((name for name in names if name in frame.columns), None) for ours, names in COLUMNS.items()}
    if {"A1", "REF", "ALT"} <= set(frame.columns) and found["alt"] == "A1":   # PLINK 2: A1 is REF or ALT
        frame = frame.with_columns(pl.when(pl.col("A1") == pl.col("ALT")).then(pl.col("REF"))
                                   .otherwise(pl.col("ALT")).alias("__other"))
        found["ref"] = "__other"
    lacking = [ours for ours in require if found[ours] is None]
    if "p" in require and found["p"] is None and found["log10p"] is not None:
        lacking.remove("p")
    if lacking:
        raise InputError(path, "; ".join(f"no {DESCRIBED[ours]} column (looked for {', '.join(COLUMNS[ours])})"
                                         for ours in lacking))
    columns = {ours: pl.col(name) for ours, name in found.items() if name is not None}
    if {"rsid", "variant_id"} <= set(frame.columns):   # GWAS-SSF: the rsid where there is one, else CHR_BP_OA_EA
        columns["variant_id"] = pl.coalesce("rsid", "variant_id")
    if "variant_id" in columns and frame.select(columns["variant_id"].null_count()).item():
        raise InputError(path, "a row has no variant id", column=found["variant_id"])
    if "p" not in columns and "log10p" in columns:
        columns["p"] = 10.0 ** -pl.col(found["log10p"]).cast(pl.Float64)
    if "log10p" not in columns and "p" in columns:
        columns["log10p"] = -pl.col(found["p"]).cast(pl.Float64).log10()
    types = {"chrom": pl.Utf8, "pos": pl.Int64, "variant_id": pl.Utf8, "alt": pl.Utf8, "ref": pl.Utf8, "n": pl.Int64}
    try:
        out = frame.select([expression.cast(types.get(ours, pl.Float64)).alias(ours)
                            for ours, expression in columns.items()])
    except pl.exceptions.PolarsError as exc:
        raise InputError(path, f"a value does not read as expected: {str(exc).splitlines()[0]}") from None
    out = out.with_columns([pl.col(a).str.to_uppercase() for a in ("alt", "ref") if a in out.columns])
    if "phenotype" in frame.columns:
        return out.with_columns(frame["phenotype"].cast(pl.Utf8))
    return out.with_columns(pl.lit(phenotype or path.name.split(".")[0]).alias("phenotype"))


def import_sumstats(lake: Lake, path: str | Path, *, name: str, phenotype: str | None = None,
                    replace: bool = False) -> int:
    """Write a summary-statistics file as the results table ``name`` (GWAS columns); returns its rows.
    An existing table of that name is replaced only with ``replace``."""
    lake.check_results_free(name, replace=replace)
    needed = ("variant_id", "chrom", "pos", "alt", "ref", "beta", "se", "p")
    frame = read_sumstats(path, phenotype=phenotype, require=needed)
    schema = RESULTS_KINDS["gwas"].arrow_schema()   # the GWAS columns, without t or z
    frame = frame.with_columns([pl.lit(None, dtype=pl.Int64).alias("n")] if "n" not in frame.columns else [])
    frame = frame.with_columns([pl.lit(None, dtype=pl.Float64).alias("alt_freq")] if "alt_freq" not in frame.columns else [])
    table = frame.with_columns(pl.lit(None, dtype=pl.Utf8).alias("error")).select(schema.names).to_arrow()
    table = table.cast(schema)
    files = lake.results_files(name)
    actions = []
    for chrom in np.unique(np.asarray(table.column("chrom").to_pylist(), dtype=object).astype(str)):
        part = table.filter(pc.equal(table.column("chrom"), chrom))
        output = files.open(schema, partition={"chrom": chrom}, part="imported")
        output.write(part)
        actions.append(output.close())
    lake.commit_results(files, actions, schema=schema, partition_by=["chrom"], provenance={
        "kind": "gwas", "imported_from": str(path), "created_at": datetime.now(timezone.utc).isoformat(),
        "phenotypes": sorted(set(table.column("phenotype").to_pylist()))}, replace=replace)
    return table.num_rows


def _separator(path: Path) -> str:
    """Tab, comma or space, from the header line (REGENIE writes spaces)."""
    import gzip

    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rt") as handle:
        header = handle.readline()
    return "\t" if "\t" in header else ("," if "," in header else " ")
