"""The main job on the embedded default lake: a synthetic release, ingested, queried, GWAS, EWAS, GxE, results.

Each data step is skipped when its output already exists, so the demo can be rerun;
the analyses always rerun, replacing their results tables. The GWAS is checked against the release's ``truth.json``:
every planted SNP→IDP effect must come out at p < 5e-8, and the null IDPs must not
show more genome-wide hits than chance allows; every planted CpG~stress effect must pass
the array-wide threshold (9e-8) in the EWAS; the planted SNP×stress interaction must
pass p < 5e-8 in the GxE scan, and null IDPs must show no interaction hit. The GWAS is
then summarised (lead hits, λGC, plots, an HTML report under ``out/`` beside the lake), its
hits clumped by LD (each planted variant must lie in a clump of its own IDP, and each planted
effect's hits collapse into one clump, as the synthetic genome's LD decays over ~100 kb), and
repeated per imaging site, whose meta-analysis must find the planted effects again; its
weights then score every participant (a polygenic score, joined to the IDP in SQL). Polygenic
scores for the oligogenic IDP (planted loci of differing LD) and the most heritable polygenic IDP are then
trained on three quarters of the participants and tested on the rest, with and without LD clumping (C+T): the
oligogenic IDP's best clumped score must beat its best unclumped one. Then the planted
heritability and genetic correlations are listed beside their estimates: the planted h² of at least
90 % of IDPs must lie inside the Haseman–Elston estimate's 95 % interval, the disorder's inside its
LD score regression estimate's, and every planted genetic correlation that LD score regression
estimates must come out with its sign. Last, relatedness: KING-robust kinship of every pair
(``biolake kinship``) against the planted pedigree (its pairs found per degree), the unrelated set,
and a mixed-model GWAS of the most heritable polygenic IDP beside the plain one, whose λGC its
polygenic signal and the release's relatives inflate. Then the planted IDPs are harmonised across the
imaging sites by ComBat (``biolake harmonize``): the share of their variance the site explains must fall,
ComBat's scale per site must follow the synthetic scanners' (truth.json's ``scanners``), and a GWAS of the
harmonised IDPs (no site covariate) must still find every planted effect. Last, ``biolake epistasis --with``
tests each planted SNP × SNP pair's first variant against every variant on the IDPs the pairs move: each
planted pair must pass 5e-8, and any other pair that does must be an LD proxy of a planted variant. Finally the
planted multivariate association (truth.json's ``multivariate``: a region's variants acting together on a pattern of
IDPs, each variant too weakly for the GWAS): ``biolake cca`` of the region's variants with every IDP of the
pattern's kind must find it out of sample (held-out folds, permutations), where the GWAS finds no variant of the
region past 5e-8, while the same CCA of the null region correlates near 0 out of sample. And the CNV calls
(truth.json's ``cnv``): each planted locus's carriers found by ``biolake cnv carriers``, and its effect on its IDP past
the Bonferroni threshold of ``biolake cnv assoc`` of every IDP.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.compute as pc

from biolake.cca import CcaSettings, run_cca
from biolake.clump import ClumpSettings, run_clump
from biolake.cnv import (CnvAssocSettings, CnvBurdenSettings, CnvCarriersSettings, run_cnv_assoc, run_cnv_burden,
                         run_cnv_carriers)
from biolake.epistasis import EpistasisSettings, run_epistasis
from biolake.ewas import ARRAY_WIDE, EwasSettings, run_ewas
from biolake.gwas import GwasReport, GwasSettings, run_gwas
from biolake.gxe import GxeReport, GxeSettings, run_gxe
from biolake.harmonize import HarmonizeSettings, fitted_combat, run_harmonize
from biolake.heritability import HeritabilitySettings, run_heritability
from biolake.kinship import KinshipSettings, run_kinship
from biolake.ldsc import H2Settings, RgSettings, run_h2, run_rg
from biolake.ldscores import LdScoreSettings, run_ldscores
from biolake.meta import run_meta
from biolake.prs import PRS_CLUMP, run_prs, score_column
from biolake.report import clumping_of, lead_hits, phenotype_summary, plot_results, write_report
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sumstats import import_sumstats
from biolake.lake.catalog import Catalog
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect
from biolake.queries.cnvs import CnvFilter
from biolake.queries.output import write_table
from biolake.stats.multiple import GENOME_WIDE

DEMO_SIZE = {"samples": 2000, "variants": 20000, "idps": 50, "cpgs": 5000, "seed": 1}
DEMO_GWAS = GwasSettings(
    name="demo_idps", phenotypes="SELECT * EXCLUDE (release) FROM idps",
    covariates=["age", "sex", "site", "head_motion", "PC1", "PC2", "PC3", "PC4", "PC5"], adjust=True, replace=True)
DEMO_EWAS = EwasSettings(name="demo_stress", exposures="SELECT participant_id, stress FROM covariates",
                         covariates=["age", "sex", "site"], replace=True)
DEMO_H2 = HeritabilitySettings(name="demo_h2", phenotypes=DEMO_GWAS.phenotypes, covariates=DEMO_GWAS.covariates,
                               replace=True)
DEMO_CLUMPS = ClumpSettings(name="demo_clumps", result=DEMO_GWAS.name, p1=5e-8, r2=0.1, kb=1000, replace=True)
# LD scores of the variants with MAF > 5 % (ldsc --l2 --maf 0.05): the h² LDSC reports is that of those (its M_5_50)
DEMO_LDSCORES = LdScoreSettings(name="demo_ldscores", min_maf=0.05, replace=True)
# KING's degrees: a pair of pedigree kinship φ is found when its estimate lies within φ / √2 and φ × √2
# (0.177 to 0.354 for first-degree relatives); the unrelated set drops one of each pair above 0.0884 (2nd degree)
DEMO_KINSHIP = KinshipSettings(name="demo_kinship", unrelated=0.0884, replace=True)
DEMO_LMM = "loco"   # the mixed model of gwas --lmm the demo compares with plain regression
DEMO_HARMONIZED = "demo_harmonized"   # the planted IDPs, ComBat across the imaging sites (age and sex kept)
DEMO_EPISTASIS = "demo_epistasis"     # the planted SNP × SNP pairs' first variants against every variant
DEMO_CCA = "demo_cca"                 # the multivariate association's region (then the null region, _null)
DEMO_CNV = "demo_cnv"                 # CNV assoc (its burden tests: _burden), carriers (_carriers), counts (_counts)
DEMO_CNV_SCAN_KB = 500                # the CNV scan's windows
STEPS = 17
GXE_NULL_IDPS = 4  # null IDPs scanned beside the planted one (each IDP's own missingness is a pass of its own)
HELD_OUT = "CAST(participant_id AS BIGINT) % 4 = 0"  # a quarter of the participants, to test scores on
# what the steps read of truth.json: a release written before one of them was planted cannot run this demo
TRUTH_PARTS = ("snp_idp", "null_idps", "snp_exposure_interaction", "cpg_exposure", "idp_h2", "rg", "disorder",
               "pedigree", "scanners", "snp_snp", "multivariate", "oligogenic", "cnv")
PRS_THRESHOLDS = (1e-5, 1e-3, 0.01, 0.1, 1.0)  # C+T's p-value thresholds, as PRSice-2's coarse grid
DEMO_QUERIES = {
    "participants per table": """
        SELECT 'genotyped' AS what, count(*) AS n FROM samples WHERE assay = 'genotypes'
        UNION ALL SELECT 'methylation', count(*) FROM samples WHERE assay = 'methylation'
        UNION ALL SELECT 'with IDPs', count(*) FROM idps
        UNION ALL SELECT 'with covariates', count(*) FROM covariates""",
    "variants per chromosome (first 5)": """
        SELECT chrom, count(*) AS variants, round(avg(alt_freq), 3) AS mean_alt_freq
        FROM variants GROUP BY chrom ORDER BY CAST(chrom AS INTEGER) LIMIT 5""",
    "the first IDP by imaging site (long format through the data dictionary)": """
        WITH long AS (
            UNPIVOT (SELECT * EXCLUDE (release) FROM idps)
            ON COLUMNS(* EXCLUDE (participant_id)) INTO NAME field VALUE value)
        SELECT f.name, f.unit, c.site, count(*) AS n, round(avg(value), 1) AS mean
        FROM long JOIN idp_fields f USING (field) JOIN covariates c USING (participant_id)
        WHERE field = (SELECT min(field) FROM idp_fields)
        GROUP BY ALL ORDER BY n DESC""",
}


def run_demo(catalog_path: Path, *, progress: Callable[[str, int, int], None],
             echo: Callable[[str], None]) -> Lake:
    """Build (or reuse) the default lake described by ``catalog_path``, query it and run every analysis."""
    catalog = Catalog.load(catalog_path)
    root = Path(catalog.location.root)
    release_folder = root.parent / "sources" / f"synthetic-s{DEMO_SIZE['seed']}"
    if not (release_folder / "release.yaml").exists():
        from biolake.synth import write_synthetic_release
        echo(f"1/{STEPS} synthesising a release into {release_folder}")
        write_synthetic_release(release_folder, progress=progress, **DEMO_SIZE)
    else:
        echo(f"1/{STEPS} synthetic release already at {release_folder}")
    lake = Lake.init(root, exist_ok=True)
    sources, release = ReleaseSources.from_folder(release_folder)
    if any(info.release == release for info in lake.releases()):
        echo(f"2/{STEPS} release {release!r} already in the lake at {root}")
    else:
        echo(f"2/{STEPS} ingesting release {release!r} into {root}")
        ingest_release(lake, sources, release=release, source=str(release_folder), progress=progress)
    echo(f"3/{STEPS} SQL over the lake")
    with connect(lake) as con:
        for title, query in DEMO_QUERIES.items():
            echo(f"\n-- {title}")
            echo(str(con.sql(query)))
    truth = json.loads((release_folder / "truth.json").read_text())
    stale = [part for part in TRUTH_PARTS if truth.get(part) is None]
    if stale:
        raise BiolakeError(f"{release_folder / 'truth.json'} has no {', '.join(stale)}: the release was written by an "
                           f"older biolake; delete {release_folder} and {root} to build the demo afresh")
    jobs = {"progress": progress}   # dask's threaded scheduler in this process, the default for a local lake
    echo(f"\n4/{STEPS} GWAS of every IDP on dask (linear, exact per-IDP missingness)")
    report = run_gwas(lake, DEMO_GWAS, **jobs)
    echo(f"{report.samples:,} samples, {report.rows:,} tests → {lake.results_uri(DEMO_GWAS.name)}")
    for line in check_planted_effects(lake, report, truth):
        echo(line)
    echo(f"\n5/{STEPS} EWAS of stress on every CpG (M-values, limma's moderated t)")
    ewas = run_ewas(lake, DEMO_EWAS, **jobs)
    for line in check_planted_cpgs(lake, ewas.exposures[0], truth):
        echo(line)
    planted = truth["snp_exposure_interaction"]
    nulls = truth["null_idps"][:GXE_NULL_IDPS]
    echo(f"\n6/{STEPS} GxE: every variant × {planted['exposure']} on IDP {planted['idp']} and {len(nulls)} "
         "null IDPs (HC3 robust errors)")
    gxe = run_gxe(lake, GxeSettings(name="demo_gxe", phenotypes=[planted["idp"], *nulls],
                                    covariates=[*DEMO_GWAS.covariates, planted["exposure"]],
                                    exposures=[planted["exposure"]], replace=True), **jobs)
    for line in check_planted_interaction(lake, gxe, truth):
        echo(line)
    echo(f"\n7/{STEPS} results of the GWAS: lead hits, λGC, plots and an HTML report")
    for line in summarise_results(lake, truth, root.parent / "out"):
        echo(line)
    echo(f"\n8/{STEPS} LD clumping of the GWAS hits into independent loci (as plink1.9 --clump)")
    for line in clump_hits(lake, truth, **jobs):
        echo(line)
    echo(f"\n9/{STEPS} meta-analysis of one GWAS per imaging site (ENIGMA style)")
    for line in meta_analyse_sites(lake, truth, **jobs):
        echo(line)
    echo(f"\n10/{STEPS} a polygenic score from the meta-analysis, joined to the IDP in SQL")
    for line in score_participants(lake, truth, root.parent / "out", **jobs):
        echo(line)
    echo(f"\n11/{STEPS} polygenic scores trained on 3/4 of the participants, tested on the rest: "
         "LD-clumped (C+T) or not")
    for line in held_out_scores(lake, truth, root.parent / "out", **jobs):
        echo(line)
    echo(f"\n12/{STEPS} SNP heritability and genetic correlations: planted (truth.json), then estimated")
    for line in [*planted_heritability(truth), *estimate_heritability(lake, truth, **jobs),
                 *estimate_genetic_correlations(lake, truth, release_folder, **jobs)]:
        echo(line)
    pages = [write_report(lake, name, root.parent / "out" / f"{name}.html") for name in (DEMO_H2.name, "demo_rg")]
    echo(f"h² and rg reports: {', '.join(str(page) for page in pages)}")
    echo(f"\n13/{STEPS} relatives: KING-robust kinship against the planted pedigree, the unrelated set, and a mixed-model "
         f"GWAS (gwas --lmm {DEMO_LMM}) beside plain regression")
    for line in [*check_relatedness(lake, truth, **jobs), *compare_mixed_model(lake, report, truth, **jobs)]:
        echo(line)
    echo(f"\n14/{STEPS} sites harmonised by ComBat (biolake harmonize, as neuroCombat): the site's share of the "
         "planted IDPs' variance before and after, and their planted effects in a GWAS of the harmonised IDPs")
    for line in harmonise_sites(lake, truth, root.parent / "out", **jobs):
        echo(line)
    echo(f"\n15/{STEPS} SNP × SNP interactions (biolake epistasis --with): each planted pair's first variant against "
         "every variant, on the IDPs the pairs move")
    for line in find_interactions(lake, truth, **jobs):
        echo(line)
    echo(f"\n16/{STEPS} a multivariate association (biolake cca): a region's variants against every IDP of a kind, "
         "in sample, over held-out folds and by permutation, beside the GWAS and a null region")
    for line in find_multivariate(lake, truth, root.parent / "out"):
        echo(line)
    echo(f"\n17/{STEPS} copy-number variants (biolake cnv): burden per participant, carriers of the genomic-disorder "
         "loci, and both against every IDP")
    for line in find_cnv_effects(lake, truth):
        echo(line)
    planted = truth["snp_idp"][0]
    echo(f"\nbrowse every run (Manhattan/QQ per IDP, PheWAS per variant, SQL): biolake serve, then open "
         f"http://127.0.0.1:8000/variant/{planted['variant_id']}")
    return lake


def summarise_results(lake: Lake, truth: dict, out: Path) -> list[str]:
    """Lead hits of the GWAS (are the planted variants among them?), λGC, the plots and the report."""
    lead_table = lead_hits(lake, DEMO_GWAS.name)
    leads = lead_table.to_pylist()
    found = sum(any(lead["phenotype"] == effect["idp"] and str(lead["chrom"]) == str(effect["chrom"])
                    and abs(lead["pos"] - effect["pos"]) <= 500_000 for lead in leads)
                for effect in truth["snp_idp"])
    fdr_leads = lead_hits(lake, DEMO_GWAS.name, fdr=0.05)
    lambdas = phenotype_summary(lake, DEMO_GWAS.name).column("lambda_gc").to_numpy()
    plots = plot_results(lake, DEMO_GWAS.name, out / "plots", limit=6)
    page = write_report(lake, DEMO_GWAS.name, out / f"{DEMO_GWAS.name}.html")
    return [f"{len(leads)} lead hits (p < 5e-8; {clumping_of(lead_table)}) in "
            f"{len({lead['phenotype'] for lead in leads})} IDPs; the planted variants lie in a lead locus for "
            f"{found} of {len(truth['snp_idp'])}",
            f"{fdr_leads.num_rows} lead hits at FDR < 5 % in {len(set(fdr_leads.column('phenotype').to_pylist()))} "
            "IDPs (BH q-values stored with the results: column fdr)",
            f"λGC per IDP: median {np.median(lambdas):.3f} (from {lambdas.min():.2f} to {lambdas.max():.2f})",
            f"{len(plots)} plots in {out / 'plots'}; report: {page}"]


def clump_hits(lake: Lake, truth: dict, **jobs) -> list[str]:
    """The GWAS's genome-wide hits clumped by LD: does each planted variant lie in a clump of its IDP?"""
    report = run_clump(lake, DEMO_CLUMPS, **jobs)
    clumps = lake.results_dataset(DEMO_CLUMPS.name).to_table(columns=["phenotype", "variant_id", "sp2"]).to_pylist()
    led = sum(any(c["phenotype"] == effect["idp"] and c["variant_id"] == effect["variant_id"] for c in clumps)
              for effect in truth["snp_idp"])
    held = sum(any(c["phenotype"] == effect["idp"] and effect["variant_id"] in [c["variant_id"], *c["sp2"]]
                   for c in clumps) for effect in truth["snp_idp"])
    planted = [effect["idp"] for effect in truth["snp_idp"]]
    hits = lake.results_dataset(DEMO_GWAS.name).count_rows(
        filter=pc.field("phenotype").isin(planted) & (pc.field("p") < GENOME_WIDE))
    single = sum([c["phenotype"] for c in clumps].count(idp) == 1 for idp in planted)
    return [f"{report.clumps} clumps (index p ≤ 5e-8, r² > 0.1 within 1 Mb) in {report.phenotypes} IDPs; the "
            f"planted variant lies in a clump of its IDP for {held} of {len(planted)} (as its index for {led}: "
            "the synthetic haplotype blocks repeat a variant's genotypes, so a copy may win by chance)",
            f"the planted IDPs' {hits} hits at p < 5e-8 collapse into one clump per planted effect for {single} of "
            f"{len(planted)} (LD decays over ~100 kb, as in a real genome)"]


