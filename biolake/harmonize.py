"""The harmonize job: IDPs queried from the lake → ComBat across sites → a results table of harmonised IDPs.

The design is the association jobs' (phenotypes = the IDPs, covariates = the biological effects to keep,
samples as chosen); each participant's batch (site, scanner) is a column of ``covariates``. ComBat
(:mod:`biolake.stats.combat`) needs every IDP of every participant, as neuroCombat does, so participants
missing an IDP value are left out and counted. The table (``LAKE/results/NAME``, kind ``harmonized``:
participant_id, then the IDPs under their own names) is ``results.NAME`` in SQL, so every analysis can
query it as it queries ``idps``; the batches, their sizes and the empirical-Bayes priors are in its provenance.

Each run also keeps its fit beside its version (``LAKE/results/NAME/_estimates/vN.parquet``: a row per IDP
with its grand mean, pooled variance, covariate effects and each batch's γ̂, δ̂, γ*, δ*), so that sites
joining later are harmonised to the same reference without refitting it (``--reference NAME``): participants
of the reference's batches get its adjustments, new batches theirs (:func:`biolake.stats.combat.combat`).
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from biolake.frame import DesignReport, JobRequest, provenance
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries import connect
from biolake.queries.design import Design
from biolake.run import publish_table
from biolake.stats.combat import BATCH_ESTIMATES, CombatFit, combat

ESTIMATES_KEY = b"biolake.combat"   # the estimates file's schema metadata: batches, covariates, priors


@dataclass(frozen=True, kw_only=True)
class HarmonizeSettings(JobRequest):
    """Which IDPs (``phenotypes``: SQL or columns of idps), the column of ``covariates`` naming each participant's
    batch (``batch``), the covariates whose effects are kept, and ComBat's options: empirical Bayes (``eb``),
    parametric priors (``parametric``; else non-parametric); ``reference``: an earlier harmonize run whose fit is
    applied, only the batches it lacks estimated (sites joining later)."""

    phenotypes: str | list[str]
    batch: str
    eb: bool = True
    parametric: bool = True
    reference: str | None = None

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
    """What a harmonize run wrote: the batches with their sizes, those estimated by this run (all of them, or
    with a reference those it lacked), and how many IDPs."""

    batches: dict[str, int]
    estimated: list[str]
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
        chosen = settings.design_less(con, chosen, {
            f"no {settings.batch}": [pid for pid in chosen.participant_ids if batch_of.get(pid) is None],
            "missing an IDP value (ComBat needs every one)": chosen.incomplete()})
    reference = fitted_combat(lake, settings.reference, flag='--reference ') if settings.reference else None
    labels = [batch_of[pid] for pid in chosen.participant_ids]
    known = reference.batches if reference else []
    names = known + sorted(set(labels) - set(known))
    code_of = {name: code for code, name in enumerate(names)}
    codes = np.array([code_of[label] for label in labels])
    _check_batches(chosen, names, codes, settings.batch, first_new=len(known))
    values, covariates = chosen.phenotypes, chosen.covariates[:, 1:]
    idps, covariate_names = chosen.phenotype_names, chosen.covariate_names[1:]
    if reference:
        values, covariates = reference.aligned(chosen, settings.reference)
        idps, covariate_names = reference.idps, reference.covariates
    harmonised, fit = combat(values, codes, covariates, eb=settings.eb, parametric=settings.parametric,
                             reference=reference.fit if reference else None)
    table = pa.table({"participant_id": pa.array(chosen.participant_ids, pa.string()),
                      **{name: pa.array(harmonised[:, j]) for j, name in enumerate(idps)}})
    sizes = {name: int((codes == b).sum()) for b, name in enumerate(names) if (codes == b).any()}
    estimated = names[len(known):]
    record = provenance("harmonized", settings, chosen, method="ComBat (Johnson et al. 2007; Fortin et al. 2018), "
                        "as neuroCombat", batches=sizes, priors={name: {
                            "gamma_bar": float(fit.gamma_bar[b]), "tau2": float(fit.tau2[b]),
                            "a": float(fit.a_prior[b]), "b": float(fit.b_prior[b])}
                            for b, name in enumerate(names) if name in estimated},
                        **({"reference_version": reference.version} if reference else {}))
    version = publish_table(lake, settings.name, table, provenance=record, replace=settings.replace)
    lake.write_attachment(settings.name, version, "estimates",
                          _estimates_file(FittedCombat(fit, names, idps, covariate_names, version)))
    return HarmonizeReport(name=settings.name, version=version, batches=sizes, estimated=estimated, idps=len(idps),
                           **DesignReport.of(chosen))


@dataclass(frozen=True)
class FittedCombat:
    """A run's ComBat fit with the names of what its arrays index: batches, IDPs, covariate columns."""

    fit: CombatFit
    batches: list[str]
    idps: list[str]
    covariates: list[str]
    version: int

    def aligned(self, chosen: Design, name: str) -> tuple[np.ndarray, np.ndarray]:
        """The IDPs and covariates of ``chosen`` in this fit's order; a run that asks other IDPs or covariates
        than the reference ``name`` kept is refused (its estimates are per IDP, its effects per covariate)."""
        for what, ours, theirs, hint in (
                ("IDPs", chosen.phenotype_names, self.idps, ""),
                ("covariates", chosen.covariate_names[1:], self.covariates,
                 " (give the same --covar; a text covariate is coded against its most frequent level, which new "
                 "sites may change: code it as a number with --covar-sql)")):
            if sorted(ours) != sorted(theirs):
                missing, extra = [x for x in theirs if x not in ours], [x for x in ours if x not in theirs]
                raise BiolakeError(f"--reference {name} harmonised the {what} {_listed(theirs)}; this run has "
                                   f"{_listed(ours)} (missing: {_listed(missing)}; not in the reference: "
                                   f"{_listed(extra)}){hint}")
        columns = [chosen.phenotype_names.index(idp) for idp in self.idps]
        effects = [chosen.covariate_names.index(covariate) for covariate in self.covariates]
        return chosen.phenotypes[:, columns], chosen.covariates[:, effects]


