"""Canonical correlation and partial least squares between two blocks of variables, validated out of sample.

Two blocks measured on the same participants, X (n × p: the variants of a region, polygenic scores) and
Y (n × q: a group of IDPs), each column centred and scaled to unit variance (sample SD) on the participants
the model is fitted to. K pairs of components, each a weighted sum of one block's columns:

- **cca**: the first pair maximises the correlation of the two scores (classical CCA: the first singular
  vectors of Q_xᵀQ_y, Q an orthonormal basis of a block's column space; weights the minimum-norm
  combinations giving those scores). Each further pair is found the same way after each block is deflated
  by its own scores (the block less its regression on them), as scikit-learn's ``CCA`` does;
- **pls-canonical**: the same deflation, each pair maximising the covariance (the first singular vectors of
  XᵀY of the deflated blocks; scikit-learn's ``PLSCanonical``);
- **pls-svd**: the first K singular vectors of XᵀY at once, no deflation (``PLSSVD``);
- **sparse-cca**: the penalized matrix decomposition of Witten, Tibshirani & Hastie (2009, "A penalized matrix
  decomposition, with applications to sparse principal components and canonical correlation analysis",
  Biostatistics 10:515; R's PMA ``CCA``). It treats each block's covariance as the identity (so it stays
  estimable with more variables than participants) and finds unit weights u, v maximising uᵀXᵀYv under
  ‖u‖₁ ≤ c_x = max(1, s_x√p) and ‖v‖₁ ≤ c_y = max(1, s_y√q), s ∈ (0, 1] the penalty (1: none): from v the first right
  singular vector of XᵀY, alternately u ← S(XᵀYv, Δ)/‖·‖₂ and v ← S(YᵀXu, Δ)/‖·‖₂, S the soft threshold
  and Δ ≥ 0 the smallest that meets the bound (found by bisection), until v moves by less than 1e-8. Each
  further pair is found after XᵀY loses the pair's part, (uᵀXᵀYv)uvᵀ. Variables whose weight is 0 are left
  out of the pair. The penalties are chosen by cross-validation (:func:`chosen_penalty`).

Weights are unit vectors, signed so that a pair's largest X weight (in absolute value) is positive. Scores
of any participants are their scaled blocks times the rotations (weights for pls-svd; with deflation, the
weights times (PᵀW)⁻¹, P the loadings, so that new data are deflated implicitly), which is what the fit
gives on its own participants. A pair's correlation is that of its two scores.

In-sample canonical correlations are biased upwards, most when variables are many for the participants
(the review's warning about overfitting). So a fit is judged out of sample: refitted on all folds but one
and scored on the one left out (:func:`held_out_correlations`), and by permutation (:func:`permutation_p`):
the rows of Y shuffled against X and the whole model refitted, each pair's correlation compared with the
same pair's under the null.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

METHODS = ("cca", "pls-canonical", "pls-svd", "sparse-cca")
PENALTIES = (0.1, 0.3, 0.5, 0.7, 0.9)   # sparse CCA: the grid of s (both blocks) cross-validation chooses from
_RANK = 1e-10   # singular values below this share of the largest leave a (deflated) block's column space


@dataclass(frozen=True)
class Scaling:
    """A block's column means and sample SDs on the participants a model was fitted to (SD 1 for a constant)."""

    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def of(cls, block: np.ndarray) -> "Scaling":
        sd = block.std(axis=0, ddof=1)
        return cls(block.mean(axis=0), np.where(sd > 0, sd, 1.0))

    def apply(self, block: np.ndarray) -> np.ndarray:
        return (block - self.mean) / self.sd


