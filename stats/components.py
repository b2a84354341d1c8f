"""Imaging components of many IDPs: principal components (PCA) and independent components (FastICA).

Both start from the same matrix, participants × IDPs, each IDP centred and (by default) scaled to unit
variance (:func:`standardized`; covariates, if any, regressed out first), so that an IDP's units do not
decide its weight. A component is then a weighted sum of IDPs: its scores (one per participant) can be
analysed as a phenotype, its loadings (one per IDP) say what it is made of.

- **PCA**: the singular value decomposition X = U S Vᵀ; scores U S, loadings the rows of Vᵀ, each
  component's share of the total variance S²/ΣS². Signs as scikit-learn's ``PCA`` fixes them: each
  component's largest loading (in absolute value) is positive.
- **ICA**: FastICA (Hyvärinen 1999, "Fast and robust fixed-point algorithms for independent component
  analysis", IEEE Trans Neural Netw 10:626), the parallel algorithm with the log cosh contrast: the data
  whitened by their first K principal directions, then an unmixing matrix W from a seeded standard-normal
  start, each step W ← (W₊W₊ᵀ)^(−½) W₊ with W₊ = E[g(WX)Xᵀ] − diag E[g′(WX)] W, g = tanh, until every row
  of W turns by less than the tolerance. Sources are scaled to unit variance; the loadings are the mixing
  matrix, the IDPs' weights on each source. With the same seed, start (numpy's ``RandomState(seed).normal``)
  and whitening, it follows scikit-learn's ``FastICA(whiten="unit-variance")`` step for step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from biolake.stats.linear import Residualizer

ICA_STEPS = 200       # FastICA's most steps (scikit-learn's max_iter)
ICA_TOLERANCE = 1e-4  # it has converged when no row of W turns by more (scikit-learn's tol)


@dataclass(frozen=True)
class Components:
    """K components of P IDPs over n participants: ``scores`` n × K, ``loadings`` P × K, ``variance`` the share of
    the IDPs' total variance each component carries (PCA: S²/ΣS²; ICA, whose sources have unit variance: its
    mixing column's squared length over the total), ``steps`` the iterations taken (ICA; 0 for PCA)."""

    scores: np.ndarray
    loadings: np.ndarray
    variance: np.ndarray
    steps: int = 0


def standardized(values: np.ndarray, covariates: np.ndarray | None = None, *, scale: bool = True) -> np.ndarray:
    """``values`` (participants × IDPs, complete) less their least-squares fit on ``covariates`` (participants × k,
    an intercept among them; None: the mean alone), each column divided by its sample SD (n − 1) when ``scale``;
    NaN where the covariates leave a column no variance to scale (an SD below 1e-9 of its own before the fit).

    >>> (standardized(np.array([[1.0, 10.0], [2.0, 30.0], [3.0, 20.0]])).round(3) + 0.0).tolist()
    [[-1.0, -1.0], [0.0, 1.0], [1.0, 0.0]]
    """
    residual = Residualizer.from_covariates(np.ones((len(values), 1)) if covariates is None else covariates
                                            ).transform(values)
    if not scale:
        return residual
    spread = residual.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(spread > 1e-9 * values.std(axis=0, ddof=1), residual / spread, np.nan)


def pca(values: np.ndarray, n: int) -> Components:
    """The first ``n`` principal components of ``values`` (participants × IDPs, centred: :func:`standardized`).

    >>> rng = np.random.default_rng(0)
    >>> shared = rng.normal(size=(500, 1))
    >>> values = standardized(np.hstack([shared + 0.3 * rng.normal(size=(500, 3)), rng.normal(size=(500, 2))]))
    >>> found = pca(values, 2)
    >>> found.loadings[:, 0].round(2).tolist(), round(float(found.variance[0]), 2)   # the first: the 3 sharing
    ([0.58, 0.58, 0.58, -0.03, 0.03], 0.57)
    """
    u, s, vt = np.linalg.svd(values, full_matrices=False)
    signs = np.sign(vt[np.arange(n), np.argmax(np.abs(vt[:n]), axis=1)])
    return Components(u[:, :n] * s[:n] * signs, (vt[:n] * signs[:, None]).T, s[:n] ** 2 / (s ** 2).sum())


def fast_ica(values: np.ndarray, n: int, *, seed: int = 0) -> Components:
    """``n`` independent components of ``values`` (participants × IDPs, centred: :func:`standardized`) by FastICA
    (module docstring), from the start ``seed`` draws. ``steps`` is ICA_STEPS + 1 where it did not converge.

    >>> rng = np.random.default_rng(1)
    >>> sources = np.column_stack([np.sign(rng.normal(size=2000)), rng.uniform(-1, 1, 2000)])
    >>> values = standardized(sources @ np.array([[1.0, 0.5, 0.2], [0.3, 1.0, -0.8]]))
    >>> found = fast_ica(values, 2, seed=0)
    >>> np.abs(np.corrcoef(found.scores.T, sources.T)[:2, 2:]).max(axis=1).round(3).tolist()   # each one found
    [1.0, 1.0]
    """
    samples = len(values)
    data = values.T                                                      # IDPs × participants
    u, d = np.linalg.svd(data, full_matrices=False)[:2]
    u *= np.sign(u[0])
    whitening = (u / d).T[:n]                                            # n × IDPs
    white = whitening @ data * np.sqrt(samples)
    unmixing = _decorrelated(np.random.RandomState(seed).normal(size=(n, n)))
    steps = ICA_STEPS + 1
    for step in range(ICA_STEPS):
        g = np.tanh(unmixing @ white)
        updated = _decorrelated(g @ white.T / samples - (1 - g ** 2).mean(axis=1)[:, None] * unmixing)
        turn = np.max(np.abs(np.abs(np.einsum("ij,ij->i", updated, unmixing)) - 1))
        unmixing = updated
        if turn < ICA_TOLERANCE:
            steps = step + 1
            break
    scores = (unmixing @ whitening @ data).T
    spread = scores.std(axis=0)
    mixing = np.linalg.pinv(unmixing @ whitening / spread[:, None])       # IDPs × n
    return Components(scores / spread, mixing, (mixing ** 2).sum(axis=0) / (values ** 2).sum() * samples, steps)


def _decorrelated(matrix: np.ndarray) -> np.ndarray:
    """(W Wᵀ)^(−½) W: the rows of W made orthonormal, symmetrically (no row favoured)."""
    eigenvalues, vectors = np.linalg.eigh(matrix @ matrix.T)
    eigenvalues = np.clip(eigenvalues, np.finfo(float).tiny, None)
    return (vectors / np.sqrt(eigenvalues)) @ vectors.T @ matrix
