import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from biolake.ingest.release import ReleaseSources, ingest_release
from biolake.lake.vectors import decode_calls
from biolake.queries import DesignWarning, QueryError, connect, design, scan


@pytest.fixture
def two_release_lake(loaded_lake, editable_release):
    """r1 = the small release; r2 = the same with only the first 100 IDP rows."""
    idps = editable_release / "idps.csv"
    idps.write_text("\n".join(idps.read_text().splitlines()[:101]) + "\n")
    sources, _ = ReleaseSources.from_folder(editable_release)
    ingest_release(loaded_lake, sources, release="r2", source="test")
    return loaded_lake


def test_connect__every_table_is_a_view(loaded_lake):
    con = connect(loaded_lake)
    assert con.tables() == sorted(["betas", "cnvs", "covariates", "dosages", "genotypes", "idp_fields", "idps",
                                   "methylation", "probes", "releases", "samples", "variants"])
    assert con.execute("DESCRIBE idps").fetchall()[0][0] == "participant_id"


def test_connect__release_argument_travels_in_time(two_release_lake):
    count = "SELECT count(*) FROM idps"
    assert connect(two_release_lake).execute(count).fetchall() == [(100,)]
    assert connect(two_release_lake, release="r2").execute(count).fetchall() == [(100,)]
    assert connect(two_release_lake, release="r1").execute(count).fetchall() == [(301,)]


def test_connect__accepts_a_root_path(loaded_lake):
    con = connect(loaded_lake.location.root, release="r1")
    assert con.release.release == "r1"