def meta_analyse_sites(lake: Lake, truth: dict, **jobs) -> list[str]:
    """GWAS of the planted IDPs within each imaging site, then their meta-analysis; are the effects found?"""
    idps = [effect["idp"] for effect in truth["snp_idp"]]
    covariates = [c for c in DEMO_GWAS.covariates if c != "site"]
    with connect(lake) as con:
        sites = [row[0] for row in con.execute("SELECT DISTINCT site FROM covariates ORDER BY 1").fetchall()]
    names = []
    for site in sites:
        names.append(f"demo_site_{site}")
        run_gwas(lake, GwasSettings(name=names[-1], phenotypes=idps, covariates=covariates,
                                    samples=f"SELECT participant_id FROM covariates WHERE site = '{site}'",
                                    replace=True), **jobs)
    report = run_meta(lake, name="demo_sites", results=names, replace=True)
    combined = lake.results_dataset("demo_sites")
    recovered = 0
    for effect in truth["snp_idp"]:
        row = combined.to_table(filter=(pc.field("phenotype") == effect["idp"])
                                & (pc.field("variant_id") == effect["variant_id"])).to_pylist()[0]
        recovered += row["p"] is not None and row["p"] < GENOME_WIDE
    return [f"{len(sites)} sites ({', '.join(sites)}), {report.rows:,} variant × IDP rows → "
            f"{lake.results_uri('demo_sites')}",
            f"planted SNP→IDP effects at p < 5e-8 in the meta-analysis: {recovered} of {len(truth['snp_idp'])}"]


