"""The lake's tables, each declared once: kind, keys, partitioning, columns and meaning.

Ingest validates what it writes against these declarations and ``biolake init``
writes them into ``catalog.yaml``. Participant-keyed tables (``idps``,
``covariates``) are wide: their fixed columns are declared here and every other
column is one field of the source (float64 or text).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from biolake.lake.errors import LakeError


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    meaning: str
    nullable: bool = False


@dataclass(frozen=True)
class TableSpec:
    """One lake table: what it holds and how it is laid out."""

    name: str
    kind: str
    keys: tuple[str, ...]
    partition_by: tuple[str, ...]
    description: str
    columns: tuple[Column, ...]
    wide: bool = False  # extra value columns allowed beyond the declared ones
    lookup_columns: tuple[str, ...] = ()  # point lookups on these get Parquet bloom filters
    compression: str = "ZSTD"             # Parquet codec of its files

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def validate(self, schema: pa.Schema) -> None:
        """Raise LakeError unless ``schema`` has every declared column with its declared type."""
        for column in self.columns:
            if column.name not in schema.names:
                raise LakeError(f"table {self.name!r}: missing column {column.name!r}")
            found = schema.field(column.name).type
            if found != column.type:
                raise LakeError(f"table {self.name!r}: column {column.name!r} is {found}, "
                                f"expected {column.type}")
        extra = set(schema.names) - {c.name for c in self.columns}
        if extra and not self.wide:
            raise LakeError(f"table {self.name!r}: unexpected columns {sorted(extra)}")

    def to_catalog_entry(self) -> dict:
        return {"kind": self.kind, "keys": list(self.keys), "partition_by": list(self.partition_by),
                "description": self.description}


def _c(name: str, type_: pa.DataType, meaning: str, nullable: bool = False) -> Column:
    return Column(name, type_, meaning, nullable)


RELEASE = _c("release", pa.string(), "release name; every table is partitioned by it")
PARTICIPANT = _c("participant_id", pa.string(), "the source's eid / IID, kept as text")
_VARIANT = (
    _c("chrom", pa.string(), "chromosome code (1-22, X, Y, MT)"),
    _c("variant_index", pa.int64(), "order of the variant in the release (0-based)"),
    _c("variant_id", pa.string(), "variant id (rsID or chrom:pos:ref:alt)"),
    _c("pos", pa.int64(), "base-pair position"),
    _c("ref", pa.string(), "reference allele"),
    _c("alt", pa.string(), "alternate allele: the effect allele, counted by dosages"),
    _c("alt_freq", pa.float64(), "alt allele frequency over called samples", nullable=True),
    _c("n_called", pa.int64(), "samples with a non-missing call"),
    _c("info", pa.float64(), "imputation INFO score (null for hard calls)", nullable=True),
)

TABLES: dict[str, TableSpec] = {spec.name: spec for spec in [
    TableSpec("releases", "releases", ("release",), (),
              "the release registry: a release is visible once its row is committed here",
              (RELEASE,
               _c("sequence", pa.int64(), "commit order of releases (1, 2, …)"),
               _c("committed_at", pa.timestamp("us", tz="UTC"), "when the release was committed"),
               _c("tables", pa.list_(pa.string()), "tables that hold rows of this release"),
               _c("table_versions", pa.string(), "JSON: Delta version of each table at commit"),
               _c("source", pa.string(), "where the release was ingested from"),
               _c("source_checksums", pa.string(), "JSON: checksum of each source file: the verified sha256 "
                  "where the release folder's manifest lists one, else blake3:HEX"),
               _c("source_stats", pa.string(), "JSON: size and mtime (ns) of each source file when it was "
                  "hashed, for sync's cheap check; null for releases loaded before biolake recorded them",
                  nullable=True),
               _c("biolake_version", pa.string(), "biolake version that ingested it"))),
    TableSpec("withdrawals", "withdrawals", ("withdrawn_at",), (),
              "audit of consent withdrawals: when, how many, what was rewritten (no ids are kept)",
              (_c("withdrawn_at", pa.timestamp("us", tz="UTC"), "when the withdrawal completed"),
               _c("participants", pa.int64(), "participants named in the withdrawal list"),
               _c("rewritten", pa.list_(pa.string()), "table@release pairs rewritten"),
               _c("files_removed", pa.int64(), "data files vacuumed"))),
    TableSpec("retractions", "retractions", ("release",), (),
              "releases withdrawn from use: once a release's row is here it is no longer readable, and its "
              "rows are deleted and vacuumed",
              (_c("release", pa.string(), "the retracted release"),
               _c("retracted_at", pa.timestamp("us", tz="UTC"), "when the retraction was committed"),
               _c("why", pa.string(), "the reason given"))),
    TableSpec("dropped_results", "dropped_results", ("name", "dropped_at"), (),
              "audit of dropped results tables: what was dropped and when",
              (_c("name", pa.string(), "the results table's name"),
               _c("dropped_at", pa.timestamp("us", tz="UTC"), "when the drop was committed"),
               _c("kind", pa.string(), "its kind (gwas, ewas, gxe, meta, prs)", nullable=True),
               _c("release", pa.string(), "the release it was computed from", nullable=True),
               _c("rows", pa.int64(), "rows it held"),
               _c("created_at", pa.string(), "when it was computed, as its provenance says", nullable=True))),
    TableSpec("samples", "samples", ("release", "assay", "sample_index"), ("release",),
              "per release and assay, the order of participants in the sample vectors",
              (RELEASE,
               _c("assay", pa.string(), "which vectors this order belongs to: genotypes or methylation"),
               _c("sample_index", pa.int64(), "position in the assay's sample vector"),
               PARTICIPANT,
               _c("sex", pa.string(), "M, F or null, as the source states it", nullable=True))),
    TableSpec("variants", "variants", ("release", "variant_index"), ("release",),
              "one row per variant: position, alleles, frequency (no genotypes)",
              (RELEASE, *_VARIANT), lookup_columns=("variant_id",)),
    TableSpec("genotypes", "genotypes", ("release", "variant_index"), ("release", "chrom"),
              "variant-major genotypes: variant columns plus the packed sample vector",
              (RELEASE, *_VARIANT,
               _c("calls", pa.binary(), "hard calls, 2 bits per sample in PLINK .bed order "
                  "(00 hom-alt, 01 missing, 10 het, 11 hom-ref)", nullable=True),
               _c("dosage", pa.binary(), "alt dosages as little-endian uint16, value·2/65534, "
                  "65535 missing (finer than BGEN 8-bit)", nullable=True)),
              lookup_columns=("variant_id",)),
    TableSpec("idps", "idps", ("release", "participant_id"), ("release",),
              "imaging-derived phenotypes, one column per field (e.g. 25010-2.0)",
              (RELEASE, PARTICIPANT), wide=True),
    TableSpec("idp_fields", "idp_fields", ("release", "field"), ("release",),
              "the IDP data dictionary: each field's name, unit and category",
              (RELEASE,
               _c("field", pa.string(), "column name in idps, e.g. 25010-2.0"),
               _c("field_id", pa.int64(), "numeric field id, e.g. 25010", nullable=True),
               _c("instance", pa.int64(), "visit instance (2 = first imaging visit)", nullable=True),
               _c("array", pa.int64(), "array index", nullable=True),
               _c("name", pa.string(), "human-readable name", nullable=True),
               _c("unit", pa.string(), "unit of measurement", nullable=True),
               _c("category", pa.string(), "category, e.g. Subcortical volumes", nullable=True))),
    TableSpec("covariates", "covariates", ("release", "participant_id"), ("release",),
              "covariates and exposures (age, sex, site, PCs, …), one column each",
              (RELEASE, PARTICIPANT), wide=True),
    TableSpec("probes", "probes", ("release", "cpg_index"), ("release",),
              "methylation probe annotation",
              (RELEASE,
               _c("cpg_index", pa.int64(), "order of the CpG in the release (0-based)"),
               _c("cpg_id", pa.string(), "probe id, e.g. cg00000029"),
               _c("chrom", pa.string(), "chromosome code", nullable=True),
               _c("pos", pa.int64(), "base-pair position", nullable=True))),
    TableSpec("methylation", "methylation", ("release", "cpg_index"), ("release", "chrom"),
              "CpG-major methylation: probe columns plus the beta vector of the methylation samples",
              (RELEASE,
               _c("chrom", pa.string(), "chromosome code ('NA' when unannotated)"),
               _c("cpg_index", pa.int64(), "order of the CpG in the release (0-based)"),
               _c("cpg_id", pa.string(), "probe id"),
               _c("pos", pa.int64(), "base-pair position", nullable=True),
               _c("n_present", pa.int64(), "samples with a non-missing beta"),
               _c("beta", pa.binary(), "beta values as little-endian float32, NaN missing")),
              # float32 betas shrink ~11% under zstd, which reads them back 3.5x slower than LZ4
              lookup_columns=("cpg_id",), compression="LZ4_RAW"),
]}


def spec(name: str) -> TableSpec:
    """The declaration of a lake table (results tables, under results/, are declared by their writers)."""
    try:
        return TABLES[name]
    except KeyError:
        raise LakeError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None