def test_dosages__candidate_snp_query_in_one_select(loaded_lake, release_folder):
    con = connect(loaded_lake)
    variant = con.execute("SELECT variant_id, variant_index FROM variants "
                          "WHERE alt_freq BETWEEN 0.2 AND 0.8 LIMIT 1").fetchall()[0]
    rows = con.sql("""
        SELECT d.participant_id, d.dosage, i."25001-2.0" AS idp, c.age, c.sex
        FROM dosages d JOIN idps i USING (participant_id) JOIN covariates c USING (participant_id)
        WHERE d.variant_id = ? ORDER BY d.participant_id""", params=[variant[0]]).fetchall()
    ids = [line.split()[1] for line in (release_folder / "genotypes.fam").read_text().splitlines()]
    raw = np.fromfile(release_folder / "genotypes.bed", np.uint8)[3:].reshape(-1, (len(ids) + 3) // 4)
    expected = dict(zip(ids, decode_calls(raw[variant[1]:variant[1] + 1], len(ids))[0]))
    assert len(rows) == len(ids)
    for participant, dosage, *_ in rows:
        assert (dosage is None and np.isnan(expected[participant])) or dosage == expected[participant]


def test_sql__parameters_are_bound_not_formatted(loaded_lake):
    con = connect(loaded_lake)
    assert con.execute("SELECT count(*) FROM variants WHERE variant_id = ?",
                       params=["x' OR '1'='1"]).fetchall() == [(0,)]


ESCAPES = {
    "create": "CREATE TABLE stolen AS SELECT * FROM idps",
    "insert": "INSERT INTO idps SELECT * FROM idps",
    "update": "UPDATE covariates SET age = 0",
    "delete": "DELETE FROM covariates",
    "drop": "DROP VIEW idps",
    "copy into the lake": "COPY (SELECT * FROM idps) TO '{lake}/idps/stolen.csv'",
    "copy out": "COPY idps TO '/tmp/biolake-stolen.csv'",
    "export": "EXPORT DATABASE '/tmp/biolake-export'",
    "attach": "ATTACH '/tmp/biolake-other.duckdb' AS other",
    "install": "INSTALL httpfs",
    "load": "LOAD httpfs",
    "set": "SET enable_external_access = true",
    "pragma": "PRAGMA enable_profiling",
    "call": "CALL pragma_version()",
    "second statement": "SELECT 1; DROP VIEW idps",
    "read outside": "SELECT * FROM read_csv('/etc/passwd')",
    "read text outside": "SELECT * FROM read_text('/etc/hostname')",
    "glob outside": "SELECT * FROM glob('/etc/*')",
    "other bucket": "SELECT * FROM read_parquet('s3://other-bucket/x.parquet')",
    "bad sql": "SELEC 1",
    "read blob outside": "SELECT * FROM read_blob('/etc/passwd')",
    "process environment": "SELECT * FROM read_csv('/proc/self/environ')",
    "a list of files": "FROM read_csv(['/etc/hostname'])",
    "sniff a file": "SELECT * FROM sniff_csv('/etc/passwd')",
    "secrets": "SELECT * FROM duckdb_secrets()",
    "http": "SELECT * FROM read_json_auto('http://127.0.0.1:9/x.json')",
    "https": "SELECT * FROM read_csv('https://example.org/x.csv')",
    "extension autoload": "SELECT * FROM delta_scan('{lake}/idps')",
    "statement inside query()": "SELECT * FROM query('CREATE TABLE stolen AS SELECT 1')",
}


@pytest.mark.parametrize("query", ESCAPES.values(), ids=ESCAPES.keys())
def test_sql__escapes_are_refused_and_nothing_is_written(loaded_lake, query, reliability):
    lake_root = Path(loaded_lake.location.root)
    before = sorted(lake_root.rglob("*"))
    con = connect(loaded_lake)
    with pytest.raises(QueryError):
        con.execute(query.format(lake=lake_root)).fetchall()
    assert sorted(lake_root.rglob("*")) == before
    assert con.execute("SELECT count(*) FROM idps").fetchall() == [(301,)]
    reliability["SQL escape attempts refused, lake unchanged"] += 1


def test_sql__results_cannot_write_or_chain_statements(loaded_lake):
    result = connect(loaded_lake).sql("SELECT * FROM covariates")
    for escape in ("write_csv", "to_parquet", "query", "execute", "to_csv"):
        assert not hasattr(result, escape)
    assert result.arrow().num_rows == 301


@pytest.mark.parametrize("query", [
    "SELECT count(*) FROM read_parquet('{lake}/covariates/**/*.parquet')",  # beyond the views
    "SELECT * FROM read_text('{lake}/catalog.yaml')",
    "SELECT * FROM glob('{lake}/**')",
    "SELECT * FROM read_csv('.tmp/anything.csv')",                         # DuckDB's temp folder
])
def test_sql__only_the_release_files_are_readable(two_release_lake, query, reliability):
    con = connect(two_release_lake, release="r2")
    with pytest.raises(QueryError):
        con.execute(query.format(lake=two_release_lake.location.root))
    reliability["SQL escape attempts refused, lake unchanged"] += 1


def test_sql__errors_at_run_time_are_query_errors(loaded_lake):
    with pytest.raises(QueryError, match="Conversion"):
        connect(loaded_lake).sql("SELECT CAST(participant_id || 'x' AS INTEGER) FROM covariates").fetchall()


def test_scan__pushes_filters_and_release_down(two_release_lake):
    frame = scan(two_release_lake, "variants", release="r1").filter(pl.col("chrom") == "2")
    assert "SELECTION" in frame.select("variant_id", "pos").explain()
    result = frame.collect()
    assert set(result["release"]) == {"r1"} and set(result["chrom"]) == {"2"}
    assert scan(two_release_lake, "idps").collect().height == 100


def test_design__aligns_to_the_genotype_vector_and_reports_drops(loaded_lake):
    con = connect(loaded_lake)
    result = design(con, phenotypes=["25001-2.0", "25002-2.0"], covariates=["age", "sex", "site", "PC1"],
                    samples="SELECT participant_id FROM covariates WHERE age > 50")
    order = [r[0] for r in con.execute("SELECT participant_id FROM samples WHERE assay = 'genotypes' "
                                       "ORDER BY sample_index").fetchall()]
    assert [order[i] for i in result.sample_index] == result.participant_ids
    assert np.all(np.diff(result.sample_index) > 0)
    assert len(result.participant_ids) + sum(result.dropped.counts.values()) == len(order)
    assert result.covariate_names[:3] == ["intercept", "age", "sex[M]"] or \
        result.covariate_names[:3] == ["intercept", "age", "sex[F]"]
    assert any(name.startswith("site[") for name in result.covariate_names)
    assert not np.isnan(result.covariates).any()
    ages = dict(con.execute("SELECT participant_id, age FROM covariates").fetchall())
    np.testing.assert_array_equal(result.covariates[:, 1], [ages[p] for p in result.participant_ids])
    assert result.dropped.counts["not in the sample selection"] > 0


def test_design__drops_constant_and_collinear_covariates_with_a_warning(loaded_lake):
    con = connect(loaded_lake)
    with pytest.warns(DesignWarning) as caught:
        result = design(con, phenotypes=["25001-2.0"],
                        covariates="SELECT participant_id, age, 2 * age + 1 AS age_again, 1.0 AS one, "
                                   "PC1 FROM covariates")
    assert result.covariate_names == ["intercept", "age", "PC1"]
    assert set(result.dropped.dropped_covariates) == {"age_again", "one"}
    assert len(caught) == 2


@pytest.mark.parametrize("phenotypes, message", [
    ("SELECT age FROM covariates", "participant_id as its first column"),
    ("SELECT participant_id, site FROM covariates", "expected numbers"),
    ("SELECT participant_id, age FROM covariates UNION ALL SELECT participant_id, age FROM covariates",
     "times"),
    ("SELECT participant_id, nope FROM idps", "nope"),
    ("SELECT participant_id, age FROM covariates WHERE false", "no participant"),
])
def test_design__bad_queries_say_what_is_wrong(loaded_lake, phenotypes, message):
    with pytest.raises(QueryError, match=message):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DesignWarning)
            design(connect(loaded_lake), phenotypes=phenotypes, covariates=["age"])


