"""LD clumping checked against ``plink1.9 --clump`` on genotypes with real-looking LD and missing calls.

The panel (biolake.synth.write_ld_panel) has haplotype blocks of ~100 kb, 2 % missing calls
and four planted causal variants. plink1.9 reads the same .bed and the same p-values as
text; every clump must match: index variant, p to plink's 3 digits, TOTAL, NSIG, S05, S01,
S001, S0001 and the SP2 members in plink's order. The job (biolake.clump, ``biolake clump``) is
checked the same way on a GWAS of the small lake. A missing plink1.9 fails these tests, never skips them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from click.testing import CliRunner

from biolake.cli import main
from biolake.clump import ClumpSettings, run_clump
from biolake.gwas import GwasSettings, run_gwas
from biolake.lake.errors import BiolakeError
from biolake.queries import connect
from biolake.stats.ld import BIN_NAMES, WindowLd, clump, haplotype_r2, ld_features
from biolake.synth import LdPanel, write_ld_panel

PLINK19 = shutil.which("plink1.9") or "plink1.9"


@pytest.fixture(scope="module")
def panel(tmp_path_factory) -> LdPanel:
    return write_ld_panel(tmp_path_factory.mktemp("ld") / "panel", samples=800, variants=3000, seed=3)


def run_plink_clump(bfile: Path, variant_id: np.ndarray, p: np.ndarray, out: Path, flags: dict) -> list[dict]:
    """plink1.9 --clump with ``flags`` (p1, p2, r2, kb) on ``bfile`` and these p-values, as rows of .clumped."""
    assoc = Path(f"{out}.assoc")
    assoc.write_text("SNP P\n" + "".join(f"{v} {float(q)!r}\n" for v, q in zip(variant_id, p)))
    options = [arg for key, value in flags.items() for arg in (f"--clump-{key}", str(value))]
    subprocess.run([PLINK19, "--bfile", str(bfile), "--clump", str(assoc), *options, "--out", str(out)],
                   check=True, capture_output=True)
    return read_clumped(out)


def read_clumped(out: Path) -> list[dict]:
    """The rows of plink's ``{out}.clumped`` (none when plink found no index variant and wrote none)."""
    report = Path(f"{out}.clumped")
    lines = report.read_text().split("\n") if report.exists() else [""]
    return [dict(zip(lines[0].split(), line.split())) for line in lines[1:] if line.strip()]


def biolake_clumps(panel: LdPanel, p: np.ndarray, *, kb: float = 250, **flags) -> list[dict]:
    """Our clumps of every chromosome, as plink's .clumped rows (in order of p, ties by genome order)."""
    features = ld_features(np.nan_to_num(panel.dosages), np.isnan(panel.dosages))
    rows = []
    for chrom in np.unique(panel.chrom):
        on = np.flatnonzero(panel.chrom == chrom)
        found = clump(WindowLd(features[:, on], panel.pos[on], kb=kb), p[on], **flags)
        for index, bins, members in zip(found.index, found.bins, found.members):
            rows.append((p[on[index]], on[index], {
                "CHR": chrom, "SNP": panel.variant_id[on[index]], "BP": str(panel.pos[on[index]]),
                "P": p[on[index]], "TOTAL": str(bins.sum()),
                **{name.upper(): str(count) for name, count in zip(BIN_NAMES, bins)},
                "SP2": ",".join(f"{panel.variant_id[on[m]]}(1)" for m in members) or "NONE"}))
    return [row for _, _, row in sorted(rows, key=lambda entry: entry[:2])]


def assert_same_clumps(ours: list[dict], plinks: list[dict]) -> None:
    assert [row["SNP"] for row in ours] == [row["SNP"] for row in plinks]
    for mine, theirs in zip(ours, plinks):
        assert float(f"{mine['P']:.3g}") == float(theirs["P"]), theirs["SNP"]
        for column in ("CHR", "BP", "TOTAL", "NSIG", "S05", "S01", "S001", "S0001", "SP2"):
            assert mine[column] == theirs[column], (theirs["SNP"], column)


