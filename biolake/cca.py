"""The cca job: two blocks queried from the lake → canonical correlation or PLS, judged out of sample.

Y is the design's phenotypes (``--y-sql``: a group of IDPs), X any SQL returning participant_id and one column
per variable (polygenic scores from ``results``, or variants pivoted from the ``dosages`` view). Participants
missing a Y value, or without an X row, are left out and counted; a missing X value (an uncalled genotype) is
the column's mean, as plink's ``--score`` fills it, and counted. Covariates, if any, are regressed out of both
blocks. With ``--test-sql`` those participants (a held-out site) are set apart: the model is fitted to the
others and scored on them. On the participants it is fitted to, each pair's correlation is reported in
sample, over k folds (refitted without each, scored on it: :func:`biolake.stats.cca.held_out_correlations`),
and by permutation (:func:`biolake.stats.cca.permutation_p`).

Two tables: ``LAKE/results/NAME`` (kind ``cca``: a row per pair of components) and ``NAME_weights`` (kind
``cca_weights``: a row per variable of either block, a column per component).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from biolake.frame import DesignReport, JobRequest, provenance
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect
from biolake.queries.blocks import listed_dosages
from biolake.queries.sql import LakeConnection
from biolake.run import publish_table
from biolake.stats.cca import METHODS, PENALTIES, bootstrap_stability, chosen_penalty, fit, held_out_correlations, \
    permutation_p, residualized

WEIGHTS = "_weights"   # the weights table's name: the run's, with this after it
MIN_FOLD = 3           # participants a fold must hold at least (a correlation of fewer says nothing)


@dataclass(frozen=True, kw_only=True)
class CcaSettings(JobRequest):
    """Y (``phenotypes``: SQL or columns of idps), X (``x_sql``: a column per variable; or ``x_variants``: SQL
    returning the variant_id of variants, their dosages the columns), how many pairs (``n``) by which ``method``,
    ``folds`` for the held-out correlations, ``permutations`` for the p-values (0: none), the participants set
    apart for testing (``test_sql``: SQL returning participant_id), the ``seed`` of folds, permutations and
    bootstraps, sparse CCA's ``penalty`` (s of X and Y; None: chosen by cross-validation over the folds), and
    how many ``bootstraps`` give the weights' stability (0: none)."""

    phenotypes: str | list[str]
    x_sql: str | None = None
    x_variants: str | None = None
    n: int = 2
    method: str = "cca"
    folds: int = 5
    permutations: int = 1000
    test_sql: str | None = None
    seed: int = 0
    penalty: tuple[float, float] | None = None   # sparse-cca: s of X and Y (None: chosen by cross-validation)
    bootstraps: int = 100

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.x_sql is None) == (self.x_variants is None):
            raise BiolakeError("give block X by --x-sql (participant_id, then a column per variable) or by "
                               "--x-variants (SQL returning the variant_id of the variants whose dosages it holds)")
        if self.method not in METHODS:
            raise BiolakeError(f"--method {self.method!r}: one of {', '.join(METHODS)}")
        if self.n < 1 or self.folds < 2 or self.permutations < 0 or self.bootstraps < 0 or self.bootstraps == 1:
            raise BiolakeError(f"--n {self.n}, --folds {self.folds}, --permutations {self.permutations}, --bootstraps "
                               f"{self.bootstraps}: at least 1 pair, 2 folds, 0 permutations, and 0 or 2 bootstraps")
        if self.transform is not None:
            raise BiolakeError("--transform rank-normalises phenotypes for a test; transform the blocks in their SQL")
        if self.penalty is not None and (self.method != "sparse-cca" or not all(0 < s <= 1 for s in self.penalty)):
            raise BiolakeError(f"--penalty {','.join(f'{s:g}' for s in self.penalty)}: sparse-cca's s of X and of "
                               "Y, each in (0, 1] (1: no penalty)")


@dataclass(frozen=True, kw_only=True)
class CcaReport(DesignReport):
    """What a cca run wrote: per pair its correlation in sample, held out (mean over folds) and on the test
    participants, its permutation p; the blocks' sizes."""

    pairs: list[dict]
    x_columns: int
    y_columns: int


