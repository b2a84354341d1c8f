"""--keep FILE and --remove FILE (#32): the participants plink2 --keep/--remove choose, read from the same files."""

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from plink2_glm import plink2, write_design_files

from biolake.cli import main
from biolake.frame import settings_record
from biolake.gwas import GwasSettings, run_gwas
from biolake.ingest.participants import read_sample_list
from biolake.lake.errors import BiolakeError
from biolake.queries import connect, design
from biolake.queries.design import SampleList, genotyped_samples

COVARIATES = ["age", "sex", "site", "PC1", "PC2"]


def sample_lists(release_folder: Path, folder: Path) -> tuple[Path, Path]:
    """A keep file naming every third participant of the .fam (a header, a comment, FID IID) and a remove file
    naming every seventh (FID IID, no header): PLINK's forms. (plink2 matches a one-column file against
    FID-less samples only, and a .fam gives every sample an FID, so it would keep or remove nobody here;
    biolake knows participants by IID alone.)"""
    fam = [line.split()[:2] for line in (release_folder / "genotypes.fam").read_text().splitlines()]
    keep, remove = folder / "keep.txt", folder / "remove.txt"
    keep.write_text("#FID IID\n# every third participant\n"
                    + "".join(f"{fid}\t{iid}\n" for fid, iid in fam[::3]))
    remove.write_text("".join(f"{fid} {iid}\n" for fid, iid in fam[::7]))
    return keep, remove


def listed(keep: Path, remove: Path) -> dict[str, SampleList]:
    return {"keep": SampleList("--keep", str(keep), read_sample_list(keep)),
            "remove": SampleList("--remove", str(remove), read_sample_list(remove))}


def test_keep_and_remove__the_samples_plink2_keeps(gwas_lake, release_folder, tmp_path):
    keep, remove = sample_lists(release_folder, tmp_path)
    plink2("--bfile", str(release_folder / "genotypes"), "--keep", str(keep), "--remove", str(remove),
           "--write-samples", "--out", str(tmp_path / "kept"))
    theirs = [line.split()[-1] for line in (tmp_path / "kept.id").read_text().splitlines()[1:]]
    with connect(gwas_lake) as con:
        ours = genotyped_samples(con, **listed(keep, remove)).participant_ids
    assert 0 < len(ours) < 301 // 3
    assert ours == theirs
    bare = tmp_path / "bare.txt"    # one id per line: the same participants
    bare.write_text("".join(f"{line.split()[1]}\n" for line in remove.read_text().splitlines()))
    with connect(gwas_lake) as con:
        assert genotyped_samples(con, keep=listed(keep, remove)["keep"],
                                 remove=SampleList("--remove", str(bare), read_sample_list(bare))).participant_ids == ours


def test_run_gwas__keep_and_remove_equal_plink2_glm_keep_remove(gwas_lake, release_folder, scheduler, idps,
                                                                 tmp_path):
    keep, remove = sample_lists(release_folder, tmp_path)
    report = run_gwas(gwas_lake, GwasSettings(name="kept", phenotypes=[idps[0]], covariates=COVARIATES,
                                              **listed(keep, remove)), scheduler=scheduler)
    with connect(gwas_lake) as con:   # everyone's values: plink2 chooses the samples itself, from the same files
        everyone = design(con, phenotypes=[idps[0]], covariates=COVARIATES)
    pheno, covar = write_design_files(everyone, tmp_path)
    plink2("--bfile", str(release_folder / "genotypes"), "--keep", str(keep), "--remove", str(remove),
           "--pheno", str(pheno), "--covar", str(covar),
           "--no-psam-pheno", "--no-input-missing-phenotype", "--glm", "hide-covar", "omit-ref", "--out", str(tmp_path / "glm"))
    theirs = pl.read_csv(tmp_path / "glm.c0.glm.linear", separator="\t", null_values="NA")
    ours = pl.from_arrow(gwas_lake.results_dataset("kept").to_table()).join(
        theirs.select(variant_id="ID", their_alt="A1", their_n="OBS_CT", their_beta="BETA", their_p="P"),
        on="variant_id")
    assert ours.height == theirs.height == report.rows
    assert (ours["alt"] == ours["their_alt"]).all()
    np.testing.assert_array_equal(ours["n"].to_numpy(), ours["their_n"].to_numpy())
    tested = ours.filter(pl.col("their_p").is_not_null())
    assert tested.height > 0.9 * ours.height
    for column in ("beta", "p"):
        np.testing.assert_allclose(tested[column].to_numpy(), tested[f"their_{column}"].to_numpy(), rtol=1e-5)
    dropped = gwas_lake.results_provenance("kept")["dropped"]
    assert dropped["not in --keep"] > 0 and dropped["in --remove"] > 0
    record = settings_record(GwasSettings(name="kept", phenotypes=[idps[0]], covariates=COVARIATES,
                                          **listed(keep, remove)))["keep"]
    assert (record["path"], record["participants"], len(record["sha256"])) == (str(keep), 101, 64)


def test_keep__an_id_the_release_lacks_names_its_line(gwas_lake, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("#IID\n" + "\n".join(gwas_lake.read("samples").column("participant_id").to_pylist()[:3])
                    + "\nnobody\n")
    with connect(gwas_lake) as con, pytest.raises(BiolakeError, match=rf"--keep {keep}, line 5: participant "
                                                                      r"'nobody' is not in release 'r1'$"):
        genotyped_samples(con, keep=SampleList("--keep", str(keep), read_sample_list(keep)))


def test_remove__an_id_the_release_lacks_is_a_warning_as_plink2_ignores_it(gwas_lake, tmp_path):
    remove = tmp_path / "withdrawn.txt"
    first = gwas_lake.read("samples").column("participant_id").to_pylist()[0]
    remove.write_text(f"{first}\nnobody_here\n")
    with connect(gwas_lake) as con, pytest.warns(UserWarning, match=r"1 of its 2 ids are not in release 'r1', "
                                                                     r"e.g. 'nobody_here' \(line 2\)"):
        chosen = genotyped_samples(con, remove=SampleList("--remove", str(remove), read_sample_list(remove)))
    assert first not in chosen.participant_ids and len(chosen.participant_ids) == chosen.vector_length - 1


def test_gwas_cli__keep_and_remove_report_their_drops(gwas_lake, release_folder, scheduler, idps, tmp_path):
    keep, remove = sample_lists(release_folder, tmp_path)
    result = CliRunner().invoke(main, ["gwas", "--lake", gwas_lake.location.root, "--pheno", idps[1], "--covar",
                                       "age,sex", "--keep", str(keep), "--remove", str(remove), "--name", "kept_cli",
                                       "--scheduler", scheduler, "--quiet"])
    assert result.exit_code == 0, result.output
    assert "not in --keep: " in result.output and "in --remove: " in result.output
