"""A corpus of bad inputs to every command: each gets a clear one-line error (or a documented
NA with its error code), never a traceback, and leaves the lake's files exactly as they were.

The ingest formats have their own corpus in test_ingest.py / test_formats.py (the file,
line and column named, the lake's versions unchanged); this one drives the CLI end to end.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from snapshot import lake_files

from biolake.cli import main
from biolake.lake.lake import Lake

UNICODE_ID = "Ünïcødé-参加者-001"


@dataclass(frozen=True)
class Case:
    """One bad invocation: the arguments ({lake}, {tmp}, {scheduler}, {release} filled in) and what the error says."""

    name: str
    args: list[str]
    error: str                         # a regular expression the output must match
    setup: str | None = None           # the name of a file writer below, run first
    ok: bool = False                   # a documented outcome with exit status 0 (an NA with its error code)
    extra: dict = field(default_factory=dict)


GWAS = ["gwas", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet", "--name", "bad"]
INGEST = ["ingest", "--lake", "{lake}", "--release", "r2", "--quiet"]
COVAR = ["--covar", "age,sex"]
LD = ["ld", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet"]
LDSCORES = ["ldscores", "--lake", "{lake}", "--quiet", "--name", "bad"]
H2 = ["h2", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet", "--name", "bad"]
H2_LDSC = ["h2", "--lake", "{lake}", "--name", "bad"]
H2_OWN_LAKE = ["h2", "--lake", "{tmp}/ldsc/lake", "--ldscores", "ld", "--name", "bad"]
KINSHIP = ["kinship", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet", "--name", "bad"]
CASES = [
    # SQL
    Case("sql_syntax", ["sql", "SELEC 1", "--lake", "{lake}"], r"error: Parser Error: syntax error"),
    Case("sql_unknown_table", ["sql", "SELECT * FROM nope", "--lake", "{lake}"], r"error: .*Table with name nope"),
    Case("sql_write", ["sql", "DROP TABLE idps", "--lake", "{lake}"], r"refused: DROP statement; lake SQL is read-only"),
    Case("sql_two_statements", ["sql", "SELECT 1; DELETE FROM idps", "--lake", "{lake}"], r"one statement at a time"),
    Case("sql_runaway_before_another", ["sql", "SELECT count(*) FROM range(1000000000000) a; SELECT 1", "--lake",
                                        "{lake}", "--timeout", "1"], r"one statement at a time; this has 2"),
    Case("sql_deeply_nested", ["sql", "SELECT " + "(" * 5000 + "1" + ")" * 5000, "--lake", "{lake}"],
         r"Max expression depth limit of 1000 exceeded"),
    Case("sql_too_long", ["sql", "SELECT 1" + " + 1" * 300_000, "--lake", "{lake}"],
         r"query is 1,200,008 characters long; the limit is 1,000,000"),
    Case("sql_runaway", ["sql", "SELECT count(*) FROM range(1000000000000) a", "--lake", "{lake}", "--timeout",
                         "1"], r"query stopped after 1 s, its time limit \(--timeout\)"),
    Case("sql_memory_hog", ["sql", "SELECT list(range) FROM range(200000000)", "--lake", "{lake}",
                            "--memory-limit", "50MB"], r"query needs more memory than its limit"),
    Case("sql_bad_memory_limit", ["sql", "SELECT 1", "--lake", "{lake}", "--memory-limit", "lots"],
         r"memory limit 'lots'"),
    Case("sql_read_etc_passwd", ["sql", "SELECT * FROM read_csv('/etc/passwd')", "--lake", "{lake}"],
         r"error: .*(Permission Error|disabled)"),
    Case("sql_network", ["sql", "SELECT * FROM read_parquet('https://example.org/x.parquet')", "--lake", "{lake}"],
         r"error: .*(Permission Error|disabled|not allowed)"),
    Case("sql_out_into_lake", ["sql", "SELECT 1", "--lake", "{lake}", "--format", "csv", "--out", "{lake}/x.csv"],
         r"Invalid value for '?--out'?: .* is inside the lake"),
    Case("sql_unknown_release", ["sql", "SELECT 1", "--lake", "{lake}", "--release", "r9"],
         r"unknown release 'r9'; committed releases: r1"),
    # phenotype and covariate queries
    Case("pheno_sql_unknown_column", [*GWAS, "--pheno-sql", "SELECT participant_id, nope FROM idps", *COVAR],
         r"error: .*nope"),
    Case("pheno_sql_no_participant_id", [*GWAS, "--pheno-sql", 'SELECT "25001-2.0" FROM idps', *COVAR],
         r"participant_id"),
    Case("pheno_text", [*GWAS, "--pheno-sql", "SELECT participant_id, 'tall' AS height FROM idps", *COVAR],
         r"height"),
    Case("pheno_all_missing", [*GWAS, "--pheno-sql", "SELECT participant_id, NULL::DOUBLE AS empty FROM idps",
                               *COVAR], r"no phenotype to test: 'empty' has no values"),
    Case("pheno_zero_variance", [*GWAS, "--pheno-sql", "SELECT participant_id, 1.5 AS flat FROM idps", *COVAR],
         r"no phenotype to test: 'flat' has one value \(1.5\)"),
    Case("pheno_one_of_two_constant", [*GWAS, "--pheno-sql",
                                       'SELECT participant_id, 1.5 AS flat, "25001-2.0" FROM idps', *COVAR],
         r"warning: phenotype 'flat' dropped: one value \(1.5\)", ok=True),
    Case("pheno_infinite", [*GWAS, "--pheno-sql",
                            "SELECT participant_id, CASE WHEN participant_id LIKE '%1' THEN 'inf'::DOUBLE "
                            "ELSE 1.0 END AS x FROM idps", *COVAR], r"phenotype column 'x' has \d+ infinite values"),
    Case("covariates_n_le_k", [*GWAS, "--pheno", "25001-2.0", "--covar", "age,sex,site,PC1,PC2",
                               "--samples-sql", "SELECT participant_id FROM covariates LIMIT 4"],
         r"4 participants for \d covariate columns .*: a test needs more participants than covariates \+ 1"),
    Case("covariates_rank_deficient", [*GWAS, "--pheno", "25001-2.0", "--covar-sql",
                                       "SELECT participant_id, age, 2 * age AS twice_age FROM covariates"],
         r"warning: covariate 'twice_age' dropped: collinear", ok=True),
    Case("covariate_unknown", [*GWAS, "--pheno", "25001-2.0", "--covar", "age,shoe_size"], r"shoe_size"),
    Case("results_name_traversal", [*GWAS[:-1], "../../etc", "--pheno", "25001-2.0", *COVAR], r"results name"),
    Case("gwas_out_format", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--out", "{tmp}/x.xlsx"],
         r"Invalid value for '?--out'?: use one of .tsv"),
    Case("gwas_out_into_lake", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--out", "{lake}/results/x.tsv"],
         r"is inside the lake"),
    Case("gwas_maf_absurd", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--maf", "0.7"], r"minor allele frequency"),
    Case("gwas_no_such_chromosome", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--chrom", "MT"], r"chromosomes MT"),
    Case("gwas_lmm_with_logistic", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "exact", "--model", "logistic"],
         r"error: --lmm fits a linear mixed model \(GEMMA's -lmm is linear.*does not combine with --model logistic"),
    Case("gwas_lmm_float32", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "exact", "--precision", "float32"],
         r"error: --lmm runs in float64 .* does not combine with --precision float32"),
    Case("gwas_lmm_too_few_samples", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "null-ratio", "--samples-sql",
                                      "SELECT participant_id FROM covariates ORDER BY participant_id LIMIT 12"],
         r"error: phenotype '25001-2.0': \d+ samples for 3 covariate columns; a variance component needs at least "
         r"10 more samples than covariates"),
    Case("gwas_lmm_relationship_without_variance",
         ["gwas", "--lake", "{tmp}/one_variant/lake", "--scheduler", "{scheduler}", "--quiet", "--name", "bad",
          "--pheno", "trait", "--covar", "carried", "--lmm", "exact"],
         r"error: phenotype 'trait': the relationship matrix over its 40 samples has no variance left after the "
         r"covariates", setup="one_variant_lake"),
    Case("gwas_keep_unknown_id", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--keep", "{tmp}/keep_unknown.txt"],
         r"error: --keep .*keep_unknown.txt, line 2: participant 'nobody_here' is not in release 'r1'\n$",
         setup="sample_lists"),
    Case("gwas_keep_ragged", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--keep", "{tmp}/keep_ragged.txt"],
         r"keep_ragged.txt, line 3: expected FID IID per line as above, found 1 whitespace-separated column",
         setup="sample_lists"),
    Case("kinship_remove_missing_file", [*KINSHIP, "--remove", "{tmp}/nowhere.txt"], r"nowhere.txt: file not found"),
    Case("ewas_transform", ["ewas", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet", "--name", "bad",
                            "--exposure-sql", "SELECT participant_id, stress FROM covariates", *COVAR, "--transform",
                            "rint"], r"error: --transform rank-normalises phenotypes tested against genotypes"),
    Case("gwas_chrom_unknown", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--chrom", "chr1", "--chrom", "chr30"],
         r"error: --chrom 'chr30': unknown chromosome \(expected 1-22, X, Y, XY or MT"),
    Case("gwas_chrom_range_backwards", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--chrom", "4-1"],
         r"error: --chrom '4-1': a range runs from the lower chromosome to the higher"),
    Case("gwas_cv_folds_without_loco", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "exact", "--cv-folds", "3"],
         r"error: --cv-folds sets --lmm loco's ridge regressions; it does not apply to --lmm exact"),
    Case("gwas_lmm_block_size_without_lmm", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm-block-size", "500"],
         r"error: --lmm-block-size sets --lmm loco's ridge regressions; it does not apply to plain regression "
         r"\(add --lmm loco\)"),
    Case("gwas_loco_cv_folds_below_two", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "--cv-folds", "1"],
         r"error: --cv-folds must be at least 2 \(each fold's predictions come from the others\), got 1"),
    Case("gwas_loco_block_size_too_large", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "--lmm-block-size",
                                             "100000"],
         r"error: --lmm-block-size must be 1 to 10,000 variants \(each level-0 fold decomposes a block × block "
         r"matrix\), got 100000"),
    Case("gwas_loco_more_folds_than_samples", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "--cv-folds",
                                                "1000000000"],
         r"error: phenotype '25001-2.0': \d+ samples leave 0 in a cross-validation fold; --cv-folds 1000000000 "
         r"needs at least 2 per fold"),
    Case("gwas_loco_too_few_samples_for_folds", [*GWAS, "--pheno", "25001-2.0", *COVAR, "--lmm", "--cv-folds", "20",
                                                 "--samples-sql", "SELECT participant_id FROM covariates ORDER BY "
                                                 "participant_id LIMIT 30"],
         r"error: phenotype '25001-2.0': \d+ samples leave [01] in a cross-validation fold; --cv-folds 20 needs at "
         r"least 2 per fold"),
    Case("ewas_text_exposure", ["ewas", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet",
                                "--exposure-sql", "SELECT participant_id, site FROM covariates", "--covar", "age"],
         r"site"),
    Case("ewas_exposure_all_missing", ["ewas", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet",
                                       "--exposure-sql", "SELECT participant_id, NULL::DOUBLE AS empty FROM idps",
                                       "--covar", "age"], r"no exposure to test: 'empty' has no values"),
    Case("gxe_exposure_not_a_covariate", ["gxe", "--lake", "{lake}", "--scheduler", "{scheduler}", "--quiet",
                                          "--pheno", "25001-2.0", "--covar", "age,sex", "--exposure", "stress"],
         r"exposure 'stress' is not a column of the covariate query"),
    # results and exchange
    Case("hits_out_into_lake", ["hits", "--lake", "{lake}", "--result", "assoc", "--out", "{lake}/leads.tsv"],
         r"is inside the lake"),
    Case("hits_unknown_result", ["hits", "--lake", "{lake}", "--result", "nope"], r"no results named 'nope'"),
    Case("hits_r2_of_one", ["hits", "--lake", "{lake}", "--result", "assoc", "--r2", "1"],
         r"Invalid value for '--r2'"),
    Case("hits_unknown_ld_release", ["hits", "--lake", "{lake}", "--result", "assoc", "--ld-release", "r9"],
         r"unknown release 'r9'"),
    Case("export_unknown_phenotype", ["export", "--lake", "{lake}", "--result", "assoc", "--format", "gwas-ssf",
                                      "--phenotype", "nope", "--out", "{tmp}/x.tsv.gz"], r"choose one with --phenotype"),
    Case("meta_one_table", ["meta", "--lake", "{lake}", "--result", "assoc"], r"two or more different results"),
    Case("ld_region_without_variants", [*LD, "--region", "22:1-2"],
         r"error: --region 22:1-2: release r1 has no variant there"),
    Case("ld_unknown_variant_ids", [*LD, "--variants", "rs_nowhere,rs_elsewhere"],
         r"error: --variants: release r1 has no variant 'rs_nowhere', 'rs_elsewhere'"),
    Case("ld_window_zero", [*LD, "--region", "1:1-1000000", "--window-kb", "0"],
         r"error: --window-kb must be positive"),
    Case("prs_threshold_absurd", ["prs", "--lake", "{lake}", "--weights", "{tmp}/weights.tsv", "--p-thresholds",
                                  "5", "--scheduler", "{scheduler}", "--quiet"], r"thresholds must lie in \(0, 1\]",
         setup="weights"),
    Case("prs_clump_r2_above_one", ["prs", "--lake", "{lake}", "--weights", "{tmp}/weights.tsv", "--clump",
                                    "--clump-r2", "1.5", "--quiet"], r"Invalid value for '--clump-r2'",
         setup="weights"),
    Case("prs_clump_window_zero", ["prs", "--lake", "{lake}", "--weights", "{tmp}/weights.tsv", "--clump",
                                   "--clump-kb", "0", "--quiet"], r"Invalid value for '--clump-kb'", setup="weights"),
    Case("import_sumstats_no_beta", ["import-sumstats", "--lake", "{lake}", "--name", "ext", "{tmp}/nobeta.tsv"],
         r"nobeta.tsv: no effect \(beta\) column", setup="sumstats_without_beta"),
    Case("import_sumstats_bad_chromosome", ["import-sumstats", "--lake", "{lake}", "--name", "ext",
                                            "{tmp}/badchrom.tsv"], r"badchrom.tsv.*line 2.*unknown chromosome",
         setup="sumstats_bad_chromosome"),
    # ingest, sync, withdraw
    Case("ingest_missing_bfile", ["ingest", "--bfile", "{tmp}/nowhere", "--lake", "{lake}", "--release", "r2"],
         r"nowhere"),
    Case("ingest_unicode_ids", ["ingest", "--covariates", "{tmp}/unicode.csv", "--lake", "{lake}", "--release",
                                "u1", "--quiet"], r"committed release 'u1'", setup="unicode_covariates", ok=True),
    Case("ingest_release_traversal", ["ingest", "--covariates", "{tmp}/unicode.csv", "--lake", "{lake}",
                                      "--release", "../../etc"], r"release name", setup="unicode_covariates"),
    Case("sync_manifest_traversal", ["sync", "{tmp}/incoming", "--lake", "{lake}", "--quiet"], r"release.yaml",
         setup="incoming_with_traversal"),
    Case("ingest_ragged_row", [*INGEST, "--covariates", "{tmp}/ragged.csv"],
         r"ragged.csv, line 3: expected 5 fields separated by ',', found 2", setup="ragged_covariates"),
    Case("ingest_semicolon_row", [*INGEST, "--covariates", "{tmp}/semicolon.csv"],
         r"semicolon.csv, line 3: expected 3 fields separated by ',', found 1; this row is separated by ';'",
         setup="semicolon_covariates"),
    Case("ingest_idps_match_no_genotyped_participant", [*INGEST, "--bfile", "{release}/genotypes", "--idps",
                                                        "{tmp}/foreign.csv"],
         r"foreign.csv: 0 of its 2 participants \(0.0%\) are genotyped .* --allow-partial-overlap",
         setup="foreign_idps"),
    Case("ingest_partial_overlap_allowed", [*INGEST, "--bfile", "{release}/genotypes", "--idps", "{tmp}/foreign.csv",
                                            "--allow-partial-overlap"],
         r"warning: .*foreign.csv: only 0 of its 2 participants", setup="foreign_idps", ok=True),
    Case("ingest_min_overlap_not_a_share", [*INGEST, "--bfile", "{release}/genotypes", "--idps", "{tmp}/foreign.csv",
                                            "--min-overlap", "2"],
         r"Invalid value for '--min-overlap'", setup="foreign_idps"),
    Case("ingest_empty_idp_column", [*INGEST, "--idps", "{tmp}/empty_column.csv"],
         r"warning: .*empty_column.csv, column '25003-2.0': no values in any of its 2 rows", setup="empty_idp_column",
         ok=True),
    Case("ingest_check_ragged_row", [*INGEST, "--covariates", "{tmp}/ragged.csv", "--check"],
         r"ragged.csv, line 3: expected 5 fields", setup="ragged_covariates"),
    Case("sync_ragged_row", ["sync", "{tmp}/incoming", "--lake", "{lake}", "--quiet"],
         r"ragged.csv, line 3: expected 5 fields", setup="incoming_with_ragged_row"),
    Case("withdraw_empty_ids", ["withdraw", "--lake", "{lake}", "--ids", "{tmp}/empty.txt"], r"empty.txt",
         setup="empty_ids"),
    Case("synth_negative_size", ["synth", "{tmp}/synth", "--samples", "-5"], r"samples must be an integer >= "),
    Case("synth_absurd_size", ["synth", "{tmp}/synth", "--samples", "10000000000", "--variants", "10000000000"],
         r"needs about 25,000,000,000.0 GB; .* GB free"),
    Case("synth_related_out_of_range", ["synth", "{tmp}/synth", "--related", "1.5"], r"related must be between 0 and 0.9"),
    Case("pheno_nan_is_missing", [*GWAS, "--pheno-sql",
                                  """SELECT participant_id, CASE WHEN participant_id LIKE '%1' THEN 'nan'::DOUBLE
                                     ELSE "25001-2.0" END AS x FROM idps""", *COVAR],
         r"no phenotype values: \d+", ok=True),
    Case("lake_not_a_lake", ["releases", "--lake", "{tmp}"], r"(not a lake|catalog)"),
    Case("ldscores_window_kb_zero", [*LDSCORES, "--window-kb", "0"], r"error: --window-kb must be positive, got 0.0"),
    Case("ldscores_window_cm_negative", [*LDSCORES, "--window-cm", "-1"], r"error: --window-cm must be positive"),
    Case("ldscores_maf_above_half", [*LDSCORES, "--maf", "0.6"],
         r"error: --maf must be at least 0 and below 0.5, got 0.6: variants with a minor allele frequency at or below"),
    Case("ldscores_maf_negative", [*LDSCORES, "--maf", "-0.01"], r"error: --maf must be at least 0 and below 0.5, got -0.01"),
    Case("ldscores_two_windows", [*LDSCORES, "--window-cm", "1", "--window-kb", "1000"],
         r"error: give one of --window-cm and --window-kb, not both"),
    Case("ldscores_window_cm_without_map", ["ldscores", "--lake", "{tmp}/unmapped/lake", "--quiet", "--window-cm", "1"],
         r"error: --window-cm: 40 of the 40 variants of release 'unmapped' have no cM position", setup="unmapped_lake"),
    Case("h2_too_few_samples", [*H2, "--pheno", "25001-2.0", *COVAR, "--samples-sql",
                                "SELECT participant_id FROM covariates ORDER BY participant_id LIMIT 12"],
         r"error: phenotype '25001-2.0': \d+ samples for 3 covariate columns; a variance component needs at least "
         r"10 more samples than covariates"),
    Case("h2_phenotype_without_variance", [*H2, "--pheno-sql", "SELECT participant_id, 1.5 AS flat FROM idps", *COVAR],
         r"error: no phenotype to test: 'flat' has one value \(1.5\)"),
    Case("h2_no_variance_after_covariates", [*H2, "--pheno-sql",
                                             "SELECT participant_id, 2 * age AS years FROM covariates", *COVAR],
         r"error: phenotype 'years': no variance left after the covariates"),
    Case("h2_unknown_method", [*H2, "--pheno", "25001-2.0", *COVAR, "--method", "ldsc"],
         r"Invalid value for '--method'"),
    Case("h2_negative_seed", [*H2, "--pheno", "25001-2.0", *COVAR, "--trace", "randomized", "--seed", "-1"],
         r"error: --seed must be a whole number ≥ 0 \(it draws the probes\), got -1"),
    Case("h2_zero_probes", [*H2, "--pheno", "25001-2.0", *COVAR, "--trace", "randomized", "--probes", "0"],
         r"error: --probes must be at least 2 \(their spread enters the standard error\), got 0"),
    Case("h2_randomized_trace_with_reml", [*H2, "--pheno", "25001-2.0", *COVAR, "--method", "reml", "--trace",
                                           "randomized"],
         r"error: --trace randomized applies only to --method he \(--method reml needs K itself\)"),
    Case("kinship_min_above_half", [*KINSHIP, "--min", "0.6"],
         r"error: --min must be a kinship coefficient in \[0, 0.5\], got 0.6"),
    Case("kinship_negative_min", [*KINSHIP, "--min", "-0.1"],
         r"error: --min must be a kinship coefficient in \[0, 0.5\], got -0.1"),
    Case("kinship_unrelated_cutoff_above_half", [*KINSHIP, "--unrelated", "0.7"],
         r"error: --unrelated must be a kinship coefficient in \[0, 0.5\], got 0.7"),
    Case("kinship_no_autosome", [*KINSHIP, "--chrom", "X"],
         r"error: release 'r1' has no autosomal genotypes on chromosomes X: KING-robust kinship"),
    Case("h2_probes_with_result", [*H2_LDSC, "--result", "assoc", "--probes", "10"],
         r"--probes applies only from genotypes"),
    Case("h2_unknown_phenotype", [*H2_LDSC, "--result", "assoc", "--phenotype", "nope"],
         r"error: --phenotype 'nope': results 'assoc' have no such phenotype \(they have 2: '25001-2.0', '25002-2.0'\)"),
    Case("h2_ldscores_of_another_kind", [*H2_LDSC, "--result", "assoc", "--ldscores", "assoc"],
         r"error: --ldscores 'assoc': results of kind 'gwas'; LD score regression takes ldscore"),
    Case("h2_sumstats_without_n", [*H2_OWN_LAKE, "--result", "no_n"],
         r"error: results 'no_n', phenotype 'trait': no sample size \(column n is empty\); give --n", setup="ldsc_lake"),
    Case("h2_sumstats_without_alleles", [*H2_OWN_LAKE, "--result", "no_alleles"],
         r"error: results 'no_alleles', phenotype 'trait': no alleles \(columns ref and alt are empty\)",
         setup="ldsc_lake"),
    Case("h2_no_variant_with_an_ld_score", [*H2_OWN_LAKE, "--result", "elsewhere"],
         r"error: no variant of results 'elsewhere' \(after LDSC's munging: 400 rows\) has an LD score in 'ld'",
         setup="ldsc_lake"),
    Case("rg_unknown_phenotype", ["rg", "--lake", "{lake}", "--result", "assoc", "--phenotype", "25001-2.0",
                                  "--result", "assoc", "--phenotype", "nope", "--name", "bad"],
         r"error: --phenotype 'nope': results 'assoc' have no such phenotype"),
    Case("rg_phenotype_before_result", ["rg", "--lake", "{lake}", "--phenotype", "x", "--result", "assoc",
                                        "--name", "bad"], r"--phenotype names a phenotype of the --result before it"),
]


def write_sample_lists(tmp: Path) -> None:
    (tmp / "keep_unknown.txt").write_text("#FID IID\nfam1 nobody_here\n")
    (tmp / "keep_ragged.txt").write_text("fam1 P1\nfam2 P2\nP3\n")


def write_weights(tmp: Path) -> None:
    (tmp / "weights.tsv").write_text("SNP\tA1\tBETA\tP\nrs1000\tT\t0.1\t0.01\n")


def write_sumstats_without_beta(tmp: Path) -> None:
    (tmp / "nobeta.tsv").write_text("CHR\tBP\tSNP\tA1\tA2\tSE\tP\n1\t10\trs1\tA\tG\t0.1\t0.5\n")


def write_sumstats_bad_chromosome(tmp: Path) -> None:
    (tmp / "badchrom.tsv").write_text("CHR\tBP\tSNP\tA1\tA2\tBETA\tSE\tP\nchr99\t10\trs1\tA\tG\t0.1\t0.1\t0.5\n")


def write_unicode_covariates(tmp: Path) -> None:
    (tmp / "unicode.csv").write_text(f"participant_id,age\n{UNICODE_ID},61\nplain-002,58\n", encoding="utf-8")


def write_incoming_with_traversal(tmp: Path) -> None:
    _incoming_release(tmp, covariates="../../../etc/passwd")


def _incoming_release(tmp: Path, *, covariates: str) -> Path:
    """A folder of releases holding one, 2026-12, of covariates only; its folder."""
    folder = tmp / "incoming" / "2026-12"
    folder.mkdir(parents=True)
    (folder / "release.yaml").write_text(f"release: '2026-12'\nsources:\n  covariates: {covariates}\n")
    return folder


def write_ragged_covariates(tmp: Path) -> None:
    """Line 3 is three fields short: read leniently, its last three covariates would be missing."""
    (tmp / "ragged.csv").write_text("participant_id,age,sex,site,height\nP1,61,F,Oslo,170\nP2,58\n")


def write_semicolon_covariates(tmp: Path) -> None:
    (tmp / "semicolon.csv").write_text("participant_id,age,sex\nP1,61,F\nP2;58;M\n")


def write_foreign_idps(tmp: Path) -> None:
    """IDPs whose ids are none of the genotyped participants' (another numbering of the same people)."""
    (tmp / "foreign.csv").write_text("eid,25001-2.0\nX1,7000\nX2,7100\n")


