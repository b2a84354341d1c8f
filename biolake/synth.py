"""Write a synthetic biobank release folder, with planted effects recorded in ``truth.json``.

The folder holds what a biobank ships: PLINK 1 genotypes, UK-Biobank-style wide CSVs of
imaging-derived phenotypes (IDPs) and covariates with a data dictionary, a CpG × sample
methylation matrix with probe annotation, and a ``release.yaml`` manifest. Genotypes have
LD as in a real genome: variants sit in dense stretches as on an array, each haplotype is a
mosaic of founder haplotypes that switches founder at recombination hotspots of a genetic map
(~1 cM/Mb, written in the .bim), so r² is high within haplotype blocks of tens of kb and near
0 between variants 1 Mb apart. They are streamed a chunk of blocks at a time, so memory
stays bounded at biobank size. Every draw comes from the seed, so a release is reproducible
byte for byte (bar the manifest's timestamp).

IDPs also carry a polygenic background: many small effects on common variants, summed as the
genotypes are generated, give each IDP a known SNP heritability (0.05-0.6; a fifth of the IDPs
stay null) and known genetic correlations (left and right of a structure share most of their
background; one pair is negatively correlated). A synthetic disorder shares part of its
background with named IDPs; its GWAS summary statistics (``disorder.tsv``, GWAS-SSF) come from
a separate case-control cohort of the same population, as a published psychiatric GWAS would.

Two SNP × SNP interactions act on two polygenic IDPs, each between two of the planted variants (whose main
effects are on other IDPs), with no main effect of their own on the IDP they move.

CNV calls ship in PLINK's .cnv (with its .fam) and in PennCNV's format: a background of rare deletions and
duplications across the genome, and carriers of three recurrent loci (15q11.2 BP1-BP2 and 22q11.2 deletions,
16p11.2 deletions and duplications) whose copy number moves a named IDP each.

One region's variants act together on a pattern of IDPs of one kind (a weighted sum of their alt counts, the
region's genetic score, moves each IDP of the pattern), each variant too weakly for the GWAS threshold: the signal
lies in the combination, which canonical correlation of the region's variants with the IDPs finds. A null region,
on another chromosome, carries no effect at all (the polygenic background leaves both regions out).

One heritable IDP is oligogenic: a common variant in each of ten regions (which the background leaves out) explains
2 % of its variance, beside its background. The regions' LD differs, so a polygenic score summing every variant past
a p-value threshold weighs each locus by its count of proxies, and LD clumping first (C+T) predicts the IDP better
on held-out participants.

Each imaging site's scanner shifts every IDP (an offset per site and IDP) and scales its noise (a
multiplier per site, jittered per IDP: the location and scale ComBat removes). One site's IDPs are
also written as its FreeSurfer pipeline would hand them over: ``asegstats2table`` and
``aparcstats2table`` group tables (``freesurfer/SITE/``), with eTIV and each hemisphere's mean thickness.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO, NamedTuple

import numba
import numpy as np
import polars as pl
import scipy.stats
import yaml

from biolake.ingest.release import file_sha256

Progress = Callable[[str, int, int], None]

# Minimums: five variants per chromosome; three SNP→IDP targets plus the GxE one.
MIN_SAMPLES, MIN_VARIANTS, MIN_IDPS, MIN_CPGS = 10, 22 * 5, 4, 100
# GRCh37 autosome lengths in bp, chromosomes 1..22.
GRCH37_LENGTHS = np.array([249250621, 243199373, 198022430, 191154276, 180915260, 171115067,
                           159138663, 146364022, 141213431, 135534747, 135006516, 133851895,
                           115169878, 107349540, 102531392, 90354753, 81195210, 78077248,
                           59128983, 63025520, 48129895, 51304566])
SITES, SITE_SHARES = ("Cheadle", "Newcastle", "Reading", "Bristol"), (0.45, 0.30, 0.17, 0.08)
BED_MAGIC = bytes([0x6C, 0x1B, 0x01])  # PLINK 1 .bed, SNP-major
# .bed 2-bit code by alt-allele dosage 0, 1, 2 (A1 = alt, as in plink2); 0b01 is a missing call.
CODE_OF_ALT_DOSAGE, MISSING_CODE = np.array([0b11, 0b10, 0b00], np.uint8), np.uint8(0b01)
# .bed 2-bit code → alt-allele dosage (the missing code 0b01 counts none).
ALT_DOSAGE_OF_CODE = np.array([2, 0, 1, 0], np.int64)
COMMON_FOUNDERS, RARE_FOUNDERS = 6, 2
FOUNDERS = COMMON_FOUNDERS + RARE_FOUNDERS
# Every set of founders that may carry an alt allele (founders × sets), and a set's index in it.
FOUNDER_PATTERNS = ((np.arange(2**FOUNDERS) >> np.arange(FOUNDERS)[:, None]) & 1).astype(np.uint8)
PATTERN_BITS = 1 << np.arange(FOUNDERS)
# Alt dosage by the set of founders carrying the alt allele (its FOUNDER_PATTERNS index) × founder pair
# (founder of haplotype 0 × FOUNDERS + founder of haplotype 1).
PAIR_DOSAGE = (FOUNDER_PATTERNS[np.arange(FOUNDERS**2) // FOUNDERS]
               + FOUNDER_PATTERNS[np.arange(FOUNDERS**2) % FOUNDERS]).T.astype(np.float32)
# Variants sit in genotyped regions of 20, ~5 kb apart as on a 600k array (closer when there are more).
REGION_VARIANTS, ARRAY_SPACING_BP = 50, 5_000
# The genetic map: recombination hotspots ~50 kb apart (so haplotype blocks of tens of kb) carry
# 0.9 cM/Mb on average, over a 0.1 cM/Mb background; a haplotype keeps its founder across d cM
# with probability exp(−d / LD_SCALE_CM), so r² is near 0 between variants 1 Mb (~1 cM) apart.
HOTSPOT_SPACING_BP, HOTSPOT_CM_PER_MB, BACKGROUND_CM_PER_MB, LD_SCALE_CM = 50_000, 0.9, 0.1, 0.2
# A block's variants repeat the previous variant's founder alleles half of the time (what makes LD
# inside a block); a fresh variant's alt allele is carried only by rare founders 30 % of the time.
PATTERN_REPEATS, RARE_PATTERNS = 0.5, 0.3
GENOTYPE_CHUNK_BYTES = 16_000_000  # .bed rows written at a time (missing calls are drawn per chunk)
GXE_VARIANCE = 0.04  # IDP variance explained by the variant × stress interaction
IDP_CHUNK_ROWS, METHYLATION_CHUNK_CELLS = 10_000, 2_000_000
STREAMS = ("layout", "cohort", "genotypes", "idps", "methylation", "poly", "pedigree", "scanners", "epistasis",
           "multivariate", "cnv", "oligogenic")
EPISTASIS_VARIANCE = (0.04, 0.05)   # the share of its IDP's variance each planted SNP × SNP interaction explains
# The multivariate association: common variants of its region acting, IDPs of its pattern (of one kind, heritable
# enough to hold it), and each IDP's share of variance from the region's score: at most MULTIVARIATE_VARIANCE, and
# small enough that no single variant of the region expects a marginal χ² above MULTIVARIATE_MAX_CHI2 in a GWAS of
# the imaged participants (p ≈ 0.025, far from 5e-8), however many participants the release has
MULTIVARIATE_VARIANTS, MULTIVARIATE_IDPS, MULTIVARIATE_MIN_H2 = 6, 8, 0.2
MULTIVARIATE_VARIANCE, MULTIVARIATE_MAX_CHI2, MULTIVARIATE_MAX_R2 = 0.03, 5.0, 0.2
# The oligogenic IDP: one common variant (MAF ≥ OLIGOGENIC_MIN_MAF, the first of OLIGOGENIC_CANDIDATES drawn in its
# region) in each of OLIGOGENIC_LOCI genotyped regions explains OLIGOGENIC_VARIANCE of the IDP's variance, on an IDP
# whose planted h² (at least OLIGOGENIC_MIN_H2) holds them and a background. Its loci sit in blocks of differing LD,
# so an unclumped polygenic score weighs each locus by its count of proxies: the case LD clumping (C+T) is for
OLIGOGENIC_LOCI, OLIGOGENIC_CANDIDATES, OLIGOGENIC_VARIANCE = 10, 5, 0.02
OLIGOGENIC_MIN_MAF, OLIGOGENIC_MIN_H2 = 0.1, 0.4
# CNV calls: background segments per participant (Poisson), their median length and log SD, the share of them
# deletions; each planted locus: its carriers' share (of each type, for a dose effect) and its effect in SD of its IDP
# (per carrier of a deletion, or per copy: −1 deletion, +1 duplication), large as at these loci in UK Biobank; the
# carriers are ten to twenty times as common as there, as in a cohort ascertained for them, so a demo's N finds them
CNV_RATE, CNV_MEDIAN_BP, CNV_LOG_SD, CNV_DELETIONS = 1.5, 100_000, 0.8, 0.55
CNV_PLANTS = (("15q11.2_BP1-BP2", "del", 0.04, -0.7), ("16p11.2_proximal_BP4-BP5", "dose", 0.01, 0.9),
              ("22q11.2_A-D", "del", 0.008, -1.6))
CNV_FILES = ("calls.cnv", "calls.fam", "calls.penncnv")   # PLINK's segment list and its .fam, and PennCNV's output
SCANNER_SCALE_SD, SCANNER_SCALE_JITTER = 0.15, 0.05   # log SD of a site's noise multiplier, and of its IDPs' around it
FREESURFER_SITE, FREESURFER_FOLDER = "Bristol", "freesurfer"   # the site whose FreeSurfer tables the release holds
# FreeSurfer's aseg names of the subcortical structures (Left-/Right- prefixed)
ASEG_NAMES = {"thalamus": "Thalamus", "caudate": "Caudate", "putamen": "Putamen", "pallidum": "Pallidum",
              "hippocampus": "Hippocampus", "amygdala": "Amygdala", "accumbens": "Accumbens-area"}
# The polygenic background: effects on a share of the variants with MAF ≥ 5 % (outside the planted
# variants' regions, the multivariate association's two and the oligogenic IDP's, so their effects stay as
# planted), on standardised genotypes.
POLYGENIC_SHARE, POLYGENIC_MIN_MAF, POLYGENIC_CHUNK = 0.1, 0.05, 2048
HERITABILITY_RANGE, NULL_SHARE = (0.05, 0.6), 0.2  # planted h² of the IDPs with a background; IDPs without
PAIR_RG, NEGATIVE_RG = (0.6, 0.9), (-0.6, -0.4)  # left/right of a structure; the one negative pair
DISORDER_LOADINGS = (-0.5, 0.4)  # the disorder's share of two left/right pairs' common background
RELATED_SHARE = 0.3  # participants with a relative among the participants (about a third in UK Biobank)


@dataclass(frozen=True)
class SynthSummary:
    """What :func:`write_synthetic_release` wrote, and where."""

    out: Path
    samples: int
    variants: int
    idps: int
    cpgs: int
    methylation_samples: int
    seed: int
    truth: Path


@dataclass(frozen=True)
class _IdpKind:
    """One family of IDPs: what it measures, in which unit, how big, and how covariates move it."""

    category: str
    unit: str
    name: str  # template with {structure} and {side}
    structures: tuple[tuple[str, float], ...]  # (structure, typical mean in unit)
    cv: float  # SD / mean
    decimals: int
    covariate_effects: tuple[float, float, float]  # SD per SD of age, male vs female, SD of log motion


_CORTEX = ("bankssts", "caudal anterior cingulate", "caudal middle frontal", "cuneus", "entorhinal",
           "fusiform", "inferior parietal", "inferior temporal", "isthmus cingulate", "lateral occipital",
           "lateral orbitofrontal", "lingual", "medial orbitofrontal", "middle temporal", "parahippocampal",
           "paracentral", "pars opercularis", "pars orbitalis", "pars triangularis", "pericalcarine",
           "postcentral", "posterior cingulate", "precentral", "precuneus", "rostral anterior cingulate",
           "rostral middle frontal", "superior frontal", "superior parietal", "superior temporal",
           "supramarginal", "frontal pole", "temporal pole", "transverse temporal", "insula")
_TRACTS = ("anterior thalamic radiation", "corticospinal tract", "cingulum cingulate gyrus",
           "cingulum hippocampus", "inferior fronto-occipital fasciculus", "inferior longitudinal fasciculus",
           "superior longitudinal fasciculus", "uncinate fasciculus", "anterior corona radiata",
           "posterior thalamic radiation", "external capsule", "cerebral peduncle")
IDP_KINDS = (
    _IdpKind("Subcortical volumes", "mm3", "Volume of grey matter in {side} {structure}",
             (("thalamus", 7800.0), ("caudate", 3500.0), ("putamen", 4800.0), ("pallidum", 1800.0),
              ("hippocampus", 4000.0), ("amygdala", 1300.0), ("accumbens", 500.0)),
             cv=0.11, decimals=1, covariate_effects=(-0.45, 0.6, -0.05)),
    _IdpKind("Cortical thickness", "mm", "Mean thickness of {structure} ({side} hemisphere)",
             tuple((region, 2.5) for region in _CORTEX), cv=0.06, decimals=3,
             covariate_effects=(-0.4, -0.1, -0.15)),
    _IdpKind("dMRI FA", "fraction", "Mean FA in {structure} ({side}) on FA skeleton",
             tuple((tract, 0.5) for tract in _TRACTS), cv=0.06, decimals=4,
             covariate_effects=(-0.35, 0.15, -0.2)),
)


@dataclass(frozen=True)
class _Idp:
    """One IDP column: a kind measured on one structure and side; ``cycle`` > 0 repeats a name."""

    kind: _IdpKind
    structure: str
    typical: float
    side: str
    cycle: int

    @property
    def name(self) -> str:
        name = self.kind.name.format(structure=self.structure, side=self.side)
        return f"{name} (repeat {self.cycle + 1})" if self.cycle else name


@dataclass(frozen=True)
class _Cohort:
    """True participant characteristics (the CSVs show them with missing cells)."""

    eid: np.ndarray  # samples
    age: np.ndarray
    male: np.ndarray
    site: np.ndarray  # index into SITES
    pcs: np.ndarray  # samples × 10
    height: np.ndarray
    head_motion: np.ndarray
    stress: np.ndarray  # the exposure, standardised
    imaged: np.ndarray  # attended the imaging visit


@dataclass(frozen=True)
class _FamilyKind:
    """A kind of family: its members (its participants first, then relatives who are not participants), each
    child's parents, and the related pairs of participants it plants with their pedigree kinship."""

    name: str
    participants: int
    members: int
    parents: tuple[tuple[int, int, int], ...]  # (child, father, mother), parents before their children
    pairs: tuple[tuple[int, int, str, float], ...]  # (participant, participant, relation, kinship)
    share: float  # of the related participants


FAMILY_KINDS = (
    # two siblings, whose parents (2, 3) are not participants
    _FamilyKind("siblings", 2, 4, ((0, 2, 3), (1, 2, 3)), ((0, 1, "sibling", 0.25),), share=0.4),
    # a father (0), a mother (1) and their child (2)
    _FamilyKind("trio", 3, 3, ((2, 0, 1),),
                ((0, 2, "parent-offspring", 0.25), (1, 2, "parent-offspring", 0.25)), share=0.35),
    # a father (0), his child (1) and his sibling's child (2); the grandparents (3, 4), the sibling (5) and
    # the spouses (6 of 0, 7 of 5) are not participants
    _FamilyKind("cousins", 3, 8, ((0, 3, 4), (5, 3, 4), (1, 0, 6), (2, 5, 7)),
                ((0, 1, "parent-offspring", 0.25), (0, 2, "avuncular", 0.125), (1, 2, "first cousins", 0.0625)),
                share=0.25),
)


