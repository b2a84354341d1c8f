"""Run PLINK 2's ``--glm`` on in-memory arrays, so tests can compare our GWAS numbers with it.

Facts about PLINK v2.00a3.5 that callers rely on:

* It prints 6 significant digits and has no flag to print more (``--output-min-p`` only
  floors p-values), so compare at rtol ≈ 1e-5 (linear, double precision inside).
  Logistic and Firth regressions run in single precision with loose convergence
  (sum |Δβ| < 1e-4), so compare those at rtol ≈ 1e-4 or looser.
* Variants: chromosome 1, ids ``v0, v1, …``, ALT ``T`` (the .bim A1) and REF ``C``.
  ``omit-ref`` is always passed, so every row is for the ALT allele; without it PLINK 2
  reports the REF allele whenever ALT is the major one.
* Phenotypes are written 0/1 and read with ``--1``; PLINK 2 then takes *any* column whose
  values are all 0/1 as case/control, so such a column can't be tested as quantitative.
  ``--no-input-missing-phenotype`` keeps -9 a number ('NA' is the only missing value).
* ``alt_freq`` (A1_FREQ) and ``n`` (OBS_CT) count only the samples in that regression.
* Covariates are used as given (never standardized). PLINK 2 exits with an error for the
  whole phenotype when the covariates alone are collinear (VIF/corr) or when max(raw Σx²,
  1.5n) > 2^20 · min(centred Σ(x - mean)², 0.0198(n-1)) over covariate columns (e.g. an N(0, 1)
  covariate shifted by 150; ``--covar-variance-standardize`` fixes that). Per variant it
  reports NA with CORR_TOO_HIGH (|r| > 0.999 between two predictors, ``--max-corr``) or
  VIF_TOO_HIGH (VIF > 50, ``--vif``).
"""

from __future__ import annotations

import csv
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from biolake.lake.vectors import encode_calls

PLINK2 = shutil.which("plink2") or "plink2"

_SUFFIXES = (".glm.linear", ".glm.logistic.hybrid", ".glm.logistic", ".glm.firth")
_COLS = "chrom,pos,ref,alt,a1freq,firth,test,nobs,beta,se,tz,p,err"
_FLOATS = {"alt_freq": "A1_FREQ", "beta": "BETA", "se": "SE", "p": "P"}


def run_glm(tmp: Path, *, dosages: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray | None,
            binary: bool = False, glm_modifiers: Sequence[str] = (),
            extra_args: Sequence[str] = ()) -> list[dict[str, np.ndarray]]:
    """PLINK 2's ADD-test rows per phenotype column (in order), as arrays keyed by our names.

    ``dosages`` are alt counts 0/1/2 (variants × samples, NaN missing); ``phenotypes`` are
    samples × phenotypes (NaN missing, 0/1 when ``binary``); ``covariates`` are samples ×
    covariates without an intercept, or None. Keys: variant_id, alt, n, alt_freq, beta (log odds
    ratio for logistic), se, statistic, p (NaN where PLINK 2 printed NA), error (ERRCODE or
    None) and firth (True where Firth regression was used).
    """
    out, names = _run(tmp, dosages=dosages, phenotypes=phenotypes, covariates=covariates, binary=binary,
                      modifiers=["hide-covar", "omit-ref", f"cols={_COLS}", *glm_modifiers], extra_args=extra_args)
    return [_read_report(out, name) for name in names]


def run_glm_interaction(tmp: Path, *, dosages: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray,
                        exposures: Sequence[int], interacting: Sequence[int] | None = None) -> list[dict[str, np.ndarray]]:
    """``plink2 --glm interaction``: y ~ covariates + g + g×covariate[e] per variant, per phenotype.

    ``covariates`` (samples × k, no intercept) include the exposures, whose column positions
    ``exposures`` gives. The g×covariate terms of ``interacting`` (default: the exposures)
    enter the model (``--parameters``); ``--tests`` adds the joint test of g and g×exposures.
    PLINK 2's default allele coding is kept (A1 = the minor allele, as its VIF check sees it);
    rows are turned to the ALT allele here (betas and t negated where A1 is REF).
    Keys: variant_id, n, alt_freq, beta_g, se_g, beta_gxe, se_gxe, t_gxe, p_gxe (the last four
    variants × exposures), f_joint, p_joint, error.
    """
    k = np.shape(covariates)[1]
    interacting = sorted(set(exposures if interacting is None else interacting) | set(exposures))
    parameters = [*range(1, k + 2), *[k + 2 + j for j in interacting]]  # ADD, covariates, ADDx each covariate
    joint = [1, *[parameters.index(k + 2 + j) + 1 for j in exposures]]   # numbered within --parameters
    extra = ["--parameters", ",".join(map(str, parameters)), "--tests", ",".join(map(str, joint))]
    out, names = _run(tmp, dosages=dosages, phenotypes=phenotypes, covariates=covariates, binary=False,
                      modifiers=["interaction", "cols=+a1freq"], extra_args=extra)
    exposure_tests = [f"ADDxc{j}" for j in exposures]
    return [_read_interaction(out, name, exposure_tests) for name in names]


