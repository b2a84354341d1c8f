"""SNP heritability from the lake's genotypes checked against GEMMA 0.98.5 (Debian's ``gemma``, ``make tools``).

The panel (biolake.synth.write_ld_panel: real-looking LD, up to 4 % missing calls per variant)
is ingested as a lake with three polygenic phenotypes simulated here on its standardised
genotypes (h² 0.3-0.6; one missing for 40 samples) and two covariates with effects. GEMMA gets
the same samples, covariates (``-c``, an intercept column first) and phenotypes (``-p``, NA
missing), and:

- ``-gk 2`` (standardised relationship matrix; its defaults -maf 0.01 -miss 0.05): equal to
  ours to 1e-5 (ours are float32 products summed in float64);
- ``-k OURS -vc 1`` (HE): sigma2, se(sigma2), pve and se(pve) equal ours to the 6 digits it
  prints; its pve is over var(y) before the covariates (our ``pve``); given the phenotype with
  the covariates projected out its pve is our ``h2``;
- ``-k OURS -lmm 1`` (REML in λ, the null model's "pve estimate" and "se(pve)" in its log):
  our AI-REML h² to 1e-4 and its SE to 1e-3 relative.

A missing phenotype value drops that sample for that phenotype only (GEMMA drops it too, and
takes the sub-matrix of K). HE also equals its closed form written out here with dense numpy
matrices, to 1e-8. GEMMA missing fails these tests, never skips them.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from biolake.cli import main
from biolake.heritability import HeritabilitySettings, RelationshipInputs, relationship_sum, run_heritability
from biolake.lake.errors import BiolakeError
from biolake.queries.blocks import genotype_blocks
from biolake.stats.heritability import haseman_elston, haseman_elston_randomized, reml, symmetric
from biolake.synth import write_ld_panel
from panel_lake import panel_lake, run_gemma, simulated_phenotypes

SAMPLES, VARIANTS = 300, 2000
PHENOTYPES = ["t1", "t2", "t3"]
PLANTED_H2 = [0.6, 0.45, 0.3]
MISSING = 40          # samples without t2


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """The panel, its phenotypes (samples × 3, NaN missing), covariates (intercept, age, sex) and a lake of them."""
    folder = tmp_path_factory.mktemp("heritability")
    panel = write_ld_panel(folder / "panel", samples=SAMPLES, variants=VARIANTS, seed=3)
    rng = np.random.default_rng(30)
    phenotypes, covariates = simulated_phenotypes(panel, PLANTED_H2, rng=rng)
    phenotypes[rng.choice(SAMPLES, MISSING, replace=False), 1] = np.nan
    lake, grm, variants = panel_lake(folder, panel, phenotypes, PHENOTYPES, covariates)
    return {"folder": folder, "panel": panel, "lake": lake, "phenotypes": phenotypes, "covariates": covariates,
            "grm": grm, "grm_file": folder / "grm.txt", "variants": variants}


def gemma(cohort: dict, y: np.ndarray, *flags: str, out: str) -> str:
    """Run GEMMA on the panel with phenotype ``y`` (NaN → NA) and our covariates; its stdout."""
    return run_gemma(cohort["folder"], cohort["panel"].prefix, y, *flags, out=out)


def printed(text: str, label: str) -> list[float]:
    """The numbers GEMMA prints after ``label =`` (first such line)."""
    line = re.search(rf"^{re.escape(label)}\s*=\s*(.*)$", text, re.MULTILINE)
    assert line, f"{label!r} not in GEMMA's output: {text}"
    return [float(v) for v in line.group(1).split()]


def test_relationship_sum__equals_gemma_gk2(cohort):
    gemma(cohort, cohort["phenotypes"][:, 0], "-gk", "2", out="gk2")
    theirs = np.loadtxt(cohort["folder"] / "gk2.sXX.txt")
    log = (cohort["folder"] / "gk2.log.txt").read_text()
    assert f"number of analyzed SNPs/var = {cohort['variants']}" in log
    np.testing.assert_allclose(cohort["grm"], theirs, rtol=0, atol=1e-5)


def test_relationship_sum__same_whatever_the_workers(cohort):
    """The same to float32's digits: the shares sum the float32 products of different slices."""
    blocks = genotype_blocks(cohort["lake"], release="panel")
    inputs = RelationshipInputs(SAMPLES, None, 0.01, 0.05)
    for workers in (2, 3):
        cross, variants = relationship_sum(cohort["lake"], inputs, blocks, workers=workers)
        assert variants == cohort["variants"]
        np.testing.assert_allclose(symmetric(cross) / variants, cohort["grm"], rtol=0, atol=2e-6)