def check_planted_effects(lake: Lake, report: GwasReport, truth: dict) -> list[str]:
    """Lines comparing the GWAS with the planted truth: each planted effect, then the null IDPs."""
    results = lake.results_dataset(report.name)
    lines = ["planted SNP→IDP effects (per alt allele, IDP units):"]
    for effect in truth["snp_idp"]:
        row = results.to_table(filter=(pc.field("phenotype") == effect["idp"])
                               & (pc.field("variant_id") == effect["variant_id"])).to_pylist()[0]
        found = row["p"] is not None and row["p"] < GENOME_WIDE
        lines.append(f"  {effect['variant_id']} → {effect['idp']}: true {effect['beta']:.4g}, "
                     f"estimated {row['beta']:.4g} ± {row['se']:.2g}, p = {row['p']:.2g} "
                     f"{'recovered' if found else 'MISSED'}")
    summary, nulls = report.summary, set(truth["null_idps"])
    null_hits = sum(1 for name, hits in zip(summary.phenotypes, summary.hits) if name in nulls and hits)
    expected = GENOME_WIDE * sum(t for name, t in zip(summary.phenotypes, summary.tests) if name in nulls)
    lambdas = _lambdas(summary, nulls)
    lines.append(f"null IDPs with any hit at p < 5e-8: {null_hits} of {len(nulls)} "
                 f"(chance expects {expected:.2g} hits in all; λGC of the nulls: median "
                 f"{np.median(lambdas):.3f}, from {lambdas.min():.2f} to {lambdas.max():.2f})")
    return lines


