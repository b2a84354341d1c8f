"""Tests of the synthetic release generator: file formats, realistic genetics, planted effects."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import yaml
from scipy import stats

from biolake.ingest.sumstats import read_sumstats
from biolake.ingest.freesurfer import freesurfer_tables, read_freesurfer_tables
from biolake.synth import (ASEG_NAMES, FREESURFER_FOLDER, SITES, _pack_bed_rows, write_ld_panel,
                           write_synthetic_release)

SAMPLES, VARIANTS, IDPS, CPGS, METHYLATION_SAMPLES = 2000, 2000, 20, 300, 500


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "release"
    write_synthetic_release(out, samples=SAMPLES, variants=VARIANTS, idps=IDPS, cpgs=CPGS, seed=7,
                            methylation_samples=METHYLATION_SAMPLES)
    return out


@pytest.fixture(scope="module")
def dosage(release: Path) -> np.ndarray:
    return _decode_bed(release / "genotypes.bed", samples=SAMPLES, variants=VARIANTS)


@pytest.fixture(scope="module")
def truth(release: Path) -> dict:
    return json.loads((release / "truth.json").read_text())


@pytest.fixture(scope="module")
def bim(release: Path) -> pl.DataFrame:
    return pl.read_csv(release / "genotypes.bim", separator="\t", has_header=False,
                       new_columns=["chrom", "id", "cm", "pos", "a1", "a2"])


@pytest.fixture(scope="module")
def table(release: Path) -> pl.DataFrame:
    """Covariates joined to IDPs, one row per participant."""
    return pl.read_csv(release / "covariates.csv").join(pl.read_csv(release / "idps.csv"), on="eid")


def _decode_bed(path: Path, *, samples: int, variants: int) -> np.ndarray:
    """Alt-allele dosage, variants × samples, NaN where missing (A1 = alt: 00→2, 10→1, 11→0)."""
    rows = np.fromfile(path, np.uint8)[3:].reshape(variants, -(-samples // 4))
    codes = (rows[:, :, None] >> np.array([0, 2, 4, 6], np.uint8)) & 0b11
    return np.array([2.0, np.nan, 1.0, 0.0])[codes.reshape(variants, -1)[:, :samples]]


def _naive_alt_count(raw: bytes, *, samples: int, variant: int) -> tuple[int, int]:
    """(alt alleles, called genotypes) of one variant, walking the bits one sample at a time."""
    row_bytes, alt, called = -(-samples // 4), 0, 0
    for sample in range(samples):
        code = (raw[3 + variant * row_bytes + sample // 4] >> (2 * (sample % 4))) & 0b11
        if code != 0b01:
            alt, called = alt + {0b00: 2, 0b10: 1, 0b11: 0}[code], called + 1
    return alt, called


def _ols(y: np.ndarray, covariates: np.ndarray, tested: np.ndarray) -> tuple[float, float, float]:
    """(beta, standard error, two-sided p) of ``tested`` in y ~ 1 + covariates + tested."""
    design = np.column_stack([np.ones(len(y)), covariates, tested])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    dof = len(y) - design.shape[1]
    se = np.sqrt(residual @ residual / dof * np.linalg.inv(design.T @ design)[-1, -1])
    return beta[-1], se, 2 * stats.t.sf(abs(beta[-1] / se), dof)


def _covariate_matrix(table: pl.DataFrame) -> np.ndarray:
    """age, male, head motion and site indicators (first site dropped): samples × covariates."""
    sites = sorted(table["site"].unique())
    return np.column_stack([table["age"], table["sex"] == "M", table["head_motion"],
                            *[table["site"] == site for site in sites[1:]]]).astype(float)


def _relationship(dosage: np.ndarray) -> np.ndarray:
    """The genetic relationship matrix of standardised genotypes (missing calls at the mean): samples²."""
    filled = np.where(np.isnan(dosage), np.nanmean(dosage, axis=1, keepdims=True), dosage)
    standard = (filled - filled.mean(axis=1, keepdims=True)) / filled.std(axis=1, keepdims=True)
    return standard.T @ standard / len(standard)


def _adjusted_idps(table: pl.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each IDP with the covariates (age, sex, log head motion, site) projected out and scaled to
    variance 1 over the participants who have it: (values, present) per IDP, samples long."""
    motion = np.log(table["head_motion"].fill_null(strategy="mean").to_numpy())
    sites = sorted(table["site"].unique())
    covariates = np.column_stack([np.ones(table.height), table["age"], table["sex"] == "M", motion,
                                  *[table["site"] == site for site in sites[1:]]]).astype(float)
    adjusted = {}
    for idp in table.columns[table.columns.index("stress") + 1:]:
        values = table[idp].to_numpy().astype(float)
        present = np.isfinite(values)
        basis, _ = np.linalg.qr(covariates[present])
        residual = values[present] - basis @ (basis.T @ values[present])
        adjusted[idp] = (np.zeros(table.height), present)
        adjusted[idp][0][present] = residual / residual.std()
    return adjusted


