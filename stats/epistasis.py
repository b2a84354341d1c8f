"""SNP × SNP interaction: y ~ covariates + a + b + a·b for a candidate variant a and each partner b.

Per pair and phenotype the model is fitted by ordinary least squares on exactly the samples with the
phenotype, a call of a and a call of b. Its normal equations X'X β = X'y (X = [C, a, b, a·b], C the
covariates with the intercept) are sums over those samples, and every sum is an entry of one of three
matrix products over a block of partners: with W the partners' called-indicators, B their centred
dosages (0 where uncalled) and B² their squares, and per candidate the sample columns F (products of
covariates, a, the phenotype and its presence v),

    W F_W  (C'C, C'a, a'a, C'y, a'y, y'y, n),   B F_B  (C'b, a'b, C'ab, a'ab, b'y, ab'y),   B² F_2  (b'b, b'ab, ab'ab),

so a block of m partners costs three products of m × samples by samples × (a few columns per phenotype
missingness pattern), not m refits; then each pair's (k + 3)-square system is solved, batched. Two
transformations keep the sums well conditioned and change no interaction estimate: the covariates are
replaced by an orthonormal basis of their span, and a and b are centred (span{1, a, b, ab} is unchanged
by shifting a and b, and so is the coefficient of the product). A sample without a call of the candidate
leaves every phenotype of that candidate; one without a call of the partner leaves that pair only.

The interaction's t is ordinary least squares' (statsmodels' OLS of the same columns); plink1.9
``--epistasis`` prints its square as STAT and refers it to χ²(1). The joint test is the F of b and a·b
together given the covariates and a, on 2 and the residual degrees of freedom (REGENIE's 2-df test of a
variant and its interaction with a fixed one, ``--interaction-snp``). A pair whose design is singular on its
samples (X'X scaled to a unit diagonal with a determinant below 10⁻¹⁰) is reported collinear, one whose
partner has a single genotype on them monomorphic.

Pairs a user asks to skip are kept as rows with an error code and no numbers, so that the rows of a
scan always count its pairs: a partner on the candidate's chromosome closer than a minimum distance, or
one whose r² with the candidate (over the samples with both calls) is above a maximum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse
import scipy.special

from biolake.lake.schema import RESULTS_KINDS
from biolake.stats.association import CLOSE, COLLINEAR, ERRORS, IN_LD, MONOMORPHIC, NOT_CONVERGED, OK, \
    TOO_FEW_SAMPLES, chi2_log10p, f_log10p, p_from_log10p, t_log10p, z_log10p

LINEAR_SCHEMA = RESULTS_KINDS["epistasis"].arrow_schema(columns=["t_int", "f_joint"])   # a run of least squares only
_SINGULAR = 1e-10   # smallest determinant of a pair's X'X scaled to a unit diagonal still taken as full rank


@dataclass(frozen=True)
class PairFilter:
    """Which partners of a candidate are skipped: closer than ``min_distance`` bp on its chromosome (0: none), or
    with r² above ``max_r2`` (None: none)."""

    min_distance: int = 0
    max_r2: float | None = None


@dataclass(frozen=True)
class Phenotypes:
    """The phenotypes and covariates every candidate shares: ``values`` samples × P (centred, 0 where missing),
    ``present`` their presence (float), ``basis`` an orthonormal basis of the covariates' span (samples × k,
    the intercept's included), ``patterns``: phenotypes missing for the same samples, grouped; ``binary``: which
    are 0/1 (case/control: their full model is logistic), ``means`` what was taken off each to centre it."""

    values: np.ndarray
    present: np.ndarray
    basis: np.ndarray
    patterns: tuple[np.ndarray, ...]
    binary: np.ndarray
    means: np.ndarray

    @classmethod
    def of(cls, phenotypes: np.ndarray, covariates: np.ndarray, binary: np.ndarray | None = None) -> "Phenotypes":
        """From phenotypes (samples × P, NaN missing), covariates (samples × k, complete, intercept first) and which
        phenotypes are binary (0/1; default none).

        >>> Phenotypes.of(np.array([[1.0, 2.0], [np.nan, 3.0], [2.0, 5.0]]), np.ones((3, 1))).patterns
        (array([0]), array([1]))
        """
        present = ~np.isnan(phenotypes)
        _, group = np.unique(present.T, axis=0, return_inverse=True)
        basis, _ = np.linalg.qr(covariates)
        with np.errstate(invalid="ignore"):   # centred: y'y − β'X'y then cancels little (the intercept absorbs it)
            means = np.nanmean(phenotypes, axis=0)
        return cls(np.where(present, phenotypes - means, 0.0), present.astype(float), basis,
                   tuple(np.flatnonzero(group.ravel() == g) for g in range(group.max() + 1)),
                   np.zeros(phenotypes.shape[1], bool) if binary is None else np.asarray(binary, bool), means)


@dataclass(frozen=True)
class PairResult:
    """Per candidate × partner × phenotype: the interaction's estimate, its standard error, the joint statistic of
    the partner and the interaction together (2 df), residual degrees of freedom, the samples used and an
    :data:`ERRORS` index. Where ``logistic`` (per phenotype: a :func:`logistic_pairs` fit) the estimate is a log
    odds ratio, its ratio to the SE a z and the joint statistic Wald's χ²; elsewhere least squares' t and F."""

    beta: np.ndarray
    se: np.ndarray
    joint: np.ndarray
    dof: np.ndarray
    n: np.ndarray
    error: np.ndarray
    logistic: np.ndarray

    def statistic(self) -> np.ndarray:
        """t (least squares) or z (logistic) of the interaction."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.beta / self.se

    def log10p(self) -> np.ndarray:
        """Two-sided −log10 p of t on the residual degrees of freedom, or of z (NaN where the test did not run)."""
        statistic = self.statistic()
        return np.where(self.error != OK, np.nan, np.where(self.logistic, z_log10p(statistic),
                                                          t_log10p(statistic, np.maximum(self.dof, 1))))

    def log10p_joint(self) -> np.ndarray:
        """−log10 p of the joint F on (2, residual) degrees of freedom, or of χ²(2) (NaN where it did not run)."""
        return np.where(self.error != OK, np.nan, np.where(self.logistic, chi2_log10p(self.joint, 2),
                                                          f_log10p(self.joint, 2, np.maximum(self.dof, 1))))


