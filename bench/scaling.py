"""Per-block costs of the scans, measured here, for extrapolating to biobank size (docs/SCALING.md).

A cluster run is (blocks × cost per block) / cores + scheduling: this measures each term on
one core, in process (no start-up), on the lakes `bench/run.py` builds:

    python bench/scaling.py      # after: python bench/run.py --tasks gwas,ewas  (~2 min)

Rows: GWAS seconds per 1,000 variants × 10,000 samples for P = 1, 100 and 1,000 phenotypes
(read, decode, kernel, results written as Parquet); EWAS seconds per 1,000 CpGs × 1,000
samples; dask's overhead per task on a LocalCluster; bytes a task sends (its block
reference) and the inputs scattered once; lake bytes read per variant and sample.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")   # one core: the cost a single dask worker pays (set before numpy)

import io  # noqa: E402
import pickle  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from biolake.cluster import dask_client  # noqa: E402
from biolake.ewas import EwasInputs  # noqa: E402
from biolake.gwas import GwasSettings, block_inputs  # noqa: E402
from biolake.lake.lake import Lake  # noqa: E402
from biolake.queries import connect, design  # noqa: E402
from biolake.queries.blocks import genotype_blocks, methylation_blocks, read_genotype_blocks  # noqa: E402
from biolake.stats.linear import prepare_linear  # noqa: E402

DATA = Path(__file__).resolve().parent / ".data"
COVARIATES = ["age", "sex", "site", "PC1", "PC2", "PC3", "PC4", "PC5"]
GWAS_LAKES = {1: "lake-10000x20000-i100-m0-q0", 100: "lake-10000x20000-i100-m0-q0", 1000: "lake-10000x20000-i1000-m0"}


def gwas_block_seconds(phenotypes: int, *, blocks: int = 3) -> tuple[float, int, int]:
    """Seconds per 1,000 variants × 10,000 samples for ``phenotypes`` IDPs; and their missingness patterns."""
    lake = Lake.open(DATA / GWAS_LAKES[phenotypes])
    with connect(lake) as con:
        names = [c for c in con.sql("SELECT * FROM idps LIMIT 0").columns if c not in ("participant_id", "release")]
        chosen = design(con, phenotypes=names[:phenotypes], covariates=COVARIATES)
    inputs = block_inputs(chosen, settings=GwasSettings(name="x", phenotypes=names[:phenotypes], covariates=COVARIATES))
    patterns = len({tuple(np.isnan(column)) for column in chosen.phenotypes.T})
    chosen_blocks = genotype_blocks(lake)[:blocks]
    start, variants = time.perf_counter(), 0
    for block in chosen_blocks:
        with pq.ParquetWriter(io.BytesIO(), inputs.schema, compression="zstd") as out:
            for decoded in read_genotype_blocks(block, n_samples=inputs.n_samples, samples=inputs.samples):
                table, _ = inputs.test(decoded)
                out.write_table(table)
                variants += decoded.variants.num_rows
    seconds = time.perf_counter() - start
    return seconds / variants * 1000 * 10_000 / len(chosen.participant_ids), patterns, len(chosen.participant_ids)


def ewas_block_seconds(*, blocks: int = 4) -> float:
    """Seconds per 1,000 CpGs × 1,000 samples (one exposure, 7-column design)."""
    lake = Lake.open(DATA / "lake-ewas-200000x1000")
    with connect(lake) as con:
        chosen = design(con, phenotypes="SELECT participant_id, stress FROM covariates",
                        covariates=["age", "sex", "site"], assay="methylation")
    inputs = EwasInputs(chosen.vector_length, chosen.selection, "m", prepare_linear(chosen.phenotypes, chosen.covariates),
                        chosen.phenotype_names)
    start, cpgs = time.perf_counter(), 0
    for block in methylation_blocks(lake)[:blocks]:
        cpgs += sum(fits.num_rows for fits, _, _ in inputs.results(block))
    return (time.perf_counter() - start) / cpgs * 1000 * 1000 / len(chosen.participant_ids)


def dask_overhead(tasks: int = 400) -> float:
    """Seconds of scheduling per task: tiny tasks through a LocalCluster of two processes."""
    with dask_client(workers=2) as client:
        client.gather(client.map(len, [b"x"] * 20, pure=False))   # warm
        start = time.perf_counter()
        client.gather(client.map(len, [b"x" * 200] * tasks, pure=False))
        return (time.perf_counter() - start) / tasks


def main() -> None:
    rows = []
    for phenotypes in (1, 100, 1000):
        seconds, patterns, samples = gwas_block_seconds(phenotypes)
        rows.append((f"GWAS, P={phenotypes:,} ({patterns} missingness patterns, N={samples:,})",
                     f"{seconds:.3f} s per 1,000 variants x 10,000 samples"))
    rows.append(("EWAS, 1 exposure, 7-column design", f"{ewas_block_seconds():.4f} s per 1,000 CpGs x 1,000 samples"))
    rows.append(("dask scheduling, LocalCluster", f"{dask_overhead() * 1e3:.2f} ms per task"))
    lake = Lake.open(DATA / GWAS_LAKES[1000])
    blocks = genotype_blocks(lake)
    per_task = len(pickle.dumps((blocks[0], lake.results_files("x").public())))
    rows.append(("bytes sent per task (block + results file)", f"{per_task:,} B"))
    files = list((DATA / GWAS_LAKES[1000] / "genotypes").rglob("*.parquet"))
    stored = sum(f.stat().st_size for f in files)
    variants = lake.read("variants", columns=["variant_id"]).num_rows
    rows.append(("lake bytes read per variant x sample (hard calls)", f"{stored / variants / 10_000:.4f} B "
                 f"({stored / variants:,.0f} B per variant at N=10,000; .bed: 2,500)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
