"""The epistasis job: SNP × SNP interaction scans of phenotypes queried from the lake.

Three scopes: ``--with ID[,ID…]`` tests each candidate against every variant the request chooses
(genome-wide, or ``--chrom``/``--region``/``--extract``), ``--set-sql`` every pair within a set of
variants (SQL returning ``variant_id``: the lead hits, a gene's variants), each pair once, and ``--all``
every pair of the autosomal variants the request chooses. With ``--prefilter-p P`` (which ``--all``
needs) every pair is still tested, and only the tested pairs at p ≤ P are written (for a 0/1 phenotype, by
its least-squares screen; they get the logistic fit); the run's summary counts every pair, skipped ones
among the tests that did not run. Per pair and
phenotype the model is y ~ covariates + a + b + a·b (:mod:`biolake.stats.epistasis`: a GxE scan whose
exposure is the candidate). The data path is the GWAS's (:mod:`biolake.scan`): one task per genotype
row group of partners on dask, each phenotype with exactly its own samples, a missing call dropping
that pair's sample. The candidates' genotypes travel with the tasks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.frame import DesignReport, VariantJobRequest, provenance
from biolake.gwas import MODELS, binary_columns
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import PAIR_SEPARATOR, RESULTS_KINDS
from biolake.queries import connect
from biolake.queries.blocks import SLICE_BYTES, Block, GenotypeBlock, genotype_blocks, read_chosen_variants
from biolake.queries.variants import VariantChoice, VariantList
from biolake.scan import ScanReport, Scores, TaskInputs, scan_design, scan_variants
from biolake.stats.epistasis import PairFilter, Phenotypes, epistasis_table, logistic_refit, pair_tests, \
    skipped_pairs
from biolake.stats.qc import DIPLOID, VariantQc

Progress = Callable[[str, int, int], None]
MAX_CANDIDATES = 1_000   # --with: every task tests each candidate against its block
MAX_SET = 10_000         # --set-sql: about 5·10⁷ pairs per phenotype
MAX_ALL_BYTES = 4 << 30  # --all: its variants' dosages (float64) travel with every task
NOT_WANTED = -1          # a pair a block task computes no test for and writes no row of
ROWS_AT_ONCE = 1 << 22   # rows of pairs a task builds at once (~0.6 GB)


@dataclass(frozen=True, kw_only=True)
class EpistasisSettings(VariantJobRequest):
    """What to test: ``candidates`` (``--with``) against every chosen variant, every pair of the variants
    ``set_sql`` returns, or (``all_pairs``) every pair of the chosen autosomal variants; pairs closer than
    ``min_distance_kb`` on one chromosome, or with r² above ``max_r2``, are skipped (as rows with that error).
    With ``prefilter_p``, only the tested pairs whose least-squares test reaches p ≤ ``prefilter_p`` are rows;
    ``model`` says which phenotypes are binary (their full model logistic), as the GWAS's ``--model``."""

    phenotypes: str | Sequence[str]
    candidates: Sequence[str] = ()
    set_sql: str | None = None
    all_pairs: bool = False
    min_distance_kb: float = 0.0
    max_r2: float | None = None
    prefilter_p: float | None = None
    model: str = "auto"            # auto: a phenotype coded 0/1, or PLINK's 1/2, is binary (logistic)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.model not in MODELS:
            raise BiolakeError(f"model {self.model!r} is not one of {', '.join(MODELS)}")
        if sum((bool(self.candidates), self.set_sql is not None, self.all_pairs)) != 1:
            raise BiolakeError("give one scope: --with ID[,ID…] (candidates against every variant), --set-sql "
                               "(every pair of a set of variants) or --all (every pair of the chosen variants)")
        if self.all_pairs and self.prefilter_p is None:
            raise BiolakeError("--all writes only the pairs that pass --prefilter-p (every pair is tested, most are "
                               "only counted): give it, e.g. --prefilter-p 1e-4")
        if self.prefilter_p is not None and not 0 < self.prefilter_p <= 1:
            raise BiolakeError(f"--prefilter-p must lie in (0, 1], got {self.prefilter_p:g}")
        if len(self.candidates) > MAX_CANDIDATES:
            raise BiolakeError(f"--with names {len(self.candidates):,} candidates; at most {MAX_CANDIDATES:,} (for all "
                               "pairs of a set of variants use --set-sql)")
        if self.set_sql is not None and (self.regions or self.extract or self.exclude or self.chromosomes):
            raise BiolakeError("--set-sql chooses the variants itself: put the region or list in its SQL, not in "
                               "--chrom/--region/--extract/--exclude")
        if self.max_r2 is not None and not 0 < self.max_r2 <= 1:
            raise BiolakeError(f"--max-r2 must lie in (0, 1], got {self.max_r2:g}")
        if self.min_distance_kb < 0:
            raise BiolakeError(f"--min-distance must be 0 kb or more, got {self.min_distance_kb:g}")

    def pair_filter(self) -> PairFilter:
        return PairFilter(round(self.min_distance_kb * 1000), self.max_r2)

    @property
    def scope(self) -> str:
        """The scope's name, as its provenance records it."""
        return "all" if self.all_pairs else "set" if self.set_sql is not None else "with"


