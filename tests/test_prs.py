"""Polygenic scores against plink2 --score on the same .bed, and their removal on withdrawal."""

import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from plink2_glm import PLINK2

from biolake.cli import main
from biolake.prs import PRS_CLUMP, mean_column, read_weights, run_prs, score_column
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.errors import BiolakeError, InputError, LakeError
from biolake.lake.lake import Lake
from biolake.lake.vectors import encode_calls
from biolake.lake import withdraw as withdrawal
from biolake.lake.withdraw import withdraw
from biolake.queries import connect
from biolake.stats.prs import threshold_weights
from test_clump import run_plink_clump
from test_report import ld_lake  # noqa: F401  (a fixture: a lake whose release is an LD panel)
from test_withdraw import killed

THRESHOLDS = [1e-3, 0.05, 1.0]


def weights_file(lake, path: Path, rng) -> pl.DataFrame:
    """300 variants of the lake with random weights, half on REF, plus 5 unknown ids and 3 wrong alleles."""
    variants = pl.from_arrow(lake.read("variants", columns=["variant_id", "ref", "alt"])).sample(308, seed=1)
    on_ref = rng.random(308) < 0.5
    frame = pl.DataFrame({
        "ID": variants["variant_id"], "A1": np.where(on_ref, variants["ref"], variants["alt"]),
        "BETA": rng.normal(0, 0.2, 308), "P": rng.uniform(0, 1, 308) ** 3})
    frame = frame.with_columns(pl.when(pl.int_range(pl.len()) < 5).then(pl.lit("rs_unknown_") + pl.col("ID"))
                               .otherwise(pl.col("ID")).alias("ID"),
                               pl.when(pl.int_range(pl.len()).is_between(5, 7)).then(pl.lit("N"))
                               .otherwise(pl.col("A1")).alias("A1"))
    frame.write_csv(path, separator="\t")
    return frame


def test_run_prs__matches_plink2_score_with_missing_calls_and_ref_weights(gwas_lake, scheduler, release_folder,
                                                                            tmp_path):
    frame = weights_file(gwas_lake, tmp_path / "weights.tsv", np.random.default_rng(4))
    report = run_prs(gwas_lake, name="prs", weights=tmp_path / "weights.tsv", thresholds=THRESHOLDS,
                     scheduler=scheduler)
    assert report.unmatched == 5 and report.allele_mismatch == 3
    good = frame.slice(8)
    weights = threshold_weights(good["BETA"].to_numpy(), good["P"].to_numpy(), THRESHOLDS)
    score = tmp_path / "score.tsv"
    pl.DataFrame({"ID": good["ID"], "A1": good["A1"], **{f"w{j}": weights[:, j] for j in range(3)}}).write_csv(
        score, separator="\t", float_precision=17)
    subprocess.run([PLINK2, "--bfile", str(release_folder / "genotypes"), "--score", str(score), "1", "2",
                    "header-read", "cols=+scoresums", "--score-col-nums", "3-5", "--threads", "1",
                    "--out", str(tmp_path / "plink2")], check=True, capture_output=True)
    theirs = pl.read_csv(tmp_path / "plink2.sscore", separator="\t")
    ours = pl.from_arrow(gwas_lake.results_dataset("prs").to_table())
    joined = ours.join(theirs.rename({"IID": "participant_id"}).cast({"participant_id": pl.Utf8}), on="participant_id")
    assert joined.height == ours.height == theirs.height
    for j, threshold in enumerate(THRESHOLDS):
        mine, plink = joined[score_column(threshold)].to_numpy(), joined[f"w{j}_SUM"].to_numpy()
        np.testing.assert_allclose(mine, plink, rtol=1e-5, atol=1e-5 * np.abs(plink).max())
    assert report.variants[score_column(1.0)] == good.height