def he_closed_form(grm: np.ndarray, y: np.ndarray, w: np.ndarray) -> dict[str, float]:
    """GEMMA's VC::CalcVChe for one phenotype (its samples only), with dense matrices."""
    n, c = w.shape
    p = np.eye(n) - w @ np.linalg.solve(w.T @ w, w.T)
    centre = np.eye(n) - np.ones((n, n)) / n
    trace_g = np.trace(centre @ grm @ centre) / n
    pkp = p @ grm @ p
    d = np.trace(pkp) / n
    k = pkp / d
    py = p @ y
    var_y, var_new = y.var(), py.var()
    ys = (py - py.mean()) / np.sqrt(var_new)
    r = n / (n - c)
    u = k @ ys - r * ys
    s = np.trace(k @ k) - r * n
    tau = (u @ ys) / s
    se = np.sqrt(2 * (tau * (u @ k @ u) + (1 - tau) * (u @ u)) / s ** 2)
    return {"sigma2_g": tau * var_new / d, "sigma2_g_se": se * var_new / d, "sigma2_e": (1 - tau) * r * var_new,
            "sigma2_e_se": se * r * var_new, "pve": tau * var_new / d * trace_g / var_y,
            "pve_se": se * var_new / d * trace_g / var_y, "h2": tau * var_new / d * trace_g / var_new,
            "h2_se": se * var_new / d * trace_g / var_new}


def test_haseman_elston__equals_closed_form():
    rng = np.random.default_rng(4)
    n = 120
    z = rng.normal(size=(n, 400))
    grm = z @ z.T / 400
    w = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    y = z @ rng.normal(0, 0.04, (400, 3)) + rng.normal(size=(n, 3)) + w @ rng.normal(size=(3, 3))
    y[:15, 0] = np.nan
    y[100:, 2] = np.nan
    fit = haseman_elston(grm, y, w)
    for j in range(3):
        present = ~np.isnan(y[:, j])
        expected = he_closed_form(grm[np.ix_(present, present)], y[present, j], w[present])
        assert fit.n_samples[j] == present.sum()
        for name, value in expected.items():
            assert getattr(fit, name)[j] == pytest.approx(value, rel=0, abs=1e-8), name