def write_empty_idp_column(tmp: Path) -> None:
    (tmp / "empty_column.csv").write_text("eid,25001-2.0,25003-2.0\nP1,7000,\nP2,7100,NA\n")


def write_incoming_with_ragged_row(tmp: Path) -> None:
    write_ragged_covariates(_incoming_release(tmp, covariates="ragged.csv"))


def write_empty_ids(tmp: Path) -> None:
    (tmp / "empty.txt").write_text("")


def write_unmapped_lake(tmp: Path) -> None:
    """A lake of its own whose release has no genetic map: 0 (PLINK's 'unknown') in the .bim's cM column."""
    from biolake.ingest.release import ReleaseSources, ingest_release
    from biolake.synth import write_ld_panel

    (tmp / "unmapped").mkdir()
    panel = write_ld_panel(tmp / "unmapped" / "panel", samples=30, variants=40)
    bim = Path(f"{panel.prefix}.bim")
    bim.write_text("".join("\t".join([c, v, "0", *rest]) + "\n"
                           for c, v, _, *rest in (line.split("\t") for line in bim.read_text().splitlines())))
    ingest_release(Lake.init(tmp / "unmapped" / "lake"), ReleaseSources(bfile=panel.prefix), release="unmapped",
                   source="test")


def write_one_variant_lake(tmp: Path) -> None:
    """A lake of its own whose genotypes hold one variant (K of rank one) and a covariate 'carried', that variant's
    alt count: nothing of K is left once the covariates are projected out."""
    from biolake.ingest.release import ReleaseSources, ingest_release
    from biolake.synth import write_ld_panel

    (tmp / "one_variant").mkdir()
    panel = write_ld_panel(tmp / "one_variant" / "panel", samples=40, variants=1, chromosomes=1, causal=1,
                           missing_calls=0.0)
    ids = Path(f"{panel.prefix}.fam").read_text().split()[1::6]
    trait = np.random.default_rng(3).normal(size=len(ids))
    (tmp / "one_variant" / "idps.csv").write_text("participant_id,trait\n" + "".join(
        f"{pid},{value!r}\n" for pid, value in zip(ids, trait.tolist())))
    (tmp / "one_variant" / "covariates.csv").write_text("participant_id,carried\n" + "".join(
        f"{pid},{dosage!r}\n" for pid, dosage in zip(ids, panel.dosages[0].tolist())))
    ingest_release(Lake.init(tmp / "one_variant" / "lake"),
                   ReleaseSources(bfile=panel.prefix, idps=tmp / "one_variant" / "idps.csv",
                                  covariates=tmp / "one_variant" / "covariates.csv"), release="one", source="test")


