"""R as the reference for tests: limma (``lmFit`` + ``eBayes``, Debian's r-bioc-limma) and ``p.adjust``."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import polars as pl

RSCRIPT = shutil.which("Rscript") or "Rscript"  # a missing R fails the test, never skips it
SCRIPT = r"""
suppressMessages(library(limma))
args <- commandArgs(trailingOnly = TRUE)
m <- as.matrix(read.table(args[1], sep = "\t", na.strings = "NA"))
design <- as.matrix(read.table(args[2], sep = "\t"))
fit <- lmFit(m, design)
ordinary <- fit$coefficients[, 2] / fit$stdev.unscaled[, 2] / fit$sigma
moderated <- eBayes(fit)
out <- data.frame(beta = fit$coefficients[, 2], t = ordinary,
                  p = 2 * pt(-abs(ordinary), fit$df.residual), df = fit$df.residual,
                  moderated_t = moderated$t[, 2], moderated_p = moderated$p.value[, 2],
                  prior_variance = moderated$s2.prior, prior_df = moderated$df.prior)
out[] <- lapply(out, function(x) sprintf("%.17g", x))
write.table(out, args[3], sep = "\t", quote = FALSE, row.names = FALSE)
"""


def run_limma(tmp: Path, *, methylation: np.ndarray, design: np.ndarray) -> pl.DataFrame:
    """limma's fit of every row of ``methylation`` (CpGs × samples, NaN missing) on ``design``
    (samples × p, intercept then the exposure first): coefficient 2's statistics per CpG."""
    tmp.mkdir(parents=True, exist_ok=True)
    np.savetxt(tmp / "m.tsv", methylation, delimiter="\t", fmt="%.17g")
    np.savetxt(tmp / "design.tsv", design, delimiter="\t", fmt="%.17g")
    (tmp / "limma.R").write_text(SCRIPT)
    done = subprocess.run([RSCRIPT, str(tmp / "limma.R"), str(tmp / "m.tsv"), str(tmp / "design.tsv"),
                           str(tmp / "out.tsv")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"limma failed: {done.stderr[-2000:]}")
    return pl.read_csv(tmp / "out.tsv", separator="\t", null_values="NA", infer_schema_length=0).cast(pl.Float64)


def r_p_adjust(tmp: Path, p: np.ndarray) -> np.ndarray:
    """R's ``p.adjust(p, "BH")`` (NaN ↔ NA), at full precision."""
    tmp.mkdir(parents=True, exist_ok=True)
    np.savetxt(tmp / "p.txt", p, fmt="%.17g")
    script = "p <- scan(commandArgs(TRUE)[1], na.strings = c('NA', 'nan'), quiet = TRUE); " \
             "cat(sprintf('%.17g', p.adjust(p, 'BH')), sep = '\\n')"
    done = subprocess.run([RSCRIPT, "-e", script, str(tmp / "p.txt")], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"R p.adjust failed: {done.stderr[-2000:]}")
    return np.array([np.nan if x == "NA" else float(x) for x in done.stdout.split()])