def check_planted_cpgs(lake: Lake, summary, truth: dict) -> list[str]:
    """Lines comparing the EWAS with the planted CpG~exposure effects (array-wide threshold 9e-8)."""
    planted = {effect["cpg"]: effect for effect in truth["cpg_exposure"]}
    rows = lake.results_dataset(DEMO_EWAS.name).to_table(
        columns=["cpg_id", "beta", "moderated_p"]).to_pylist()
    found = {row["cpg_id"] for row in rows if row["moderated_p"] is not None and row["moderated_p"] < ARRAY_WIDE}
    return [f"{summary.cpgs:,} CpGs, limma prior df {summary.prior_df:.3g}, λGC {summary.lambda_gc:.3f}",
            f"planted CpG~stress effects recovered at p < 9e-8: {len(found & set(planted))} of {len(planted)}",
            f"other CpGs at p < 9e-8: {len(found - set(planted))} (chance expects "
            f"{ARRAY_WIDE * (summary.cpgs - len(planted)):.2g})"]


def check_planted_interaction(lake: Lake, report: GxeReport, truth: dict) -> list[str]:
    """Lines comparing the GxE scan with the planted SNP×exposure effect, then the null IDPs."""
    planted = truth["snp_exposure_interaction"]
    rows = lake.results_dataset(report.name).to_table(
        filter=(pc.field("phenotype") == planted["idp"]) & (pc.field("variant_id") == planted["variant_id"])
    ).to_pylist()
    summary = report.summary
    nulls = [j for j, name in enumerate(summary.phenotypes) if name != planted["idp"]]
    null_hits = int(summary.hits[nulls].sum())
    lines = [f"{int(summary.tests.sum()):,} interaction tests (variants with MAF ≥ 5 %)"]
    if not rows:
        return lines + [f"  {planted['variant_id']} × {planted['exposure']} → {planted['idp']}: not tested MISSED"]
    row = rows[0]
    found = row["p_gxe_robust"] is not None and row["p_gxe_robust"] < GENOME_WIDE
    lines.append(f"  {planted['variant_id']} × {planted['exposure']} → {planted['idp']}: true {planted['beta_gxe']:.4g}, "
                 f"estimated {row['beta_gxe']:.4g} ± {row['se_gxe_robust']:.2g} (HC3), "
                 f"p = {row['p_gxe_robust']:.2g} {'recovered' if found else 'MISSED'}")
    lines.append(f"null IDPs' interaction hits at p < 5e-8: {null_hits} (chance expects "
                 f"{GENOME_WIDE * summary.tests[nulls].sum():.2g})")
    return lines


def score_participants(lake: Lake, truth: dict, out: Path, **jobs) -> list[str]:
    """Weights for the first planted IDP from the site meta-analysis (written by SQL), scores, and their
    correlation with the IDP (in-sample, so optimistic: a demonstration, not a validation)."""
    idp = truth["snp_idp"][0]["idp"]
    weights = _write_weights(lake, "demo_sites", idp, out / f"weights_{idp}.tsv")
    report = run_prs(lake, name="demo_prs", weights=weights, thresholds=[5e-8, 1e-3, 1.0], replace=True, **jobs)
    with connect(lake) as con:
        r = con.sql(f'SELECT corr(s.prs_p5e_08, i."{idp}"), corr(s.prs_p1, i."{idp}") FROM results.demo_prs s '
                    "JOIN idps i USING (participant_id)").fetchone()
    return [f"{report.participants:,} participants scored with weights {weights} "
            f"({report.variants['prs_p5e_08']:,} variants at p ≤ 5e-8, {report.variants['prs_p1']:,} in all)",
            f"correlation with {idp} (in-sample, so optimistic — the all-variant score most): "
            f"{r[0]:.2f} (p ≤ 5e-8 score), {r[1]:.2f} (all variants)"]