@dataclass(frozen=True)
class _Pedigree:
    """Families among the participants (persons 0 … samples − 1) and their relatives who are not participants
    (persons from samples on): the haplotype each meiosis makes, from which parent's two, and the families."""

    samples: int
    persons: int  # participants and the relatives who are not
    child: np.ndarray  # meioses: the haplotype each makes (:func:`_haplotype`), parents' before their children's
    parent: np.ndarray  # meioses × 2: the transmitting parent's two haplotypes
    families: list[tuple[_FamilyKind, np.ndarray]]  # each family's kind and members (persons, in the kind's order)
    rng: np.random.Generator  # draws the meioses' crossovers


@dataclass(frozen=True)
class _HaplotypeBlocks:
    """The genetic map of a run of variants and its haplotype blocks (runs of variants between hotspots)."""

    cm: np.ndarray  # variants, centimorgans from the chromosome's start
    starts: np.ndarray  # blocks + 1; block b is variants [starts[b], starts[b + 1])
    switches: np.ndarray  # blocks: founder switches a haplotype expects at the block's start (inf: a new chromosome)


@dataclass(frozen=True)
class _Layout:
    """Where variants sit: per-variant annotation, genotyped regions and haplotype blocks."""

    chrom: np.ndarray  # variants
    pos: np.ndarray
    rsid: np.ndarray
    alleles: np.ndarray  # variants × 2 (A1 = alt, A2 = ref), letters
    region: np.ndarray  # variants: the genotyped region (a dense stretch of the array) holding each
    blocks: _HaplotypeBlocks


@dataclass(frozen=True)
class _Causal:
    """A variant chosen to carry a planted effect, with its true (never missing) dosages."""

    index: int
    alt_frequency: float
    dosage: np.ndarray  # samples, alt-allele count

    @property
    def centred(self) -> np.ndarray:
        """The dosages less their mean, 2p: samples."""
        return self.dosage - 2 * self.alt_frequency

    @property
    def heterozygosity(self) -> float:
        """2p(1 − p): the variance of an alt count at Hardy–Weinberg equilibrium."""
        return 2 * self.alt_frequency * (1 - self.alt_frequency)


@dataclass(frozen=True)
class _IdpModel:
    """IDP column j = mean_j + sd_j × (predictors · weights_j + polygenic_sd_j × background_j
    + noise_sd_j × N(0, 1)), rounded; background_j is the IDP's standardised polygenic value."""

    fields: list[str]  # IDPs
    mean: np.ndarray  # in the IDP's unit
    sd: np.ndarray
    scale: np.ndarray  # 10 ** decimals written
    weights: np.ndarray  # predictors × IDPs, SD units
    polygenic_sd: np.ndarray  # IDPs, SD units
    noise_sd: np.ndarray  # tops each IDP's variance up to 1 SD²
    h2: np.ndarray  # IDPs: additive genetic share of the variance the covariates leave (background + planted variant)
    background_share: np.ndarray  # IDPs: the background's share of the additive genetic variance
    site_scale: np.ndarray  # sites × IDPs: the scanner's multiplier of the noise (mean square 1 over the cohort)


@dataclass(frozen=True)
class _Disorder:
    """The synthetic disorder: a liability-threshold trait whose case-control GWAS ships with the release."""

    name: str = "disorder"
    file: str = "disorder.tsv"
    h2_liability: float = 0.3
    prevalence: float = 0.01
    case_fraction: float = 0.4
    # GWAS participants per variant of the release: N h²/M as in a large psychiatric GWAS on a real
    # genome (mean χ² ~ 2-3), since a synthetic release has far fewer variants than a real one
    samples_per_variant: float = 1 / 3

    @property
    def h2_observed(self) -> float:
        """h² on the 0/1 scale of a study with this case fraction, which LDSC estimates without
        --samp-prev/--pop-prev (Lee et al. 2011, AJHG 88:294, eq. 23 turned round)."""
        k, share = self.prevalence, self.case_fraction
        density = scipy.stats.norm.pdf(scipy.stats.norm.isf(k))
        return self.h2_liability * density**2 * share * (1 - share) / (k**2 * (1 - k) ** 2)


DISORDER = _Disorder()


@dataclass(frozen=True)
class _Architecture:
    """Each trait's genetic value as a mix of independent polygenic factors (``loadings`` rows: the
    IDPs, then the disorder; a unit row, or zeros for an IDP without background), so the genetic
    correlation of two traits is their rows' product."""

    h2: np.ndarray  # IDPs: planted h² of those with a background, 0 for the others
    loadings: np.ndarray  # (IDPs + 1) × factors

    @property
    def rg(self) -> np.ndarray:
        """Genetic correlations, (IDPs + 1) × (IDPs + 1)."""
        return self.loadings @ self.loadings.T


def _apportion(total: int, weights: np.ndarray) -> np.ndarray:
    """Split ``total`` into integer counts proportional to ``weights``, each at least 1."""
    share = (total - len(weights)) * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    counts[np.argsort(counts - share)[: total - len(weights) - counts.sum()]] += 1
    return counts + 1


