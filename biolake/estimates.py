"""Tables of one estimate per phenotype or pair (kinds h2 and rg) as the report and the browser show them.

Such a table is small (a row per IDP, or per pair of traits), so both read it whole: h² ± SE per
phenotype as it stands, and the rg pairs as a matrix of traits, each cell rg ± SE coloured by rg.

Examples
--------
>>> matrix = rg_matrix(pa.table({"result_1": ["a", "a"], "phenotype_1": ["x", "x"], "result_2": ["a", "b"],
...                              "phenotype_2": ["y", "d"], "rg": [0.5, float("nan")], "rg_se": [0.1, 0.2]}))
>>> matrix.rows, matrix.columns
([('a', 'x')], [('a', 'y'), ('b', 'd')])
>>> [rg_text(cell) for cell in matrix.cells[0]], matrix.label(matrix.rows[0])
(['0.500 ± 0.100', 'NA'], 'x (a)')
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

ESTIMATE_KINDS = ("h2", "rg")   # results kinds without scans whose tables the report and the browser show whole

Trait = tuple[str, str]          # (results table, phenotype), as an rg row names each of its two traits


@dataclass(frozen=True)
class RgMatrix:
    """The pairs of an rg table as a matrix: traits down (``rows``) and across (``columns``); each cell the
    pair's (rg, rg_se), None where the pair was not estimated.

    Pairs within one set of traits (every pair of a run's IDPs) fill a symmetric matrix over all of them;
    pairs between two sets (IDPs against a disorder) fill a rectangle: the first traits down, the second across.
    """

    rows: list[Trait]
    columns: list[Trait]
    cells: list[list[tuple[float, float] | None]]

    def label(self, trait: Trait) -> str:
        """A trait's phenotype, and its results table where the matrix spans several."""
        several = len({result for result, _ in self.rows + self.columns}) > 1
        return f"{trait[1]} ({trait[0]})" if several else trait[1]


def rg_matrix(table: pa.Table) -> RgMatrix:
    """The matrix of the rg ``table``'s pairs, traits in the order the table first names them."""
    pairs = {((row["result_1"], row["phenotype_1"]), (row["result_2"], row["phenotype_2"])): (row["rg"], row["rg_se"])
             for row in table.select(["result_1", "phenotype_1", "result_2", "phenotype_2", "rg", "rg_se"]).to_pylist()}
    first, second = list(dict.fromkeys(one for one, _ in pairs)), list(dict.fromkeys(other for _, other in pairs))
    if set(first) & set(second):
        first = second = list(dict.fromkeys(first + second))
    cells = {(other, one): value for (one, other), value in pairs.items()} | pairs
    return RgMatrix(first, second, [[cells.get((one, other)) for other in second] for one in first])


def format_estimate(value: float | None) -> str:
    """A number to 4 significant digits; NA where there is none (NaN: LDSC's NA, e.g. rg where an h² ≤ 0)."""
    return "NA" if value is None or math.isnan(value) else f"{value:.4g}"


def rg_text(cell: tuple[float, float] | None) -> str:
    """A matrix cell as LDSC prints rg: 'rg ± se' to 3 decimals, NA without an estimate, empty where not asked."""
    if cell is None:
        return ""
    rg, se = ("NA" if value is None or math.isnan(value) else f"{value:.3f}" for value in cell)
    return rg if rg == "NA" else f"{rg} ± {se}"


def rg_colour(cell: tuple[float, float] | None) -> str:
    """A cell's background: red for positive rg, blue for negative, deeper as |rg| nears 1; none without rg."""
    if cell is None or cell[0] is None or math.isnan(cell[0]):
        return "transparent"
    red, green, blue = (178, 24, 43) if cell[0] > 0 else (33, 102, 172)
    return f"rgba({red},{green},{blue},{min(abs(cell[0]), 1.0) * 0.7:.2f})"
