"""A lake of an LD panel with phenotypes and covariates simulated by a test, and its relationship matrix K as a file,
as the GEMMA comparisons (test_heritability, test_lmm) give it to ``gemma -k``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from biolake.heritability import RelationshipInputs, relationship_sum
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.lake import Lake
from biolake.queries.blocks import genotype_blocks
from biolake.stats.heritability import symmetric
from biolake.stats.ld import standardized_genotypes
from biolake.synth import LdPanel

GEMMA = shutil.which("gemma") or "gemma"


def panel_lake(folder: Path, panel: LdPanel, phenotypes: np.ndarray, names: list[str],
               covariates: np.ndarray) -> tuple[Lake, np.ndarray, int]:
    """Ingest ``panel`` with ``phenotypes`` (samples × names, NaN missing) as idps and ``covariates`` (intercept, age,
    sex) as release 'panel' of ``folder``/lake (:func:`ingested_lake`); write K (GEMMA's -gk 2 from the lake) as
    ``folder``/grm.txt and the covariates as ``folder``/covariates.txt. Returns the lake, K and the count of its
    variants."""
    lake = ingested_lake(folder, panel.prefix, phenotypes, names, covariates)
    inputs = RelationshipInputs(len(phenotypes), None, 0.01, 0.05)
    cross, variants = relationship_sum(lake, inputs, genotype_blocks(lake, release="panel"), workers=1)
    np.savetxt(folder / "grm.txt", symmetric(cross) / variants, fmt="%.17g")
    np.savetxt(folder / "covariates.txt", covariates, fmt="%.17g")
    return lake, symmetric(cross) / variants, variants


def ingested_lake(folder: Path, bfile: Path, phenotypes: np.ndarray, names: list[str], covariates: np.ndarray) -> Lake:
    """The PLINK fileset ``bfile`` (samples s0, s1, … in .fam order) with ``phenotypes`` (samples × names, NaN
    missing) as idps and ``covariates`` (intercept, age, sex) ingested as release 'panel' of ``folder``/lake."""
    ids = [f"s{i}" for i in range(len(phenotypes))]

    def csv(path: Path, columns: list[str], values: np.ndarray) -> Path:
        rows = [",".join([pid, *("" if np.isnan(v) else repr(float(v)) for v in row)]) for pid, row in zip(ids, values)]
        path.write_text(",".join(["participant_id", *columns]) + "\n" + "\n".join(rows) + "\n")
        return path

    lake = Lake.init(folder / "lake")
    ingest_release(lake, ReleaseSources(bfile=bfile, idps=csv(folder / "idps.csv", names, phenotypes),
                                        covariates=csv(folder / "covariates.csv", ["age", "sex"],
                                                       covariates[:, 1:])),
                   release="panel", source="test")
    return lake


def run_gemma(folder: Path, bfile: Path, y: np.ndarray, *flags: str, out: str) -> str:
    """GEMMA (Debian's ``gemma``) on the PLINK fileset ``bfile`` with phenotype ``y`` (NaN → NA) and the covariates
    :func:`panel_lake` wrote, its outputs ``out``.* in ``folder``; its stdout."""
    pheno = folder / f"{out}.pheno.txt"
    pheno.write_text("".join(("NA" if np.isnan(v) else repr(float(v))) + "\n" for v in y))
    done = subprocess.run([GEMMA, "-bfile", str(bfile), "-p", str(pheno), "-c", str(folder / "covariates.txt"), *flags,
                           "-o", out, "-outdir", str(folder)], capture_output=True, text=True, cwd=folder)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def simulated_phenotypes(panel: LdPanel, h2s: list[float], *, rng: np.random.Generator,
                         planted: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Phenotypes (samples × len(``h2s``)) with a polygenic background of heritability h² on ``panel``'s standardised
    genotypes, effects of age and sex, and the ``planted`` variant's standardised genotype added to each; and the
    covariates (intercept, age, sex). Complete: the caller drops values."""
    lost = np.isnan(panel.dosages)
    z = standardized_genotypes(np.where(lost, 0.0, panel.dosages), lost).astype(np.float64)   # variants × samples
    variants, samples = z.shape
    age, sex = rng.normal(60, 7, samples), rng.integers(0, 2, samples).astype(float)
    effect = 0.0 if planted is None else z[planted]
    phenotypes = np.column_stack([
        z.T @ rng.normal(0, np.sqrt(h2 / variants), variants) + effect + rng.normal(0, np.sqrt(1 - h2), samples)
        + 0.05 * age + 0.7 * sex for h2 in h2s])
    return phenotypes, np.column_stack([np.ones(samples), age, sex])
