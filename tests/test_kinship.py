"""KING-robust kinship and the unrelated set checked against plink2 (Debian's ``plink2``, ``make tools``).

The panel (biolake.synth.write_family_panel) holds 24 three-generation families (parents and
children, siblings, grandparents, uncles and aunts, first cousins) and 60 unrelated samples,
2 % of the calls missing, ingested as a lake. plink2 reads the same .bed:

- ``--make-king-table counts --king-table-filter MIN``: the same pairs in the same order, NSNP,
  HETHET and IBS0 equal, KINSHIP equal to the 6 significant digits it prints;
- ``--king-cutoff CUTOFF``: the same unrelated set (both sizes printed), and no pair of ours above
  the cutoff.

plink2 missing fails these tests, never skips them.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
import scipy.sparse
from click.testing import CliRunner

from biolake.cli import main
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.kinship import KinshipSettings, king_count_sum, run_kinship
from biolake.lake.audit import audit
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.lake.withdraw import withdraw
from biolake.queries import connect, genotyped_samples
from biolake.queries.blocks import genotype_blocks
from biolake.scan import TaskInputs
from biolake.stats.kinship import KingCounts
from biolake.synth import family_size, write_family_panel

PLINK2 = shutil.which("plink2") or "plink2"
FAMILIES, UNRELATED, VARIANTS = 24, 60, 4000
SAMPLES = family_size(1) * FAMILIES + UNRELATED


@pytest.fixture(scope="module")
def cohort(tmp_path_factory) -> dict:
    """The family panel and a lake of it (release ``families``)."""
    folder = tmp_path_factory.mktemp("kinship")
    panel = write_family_panel(folder / "panel", families=FAMILIES, unrelated=UNRELATED, variants=VARIANTS, seed=5)
    lake = Lake.init(folder / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="families", source="test")
    return {"folder": folder, "panel": panel, "lake": lake}


def plink2(cohort: dict, *flags: str, out: str) -> str:
    """Run plink2 on the panel's .bed with ``flags``; the output prefix."""
    prefix = str(cohort["folder"] / out)
    done = subprocess.run([PLINK2, "--bfile", str(cohort["panel"].prefix), *flags, "--out", prefix],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return prefix


def printed(values: np.ndarray) -> np.ndarray:
    """Numbers as plink2 prints them: 6 significant digits."""
    return np.array([float(f"{value:.6g}") for value in values])


@pytest.mark.parametrize("minimum", [0.0, 0.0442])
def test_kinship__equals_plink2_make_king_table(cohort, minimum, scheduler):
    name = f"kin_{str(minimum).replace('.', '_')}"
    report = run_kinship(cohort["lake"], KinshipSettings(name=name, min_kinship=minimum), scheduler=scheduler)
    ours = pl.from_arrow(cohort["lake"].results_dataset(name).to_table())
    theirs = pl.read_csv(plink2(cohort, "--make-king-table", "counts", "--king-table-filter", str(minimum),
                                out=name) + ".kin0", separator="\t")
    print(f"--min {minimum}: {report.pairs:,} pairs of ours, {theirs.height:,} of plink2's")
    assert report.variants == VARIANTS and report.samples == SAMPLES and report.pairs == theirs.height > 0
    assert ours["participant_id_1"].to_list() == theirs["IID1"].to_list()
    assert ours["participant_id_2"].to_list() == theirs["IID2"].to_list()
    for column, plinks in (("n_variants", "NSNP"), ("hethet", "HETHET"), ("ibs0", "IBS0")):
        np.testing.assert_array_equal(ours[column].to_numpy(), theirs[plinks].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(printed(ours["kinship"].to_numpy()), theirs["KINSHIP"].to_numpy())


PANELS = {   # families, unrelated, variants, missing calls
    "every_call_present": (4, 12, 1500, 0.0),    # NSNP every variant for every pair: the uncalled sums all zero
    "across_tiles": (3, 16, 40_000, 0.1),         # 40 samples (two blocks of 32), variants over three tiles of 16,384
}


@pytest.mark.parametrize("shape", list(PANELS))
def test_kinship__equals_plink2_make_king_table_on_other_panels(tmp_path, scheduler, shape):
    families, unrelated, variants, missing_calls = PANELS[shape]
    panel = write_family_panel(tmp_path / "panel", families=families, unrelated=unrelated, variants=variants, seed=9,
                               missing_calls=missing_calls)
    lake = Lake.init(tmp_path / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="other", source="test")
    report = run_kinship(lake, KinshipSettings(name="other", min_kinship=0.0), scheduler=scheduler)
    ours = pl.from_arrow(lake.results_dataset("other").to_table())
    theirs = pl.read_csv(plink2({"folder": tmp_path, "panel": panel}, "--make-king-table", "counts",
                                "--king-table-filter", "0", out="other") + ".kin0", separator="\t")
    assert report.pairs == theirs.height > 0 and report.variants == variants
    assert missing_calls or set(ours["n_variants"].to_list()) == {variants}
    assert ours["participant_id_1"].to_list() == theirs["IID1"].to_list()
    assert ours["participant_id_2"].to_list() == theirs["IID2"].to_list()
    for column, plinks in (("n_variants", "NSNP"), ("hethet", "HETHET"), ("ibs0", "IBS0")):
        np.testing.assert_array_equal(ours[column].to_numpy(), theirs[plinks].to_numpy(), err_msg=column)
    np.testing.assert_array_equal(printed(ours["kinship"].to_numpy()), theirs["KINSHIP"].to_numpy())


def test_king_counts__dosages_hard_called_as_plink2():
    """plink2's --hard-call-threshold 0.1: a dosage within 0.1 of a genotype is that genotype, else missing."""
    dosages = np.array([[1.0, 0.91], [0.0, 0.09], [2.0, 1.89], [1.0, 0.5], [2.0, 1.05]])   # variants × 2 samples
    counts = KingCounts.zeros(2).add_calls([(dosages, scipy.sparse.csr_array(dosages.shape, dtype=bool))])
    assert int(counts.n_variants[0, 1]) == 3                    # 1.89 and 0.5 are missing
    assert int(counts.hethet[0, 1]) == 1 and int(counts.ibs0[0, 1]) == 0
    assert [int(counts.het_called[1, 0]), int(counts.het_called[0, 1])] == [1, 2]   # Het_0, Het_1 over both called


@pytest.mark.parametrize("cutoff", [0.0442, 0.0884, 0.177])
def test_kinship__unrelated_set_equals_plink2_king_cutoff(cohort, cutoff, scheduler):
    name = f"cut_{str(cutoff).replace('.', '_')}"
    report = run_kinship(cohort["lake"], KinshipSettings(name=name, min_kinship=0.0, unrelated=cutoff),
                         scheduler=scheduler)
    ours = set(cohort["lake"].results_dataset(report.unrelated_name).to_table()["participant_id"].to_pylist())
    kept = plink2(cohort, "--king-cutoff", str(cutoff), out=name) + ".king.cutoff.in.id"
    theirs = set(pl.read_csv(kept, separator="\t")["IID"].to_list())
    print(f"--unrelated {cutoff}: {len(ours)} unrelated of {SAMPLES} (plink2 --king-cutoff: {len(theirs)})")
    assert report.unrelated == len(ours) and ours == theirs
    pairs = pl.from_arrow(cohort["lake"].results_dataset(name).to_table())
    inside = pairs.filter(pl.col("participant_id_1").is_in(list(ours)) & pl.col("participant_id_2").is_in(list(ours)))
    assert inside["kinship"].max() <= cutoff


def test_kinship__finds_the_planted_relatives(cohort, scheduler):
    """Every pedigree pair of 2nd degree or closer is kept at the default --min; each degree's kinship is its
    pedigree value on average (±0.01), each pair within 0.07 of it (the spread of meioses over 22 chromosomes)."""
    report = run_kinship(cohort["lake"], KinshipSettings(name="planted"), scheduler=scheduler)
    pairs = pl.from_arrow(cohort["lake"].results_dataset("planted").to_table())
    found = {(int(a[1:]), int(b[1:])): k for a, b, k in zip(pairs["participant_id_2"], pairs["participant_id_1"],
                                                            pairs["kinship"])}
    close = {pair: k for pair, k in cohort["panel"].kinship.items() if k >= 0.125}
    assert set(close) <= set(found), f"missed: {sorted(set(close) - set(found))[:5]}"
    for degree in (0.25, 0.125):
        errors = np.array([found[pair] - k for pair, k in close.items() if k == degree])
        print(f"kinship {degree}: {len(errors)} planted pairs, mean error {errors.mean():+.4f}, largest "
              f"{np.abs(errors).max():.3f} ({report.pairs} pairs kept at ≥ 0.0442)")
        assert abs(errors.mean()) < 0.01 and np.abs(errors).max() < 0.07


def test_king_count_sum__same_whatever_the_workers(cohort):
    lake = cohort["lake"]
    blocks = genotype_blocks(lake, release="families")
    one, variants = king_count_sum(lake, TaskInputs(SAMPLES, None), blocks, workers=1)
    for workers in (2, 3):
        counts, again = king_count_sum(lake, TaskInputs(SAMPLES, None), blocks, workers=workers)
        assert again == variants == VARIANTS
        for mine, theirs in zip(counts.arrays(), one.arrays()):
            np.testing.assert_array_equal(mine, theirs)


def test_kinship__cli_selects_samples_and_its_unrelated_set_feeds_samples_sql(cohort, scheduler, tmp_path):
    lake, root = cohort["lake"], str(cohort["lake"].location.root)
    first_families = "SELECT participant_id FROM samples WHERE assay = 'genotypes' AND sample_index < 80"
    out = tmp_path / "pairs.tsv"
    result = CliRunner().invoke(main, ["kinship", "--lake", root, "--samples-sql", first_families, "--unrelated",
                                       "0.0884", "--name", "cli", "--out", str(out), "--scheduler", scheduler,
                                       "--quiet"])
    assert result.exit_code == 0, result.output
    assert "unrelated participants" in result.output and out.exists()
    pairs = pl.read_csv(out, separator="\t")
    named = {*pairs["participant_id_1"], *pairs["participant_id_2"]}
    assert named and all(int(pid[1:]) < 80 for pid in named)
    with connect(lake, queries=["SELECT participant_id FROM results.cli_unrelated"]) as con:
        chosen = genotyped_samples(con, samples="SELECT participant_id FROM results.cli_unrelated")
    assert 0 < len(chosen.participant_ids) < 80
    assert all(int(pid[1:]) < 80 for pid in chosen.participant_ids)


def test_kinship__only_autosomes_count(cohort):
    with pytest.raises(BiolakeError, match=r"no autosomal genotypes on chromosomes X: KING-robust kinship"):
        run_kinship(cohort["lake"], KinshipSettings(name="x_only", chromosomes=["X"]))


def test_kinship__withdrawal_purges_pairs_and_unrelated_set(cohort, scheduler, tmp_path):
    lake = Lake.open(shutil.copytree(cohort["lake"].location.root, tmp_path / "lake"))
    run_kinship(lake, KinshipSettings(name="kin", unrelated=0.0884), scheduler=scheduler)
    pairs = lake.results_dataset("kin").to_table()
    unrelated = lake.results_dataset("kin_unrelated").to_table()["participant_id"].to_pylist()
    gone = ["s0", "s7", unrelated[-1]]          # a grandparent, a grandchild and an unrelated participant
    assert {"s0", "s7"} <= {*pairs["participant_id_1"].to_pylist(), *pairs["participant_id_2"].to_pylist()}
    assert audit(lake, gone).traces

    withdraw(lake, gone)
    left = lake.results_dataset("kin").to_table()
    naming = [a in gone or b in gone for a, b in zip(pairs["participant_id_1"].to_pylist(),
                                                     pairs["participant_id_2"].to_pylist())]
    assert any(naming) and left.to_pylist() == pairs.filter(pa.array([not n for n in naming])).to_pylist()
    assert lake.results_dataset("kin_unrelated").to_table()["participant_id"].to_pylist() == [
        pid for pid in unrelated if pid not in gone]
    assert not audit(lake, gone).traces


def test_kinship__replaced_without_unrelated_drops_the_earlier_set(cohort, scheduler, tmp_path):
    lake = Lake.open(shutil.copytree(cohort["lake"].location.root, tmp_path / "lake"))
    run_kinship(lake, KinshipSettings(name="kin", unrelated=0.0884), scheduler=scheduler)
    assert "kin_unrelated" in lake.results_names()
    run_kinship(lake, KinshipSettings(name="kin", min_kinship=0.177, replace=True), scheduler=scheduler)
    assert "kin" in lake.results_names() and "kin_unrelated" not in lake.results_names()
