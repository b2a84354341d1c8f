"""IDPs straight from FreeSurfer: the group tables ``asegstats2table`` and ``aparcstats2table`` write.

Each table is whitespace-separated (tabs by default), one row per subject; its first header cell
names the table (``Measure:volume`` for aseg, ``lh.aparc.thickness`` / ``rh.aparc.a2009s.area`` …
for aparc), the other cells the measures (``Left-Hippocampus``, ``lh_bankssts_thickness``, ``eTIV`` …).
Several tables (aseg, and lh and rh aparc per measure) make one release's IDP table: columns of the
same name in two tables (``eTIV``, ``BrainSegVolNotVent``) must agree, a subject missing from a table
is reported (its values there are missing), and the data dictionary is derived from the names:
structure, hemisphere, measure, unit and category, so that ``idp_fields`` answers "every left cortical
thickness" in SQL.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from biolake.lake.errors import InputError
from biolake.lake.schema import TABLES

TABLE_NAME = re.compile(r"^(?:Measure:(?P<aseg>\w+)|(?P<hemi>lh|rh)\.(?P<parcellation>[\w.]+)\.(?P<measure>\w+))$")
UNITS = {"volume": "mm^3", "area": "mm^2", "thickness": "mm", "thicknessstd": "mm", "meancurv": "mm^-1",
         "gauscurv": "mm^-2", "foldind": None, "curvind": None}
HEMISPHERES = {"lh": "left", "rh": "right", "Left": "left", "Right": "right"}
GLOBAL_MEASURES = ("eTIV", "EstimatedTotalIntraCranialVol", "BrainSeg", "Cortex", "CerebralWhiteMatter",
                   "SubCortGray", "TotalGray", "SupraTentorial", "Mask", "MeanThickness", "WhiteSurfArea")


@dataclass(frozen=True)
class FreeSurferTables:
    """The IDPs of one or more FreeSurfer tables: subjects (in first-seen order), one column of values per
    measure (NaN where a table lacks a subject), and each measure's dictionary entry."""

    subjects: list[str]
    values: dict[str, np.ndarray]
    fields: dict[str, dict[str, str | None]]     # measure → name, structure, hemisphere, measure, unit, category


def is_freesurfer_table(path: Path) -> bool:
    """Whether ``path`` is a table asegstats2table or aparcstats2table wrote (by its first header cell)."""
    try:
        with path.open() as lines:
            first = lines.readline().split()
    except (OSError, UnicodeDecodeError):
        return False
    return bool(first) and TABLE_NAME.match(first[0]) is not None


def freesurfer_tables(source: Path) -> list[Path]:
    """The FreeSurfer tables ``source`` names: itself if it is one, or those of a folder (sorted by name)."""
    if source.is_dir():
        return sorted(path for path in source.iterdir() if path.is_file() and is_freesurfer_table(path))
    return [source] if is_freesurfer_table(source) else []


def read_freesurfer_tables(paths: list[Path]) -> FreeSurferTables:
    """The IDPs of the FreeSurfer tables ``paths``, merged by subject (see the module docstring).

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "aseg.volume.txt").write_text(
    ...     "Measure:volume\\tLeft-Hippocampus\\tRight-Hippocampus\\tEstimatedTotalIntraCranialVol\\n"
    ...     "sub-01\\t4213.5\\t4301.2\\t1523456.1\\nsub-02\\t3988.0\\t4020.9\\t1432198.7\\n")
    >>> _ = (folder / "lh.aparc.thickness.txt").write_text(
    ...     "lh.aparc.thickness\\tlh_bankssts_thickness\\tlh_MeanThickness_thickness\\teTIV\\n"
    ...     "sub-01\\t2.512\\t2.431\\t1523456.1\\n")
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     tables = read_freesurfer_tables(freesurfer_tables(folder))
    >>> print(caught[0].message)   # doctest: +ELLIPSIS
    /.../lh.aparc.thickness.txt: 1 of the 2 subjects of the other tables are not in it (e.g. sub-02); their values of its 3 columns are missing
    >>> tables.subjects, tables.values["lh_bankssts_thickness"].tolist()
    (['sub-01', 'sub-02'], [2.512, nan])
    >>> tables.fields["lh_bankssts_thickness"]
    {'name': 'lh_bankssts_thickness', 'structure': 'bankssts', 'hemisphere': 'left', 'measure': 'thickness', 'unit': 'mm', 'category': 'Cortical thickness (aparc)'}
    >>> tables.fields["Left-Hippocampus"]["category"], tables.fields["eTIV"]["hemisphere"]
    ('Subcortical volume (aseg)', None)
    """
    subjects: dict[str, int] = {}
    read = [_read_table(path) for path in paths]
    for _, rows, _ in read:
        for subject in rows:
            subjects.setdefault(subject, len(subjects))
    values: dict[str, np.ndarray] = {}
    fields: dict[str, dict[str, str | None]] = {}
    origin: dict[str, Path] = {}
    for path, (header, rows, columns) in zip(paths, read):
        absent = [subject for subject in subjects if subject not in rows]
        if absent:
            warnings.warn(f"{path}: {len(absent):,} of the {len(subjects):,} subjects of the other tables are not in "
                          f"it (e.g. {absent[0]}); their values of its {len(columns):,} columns are missing",
                          UserWarning, stacklevel=2)
        for j, column in enumerate(columns):
            merged = np.full(len(subjects), np.nan)
            for subject, row in rows.items():
                merged[subjects[subject]] = row[j]
            if column in values:
                both = ~np.isnan(values[column]) & ~np.isnan(merged)
                if not np.allclose(values[column][both], merged[both], rtol=1e-6):
                    raise InputError(path, f"column {column!r} differs from the one of {origin[column]} (a measure "
                                     "two tables share must agree: were they made from the same subjects' runs?)",
                                     line=1)
                values[column] = np.where(np.isnan(values[column]), merged, values[column])
                continue
            values[column], origin[column] = merged, path
            fields[column] = _described(column, header)
    return FreeSurferTables(list(subjects), values, fields)


