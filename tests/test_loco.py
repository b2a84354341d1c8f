"""``biolake gwas --lmm loco`` (REGENIE's step 1, then the plain linear kernel) on related samples, checked against
BOLT-LMM 2.4.0's infinitesimal mixed model (Debian's ``bolt --lmmInfOnly``).

The cohort (biolake.synth.write_family_panel: three-generation families of 10, each couple of the second generation
with two children; parent–offspring, sibling, avuncular and cousin pairs, Mendelian transmission with crossovers;
30 % of the 3,000 participants related, 2 % missing calls) over 22 chromosomes. The even chromosomes are hidden: their
variants carry each IDP's polygenic background (h² 0.4, infinitesimal); the odd ones are the tested panel (the
lake's and BOLT's .bed), where the planted IDPs also get a few planted effects and the null IDPs none. Each IDP is
missing for its own samples. So a null IDP's tested variants have no effect and are unlinked to any that has (on a
chromosome that carried background too, relatives' shared segments would give its variants real association that no
LOCO removes), and a plain regression is inflated only by the relatives' shared background (relatedness ×
polygenicity), which the LOCO predictions take out.

The tested panel is large beside the cohort (32,000 variants, 3,000 samples): the relationship the ridge
regressions (and BOLT's model) see is then near the pedigree's. With 8,000 tested variants its noise left λGC
1.034 after loco (BOLT-LMM-inf 1.055, 40 % related). The loco runs use 10 folds (``--cv-folds 10``): a sample's
relatives in its own fold do not inform its prediction, and with 5 (REGENIE's default) the χ² correlation with
BOLT-LMM-inf was 0.976 (λGC loco 1.005).

Figures printed: λGC of the null IDPs, plain and loco; χ² correlation with BOLT-LMM-inf; planted effects found.
Measured (10 null IDPs): λGC plain 1.096, loco 1.003 (per IDP 0.980 to 1.021); on the 3 null IDPs BOLT-LMM-inf
ran, loco 1.004 and BOLT-LMM-inf 1.022; χ² correlation with BOLT-LMM-inf 0.982 (0.971 to 0.989 per IDP); planted
effects at 5e-8: plain 3, loco 3 of 10. Asserted as the issue states them: plain ≥ 1.08 and loco within
1.00 ± 0.03, χ² correlation ≥ 0.98, power ≥ plain's; and loco as calibrated as BOLT-LMM-inf (within 0.03 of it,
or nearer 1). BOLT missing fails these tests under CI, never skips them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.stats

from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.stats.ld import standardized_genotypes
from biolake.stats.loco import fold_assignment, level0_predictions, ridge_penalties
from biolake.synth import family_size, write_family_panel
from panel_lake import ingested_lake

BOLT = shutil.which("bolt")
PLINK2 = shutil.which("plink2") or "plink2"
FAMILIES, GRANDCHILDREN, UNRELATED, CHROMOSOMES = 90, 2, 2100, 22   # 900 of 3,000 participants in families: 30 %
RELATED_FRACTION = FAMILIES * family_size(GRANDCHILDREN) / (FAMILIES * family_size(GRANDCHILDREN) + UNRELATED)
TESTED_CHROMOSOMES = range(1, CHROMOSOMES + 1, 2)     # the odd ones; the even ones carry the background
VARIANTS = 64_000
H2 = 0.4
NULL_IDPS = [f"null{j}" for j in range(10)]
PLANTED_IDPS = ["planted0", "planted1"]
PLANTED_VARIANCE = (0.02, 0.015, 0.012, 0.01, 0.008)  # share of an IDP's variance each planted variant explains
COVARIATES = ["age", "sex"]
GENOME_WIDE = 5e-8
BOLT_IDPS = 3                                        # null IDPs BOLT-LMM-inf runs for (one run each)
LOCO_FOLDS = 10     # --cv-folds: with relatives, more folds keep more of a sample's relatives in its training folds


def _bolt() -> str:
    if BOLT is None:
        if os.environ.get("CI"):
            pytest.fail("bolt (BOLT-LMM) is not installed: make tools installs it")
        pytest.skip("bolt (BOLT-LMM) is not installed")
    return BOLT


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """The tested panel as a PLINK fileset and a lake, the IDPs, and the lake's plain and loco GWAS of them."""
    return simulated_cohort(tmp_path_factory.mktemp("loco"))


