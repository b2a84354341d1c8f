"""From queries to the aligned arrays the association engines take.

The participant order is the genotype sample vector's, so a genotype block
indexed by ``sample_index`` lines up with the phenotype and covariate rows.
Everyone left out is counted by reason, never dropped silently.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from biolake.queries.sql import LakeConnection, QueryError

COLLINEARITY_TOLERANCE = 1e-8
ABSENT = {"genotypes": "not genotyped", "methylation": "no methylation", "cnv": "no CNV calls"}  # by assay
PRESENT = {"genotypes": "genotypes", "methylation": "methylation data", "cnv": "CNV calls"}   # what each analysed one has


class DesignWarning(UserWarning):
    """A column was dropped: a covariate constant or collinear with earlier ones, or a phenotype
    with no values or one value only."""


@dataclass(frozen=True)
class DropReport:
    """Who was left out of the analysis, by reason (counts and a few example ids)."""

    counts: dict[str, int]
    examples: dict[str, list[str]]
    dropped_covariates: dict[str, str] = field(default_factory=dict)
    dropped_phenotypes: dict[str, str] = field(default_factory=dict)
    role: str = "phenotype"       # what the job calls the phenotype columns: phenotype, exposure

    def __str__(self) -> str:
        lines = [f"{reason}: {count:,} (e.g. {', '.join(self.examples[reason])})"
                 for reason, count in self.counts.items() if count]
        lines += [f"covariate {name!r} dropped: {why}" for name, why in self.dropped_covariates.items()]
        lines += [f"{self.role} {name!r} dropped: {why}" for name, why in self.dropped_phenotypes.items()]
        return "\n".join(lines) or "nobody dropped"


@dataclass(frozen=True)
class SampleList:
    """Participants a job keeps (``--keep FILE``) or removes (``--remove FILE``), each id with the line of
    the file it is on (:func:`biolake.ingest.participants.read_sample_list` reads them), so that an error
    can point at it."""

    flag: str                      # "--keep" or "--remove"
    path: str
    lines: Mapping[str, int]       # participant id → its line in the file

    @property
    def reason(self) -> str:
        """Why a participant this list leaves out is dropped, as the drop report says it."""
        return f"not in {self.flag}" if self.flag == "--keep" else f"in {self.flag}"

    def record(self) -> dict[str, object]:
        """What a results table's provenance keeps of the list (:func:`list_record`)."""
        return list_record(self.path, self.lines, participants=len(self.lines))


def list_record(path: str, entries: Iterable[str], **counts: int) -> dict[str, object]:
    """What a results table's provenance keeps of a list a job read from a file (--keep, --extract, …): the file,
    its ``counts``, and a checksum of its ``entries`` (sha256 of them sorted, one a line), so a list changed
    since shows.

    >>> list_record("keep.txt", ["b", "a"], participants=2)["sha256"][:12]
    '911169ddaaf1'
    """
    import hashlib
    import os

    return {"path": os.path.abspath(path), **counts,
            "sha256": hashlib.sha256("".join(f"{entry}\n" for entry in sorted(entries)).encode()).hexdigest()}


@dataclass(frozen=True)
class Design:
    """Phenotypes and covariates aligned to an assay's sample vector (genotypes, methylation; cnv: the participants
    CNVs were called for, in their order)."""

    release: str
    participant_ids: list[str]
    sample_index: np.ndarray      # positions in the assay's sample vector, ascending
    phenotypes: np.ndarray        # samples × phenotypes, NaN where missing
    phenotype_names: list[str]
    covariates: np.ndarray        # samples × covariates, intercept first, complete
    covariate_names: list[str]
    dropped: DropReport
    vector_length: int            # samples in the assay's stored vectors

    @property
    def selection(self) -> np.ndarray | None:
        """Positions to take from each stored vector, or None when every sample is analysed in order."""
        return None if len(self.sample_index) == self.vector_length else self.sample_index

    def incomplete(self) -> list[str]:
        """The participants missing a value of some phenotype (what a method needing every one leaves out)."""
        return [pid for pid, row in zip(self.participant_ids, self.phenotypes) if np.isnan(row).any()]


