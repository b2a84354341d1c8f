"""The mixed-model part of the GWAS job (``biolake gwas --lmm``): K from the lake, its eigenbases, the block tests.

K is the relationship matrix the heritability job builds (GEMMA's ``-gk 2`` over the analysis
samples, :func:`biolake.heritability.relationship_sum` on dask), over every chromosome whatever
``--chrom`` tests. The client decomposes it once per phenotype missingness pattern and fits each
phenotype's null model (:func:`biolake.stats.lmm.prepare_lmm`); that model goes to the cluster
once, and every genotype block is then tested as the plain GWAS tests it (:mod:`biolake.scan`),
each task rotating its block by U' (:func:`biolake.stats.lmm.lmm_association`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from biolake.heritability import (GEMMA_MAX_MISSING, GEMMA_MIN_MAF, RELATIONSHIP, RelationshipInputs,
                                  check_relationship_variants, refuse_unfittable, relationship_sum)
from biolake.lake.errors import BiolakeError
from biolake.lake.lake import Lake
from biolake.queries.blocks import GenotypeBlock, genotype_blocks
from biolake.queries.design import Design
from biolake.scan import TaskInputs
from biolake.stats.qc import VariantQc
from biolake.stats.gwas import association_table, results_schema
from biolake.stats.heritability import symmetric
from biolake.stats.lmm import LmmModel, RelationshipError, lmm_association, prepare_lmm

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LmmBlockInputs(TaskInputs):
    """Everything a mixed-model block task needs besides its block: the model and the phenotypes' names."""

    model: LmmModel
    names: list[str]
    schema: pa.Schema
    qc: VariantQc
    dtype: type = np.float64

    @property
    def phenotype_names(self) -> list[str]:
        return self.names

    def test(self, block: GenotypeBlock) -> tuple[pa.Table, np.ndarray]:
        result = lmm_association(block.dosages, self.model, missing=block.missing if block.missing.nnz else None)
        table = association_table(block.variants, result, phenotypes=self.names, statistic="t", schema=self.schema)
        return table, result.log10p


def lmm_block_inputs(lake: Lake, chosen: Design, *, mode: str, qc: VariantQc, scheduler: str | None = None,
                     workers: int | None = None, progress: Progress | None = None
                     ) -> tuple[LmmBlockInputs, dict[str, Any]]:
    """The block inputs of a mixed-model scan of the ``chosen`` design in ``mode`` (exact, null-ratio), and what
    its provenance records: the mode, K and the count of its variants, each phenotype's null model."""
    refuse_unfittable(chosen)
    relationship = RelationshipInputs(chosen.vector_length, chosen.selection, GEMMA_MIN_MAF,
                                      GEMMA_MAX_MISSING)
    cross, variants = relationship_sum(lake, relationship, genotype_blocks(lake, release=chosen.release),
                                       scheduler=scheduler, workers=workers, progress=progress)
    check_relationship_variants(variants, relationship, release=chosen.release, chromosomes=None)
    try:
        model = prepare_lmm(symmetric(cross) / variants, chosen.phenotypes, chosen.covariates, mode=mode)
    except RelationshipError as error:
        raise BiolakeError(f"phenotype {chosen.phenotype_names[error.column]!r}: {error}") from None
    null = {name: {"lambda": float(model.null.lam[j]), "vg": float(model.null.vg[j]), "ve": float(model.null.ve[j])}
            for j, name in enumerate(chosen.phenotype_names)}
    facts = {"lmm": {"mode": mode, "relationship": RELATIONSHIP, "relationship_variants": variants,
                     "null_model": null}}
    inputs = LmmBlockInputs(chosen.vector_length, chosen.selection, model, list(chosen.phenotype_names),
                            results_schema(statistics=["t"]), qc)
    return inputs, facts
