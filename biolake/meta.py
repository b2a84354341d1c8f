"""The meta-analysis job: K GWAS results tables (sites, cohorts) → one combined results table.

Rows are matched by phenotype, position and allele pair (in either order, on either strand)
and put on the alleles of the first cohort that has the variant (a swapped ref/alt flips the
sign; the other strand is recognised). A position where cohorts report different allele
pairs (a multi-allelic site) gives one combined row per pair, and is counted. Each chromosome is combined on
its own, so memory follows the largest chromosome, not the genome.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.frame import provenance_header
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.run import Run
from biolake.stats.association import p_from_log10p
from biolake.stats.meta import align_alleles, allele_pair, inverse_variance

NEEDED = ("phenotype", "variant_id", "chrom", "pos", "ref", "alt", "n", "beta", "se")
META_SCHEMA = RESULTS_KINDS["meta"].arrow_schema()


@dataclass(frozen=True)
class MetaReport:
    """What a meta-analysis wrote: rows, genome-wide hits, and positions with several allele pairs."""

    name: str
    version: int
    cohorts: list[str]
    rows: int
    hits: int                # fixed-effect p < 5e-8
    multiallelic: int        # phenotype × positions with more than one allele pair (each combined on its own)


def run_meta(lake: Lake, *, name: str, results: Sequence[str], replace: bool = False) -> MetaReport:
    """Meta-analyse the GWAS results tables ``results`` of ``lake`` into ``LAKE/results/name``
    (an existing table of that name is replaced only with ``replace``).

    Examples
    --------
    >>> report = run_meta(Lake.open("lake"), name="meta", results=["site_a", "site_b"])
    >>> report.hits, report.multiallelic
    (1, 0)
    """
    if len(results) < 2 or len(set(results)) != len(results):
        raise BiolakeError(f"a meta-analysis needs two or more different results tables, got {list(results)}")
    lake.check_results_free(name, replace=replace)
    datasets = [lake.results_dataset(result) for result in results]
    for result, dataset in zip(results, datasets):
        lacking = [column for column in NEEDED if column not in dataset.schema.names]
        if lacking:
            raise BiolakeError(f"results {result!r} lack the GWAS columns {', '.join(lacking)}")
    chromosomes = sorted({c for d in datasets for c in pc.unique(d.to_table(columns=["chrom"])["chrom"]).to_pylist()},
                         key=lambda c: (len(c), c))
    run = Run(lake, name, kind=RESULTS_KINDS["meta"])
    rows, hits, multiallelic = 0, 0, 0
    for chrom in chromosomes:
        table, split = meta_analyse([d.to_table(columns=list(NEEDED), filter=pc.field("chrom") == chrom)
                                       for d in datasets])
        run.write(table, schema=META_SCHEMA, part="meta")
        rows, multiallelic = rows + table.num_rows, multiallelic + split
        hits += int(pc.sum(pc.less(table["p"], 5e-8)).as_py() or 0)
    provenance = {**provenance_header("meta"), "cohorts": list(results),
                  "method": "inverse-variance fixed effects; DerSimonian-Laird random effects",
                  "multiallelic_positions": multiallelic}
    version = run.publish(schema=META_SCHEMA, provenance=provenance, replace=replace)
    return MetaReport(name, version, list(results), rows, hits, multiallelic)


def meta_analyse(cohorts: list[pa.Table]) -> tuple[pa.Table, int]:
    """Combine per-cohort GWAS rows (columns :data:`NEEDED`) by phenotype, position and allele pair.

    Returns the combined table (:data:`META_SCHEMA`) and how many phenotype × positions had
    more than one allele pair (each pair is a row of its own).
    """
    stacked = pa.concat_tables([t.append_column("cohort", pa.array(np.full(t.num_rows, k), pa.int64()))
                                for k, t in enumerate(cohorts)])
    stacked = stacked.append_column("pair", pa.array(allele_pair(stacked["ref"].to_numpy(zero_copy_only=False),
                                                                 stacked["alt"].to_numpy(zero_copy_only=False)),
                                                     pa.string()))
    stacked = stacked.sort_by([("phenotype", "ascending"), ("pos", "ascending"), ("pair", "ascending"),
                               ("cohort", "ascending")])
    get = {name: stacked[name].to_numpy(zero_copy_only=False) for name in (*NEEDED, "cohort", "pair")}
    phenotype, pos, pair = get["phenotype"].astype(str), get["pos"], get["pair"]
    new_position = np.r_[True, (phenotype[1:] != phenotype[:-1]) | (pos[1:] != pos[:-1])]
    starts = np.flatnonzero(new_position | np.r_[True, pair[1:] != pair[:-1]])
    groups = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(pos)]))
    sign, ambiguous = align_alleles(get["ref"], get["alt"], get["ref"][starts][groups], get["alt"][starts][groups])
    beta = get["beta"].astype(float) * sign   # within an allele pair, every row matches: same or swapped
    count = len(starts)
    result = inverse_variance(groups, beta, get["se"].astype(float), size=count)
    contributed = np.isfinite(beta) & (get["se"].astype(float) > 0)   # the rows the estimate used
    n = np.bincount(groups, np.where(contributed, np.nan_to_num(get["n"].astype(float)), 0.0), count).astype(np.int64)
    table = pa.table({
        "phenotype": pa.array(phenotype[starts]), "variant_id": get["variant_id"][starts],
        "chrom": get["chrom"][starts], "pos": pos[starts], "ref": get["ref"][starts], "alt": get["alt"][starts],
        "cohorts": result.cohorts, "n": n,
        **{name: pa.array(getattr(result, name), from_pandas=True) for name in ("beta", "se", "log10p", "q")},
        "p": pa.array(result.p, from_pandas=True), "p_q": pa.array(p_from_log10p(result.q_log10p), from_pandas=True),
        **{name: pa.array(getattr(result, name), from_pandas=True)
           for name in ("i2", "tau2", "beta_random", "se_random", "log10p_random")},
        "p_random": pa.array(p_from_log10p(result.log10p_random), from_pandas=True),
        "strand_ambiguous": np.bincount(groups, ambiguous, count) > 0,
    })
    position_of_group = (np.cumsum(new_position) - 1)[starts]
    return table.select(META_SCHEMA.names).cast(META_SCHEMA), int((np.bincount(position_of_group) > 1).sum())
