"""The LD score regression jobs: summary statistics + LD scores → h² per phenotype and rg per pair, as LDSC.

A results table of summary statistics (a ``biolake gwas`` or ``meta`` run, or a published
GWAS brought in with ``biolake import-sumstats``) is joined on ``variant_id`` with an
``ldscore`` table of the lake (``biolake ldscores``), in its genome order, and regressed by
:mod:`biolake.stats.ldsc` exactly as ``ldsc.py --h2`` / ``--rg`` regress a ``.sumstats`` file
on ``--ref-ld`` and ``--w-ld``. The summary statistics are munged first as LDSC's
``munge_sumstats.py`` does with its defaults, where the columns exist:

* z = beta / se (from p and the sign of beta where se is missing); A1 = alt, A2 = ref;
* variants that are not SNPs, or are strand-ambiguous (A/T, C/G), are dropped;
* MAF ≤ 1 % is dropped where ``alt_freq`` is known (results carry no INFO: none is filtered);
* N per variant from ``n`` (``--n`` where it is missing); N below the 90th percentile / 1.5 dropped;
* one row per variant id (the first).

M is the LD score table's M_5_50 summed over its chromosomes (LDSC without ``--not-M-5-50``);
the regression weights' LD scores (``--w-ld``) are the same scores unless ``w_ldscores``
names another table (LDSC users pass the same files to both for a single-annotation model).
For rg, the second trait's z is put on the first trait's A1 (flipped when the alleles are
swapped or on the other strand; dropped when they do not match), as ``ldsc --rg``. Results
are kinds ``h2`` (method ``ldsc``) and ``rg`` (:mod:`biolake.lake.schema`), one small table each.

Examples
--------
>>> from biolake.ldscores import LdScoreSettings, run_ldscores
>>> _ = run_ldscores(Lake.open("lake"), LdScoreSettings(name="ld_scores", window_kb=1000))
>>> report = run_h2(Lake.open("lake"), H2Settings(name="idps_h2", result="demo_idps", ldscores="ld_scores"))
>>> report.phenotypes, Lake.open("lake").results_dataset("idps_h2").schema.names[:4]
(10, ['phenotype', 'method', 'h2', 'h2_se'])
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import polars as pl
import pyarrow as pa
from scipy import special

from biolake.frame import Report, Request, provenance_header
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.schema import RESULTS_KINDS
from biolake.run import publish_table
from biolake.stats.ldsc import H2Fit, RgFit, h2_regression, rg_regression
from biolake.stats.meta import align_alleles

SUMSTATS_KINDS = ("gwas", "meta")
MIN_MAF = 0.01                 # munge_sumstats.py --maf-min
N_MIN_OF_90TH = 1 / 1.5        # munge_sumstats.py: N at least its 90th percentile / 1.5
PHENOTYPES_PER_BATCH = 8       # regressions held in memory at once: ~1 GB over LDSC's 1.2 M HapMap3 variants
SNP_PAIRS = {a + b for a in "ACGT" for b in "ACGT" if a != b and {a, b} not in ({"A", "T"}, {"C", "G"})}
H2_COLUMNS = ["intercept", "intercept_se", "ratio", "ratio_se", "mean_chisq", "lambda_gc"]


@dataclass(frozen=True, kw_only=True)
class LdscRequest(Request):
    """What both regressions take: the LD scores (an ``ldscore`` results table), optionally other scores for
    the weights, and a sample size for summary statistics without one."""

    ldscores: str = "ldscores"
    w_ldscores: str | None = None      # default: the same scores
    n: float | None = None             # N where the results' column n is missing (--n)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.n is not None and not self.n > 0:
            raise BiolakeError(f"--n must be positive, got {self.n!r}: the GWAS sample size")


@dataclass(frozen=True, kw_only=True)
class H2Settings(LdscRequest):
    """LD score regression h² of the phenotypes of ``result`` (all, or those listed), the intercept free
    (two-step, LDSC's default) or fixed at ``intercept_h2``."""

    result: str
    phenotypes: tuple[str, ...] | None = None
    intercept_h2: float | None = None


@dataclass(frozen=True, kw_only=True)
class RgSettings(LdscRequest):
    """Genetic correlations: each trait of ``traits[0]`` against each of ``traits[1]``, or every pair within
    ``traits[0]`` when only one is given. A side is a results table and its phenotypes (None: all)."""

    traits: tuple[tuple[str, tuple[str, ...] | None], ...]

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= len(self.traits) <= 2:
            raise BiolakeError(f"give one --result (pairs within it) or two (one against the other), not "
                               f"{len(self.traits)}")


@dataclass(frozen=True, kw_only=True)
class H2Report(Report):
    """What an h² run wrote: how many phenotypes, on how many variants at most."""

    phenotypes: int
    variants: int


@dataclass(frozen=True, kw_only=True)
class RgReport(Report):
    """What an rg run wrote: how many pairs of traits."""

    pairs: int


@dataclass(frozen=True)
class LdScores:
    """An LD score table in genome order, as the regression reads it."""

    variant_id: pl.Series
    l2: np.ndarray
    w_l2: np.ndarray
    m: float               # M_5_50 summed over the chromosomes
    release: str | None


def run_h2(lake: Lake, settings: H2Settings) -> H2Report:
    """h² of every phenotype asked, as ``ldsc --h2``; committed as ``LAKE/results/NAME`` (``biolake h2 --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    sumstats, dropped = munged_sumstats(lake, settings.result, settings.phenotypes, n=settings.n)
    scores = read_ldscores(lake, settings.ldscores, w_name=settings.w_ldscores)
    placed = on_ldscores(sumstats, scores, result=settings.result, ldscores=settings.ldscores)
    phenotypes = placed["phenotype"].unique(maintain_order=True).to_list()
    columns = H2_COLUMNS if settings.intercept_h2 is None else ["intercept", "mean_chisq", "lambda_gc"]
    schema = RESULTS_KINDS["h2"].arrow_schema(columns=columns)
    table = pa.concat_tables(_h2_rows(batch, _h2_batch(rows, row, scores, batch, intercept=settings.intercept_h2),
                                      schema) for batch, rows, row in phenotype_batches(placed, phenotypes))
    record = {**_provenance("h2", settings, scores, dropped), "result": settings.result,
              "estimator": "ldsc --h2 " + ("--two-step 30 (default)" if settings.intercept_h2 is None
                                           else f"--intercept-h2 {settings.intercept_h2:g}")}
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    return H2Report(name=settings.name, version=version, phenotypes=len(phenotypes),
                    variants=placed["at"].n_unique())


def run_rg(lake: Lake, settings: RgSettings) -> RgReport:
    """rg of every pair asked, as ``ldsc --rg``; committed as ``LAKE/results/NAME`` (``biolake rg --help``)."""
    lake.check_results_free(settings.name, replace=settings.replace)
    sides, dropped = [], {}
    for result, phenotypes in settings.traits:
        sumstats, counts = munged_sumstats(lake, result, phenotypes, n=settings.n)
        sides.append(sumstats.with_columns(result=pl.lit(result)))
        dropped[result] = counts
    scores = read_ldscores(lake, settings.ldscores, w_name=settings.w_ldscores)
    placed = [on_ldscores(side, scores, result=result, ldscores=settings.ldscores)
              for side, (result, _) in zip(sides, settings.traits)]
    pairs = trait_pairs(*[side.select("result", "phenotype").unique(maintain_order=True).rows() for side in placed])
    traits = {key: frame for key, frame in pl.concat(placed).group_by("result", "phenotype", maintain_order=True)}
    schema = RESULTS_KINDS["rg"].arrow_schema()
    table = pa.concat_tables(_rg_rows(batch, _rg_batch(batch, traits, scores), schema)
                             for batch in batches(pairs))
    record = {**_provenance("rg", settings, scores, dropped), "traits": [list(pair) for pair in settings.traits],
              "estimator": "ldsc --rg (its default: intercepts free, each in one step)"}
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    return RgReport(name=settings.name, version=version, pairs=len(pairs))


def batches(items: Sequence, size: int = PHENOTYPES_PER_BATCH) -> list[Sequence]:
    """``items`` in runs of at most ``size``, regressed together (memory: a few arrays of size × variants).

    Examples
    --------
    >>> batches("abcde", 2)
    ['ab', 'cd', 'e']
    """
    return [items[start:start + size] for start in range(0, len(items), size)]


def phenotype_batches(placed: pl.DataFrame, phenotypes: list[str]
                      ) -> Iterator[tuple[Sequence[str], pl.DataFrame, np.ndarray]]:
    """The rows of each batch of ``phenotypes`` (:func:`batches`), with each row's phenotype as its place in the
    batch."""
    code = placed["phenotype"].replace_strict(phenotypes, range(len(phenotypes)), return_dtype=pl.Int64).to_numpy()
    for start, batch in zip(range(0, len(phenotypes), PHENOTYPES_PER_BATCH), batches(phenotypes)):
        chosen = (code >= start) & (code < start + len(batch))
        yield batch, placed.filter(pl.Series(chosen)), code[chosen] - start


def trait_pairs(first: list[tuple[str, str]], second: list[tuple[str, str]] | None = None
                ) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """The pairs asked: each trait of ``first`` against each of ``second``, else every pair within ``first``.

    Examples
    --------
    >>> trait_pairs([("a", "x"), ("a", "y"), ("a", "z")])
    [(('a', 'x'), ('a', 'y')), (('a', 'x'), ('a', 'z')), (('a', 'y'), ('a', 'z'))]
    >>> trait_pairs([("a", "x")], [("b", "d")])
    [(('a', 'x'), ('b', 'd'))]
    """
    if second is None:
        return list(itertools.combinations(first, 2))
    return [(one, other) for one in first for other in second if one != other]


def read_ldscores(lake: Lake, name: str, *, w_name: str | None = None) -> LdScores:
    """The ``ldscore`` results ``name`` in genome order (as LDSC sorts by CHR, BP: numbered chromosomes first,
    then the others by name), M_5_50 from its provenance;
    the weights' scores from ``w_name`` (variants of both only), else the same."""
    provenance = _provenance_of(lake, name, kinds=("ldscore",), flag="--ldscores")
    scores = pl.from_arrow(lake.results_dataset(name).to_table(columns=["chrom", "variant_id", "pos", "l2"]))
    scores = scores.sort(pl.col("chrom").cast(pl.Int64, strict=False), "chrom", "pos", nulls_last=True)
    if w_name is not None:
        _provenance_of(lake, w_name, kinds=("ldscore",), flag="--w-ldscores")
        weights = pl.from_arrow(lake.results_dataset(w_name).to_table(columns=["variant_id", "l2"]))
        scores = scores.join(weights.rename({"l2": "w_l2"}), on="variant_id", how="inner", maintain_order="left")
    else:
        scores = scores.with_columns(w_l2=pl.col("l2"))
    scores = scores.unique("variant_id", keep="first", maintain_order=True)
    return LdScores(scores["variant_id"], scores["l2"].to_numpy(), scores["w_l2"].to_numpy(),
                    float(sum(provenance["m_5_50"].values())), provenance.get("release"))


def munged_sumstats(lake: Lake, result: str, phenotypes: Sequence[str] | None, *,
                    n: float | None) -> tuple[pl.DataFrame, dict[str, int]]:
    """The results' rows as LDSC's munge_sumstats.py leaves them (see the module docstring): phenotype,
    variant_id, a1, a2, z, n; and how many rows each filter dropped."""
    _provenance_of(lake, result, kinds=SUMSTATS_KINDS, flag="--result")
    dataset = lake.results_dataset(result)
    names = dataset.schema.names
    rows = pl.scan_pyarrow_dataset(dataset).select(
        "phenotype", "variant_id", "ref", "alt", "n", "beta", "se", "p",
        *[c for c in ("alt_freq", "error") if c in names])
    present = rows.select(pl.col("phenotype").unique(maintain_order=True)).collect()["phenotype"].to_list()
    for phenotype in phenotypes or ():
        if phenotype not in present:
            listed = ", ".join(map(repr, present[:5])) + (", …" if len(present) > 5 else "")
            raise BiolakeError(f"--phenotype {phenotype!r}: results {result!r} have no such phenotype (they have "
                               f"{len(present)}: {listed})")
    if phenotypes:
        rows = rows.filter(pl.col("phenotype").is_in(list(phenotypes)))
    rows = rows.filter(pl.col("error").is_null()) if "error" in names else rows
    frame = rows.with_columns(n=pl.col("n").cast(pl.Float64).fill_null(n) if n is not None else
                              pl.col("n").cast(pl.Float64)).collect()
    _check_columns_filled(frame, result)
    return munge(frame)


def _check_columns_filled(frame: pl.DataFrame, result: str) -> None:
    """Refuse a phenotype whose rows all lack N, or alleles: LDSC needs both."""
    empty = frame.group_by("phenotype", maintain_order=True).agg(
        n=pl.col("n").is_not_null().any(), alleles=(pl.col("ref").is_not_null() & pl.col("alt").is_not_null()).any())
    for row in empty.iter_rows(named=True):
        if not row["n"]:
            raise BiolakeError(f"results {result!r}, phenotype {row['phenotype']!r}: no sample size (column n is "
                               "empty); give --n, the GWAS's N")
        if not row["alleles"]:
            raise BiolakeError(f"results {result!r}, phenotype {row['phenotype']!r}: no alleles (columns ref and alt "
                               "are empty); LD score regression drops strand-ambiguous variants and matches alleles")


def munge(frame: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, int]]:
    """munge_sumstats.py's defaults on summary statistics (phenotype, variant_id, ref, alt, n, beta, se, p[,
    alt_freq]): rows with z, SNP alleles not strand-ambiguous, MAF above 1 % where known, N at least the
    phenotype's 90th percentile / 1.5, one per variant; and the rows each step dropped.

    Examples
    --------
    >>> frame = pl.DataFrame({"phenotype": ["t"] * 4, "variant_id": ["a", "b", "c", "d"], "ref": ["A", "A", "C", "G"],
    ...                       "alt": ["G", "T", "A", "T"], "n": [1000.0, 1000.0, 400.0, 1000.0],
    ...                       "beta": [0.1, 0.2, 0.3, -0.2], "se": [0.05, 0.1, 0.1, None], "p": [0.05, 0.05, 0.01, 0.05]})
    >>> munged, dropped = munge(frame)
    >>> munged.select("variant_id", "a1", "z").rows()
    [('a', 'G', 2.0), ('d', 'T', -1.9599639845400545)]
    >>> dropped     # doctest: +NORMALIZE_WHITESPACE
    {'no z': 0, 'not a SNP, or strand-ambiguous': 1, 'MAF ≤ 1 %': 0, 'N < 90th percentile / 1.5': 1,
     'repeated variant id': 0}
    """
    dropped: dict[str, int] = {}

    def keep(rows: pl.DataFrame, condition: pl.Expr, why: str) -> pl.DataFrame:
        kept = rows.filter(condition)
        dropped[why] = rows.height - kept.height
        return kept

    beta, se, p = (frame[c].to_numpy().astype(np.float64) for c in ("beta", "se", "p"))
    with np.errstate(invalid="ignore", divide="ignore"):
        z = np.where(se > 0, beta / se, np.sign(beta) * -special.ndtri(p / 2))
    frame = frame.with_columns(z=pl.Series(z, nan_to_null=True), a1=pl.col("alt").str.to_uppercase(),
                               a2=pl.col("ref").str.to_uppercase())
    frame = keep(frame, pl.col("z").is_not_null() & pl.col("z").is_finite(), "no z")
    frame = keep(frame, (pl.col("a1") + pl.col("a2")).is_in(list(SNP_PAIRS)), "not a SNP, or strand-ambiguous")
    maf = pl.min_horizontal(pl.col("alt_freq"), 1 - pl.col("alt_freq")) if "alt_freq" in frame.columns else None
    frame = keep(frame, pl.lit(True) if maf is None else maf.is_null() | (maf > MIN_MAF), "MAF ≤ 1 %")
    frame = keep(frame, pl.col("n").is_not_null() & (pl.col("n") >= pl.col("n").quantile(0.9, "linear").over(
        "phenotype") * N_MIN_OF_90TH), "N < 90th percentile / 1.5")
    frame = keep(frame, pl.col("variant_id").is_first_distinct().over("phenotype"), "repeated variant id")
    return frame.select("phenotype", "variant_id", "a1", "a2", "z", "n"), dropped