def held_out_scores(lake: Lake, truth: dict, out: Path, **jobs) -> list[str]:
    """Scores of the oligogenic IDP (truth.json's ``oligogenic``) and, beside it, of the most heritable IDP without a
    planted variant (all background), from a GWAS of the other participants, scored on the HELD_OUT ones with and
    without LD clumping: the correlation with the IDP per p-value threshold, and each way's best threshold, as
    PRSice-2 picks it. Unclumped, a locus weighs as many times as it has proxies past the threshold; clumping keeps
    one variant per locus, so the loci weigh by their effects alone."""
    oligogenic, (polygenic,) = truth["oligogenic"]["idp"], _polygenic_idps(truth, 1)
    run_gwas(lake, GwasSettings(name="demo_train", phenotypes=[oligogenic, polygenic], covariates=DEMO_GWAS.covariates,
                                samples=f"SELECT participant_id FROM covariates WHERE NOT ({HELD_OUT})",
                                replace=True), **jobs)
    with connect(lake) as con:
        found = con.sql("SELECT count(*) FROM results.demo_idps WHERE phenotype = ? AND p < 5e-8 AND variant_id IN "
                        f"({', '.join('?' * len(truth['oligogenic']['variants']))})",
                        params=[oligogenic, *(v["variant_id"] for v in truth["oligogenic"]["variants"])]).fetchone()[0]
    lines = [f"{oligogenic} is oligogenic: {len(truth['oligogenic']['variants'])} planted variants explain "
             f"{truth['oligogenic']['variance_explained']:.0%} of it ({found} at p < 5e-8 in the GWAS of step 4); "
             f"{polygenic} is all background",
             f"{'IDP':<12}{'h²':>6}  {'':<10} r per p ≤ {', '.join(f'{t:g}' for t in PRS_THRESHOLDS)}"]
    best = {}
    for idp in (oligogenic, polygenic):
        weights = _write_weights(lake, "demo_train", idp, out / f"weights_train_{idp}.tsv")
        correlations = ", ".join(f'corr(s.{score_column(t)}, i."{idp}")' for t in PRS_THRESHOLDS)
        for label, clump in (("unclumped", None), ("clumped", PRS_CLUMP)):
            run_prs(lake, name="demo_held_out", weights=weights, thresholds=PRS_THRESHOLDS, clump=clump,
                    replace=True, **jobs)
            with connect(lake) as con:
                r = con.sql(f"SELECT {correlations} FROM results.demo_held_out s "
                            f"JOIN idps i USING (participant_id) WHERE {HELD_OUT}").fetchone()
            r = [np.nan if value is None else value for value in r]   # NULL: no variant at a threshold
            lines.append(f"{idp:<12}{truth['idp_h2'][idp]:>6.2f}  {label:<10} "
                         + "  ".join(f"{value:.3f}" for value in r))
            best[idp, label] = max(((value, threshold) for value, threshold in zip(r, PRS_THRESHOLDS)
                                    if not np.isnan(value)), default=(np.nan, np.nan))
    return [*lines, *(f"{idp}'s best scores in the held-out quarter: clumped r {best[idp, 'clumped'][0]:.3f} "
                      f"(p ≤ {best[idp, 'clumped'][1]:g}), unclumped r {best[idp, 'unclumped'][0]:.3f} "
                      f"(p ≤ {best[idp, 'unclumped'][1]:g})" for idp in (oligogenic, polygenic))]


def check_relatedness(lake: Lake, truth: dict, **jobs) -> list[str]:
    """KING-robust kinship of every pair (biolake kinship) against the planted pedigree: per degree, the planted pairs
    whose estimate lies in that degree's band (φ / √2 to φ × √2 of the pedigree kinship φ), the pairs found that no
    pedigree planted, and the size of the unrelated set."""
    report = run_kinship(lake, DEMO_KINSHIP, **jobs)
    rows = lake.results_dataset(DEMO_KINSHIP.name).to_table(
        columns=["participant_id_1", "participant_id_2", "kinship"]).to_pylist()
    estimated = {frozenset((row["participant_id_1"], row["participant_id_2"])): row["kinship"] for row in rows}
    pedigree, found = truth["pedigree"], {}
    for pair in pedigree["related_pairs"]:
        kinship = estimated.get(frozenset((pair["participant_id_1"], pair["participant_id_2"])), 0.0)
        hits = found.setdefault(pair["kinship"], {}).setdefault(pair["relation"], [])
        hits.append(pair["kinship"] / np.sqrt(2) < kinship <= pair["kinship"] * np.sqrt(2))
    planted = {frozenset((pair["participant_id_1"], pair["participant_id_2"])) for pair in pedigree["related_pairs"]}
    unplanted = np.array([kinship for pair, kinship in estimated.items() if pair not in planted])
    families = ", ".join(f"{count} {kind}" for kind, count in pedigree["families"].items())
    lines = [f"{report.samples:,} participants, {report.variants:,} variants; planted families: {families} "
             f"({pedigree['related_share']:.1%} of participants related)"]
    for kinship, relations in sorted(found.items(), reverse=True):
        counts = ", ".join(f"{sum(hits)}/{len(hits)} {relation} pairs" for relation, hits in relations.items())
        lines.append(f"kinship: {counts} found ({kinship / np.sqrt(2):.3g} < φ < {kinship * np.sqrt(2):.3g})")
    lines.append(f"pairs found that no pedigree planted: {len(unplanted):,} at φ ≥ {DEMO_KINSHIP.min_kinship} "
                 f"({(unplanted > DEMO_KINSHIP.unrelated).sum()} above {DEMO_KINSHIP.unrelated}): unrelated participants "
                 "vary more by chance over the synthetic genome's few hundred independent stretches than over a real one")
    lines.append(f"unrelated set (--unrelated {DEMO_KINSHIP.unrelated}): {report.unrelated:,} of {report.samples:,} "
                 f"participants → {lake.results_uri(DEMO_KINSHIP.unrelated_name)}")
    return lines


def compare_mixed_model(lake: Lake, plain: GwasReport, truth: dict, **jobs) -> list[str]:
    """A mixed-model GWAS (gwas --lmm DEMO_LMM) of the most heritable IDP without a planted variant and of a null IDP,
    beside the demo's plain one. The heritable IDP's plain λGC counts two things as inflation: the relatives' shared
    genetic values, which the leave-one-chromosome-out predictions take out, and its own polygenic signal on the
    tested variants (on this genome of 20,000 variants the larger part), which is real association and stays; the
    predictions also take the other chromosomes' share of its variance out of the residuals, so that signal's χ²
    grow (REGENIE's and BOLT-LMM's gain in power), and its λGC may end above or below plain regression's. The null
    IDP shows the mixed model takes nothing from an IDP without genetic effects."""
    idp, = _polygenic_idps(truth, 1)
    null = truth["null_idps"][0]
    mixed = run_gwas(lake, replace(DEMO_GWAS, name="demo_lmm", phenotypes=[idp, null], lmm=DEMO_LMM, adjust=False),
                     **jobs)
    before, after = (dict(zip(report.summary.phenotypes, report.summary.lambda_gc())) for report in (plain, mixed))
    return [f"λGC of {idp} (h² {truth['idp_h2'][idp]:.2f}, the most heritable IDP without a planted variant): plain "
            f"linear {before[idp]:.3f}, mixed model (gwas --lmm {DEMO_LMM}) {after[idp]:.3f} (its polygenic signal "
            "stays, with the power the other chromosomes' predictions add; the relatives' share goes)",
            f"λGC of {null} (a null IDP): plain linear {before[null]:.3f}, mixed model (gwas --lmm {DEMO_LMM}) "
            f"{after[null]:.3f}"]


