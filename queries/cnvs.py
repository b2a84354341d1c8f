"""The reads of CNV jobs: the participants a release's CNVs were called for, and their segments passing a
filter, as arrays over that called set.

Filters apply at analysis time, as PLINK 1.07's do (``--cnv-kb``, ``--cnv-sites``, ``--cnv-score``, their
``--cnv-max-*`` and ``--cnv-del``/``--cnv-dup``), each bound inclusive; the ``cnvs`` table keeps every call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pyarrow as pa

from biolake.lake.chromosomes import PLINK_ORDER
from biolake.lake.errors import BiolakeError
from biolake.queries.sql import LakeConnection

TYPES = ("both", "del", "dup")
# a chromosome as PLINK numbers it (lake.chromosomes.plink_number), in SQL
PLINK_NUMBER = "CASE chrom " + " ".join(f"WHEN '{code}' THEN {k}" for k, code in enumerate(PLINK_ORDER, 1)) + " END"


@dataclass(frozen=True, kw_only=True)
class CnvFilter:
    """Which segments count: length in kb (PLINK's (end − start) / 1000), probes, the caller's confidence, type;
    each bound inclusive, None for none. A segment without a confidence fails any confidence bound.

    Examples
    --------
    >>> CnvFilter(min_kb=100, min_sites=10, min_score=12.3456789).where()
    '("end" - start) / 1000.0 >= 100.0 AND probes >= 10 AND confidence >= 12.3456789'
    """

    min_kb: float | None = None
    max_kb: float | None = None
    min_sites: int | None = None
    max_sites: int | None = None
    min_score: float | None = None
    max_score: float | None = None
    type: str = "both"

    def __post_init__(self) -> None:
        for name in ("min_kb", "max_kb", "min_score", "max_score"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise BiolakeError(f"--{name.replace('_', '-')} {value}: a finite number")
            if value is not None:
                object.__setattr__(self, name, float(value))
        for name in ("min_sites", "max_sites"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, int(getattr(self, name)))
        if self.type not in TYPES:
            raise BiolakeError(f"--type {self.type!r}: one of {', '.join(TYPES)}")
        for low, high, flag in ((self.min_kb, self.max_kb, "kb"), (self.min_sites, self.max_sites, "sites"),
                                (self.min_score, self.max_score, "score")):
            if low is not None and high is not None and low > high:
                raise BiolakeError(f"--min-{flag} {low:g} is above --max-{flag} {high:g}: no segment passes")
        for value, flag in ((self.min_kb, "--min-kb"), (self.max_kb, "--max-kb"), (self.min_sites, "--min-sites"),
                            (self.max_sites, "--max-sites")):
            if value is not None and value < 0:
                raise BiolakeError(f"{flag} {value:g}: a length or a count of probes is at least 0")

    def where(self) -> str:
        """The filter as a SQL predicate over the ``cnvs`` view (TRUE when it filters nothing)."""
        bounds = (('("end" - start) / 1000.0', self.min_kb, self.max_kb), ("probes", self.min_sites, self.max_sites),
                  ("confidence", self.min_score, self.max_score))
        terms = [f"{expression} {operator} {value!r}" for expression, low, high in bounds   # every digit
                 for operator, value in ((">=", low), ("<=", high)) if value is not None]
        if self.type != "both":
            terms.append(f"type = '{self.type.upper()}'")
        return " AND ".join(terms) or "TRUE"

    def record(self) -> dict:
        """The filter as provenance keeps it."""
        return {name: value for name, value in vars(self).items() if value is not None}


def cnv_called(con: LakeConnection) -> list[str]:
    """The participants the release's CNVs were called for, in their sample order; an error if it has no calls."""
    called = con.sql("SELECT participant_id FROM samples WHERE assay = 'cnv' ORDER BY sample_index").arrow()
    if not called.num_rows:
        raise BiolakeError("the release has no CNV calls: ingest them with --cnv (or a release.yaml naming 'cnv')")
    return called.column(0).to_pylist()


def cnv_segments(con: LakeConnection, cnv_filter: CnvFilter) -> pa.Table:
    """The segments passing ``cnv_filter``: ``owner`` (the participant's position in the called set, :func:`cnv_called`),
    chrom (as PLINK numbers it), start, end, deletion (bool); each participant's in the order of its source file (sums
    over them then add as PLINK adds them)."""
    return con.sql(f"SELECT s.sample_index AS owner, {PLINK_NUMBER} AS chrom, start, \"end\", type = 'DEL' AS deletion "
                   "FROM cnvs c JOIN samples s ON s.participant_id = c.participant_id AND s.assay = 'cnv' "
                   f"WHERE {cnv_filter.where()} ORDER BY s.sample_index, c.segment_index").arrow()
