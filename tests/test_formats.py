"""Every genotype format yields identical lake tables for identical genotypes (files written by plink2)."""

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import InputError
from biolake.lake.lake import Lake
from biolake.lake.vectors import decode_calls, decode_dosages

PLINK2 = shutil.which("plink2") or "plink2"  # a missing plink2 fails the test, never skips it


def plink2(*args: str) -> None:
    subprocess.run([PLINK2, *args], check=True, capture_output=True)


def lake_tables(tmp_path: Path, name: str, sources: ReleaseSources):
    lake = Lake.init(tmp_path / name)
    ingest_release(lake, sources, release="r1", source="test")
    genotypes = lake.read("genotypes").sort_by("variant_index")
    samples = sorted(lake.read("samples").to_pylist(), key=lambda r: r["sample_index"])
    n = len(samples)
    dosages = np.vstack([decode_calls([row["calls"]], n) if row["calls"] else
                         decode_dosages([row["dosage"]], n)
                         for row in genotypes.select(["calls", "dosage"]).to_pylist()])
    variants = genotypes.select(["chrom", "pos", "variant_id", "ref", "alt", "alt_freq", "n_called"])
    return [s["participant_id"] for s in samples], variants, dosages


FORMATS = {  # name: (plink2 export arguments, the sources to ingest from tmp_path)
    "pgen": (["--make-pgen"], lambda tmp: ReleaseSources(pfile=tmp / "g")),
    "vcf-GT": (["--export", "vcf", "id-paste=iid"], lambda tmp: ReleaseSources(vcf=tmp / "g.vcf")),
    "vcf-DS": (["--export", "vcf", "vcf-dosage=DS-force", "id-paste=iid"],
               lambda tmp: ReleaseSources(vcf=tmp / "g.vcf")),
    "bgen": (["--export", "bgen-1.2", "bits=8", "id-paste=iid"],
             lambda tmp: ReleaseSources(bgen=tmp / "g.bgen", sample=tmp / "g.sample")),
}


@pytest.mark.parametrize("export, sources", FORMATS.values(), ids=FORMATS.keys())
def test_format__identical_to_the_bed(tmp_path, release_folder, export, sources):
    plink2("--bfile", str(release_folder / "genotypes"), *export, "--out", str(tmp_path / "g"))
    expected = lake_tables(tmp_path, "bed", ReleaseSources(bfile=release_folder / "genotypes"))
    found = lake_tables(tmp_path, "other", sources(tmp_path))
    assert found[0] == expected[0]
    assert found[1].equals(expected[1])
    np.testing.assert_array_equal(found[2], expected[2])


def test_format__no_cm_outside_the_bim(tmp_path, release_folder):
    """Only a .bim carries genetic positions: a .pgen's variants have cm null."""
    plink2("--bfile", str(release_folder / "genotypes"), "--make-pgen", "--out", str(tmp_path / "g"))
    lake = Lake.init(tmp_path / "lake")
    ingest_release(lake, ReleaseSources(pfile=tmp_path / "g"), release="r1", source="test")
    assert lake.read("variants", columns=["cm"]).column(0).null_count == lake.read("variants").num_rows > 0


def test_pfile__bad_files_name_the_file(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--make-pgen", "--out", str(tmp_path / "g"))
    pvar = tmp_path / "g.pvar"
    lines = pvar.read_text().splitlines()
    cells = lines[5].split("\t")
    cells[4] = "A,T"
    pvar.write_text("\n".join([*lines[:5], "\t".join(cells), *lines[6:]]) + "\n")
    with pytest.raises(InputError, match=r"g\.pvar, line 6: .*multi-allelic"):
        ingest_release(Lake.init(tmp_path / "l1"), ReleaseSources(pfile=tmp_path / "g"), release="r1",
                       source="test")
    pvar.write_text("\n".join(lines[:-1]) + "\n")  # one variant fewer than the .pgen holds
    with pytest.raises(InputError, match=r"g\.pgen.*variants but the \.pvar lists"):
        ingest_release(Lake.init(tmp_path / "l2"), ReleaseSources(pfile=tmp_path / "g"), release="r1",
                       source="test")
    pvar.write_text("\n".join(lines) + "\n")
    (tmp_path / "g.pgen").write_bytes(b"not a pgen")
    with pytest.raises(InputError, match=r"g\.pgen"):
        ingest_release(Lake.init(tmp_path / "l3"), ReleaseSources(pfile=tmp_path / "g"), release="r1",
                       source="test")


def test_vcf__multi_allelic_records_are_refused(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "vcf", "--out", str(tmp_path / "g"))
    path = tmp_path / "g.vcf"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    cells = lines[first + 3].split("\t")
    cells[4] = f"{cells[4]},G" if cells[3] != "G" else f"{cells[4]},C"
    lines[first + 3] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"g\.vcf: .*2 ALT alleles"):
        ingest_release(Lake.init(tmp_path / "l"), ReleaseSources(vcf=path), release="r1", source="test")


