import pyarrow as pa
import pytest

from biolake.lake.errors import LakeError
from biolake.lake.schema import ERRORS, RESULTS_KINDS, results_kind
from biolake.queries.output import DIALECTS
from biolake.stats import association
from biolake.stats.gwas import results_schema
from biolake.stats.gxe import gxe_schema


def commit(lake, name: str, table: pa.Table, *, kind: str = "gwas") -> int:
    files = lake.results_files(name)
    output = files.open(table.schema, partition={}, part="t")
    output.write(table)
    return lake.commit_results(files, [output.close()], schema=table.schema, partition_by=[],
                               provenance={"kind": kind, "release": "r1"})


def gwas_row() -> pa.Table:
    return pa.Table.from_pylist([{"phenotype": "y", "variant_id": "rs1", "p": 0.5}],
                                schema=results_schema(statistics=["t"]))


@pytest.mark.parametrize("change, message", [
    (lambda t: t.drop_columns(["beta"]), r"^results table 'bad' \(gwas\): missing column 'beta' \(double: effect"),
    (lambda t: t.set_column(t.schema.get_field_index("pos"), "pos", pa.array(["10"])),
     r"^results table 'bad' \(gwas\): column 'pos' is string, expected int64$"),
    (lambda t: t.append_column("coefficient", pa.array([0.1])),
     r"^results table 'bad' \(gwas\): unexpected columns \['coefficient'\]; declared: phenotype, variant_id"),
], ids=["missing", "wrong type", "unknown"])
def test_commit_results__refuses_a_table_unlike_its_kinds_declaration(lake, change, message):
    with pytest.raises(LakeError, match=message):
        commit(lake, "bad", change(gwas_row()))
    assert lake.results_names() == []


def test_commit_results__refuses_an_undeclared_kind(lake):
    with pytest.raises(LakeError, match=r"^results 'bad' are of kind 'pca'; declared kinds: gwas, ewas, gxe"):
        commit(lake, "bad", gwas_row(), kind="pca")


def test_commit_results__takes_each_kinds_optional_columns(lake):
    mixed = results_schema(statistics=["t", "z"]).append(pa.field("fdr", pa.float64()))   # logistic, --adjust
    commit(lake, "mixed", mixed.empty_table())
    commit(lake, "gxe3", gxe_schema(exposures=3).empty_table(), kind="gxe")
    scores = RESULTS_KINDS["prs"].arrow_schema(columns=["prs_p5e_08", "prs_p1"])
    commit(lake, "scores", scores.empty_table(), kind="prs")
    assert lake.results_kind("scores").name == "prs" and lake.results_kind("gxe3").groups == ["phenotype", "exposure"]


def test_commit_results__ld_pairs_of_kind_ld(lake):
    """LD pairs are a kind without scans (no p): declared once, refused when a column is missing."""
    pairs = RESULTS_KINDS["ld"].arrow_schema()
    commit(lake, "pairs", pairs.empty_table(), kind="ld")
    assert lake.results_kind("pairs").name == "ld" and not RESULTS_KINDS["ld"].scans
    with pytest.raises(LakeError, match=r"^results table 'bad' \(ld\): missing column 'dprime'"):
        commit(lake, "bad", pairs.empty_table().drop_columns(["dprime"]), kind="ld")


def test_commit_results__ldscore_is_a_kind_without_scans(lake):
    schema = RESULTS_KINDS["ldscore"].arrow_schema()
    commit(lake, "scores", schema.empty_table(), kind="ldscore")
    assert lake.results_kind("scores").name == "ldscore" and not lake.results_kind("scores").scans
    with pytest.raises(LakeError, match=r"^results table 'bad' \(ldscore\): missing column 'l2'"):
        commit(lake, "bad", schema.remove(schema.get_field_index("l2")).empty_table(), kind="ldscore")


def test_results_kinds__roles_name_declared_columns():
    for kind in RESULTS_KINDS.values():
        names = {column.name for column in kind.columns}
        roles = [kind.feature, kind.effect, kind.log10p, kind.p, *kind.position] + (kind.groups if kind.scans else [])
        assert {role for role in roles if role is not None} <= names, kind.name
    assert [name for name, kind in RESULTS_KINDS.items() if kind.scans] == ["gwas", "ewas", "gxe", "epistasis", "meta",
                                                                            "clump", "cnv_assoc"]


def test_results_kinds__one_name_per_concept():
    """The effect is ``beta``, a CpG ``cpg_id`` and the error codes one vocabulary, in every kind."""
    for kind in RESULTS_KINDS.values():
        names = [column.name for column in kind.columns]
        assert not {"coefficient", "cpg", "effect"} & set(names), kind.name
    assert RESULTS_KINDS["ewas"].effect == RESULTS_KINDS["gwas"].effect == "beta"
    assert RESULTS_KINDS["ewas"].feature == "cpg_id"
    assert association.ERRORS is ERRORS and ERRORS[association.NOT_CONVERGED] == "not converged"


def test_results_kind__reports_refuse_a_kind_without_scans():
    assert results_kind("prs", table="scores").name == "prs"
    with pytest.raises(LakeError, match=r"^results 'scores' are of kind 'prs'; kinds with scans: gwas, ewas, gxe, epistasis, meta, clump, cnv_assoc$"):
        results_kind("prs", table="scores", scans=True)


def test_arrow_schema__refuses_columns_its_kind_does_not_declare():
    with pytest.raises(LakeError, match=r"^meta results declare no columns \['t'\]$"):
        RESULTS_KINDS["meta"].arrow_schema(columns=["t"])


def test_dialects__export_declared_gwas_columns():
    """Exports rename the GWAS columns to other tools' names; what they read is declared."""
    declared = {column.name for column in RESULTS_KINDS["gwas"].columns}
    computed = {"ADD", "chisq", "ssf_chromosome", "ssf_rsid", "ssf_variant_id"}
    assert {ours for layout in DIALECTS.values() for _, ours in layout} - computed <= declared
