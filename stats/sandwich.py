"""The per-sample part of heteroskedasticity-robust (sandwich) variances, compiled with numba.

Everything in a GxE fit is a matrix product except what each sample contributes to the
sandwich: its leverage hᵢ, its weight wᵢ (HC2: 1/(1−hᵢ), HC3: 1/(1−hᵢ)²) and its influence
on the tested coefficients Fᵢ = (H⁻¹D̃ᵢ)_T. numpy would make a dozen passes over
variants × samples for these; one compiled loop makes one, which is most of the run time
of a scan with few phenotypes. With many phenotypes the kernel writes the weights wᵢFᵢₐFᵢ_b
and the caller finishes with matrix products instead.
"""

from __future__ import annotations

import numba
import numpy as np

_FULL_LEVERAGE = 1.0 - 1e-10  # a sample the design fits exactly: HC2/HC3 are undefined


@numba.njit(cache=True, nogil=True)
def _sample_weights(resid, h_inverse, leverage, kept, power, weights, influence):  # pragma: no cover
    """One variant: wᵢ into ``weights`` (0 if dropped, −1 if fitted exactly) and Fᵢ into ``influence``.

    ``resid``: terms × samples; ``h_inverse``: terms × terms; ``leverage`` (the shared part)
    and ``kept``: samples; ``influence``: tested × samples.
    """
    terms, n = resid.shape
    tested = influence.shape[0]
    for i in range(n):
        lever = leverage[i]
        for a in range(terms):
            acc = 0.0
            for b in range(terms):
                acc += h_inverse[a, b] * resid[b, i]
            if a < tested:
                influence[a, i] = acc
            lever += resid[a, i] * acc
        room = 1.0 - lever
        if kept[i] == 0.0:
            weights[i] = 0.0
        elif power == 0:
            weights[i] = 1.0
        elif room <= 1.0 - _FULL_LEVERAGE:
            weights[i] = -1.0
        elif power == 1:
            weights[i] = 1.0 / room
        else:
            weights[i] = 1.0 / (room * room)


@numba.njit(cache=True, nogil=True)
def direct_meat(resid, h_inverse, shared_leverage, kept, y, theta, q_delta, power, tested):  # pragma: no cover
    """Σᵢ wᵢεᵢ²FᵢₐFᵢ_b per variant, tested pair (a ≤ b) and phenotype, from explicit residuals.

    ``resid``: variants × terms × samples (D̃); ``h_inverse``: variants × terms × terms;
    ``shared_leverage`` and ``kept``: variants (or 1) × samples; ``y``: samples × P (Ỹ);
    ``theta``: variants × terms × P; ``q_delta``: variants × P × samples (Qδ, the part of
    each variant's own residual phenotype that missing calls add; an empty array if none);
    ``power``: 0 (HC0/HC1), 1 (HC2) or 2 (HC3). Returns the sums and which variants have
    a sample fitted exactly.
    """
    variants, terms, n = resid.shape
    phenotypes = y.shape[1]
    meat = np.zeros((variants, tested * (tested + 1) // 2, phenotypes))
    exact = np.zeros(variants, np.bool_)
    weights, influence, residual = np.empty(n), np.empty((tested, n)), np.empty(n)
    for v in range(variants):
        _sample_weights(resid[v], h_inverse[v], shared_leverage[min(v, shared_leverage.shape[0] - 1)],
                        kept[min(v, kept.shape[0] - 1)], power, weights, influence)
        exact[v] = (weights < 0.0).any()
        for p in range(phenotypes):
            for i in range(n):
                e = y[i, p]
                for c in range(terms):
                    e -= resid[v, c, i] * theta[v, c, p]
                residual[i] = e
            if q_delta.shape[0] > 0:
                residual -= q_delta[v, p]
            pair = 0
            for a in range(tested):
                for b in range(a, tested):
                    total = 0.0
                    for i in range(n):
                        if weights[i] > 0.0:
                            total += weights[i] * residual[i] * residual[i] * influence[a, i] * influence[b, i]
                    meat[v, pair, p] = total
                    pair += 1
    return meat, exact


@numba.njit(cache=True, nogil=True)
def pair_weights(resid, h_inverse, shared_leverage, kept, power, tested):  # pragma: no cover
    """wᵢFᵢₐFᵢ_b per variant, tested pair (a ≤ b) and sample, for the matrix-product route;
    and which variants have a sample fitted exactly. Arguments as :func:`direct_meat`."""
    variants, _, n = resid.shape
    weighted = np.zeros((variants, tested * (tested + 1) // 2, n))
    exact = np.zeros(variants, np.bool_)
    weights, influence = np.empty(n), np.empty((tested, n))
    for v in range(variants):
        _sample_weights(resid[v], h_inverse[v], shared_leverage[min(v, shared_leverage.shape[0] - 1)],
                        kept[min(v, kept.shape[0] - 1)], power, weights, influence)
        exact[v] = (weights < 0.0).any()
        positive = np.maximum(weights, 0.0)
        pair = 0
        for a in range(tested):
            for b in range(a, tested):
                weighted[v, pair] = positive * influence[a] * influence[b]
                pair += 1
    return weighted, exact