def _run(tmp: Path, *, dosages: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray | None, binary: bool,
         modifiers: list[str], extra_args: Sequence[str]) -> tuple[Path, list[str]]:
    """Write the fileset, phenotypes and covariates; run ``plink2 --glm``; its output prefix and phenotype names."""
    tmp = Path(tmp)
    tmp.mkdir(parents=True, exist_ok=True)
    dosages, phenotypes = np.asarray(dosages, float), np.asarray(phenotypes, float)
    if phenotypes.ndim == 1:
        phenotypes = phenotypes[:, None]
    n_variants, n_samples = dosages.shape
    _check_inputs(dosages, phenotypes, covariates, binary)
    prefix = tmp / "data"
    with open(prefix.with_suffix(".bed"), "wb") as bed:
        bed.write(bytes([0x6C, 0x1B, 0x01]))
        bed.write(np.ascontiguousarray(encode_calls(dosages)).tobytes())
    prefix.with_suffix(".bim").write_text(
        "".join(f"1\tv{i}\t0\t{1000 * (i + 1)}\tT\tC\n" for i in range(n_variants)))
    prefix.with_suffix(".fam").write_text("".join(f"s{j}\ts{j}\t0\t0\t0\t-9\n" for j in range(n_samples)))
    names = [f"p{k}" for k in range(phenotypes.shape[1])]
    _write_table(tmp / "pheno.tsv", names, phenotypes, "%d" if binary else "%.17g")
    args = [PLINK2, "--bfile", str(prefix), "--pheno", str(tmp / "pheno.tsv"), "--no-psam-pheno", "--1",
            "--no-input-missing-phenotype", "--threads", "1"]
    if covariates is not None and np.shape(covariates)[1] > 0:
        covariates = np.asarray(covariates, float)
        _write_table(tmp / "covar.tsv", [f"c{k}" for k in range(covariates.shape[1])], covariates, "%.17g")
        args += ["--covar", str(tmp / "covar.tsv")]
    else:
        modifiers = [*modifiers, "allow-no-covars"]
    out = tmp / "glm"
    args += ["--glm", *modifiers, *extra_args, "--out", str(out)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        log = out.with_suffix(".log")
        tail = (log.read_text() if log.exists() else done.stdout + done.stderr).splitlines()[-25:]
        raise RuntimeError(f"plink2 failed (exit {done.returncode}):\n" + "\n".join(tail))
    return out, names


def _check_inputs(dosages: np.ndarray, phenotypes: np.ndarray, covariates: np.ndarray | None,
                  binary: bool) -> None:
    """Refuse inputs PLINK 2 would silently read differently from what was meant."""
    called = dosages[~np.isnan(dosages)]
    if not np.isin(called, (0, 1, 2)).all():
        raise ValueError("dosages must be alt-allele counts 0, 1, 2 or NaN")
    if phenotypes.shape[0] != dosages.shape[1]:
        raise ValueError("phenotypes must have one row per sample")
    for column in phenotypes.T:
        is_01 = np.isin(column[~np.isnan(column)], (0, 1)).all()
        if binary and not is_01:
            raise ValueError("binary phenotypes must be coded 0/1 (NaN missing)")
        if not binary and is_01:
            raise ValueError("plink2 --1 reads a 0/1-valued phenotype as case/control, not quantitative")
    if covariates is not None and (np.shape(covariates)[0] != dosages.shape[1] or np.isnan(covariates).any()):
        raise ValueError("covariates must be complete, with one row per sample")


def _write_table(path: Path, names: list[str], values: np.ndarray, fmt: str) -> None:
    """A PLINK 2 phenotype/covariate file: '#FID IID names…', 'NA' for missing."""
    lines = ["\t".join(["#FID", "IID", *names])]
    for j, row in enumerate(values):
        cells = ("NA" if np.isnan(v) else fmt % v for v in row)
        lines.append("\t".join([f"s{j}", f"s{j}", *cells]))
    path.write_text("\n".join(lines) + "\n")


def _read_report(out: Path, name: str) -> dict[str, np.ndarray]:
    """Parse the one ``<out>.<name>.glm.*`` report PLINK 2 wrote, keeping ADD rows."""
    found = [p for s in _SUFFIXES if (p := Path(f"{out}.{name}{s}")).exists()]
    if len(found) != 1:
        raise RuntimeError(f"expected one plink2 report for {name}, found {found}")
    with open(found[0], newline="") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["TEST"] == "ADD"]

    def floats(column: str) -> np.ndarray:
        return np.array([np.nan if r[column] == "NA" else float(r[column]) for r in rows])

    stat = "T_STAT" if found[0].name.endswith(".linear") else "Z_STAT"
    always_firth = found[0].name.endswith(".firth")
    return {
        "variant_id": np.array([r["ID"] for r in rows], dtype=str),
        "alt": np.array([r["A1"] for r in rows], dtype=str),
        "n": np.array([int(r["OBS_CT"]) for r in rows], dtype=np.int64),
        **{key: floats(column) for key, column in _FLOATS.items()},
        "statistic": floats(stat),
        "error": np.array([None if r["ERRCODE"] == "." else r["ERRCODE"] for r in rows], dtype=object),
        "firth": np.array([always_firth or r.get("FIRTH?") == "Y" for r in rows], dtype=bool),
    }


