"""The one scan summary (stats/summary.py): built piece by piece, merged exactly."""

from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from biolake.stats.multiple import lambda_gc
from biolake.stats.summary import ScanSummary

ROLES = SimpleNamespace(phenotype="phenotype", feature="variant_id", log10p="log10p", effect="beta", extra_group=(),
                        pair=())


def _rows(rng, phenotypes, n):
    log10p = -np.log10(rng.uniform(size=n * len(phenotypes)))
    log10p[rng.choice(len(log10p), 5, replace=False)] = np.nan           # tests that did not run
    log10p[0] = 12.0                                                   # one genome-wide hit
    return pa.table({"phenotype": np.repeat(phenotypes, n), "variant_id": [f"rs{i}" for i in range(n)] * len(phenotypes),
                     "chrom": ["1"] * (n * len(phenotypes)), "pos": np.tile(np.arange(n) * 1000, len(phenotypes)),
                     "beta": rng.normal(size=n * len(phenotypes)), "log10p": pa.array(log10p, from_pandas=True)})


def test_scan_summary__merged_pieces_equal_one_pass_over_all_rows():
    rng = np.random.default_rng(1)
    rows = _rows(rng, ["a", "b"], 4000)
    whole = ScanSummary(ROLES, scans=[("a", None), ("b", None)])
    whole.add(rows)
    merged = ScanSummary(ROLES, scans=[("a", None), ("b", None)])
    for start in range(0, rows.num_rows, 1500):
        piece = ScanSummary(ROLES)
        piece.add(rows.slice(start, 1500))
        merged.merge(piece)
    for name in ("tests", "failed", "hits", "top_log10p", "counts"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    assert merged.top_variant.tolist() == whole.top_variant.tolist() == ["rs0", whole.top_variant[1]]
    assert merged.tables()["summary"].equals(whole.tables()["summary"])
    assert merged.tables()["points"].equals(whole.tables()["points"])


def test_scan_summary__counts_and_lambda_gc_follow_the_rows():
    rng = np.random.default_rng(2)
    rows = _rows(rng, ["a"], 20_000)
    summary = ScanSummary(ROLES, scans=[("a", None)])
    summary.add(rows)
    log10p = rows.column("log10p").to_numpy(zero_copy_only=False)
    tested = ~np.isnan(log10p)
    assert (summary.tests[0], summary.failed[0], summary.hits[0]) == (tested.sum(), 5, 1)
    np.testing.assert_allclose(summary.lambda_gc(), lambda_gc(10.0 ** -log10p[tested]), rtol=5e-3)
    assert summary.per_phenotype()["a"]["top_variant"] == "rs0"


def test_scan_summary__headline_scores_count_as_their_rows_do():
    rng = np.random.default_rng(3)
    rows = _rows(rng, ["a"], 3000)
    from_rows, from_scores = ScanSummary(ROLES, scans=[("a", None)]), ScanSummary(ROLES, scans=[("a", None)])
    from_rows.add(rows)
    from_scores.add_scores(rows.column("variant_id").to_numpy(zero_copy_only=False),
                           rows.column("log10p").to_numpy(zero_copy_only=False)[:, None])
    for name in ("tests", "failed", "hits", "top_log10p", "counts"):
        np.testing.assert_array_equal(getattr(from_scores, name), getattr(from_rows, name))
    assert from_scores.top_variant.tolist() == from_rows.top_variant.tolist()