def harmonise_sites(lake: Lake, truth: dict, out: Path, **jobs) -> list[str]:
    """ComBat of the planted IDPs across the imaging sites (age and sex kept): the share of each IDP's variance its
    site explains before and after (and a plot of the sites' means and SDs), each site's planted scanner scale beside
    ComBat's, and the planted effects found in a GWAS of the harmonised IDPs (covariates age and sex: no site term
    left to absorb the sites)."""
    from biolake.stats.plots import site_effects, site_share

    idps = sorted({effect["idp"] for effect in truth["snp_idp"]})
    report = run_harmonize(lake, HarmonizeSettings(name=DEMO_HARMONIZED, phenotypes=idps, covariates=["age", "sex"],
                                                   batch="site", replace=True))
    harmonised = lake.results_dataset(DEMO_HARMONIZED).to_table()
    columns = ", ".join(f'i."{idp}"' for idp in idps)
    with connect(lake) as con:
        raw = con.sql(f"SELECT i.participant_id, c.site, {columns} FROM idps i JOIN covariates c USING "
                      "(participant_id)").arrow()
    row_of = {pid: k for k, pid in enumerate(raw.column("participant_id").to_pylist())}
    rows = [row_of[pid] for pid in harmonised.column("participant_id").to_pylist()]
    before = np.column_stack([raw.column(idp).to_numpy(zero_copy_only=False)[rows] for idp in idps])
    after = np.column_stack([harmonised.column(idp).to_numpy() for idp in idps])
    sites, batch = np.unique(np.array(raw.column("site").to_pylist(), dtype=object)[rows], return_inverse=True)
    share_before, share_after = site_share(before, batch), site_share(after, batch)
    plot = out / "plots" / "sites_harmonized.png"
    plot.parent.mkdir(parents=True, exist_ok=True)
    site_effects(before, after, batch, list(sites), idps, title="ComBat").savefig(plot)
    run_gwas(lake, GwasSettings(name=f"{DEMO_HARMONIZED}_gwas", phenotypes=f"SELECT * FROM results.{DEMO_HARMONIZED}",
                                covariates=["age", "sex"], replace=True), **jobs)
    found = sum(lake.results_dataset(f"{DEMO_HARMONIZED}_gwas").to_table(
        columns=["p"], filter=(pc.field("phenotype") == effect["idp"])
        & (pc.field("variant_id") == effect["variant_id"])).column("p")[0].as_py() < GENOME_WIDE
        for effect in truth["snp_idp"])
    fitted = fitted_combat(lake, DEMO_HARMONIZED)
    scale = dict(zip(fitted.batches, np.exp(0.5 * np.log(fitted.fit.delta_star).mean(axis=1))))
    planted_scale = truth["scanners"]["site_noise_scale"]
    return [f"{report.idps} planted IDPs of {report.samples:,} participants across {len(sites)} sites: the site "
            f"explains {share_before.mean():.2%} of their variance before harmonisation, {share_after.mean():.4%} "
            f"after (mean over IDPs); plot: {plot}",
            "scanner scale by site, planted (multiplier of the noise) → ComBat's √δ* (geometric mean over the IDPs; "
            "the genetic variance it does not scale pulls it towards 1): "
            + ", ".join(f"{site} {planted_scale[site]:.2f} → {scale[site]:.2f}" for site in fitted.batches),
            f"planted SNP→IDP effects at p < 5e-8 in a GWAS of the harmonised IDPs: {found} of {len(truth['snp_idp'])}"]


def find_interactions(lake: Lake, truth: dict, **jobs) -> list[str]:
    """``biolake epistasis --with`` the planted SNP × SNP pairs' first variants against every variant, on the IDPs
    the pairs move (covariates age, sex, site): each planted pair's p and estimate beside its planted β, and the
    other pairs past 5e-8, split by whether their partner lies within 1 Mb of a planted pair's variant."""
    planted = truth["snp_snp"]
    candidates = sorted({effect["variant_a"]["variant_id"] for effect in planted})
    idps = sorted({effect["idp"] for effect in planted})
    report = run_epistasis(lake, EpistasisSettings(name=DEMO_EPISTASIS, phenotypes=idps, candidates=candidates,
                                                   covariates=["age", "sex", "site"], replace=True), **jobs)
    passed = lake.results_dataset(DEMO_EPISTASIS).to_table(
        columns=["phenotype", "variant_id_a", "variant_id_b", "chrom", "pos", "beta_int", "p_int"],
        filter=pc.field("p_int") < GENOME_WIDE).to_pylist()
    lines, found = [f"{len(candidates)} candidates, each against every other variant: {report.pairs:,} pairs × "
                    f"{len(idps)} IDPs tested"], 0
    for effect in planted:
        a, b = effect["variant_a"]["variant_id"], effect["variant_b"]["variant_id"]
        row = next((row for row in passed
                    if (row["phenotype"], row["variant_id_a"], row["variant_id_b"]) == (effect["idp"], a, b)), None)
        found += row is not None
        lines.append(f"{a} × {b} on {effect['idp']} (planted β {effect['beta_int']:.3g}): "
                     + (f"p = {row['p_int']:.2g}, β {row['beta_int']:.3g}" if row else "not past 5e-8"))
    variants = [effect[which] for effect in planted for which in ("variant_a", "variant_b")]
    near = sum(any(str(row["chrom"]) == str(variant["chrom"]) and abs(row["pos"] - variant["pos"]) < 1_000_000
                   for variant in variants) for row in passed) - found
    lines.append(f"planted SNP×SNP interactions at p < 5e-8: {found} of {len(planted)}; other pairs past it: "
                 f"{near} with a partner within 1 Mb of a planted pair's variant (LD proxies), "
                 f"{len(passed) - found - near} elsewhere")
    return lines


