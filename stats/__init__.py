"""Association statistics on arrays (GWAS, EWAS, GxE): no files, no lake, tables out."""

from biolake.stats.association import ERRORS, AssociationResult
from biolake.stats.gxe import GxeModel, GxeResult, gxe_association, prepare_gxe
from biolake.stats.linear import LinearModel, Residualizer, linear_association, prepare_linear
from biolake.stats.logistic import LogisticResult, logistic_association

__all__ = ["ERRORS", "AssociationResult", "GxeModel", "GxeResult", "LinearModel", "LogisticResult", "Residualizer",
           "gxe_association", "linear_association", "logistic_association", "prepare_gxe", "prepare_linear"]
