"""The logistic kernel against statsmodels Logit (exact fits) and plink2 --glm (its rules and Firth)."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse
import statsmodels.api as sm
from plink2_glm import PLINK2, run_glm
from scipy import special

from biolake.stats.association import COLLINEAR, ERRORS, MONOMORPHIC, NOT_CONVERGED, OK, SEPARATION
from biolake.stats.logistic import logistic_association

# plink2's ERRCODE → ours. UNFINISHED (plink2 gave up and printed its last iterate) is either:
# we go on longer and report the estimate if the fit converges, NOT_CONVERGED if it does not.
PLINK2_ERRORS = {None: OK, "SEPARATION,ALT1": SEPARATION, "SEPARATION,REF": SEPARATION,
                 "CONST_OMITTED_ALLELE": MONOMORPHIC, "CONST_ALLELE": MONOMORPHIC, "VIF_TOO_HIGH": COLLINEAR,
                 "CORR_TOO_HIGH": COLLINEAR, "LOGISTIC_CONVERGE_FAIL": NOT_CONVERGED,
                 "FIRTH_CONVERGE_FAIL": NOT_CONVERGED, "UNFINISHED": (OK, NOT_CONVERGED)}
MODES = {"fallback": (), "always": ("firth",), "never": ("no-firth",)}


def simulate(rng, *, n=600, variants=25, phenotypes=2, missing_phenotypes=0.05, missing_calls=0.03):
    """Dosages (variants × samples, NaN missing), 0/1 phenotypes (NaN missing), covariates with intercept."""
    covariates = np.column_stack([np.ones(n), rng.normal(size=n), rng.integers(0, 2, n)])
    dosages = rng.binomial(2, rng.uniform(0.05, 0.5, (variants, 1)), (variants, n)).astype(float)
    dosages[rng.random(dosages.shape) < missing_calls] = np.nan
    eta = -0.5 + covariates[:, 1:] @ [0.4, -0.3]
    y = np.column_stack([rng.random(n) < special.expit(eta + rng.normal(0, 0.3) * np.nan_to_num(dosages[j]))
                         for j in range(phenotypes)]).astype(float)
    y[rng.random(y.shape) < missing_phenotypes] = np.nan
    return dosages, y, covariates


def with_hard_cases(rng, dosages, y):
    """Make the last 6 variants ones plink2 treats specially (y: one phenotype).

    They come last because plink2 2.00a3.5 misreports the SE (not beta) of variants with
    missing calls that follow a Firth fallback (by up to 0.3 %; statsmodels sides with us).
    """
    cases, controls = y == 1, y == 0
    n = len(y)
    hard = np.array([
        np.where(cases & (rng.random(n) < 0.03), 1.0, 0.0),          # alt only in cases: SEPARATION,ALT1
        np.where(controls & (rng.random(n) < 0.02), 1.0, 0.0),       # alt only in controls
        np.where(cases, 2.0, rng.choice([0.0, 1.0, 2.0], n)),        # ref absent from cases: SEPARATION,REF
        np.where(cases & (rng.random(n) < 0.1), 1.0, 0.0),           # near separation (below: two control
        np.where(cases, rng.choice([1.0, 2.0], n), rng.choice([0.0, 1.0], n)),  # carriers); separated, though
        np.where(np.isnan(y), 1.0, 0.0)])                            # both alleles seen: UNFINISHED; varies
    hard[3, np.flatnonzero(controls)[:2]] = 1.0                       # only where y is missing: monomorphic
    return np.vstack([dosages[:-6], hard])


def kernel_inputs(dosages):
    """Our kernel's genotypes (0 at missing calls) and the sparse missing-call mask."""
    missing = np.isnan(dosages)
    return np.nan_to_num(dosages), scipy.sparse.csr_array(missing)


def exact_fit(y, covariates, dosage):
    """statsmodels Logit on exactly the samples a test uses, to full precision: beta, se, z, p of the dosage."""
    used = ~np.isnan(dosage) & ~np.isnan(y)
    fit = sm.Logit(y[used], np.column_stack([covariates[used], dosage[used]])).fit(
        disp=0, method="newton", tol=1e-14, maxiter=100)
    return fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1], used.sum()