def find_multivariate(lake: Lake, truth: dict, out: Path) -> list[str]:
    """``biolake cca`` of the planted multivariate association's region (every variant of it) with every IDP of its
    pattern's kind, and the same of the null region (covariates as the GWAS's): each run's first pair in sample, held
    out and by permutation; the GWAS's smallest p over the region's variants and those IDPs; how many of the IDPs
    the first pair weighs most are the pattern's; plots and a report of each run."""
    planted = truth["multivariate"]
    pattern = {idp["idp"] for idp in planted["idps"]}
    with connect(lake) as con:
        kind, idps = con.sql(f"SELECT category, list(field ORDER BY field) OVER (PARTITION BY category) FROM idp_fields "
                             f"QUALIFY field = '{min(pattern)}'").fetchone()
    lines = []
    for name, region in ((DEMO_CCA, planted["region"]), (f"{DEMO_CCA}_null", planted["null_region"])):
        where = f"chrom = '{region['chrom']}' AND pos BETWEEN {region['start']} AND {region['end']}"
        report = run_cca(lake, CcaSettings(name=name, phenotypes=idps, covariates=DEMO_GWAS.covariates, n=2,
                                           x_variants=f"SELECT variant_id FROM variants WHERE {where}", replace=True))
        first = report.pairs[0]
        plot_results(lake, name, out / "plots" / name)
        write_report(lake, name, out / f"{name}.html")
        gwas = lake.results_dataset(DEMO_GWAS.name).to_table(
            columns=["p"], filter=pc.field("phenotype").isin(idps) & (pc.field("chrom") == str(region["chrom"]))
            & (pc.field("pos") >= region["start"]) & (pc.field("pos") <= region["end"])).column("p")
        lines.append(f"{'planted' if name == DEMO_CCA else 'null'} region chr{region['chrom']}:{region['start']:,}-"
                     f"{region['end']:,} ({report.x_columns} variants) × {report.y_columns} {kind} IDPs over "
                     f"{first['n_train']:,} participants: r {first['r']:.3f} in sample, {first['r_cv']:.3f} held out "
                     f"(± {first['r_cv_sd']:.3f} over {CcaSettings.folds} folds), permutation p {first['p_permutation']:.3g}; "
                     f"the GWAS's smallest p there: {pc.min(gwas).as_py():.2g}")
    weights = lake.results_dataset(DEMO_CCA + "_weights").to_table(
        columns=["variable", "c1"], filter=pc.field("block") == "y").to_pylist()
    top = [row["variable"] for row in sorted(weights, key=lambda row: -abs(row["c1"]))[:len(pattern)]]
    variances = [idp["variance_explained"] for idp in planted["idps"]]
    lines.append(f"planted: {len(planted['variants'])} variants acting on {len(pattern)} {kind} IDPs "
                 f"({min(variances):.1%} to {max(variances):.1%} of each one's variance); the first pair's "
                 f"{len(pattern)} largest IDP weights hold {len(pattern.intersection(top))} of them")
    return lines


def find_cnv_effects(lake: Lake, truth: dict) -> list[str]:
    """``biolake cnv burden``, ``carriers`` (segments of at least 10 probes) and ``assoc`` of every IDP (the GWAS's
    covariates): each planted locus's carriers beside truth.json's, its test on its IDP (p, Cohen's d) against the
    Bonferroni threshold of the run, and how many other tests pass it; then a CNV scan (``--scan-kb``) of the
    planted IDPs: does each one's strongest window lie in its planted locus?"""
    cnv_filter = CnvFilter(min_sites=10)
    burden = run_cnv_burden(lake, CnvBurdenSettings(name=f"{DEMO_CNV}_counts", cnv_filter=cnv_filter, replace=True))
    carriers = run_cnv_carriers(lake, CnvCarriersSettings(name=f"{DEMO_CNV}_carriers", cnv_filter=cnv_filter,
                                                          replace=True))
    report = run_cnv_assoc(lake, CnvAssocSettings(name=DEMO_CNV, phenotypes=DEMO_GWAS.phenotypes,
                                                  covariates=DEMO_GWAS.covariates, cnv_filter=cnv_filter,
                                                  replace=True))
    rows = lake.results_dataset(DEMO_CNV).to_table(
        columns=["phenotype", "locus", "model", "n_carriers", "p", "cohens_d"]).to_pylist()
    threshold = 0.05 / report.rows
    lines = [f"{burden.segments:,} segments of {burden.participants:,} participants called (≥ 10 probes); "
             f"{report.tests} tests × {report.rows // report.tests} IDPs, Bonferroni threshold {threshold:.2g}"]
    found = []
    for planted in truth["cnv"]["planted"]:
        row = next(row for row in rows if (row["phenotype"], row["locus"], row["model"])
                   == (planted["idp"], planted["locus"], planted["model"]))
        found.append(row)
        carried = carriers.carriers[planted["locus"]]
        effect = f", d {row['cohens_d']:+.2f}" if row["cohens_d"] is not None else ""
        lines.append(f"  {planted['locus']} ({planted['model']}) on {planted['idp']}: carriers {carried[0]} del, "
                     f"{carried[1]} dup (planted {planted['carriers']['del']}, {planted['carriers']['dup']}); "
                     f"p = {row['p']:.2g}{effect} (planted {planted['effect_sd']:+.1f} SD) — "
                     + ("recovered" if row["p"] < threshold else "not recovered"))
    planted_pairs = {(row["phenotype"], row["locus"]) for row in found}   # a locus's other models test it again
    others = sorted({(row["phenotype"], row["locus"]) for row in rows if row["p"] is not None and row["p"] < threshold
                     and (row["phenotype"], row["locus"]) not in planted_pairs})
    lines.append(f"planted CNV effects past the threshold: {sum(row['p'] < threshold for row in found)} of "
                 f"{len(found)}; other IDP × locus pairs past it: {len(others)}"
                 + (f" ({', '.join(f'{locus} on {idp}' for idp, locus in others[:4])})" if others else ""))
    scan = run_cnv_assoc(lake, CnvAssocSettings(
        name=f"{DEMO_CNV}_scan", phenotypes=[planted["idp"] for planted in truth["cnv"]["planted"]],
        covariates=DEMO_GWAS.covariates, cnv_filter=cnv_filter, burden_measures=(), scan_kb=DEMO_CNV_SCAN_KB,
        min_carriers=3, replace=True))
    windows = pl.from_arrow(lake.results_dataset(scan.name).to_table(columns=["phenotype", "locus", "chrom", "pos",
                                                                               "end", "p"]))
    windows = windows.filter(pl.col("locus").str.contains(":") & pl.col("p").is_not_null())
    best = {row["phenotype"]: row for row in
            windows.sort("p").group_by("phenotype", maintain_order=True).first().iter_rows(named=True)}
    inside = sum(planted["idp"] in best and str(best[planted["idp"]]["chrom"]) == str(planted["chrom"])
                 and best[planted["idp"]]["pos"] <= planted["end"] and best[planted["idp"]]["end"] >= planted["start"]
                 for planted in truth["cnv"]["planted"])
    lines.append(f"CNV scan (--scan-kb {DEMO_CNV_SCAN_KB}) of the planted IDPs: {scan.windows:,} windows with 3 or more "
                 f"carriers; each IDP's strongest window lies in its planted locus for {inside} of "
                 f"{len(truth['cnv']['planted'])}")
    return lines