def design(con: LakeConnection, *, phenotypes: str | Sequence[str], covariates: str | Sequence[str],
           samples: str | None = None, keep: SampleList | None = None, remove: SampleList | None = None,
           excluded: Mapping[str, Collection[str]] | None = None, assay: str = "genotypes",
           role: str = "phenotype") -> Design:
    """Run the phenotype, covariate and sample queries and align them to an assay's sample vector.

    ``phenotypes`` and ``covariates`` are SQL returning ``participant_id`` first, or lists
    of columns of ``idps`` and ``covariates``. ``samples`` is SQL returning the
    ``participant_id`` of everyone to keep; ``keep`` and ``remove`` list participants to keep
    and to leave out (a ``keep`` id the release lacks is an error, a ``remove`` one a warning); ``excluded`` maps
    a reason found outside the queries (plink2's --mind: too many missing calls) to the participants it leaves
    out, counted under it. Text covariates become indicator columns
    against their most frequent level; constant and collinear columns are dropped
    with a DesignWarning. ``assay`` is "genotypes" (GWAS), "methylation" (EWAS) or "cnv" (CNV association): rows
    follow that assay's sample vector, and participants it lacks are counted as dropped.
    ``role`` is what the job calls the ``phenotypes`` columns ("phenotype"; EWAS: "exposure"):
    warnings, errors and the drop report speak of them by that name.

    Examples
    --------
    >>> from biolake.queries import connect
    >>> con = connect("lake")
    >>> d = design(con, phenotypes=["25001-2.0"], covariates=["age", "sex", "site"],
    ...            samples="SELECT participant_id FROM covariates WHERE age > 60")
    >>> d.phenotypes.shape, d.covariate_names[:3]
    ((349, 1), ['intercept', 'age', 'sex[M]'])
    >>> print(d.dropped)
    not in the sample selection: 136 (e.g. 1067943, 1073001, 1104596)
    no phenotype values: 15 (e.g. 1284161, 1360257, 2042204)
    """
    if assay not in ABSENT:
        raise QueryError(f"assay must be one of {', '.join(ABSENT)}, got {assay!r}")
    genotyped = _column_list(con.sql("SELECT participant_id FROM samples WHERE assay = ? ORDER BY sample_index",
                                     params=[assay]).arrow(), "participant_id")
    pheno = _keyed(con, phenotypes, "idps", what=role)
    covar = _keyed(con, covariates, "covariates", what="covariate")
    chosen_by = _sample_filters(con, samples, keep, remove)
    for reason, participants in (excluded or {}).items():
        chosen_by[reason] = lambda pid, out=frozenset(participants): pid not in out

    position = {pid: i for i, pid in enumerate(genotyped)}
    pheno_rows = {pid: i for i, pid in enumerate(_column_list(pheno, "participant_id"))}
    covar_rows = {pid: i for i, pid in enumerate(_column_list(covar, "participant_id"))}
    pheno_values = _numeric_matrix(pheno, what=role)
    pheno_names = pheno.column_names[1:]
    dropped_phenotypes = {name: "no values" for j, name in enumerate(pheno_names)
                          if len(pheno_values) and np.isnan(pheno_values[:, j]).all()}
    covar_columns, covar_names = _covariate_columns(covar)
    covar_complete = ~np.isnan(np.column_stack(covar_columns)).any(axis=1) if covar_columns else \
        np.ones(covar.num_rows, bool)

    tested = np.array([name not in dropped_phenotypes for name in pheno_names])
    if not tested.any():
        raise QueryError(f"no {role} to test: " + ", ".join(f"{name!r} has no values" for name in pheno_names))
    dropped: dict[str, list[str]] = {ABSENT[assay]: sorted((set(pheno_rows) | set(covar_rows)) - set(position))}
    no_values = f"no {role} values"
    dropped |= {reason: [] for reason in [*chosen_by, "missing covariate", no_values]}
    kept: list[int] = []
    for pid in genotyped:
        if (reason := next((why for why, chooses in chosen_by.items() if not chooses(pid)), None)) is not None:
            dropped[reason].append(pid)
        elif pid not in covar_rows or not covar_complete[covar_rows[pid]]:
            dropped["missing covariate"].append(pid)
        elif pid not in pheno_rows or np.isnan(pheno_values[pheno_rows[pid]][tested]).all():
            dropped[no_values].append(pid)
        else:
            kept.append(position[pid])
    ids = [genotyped[i] for i in kept]
    if not ids:
        raise QueryError(f"no participant has {PRESENT[assay]}, covariates and {_article(role)} {role} value; "
                         "check the queries (see the drop counts: "
                         + ", ".join(f"{r} {len(v)}" for r, v in dropped.items()) + ")")
    pheno_matrix = pheno_values[[pheno_rows[p] for p in ids]]
    for j, name in enumerate(pheno_names):
        values = pheno_matrix[:, j][~np.isnan(pheno_matrix[:, j])]
        if tested[j] and (not len(values) or np.ptp(values) == 0):
            dropped_phenotypes[name] = (f"one value ({values[0]:g}) over the analysed participants" if len(values)
                                        else "no values over the analysed participants")
            tested[j] = False
    for name, why in dropped_phenotypes.items():
        warnings.warn(f"{role} {name!r} dropped: {why}", DesignWarning, stacklevel=2)
    if not tested.any():
        raise QueryError(f"no {role} to test: "
                         + "; ".join(f"{name!r} has {why}" for name, why in dropped_phenotypes.items()))
    pheno_matrix = pheno_matrix[:, tested]
    has_values = ~np.isnan(pheno_matrix).all(axis=1)   # values only in a dropped phenotype: not analysed
    if not has_values.all():
        dropped[no_values] += [pid for pid, kept in zip(ids, has_values) if not kept]
        ids = [pid for pid, kept in zip(ids, has_values) if kept]
        kept = [position for position, has in zip(kept, has_values) if has]
        pheno_matrix = pheno_matrix[has_values]
    rows = [covar_rows[p] for p in ids]
    covariate_matrix, names, dropped_covariates = _full_rank(
        [np.ones(len(ids))] + [c[rows] for c in covar_columns],
        ["intercept", *covar_names])
    if len(ids) <= covariate_matrix.shape[1] + 1:
        raise QueryError(f"{len(ids)} participants for {covariate_matrix.shape[1]} covariate columns "
                         f"({', '.join(names)}): a test needs more participants than covariates + 1")
    return Design(con.release.release, ids, np.array(kept, dtype=np.int64), pheno_matrix,
                  [name for name, is_tested in zip(pheno_names, tested) if is_tested], covariate_matrix, names,
                  DropReport({r: len(v) for r, v in dropped.items()}, {r: v[:3] for r, v in dropped.items()},
                             dropped_covariates, dropped_phenotypes, role), len(genotyped))


