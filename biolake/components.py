"""The components job: many IDPs queried from the lake → their principal or independent components.

The design is the association jobs' (phenotypes = the IDPs; covariates, optional, regressed out first;
samples as chosen). Both decompositions need every IDP of every participant, so participants missing an IDP
value are left out and counted. Each IDP is centred and, unless ``scale`` is off, scaled to unit variance
(:mod:`biolake.stats.components`). Two tables: ``LAKE/results/NAME`` (kind ``components``: participant_id,
then the scores pc1 … pcK or ic1 … icK), which any analysis queries as phenotypes (``SELECT * FROM
results.NAME``), and ``LAKE/results/NAME_loadings`` (kind ``component_loadings``: a row per IDP, a column per
component). Each component's share of the variance is in both tables' provenance.
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
from biolake.run import publish_table
from biolake.stats.components import ICA_STEPS, fast_ica, pca, standardized

METHODS = {"pca": "pc", "ica": "ic"}   # each method's component names: pc1, pc2, … ic1, …
LOADINGS = "_loadings"                 # the loadings table's name: the run's, with this after it


@dataclass(frozen=True, kw_only=True)
class ComponentsSettings(JobRequest):
    """Which IDPs (``phenotypes``: SQL or columns of idps), how many components (``n``) by which ``method`` (pca or
    ica), whether each IDP is scaled to unit variance (``scale``), and the seed of ICA's start."""

    phenotypes: str | list[str]
    method: str = "pca"
    n: int = 10
    scale: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.method not in METHODS:
            raise BiolakeError(f"--method {self.method!r}: one of {', '.join(METHODS)}")
        if self.n < 1:
            raise BiolakeError(f"--n {self.n}: at least 1 component")
        if self.transform is not None:
            raise BiolakeError("--transform rank-normalises phenotypes for a test; components are of the IDPs as "
                               "they are (give --transform to the analysis of the scores)")


@dataclass(frozen=True, kw_only=True)
class ComponentsReport(DesignReport):
    """What a components run wrote: the components' names and each one's share of the IDPs' variance, and the
    number of IDPs."""

    components: list[str]
    variance: list[float]
    idps: int


def run_components(lake: Lake, settings: ComponentsSettings) -> ComponentsReport:
    """Decompose the IDPs asked; commit ``LAKE/results/NAME`` and ``NAME_loadings`` (``biolake components --help``).

    Examples
    --------
    >>> report = run_components(Lake.open("lake"), ComponentsSettings(
    ...     name="idp_pcs", phenotypes=["25001-2.0", "25002-2.0", "25003-2.0", "25004-2.0"], covariates=[], n=2))
    >>> report.components, report.idps, 0 < sum(report.variance) <= 1
    (['pc1', 'pc2'], 4, True)
    """
    loadings_name = settings.name + LOADINGS
    for name in (settings.name, loadings_name):
        lake.check_results_free(name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con)
        chosen = settings.design_less(con, chosen, {"missing an IDP value (components need every one)":
                                                    chosen.incomplete()})
    samples, idps = chosen.phenotypes.shape
    if settings.n > min(idps, samples - chosen.covariates.shape[1]):
        raise BiolakeError(f"--n {settings.n}: at most {min(idps, samples - chosen.covariates.shape[1]):,} "
                           f"components of {idps:,} IDPs over {samples:,} participants")
    values = standardized(chosen.phenotypes, chosen.covariates, scale=settings.scale)
    if settings.scale and not np.isfinite(values).all():
        constant = chosen.phenotype_names[int(np.flatnonzero(~np.isfinite(values).all(axis=0))[0])]
        raise BiolakeError(f"IDP {constant!r} is constant over the participants (after the covariates): it has no "
                           "variance to scale; leave it out of the query")
    found = pca(values, settings.n) if settings.method == "pca" else fast_ica(values, settings.n, seed=settings.seed)
    if found.steps > ICA_STEPS:
        warnings.warn(f"FastICA did not converge in {ICA_STEPS} steps: the components are its last iterate; try "
                      "fewer components (--n) or another --seed", stacklevel=2)
    names = [f"{METHODS[settings.method]}{j + 1}" for j in range(settings.n)]
    record = provenance("components", settings, chosen, method=settings.method, scaled=settings.scale,
                        seed=settings.seed if settings.method == "ica" else None,
                        variance={name: round(float(v), 10) for name, v in zip(names, found.variance)},
                        **({"ica_steps": found.steps} if settings.method == "ica" else {}))
    publish_table(lake, loadings_name, pa.table({"idp": pa.array(chosen.phenotype_names, pa.string()),
                                                 **dict(zip(names, found.loadings.T))}),
                  provenance={**record, "kind": "component_loadings", "scores": settings.name},
                  replace=settings.replace)
    version = publish_table(lake, settings.name, pa.table({"participant_id": pa.array(chosen.participant_ids,
                                                                                      pa.string()),
                                                           **dict(zip(names, found.scores.T))}),
                            provenance={**record, "loadings": loadings_name}, replace=settings.replace)
    return ComponentsReport(name=settings.name, version=version, components=names,
                            variance=[float(v) for v in found.variance], idps=idps, **DesignReport.of(chosen))