def test_read_weights__accepts_tool_dialects_and_names_what_is_missing(tmp_path):
    (tmp_path / "regenie.txt").write_text("ID ALLELE1 BETA LOG10P\n".replace(" ", "\t") + "rs1\tA\t0.5\t3\n")
    frame = read_weights(tmp_path / "regenie.txt")
    assert frame.row(0) == ("rs1", "A", 0.5, pytest.approx(1e-3))
    (tmp_path / "bad.tsv").write_text("SNP\tBETA\tP\nrs1\t0.1\t0.2\n")
    with pytest.raises(InputError, match="bad.tsv: no effect allele column"):
        read_weights(tmp_path / "bad.tsv")


def score(lake, scheduler, tmp_path) -> None:
    """Polygenic scores of the lake's participants, as results table 'scores'."""
    weights_file(lake, tmp_path / "w.tsv", np.random.default_rng(5))
    result = CliRunner().invoke(main, ["prs", "--lake", lake.location.root, "--weights", str(tmp_path / "w.tsv"),
                                       "--p-thresholds", "0.05,1", "--name", "scores", "--scheduler", scheduler,
                                       "--quiet"])
    assert result.exit_code == 0, result.output


def test_prs__is_sql_joinable_and_withdrawn_with_the_participant(loaded_lake, scheduler, tmp_path):
    score(loaded_lake, scheduler, tmp_path)
    with connect(loaded_lake) as con:
        joined = con.sql("SELECT count(*) FROM results.scores JOIN covariates USING (participant_id)").fetchone()[0]
    assert joined > 0
    gone = loaded_lake.results_dataset("scores").to_table().column("participant_id").to_pylist()[:2]
    withdraw(loaded_lake, gone)
    remaining = loaded_lake.results_dataset("scores").to_table()
    assert not set(gone) & set(remaining.column("participant_id").to_pylist())
    on_disk = [f for f in Path(loaded_lake.results_uri("scores")).rglob("*.parquet") if "_delta_log" not in f.parts]
    assert len(on_disk) == len(loaded_lake.results("scores").file_uris()), "older files are vacuumed"


def test_prs__a_withdrawal_killed_around_its_scores_delete_resumes_with_its_own_list_only(loaded_lake, scheduler,
                                                                                           tmp_path, monkeypatch):
    score(loaded_lake, scheduler, tmp_path)
    gone = loaded_lake.results_dataset("scores").to_table().column("participant_id").to_pylist()[:2]
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(withdrawal, "_withdraw_from_results", killed)   # every release done
        withdraw(loaded_lake, gone)
    with pytest.raises(LakeError, match="pending with another list"):
        withdraw(loaded_lake, ["nobody-1", "nobody-2"])   # only the scores still tell the lists apart
    with monkeypatch.context() as patched, pytest.raises(KeyboardInterrupt):
        patched.setattr(withdrawal, "erase_history", killed)   # the scores have lost their rows
        withdraw(loaded_lake, gone)
    withdraw(loaded_lake, gone)
    assert not set(gone) & set(loaded_lake.results_dataset("scores").to_table().column("participant_id").to_pylist())
    assert loaded_lake.read("withdrawals").column("participants").to_pylist() == [2]


def test_run_prs__refuses_a_weight_whose_id_names_two_variants(tmp_path):
    g = np.random.default_rng(6).binomial(2, 0.3, (3, 20)).astype(float)
    (tmp_path / "d.bed").write_bytes(bytes([0x6C, 0x1B, 0x01]) + encode_calls(g).tobytes())
    (tmp_path / "d.bim").write_text("1\trs1\t0\t100\tT\tC\n1\trs2\t0\t200\tT\tC\n2\trs1\t0\t300\tA\tG\n")
    (tmp_path / "d.fam").write_text("".join(f"s{j}\ts{j}\t0\t0\t0\t-9\n" for j in range(20)))
    lake = Lake.init(tmp_path / "lake")
    ingest_release(lake, ReleaseSources(bfile=tmp_path / "d"), release="r1", source="test")
    (tmp_path / "w.tsv").write_text("SNP\tA1\tBETA\tP\nrs1\tT\t0.1\t0.01\nrs2\tT\t0.2\t0.01\n")
    with pytest.raises(BiolakeError, match="variant id 'rs1' names 2 variants of release 'r1'"):
        run_prs(lake, name="dup", weights=tmp_path / "w.tsv")