@dataclass(frozen=True, kw_only=True)
class EpistasisReport(ScanReport):
    """What an epistasis run wrote: its candidates (with --all, none: every chosen variant), how many pairs per
    phenotype its scope holds (tested or not) and how many tests ran in all (pairs × phenotypes)."""

    candidates: list[str]
    pairs: int
    tested: int


@dataclass(frozen=True)
class Candidates:
    """The candidate variants (variant_id, chrom, pos, ref, alt) and their dosages (candidates × analysis samples,
    NaN where uncalled); ``within_set``: a partner is tested only with the candidates before it (each pair of a
    set once), else with every candidate but itself."""

    variants: pa.Table
    dosages: np.ndarray
    within_set: bool

    @cached_property
    def rank(self) -> dict[str, int]:
        """Each candidate's row in ``variants``, by id."""
        return dict(zip(self.variants.column("variant_id").to_pylist(), range(self.variants.num_rows)))

    def pairs_in(self, block: GenotypeBlock) -> tuple[int, np.ndarray]:
        """How many candidates are paired with some variant of ``block`` (the first so many of ``variants``), and
        which pairs (those candidates × the block's variants): with a set, each pair once (the candidate first in
        the set), else every candidate with every variant but itself."""
        ranks = np.array([self.rank.get(variant, -1) for variant in block.variants.column("variant_id").to_pylist()],
                         dtype=np.int64)
        count = int(ranks.max(initial=0)) if self.within_set else self.variants.num_rows
        chosen = np.arange(count)
        wanted = ranks[None, :] > chosen[:, None] if self.within_set else ranks[None, :] != chosen[:, None]
        return count, wanted


