"""CNV calls into the lake (PLINK .cnv and PennCNV), and the CNV jobs: burden against PLINK 1.07's .cnv.indiv,
carriers against the planted truth, association against statsmodels' OLS."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import statsmodels.api as sm
from click.testing import CliRunner

from biolake.cli import main
from biolake.cnv import (CarrierChoice, CnvAssocSettings, CnvBurdenSettings, CnvCarriersSettings, run_cnv_assoc,
                         run_cnv_burden, run_cnv_carriers)
from biolake.ingest.cnv import read_cnv_calls
from biolake.lake.audit import audit
from biolake.lake.lake import Lake
from biolake.lake.withdraw import withdraw
from biolake.queries import connect
from biolake.queries.cnvs import CnvFilter
from biolake.stats.cnv import reciprocal_overlap

PLINK107 = shutil.which("plink1") or "plink1"   # Debian's plink 1.07; a missing one fails the test, never skips it


def run_cli(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def truth(release_folder: Path) -> dict:
    return json.loads((release_folder / "truth.json").read_text())


def test_read_cnv_calls__penncnv_and_plink_files_of_the_same_calls_give_the_same_rows(release_folder: Path) -> None:
    plink, penncnv = (read_cnv_calls(release_folder / name, release="r1") for name in ("calls.cnv", "calls.penncnv"))
    assert plink.table.equals(penncnv.table) and plink.table.num_rows > 300
    fam = pl.read_csv(release_folder / "calls.fam", separator=" ", has_header=False)
    assert plink.called == fam[:, 1].cast(pl.String).to_list() and penncnv.called is None


def _plink_cnv(folder: Path, rows: list[str]) -> Path:
    """A PLINK .cnv of ``rows`` (after its header) and a .fam of participants 1 … 3."""
    (folder / "bad.fam").write_text("".join(f"{i} {i} 0 0 1 -9\n" for i in (1, 2, 3)))
    path = folder / "bad.cnv"
    path.write_text("FID IID CHR BP1 BP2 TYPE SCORE SITES\n" + "".join(f"{row}\n" for row in rows))
    return path


@pytest.mark.parametrize(("rows", "message"), [
    (["1 1 1 1000 5000 1 10 5", "1 1 1 4000 9000 3 10 5"],
     "bad.cnv, line 3: participant 1's segment overlaps the one on line 2 (chromosome 1)"),
    (["2 2 3 9000 5000 1 10 5"], "bad.cnv, line 2, column 'end': expected an end at or after the start, got '5000'"),
    (["2 2 chrQ 1000 5000 1 10 5"], "bad.cnv, line 2, column 'chromosome': expected a chromosome 1-22, X, Y, XY or MT"),
    (["2 2 1 1000 5000 2 10 5"], "bad.cnv, line 2, column 'copy_number': expected a copy number other than 2"),
    (["2 2 1 1000 5000 1 high 5"], "bad.cnv, line 2, column 'confidence': expected a number, got 'high'"),
    (["9 9 1 1000 5000 1 10 5"], "bad.cnv: 1 participants have segments but are not in bad.fam, which lists those "
                                 "called (e.g. 9)"),
])
def test_ingest_cnv__bad_calls_are_one_line_errors_naming_file_and_line(tmp_path: Path, release_folder: Path,
                                                                       rows: list[str], message: str) -> None:
    calls = _plink_cnv(tmp_path, rows)
    Lake.init(tmp_path / "lake")
    result = run_cli(["ingest", "--lake", str(tmp_path / "lake"), "--release", "r1", "--cnv", str(calls),
                      "--bfile", str(release_folder / "genotypes")])
    assert result.exit_code != 0 and message in result.output and "Traceback" not in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


def test_ingest_cnv__penncnv_without_genotypes_is_refused(tmp_path: Path, release_folder: Path) -> None:
    Lake.init(tmp_path / "lake")
    result = run_cli(["ingest", "--lake", str(tmp_path / "lake"), "--release", "r1", "--cnv",
                      str(release_folder / "calls.penncnv")])
    assert result.exit_code != 0 and "PennCNV calls list only the participants with a segment" in result.output


def _indiv(path: Path) -> pl.DataFrame:
    """A .cnv.indiv (columns padded with spaces), numbers as numbers."""
    header, *rows = (line.split() for line in path.read_text().splitlines())
    frame = pl.DataFrame(rows, schema=header, orient="row")
    return frame.with_columns(pl.col("NSEG", "COUNT").cast(pl.Int64), pl.col("KB", "KBAVG").cast(pl.Float64))


@pytest.mark.parametrize(("flags", "cnv_filter"), [
    ([], CnvFilter()),
    (["--cnv-kb", "100", "--cnv-sites", "10"], CnvFilter(min_kb=100, min_sites=10)),
    (["--cnv-del", "--cnv-max-kb", "200", "--cnv-score", "20"], CnvFilter(type="del", max_kb=200, min_score=20)),
    (["--cnv-dup", "--cnv-max-sites", "15", "--cnv-max-score", "40"], CnvFilter(type="dup", max_sites=15,
                                                                                 max_score=40)),
])
def test_cnv_burden__equals_plink107_cnv_indiv(gwas_lake: Lake, release_folder: Path, tmp_path: Path,
                                               flags: list[str], cnv_filter: CnvFilter) -> None:
    """plink1 --cfile calls --cnv-make-map, then plink1 --cfile calls FLAGS --cnv-count genes: NSEG, KB, KBAVG and
    COUNT of every participant (the .fam's phenotype set to 1: PLINK 1.07 drops people whose phenotype is missing)."""
    shutil.copy(release_folder / "calls.cnv", tmp_path / "calls.cnv")
    fam = pl.read_csv(release_folder / "calls.fam", separator=" ", has_header=False)
    fam.with_columns(pl.lit(1).alias(fam.columns[-1])).write_csv(tmp_path / "calls.fam", separator=" ",
                                                                 include_header=False)
    genes = [("15", 22_800_000, 23_000_000, "NIPA1_AREA"), ("16", 29_600_000, 30_300_000, "SIXTEEN_P"),
             ("22", 19_000_000, 21_000_000, "DGCR"), ("1", 1, 100_000_000, "ONE_P")]
    (tmp_path / "genes.txt").write_text("".join(f"{c} {s} {e} {n}\n" for c, s, e, n in genes))
    for command in (["--cnv-make-map", "--out", "calls"], [*flags, "--cnv-count", "genes.txt", "--out", "ours"]):
        done = subprocess.run([PLINK107, "--noweb", "--cfile", "calls", *command], cwd=tmp_path, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stdout[-2000:]
    reference = _indiv(tmp_path / "ours.cnv.indiv")
    report = run_cnv_burden(gwas_lake, CnvBurdenSettings(name="burden_" + "_".join(flags).replace("-", "") or "all",
                                                         cnv_filter=cnv_filter, genes=str(tmp_path / "genes.txt"),
                                                         replace=True))
    ours = pl.from_arrow(gwas_lake.results_dataset(report.name).to_table())
    assert ours["participant_id"].to_list() == reference["IID"].to_list()
    assert ours["n_segments"].to_list() == reference["NSEG"].to_list()
    assert ours["genes"].to_list() == reference["COUNT"].to_list()
    for column, plink_column in (("kb_total", "KB"), ("kb_mean", "KBAVG")):   # plink prints %g: 6 significant digits
        assert [float(f"{value:.6g}") for value in ours[column]] == reference[plink_column].to_list(), column
    assert report.segments == reference["NSEG"].sum() > 0


def test_cnv_carriers__find_the_planted_carriers_of_each_locus(gwas_lake: Lake, truth: dict) -> None:
    report = run_cnv_carriers(gwas_lake, CnvCarriersSettings(name="carriers", replace=True))
    for planted in truth["cnv"]["planted"]:
        assert report.carriers[planted["locus"]] == (planted["carriers"]["del"], planted["carriers"]["dup"]), planted
    assert sum(map(sum, report.carriers.values())) == sum(sum(p["carriers"].values()) for p in truth["cnv"]["planted"])
    overlap = gwas_lake.results_dataset("carriers").to_table().column("overlap").to_numpy()
    assert overlap.min() >= 0.5


def _reference_frame(lake: Lake, idp: str, locus: dict, *, covariates: bool = True) -> pl.DataFrame:
    """The IDP, age, sex and the locus's dose (−1/0/+1 by 50 % reciprocal overlap, computed here from the cnvs
    table) of every participant called with the IDP (and, with ``covariates``, both covariates)."""
    present = "c.age IS NOT NULL AND c.sex IS NOT NULL" if covariates else "TRUE"
    with connect(lake) as con:
        table = con.sql(f'SELECT i.participant_id, i."{idp}" AS y, c.age, c.sex = \'M\' AS male FROM idps i '
                        "JOIN covariates c USING (participant_id) JOIN samples s "
                        "ON s.participant_id = i.participant_id "
                        f"AND s.assay = 'cnv' WHERE i.\"{idp}\" IS NOT NULL AND {present}").arrow()
        cnvs = con.sql(f"SELECT participant_id, start, \"end\", type FROM cnvs "
                       f"WHERE chrom = '{locus['chrom']}'").arrow()
    overlap = reciprocal_overlap(cnvs.column("start").to_numpy(), cnvs.column("end").to_numpy(), locus["start"],
                                 locus["end"])
    dose = {pid: (1.0 if kind == "DUP" else -1.0) for pid, kind, share in
            zip(cnvs.column("participant_id").to_pylist(), cnvs.column("type").to_pylist(), overlap) if share >= 0.5}
    frame = pl.from_arrow(table)
    return frame.with_columns(dose=pl.col("participant_id").replace_strict(dose, default=0.0))


def test_cnv_assoc__equals_statsmodels_ols_and_cohens_d_its_formula(gwas_lake: Lake, truth: dict) -> None:
    planted = next(p for p in truth["cnv"]["planted"] if p["model"] == "dose")
    idp = planted["idp"]
    report = run_cnv_assoc(gwas_lake, CnvAssocSettings(
        name="cnv_assoc_ref", phenotypes=[idp], covariates=["age", "sex"], replace=True,
        carriers=CarrierChoice(), burden_measures=("kb_total",)))
    rows = {(row["locus"], row["model"]): row for row in gwas_lake.results_dataset(report.name).to_table().to_pylist()}
    rows |= {(row["measure"], "burden"): row for row in gwas_lake.results_dataset(f"{report.name}_burden").to_table()
             .to_pylist()}
    frame = _reference_frame(gwas_lake, idp, planted)
    with connect(gwas_lake) as con:
        kb = dict(con.sql('SELECT participant_id, sum(("end" - start) / 1000.0) FROM cnvs GROUP BY 1').fetchall())
    frame = frame.with_columns(kb_total=pl.col("participant_id").replace_strict(kb, default=0.0))
    for model, values, keep in (("dose", frame["dose"], np.ones(frame.height, bool)),
                                ("del", -frame["dose"], (frame["dose"] <= 0).to_numpy()),
                                ("dup", frame["dose"], (frame["dose"] >= 0).to_numpy()),
                                ("burden", frame["kb_total"], np.ones(frame.height, bool))):
        design = sm.add_constant(np.column_stack([frame["age"], frame["male"].cast(pl.Float64), values])[keep],
                                 has_constant="add")
        fit = sm.OLS(frame["y"].to_numpy()[keep], design).fit()
        row = rows["kb_total" if model == "burden" else planted["locus"], model]
        assert row["n"] == keep.sum() and row["error"] is None and row.get("test", f"{planted['locus']} {model}") \
            == f"{planted['locus']} {model}", row
        np.testing.assert_allclose([row["beta"], row["se"], row["t"], row["p"]],
                                   [fit.params[-1], fit.bse[-1], fit.tvalues[-1], fit.pvalues[-1]], rtol=1e-8)
        if model in ("del", "dup"):
            carriers = int((values.to_numpy()[keep] == 1).sum())
            d = fit.tvalues[-1] * np.sqrt(1 / carriers + 1 / (keep.sum() - carriers))
            se = np.sqrt(keep.sum() / (carriers * (keep.sum() - carriers)) + d**2 / (2 * keep.sum()))
            assert row["n_carriers"] == carriers > 0
            np.testing.assert_allclose([row["cohens_d"], row["cohens_d_lower"], row["cohens_d_upper"]],
                                       [d, d - 1.959963984540054 * se, d + 1.959963984540054 * se], rtol=1e-8)


def test_cnv_assoc__without_covariates_cohens_d_is_the_pooled_sd_difference(gwas_lake: Lake, truth: dict) -> None:
    planted = next(p for p in truth["cnv"]["planted"] if p["model"] == "del")
    report = run_cnv_assoc(gwas_lake, CnvAssocSettings(name="cnv_assoc_d", phenotypes=[planted["idp"]], covariates=[],
                                                       replace=True, burden_measures=()))
    row = next(row for row in gwas_lake.results_dataset(report.name).to_table().to_pylist()
               if row["test"] == f"{planted['locus']} del")
    frame = _reference_frame(gwas_lake, planted["idp"], planted, covariates=False)
    carriers, others = (frame.filter(chosen)["y"].to_numpy() for chosen in (pl.col("dose") == -1, pl.col("dose") == 0))
    pooled = np.sqrt(((len(carriers) - 1) * carriers.var(ddof=1) + (len(others) - 1) * others.var(ddof=1))
                     / (len(carriers) + len(others) - 2))
    assert row["cohens_d"] == pytest.approx((carriers.mean() - others.mean()) / pooled, rel=1e-8)
    assert row["cohens_d"] < 0   # the planted deletion lowers its IDP


def test_withdraw__removes_a_participants_cnvs_and_leaves_no_trace(loaded_lake: Lake) -> None:
    with connect(loaded_lake) as con:
        carrier = con.sql("SELECT participant_id FROM cnvs LIMIT 1").fetchone()[0]
    withdraw(loaded_lake, [carrier])
    with connect(loaded_lake) as con:
        assert con.sql(f"SELECT count(*) FROM cnvs WHERE participant_id = '{carrier}'").fetchone()[0] == 0
        assert con.sql(f"SELECT count(*) FROM samples WHERE participant_id = '{carrier}'").fetchone()[0] == 0
    assert audit(loaded_lake, [carrier]).clean


def test_cli_cnv__burden_carriers_assoc_write_tables_and_export(gwas_lake: Lake, tmp_path: Path) -> None:
    lake = str(gwas_lake.location.root)
    for command in (["burden", "--min-kb", "100", "--name", "cli_burden"],
                    ["carriers", "--min-sites", "3", "--name", "cli_carriers"],
                    ["assoc", "--pheno-sql", "SELECT * EXCLUDE (release) FROM idps", "--covar", "age,sex",
                     "--name", "cli_cnv_assoc"]):
        out = tmp_path / f"{command[-1]}.tsv"
        result = run_cli(["cnv", *command, "--lake", lake, "--replace", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert pl.read_csv(out, separator="\t", infer_schema=False).height == \
            gwas_lake.results_dataset(command[-1]).count_rows()
    joined = run_cli(["sql", "--lake", lake, "--format", "csv",
                      "SELECT count(*) AS n FROM results.cli_burden b JOIN idps USING (participant_id)"])
    assert joined.exit_code == 0 and joined.output.splitlines()[-1] == "301", joined.output


def test_cnv_assoc__window_scan_equals_statsmodels_and_reports_as_a_scan(gwas_lake: Lake, truth: dict,
                                                                          tmp_path: Path) -> None:
    planted = next(p for p in truth["cnv"]["planted"] if p["model"] == "dose")
    report = run_cnv_assoc(gwas_lake, CnvAssocSettings(name="cnv_scan", phenotypes=[planted["idp"]],
                                                       covariates=["age", "sex"], scan_kb=500, min_carriers=2,
                                                       burden_measures=(), replace=True))
    table = pl.from_arrow(gwas_lake.results_dataset("cnv_scan").to_table())
    windows = table.filter(pl.col("locus").str.contains(":") & (pl.col("model") == "dose") & pl.col("p").is_not_null())
    assert report.windows == windows.height > 10
    strongest = windows.filter((pl.col("chrom") == planted["chrom"]) & (pl.col("pos") <= planted["end"])
                               & (pl.col("end") >= planted["start"])).sort("p").row(0, named=True)   # in the locus
    window = {"chrom": strongest["chrom"], "start": strongest["pos"], "end": strongest["end"]}
    frame = _reference_frame(gwas_lake, planted["idp"], window)
    with connect(gwas_lake) as con:   # any overlap makes a carrier of a window
        touching = con.sql(f"SELECT participant_id, type FROM cnvs WHERE chrom = '{window['chrom']}' "
                           f"AND start <= {window['end']} AND \"end\" >= {window['start']}").fetchall()
    dose = {pid: 1.0 if kind == "DUP" else -1.0 for pid, kind in touching}
    frame = frame.with_columns(dose=pl.col("participant_id").replace_strict(dose, default=0.0))
    design = sm.add_constant(np.column_stack([frame["age"], frame["male"].cast(pl.Float64), frame["dose"]]))
    fit = sm.OLS(frame["y"].to_numpy(), design).fit()
    np.testing.assert_allclose([strongest["beta"], strongest["se"], strongest["p"]],
                               [fit.params[-1], fit.bse[-1], fit.pvalues[-1]], rtol=1e-8)
    from biolake.report import lead_hits, write_report
    leads = lead_hits(gwas_lake, "cnv_scan", threshold=strongest["p"] * 1.001)
    assert any(lead["chrom"] == planted["chrom"] and abs(lead["pos"] - strongest["pos"]) <= 500_000
               for lead in leads.to_pylist())   # the planted locus leads, the window among its members
    assert write_report(gwas_lake, "cnv_scan", tmp_path / "scan.html").stat().st_size > 10_000


def test_cnv_scan__the_browser_shows_its_run_and_phenotype_pages(gwas_lake: Lake, truth: dict) -> None:
    import urllib.parse

    from biolake.browser.app import create_app
    from test_browser import _page

    planted = next(p for p in truth["cnv"]["planted"] if p["model"] == "dose")
    run_cnv_assoc(gwas_lake, CnvAssocSettings(name="cnv_browsed", phenotypes=[planted["idp"]], covariates=["age"],
                                              scan_kb=1000, min_carriers=2, burden_measures=(), replace=True))
    app = create_app(gwas_lake, announce=lambda _: None)
    assert "cnv_browsed" in _page(app, "/")
    assert planted["idp"] in _page(app, "/run/{name}", name="cnv_browsed")
    page = _page(app, "/phenotype", urllib.parse.urlencode({"run": "cnv_browsed", "phenotype": planted["idp"]}))
    assert f"{planted['locus']} dose" in page


def test_ingest_cnv__penncnv_participants_without_genotypes_are_called_and_counted(tmp_path: Path,
                                                                                   release_folder: Path) -> None:
    """PennCNV names only those with a segment: one without genotypes in the release is still called (a row of the
    cnv assay), and ingest counts it in its note of participants without genotypes."""
    calls = tmp_path / "calls.penncnv"
    calls.write_text((release_folder / "calls.penncnv").read_text()
                     + "chr3:1000-90000 numsnp=12 length=89,001 state2,cn=1 signal/9999999.txt startsnp=a endsnp=b\n")
    Lake.init(tmp_path / "lake")
    result = run_cli(["ingest", "--lake", str(tmp_path / "lake"), "--release", "r1", "--cnv", str(calls),
                      "--bfile", str(release_folder / "genotypes")])
    assert result.exit_code == 0, result.output
    assert "note: 1 participants in cnvs have no genotypes (e.g. 9999999)" in result.output
    with connect(Lake.open(str(tmp_path / "lake"))) as con:
        called = con.sql("SELECT participant_id FROM samples WHERE assay = 'cnv' ORDER BY sample_index").fetchall()
    assert called[-1] == ("9999999",) and len(called) == 301 + 1


@pytest.mark.parametrize(("text", "rows"), [
    ("1 1 1 1000 5000 1 10 5\n", 1),                                      # no header, as PLINK 1.07 allows
    ("FID IID CHR BP1 BP2 TYPE SCORE SITE\n1 1 1 1000 5000 1 10 5\n", 1),  # another header spelling
    ("FID IID CHR BP1 BP2 TYPE SCORE SITES\n", 0),                         # nobody has a segment
    ("  FID  IID  CHR  BP1  BP2  TYPE  SCORE  SITES\n  1  1  1  1000  5000  1  10  5\n\n  2  2  X  10  90  3  -4  3\n",
     2),                                                                   # plink --cnv-write's padded columns
])
def test_read_cnv_calls__plink_files_as_plink_reads_them(tmp_path: Path, text: str, rows: int) -> None:
    path = _plink_cnv(tmp_path, [])
    path.write_text(text)
    assert read_cnv_calls(path, release="r1").table.num_rows == rows


def test_read_cnv_calls__penncnv_is_known_by_its_lines_not_its_name(tmp_path: Path) -> None:
    """PennCNV output saved as .cnv is still PennCNV's; trio calls' extra fields are read past; copy-neutral (-loh)
    calls are left out and counted; an id with a dot keeps it (only a file extension of letters goes)."""
    path = tmp_path / "trio.cnv"
    path.write_text("chr1:100-5000 numsnp=10 length=4,901 state2,cn=1 signal/S1.2.txt startsnp=a endsnp=b conf=-3.2 "
                    "statepath=33 triostate=212\n"
                    "chr2:100-5000 numsnp=10 length=4,901 state4,cn=2 S1.2 startsnp=a endsnp=b\n")
    calls = read_cnv_calls(path, release="r1")
    assert calls.called is None and calls.copy_neutral == 1
    assert calls.table.select(["participant_id", "copy_number", "confidence"]).to_pylist() == [
        {"participant_id": "S1.2", "copy_number": 1, "confidence": -3.2}]


def test_cnv_burden__a_bad_gene_list_is_one_line_naming_its_line(gwas_lake: Lake, tmp_path: Path) -> None:
    genes = tmp_path / "genes.txt"
    genes.write_text("1 100 200 A\n\n1 500 300 B\n")
    result = run_cli(["cnv", "burden", "--lake", str(gwas_lake.location.root), "--genes", str(genes), "--name", "x",
                      "--replace"])
    assert result.exit_code != 0 and "genes.txt, line 3: --genes: expected CHR BP1 BP2 [NAME] with a known " \
        "chromosome and BP1 ≤ BP2, got '1 500 300 B'" in result.output, result.output


def test_cnv_carriers__a_call_split_in_fragments_makes_a_carrier_once_joined(tmp_path: Path,
                                                                            release_folder: Path) -> None:
    """A 22q11.2 deletion called as two pieces, each under half the locus, with a gap of 2 % of their stretch: no
    carrier as called; a carrier with --merge-gap 0.2 (PennCNV clean_cnv.pl combineseg's default fraction)."""
    fam = pl.read_csv(release_folder / "genotypes.fam", separator=" ", has_header=False)
    first, second = (str(pid) for pid in fam[:2, 1])
    fam.write_csv(tmp_path / "split.fam", separator=" ", include_header=False)
    (tmp_path / "split.cnv").write_text("FID IID CHR BP1 BP2 TYPE SCORE SITES\n"
                                        f"{first} {first} 22 18912231 20150000 1 30 80\n"
                                        f"{first} {first} 22 20200000 21420000 1 30 80\n"
                                        f"{second} {second} 22 18912231 21465672 3 30 160\n")
    lake = Lake.init(tmp_path / "lake")
    result = run_cli(["ingest", "--lake", str(lake.location.root), "--release", "r1", "--bfile",
                      str(release_folder / "genotypes"), "--cnv", str(tmp_path / "split.cnv")])
    assert result.exit_code == 0, result.output
    as_called = run_cnv_carriers(lake, CnvCarriersSettings(name="as_called"))
    joined = run_cnv_carriers(lake, CnvCarriersSettings(name="joined", carriers=CarrierChoice(merge_gap=0.2)))
    assert as_called.carriers["22q11.2_A-D"] == (0, 1) and joined.carriers["22q11.2_A-D"] == (1, 1)
    rows = lake.results_dataset("joined").to_table().to_pylist()
    assert {(row["participant_id"], row["start"], row["end"], row["type"]) for row in rows} == {
        (first, 18912231, 21420000, "DEL"), (second, 18912231, 21465672, "DUP")}