@dataclass(frozen=True)
class SampleSelection:
    """The genotyped participants a sample query keeps, in the genotype sample vector's order."""

    release: str
    participant_ids: list[str]
    sample_index: np.ndarray      # positions in the genotype sample vector, ascending
    vector_length: int            # samples in the stored genotype vectors

    @property
    def selection(self) -> np.ndarray | None:
        """Positions to take from each stored vector, or None when every sample is kept in order."""
        return None if len(self.sample_index) == self.vector_length else self.sample_index


def genotyped_samples(con: LakeConnection, *, samples: str | None = None, keep: SampleList | None = None,
                      remove: SampleList | None = None) -> SampleSelection:
    """The release's genotyped participants, or those of them ``samples`` (SQL returning ``participant_id``),
    ``keep`` and ``remove`` choose (as :func:`design`): for analyses of the genotypes alone (kinship), which
    take no phenotype or covariate.

    Examples
    --------
    >>> from biolake.queries import connect
    >>> chosen = genotyped_samples(connect("lake"), samples="SELECT participant_id FROM covariates WHERE age > 60")
    >>> len(chosen.participant_ids) < chosen.vector_length, chosen.selection is not None
    (True, True)
    """
    genotyped = _column_list(con.sql("SELECT participant_id FROM samples WHERE assay = 'genotypes' "
                                     "ORDER BY sample_index").arrow(), "participant_id")
    chosen_by = _sample_filters(con, samples, keep, remove)
    kept = [i for i, pid in enumerate(genotyped) if all(chooses(pid) for chooses in chosen_by.values())]
    if not kept:
        raise QueryError(f"no genotyped participant of release {con.release.release!r} is chosen (by the sample "
                         "query, --keep and --remove)" if genotyped else f"release {con.release.release!r} has no genotyped participant")
    return SampleSelection(con.release.release, [genotyped[i] for i in kept], np.array(kept, dtype=np.int64),
                           len(genotyped))