@dataclass(frozen=True)
class BlockFit:
    """K pairs of components: each block's scaling, weights (columns × K) and rotations (what scores new data)."""

    x_scaling: Scaling
    y_scaling: Scaling
    x_weights: np.ndarray
    y_weights: np.ndarray
    x_rotations: np.ndarray
    y_rotations: np.ndarray

    def scores(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Both blocks' scores (participants × K) of any participants, with the fit's scaling."""
        return self.x_scaling.apply(x) @ self.x_rotations, self.y_scaling.apply(y) @ self.y_rotations

    def correlations(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Each pair's correlation of scores over the participants of ``x`` and ``y``."""
        return _column_correlations(*self.scores(x, y))


def fit(x: np.ndarray, y: np.ndarray, n: int, method: str = "cca", *,
        penalty: tuple[float, float] = (1.0, 1.0)) -> BlockFit:
    """``n`` pairs of components of the blocks ``x`` (participants × p) and ``y`` (participants × q), by ``method``
    (module docstring; ``penalty``: sparse CCA's s of each block).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> shared = rng.normal(size=(300, 1))
    >>> x = np.hstack([shared + rng.normal(size=(300, 1)), rng.normal(size=(300, 3))])
    >>> y = np.hstack([rng.normal(size=(300, 2)), shared + rng.normal(size=(300, 1))])
    >>> found = fit(x, y, 2)
    >>> found.x_weights[:, 0].round(2).tolist(), found.correlations(x, y).round(2).tolist()
    ([0.99, 0.08, -0.1, -0.01], [0.53, 0.13])
    """
    x_scaling, y_scaling = Scaling.of(x), Scaling.of(y)
    xk, yk = x_scaling.apply(x), y_scaling.apply(y)
    if method == "pls-svd":
        u, _, vt = np.linalg.svd(xk.T @ yk, full_matrices=False)
        signs = np.sign(u[np.argmax(np.abs(u[:, :n]), axis=0), np.arange(n)])
        x_weights, y_weights = u[:, :n] * signs, vt[:n].T * signs
        return BlockFit(x_scaling, y_scaling, x_weights, y_weights, x_weights, y_weights)
    if method == "sparse-cca":
        x_weights, y_weights = _sparse_pairs(xk.T @ yk, n, penalty)
        return BlockFit(x_scaling, y_scaling, x_weights, y_weights, x_weights, y_weights)
    pairs = [], [], [], []                                  # weights and loadings of each block
    for _ in range(n):
        u, v = _first_pair(xk, yk, method)
        sign = np.sign(u[np.argmax(np.abs(u))])
        u, v = u * sign, v * sign
        for block, weights, (kept_weights, kept_loadings) in ((xk, u, pairs[:2]), (yk, v, pairs[2:])):
            scores = block @ weights
            loadings = scores @ block / (scores @ scores) if scores.any() else np.zeros(block.shape[1])
            block -= np.outer(scores, loadings)
            kept_weights.append(weights)
            kept_loadings.append(loadings)
    x_weights, x_loadings, y_weights, y_loadings = (np.column_stack(kept) for kept in pairs)
    return BlockFit(x_scaling, y_scaling, x_weights, y_weights,
                    x_weights @ np.linalg.pinv(x_loadings.T @ x_weights),
                    y_weights @ np.linalg.pinv(y_loadings.T @ y_weights))


def held_out_correlations(x: np.ndarray, y: np.ndarray, n: int, method: str, folds: np.ndarray, *,
                          penalty: tuple[float, float] | None = (1.0, 1.0)) -> np.ndarray:
    """Each pair's correlation on each fold's participants (folds × n) of the model fitted to the others;
    ``folds``: each participant's fold (0 … k − 1). Sparse CCA with ``penalty`` None chooses its penalties within
    each fit, by cross-validation over the other folds (nested: the fold scored takes no part in the choice)."""
    def fitted(train: np.ndarray) -> BlockFit:
        chosen = penalty if penalty is not None else chosen_penalty(
            x[train], y[train], folds[train] - (folds[train] > folds[~train][0]))
        return fit(x[train], y[train], n, method, penalty=chosen)

    return np.array([fitted(folds != fold).correlations(x[folds == fold], y[folds == fold])
                     for fold in range(int(folds.max()) + 1)])


def chosen_penalty(x: np.ndarray, y: np.ndarray, folds: np.ndarray,
                   grid: tuple[float, ...] = PENALTIES) -> tuple[float, float]:
    """Sparse CCA's penalties (s_x, s_y), each from ``grid``, whose first pair correlates best on the folds left
    out, on average (Witten et al. 2009 choose them so, by permutations or cross-validation).

    >>> rng = np.random.default_rng(5)
    >>> shared = rng.normal(size=200)
    >>> x = rng.normal(size=(200, 30)); x[:, :3] += shared[:, None]
    >>> y = rng.normal(size=(200, 20)); y[:, :2] += shared[:, None]
    >>> chosen_penalty(x, y, np.arange(200) % 5)   # few variables carry the signal: strong penalties
    (0.3, 0.3)
    """
    scores = {(sx, sy): held_out_correlations(x, y, 1, "sparse-cca", folds, penalty=(sx, sy))[:, 0].mean()
              for sx in grid for sy in grid}
    return max(scores, key=lambda penalty: scores[penalty])


def permutation_p(x: np.ndarray, y: np.ndarray, n: int, method: str, permutations: int, rng: np.random.Generator,
                  *, penalty: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Each pair's permutation p-value, step by step (Winkler et al. 2020, "Permutation inference for canonical
    correlation analysis", NeuroImage 220:117065): pair k's statistic is the first pair's correlation of the blocks
    with the fit's first k − 1 pairs' scores regressed out of their own block (so a strong first pair does not
    count as evidence for the second), compared with the same on ``permutations`` refits with Y's rows shuffled
    (the whole model: scaling, fit); p = (1 + as many as the observed) / (1 + permutations), and never below the
    previous pair's. A CCA refit is exact and cheap: its first correlation is the largest singular value of
    Q_xᵀQ_y (Q a block's orthonormal basis; what the deflated fit gives, to rounding), shuffling rows changes no
    scaling and shuffles Q_y's rows, so a refit is one product and one SVD of a p × q matrix."""
    x_scores, y_scores = fit(x, y, n, method, penalty=penalty).scores(x, y)
    p = np.empty(n)
    for k in range(n):
        statistic = _first_correlation(_without(x, x_scores[:, :k]), _without(y, y_scores[:, :k]), method, penalty)
        observed = statistic(np.arange(len(y)))
        reached = sum(statistic(rng.permutation(len(y))) >= observed - 1e-12 for _ in range(permutations))
        p[k] = (1 + reached) / (1 + permutations)
    return np.maximum.accumulate(p)


def residualized(block: np.ndarray, basis: np.ndarray, fitted: np.ndarray | None = None) -> np.ndarray:
    """``block`` less its least-squares fit on ``basis`` (an intercept among its columns), the slopes estimated on
    the ``fitted`` rows (default: all) and applied to every row, so that rows set apart take no part in them.

    >>> residualized(np.array([[1.0], [2.0], [4.0]]), np.ones((3, 1)), np.array([True, True, False])).round(6).tolist()
    [[-0.5], [0.5], [2.5]]
    """
    rows = slice(None) if fitted is None else fitted
    return block - basis @ np.linalg.lstsq(basis[rows], block[rows], rcond=None)[0]


def _without(block: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """``block`` less its least-squares fit on an intercept and ``scores``."""
    return residualized(block, np.column_stack([np.ones(len(block)), scores]))


def _first_correlation(x: np.ndarray, y: np.ndarray, method: str,
                       penalty: tuple[float, float]) -> Callable[[np.ndarray], float]:
    """The first pair's correlation of ``x`` and ``y`` with Y's rows in a given order, refitted each time."""
    if method == "cca":
        x_basis, y_basis = (_basis(Scaling.of(block).apply(block))[0] for block in (x, y))
        return lambda rows: float(np.linalg.svd(x_basis.T @ y_basis[rows], compute_uv=False)[0])
    return lambda rows: float(fit(x, y[rows], 1, method, penalty=penalty).correlations(x, y[rows])[0])


@dataclass(frozen=True)
class Stability:
    """Each weight's bootstrap standard error and the share of bootstrap refits giving it the fit's sign (for a
    weight sparse CCA sets to 0: the share of refits leaving it out too), per block: columns × pairs."""

    x_se: np.ndarray
    y_se: np.ndarray
    x_same_sign: np.ndarray
    y_same_sign: np.ndarray


def bootstrap_stability(x: np.ndarray, y: np.ndarray, reference: BlockFit, method: str, bootstraps: int,
                        rng: np.random.Generator, *, penalty: tuple[float, float] = (1.0, 1.0)) -> Stability:
    """How stable ``reference``'s weights are: participants drawn with replacement ``bootstraps`` times and the
    model refitted on each draw, each pair of the refit turned to agree with the reference's (a pair's sign is
    arbitrary: the one with the larger sum of both blocks' weight products). Pairs are taken in their order: where
    two correlate about equally they may swap in a draw, which widens the later ones' SEs.

    >>> rng = np.random.default_rng(3)
    >>> shared = rng.normal(size=300)
    >>> x = rng.normal(size=(300, 3)); x[:, 0] += shared
    >>> y = rng.normal(size=(300, 2)); y[:, 0] += shared
    >>> found = fit(x, y, 1)
    >>> stability = bootstrap_stability(x, y, found, "cca", 50, rng)
    >>> stability.x_same_sign[:, 0].round(2).tolist()   # the planted variable always keeps its sign
    [1.0, 0.9, 0.64]
    """
    n = reference.x_weights.shape[1]
    draws = [], []
    for _ in range(bootstraps):
        rows = rng.integers(0, len(x), len(x))
        refit = fit(x[rows], y[rows], n, method, penalty=penalty)
        agree = ((refit.x_weights * reference.x_weights).sum(axis=0)
                 + (refit.y_weights * reference.y_weights).sum(axis=0))
        signs = np.where(agree < 0, -1.0, 1.0)
        draws[0].append(refit.x_weights * signs)
        draws[1].append(refit.y_weights * signs)
    (x_draws, y_draws) = (np.array(found) for found in draws)
    return Stability(x_draws.std(axis=0, ddof=1), y_draws.std(axis=0, ddof=1),
                     (np.sign(x_draws) == np.sign(reference.x_weights)).mean(axis=0),
                     (np.sign(y_draws) == np.sign(reference.y_weights)).mean(axis=0))


def _sparse_pairs(cross: np.ndarray, n: int, penalty: tuple[float, float], steps: int = 500,
                  tolerance: float = 1e-8) -> tuple[np.ndarray, np.ndarray]:
    """Sparse CCA's ``n`` pairs of unit weights from the blocks' cross-product XᵀY (module docstring)."""
    # a unit vector's L1 norm is at least 1 (one variable): a smaller bound is that (PMA's lower limit, 1/√p)
    bounds = max(1.0, penalty[0] * np.sqrt(cross.shape[0])), max(1.0, penalty[1] * np.sqrt(cross.shape[1]))
    cross = cross.copy()
    x_weights, y_weights = [], []
    for _ in range(n):
        v = np.linalg.svd(cross, full_matrices=False)[2][0]
        for _ in range(steps):
            u = _lasso_unit(cross @ v, bounds[0])
            moved, v = v, _lasso_unit(cross.T @ u, bounds[1])
            if np.linalg.norm(v - moved) < tolerance:
                break
        sign = np.sign(u[np.argmax(np.abs(u))])
        u, v = u * sign, v * sign
        cross -= (u @ cross @ v) * np.outer(u, v)
        x_weights.append(u)
        y_weights.append(v)
    return np.column_stack(x_weights), np.column_stack(y_weights)


def _lasso_unit(direction: np.ndarray, bound: float) -> np.ndarray:
    """S(a, Δ)/‖S(a, Δ)‖₂ for the smallest Δ ≥ 0 with an L1 norm at most ``bound`` (bisection, as PMA's)."""
    if not direction.any():   # nothing left to explain (more pairs than the blocks' shared rank)
        return direction
    unit = direction / np.linalg.norm(direction)
    if np.abs(unit).sum() <= bound:
        return unit
    low, high = 0.0, np.abs(direction).max()
    for _ in range(60):
        middle = (low + high) / 2
        shrunk = np.sign(direction) * np.maximum(np.abs(direction) - middle, 0.0)
        with np.errstate(invalid="ignore"):   # nothing left above middle (ties at the top): too far, look lower
            too_wide = np.abs(shrunk).sum() / np.linalg.norm(shrunk) > bound
        if too_wide:
            low = middle
        else:
            high = middle
    shrunk = np.sign(direction) * np.maximum(np.abs(direction) - high, 0.0)
    if not shrunk.any():   # the largest entries tie: the bound of 1 keeps one of them
        shrunk[np.argmax(np.abs(direction))] = np.sign(direction[np.argmax(np.abs(direction))])
    return shrunk / np.linalg.norm(shrunk)


def _first_pair(xk: np.ndarray, yk: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The unit weights of the first pair of the (deflated) blocks: of the largest covariance (PLS) or correlation
    (CCA) of their scores."""
    if method == "pls-canonical":
        u, _, vt = np.linalg.svd(xk.T @ yk, full_matrices=False)
        return u[:, 0], vt[0]
    (x_basis, x_inverse), (y_basis, y_inverse) = _basis(xk), _basis(yk)
    if not x_basis.shape[1] or not y_basis.shape[1]:   # a block used up (a fold's or a draw's lower rank): no pair
        return np.zeros(xk.shape[1]), np.zeros(yk.shape[1])
    u, _, vt = np.linalg.svd(x_basis.T @ y_basis, full_matrices=False)
    weights = x_inverse @ (x_basis @ u[:, 0]), y_inverse @ (y_basis @ vt[0])
    return tuple(w / np.linalg.norm(w) for w in weights)


def _basis(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis of a block's column space, and the block's pseudo-inverse (what maps a score in that
    space back to the minimum-norm weights giving it)."""
    u, s, vt = np.linalg.svd(block, full_matrices=False)
    # against the scale of a block of unit-variance columns, so that what deflation leaves of a used-up block (its
    # rounding) is no direction
    kept = s > _RANK * max(s[0] if len(s) else 0.0, np.sqrt(len(block)))
    return u[:, kept], (vt[kept].T / s[kept]) @ u[:, kept].T


def _column_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
