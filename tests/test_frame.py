"""The job frame: one request type checked at construction, one provenance record."""

import numpy as np
import pytest

from biolake.ewas import EwasSettings
from biolake.frame import JobRequest, provenance
from biolake.gwas import GwasSettings
from biolake.gxe import GxeSettings
from biolake.lake.errors import BiolakeError
from biolake.queries.design import Design, DropReport

SHARED = {"name": "x", "covariates": ["age", "sex"]}


@pytest.mark.parametrize(("settings", "message"), [
    (lambda: GwasSettings(phenotypes=["y"], model="probit", **SHARED), "model 'probit' is not one of"),
    (lambda: GwasSettings(phenotypes=["y"], firth="sometimes", **SHARED), "firth 'sometimes' is not one of"),
    (lambda: GwasSettings(phenotypes=["y"], precision="float16", **SHARED), "precision 'float16' is not one of"),
    (lambda: GwasSettings(phenotypes=["y"], min_maf=0.5, **SHARED), "--maf must be a minor allele frequency"),
    (lambda: GxeSettings(phenotypes=["y"], exposures=["e"], robust="hc9", **SHARED), "robust 'hc9'"),
    (lambda: GxeSettings(phenotypes=["y"], exposures=[], **SHARED), "give at least one exposure"),
    (lambda: EwasSettings(exposures=["e"], values="raw", **SHARED), "values must be 'm' or 'beta'"),
    (lambda: EwasSettings(exposures=["e"], name="../x", covariates=["age"]), "results name '../x' is not allowed"),
])
def test_job_request__refuses_a_bad_request_at_construction(settings, message):
    with pytest.raises(BiolakeError, match=message):
        settings()


def test_job_request__settings_keep_their_keywords_and_share_the_request():
    gwas = GwasSettings(name="g", phenotypes=["y"], covariates=["age"], release="r1", chromosomes=["1"])
    ewas = EwasSettings(name="e", exposures="SELECT participant_id, stress FROM covariates", covariates=["age"])
    assert isinstance(gwas, JobRequest) and isinstance(ewas, JobRequest)
    assert (gwas.release, gwas.chromosomes, gwas.replace, gwas.model) == ("r1", ["1"], False, "auto")
    assert GxeSettings(name="x", phenotypes=["y"], covariates=["age"], exposures=["e"]).min_maf == 0.05


def test_request__chromosomes_spelled_as_plink2_reads_them_become_the_lakes():
    """plink2 --chr's spellings: chr prefixes, PLINK's numbers 23-26, comma lists and ranges."""
    request = GwasSettings(name="g", phenotypes=["y"], covariates=["age"],
                           chromosomes=["chr1-3", "23,XY", "26", "chrM", "2"])
    assert request.chromosomes == ["1", "2", "3", "X", "XY", "MT"]


def test_provenance__records_the_queries_settings_and_who_was_analysed():
    chosen = Design("r1", ["p1", "p2", "p3"], np.arange(3), np.zeros((3, 1)), ["y"], np.ones((3, 1)),
                    ["intercept"], DropReport({"no phenotype values": 1}, {"no phenotype values": ["p4"]}), 4)
    settings = GwasSettings(name="g", phenotypes=["y"], covariates=["age"], samples="SELECT participant_id FROM c")
    record = provenance("gwas", settings, chosen, linear_phenotypes=["y"])
    assert record.pop("created_at").endswith("+00:00")
    assert record == {
        "kind": "gwas", "release": "r1", "phenotypes": ["y"], "covariates": ["age"],
        "samples": "SELECT participant_id FROM c",
        "settings": {"name": "g", "release": None, "chromosomes": None, "replace": False, "keep": None,
                     "remove": None, "transform": None, "standardize": False, "min_maf": 0.0, "min_mac": 0.0,
                     "max_missing": None, "max_sample_missing": None, "hwe": None, "hwe_midp": False,
                     "min_info": None, "regions": [], "extract": None, "exclude": None, "xchr_model": 2,
                     "model": "auto",
                     "firth": "fallback", "impute_mean": False, "precision": "float64",
                     "adjust": False, "lmm": None, "cv_folds": None,
                     "lmm_block_size": None},
        "analysis_samples": 3, "covariate_columns": ["intercept"], "dropped": {"no phenotype values": 1},
        "phenotype_meff": {"nyholt": 1.0, "li_ji": 1.0}, "linear_phenotypes": ["y"]}