def _listed(names: list[str], most: int = 5) -> str:
    return (", ".join(names[:most]) + (f" … ({len(names)})" if len(names) > most else "")) if names else "none"


def _estimates_file(fitted: FittedCombat) -> bytes:
    """The fit as Parquet: a row per IDP (grand_mean, var_pooled, ``beta:COVARIATE``, ``FIELD:BATCH`` for γ̂, δ̂,
    γ*, δ*), the batches, covariates and per-batch priors in the schema's metadata."""
    fit = fitted.fit
    columns = {"idp": pa.array(fitted.idps, pa.string()), "grand_mean": fit.grand_mean, "var_pooled": fit.var_pooled,
               **{f"beta:{name}": fit.covariate_effects[k] for k, name in enumerate(fitted.covariates)},
               **{f"{field}:{batch}": getattr(fit, field)[b] for b, batch in enumerate(fitted.batches)
                  for field in BATCH_ESTIMATES[:4]}}
    meta = {"batches": fitted.batches, "covariates": fitted.covariates,
            **{field: getattr(fit, field).tolist() for field in BATCH_ESTIMATES[4:]}}
    table = pa.table(columns).replace_schema_metadata({ESTIMATES_KEY: json.dumps(meta)})
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


def fitted_combat(lake: Lake, name: str, *, flag: str = "") -> FittedCombat:
    """The fit the harmonize run ``name`` kept (its current version); ``flag`` names the option that asked for it.

    Examples
    --------
    >>> lake = Lake.open("lake")
    >>> _ = run_harmonize(lake, HarmonizeSettings(name="sites", phenotypes=["25001-2.0", "25002-2.0"],
    ...                                           covariates=["age"], batch="site"))
    >>> fitted = fitted_combat(lake, "sites")
    >>> fitted.batches, fitted.idps, fitted.fit.delta_star.shape
    (['Bristol', 'Cheadle', 'Newcastle', 'Reading'], ['25001-2.0', '25002-2.0'], (4, 2))
    """
    kind = lake.results_provenance(name).get("kind")
    if kind != "harmonized":
        raise BiolakeError(f"{flag}{name} is a {kind} table, not one biolake harmonize wrote")
    version = lake.results(name).version()
    table = pq.read_table(io.BytesIO(lake.read_attachment(name, "estimates", version)))
    meta = json.loads(table.schema.metadata[ESTIMATES_KEY])
    batches, covariates = meta["batches"], meta["covariates"]

    def rows(keys: list[str]) -> np.ndarray:   # the columns ``keys`` as rows: len(keys) × IDPs
        return np.array([table.column(key).to_numpy() for key in keys]).reshape(len(keys), table.num_rows)
    fit = CombatFit(table.column("grand_mean").to_numpy(), table.column("var_pooled").to_numpy(),
                    rows([f"beta:{covariate}" for covariate in covariates]),
                    *[rows([f"{field}:{batch}" for batch in batches]) for field in BATCH_ESTIMATES[:4]],
                    *[np.array(meta[field]) for field in BATCH_ESTIMATES[4:]])
    return FittedCombat(fit, batches, table.column("idp").to_pylist(), covariates, version)


def _check_batches(chosen: Design, names: list[str], codes: np.ndarray, flag: str, *, first_new: int) -> None:
    """Refuse what ComBat cannot estimate in the batches it estimates (from ``first_new`` on: those a reference
    lacks): a batch of one participant (no variance), an IDP constant within a batch (its scale cannot be adjusted),
    and without a reference fewer than two batches."""
    if first_new == 0 and len(names) < 2:
        raise BiolakeError(f"--batch {flag}: the analysed participants are all in one batch ({names[0]!r}); "
                           "ComBat needs two or more")
    for b, name in enumerate(names[first_new:], start=first_new):
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
