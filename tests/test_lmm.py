"""Mixed-model GWAS (``biolake gwas --lmm``) checked against GEMMA 0.98.5's ``-lmm 1`` (Debian's ``gemma``).

The panel (biolake.synth.write_ld_panel: eight founder haplotypes copied in blocks, so samples
share long stretches as relatives do; up to 4 % missing calls per variant) is ingested as a lake
with three phenotypes simulated here with a polygenic background on its standardised genotypes
(h² 0.6, 0.45, 0.3), a planted variant, two covariates with effects, and each phenotype its
own missing samples (none, 40, 25). GEMMA gets, per phenotype (``-n`` of several would run its
multivariate model), the panel (``-bfile``), that phenotype (``-p``, NA missing), the covariates
with an intercept column (``-c``) and our relationship matrix (``-k``: biolake's K, GEMMA's
``-gk 2``, as ``biolake h2`` builds it; GEMMA centres it over the phenotype's samples, as we do).

- ``exact``: beta, se and p_wald of its .assoc.txt equal ours to 1e-5 relative (the issue asks
  1e-4; the figures are printed: about 5e-7, its 7 printed digits). GEMMA's λ per variant is the REML optimum only to its
  Newton tolerance (1e-5 relative); ours takes the same steps (GSL's Brent, then Newton), without
  which a β near 0 differed by up to 3e-3 of itself and a p by 1e-4.
- ``null-ratio``: equal to GEMMA run with ``-lmin`` and ``-lmax`` both our null model's λ (GEMMA
  accepts that: its grid then has one point) to 1e-5; our null λ equals GEMMA's (vg/ve of its log).

GEMMA tests only variants with MAF ≥ 0.01 and ≤ 5 % missing calls; we test every variant, and
the comparison is over GEMMA's. GEMMA missing fails these tests, never skips them.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.synth import write_ld_panel
from panel_lake import panel_lake, run_gemma, simulated_phenotypes

SAMPLES, VARIANTS = 300, 1200
PHENOTYPES = ["t1", "t2", "t3"]
PLANTED_H2 = [0.6, 0.45, 0.3]
MISSING = {"t2": 40, "t3": 25}
PLANTED = 100                   # the variant with an effect on every phenotype


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """The panel, its phenotypes (samples × 3, NaN missing), covariates (intercept, age, sex), a lake of them, our
    K as a file for GEMMA, and the lake's mixed-model GWAS in both modes."""
    folder = tmp_path_factory.mktemp("lmm")
    panel = write_ld_panel(folder / "panel", samples=SAMPLES, variants=VARIANTS, seed=7)
    rng = np.random.default_rng(31)
    phenotypes, covariates = simulated_phenotypes(panel, PLANTED_H2, rng=rng, planted=PLANTED)
    for name, count in MISSING.items():
        phenotypes[rng.choice(SAMPLES, count, replace=False), PHENOTYPES.index(name)] = np.nan
    lake, _, _ = panel_lake(folder, panel, phenotypes, PHENOTYPES, covariates)
    tables = {}
    for mode in ("exact", "null-ratio"):
        name = f"lmm_{mode.replace('-', '_')}"
        run_gwas(lake, GwasSettings(name=name, phenotypes=PHENOTYPES, covariates=["age", "sex"], lmm=mode), workers=1)
        tables[mode] = pl.from_arrow(lake.results_dataset(name).to_table())
    return {"folder": folder, "panel": panel, "lake": lake, "phenotypes": phenotypes, "tables": tables,
            "provenance": lake.results_provenance("lmm_null_ratio")}


def gemma_lmm(cohort: dict, j: int, *flags: str, out: str) -> tuple[pl.DataFrame, str]:
    """GEMMA's -lmm 1 of phenotype ``j`` with our K and covariates: its .assoc.txt and its log."""
    folder = cohort["folder"]
    run_gemma(folder, cohort["panel"].prefix, cohort["phenotypes"][:, j], "-k", str(folder / "grm.txt"), "-lmm", "1",
              *flags, out=out)
    return pl.read_csv(folder / f"{out}.assoc.txt", separator="\t"), (folder / f"{out}.log.txt").read_text()


def printed(log: str, label: str) -> float:
    """The number GEMMA's log prints after ``label =``."""
    line = re.search(rf"^{re.escape(label)}\s*=\s*(\S+)", log, re.MULTILINE)
    assert line, f"{label!r} not in GEMMA's log: {log}"
    return float(line.group(1))


def joined(ours: pl.DataFrame, theirs: pl.DataFrame, phenotype: str) -> pl.DataFrame:
    """Our rows of ``phenotype`` beside GEMMA's (by variant), GEMMA's columns suffixed _gemma."""
    mine = ours.filter(pl.col("phenotype") == phenotype)
    both = mine.join(theirs.rename({"rs": "variant_id", "beta": "beta_gemma", "se": "se_gemma",
                                    "p_wald": "p_gemma"}), on="variant_id", how="inner")
    assert len(both) == len(theirs) > 0.8 * VARIANTS
    assert both["error"].null_count() == len(both)
    return both


def relative(ours: pl.Series, theirs: pl.Series) -> np.ndarray:
    return np.abs(ours.to_numpy() - theirs.to_numpy()) / np.abs(theirs.to_numpy())


