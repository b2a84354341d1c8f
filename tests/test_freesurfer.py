"""IDPs straight from FreeSurfer's group tables (#33 item 1): asegstats2table and aparcstats2table files, in their
exact layout, round-trip through ingest (values, subjects, the dictionary derived from the names)."""

from pathlib import Path

import numpy as np
import pytest

from biolake.ingest.freesurfer import read_freesurfer_tables
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import InputError
from biolake.lake.lake import Lake
from biolake.queries import connect

ASEG = ["Left-Lateral-Ventricle", "Left-Hippocampus", "Right-Hippocampus", "lhCortexVol", "BrainSegVol",
        "EstimatedTotalIntraCranialVol"]


def aparc(hemi: str) -> list[str]:
    return [f"{hemi}_bankssts_thickness", f"{hemi}_cuneus_thickness", f"{hemi}_MeanThickness_thickness",
            "BrainSegVolNotVent", "eTIV"]


def write_table(path: Path, name: str, columns: list[str], subjects: list[str], values: np.ndarray) -> None:
    """A table as asegstats2table / aparcstats2table write it: tab-separated, the table's name heading the
    subject column, one row per subject."""
    lines = ["\t".join([name, *columns])]
    lines += ["\t".join([subject, *(f"{value:.6f}" for value in row)]) for subject, row in zip(subjects, values)]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def tables(tmp_path_factory, release_folder) -> dict:
    folder = tmp_path_factory.mktemp("freesurfer") / "stats"
    folder.mkdir()
    subjects = [line.split()[1] for line in (release_folder / "genotypes.fam").read_text().splitlines()]
    rng = np.random.default_rng(8)
    etiv, brain = rng.normal(1.5e6, 1e5, len(subjects)), rng.normal(1.1e6, 8e4, len(subjects))
    aseg = np.column_stack([rng.normal(8000, 2000, len(subjects)), rng.normal(4200, 300, len(subjects)),
                            rng.normal(4300, 300, len(subjects)), rng.normal(2.4e5, 2e4, len(subjects)), brain, etiv])
    write_table(folder / "aseg.volume.txt", "Measure:volume", ASEG, subjects, aseg)
    sides = {}
    for hemi in ("lh", "rh"):
        chosen = subjects if hemi == "lh" else subjects[:-3]   # three subjects lack a right-hemisphere run
        values = np.column_stack([rng.normal(2.5, 0.2, len(chosen)), rng.normal(1.9, 0.15, len(chosen)),
                                  rng.normal(2.45, 0.1, len(chosen)), brain[:len(chosen)] - 2e4,
                                  etiv[:len(chosen)]])
        write_table(folder / f"{hemi}.aparc.thickness.txt", f"{hemi}.aparc.thickness", aparc(hemi), chosen, values)
        sides[hemi] = values
    return {"folder": folder, "subjects": subjects, "aseg": aseg, **sides}


def test_freesurfer_tables__round_trip_through_ingest_with_their_dictionary(tables, release_folder, tmp_path):
    lake = Lake.init(tmp_path / "lake")
    with pytest.warns(UserWarning, match=r"rh\.aparc\.thickness\.txt: 3 of the 301 subjects of the other tables "
                                         r"are not in it \(e\.g\. \d+\); their values of its 5 columns are missing"):
        ingest_release(lake, ReleaseSources(bfile=release_folder / "genotypes", idps=tables["folder"]),
                       release="r1", source="test")
    idps = lake.read("idps").to_pandas().set_index("participant_id").loc[tables["subjects"]]
    np.testing.assert_allclose(idps[ASEG].to_numpy(), tables["aseg"], atol=5e-7)   # as printed: 6 decimals
    np.testing.assert_allclose(idps[aparc("lh")[:3]].to_numpy(), tables["lh"][:, :3], atol=5e-7)
    right = idps[aparc("rh")[:3]].to_numpy()
    assert np.isnan(right[-3:]).all() and not np.isnan(right[:-3]).any()
    assert idps["eTIV"].notna().all()    # shared by both aparc tables, and equal in them
    with connect(lake) as con:
        left_thickness = con.sql("SELECT field FROM idp_fields WHERE hemisphere = 'left' AND measure = 'thickness' "
                                 "AND category LIKE 'Cortical%' ORDER BY field").fetchall()
        described = {row[0]: row[1:] for row in con.sql(
            "SELECT field, structure, hemisphere, measure, unit, category FROM idp_fields").fetchall()}
    assert [row[0] for row in left_thickness] == ["lh_bankssts_thickness", "lh_cuneus_thickness"]
    assert described["Left-Hippocampus"] == ("Hippocampus", "left", "volume", "mm^3", "Subcortical volume (aseg)")
    assert described["lhCortexVol"][:2] == ("CortexVol", "left")
    assert described["EstimatedTotalIntraCranialVol"][-1] == "Global volume (aseg)"
    assert described["eTIV"] == ("eTIV", None, "volume", "mm^3", "Global volume (aparc)")
    assert described["rh_MeanThickness_thickness"][-1] == "Global thickness (aparc)"


@pytest.mark.parametrize("text, message", [
    ("Measure:volume\tLeft-Hippocampus\tBrainSegVol\nsub1\t4200.1\n", r"line 2: expected 3 whitespace-separated "
                                                                       r"fields \(a subject, then 2 values\), found 2"),
    ("Measure:volume\tLeft-Hippocampus\nsub1\t4200.1\nsub2\tn/a\n", r"line 3, column 'Left-Hippocampus': 'n/a' is "
                                                                     r"not a number"),
    ("Measure:volume\tLeft-Hippocampus\nsub1\t4200.1\nsub1\t4100.0\n", r"line 3: subject 'sub1' appears twice"),
    ("subject\tLeft-Hippocampus\nsub1\t4200.1\n", r"line 1: expected a FreeSurfer table"),
])
def test_freesurfer_table__bad_input_names_file_and_line(tmp_path, text, message):
    path = tmp_path / "aseg.txt"
    path.write_text(text)
    with pytest.raises(InputError, match=rf"aseg\.txt, {message}"):
        read_freesurfer_tables([path])


def test_freesurfer_tables__a_shared_measure_that_differs_is_refused(tmp_path):
    lh, rh = tmp_path / "lh.txt", tmp_path / "rh.txt"
    lh.write_text("lh.aparc.area\tlh_cuneus_area\teTIV\nsub1\t1500\t1500000\n")
    rh.write_text("rh.aparc.area\trh_cuneus_area\teTIV\nsub1\t1520\t1400000\n")
    with pytest.raises(InputError, match=r"rh\.txt, line 1: column 'eTIV' differs from the one of .*lh\.txt"):
        read_freesurfer_tables([lh, rh])