def genotype_sexes(con: LakeConnection) -> dict[str, str | None]:
    """Each genotyped participant's sex as the genotype source gives it (M, F, or None: the .fam's, as plink2 reads
    it): what sets the ploidy of chromosome X.

    >>> from biolake.queries import connect
    >>> sorted(set(genotype_sexes(connect("lake")).values()))
    ['F', 'M']
    """
    rows = con.sql("SELECT participant_id, sex FROM samples WHERE assay = 'genotypes'").arrow().to_pylist()
    return {row["participant_id"]: row["sex"] for row in rows}


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _keyed(con: LakeConnection, spec: str | Sequence[str], table: str, *, what: str) -> pa.Table:
    if isinstance(spec, str):
        return _run(con, spec, what=what)
    known = con.sql(f'SELECT * FROM "{table}" LIMIT 0').columns
    unknown = [c for c in spec if c not in known]
    if unknown:
        raise QueryError(f"{what} column {unknown[0]!r} is not in table {table}; it has: "
                         + ", ".join(c for c in known[:12] if c not in ("participant_id", "release"))
                         + (", …" if len(known) > 12 else ""))
    columns = ", ".join('"' + c.replace('"', '""') + '"' for c in spec)
    return _run(con, f'SELECT participant_id, {columns} FROM "{table}"', what=what)


def _run(con: LakeConnection, query: str, *, what: str) -> pa.Table:
    result = con.sql(query).arrow()
    if not result.column_names or result.column_names[0] != "participant_id":
        raise QueryError(f"the {what} query must return participant_id as its first column; "
                         f"it returns {', '.join(result.column_names[:5])}")
    ids = result.column("participant_id").cast(pa.string())
    if ids.null_count:
        raise QueryError(f"the {what} query returns a null participant_id")
    unique, counts = np.unique(np.asarray(ids.to_pylist(), dtype=object).astype(str), return_counts=True)
    if (counts > 1).any():
        raise QueryError(f"the {what} query returns participant {unique[counts > 1][0]!r} "
                         f"{counts.max()} times; expected one row per participant")
    return result.set_column(0, "participant_id", ids)


def _column_list(table: pa.Table, name: str) -> list[str]:
    return table.column(name).cast(pa.string()).to_pylist()


def _is_number(kind: pa.DataType) -> bool:
    return (pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_boolean(kind)
            or pa.types.is_decimal(kind))


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_dictionary(kind)


def _numeric_matrix(table: pa.Table, *, what: str) -> np.ndarray:
    columns = []
    for name in table.column_names[1:]:
        column = table.column(name)
        if not _is_number(column.type):
            raise QueryError(f"{what} column {name!r} is {column.type}, expected numbers")
        columns.append(_numbers(table, name, what=what))
    if not columns:
        raise QueryError(f"the {what} query returns no columns beside participant_id")
    return np.column_stack(columns)


def _numbers(table: pa.Table, name: str, *, what: str) -> np.ndarray:
    """A numeric column as floats (NULL and NaN both mean missing); an infinite value is an error."""
    values = table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False)
    infinite = np.isinf(values)
    if infinite.any():
        examples = ", ".join(map(str, np.asarray(table.column("participant_id"))[infinite][:3]))
        raise QueryError(f"{what} column {name!r} has {int(infinite.sum()):,} infinite values (participants "
                         f"{examples}); use NULL for a missing value")
    return values