def on_ldscores(sumstats: pl.DataFrame, scores: LdScores, *, result: str, ldscores: str) -> pl.DataFrame:
    """The munged rows of variants with an LD score, with ``at``, their place in the LD scores' genome order."""
    places = pl.DataFrame({"variant_id": scores.variant_id, "at": np.arange(len(scores.variant_id))})
    placed = sumstats.join(places, on="variant_id", how="inner", maintain_order="left")
    if not placed.height:
        raise BiolakeError(f"no variant of results {result!r} (after LDSC's munging: {sumstats.height:,} rows) has an "
                           f"LD score in {ldscores!r} ({len(scores.variant_id):,} variants, e.g. "
                           f"{scores.variant_id[0]!r}); variant ids must match")
    return placed


def dense(row: np.ndarray, at: np.ndarray, values: dict[str, np.ndarray], *,
          rows: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Values given per (``row``, ``at``) as ``rows`` × variants matrices over the LD score places any row has,
    in genome order, NaN where a row lacks one; and those places.

    Examples
    --------
    >>> places, spread = dense(np.array([0, 1, 1]), np.array([7, 3, 7]), {"z": np.array([1.0, 2.0, 3.0])}, rows=2)
    >>> places.tolist(), spread["z"].tolist()
    ([3, 7], [[nan, 1.0], [2.0, 3.0]])
    """
    places, column = np.unique(at, return_inverse=True)
    spread = {}
    for name, value in values.items():
        spread[name] = np.full((rows, len(places)), np.nan)
        spread[name][row, column] = value
    return places, spread


def _h2_batch(rows: pl.DataFrame, row: np.ndarray, scores: LdScores, phenotypes: Sequence[str], *,
              intercept: float | None) -> H2Fit:
    """h² of a batch of phenotypes (``row``: each of ``rows``' phenotype, its place in the batch), regressed
    together on the variants any of them has."""
    places, spread = dense(row, rows["at"].to_numpy(), {"z": rows["z"].to_numpy(), "n": rows["n"].to_numpy()},
                           rows=len(phenotypes))
    _check_blocks(np.isfinite(spread["z"]).sum(axis=1), phenotypes)
    return h2_regression(spread["z"] ** 2, scores.l2[places], scores.w_l2[places], spread["n"], scores.m,
                         intercept=intercept)


def _check_blocks(counts: np.ndarray, names: Sequence) -> None:
    """Refuse a regression on fewer variants than the jackknife has blocks."""
    few = np.flatnonzero(counts < 200)
    if len(few):
        raise BiolakeError(f"{names[few[0]]}: only {counts[few[0]]} variants with an LD score after munging; LD score "
                           "regression's 200-block jackknife needs at least 200 (millions are usual)")


def _rg_batch(pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]], traits: dict, scores: LdScores) -> RgFit:
    """rg of a batch of pairs: trait 2's z put on trait 1's A1 (swapped or other-strand alleles flip it,
    others are dropped), regressed together on the variants any pair shares."""
    joined = [traits[one].join(traits[other], on="at", suffix="_2") for one, other in pairs]
    aligned = []
    for rows in joined:
        sign, _ = align_alleles(rows["a2_2"].to_numpy(), rows["a1_2"].to_numpy(), rows["a2"].to_numpy(),
                                rows["a1"].to_numpy())
        aligned.append(rows.with_columns(z_2=pl.col("z_2") * sign).filter(pl.Series(sign != 0)))
    stacked = pl.concat(aligned)
    places, spread = dense(np.repeat(np.arange(len(aligned)), [rows.height for rows in aligned]), stacked["at"].to_numpy(),
                           {name: stacked[name].to_numpy() for name in ("z", "z_2", "n", "n_2")}, rows=len(aligned))
    _check_blocks(np.isfinite(spread["z"]).sum(axis=1), [f"{one} and {other}" for one, other in pairs])
    return rg_regression(spread["z"], spread["z_2"], scores.l2[places], scores.w_l2[places], spread["n"],
                         spread["n_2"], scores.m)


def _h2_rows(phenotypes: Sequence[str], fit: H2Fit, schema: pa.Schema) -> pa.Table:
    """An h² batch as rows of kind h2 (method ldsc)."""
    values = {"phenotype": list(phenotypes), "method": ["ldsc"] * len(phenotypes), "h2": fit.total,
              "h2_se": fit.total_se, "n_variants": fit.n_variants, "n": fit.mean_n,
              **{name: getattr(fit, name) for name in H2_COLUMNS}}
    return pa.table({name: values[name] for name in schema.names}, schema=schema)


def _rg_rows(pairs: Sequence[tuple[tuple[str, str], tuple[str, str]]], fit: RgFit, schema: pa.Schema) -> pa.Table:
    """An rg batch as rows of kind rg."""
    values = {"result_1": [one[0] for one, _ in pairs], "phenotype_1": [one[1] for one, _ in pairs],
              "result_2": [other[0] for _, other in pairs], "phenotype_2": [other[1] for _, other in pairs],
              "rg": fit.rg, "rg_se": fit.rg_se, "z": fit.z, "p": fit.p, "gencov": fit.gencov.total,
              "gencov_se": fit.gencov.total_se, "gencov_int": fit.gencov.intercept,
              "gencov_int_se": fit.gencov.intercept_se, "n_variants": fit.n_variants}
    for trait, h2 in (("1", fit.h2_1), ("2", fit.h2_2)):
        values |= {f"h2_{trait}": h2.total, f"h2_se_{trait}": h2.total_se, f"intercept_{trait}": h2.intercept,
                   f"intercept_se_{trait}": h2.intercept_se}
    return pa.table({name: values[name] for name in schema.names}, schema=schema)


def _provenance_of(lake: Lake, name: str, *, kinds: Sequence[str], flag: str) -> dict:
    """The provenance of the results ``name``, refused unless of one of ``kinds``."""
    provenance = lake.results_provenance(name)
    if provenance.get("kind") not in kinds:
        raise BiolakeError(f"{flag} {name!r}: results of kind {provenance.get('kind')!r}; LD score regression takes "
                           f"{' or '.join(kinds)}")
    return provenance


def _provenance(kind: str, settings: LdscRequest, scores: LdScores, dropped: dict) -> dict:
    """What both jobs record: the LD scores and M used, the settings, and what munging dropped."""
    return {**provenance_header(kind, release=scores.release), "ldscores": settings.ldscores,
            "w_ldscores": settings.w_ldscores or settings.ldscores, "m_5_50": scores.m,
            "settings": asdict(settings), "munge_dropped": dropped}