@pytest.mark.parametrize("flags", [
    {},
    {"p1": 0.01, "p2": 0.05, "r2": 0.2, "kb": 100},
    {"p1": 0.001, "p2": 0.5, "r2": 0.8, "kb": 30},
], ids=["defaults", "loose", "tight"])
def test_clump__equals_plink19(panel, tmp_path, flags):
    plinks = run_plink_clump(panel.prefix, panel.variant_id, panel.p, tmp_path / "run", flags)
    ours = biolake_clumps(panel, panel.p, **flags)
    assert len(plinks) >= 4
    assert_same_clumps(ours, plinks)


def test_clump__ties_in_p_equal_plink19(panel, tmp_path):
    rounded = np.array([float(f"{q:.1g}") for q in panel.p])     # many equal p-values
    flags = {"p1": 0.01, "p2": 0.05, "r2": 0.3}
    assert len(np.unique(rounded[rounded <= 0.01])) < (rounded <= 0.01).sum() / 2
    plinks = run_plink_clump(panel.prefix, panel.variant_id, rounded, tmp_path / "ties", flags)
    assert_same_clumps(biolake_clumps(panel, rounded, **flags), plinks)


def test_clump__planted_variants_lead_their_clumps(panel):
    """Each planted variant with a strong signal sits in a clump: one lead per locus, not dozens."""
    clumps = biolake_clumps(panel, panel.p)
    clumped = {row["SNP"] for row in clumps} | {m.split("(")[0] for row in clumps for m in row["SP2"].split(",")}
    strong = [panel.variant_id[c] for c in panel.causal if panel.p[c] < 1e-6]
    assert strong and set(strong) <= clumped


def test_haplotype_r2__symmetric_and_allele_flip_invariant(panel):
    features = ld_features(np.nan_to_num(panel.dosages[:200]), np.isnan(panel.dosages[:200]))
    flipped = ld_features(np.nan_to_num(2 - panel.dosages[:200]), np.isnan(panel.dosages[:200]))
    forward = np.stack([haplotype_r2(features[:, i], features) for i in range(0, 200, 20)])
    backward = np.stack([haplotype_r2(features[:, j], features[:, ::20]) for j in range(200)]).T
    np.testing.assert_allclose(forward, backward, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.abs(haplotype_r2(flipped[:, 0], features)), np.abs(forward[0]), rtol=1e-9, atol=1e-12)


@pytest.fixture(scope="module")
def clumped_gwas(gwas_lake, idps) -> str:
    """A GWAS of three IDPs on the small release (one with a planted effect; variants ~5 kb apart in stretches)."""
    run_gwas(gwas_lake, GwasSettings(name="to_clump", phenotypes=idps, covariates=["age", "sex"]),
             workers=1)
    return "to_clump"


def _chromosome_rank(chrom: str) -> tuple[int, str]:
    return (int(chrom), "") if chrom.isdigit() else (100, chrom)


def test_run_clump__equals_plink19_per_phenotype(gwas_lake, clumped_gwas, release_folder, tmp_path):
    """The job on the frame: clumps committed as results (kind clump) equal plink1.9's for each phenotype."""
    flags = {"p1": 1e-3, "p2": 0.05, "r2": 0.1, "kb": 20_000}
    report = run_clump(gwas_lake, ClumpSettings(name="clumps", result=clumped_gwas, replace=True, **flags), workers=1)
    clumps = pl.from_arrow(gwas_lake.results_dataset("clumps").to_table())
    assert report.clumps == clumps.height and gwas_lake.results_info("clumps").kind == "clump"
    rows = pl.from_arrow(gwas_lake.results_dataset(clumped_gwas).to_table(columns=["phenotype", "variant_id", "log10p"]))
    compared = 0
    for (phenotype,), scan in rows.filter(pl.col("log10p").is_not_null()).group_by("phenotype"):
        plinks = run_plink_clump(release_folder / "genotypes", scan["variant_id"].to_numpy(),
                                 10.0 ** -scan["log10p"].to_numpy(), tmp_path / f"clumps-{phenotype}", flags)
        ours = sorted(clumps.filter(pl.col("phenotype") == phenotype).to_dicts(),
                      key=lambda row: (row["p"], _chromosome_rank(row["chrom"]), row["pos"]))
        assert_same_clumps([{"CHR": row["chrom"], "SNP": row["variant_id"], "BP": str(row["pos"]), "P": row["p"],
                             "TOTAL": str(row["total"]), **{n.upper(): str(row[n]) for n in BIN_NAMES},
                             "SP2": ",".join(f"{m}(1)" for m in row["sp2"]) or "NONE"} for row in ours], plinks)
        compared += len(plinks)
    assert compared >= 3


