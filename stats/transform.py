"""Phenotype transforms before a scan: the rank-based inverse-normal transform (RINT), as REGENIE applies it.

``rint``: each phenotype over its own samples (missing values stay missing), ranks with ties averaged,
then Φ⁻¹((rank − 3/8) / (n + 1/4)) (Blom's offset): REGENIE's ``--apply-rint``, and what BIG40 and ENIGMA
apply to IDPs. ``rint-residuals``: the covariates regressed out of each phenotype first (on its own
samples), then the residuals transformed; the scan adjusts for the covariates again (Sofer et al.
2019's RN-Resid-Adj, REGENIE's ``--apply-rerint-cov``).

Examples
--------
>>> import numpy as np
>>> rank_inverse_normal(np.array([[3.0], [1.0], [np.nan], [1.0]])).round(4).ravel().tolist()
[0.8694, -0.3957, nan, -0.3957]
"""

from __future__ import annotations

import numpy as np

TRANSFORMS = ("rint", "rint-residuals")
BLOM_OFFSET = 3 / 8


def rank_inverse_normal(values: np.ndarray) -> np.ndarray:
    """Each column (samples × phenotypes, NaN missing) rank-transformed to standard normal scores over its
    present values: ties get their average rank, as REGENIE's ``rint_pheno`` gives them."""
    import scipy.special   # here: every job imports this module, few transform (start-up)
    import scipy.stats

    transformed = np.full(values.shape, np.nan)
    for j, column in enumerate(values.T):
        present = ~np.isnan(column)
        ranks = scipy.stats.rankdata(column[present])   # "average": tied values share their mean rank
        transformed[present, j] = scipy.special.ndtri((ranks - BLOM_OFFSET) / (present.sum() + 1 - 2 * BLOM_OFFSET))
    return transformed


def transform_phenotypes(phenotypes: np.ndarray, covariates: np.ndarray, how: str) -> np.ndarray:
    """``phenotypes`` (samples × phenotypes, NaN missing) after the transform ``how`` (one of TRANSFORMS);
    ``covariates`` (samples × k, intercept included, complete) are what ``rint-residuals`` regresses out."""
    if how == "rint":
        return rank_inverse_normal(phenotypes)
    if how != "rint-residuals":
        raise ValueError(f"transform {how!r} is not one of {', '.join(TRANSFORMS)}")
    residuals = np.full(phenotypes.shape, np.nan)
    for j, column in enumerate(phenotypes.T):
        present = ~np.isnan(column)
        fit, *_ = np.linalg.lstsq(covariates[present], column[present], rcond=None)
        residuals[present, j] = column[present] - covariates[present] @ fit
    return rank_inverse_normal(residuals)
