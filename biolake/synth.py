"""Write a synthetic biobank release folder, with planted effects recorded in ``truth.json``.

The folder holds what a biobank ships: PLINK 1 genotypes, UK-Biobank-style wide CSVs of
imaging-derived phenotypes (IDPs) and covariates with a data dictionary, a CpG × sample
methylation matrix with probe annotation, and a ``release.yaml`` manifest. Genotypes are
streamed one LD block at a time, so memory stays bounded at biobank size. Every draw comes
from the seed, so a release is reproducible byte for byte (bar the manifest's timestamp).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import BinaryIO

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
COMMON_FOUNDERS, RARE_FOUNDERS = 6, 2
FOUNDERS = COMMON_FOUNDERS + RARE_FOUNDERS
# Every non-empty proper subset of founders, as the founders carrying an alt allele: subsets × founders.
FOUNDER_SUBSETS = (np.arange(1, 2**FOUNDERS - 1)[:, None] >> np.arange(FOUNDERS)) & 1
GXE_VARIANCE = 0.04  # IDP variance explained by the variant × stress interaction
IDP_CHUNK_ROWS, METHYLATION_CHUNK_CELLS = 10_000, 2_000_000
STREAMS = ("layout", "cohort", "genotypes", "idps", "methylation")


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
class _Layout:
    """Where variants sit: per-variant annotation, and LD blocks as runs of variants."""

    chrom: np.ndarray  # variants
    pos: np.ndarray
    rsid: np.ndarray
    alleles: np.ndarray  # variants × 2 (A1 = alt, A2 = ref), letters
    block_starts: np.ndarray  # blocks + 1; block b is variants [starts[b], starts[b + 1])


@dataclass(frozen=True)
class _Causal:
    """A variant chosen to carry a planted effect, with its true (never missing) dosages."""

    index: int
    alt_frequency: float
    dosage: np.ndarray  # samples, alt-allele count


@dataclass(frozen=True)
class _IdpModel:
    """IDP column j = mean_j + sd_j × (predictors · weights_j + noise_sd_j × N(0, 1)), rounded."""

    fields: list[str]  # IDPs
    mean: np.ndarray  # in the IDP's unit
    sd: np.ndarray
    scale: np.ndarray  # 10 ** decimals written
    weights: np.ndarray  # predictors × IDPs, SD units
    noise_sd: np.ndarray  # tops each IDP's variance up to 1 SD²


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


def _block_starts(rng: np.random.Generator, counts: np.ndarray) -> np.ndarray:
    """Cut each chromosome's variants into LD blocks of 20–200; a short tail joins the block before."""
    starts, offset = [], 0
    for count in counts:
        cuts = np.cumsum(rng.integers(20, 201, size=count // 20 + 1))
        starts.append(offset + np.concatenate([[0], cuts[cuts <= count - 20]]))
        offset += count
    return np.concatenate([*starts, [offset]])


def _variant_layout(rng: np.random.Generator, variants: int) -> _Layout:
    """Chromosomes in proportion to GRCh37 lengths, positions, unique rs ids, alleles, LD blocks."""
    counts = _apportion(variants, GRCH37_LENGTHS)
    chrom, pos = _positions(rng, counts)
    rsid = 1000 + 10 * np.arange(variants) + rng.integers(0, 10, variants)
    first = rng.integers(0, 4, variants)
    letters = np.array(list("ACGT"))[np.stack([first, (first + rng.integers(1, 4, variants)) % 4], 1)]
    return _Layout(chrom, pos, rsid, letters, _block_starts(rng, counts))


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


def _block_haplotypes(rng: np.random.Generator, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's two founder haplotypes for one LD block, drawn independently (so HWE holds).

    Six common founders share Dirichlet weights; two rare ones carry 0.3–3 % each. Draws
    are repeated in the rare case where no founder subset has MAF ≥ 0.1 (tiny samples).

    Returns
    -------
    haplotypes : 2 × samples founder indices
    subset_alt_counts : alt-allele count, in the sample, of each row of FOUNDER_SUBSETS
    """
    while True:
        rare = rng.uniform(0.003, 0.03, RARE_FOUNDERS)
        weights = np.concatenate([rng.dirichlet(np.full(COMMON_FOUNDERS, 1.5)) * (1 - rare.sum()), rare])
        draws = np.searchsorted(np.cumsum(weights), rng.random(2 * samples))
        haplotypes = np.minimum(draws, FOUNDERS - 1).astype(np.uint8).reshape(2, samples)
        subset_alt_counts = FOUNDER_SUBSETS @ np.bincount(haplotypes.ravel(), minlength=FOUNDERS)
        if (_maf(subset_alt_counts, samples) >= 0.1).any():
            return haplotypes, subset_alt_counts


def _variant_subsets(rng: np.random.Generator, maf: np.ndarray, variants: int) -> np.ndarray:
    """Pick each variant's alt-carrying founder subset (by its ``maf``) in a sticky walk over a few.

    The block's first subset has MAF ≥ 0.1 so every block can host a causal variant; the
    others are rare (MAF < 5 %) half of the time. Neighbours keep the same subset 75 % of
    the time, which is what makes LD.
    """
    polymorphic, rare = np.flatnonzero(maf > 0), np.flatnonzero((maf > 0) & (maf < 0.05))
    n_subsets = rng.integers(3, 7)
    palette = np.where(rng.random(n_subsets) < 0.5, rng.choice(rare if rare.size else polymorphic, n_subsets),
                       rng.choice(polymorphic, n_subsets))
    palette[0] = rng.choice(np.flatnonzero(maf >= 0.1))
    switches = rng.random(variants) >= 0.75
    switches[0] = True
    picks = rng.integers(0, n_subsets, variants)
    picks[0] = 0
    return palette[picks[np.maximum.accumulate(np.where(switches, np.arange(variants), 0))]]


def _pack_bed_rows(carriers: np.ndarray, haplotypes: np.ndarray) -> np.ndarray:
    """Encode one block as .bed rows: variants × ceil(samples / 4) bytes, low bits first.

    A genotype is fixed by the sample's pair of founders, so the byte halves for every two
    consecutive samples are tabulated once per block; rows are then two look-ups and an OR.
    """
    founders, variants = carriers.shape  # carriers: founders × variants, uint8
    dosage = (carriers[:, None, :] + carriers[None, :, :]).reshape(founders**2, variants)
    codes = np.vstack([CODE_OF_ALT_DOSAGE[dosage], np.zeros((1, variants), np.uint8)])  # + padding
    pairs = len(codes)
    nibbles = (codes[:, None, :] | codes[None, :, :] << 2).reshape(pairs**2, variants).T.copy()
    pair = np.full(-(-haplotypes.shape[1] // 4) * 4, pairs - 1, np.intp)
    pair[: haplotypes.shape[1]] = haplotypes[0].astype(np.intp) * founders + haplotypes[1]
    packed = np.take(nibbles, pair[0::4] * pairs + pair[1::4], axis=1)  # variants × bytes
    packed |= np.take(nibbles << 4, pair[2::4] * pairs + pair[3::4], axis=1)
    return packed


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


def _keep_polymorphic(missing: tuple[np.ndarray, np.ndarray], carriers: np.ndarray,
                      haplotypes: np.ndarray, alt_counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Drop the missing calls of variants they would leave monomorphic among called genotypes."""
    variant, sample = missing
    lost_alt = np.bincount(variant, carriers[haplotypes[0, sample], variant]
                           + carriers[haplotypes[1, sample], variant], len(alt_counts))
    called_alleles = 2 * (haplotypes.shape[1] - np.bincount(variant, minlength=len(alt_counts)))
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


def _write_genotypes(folder: Path, rng: np.random.Generator, layout: _Layout, cohort: _Cohort,
                     host_blocks: np.ndarray, missing_calls: float, progress: Progress) -> list[_Causal]:
    """Stream ``genotypes.bed`` block by block, write .bim and .fam, and return the causal variants:
    a common variant from each of ``host_blocks``, in that order."""
    total, samples, hosts, causal = len(layout.chrom), len(cohort.eid), set(host_blocks.tolist()), {}
    with open(folder / "genotypes.bed", "wb") as bed:
        bed.write(BED_MAGIC)
        for block, (start, stop) in enumerate(itertools.pairwise(layout.block_starts)):
            haplotypes, subset_alt_counts = _block_haplotypes(rng, samples)
            subsets = _variant_subsets(rng, _maf(subset_alt_counts, samples), stop - start)
            carriers = FOUNDER_SUBSETS[subsets].T.astype(np.uint8)  # founders × variants
            alt_counts = subset_alt_counts[subsets]
            packed = _pack_bed_rows(carriers, haplotypes)
            _mark_missing(packed, _keep_polymorphic(_missing_calls(rng, stop - start, samples, missing_calls),
                                                    carriers, haplotypes, alt_counts))
            bed.write(packed.tobytes())
            if block in hosts:
                v = rng.choice(np.flatnonzero(_maf(alt_counts, samples) >= 0.05))
                causal[block] = _Causal(start + v, alt_counts[v] / (2 * samples),
                                        carriers[haplotypes[0], v] + carriers[haplotypes[1], v])
            progress("genotypes", int(stop), total)
    pl.DataFrame({"chrom": layout.chrom, "id": np.char.add("rs", layout.rsid.astype(str)), "cm": 0,
                  "pos": layout.pos, "a1": layout.alleles[:, 0], "a2": layout.alleles[:, 1]},
                 ).write_csv(folder / "genotypes.bim", separator="\t", include_header=False)
    pl.DataFrame({"fid": cohort.eid, "iid": cohort.eid, "father": 0, "mother": 0,
                  "sex": np.where(cohort.male, 1, 2), "pheno": -9},
                 ).write_csv(folder / "genotypes.fam", separator=" ", include_header=False)
    return [causal[block] for block in host_blocks]


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
    design = np.column_stack([c.dosage - 2 * c.alt_frequency for c in causal])
    design[:, -1] *= stress
    return design


def _genetic_effects(rng: np.random.Generator, causal: list[_Causal], idps: int) -> np.ndarray:
    """Per-allele effects in SD units, causal × IDPs, each causal term moving its own IDP.

    Term j explains 3–5 % of its IDP's variance (the last, GxE, term GXE_VARIANCE), which a
    covariate-adjusted regression at N = 2,000 finds at p < 5e-8.
    """
    explained = np.append(rng.uniform(0.03, 0.05, len(causal) - 1), GXE_VARIANCE)
    heterozygosity = np.array([2 * c.alt_frequency * (1 - c.alt_frequency) for c in causal])
    effects = np.zeros((len(causal), idps))
    targets = rng.choice(idps, len(causal), replace=False)
    effects[np.arange(len(causal)), targets] = np.sqrt(explained / heterozygosity)
    return effects


def _idp_model(rng: np.random.Generator, idps: list[_Idp], fields: list[str], predictors: np.ndarray,
               effects: np.ndarray) -> _IdpModel:
    """Each IDP's scale and weights; ``predictors`` are covariates then causal terms (samples × terms).

    Covariate effects are jittered ±30 % around their kind's, sites get offsets, means ±8 %.
    """
    kind_effects = np.array([idp.kind.covariate_effects for idp in idps]).T  # covariates × IDPs
    weights = np.vstack([kind_effects * rng.uniform(0.7, 1.3, kind_effects.shape),
                         rng.normal(0, 0.15, (len(SITES), len(idps))), effects])
    explained = np.einsum("ti,tu,ui->i", weights, np.cov(predictors, rowvar=False), weights)
    mean = np.array([idp.typical for idp in idps]) * rng.uniform(0.92, 1.08, len(idps))
    return _IdpModel(fields, mean, mean * np.array([idp.kind.cv for idp in idps]),
                     10.0 ** np.array([idp.kind.decimals for idp in idps]), weights, np.sqrt(1 - explained))


def _append_csv(csv: BinaryIO, first: pl.Series, values: np.ndarray, columns: list[str], *, header: bool,
                float_precision: int | None = None) -> None:
    """Append rows to an open CSV: the ``first`` column, then ``values`` (NaN written empty)."""
    frame = pl.DataFrame(values, schema=columns, orient="row", nan_to_null=True)
    frame.insert_column(0, first).write_csv(csv, include_header=header, float_precision=float_precision)


def _write_idps(path: Path, rng: np.random.Generator, cohort: _Cohort, predictors: np.ndarray,
                model: _IdpModel, missing_idps: float, progress: Progress) -> None:
    """Stream ``idps.csv`` in row chunks: ``missing_idps`` of cells empty (QC failures, each IDP its
    own), and all cells of those not imaged."""
    samples = len(cohort.eid)
    with open(path, "wb") as csv:
        for start in range(0, samples, IDP_CHUNK_ROWS):
            rows = slice(start, start + IDP_CHUNK_ROWS)
            z = predictors[rows] @ model.weights  # samples × IDPs
            z += rng.standard_normal(z.shape) * model.noise_sd
            values = np.round((model.mean + model.sd * z) * model.scale) / model.scale
            values = _with_missing(rng, values, missing_idps)
            values[~cohort.imaged[rows]] = np.nan
            _append_csv(csv, pl.Series("eid", cohort.eid[rows]), values, model.fields, header=start == 0)
            progress("idps", min(start + IDP_CHUNK_ROWS, samples), samples)


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
            "null_idps": [field for field, column in zip(model.fields, effects.T) if not column.any()],
            "snp_exposure_interaction": {**{k: v for k, v in gxe.items() if k != "beta"},
                                         "exposure": "stress", "beta_gxe": gxe["beta"]}}


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
                        "probes": "probes.csv"},
            "truth": "truth.json"}


