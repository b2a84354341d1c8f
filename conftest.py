"""Docstring examples run for real, on the installed modules, each in a fresh copy of a small workspace;
and the whole suite's tests are shared out over pytest-xdist's workers (``-n 2`` in pyproject.toml).

The workspace (built once per session, as ``tests/conftest.py`` builds its release) holds a
synthetic release ingested as ``r1`` and again as ``r2``, the GWAS results ``demo_idps``
(every IDP), ``site_a`` and ``site_b`` (one IDP at the sites Cheadle and Newcastle), and
``height.tsv.gz``, one IDP's summary statistics. Examples name the lake ``"lake"`` and run
their jobs on one shared dask cluster (dask's ``scheduler-address``, as
$DASK_SCHEDULER_ADDRESS sets it).

Each xdist worker builds the session and module fixtures it uses for itself. Tests that share a costly
one run on one worker (``--dist loadgroup``): the docstring examples, and each test module with
fixtures of its own wider than a test (the examples' workspace, a module's planted lake). Tests
marked ``slow`` start first, so that no worker is left with a long one at the end.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from _pytest.doctest import DoctestItem

LAYERS = ("lake", "ingest", "queries", "stats")   # folders installed as biolake.lake, … (pyproject package-dir)
RELEASE = {"samples": 500, "variants": 2000, "idps": 10, "cpgs": 300, "seed": 7, "methylation_samples": 200}
SITES = {"site_a": "Cheadle", "site_b": "Newcastle"}


class _InstalledLayers(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Collecting doctests imports lake/vectors.py by its folder's name, ``lake.vectors``: answer with the
    installed ``biolake.lake.vectors``, so that no module is loaded twice under two names, and numba's
    on-disk caches (kept beside the source) never name a module that only exists inside a test run."""

    def find_spec(self, name: str, path: object = None, target: object = None):
        return importlib.util.spec_from_loader(name, self) if name.partition(".")[0] in LAYERS else None

    def create_module(self, spec):
        return None

    def exec_module(self, module) -> None:
        sys.modules[module.__name__] = importlib.import_module(f"biolake.{module.__name__}")


sys.meta_path.insert(0, _InstalledLayers())


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = shared_setup(item)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.hookimpl(tryfirst=True)   # before xdist sends the worker's test ids to the controller
def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop at once if xdist ignored the groups: each worker would quietly build every shared fixture itself.
    (pytest-xdist 3.8 writes a group into ``item._nodeid``; pytest 9 reads a node's id elsewhere.)"""
    if not getattr(session.config.option, "loadgroup", False):
        return
    for item in session.items:
        group = shared_setup(item)
        if group is not None and not item.nodeid.endswith(f"@{group}"):
            raise pytest.UsageError(f"{item.nodeid}: its xdist group {group!r} did not take effect (the pytest and "
                                    "pytest-xdist versions the test extras pin keep it)")


def shared_setup(item: pytest.Item) -> str | None:
    """The xdist group of a test whose costly setup others share (None: it may run on any worker):
    every docstring example, or a module's tests when the module defines a fixture wider than a test."""
    if isinstance(item, DoctestItem):
        return "docstring-examples"
    module = item.nodeid.partition("::")[0]
    fixtures = getattr(item, "_fixtureinfo", None)
    definitions = fixtures.name2fixturedefs.values() if fixtures is not None else ()
    shared = any(d.scope != "function" and d.baseid == module for defs in definitions for d in defs)
    return module if shared else None


@pytest.fixture(scope="session")
def doctest_scheduler() -> Iterator[str]:
    """One dask worker process for every example that runs a job."""
    from biolake.cluster import dask_client

    with dask_client(workers=1) as client:
        yield client.scheduler.address


@pytest.fixture(scope="session")
def doctest_workspace(tmp_path_factory: pytest.TempPathFactory, doctest_scheduler: str) -> Path:
    """The examples' workspace (read-only: each example gets a copy)."""
    from biolake.gwas import GwasSettings, run_gwas
    from biolake.ingest.release import ReleaseSources, ingest_release
    from biolake.lake.lake import Lake
    from biolake.queries.output import export_dialect
    from biolake.synth import write_synthetic_release

    workspace = tmp_path_factory.mktemp("doctest")
    release = tmp_path_factory.mktemp("doctest-release") / "release"
    write_synthetic_release(release, **RELEASE)
    lake = Lake.init(workspace / "lake")
    sources, _ = ReleaseSources.from_folder(release)
    for name in ("r1", "r2"):
        ingest_release(lake, sources, release=name, source=str(release))
    run_gwas(lake, GwasSettings(name="demo_idps", phenotypes="SELECT * EXCLUDE (release) FROM idps",
                                covariates=["age", "sex", "site"]), scheduler=doctest_scheduler)
    for name, site in SITES.items():
        run_gwas(lake, GwasSettings(name=name, phenotypes=["25010-2.0"], covariates=["age", "sex"],
                                    samples=f"SELECT participant_id FROM covariates WHERE site = '{site}'"),
                 scheduler=doctest_scheduler)
    export_dialect(lake, "demo_idps", str(workspace / "height.tsv.gz"), dialect="gwas-ssf", phenotype="25010-2.0")
    return workspace


@pytest.fixture(autouse=True)
def _docstring_examples_in_a_workspace(request: pytest.FixtureRequest) -> Iterator[None]:
    """A docstring example runs in its own copy of the workspace, its jobs on the shared cluster (other
    tests are left as they are)."""
    if not isinstance(request.node, DoctestItem):
        yield
        return
    import dask

    copy = request.getfixturevalue("tmp_path") / "workspace"
    request.getfixturevalue("monkeypatch").chdir(shutil.copytree(request.getfixturevalue("doctest_workspace"), copy))
    with dask.config.set({"scheduler-address": request.getfixturevalue("doctest_scheduler")}):
        yield
