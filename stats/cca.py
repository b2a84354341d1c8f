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
- **pls-svd**: the first K singular vectors of XᵀY at once, no deflation (``PLSSVD``).

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

from dataclasses import dataclass

import numpy as np

METHODS = ("cca", "pls-canonical", "pls-svd")
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


def fit(x: np.ndarray, y: np.ndarray, n: int, method: str = "cca") -> BlockFit:
    """``n`` pairs of components of the blocks ``x`` (participants × p) and ``y`` (participants × q), by ``method``
    (module docstring).

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
    pairs = [], [], [], []                                  # weights and loadings of each block
    for _ in range(n):
        u, v = _first_pair(xk, yk, method)
        sign = np.sign(u[np.argmax(np.abs(u))])
        u, v = u * sign, v * sign
        for block, weights, (kept_weights, kept_loadings) in ((xk, u, pairs[:2]), (yk, v, pairs[2:])):
            scores = block @ weights
            loadings = scores @ block / (scores @ scores)
            block -= np.outer(scores, loadings)
            kept_weights.append(weights)
            kept_loadings.append(loadings)
    x_weights, x_loadings, y_weights, y_loadings = (np.column_stack(kept) for kept in pairs)
    return BlockFit(x_scaling, y_scaling, x_weights, y_weights,
                    x_weights @ np.linalg.pinv(x_loadings.T @ x_weights),
                    y_weights @ np.linalg.pinv(y_loadings.T @ y_weights))


def held_out_correlations(x: np.ndarray, y: np.ndarray, n: int, method: str, folds: np.ndarray) -> np.ndarray:
    """Each pair's correlation on each fold's participants (folds × n) of the model fitted to the others;
    ``folds``: each participant's fold (0 … k − 1)."""
    return np.array([fit(x[folds != fold], y[folds != fold], n, method).correlations(x[folds == fold],
                                                                                      y[folds == fold])
                     for fold in range(int(folds.max()) + 1)])


def permutation_p(x: np.ndarray, y: np.ndarray, n: int, method: str, permutations: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Each pair's permutation p-value: the share of ``permutations`` refits, Y's rows shuffled against X (the
    whole model refitted: scaling, every pair, deflation), whose pair of that rank correlates as much as the
    observed one, counting the observed fit itself ((1 + as many) / (1 + permutations))."""
    observed = fit(x, y, n, method).correlations(x, y)
    reached = np.zeros(n)
    for _ in range(permutations):
        shuffled = y[rng.permutation(len(y))]
        reached += fit(x, shuffled, n, method).correlations(x, shuffled) >= observed - 1e-12
    return (1 + reached) / (1 + permutations)


def _first_pair(xk: np.ndarray, yk: np.ndarray, method: str) -> tuple[np.ndarray, np.ndarray]:
    """The unit weights of the first pair of the (deflated) blocks: of the largest covariance (PLS) or correlation
    (CCA) of their scores."""
    if method == "pls-canonical":
        u, _, vt = np.linalg.svd(xk.T @ yk, full_matrices=False)
        return u[:, 0], vt[0]
    (x_basis, x_inverse), (y_basis, y_inverse) = _basis(xk), _basis(yk)
    u, _, vt = np.linalg.svd(x_basis.T @ y_basis, full_matrices=False)
    weights = x_inverse @ (x_basis @ u[:, 0]), y_inverse @ (y_basis @ vt[0])
    return tuple(w / np.linalg.norm(w) for w in weights)


def _basis(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An orthonormal basis of a block's column space, and the block's pseudo-inverse (what maps a score in that
    space back to the minimum-norm weights giving it)."""
    u, s, vt = np.linalg.svd(block, full_matrices=False)
    kept = s > _RANK * s[0]
    return u[:, kept], (vt[kept].T / s[kept]) @ u[:, kept].T


def _column_correlations(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = a - a.mean(axis=0), b - b.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (a * b).sum(axis=0) / np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