@dataclass(frozen=True)
class EpistasisTests(TaskInputs):
    """What every epistasis block task needs besides its block: the phenotypes and covariates, the candidates."""

    phenotypes: Phenotypes
    phenotype_names: list[str]
    candidates: Candidates
    pairs: PairFilter
    schema: pa.Schema
    qc: VariantQc
    min_log10p: float | None = None    # --prefilter-p: a tested pair is a row only from this −log10 p on
    dtype: type = np.float64

    @property
    def slice_bytes(self) -> int:
        """Slices of a row group whose pairs' rows (candidates × variants × phenotypes) number about ROWS_AT_ONCE at
        most, so that a task's table stays small however many candidates and phenotypes."""
        per_variant = self.candidates.variants.num_rows * len(self.phenotype_names)
        return min(SLICE_BYTES, max(1, ROWS_AT_ONCE // per_variant) * self.analysis_samples
                   * np.dtype(self.dtype).itemsize)

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, Scores | None]:
        """The rows of the block's pairs; with --prefilter-p, those of the pairs that pass it or were not tested,
        and every pair's −log10 p for the run's summary. Every pair is first tested by least squares (the full
        model of a quantitative phenotype, the screen of a binary one); a binary phenotype's pairs that are rows
        are then fitted by logistic regression."""
        count, wanted = self.candidates.pairs_in(block)
        if not wanted.any():
            return self.schema.empty_table(), None if self.min_log10p is None else Scores(
                np.zeros(0, object), np.zeros((0, len(self.phenotype_names))))
        called = block.missing.toarray() == 0
        chrom = block.variants.column("chrom").to_numpy(zero_copy_only=False)
        candidates = self.candidates.variants.slice(0, count)
        dosages = self.candidates.dosages[:count]                  # a view: --all's candidates are many
        positions = (candidates.column("chrom").to_numpy(zero_copy_only=False), candidates.column("pos").to_numpy())
        tables, scores, pos = [], [], block.variants.column("pos").to_numpy()
        for rows in _chunks(count, max(block.variants.num_rows, self.analysis_samples)
                            * len(self.phenotype_names) * (self.phenotypes.basis.shape[1] + 3)):
            partners = np.flatnonzero(wanted[rows].any(axis=0))     # with a set, fewer for later candidates
            codes = skipped_pairs(dosages[rows], (positions[0][rows], positions[1][rows]), block.dosages[partners],
                                  called[partners], chrom[partners], pos[partners], self.pairs)
            mine = wanted[rows][:, partners]
            result = pair_tests(dosages[rows], block.dosages[partners], called[partners], self.phenotypes,
                                np.where(mine, codes, NOT_WANTED))
            screen = result.log10p()
            # with --prefilter-p only the tested pairs that pass are rows (the others, skipped ones too, are counted)
            written = np.full(screen.shape, True) if self.min_log10p is None else screen >= self.min_log10p
            if self.phenotypes.binary.any():
                result = logistic_refit(result, written, dosages[rows], block.dosages[partners], called[partners],
                                        self.phenotypes)
            shown = mine if self.min_log10p is None else mine & written.any(axis=2)   # pairs with a row
            table = epistasis_table(candidates.slice(rows.start, len(rows)), block.variants.take(partners), result,
                                    shown, phenotypes=self.phenotype_names, schema=self.schema)
            if self.min_log10p is not None:
                pairs = np.nonzero(mine)
                names = (candidates.column("variant_id").to_numpy(zero_copy_only=False)[rows][pairs[0]],
                         block.variants.column("variant_id").to_numpy(zero_copy_only=False)[partners][pairs[1]])
                scores.append(Scores(leaders(names, screen[pairs]), screen[pairs]))
                table = table.filter(pa.array(written[np.nonzero(shown)].T.ravel()))
            tables.append(table)
        if self.min_log10p is None:
            return pa.concat_tables(tables), None   # the rows carry the headline test
        return pa.concat_tables(tables), Scores(np.concatenate([s.features for s in scores]),
                                                np.concatenate([s.log10p for s in scores]))


def leaders(names: tuple[np.ndarray, np.ndarray], log10p: np.ndarray) -> np.ndarray:
    """Each pair's name for a run's summary, which keeps only each phenotype's strongest test: "A × B" for the
    strongest pairs of each phenotype (the columns of ``log10p``, pairs × phenotypes; all that tie), None for the
    others (naming millions of pairs a block tests would cost more than testing them).

    >>> leaders((np.array(["rs1", "rs1", "rs2"]), np.array(["rs5", "rs6", "rs6"])),
    ...         np.array([[1.0, 7.0], [3.0, np.nan], [2.0, 0.5]])).tolist()
    ['rs1 × rs5', 'rs1 × rs6', None]
    """
    named = np.full(len(log10p), None, object)
    if len(log10p):
        scores = np.nan_to_num(log10p, nan=-np.inf)
        top = scores.max(axis=0)
        best = np.flatnonzero(((scores == top) & np.isfinite(top)).any(axis=1))
        named[best] = [f"{a}{PAIR_SEPARATOR}{b}" for a, b in zip(names[0][best], names[1][best])]
    return named