def test_clump_cli__results_view_and_out_file(gwas_lake, clumped_gwas, tmp_path):
    """``biolake clump`` commits a results table that SQL reads as results.NAME, and exports it with --out."""
    out = tmp_path / "loci.tsv"
    done = CliRunner().invoke(main, ["clump", "--lake", gwas_lake.location.root, "--result", clumped_gwas,
                                     "--p1", "1e-3", "--r2", "0.1", "--kb", "20000", "--name", "cli_clumps",
                                     "--replace", "--out", str(out), "--workers", "1", "--quiet"])
    assert done.exit_code == 0, done.output
    with connect(gwas_lake) as con:
        (count,) = con.sql("SELECT count(*) FROM results.cli_clumps").fetchone()
    exported = pl.read_csv(out, separator="\t")
    assert count > 0 and exported.height == count
    assert exported.columns[:7] == ["phenotype", "variant_id", "chrom", "pos", "beta", "p", "log10p"]


def test_run_clump__no_index_candidate_commits_an_empty_table(gwas_lake, clumped_gwas):
    """A run where no variant reaches --p1 (as plink, which writes no .clumped) is an empty results table."""
    report = run_clump(gwas_lake, ClumpSettings(name="no_clumps", result=clumped_gwas, p1=1e-300, p2=1e-300,
                                                replace=True), workers=1)
    assert report.clumps == 0 and gwas_lake.results_dataset("no_clumps").count_rows() == 0


def test_clump_cli__unknown_or_unclumpable_results_refused_in_one_line(gwas_lake, clumped_gwas):
    run_clump(gwas_lake, ClumpSettings(name="kind_clumps", result=clumped_gwas, p1=1e-3, replace=True), workers=1)
    for result, said in (("no_such_results", "no_such_results"), ("kind_clumps", "of kind 'clump'")):
        done = CliRunner().invoke(main, ["clump", "--lake", gwas_lake.location.root, "--result", result,
                                         "--name", "x_clumps", "--quiet"])
        assert done.exit_code == 2 and said in done.output, done.output
        assert "Traceback" not in done.output and len(done.output.strip().splitlines()) == 1, done.output


@pytest.mark.parametrize("flags, named", [
    ({"p1": 0.1, "p2": 0.01}, "--p1"), ({"p2": 0.0}, "--p2"), ({"r2": 1.0}, "--r2"), ({"kb": 0}, "--kb"),
])
def test_clump_settings__bad_flags_name_the_flag(flags, named):
    with pytest.raises(BiolakeError, match=named):
        ClumpSettings(name="clumps", result="gwas", **flags)


def test_clump__heavy_missingness_and_rare_variants_equal_plink19(tmp_path):
    """Up to 30 % missing calls per variant and 300 samples: pairs near monomorphic among the samples
    called at both, where the EM cubic's edge cases (boundary roots, no double hets) decide."""
    sparse = write_ld_panel(tmp_path / "sparse", samples=300, variants=3000, chromosomes=10, seed=11,
                            missing_calls=0.15)
    flags = {"p1": 0.05, "p2": 0.5, "r2": 0.05, "kb": 500}
    plinks = run_plink_clump(sparse.prefix, sparse.variant_id, sparse.p, tmp_path / "sparse-run", flags)
    assert len(plinks) >= 20
    assert_same_clumps(biolake_clumps(sparse, sparse.p, **flags), plinks)