def skipped_pairs(candidates: np.ndarray, positions: tuple[np.ndarray, np.ndarray], partners: np.ndarray,
                  called: np.ndarray, chrom: np.ndarray, pos: np.ndarray, pairs: PairFilter) -> np.ndarray:
    """Each pair's error code (candidates × partners): OK, CLOSE (one chromosome, closer than
    ``pairs.min_distance``) or IN_LD (r² above ``pairs.max_r2`` over the samples with both calls).
    ``candidates``: candidates × samples dosages (NaN uncalled), at ``positions`` (chromosomes, positions);
    ``partners``: partners × samples dosages, ``called`` where they have a call, at ``chrom``, ``pos``.

    Examples
    --------
    >>> a = np.array([[0.0, 1, 2, 1, 0, 2]])
    >>> partners = np.array([[0.0, 1, 2, 1, 0, 2], [2.0, 1, 0, 1, 2, 0], [1.0, 0, 1, 2, 0, 1]])
    >>> skipped_pairs(a, (np.array(["1"]), np.array([100])), partners, np.ones((3, 6), bool),
    ...               np.array(["1", "1", "2"]), np.array([100, 5000, 100]), PairFilter(1000, 0.8)).tolist()
    [[6, 7, 0]]
    """
    codes = np.full((len(candidates), len(partners)), OK)
    if pairs.max_r2 is not None and codes.size:
        a_called = (~np.isnan(candidates)).astype(float)
        a = np.nan_to_num(candidates)
        b = np.where(called, partners, 0.0)
        count, sum_a, sum_aa = (called.astype(float) @ side.T for side in (a_called, a, a * a))
        sum_b, sum_bb, sum_ab = b @ a_called.T, (b * b) @ a_called.T, b @ a.T
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = ((sum_ab - sum_a * sum_b / count) ** 2
                  / ((sum_aa - sum_a ** 2 / count) * (sum_bb - sum_b ** 2 / count))).T
        codes[np.nan_to_num(r2) > pairs.max_r2] = IN_LD
    if pairs.min_distance:
        codes[(chrom[None, :] == positions[0][:, None])
              & (np.abs(pos[None, :] - positions[1][:, None]) < pairs.min_distance)] = CLOSE
    return codes