def _he_covariance(relationship: np.ndarray, one: tuple[np.ndarray, np.ndarray],
                   other: tuple[np.ndarray, np.ndarray]) -> float:
    """Haseman–Elston regression of the products of two traits over pairs of distinct participants
    on their relationship: the genetic covariance (h² when the traits are one)."""
    (x, x_present), (y, y_present) = one, other
    pairs = np.outer(x_present, y_present) & ~np.eye(len(x), dtype=bool)
    return float(np.polyfit(relationship[pairs], np.outer(x, y)[pairs], 1)[0])


def _complete_rows(table: pl.DataFrame, dosage: np.ndarray, idp: str) -> tuple[pl.DataFrame, np.ndarray]:
    """Rows with the IDP and every covariate present, and those samples' columns of ``dosage``."""
    keep = table.select(pl.all_horizontal(pl.col(idp, "age", "head_motion", "stress").is_not_null()))
    keep = keep.to_series().to_numpy()
    return table.filter(keep), dosage[:, keep]


def test_write_synthetic_release__writes_every_file_the_manifest_names(release: Path) -> None:
    manifest = yaml.safe_load((release / "release.yaml").read_text())
    assert manifest["format"] == "biolake-release/1" and manifest["release"] == "synthetic-s7"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", manifest["created"])
    assert manifest["generator"] == {"tool": "biolake synth", "seed": 7, "samples": SAMPLES,
                                     "variants": VARIANTS, "idps": IDPS, "cpgs": CPGS}
    sources = manifest["sources"]
    named = [sources["bfile"] + ext for ext in (".bed", ".bim", ".fam")]
    named += [sources[key] for key in ("idps", "idp_fields", "covariates", "methylation", "probes", "cnv")]
    named += list(manifest["sumstats"].values())
    named += [FREESURFER_FOLDER]   # one site's own tables, not ingested with the release (see the FreeSurfer test)
    named += [Path(sources["cnv"]).with_suffix(".fam").name, "calls.penncnv"]   # the calls' .fam; PennCNV's copy
    assert sorted(p.name for p in release.iterdir()) == sorted([*named, manifest["truth"], "release.yaml"])