def _stream(seed: int, part: str) -> np.random.Generator:
    """An independent random stream per part, so changing one part leaves the others' draws alone."""
    return np.random.default_rng([seed, STREAMS.index(part)])


def _check_arguments(out: Path, *, samples: int, variants: int, idps: int, cpgs: int, seed: int,
                     methylation_samples: int | None, missing_calls: float, missing_idps: float) -> None:
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


def _write_imaging(folder: Path, rng: np.random.Generator, cohort: _Cohort, causal: list[_Causal],
                   layout: _Layout, idps: int, missing_idps: float, progress: Progress) -> dict:
    """Write ``idp_fields.csv`` and ``idps.csv``; return the SNP part of the truth."""
    catalogue = _idp_catalogue(idps)
    dictionary = _idp_dictionary(catalogue)
    dictionary.write_csv(folder / "idp_fields.csv")
    predictors = np.column_stack([_idp_design(cohort), _genetic_design(causal, cohort.stress)])
    effects = _genetic_effects(rng, causal, idps)
    model = _idp_model(rng, catalogue, dictionary["field"].to_list(), predictors, effects)
    _write_idps(folder / "idps.csv", rng, cohort, predictors, model, missing_idps, progress)
    return _snp_truth(layout, causal, effects, model)


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


def _write_release(folder: Path, layout: _Layout, host_blocks: np.ndarray, *, samples: int, idps: int,
                   cpgs: int, methylation_samples: int, seed: int, missing_calls: float,
                   missing_idps: float, progress: Progress) -> None:
    """Write every file of the release into ``folder``."""
    rng = _stream(seed, "cohort")
    cohort = _draw_cohort(rng, samples)
    _covariates_frame(rng, cohort).write_csv(folder / "covariates.csv")
    progress("covariates", 1, 1)
    causal = _write_genotypes(folder, _stream(seed, "genotypes"), layout, cohort, host_blocks,
                              missing_calls, progress)
    truth = _write_imaging(folder, _stream(seed, "idps"), cohort, causal, layout, idps, missing_idps, progress)
    truth |= _write_methylation_files(folder, _stream(seed, "methylation"), cohort, cpgs,
                                      methylation_samples, progress)
    counts = {"samples": samples, "variants": len(layout.chrom), "idps": idps, "cpgs": cpgs}
    truth |= {**counts, "methylation_samples": methylation_samples, "seed": seed}
    (folder / "truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    manifest = _manifest(seed=seed, **counts)
    manifest["checksums"] = {path.name: file_sha256(path) for path in sorted(folder.iterdir())
                             if path.name != "truth.json"}
    (folder / "release.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))


def write_synthetic_release(out: str | os.PathLike, *, samples: int, variants: int, idps: int, cpgs: int,
                            seed: int = 1, methylation_samples: int | None = None,
                            missing_calls: float = 0.01, missing_idps: float = 0.02,
                            progress: Progress | None = None) -> SynthSummary:
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
                     missing_idps=missing_idps)
    methylation_samples = min(samples, 1000) if methylation_samples is None else methylation_samples
    layout_rng = _stream(seed, "layout")
    layout, planted = _variant_layout(layout_rng, variants), max(3, idps // 10) + 1
    blocks = len(layout.block_starts) - 1
    if blocks < planted:
        raise ValueError(f"variants={variants} makes {blocks} LD blocks, too few to host {planted} planted "
                         f"variants for idps={idps}; use more variants or fewer idps")
    host_blocks = layout_rng.choice(blocks, planted, replace=False)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:12]}"
    staging.mkdir()
    try:
        _write_release(staging, layout, host_blocks, samples=samples, idps=idps, cpgs=cpgs,
                       methylation_samples=methylation_samples, seed=seed, missing_calls=missing_calls,
                       missing_idps=missing_idps,
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


def write_ld_panel(prefix: str | os.PathLike, *, samples: int, variants: int, chromosomes: int = 2,
                   seed: int = 1, spacing_kb: float = 2.0, block_kb: float = 100.0, missing_calls: float = 0.02,
                   causal: int = 4) -> LdPanel:
    """Write a small PLINK 1 fileset whose LD decays as in a real genome, and GWAS p-values on it.

    Each chromosome is a run of haplotype blocks (lengths exponential with mean ``block_kb``);
    within a block every haplotype copies one of eight founder haplotypes and switches founder
    with probability 1 − exp(−gap / 4 block_kb) between neighbours, so r² decays over tens of
    kb and is near 0 across blocks; neighbours share their founders' alleles 85 % of the time,
    and 1 % of alleles mutate away from the copied founder.
    Alt-allele frequencies of the founders spread as in arrays (Beta(0.6, 0.6)). The
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
    starts = np.r_[True, chrom[1:] != chrom[:-1]]
    pos = np.zeros(variants, np.int64)
    for c in np.unique(chrom):
        pos[chrom == c] = np.cumsum(gaps[chrom == c])
    haplotypes = _ld_haplotypes(rng, pos, starts, 2 * samples, block_kb)
    dosages = (haplotypes[:, 0::2] + haplotypes[:, 1::2]).astype(np.float64)     # variants × samples
    lost = rng.random(dosages.shape) < rng.uniform(0, 2 * missing_calls, (variants, 1))
    called = np.where(lost, np.nan, dosages)
    keep_lost = (np.nanmin(called, axis=1) < np.nanmax(called, axis=1))[:, None]
    dosages = np.where(lost & keep_lost, np.nan, dosages)
    planted = rng.choice(np.flatnonzero(_ld_alt_freq(dosages) > 0.1), causal, replace=False)
    p = _regression_p(rng, dosages, planted)
    _write_ld_fileset(prefix, chrom, pos, dosages, p)
    ids = np.array([f"{c}:{q}" for c, q in zip(chrom, pos)])
    return LdPanel(prefix, ids, chrom.astype(str), pos, dosages, p, planted)


def _ld_haplotypes(rng: np.random.Generator, pos: np.ndarray, chrom_starts: np.ndarray, haplotypes: int,
                   block_kb: float) -> np.ndarray:
    """variants × haplotypes alt alleles (uint8) copied from founders in decaying mosaics."""
    variants, founders = len(pos), 8
    gap = np.diff(pos, prepend=pos[0])
    block_start = chrom_starts | (rng.random(variants) < 1 - np.exp(-gap / (block_kb * 1000)))
    switch_rate = np.where(block_start, 1.0, 1 - np.exp(-gap / (4 * block_kb * 1000)))
    freq = np.clip(rng.beta(0.6, 0.6, variants), 0.05, 0.95)
    fresh = block_start | (rng.random(variants) < 0.15)           # else the neighbour's founder pattern
    pattern = np.maximum.accumulate(np.where(fresh, np.arange(variants), 0))
    founder_alleles = (rng.random((founders, variants)) < freq).astype(np.uint8)[:, pattern]
    switches = rng.random((haplotypes, variants)) < switch_rate
    last_switch = np.maximum.accumulate(np.where(switches, np.arange(variants), 0), axis=1)
    copied = np.take_along_axis(rng.integers(0, founders, (haplotypes, variants)), last_switch, axis=1)
    alleles = founder_alleles[copied, np.arange(variants)] ^ (rng.random((haplotypes, variants)) < 0.01)
    monomorphic = alleles.min(axis=0) == alleles.max(axis=0)
    alleles[rng.integers(0, haplotypes, variants)[monomorphic], np.flatnonzero(monomorphic)] ^= 1
    return alleles.T.astype(np.uint8)


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


def _write_ld_fileset(prefix: Path, chrom: np.ndarray, pos: np.ndarray, dosages: np.ndarray,
                      p: np.ndarray) -> None:
    """``{prefix}.bed/.bim/.fam`` (A1 = alt) and ``{prefix}.assoc`` (SNP CHR BP P)."""
    variants, samples = dosages.shape
    codes = np.full((variants, -(-samples // 4) * 4), 0, np.uint8)
    codes[:, :samples] = np.where(np.isnan(dosages), MISSING_CODE,
                                  CODE_OF_ALT_DOSAGE[np.nan_to_num(dosages).astype(np.intp)])
    packed = codes[:, 0::4] | codes[:, 1::4] << 2 | codes[:, 2::4] << 4 | codes[:, 3::4] << 6
    Path(f"{prefix}.bed").write_bytes(BED_MAGIC + packed.tobytes())
    ids = [f"{c}:{q}" for c, q in zip(chrom, pos)]
    pl.DataFrame({"chrom": chrom, "id": ids, "cm": 0, "pos": pos, "a1": "T", "a2": "C"},
                 ).write_csv(Path(f"{prefix}.bim"), separator="\t", include_header=False)
    eids = [f"s{i}" for i in range(samples)]
    pl.DataFrame({"fid": eids, "iid": eids, "father": 0, "mother": 0, "sex": 2, "pheno": -9},
                 ).write_csv(Path(f"{prefix}.fam"), separator=" ", include_header=False)
    pl.DataFrame({"SNP": ids, "CHR": chrom, "BP": pos, "P": [f"{value:.6g}" for value in p]},
                 ).write_csv(Path(f"{prefix}.assoc"), separator="\t")
