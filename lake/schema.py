"""The lake's tables, each declared once: kind, keys, partitioning, columns and meaning.

Source tables (:data:`TABLES`): ingest validates what it writes against these declarations
and ``biolake init`` writes them into ``catalog.yaml``. Participant-keyed tables (``idps``,
``covariates``) are wide: their fixed columns are declared here and every other
column is one field of the source (float64 or text).

Results tables (``results/NAME``, :data:`RESULTS_KINDS`): one :class:`ResultsKind` per kind
of analysis (gwas, ewas, gxe, meta, clump, ld, ldscore, h2, rg, prs, kinship, unrelated, harmonized, cnv_assoc, …)
declares its columns and their roles (the scan, the feature, its position, the effect, the headline p), and
:meth:`Lake.commit_results` refuses a table that does not match its kind's declaration. A concept has one name in
every kind, and in the source tables: ``variant_id``, ``cpg_id``, ``chrom``, ``pos``,
``ref``/``alt``, ``n``, ``alt_freq``, ``beta`` (the effect estimate, which EWAS results
called ``coefficient`` until GWAS's name was taken for all), ``se``, ``p``, ``log10p``,
``fdr``, ``error`` (one vocabulary, :data:`ERRORS`). Exports in other tools' layouts
(``queries/output.py``) keep those tools' names.

Adding a kind: declare it in :data:`RESULTS_KINDS` below (its columns, reusing the shared
ones, and its roles), build its tables with ``RESULTS_KINDS[name].arrow_schema(...)``, and
name it as ``"kind"`` in the provenance its job commits; readers (report, browse index,
browser) then take its roles from here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import pyarrow as pa

from biolake.lake.errors import LakeError


@dataclass(frozen=True)
class Column:
    """One declared column; a name ending in ``*`` stands for every column with that prefix."""

    name: str
    type: pa.DataType
    meaning: str
    nullable: bool = False
    optional: bool = False   # may be absent from a table (results kinds whose columns vary with the run)

    def matches(self, name: str) -> bool:
        """Whether the column ``name`` of a table is this declared column."""
        return name.startswith(self.name[:-1]) if self.name.endswith("*") else name == self.name


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
        check_columns(f"table {self.name!r}", self.columns, schema, wide=self.wide)

    def to_catalog_entry(self) -> dict:
        return {"kind": self.kind, "keys": list(self.keys), "partition_by": list(self.partition_by),
                "description": self.description}


def check_columns(table: str, columns: Sequence[Column], schema: pa.Schema, *, wide: bool = False) -> None:
    """Raise LakeError unless ``schema`` has each required column of ``columns`` with its declared type,
    optional ones with theirs, and no other column (unless ``wide``); ``table`` names it in the message."""
    found = {field.name: field.type for field in schema}
    for column in columns:
        present = [name for name in found if column.matches(name)]
        if not present and not column.optional:
            raise LakeError(f"{table}: missing column {column.name!r} ({column.type}: {column.meaning})")
        for name in present:
            if found[name] != column.type:
                raise LakeError(f"{table}: column {name!r} is {found[name]}, expected {column.type}")
    extra = [name for name in found if not any(column.matches(name) for column in columns)]
    if extra and not wide:
        raise LakeError(f"{table}: unexpected columns {sorted(extra)}; declared: "
                        f"{', '.join(column.name for column in columns)}")


def _c(name: str, type_: pa.DataType, meaning: str, nullable: bool = False) -> Column:
    return Column(name, type_, meaning, nullable)


RELEASE = _c("release", pa.string(), "release name; every table is partitioned by it")
PARTICIPANT = _c("participant_id", pa.string(), "the source's eid / IID, kept as text")
_VARIANT = (
    _c("chrom", pa.string(), "chromosome code (1-22, X, Y, MT)"),
    _c("variant_index", pa.int64(), "order of the variant in the release (0-based)"),
    _c("variant_id", pa.string(), "variant id (rsID or chrom:pos:ref:alt)"),
    _c("pos", pa.int64(), "base-pair position"),
    _c("cm", pa.float64(), "genetic position in centimorgans (a .bim's third column; null where the source "
       "gives none or 0, PLINK's 'unknown')", nullable=True),
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
               _c("kind", pa.string(), "its kind (gwas, ewas, gxe, meta, clump, ld, ldscore, h2, rg, prs, kinship, harmonized)", nullable=True),
               _c("release", pa.string(), "the release it was computed from", nullable=True),
               _c("rows", pa.int64(), "rows it held"),
               _c("created_at", pa.string(), "when it was computed, as its provenance says", nullable=True))),
    TableSpec("samples", "samples", ("release", "assay", "sample_index"), ("release",),
              "per release and assay, the order of participants in the sample vectors",
              (RELEASE,
               _c("assay", pa.string(), "which vectors this order belongs to: genotypes or methylation; cnv: the "
                  "participants CNVs were called for, with or without a segment"),
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
               _c("category", pa.string(), "category, e.g. Subcortical volumes", nullable=True),
               _c("structure", pa.string(), "the brain structure (FreeSurfer tables), e.g. Hippocampus, bankssts",
                  nullable=True),
               _c("hemisphere", pa.string(), "left, right, or null (FreeSurfer tables)", nullable=True),
               _c("measure", pa.string(), "volume, area, thickness, … (FreeSurfer tables)", nullable=True)),
              wide=True),   # merged: the columns from structure on came later; lakes made before gain them
    TableSpec("covariates", "covariates", ("release", "participant_id"), ("release",),
              "covariates and exposures (age, sex, site, PCs, …), one column each",
              (RELEASE, PARTICIPANT), wide=True),
    TableSpec("cnvs", "cnvs", ("release", "participant_id", "chrom", "start"), ("release",),
              "copy-number segments per participant, as the caller made them (PennCNV, PLINK .cnv)",
              (RELEASE, PARTICIPANT,
               _c("segment_index", pa.int64(), "the call's order in its source file (0-based): PLINK sums a "
                  "participant's kb in this order"),
               _c("chrom", pa.string(), "chromosome code (1-22, X, Y, XY, MT)"),
               _c("start", pa.int64(), "first base pair of the segment (1-based, inclusive)"),
               _c("end", pa.int64(), "last base pair of the segment (inclusive)"),
               _c("copy_number", pa.int64(), "copies: 0 or 1 a deletion, 3 or more a duplication"),
               _c("type", pa.string(), "DEL or DUP"),
               _c("probes", pa.int64(), "probes the segment spans (PennCNV numsnp, PLINK SITES)"),
               _c("confidence", pa.float64(), "the caller's confidence (PennCNV conf, PLINK SCORE; null where it "
                  "gave none)", nullable=True))),
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
    """The declaration of a source table (results tables, under results/, are declared by kind: :func:`results_kind`)."""
    try:
        return TABLES[name]
    except KeyError:
        raise LakeError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None


# -- results kinds ---------------------------------------------------------------------------

# Why a test could not run, as the ``error`` column of every association kind shows it (None: it ran).
# stats/ codes them by position (stats.association: OK, MONOMORPHIC, …), so new ones go at the end.
ERRORS = (None, "monomorphic", "too few samples", "collinear", "separation", "not converged",
          "closer than --min-distance", "r² above --max-r2")
POSITION = ("chrom", "pos")
PAIR_SEPARATOR = " × "   # one string naming a pair of features (a kind with a ``pair`` role): "A × B", A the other


@dataclass(frozen=True)
class ResultsKind:
    """One kind of results table: its columns, and which of them play which role.

    Roles name columns (None where a kind has none: polygenic scores are per participant):
    ``phenotype`` and ``extra_group`` together name one scan (GxE: phenotype and exposure;
    EWAS: the exposure); ``feature`` is what was tested (variant or CpG) at ``position``
    (chromosome, base pair); ``effect`` its estimate; ``log10p`` and ``p`` the headline test;
    ``pair``, where each row tests a pair of features, the other one's id, chromosome and position.
    Optional columns vary with the run; :meth:`arrow_schema` builds a run's schema.
    """

    name: str
    description: str
    columns: tuple[Column, ...]
    phenotype: str | None = None
    feature: str | None = None
    effect: str | None = None
    log10p: str | None = None
    p: str | None = None
    extra_group: tuple[str, ...] = ()
    position: tuple[str, ...] = POSITION
    pair: tuple[str, ...] = ()  # a pair's other feature: its id, chromosome, position (epistasis: each row a pair)
    wide: bool = False          # besides its declared columns, one float column per measure (harmonised IDPs)

    @property
    def groups(self) -> list[str]:
        """The columns whose values name one scan: thresholds, q-values and clumping are per scan."""
        return [self.phenotype, *self.extra_group]

    @property
    def scans(self) -> bool:
        """Whether its tables hold scans (per-feature tests) that reports and the browser show."""
        return self.log10p is not None

    def arrow_schema(self, *, columns: Iterable[str] = ()) -> pa.Schema:
        """The schema of one table: the required columns, and the optional (or prefixed) ones named
        in ``columns``, in declared order.

        Examples
        --------
        >>> RESULTS_KINDS["gwas"].arrow_schema(columns=["z", "firth"]).names[-6:]
        ['se', 'z', 'p', 'log10p', 'error', 'firth']
        >>> RESULTS_KINDS["prs"].arrow_schema(columns=["prs_p0_05", "prs_p1"]).names
        ['participant_id', 'prs_p0_05', 'prs_p1']
        """
        chosen = list(columns)
        fields = [pa.field(name, column.type, nullable=column.nullable) for column in self.columns
                  for name in ([column.name] if not (column.optional or column.name.endswith("*"))
                               else [name for name in chosen if column.matches(name)])]
        if self.wide:
            declared = {field.name for field in fields}
            fields += [pa.field(name, pa.float64()) for name in chosen if name not in declared]
        unknown = sorted(set(chosen) - {field.name for field in fields})
        if unknown:
            raise LakeError(f"{self.name} results declare no columns {unknown}")
        return pa.schema(fields)

    def validate(self, schema: pa.Schema, *, table: str) -> None:
        """Raise LakeError unless ``schema`` is one of this kind's (``table``, the results' name, is
        named in the message with the column at fault and what was expected)."""
        check_columns(f"results table {table!r} ({self.name})", self.columns, schema, wide=self.wide)


def _r(name: str, type_: pa.DataType, meaning: str, *, optional: bool = False) -> Column:
    """A results column (nullable: a test that did not run has no numbers)."""
    return Column(name, type_, meaning, nullable=True, optional=optional)


def _f(name: str, meaning: str, *, optional: bool = False) -> Column:
    return _r(name, pa.float64(), meaning, optional=optional)


def _from_table(table: str, *names: str) -> tuple[Column, ...]:
    """Columns of a source table, as results carry them (nullable), in the order ``names``."""
    declared = {column.name: column for column in TABLES[table].columns}
    return tuple(replace(declared[name], nullable=True) for name in names)


VARIANT = _from_table("variants", "variant_id", "chrom", "pos", "ref", "alt")
PHENOTYPE = _r("phenotype", pa.string(), "the phenotype tested (an IDP field, a query column)")
N_SAMPLES = _r("n", pa.int64(), "samples the test used")
ALT_FREQ = _f("alt_freq", "alt allele frequency over the samples the test used")
BETA = _f("beta", "effect estimate: per copy of alt (variants), per unit of the exposure (CpGs)")
SE = _f("se", "standard error of beta")
P = _f("p", "p-value (0 where it underflows float64; log10p keeps it)")
LOG10P = _f("log10p", "−log10 p, exact where p underflows")
ERROR = _r("error", pa.string(), "why the test did not run (null: it ran): " + ", ".join(filter(None, ERRORS)))
FDR = _f("fdr", "Benjamini–Hochberg q-value within the scan (GWAS and GxE: with --adjust)", optional=True)


def _pair_variant(which: str, what: str) -> tuple[Column, ...]:
    """One variant of a pair: the variants table's columns with the suffix ``_which`` (a or b); b's chromosome and
    position keep their names, ``chrom`` and ``pos``: the table is partitioned and browsed by the partner's."""
    return tuple(replace(column, name=column.name if which == "b" and column.name in POSITION else
                         f"{column.name}_{which}", meaning=f"{what}: {column.meaning}") for column in VARIANT)