def run_cca(lake: Lake, settings: CcaSettings) -> CcaReport:
    """Fit and judge the blocks' pairs of components; commit ``LAKE/results/NAME`` and ``NAME_weights``
    (``biolake cca --help``).

    Examples
    --------
    >>> report = run_cca(Lake.open("lake"), CcaSettings(
    ...     name="cca_demo", phenotypes=["25001-2.0", "25002-2.0", "25003-2.0"], covariates=["age", "sex"],
    ...     x_sql="SELECT participant_id, age * 0 + random() AS noise_1, random() AS noise_2 FROM covariates",
    ...     n=1, permutations=19))
    >>> [sorted(pair) for pair in report.pairs][0][:4]
    ['component', 'n_test', 'n_train', 'p_permutation']
    """
    weights_name = settings.name + WEIGHTS
    for name in (settings.name, weights_name):
        lake.check_results_free(name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con)
        x_table = None if settings.x_sql is None else _query(con, settings.x_sql, "--x-sql", first="participant_id")
        variant_ids = None if settings.x_variants is None else list(dict.fromkeys(
            _query(con, settings.x_variants, "--x-variants", first="variant_id").column(0).to_pylist()))
        tested = set() if settings.test_sql is None else set(
            _query(con, settings.test_sql, "--test-sql", first="participant_id").column(0).cast(pa.string())
            .to_pylist())
        rows = {} if x_table is None else _rows(x_table)
        chosen = settings.design_less(con, chosen, {
            "no --x-sql row": [pid for pid in chosen.participant_ids if x_table is not None and pid not in rows],
            "missing a --y-sql value (CCA needs every one)": chosen.incomplete()})
    if x_table is not None:
        x_names = x_table.column_names[1:]
        if not x_names:
            raise BiolakeError("--x-sql returns participant_id and no variable: give one column per X variable")
        x = np.column_stack([x_table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
                             for name in x_names])[[rows[pid] for pid in chosen.participant_ids]]
    else:
        if not variant_ids:
            raise BiolakeError("--x-variants returned no variant_id")
        variants, dosages = listed_dosages(lake, variant_ids, release=chosen.release, n_samples=chosen.vector_length,
                                           samples=chosen.sample_index, flag="--x-variants")
        x_names, x = variants.column("variant_id").to_pylist(), dosages.T
    test = np.array([pid in tested for pid in chosen.participant_ids])
    train = ~test
    imputed = int(np.isnan(x).sum())
    x = np.where(np.isnan(x), _train_means(x[train]), x)   # the participants fitted to give every estimate
    (x, x_flat), (y, y_flat) = (_residualized_flat(block, chosen.covariates, train) for block in (x, chosen.phenotypes))
    if settings.x_variants is not None and x_flat.any():   # monomorphic here, as a region's rarest often are
        example = x_names[int(np.flatnonzero(x_flat)[0])]
        warnings.warn(f"--x-variants: {x_flat.sum():,} of {len(x_names):,} variants are constant over the "
                      f"participants fitted to (e.g. {example}); left out", stacklevel=2)
        x, x_names = x[:, ~x_flat], [name for name, flat in zip(x_names, x_flat) if not flat]
        x_flat = x_flat[~x_flat]
    _check_blocks(settings, x[train], y[train], (x_names, x_flat), (chosen.phenotype_names, y_flat),
                  chosen.covariates.shape[1])
    rng = np.random.default_rng(settings.seed)
    folds = rng.permutation(np.arange(train.sum()) % settings.folds)
    penalty = (1.0, 1.0) if settings.method != "sparse-cca" else settings.penalty or chosen_penalty(
        x[train], y[train], folds)
    found = fit(x[train], y[train], settings.n, settings.method, penalty=penalty)
    in_sample = found.correlations(x[train], y[train])
    held_out = held_out_correlations(x[train], y[train], settings.n, settings.method, folds,   # chosen per fold
                                     penalty=settings.penalty if settings.method == "sparse-cca" else penalty)
    on_test = found.correlations(x[test], y[test]) if test.sum() > 2 else np.full(settings.n, np.nan)
    p = (permutation_p(x[train], y[train], settings.n, settings.method, settings.permutations, rng, penalty=penalty)
         if settings.permutations else np.full(settings.n, np.nan))
    pairs = pa.table({"component": np.arange(1, settings.n + 1), "r": in_sample, "r_cv": held_out.mean(axis=0),
                      "r_cv_sd": held_out.std(axis=0, ddof=1),
                      "r_test": pa.array(on_test, from_pandas=True), "p_permutation": pa.array(p, from_pandas=True),
                      "x_variables": (found.x_weights != 0).sum(axis=0),
                      "y_variables": (found.y_weights != 0).sum(axis=0),
                      "n_train": np.full(settings.n, int(train.sum())), "n_test": np.full(settings.n, int(test.sum()))})
    names = [f"c{j + 1}" for j in range(settings.n)]
    columns = {name: np.vstack([found.x_weights, found.y_weights])[:, j] for j, name in enumerate(names)}
    if settings.bootstraps:
        stability = bootstrap_stability(x[train], y[train], found, settings.method, settings.bootstraps, rng,
                                        penalty=penalty)
        for j, name in enumerate(names):
            columns[f"{name}_se"] = np.concatenate([stability.x_se[:, j], stability.y_se[:, j]])
            columns[f"{name}_same_sign"] = np.concatenate([stability.x_same_sign[:, j], stability.y_same_sign[:, j]])
    weights = pa.table({"block": ["x"] * len(x_names) + ["y"] * len(chosen.phenotype_names),
                        "variable": x_names + chosen.phenotype_names, **columns})
    record = provenance("cca", settings, chosen, method=settings.method, x_sql=settings.x_sql,
                        x_variants=settings.x_variants,
                        test_sql=settings.test_sql, folds=settings.folds, permutations=settings.permutations,
                        seed=settings.seed, bootstraps=settings.bootstraps, x_values_imputed=imputed,
                        **({"penalty": {"x": penalty[0], "y": penalty[1], "chosen_by": "given" if settings.penalty
                                        else f"{settings.folds}-fold cross-validation over {list(PENALTIES)}"}}
                           if settings.method == "sparse-cca" else {}))
    publish_table(lake, weights_name, weights, provenance={**record, "kind": "cca_weights", "pairs": settings.name},
                  replace=settings.replace)
    version = publish_table(lake, settings.name, pairs, provenance={**record, "weights": weights_name},
                            replace=settings.replace)
    return CcaReport(name=settings.name, version=version, pairs=pairs.to_pylist(), x_columns=len(x_names),
                     y_columns=len(chosen.phenotype_names), **DesignReport.of(chosen))