def test_betas__long_view_with_m_values(loaded_lake, release_folder):
    matrix = pl.read_csv(release_folder / "methylation.csv")
    cpg, participant = matrix.columns[0], matrix.columns[1]
    first_cpg = matrix[cpg][0]
    row = connect(loaded_lake).execute(
        "SELECT beta, m_value(beta) FROM betas WHERE cpg_id = ? AND participant_id = ?",
        params=[first_cpg, participant]).fetchall()
    beta = np.float32(matrix[participant][0])
    assert row == [(pytest.approx(float(beta)), pytest.approx(float(np.log2(beta / (1 - beta))), rel=1e-6))]


def test_design__decimal_columns_are_numbers_and_other_types_are_named(loaded_lake):
    con = connect(loaded_lake)
    result = design(con, phenotypes="SELECT participant_id, CASE WHEN age > 60 THEN 1.0 ELSE 0.0 END AS old "
                                     "FROM covariates", covariates=["age"])
    assert result.phenotypes.shape[1] == 1
    with pytest.raises(QueryError, match="'visit' is date"):
        design(con, phenotypes=["25001-2.0"],
               covariates="SELECT participant_id, DATE '2020-01-01' AS visit FROM covariates")
    with pytest.raises(QueryError, match="'nothing' has no values"):
        design(con, phenotypes=["25001-2.0"],
               covariates="SELECT participant_id, CAST(NULL AS VARCHAR) AS nothing FROM covariates")


def test_design__collinearity_is_judged_relative_to_scale(loaded_lake):
    with pytest.warns(DesignWarning, match="small_again"):
        result = design(connect(loaded_lake), phenotypes=["25001-2.0"],
                        covariates="SELECT participant_id, PC1 * 1e-9 AS small, PC1 * 2e-9 AS small_again, "
                                   "PC2 * 1e-9 AS other FROM covariates")
    assert result.covariate_names == ["intercept", "small", "other"]


def count_calls(monkeypatch, cls: type, methods: list[str]) -> dict[str, int]:
    """Count calls of ``methods`` of ``cls`` from now on (the dict fills as they happen)."""
    counts = dict.fromkeys(methods, 0)
    for method in methods:
        original = getattr(cls, method)

        def counted(self, *args, _original=original, _method=method, **kwargs):
            counts[_method] += 1
            return _original(self, *args, **kwargs)
        monkeypatch.setattr(cls, method, counted)
    return counts


def test_connect__reads_retractions_and_pending_drops_once_for_all_views(loaded_lake, monkeypatch):
    """One read of the retractions and one listing of _locks/ per connection, however many views."""
    from test_lake import tiny_results

    from biolake.lake.lake import Lake

    for name in ("a", "b", "c"):
        tiny_results(loaded_lake, name)
    counts = count_calls(monkeypatch, Lake, ["retractions", "drops_pending"])
    with connect(loaded_lake) as con:
        assert {"results.a", "results.c"} <= {f"results.{row[0]}" for row in con.sql(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'results'").fetchall()}
    assert counts == {"retractions": 1, "drops_pending": 1}


def test_connect__with_its_queries_known_makes_views_of_just_the_results_tables_they_name(loaded_lake):
    """Each results view reads its table's log: a job names its queries, so a lake of many runs
    does not slow every job down."""
    from test_lake import tiny_results

    for name in ("a", "b", "c"):
        tiny_results(loaded_lake, name)
    shown = "SELECT table_name FROM information_schema.tables WHERE table_schema = 'results' ORDER BY 1"
    with connect(loaded_lake, queries=["SELECT participant_id, p FROM results.b JOIN idps ON true",
                                       "SELECT participant_id FROM covariates"]) as con:
        assert con.sql(shown).fetchall() == [("b",)]
        assert con.sql("SELECT p FROM results.b").fetchall() == [(0.5,)]
    with connect(loaded_lake, queries=["SELECT participant_id FROM covariates"]) as con:
        assert con.sql(shown).fetchall() == []
    with connect(loaded_lake, queries=["SELEC oops"]) as con:   # unparsed: every view, the query's error later
        assert con.sql(shown).fetchall() == [("a",), ("b",), ("c",)]