def test_run_prs__clump_and_score_mean_equal_plink19_clump_then_plink2_score(ld_lake, scheduler, tmp_path):
    """C+T as PLINK users run it: plink1.9 --clump of the weights (p1 = p2 = 1, r² 0.1, 250 kb), then plink2
    --score of the index variants per p range (--q-score-range), its SUM (cols=+scoresums) and default AVG."""
    lake, panel = ld_lake
    rng = np.random.default_rng(8)
    frame = pl.DataFrame({"ID": panel.variant_id, "A1": np.where(rng.random(len(panel.p)) < 0.5, "C", "T"),
                          "BETA": rng.normal(0, 0.2, len(panel.p)), "P": panel.p})
    frame.write_csv(tmp_path / "weights.tsv", separator="\t", float_precision=17)
    report = run_prs(lake, name="ct", weights=tmp_path / "weights.tsv", thresholds=THRESHOLDS, clump=PRS_CLUMP,
                     score_mean=True, scheduler=scheduler)
    index = [row["SNP"] for row in run_plink_clump(panel.prefix, frame["ID"].to_numpy(), frame["P"].to_numpy(),
                                                     tmp_path / "clumped", {"p1": 1, "p2": 1, "r2": 0.1, "kb": 250})]
    assert report.clumped_out == frame.height - len(index) and 0 < len(index) < frame.height / 2
    (tmp_path / "index.txt").write_text("\n".join(index) + "\n")
    frame.select("ID", "P").write_csv(tmp_path / "p.tsv", separator="\t", float_precision=17)
    (tmp_path / "ranges.txt").write_text("".join(f"t{j} 0 {t!r}\n" for j, t in enumerate(THRESHOLDS)))
    subprocess.run([PLINK2, "--bfile", str(panel.prefix), "--extract", str(tmp_path / "index.txt"),
                    "--score", str(tmp_path / "weights.tsv"), "1", "2", "3", "header-read", "cols=+scoresums",
                    "--q-score-range", str(tmp_path / "ranges.txt"), str(tmp_path / "p.tsv"), "header",
                    "--threads", "1", "--out", str(tmp_path / "plink2")], check=True, capture_output=True)
    ours = pl.from_arrow(lake.results_dataset("ct").to_table())
    for j, threshold in enumerate(THRESHOLDS):
        theirs = pl.read_csv(tmp_path / f"plink2.t{j}.sscore", separator="\t").rename({"IID": "participant_id"})
        joined = ours.join(theirs.cast({"participant_id": pl.Utf8}), on="participant_id")
        assert joined.height == ours.height == theirs.height
        for mine, plinks in ((score_column(threshold), "BETA_SUM"), (mean_column(threshold), "BETA_AVG")):
            expected = joined[plinks].to_numpy()
            np.testing.assert_allclose(joined[mine].to_numpy(), expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
    assert report.variants[score_column(1.0)] == len(index)


def test_prs_cli__clump_says_how_many_weights_it_left_out(ld_lake, scheduler, tmp_path):
    lake, panel = ld_lake
    pl.DataFrame({"SNP": panel.variant_id, "A1": "T", "BETA": 0.1, "P": panel.p}).write_csv(
        tmp_path / "w.tsv", separator="\t")
    done = CliRunner().invoke(main, ["prs", "--lake", lake.location.root, "--weights", str(tmp_path / "w.tsv"),
                                     "--p-thresholds", "0.05,1", "--clump", "--clump-r2", "0.2", "--score-mean",
                                     "--name", "ct_cli", "--scheduler", scheduler, "--quiet"])
    assert done.exit_code == 0 and "clumped away (in LD with a stronger one)" in done.output, done.output
    assert lake.results_dataset("ct_cli").schema.names == ["participant_id", "prs_p0_05", "prs_p1", "prs_avg_p0_05",
                                                           "prs_avg_p1"]
    assert lake.results_provenance("ct_cli")["clump"] == {"p1": 1.0, "p2": 1.0, "r2": 0.2, "kb": 250.0}
