"""Meta-analysis against R's metafor, allele alignment, and the job over per-site GWAS tables."""

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from click.testing import CliRunner
from metafor_ref import run_metafor

from biolake.cli import main
from biolake.gwas import GwasSettings, run_gwas
from biolake.meta import meta_analyse, run_meta
from biolake.lake.errors import BiolakeError
from biolake.stats.meta import align_alleles, inverse_variance


def test_inverse_variance__matches_metafor_fixed_and_dersimonian_laird(tmp_path):
    rng = np.random.default_rng(3)
    sizes = rng.integers(2, 7, 40)
    groups = np.repeat(np.arange(40), sizes)
    se = rng.uniform(0.02, 0.2, len(groups))
    spread = np.where(np.arange(40) % 3 == 0, 0.0, 0.15)[groups]      # a third homogeneous (τ² = 0)
    beta = rng.normal(0.1, 1, 40)[groups] * 0.1 + rng.normal(size=len(groups)) * np.hypot(se, spread)
    ours = inverse_variance(groups, beta, se)
    theirs = run_metafor(tmp_path, groups=groups, beta=beta, se=se)
    assert (ours.cohorts == sizes).all() and (ours.tau2 == 0).sum() >= 5
    for name in ("beta", "se", "q", "i2", "tau2", "beta_random", "se_random"):
        np.testing.assert_allclose(getattr(ours, name), theirs[name].to_numpy(), rtol=1e-8, atol=1e-14, err_msg=name)
    np.testing.assert_allclose(ours.p, theirs["p"].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(10 ** -ours.q_log10p, theirs["p_q"].to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(10 ** -ours.log10p_random, theirs["p_random"].to_numpy(), rtol=1e-8)


def test_align_alleles__swaps_complements_and_flags_ambiguous_pairs():
    sign, ambiguous = align_alleles(np.array(["A", "C", "T", "G", "A", "A"]), np.array(["G", "T", "C", "C", "C", "T"]),
                                    np.array(["A", "T", "A", "A", "A", "A"]), np.array(["G", "C", "G", "G", "G", "T"]))
    assert sign.tolist() == [1, -1, 1, 0, 0, 1]
    assert ambiguous.tolist() == [False, False, False, True, False, True]   # G/C and A/T pairs


def test_meta_analyse__a_cohort_reporting_the_other_allele_gives_the_same_answer():
    def cohort(beta, se, ref="C", alt="T"):
        return pa.table({"phenotype": ["y", "y"], "variant_id": ["rs1", "rs2"], "chrom": ["1", "1"], "pos": [10, 20],
                         "ref": [ref, "A"], "alt": [alt, "G"], "n": [100, 100], "beta": beta, "se": se})

    plain, _ = meta_analyse([cohort([0.2, 0.1], [0.05, 0.1]), cohort([0.3, -0.1], [0.1, 0.1])])
    swapped, split = meta_analyse([cohort([0.2, 0.1], [0.05, 0.1]), cohort([-0.3, -0.1], [0.1, 0.1], "T", "C")])
    assert split == 0 and plain.equals(swapped)


def test_meta_analyse__a_second_allele_pair_at_a_position_is_a_variant_of_its_own():
    def cohort(rows):
        ref, alt, beta = zip(*rows)
        return pa.table({"phenotype": ["y"] * len(rows), "variant_id": ["rs1"] * len(rows), "chrom": ["1"] * len(rows),
                         "pos": [10] * len(rows), "ref": ref, "alt": alt, "n": [100] * len(rows),
                         "beta": pa.array(beta, pa.float64()), "se": [0.1] * len(rows)})

    # a multi-allelic site split into C>T and C>A records; the second cohort has C>A only, on the other strand
    table, split = meta_analyse([cohort([("C", "T", 0.2), ("C", "A", 0.5)]), cohort([("G", "T", 0.3)])])
    assert split == 1
    rows = {(r["ref"], r["alt"]): r for r in table.to_pylist()}
    assert rows.keys() == {("C", "T"), ("C", "A")}
    assert rows[("C", "T")]["cohorts"] == 1 and rows[("C", "T")]["beta"] == pytest.approx(0.2)
    assert rows[("C", "A")]["cohorts"] == 2 and rows[("C", "A")]["beta"] == pytest.approx(0.4)


def test_run_meta__per_site_gwas_combine_and_export(gwas_lake, scheduler, idps, tmp_path):
    sites = gwas_lake.read("covariates", columns=["site"]).column("site").unique().to_pylist()[:2]
    for site in sites:
        run_gwas(gwas_lake, GwasSettings(name=f"site_{site}", phenotypes=[idps[0]], covariates=["age", "sex"],
                                         samples=f"SELECT participant_id FROM covariates WHERE site = '{site}'",
                                         chromosomes=["1"]), scheduler=scheduler)
    names = [f"site_{site}" for site in sites]
    report = run_meta(gwas_lake, name="meta", results=names)
    per_site = [pl.from_arrow(gwas_lake.results_dataset(n).to_table()).sort("variant_id") for n in names]
    combined = pl.from_arrow(gwas_lake.results_dataset("meta").to_table()).sort("variant_id")
    assert report.rows == combined.height == per_site[0].height and report.multiallelic == 0
    weights = [1 / s["se"].to_numpy() ** 2 for s in per_site]
    expected = sum(w * s["beta"].to_numpy() for w, s in zip(weights, per_site)) / sum(weights)
    ran = np.isfinite(expected)
    np.testing.assert_allclose(combined["beta"].to_numpy()[ran], expected[ran], rtol=1e-10)
    assert (combined["n"].to_numpy() <= sum(s["n"].to_numpy() for s in per_site)).all()
    result = CliRunner().invoke(main, ["meta", "--lake", gwas_lake.location.root, "--result", names[0],
                                       "--result", names[1], "--name", "meta_cli", "--out", str(tmp_path / "m.tsv")])
    assert result.exit_code == 0, result.output
    assert pl.read_csv(tmp_path / "m.tsv", separator="\t", null_values="NA").height == combined.height
    with pytest.raises(BiolakeError, match="two or more different"):
        run_meta(gwas_lake, name="x", results=[names[0]])


def test_align_alleles__takes_ambiguous_pairs_and_indels_as_written():
    sign, ambiguous = align_alleles(np.array(["T", "G", "AC", "AC"]), np.array(["A", "C", "A", "A"]),
                                    np.array(["A", "C", "A", "GT"]), np.array(["T", "G", "AC", "T"]))
    assert sign.tolist() == [-1, -1, -1, 0] and ambiguous.tolist() == [True, True, False, False]


def test_meta_analyse__n_counts_only_cohorts_that_contributed():
    def cohort(beta, n):
        return pa.table({"phenotype": ["y"], "variant_id": ["rs1"], "chrom": ["1"], "pos": [10], "ref": ["C"],
                         "alt": ["T"], "n": [n], "beta": pa.array([beta], pa.float64()), "se": [0.1]})

    table, _ = meta_analyse([cohort(0.2, 100), cohort(None, 1700)])
    assert table["cohorts"][0].as_py() == 1 and table["n"][0].as_py() == 100
