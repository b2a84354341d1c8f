"""Run R's metafor (``rma``, Debian's r-cran-metafor) per group of estimates, for tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl

RSCRIPT = shutil.which("Rscript") or "Rscript"  # a missing R fails the test, never skips it
SCRIPT = r"""
suppressMessages(library(metafor))
args <- commandArgs(trailingOnly = TRUE)
data <- read.table(args[1], sep = "\t", header = TRUE)
rows <- lapply(split(data, data$group), function(d) {
  fixed <- rma(yi = d$beta, sei = d$se, method = "FE")
  random <- rma(yi = d$beta, sei = d$se, method = "DL")
  c(group = d$group[1], beta = fixed$b[1], se = fixed$se, p = fixed$pval, q = fixed$QE, p_q = fixed$QEp,
    i2 = random$I2 / 100, tau2 = random$tau2, beta_random = random$b[1], se_random = random$se,
    p_random = random$pval)
})
out <- as.data.frame(do.call(rbind, rows))
out[] <- lapply(out, function(x) sprintf("%.17g", x))
write.table(out, args[2], sep = "\t", quote = FALSE, row.names = FALSE)
"""


def run_metafor(tmp: Path, *, groups: np.ndarray, beta: np.ndarray, se: np.ndarray) -> pl.DataFrame:
    """metafor's fixed-effect and DerSimonian–Laird fits per group (two or more rows each),
    one row per group in group order: beta, se, p, q, p_q, i2 (a fraction), tau2,
    beta_random, se_random, p_random."""
    tmp.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"group": groups, "beta": beta, "se": se}).write_csv(tmp / "in.tsv", separator="\t",
                                                                      float_precision=17)
    (tmp / "meta.R").write_text(SCRIPT)
    done = subprocess.run([RSCRIPT, str(tmp / "meta.R"), str(tmp / "in.tsv"), str(tmp / "out.tsv")],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"metafor failed: {done.stderr[-2000:]}")
    return pl.read_csv(tmp / "out.tsv", separator="\t", infer_schema_length=0).cast(pl.Float64).sort("group")