def write_ldsc_lake(tmp: Path) -> None:
    """A lake of its own with LD scores 'ld' and imported summary statistics of one phenotype 'trait' (400 variants):
    'no_n' without sample sizes, 'no_alleles' with alleles NA, 'elsewhere' of variants the lake lacks."""
    from biolake.ingest.release import ReleaseSources, ingest_release
    from biolake.ingest.sumstats import import_sumstats
    from biolake.ldscores import LdScoreSettings, run_ldscores
    from biolake.synth import write_ld_panel

    (tmp / "ldsc").mkdir()
    panel = write_ld_panel(tmp / "ldsc" / "panel", samples=60, variants=400)
    lake = Lake.init(tmp / "ldsc" / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="panel", source="test")
    run_ldscores(lake, LdScoreSettings(name="ld"), workers=1)
    rows = pl.DataFrame({"phenotype": "trait", "variant_id": panel.variant_id, "chrom": panel.chrom, "pos": panel.pos,
                         "alt": "T", "ref": "C", "beta": 0.1, "se": 0.05, "p": 0.05, "n": 60})
    for name, table in (("no_n", rows.drop("n")), ("no_alleles", rows.with_columns(alt=pl.lit("NA"), ref=pl.lit("NA"))),
                        ("elsewhere", rows.with_columns(variant_id="rs" + pl.col("variant_id")))):
        table.write_csv(tmp / "ldsc" / f"{name}.tsv", separator="\t")
        import_sumstats(lake, tmp / "ldsc" / f"{name}.tsv", name=name)