def _query(con: LakeConnection, sql: str, flag: str, *, first: str) -> pa.Table:
    """The rows of one of the job's SQL, its first column named ``first``; a failing query is an error naming its
    flag."""
    try:
        table = con.sql(sql).arrow()
    except Exception as exc:   # DuckDB's errors: the message names the fault
        raise BiolakeError(f"{flag}: {str(exc).splitlines()[0]}") from None
    if not table.num_columns or table.column_names[0] != first:
        raise BiolakeError(f"{flag} must return {first} first, got {table.column_names[:3]}")
    return table


def _rows(table: pa.Table) -> dict[str, int]:
    """Each participant's row of ``--x-sql``'s table; a participant on two rows is an error."""
    ids = table.column(0).cast(pa.string()).to_pylist()
    rows = {pid: j for j, pid in enumerate(ids)}
    if len(rows) < len(ids):
        twice = next(pid for j, pid in enumerate(ids) if rows[pid] != j)
        raise BiolakeError(f"--x-sql returns participant {twice!r} on two rows; one row per participant")
    return rows


def _train_means(block: np.ndarray) -> np.ndarray:
    """Each column's mean over its values (NaN for a column of none)."""
    present = ~np.isnan(block)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(present, block, 0.0).sum(axis=0) / present.sum(axis=0)


def _residualized_flat(block: np.ndarray, covariates: np.ndarray, train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``block`` less its fit on the covariates (slopes from the ``train`` participants: those set apart take no part
    in them), and which columns that leaves no variance on ``train`` (an SD below 1e-9 of the column's own; a
    constant column among them, and a column without values)."""
    residual = residualized(block, covariates, train)
    return residual, ~(residual[train].std(axis=0) > 1e-9 * block[train].std(axis=0))


def _check_blocks(settings: CcaSettings, x: np.ndarray, y: np.ndarray, x_columns: tuple[list[str], np.ndarray],
                  y_columns: tuple[list[str], np.ndarray], covariates: int) -> None:
    """One-line errors for blocks the method cannot fit: a constant column (``*_columns``: each block's names and
    which are constant, :func:`_residualized_flat`), more pairs than a block has columns, as many variables as
    participants (less the ``covariates`` regressed out) for CCA, which has no penalty, folds too small."""
    x_flag = "--x-sql" if settings.x_sql is not None else "--x-variants"
    for (names, flat), flag in ((x_columns, x_flag), (y_columns, "--y-sql")):
        if flat.any():
            raise BiolakeError(f"{flag}: column {names[int(np.flatnonzero(flat)[0])]!r} is constant over the "
                               "participants (after the covariates); leave it out")
    if settings.n > min(x.shape[1], y.shape[1]):
        raise BiolakeError(f"--n {settings.n}: at most {min(x.shape[1], y.shape[1])} pairs of blocks of "
                           f"{x.shape[1]:,} and {y.shape[1]:,} columns")
    ranks = [np.linalg.matrix_rank((block - block.mean(axis=0)) / block.std(axis=0)) for block in (x, y)]
    if settings.n > min(ranks):
        raise BiolakeError(f"--n {settings.n}: the blocks' columns span {ranks[0]:,} and {ranks[1]:,} dimensions "
                           "(variants in complete LD, columns that sum to others, count once): at most "
                           f"{min(ranks)} pairs")
    if settings.method == "cca" and max(x.shape[1], y.shape[1]) >= len(x) - covariates:
        raise BiolakeError(f"CCA of {x.shape[1]:,} X and {y.shape[1]:,} Y variables over {len(x):,} participants "
                           "is not estimable without a penalty (as many variables as participants fit any data); "
                           "use --method sparse-cca, pls-canonical or pls-svd, or fewer variables")
    if len(x) < settings.folds * MIN_FOLD:
        raise BiolakeError(f"--folds {settings.folds}: {len(x):,} participants to fit leave fewer than {MIN_FOLD} "
                           "per fold; use fewer folds")