def _wald_tests(name: str, what: str, *, optional: bool = False) -> tuple[Column, ...]:
    """A Wald test's columns, model-based (F) and robust (χ²), each with p and −log10 p."""
    return tuple(_f(column, f"{meaning} of {what}", optional=optional) for column, meaning in (
        (f"f_{name}", "F statistic"), (f"p_{name}", "p"), (f"log10p_{name}", "−log10 p"),
        (f"chisq_{name}_robust", "robust χ² statistic"), (f"p_{name}_robust", "robust p"),
        (f"log10p_{name}_robust", "robust −log10 p")))


INTERACTION_TESTS = _wald_tests("interaction", "all the interactions together (runs with several exposures)",
                               optional=True)

RESULTS_KINDS: dict[str, ResultsKind] = {kind.name: kind for kind in [
    ResultsKind("gwas", "each variant's association with each phenotype (biolake gwas; imported summary "
                "statistics, which lack t and z and may lack n and alt_freq)",
                (PHENOTYPE, *VARIANT, N_SAMPLES, ALT_FREQ, BETA, SE,
                 _f("t", "t statistic (linear model)", optional=True),
                 _f("z", "z statistic (logistic model)", optional=True), P, LOG10P, ERROR,
                 _r("firth", pa.bool_(), "logistic model: the estimate is Firth's penalised one", optional=True),
                 FDR),
                phenotype="phenotype", feature="variant_id", effect="beta", log10p="log10p", p="p"),
    ResultsKind("ewas", "each CpG's association with each exposure (biolake ewas; limma's moderated t)",
                (_r("exposure", pa.string(), "the exposure tested (one scan)"),
                 *_from_table("methylation", "cpg_id", "chrom", "pos"), N_SAMPLES, BETA, SE,
                 _f("t", "ordinary t statistic"), _f("p", "ordinary p"),
                 _f("moderated_t", "limma's moderated t (eBayes)"), _f("moderated_p", "p of the moderated t"),
                 _f("log10p", "−log10 of moderated_p: the headline test"),
                 _f("fdr", "Benjamini–Hochberg q-value of moderated_p within the exposure"), ERROR),
                phenotype="exposure", feature="cpg_id", effect="beta", log10p="log10p", p="moderated_p"),
    ResultsKind("gxe", "each variant's interaction with each exposure, per phenotype (biolake gxe)",
                (PHENOTYPE, _r("exposure", pa.string(), "the exposure of this row's interaction term"),
                 *VARIANT, N_SAMPLES, ALT_FREQ,
                 _f("beta_g", "the genotype's main effect, per copy of alt"), _f("se_g", "standard error of beta_g"),
                 _f("se_g_robust", "robust (sandwich) standard error of beta_g"),
                 _f("beta_gxe", "the genotype × exposure interaction"), _f("se_gxe", "standard error of beta_gxe"),
                 _f("se_gxe_robust", "robust standard error of beta_gxe"), _f("t_gxe", "t of beta_gxe"),
                 _f("p_gxe", "p of t_gxe"), _f("log10p_gxe", "−log10 p_gxe"),
                 _f("z_gxe_robust", "robust z of beta_gxe"), _f("p_gxe_robust", "p of z_gxe_robust"),
                 _f("log10p_gxe_robust", "−log10 p_gxe_robust: the headline test"),
                 *_wald_tests("joint", "g and all its interactions together"),
                 *INTERACTION_TESTS, ERROR, FDR),
                phenotype="phenotype", feature="variant_id", effect="beta_gxe", log10p="log10p_gxe_robust",
                p="p_gxe_robust", extra_group=("exposure",)),
    ResultsKind("epistasis", "each pair of variants' interaction, per phenotype (biolake epistasis)",
                (PHENOTYPE, *_pair_variant("a", "the candidate (--with), or the first of the pair in a set"),
                 *_pair_variant("b", "its partner"), N_SAMPLES,
                 _f("beta_int", "the a × b interaction, per alt allele of each (plink1.9 --epistasis: BETA_INT)"),
                 _f("se_int", "standard error of beta_int"),
                 _f("t_int", "t of beta_int, least squares (plink1.9 prints its square as STAT)", optional=True),
                 _f("z_int", "Wald z of beta_int, logistic regression of a 0/1 phenotype (beta_int: a log odds "
                    "ratio; plink1.9 --epistasis prints exp(beta_int) as OR_INT, z² as STAT)", optional=True),
                 _f("p_int", "p of t_int or z_int"), _f("log10p_int", "−log10 p_int: the headline test"),
                 _f("f_joint", "F statistic of b and a × b together, given a (2 df; REGENIE --interaction-snp: "
                    "ADD-INT_2DF), least squares", optional=True),
                 _f("chisq_joint", "Wald χ² of b and a × b together (2 df), logistic regression", optional=True),
                 _f("p_joint", "p of f_joint or chisq_joint"), _f("log10p_joint", "−log10 p_joint"), ERROR),
                phenotype="phenotype", feature="variant_id_b", effect="beta_int", log10p="log10p_int", p="p_int",
                pair=("variant_id_a", "chrom_a", "pos_a")),
    ResultsKind("meta", "GWAS results of several cohorts combined per phenotype and variant (biolake meta)",
                (PHENOTYPE, *VARIANT, _r("cohorts", pa.int64(), "cohorts with an estimate"),
                 replace(N_SAMPLES, meaning="samples summed over those cohorts"),
                 replace(BETA, meaning="inverse-variance fixed effect, per copy of alt"), SE, P, LOG10P,
                 _f("q", "Cochran's Q (heterogeneity)"), _f("p_q", "p of Q"), _f("i2", "I² (a fraction)"),
                 _f("tau2", "DerSimonian–Laird between-cohort variance"),
                 _f("beta_random", "random-effects estimate"), _f("se_random", "its standard error"),
                 _f("p_random", "its p"), _f("log10p_random", "its −log10 p"),
                 _r("strand_ambiguous", pa.bool_(), "an A/T or C/G pair, whose strand cannot be told")),
                phenotype="phenotype", feature="variant_id", effect="beta", log10p="log10p", p="p"),
    ResultsKind("clump", "LD clumps of a GWAS or meta-analysis per phenotype, as plink1.9 --clump (biolake clump): "
                "plink's .clumped columns in the lake's names",
                (PHENOTYPE, *_from_table("variants", "variant_id", "chrom", "pos"),
                 replace(BETA, meaning="the index variant's effect, per copy of alt, as the clumped results give it"),
                 replace(P, meaning="the index variant's p (plink: P)"), LOG10P,
                 _r("total", pa.int64(), "variants clumped with the index, any p (plink: TOTAL)"),
                 *(_r(name, pa.int64(), f"… of them with {what} (plink: {name.upper()})") for name, what in (
                     ("nsig", "p ≥ 0.05"), ("s05", "0.01 ≤ p < 0.05"), ("s01", "0.001 ≤ p < 0.01"),
                     ("s001", "1e-4 ≤ p < 0.001"), ("s0001", "p < 1e-4"))),
                 _r("sp2", pa.list_(pa.string()), "the clumped variants with p < --p2, in genome order (plink: SP2)")),
                phenotype="phenotype", feature="variant_id", effect="beta", log10p="log10p", p="p"),
    ResultsKind("ld", "pairwise LD of variants of a release, as plink1.9 --r2 (biolake ld): variant_id, chrom, pos "
                "are plink's SNP_A, CHR_A, BP_A (a listed variant, or the first of a pair of the region)",
                (*_from_table("variants", "variant_id", "chrom", "pos"),
                 *(replace(column, name=f"{column.name}_b", meaning=f"the other variant's {column.name} (plink: "
                           f"{plinks}_B)") for column, plinks in zip(_from_table("variants", "variant_id", "chrom",
                                                                                 "pos"), ("SNP", "CHR", "BP"))),
                 replace(N_SAMPLES, meaning="samples called at both variants"),
                 _f("r", "Pearson r of the alt allele counts over the samples called at both (plink1.9 --r with "
                    "--keep-allele-order)"),
                 _f("r2", "its square (plink1.9 --r2: R2; the pairs kept are those with r2 ≥ --r2-min)"),
                 _f("r2_haplotype", "r² of the haplotype frequencies estimated by EM from the unphased calls "
                    "(plink1.9 --r2 dprime: R2; the r² of plink1.9 --clump)"),
                 _f("dprime", "D′ of those haplotype frequencies, signed as D for the alt alleles (plink1.9 --r2 "
                    "dprime-signed: DP)")),
                position=POSITION),
    ResultsKind("ldscore", "LD scores per variant, as LDSC's --l2 (biolake ldscores): the sum of bias-corrected r² "
                "with the variants within the window; M and M_5_50 per chromosome are in the provenance",
                (*_from_table("variants", "chrom", "variant_id", "pos", "cm"),
                 _f("maf", "minor allele frequency over the called samples (LDSC: MAF)"),
                 _f("l2", "LD score: Σ r² − (1 − r²)/(N − 2) over the window, itself included (LDSC: L2)"))),
    ResultsKind("h2", "SNP heritability per phenotype (biolake h2): by LD score regression of a results table's "
                "summary statistics, as LDSC's --h2 (method ldsc), or from the lake's genotypes by Haseman–Elston "
                "regression (he; rhe with a randomized trace, K never formed) or REML (reml)",
                (PHENOTYPE, _r("method", pa.string(), "the estimator: ldsc, he, rhe or reml"),
                 _f("h2", "SNP heritability on the observed scale (LDSC: Total Observed scale h2; GEMMA: pve)"),
                 _f("h2_se", "its standard error (LDSC: block jackknife; HE, REML: as GEMMA states it; RHE: HE's "
                    "with the trace probes' Monte-Carlo variance added)"),
                 _f("intercept", "LD score regression intercept (ldsc only)", optional=True),
                 _f("intercept_se", "its standard error (ldsc only)", optional=True),
                 _f("ratio", "(intercept − 1)/(mean χ² − 1): the share of inflation that is not polygenic "
                    "(ldsc only)", optional=True),
                 _f("ratio_se", "its standard error (ldsc only)", optional=True),
                 _f("mean_chisq", "mean χ² of the variants regressed (ldsc only)", optional=True),
                 _f("lambda_gc", "λGC of those variants (ldsc only)", optional=True),
                 _r("n_variants", pa.int64(), "variants used"),
                 replace(N_SAMPLES, meaning="samples used (ldsc: the mean N of the variants regressed)",
                         type=pa.float64())),
                position=()),
    ResultsKind("rg", "genetic correlation per pair of phenotypes by cross-trait LD score regression, as LDSC's "
                "--rg (biolake rg): trait 1 and trait 2 name a results table and a phenotype of it",
                (_r("result_1", pa.string(), "the results table of trait 1"),
                 _r("phenotype_1", pa.string(), "trait 1"),
                 _r("result_2", pa.string(), "the results table of trait 2"),
                 _r("phenotype_2", pa.string(), "trait 2"),
                 _f("rg", "genetic correlation (LDSC: rg)"), _f("rg_se", "its block-jackknife standard error (se)"),
                 _f("z", "rg / rg_se (z)"), _f("p", "two-sided p of z (p)"),
                 _f("gencov", "genetic covariance on the observed scale (gencov)"),
                 _f("gencov_se", "its standard error"),
                 _f("gencov_int", "cross-trait intercept: sample overlap and confounding (gcov_int)"),
                 _f("gencov_int_se", "its standard error (gcov_int_se)"),
                 *(_f(f"{name}_{trait}", f"{meaning} of trait {trait} (LDSC: {ldsc})")
                   for trait in (1, 2) for name, meaning, ldsc in (
                       ("h2", "observed-scale h²", "h2_obs"), ("h2_se", "the standard error of h²", "h2_obs_se"),
                       ("intercept", "the single-trait intercept", "h2_int"),
                       ("intercept_se", "the standard error of that intercept", "h2_int_se"))),
                 _r("n_variants", pa.int64(), "variants both traits and the LD scores share")),
                position=()),
    ResultsKind("prs", "polygenic scores per participant (biolake prs), one column per p-value threshold",
                (replace(PARTICIPANT, nullable=True),
                 _f("prs_p*", "score summing the weights with p at most a threshold, e.g. prs_p5e_08"),
                 _f("prs_avg_p*", "that score averaged as plink2 --score's default: over twice the number of "
                    "variants it weighs, e.g. prs_avg_p5e_08 (biolake prs --score-mean)", optional=True)),
                position=()),
    ResultsKind("harmonized", "IDPs harmonised across sites by ComBat (biolake harmonize): participant_id, then "
                "one column per IDP, named as in idps",
                (replace(PARTICIPANT, nullable=True),), position=(), wide=True),
    ResultsKind("components", "imaging components per participant (biolake components): participant_id, then one "
                "score column per component (pc1, pc2 … or ic1 …), for any analysis to query as phenotypes",
                (replace(PARTICIPANT, nullable=True),), position=(), wide=True),
    ResultsKind("component_loadings", "the IDPs' loadings on the components of a components run (its NAME_loadings): "
                "idp, then one column per component, as the run names them",
                (_r("idp", pa.string(), "the IDP: a column of the run's phenotypes"),), position=(), wide=True),
    ResultsKind("cca", "pairs of components of two blocks, X and Y, by canonical correlation or PLS (biolake cca), "
                "each judged out of sample",
                (_r("component", pa.int64(), "the pair: 1 first"),
                 _f("r", "the correlation of its X and Y scores on the participants it was fitted to (in sample)"),
                 _f("r_cv", "that correlation on each fold left out of the fit, averaged over the folds"),
                 _f("r_cv_sd", "its SD over the folds"),
                 _f("r_test", "that correlation on the participants --test-sql set apart (null without)"),
                 _f("p_permutation", "the share of refits with Y's rows permuted whose pair of this rank correlates "
                    "as much, the observed fit counted (null without --permutations)"),
                 _r("x_variables", pa.int64(), "X variables in the pair (of weight not 0: sparse CCA leaves some out)"),
                 _r("y_variables", pa.int64(), "Y variables in the pair"),
                 _r("n_train", pa.int64(), "participants the model was fitted to"),
                 _r("n_test", pa.int64(), "participants set apart for testing")),
                position=()),
    ResultsKind("cca_weights", "the weights of each variable of either block on each pair of a cca run (its "
                "NAME_weights): block, variable, then c1, c2 …",
                (_r("block", pa.string(), "x or y"), _r("variable", pa.string(), "a column of --x-sql or --y-sql")),
                position=(), wide=True),
    ResultsKind("kinship", "KING-robust kinship of every pair of participants at or above a threshold, as plink2 "
                "--make-king-table (biolake kinship): plink2's .kin0 columns in the lake's names, the later "
                "participant of the sample order first",
                (replace(PARTICIPANT, name="participant_id_1", meaning="one participant of the pair (plink2: IID1)",
                         nullable=True),
                 replace(PARTICIPANT, name="participant_id_2", meaning="the other, earlier in the sample order "
                         "(plink2: IID2)", nullable=True),
                 _r("n_variants", pa.int64(), "autosomal variants called in both (plink2: NSNP)"),
                 _r("hethet", pa.int64(), "… of them where both are heterozygous (plink2 counts: HETHET)"),
                 _r("ibs0", pa.int64(), "… of them where they are opposite homozygotes (plink2 counts: IBS0)"),
                 _f("kinship", "KING-robust between-family kinship coefficient (plink2: KINSHIP)")),
                position=()),
    ResultsKind("cnv_burden", "CNV burden per participant called (biolake cnv burden), as PLINK 1.07's .cnv.indiv "
                "counts it: segments and kb, in all and by type",
                (replace(PARTICIPANT, nullable=True),
                 _r("n_segments", pa.int64(), "segments passing the filter (PLINK: NSEG)"),
                 _f("kb_total", "their summed length in kb, (end − start) / 1000 each (PLINK: KB)"),
                 _f("kb_mean", "kb_total / n_segments, 0 without a segment (PLINK: KBAVG)"),
                 _r("n_del", pa.int64(), "deletions (copy number 0 or 1)"), _f("kb_del", "their kb"),
                 _r("n_dup", pa.int64(), "duplications (copy number 3 or more)"), _f("kb_dup", "their kb"),
                 _r("genes", pa.int64(), "genes of --genes its segments overlap, summed over segments (PLINK "
                    "--cnv-count: COUNT)", optional=True)),
                position=()),
    ResultsKind("cnv_carriers", "carriers of CNV loci (biolake cnv carriers): a row per participant and segment "
                "covering a locus by at least the reciprocal overlap asked",
                (replace(PARTICIPANT, nullable=True), _r("locus", pa.string(), "the locus, as the locus list names it"),
                 _r("chrom", pa.string(), "chromosome"), _r("start", pa.int64(), "the segment's first base pair"),
                 _r("end", pa.int64(), "the segment's last base pair"), _r("type", pa.string(), "DEL or DUP"),
                 _f("overlap", "the smaller of the shares of the locus and of the segment that they share")),
                position=()),
    ResultsKind("cnv_assoc", "phenotypes against CNV carrier status per locus, and per window of a CNV scan (biolake "
                "cnv assoc): a row per phenotype, stretch and model",
                (PHENOTYPE, _r("test", pa.string(), "the stretch and the model, e.g. '22q11.2_A-D del', '1:1-200000 dose'"),
                 _r("locus", pa.string(), "the locus, or the window (CHR:START-END), tested"),
                 _r("model", pa.string(), "del (deletion carriers against non-carriers), dup (duplication carriers "
                    "against non-carriers) or dose (−1 deletion, 0, +1 duplication)"),
                 _r("chrom", pa.string(), "its chromosome"), _r("pos", pa.int64(), "its first base pair"),
                 _r("end", pa.int64(), "its last base pair"),
                 N_SAMPLES, _r("n_carriers", pa.int64(), "carriers among them"),
                 _f("beta", "effect of carrying (del, dup) or of a copy (dose), in the phenotype's unit"),
                 SE, _f("t", "t statistic"), P, LOG10P,
                 _f("cohens_d", "carriers against non-carriers in (covariate-adjusted) SD units: t · √(1/n₁ + 1/n₀)"),
                 _f("cohens_d_lower", "its 95 % interval's lower end"), _f("cohens_d_upper", "its upper end"), ERROR),
                phenotype="phenotype", feature="test", effect="beta", log10p="log10p", p="p"),
    ResultsKind("cnv_burden_assoc", "phenotypes against CNV burden measures (biolake cnv assoc: its NAME_burden): a "
                "row per phenotype and measure",
                (PHENOTYPE, _r("measure", pa.string(), "the burden measure (biolake cnv burden's columns)"), N_SAMPLES,
                 _f("beta", "effect per segment or per kb"), SE, _f("t", "t statistic"), P, LOG10P, ERROR),
                position=()),
    ResultsKind("unrelated", "a maximal set of participants no two of whom are related above a kinship cutoff, "
                "as plink2 --king-cutoff keeps them (biolake kinship --unrelated)",
                (replace(PARTICIPANT, nullable=True),),
                position=()),
]}


def participant_columns(names: Iterable[str]) -> list[str]:
    """The columns among ``names`` that name participants: ``participant_id``, and a pair's ``participant_id_1`` and
    ``participant_id_2`` (kinship); what withdrawal deletes by and audit searches.

    Examples
    --------
    >>> participant_columns(RESULTS_KINDS["kinship"].arrow_schema().names)
    ['participant_id_1', 'participant_id_2']
    """
    return [name for name in names if name == PARTICIPANT.name or name.startswith(f"{PARTICIPANT.name}_")]


def results_kind(kind: str | None, *, table: str, scans: bool = False) -> ResultsKind:
    """The declaration of ``kind`` (what the provenance of the results ``table`` records); with
    ``scans``, only a kind whose tables hold scans (what reports and the browser show).

    Examples
    --------
    >>> results_kind("gxe", table="x").groups
    ['phenotype', 'exposure']
    """
    known = [name for name, declared in RESULTS_KINDS.items() if declared.scans or not scans]
    if kind not in known:
        raise LakeError(f"results {table!r} are of kind {kind!r}; {'kinds with scans' if scans else 'declared kinds'}: "
                        f"{', '.join(known)}")
    return RESULTS_KINDS[kind]
