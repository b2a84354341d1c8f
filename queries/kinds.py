"""What the columns of each kind of results table mean (GWAS, EWAS, GxE, meta-analysis).

A run's provenance records its kind; readers of any results table (reports, the browser)
take from here which columns hold the phenotype, the feature (variant or CpG), the
headline −log10 p and the effect.
"""

from __future__ import annotations

from dataclasses import dataclass

from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake


@dataclass(frozen=True)
class ResultKind:
    """Which columns of a results table mean what."""

    phenotype: str
    feature: str
    log10p: str
    effect: str
    extra_group: tuple[str, ...] = ()   # columns that, with the phenotype, make one scan (GxE: the exposure)

    @property
    def groups(self) -> list[str]:
        """The columns whose values name one scan: thresholds, q-values and clumping are per scan."""
        return [self.phenotype, *self.extra_group]


KINDS = {
    "gwas": ResultKind("phenotype", "variant_id", "log10p", "beta"),
    "ewas": ResultKind("exposure", "cpg", "log10p", "coefficient"),
    "gxe": ResultKind("phenotype", "variant_id", "log10p_gxe_robust", "beta_gxe", extra_group=("exposure",)),
    "meta": ResultKind("phenotype", "variant_id", "log10p", "beta"),
}


def result_kind(lake: Lake, name: str) -> ResultKind:
    """The column roles of the results ``name``, from the kind its provenance records."""
    kind = lake.results_provenance(name).get("kind")
    if kind not in KINDS:
        raise BiolakeError(f"results {name!r} are of kind {kind!r}; reports know {', '.join(KINDS)}")
    return KINDS[kind]
