"""The per-sample part of heteroskedasticity-robust (sandwich) variances, compiled with numba.

Everything in a GxE fit is a matrix product except what each sample contributes to the
sandwich: its leverage hᵢ, its weight wᵢ (HC2: 1/(1−hᵢ), HC3: 1/(1−hᵢ)²) and its influence
on the tested coefficients Fᵢ = (H⁻¹D̃ᵢ)_T. numpy would make a dozen passes over
variants × samples for these; one compiled loop makes one, which is most of the run time
of a scan with few phenotypes. For variants with no missing call, :func:`fused_fit` goes
further and builds D̃ itself, one variant at a time in cache, so the whole fit after the
shared columns' part Q(Q'D) (one matrix product per chunk of variants) is one compiled
call. With many phenotypes the kernel writes the weights wᵢFᵢₐFᵢ_b and the caller
finishes with matrix products instead.
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


_VECTOR = {"reassoc", "contract"}   # sums may be reordered into SIMD lanes; nothing assumes finite values


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def _dot(x, y):  # pragma: no cover
    total = 0.0
    for i in range(x.shape[0]):
        total += x[i] * y[i]
    return total


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def _weighted_dot(w, x, y):  # pragma: no cover
    total = 0.0
    for i in range(x.shape[0]):
        total += w[i] * x[i] * y[i]
    return total


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def _add_scaled(out, c, x):  # pragma: no cover
    for i in range(out.shape[0]):
        out[i] += c * x[i]


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def _add_product(out, x, y):  # pragma: no cover
    for i in range(out.shape[0]):
        out[i] += x[i] * y[i]


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def fused_fit(g, samples, multipliers, shared_fit, y, leverage, power, tested, singular_below):  # pragma: no cover
    """Every per-sample step of a GxE fit, one variant at a time, for variants with no missing call.

    D̃ = g·m − Q(Q'D) is built per variant in buffers that stay in cache (Q(Q'D) comes in
    from one matrix product over a chunk of variants, BLAS's job), then H = D̃'D̃,
    D̃'ỹ, H⁻¹ (identity where H is singular, in correlation units), Θ = H⁻¹D̃'ỹ and the
    sandwich sums Σᵢ wᵢεᵢ²FᵢₐFᵢ_b, each step a loop over samples that compiles to SIMD:
    where numpy's route makes a dozen passes over variants × terms × samples in memory,
    this makes a few dozen over one variant's columns in cache.

    ``g``: variants × all samples; ``samples``: the pattern's positions in them;
    ``multipliers``: terms × samples; ``shared_fit``: variants × terms × samples (Q(Q'D), on
    the pattern's samples); ``y``: P × samples (Ỹ'); ``leverage``: the shared design's, per sample.
    Returns H, D̃'ỹ, H⁻¹, Θ, the sums (variants × tested pairs × P), and which variants are
    singular or have a sample fitted exactly.
    """
    variants = g.shape[0]
    terms, n = multipliers.shape
    phenotypes = y.shape[0]
    pairs = tested * (tested + 1) // 2
    gram = np.zeros((variants, terms, terms))
    cross = np.zeros((variants, terms, phenotypes))
    h_inverse = np.zeros((variants, terms, terms))
    theta = np.zeros((variants, terms, phenotypes))
    meat = np.zeros((variants, pairs, phenotypes))
    singular = np.zeros(variants, np.bool_)
    exact = np.zeros(variants, np.bool_)
    resid, influence = np.empty((terms, n)), np.empty((terms, n))
    genotype, weight, residual = np.empty(n), np.empty(n), np.empty(n)
    scaled, inverse_root = np.empty((terms, terms)), np.empty(terms)
    for v in range(variants):
        for i in range(n):
            genotype[i] = g[v, samples[i]]
        for t in range(terms):              # D̃ₜ = g·mₜ − Q(Q'D)ₜ
            row, fitted = resid[t], shared_fit[v, t]
            for i in range(n):
                row[i] = genotype[i] * multipliers[t, i] - fitted[i]
        for a in range(terms):
            for b in range(a + 1):
                gram[v, a, b] = gram[v, b, a] = _dot(resid[a], resid[b])
            for p in range(phenotypes):
                cross[v, a, p] = _dot(resid[a], y[p])
        for a in range(terms):              # to correlations: each side's 1/√Hₐₐ (a product of two
            inverse_root[a] = 1.0 / np.sqrt(max(gram[v, a, a], 1e-300))   # floors, 1e-600, underflows to 0)
        for a in range(terms):
            for b in range(terms):
                scaled[a, b] = gram[v, a, b] * inverse_root[a] * inverse_root[b]
        singular[v] = _smallest_eigenvalue(scaled) <= singular_below
        _invert(gram[v], h_inverse[v], singular[v])
        for a in range(terms):
            for p in range(phenotypes):
                total = 0.0
                for b in range(terms):
                    total += h_inverse[v, a, b] * cross[v, b, p]
                theta[v, a, p] = total
        for a in range(terms):              # Fₐ = Σ_b H⁻¹ₐ_b D̃_b
            row = influence[a]
            for i in range(n):
                row[i] = 0.0
            for b in range(terms):
                _add_scaled(row, h_inverse[v, a, b], resid[b])
        for i in range(n):                  # hᵢ = qᵢ'qᵢ + D̃ᵢ'Fᵢ, then wᵢ
            weight[i] = leverage[i]
        for a in range(terms):
            _add_product(weight, resid[a], influence[a])
        exact[v] = _leverage_weights(weight, power)
        for p in range(phenotypes):         # εᵢ = ỹᵢ − D̃ᵢ'Θ, and the pairs' sums
            for i in range(n):
                residual[i] = y[p, i]
            for c in range(terms):
                _add_scaled(residual, -theta[v, c, p], resid[c])
            for i in range(n):
                residual[i] = weight[i] * residual[i] * residual[i]
            pair = 0
            for a in range(tested):
                for b in range(a, tested):
                    meat[v, pair, p] = _weighted_dot(residual, influence[a], influence[b])
                    pair += 1
    return gram, cross, h_inverse, theta, meat, singular, exact


@numba.njit(cache=True, nogil=True)
def _smallest_eigenvalue(a):  # pragma: no cover
    """The smallest eigenvalue of a small symmetric matrix (overwritten), by cyclic Jacobi rotations:
    a few lines that compile in a blink, where numba's LAPACK bindings take seconds."""
    size = a.shape[0]
    for _ in range(50):
        off = 0.0
        for p in range(size):
            for q in range(p + 1, size):
                off += a[p, q] * a[p, q]
        if off <= 1e-300:
            break
        for p in range(size):
            for q in range(p + 1, size):
                if a[p, q] == 0.0:
                    continue
                tau = (a[q, q] - a[p, p]) / (2.0 * a[p, q])
                t = (1.0 if tau >= 0.0 else -1.0) / (abs(tau) + np.sqrt(1.0 + tau * tau))
                c = 1.0 / np.sqrt(1.0 + t * t)
                s = t * c
                for k in range(size):      # A ← JᵀAJ, columns then rows
                    akp, akq = a[k, p], a[k, q]
                    a[k, p], a[k, q] = c * akp - s * akq, s * akp + c * akq
                for k in range(size):
                    apk, aqk = a[p, k], a[q, k]
                    a[p, k], a[q, k] = c * apk - s * aqk, s * apk + c * aqk
    smallest = a[0, 0]
    for p in range(1, size):
        smallest = min(smallest, a[p, p])
    return smallest


@numba.njit(cache=True, nogil=True)
def _invert(a, out, identity):  # pragma: no cover
    """``out`` = a⁻¹ for a small nonsingular matrix, by Gauss–Jordan elimination with partial
    pivoting (or the identity, if ``identity``)."""
    size = a.shape[0]
    work = a.copy()
    for row in range(size):
        for col in range(size):
            out[row, col] = 1.0 if row == col else 0.0
    if identity:
        return
    for col in range(size):
        pivot = col
        for row in range(col + 1, size):
            if abs(work[row, col]) > abs(work[pivot, col]):
                pivot = row
        for k in range(size):
            work[col, k], work[pivot, k] = work[pivot, k], work[col, k]
            out[col, k], out[pivot, k] = out[pivot, k], out[col, k]
        scale = 1.0 / work[col, col]
        for k in range(size):
            work[col, k] *= scale
            out[col, k] *= scale
        for row in range(size):
            if row != col and work[row, col] != 0.0:
                factor = work[row, col]
                for k in range(size):
                    work[row, k] -= factor * work[col, k]
                    out[row, k] -= factor * out[col, k]


@numba.njit(cache=True, nogil=True, fastmath=_VECTOR)
def _leverage_weights(lever, power):  # pragma: no cover
    """hᵢ → wᵢ in place: 1 (HC0/HC1), 1/(1 − hᵢ) (HC2) or its square (HC3), 0 where the fit is
    exact; returns whether any is (for HC2/HC3, whose weights are then undefined)."""
    exact = False
    for i in range(lever.shape[0]):
        room = 1.0 - lever[i]
        fitted = room <= 1.0 - _FULL_LEVERAGE
        exact |= fitted
        inverse = 0.0 if fitted else 1.0 / room
        lever[i] = 1.0 if power == 0 else (inverse if power == 1 else inverse * inverse)
    return exact and power > 0