def freesurfer_idps(paths: list[Path], *, release: str, dictionary: Path | None = None) -> tuple[pa.Table, pa.Table]:
    """The ``idps`` and ``idp_fields`` tables of a release from the FreeSurfer tables ``paths``: the subject is the
    participant id, each measure a column, its dictionary entry derived from its name."""
    if dictionary is not None:
        raise InputError(dictionary, "FreeSurfer tables carry their dictionary in their column names (structure, "
                         "hemisphere, measure); give no --idp-fields with them")
    tables = read_freesurfer_tables(paths)
    idps = pa.table({"release": pa.array([release] * len(tables.subjects), pa.string()),
                     "participant_id": pa.array(tables.subjects, pa.string()),
                     **{name: pa.array(values, pa.float64(), from_pandas=True)
                        for name, values in tables.values.items()}})
    fields = pa.Table.from_pylist([{"release": release, "field": name, **entry} for name, entry in tables.fields.items()],
                                  schema=TABLES["idp_fields"].arrow_schema())
    return idps, fields


def _read_table(path: Path) -> tuple[re.Match, dict[str, list[float]], list[str]]:
    """One table's name (its first header cell, parsed), rows by subject and value columns."""
    lines = path.read_text().splitlines()
    header = lines[0].split() if lines else []
    named = TABLE_NAME.match(header[0]) if header else None
    if named is None:
        raise InputError(path, "expected a FreeSurfer table (asegstats2table or aparcstats2table): a first header "
                         "cell such as Measure:volume or lh.aparc.thickness", line=1)
    columns = header[1:]
    repeated = sorted({column for column in columns if columns.count(column) > 1})
    if repeated:
        raise InputError(path, f"column {repeated[0]!r} appears twice in the header", line=1)
    rows: dict[str, list[float]] = {}
    for number, line in enumerate(lines[1:], start=2):
        cells = line.split()
        if not cells:
            continue
        if len(cells) != len(header):
            raise InputError(path, f"expected {len(header)} whitespace-separated fields (a subject, then "
                             f"{len(columns)} values), found {len(cells)}", line=number)
        if cells[0] in rows:
            raise InputError(path, f"subject {cells[0]!r} appears twice", line=number)
        try:
            rows[cells[0]] = [float(cell) for cell in cells[1:]]
        except ValueError:
            bad = next(j for j, cell in enumerate(cells[1:]) if not _is_number(cell))
            raise InputError(path, f"{cells[bad + 1]!r} is not a number", line=number, column=columns[bad]) from None
    if not rows:
        raise InputError(path, "no subject rows below the header")
    return named, rows, columns


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _described(column: str, table: re.Match) -> dict[str, str | None]:
    """A measure's dictionary entry, from its name and its table's name."""
    if table["aseg"]:
        measure, parcellation = table["aseg"], "aseg"
        side, _, rest = column.partition("-")
        hemisphere = HEMISPHERES.get(side) if rest else None
        structure = rest if hemisphere else column
        if hemisphere is None and column[:2] in ("lh", "rh") and column[2:3].isupper():   # lhCortexVol
            hemisphere, structure = HEMISPHERES[column[:2]], column[2:]
        kind = "Global" if any(structure.startswith(name) for name in GLOBAL_MEASURES) else "Subcortical"
    else:
        measure, parcellation = table["measure"], table["parcellation"]
        prefix, suffix = f"{table['hemi']}_", f"_{measure}"
        if column.startswith(prefix) and column.endswith(suffix):
            hemisphere, structure = HEMISPHERES[table["hemi"]], column[len(prefix):-len(suffix)]
            kind = "Global" if structure in GLOBAL_MEASURES else "Cortical"
        else:   # eTIV, BrainSegVolNotVent: global measures every aparc table repeats
            hemisphere, structure, kind, measure = None, column, "Global", "volume"
    return {"name": column, "structure": structure, "hemisphere": hemisphere, "measure": measure,
            "unit": UNITS.get(measure), "category": f"{kind} {measure} ({parcellation})"}