def _read_interaction(out: Path, name: str, exposure_tests: list[str]) -> dict[str, np.ndarray]:
    """Parse ``<out>.<name>.glm.linear`` of an interaction run, one entry per variant."""
    with open(f"{out}.{name}.glm.linear", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    by_variant: dict[str, dict[str, dict]] = {}
    for row in rows:
        by_variant.setdefault(row["ID"], {})[row["TEST"]] = row
    ids = list(by_variant)

    def value(test: str, column: str) -> np.ndarray:
        return np.array([np.nan if (r := by_variant[v].get(test)) is None or r[column] == "NA" else float(r[column])
                         for v in ids])

    flip = np.array([by_variant[v]["ADD"]["A1"] != by_variant[v]["ADD"]["ALT"] for v in ids])
    sign = np.where(flip, -1.0, 1.0)
    joint = next(t for t in by_variant[ids[0]] if t.startswith("USER_"))
    gxe = {key: np.column_stack([value(t, column) for t in exposure_tests])
           for key, column in (("beta_gxe", "BETA"), ("se_gxe", "SE"), ("t_gxe", "T_OR_F_STAT"), ("p_gxe", "P"))}
    gxe["beta_gxe"] *= sign[:, None]
    gxe["t_gxe"] *= sign[:, None]
    a1_freq = value("ADD", "A1_FREQ")
    return {
        "variant_id": np.array(ids, dtype=str), "n": value("ADD", "OBS_CT").astype(np.int64),
        "alt_freq": np.where(flip, 1.0 - a1_freq, a1_freq),
        "beta_g": sign * value("ADD", "BETA"), "se_g": value("ADD", "SE"), **gxe,
        "f_joint": value(joint, "T_OR_F_STAT"), "p_joint": value(joint, "P"),
        "error": np.array([None if (e := by_variant[v]["ADD"]["ERRCODE"]) == "." else e for v in ids], dtype=object),
    }


def plink2(*args: str) -> str:
    """Run plink2 on files (one thread), asserting it succeeds; returns its log as printed."""
    done = subprocess.run([PLINK2, *args, "--threads", "1"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def write_design_files(chosen, folder: Path) -> tuple[Path, Path]:
    """A design's phenotypes and covariates (intercept left out) as plink2 --pheno and --covar files, FID = IID =
    participant id, columns c0, c1, …; read them with --no-psam-pheno --no-input-missing-phenotype."""
    paths = []
    for name, values in (("pheno", chosen.phenotypes), ("covar", chosen.covariates[:, 1:])):
        path = folder / f"{name}.tsv"
        with path.open("w") as out:
            out.write("\t".join(["#FID", "IID", *(f"c{j}" for j in range(values.shape[1]))]) + "\n")
            for pid, row in zip(chosen.participant_ids, values):
                out.write("\t".join([pid, pid, *("NA" if np.isnan(v) else repr(float(v)) for v in row)]) + "\n")
        paths.append(path)
    return paths[0], paths[1]


def read_bed_codes(path: Path, n_samples: int) -> tuple[bytes, np.ndarray]:
    """A .bed's magic bytes and its 2-bit codes, variants × samples (0 hom A1, 1 missing, 2 het, 3 hom A2)."""
    raw = np.frombuffer(path.read_bytes(), np.uint8)
    width = (n_samples + 3) // 4
    body = raw[3:].reshape(-1, width)
    codes = ((body[:, :, None] >> np.array([0, 2, 4, 6], np.uint8)) & 3).reshape(len(body), -1)[:, :n_samples]
    return raw[:3].tobytes(), codes.copy()


def write_bed_codes(path: Path, magic: bytes, codes: np.ndarray) -> None:
    """Write codes as :func:`read_bed_codes` gives them back into a .bed."""
    variants, n_samples = codes.shape
    width = (n_samples + 3) // 4
    padded = np.zeros((variants, width * 4), np.uint8)
    padded[:, :n_samples] = codes
    packed = (padded.reshape(variants, width, 4) << np.array([0, 2, 4, 6], np.uint8)).sum(axis=2, dtype=np.uint8)
    path.write_bytes(magic + packed.tobytes())
