"""Gene × environment interaction per variant, y = Xβ + gγ + eδ + (g·e)θ + ε, robust errors in closed form.

The shared columns S (intercept, covariates, the exposures e, and with Keller's terms the
covariate × exposure products) are projected out once: Q is an orthonormal basis of S and
ỹ = y − QQ'y. Only the per-variant columns D = g·[1, e₁ … e_m (, c₁ … c_k with Keller)]
remain, and by Frisch–Waugh–Lovell the coefficients, residuals and sandwich of D are the
full regression's:

    D̃ = D − QQ'D,   H = D̃'D̃,   Θ = H⁻¹D̃'ỹ,   ε = ỹ − D̃Θ,   F = (H⁻¹D̃')_T,
    V_model = σ²(H⁻¹)_TT,   V_robust = Σᵢ wᵢ εᵢ² FᵢFᵢ',

for the tested terms T (g and g·e): θ_T = F'ỹ is linear in ỹ, so its robust variance is a
weighted sum over samples. wᵢ is 1 (HC0; HC1 scales by n/(n − p)), 1/(1 − hᵢ) (HC2) or
1/(1 − hᵢ)² (HC3), with the full design's leverage hᵢ = qᵢ'qᵢ + D̃ᵢH⁻¹D̃ᵢ' (shared part once).
Expanding εᵢ² = ỹᵢ² − 2ỹᵢ(D̃Θ)ᵢ + (D̃Θ)ᵢ², the robust variance of every phenotype comes from
three kinds of sums: Σ wFₐF_b ỹ² and Σ wFₐF_b D̃_c ỹ (matrix products with Ỹ² and Ỹ), and
Σ wFₐF_b D̃_c D̃_d (no phenotype) — so 100 phenotypes cost a few products, not a loop.

Missing phenotypes: phenotypes missing for the same samples are fitted together on exactly
their samples. A missing call drops that sample for that variant, as ``plink2 --glm`` does:
its Gram matrix of Q becomes A = I − Σ q_u q_u' over the dropped samples u, D̃ is
residualised with A⁻¹, and the variant's own residual phenotype is ỹ − Qδ with
δ = A⁻¹Q'ỹ|kept, which adds Q to the fitted part of ε: a cost proportional to the
variants with missing calls, nothing is imputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.sparse

from biolake.lake.schema import INTERACTION_TESTS, RESULTS_KINDS
from biolake.stats.association import (COLLINEAR, ERRORS, MONOMORPHIC, OK, TOO_FEW_SAMPLES, chi2_log10p, f_log10p,
                               p_from_log10p, t_log10p, z_log10p)
from biolake.stats.gwas import variant_labels
from biolake.stats.linear import Residualizer
from biolake.stats.sandwich import direct_meat, fused_fit, pair_weights

ROBUST = ("hc0", "hc1", "hc2", "hc3")
_MAX_VIF = 50.0          # per-variant column variance / variance left after the rest: plink2's --vif
_SINGULAR = 1e-10        # smallest eigenvalue (relative) of a Gram matrix still taken as full rank
_MONOMORPHIC = 1e-12
_HC_POWER = {"hc0": 0, "hc1": 0, "hc2": 1, "hc3": 2}   # wᵢ = 1/(1 − hᵢ)^power
_DIRECT_PHENOTYPES = 8        # up to this many phenotypes, explicit residuals beat the products route
_CHUNK_ELEMENTS = 1 << 22     # float64s in the largest per-chunk temporary (32 MiB); small chunks stay in cache
_CACHE_ELEMENTS = 1 << 18     # float64s of Q(Q'D) per chunk of the compiled route: 2 MiB, a core's L2 here


@dataclass(frozen=True)
class GxePattern:
    """Phenotypes missing for the same samples, with their design projected once on those samples."""

    columns: np.ndarray          # phenotype indices
    samples: np.ndarray | None   # sample indices used (None: all)
    basis: np.ndarray            # Q: samples × s, orthonormal basis of the shared columns
    multipliers: np.ndarray      # samples × q: D = g · multipliers (1, exposures, Keller's covariates)
    moment_columns: np.ndarray   # samples × 2q: the multipliers and their squares, for Σg·m and Σg·m²
    residuals: np.ndarray        # Ỹ: samples × phenotypes, shared columns projected out
    residual_squares: np.ndarray  # Ỹ²
    sum_squares: np.ndarray      # ỹ'ỹ per phenotype
    leverage: np.ndarray         # qᵢ'qᵢ per sample: the shared design's leverage


@dataclass(frozen=True)
class GxeModel:
    """Everything a block needs: the patterns, what the terms are and which errors to report.

    Build it with :func:`prepare_gxe`.
    """

    patterns: tuple[GxePattern, ...]
    n_phenotypes: int
    terms: list[str]             # per-variant terms: g, g×exposure…, g×covariate… (Keller)
    n_exposures: int             # tested terms are the first 1 + n_exposures
    n_shared: int                # s: columns of S
    robust: str
    untestable: tuple = ()       # (phenotype columns, error code, samples): too few samples, or
                                 # covariates collinear on their samples — reported, never fitted

    @property
    def n_tested(self) -> int:
        return 1 + self.n_exposures


@dataclass(frozen=True)
class WaldTests:
    """A test of several coefficients at once, model-based (F) and robust (χ²)."""

    f: np.ndarray                # variants × phenotypes
    log10p: np.ndarray
    chisq_robust: np.ndarray
    log10p_robust: np.ndarray
    df: int


@dataclass(frozen=True)
class GxeResult:
    """Per variant × phenotype: the tested coefficients, their errors and the joint tests.

    ``beta``, ``se`` and ``se_robust`` are variants × phenotypes × tested terms (g first,
    then g×each exposure). ``interaction`` tests every g×exposure term (1 df with one
    exposure, where F = t²); ``joint`` tests g and its interactions together.
    """

    beta: np.ndarray
    se: np.ndarray
    se_robust: np.ndarray
    interaction: WaldTests
    joint: WaldTests
    dof: np.ndarray              # residual degrees of freedom, n − s − q
    n: np.ndarray
    alt_freq: np.ndarray
    error: np.ndarray            # index into ERRORS

    def t(self) -> np.ndarray:
        """Model-based t of each tested term (t-distributed on ``dof``)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.beta / self.se

    def z_robust(self) -> np.ndarray:
        """Robust z of each tested term (standard normal)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return self.beta / self.se_robust

    def log10p_terms(self) -> tuple[np.ndarray, np.ndarray]:
        """−log10 p of each tested term alone: model-based (t) and robust (z)."""
        return t_log10p(self.t(), np.maximum(self.dof, 1)[..., None]), z_log10p(self.z_robust())


def prepare_gxe(phenotypes: np.ndarray, covariates: np.ndarray, *, exposures: list[int], keller: bool = False,
                robust: str = "hc3", names: list[str] | None = None) -> GxeModel:
    """Group the phenotypes by missingness and project the shared columns out of each group.

    ``phenotypes``: samples × P (NaN missing); ``covariates``: samples × k, complete, with the
    intercept first; ``exposures``: which covariate columns are the exposures e (each also
    gets its main effect, being a covariate). ``keller`` adds covariate × exposure columns
    to S and covariate × genotype columns to the per-variant design (Keller 2014). ``names``
    labels the covariate columns for the term names.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> covariates = np.column_stack([np.ones(50), rng.normal(size=(50, 2))])
    >>> model = prepare_gxe(rng.normal(size=(50, 2)), covariates, exposures=[2], keller=True,
    ...                     names=["intercept", "age", "stress"])
    >>> model.terms, model.n_shared
    (['g', 'g×stress', 'g×age'], 4)
    """
    if robust not in ROBUST:
        raise ValueError(f"robust must be one of {', '.join(ROBUST)}, got {robust!r}")
    names = names or [f"c{j}" for j in range(covariates.shape[1])]
    exposure_columns = covariates[:, exposures]
    others = [j for j in range(1, covariates.shape[1]) if j not in exposures]
    shared, multipliers = covariates, np.column_stack([np.ones(len(covariates)), exposure_columns])
    terms = ["g", *[f"g×{names[j]}" for j in exposures]]
    if keller and others:
        products = (covariates[:, others, None] * exposure_columns[:, None, :]).reshape(len(covariates), -1)
        shared = np.hstack([covariates, products])
        multipliers = np.hstack([multipliers, covariates[:, others]])
        terms += [f"g×{names[j]}" for j in others]
    present = ~np.isnan(phenotypes)
    unique, inverse = np.unique(~present.T, axis=0, return_inverse=True)
    patterns, untestable = [], []
    for index, missing_row in enumerate(unique):
        columns = np.flatnonzero(inverse.ravel() == index)
        samples = None if not missing_row.any() else np.flatnonzero(~missing_row)
        rows = slice(None) if samples is None else samples
        count = len(phenotypes) if samples is None else len(samples)
        if count <= shared.shape[1] + len(terms):   # these phenotypes' tests are reported, not fitted
            untestable.append((columns, TOO_FEW_SAMPLES, count))
            continue
        try:
            q = Residualizer.from_covariates(shared[rows]).basis
        except ValueError:
            if samples is None:
                raise ValueError("the shared columns (covariates, exposures"
                                 + (", covariate × exposure products" if keller else "") + ") are collinear") from None
            untestable.append((columns, COLLINEAR, count))
            continue
        residuals = Residualizer(q).transform(phenotypes[rows][:, columns])
        chosen = np.ascontiguousarray(multipliers[rows])
        patterns.append(GxePattern(columns, samples, q, chosen, np.hstack([chosen, chosen * chosen]), residuals,
                                   residuals * residuals, np.einsum("ij,ij->j", residuals, residuals),
                                   np.einsum("ij,ij->i", q, q)))
    return GxeModel(tuple(patterns), phenotypes.shape[1], terms, len(exposures), shared.shape[1], robust,
                    tuple(untestable))


def gxe_association(genotypes: np.ndarray, model: GxeModel, *,
                    missing: scipy.sparse.csr_array | None = None) -> GxeResult:
    """Interaction tests of every variant (rows of ``genotypes``) with every phenotype of ``model``.

    ``genotypes``: variants × samples alt dosages, 0 where a call is missing; ``missing``:
    variants × samples sparse, nonzero at those calls (dropped for that variant only).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> g = rng.integers(0, 3, size=(4, 500)).astype(float)
    >>> stress = rng.normal(size=500)
    >>> y = 0.5 * g[0] * stress + rng.normal(size=500)
    >>> model = prepare_gxe(y[:, None], np.column_stack([np.ones(500), stress]), exposures=[1])
    >>> result = gxe_association(g, model)
    >>> result.beta.shape, bool(result.interaction.log10p_robust[0, 0] > 10)
    ((4, 1, 2), True)
    """
    variants, phenotypes, tested = genotypes.shape[0], model.n_phenotypes, model.n_tested
    out = {name: np.full((variants, phenotypes, tested), np.nan) for name in ("beta", "se", "se_robust")}
    for name in ("interaction", "joint"):
        out.update({f"{name}_{kind}": np.full((variants, phenotypes), np.nan)
                    for kind in ("f", "log10p", "chisq", "log10p_robust")})
    out.update(dof=np.zeros((variants, phenotypes), np.int64), n=np.zeros((variants, phenotypes), np.int64),
               alt_freq=np.full((variants, phenotypes), np.nan),
               error=np.zeros((variants, phenotypes), np.int8))
    with_missing = (np.diff(missing.indptr) > 0) if missing is not None else np.zeros(variants, bool)
    for columns, code, count in model.untestable:
        out["error"][:, columns], out["n"][:, columns] = code, count
    complete, incomplete = np.flatnonzero(~with_missing), np.flatnonzero(with_missing)
    g_complete = g_squared = None

    def store(rows: np.ndarray, pattern: GxePattern, fit: dict[str, np.ndarray]) -> None:
        for name, values in fit.items():
            out[name][rows[:, None], pattern.columns] = values

    for pattern in model.patterns:
        n, pairs, phenotypes = len(pattern.leverage), tested * (tested + 1) // 2, len(pattern.columns)
        fused = phenotypes <= _DIRECT_PHENOTYPES
        if fused and len(complete):           # one compiled pass per variant, over every sample
            if g_complete is None:
                g_complete = np.asarray(genotypes if len(complete) == variants else genotypes[complete], np.float64)
                g_squared = g_complete * g_complete
            store(complete, pattern, _fit_complete(g_complete, g_squared, pattern, model,
                                                   _full_sample_columns(pattern, genotypes.shape[1])))
        if fused and not len(incomplete):
            continue
        block = genotypes if pattern.samples is None else genotypes[:, pattern.samples]
        dropped = basis_outer = None
        if with_missing.any():
            dropped = missing if pattern.samples is None else missing[:, pattern.samples]
            basis_outer = (pattern.basis[:, :, None] * pattern.basis[:, None, :]).reshape(len(pattern.basis), -1)
        if fused:                              # largest temporaries: D, D̃ and Qδ
            width = 2 * len(model.terms) + phenotypes
        else:                                  # the weighted products of _meat
            width = pairs * max(len(model.terms), model.n_shared)
        chunk = max(1, _CHUNK_ELEMENTS // (n * width))
        for rows in ((incomplete,) if fused else (complete, incomplete)):
            for start in range(0, len(rows), chunk):
                part = rows[start:start + chunk]
                lost = None
                if dropped is not None and with_missing[part[0]]:
                    lost = scipy.sparse.csr_array(dropped[part], dtype=np.float64)
                store(part, pattern, _fit(np.asarray(block[part], np.float64), lost, pattern, model,
                                          None if lost is None else basis_outer))
    tests = {name: WaldTests(out[f"{name}_f"], out[f"{name}_log10p"], out[f"{name}_chisq"],
                             out[f"{name}_log10p_robust"], df)
             for name, df in (("interaction", model.n_exposures), ("joint", tested))}
    return GxeResult(out["beta"], out["se"], out["se_robust"], tests["interaction"], tests["joint"],
                     out["dof"], out["n"], out["alt_freq"], out["error"])


def _full_sample_columns(pattern: GxePattern, n_samples: int) -> np.ndarray:
    """[Q ⊙ m, m, m²]: every sample × (terms·s + 2·terms), so that G·this = [Q'D, Σg·m, Σg·m²],
    zero at the samples the pattern leaves out: one product with all of G, no gather."""
    n, s = pattern.basis.shape
    terms = pattern.multipliers.shape[1]
    columns = np.hstack([(pattern.multipliers[:, :, None] * pattern.basis[:, None, :]).reshape(n, terms * s),
                         pattern.moment_columns])
    if pattern.samples is None:
        return columns
    full = np.zeros((n_samples, columns.shape[1]))
    full[pattern.samples] = columns
    return full


@dataclass(frozen=True)
class _Projected:
    """A chunk of variants' per-variant columns with the shared ones projected out, on its samples."""

    design: np.ndarray           # D: variants × terms × samples
    resid: np.ndarray            # D̃ (0 at dropped samples)
    kept: np.ndarray | None      # variants × samples, 1 where used (None: every sample used)
    used: np.ndarray             # samples used per variant
    shared_leverage: np.ndarray  # diag(QA⁻¹Q') per variant (1 × samples when nothing is dropped)
    delta: np.ndarray | None     # A⁻¹Q'ỹ over kept samples: variants × s × P (None: nothing dropped)
    sum_squares: np.ndarray      # ỹ'ỹ over kept samples: variants × P
    collinear: np.ndarray        # variants whose covariates are collinear on their kept samples


def _project(g: np.ndarray, dropped: scipy.sparse.csr_array | None, pattern: GxePattern,
             basis_outer: np.ndarray | None) -> _Projected:
    """D = g·multipliers and D̃ = D − QA⁻¹Q'D, with A = I unless calls are dropped (then A, ỹ'ỹ
    and δ are downdated by each variant's dropped samples)."""
    q_basis, y = pattern.basis, pattern.residuals
    (variants, n), s = g.shape, q_basis.shape[1]
    design = g[:, None, :] * pattern.multipliers.T[None]           # variants × terms × samples
    q_design = (design.reshape(-1, n) @ q_basis).reshape(variants, -1, s)   # Q'D: variants × terms × s
    if dropped is None:
        resid = design - (q_design.reshape(-1, s) @ q_basis.T).reshape(design.shape)
        return _Projected(design, resid, None, np.full(variants, n, np.int64), pattern.leverage[None], None,
                          np.broadcast_to(pattern.sum_squares, (variants, y.shape[1])), np.zeros(variants, bool))
    kept = 1.0 - dropped.toarray()
    gram = np.eye(s) - _sparse_products(dropped, q_basis, q_basis)   # A = Q'Q over kept samples
    collinear = np.linalg.eigvalsh(gram)[:, 0] <= _SINGULAR
    gram[collinear] = np.eye(s)
    gram_inverse = np.linalg.inv(gram)
    resid = (design - ((q_design @ gram_inverse).reshape(-1, s) @ q_basis.T).reshape(design.shape)) * kept[:, None]
    shared_leverage = (gram_inverse.reshape(variants, -1) @ basis_outer.T) * kept   # diag(QA⁻¹Q')
    cross = -_sparse_products(dropped, q_basis, y)                   # Q'ỹ over kept: variants × s × P
    delta = gram_inverse @ cross
    sum_squares = pattern.sum_squares - dropped @ pattern.residual_squares - np.einsum("vkp,vkp->vp", cross, delta)
    return _Projected(design, resid, kept, kept.sum(axis=1).astype(np.int64), shared_leverage, delta, sum_squares,
                      collinear)


def _fit(g: np.ndarray, dropped: scipy.sparse.csr_array | None, pattern: GxePattern, model: GxeModel,
         basis_outer: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """One chunk of variants (rows of ``g``, float64, over the pattern's samples) against one
    pattern's phenotypes; ``dropped`` marks their missing calls, and ``basis_outer`` (rows of
    Q ⊗ Q) comes with it."""
    y, tested = pattern.residuals, model.n_tested
    projected = _project(g, dropped, pattern, basis_outer)
    resid, used = projected.resid, projected.used
    variants, terms, n = resid.shape

    gram_terms = resid @ resid.transpose(0, 2, 1)                   # H: variants × terms × terms
    scale = 1.0 / np.sqrt(np.maximum(np.diagonal(gram_terms, axis1=1, axis2=2), 1e-300))   # to correlations:
    singular = np.linalg.eigvalsh(gram_terms * scale[:, :, None] * scale[:, None, :])[:, 0] <= _SINGULAR  # unit-free
    gram_terms[singular] = np.eye(terms)
    h_inverse = np.linalg.inv(gram_terms)
    cross_terms = (resid.reshape(-1, n) @ y).reshape(variants, terms, -1)   # D̃'ỹ
    theta = h_inverse @ cross_terms                                  # variants × terms × P
    kept_rows = np.ones((1, n)) if projected.kept is None else projected.kept
    power, delta = _HC_POWER[model.robust], projected.delta
    if y.shape[1] <= _DIRECT_PHENOTYPES:   # explicit residuals, one compiled pass (chunked to match)
        q_delta = np.zeros((0, 0, 0)) if delta is None else np.ascontiguousarray(
            (pattern.basis @ delta).transpose(0, 2, 1))
        meat, exact_fit = direct_meat(resid, h_inverse, projected.shared_leverage, kept_rows, y, theta, q_delta,
                                      power, tested)
    else:                                  # weights compiled, then matrix products with Ỹ and Ỹ²
        weighted, exact_fit = pair_weights(resid, h_inverse, projected.shared_leverage, kept_rows, power, tested)
        meat = _meat(weighted, pattern, resid, theta, delta, basis_outer)
    moments = g @ pattern.moment_columns
    kept_moments = pattern.moment_columns.sum(axis=0)[None] if projected.kept is None \
        else projected.kept @ pattern.moment_columns
    return _estimates(model, h_inverse, singular, cross_terms, theta, meat, exact_fit, used,
                      projected.sum_squares, projected.collinear,
                      _centred_moments(moments, (g * g) @ pattern.moment_columns[:, terms:], kept_moments, used))


def _fit_complete(g: np.ndarray, g_squared: np.ndarray, pattern: GxePattern, model: GxeModel,
                  columns: np.ndarray) -> dict[str, np.ndarray]:
    """One chunk of variants with no missing call (rows of ``g`` over every sample, and their
    squares) against a pattern of few phenotypes, in one compiled pass per variant
    (:func:`stats.sandwich.fused_fit`): the same numbers as :func:`_fit`, a few times faster.

    ``columns`` (:func:`_full_sample_columns`, 0 off the pattern) gives Q'D and the moments
    in one product with G, without first gathering the pattern's samples out of G; Q(Q'D)
    is then one product per chunk of variants small enough to stay in a core's cache.
    """
    variants, (n, s), terms = len(g), pattern.basis.shape, pattern.multipliers.shape[1]
    samples = np.arange(n) if pattern.samples is None else pattern.samples
    products = g @ columns
    q_design = products[:, :terms * s].reshape(variants, terms, s)
    multipliers, y = np.ascontiguousarray(pattern.multipliers.T), np.ascontiguousarray(pattern.residuals.T)
    chunk = max(1, _CACHE_ELEMENTS // (terms * n))
    parts = [fused_fit(g[start:start + chunk], samples, multipliers,    # Q(Q'D) of a chunk: one product
                       (q_design[start:start + chunk].reshape(-1, s) @ pattern.basis.T).reshape(-1, terms, n),
                       y, pattern.leverage, _HC_POWER[model.robust], model.n_tested, _SINGULAR)
             for start in range(0, variants, chunk)]
    _, cross_terms, h_inverse, theta, meat, singular, exact_fit = (np.concatenate(part) for part in zip(*parts))
    used = np.full(variants, n, np.int64)
    return _estimates(model, h_inverse, singular, cross_terms, theta, meat, exact_fit, used,
                      np.broadcast_to(pattern.sum_squares, (variants, pattern.residuals.shape[1])),
                      np.zeros(variants, bool),
                      _centred_moments(products[:, terms * s:], g_squared @ columns[:, terms * s + terms:],
                                       pattern.moment_columns.sum(axis=0)[None], used))


def _estimates(model: GxeModel, h_inverse: np.ndarray, singular: np.ndarray, cross_terms: np.ndarray,
               theta: np.ndarray, meat: np.ndarray, exact_fit: np.ndarray, used: np.ndarray,
               sum_squares: np.ndarray, collinear: np.ndarray,
               moments: tuple[np.ndarray, np.ndarray, np.ndarray]) -> dict[str, np.ndarray]:
    """From a chunk's sufficient statistics to its coefficients, errors, flags and joint tests."""
    tested, terms = model.n_tested, h_inverse.shape[1]
    dof = used - model.n_shared - terms
    sums, centred, squares = moments
    with np.errstate(divide="ignore", invalid="ignore"):
        monomorphic = centred[:, 0] <= _MONOMORPHIC * np.maximum(squares[:, 0], 1e-300)
        vif = centred * np.diagonal(h_inverse, axis1=1, axis2=2)
    error = np.where(dof < 1, TOO_FEW_SAMPLES, np.where(collinear, COLLINEAR, OK)).astype(np.int8)
    error[(error == OK) & monomorphic] = MONOMORPHIC
    error[(error == OK) & (singular | (vif > _MAX_VIF).any(axis=1))] = COLLINEAR
    rss = np.maximum(sum_squares - np.einsum("vtp,vtp->vp", theta, cross_terms), 0.0)
    sigma2 = rss / np.maximum(dof, 1)[:, None]
    if model.robust == "hc1":
        meat *= (used / np.maximum(dof, 1))[:, None, None]

    v_model = sigma2[:, :, None, None] * h_inverse[:, None, :tested, :tested]   # variants × P × t × t
    v_robust = np.empty_like(v_model)
    first, second = np.triu_indices(tested)
    v_robust[..., first, second] = meat.transpose(0, 2, 1)
    v_robust[..., second, first] = meat.transpose(0, 2, 1)
    beta = theta[:, :tested].transpose(0, 2, 1)                      # variants × P × tested
    failed, robust_failed = error != OK, (error != OK) | exact_fit
    return {
        "beta": np.where(failed[:, None, None], np.nan, beta),
        "se": np.where(failed[:, None, None], np.nan, np.sqrt(np.diagonal(v_model, axis1=2, axis2=3))),
        "se_robust": np.where(robust_failed[:, None, None], np.nan,
                              np.sqrt(np.maximum(np.diagonal(v_robust, axis1=2, axis2=3), 0.0))),
        "dof": np.broadcast_to(dof[:, None], sigma2.shape), "n": np.broadcast_to(used[:, None], sigma2.shape),
        "alt_freq": np.broadcast_to(np.where(used > 0, sums[:, 0] / (2.0 * np.maximum(used, 1)), np.nan)[:, None],
                                    sigma2.shape),
        "error": np.broadcast_to(error[:, None], sigma2.shape),
        **_joint_tests(beta, v_model, v_robust, dof, failed, robust_failed),
    }


def _joint_tests(beta: np.ndarray, v_model: np.ndarray, v_robust: np.ndarray, dof: np.ndarray,
                 failed: np.ndarray, robust_failed: np.ndarray) -> dict[str, np.ndarray]:
    """The interaction (all g×e terms) and joint (g and g×e) Wald tests: F model-based, χ² robust."""
    tests = {}
    for name, chosen in (("interaction", slice(1, None)), ("joint", slice(None))):
        coefficients = beta[..., chosen]
        df = coefficients.shape[-1]
        wald_model = _wald(coefficients, v_model[..., chosen, chosen])
        wald_robust = _wald(coefficients, v_robust[..., chosen, chosen])
        tests[f"{name}_f"] = np.where(failed[:, None], np.nan, wald_model / df)
        tests[f"{name}_log10p"] = np.where(failed[:, None], np.nan,
                                           f_log10p(wald_model / df, df, np.maximum(dof, 1)[:, None]))
        tests[f"{name}_chisq"] = np.where(robust_failed[:, None], np.nan, wald_robust)
        tests[f"{name}_log10p_robust"] = np.where(robust_failed[:, None], np.nan, chi2_log10p(wald_robust, df))
    return tests


def _centred_moments(moments: np.ndarray, g2_m2: np.ndarray, kept_moments: np.ndarray,
                     used: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Σ D, the centred Σ D² and the raw Σ D² of each per-variant column over the used samples.

    The centred sums feed the VIF check, which — as plink2, whose A1 is the minor allele —
    counts the minor allele: g·e with a common alt allele is nearly e, and a coding choice
    should not turn that into a collinearity error (H⁻¹'s diagonal is the same either way).
    Small products with the multipliers m and m² give every sum — ``moments`` = [Σgm, Σgm²],
    ``g2_m2`` = Σg²m², ``kept_moments`` = [Σκm, Σκm²] over the kept samples κ — and with
    them Σ(2κ − g)m = 2Σκm − Σgm and Σ(2κ − g)²m² = 4Σκm² − 4Σgm² + Σg²m².
    """
    terms = g2_m2.shape[1]
    sums, g_m2 = moments[:, :terms], moments[:, terms:]
    minor = sums[:, 0] > used                      # alt allele frequency above ½
    sums_counted = np.where(minor[:, None], 2.0 * kept_moments[:, :terms] - sums, sums)
    squares_counted = np.where(minor[:, None], 4.0 * (kept_moments[:, terms:] - g_m2) + g2_m2, g2_m2)
    with np.errstate(divide="ignore", invalid="ignore"):
        centred = squares_counted - sums_counted ** 2 / np.maximum(used, 1)[:, None]
    return sums, centred, g2_m2


def _meat(weighted: np.ndarray, pattern: GxePattern, resid: np.ndarray, theta: np.ndarray,
          delta: np.ndarray | None = None, basis_outer: np.ndarray | None = None) -> np.ndarray:
    """Σᵢ Wᵢ εᵢ² for each weight row W (variants × pairs × samples) and phenotype: variants × pairs × P.

    εᵢ = ỹᵢ − (D̃Θ)ᵢ − (Qδ)ᵢ expands into matrix products of W with Ỹ² and Ỹ plus per-variant
    sums; the Q terms are there only for variants with missing calls (``delta``, with the
    rows of Q ⊗ Q in ``basis_outer``).
    """
    variants, pairs, n = weighted.shape
    y, flat = pattern.residuals, weighted.reshape(-1, n)
    meat = (flat @ pattern.residual_squares).reshape(variants, pairs, -1)
    meat -= 2.0 * np.einsum("varp,vrp->vap", _weighted_products(weighted, y, resid), theta)
    meat += np.einsum("vrp,varu,vup->vap", theta, _weighted_outer(weighted, resid, resid), theta)
    if delta is not None:
        q, s = pattern.basis, pattern.basis.shape[1]
        meat -= 2.0 * np.einsum("varp,vrp->vap", _weighted_products(weighted, y, q), delta)
        meat += 2.0 * np.einsum("vrp,varu,vup->vap", theta, _weighted_outer(weighted, resid, q), delta)
        outer = (flat @ basis_outer).reshape(variants, pairs, s, s)
        meat += np.einsum("vrp,varu,vup->vap", delta, outer, delta)
    return meat


def _weighted_products(weighted: np.ndarray, y: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """Σᵢ W_vaᵢ Z_rᵢ ỹᵢₚ: variants × pairs × r × P, for Z per variant (v × r × n) or shared (n × r).

    Weighting Z first gives one matrix product with Ỹ (best for many phenotypes); weighting
    each phenotype first gives one product with Z (best when phenotypes are fewer than r).
    """
    variants, pairs, n = weighted.shape
    shared = columns.ndim == 2
    r, phenotypes = columns.shape[1], y.shape[1]
    if phenotypes < r:
        by_phenotype = (weighted[:, :, None, :] * y.T[None, None]).reshape(variants, pairs * phenotypes, n)
        products = by_phenotype @ (columns if shared else columns.transpose(0, 2, 1))
        return products.reshape(variants, pairs, phenotypes, r).transpose(0, 1, 3, 2)
    by_column = weighted[:, :, None, :] * (columns.T[None, None] if shared else columns[:, None])
    return (by_column.reshape(-1, n) @ y).reshape(variants, pairs, r, phenotypes)


def _weighted_outer(weighted: np.ndarray, columns: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Σᵢ W_vaᵢ Z_vrᵢ Z'_uᵢ: variants × pairs × r × u, Z per variant (v × r × n), Z' per variant or shared (n × u)."""
    by_column = weighted[:, :, None, :] * columns[:, None]              # variants × pairs × r × n
    return by_column @ (others if others.ndim == 2 else others.transpose(0, 2, 1)[:, None])


def _sparse_products(dropped: scipy.sparse.csr_array, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Σ over each variant's dropped samples u of left_u ⊗ right_u: variants × k × m, in nnz·k·m."""
    out = np.empty((dropped.shape[0], left.shape[1], right.shape[1]))
    for k in range(left.shape[1]):
        scaled = scipy.sparse.csr_array((left[dropped.indices, k], dropped.indices, dropped.indptr),
                                        shape=dropped.shape)
        out[:, k] = scaled @ right
    return out


def _wald(beta: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """β'V⁻¹β over the last axis, for stacks of small V (NaN where V is singular)."""
    if beta.shape[-1] == 1:
        with np.errstate(divide="ignore", invalid="ignore"):
            return beta[..., 0] ** 2 / covariance[..., 0, 0]
    out = np.full(beta.shape[:-1], np.nan)
    finite = np.isfinite(covariance).all(axis=(-1, -2)) & (np.abs(np.linalg.det(covariance)) > 0)
    if finite.any():
        out[finite] = np.einsum("...k,...k->...", beta[finite],
                                np.linalg.solve(covariance[finite], beta[finite][..., None])[..., 0])
    return out


def gxe_schema(*, exposures: int) -> pa.Schema:
    """The GxE results table (declared in :data:`biolake.lake.schema.RESULTS_KINDS`): one row per
    phenotype × exposure × variant.

    Per row, the genotype's main effect (``beta_g``) and that exposure's interaction
    (``beta_gxe``) with model-based and robust errors, each term's own test (t, and robust
    z), and the joint test of g with all its interactions (F, and robust χ²). With several
    exposures, ``*_interaction`` columns test all the interactions together.

    Examples
    --------
    >>> gxe_schema(exposures=1).names[:9]
    ['phenotype', 'exposure', 'variant_id', 'chrom', 'pos', 'ref', 'alt', 'n', 'alt_freq']
    """
    return RESULTS_KINDS["gxe"].arrow_schema(
        columns=[column.name for column in INTERACTION_TESTS] if exposures > 1 else [])


def gxe_table(variants: pa.Table, result: GxeResult, *, phenotypes: list[str], exposures: list[str],
              schema: pa.Schema) -> pa.Table:
    """Kernel output as long rows, phenotype-major, then exposure, then variant.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> g, y = rng.integers(0, 3, (2, 60)).astype(float), rng.normal(size=(60, 1))
    >>> covariates = np.column_stack([np.ones(60), rng.normal(size=60)])
    >>> result = gxe_association(g, prepare_gxe(y, covariates, exposures=[1]))
    >>> variants = pa.table({"variant_id": ["rs1", "rs2"], "chrom": ["1", "1"], "pos": [10, 20],
    ...                      "ref": ["C", "C"], "alt": ["T", "T"]})
    >>> table = gxe_table(variants, result, phenotypes=["y"], exposures=["stress"], schema=gxe_schema(exposures=1))
    >>> table.num_rows, table.column("exposure")[0].as_py()
    (2, 'stress')
    """
    n_variants, n_phenotypes, _ = result.beta.shape
    m = len(exposures)

    def per_test(values: np.ndarray) -> pa.Array:     # variants × phenotypes, the same for every exposure
        return pa.array(np.repeat(values.T[:, None, :], m, axis=1).ravel(), from_pandas=True)

    def per_term(values: np.ndarray) -> pa.Array:     # variants × phenotypes × exposures
        return pa.array(values.transpose(1, 2, 0).ravel(), from_pandas=True)

    log10p_t, log10p_z = result.log10p_terms()
    data = {
        "phenotype": pa.array(np.repeat(np.asarray(phenotypes, dtype=object), m * n_variants), pa.string()),
        "exposure": pa.array(np.tile(np.repeat(np.asarray(exposures, dtype=object), n_variants), n_phenotypes),
                             pa.string()),
        **variant_labels(variants, repeat=n_phenotypes * m),
        "n": per_test(result.n), "alt_freq": per_test(result.alt_freq),
        "beta_g": per_test(result.beta[..., 0]), "se_g": per_test(result.se[..., 0]),
        "se_g_robust": per_test(result.se_robust[..., 0]),
        "beta_gxe": per_term(result.beta[..., 1:]), "se_gxe": per_term(result.se[..., 1:]),
        "se_gxe_robust": per_term(result.se_robust[..., 1:]), "t_gxe": per_term(result.t()[..., 1:]),
        "p_gxe": per_term(p_from_log10p(log10p_t[..., 1:])), "log10p_gxe": per_term(log10p_t[..., 1:]),
        "z_gxe_robust": per_term(result.z_robust()[..., 1:]),
        "p_gxe_robust": per_term(p_from_log10p(log10p_z[..., 1:])), "log10p_gxe_robust": per_term(log10p_z[..., 1:]),
        "error": pa.array(np.repeat(np.array(ERRORS, dtype=object)[result.error].T[:, None, :], m, axis=1).ravel(),
                          pa.string()),
    }
    for name, test in (("joint", result.joint), ("interaction", result.interaction)):
        data.update({f"f_{name}": per_test(test.f), f"p_{name}": per_test(p_from_log10p(test.log10p)),
                     f"log10p_{name}": per_test(test.log10p), f"chisq_{name}_robust": per_test(test.chisq_robust),
                     f"p_{name}_robust": per_test(p_from_log10p(test.log10p_robust)),
                     f"log10p_{name}_robust": per_test(test.log10p_robust)})
    return pa.table({name: data[name] for name in schema.names}, schema=schema)