def _positions(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct sorted bp positions spread along each chromosome; returns (chrom, pos)."""
    pos = [np.sort(rng.choice(length, count, replace=False)) + 1
           for length, count in zip(GRCH37_LENGTHS, counts)]
    return np.repeat(np.arange(1, 23), counts), np.concatenate(pos)


def _array_positions(rng: np.random.Generator, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions as on a thinned array: each chromosome's variants in regions of REGION_VARIANTS,
    ~ARRAY_SPACING_BP apart inside a region (at most a quarter of the even spacing), the regions
    scattered along the chromosome. Returns (chrom, pos, region), region numbered genome-wide."""
    pos, region, regions_before = [], [], 0
    for length, count in zip(GRCH37_LENGTHS, counts):
        regions = -(-count // REGION_VARIANTS)
        gaps = np.maximum(1, np.rint(rng.exponential(min(ARRAY_SPACING_BP, length / count / 4), count)))
        member = np.arange(count) * regions // count  # regions of (nearly) equal size
        first = np.r_[True, member[1:] != member[:-1]]
        free = length - gaps[~first].sum() - regions  # bp left between regions
        gaps[first] = 1 + np.floor(rng.dirichlet(np.ones(regions + 1))[:regions] * free)
        pos.append(np.cumsum(gaps).astype(np.int64))
        region.append(regions_before + member)
        regions_before += regions
    return np.repeat(np.arange(1, 23), counts), np.concatenate(pos), np.concatenate(region)


def _genetic_map(rng: np.random.Generator, chrom: np.ndarray, pos: np.ndarray, *,
                 hotspot_bp: float) -> _HaplotypeBlocks:
    """cM positions and haplotype blocks of variants sorted by (chrom, pos).

    Hotspots lie Exp(``hotspot_bp``) apart and carry Gamma(2)-distributed cM (HOTSPOT_CM_PER_MB
    on average) over a BACKGROUND_CM_PER_MB background; a block ends at each hotspot, and a
    haplotype expects (cM between the blocks' variants) / LD_SCALE_CM founder switches there.
    """
    cm, hotspots_passed = np.empty(len(pos)), np.empty(len(pos), np.int64)
    for c in np.unique(chrom):
        on = np.flatnonzero(chrom == c)
        count = int(1.2 * pos[on[-1]] / hotspot_bp) + 20  # enough hotspots to pass the last variant
        hotspots = np.cumsum(rng.exponential(hotspot_bp, count))
        heat = np.r_[0, np.cumsum(rng.gamma(2.0, HOTSPOT_CM_PER_MB * hotspot_bp / 2e6, count))]
        hotspots_passed[on] = np.searchsorted(hotspots, pos[on])
        cm[on] = BACKGROUND_CM_PER_MB * pos[on] / 1e6 + heat[hotspots_passed[on]]
    new_chrom = np.r_[True, chrom[1:] != chrom[:-1]]
    starts = np.flatnonzero(new_chrom | np.r_[True, hotspots_passed[1:] != hotspots_passed[:-1]])
    switches = np.where(new_chrom[starts], np.inf, (cm[starts] - cm[np.maximum(starts - 1, 0)]) / LD_SCALE_CM)
    return _HaplotypeBlocks(cm, np.r_[starts, len(pos)], switches)


def _variant_layout(rng: np.random.Generator, variants: int) -> _Layout:
    """Chromosomes in proportion to GRCh37 lengths, positions, unique rs ids, alleles, genetic map."""
    counts = _apportion(variants, GRCH37_LENGTHS)
    chrom, pos, region = _array_positions(rng, counts)
    rsid = 1000 + 10 * np.arange(variants) + rng.integers(0, 10, variants)
    first = rng.integers(0, 4, variants)
    letters = np.array(list("ACGT"))[np.stack([first, (first + rng.integers(1, 4, variants)) % 4], 1)]
    return _Layout(chrom, pos, rsid, letters, region, _genetic_map(rng, chrom, pos, hotspot_bp=HOTSPOT_SPACING_BP))


def _draw_cohort(rng: np.random.Generator, samples: int) -> _Cohort:
    """Participants with UK-Biobank-like eids, imaging-visit ages, sites and the stress exposure."""
    age = np.round(45 + 37 * rng.beta(2.4, 2.2, samples), 1)
    male = rng.random(samples) < 0.48
    motion = rng.lognormal(np.log(0.12) + 0.015 * (age - 64), 0.4)
    return _Cohort(
        eid=np.sort(rng.choice(5_000_000, samples, replace=False)) + 1_000_000,
        age=age, male=male, site=rng.choice(len(SITES), samples, p=SITE_SHARES),
        pcs=np.round(rng.standard_normal((samples, 10)), 5),
        height=np.round(np.where(male, 176.0, 162.5) + rng.normal(0, 6.8, samples), 1),
        head_motion=np.round(motion, 4), stress=np.round(rng.standard_normal(samples), 3),
        imaged=rng.random(samples) >= 0.05)


def _draw_pedigree(rng: np.random.Generator, samples: int, related: float) -> _Pedigree:
    """Families of each of FAMILY_KINDS, its share of the ``related`` share of the participants (whole families,
    so a little fewer), their participants drawn at random from every participant."""
    counts = [int(related * samples * kind.share) // kind.participants for kind in FAMILY_KINDS]
    order = rng.permutation(samples).tolist()  # participants take their places in families in this order
    persons, families = samples, []
    for kind, count in zip(FAMILY_KINDS, counts):
        for _ in range(count):
            absent = kind.members - kind.participants
            families.append((kind, np.array([*(order.pop() for _ in range(kind.participants)),
                                             *range(persons, persons + absent)])))
            persons += absent
    meioses = np.array([(members[child], copy, members[parent]) for kind, members in families
                        for child, *parents in kind.parents for copy, parent in enumerate(parents)],
                       np.int64).reshape(-1, 3)  # (child, its haplotype from this parent, parent)
    return _Pedigree(samples, persons, _haplotype(meioses[:, 0], meioses[:, 1], samples),
                     _haplotype(meioses[:, 2:], np.arange(2), samples), families, rng)


def _haplotype(person: np.ndarray, copy: np.ndarray, samples: int) -> np.ndarray:
    """A person's haplotype ``copy`` (0: from the father, 1: from the mother) as :class:`_FounderPairs` numbers
    them: a participant's (person < samples) copy × samples + person, another relative's 2 × person + copy."""
    return np.where(person < samples, copy * samples + person, 2 * person + copy)


def _with_families(cohort: _Cohort, pedigree: _Pedigree) -> _Cohort:
    """The cohort with each family's participants at one imaging site (its first participant's, drawn as every
    participant's, so site stays independent of the other covariates), fathers male and mothers female, and each
    family's ages reordered so parents are older than their children."""
    site, male, age = cohort.site.copy(), cohort.male.copy(), cohort.age.copy()
    for kind, members in pedigree.families:
        participants = members[:kind.participants]
        site[participants] = site[participants[0]]
        generation = np.zeros(kind.members, int)
        for child, father, mother in kind.parents:
            generation[child] = generation[father] + 1
            for parent, is_male in ((father, True), (mother, False)):
                if parent < kind.participants:
                    male[members[parent]] = is_male
        age[participants[np.argsort(generation[:kind.participants], kind="stable")]] = -np.sort(-age[participants])
    return replace(cohort, site=site, male=male, age=age)


def _with_missing(rng: np.random.Generator, values: np.ndarray, rate: float) -> np.ndarray:
    """A float copy of ``values`` with about ``rate`` of the cells set to NaN (written empty)."""
    return np.where(rng.random(values.shape) < rate, np.nan, values.astype(float))


def _covariates_frame(rng: np.random.Generator, cohort: _Cohort) -> pl.DataFrame:
    """``covariates.csv``: one row per participant; head motion exists only for the imaged."""
    motion = np.where(cohort.imaged, cohort.head_motion, np.nan)
    return pl.DataFrame({
        "eid": cohort.eid, "age": cohort.age, "sex": np.where(cohort.male, "M", "F"),
        "site": np.array(SITES)[cohort.site], **{f"PC{k + 1}": cohort.pcs[:, k] for k in range(10)},
        "height": _with_missing(rng, cohort.height, 0.02), "head_motion": _with_missing(rng, motion, 0.03),
        "stress": _with_missing(rng, cohort.stress, 0.03)}, nan_to_null=True)


def _maf(alt_counts: np.ndarray, samples: int) -> np.ndarray:
    """Minor-allele frequency from alt-allele counts among ``samples`` diploid genotypes."""
    return np.minimum(alt_counts, 2 * samples - alt_counts) / (2 * samples)


class _MosaicBlock(NamedTuple):
    """One haplotype block of :func:`_founder_mosaic`."""

    start: int
    stop: int
    carriers: np.ndarray  # founders × variants, 1 where the founder carries the alt allele (uint8)
    pairs: np.ndarray  # samples, founder pair: founder of haplotype 0 × FOUNDERS + founder of haplotype 1
    quads: np.ndarray  # .bed bytes × 2, the pair index of its samples (0, 1) and (2, 3) (see _byte_quads)
    alt_counts: np.ndarray  # variants, alt alleles in the sample
    shares: np.ndarray  # founders: how often a recombining haplotype of the chromosome picks each

    def dosages(self) -> np.ndarray:
        """Alt-allele dosages: variants × samples (uint8)."""
        return (self.carriers[self.pairs // FOUNDERS] + self.carriers[self.pairs % FOUNDERS]).T


def _founder_weights(rng: np.random.Generator) -> np.ndarray:
    """The founder a recombining haplotype picks, by a random byte: 256 founders (uint8).

    Two rare founders get 1–8 of the 256 (0.4–3.1 %) each; six common ones share the rest by
    Dirichlet draws (a fifth of it evenly).
    """
    rare = rng.integers(1, 9, RARE_FOUNDERS)
    share = 0.8 * rng.dirichlet(np.ones(COMMON_FOUNDERS)) + 0.2 / COMMON_FOUNDERS
    common = np.floor(share * (256 - rare.sum())).astype(np.int64)
    common[0] += 256 - common.sum() - rare.sum()
    return np.repeat(np.arange(FOUNDERS, dtype=np.uint8), np.r_[common, rare])


def _byte_quads(pairs: np.ndarray, padding: int) -> np.ndarray:
    """Index of the founder pairs of samples (0, 1) and of samples (2, 3) of .bed bytes, from their
    four samples' founder pairs (bytes × 4; ``padding`` is the pair of a row's padding): bytes × 2."""
    return pairs[:, 0::2] * (padding + 1) + pairs[:, 1::2]


@numba.njit(cache=True, nogil=True)
def _set_founder(haplotypes: np.ndarray, samples: int, pairs: np.ndarray, quads: np.ndarray, counts: np.ndarray,
                 h: int, founder: int) -> None:
    """Haplotype h copies ``founder`` from here on; a participant's (h < 2 × samples) also moves the founder
    counts, its founder pair and its .bed byte's pair index."""
    if h >= 2 * samples:  # a relative who is not a participant: no genotype to write, no count
        haplotypes[h] = founder
        return
    counts[haplotypes[h]] -= 1
    counts[founder] += 1
    haplotypes[h] = founder
    sample = h % samples
    pairs[sample] = haplotypes[sample] * FOUNDERS + haplotypes[sample + samples]
    first = sample - sample % 2  # of the two samples sharing a half byte
    quads[sample // 4, (sample % 4) // 2] = pairs[first] * (FOUNDERS**2 + 1) + pairs[first + 1]


@numba.njit(cache=True, nogil=True)
def _switch_founders(haplotypes: np.ndarray, free: np.ndarray, samples: int, pairs: np.ndarray, quads: np.ndarray,
                     counts: np.ndarray, draws: np.ndarray, founder_of_byte: np.ndarray, keep: int) -> None:
    """Apply founder switches to the ``free`` haplotypes in place, one random uint64 each, updating what
    depends on them.

    With ``keep`` < 0 each draw switches the free haplotype its high 32 bits pick; otherwise draw i
    is free haplotype i's, which switches when its top 16 bits reach ``keep``. The new founder is
    ``founder_of_byte`` of the draw's low byte. Compiled: a switch costs a few ns, where numpy
    would make a pass over the sample for each step.
    """
    width = np.uint64(free.size)
    for i in range(draws.size):
        draw = draws[i]
        if keep < 0:
            h = free[np.int64(((draw >> np.uint64(32)) * width) >> np.uint64(32))]
        elif np.int64(draw >> np.uint64(48)) < keep:
            continue
        else:
            h = free[i]
        _set_founder(haplotypes, samples, pairs, quads, counts, h,
                     np.int64(founder_of_byte[np.int64(draw & np.uint64(255))]))


@numba.njit(cache=True, nogil=True)
def _inherit(haplotypes: np.ndarray, samples: int, pairs: np.ndarray, quads: np.ndarray, counts: np.ndarray,
             child: np.ndarray, parent: np.ndarray, strand: np.ndarray) -> None:
    """Each meiosis's haplotype ``child[k]`` copies the founder of its parent's haplotype ``parent[k, strand[k]]``
    (meioses in order, parents' before their children's, so a grandchild copies its parent's new founder)."""
    for k in range(child.size):
        founder = haplotypes[parent[k, strand[k]]]
        if haplotypes[child[k]] != founder:
            _set_founder(haplotypes, samples, pairs, quads, counts, child[k], founder)


class _FounderPairs:
    """The founder each sample's two haplotypes copy, switched in place by recombination, with the
    founder counts, the founder pair per sample and per .bed byte's two sample pairs (what
    packing reads). With a pedigree, relatives who are not participants have haplotypes too, and an
    inherited haplotype copies its parent's (one of two, switching at crossovers) instead of recombining
    in the population."""

    def __init__(self, samples: int, pedigree: _Pedigree | None = None) -> None:
        self.samples, self.pedigree = samples, pedigree
        persons = samples if pedigree is None else pedigree.persons
        self.haplotypes = np.zeros(2 * persons, np.int64)  # haplotype h < 2 × samples belongs to sample h % samples
        self.free = np.arange(2 * persons) if pedigree is None else np.setdiff1d(np.arange(2 * persons), pedigree.child)
        self.strand = np.zeros(0 if pedigree is None else len(pedigree.child), np.int64)  # which parental haplotype
        self.pairs = np.full(-(-samples // 4) * 4, FOUNDERS**2, np.int64)  # + the padding pair
        self.pairs[:samples] = 0
        self.quads = _byte_quads(self.pairs.reshape(-1, 4), FOUNDERS**2)
        self.counts = np.bincount(self.haplotypes[:2 * samples], minlength=FOUNDERS)

    def recombine(self, rng: np.random.Generator, switches: float, founder_of_byte: np.ndarray) -> None:
        """A free haplotype expecting ``switches`` switches (Poisson) keeps its founder with probability
        exp(−switches), else takes ``founder_of_byte`` of a random byte. Under one switch each,
        Poisson(switches × haplotypes) switches land on random haplotypes (cost ∝ switches)."""
        size = self.free.size
        if switches < 1:
            draws, keep = rng.bit_generator.random_raw(rng.poisson(switches * size)), -1
        else:
            draws, keep = rng.bit_generator.random_raw(size), int(np.exp(-switches) * 2**16)
        _switch_founders(self.haplotypes, self.free, self.samples, self.pairs, self.quads, self.counts, draws,
                         founder_of_byte, keep)

    def inherit(self, morgans: float) -> None:
        """Mendelian transmission across ``morgans`` of the genetic map: each meiosis switches to its parent's
        other haplotype at a Poisson(morgans) number of crossovers (Haldane's map; from 1 Morgan on, with the
        probability of an odd number, so a new chromosome starts on a random one), then every inherited
        haplotype copies its parent's, so relatives share the segments they inherit."""
        if not self.strand.size:
            return
        rng, meioses = self.pedigree.rng, self.strand.size
        if morgans < 1:
            np.bitwise_xor.at(self.strand, rng.integers(0, meioses, rng.poisson(morgans * meioses)), 1)
        else:
            self.strand ^= rng.random(meioses) < (1 - np.exp(-2 * morgans)) / 2
        _inherit(self.haplotypes, self.samples, self.pairs, self.quads, self.counts, self.pedigree.child,
                 self.pedigree.parent, self.strand)


def _fresh_carriers(rng: np.random.Generator, variants: int) -> np.ndarray:
    """Founders carrying each variant's alt allele, drawn afresh: founders × variants (uint8).

    Each founder carries it with a Beta(0.6, 0.6) probability, so frequencies spread as on
    arrays; for RARE_PATTERNS of variants only rare founders do.
    """
    carriers = rng.random((FOUNDERS, variants)) < np.clip(rng.beta(0.6, 0.6, variants), 0.05, 0.95)
    rare = np.flatnonzero(rng.random(variants) < RARE_PATTERNS)
    carriers[:COMMON_FOUNDERS, rare] = False
    carriers[COMMON_FOUNDERS + rng.integers(0, RARE_FOUNDERS, len(rare)), rare] = True
    return carriers.astype(np.uint8)


def _pattern_sources(rng: np.random.Generator, starts: np.ndarray, common: np.ndarray) -> np.ndarray:
    """The variant whose founder alleles each variant repeats (itself when fresh): a block's first
    variant and ``common`` ones are fresh, others repeat their neighbour's PATTERN_REPEATS of the time."""
    fresh = common | (rng.random(len(common)) >= PATTERN_REPEATS)
    fresh[starts] = True
    return np.maximum.accumulate(np.where(fresh, np.arange(len(common)), 0))


def _make_common(rng: np.random.Generator, carriers: np.ndarray, founder_counts: np.ndarray) -> None:
    """Redraw a variant's carriers (a column, in place) as a random set of common founders that
    gives it MAF ≥ 0.1 in the sample (the set of highest MAF if none does)."""
    candidates = FOUNDER_PATTERNS[:, 1:2**COMMON_FOUNDERS]  # founders × sets of common founders
    maf = _maf(founder_counts @ candidates, founder_counts.sum() // 2)
    common = np.flatnonzero(maf >= 0.1)
    carriers[:] = candidates[:, rng.choice(common) if common.size else np.argmax(maf)]


def _founder_mosaic(rng: np.random.Generator, blocks: _HaplotypeBlocks, samples: int,
                    common: np.ndarray, pedigree: _Pedigree | None = None) -> Iterator[_MosaicBlock]:
    """Each sample's two haplotypes as mosaics of founders, block by block along the genome.

    At a block's start each haplotype switches to a random founder with the probability the
    genetic map gives (always at a chromosome's start), and keeps its founder through the
    block; the two haplotypes of a sample are independent, so HWE holds. r² thus decays with
    cM between blocks and is high inside one. With a ``pedigree``, a child's haplotypes are instead
    its parents' (one of each parent's two, switching at meiotic crossovers along the same map:
    :meth:`_FounderPairs.inherit`). ``common`` variants get MAF ≥ 0.1; a variant the
    sample's founders leave monomorphic flips its commonest founder. Draws are made per chromosome;
    a block's ``pairs`` and ``quads`` change with the next block, so use them at once.
    """
    founders = _FounderPairs(samples, pedigree)
    chromosomes = np.r_[np.flatnonzero(np.isinf(blocks.switches)), len(blocks.switches)]
    commons = np.flatnonzero(common).tolist()
    for first, last in itertools.pairwise(chromosomes.tolist()):
        starts = blocks.starts[first:last + 1].tolist()
        offset = starts[0]
        fresh = _fresh_carriers(rng, starts[-1] - offset)
        sources = _pattern_sources(rng, np.array(starts[:-1]) - offset, common[offset:starts[-1]])
        founder_of_byte = _founder_weights(rng)
        shares = np.bincount(founder_of_byte, minlength=FOUNDERS) / founder_of_byte.size
        for block, (start, stop) in enumerate(itertools.pairwise(starts)):
            founders.recombine(rng, blocks.switches[first + block], founder_of_byte)
            founders.inherit(blocks.switches[first + block] * LD_SCALE_CM / 100)
            founder_counts = founders.counts
            while commons and commons[0] < stop:
                _make_common(rng, fresh[:, commons.pop(0) - offset], founder_counts)
            carriers = fresh[:, sources[start - offset:stop - offset]]
            alt_counts = founder_counts @ carriers
            monomorphic = (alt_counts == 0) | (alt_counts == 2 * samples)
            if monomorphic.any():
                carriers[np.argmax(founder_counts), monomorphic] ^= 1
                alt_counts = founder_counts @ carriers
            yield _MosaicBlock(start, stop, carriers, founders.pairs[:samples], founders.quads, alt_counts, shares)


def _pair_nibbles(carriers: np.ndarray) -> np.ndarray:
    """The .bed half-byte of two consecutive samples by their founder pairs: variants × pairs².

    ``carriers`` is founders × variants (uint8); a sample's pair is founder of haplotype 0 ×
    founders + founder of haplotype 1, and pair founders² pads a row's last byte.
    """
    founders, variants = carriers.shape
    dosage = (carriers[:, None, :] + carriers[None, :, :]).reshape(founders**2, variants)
    codes = np.vstack([CODE_OF_ALT_DOSAGE[dosage], np.zeros((1, variants), np.uint8)])  # + padding
    pairs = len(codes)
    return (codes[:, None, :] | codes[None, :, :] << 2).reshape(pairs**2, variants).T.copy()


def _pack_nibbles(nibbles: np.ndarray, quads: np.ndarray) -> np.ndarray:
    """.bed rows (variants × ceil(samples / 4) bytes, low bits first) from :func:`_pair_nibbles`'
    table and each byte's sample pairs (:func:`_byte_quads`): two look-ups and an OR."""
    packed = np.take(nibbles, quads[:, 0], axis=1)  # variants × bytes
    packed |= np.take(nibbles, quads[:, 1], axis=1) << 4
    return packed


def _pack_bed_rows(carriers: np.ndarray, haplotypes: np.ndarray) -> np.ndarray:
    """Encode one block as .bed rows: variants × ceil(samples / 4) bytes, low bits first.

    A genotype is fixed by the sample's pair of founders, so the byte halves for every two
    consecutive samples are tabulated once per block; rows are then two look-ups and an OR.
    """
    founders, samples = len(carriers), haplotypes.shape[1]
    pairs = np.full(-(-samples // 4) * 4, founders**2, np.intp)
    pairs[:samples] = haplotypes[0].astype(np.intp) * founders + haplotypes[1]
    return _pack_nibbles(_pair_nibbles(carriers), _byte_quads(pairs.reshape(-1, 4), founders**2))


def _missing_calls(rng: np.random.Generator, variants: int, samples: int,
                   rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Sparse (variant, sample) positions of missing calls: ``rate`` overall (30 % of variants
    complete, the rest gamma-distributed up to 5× the rate)."""
    scale = rate / 0.01
    rates = np.where(rng.random(variants) < 0.3, 0.0,
                     np.minimum(rng.gamma(2.0, 0.0072 * scale, variants), 0.05 * scale))
    counts = rng.binomial(samples, rates)
    flat = np.sort(np.repeat(np.arange(variants), counts) * samples + rng.integers(0, samples, counts.sum()))
    return np.divmod(flat[np.diff(flat, prepend=-1) > 0], samples)  # np.unique is 20× slower here


def _keep_polymorphic(missing: tuple[np.ndarray, np.ndarray], packed: np.ndarray,
                      alt_counts: np.ndarray, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Drop the missing calls of variants they would leave monomorphic among called genotypes
    (``packed``: .bed rows of the variants, ``alt_counts``: their alt alleles before any is lost)."""
    variant, sample = missing
    codes = (packed[variant, sample // 4] >> (2 * (sample % 4)).astype(np.uint8)) & 0b11
    lost_alt = np.bincount(variant, ALT_DOSAGE_OF_CODE[codes], len(alt_counts))
    called_alleles = 2 * (samples - np.bincount(variant, minlength=len(alt_counts)))
    called_alt = alt_counts - lost_alt
    keep = ((called_alt > 0) & (called_alt < called_alleles))[variant]
    return variant[keep], sample[keep]


def _mark_missing(packed: np.ndarray, missing: tuple[np.ndarray, np.ndarray]) -> None:
    """Overwrite the 2-bit codes at the missing (variant, sample) positions with 0b01, in place."""
    variant, sample = missing
    byte = variant * packed.shape[1] + sample // 4
    shift = (2 * (sample % 4)).astype(np.uint8)
    np.bitwise_and.at(packed.reshape(-1), byte, ~(np.uint8(0b11) << shift))
    np.bitwise_or.at(packed.reshape(-1), byte, MISSING_CODE << shift)


def _polygenic_architecture(rng: np.random.Generator, idps: list[_Idp], targets: np.ndarray) -> _Architecture:
    """Draw the IDPs' polygenic backgrounds and what they share.

    All but NULL_SHARE of the IDPs carry one, with h² spread evenly over HERITABILITY_RANGE
    (shuffled); the null ones are drawn among the IDPs without a planted variant, so an IDP with one
    has a background too and its h² lies in the range (a variant's 3-5 % alone could fall below it,
    by the chance of its sample variance). Factors shared, by IDPs other than the planted variants' ``targets`` (whose
    genetic variance is largely that variant's): one by two IDPs of different kinds with opposite
    signs (rg in NEGATIVE_RG), one by the left and right IDP of each other structure (rg in
    PAIR_RG), two of which the disorder shares too (DISORDER_LOADINGS); each trait has a private
    factor.
    """
    count = len(idps)
    polygenic = np.ones(count, bool)
    unplanted = np.flatnonzero(~np.isin(np.arange(count), targets))
    polygenic[rng.choice(unplanted, min(round(NULL_SHARE * count), len(unplanted)), replace=False)] = False
    h2 = np.zeros(count)
    h2[polygenic] = np.round(rng.permutation(np.linspace(*HERITABILITY_RANGE, polygenic.sum())), 3)
    shareable = polygenic & ~np.isin(np.arange(count), targets)
    shuffled = rng.permutation(np.flatnonzero(shareable)).tolist()
    negative = next(((a, b) for a, b in itertools.combinations(shuffled, 2) if idps[a].kind != idps[b].kind), ())
    sides: dict[tuple, list[int]] = {}
    for i in np.flatnonzero(shareable).tolist():
        if i not in negative:
            sides.setdefault((idps[i].kind.category, idps[i].structure, idps[i].cycle), []).append(i)
    pairs = [members for members in sides.values() if len(members) == 2]
    _give_largest(h2, [*negative, *itertools.chain.from_iterable(pairs)])
    shared = np.zeros((count + 1, len(pairs) + bool(negative)))  # traits × shared factors
    for factor, members in enumerate(pairs):
        shared[members, factor] = np.sqrt(rng.uniform(*PAIR_RG))
    for factor, loading in zip(rng.choice(len(pairs), min(len(pairs), len(DISORDER_LOADINGS)), replace=False),
                               DISORDER_LOADINGS):
        shared[count, factor] = loading
    if negative:
        shared[list(negative), -1] = np.sqrt(-rng.uniform(*NEGATIVE_RG)) * np.array([1.0, -1.0])
    background = np.r_[polygenic, True]
    private = np.diag(np.sqrt(1 - (shared**2).sum(axis=1)) * background)[:, background]
    return _Architecture(h2, np.hstack([shared, private]))


def _give_largest(h2: np.ndarray, linked: list[int]) -> None:
    """Swap planted h² values so the ``linked`` traits (those sharing a factor) hold the largest ones: LD score
    regression leaves rg undefined when an h² estimate is ≤ 0, as it often is for h² near 0.05 at a demo's N.

    Examples
    --------
    >>> h2 = np.array([0.1, 0.5, 0.3, 0.2])
    >>> _give_largest(h2, [0, 3])
    >>> h2.tolist()
    [0.5, 0.1, 0.2, 0.3]
    """
    top = set(np.argsort(-h2, kind="stable")[: len(linked)].tolist())
    donors = [i for i in sorted(top) if i not in linked]
    receivers = [i for i in linked if i not in top]
    for donor, receiver in zip(donors, receivers):
        h2[[donor, receiver]] = h2[[receiver, donor]]


@numba.njit(cache=True, nogil=True)
def _carry_along(keep: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Running sums down the rows that fade by ``keep`` from row to row: out_b = keep_b · out_(b−1) + values_b."""
    out = np.empty_like(values)
    carried = np.zeros(values.shape[1])
    for b in range(values.shape[0]):
        carried = keep[b] * carried + values[b]
        out[b] = carried
    return out


@numba.njit(cache=True, nogil=True)
def _queue_dosages(drawn: np.ndarray, alt_counts: np.ndarray, patterns: np.ndarray, pairs: np.ndarray, start: int,
                   genotypes: np.ndarray, scales: np.ndarray, queue: np.ndarray, queued: int) -> int:
    """Append the alt dosages (samples, from each sample's founder pair), 1 / SD and index of a block's
    ``drawn`` variants with sample MAF ≥ POLYGENIC_MIN_MAF to the rows from ``queued`` on; returns
    the new row count. Compiled: most blocks add one or two variants, too few for numpy's calls."""
    alleles = 2 * pairs.size
    for v in range(drawn.size):
        frequency = alt_counts[v] / alleles
        if drawn[v] and POLYGENIC_MIN_MAF <= frequency <= 1 - POLYGENIC_MIN_MAF:
            dosage, row = PAIR_DOSAGE[patterns[v]], genotypes[queued]
            for sample in range(pairs.size):
                row[sample] = dosage[pairs[sample]]
            scales[queued] = 1 / np.sqrt(2 * frequency * (1 - frequency))
            queue[queued] = start + v
            queued += 1
    return queued


class _Background:
    """The polygenic background, drawn as the genotype blocks stream past.

    A POLYGENIC_SHARE of the variants with sample MAF ≥ POLYGENIC_MIN_MAF outside ``excluded``
    get N(0, 1) effects on their standardised genotypes, one per factor; the factors' values
    per participant are matrix products over chunks of those variants. The disorder's effect on
    each is its factor mix; the founder alleles of every variant are kept for its GWAS, which is
    drawn from the population's LD (:meth:`disorder_z`).
    """

    def __init__(self, rng: np.random.Generator, architecture: _Architecture, blocks: _HaplotypeBlocks,
                 excluded: np.ndarray, samples: int) -> None:
        self.rng, self.loadings = rng, architecture.loadings
        self.drawn = (rng.random(len(excluded)) < POLYGENIC_SHARE) & ~excluded  # variants: effects if common
        self.drawn_blocks = set(blocks.starts[:-1][np.add.reduceat(self.drawn, blocks.starts[:-1]) > 0].tolist())
        self.factor_values = np.zeros((samples, self.loadings.shape[1]))  # samples × factors
        rows = POLYGENIC_CHUNK + np.diff(blocks.starts).max()
        self.genotypes = np.empty((rows, samples), np.float32)  # alt dosages of the queued variants
        self.scales, self.queue = np.empty(rows), np.empty(rows, np.int64)  # their 1 / SD, their index
        self.queued = 0
        self.carriers: list[np.ndarray] = []  # per block, founders × variants
        self.shares: list[np.ndarray] = []  # per block, founders
        self.causal: list[np.ndarray] = []  # variant indices
        self.disorder_effects: list[np.ndarray] = []  # per causal variant, standardised

    @property
    def variants(self) -> int:
        """Variants with effects so far."""
        return sum(len(indices) for indices in self.causal)

    def add(self, block: _MosaicBlock, patterns: np.ndarray) -> None:
        """Queue the alt dosages of one block's variants with effects (use before the next block);
        ``patterns`` are the block's sets of alt-carrying founders (FOUNDER_PATTERNS indices)."""
        self.carriers.append(block.carriers)
        self.shares.append(block.shares)
        if block.start in self.drawn_blocks:
            self.queued = _queue_dosages(self.drawn[block.start:block.stop], block.alt_counts, patterns, block.pairs,
                                         block.start, self.genotypes, self.scales, self.queue, self.queued)
            if self.queued >= POLYGENIC_CHUNK:
                self.flush()

    def flush(self) -> None:
        """Draw the queued variants' effects and add their share to the factor values (uncentred: a
        constant per factor, which standardising the values removes)."""
        if self.queued:
            effects = self.rng.standard_normal((self.queued, self.loadings.shape[1]))
            scaled = (effects * self.scales[:self.queued, None]).astype(np.float32)
            self.factor_values += self.genotypes[:self.queued].T @ scaled
            self.disorder_effects.append(effects @ self.loadings[-1])
            self.causal.append(self.queue[:self.queued].copy())
            self.queued = 0

    def idp_values(self) -> np.ndarray:
        """Each IDP's genetic value, standardised in the sample (zeros without background): samples × IDPs."""
        self.flush()
        values = self.factor_values @ self.loadings[:-1].T
        values -= values.mean(axis=0)
        sd = values.std(axis=0)
        return np.divide(values, sd, out=np.zeros_like(values), where=sd > 0)

    def disorder_z(self, blocks: _HaplotypeBlocks, samples: int, h2: float) -> tuple[np.ndarray, np.ndarray]:
        """z-scores of every variant in a GWAS of ``samples`` people of the population (not the release's
        participants) of a trait with heritability ``h2``, and the population's alt-allele frequencies.

        A haplotype at block b copies founder f with the chromosome's frequency π_f, and keeps its founder
        from block to block with probability keep_b = exp(−switches_b), so two variants' correlation is
        Σ_f π_f ĉ_fu ĉ_fv · Π keep (ĉ: founder alleles centred and scaled by the population frequency).
        z = √N · R β + ε, with ε ~ N(0, R) from founder-wise autoregressive noise along the blocks.
        """
        self.flush()
        carriers = np.hstack(self.carriers).astype(float)  # founders × variants
        block_of = np.repeat(np.arange(len(blocks.switches)), np.diff(blocks.starts))
        shares = np.array(self.shares)[block_of].T  # founders × variants
        frequency = (shares * carriers).sum(axis=0)
        standard = (carriers - frequency) / np.sqrt(frequency * (1 - frequency))
        keep = np.exp(-blocks.switches)
        causal, effects = np.concatenate(self.causal), np.concatenate(self.disorder_effects)
        own = np.zeros((len(keep), FOUNDERS))  # blocks × founders: Σ over the block's causal variants of ĉ β
        np.add.at(own, block_of[causal], (standard[:, causal] * effects).T)
        around = (_carry_along(keep, own) + _carry_along(np.r_[keep[1:], 0][::-1], own[::-1])[::-1] - own)
        marginal = (shares * standard * around[block_of].T).sum(axis=0)  # R β
        variance = effects @ marginal[causal]
        marginal *= np.sqrt(h2 / variance) if variance > 0 else 0.0
        innovations = np.sqrt(1 - keep**2)[:, None] * self.rng.standard_normal(own.shape)
        noise = (np.sqrt(shares) * standard * _carry_along(keep, innovations)[block_of].T).sum(axis=0)
        return np.sqrt(samples) * marginal + noise, frequency


def _write_genotypes(folder: Path, rng: np.random.Generator, layout: _Layout, cohort: _Cohort,
                     pedigree: _Pedigree, hosts: np.ndarray, kept: np.ndarray, missing_calls: float,
                     background: _Background, progress: Progress) -> dict[int, _Causal]:
    """Stream ``genotypes.bed`` in chunks of haplotype blocks (families' members inheriting their
    parents' haplotypes), write .bim (with cM) and .fam (no parents: a biobank's pedigree is
    unknown), and return the true dosages of the variants ``hosts`` (each made MAF ≥ 0.1) and ``kept`` by their
    index. Each block also passes through ``background``."""
    total, samples = len(layout.chrom), len(cohort.eid)
    common, causal = np.isin(np.arange(total), hosts), {}
    returned = common | np.isin(np.arange(total), kept)
    chunk_rows = max(1, GENOTYPE_CHUNK_BYTES // -(-samples // 4))
    chrom_ends = set(np.flatnonzero(np.r_[layout.chrom[1:] != layout.chrom[:-1], True]) + 1)
    rows, alt_counts, chunk_start = [], [], 0
    nibbles = _pair_nibbles(FOUNDER_PATTERNS)  # every founder set's table, once
    with open(folder / "genotypes.bed", "wb") as bed:
        bed.write(BED_MAGIC)
        for block in _founder_mosaic(rng, layout.blocks, samples, common, pedigree):
            patterns = PATTERN_BITS @ block.carriers
            rows.append(_pack_nibbles(nibbles[patterns], block.quads))
            alt_counts.append(block.alt_counts)
            background.add(block, patterns)
            for v in np.flatnonzero(returned[block.start:block.stop]):
                causal[block.start + v] = _Causal(block.start + v, block.alt_counts[v] / (2 * samples),
                                                  block.dosages()[v])
            if block.stop in chrom_ends or block.stop - chunk_start >= chunk_rows:
                packed, counts = np.vstack(rows), np.concatenate(alt_counts)
                missing = _missing_calls(rng, len(packed), samples, missing_calls)
                _mark_missing(packed, _keep_polymorphic(missing, packed, counts, samples))
                bed.write(packed.tobytes())
                rows, alt_counts, chunk_start = [], [], block.stop
                progress("genotypes", block.stop, total)
    pl.DataFrame({"chrom": layout.chrom, "id": np.char.add("rs", layout.rsid.astype(str)),
                  "cm": _bim_cm(layout.blocks.cm), "pos": layout.pos, "a1": layout.alleles[:, 0],
                  "a2": layout.alleles[:, 1]},
                 ).write_csv(folder / "genotypes.bim", separator="\t", include_header=False)
    pl.DataFrame({"fid": cohort.eid, "iid": cohort.eid, "father": 0, "mother": 0,
                  "sex": np.where(cohort.male, 1, 2), "pheno": -9},
                 ).write_csv(folder / "genotypes.fam", separator=" ", include_header=False)
    return causal


def _bim_cm(cm: np.ndarray) -> np.ndarray:
    """cM as a .bim's column 3 holds them: 6 decimals, and never 0 (which PLINK reads as unknown)."""
    return np.maximum(np.round(cm, 6), 1e-6)


def _idp_catalogue(count: int) -> list[_Idp]:
    """``count`` IDPs taken round-robin over kinds (so any count mixes units), grouped by kind."""
    per_kind = [[(kind, structure, typical, side) for structure, typical in kind.structures
                 for side in ("left", "right")] for kind in IDP_KINDS]
    catalogue = [entry for group in itertools.zip_longest(*per_kind) for entry in group if entry]
    idps = [_Idp(*catalogue[i % len(catalogue)], cycle=i // len(catalogue)) for i in range(count)]
    return sorted(idps, key=lambda idp: IDP_KINDS.index(idp.kind))


def _idp_dictionary(idps: list[_Idp]) -> pl.DataFrame:
    """``idp_fields.csv``: one row per IDP column, with consecutive field ids from 25001."""
    field_ids = 25001 + np.arange(len(idps))
    return pl.DataFrame({
        "field": [f"{field_id}-2.0" for field_id in field_ids], "field_id": field_ids,
        "instance": 2, "array": 0, "name": [idp.name for idp in idps],
        "unit": [idp.kind.unit for idp in idps], "category": [idp.kind.category for idp in idps]})


def _idp_design(cohort: _Cohort) -> np.ndarray:
    """Centred covariates IDPs depend on: samples × (age z, male, log-motion z, one per site)."""
    sites = (cohort.site[:, None] == np.arange(len(SITES))).astype(float)
    log_motion = np.log(cohort.head_motion)
    design = np.column_stack([(cohort.age - cohort.age.mean()) / cohort.age.std(), cohort.male,
                              (log_motion - log_motion.mean()) / log_motion.std(), sites])
    return design - design.mean(axis=0)


def _genetic_design(causal: list[_Causal], stress: np.ndarray) -> np.ndarray:
    """Centred causal dosages, the last one times stress (the GxE term): samples × causal."""
    design = np.column_stack([c.centred for c in causal])
    design[:, -1] *= stress
    return design


def _plant(rng: np.random.Generator, terms: int, idps: int) -> tuple[np.ndarray, np.ndarray]:
    """The share of its IDP's variance each causal term explains, and that IDP: (terms, terms).

    Term j explains 3–5 % (the last, GxE, term GXE_VARIANCE), which a covariate-adjusted
    regression at N = 2,000 finds at p < 5e-8.
    """
    explained = np.append(rng.uniform(0.03, 0.05, terms - 1), GXE_VARIANCE)
    return explained, rng.choice(idps, terms, replace=False)


def _genetic_effects(planted: tuple[np.ndarray, np.ndarray], causal: list[_Causal], idps: int) -> np.ndarray:
    """Per-allele effects in SD units, causal × IDPs, each causal term moving its own IDP (:func:`_plant`)."""
    explained, targets = planted
    heterozygosity = np.array([c.heterozygosity for c in causal])
    effects = np.zeros((len(causal), idps))
    effects[np.arange(len(causal)), targets] = np.sqrt(explained / heterozygosity)
    return effects


class _Epistasis(NamedTuple):
    """A planted SNP × SNP interaction: two of the causal variants (their positions in the causal list), the IDP
    it moves and the share of that IDP's variance it explains."""

    a: int
    b: int
    idp: int
    explained: float


def _plant_epistasis(rng: np.random.Generator, causal: int, polygenic: np.ndarray,
                     targets: np.ndarray) -> list[_Epistasis]:
    """Two interactions, each between two planted variants (two different pairs of the first ``causal``, the additive
    ones) and on a polygenic IDP (of ``polygenic``) that no planted variant moves; none if there are too few."""
    free, combinations = np.setdiff1d(polygenic, targets), list(itertools.combinations(range(causal), 2))
    if len(combinations) < 2 or len(free) < 2:
        return []
    chosen, idps = rng.choice(len(combinations), 2, replace=False), rng.choice(free, 2, replace=False)
    return [_Epistasis(*combinations[pair], int(idp), float(rng.uniform(*EPISTASIS_VARIANCE)))
            for pair, idp in zip(chosen, idps)]


def _epistasis_design(causal: list[_Causal], pairs: list[_Epistasis]) -> np.ndarray:
    """The planted interactions' columns: the product of the two variants' centred dosages (samples × pairs)."""
    centred = [c.centred for c in causal]
    return np.column_stack([centred[pair.a] * centred[pair.b] for pair in pairs] or [np.zeros((len(centred[0]), 0))])


def _epistasis_effects(causal: list[_Causal], pairs: list[_Epistasis], idps: int) -> np.ndarray:
    """Per interaction, its effect on its IDP in SD units (pairs × IDPs): the product of two independent centred
    dosages has variance 2pq · 2p'q'."""
    effects = np.zeros((len(pairs), idps))
    for row, pair in enumerate(pairs):
        variance = np.prod([causal[k].heterozygosity for k in (pair.a, pair.b)])
        effects[row, pair.idp] = np.sqrt(pair.explained / variance)
    return effects


def _epistasis_truth(layout: _Layout, causal: list[_Causal], pairs: list[_Epistasis], model: _IdpModel) -> list:
    """truth.json's SNP × SNP interactions: both variants, the IDP, and the coefficient of the product of their
    alt-allele counts in IDP units (what a regression with both main effects estimates)."""
    effects = _epistasis_effects(causal, pairs, len(model.fields))
    return [{"variant_a": _variant_truth(layout, causal[pair.a]), "variant_b": _variant_truth(layout, causal[pair.b]),
             "idp": model.fields[pair.idp], "beta_int": round(float(effects[row, pair.idp] * model.sd[pair.idp]), 6),
             "variance_explained": round(pair.explained, 6)} for row, pair in enumerate(pairs)]


class _Multivariate(NamedTuple):
    """A planted multivariate association: the acting ``variants`` of one region, summed with ``per_allele`` weights
    into the region's genetic score (unit variance in the sample), which moves each IDP of ``idps`` by its
    ``loading`` (SD of the IDP per SD of the score)."""

    variants: list[_Causal]
    per_allele: np.ndarray   # variants: the score's weight on each alt allele
    idps: np.ndarray         # IDP indices
    loadings: np.ndarray     # IDPs of the pattern, SD units

    def score(self) -> np.ndarray:
        """The region's genetic score per participant (centred): samples."""
        return sum(c.centred * weight for c, weight in zip(self.variants, self.per_allele))


def _multivariate_regions(rng: np.random.Generator, layout: _Layout, taken: np.ndarray) -> tuple[int, int] | None:
    """Two genotyped regions outside ``taken`` (the planted variants' regions), on different chromosomes: the one
    the multivariate association acts from, and a null one; None if there are no such two."""
    free = np.setdiff1d(np.unique(layout.region), taken)
    chrom = {region: layout.chrom[layout.region == region][0] for region in free.tolist()}
    acting = int(rng.choice(free)) if len(free) else None
    elsewhere = [region for region in free.tolist() if acting is not None and chrom[region] != chrom[acting]]
    return (acting, int(rng.choice(elsewhere))) if elsewhere else None


def _plant_multivariate(rng: np.random.Generator, region: list[_Causal], idps: list[_Idp], eligible: np.ndarray,
                        imaged: int) -> _Multivariate | None:
    """Up to MULTIVARIATE_VARIANTS common variants (MAF ≥ POLYGENIC_MIN_MAF) of the ``region`` acting, taken in a
    random order where r² < MULTIVARIATE_MAX_R2 with those taken before (so no variant stands for the score), with
    weights of random sign on their standardised alt counts, on up to MULTIVARIATE_IDPS IDPs of the kind with the
    most ``eligible`` ones; each IDP's share of variance is drawn from half to all of the most its variants allow
    (MULTIVARIATE_VARIANCE, MULTIVARIATE_MAX_CHI2 over the ``imaged`` participants: the region's variant most
    correlated with the score decides), with a random sign. None without two such variants and two IDPs."""
    common = [c for c in region if POLYGENIC_MIN_MAF <= c.alt_frequency <= 1 - POLYGENIC_MIN_MAF]
    kinds = {}
    for i in eligible.tolist():
        kinds.setdefault(idps[i].kind.category, []).append(i)
    pattern = max(kinds.values(), key=len, default=[])
    if len(common) < 2 or len(pattern) < 2:
        return None
    chosen: list[_Causal] = []
    for k in rng.permutation(len(common)).tolist():
        if len(chosen) < MULTIVARIATE_VARIANTS and all(
                np.corrcoef(common[k].dosage, c.dosage)[0, 1] ** 2 < MULTIVARIATE_MAX_R2 for c in chosen):
            chosen.append(common[k])
    if len(chosen) < 2:
        return None
    chosen.sort(key=lambda c: c.index)
    centred = np.column_stack([c.centred for c in chosen])
    weights = rng.choice([-1.0, 1.0], len(chosen)) / centred.std(axis=0)
    score = centred @ weights
    moved = np.sort(rng.choice(pattern, min(MULTIVARIATE_IDPS, len(pattern)), replace=False))
    strongest = max(np.corrcoef(c.dosage, score)[0, 1] ** 2 for c in region if c.dosage.std() > 0)
    variance = min(MULTIVARIATE_VARIANCE, MULTIVARIATE_MAX_CHI2 / (imaged * strongest))
    loadings = np.sqrt(variance * rng.uniform(0.5, 1.0, len(moved))) * rng.choice([-1.0, 1.0], len(moved))
    return _Multivariate(chosen, weights / score.std(), moved, loadings)


def _multivariate_design(plant: _Multivariate | None, samples: int) -> np.ndarray:
    """The region's genetic score as a predictor column (samples × 1), or no column without a plant."""
    return np.zeros((samples, 0)) if plant is None else plant.score()[:, None]


def _multivariate_effects(plant: _Multivariate | None, idps: int) -> np.ndarray:
    """The score's effect on each IDP in SD units (1 × IDPs; 0 × IDPs without a plant)."""
    effects = np.zeros((int(plant is not None), idps))
    if plant is not None:
        effects[0, plant.idps] = plant.loadings
    return effects


def _multivariate_truth(layout: _Layout, plant: _Multivariate | None, null_region: int | None,
                        model: _IdpModel) -> dict | None:
    """truth.json's multivariate association: the acting region, its variants (the score's weight per alt allele,
    and the per-allele effect on each IDP of the pattern in IDP units, what a regression of the IDP on all of them
    estimates), the IDPs with the share of their variance it explains, and the null region."""
    if plant is None:
        return None

    def extent(region: int) -> dict:
        on = layout.region == region
        return {"chrom": int(layout.chrom[on][0]), "start": int(layout.pos[on].min()), "end": int(layout.pos[on].max()),
                "variants": int(on.sum())}

    fields = [model.fields[i] for i in plant.idps]
    return {"region": extent(int(layout.region[plant.variants[0].index])),
            "variants": [{**_variant_truth(layout, c), "score_weight": round(float(weight), 6),
                          "beta": {field: round(float(weight * loading * model.sd[i]), 6)
                                   for field, i, loading in zip(fields, plant.idps, plant.loadings)}}
                         for c, weight in zip(plant.variants, plant.per_allele)],
            "idps": [{"idp": field, "loading": round(float(loading), 6), "variance_explained": round(float(loading**2), 6)}
                     for field, loading in zip(fields, plant.loadings)],
            "null_region": extent(null_region)}


class _Oligogenic(NamedTuple):
    """A planted oligogenic IDP: one common variant of each of several regions, each explaining ``explained`` of the
    IDP's variance with a random sign (``effects``: per alt allele, SD units)."""

    variants: list[_Causal]
    idp: int
    effects: np.ndarray   # variants

    @property
    def explained(self) -> np.ndarray:
        """Each variant's share of the IDP's variance: variants."""
        return self.effects ** 2 * np.array([c.heterozygosity for c in self.variants])


def _oligogenic_candidates(rng: np.random.Generator, layout: _Layout, taken: np.ndarray) -> np.ndarray:
    """OLIGOGENIC_CANDIDATES variants, in random order, of each of OLIGOGENIC_LOCI genotyped regions outside ``taken``
    (those of the other plants), or of an eighth of the regions in a smaller genome (the background leaves them out):
    regions × candidates, the candidates of a region of fewer variants repeated."""
    free = np.setdiff1d(np.unique(layout.region), taken)
    count = min(OLIGOGENIC_LOCI, (layout.region[-1] + 1) // 8, len(free))
    regions = np.sort(rng.choice(free, count, replace=False))
    return np.array([np.resize(rng.permutation(np.flatnonzero(layout.region == region)), OLIGOGENIC_CANDIDATES)
                     for region in regions.tolist()], np.int64).reshape(len(regions), OLIGOGENIC_CANDIDATES)


def _plant_oligogenic(rng: np.random.Generator, candidates: list[list[_Causal]], eligible: np.ndarray,
                      h2: np.ndarray) -> _Oligogenic | None:
    """Per region, its first candidate of MAF ≥ OLIGOGENIC_MIN_MAF (none in a region without one) acts on one IDP
    drawn from ``eligible`` with planted ``h2`` ≥ OLIGOGENIC_MIN_H2, explaining OLIGOGENIC_VARIANCE each; None
    without such an IDP or with fewer than two acting variants."""
    common = [next((c for c in region if OLIGOGENIC_MIN_MAF <= c.alt_frequency <= 1 - OLIGOGENIC_MIN_MAF), None)
              for region in candidates]
    acting = [c for c in common if c is not None]
    heritable = eligible[h2[eligible] >= OLIGOGENIC_MIN_H2]
    if len(acting) < 2 or not len(heritable):
        return None
    idp = int(rng.choice(heritable))
    heterozygosity = np.array([c.heterozygosity for c in acting])
    signs = rng.choice([-1.0, 1.0], len(acting))
    return _Oligogenic(acting, idp, signs * np.sqrt(OLIGOGENIC_VARIANCE / heterozygosity))


def _oligogenic_design(plant: _Oligogenic | None, samples: int) -> np.ndarray:
    """The acting variants' centred dosages as predictor columns: samples × variants (none without a plant)."""
    if plant is None:
        return np.zeros((samples, 0))
    return np.column_stack([c.centred for c in plant.variants])


def _oligogenic_effects(plant: _Oligogenic | None, idps: int) -> np.ndarray:
    """Each acting variant's per-allele effect on the IDP in SD units: variants × IDPs."""
    effects = np.zeros((0 if plant is None else len(plant.variants), idps))
    if plant is not None:
        effects[:, plant.idp] = plant.effects
    return effects


def _oligogenic_truth(layout: _Layout, plant: _Oligogenic | None, model: _IdpModel) -> dict | None:
    """truth.json's oligogenic IDP: the IDP, the share of its variance its variants explain together, and each
    variant with its per-allele effect in IDP units."""
    if plant is None:
        return None
    return {"idp": model.fields[plant.idp], "variance_explained": round(float(plant.explained.sum()), 6),
            "variants": [{**_variant_truth(layout, c), "beta": round(float(effect * model.sd[plant.idp]), 6),
                          "variance_explained": round(float(explained), 6)}
                         for c, effect, explained in zip(plant.variants, plant.effects, plant.explained)]}


def _idp_model(rng: np.random.Generator, idps: list[_Idp], fields: list[str], predictors: np.ndarray,
               effects: np.ndarray, h2: np.ndarray, site_scale: np.ndarray, additive: int) -> _IdpModel:
    """Each IDP's scale and weights; ``predictors`` are covariates then causal terms (samples × terms), the first
    ``additive`` of those additive (the planted variants' main effects).

    Covariate effects are jittered ±30 % around their kind's, sites get offsets, means ±8 %. The
    polygenic background tops the planted variant's share (if any) of the variance the covariates
    leave up to ``h2`` (per IDP); the other causal terms (GxE, SNP × SNP) are not additive and count as noise.
    """
    kind_effects = np.array([idp.kind.covariate_effects for idp in idps]).T  # covariates × IDPs
    weights = np.vstack([kind_effects * rng.uniform(0.7, 1.3, kind_effects.shape),
                         rng.normal(0, 0.15, (len(SITES), len(idps))), effects])
    covariance = np.cov(predictors, rowvar=False)

    def explained_by(terms: slice) -> np.ndarray:
        return np.einsum("ti,tu,ui->i", weights[terms], covariance[terms, terms], weights[terms])

    covariates = len(weights) - len(effects)
    left = 1 - explained_by(slice(0, covariates))
    planted = explained_by(slice(covariates, covariates + additive))
    polygenic = np.maximum(h2 * left - planted, 0)
    mean = np.array([idp.typical for idp in idps]) * rng.uniform(0.92, 1.08, len(idps))
    return _IdpModel(fields, mean, mean * np.array([idp.kind.cv for idp in idps]),
                     10.0 ** np.array([idp.kind.decimals for idp in idps]), weights, np.sqrt(polygenic),
                     np.sqrt(1 - explained_by(slice(None)) - polygenic), (planted + polygenic) / left,
                     np.divide(polygenic, planted + polygenic, out=np.zeros_like(polygenic), where=polygenic > 0),
                     site_scale)


def _scanner_scales(rng: np.random.Generator, idps: int) -> np.ndarray:
    """Each site's multiplier of each IDP's noise (sites × IDPs, ComBat's √δ): a site level (log SD
    SCANNER_SCALE_SD) jittered per IDP, normalised so the noise variance over the sites' shares stays the same."""
    scales = np.exp(rng.normal(0, SCANNER_SCALE_SD, (len(SITES), 1))
                    + rng.normal(0, SCANNER_SCALE_JITTER, (len(SITES), idps)))
    return scales / np.sqrt(np.asarray(SITE_SHARES) @ scales ** 2)


def _append_csv(csv: BinaryIO, first: pl.Series, values: np.ndarray, columns: list[str], *, header: bool,
                float_precision: int | None = None) -> None:
    """Append rows to an open CSV: the ``first`` column, then ``values`` (NaN written empty)."""
    frame = pl.DataFrame(values, schema=columns, orient="row", nan_to_null=True)
    frame.insert_column(0, first).write_csv(csv, include_header=header, float_precision=float_precision)


def _write_idps(path: Path, rng: np.random.Generator, cohort: _Cohort, predictors: np.ndarray,
                background: np.ndarray, model: _IdpModel, missing_idps: float,
                progress: Progress) -> tuple[np.ndarray, np.ndarray]:
    """Stream ``idps.csv`` in row chunks: ``missing_idps`` of cells empty (QC failures, each IDP its
    own), and all cells of those not imaged. Returns the FREESURFER_SITE's imaged participants and their
    values before QC (rows of them × IDPs), as its own pipeline measured them."""
    samples, site_rows, site_values = len(cohort.eid), [], []
    with open(path, "wb") as csv:
        for start in range(0, samples, IDP_CHUNK_ROWS):
            rows = slice(start, start + IDP_CHUNK_ROWS)
            z = predictors[rows] @ model.weights  # samples × IDPs
            z += background[rows] * model.polygenic_sd
            z += rng.standard_normal(z.shape) * model.noise_sd * model.site_scale[cohort.site[rows]]
            values = np.round((model.mean + model.sd * z) * model.scale) / model.scale
            at_site = (cohort.site[rows] == SITES.index(FREESURFER_SITE)) & cohort.imaged[rows]
            site_rows.append(np.arange(samples)[rows][at_site])
            site_values.append(values[at_site])
            values = _with_missing(rng, values, missing_idps)
            values[~cohort.imaged[rows]] = np.nan
            _append_csv(csv, pl.Series("eid", cohort.eid[rows]), values, model.fields, header=start == 0)
            progress("idps", min(start + IDP_CHUNK_ROWS, samples), samples)
    return np.concatenate(site_rows), np.concatenate(site_values)


def _write_freesurfer(folder: Path, rng: np.random.Generator, cohort: _Cohort, rows: np.ndarray,
                      values: np.ndarray, idps: list[_Idp]) -> list[str]:
    """Write one site's FreeSurfer group tables into ``folder``, as asegstats2table and aparcstats2table lay
    them out (tab-separated, subject first): ``aseg.volume.txt`` (the subcortical volumes, eTIV) and
    ``lh``/``rh.aparc.thickness.txt`` (each region's mean thickness, the hemisphere's mean, eTIV), for the
    participants ``rows`` (their eid the subject) with the IDPs' ``values``; eTIV is drawn (not an IDP
    of the release). Returns the files' names."""
    folder.mkdir(parents=True)
    etiv = np.round(np.where(cohort.male[rows], 1.55e6, 1.40e6) + rng.normal(0, 1.2e5, len(rows)), 1)
    subjects = pl.Series("subject", cohort.eid[rows].astype(str))
    subcortical, thickness = IDP_KINDS[:2]

    def measured(kind: _IdpKind, side: str) -> dict[str, np.ndarray]:   # FreeSurfer's column name → values
        return {(f"{side.capitalize()}-{ASEG_NAMES[idp.structure]}" if kind is subcortical
                 else f"{side[0]}h_{idp.structure.replace(' ', '')}_thickness"): values[:, j]
                for j, idp in enumerate(idps) if idp.kind is kind and idp.side == side and not idp.cycle}

    tables = {"aseg.volume.txt": ("Measure:volume", {**measured(subcortical, "left"), **measured(subcortical, "right"),
                                                      "EstimatedTotalIntraCranialVol": etiv})}
    for side in ("left", "right"):
        regions = measured(thickness, side)
        if regions:
            tables[f"{side[0]}h.aparc.thickness.txt"] = (f"{side[0]}h.aparc.thickness", {
                **regions, f"{side[0]}h_MeanThickness_thickness": np.round(np.mean(list(regions.values()), axis=0), 5),
                "eTIV": etiv})
    for file, (first, columns) in tables.items():
        pl.DataFrame(columns).insert_column(0, subjects.rename(first)).write_csv(folder / file, separator="\t")
    return list(tables)


def _cpg_ids(start: int, stop: int) -> list[str]:
    """Illumina-style CpG ids ``cg00000001`` … for rows ``start`` to ``stop`` − 1."""
    return [f"cg{i + 1:08d}" for i in range(start, stop)]


def _cpg_levels(rng: np.random.Generator, cpgs: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-CpG mean and SD of M-values; means are bimodal, as most CpGs are un- or fully methylated."""
    state = rng.choice(3, cpgs, p=(0.40, 0.45, 0.15))
    mean = np.choose(state, [rng.normal(-3.5, 0.6, cpgs), rng.normal(2.8, 0.5, cpgs),
                             rng.normal(0.0, 0.8, cpgs)])
    return mean, rng.gamma(4.0, 0.1, cpgs) + 0.1


def _cpg_exposure_effects(rng: np.random.Generator, sd: np.ndarray) -> np.ndarray:
    """Change in M per SD of stress, non-zero for 1 in 500 CpGs (at least 5).

    Each explains 12–20 % of its CpG's variance, which 500 samples find at p < 9e-8.
    """
    effects = np.zeros(len(sd))
    exposed = rng.choice(len(sd), max(5, len(sd) // 500), replace=False)
    explained = rng.uniform(0.12, 0.2, len(exposed))
    signs = rng.choice([-1.0, 1.0], len(exposed))
    effects[exposed] = signs * sd[exposed] * np.sqrt(explained / (1 - explained))
    return effects


def _write_methylation(path: Path, rng: np.random.Generator, eids: np.ndarray, stress: np.ndarray,
                       levels: tuple[np.ndarray, np.ndarray], effects: np.ndarray,
                       progress: Progress) -> None:
    """Stream ``methylation.csv``, CpGs × samples betas with 6 decimals, ~0.5 % empty, in row chunks.

    M-values are drawn per CpG (``levels`` = mean, SD) plus ``effects`` × stress, then turned
    into betas, b = 2^M / (1 + 2^M).
    """
    (mean, sd), cpgs, columns = levels, len(effects), [str(eid) for eid in eids]
    chunk = max(1, METHYLATION_CHUNK_CELLS // len(eids))
    with open(path, "wb") as csv:
        for start in range(0, cpgs, chunk):
            rows = slice(start, start + chunk)
            m_values = mean[rows, None] + effects[rows, None] * stress  # CpGs × samples
            m_values += sd[rows, None] * rng.standard_normal(m_values.shape)
            betas = np.clip(np.round(1 / (1 + 2.0**-m_values), 6), 1e-6, 1 - 1e-6)
            ids = pl.Series("cpg", _cpg_ids(start, start + len(betas)))
            _append_csv(csv, ids, _with_missing(rng, betas, 0.005), columns, header=start == 0,
                        float_precision=6)
            progress("methylation", start + len(betas), cpgs)


def _probes_frame(rng: np.random.Generator, cpgs: int) -> pl.DataFrame:
    """``probes.csv``: each CpG's chromosome (as text) and position, sorted like the matrix rows."""
    chrom, pos = _positions(rng, _apportion(cpgs, GRCH37_LENGTHS))
    return pl.DataFrame({"cpg": _cpg_ids(0, cpgs), "chrom": chrom.astype(str), "pos": pos})


def _variant_truth(layout: _Layout, causal: _Causal) -> dict:
    """How ``truth.json`` names a variant: id, place, alt allele (.bim column 5) and its frequency."""
    i = causal.index
    return {"variant_id": f"rs{layout.rsid[i]}", "chrom": int(layout.chrom[i]), "pos": int(layout.pos[i]),
            "alt_allele": str(layout.alleles[i, 0]), "alt_frequency": round(causal.alt_frequency, 6)}


def _snp_truth(layout: _Layout, causal: list[_Causal], effects: np.ndarray, model: _IdpModel) -> dict:
    """truth.json's SNP→IDP effects, null IDPs and the (last, GxE) interaction, per allele in IDP units."""
    planted = []
    for c, term in zip(causal, effects):
        idp = int(np.flatnonzero(term)[0])
        explained = term[idp] ** 2 * 2 * c.alt_frequency * (1 - c.alt_frequency)
        planted.append({**_variant_truth(layout, c), "idp": model.fields[idp],
                        "beta": round(float(term[idp] * model.sd[idp]), 6),
                        "variance_explained": round(float(explained), 6)})
    *main, gxe = planted
    return {"snp_idp": main,
            "null_idps": [field for field, column, h2 in zip(model.fields, effects.T, model.h2)
                          if not column.any() and h2 == 0],
            "snp_exposure_interaction": {**{k: v for k, v in gxe.items() if k != "beta"},
                                         "exposure": "stress", "beta_gxe": gxe["beta"]}}


def _heritability_truth(model: _IdpModel, architecture: _Architecture, polygenic_variants: int) -> dict:
    """truth.json's planted SNP heritability per IDP and every non-zero genetic correlation between
    IDPs and with the disorder (the background's, shrunk where a planted variant or the multivariate score adds
    genetic variance of its own; what the score shares between the IDPs of its pattern, a single region, is the
    truth's ``multivariate``, not listed here). Effects sit on variants of MAF ≥ POLYGENIC_MIN_MAF only, so LD score
    regression recovers h² with LD scores summed over those (ldsc --l2 --maf 0.05), not over every variant."""
    from_background = np.r_[model.background_share, 1]
    traits, rg = [*model.fields, DISORDER.name], architecture.rg * np.sqrt(np.outer(from_background, from_background))
    return {"idp_h2": {field: round(float(h2), 4) for field, h2 in zip(model.fields, model.h2)},
            "rg": [{"trait1": traits[i], "trait2": traits[j], "rg": round(float(rg[i, j]), 4)}
                   for i, j in zip(*np.triu_indices(len(traits), 1)) if round(float(rg[i, j]), 4)],
            "polygenic_variants": polygenic_variants, "polygenic_min_maf": POLYGENIC_MIN_MAF}


def _pedigree_truth(pedigree: _Pedigree, eid: np.ndarray) -> dict:
    """truth.json's families: the realised share of participants with a relative, the families of each kind,
    and every related pair of participants (ids in order) with its relation and pedigree kinship."""
    pairs = [dict(zip(("participant_id_1", "participant_id_2"), sorted(str(eid[members[i]]) for i in (one, other))),
                  relation=relation, kinship=kinship)
             for kind, members in pedigree.families for one, other, relation, kinship in kind.pairs]
    related = sum(kind.participants for kind, _ in pedigree.families)  # each has a relative in its family
    return {"related_share": round(related / pedigree.samples, 4),
            "families": {kind.name: sum(family is kind for family, _ in pedigree.families) for kind in FAMILY_KINDS},
            "related_pairs": pairs}


def _cpg_truth(effects: np.ndarray, sd: np.ndarray) -> dict:
    """truth.json's CpG ~ stress effects, on the M-value scale per SD of stress."""
    return {"cpg_exposure": [
        {"cpg": _cpg_ids(i, i + 1)[0], "exposure": "stress", "beta": round(float(effects[i]), 6),
         "scale": "M-value per SD of stress",
         "variance_explained": round(float(effects[i] ** 2 / (effects[i] ** 2 + sd[i] ** 2)), 6)}
        for i in np.flatnonzero(effects)]}


def _manifest(*, seed: int, samples: int, variants: int, idps: int, cpgs: int) -> dict:
    """``release.yaml``: format, release name, provenance and where each source lives."""
    return {"format": "biolake-release/1", "release": f"synthetic-s{seed}",
            "created": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "generator": {"tool": "biolake synth", "seed": seed, "samples": samples, "variants": variants,
                          "idps": idps, "cpgs": cpgs},
            "sources": {"bfile": "genotypes", "idps": "idps.csv", "idp_fields": "idp_fields.csv",
                        "covariates": "covariates.csv", "methylation": "methylation.csv",
                        "probes": "probes.csv", "cnv": CNV_FILES[0]},
            "sumstats": {DISORDER.name: DISORDER.file},
            "truth": "truth.json"}


def _stream(seed: int, part: str) -> np.random.Generator:
    """An independent random stream per part, so changing one part leaves the others' draws alone."""
    return np.random.default_rng([seed, STREAMS.index(part)])


def _check_arguments(out: Path, *, samples: int, variants: int, idps: int, cpgs: int, seed: int,
                     methylation_samples: int | None, missing_calls: float, missing_idps: float,
                     related: float) -> None:
    """Raise ``ValueError`` naming the first argument that cannot make a sensible release."""
    minimums = {"samples": (samples, MIN_SAMPLES), "variants": (variants, MIN_VARIANTS),
                "idps": (idps, MIN_IDPS), "cpgs": (cpgs, MIN_CPGS), "seed": (seed, 0)}
    if methylation_samples is not None:
        minimums["methylation_samples"] = (methylation_samples, MIN_SAMPLES)
    for name, (value, minimum) in minimums.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
            raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if not 0 <= missing_calls <= 0.1:
        raise ValueError(f"missing_calls must be between 0 and 0.1, got {missing_calls!r}")
    if not 0 <= missing_idps <= 0.5:
        raise ValueError(f"missing_idps must be between 0 and 0.5, got {missing_idps!r}")
    if not 0 <= related <= 0.9:
        raise ValueError(f"related must be between 0 and 0.9, got {related!r}")
    if methylation_samples is not None and methylation_samples > samples:
        raise ValueError(f"methylation_samples ({methylation_samples}) cannot exceed samples ({samples})")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"{out} already exists and is not an empty folder; choose a new path")
    needed = variants * ((samples + 3) // 4) + 10 * cpgs * min(samples, methylation_samples or 1000)
    existing = next(folder for folder in (out, *out.absolute().parents) if folder.exists())
    free = shutil.disk_usage(existing).free
    if needed > free:
        raise ValueError(f"a release of {samples:,} samples x {variants:,} variants needs about {needed / 1e9:,.1f} GB; "
                         f"{existing} has {free / 1e9:,.1f} GB free")


class _Streams(NamedTuple):
    """The random streams of the imaging part of a release (:func:`_stream`)."""

    idps: np.random.Generator
    scanners: np.random.Generator
    epistasis: np.random.Generator
    multivariate: np.random.Generator
    cnv: np.random.Generator
    oligogenic: np.random.Generator


class _CnvCalls(NamedTuple):
    """CNV segments as a caller reports them (parallel arrays, by participant and position), and the planted
    loci's design: per participant and plant, carrier (del: 1) or copies gained (dose: −1, 0, +1)."""

    owner: np.ndarray        # participant index
    chrom: np.ndarray        # 1-22
    start: np.ndarray        # 1-based, inclusive
    end: np.ndarray
    copy_number: np.ndarray
    probes: np.ndarray
    confidence: np.ndarray
    design: np.ndarray       # samples × CNV_PLANTS


def _draw_cnvs(rng: np.random.Generator, samples: int) -> _CnvCalls:
    """Background segments (CNV_RATE per participant; log-normal lengths; copy number 1 or, a tenth of the time, 0 for
    deletions, 3 or 4 for duplications) away from the shipped genomic-disorder loci, none overlapping another of its
    participant's; then the planted carriers' segments, each its locus (hg19) with breakpoints moved by about 2 % of
    its length. Probes: about one per 8 kb (at least 3); confidence: a caller's score, 3 to ~100."""
    from biolake.cnv_loci import GENOMIC_DISORDER_LOCI

    owner = np.repeat(np.arange(samples), rng.poisson(CNV_RATE, samples))
    chrom = rng.choice(22, len(owner), p=GRCH37_LENGTHS / GRCH37_LENGTHS.sum()) + 1
    length = np.clip(np.round(rng.lognormal(np.log(CNV_MEDIAN_BP), CNV_LOG_SD, len(owner))), 10_000, 3_000_000)
    start = (rng.random(len(owner)) * (GRCH37_LENGTHS[chrom - 1] - length)).astype(np.int64) + 1
    end = start + length.astype(np.int64) - 1
    deletion = rng.random(len(owner)) < CNV_DELETIONS
    copies = np.where(deletion, 1 - (rng.random(len(owner)) < 0.1), 3 + (rng.random(len(owner)) < 0.1))
    near = np.zeros(len(owner), bool)
    for locus in GENOMIC_DISORDER_LOCI:
        chromosome, first, last = locus.hg19
        margin = (last - first) // 10
        near |= (chrom == int(chromosome)) & (start <= last + margin) & (end >= first - margin)
    order = np.lexsort((start, chrom, owner))
    kept, last_end = [], {}
    for k in order[~near[order]].tolist():   # the first of overlapping segments of a participant stays
        if start[k] > last_end.get((owner[k], chrom[k]), 0):
            kept.append(k)
            last_end[owner[k], chrom[k]] = end[k]
    background = np.array(kept, np.int64)
    loci = {locus.name: locus for locus in GENOMIC_DISORDER_LOCI}
    design, planted = np.zeros((samples, len(CNV_PLANTS))), []
    for column, (name, model, share, _) in enumerate(CNV_PLANTS):
        chromosome, first, last = loci[name].hg19
        copy_numbers = (1, 3) if model == "dose" else (1,)
        drawn = rng.choice(samples, len(copy_numbers) * round(share * samples), replace=False)   # none of both kinds
        for copy_number, carriers in zip(copy_numbers, np.split(drawn, len(copy_numbers))):
            design[carriers, column] = 1.0 if model == "del" else copy_number - 2
            shift = np.round(rng.normal(0, 0.02 * (last - first), (len(carriers), 2))).astype(np.int64)
            planted.append((carriers, np.full(len(carriers), int(chromosome)), first + shift[:, 0],
                            last + shift[:, 1], np.full(len(carriers), copy_number)))
    owners, chroms, starts, ends, copy_numbers = (
        np.concatenate([background_part, *(part[i] for part in planted)])
        for i, background_part in enumerate((owner[background], chrom[background], start[background],
                                              end[background], copies[background])))
    sizes = ends - starts + 1
    order = np.lexsort((starts, chroms, owners))
    return _CnvCalls(owners[order], chroms[order], starts[order], ends[order], copy_numbers[order],
                     np.maximum(3, rng.poisson(sizes / 8_000))[order],
                     np.round(3 + rng.gamma(2.0, 15.0, len(owners)), 3)[order], design)


def _cnv_effects(rng: np.random.Generator, eligible: np.ndarray, idps: int) -> tuple[np.ndarray, np.ndarray]:
    """Each CNV plant's IDP (distinct, drawn from ``eligible``, or from every IDP when too few are) and effects in SD
    units (plants × IDPs)."""
    chosen = rng.choice(eligible if len(eligible) >= len(CNV_PLANTS) else idps, len(CNV_PLANTS), replace=False)
    effects = np.zeros((len(CNV_PLANTS), idps))
    effects[np.arange(len(CNV_PLANTS)), chosen] = [effect for *_, effect in CNV_PLANTS]
    return chosen, effects


def _write_cnv_calls(folder: Path, calls: _CnvCalls, cohort: _Cohort) -> None:
    """CNV_FILES: the same segments as PLINK's .cnv (TYPE the copy number, SCORE the confidence, SITES the probes)
    with a .fam of every participant called, and as PennCNV's output (SAMPLE the participant's signal file)."""
    eid = cohort.eid[calls.owner].astype(str)
    pl.DataFrame({"FID": eid, "IID": eid, "CHR": calls.chrom, "BP1": calls.start, "BP2": calls.end,
                  "TYPE": calls.copy_number, "SCORE": calls.confidence, "SITES": calls.probes},
                 ).write_csv(folder / CNV_FILES[0], separator="\t")
    pl.DataFrame({"fid": cohort.eid, "iid": cohort.eid, "father": 0, "mother": 0,
                  "sex": np.where(cohort.male, 1, 2), "pheno": -9},
                 ).write_csv(folder / CNV_FILES[1], separator=" ", include_header=False)
    state = {0: 1, 1: 2, 3: 5, 4: 6}   # PennCNV's hidden states by copy number
    lines = [f"chr{c}:{s}-{e} numsnp={n} length={e - s + 1:,} state{state[int(cn)]},cn={cn} signal/{pid}.txt "
             f"startsnp=cnvi{s} endsnp=cnvi{e} conf={conf:.3f}"
             for c, s, e, n, cn, pid, conf in zip(calls.chrom.tolist(), calls.start.tolist(), calls.end.tolist(),
                                                  calls.probes.tolist(), calls.copy_number.tolist(), eid.tolist(),
                                                  calls.confidence.tolist())]
    (folder / CNV_FILES[2]).write_text("".join(f"{line}\n" for line in lines))


def _cnv_truth(calls: _CnvCalls, chosen: np.ndarray, model: _IdpModel) -> dict:
    """truth.json's CNVs: the files, the segments, and each planted locus with its IDP, effect (SD and IDP units, per
    carrier of a deletion or per copy) and carriers."""
    from biolake.cnv_loci import GENOMIC_DISORDER_LOCI

    loci = {locus.name: locus for locus in GENOMIC_DISORDER_LOCI}
    planted = []
    for column, ((name, kind, share, effect), idp) in enumerate(zip(CNV_PLANTS, chosen.tolist())):
        values = calls.design[:, column]
        chromosome, first, last = loci[name].hg19
        planted.append({"locus": name, "chrom": chromosome, "start": first, "end": last, "build": "hg19",
                        "model": kind, "idp": model.fields[idp], "effect_sd": effect,
                        "beta": round(effect * float(model.sd[idp]), 6),
                        "carriers": {"del": int((values == 1).sum() if kind == "del" else (values == -1).sum()),
                                     "dup": int((values == 1).sum()) if kind == "dose" else 0}})
    return {"files": {"plink": CNV_FILES[0], "fam": CNV_FILES[1], "penncnv": CNV_FILES[2]},
            "segments": len(calls.owner), "participants_with_segments": len(np.unique(calls.owner)),
            "planted": planted}


def _write_imaging(folder: Path, streams: _Streams, cohort: _Cohort, causal: list[_Causal],
                   regions: tuple[list[_Causal], int] | None, loci: list[list[_Causal]], cnvs: _CnvCalls,
                   layout: _Layout, catalogue: list[_Idp], planted: tuple[np.ndarray, np.ndarray],
                   architecture: _Architecture, background: _Background, missing_idps: float,
                   progress: Progress) -> dict:
    """Write ``idp_fields.csv``, ``idps.csv`` and one site's FreeSurfer tables; return the SNP, heritability,
    scanner, multivariate, oligogenic and CNV parts of the truth. ``regions``: the multivariate association's region
    (its variants) and the null region (its number); ``loci``: the oligogenic IDP's candidate variants, per region;
    ``cnvs``: the CNV calls, whose planted loci move an IDP each."""
    dictionary = _idp_dictionary(catalogue)
    dictionary.write_csv(folder / "idp_fields.csv")
    values = background.idp_values()
    polygenic = np.flatnonzero(values.any(axis=0))
    pairs = _plant_epistasis(streams.epistasis, len(causal) - 1, polygenic, planted[1])
    eligible = np.setdiff1d(polygenic[architecture.h2[polygenic] >= MULTIVARIATE_MIN_H2],
                            [*planted[1], *(pair.idp for pair in pairs)])
    plant = None if regions is None else _plant_multivariate(streams.multivariate, regions[0], catalogue, eligible,
                                                             int(cohort.imaged.sum()))
    taken = [*planted[1], *(pair.idp for pair in pairs), *(() if plant is None else plant.idps)]
    cnv_idps, cnv_effects = _cnv_effects(streams.cnv, np.setdiff1d(np.arange(len(catalogue)), taken), len(catalogue))
    oligogenic = _plant_oligogenic(streams.oligogenic, loci, np.setdiff1d(polygenic, [*taken, *cnv_idps]),
                                   architecture.h2)
    # additive terms first (the multivariate score, the oligogenic IDP's variants, the planted variants' main
    # effects), then GxE, SNP × SNP and CNVs
    predictors = np.column_stack([_idp_design(cohort), _multivariate_design(plant, len(cohort.eid)),
                                  _oligogenic_design(oligogenic, len(cohort.eid)),
                                  _genetic_design(causal, cohort.stress), _epistasis_design(causal, pairs),
                                  cnvs.design - cnvs.design.mean(axis=0)])
    genetic = _genetic_effects(planted, causal, len(catalogue))
    oligogenic_terms = 0 if oligogenic is None else len(oligogenic.variants)
    effects = np.vstack([_multivariate_effects(plant, len(catalogue)), _oligogenic_effects(oligogenic, len(catalogue)),
                         genetic, _epistasis_effects(causal, pairs, len(catalogue)), cnv_effects])
    model = _idp_model(streams.idps, catalogue, dictionary["field"].to_list(), predictors, effects,
                       architecture.h2 * values.any(axis=0), _scanner_scales(streams.scanners, len(catalogue)),
                       additive=(plant is not None) + oligogenic_terms + len(causal) - 1)
    rows, measured = _write_idps(folder / "idps.csv", streams.idps, cohort, predictors, values, model, missing_idps,
                                 progress)
    tables = _write_freesurfer(folder / FREESURFER_FOLDER / FREESURFER_SITE, streams.scanners, cohort, rows, measured,
                               catalogue)
    scanner_truth = {"site_noise_scale": {site: round(float(np.exp(np.log(scale).mean())), 4)
                                          for site, scale in zip(SITES, model.site_scale)},
                     "freesurfer": {"site": FREESURFER_SITE, "folder": f"{FREESURFER_FOLDER}/{FREESURFER_SITE}",
                                    "tables": tables, "subjects": len(rows)}}
    return (_snp_truth(layout, causal, genetic, model) | _heritability_truth(model, architecture, background.variants)
            | {"scanners": scanner_truth, "snp_snp": _epistasis_truth(layout, causal, pairs, model),
               "multivariate": _multivariate_truth(layout, plant, None if regions is None else regions[1], model),
               "oligogenic": _oligogenic_truth(layout, oligogenic, model), "cnv": _cnv_truth(cnvs, cnv_idps, model)})


def _write_disorder(path: Path, rng: np.random.Generator, layout: _Layout, background: _Background) -> dict:
    """Write the disorder's GWAS summary statistics as GWAS-SSF (tab-separated) and return its truth.

    The GWAS is of DISORDER.samples_per_variant cases and controls per variant, drawn from the
    release's population but not its participants; per variant the log odds ratio is z · se with se = 1 / √(N φ(1 − φ) 2p(1 − p))
    (φ the case fraction, p the alt-allele frequency), as a logistic regression of small effects
    gives. A random half of the rows name the ref allele as the effect allele, as published files
    do, so alleles must be matched to use them.
    """
    samples = round(len(layout.chrom) * DISORDER.samples_per_variant)
    z, frequency = background.disorder_z(layout.blocks, samples, DISORDER.h2_observed)
    se = 1 / np.sqrt(samples * DISORDER.case_fraction * (1 - DISORDER.case_fraction) * 2 * frequency * (1 - frequency))
    flip = rng.random(len(z)) < 0.5
    alt, ref = layout.alleles[:, 0], layout.alleles[:, 1]
    pl.DataFrame({
        "chromosome": layout.chrom, "base_pair_location": layout.pos,
        "effect_allele": np.where(flip, ref, alt), "other_allele": np.where(flip, alt, ref),
        "beta": np.where(flip, -z, z) * se, "standard_error": se,
        "effect_allele_frequency": np.round(np.where(flip, 1 - frequency, frequency), 4),
        "p_value": 2 * scipy.stats.norm.sf(np.abs(z)), "rsid": layout.rsid, "n": samples},
    ).with_columns(pl.concat_str(pl.lit("rs"), "rsid").alias("rsid")).write_csv(path, separator="\t")
    return {"disorder": {
        "phenotype": DISORDER.name, "sumstats": path.name, "h2_liability": DISORDER.h2_liability,
        "prevalence": DISORDER.prevalence, "cases": round(samples * DISORDER.case_fraction),
        "controls": samples - round(samples * DISORDER.case_fraction),
        "h2_observed": round(DISORDER.h2_observed, 4),
        "cohort": "cases and controls of the same population, none of them the release's participants"}}


def _write_methylation_files(folder: Path, rng: np.random.Generator, cohort: _Cohort, cpgs: int,
                             methylation_samples: int, progress: Progress) -> dict:
    """Write ``methylation.csv`` (random participants) and ``probes.csv``; return the CpG truth."""
    subset = np.sort(rng.choice(len(cohort.eid), methylation_samples, replace=False))
    mean, sd = _cpg_levels(rng, cpgs)
    effects = _cpg_exposure_effects(rng, sd)
    _write_methylation(folder / "methylation.csv", rng, cohort.eid[subset], cohort.stress[subset],
                       (mean, sd), effects, progress)
    _probes_frame(rng, cpgs).write_csv(folder / "probes.csv")
    return _cpg_truth(effects, sd)


def _write_release(folder: Path, layout: _Layout, hosts: np.ndarray, *, samples: int, idps: int,
                   cpgs: int, methylation_samples: int, seed: int, missing_calls: float,
                   missing_idps: float, related: float, progress: Progress) -> None:
    """Write every file of the release into ``folder``."""
    rng = _stream(seed, "cohort")
    pedigree = _draw_pedigree(_stream(seed, "pedigree"), samples, related)
    cohort = _with_families(_draw_cohort(rng, samples), pedigree)
    _covariates_frame(rng, cohort).write_csv(folder / "covariates.csv")
    progress("covariates", 1, 1)
    catalogue, poly = _idp_catalogue(idps), _stream(seed, "poly")
    streams = _Streams(*(_stream(seed, part) for part in ("idps", "scanners", "epistasis", "multivariate", "cnv",
                                                          "oligogenic")))
    planted = _plant(streams.idps, len(hosts), idps)
    architecture = _polygenic_architecture(poly, catalogue, planted[1])
    regions = _multivariate_regions(streams.multivariate, layout, layout.region[hosts])
    acting = np.flatnonzero(layout.region == regions[0]) if regions else np.zeros(0, np.int64)
    loci = _oligogenic_candidates(streams.oligogenic, layout, np.array([*layout.region[hosts], *(regions or ())]))
    # no background in the planted variants' regions, the multivariate association's two, nor the oligogenic loci's
    background = _Background(poly, architecture, layout.blocks, np.isin(
        layout.region, [*layout.region[hosts], *(regions or ()), *layout.region[loci[:, 0]]]), samples)
    dosages = _write_genotypes(folder, _stream(seed, "genotypes"), layout, cohort, pedigree, hosts,
                               np.r_[acting, loci.ravel()], missing_calls, background, progress)
    cnvs = _draw_cnvs(streams.cnv, samples)
    _write_cnv_calls(folder, cnvs, cohort)
    truth = _write_imaging(folder, streams, cohort, [dosages[v] for v in hosts.tolist()],
                           regions and ([dosages[v] for v in acting.tolist()], regions[1]),
                           [[dosages[v] for v in region] for region in loci.tolist()], cnvs, layout, catalogue,
                           planted, architecture, background, missing_idps, progress)
    truth |= _write_disorder(folder / DISORDER.file, poly, layout, background)
    truth |= {"pedigree": _pedigree_truth(pedigree, cohort.eid)}
    truth |= _write_methylation_files(folder, _stream(seed, "methylation"), cohort, cpgs,
                                      methylation_samples, progress)
    counts = {"samples": samples, "variants": len(layout.chrom), "idps": idps, "cpgs": cpgs}
    truth |= {**counts, "methylation_samples": methylation_samples, "seed": seed}
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    manifest = _manifest(seed=seed, **counts)
    manifest["checksums"] = {path.name: file_sha256(path) for path in sorted(folder.iterdir())  # what ingest reads
                             if path.is_file() and path.name not in ("truth.json", DISORDER.file, CNV_FILES[2])}
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def write_synthetic_release(out: str | os.PathLike, *, samples: int, variants: int, idps: int, cpgs: int,
                            seed: int = 1, methylation_samples: int | None = None,
                            missing_calls: float = 0.01, missing_idps: float = 0.02,
                            related: float = RELATED_SHARE, progress: Progress | None = None) -> SynthSummary:
    """Write a synthetic biobank release folder with planted effects recorded in ``truth.json``.

    The folder is built in a hidden sibling and renamed into place at the end, so an
    interrupted run never leaves a half-written release at ``out``.

    Parameters
    ----------
    out
        Folder to create; it must not exist, or be empty.
    samples, variants, idps, cpgs
        Participants, genotyped variants, IDP columns and CpGs.
    seed
        Seed of every random draw: the same seed writes the same data.
    methylation_samples
        Participants with methylation data; defaults to ``min(samples, 1000)``.
    missing_calls
        Share of genotype calls left missing (30 % of variants have none).
    missing_idps
        Share of IDP cells of imaged participants left empty, independently per IDP (QC
        failures); 0 makes every IDP missing for the same participants (those not imaged).
    related
        Share of participants in a family with other participants (whole families, so the
        realised share, in ``truth.json``, is a little lower): sibling pairs, parent–offspring
        trios, and a parent with his child and his sibling's child (avuncular and first-cousin
        pairs). Children inherit one recombined haplotype of each parent, so relatives share
        IBD segments and their genetic values; a family attends one imaging site. ``truth.json``
        lists every related pair with its pedigree kinship (0.25, 0.125, 0.0625).
    progress
        Called as ``progress(step, done, total)`` while steps proceed.

    Returns
    -------
    SynthSummary
        The folder, the counts and the path of ``truth.json``.

    Raises
    ------
    ValueError
        For counts below the minimums, or an ``out`` that exists and is not an empty folder.
    """
    out = Path(out)
    _check_arguments(out, samples=samples, variants=variants, idps=idps, cpgs=cpgs, seed=seed,
                     methylation_samples=methylation_samples, missing_calls=missing_calls,
                     missing_idps=missing_idps, related=related)
    methylation_samples = min(samples, 1000) if methylation_samples is None else methylation_samples
    layout_rng = _stream(seed, "layout")
    layout, planted = _variant_layout(layout_rng, variants), max(3, idps // 10) + 1
    regions = layout.region[-1] + 1
    if regions < planted:
        raise ValueError(f"variants={variants} makes {regions} genotyped regions, too few to host {planted} "
                         f"planted variants for idps={idps}; use more variants or fewer idps")
    host_regions = layout_rng.choice(regions, planted, replace=False)
    hosts = np.array([layout_rng.choice(np.flatnonzero(layout.region == r)) for r in host_regions])
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_release(staging, layout, hosts, samples=samples, idps=idps, cpgs=cpgs,
                       methylation_samples=methylation_samples, seed=seed, missing_calls=missing_calls,
                       missing_idps=missing_idps, related=related,
                       progress=progress or (lambda step, done, total: None))
        if out.exists():
            out.rmdir()
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return SynthSummary(out, samples, variants, idps, cpgs, methylation_samples, seed, out / "truth.json")


@dataclass(frozen=True)
class LdPanel:
    """What :func:`write_ld_panel` wrote: ``{prefix}.bed/.bim/.fam`` and ``{prefix}.assoc``.

    Arrays are in .bim order; ``dosages`` are alt (A1) counts, NaN at missing calls; ``p``
    are the p-values exactly as ``.assoc`` spells them (6 significant digits, so ties occur).
    """

    prefix: Path
    variant_id: np.ndarray      # variants
    chrom: np.ndarray           # variants, "1", "2", …
    pos: np.ndarray             # variants
    dosages: np.ndarray         # variants × samples
    p: np.ndarray               # variants
    causal: np.ndarray          # positions of the planted variants
    cm: np.ndarray              # variants, centimorgans (.bim column 3)


def write_ld_panel(prefix: str | os.PathLike, *, samples: int, variants: int, chromosomes: int = 2,
                   seed: int = 1, spacing_kb: float = 2.0, block_kb: float = 100.0, missing_calls: float = 0.02,
                   causal: int = 4) -> LdPanel:
    """Write a small PLINK 1 fileset whose LD decays as in a real genome, and GWAS p-values on it.

    The genotypes come from the synthetic release's model (:func:`_founder_mosaic`): each
    chromosome is a run of haplotype blocks between recombination hotspots (``block_kb`` apart
    on average, ~1 cM/Mb); through a block every haplotype copies one of eight founder
    haplotypes, and at a hotspot it switches founder with a probability its cM gives, so r²
    is high inside a block, decays over the next ones and is near 0 1 Mb away; neighbours share
    their founders' alleles 85 % of the time. Alt-allele frequencies spread as in arrays. The
    ``.assoc`` table (SNP, CHR, BP, P) holds linear-regression p-values of a trait with
    ``causal`` planted variants (3 % of its variance each); missing calls are left out of the
    regression, and variants stay polymorphic.

    Examples
    --------
    >>> panel = write_ld_panel("/tmp/ld-panel-doctest", samples=100, variants=200)
    >>> panel.dosages.shape, sorted(set(panel.chrom.tolist()))
    ((200, 100), ['1', '2'])
    """
    rng = np.random.default_rng(seed)
    prefix = Path(prefix)
    chrom = np.repeat(np.arange(1, chromosomes + 1), _apportion(variants, np.ones(chromosomes)))
    gaps = np.maximum(1, np.rint(rng.exponential(spacing_kb * 1000, variants))).astype(np.int64)
    pos = np.zeros(variants, np.int64)
    for c in np.unique(chrom):
        pos[chrom == c] = np.cumsum(gaps[chrom == c])
    blocks = _genetic_map(rng, chrom, pos, hotspot_bp=block_kb * 1000)
    dosages = np.empty((variants, samples))  # variants × samples
    for block in _founder_mosaic(rng, blocks, samples, np.zeros(variants, bool)):
        dosages[block.start:block.stop] = block.dosages()
    lost = rng.random(dosages.shape) < rng.uniform(0, 2 * missing_calls, (variants, 1))
    called = np.where(lost, np.nan, dosages)
    keep_lost = (np.nanmin(called, axis=1) < np.nanmax(called, axis=1))[:, None]
    dosages = np.where(lost & keep_lost, np.nan, dosages)
    planted = rng.choice(np.flatnonzero(_ld_alt_freq(dosages) > 0.1), causal, replace=False)
    p = _regression_p(rng, dosages, planted)
    _write_ld_fileset(prefix, chrom, pos, blocks.cm, dosages, p)
    ids = np.array([f"{c}:{q}" for c, q in zip(chrom, pos)])
    return LdPanel(prefix, ids, chrom.astype(str), pos, dosages, p, planted, blocks.cm)


def _ld_alt_freq(dosages: np.ndarray) -> np.ndarray:
    """Alt-allele frequency over the called samples, per variant."""
    return np.nanmean(dosages, axis=1) / 2


def _regression_p(rng: np.random.Generator, dosages: np.ndarray, planted: np.ndarray) -> np.ndarray:
    """p-values (6 significant digits) of per-variant regressions of a trait on the called dosages."""
    filled = np.where(np.isnan(dosages), 2 * _ld_alt_freq(dosages)[:, None], dosages)
    standard = (filled[planted] - filled[planted].mean(axis=1, keepdims=True)) / filled[planted].std(axis=1, keepdims=True)
    trait = np.sqrt(0.03) * standard.sum(axis=0) + rng.normal(0, 1, dosages.shape[1])
    called = ~np.isnan(dosages)
    n = called.sum(axis=1)
    x = np.where(called, dosages, 0.0)
    y = np.where(called, trait[None, :], 0.0)
    sx, sy = x.sum(axis=1), y.sum(axis=1)
    cov = (x * y).sum(axis=1) - sx * sy / n
    r = cov / np.sqrt(((x * x).sum(axis=1) - sx**2 / n) * ((y * y).sum(axis=1) - sy**2 / n))
    t = r * np.sqrt((n - 2) / (1 - r**2))
    return np.array([float(f"{value:.6g}") for value in 2 * scipy.stats.t.sf(np.abs(t), n - 2)])


_PANEL_ROWS = 4096            # variants per step when a panel is drawn or written


def _write_ld_fileset(prefix: Path, chrom: np.ndarray, pos: np.ndarray, cm: np.ndarray, dosages: np.ndarray,
                      p: np.ndarray) -> None:
    """``{prefix}.bed/.bim/.fam`` (A1 = alt, cM in column 3) and ``{prefix}.assoc`` (SNP CHR BP P)."""
    variants, samples = dosages.shape
    with open(f"{prefix}.bed", "wb") as bed:
        bed.write(BED_MAGIC)
        for start in range(0, variants, _PANEL_ROWS):   # a few rows at a time: a biobank-sized panel fits memory
            rows = dosages[start:start + _PANEL_ROWS]
            codes = np.zeros((len(rows), -(-samples // 4) * 4), np.uint8)
            codes[:, :samples] = np.where(np.isnan(rows), MISSING_CODE,
                                          CODE_OF_ALT_DOSAGE[np.nan_to_num(rows).astype(np.intp)])
            bed.write((codes[:, 0::4] | codes[:, 1::4] << 2 | codes[:, 2::4] << 4 | codes[:, 3::4] << 6).tobytes())
    ids = [f"{c}:{q}" for c, q in zip(chrom, pos)]
    pl.DataFrame({"chrom": chrom, "id": ids, "cm": _bim_cm(cm), "pos": pos, "a1": "T", "a2": "C"},
                 ).write_csv(Path(f"{prefix}.bim"), separator="\t", include_header=False)
    eids = [f"s{i}" for i in range(samples)]
    pl.DataFrame({"fid": eids, "iid": eids, "father": 0, "mother": 0, "sex": 2, "pheno": -9},
                 ).write_csv(Path(f"{prefix}.fam"), separator=" ", include_header=False)
    pl.DataFrame({"SNP": ids, "CHR": chrom, "BP": pos, "P": [f"{value:.6g}" for value in p]},
                 ).write_csv(Path(f"{prefix}.assoc"), separator="\t")


@dataclass(frozen=True)
class FamilyPanel:
    """What :func:`write_family_panel` wrote: ``{prefix}.bed/.bim/.fam`` of families and unrelated samples.

    ``dosages`` are alt (A1) counts in .bim × .fam order, NaN at missing calls; ``kinship``
    holds the pedigree kinship of every related pair (sample positions in the .fam, the
    first the smaller), e.g. 0.25 for a parent and child or two siblings, 0.0625 for cousins.
    """

    prefix: Path
    dosages: np.ndarray                         # variants × samples
    kinship: dict[tuple[int, int], float]       # (sample, later sample) → pedigree kinship


def family_size(grandchildren: int) -> int:
    """The members of one family of :func:`write_family_panel`: two grandparents, their two children and their
    spouses, and ``grandchildren`` children of each couple."""
    return 6 + 2 * grandchildren


def _family_parents(grandchildren: int) -> dict[int, tuple[int, int]]:
    """One three-generation family's parents by member: two grandparents (0, 1), their children (2, 3), each child's
    unrelated spouse (4, 5), then ``grandchildren`` children of each couple (6…, the first couple's first). With one
    each: parent-offspring and sibling pairs (kinship ¼), grandparent and avuncular pairs (⅛), first cousins
    (1/16)."""
    return {2: (0, 1), 3: (0, 1)} | {6 + k: (2, 4) if k < grandchildren else (3, 5) for k in range(2 * grandchildren)}


def write_family_panel(prefix: str | os.PathLike, *, families: int, unrelated: int, variants: int,
                       chromosomes: int = 22, seed: int = 1, missing_calls: float = 0.02,
                       grandchildren: int = 1) -> FamilyPanel:
    """Write a PLINK 1 fileset of ``families`` three-generation families (:func:`family_size` samples each, see
    :func:`_family_parents`) then ``unrelated`` samples, for relatedness tests and benchmarks.

    Founders draw each haplotype's alleles independently (alt frequencies uniform in
    [0.05, 0.5]); a child takes one gamete of each parent, a mosaic of the parent's two
    haplotypes switching at a Poisson(1) number of crossovers per chromosome (so over 22
    chromosomes a pair's kinship spreads about its pedigree value as in a genome). Each call
    is then missing with probability ``missing_calls``.

    Examples
    --------
    >>> panel = write_family_panel("/tmp/family-panel-doctest", families=2, unrelated=4, variants=300)
    >>> panel.dosages.shape, panel.kinship[(0, 2)], panel.kinship[(6, 7)]
    ((300, 20), 0.25, 0.0625)
    >>> larger = write_family_panel("/tmp/family-panel-doctest", families=1, unrelated=0, variants=300, grandchildren=2)
    >>> larger.dosages.shape, larger.kinship[(6, 7)], larger.kinship[(6, 8)], larger.kinship[(0, 9)]
    ((300, 10), 0.25, 0.0625, 0.125)
    """
    if grandchildren < 0:
        raise ValueError(f"grandchildren must be 0 or more, got {grandchildren}")
    parents_of = _family_parents(grandchildren)
    size = family_size(grandchildren)
    rng = np.random.default_rng(seed)
    chrom = np.repeat(np.arange(1, chromosomes + 1), _apportion(variants, np.ones(chromosomes)))
    pos = np.concatenate([np.arange(1, np.sum(chrom == c) + 1) * 10_000 for c in range(1, chromosomes + 1)])
    alt_freq = rng.uniform(0.05, 0.5, variants)
    haplotypes = []                             # per sample: its two haplotypes (2 × variants)
    for _ in range(families):
        family: dict[int, np.ndarray] = {}
        for member in range(size):
            parents = parents_of.get(member)
            family[member] = (rng.random((2, variants)) < alt_freq) if parents is None else np.stack(
                [_gamete(rng, family[parent], chrom) for parent in parents])
        haplotypes.extend(family[member] for member in range(size))
    haplotypes.extend(rng.random((2, variants)) < alt_freq for _ in range(unrelated))
    dosages = np.empty((variants, len(haplotypes)))
    for sample, pair in enumerate(haplotypes):
        dosages[:, sample] = pair.sum(axis=0)
    for start in range(0, variants, _PANEL_ROWS):     # the same draws as one call over all rows, in less memory
        rows = dosages[start:start + _PANEL_ROWS]
        rows[rng.random(rows.shape) < missing_calls] = np.nan
    _write_ld_fileset(Path(prefix), chrom, pos, pos / 1e6, dosages, np.ones(variants))
    within = _pedigree_kinship(size, parents_of)
    return FamilyPanel(Path(prefix), dosages, {(f * size + i, f * size + j): value for f in range(families)
                                               for (i, j), value in within.items()})


def _gamete(rng: np.random.Generator, parent: np.ndarray, chrom: np.ndarray) -> np.ndarray:
    """One gamete of a parent (2 × variants haplotypes): per chromosome, a random start haplotype switching at a
    Poisson(1) number of uniformly placed crossovers."""
    switches = np.zeros(len(chrom), np.int64)
    for c in np.unique(chrom):
        span = np.flatnonzero(chrom == c)
        switches[rng.choice(span, rng.poisson(1.0))] += 1
        switches[span[0]] += rng.integers(2)
    return np.where(np.cumsum(switches) % 2 == 1, parent[1], parent[0])


def _pedigree_kinship(size: int, parents_of: dict[int, tuple[int, int]]) -> dict[tuple[int, int], float]:
    """The kinship of every related pair (i < j) of one family of ``size`` members whose parents are ``parents_of``
    (members after their parents; founders unrelated), by the usual recursion: a member's kinship with an earlier
    one is the mean of its parents' with it, and its own is ½(1 + its parents' kinship)."""
    kinship = np.zeros((size, size))
    for member in range(size):
        parents = parents_of.get(member)
        if parents is None:
            kinship[member, member] = 0.5
            continue
        kinship[member, :member] = kinship[:member, list(parents)].mean(axis=1)
        kinship[:member, member] = kinship[member, :member]
        kinship[member, member] = 0.5 * (1 + kinship[parents])
    return {(i, j): float(kinship[i, j]) for i in range(size) for j in range(i + 1, size) if kinship[i, j] > 0}