def pair_tests(candidates: np.ndarray, partners: np.ndarray, called: np.ndarray, phenotypes: Phenotypes,
               codes: np.ndarray) -> PairResult:
    """The interaction tests of every candidate (``candidates``: candidates × samples dosages, NaN uncalled) with
    every partner (``partners``: partners × samples dosages, ``called`` where they have a call) whose code
    (``codes``: candidates × partners, :func:`skipped_pairs`) is OK, for every phenotype; the others keep their
    code and no numbers. Arrays of the result are candidates × partners × phenotypes. See the module docstring.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> a, b = rng.integers(0, 3, (2, 400)).astype(float)
    >>> y = 0.4 * a * b + rng.normal(size=400)
    >>> found = pair_tests(a[None, :], b[None, :], np.ones((1, 400), bool),
    ...                    Phenotypes.of(y[:, None], np.ones((400, 1))), np.zeros((1, 1), int))
    >>> round(float(found.beta[0, 0, 0]), 2), int(found.n[0, 0, 0])   # the a·b coefficient (0.4 planted)
    (0.41, 400)
    """
    n_candidates, m, n_phenotypes = len(candidates), len(partners), phenotypes.values.shape[1]
    shape = (n_candidates, m, n_phenotypes)
    result = PairResult(np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan),
                        np.zeros(shape, np.int64), np.zeros(shape, np.int64),
                        np.repeat(codes[:, :, None], n_phenotypes, axis=2), np.zeros(n_phenotypes, bool))
    if not (codes == OK).any():
        return result
    sums = _PairSums(candidates, partners, called, phenotypes.basis, phenotypes.values)
    for columns in phenotypes.patterns:
        gram, moments, dof, used, error = sums.normal_equations(phenotypes.present[:, columns[0]], columns)
        error = np.where(codes == OK, error, codes)
        tested = error == OK
        gram[~tested] = np.eye(gram.shape[-1])
        beta, se, f_joint, flat = _solve(gram, moments, dof)
        for j, column in enumerate(columns):
            error_j = np.where(tested & flat[..., j], TOO_FEW_SAMPLES, error)   # the phenotype constant there
            result.beta[..., column] = np.where(tested, beta[..., j], np.nan)
            result.se[..., column] = np.where(tested, se[..., j], np.nan)
            result.joint[..., column] = np.where(tested, f_joint[..., j], np.nan)
            result.dof[..., column], result.n[..., column], result.error[..., column] = dof, used, error_j
    return result


def logistic_refit(linear: PairResult, refit: np.ndarray, candidates: np.ndarray, partners: np.ndarray,
                   called: np.ndarray, phenotypes: Phenotypes) -> PairResult:
    """``linear`` (:func:`pair_tests`) with each binary phenotype's pairs ``refit`` (candidates × partners ×
    phenotypes) fitted by logistic regression on the same samples (:func:`logistic_pairs`), their numbers
    replaced; its other pairs keep no numbers, as the rows leave them out. Arguments as :func:`pair_tests`.

    Examples
    --------
    >>> rng = np.random.default_rng(3)
    >>> a, b = rng.integers(0, 3, (2, 3000)).astype(float)
    >>> y = (rng.random(3000) < 1 / (1 + np.exp(-(-0.5 + 0.3 * a * b)))).astype(float)[:, None]
    >>> phenotypes = Phenotypes.of(y, np.ones((3000, 1)), binary=[True])
    >>> linear = pair_tests(a[None, :], b[None, :], np.ones((1, 3000), bool), phenotypes, np.zeros((1, 1), int))
    >>> fitted = logistic_refit(linear, linear.error == OK, a[None, :], b[None, :], np.ones((1, 3000), bool),
    ...                         phenotypes)
    >>> round(float(fitted.beta[0, 0, 0]), 2), bool(fitted.logistic[0])   # the log odds ratio of a·b (0.3 planted)
    (0.31, True)
    """
    result = PairResult(*(np.array(values, copy=True) for values in (linear.beta, linear.se, linear.joint,
                                                                     linear.dof, linear.n, linear.error)),
                        linear.logistic | phenotypes.binary)
    for column in np.flatnonzero(phenotypes.binary):
        which = np.nonzero(refit[..., column] & (linear.error[..., column] == OK))
        beta, se, joint, error = logistic_pairs(candidates, partners, called, phenotypes, column, which)
        for values in (result.beta, result.se, result.joint):
            values[..., column] = np.nan
        result.beta[(*which, column)], result.se[(*which, column)] = beta, se
        result.joint[(*which, column)], result.error[(*which, column)] = joint, error
        result.dof[(*which, column)] = result.n[(*which, column)] - (phenotypes.basis.shape[1] + 3)
    return result