def _covariate_columns(table: pa.Table) -> tuple[list[np.ndarray], list[str]]:
    """Numeric columns as float vectors; text columns as indicators against their most frequent level."""
    columns, names = [], []
    for name in table.column_names[1:]:
        column = table.column(name)
        if _is_number(column.type):
            columns.append(_numbers(table, name, what="covariate"))
            names.append(name)
            continue
        if not _is_text(column.type):
            raise QueryError(f"covariate column {name!r} is {column.type}; expected numbers or text "
                             "categories (convert it in the query, e.g. with epoch() or year())")
        column = column.cast(pa.string())
        counts = pc.value_counts(column.drop_null()).to_pylist()
        if not counts:
            raise QueryError(f"covariate column {name!r} has no values")
        levels = [c["values"] for c in sorted(counts, key=lambda c: (-c["counts"], c["values"]))]
        for level in levels[1:] or levels:  # a single level gives one constant column, dropped later
            indicator = pc.equal(column, level).cast(pa.float64())
            columns.append(indicator.to_numpy(zero_copy_only=False))  # null (missing) becomes NaN
            names.append(f"{name}[{level}]" if len(levels) > 1 else name)
    return columns, names


def _full_rank(columns: list[np.ndarray], names: list[str]) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Keep columns in order, dropping constants and any column in the span of those kept before it."""
    kept, kept_names, dropped = [], [], {}
    basis = np.empty((len(columns[0]), 0))
    for column, name in zip(columns, names):
        if name != "intercept" and np.ptp(column) == 0:
            dropped[name] = "constant over the analysed participants"
        else:
            residual = column - basis @ (basis.T @ column)
            residual -= basis @ (basis.T @ residual)  # twice is enough (Kahan–Parlett)
            if np.linalg.norm(residual) <= COLLINEARITY_TOLERANCE * np.linalg.norm(column):
                dropped[name] = "collinear with the covariates before it"
            else:
                basis = np.column_stack([basis, residual / np.linalg.norm(residual)])
                kept.append(column)
                kept_names.append(name)
                continue
        warnings.warn(f"covariate {name!r} dropped: {dropped[name]}", DesignWarning, stacklevel=3)
    return np.column_stack(kept), kept_names, dropped


def _sample_filters(con: LakeConnection, samples: str | None, keep: SampleList | None,
                    remove: SampleList | None) -> dict[str, Callable[[str], bool]]:
    """The sample selection's drop reasons, in order (the SQL's first, whether given or not), each with whether
    a participant passes it. A ``keep`` id that is not a participant of the release is an error (a typo, or
    another release's list, would otherwise change who is analysed without a word); a ``remove`` id, a warning
    (it changes nothing, as plink2 --remove ignores it)."""
    selected = None if samples is None else set(_column_list(_run(con, samples, what="sample"), "participant_id"))
    filters: dict[str, Callable[[str], bool]] = {
        "not in the sample selection": (lambda pid: True) if selected is None else selected.__contains__}
    if keep is None and remove is None:
        return filters
    participants = " UNION ".join(f"SELECT CAST(participant_id AS VARCHAR) AS participant_id FROM {table}"
                                  for table in ("samples", "idps", "covariates") if table in con.tables())
    known = set(_column_list(con.sql(participants).arrow(), "participant_id"))
    for listed in (keep, remove):
        if listed is None:
            continue
        unknown = [pid for pid in listed.lines if pid not in known]
        if unknown and listed is keep:
            raise QueryError(f"{listed.flag} {listed.path}, line {listed.lines[unknown[0]]}: participant "
                             f"{unknown[0]!r} is not in release {con.release.release!r}"
                             + (f" ({len(unknown):,} of the file's {len(listed.lines):,} ids are not)"
                                if len(unknown) > 1 else ""))
        if unknown:   # removing someone the release lacks changes nothing (a withdrawal list, an older release's)
            warnings.warn(f"{listed.flag} {listed.path}: {len(unknown):,} of its {len(listed.lines):,} ids are not "
                          f"in release {con.release.release!r}, e.g. {unknown[0]!r} (line {listed.lines[unknown[0]]})",
                          DesignWarning, stacklevel=3)
        inside = listed.lines.__contains__
        filters[listed.reason] = inside if listed is keep else (lambda pid, inside=inside: not inside(pid))
    return filters
