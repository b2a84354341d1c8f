"""Association statistics on arrays (GWAS, EWAS, GxE): no files, no lake, tables out."""

from stats.association import ERRORS, AssociationResult
from stats.linear import LinearModel, Residualizer, linear_association, prepare_linear

__all__ = ["ERRORS", "AssociationResult", "LinearModel", "Residualizer", "linear_association",
           "prepare_linear"]
