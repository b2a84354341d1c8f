"""Association statistics on arrays (GWAS, EWAS, GxE): no files, no lake, tables out."""

from stats.linear import LinearResult, Residualizer, linear_association

__all__ = ["LinearResult", "Residualizer", "linear_association"]