def test_logistic_association__matches_statsmodels_logit():
    dosages, y, covariates = simulate(np.random.default_rng(1))
    genotypes, missing = kernel_inputs(dosages)
    result = logistic_association(genotypes, y, covariates, missing=missing, firth="never")
    assert (result.error == OK).all() and not result.firth.any()
    for v in range(len(dosages)):
        for j in range(y.shape[1]):
            *expected, n = exact_fit(y[:, j], covariates, dosages[v])
            assert result.n[v, j] == n
            ours = [result.beta[v, j], result.se[v, j], result.statistic[v, j], result.p[v, j]]
            np.testing.assert_allclose(ours, expected, rtol=1e-8)


@pytest.mark.parametrize("mode", MODES)
def test_logistic_association__matches_plink2_glm(tmp_path, mode):
    rng = np.random.default_rng(3)
    dosages, y, covariates = simulate(rng, n=800, variants=40, phenotypes=1)
    dosages = with_hard_cases(rng, dosages, y[:, 0])
    genotypes, missing = kernel_inputs(dosages)
    ours = logistic_association(genotypes, y, covariates, missing=missing, firth=mode)
    (theirs,) = run_glm(tmp_path, dosages=dosages, phenotypes=y, covariates=covariates[:, 1:], binary=True,
                        glm_modifiers=MODES[mode])
    _assert_same_as_plink2(ours, theirs, firth_used=mode != "never")
    expected_firth = {"fallback": [True, True, True, False, False], "always": [True] * 5, "never": [False] * 5}
    assert ours.firth[-6:-1, 0].tolist() == expected_firth[mode]
    assert mode == "always" or not ours.firth[:-6, 0].any()
    assert ours.error[-2, 0] == (OK if mode == "always" else NOT_CONVERGED) and ours.error[-1, 0] == MONOMORPHIC
    assert ours.error[-6, 0] == (SEPARATION if mode == "never" else OK)


def test_logistic_association__matches_plink2_glm_on_dosages(tmp_path):
    rng = np.random.default_rng(5)
    dosages, y, covariates = simulate(rng, n=700, variants=12, phenotypes=1, missing_calls=0.0)
    dosages = np.clip(dosages + rng.normal(0, 0.15, dosages.shape), 0, 2)
    cases, n = y[:, 0] == 1, len(y)
    dosages[0] = np.where(cases & (rng.random(n) < 0.03), rng.uniform(0.5, 1.5, n), 0.0)  # SEPARATION,ALT1
    dosages[1] = np.where(cases, 2.0, rng.choice([0.0, 1.0, 2.0], n))                    # SEPARATION,REF
    dosages[2] = np.where(cases, dosages[2], 0.0)
    dosages[2, np.flatnonzero(y[:, 0] == 0)[0]] = 1 / 16384  # one control a hair above 0: not separated, but
    dosages = np.round(dosages * 16384) / 16384              # the logistic fit fails (LOGISTIC_CONVERGE_FAIL)
    dosages[3, 7] = np.nan                                    # (and all on plink2's dosage grid)
    genotypes, missing = kernel_inputs(dosages)
    ours = logistic_association(genotypes, y, covariates, missing=missing)
    theirs = _glm_on_dosages(tmp_path, dosages, y[:, 0], covariates[:, 1:])
    _assert_same_as_plink2(ours, theirs, firth_used=True)
    assert ours.firth[:3, 0].all() and not ours.firth[3:, 0].any() and (ours.error[:, 0] == OK).all()
    never = logistic_association(genotypes, y, covariates, missing=missing, firth="never")
    assert [ERRORS[e] for e in never.error[:3, 0]] == ["separation", "separation", "not converged"]


def test_logistic_association__firth_solves_the_penalised_score_equations():
    rng = np.random.default_rng(7)
    dosages, y, covariates = simulate(rng, n=400, variants=8, phenotypes=1)
    dosages = with_hard_cases(rng, dosages, y[:, 0])[:-2]
    genotypes, missing = kernel_inputs(dosages)
    result = logistic_association(genotypes, y, covariates, missing=missing, firth="always")
    assert (result.error == OK).all()
    for v in range(len(dosages)):
        used = ~np.isnan(dosages[v]) & ~np.isnan(y[:, 0])
        beta, se = textbook_firth(y[used, 0], np.column_stack([covariates[used], dosages[v, used]]))
        np.testing.assert_allclose([result.beta[v, 0], result.se[v, 0]], [beta, se], rtol=1e-8)