def test_write_synthetic_release__bed_has_magic_bytes_and_one_row_per_variant(release: Path) -> None:
    raw = (release / "genotypes.bed").read_bytes()
    assert raw[:3] == bytes([0x6C, 0x1B, 0x01])
    assert len(raw) == 3 + VARIANTS * -(-SAMPLES // 4)


def test_write_synthetic_release__bed_decodes_like_a_naive_bit_walk(release: Path,
                                                                    dosage: np.ndarray) -> None:
    raw = (release / "genotypes.bed").read_bytes()
    for variant in (0, 1, 777, VARIANTS - 1):
        alt, called = _naive_alt_count(raw, samples=SAMPLES, variant=variant)
        assert (np.nansum(dosage[variant]), np.isfinite(dosage[variant]).sum()) == (alt, called)


def test_write_synthetic_release__pads_each_row_with_zero_bits(tmp_path: Path) -> None:
    write_synthetic_release(tmp_path / "out", samples=61, variants=500, idps=10, cpgs=100)
    rows = np.fromfile(tmp_path / "out" / "genotypes.bed", np.uint8)[3:].reshape(500, 16)
    assert (rows[:, -1] >> 2 == 0).all()  # sample 61 is in bits 0-1 of byte 16; the rest is padding


def test_write_synthetic_release__about_one_percent_of_calls_are_missing(dosage: np.ndarray) -> None:
    per_variant = np.isnan(dosage).mean(axis=1)
    assert 0.007 < per_variant.mean() < 0.013
    assert (per_variant == 0).mean() > 0.15 and per_variant.max() < 0.08


def test_write_synthetic_release__no_variant_is_monomorphic(dosage: np.ndarray) -> None:
    alt_frequency = np.nanmean(dosage, axis=1) / 2
    assert ((alt_frequency > 0) & (alt_frequency < 1)).all()


def test_write_synthetic_release__allele_spectrum_has_rare_and_common_variants(dosage: np.ndarray) -> None:
    alt_frequency = np.nanmean(dosage, axis=1) / 2
    maf = np.minimum(alt_frequency, 1 - alt_frequency)
    assert ((maf >= 0.005) & (maf < 0.05)).mean() > 0.15 and (maf >= 0.05).mean() > 0.3


def test_write_synthetic_release__genotypes_follow_hardy_weinberg(dosage: np.ndarray) -> None:
    alt_frequency = np.nanmean(dosage, axis=1) / 2
    common = (alt_frequency > 0.2) & (alt_frequency < 0.8)
    heterozygous = np.nanmean(dosage[common] == 1, axis=1)
    expected = 2 * alt_frequency[common] * (1 - alt_frequency[common])
    assert np.abs(heterozygous - expected).mean() < 0.02


def test_write_synthetic_release__adjacent_variants_are_in_strong_ld(dosage: np.ndarray,
                                                                     bim: pl.DataFrame) -> None:
    filled = np.where(np.isnan(dosage), np.nanmean(dosage, axis=1, keepdims=True), dosage)
    r2 = np.array([np.corrcoef(filled[v], filled[v + 1])[0, 1] ** 2 for v in range(VARIANTS - 1)])
    chrom = bim["chrom"].to_numpy()
    far = np.array([np.corrcoef(filled[v], filled[-1 - v])[0, 1] ** 2 for v in range(200)])
    assert np.median(r2[chrom[:-1] == chrom[1:]]) > 0.5
    assert np.mean(far[chrom[:200] != chrom[-200:][::-1]]) < 0.01


def test_write_synthetic_release__bim_has_unique_ids_and_increasing_positions(bim: pl.DataFrame) -> None:
    assert bim.height == VARIANTS and bim["id"].is_unique().all()
    assert bim["id"].str.contains(r"^rs\d+$").all()
    assert sorted(bim["chrom"].unique()) == list(range(1, 23)) and bim["chrom"].is_sorted()
    assert bim.group_by("chrom").agg(pl.col("pos").diff().min() > 0)["pos"].all()
    assert bim["a1"].is_in(list("ACGT")).all() and bim["a2"].is_in(list("ACGT")).all()
    assert (bim["a1"] != bim["a2"]).all()


def test_write_synthetic_release__bim_has_cm_positions_of_about_1_cm_per_mb(bim: pl.DataFrame) -> None:
    assert (bim["cm"] > 0).all()  # PLINK reads 0 as unknown
    per_chrom = bim.group_by("chrom").agg(increasing=(pl.col("cm").diff().drop_nulls() >= 0).all(),
                                          cm_per_mb=(pl.col("cm").max() - pl.col("cm").min())
                                          / (pl.col("pos").max() - pl.col("pos").min()) * 1e6)
    assert per_chrom["increasing"].all()
    assert 0.6 < per_chrom["cm_per_mb"].median() < 1.4


def test_write_synthetic_release__ld_decays_to_nothing_within_1_mb(dosage: np.ndarray, bim: pl.DataFrame) -> None:
    filled = np.where(np.isnan(dosage), np.nanmean(dosage, axis=1, keepdims=True), dosage)
    r2 = np.corrcoef(filled) ** 2
    chrom, pos = bim["chrom"].to_numpy(), bim["pos"].to_numpy()
    apart = np.where(chrom[:, None] == chrom[None, :], np.abs(pos[:, None] - pos[None, :]), -1)
    upper = np.triu(np.ones_like(r2, bool), 1)
    mean_r2 = {kb: r2[upper & (apart >= lo * 1000) & (apart < kb * 1000)].mean()
               for lo, kb in [(0, 10), (10, 50), (50, 200), (1000, 300_000)]}
    assert mean_r2[10] > 0.4 and mean_r2[10] > mean_r2[50] > mean_r2[200] > mean_r2[300_000]
    assert mean_r2[300_000] < 0.002  # chance r² is 1 / samples


def test_write_synthetic_release__allele_frequencies_spread_as_on_arrays(dosage: np.ndarray) -> None:
    alt_frequency = np.nanmean(dosage, axis=1) / 2
    maf = np.minimum(alt_frequency, 1 - alt_frequency)
    shares = np.histogram(maf, bins=[0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5 + 1e-9])[0] / len(maf)
    assert (shares > 0.04).all() and shares.sum() > 0.9, shares  # every band of MAF, few below 1 %


def test_write_synthetic_release__fam_matches_covariates(release: Path, table: pl.DataFrame) -> None:
    fam = pl.read_csv(release / "genotypes.fam", separator=" ", has_header=False,
                      new_columns=["fid", "iid", "father", "mother", "sex", "pheno"])
    covariates = pl.read_csv(release / "covariates.csv")
    assert fam["fid"].to_list() == fam["iid"].to_list() == covariates["eid"].to_list()
    assert (fam["father"] == 0).all() and (fam["mother"] == 0).all() and (fam["pheno"] == -9).all()
    assert fam["sex"].to_list() == [1 if sex == "M" else 2 for sex in covariates["sex"]]
    assert covariates["eid"].is_unique().all() and covariates["eid"].min() >= 1_000_000


def test_write_synthetic_release__covariates_have_expected_columns_and_ranges(release: Path) -> None:
    covariates = pl.read_csv(release / "covariates.csv")
    assert covariates.columns == ["eid", "age", "sex", "site", *[f"PC{k}" for k in range(1, 11)],
                                  "height", "head_motion", "stress"]
    assert covariates["age"].min() >= 45 and covariates["age"].max() <= 82
    assert set(covariates["sex"]) == {"F", "M"}
    assert set(covariates["site"]) == {"Cheadle", "Newcastle", "Reading", "Bristol"}
    assert covariates["head_motion"].drop_nulls().min() > 0
    for column in ("height", "head_motion", "stress"):
        assert 0.01 < covariates[column].null_count() / covariates.height < 0.1


def test_write_synthetic_release__idps_csv_is_wide_with_missing_cells(release: Path) -> None:
    idps = pl.read_csv(release / "idps.csv")
    assert idps.columns[0] == "eid" and idps.width == IDPS + 1
    assert all(pl.Series(idps.columns[1:]).str.contains(r"^2[5-7]\d{3}-2\.0$"))
    cells = idps.drop("eid")
    no_imaging = cells.select(pl.all_horizontal(pl.all().is_null())).to_series().mean()
    assert 0.02 < no_imaging < 0.09
    assert 0.05 < sum(cells.null_count().row(0)) / (cells.height * cells.width) < 0.1


def test_write_synthetic_release__data_dictionary_covers_every_idp_column(release: Path) -> None:
    fields = pl.read_csv(release / "idp_fields.csv")
    idps = pl.read_csv(release / "idps.csv", n_rows=1)
    assert fields.columns == ["field", "field_id", "instance", "array", "name", "unit", "category"]
    assert fields["field"].to_list() == idps.columns[1:]
    composed = fields.select(pl.format("{}-{}.{}", "field_id", "instance", "array")).to_series()
    assert fields["field"].to_list() == composed.to_list()
    assert fields["name"].is_unique().all() and fields["category"].n_unique() == 3


def test_write_synthetic_release__methylation_betas_lie_strictly_between_0_and_1(release: Path) -> None:
    methylation = pl.read_csv(release / "methylation.csv")
    probes = pl.read_csv(release / "probes.csv")
    eids = set(pl.read_csv(release / "covariates.csv")["eid"].cast(str))
    assert methylation.width == METHYLATION_SAMPLES + 1 and set(methylation.columns[1:]) <= eids
    assert methylation["cpg"].to_list() == probes["cpg"].to_list()
    betas = methylation.drop("cpg").to_numpy()
    assert np.nanmin(betas) > 0 and np.nanmax(betas) < 1 and 0.002 < np.isnan(betas).mean() < 0.01
    assert probes.group_by("chrom").agg(pl.col("pos").diff().min() > 0)["pos"].all()


def test_write_synthetic_release__planted_snp_effects_are_genome_wide_significant(
        table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    ids = bim["id"].to_list()
    assert len(truth["snp_idp"]) == 3 and 0 < len(truth["null_idps"]) <= IDPS // 5
    for effect in truth["snp_idp"]:
        rows, genotypes = _complete_rows(table, dosage, effect["idp"])
        g = genotypes[ids.index(effect["variant_id"])]
        called = np.isfinite(g)
        beta, se, p = _ols(rows[effect["idp"]].to_numpy()[called], _covariate_matrix(rows)[called], g[called])
        assert p < 5e-8 and abs(beta - effect["beta"]) < 4 * se


def test_write_synthetic_release__null_idps_have_no_genome_wide_hit(
        table: pl.DataFrame, dosage: np.ndarray, truth: dict) -> None:
    for idp in truth["null_idps"]:
        rows, genotypes = _complete_rows(table, dosage, idp)
        genotypes = np.where(np.isnan(genotypes), np.nanmean(genotypes, axis=1, keepdims=True), genotypes)
        basis, _ = np.linalg.qr(np.column_stack([np.ones(rows.height), _covariate_matrix(rows)]))
        y = rows[idp].to_numpy()
        y, g = y - basis @ (basis.T @ y), genotypes - (genotypes @ basis) @ basis.T  # g: variants × samples
        r = g @ y / np.linalg.norm(g, axis=1) / np.linalg.norm(y)
        dof = rows.height - basis.shape[1] - 1
        assert stats.t.sf(np.abs(r) * np.sqrt(dof / (1 - r**2)), dof).min() * 2 > 5e-8


def test_write_synthetic_release__plants_h2_from_0_05_to_0_6_and_none_in_null_idps(truth: dict) -> None:
    h2 = truth["idp_h2"]
    assert len(h2) == IDPS and all(h2[idp] == 0 for idp in truth["null_idps"])
    heritable = [value for value in h2.values() if value > 0]
    assert len(heritable) >= IDPS - IDPS // 5 and min(heritable) < 0.15 and max(heritable) > 0.5
    assert all(0.05 <= value <= 0.6 for value in heritable)
    assert truth["polygenic_variants"] > VARIANTS * 0.03


def test_write_synthetic_release__plants_families_relating_about_30_percent_of_participants(
        release: Path, truth: dict) -> None:
    pedigree, covariates = truth["pedigree"], pl.read_csv(release / "covariates.csv")
    pairs = pedigree["related_pairs"]
    related = {pair[key] for pair in pairs for key in ("participant_id_1", "participant_id_2")}
    assert 0.28 <= pedigree["related_share"] == len(related) / SAMPLES <= 0.3, pedigree
    assert pedigree["families"].keys() == {"siblings", "trio", "cousins"} and all(pedigree["families"].values())
    assert {(pair["relation"], pair["kinship"]) for pair in pairs} == {
        ("sibling", 0.25), ("parent-offspring", 0.25), ("avuncular", 0.125), ("first cousins", 0.0625)}
    site = dict(zip(covariates["eid"].cast(str), covariates["site"]))
    assert related <= site.keys() and all(pair["participant_id_1"] < pair["participant_id_2"] for pair in pairs)
    assert all(site[pair["participant_id_1"]] == site[pair["participant_id_2"]] for pair in pairs)  # one site a family


def test_write_synthetic_release__relatives_share_genotypes_as_their_pedigree_kinship(
        release: Path, dosage: np.ndarray, truth: dict) -> None:
    column = {eid: i for i, eid in enumerate(pl.read_csv(release / "covariates.csv")["eid"].cast(str))}  # .fam order
    relationship, found = _relationship(dosage), {}
    for pair in truth["pedigree"]["related_pairs"]:
        one, other = column[pair["participant_id_1"]], column[pair["participant_id_2"]]
        found.setdefault((pair["relation"], pair["kinship"]), []).append(relationship[one, other])
        if pair["relation"] == "parent-offspring":   # a child carries one of the parent's haplotypes whole: never
            assert not (np.abs(dosage[:, one] - dosage[:, other]) == 2).any(), pair   # opposite homozygotes
    means = {relation: round(float(np.mean(values)), 3) for (relation, _), values in found.items()}
    assert all(abs(np.mean(values) - 2 * kinship) < 0.05 for (_, kinship), values in found.items()), means
    unrelated = relationship[np.triu_indices(200, 1)]   # the first 200 participants: few related pairs among them
    assert abs(np.median(unrelated)) < 0.01, np.median(unrelated)


def test_write_synthetic_release__related_0_plants_no_family(tmp_path: Path) -> None:
    summary = write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100, related=0)
    assert json.loads(summary.truth.read_text())["pedigree"] == {
        "related_share": 0.0, "families": {"siblings": 0, "trio": 0, "cousins": 0}, "related_pairs": []}


def test_write_synthetic_release__haseman_elston_recovers_planted_h2(table: pl.DataFrame, dosage: np.ndarray,
                                                                    truth: dict) -> None:
    relationship, traits = _relationship(dosage), _adjusted_idps(table)
    estimated = {idp: _he_covariance(relationship, traits[idp], traits[idp]) for idp in truth["idp_h2"]}
    planted = np.array(list(truth["idp_h2"].values()))
    found = np.array(list(estimated.values()))
    assert np.corrcoef(planted, found)[0, 1] > 0.9 and np.abs(found - planted).mean() < 0.08, (planted, found)
    assert np.abs([estimated[idp] for idp in truth["null_idps"]]).max() < 0.1


def test_write_synthetic_release__genetic_correlations_have_their_planted_signs(
        table: pl.DataFrame, dosage: np.ndarray, truth: dict) -> None:
    pairs = [pair for pair in truth["rg"] if pair["trait2"] != "disorder"]
    assert sum(pair["rg"] > 0.5 for pair in pairs) >= 2 and sum(pair["rg"] < -0.3 for pair in pairs) == 1
    relationship, traits = _relationship(dosage), _adjusted_idps(table)
    for pair in pairs:
        one, other = traits[pair["trait1"]], traits[pair["trait2"]]
        genetic = _he_covariance(relationship, one, other) / np.sqrt(
            max(_he_covariance(relationship, one, one), 0.02) * max(_he_covariance(relationship, other, other), 0.02))
        assert np.sign(genetic) == np.sign(pair["rg"]) and abs(genetic - pair["rg"]) < 0.5, (pair, genetic)


def test_write_synthetic_release__disorder_sumstats_read_as_gwas_ssf_and_share_the_planted_rg(
        release: Path, table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    disorder = truth["disorder"]
    sumstats = read_sumstats(release / disorder["sumstats"],
                             require=("variant_id", "chrom", "pos", "alt", "ref", "beta", "se", "p", "n"))
    assert sumstats["phenotype"].unique().to_list() == [disorder["phenotype"]] == ["disorder"]
    assert sumstats["variant_id"].to_list() == bim["id"].to_list()
    assert (sumstats["n"] == disorder["cases"] + disorder["controls"]).all() and 0 < disorder["h2_observed"] < 1
    flipped = (sumstats["alt"] != bim["a1"]).to_numpy()
    assert 0.4 < flipped.mean() < 0.6 and (sumstats["ref"].to_numpy()[flipped] == bim["a1"].to_numpy()[flipped]).all()
    z = np.where(flipped, -1, 1) * (sumstats["beta"] / sumstats["se"]).to_numpy()   # per alt allele
    np.testing.assert_allclose(sumstats["p"], 2 * stats.norm.sf(np.abs(z)), rtol=1e-6)
    assert 1.5 < np.mean(z**2) < 10   # polygenic: LD-weighted signal on every variant
    filled = np.where(np.isnan(dosage), np.nanmean(dosage, axis=1, keepdims=True), dosage)
    standard = (filled - filled.mean(axis=1, keepdims=True)) / filled.std(axis=1, keepdims=True)
    shared = [pair for pair in truth["rg"] if pair["trait2"] == "disorder"]
    assert {np.sign(pair["rg"]) for pair in shared} == {-1.0, 1.0}
    traits = _adjusted_idps(table)
    for pair in shared:
        values, present = traits[pair["trait1"]]
        idp_z = standard[:, present] @ values[present] / np.sqrt(present.sum())
        assert np.sign(np.corrcoef(idp_z, z)[0, 1]) == np.sign(pair["rg"]), pair


def test_write_synthetic_release__planted_gxe_interaction_is_detected(
        table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    effect = truth["snp_exposure_interaction"]
    rows, genotypes = _complete_rows(table, dosage, effect["idp"])
    g, stress = genotypes[bim["id"].to_list().index(effect["variant_id"])], rows["stress"].to_numpy()
    called = np.isfinite(g)
    covariates = np.column_stack([_covariate_matrix(rows), g, stress])[called]
    beta, se, p = _ols(rows[effect["idp"]].to_numpy()[called], covariates, (g * stress)[called])
    assert effect["exposure"] == "stress" and p < 5e-8 and abs(beta - effect["beta_gxe"]) < 4 * se


def test_write_synthetic_release__planted_snp_snp_interactions_are_detected(
        table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    assert len(truth["snp_snp"]) == 2
    ids = bim["id"].to_list()
    for effect in truth["snp_snp"]:
        rows, genotypes = _complete_rows(table, dosage, effect["idp"])
        a, b = (genotypes[ids.index(effect[which]["variant_id"])] for which in ("variant_a", "variant_b"))
        called = np.isfinite(a) & np.isfinite(b)
        covariates = np.column_stack([_covariate_matrix(rows), a, b])[called]
        beta, se, p = _ols(rows[effect["idp"]].to_numpy()[called], covariates, (a * b)[called])
        assert p < 5e-8 and abs(beta - effect["beta_int"]) < 4 * se, (effect, beta, se, p)
        assert effect["idp"] not in {planted["idp"] for planted in truth["snp_idp"]}


def test_write_synthetic_release__planted_cpg_effects_are_detected(release: Path, truth: dict) -> None:
    methylation = pl.read_csv(release / "methylation.csv")
    covariates = pl.read_csv(release / "covariates.csv")
    stress = dict(zip(covariates["eid"].cast(str), covariates["stress"]))
    exposure = np.array([stress[eid] for eid in methylation.columns[1:]], dtype=float)
    assert len(truth["cpg_exposure"]) == 5
    for effect in truth["cpg_exposure"]:
        betas = methylation.row(methylation["cpg"].to_list().index(effect["cpg"]))[1:]
        m_values = np.log2(np.array(betas, dtype=float) / (1 - np.array(betas, dtype=float)))
        present = np.isfinite(m_values) & np.isfinite(exposure)
        beta, se, p = _ols(m_values[present], np.empty((present.sum(), 0)), exposure[present])
        assert p < 9e-8 and abs(beta - effect["beta"]) < 4 * se


def test_write_synthetic_release__sites_scale_the_idp_noise_as_planted(table: pl.DataFrame, truth: dict) -> None:
    """Per site, the geometric mean over IDPs of the SD left after the covariates (site offsets included) follows
    the planted noise multiplier, pulled towards 1 by the genetic variance it does not scale."""
    planted = truth["scanners"]["site_noise_scale"]
    site, adjusted = table["site"].to_numpy(), _adjusted_idps(table)
    found = {name: np.exp(np.mean([np.log(values[present & (site == name)].std())
                                   for values, present in adjusted.values()])) for name in SITES}
    logs = np.log([[planted[name], found[name]] for name in SITES])
    assert np.corrcoef(logs.T)[0, 1] > 0.95, (planted, found)
    assert all(abs(observed) <= abs(scale) + 0.05 and observed * scale > 0 for scale, observed in logs)


def test_write_synthetic_release__one_sites_freesurfer_tables_hold_its_idps(release: Path, truth: dict) -> None:
    """What the site's pipeline measured, as asegstats2table and aparcstats2table write it: every imaged participant
    of the site, each subcortical volume and cortical thickness of the release under FreeSurfer's name, equal to
    idps.csv wherever idps.csv has the value (QC emptied some cells there), plus eTIV and each hemisphere's mean."""
    written = truth["scanners"]["freesurfer"]
    tables = read_freesurfer_tables(freesurfer_tables(release / written["folder"]))
    idps, covariates = pl.read_csv(release / "idps.csv"), pl.read_csv(release / "covariates.csv")
    at_site = covariates.filter(pl.col("site") == written["site"])["eid"]
    imaged = idps.filter(pl.col("eid").is_in(at_site.implode()) & pl.any_horizontal(pl.exclude("eid").is_not_null()))
    assert tables.subjects == [str(eid) for eid in imaged["eid"]] and written["subjects"] == imaged.height
    assert written["tables"] == ["aseg.volume.txt", "lh.aparc.thickness.txt", "rh.aparc.thickness.txt"]
    dictionary = pl.read_csv(release / "idp_fields.csv")
    compared = 0
    for field, name in zip(dictionary["field"], dictionary["name"]):
        volume = re.fullmatch(r"Volume of grey matter in (left|right) (\w+)", name)
        thickness = re.fullmatch(r"Mean thickness of ([\w ]+) \((left|right) hemisphere\)", name)
        measure = (f"{volume[1].capitalize()}-{ASEG_NAMES[volume[2]]}" if volume else
                   f"{thickness[2][0]}h_{thickness[1].replace(' ', '')}_thickness" if thickness else None)
        if measure is None:
            continue
        ours, theirs = imaged[field].to_numpy().astype(float), tables.values[measure]
        present = np.isfinite(ours)
        np.testing.assert_array_equal(theirs[present], ours[present])
        compared += 1
    assert compared == len(tables.fields) - 4   # all but aseg's eTIV, aparc's (one column: lh and rh agree), the means
    assert tables.fields["lh_MeanThickness_thickness"]["measure"] == "thickness"
    assert np.all((tables.values["EstimatedTotalIntraCranialVol"] > 8e5) & (tables.values["eTIV"] < 2.5e6))


def test_write_synthetic_release__same_seed_writes_identical_files(tmp_path: Path) -> None:
    def files(seed: int, name: str) -> dict[str, bytes]:
        out = tmp_path / name
        write_synthetic_release(out, samples=60, variants=500, idps=10, cpgs=100, seed=seed)
        return {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def manifest_without_timestamp(raw: bytes) -> dict:
        return {k: v for k, v in yaml.safe_load(raw).items() if k != "created"}

    first, again, other = files(3, "a"), files(3, "b"), files(4, "c")
    assert manifest_without_timestamp(first.pop("release.yaml")) == manifest_without_timestamp(
        again.pop("release.yaml"))
    assert first == again
    assert first["genotypes.bed"] != other["genotypes.bed"] and first["idps.csv"] != other["idps.csv"]


@pytest.mark.parametrize("bad", [
    {"samples": 5}, {"samples": -1}, {"variants": 100}, {"idps": 3}, {"cpgs": 0}, {"seed": -1},
    {"samples": 2.5}, {"methylation_samples": 61}, {"methylation_samples": 5}, {"variants": 440, "idps": 900},
    {"related": 0.95}, {"related": -0.1},
])
def test_write_synthetic_release__rejects_bad_arguments(tmp_path: Path, bad: dict) -> None:
    arguments = {"samples": 60, "variants": 500, "idps": 10, "cpgs": 100} | bad
    with pytest.raises(ValueError, match=next(iter(bad))):
        write_synthetic_release(tmp_path / "out", **arguments)
    assert list(tmp_path.iterdir()) == []


def test_write_synthetic_release__refuses_an_out_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100)
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["keep.txt"]


def test_write_synthetic_release__refuses_an_out_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "out").write_text("mine")
    with pytest.raises(ValueError, match="not an empty folder"):
        write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100)
    assert (tmp_path / "out").read_text() == "mine"


def test_write_synthetic_release__fills_an_empty_out_folder(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    summary = write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100)
    assert summary.truth == tmp_path / "out" / "truth.json" and summary.truth.exists()
    assert summary.methylation_samples == 60


def test_write_synthetic_release__leaves_nothing_behind_when_interrupted(tmp_path: Path) -> None:
    def interrupt(step: str, done: int, total: int) -> None:
        if step == "genotypes":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100,
                                progress=interrupt)
    assert list(tmp_path.iterdir()) == []


def test_write_synthetic_release__reports_progress_of_each_step(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    write_synthetic_release(tmp_path / "out", samples=60, variants=500, idps=10, cpgs=100,
                            progress=lambda *call: calls.append(call))
    last = {step: (done, total) for step, done, total in calls}
    assert last == {"covariates": (1, 1), "genotypes": (500, 500), "idps": (60, 60),
                    "methylation": (100, 100)}
    genotype_done = [done for step, done, _ in calls if step == "genotypes"]
    assert len(genotype_done) > 1 and genotype_done == sorted(genotype_done)


def test_pack_bed_rows__packs_four_samples_per_byte_low_bits_first() -> None:
    carriers = np.array([[1, 0], [0, 0]], np.uint8)  # founders × variants: founder 0 has variant 0's alt
    haplotypes = np.array([[0, 0, 1, 1, 0], [0, 1, 1, 0, 1]], np.uint8)  # variant 0 dosage: 2 1 0 1 1
    packed = _pack_bed_rows(carriers, haplotypes)
    assert packed.tolist() == [[0b10_11_10_00, 0b00_00_00_10], [0b11_11_11_11, 0b00_00_00_11]]


def test_write_ld_panel__bim_holds_the_genetic_map(tmp_path: Path) -> None:
    panel = write_ld_panel(tmp_path / "panel", samples=50, variants=300)
    bim = pl.read_csv(tmp_path / "panel.bim", separator="\t", has_header=False,
                      new_columns=["chrom", "id", "cm", "pos", "a1", "a2"])
    np.testing.assert_allclose(bim["cm"].to_numpy(), panel.cm, atol=1e-6)
    assert (bim["cm"] > 0).all() and bim.group_by("chrom").agg(pl.col("cm").diff().min() >= 0)["cm"].all()


def test_write_synthetic_release__plants_an_oligogenic_idp_whose_loci_differ_in_ld(
        table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    planted = truth["oligogenic"]
    variants = planted["variants"]
    assert len(variants) >= 5 and truth["idp_h2"][planted["idp"]] >= 0.4
    assert all(0.1 <= variant["alt_frequency"] <= 0.9 for variant in variants)
    assert planted["variance_explained"] == pytest.approx(0.02 * len(variants), abs=1e-5)
    ids = bim["id"].to_list()
    rows = [ids.index(variant["variant_id"]) for variant in variants]
    filled = np.where(np.isnan(dosage[rows]), np.nanmean(dosage[rows], axis=1, keepdims=True), dosage[rows])
    present = table.select(pl.all_horizontal(pl.col(planted["idp"], "head_motion").is_not_null())).to_series()
    present = present.to_numpy()
    design = np.column_stack([np.ones(present.sum()), _covariate_matrix(table.filter(present)), filled[:, present].T])
    y = table[planted["idp"]].to_numpy().astype(float)[present]
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    residual = y - design @ beta
    se = np.sqrt(residual @ residual / (len(y) - design.shape[1]) * np.diag(np.linalg.inv(design.T @ design)))
    k = len(variants)
    assert np.all(np.abs(beta[-k:] - [v["beta"] for v in variants]) < 4 * se[-k:]), (beta[-k:], se[-k:])
    proxies = []   # each locus's variants within 250 kb at r² > 0.5: an unclumped score weighs the locus by their count
    for variant, row in zip(variants, rows):
        near = np.flatnonzero(((bim["chrom"] == variant["chrom"]) & (bim["pos"] - variant["pos"]).abs().le(250_000))
                              .to_numpy())
        genotypes = np.where(np.isnan(dosage[near]), np.nanmean(dosage[near], axis=1, keepdims=True), dosage[near])
        r = [np.corrcoef(g, genotypes[list(near).index(row)])[0, 1] if g.std() > 0 else 0.0 for g in genotypes]
        proxies.append(int((np.square(r) > 0.5).sum()))
    assert max(proxies) >= 2 * min(proxies), proxies


def _region_dosages(dosage: np.ndarray, bim: pl.DataFrame, region: dict) -> np.ndarray:
    """The alt dosages of a truth.json region's variants (missing calls at the variant's mean): variants × samples."""
    inside = ((bim["chrom"] == region["chrom"]) & bim["pos"].is_between(region["start"], region["end"])).to_numpy()
    assert inside.sum() == region["variants"]
    genotypes = dosage[inside]
    return np.where(np.isnan(genotypes), np.nanmean(genotypes, axis=1, keepdims=True), genotypes)


def test_write_synthetic_release__plants_a_multivariate_association_too_weak_for_any_single_variant(
        release: Path, table: pl.DataFrame, dosage: np.ndarray, bim: pl.DataFrame, truth: dict) -> None:
    planted = truth["multivariate"]
    kinds = pl.read_csv(release / "idp_fields.csv").filter(pl.col("field").is_in([i["idp"] for i in planted["idps"]]))
    assert len(planted["variants"]) >= 2 and len(planted["idps"]) >= 2 and kinds["category"].n_unique() == 1
    assert planted["region"]["chrom"] != planted["null_region"]["chrom"]
    ids = bim["id"].to_list()   # table's rows are in the .fam's order, as dosage's columns
    score = sum(variant["score_weight"] * (np.nan_to_num(dosage[ids.index(variant["variant_id"])],
                                                         nan=2 * variant["alt_frequency"])
                                           - 2 * variant["alt_frequency"]) for variant in planted["variants"])
    chi2 = 0.0
    for idp in planted["idps"]:
        values, present = table[idp["idp"]].to_numpy().astype(float), table.select(pl.all_horizontal(
            pl.col(idp["idp"], "head_motion").is_not_null())).to_series().to_numpy()
        per_sd = planted["variants"][0]["beta"][idp["idp"]] / planted["variants"][0]["score_weight"]
        beta, se, _ = _ols(values[present], _covariate_matrix(table.filter(present)), score[present])
        assert abs(beta - per_sd) < 4 * se, (idp, beta, se, per_sd)
        chi2 += (beta / se) ** 2
    assert stats.chi2.sf(chi2, len(planted["idps"])) < 1e-4   # the score moves its pattern of IDPs
    for region in (planted["region"], planted["null_region"]):   # while no single variant passes the GWAS threshold
        genotypes = _region_dosages(dosage, bim, region)
        for idp in [field for field in table.columns if field.endswith("-2.0")]:
            present = table.select(pl.all_horizontal(pl.col(idp, "head_motion").is_not_null())).to_series().to_numpy()
            covariates = _covariate_matrix(table.filter(present))
            p = [_ols(table[idp].to_numpy()[present], covariates, g[present])[2] for g in genotypes if g.std() > 0]
            assert min(p) > 5e-8, (region, idp, min(p))