def test_gwas_lmm_exact__equals_gemma_lmm1_wald(cohort):
    for j, phenotype in enumerate(PHENOTYPES):
        theirs, log = gemma_lmm(cohort, j, out=f"exact_{phenotype}")
        both = joined(cohort["tables"]["exact"], theirs, phenotype)
        beta, se, p = (relative(both[c], both[f"{c}_gemma"]) for c in ("beta", "se", "p"))
        print(f"exact {phenotype}: {len(both)} variants; max relative difference beta {beta.max():.1e}, se "
              f"{se.max():.1e}, p {p.max():.1e}")
        assert beta.max() < 1e-5 and se.max() < 1e-5 and p.max() < 1e-5
        assert set(both["n"]) == {int(printed(log, "## number of analyzed individuals"))}
        assert both.filter(pl.col("variant_id") == cohort["panel"].variant_id[PLANTED])["p"].item() < 1e-8


def test_gwas_lmm_null_ratio__equals_gemma_with_lambda_pinned(cohort):
    null = cohort["provenance"]["lmm"]["null_model"]
    for j, phenotype in enumerate(PHENOTYPES):
        lam = null[phenotype]["lambda"]
        _, log_free = gemma_lmm(cohort, j, out=f"null_{phenotype}")
        theirs_lambda = printed(log_free, "## vg estimate in the null model") / printed(
            log_free, "## ve estimate in the null model")
        theirs, log = gemma_lmm(cohort, j, "-lmin", repr(lam), "-lmax", repr(lam), out=f"pinned_{phenotype}")
        np.testing.assert_allclose(theirs["l_remle"].to_numpy(), lam, rtol=1e-6)
        both = joined(cohort["tables"]["null-ratio"], theirs, phenotype)
        beta, se, p = (relative(both[c], both[f"{c}_gemma"]) for c in ("beta", "se", "p"))
        print(f"null-ratio {phenotype}: λ {lam:.6g} (GEMMA's vg/ve {theirs_lambda:.6g}); {len(both)} variants; max "
              f"relative difference beta {beta.max():.1e}, se {se.max():.1e}, p {p.max():.1e}")
        assert lam == pytest.approx(theirs_lambda, rel=1e-4)
        assert null[phenotype]["vg"] == pytest.approx(printed(log_free, "## vg estimate in the null model"), rel=1e-4)
        assert beta.max() < 1e-5 and se.max() < 1e-5 and p.max() < 1e-5


def test_run_gwas__lmm_writes_a_gwas_table_with_its_mode_and_null_models(cohort):
    plain = run_gwas(cohort["lake"], GwasSettings(name="plain", phenotypes=PHENOTYPES, covariates=["age", "sex"]),
                     workers=1)
    columns = cohort["lake"].results_dataset("plain").schema.names
    for mode, table in cohort["tables"].items():
        assert table.columns == columns
        assert table.group_by("phenotype").agg(pl.col("n").unique()).sort("phenotype")["n"].to_list() == [
            [SAMPLES], [SAMPLES - MISSING["t2"]], [SAMPLES - MISSING["t3"]]]   # missing phenotypes drop only theirs
        assert len(table) == plain.rows
    record = cohort["provenance"]
    assert record["kind"] == "gwas" and record["settings"]["lmm"] == "null-ratio"
    assert record["lmm"]["mode"] == "null-ratio" and "-gk 2" in record["lmm"]["relationship"]
    assert set(record["lmm"]["null_model"]) == set(PHENOTYPES) and record["logistic_phenotypes"] == []
    assert cohort["lake"].results_provenance("lmm_exact")["lmm"]["mode"] == "exact"


def test_run_gwas__lmm_same_whatever_the_workers_and_chromosomes(cohort):
    run_gwas(cohort["lake"], GwasSettings(name="lmm_chrom2", phenotypes=PHENOTYPES, covariates=["age", "sex"],
                                          lmm="null-ratio", chromosomes=["2"]), workers=2)
    subset = pl.from_arrow(cohort["lake"].results_dataset("lmm_chrom2").to_table())
    whole = cohort["tables"]["null-ratio"].filter(pl.col("chrom") == "2")
    key = ["phenotype", "variant_id"]
    subset, whole = subset.sort(key), whole.sort(key)
    # K's float32 products are summed over other shares of the blocks: equal to 1e-4 of a standard error, not bit for bit
    np.testing.assert_allclose(subset["beta"], whole["beta"], rtol=0, atol=1e-4 * whole["se"].min())
    np.testing.assert_allclose(subset["se"], whole["se"], rtol=1e-4)
    np.testing.assert_allclose(subset["log10p"], whole["log10p"], rtol=0, atol=1e-4)


def test_gwas_settings__lmm_refuses_logistic_and_unknown_modes():
    with pytest.raises(BiolakeError, match=r"--lmm fits a linear mixed model .* does not combine with --model logistic"):
        GwasSettings(name="x", phenotypes=["t1"], covariates=["age"], lmm="exact", model="logistic")
    with pytest.raises(BiolakeError, match=r"--lmm 'emmax' is not one of loco, exact, null-ratio"):
        GwasSettings(name="x", phenotypes=["t1"], covariates=["age"], lmm="emmax")


def test_gwas_command__lmm_prints_the_summary(cohort):
    result = CliRunner().invoke(main, ["gwas", "--lake", str(cohort["lake"].location.root), "--pheno", "t1",
                                       "--covar", "age,sex", "--lmm", "exact", "--name", "lmm_cli", "--quiet",
                                       "--workers", "1", "--chrom", "1"])
    assert result.exit_code == 0, result.output
    assert cohort["lake"].results_provenance("lmm_cli")["lmm"]["mode"] == "exact"
