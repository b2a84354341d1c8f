"""The harmonize job: IDPs queried from the lake → ComBat across sites → a results table of harmonised IDPs.

The design is the association jobs' (phenotypes = the IDPs, covariates = the biological effects to keep,
samples as chosen); each participant's batch (site, scanner) is a column of ``covariates``. ComBat
(:mod:`biolake.stats.combat`) needs every IDP of every participant, as neuroCombat does, so participants
missing an IDP value are left out and counted. The table (``LAKE/results/NAME``, kind ``harmonized``:
participant_id, then the IDPs under their own names) is ``results.NAME`` in SQL, so every analysis can
query it as it queries ``idps``; the batches, their sizes and the empirical-Bayes priors are in its provenance.
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
from biolake.queries.design import Design
from biolake.run import publish_table
from biolake.stats.combat import combat


@dataclass(frozen=True, kw_only=True)
class HarmonizeSettings(JobRequest):
    """Which IDPs (``phenotypes``: SQL or columns of idps), the column of ``covariates`` naming each participant's
    batch (``batch``), the covariates whose effects are kept, and ComBat's options: empirical Bayes (``eb``),
    parametric priors (``parametric``; else non-parametric)."""

    phenotypes: str | list[str]
    batch: str
    eb: bool = True
    parametric: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.batch:
            raise BiolakeError("--batch names the covariates column of each participant's site or scanner")
        if not isinstance(self.covariates, str) and self.batch in self.covariates:
            raise BiolakeError(f"--batch {self.batch} is also among the covariates: ComBat removes the batch effects "
                               "and keeps the covariates' (leave it out of --covar)")
        if self.transform is not None:
            raise BiolakeError("--transform rank-normalises phenotypes for a test; harmonize the IDPs first, then "
                               "give --transform to the analysis that reads them")


@dataclass(frozen=True, kw_only=True)
class HarmonizeReport(DesignReport):
    """What a harmonize run wrote: the batches with their sizes, and how many IDPs."""

    batches: dict[str, int]
    idps: int


def run_harmonize(lake: Lake, settings: HarmonizeSettings) -> HarmonizeReport:
    """Harmonise the IDPs asked across the batches; commit ``LAKE/results/NAME`` (``biolake harmonize --help``).

    Examples
    --------
    >>> report = run_harmonize(Lake.open("lake"), HarmonizeSettings(
    ...     name="harmonized", phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex"], batch="site"))
    >>> sorted(report.batches), report.idps
    (['Bristol', 'Cheadle', 'Newcastle', 'Reading'], 2)
    """
    lake.check_results_free(settings.name, replace=settings.replace)
    with connect(lake, release=settings.release, queries=settings.queries()) as con:
        chosen = settings.design(con)
        columns = [column for column in con.sql("SELECT * FROM covariates LIMIT 0").columns
                   if column not in ("participant_id", "release")]
        if settings.batch not in columns:
            raise BiolakeError(f"--batch {settings.batch!r} is not a column of covariates; it has: "
                               + ", ".join(columns))
        rows = con.sql(f'SELECT participant_id, CAST("{settings.batch.replace(chr(34), chr(34) * 2)}" AS VARCHAR) '
                       'AS batch FROM covariates').arrow().to_pylist()
        batch_of = {row["participant_id"]: row["batch"] for row in rows}
        left_out = {f"no {settings.batch}": [pid for pid in chosen.participant_ids if batch_of.get(pid) is None],
                    "missing an IDP value (ComBat needs every one)": [
                        pid for pid, row in zip(chosen.participant_ids, chosen.phenotypes) if np.isnan(row).any()]}
        if any(left_out.values()):
            with warnings.catch_warnings():   # the design's warnings were shown when it was first made
                warnings.simplefilter("ignore")
                chosen = settings.design(con, excluded={reason: ids for reason, ids in left_out.items() if ids})
    labels = np.array([batch_of[pid] for pid in chosen.participant_ids], dtype=object)
    names, codes = np.unique(labels, return_inverse=True)
    _check_batches(chosen, names, codes, settings.batch)
    harmonised, fit = combat(chosen.phenotypes, codes, chosen.covariates[:, 1:], eb=settings.eb,
                             parametric=settings.parametric)
    table = pa.table({"participant_id": pa.array(chosen.participant_ids, pa.string()),
                      **{name: pa.array(harmonised[:, j]) for j, name in enumerate(chosen.phenotype_names)}})
    sizes = {str(name): int((codes == b).sum()) for b, name in enumerate(names)}
    record = provenance("harmonized", settings, chosen, method="ComBat (Johnson et al. 2007; Fortin et al. 2018), "
                        "as neuroCombat", batches=sizes, priors={str(name): {
                            "gamma_bar": float(fit.gamma_bar[b]), "tau2": float(fit.tau2[b]),
                            "a": float(fit.a_prior[b]), "b": float(fit.b_prior[b])} for b, name in enumerate(names)})
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    return HarmonizeReport(name=settings.name, version=version, batches=sizes, idps=len(chosen.phenotype_names),
                           **DesignReport.of(chosen))


def _check_batches(chosen: Design, names: np.ndarray, codes: np.ndarray, flag: str) -> None:
    """Refuse what ComBat cannot estimate: a batch of one participant (no variance), an IDP constant within a batch
    (its scale cannot be adjusted), fewer than two batches."""
    if len(names) < 2:
        raise BiolakeError(f"--batch {flag}: the analysed participants are all in one batch ({names[0]!r}); "
                           "ComBat needs two or more")
    for b, name in enumerate(names):
        mine = chosen.phenotypes[codes == b]
        if len(mine) < 2:
            raise BiolakeError(f"--batch {flag}: batch {name!r} has one analysed participant "
                               f"({chosen.participant_ids[int(np.flatnonzero(codes == b)[0])]}); ComBat estimates "
                               "each batch's variance, which needs two or more (leave it out with --samples-sql)")
        constant = np.flatnonzero(np.ptp(mine, axis=0) == 0)
        if len(constant):
            raise BiolakeError(f"IDP {chosen.phenotype_names[constant[0]]!r} is constant within batch {name!r} "
                               f"({mine[0, constant[0]]:g} for its {len(mine):,} participants): ComBat cannot scale "
                               "it (leave the IDP or the batch out)")
