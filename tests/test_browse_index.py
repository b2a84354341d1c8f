"""The browse index (queries/browse.py) against the full results it summarises."""

import numpy as np
import pyarrow.compute as pc
import pytest

from biolake.epistasis import EpistasisSettings, run_epistasis
from biolake.gwas import GwasSettings, run_gwas
from biolake.gxe import GxeSettings, run_gxe
from biolake.report import phenotype_summary
from biolake.index import index_results
from biolake.queries.browse import BrowseIndex, index_is_current
from biolake.stats.summary import KEEP_ABOVE


@pytest.fixture(scope="module")
def indexed(gwas_lake, scheduler, idps):
    """A GWAS of three IDPs; the job writes the browse index with the results."""
    run_gwas(gwas_lake, GwasSettings(name="browse", phenotypes=idps, covariates=["age", "sex", "site"]),
             scheduler=scheduler)
    index = BrowseIndex(gwas_lake, "browse")
    yield index
    index.close()


def _tests(lake, name, phenotype):
    rows = lake.results_dataset(name).to_table(filter=pc.field("phenotype") == phenotype)
    return rows.filter(pc.is_finite(rows["log10p"]))


def test_points__keep_every_strong_test_with_its_exact_qq_rank(gwas_lake, indexed, idps):
    for phenotype in idps:
        full = _tests(gwas_lake, "browse", phenotype)
        log10p = np.sort(full["log10p"].to_numpy())[::-1]
        points = indexed.points(phenotype)
        manhattan = points.filter(pc.is_valid(points["feature"]))
        strong = full.filter(pc.greater(full["log10p"], KEEP_ABOVE))
        assert set(strong["variant_id"].to_pylist()) <= set(manhattan["feature"].to_pylist())
        assert manhattan.num_rows < full.num_rows
        # QQ: the strong tests at their sorted ranks, expected −log10 (rank / (m + 1)), ties in sorted order …
        m = len(log10p)
        exact = manhattan.filter(pc.is_valid(manhattan["expected"])).sort_by([("expected", "descending")])
        k = exact.num_rows
        np.testing.assert_allclose(exact["expected"].to_numpy(), -np.log10(np.arange(1, k + 1) / (m + 1)))
        np.testing.assert_allclose(exact["log10p"].to_numpy(), log10p[:k])   # rank i is the i-th smallest p
        # … and below KEEP_ABOVE one point per −log10 p cell, at the exact count of tests at or above it
        cells = points.filter(pc.is_null(points["feature"]))
        at_least = np.array([np.sum(log10p >= y - 1e-9) for y in cells["log10p"].to_numpy()])
        np.testing.assert_allclose(cells["expected"].to_numpy(), -np.log10(at_least / (m + 1)), rtol=1e-12)
        # the thinned cloud still spans the genome: every chromosome tested is drawn
        assert set(manhattan["chrom"].to_pylist()) == set(full["chrom"].to_pylist())


def test_summary__equals_the_report_over_the_full_table(gwas_lake, indexed):
    report = {r["phenotype"]: r for r in phenotype_summary(gwas_lake, "browse").to_pylist()}
    for row in indexed.summary().to_pylist():
        expected = report[row["phenotype"]]
        assert (row["tests"], row["hits"], row["top"]) == (expected["tests"], expected["hits"], expected["top"])
        assert row["top_log10p"] == pytest.approx(expected["top_log10p"], rel=1e-12)