@pytest.fixture(scope="module")
def bad_input_lake(tmp_path_factory, release_folder, scheduler) -> Lake:
    """A lake with release r1 and a GWAS results table 'assoc' (each case works on a copy)."""
    from biolake.gwas import GwasSettings, run_gwas
    from biolake.ingest.release import ReleaseSources, ingest_release

    lake = Lake.init(tmp_path_factory.mktemp("bad") / "lake")
    sources, _ = ReleaseSources.from_folder(release_folder)
    ingest_release(lake, sources, release="r1", source=str(release_folder))
    run_gwas(lake, GwasSettings(name="assoc", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex"]),
             scheduler=scheduler)
    return lake


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.name)
def test_bad_input__clear_error_no_traceback_lake_unchanged(case, bad_input_lake, scheduler, tmp_path, reliability,
                                                           release_folder):
    if case.setup:
        globals()[f"write_{case.setup}"](tmp_path)
    root = bad_input_lake.location.root
    if case.ok:   # it writes to the lake: give it a copy of its own
        root = shutil.copytree(root, tmp_path / "lake")
    args = [a.format(lake=root, tmp=tmp_path, scheduler=scheduler, release=release_folder) for a in case.args]
    before = lake_files(root)
    result = CliRunner().invoke(main, args)
    output = result.output
    assert "Traceback" not in output and (result.exception is None or isinstance(result.exception, SystemExit)), \
        f"{case.name}: {result.exc_info}"
    assert pl.Series([output]).str.contains(case.error).item(), f"{case.name}: {output}"
    if case.ok:
        assert result.exit_code == 0, output
        reliability["bad inputs given a documented outcome (warning or NA), CLI"] += 1
        return
    assert result.exit_code != 0, output
    said = [line for line in output.splitlines() if line.strip() and not line.startswith("warning: ")]
    assert len(said) <= 3, f"{case.name}: more than a short error: {output}"
    assert lake_files(root) == before, f"{case.name} changed the lake"
    reliability["bad inputs refused with a clear error, lake unchanged, CLI"] += 1