def textbook_firth(y, x, *, steps=500):
    """Firth's estimate by scoring on X'(y − π + h(½ − π)), h = diag W½X(X'WX)⁻¹X'W½, step-halved
    while a step lowers the penalised likelihood by more than its rounding (below that, near the
    root, a halving would only stall the scoring short of it)."""
    def at(beta):
        p = special.expit(x @ beta)
        information = x.T @ (x * (p * (1 - p))[:, None])
        root_w_x = x * np.sqrt(p * (1 - p))[:, None]
        hat = np.einsum("ij,jk,ik->i", root_w_x, np.linalg.inv(information), root_w_x)
        penalised = np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)) + 0.5 * np.linalg.slogdet(information)[1]
        return penalised, np.linalg.solve(information, x.T @ (y - p + hat * (0.5 - p))), information

    beta = np.zeros(x.shape[1])
    for _ in range(steps):
        penalised, step, _ = at(beta)
        while at(beta + step)[0] < penalised - 1e-12 * abs(penalised) and np.abs(step).max() > 1e-12:
            step /= 2
        beta = beta + step
        if np.abs(step).max() < 1e-12:
            break
    return beta[-1], np.sqrt(np.linalg.inv(at(beta)[2])[-1, -1])


def test_logistic_association__many_phenotypes_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(2)
    dosages, y, covariates = simulate(rng, phenotypes=3)
    dosages = with_hard_cases(rng, dosages, y[:, 1])
    genotypes, missing = kernel_inputs(dosages)
    together = logistic_association(genotypes, y, covariates, missing=missing)
    for j in range(3):
        alone = logistic_association(genotypes, y[:, [j]], covariates, missing=missing)
        for name in ("beta", "se", "statistic", "log10p", "n", "error", "firth", "alt_freq"):
            np.testing.assert_array_equal(getattr(alone, name)[:, 0], getattr(together, name)[:, j], err_msg=name)
    some = logistic_association(genotypes[7:12], y, covariates, missing=missing[7:12])  # other BLAS blocking
    np.testing.assert_allclose(some.statistic, together.statistic[7:12], rtol=1e-12)


def test_logistic_association__recovers_a_planted_effect_and_keeps_nulls_calm():
    rng = np.random.default_rng(6)
    n, variants = 3000, 300
    covariates = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    genotypes = rng.binomial(2, rng.uniform(0.1, 0.5, (variants, 1)), (variants, n)).astype(float)
    genotypes[0] = rng.binomial(2, 0.3, n)
    y = rng.random(n) < special.expit(-1 + covariates[:, 1:] @ [0.5, -0.5] + 0.5 * genotypes[0])
    result = logistic_association(genotypes, y[:, None].astype(float), covariates)
    assert result.p[0, 0] < 1e-7 and abs(result.beta[0, 0] - 0.5) < 3 * result.se[0, 0]
    null_p = result.p[1:, 0]
    assert 0.005 < np.mean(null_p < 0.05) < 0.1 and 0.4 < np.median(null_p) < 0.6


def test_logistic_association__says_why_a_test_could_not_run():
    rng = np.random.default_rng(4)
    dosages, y, covariates = simulate(rng, n=300, variants=5, phenotypes=1, missing_calls=0.0, missing_phenotypes=0.0)
    dosages[0] = 1.0                                               # monomorphic
    dosages[1] = y[:, 0]                                           # completely separated
    dosages[2] = 2 * covariates[:, 2]                              # collinear with a covariate
    dosages[3] = np.where(y[:, 0] == 1, np.nan, dosages[3])        # no case has a call
    genotypes, missing = kernel_inputs(dosages)
    result = {mode: logistic_association(genotypes, y, covariates, missing=missing, firth=mode) for mode in MODES}
    errors = [ERRORS[e] for e in result["never"].error[:4, 0]]
    assert errors == ["monomorphic", "separation", "collinear", "too few samples"]
    assert np.isnan(result["never"].beta[:4, 0]).all() and result["never"].error[4, 0] == OK
    assert result["fallback"].firth[1, 0] and result["fallback"].error[1, 0] == NOT_CONVERGED  # as plink2: UNFINISHED
    assert [ERRORS[e] for e in result["always"].error[[0, 2, 3], 0]] == ["monomorphic", "collinear", "too few samples"]
    with pytest.raises(ValueError, match="firth"):
        logistic_association(genotypes, y, covariates, firth="sometimes")
    with pytest.raises(ValueError, match="phenotype column 0"):
        logistic_association(genotypes, y + 1, covariates)