_LOGISTIC_STEPS = 50       # Newton's steps before a fit is called not converged (an infinite estimate: separation)
_LOGISTIC_EXACT = 1e-10    # a fit has converged when Σ|Δβ| is below this
_LOGISTIC_VALUES = 1 << 23  # values of the pairs' designs (pairs × samples × columns) fitted at once (64 MiB)


def logistic_pairs(candidates: np.ndarray, partners: np.ndarray, called: np.ndarray, phenotypes: Phenotypes,
                   column: int, which: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, ...]:
    """Logistic regression y ~ covariates + a + b + a·b of the binary phenotype ``column`` for the pairs ``which``
    (candidate rows, partner rows), each on the samples with the phenotype and both calls: the interaction's log
    odds ratio, its SE, Wald's χ² of b and a·b together (2 df), and an :data:`ERRORS` index per pair.

    Newton's method from β = 0 for a batch of pairs at once, each step one batched X'WX and solve, until Σ|Δβ| <
    1e-10 (NOT_CONVERGED after 50 steps: an estimate that runs off to infinity, as under separation); the SE from
    the inverse information at the estimate. As in :func:`pair_tests` the covariates are an orthonormal basis of
    their span and a, b are centred, which changes neither the interaction's estimate nor its SE. A pair whose
    samples hold no case or no control is TOO_FEW_SAMPLES.
    """
    basis = phenotypes.basis
    n, k = basis.shape
    present = phenotypes.present[:, column] > 0
    y = np.where(present, phenotypes.values[:, column] + phenotypes.means[column], 0.0)
    a_called = ~np.isnan(candidates)
    with np.errstate(invalid="ignore"):
        a_all = np.where(a_called, candidates - np.nanmean(candidates, axis=1, keepdims=True), 0.0)
        b_all = np.where(called, partners - (np.where(called, partners, 0.0).sum(axis=1)
                                             / called.sum(axis=1))[:, None], 0.0)
    pairs = len(which[0])
    beta, se, joint = np.full(pairs, np.nan), np.full(pairs, np.nan), np.full(pairs, np.nan)
    error = np.full(pairs, OK)
    batch = max(1, _LOGISTIC_VALUES // (n * (k + 3)))
    for start in range(0, pairs, batch):
        rows = slice(start, start + batch)
        i, m = which[0][rows], which[1][rows]
        used = (present & a_called[i] & called[m]).astype(float)
        a, b = a_all[i], b_all[m]
        design = np.concatenate([np.broadcast_to(basis, (len(i), n, k)), a[..., None], b[..., None],
                                 (a * b)[..., None]], axis=2)
        cases = (used * y).sum(axis=1)
        fitted = _newton(design, y, used)
        beta[rows], se[rows], joint[rows], error[rows] = fitted
        error[rows] = np.where((cases == 0) | (cases == used.sum(axis=1)), TOO_FEW_SAMPLES, error[rows])
    return beta, se, joint, error


def _newton(design: np.ndarray, y: np.ndarray, used: np.ndarray) -> tuple[np.ndarray, ...]:
    """Logistic fits of y on each pair's ``design`` (pairs × samples × p) over its ``used`` samples (pairs ×
    samples, 0/1): the last coefficient, its SE, Wald's χ² of the last two, an :data:`ERRORS` index each."""
    pairs, _, p = design.shape
    coefficients = np.zeros((pairs, p))
    inverse = np.zeros((pairs, p, p))
    error = np.full(pairs, NOT_CONVERGED)
    active = np.arange(pairs)
    for _ in range(_LOGISTIC_STEPS):
        x = design[active]
        fitted = scipy.special.expit(np.einsum("snp,sp->sn", x, coefficients[active]))
        weighted = x * (fitted * (1 - fitted) * used[active])[..., None]
        information = weighted.swapaxes(1, 2) @ x
        score = np.einsum("snp,sn->sp", x, (y - fitted) * used[active])
        with np.errstate(invalid="ignore", divide="ignore"):
            inverse[active] = _inverses(information)
        step = np.einsum("spq,sq->sp", inverse[active], score)
        coefficients[active] += step
        size = np.abs(step).sum(axis=1)
        error[active[size < _LOGISTIC_EXACT]] = OK
        active = active[np.isfinite(size) & (size >= _LOGISTIC_EXACT)]
        if not active.size:
            break
    last = coefficients[:, -2:, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        se = np.sqrt(inverse[:, -1, -1])
        joint = (last.swapaxes(1, 2) @ _inverses(inverse[:, -2:, -2:]) @ last)[:, 0, 0]
    return coefficients[:, -1], se, joint, error


def _inverses(matrices: np.ndarray) -> np.ndarray:
    """The inverse of each matrix (… × p × p), NaN for those that are singular (batched while none is)."""
    try:
        return np.linalg.inv(matrices)
    except np.linalg.LinAlgError:
        return np.array([np.linalg.inv(matrix) if np.linalg.matrix_rank(matrix) == len(matrix)
                         else np.full(matrix.shape, np.nan) for matrix in matrices])


class _PairSums:
    """The sums of every candidate × partner pair's normal equations (see the module docstring).

    A sum over the samples a partner has a call of is the sum over all samples less the few it lacks (a sparse
    product with its missing calls); a sum involving the partner's dosage is a dense product with B (its centred
    dosages, 0 where uncalled) or B². The phenotype columns (0 where missing) are summed for every phenotype at
    once; the genotype-only ones once over all samples, then per missingness pattern less its absent samples.
    Arrays are candidates × partners × columns.
    """

    def __init__(self, candidates: np.ndarray, partners: np.ndarray, called: np.ndarray, basis: np.ndarray,
                 values: np.ndarray) -> None:
        n, k = basis.shape
        self.shape, self.k, self.basis = (len(candidates), len(partners)), k, basis
        self.upper = np.triu_indices(k)
        with np.errstate(invalid="ignore"):
            means = np.where(called, partners, 0.0).sum(axis=1) / called.sum(axis=1)
        self.centred = np.where(called, partners - means[:, None], 0.0)                    # B
        self.squared = self.centred * self.centred                                          # B²
        self.missing = scipy.sparse.csr_array((~called).astype(float))
        # samples × C, C-contiguous: the columns built from them are then reshaped for the products without a copy
        self.calls = np.ascontiguousarray((~np.isnan(candidates)).T, dtype=float)           # u
        with np.errstate(invalid="ignore"):
            self.a = np.where(self.calls > 0, np.ascontiguousarray(
                (candidates - np.nanmean(candidates, axis=1, keepdims=True)).T), 0.0)
        u, a, y = self.calls[:, :, None], self.a[:, :, None], values[:, None, :]
        self.by_phenotype = np.concatenate([                                                 # C'y, a'y, y'y
            self.over_calls((basis[:, None, :, None] * y[:, :, None, :] * u[..., None]).reshape(n, -1,
                                                                                                 k * values.shape[1])),
            self.over_calls(a * y), self.over_calls(u * y * y)], axis=2)
        self.by_phenotype_b = self.product(self.centred, np.concatenate([u * y, a * y], axis=2))   # b'y, ab'y
        self.on_b = np.concatenate([basis[:, None, :] * u, a, basis[:, None, :] * a, a * a, u], axis=2)
        self.on_squared = np.concatenate([u, a, a * a], axis=2)
        self.by_b, self.by_squared = self.product(self.centred, self.on_b), self.product(self.squared, self.on_squared)

    def over_calls(self, columns: np.ndarray) -> np.ndarray:
        """Σ over the samples each partner has a call of: ``columns`` samples × C × j → C × partners × j."""
        flat = columns.reshape(len(columns), -1)
        found = flat.sum(axis=0)[None, :] - self.missing @ flat
        return found.reshape(self.shape[1], self.shape[0], -1).swapaxes(0, 1)

    def product(self, partner_side: np.ndarray, columns: np.ndarray) -> np.ndarray:
        """``partner_side`` (partners × samples) by ``columns`` (samples × C × j) → C × partners × j."""
        found = partner_side @ columns.reshape(len(columns), -1)
        return found.reshape(self.shape[1], self.shape[0], -1).swapaxes(0, 1)

    def normal_equations(self, present: np.ndarray, columns: np.ndarray) -> tuple[np.ndarray, ...]:
        """X'X (C × m × p × p) and [X'y, y'y] (C × m × (p + 1) × q) of the phenotypes ``columns``, present on the
        samples ``present``, with each pair's residual degrees of freedom, samples used and error code."""
        k, (n_candidates, m), upper = self.k, self.shape, self.upper
        p, n_phenotypes = k + 3, self.by_phenotype_b.shape[2] // 2
        absent = np.flatnonzero(present == 0)
        basis = self.basis
        u, a = (values[:, :, None] * present[:, None, None] for values in (self.calls, self.a))
        by_w = self.over_calls(np.concatenate([(basis[:, upper[0]] * basis[:, upper[1]])[:, None, :] * u,
                                               basis[:, None, :] * a, a * a, u, a], axis=2))
        by_b, by_2 = self.by_b, self.by_squared
        if len(absent):
            by_b = by_b - self.product(self.centred[:, absent], self.on_b[absent])
            by_2 = by_2 - self.product(self.squared[:, absent], self.on_squared[absent])
        gram = np.zeros((n_candidates, m, p, p))
        at = len(upper[0])
        gram[..., upper[0], upper[1]] = by_w[..., :at]                  # C'C
        gram[..., :k, k] = by_w[..., at:at + k]                         # C'a
        gram[..., k, k] = by_w[..., at + k]                             # a'a
        used = np.rint(by_w[..., at + k + 1]).astype(np.int64)         # samples
        gram[..., :k, k + 1] = by_b[..., :k]                            # C'b
        gram[..., k, k + 1] = by_b[..., k]                              # a'b
        gram[..., :k, k + 2] = by_b[..., k + 1:2 * k + 1]               # C'ab
        gram[..., k, k + 2] = by_b[..., 2 * k + 1]                      # a'ab
        gram[..., k + 1, k + 1], gram[..., k + 1, k + 2], gram[..., k + 2, k + 2] = np.moveaxis(by_2, -1, 0)
        gram = gram + np.triu(gram, 1).swapaxes(-1, -2)
        c_y = self.by_phenotype[..., :k * n_phenotypes].reshape(n_candidates, m, k, n_phenotypes)[..., columns]
        a_y = self.by_phenotype[..., k * n_phenotypes:(k + 1) * n_phenotypes][..., columns]
        y_y = self.by_phenotype[..., (k + 1) * n_phenotypes:][..., columns]
        b_y = self.by_phenotype_b[..., :n_phenotypes][..., columns]
        ab_y = self.by_phenotype_b[..., n_phenotypes:][..., columns]
        moments = np.concatenate([c_y, a_y[..., None, :], b_y[..., None, :], ab_y[..., None, :], y_y[..., None, :]],
                                 axis=2)
        dof = used - p
        scale = np.sqrt(np.maximum(np.diagonal(gram, axis1=-2, axis2=-1), 1e-300))
        # unit diagonal: the determinant is at most 1, and about the smallest eigenvalue when that is small
        determinant = np.linalg.det(gram / scale[..., :, None] / scale[..., None, :])
        error = np.full((n_candidates, m), OK)
        error[~(determinant >= _SINGULAR)] = COLLINEAR
        with np.errstate(divide="ignore", invalid="ignore"):   # each variant's sum of squares about its mean there
            spread_a = gram[..., k, k] - by_w[..., at + k + 2] ** 2 / used
            spread_b = gram[..., k + 1, k + 1] - by_b[..., 2 * k + 2] ** 2 / used
        error[~(np.minimum(spread_a, spread_b) > 1e-9 * used)] = MONOMORPHIC   # a or b constant on the pair's samples
        error[dof < 1] = TOO_FEW_SAMPLES
        return gram, moments, dof, used, error


def _solve(gram: np.ndarray, moments: np.ndarray, dof: np.ndarray) -> tuple[np.ndarray, ...]:
    """The interaction's β and standard error, the F statistic of b and a·b together, and whether the phenotype is
    fitted exactly (constant on the pair's samples: its residual sum of squares below 1e-10 of its own), per pair
    and phenotype (… × q) from X'X (… × p × p), [X'y, y'y] (… × (p + 1) × q) and the residual degrees of freedom
    (…). The F is the Wald statistic β₂'V⁻¹β₂ / 2σ̂² of the last two coefficients β₂ (V their block of (X'X)⁻¹):
    in least squares it equals the F of the nested models' residual sums of squares."""
    p = gram.shape[-1]
    unit = np.broadcast_to(np.eye(p)[:, -2:], (*gram.shape[:-2], p, 2))
    solved = np.linalg.solve(gram, np.concatenate([moments[..., :p, :], unit], axis=-1))
    beta, block = solved[..., :-2], solved[..., -2:, -2:]           # β per phenotype, (X'X)⁻¹ at b and a·b
    residual = moments[..., p, :] - np.einsum("...iq,...iq->...q", beta, moments[..., :p, :])
    last = beta[..., -2:, :]
    quadratic = np.einsum("...iq,...iq->...q", last, np.linalg.solve(block, last))
    with np.errstate(invalid="ignore", divide="ignore"):
        variance = np.maximum(residual, 0.0) / dof[..., None]
        se = np.sqrt(variance * block[..., -1, -1, None])
        f_joint = quadratic / (2 * variance)
    return beta[..., -1, :], se, f_joint, ~(residual > 1e-10 * moments[..., p, :])


def epistasis_table(candidates: pa.Table, partners: pa.Table, result: PairResult, wanted: np.ndarray, *,
                    phenotypes: list[str], schema: pa.Schema = LINEAR_SCHEMA) -> pa.Table:
    """The ``wanted`` pairs (candidates × partners) as rows, phenotype-major, then candidate, then partner: both
    variants' ids, positions and alleles (the partner's chromosome and position as ``chrom`` and ``pos``), and the
    interaction's estimate, error and tests, as ``schema`` (``RESULTS_KINDS["epistasis"]``: t_int and f_joint for
    least squares, z_int and chisq_joint for logistic fits, as the run has them). ``candidates`` and ``partners``:
    variant_id, chrom, pos, ref and alt.

    Examples
    --------
    >>> rng = np.random.default_rng(7)
    >>> a, b = rng.integers(0, 3, (2, 400)).astype(float)
    >>> y = (0.4 * a * b + rng.normal(size=400))[:, None]
    >>> result = pair_tests(a[None, :], b[None, :], np.ones((1, 400), bool), Phenotypes.of(y, np.ones((400, 1))),
    ...                     np.zeros((1, 1), int))
    >>> variant = lambda name, pos: pa.table({"variant_id": [name], "chrom": ["1"], "pos": [pos], "ref": ["C"],
    ...                                       "alt": ["T"]})
    >>> row = epistasis_table(variant("rs1", 100), variant("rs2", 900), result, np.ones((1, 1), bool),
    ...                       phenotypes=["y"]).to_pylist()[0]
    >>> row["variant_id_a"], row["variant_id_b"], round(row["beta_int"], 2), row["n"]
    ('rs1', 'rs2', 0.41, 400)
    """
    which_a, which_b = np.nonzero(wanted)
    n_phenotypes = len(phenotypes)

    def per_pair(values: np.ndarray) -> pa.Array:     # candidates × partners × phenotypes → the rows
        return pa.array(values[which_a, which_b].T.ravel(), from_pandas=True)

    def repeated(table: pa.Table, rows: np.ndarray, name: str) -> pa.Array:
        return table.column(name).take(pa.array(np.tile(rows, n_phenotypes))).combine_chunks()

    log10p, log10p_joint = result.log10p(), result.log10p_joint()
    ran = result.error == OK
    linear, logistic = ran & ~result.logistic, ran & result.logistic
    data = {"phenotype": pa.array(np.repeat(np.asarray(phenotypes, dtype=object), len(which_a)), pa.string()),
            **{f"{name}_a": repeated(candidates, which_a, name)
               for name in ("variant_id", "chrom", "pos", "ref", "alt")},
            **{(name if name in ("chrom", "pos") else f"{name}_b"): repeated(partners, which_b, name)
               for name in ("variant_id", "chrom", "pos", "ref", "alt")},
            "n": per_pair(np.where(ran, result.n, 0)), "beta_int": per_pair(np.where(ran, result.beta, np.nan)),
            "se_int": per_pair(np.where(ran, result.se, np.nan)),
            "t_int": per_pair(np.where(linear, result.statistic(), np.nan)),
            "z_int": per_pair(np.where(logistic, result.statistic(), np.nan)),
            "p_int": per_pair(p_from_log10p(log10p)), "log10p_int": per_pair(log10p),
            "f_joint": per_pair(np.where(linear, result.joint, np.nan)),
            "chisq_joint": per_pair(np.where(logistic, result.joint, np.nan)),
            "p_joint": per_pair(p_from_log10p(log10p_joint)), "log10p_joint": per_pair(log10p_joint),
            "error": pa.array(np.array(ERRORS, dtype=object)[result.error[which_a, which_b].T.ravel()], pa.string())}
    return pa.table({field.name: data[field.name].cast(field.type) for field in schema}, schema=schema)