def _polygenic_idps(truth: dict, count: int) -> list[str]:
    """The ``count`` most heritable IDPs without a planted variant (their genetic value is all polygenic background)."""
    planted = {effect["idp"] for effect in [*truth["snp_idp"], truth["snp_exposure_interaction"], truth["oligogenic"]]}
    idps = sorted((idp for idp in truth["idp_h2"] if idp not in planted), key=lambda idp: -truth["idp_h2"][idp])
    return idps[:count]


def planted_heritability(truth: dict) -> list[str]:
    """The planted SNP heritability of each IDP (of the variance its covariates leave) and the disorder whose GWAS
    ships with the release (the planted genetic correlations are listed beside their estimates)."""
    h2 = truth["idp_h2"]
    disorder = truth["disorder"]
    lines = [f"{sum(value > 0 for value in h2.values())} of {len(h2)} IDPs heritable, planted h² from "
             f"{min(value for value in h2.values() if value > 0):.2f} to {max(h2.values()):.2f} "
             f"({truth['polygenic_variants']:,} variants with effects); {len(truth['null_idps'])} null IDPs",
             "  " + ", ".join(f"{idp} {value:.2f}" for idp, value in h2.items())]
    lines.append(f"{disorder['phenotype']} ({disorder['sumstats']}: {disorder['cases']:,} cases, "
                 f"{disorder['controls']:,} controls of the same population, none of them participants): h² "
                 f"{disorder['h2_liability']:.2f} on the liability scale, {disorder['h2_observed']:.2f} observed")
    return lines   # the planted rg of each pair: beside its estimate (estimate_genetic_correlations)


def estimate_heritability(lake: Lake, truth: dict, **jobs) -> list[str]:
    """Haseman–Elston h² of every IDP from the lake's genotypes (biolake h2, as GEMMA -vc 1), beside the planted
    h²: how many planted values lie inside the estimate's 95 % interval, and how closely the two agree."""
    report = run_heritability(lake, DEMO_H2, **jobs)
    planted = truth["idp_h2"]
    idps = [idp for idp in report.h2 if idp in planted]
    estimated, se = (np.array([report.h2[idp][k] for idp in idps]) for k in (0, 1))
    truths = np.array([planted[idp] for idp in idps])
    inside = np.abs(estimated - truths) <= 1.96 * se
    return [f"Haseman–Elston h² of the {len(idps)} IDPs over {report.variants:,} variants (biolake h2): the planted "
            f"h² lies inside the 95 % interval for {inside.sum()} of {len(idps)}; r(planted, estimated) = "
            f"{np.corrcoef(truths, estimated)[0, 1]:.2f}, median SE {np.median(se):.2f}",
            "  " + ", ".join(f"{idp} {h:.2f}±{e:.2f}" for idp, h, e in zip(idps, estimated, se))]


def estimate_genetic_correlations(lake: Lake, truth: dict, release_folder: Path, **jobs) -> list[str]:
    """LD score regression (biolake ldscores, h2 --result, rg) of the GWAS of every IDP and of the disorder's
    shipped summary statistics: the disorder's h², and the sign of each planted genetic correlation.

    The planted effects sit on common variants only, so the LD scores sum over the variants with
    MAF > 5 % (with every variant, rare ones inflate the LD scores and the disorder's h² comes out at
    0.37 ± 0.04 for a planted 0.52); signs are what N = 2,000 can tell."""
    run_ldscores(lake, DEMO_LDSCORES, **jobs)
    import_sumstats(lake, release_folder / truth["disorder"]["sumstats"], name="demo_disorder", replace=True)
    inputs = dict(ldscores=DEMO_LDSCORES.name, replace=True)
    run_h2(lake, H2Settings(name="demo_disorder_h2", result="demo_disorder", **inputs))
    disorder, = lake.results_dataset("demo_disorder_h2").to_table(columns=["h2", "h2_se"]).to_pylist()
    idp_pairs = [pair for pair in truth["rg"] if pair["trait2"] != "disorder"]
    with_disorder = [pair for pair in truth["rg"] if pair["trait2"] == "disorder"]
    estimated = {}
    for name, traits in (("demo_rg", ((DEMO_GWAS.name, tuple({p[k] for p in idp_pairs for k in ("trait1", "trait2")})),)),
                         ("demo_disorder_rg", ((DEMO_GWAS.name, tuple(p["trait1"] for p in with_disorder)),
                                               ("demo_disorder", None)))):
        run_rg(lake, RgSettings(name=name, traits=traits, **inputs))
        for row in lake.results_dataset(name).to_table().to_pylist():
            second = "disorder" if row["result_2"] == "demo_disorder" else row["phenotype_2"]
            estimated[frozenset((row["phenotype_1"], second))] = (row["rg"], row["rg_se"])
    lines, signs, undefined = [], 0, 0
    for pair in truth["rg"]:
        rg, se = estimated[frozenset((pair["trait1"], pair["trait2"]))]
        undefined += bool(np.isnan(rg))
        signs += bool(np.sign(rg) == np.sign(pair["rg"]))
        lines.append(f"  rg {pair['trait1']} ~ {pair['trait2']}: planted {pair['rg']:+.2f}, estimated {rg:+.2f} ± {se:.2f}")
    planted = truth["disorder"]["h2_observed"]
    inside = abs(disorder["h2"] - planted) <= 1.96 * disorder["h2_se"]
    return [f"disorder h² by LD score regression (biolake h2 --result, LD scores of the variants with MAF > "
            f"{DEMO_LDSCORES.min_maf:g}): {disorder['h2']:.2f} ± {disorder['h2_se']:.2f} observed; planted "
            f"{planted:.2f}, {'inside' if inside else 'outside'} the 95 % interval",
            f"genetic correlations by LD score regression (biolake rg): the planted sign recovered for {signs} of "
            f"{len(truth['rg'])} pairs ({undefined} without an estimate: an h² estimate ≤ 0)", *lines]


def _write_weights(lake: Lake, result: str, idp: str, path: Path) -> Path:
    """One IDP's weights from a results table as a TSV that ``run_prs`` reads (written by SQL)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with connect(lake) as con:
        write_table(con.sql(f"SELECT variant_id, alt AS effect_allele, beta, p FROM results.{result} "
                            "WHERE phenotype = ? AND p IS NOT NULL", params=[idp]).arrow(),
                    output_format="tsv", out=str(path))
    return path


def _lambdas(summary, names: set[str]) -> np.ndarray:
    """λGC of the phenotypes ``names`` of a scan summary."""
    return np.array([value for name, value in zip(summary.phenotypes, summary.lambda_gc()) if name in names])