def test_haseman_elston_randomized__equals_haseman_elston_given_exact_probes(cohort):
    """Probes √N·I make Hutchinson's trace exact: every estimate equals the exact path's, and the SE too once the
    probes' Monte-Carlo share (their spread, not 0 for these probes) is taken out; K is applied exactly twice."""
    grm, y, w = cohort["grm"], cohort["phenotypes"], cohort["covariates"]
    applied = []

    def apply_k(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        applied.append(v.shape[1])
        return grm @ v, grm.diagonal().copy()

    fit = haseman_elston_randomized(apply_k, y, w, probes=np.sqrt(SAMPLES) * np.eye(SAMPLES))
    exact = haseman_elston(grm, y, w)
    assert applied == [2 * (3 + SAMPLES) + 3, 3]    # per pattern (t1 and t3, t2) Q, P·y, the probes; then P·u
    for name in ("h2", "sigma2_g", "sigma2_e", "pve"):
        np.testing.assert_allclose(getattr(fit, name), getattr(exact, name), rtol=0, atol=1e-8, err_msg=name)
    np.testing.assert_array_equal(fit.n_samples, exact.n_samples)
    assert np.all(fit.h2_se_probes > 0)
    np.testing.assert_allclose(np.sqrt(fit.h2_se ** 2 - fit.h2_se_probes ** 2), exact.h2_se, rtol=0, atol=1e-8)


def test_haseman_elston__equals_gemma_vc1(cohort):
    fit = haseman_elston(cohort["grm"], cohort["phenotypes"], cohort["covariates"])
    for j, name in enumerate(PHENOTYPES):
        y = cohort["phenotypes"][:, j]
        said = gemma(cohort, y, "-k", str(cohort["grm_file"]), "-vc", "1", out=f"vc_{name}")
        np.testing.assert_allclose([fit.sigma2_g[j], fit.sigma2_e[j]], printed(said, "sigma2"), rtol=5e-6)
        np.testing.assert_allclose([fit.sigma2_g_se[j], fit.sigma2_e_se[j]], printed(said, "se(sigma2)"), rtol=5e-6)
        np.testing.assert_allclose([fit.pve[j], fit.pve_se[j]], printed(said, "pve") + printed(said, "se(pve)"),
                                   rtol=5e-6)
        present = ~np.isnan(y)
        w = cohort["covariates"][present]
        residual = np.full(SAMPLES, np.nan)
        residual[present] = y[present] - w @ np.linalg.lstsq(w, y[present], rcond=None)[0]
        said = gemma(cohort, residual, "-k", str(cohort["grm_file"]), "-vc", "1", out=f"vc_residual_{name}")
        np.testing.assert_allclose([fit.h2[j], fit.h2_se[j]], printed(said, "pve") + printed(said, "se(pve)"),
                                   rtol=5e-6)


def test_reml__equals_gemma_lmm_null_model(cohort):
    fit = reml(cohort["grm"], cohort["phenotypes"], cohort["covariates"])
    for j, name in enumerate(PHENOTYPES):
        gemma(cohort, cohort["phenotypes"][:, j], "-k", str(cohort["grm_file"]), "-lmm", "1", out=f"lmm_{name}")
        log = (cohort["folder"] / f"lmm_{name}.log.txt").read_text()
        assert fit.h2[j] == pytest.approx(printed(log, "## pve estimate in the null model")[0], abs=1e-4)
        assert fit.h2_se[j] == pytest.approx(printed(log, "## se(pve) in the null model")[0], rel=1e-3)
        assert fit.n_samples[j] == int(printed(log, "## number of analyzed individuals")[0])


@pytest.mark.parametrize("method", ["he", "reml"])
def test_run_heritability__every_phenotype_from_the_lake(cohort, method):
    settings = HeritabilitySettings(name=f"h2_{method}", phenotypes=PHENOTYPES, covariates=["age", "sex"],
                                    method=method)
    report = run_heritability(cohort["lake"], settings, workers=1)
    table = cohort["lake"].results_dataset(settings.name).to_table().to_pydict()
    fit = (haseman_elston if method == "he" else reml)(cohort["grm"], cohort["phenotypes"], cohort["covariates"])
    assert table["phenotype"] == PHENOTYPES and set(table["method"]) == {method}
    np.testing.assert_allclose(table["h2"], fit.h2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(table["h2_se"], fit.h2_se, rtol=0, atol=1e-10)
    assert table["n"] == [SAMPLES, SAMPLES - MISSING, SAMPLES]
    assert set(table["n_variants"]) == {cohort["variants"]} and report.variants == cohort["variants"]
    assert report.h2["t1"] == (table["h2"][0], table["h2_se"][0])
    record = cohort["lake"].results_provenance(settings.name)
    assert record["kind"] == "h2" and record["method"] == method and "-gk 2" in record["relationship"]
    assert record["components"]["t2"]["sigma2_g"] == pytest.approx(fit.sigma2_g[1], abs=1e-10)


def test_run_heritability__randomized_trace_near_the_exact_one(cohort):
    exact, randomized = ({"name": f"h2_trace_{trace}", "trace": trace} for trace in ("exact", "randomized"))
    for run in (exact, randomized):
        settings = HeritabilitySettings(name=run["name"], phenotypes=PHENOTYPES, covariates=["age", "sex"],
                                        trace=run["trace"], probes=100, seed=5)
        run["report"] = run_heritability(cohort["lake"], settings, workers=2)
        run["table"] = cohort["lake"].results_dataset(settings.name).to_table().to_pydict()
        run["record"] = cohort["lake"].results_provenance(settings.name)
    assert randomized["table"]["phenotype"] == exact["table"]["phenotype"] == PHENOTYPES
    assert set(randomized["table"]["method"]) == {"rhe"} and set(exact["table"]["method"]) == {"he"}
    assert randomized["table"]["n"] == exact["table"]["n"] and randomized["report"].variants == cohort["variants"]
    h2, se = np.array(randomized["table"]["h2"]), np.array(randomized["table"]["h2_se"])
    assert np.all(np.abs(h2 - exact["table"]["h2"]) < 3 * se)
    probes_share = np.array([randomized["record"]["components"][p]["h2_se_probes"] for p in PHENOTYPES])
    assert np.all(probes_share > 0) and np.all(probes_share < se)
    np.testing.assert_allclose(se, exact["table"]["h2_se"], rtol=0.2)
    assert randomized["record"]["trace"] == {"estimator": "randomized", "probes": 100, "seed": 5}
    assert exact["record"]["trace"] == {"estimator": "exact"}
    assert randomized["report"].estimator == "Haseman–Elston, randomized trace (100 probes, seed 5)"


def test_run_heritability__refuses_a_phenotype_without_variance_left(cohort):
    with pytest.raises(BiolakeError, match=r"phenotype 'years': no variance left after the covariates"):
        run_heritability(cohort["lake"], HeritabilitySettings(
            name="h2_bad", phenotypes="SELECT participant_id, 2 * age + 1 AS years FROM covariates",
            covariates=["age", "sex"]))
    assert "h2_bad" not in cohort["lake"].results_names()


def test_h2_command__writes_the_table_and_prints_each_h2(cohort):
    result = CliRunner().invoke(main, ["h2", "--lake", str(cohort["lake"].location.root), "--pheno", "t1,t3",
                                       "--covar", "age,sex", "--method", "he", "--name", "h2_cli", "--quiet",
                                       "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert re.search(r"t1: h2 = \d\.\d{3} \(SE \d\.\d{3}\)", result.output)
    assert "he over" in result.output
    assert cohort["lake"].results_dataset("h2_cli").count_rows() == 2


def test_h2_command__randomized_trace_names_the_estimator(cohort):
    result = CliRunner().invoke(main, ["h2", "--lake", str(cohort["lake"].location.root), "--pheno", "t1",
                                       "--covar", "age,sex", "--trace", "randomized", "--probes", "20", "--seed", "3",
                                       "--name", "h2_cli_rhe", "--quiet", "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "rhe over" in result.output and "randomized trace (20 probes, seed 3)" in result.output
    assert cohort["lake"].results_dataset("h2_cli_rhe").to_table().column("method").to_pylist() == ["rhe"]


def test_heritability_settings__auto_trace_exact_up_to_20000_samples():
    def settings(**options: str) -> HeritabilitySettings:
        return HeritabilitySettings(name="h2", phenotypes=["t1"], covariates=["age"], **options)

    assert (settings().estimator(20_000), settings().estimator(20_001)) == ("he", "rhe")
    assert settings(method="reml").estimator(50_000) == "reml"
    assert settings(trace="exact").estimator(50_000) == "he"