def _assert_same_as_plink2(ours, theirs, *, firth_used):
    """Same samples, error codes and Firth flags; the numbers as close as plink2's precision allows.

    plink2 2.00a3.5 fits in single precision, stops its logistic fit at Σ|Δβ| < 1e-4 and
    reports the SE of the iterate before that last step (so its SEs run ~1e-5 low), and
    prints 6 digits: 2e-5 for logistic fits. Its Firth fits stop at steps of 1e-4 on
    iterates that rounding sends a little off course: 1e-3. beta is compared in units of
    its SE, and p through z (a relative error ε in z is one of about z²ε in p).
    """
    np.testing.assert_array_equal(ours.n[:, 0], theirs["n"])
    for error, their_error in zip(ours.error[:, 0], theirs["error"]):
        assert error in np.atleast_1d(PLINK2_ERRORS[their_error]), (ERRORS[error], their_error)
    ran = np.isin(theirs["error"], [None, "UNFINISHED"])
    np.testing.assert_array_equal(ours.firth[ran, 0], theirs["firth"][ran])
    assert firth_used or not theirs["firth"].any()
    for used_firth, rtol in ((False, 2e-5), (True, 1e-3)):
        rows = (theirs["error"] == None) & (theirs["firth"] == used_firth)  # noqa: E711 (elementwise)
        se, z = theirs["se"][rows], theirs["statistic"][rows]
        np.testing.assert_allclose(ours.beta[rows, 0] / se, theirs["beta"][rows] / se, atol=rtol, rtol=0)
        np.testing.assert_allclose(ours.se[rows, 0], se, rtol=rtol)
        np.testing.assert_allclose(ours.statistic[rows, 0], z, rtol=rtol, atol=rtol)
        log10p_error = np.abs(ours.log10p[rows, 0] + np.log10(theirs["p"][rows]))
        assert (log10p_error <= rtol * (1 + z ** 2) / np.log(10) + 1e-5).all(), log10p_error.max()


def _glm_on_dosages(tmp: Path, dosages: np.ndarray, y: np.ndarray, covariates: np.ndarray) -> dict[str, np.ndarray]:
    """plink2 --glm (default firth-fallback) on dosages, through its PLINK 1 dosage import.

    The harness in plink2_glm.py writes hard calls only; this is its minimal twin for
    dosages on plink2's 1/16384 grid (NaN missing). Returns the ADD rows as arrays.
    """
    n = len(y)
    ids = [f"s{j}" for j in range(n)]
    lines = ["CHR POS SNP A1 A2 " + " ".join(f"{i} {i}" for i in ids)]
    lines += [f"1 {1000 * (v + 1)} v{v} T C " + " ".join("NA" if np.isnan(d) else f"{d:.9f}" for d in row)
              for v, row in enumerate(dosages)]
    (tmp / "data.dosage").write_text("\n".join(lines) + "\n")
    (tmp / "data.fam").write_text("".join(f"{i}\t{i}\t0\t0\t0\t-9\n" for i in ids))
    (tmp / "pheno.tsv").write_text("#FID\tIID\tp\n" + "".join(
        f"{i}\t{i}\t{'NA' if np.isnan(v) else int(v)}\n" for i, v in zip(ids, y)))
    (tmp / "covar.tsv").write_text("#FID\tIID\t" + "\t".join(f"c{c}" for c in range(covariates.shape[1])) + "\n" + "".join(
        f"{i}\t{i}\t" + "\t".join(f"{v:.17g}" for v in row) + "\n" for i, row in zip(ids, covariates)))
    subprocess.run([PLINK2, "--import-dosage", tmp / "data.dosage", "skip0=2", "chr-col-num=1", "pos-col-num=2",
                    "format=1", "ref-last", "--fam", tmp / "data.fam", "--pheno", tmp / "pheno.tsv", "--no-psam-pheno",
                    "--1", "--covar", tmp / "covar.tsv", "--threads", "1", "--glm", "hide-covar", "omit-ref",
                    "cols=firth,nobs,beta,se,tz,p,err", "--out", tmp / "glm"], check=True, capture_output=True)
    header, *rows = [line.split("\t") for line in (tmp / "glm.p.glm.logistic.hybrid").read_text().splitlines()]
    columns = {name: [row[i] for row in rows] for i, name in enumerate(header)}
    assert set(columns["A1"]) == {"T"}

    def floats(name):
        return np.array([np.nan if x == "NA" else float(x) for x in columns[name]])

    return {"n": np.array(columns["OBS_CT"], dtype=np.int64), "beta": floats("BETA"), "se": floats("SE"),
            "statistic": floats("Z_STAT"), "p": floats("P"), "firth": np.array(columns["FIRTH?"]) == "Y",
            "error": [None if e == "." else e for e in columns["ERRCODE"]]}