def test_bgen__sample_file_must_match(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "bgen-1.2", "bits=8", "id-paste=iid",
           "--out", str(tmp_path / "g"))
    sample = tmp_path / "g.sample"
    sample.write_text("\n".join(sample.read_text().splitlines()[:-1]) + "\n")
    with pytest.raises(InputError, match=r"g\.sample: lists 300 samples but g\.bgen holds 301"):
        ingest_release(Lake.init(tmp_path / "l"), ReleaseSources(bgen=tmp_path / "g.bgen", sample=sample),
                       release="r1", source="test")


def refused(tmp_path: Path, sources: ReleaseSources, match: str) -> None:
    with pytest.raises(InputError, match=match):
        ingest_release(Lake.init(tmp_path / "refused", exist_ok=True), sources, release="r1", source="test")


def test_pfile__truncated_pgen_is_refused_before_writing(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--make-pgen", "--out", str(tmp_path / "g"))
    pgen = tmp_path / "g.pgen"
    pgen.write_bytes(pgen.read_bytes()[:-100])
    refused(tmp_path, ReleaseSources(pfile=tmp_path / "g"), r"g\.pgen: .*truncated")


def test_pfile__fractional_dosages_are_kept(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "vcf", "vcf-dosage=DS-force",
           "id-paste=iid", "--out", str(tmp_path / "g"))
    vcf = tmp_path / "g.vcf"
    vcf.write_text(vcf.read_text().replace(":1\t", ":0.75\t"))  # hets become imputed dosages
    plink2("--vcf", str(vcf), "dosage=DS", "--make-pgen", "--out", str(tmp_path / "g"))
    from_vcf = lake_tables(tmp_path, "vcf", ReleaseSources(vcf=vcf))
    from_pgen = lake_tables(tmp_path, "pgen", ReleaseSources(pfile=tmp_path / "g"))
    assert np.isclose(from_pgen[2], 0.75, atol=1e-4).any()  # stored as dosages, not rounded to calls
    np.testing.assert_allclose(from_pgen[2], from_vcf[2], atol=1 / 16384)


def test_vcf__unparsable_record_names_the_file(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "vcf", "--out", str(tmp_path / "g"))
    path = tmp_path / "g.vcf"
    path.write_text(path.read_text()[:-300] + "\n")  # the last record cut short
    refused(tmp_path, ReleaseSources(vcf=path), r"g\.vcf: cannot parse the record after")


def test_bgen__truncated_or_mislabelled_files_are_refused(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "bgen-1.2", "bits=8", "id-paste=iid",
           "--out", str(tmp_path / "g"))
    bgen, sample = tmp_path / "g.bgen", tmp_path / "g.sample"
    lines = sample.read_text().splitlines()
    lines[2], lines[3] = lines[3], lines[2]
    sample.write_text("\n".join(lines) + "\n")
    refused(tmp_path, ReleaseSources(bgen=bgen, sample=sample), r"g\.sample, line 3: sample 1 is")
    lines[2], lines[3] = lines[3], lines[2]
    sample.write_text("\n".join(lines) + "\n")
    bgen.write_bytes(bgen.read_bytes()[:-100])
    refused(tmp_path, ReleaseSources(bgen=bgen, sample=sample), r"g\.bgen: .*truncated")


def test_vcf__a_monomorphic_site_is_kept(tmp_path, release_folder):
    plink2("--bfile", str(release_folder / "genotypes"), "--export", "vcf", "id-paste=iid",
           "--out", str(tmp_path / "g"))
    path = tmp_path / "g.vcf"
    lines = path.read_text().splitlines()
    first = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    cells = lines[first].split("\t")
    cells[4] = "."
    cells[9:] = ["0/0"] * len(cells[9:])
    lines[first] = "\t".join(cells)
    path.write_text("\n".join(lines) + "\n")
    lake = Lake.init(tmp_path / "l")
    ingest_release(lake, ReleaseSources(vcf=path), release="r1", source="test")
    row = lake.read("variants").sort_by("variant_index").to_pylist()[0]
    assert row["alt"] == "." and row["alt_freq"] == 0.0