def simulated_cohort(folder: Path) -> dict:
    """The cohort of the module docstring in ``folder``, and the lake's plain and loco GWAS of its IDPs."""
    everything = write_family_panel(folder / "all", families=FAMILIES, unrelated=UNRELATED, variants=VARIANTS,
                                    chromosomes=CHROMOSOMES, seed=5, grandchildren=GRANDCHILDREN)
    bim = pl.read_csv(folder / "all.bim", separator="\t", has_header=False, new_columns=["chrom", "id", "cm", "pos",
                                                                                         "a1", "a2"])
    tested = bim["chrom"].is_in(list(TESTED_CHROMOSOMES)).to_numpy()
    (folder / "tested.txt").write_text("\n".join(bim["id"].filter(pl.Series(tested))) + "\n")
    done = subprocess.run([PLINK2, "--bfile", str(folder / "all"), "--extract", str(folder / "tested.txt"),
                           "--make-bed", "--out", str(folder / "panel")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    rng = np.random.default_rng(31)
    samples = everything.dosages.shape[1]
    hidden = _standardized(everything.dosages[~tested])
    z = _standardized(everything.dosages[tested])
    planted = rng.choice(len(z), (len(PLANTED_IDPS), len(PLANTED_VARIANCE)), replace=False)
    age, sex = rng.normal(60, 7, samples), rng.integers(0, 2, samples).astype(float)
    columns = []
    for name in NULL_IDPS + PLANTED_IDPS:
        background = hidden.T @ rng.normal(0, 1, len(hidden))
        y = np.sqrt(H2) * background / background.std() + rng.normal(0, np.sqrt(1 - H2), samples)
        if name in PLANTED_IDPS:
            for variant, share in zip(planted[PLANTED_IDPS.index(name)], PLANTED_VARIANCE):
                y += np.sqrt(share) * z[variant]
        y += 0.05 * age + 0.7 * sex
        y[rng.random(samples) < rng.uniform(0.0, 0.2)] = np.nan    # each IDP its own missing samples
        columns.append(y)
    phenotypes = np.column_stack(columns)
    names = NULL_IDPS + PLANTED_IDPS
    lake = ingested_lake(folder, folder / "panel", phenotypes, names, np.column_stack([np.ones(samples), age, sex]))
    tables = {}
    for mode in (None, "loco"):
        name = mode or "plain"
        run_gwas(lake, GwasSettings(name=name, phenotypes=names, covariates=COVARIATES, lmm=mode,
                                    cv_folds=LOCO_FOLDS if mode else None),
                    workers=2)
        tables[name] = pl.from_arrow(lake.results_dataset(name).to_table())
    tested_ids = bim["id"].filter(pl.Series(tested))
    simulated = {"folder": folder, "lake": lake, "phenotypes": phenotypes, "names": names, "age": age, "sex": sex,
                 "tables": tables, "planted": {name: set(tested_ids.gather(planted[j]).to_list())
                                               for j, name in enumerate(PLANTED_IDPS)}}
    simulated["bolt"] = {NULL_IDPS[j]: run_bolt(simulated, j) for j in range(BOLT_IDPS)}
    return simulated


def _standardized(dosages: np.ndarray) -> np.ndarray:
    """Variants × samples, each variant mean-imputed and standardised (float64)."""
    lost = np.isnan(dosages)
    return standardized_genotypes(np.where(lost, 0.0, dosages), lost).astype(np.float64)


def chi2(table: pl.DataFrame, phenotypes: list[str]) -> np.ndarray:
    """The 1-df χ² of every test of ``phenotypes`` (from its p)."""
    rows = table.filter(pl.col("phenotype").is_in(phenotypes) & pl.col("error").is_null())
    return scipy.stats.chi2.isf(10.0 ** -rows["log10p"].to_numpy(), 1)


def lambda_gc(statistics: np.ndarray) -> float:
    return float(np.median(statistics) / scipy.stats.chi2.ppf(0.5, 1))


def run_bolt(cohort: dict, j: int) -> pl.DataFrame:
    """BOLT-LMM-inf of IDP ``j`` on the tested panel with age and sex: its stats file (SNP, CHISQ)."""
    folder, name = cohort["folder"], cohort["names"][j]
    ids = [f"s{i}" for i in range(len(cohort["age"]))]
    y = cohort["phenotypes"][:, j]
    pl.DataFrame({"FID": ids, "IID": ids, "y": ["NA" if np.isnan(v) else repr(float(v)) for v in y]}).write_csv(
        folder / f"{name}.pheno", separator=" ")
    pl.DataFrame({"FID": ids, "IID": ids, "age": cohort["age"], "sex": cohort["sex"]}).write_csv(
        folder / "bolt.covar", separator=" ")
    done = subprocess.run([_bolt(), f"--bfile={folder / 'panel'}", f"--phenoFile={folder / name}.pheno",
                           "--phenoCol=y", f"--covarFile={folder / 'bolt.covar'}", "--qCovarCol=age", "--qCovarCol=sex",
                           "--lmmInfOnly", "--LDscoresUseChip", "--noMapCheck", "--numThreads=1",
                           f"--statsFile={folder / name}.stats"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    stats = pl.read_csv(folder / f"{name}.stats", separator="\t")
    return stats.select(pl.col("SNP").alias("variant_id"), ((pl.col("BETA") / pl.col("SE")) ** 2).alias("chisq_bolt"))


def test_gwas_lmm_loco__calibrates_null_idps_as_bolt_lmm_inf_where_plain_regression_is_inflated(cohort):
    plain, loco = (lambda_gc(chi2(cohort["tables"][mode], NULL_IDPS)) for mode in ("plain", "loco"))
    each = {name: (lambda_gc(chi2(cohort["tables"]["plain"], [name])), lambda_gc(chi2(cohort["tables"]["loco"], [name])))
            for name in NULL_IDPS}
    print(f"λGC of {len(NULL_IDPS)} null IDPs (h² {H2}, {RELATED_FRACTION:.0%} related): plain {plain:.3f}, loco "
          f"{loco:.3f}; per IDP "
          "plain/loco " + ", ".join(f"{p:.3f}/{q:.3f}" for p, q in each.values()))
    bolt = lambda_gc(np.concatenate([stats["chisq_bolt"].to_numpy() for stats in cohort["bolt"].values()]))
    ours = lambda_gc(chi2(cohort["tables"]["loco"], list(cohort["bolt"])))
    print(f"λGC of the {BOLT_IDPS} null IDPs BOLT-LMM-inf ran: loco {ours:.3f}, BOLT-LMM-inf {bolt:.3f}")
    assert plain >= 1.08
    assert abs(loco - 1.0) <= 0.03
    assert abs(ours - bolt) <= 0.03 or abs(ours - 1.0) <= abs(bolt - 1.0)


def test_gwas_lmm_loco__chi2_correlates_with_bolt_lmm_inf(cohort):
    ours, theirs = [], []
    for name, stats in cohort["bolt"].items():
        both = cohort["tables"]["loco"].filter(pl.col("phenotype") == name).join(stats, on="variant_id")
        assert len(both) > 0.9 * VARIANTS / 2
        ours.append(scipy.stats.chi2.isf(10.0 ** -both["log10p"].to_numpy(), 1))
        theirs.append(both["chisq_bolt"].to_numpy())
        print(f"{name}: χ² correlation with BOLT-LMM-inf over {len(both)} variants "
              f"{np.corrcoef(ours[-1], theirs[-1])[0, 1]:.4f}; λGC loco {lambda_gc(ours[-1]):.3f}, BOLT "
              f"{lambda_gc(theirs[-1]):.3f}")
    r = np.corrcoef(np.concatenate(ours), np.concatenate(theirs))[0, 1]
    print(f"χ² correlation with BOLT-LMM-inf over the {len(ours)} IDPs' tests: {r:.4f}")
    assert r >= 0.98


def test_gwas_lmm_loco__detects_planted_effects_as_often_as_plain_regression(cohort):
    found = {}
    for mode in ("plain", "loco"):
        table = cohort["tables"][mode]
        found[mode] = sum(len(set(table.filter((pl.col("phenotype") == name) & (pl.col("p") < GENOME_WIDE))
                                  ["variant_id"]) & variants) for name, variants in cohort["planted"].items())
    print(f"planted effects found at p < {GENOME_WIDE:g} (of {len(PLANTED_IDPS) * len(PLANTED_VARIANCE)}): plain "
          f"{found['plain']}, loco {found['loco']}")
    assert found["loco"] >= found["plain"] and found["loco"] > 0


def test_run_gwas__lmm_loco_writes_a_gwas_table_with_its_settings(cohort):
    loco, plain = cohort["tables"]["loco"], cohort["tables"]["plain"]
    assert loco.columns == plain.columns and len(loco) == len(plain)
    assert (loco.sort(["phenotype", "variant_id"])["n"] == plain.sort(["phenotype", "variant_id"])["n"]).all()
    record = cohort["lake"].results_provenance("loco")
    assert record["settings"]["lmm"] == "loco" and record["lmm"]["mode"] == "loco"
    assert record["lmm"]["folds"] == LOCO_FOLDS and record["lmm"]["block_size"] == 1000
    assert set(record["lmm"]["level1_penalty"]) == set(cohort["names"])
    assert record["lmm"]["level0_blocks"] >= len(TESTED_CHROMOSOMES)


def test_level0_predictions__share_one_fit_per_fold_across_phenotypes():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(60, 8)), rng.normal(size=(60, 3))
    folds_of = fold_assignment(60, 4, seed=1)
    penalties = ridge_penalties(80)   # as if the genome had 80 variants, the block 8 of them
    together = level0_predictions(x, y, folds_of, 4, penalties)
    held = folds_of == 2
    penalty = penalties[1]
    beta = np.linalg.solve(x[~held].T @ x[~held] + penalty * np.eye(8), x[~held].T @ y[~held, 1])
    np.testing.assert_allclose(together[held, 1, 1], x[held] @ beta, rtol=1e-5)
    np.testing.assert_allclose(together[:, 2], level0_predictions(x, y[:, 2:], folds_of, 4, penalties)[:, 0], rtol=1e-6)


def test_gwas_settings__cv_folds_below_two_refused():
    with pytest.raises(BiolakeError, match=r"--cv-folds must be at least 2"):
        GwasSettings(name="x", phenotypes=["t1"], covariates=["age"], lmm="loco", cv_folds=1)