def test_positions__give_a_variants_phewas_and_a_region_exactly(gwas_lake, indexed, idps):
    full = gwas_lake.results_dataset("browse").to_table()
    full = full.filter(pc.is_finite(full["log10p"]))
    variant = full["variant_id"][len(full) // 2].as_py()
    chrom, pos = indexed.position_of(variant)
    phewas = indexed.at(chrom, pos, variant).sort_by("phenotype")
    expected = full.filter(pc.field("variant_id") == variant).sort_by("phenotype")
    assert phewas["phenotype"].to_pylist() == expected["phenotype"].to_pylist()
    np.testing.assert_allclose(phewas["log10p"].to_numpy(), expected["log10p"].to_numpy(), rtol=1e-6)  # float32
    np.testing.assert_allclose(phewas["effect"].to_numpy(), expected["beta"].to_numpy(), rtol=1e-6)
    window = indexed.region(chrom, pos - 2_000_000, pos + 2_000_000, idps[0])
    in_window = full.filter((pc.field("chrom") == chrom) & (pc.field("pos") >= pos - 2_000_000)
                            & (pc.field("pos") <= pos + 2_000_000) & (pc.field("phenotype") == idps[0]))
    assert window["feature"].to_pylist() == in_window.sort_by("pos")["variant_id"].to_pylist()
    assert indexed.position_of("rs-not-a-variant") is None


def test_index__follows_its_results_and_is_rebuilt_when_stale(gwas_lake, scheduler, idps):
    run_gwas(gwas_lake, GwasSettings(name="browse_stale", phenotypes=idps[:1], covariates=["age"]),
             scheduler=scheduler)
    assert index_is_current(gwas_lake, "browse_stale")
    # the results rewritten by something that did not index them (an older biolake, a killed job)
    table = gwas_lake.results("browse_stale")
    from deltalake import write_deltalake
    write_deltalake(table, table.to_pyarrow_table(), mode="overwrite")
    assert not index_is_current(gwas_lake, "browse_stale")
    index_results(gwas_lake, "browse_stale")
    assert index_is_current(gwas_lake, "browse_stale")
    # housekeeping commits (a vacuum that deletes the replaced files) do not make it look stale
    deleted = gwas_lake.derived("browse_stale", "summary").vacuum(retention_hours=0, enforce_retention_duration=False,
                                                                 dry_run=False)
    assert deleted and index_is_current(gwas_lake, "browse_stale")


def test_gxe_index__keeps_one_scan_per_phenotype_and_exposure(gwas_lake, scheduler, idps):
    run_gxe(gwas_lake, GxeSettings(name="browse_gxe", phenotypes=idps[:2], covariates=["age", "sex", "stress"],
                                   exposures=["stress"]), scheduler=scheduler)
    index = BrowseIndex(gwas_lake, "browse_gxe")
    try:
        scans = index.summary()
        assert sorted(zip(scans["phenotype"].to_pylist(), scans["exposure"].to_pylist())) == \
            [(idps[0], "stress"), (idps[1], "stress")]
        gxe = gwas_lake.results_dataset("browse_gxe").to_table(filter=pc.field("phenotype") == idps[0])
        best = pc.max(gxe.filter(pc.is_finite(gxe["log10p_gxe_robust"]))["log10p_gxe_robust"]).as_py()
        assert index.points(idps[0], "stress")["log10p"].to_numpy().max() == pytest.approx(best, rel=1e-12)
    finally:
        index.close()


def test_points_of_pairs__name_each_pairs_other_variant(gwas_lake, indexed, idps):
    """An epistasis run's points name the pair's other variant (the kind's ``pair`` role: id, chromosome, position)
    besides the partner that places them; a run of single variants has none."""
    candidate = gwas_lake.read("variants", columns=["variant_id"]).column(0)[0].as_py()
    run_epistasis(gwas_lake, EpistasisSettings(name="browse_pairs", phenotypes=idps[:1], covariates=["age"],
                                               candidates=[candidate], chromosomes=["2"], replace=True))
    index = BrowseIndex(gwas_lake, "browse_pairs")
    try:
        points = index.points(idps[0])
        drawn = points.filter(pc.is_valid(points["feature"])).to_pylist()
        rows = {row["variant_id_b"]: row for row in gwas_lake.results_dataset("browse_pairs").to_table().to_pylist()}
        assert drawn and all((p["pair"], p["pair_chrom"], p["pair_pos"], p["chrom"], p["pos"]) == tuple(
            rows[p["feature"]][c] for c in ("variant_id_a", "chrom_a", "pos_a", "chrom", "pos")) for p in drawn)
        qq_only = points.filter(pc.is_null(points["feature"]))
        assert qq_only.num_rows and qq_only["pair"].null_count == qq_only.num_rows
    finally:
        index.close()
    assert indexed.points(idps[0])["pair"].null_count == indexed.points(idps[0]).num_rows


def test_summary__lists_a_scan_whose_every_test_failed(gwas_lake, scheduler, idps):
    # the exposure is also a covariate, so every interaction test is collinear
    run_gxe(gwas_lake, GxeSettings(name="browse_failed", phenotypes=idps[:1], covariates=["age", "sex"],
                                   exposures=["age"], chromosomes=["1"]), scheduler=scheduler)
    index = BrowseIndex(gwas_lake, "browse_failed")
    try:
        (scan,) = index.summary().to_pylist()
        assert (scan["phenotype"], scan["exposure"], scan["tests"], scan["top"]) == (idps[0], "age", 0, None)
        assert index.points(idps[0], "age").num_rows == 0
    finally:
        index.close()


def test_catalogue__serves_a_rewritten_run_at_its_new_version(gwas_lake, scheduler, idps):
    from biolake.browser.catalogue import Catalogue
    run_gwas(gwas_lake, GwasSettings(name="browse_rewrite", phenotypes=idps[:1], covariates=["age"]),
             scheduler=scheduler)
    catalogue = Catalogue(gwas_lake, log=lambda message: None)
    before = catalogue.run("browse_rewrite").scans()[0]["tests"]
    run_gwas(gwas_lake, GwasSettings(name="browse_rewrite", phenotypes=idps[:1], covariates=["age"],
                                     chromosomes=["1"], replace=True), scheduler=scheduler)
    catalogue.refresh(build_now=True)
    after = catalogue.run("browse_rewrite")
    assert after.results_version == gwas_lake.results("browse_rewrite").version()
    assert 0 < after.scans()[0]["tests"] < before
    # no PRS tables (the lake is the session's: other modules' runs, test_clump's clumps among them, may be in it)
    assert {run.kind for run in catalogue.runs.values()} <= {"gwas", "ewas", "gxe", "epistasis", "meta", "clump",
                                                             "cnv_assoc"}


def test_catalogue__of_an_empty_lake_has_nothing_to_show(lake):
    from biolake.browser.catalogue import Catalogue
    catalogue = Catalogue(lake, log=lambda message: None)
    assert catalogue.runs == {} and catalogue.search("rs1") == {"scans": []}


def test_points__of_an_inflated_scan_keep_the_strongest_whole_and_thin_the_rest(gwas_lake, indexed, idps):
    index_results(gwas_lake, "browse", exact=2)
    capped = BrowseIndex(gwas_lake, "browse")
    # the scan with the most tests past KEEP_ABOVE (an IDP with a planted effect: its LD block)
    inflated = max(idps, key=lambda idp: int((_tests(gwas_lake, "browse", idp)["log10p"].to_numpy() > KEEP_ABOVE).sum()))
    try:
        full = _tests(gwas_lake, "browse", inflated)
        log10p, m = np.sort(full["log10p"].to_numpy())[::-1], full.num_rows
        points = capped.points(inflated)
        exact = points.filter(pc.and_(pc.is_valid(points["feature"]), pc.is_valid(points["expected"])))
        assert (log10p > KEEP_ABOVE).sum() > 2 and exact.num_rows == 2
        np.testing.assert_allclose(np.sort(exact["log10p"].to_numpy())[::-1], log10p[:2])
        cells = points.filter(pc.is_null(points["feature"]))
        at_least = np.array([np.sum(log10p >= y - 1e-9) for y in cells["log10p"].to_numpy()])
        np.testing.assert_allclose(cells["expected"].to_numpy(), -np.log10(at_least / (m + 1)), rtol=1e-12)
        assert pc.max(points["log10p"]).as_py() == log10p[0]
    finally:
        capped.close()
        index_results(gwas_lake, "browse")