def _chunks(candidates: int, per_candidate: int, most: int = 1 << 21, widest: int = 256) -> list[range]:
    """Ranges of at most ``widest`` candidates whose arrays (``per_candidate`` values each: partners or samples ×
    phenotypes × sums) hold at most ``most`` values (narrow ranges: a set's later candidates pair with fewer
    partners, so less is computed)."""
    size = max(1, min(widest, most // max(per_candidate, 1)))
    return [range(start, min(start + size, candidates)) for start in range(0, candidates, size)]


def run_epistasis(lake: Lake, settings: EpistasisSettings, *, scheduler: str | None = None,
                  workers: int | None = None, progress: Progress | None = None) -> EpistasisReport:
    """Run an epistasis scan on ``lake`` and write its results table; see ``biolake epistasis --help``.

    Examples
    --------
    >>> report = run_epistasis(Lake.open("lake"), EpistasisSettings(
    ...     name="pairs", phenotypes=["25010-2.0"], covariates=["age", "sex"], candidates=["rs3741"],
    ...     chromosomes=["22"]))
    >>> report.candidates, report.pairs > 0
    (['rs3741'], True)
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    within_set = settings.set_sql is not None or settings.all_pairs
    release = lake.resolve_release(settings.release).release
    ids = (_set_variants(lake, settings, release=release) if settings.set_sql is not None
           else [] if settings.all_pairs else list(dict.fromkeys(settings.candidates)))
    # --all pairs the autosomes' variants (and XY's): the other chromosomes' are neither read nor QC'd
    scanned = (replace(settings, chromosomes=sorted(DIPLOID)) if settings.all_pairs and settings.chromosomes is None
               else settings)
    chosen, blocks, males_x = scan_design(lake, scanned, scheduler=scheduler, workers=workers, progress=progress,
                                          choice=_listed("--set-sql", settings.set_sql, ids) if ids and within_set
                                          else None)
    if settings.all_pairs:
        ids = _all_variants(blocks, samples=chosen.vector_length)
    candidates = _read_candidates(lake, ids, release=chosen.release, n_samples=chosen.vector_length,
                                  samples=chosen.selection, within_set=within_set, qc=settings.variant_qc(),
                                  flag={"all": "--all", "set": "--set-sql", "with": "--with"}[settings.scope])
    ids = candidates.variants.column("variant_id").to_pylist()
    min_log10p = None if settings.prefilter_p is None else float(-np.log10(settings.prefilter_p))
    binary, values = binary_columns(chosen.phenotypes, settings.model, chosen.phenotype_names)
    names = np.array(chosen.phenotype_names, object)
    schema = RESULTS_KINDS["epistasis"].arrow_schema(columns=[*(["t_int", "f_joint"] if (~binary).any() else []),
                                                              *(["z_int", "chisq_joint"] if binary.any() else [])])
    tests = EpistasisTests(chosen.vector_length, chosen.selection, Phenotypes.of(values, chosen.covariates, binary),
                           chosen.phenotype_names, candidates, settings.pair_filter(), schema, settings.variant_qc(),
                           min_log10p)
    record = provenance("epistasis", settings, chosen, candidates=[] if settings.all_pairs else ids,
                        scope=settings.scope, prefilter_p=settings.prefilter_p,
                        linear_phenotypes=list(names[~binary]), logistic_phenotypes=list(names[binary]))
    version, summary, removed = scan_variants(lake, settings.name, tests, blocks, provenance=record, step="epistasis",
                                              scheduler=scheduler, workers=workers, progress=progress,
                                              replace=settings.replace, males_x=males_x,
                                              xchr_model=settings.xchr_model, headline=min_log10p is not None)
    pairs = int(summary.tests.sum() + summary.failed.sum()) // len(chosen.phenotype_names)
    rows = lake.results_dataset(settings.name).count_rows()
    return EpistasisReport(name=settings.name, version=version, rows=rows, candidates=[] if settings.all_pairs
                           else ids, pairs=pairs, tested=int(summary.tests.sum()), summary=summary, removed=removed,
                           **DesignReport.of(chosen))


def _all_variants(blocks: list[Block], *, samples: int) -> list[str]:
    """The ids of the variants of ``blocks`` (as chosen) on the autosomes and XY, in order: --all's, whose dosages
    (read at the stored vector's ``samples``, then the analysis samples taken) must fit in memory (at most
    MAX_ALL_BYTES), else an error saying how to narrow them."""
    ids = []
    for block in blocks:
        if block.chrom in DIPLOID:
            rows = block.read(["variant_index", "variant_id"])
            if block.chosen is not None:
                rows = rows.filter(pc.is_in(rows.column("variant_index"), value_set=pa.array(block.chosen)))
            ids += rows.column("variant_id").to_pylist()
    if not ids:
        raise BiolakeError("--all: no variant on the autosomes (or XY) is chosen; epistasis pairs autosomal variants")
    size = len(ids) * samples * 8
    if size > MAX_ALL_BYTES:
        raise BiolakeError(f"--all: {len(ids):,} variants × {samples:,} samples are {size / 2**30:.1f} GiB of "
                           f"dosages, more than the {MAX_ALL_BYTES >> 30} GiB every task holds; narrow them with "
                           "--chrom, --region or --extract (and run the other pieces apart)")
    return ids


def _listed(flag: str, source: str, ids: list[str]) -> VariantChoice:
    """A variant choice of exactly ``ids`` (as ``--extract`` would give it), named by ``flag`` and ``source``."""
    return VariantChoice(extract=VariantList(flag, source, {variant: k + 1 for k, variant in enumerate(ids)}))


def _set_variants(lake: Lake, settings: EpistasisSettings, *, release: str) -> list[str]:
    """The ids ``--set-sql`` returns (its first column), each once; an empty or too large set is an error."""
    with connect(lake, release=release) as con:
        try:
            rows = con.sql(settings.set_sql).fetchall()
        except Exception as exc:   # DuckDB's errors: the message names the fault
            raise BiolakeError(f"--set-sql: {str(exc).splitlines()[0]}") from None
    ids = list(dict.fromkeys(str(row[0]) for row in rows if row[0] is not None))
    if not ids:
        raise BiolakeError("--set-sql returned no variant_id: every pair of an empty set is no pair")
    if len(ids) > MAX_SET:
        raise BiolakeError(f"--set-sql returned {len(ids):,} variants ({len(ids) * (len(ids) - 1) // 2:,} pairs per "
                           f"phenotype); at most {MAX_SET:,}: narrow the set (e.g. the lead variants of a GWAS), test "
                           "candidates against every variant with --with, or scan every pair of the chosen variants "
                           "with --all --prefilter-p P")
    return ids


def _read_candidates(lake: Lake, ids: list[str], *, release: str, n_samples: int, samples: np.ndarray | None,
                     within_set: bool, qc: VariantQc, flag: str) -> Candidates:
    """The candidates' variants and dosages over the analysis samples, through the request's variant filters ``qc``
    as every partner goes: a set (``within_set``: --set-sql, --all) keeps those passing (so its pairs are those of
    the variants it tests), a --with candidate failing one is an error, as is an id the release lacks or a candidate
    not on an autosome. ``flag`` names the scope in errors."""
    known = lake.read("variants", release=release, columns=["variant_id"]).column(0)
    listed = pa.array(ids, pa.string())
    missing = listed.filter(pc.invert(pc.is_in(listed, value_set=known))).to_pylist()
    if missing:
        raise BiolakeError(f"{flag}: {missing[0]!r}{f' and {len(missing) - 1:,} more' if len(missing) > 1 else ''} "
                           f"not in release {release!r} (ids as the variants table holds them: SELECT variant_id "
                           "FROM variants)")
    blocks: list[Block] = genotype_blocks(lake, release=release, choice=_listed(flag, ",".join(ids), ids))
    found = read_chosen_variants(blocks, set(ids), n_samples=n_samples, dtype=np.float64)
    chrom = found.variants.column("chrom").to_numpy(zero_copy_only=False)
    if not np.isin(chrom, list(DIPLOID)).all():
        raise BiolakeError(f"{flag}: a candidate on chromosome {chrom[~np.isin(chrom, list(DIPLOID))][0]}; epistasis "
                           "tests candidates of the autosomes (and X's pseudo-autosomal XY)")
    if samples is not None:
        found = GenotypeBlock(found.variants, found.dosages[:, samples], found.missing[:, samples])
    kept = np.ones(found.variants.num_rows, bool)
    for name in np.unique(chrom) if qc.active else ():
        on = np.flatnonzero(chrom == name)
        kept[on] = qc.passing(found.dosages[on], found.missing[on], chrom=str(name))[0]
    if not within_set and not kept.all():
        raise BiolakeError(f"--with: {found.variants.column('variant_id')[int(np.flatnonzero(~kept)[0])]} fails the "
                           "variant filters (--maf, --mac, --geno, --hwe, --min-info) it would be tested under")
    if within_set and kept.sum() < 2:
        raise BiolakeError(f"{flag}: {kept.sum()} of its {len(kept):,} variants pass the variant filters (--maf, "
                           "--mac, --geno, --hwe, --min-info); no pair is left to test")
    found = found.take(np.flatnonzero(kept))
    dosages = np.where(found.missing.toarray().astype(bool), np.nan, found.dosages)
    return Candidates(found.variants.select(["variant_id", "chrom", "pos", "ref", "alt"]), dosages, within_set)

