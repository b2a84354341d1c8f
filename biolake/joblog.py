"""The log every job writes, as plink2 writes PREFIX.log: what ran, on what, what it found, and how long it took.

A :class:`JobLog` starts with the command (the options given, as plink2's "Options in effect"),
times the job's steps through its progress callback, keeps its warnings, and ends with what the
job printed (the drop report, the filters' counts, the summary) and where the results went. The
CLI writes it under the lake, beside the results table it describes
(``LAKE/results/NAME/_logs/vVERSION.log``: the Delta log never names it, so no reader sees it and
vacuum leaves it), and beside ``--out`` (``OUT`` less its extension, ``.log``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import click

Progress = Callable[[str, int, int], None]
EXTENSIONS = (".tsv.gz", ".csv.gz", ".tsv", ".csv", ".parquet", ".gz")


@dataclass
class JobLog:
    """One job's log, filled in as it runs (see the module docstring).

    Examples
    --------
    >>> log = JobLog("biolake gwas", ["--lake /tmp/lake", "--pheno 25010-2.0"])
    >>> log.timed(lambda step, done, total: None)("gwas", 1, 1)
    >>> log.warnings.append("covariate 'site' dropped: constant over the analysed participants")
    >>> text = log.text(shown="1,000 samples\\n", results="/tmp/lake/results/gwas (version 0)")
    >>> print(text.split("Start time")[0], end="")   # doctest: +ELLIPSIS
    biolake ... (a data lake for neuroimaging genomics)
    Options in effect:
      biolake gwas
      --lake /tmp/lake
      --pheno 25010-2.0
    <BLANKLINE>
    >>> "Warning: covariate 'site' dropped" in text, "Results: /tmp/lake/results/gwas (version 0)" in text
    (True, True)
    """

    command: str                       # "biolake gwas"
    options: list[str]                 # each option given, as typed: "--pheno 25010-2.0"
    started: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    warnings: list[str] = field(default_factory=list)
    steps: dict[str, list[float]] = field(default_factory=dict)   # step → [first call, last call] (monotonic)
    _clock: float = field(default_factory=time.monotonic)

    @staticmethod
    def of_context(context: click.Context) -> JobLog:
        """The log of the command ``context`` runs, its options those given on the command line (or by an
        environment variable), not the defaults."""
        given = []
        for parameter in context.command.params:
            source = context.get_parameter_source(parameter.name)
            value = context.params.get(parameter.name)
            if source not in (click.core.ParameterSource.COMMANDLINE, click.core.ParameterSource.ENVIRONMENT):
                continue
            flag = parameter.opts[0] if isinstance(parameter, click.Option) else ""
            values = value if isinstance(value, tuple) else (value,)
            for item in values:
                given.append(flag if isinstance(parameter, click.Option) and parameter.is_flag and item is True
                             else f"{flag} {item}".strip())
        return JobLog(context.command_path.replace(context.find_root().info_name or "", "biolake", 1), given)

    def timed(self, progress: Progress) -> Progress:
        """``progress``, also noting when each step first and last reports (its time in the log)."""
        def report(step: str, done: int, total: int) -> None:
            now = time.monotonic()
            self.steps.setdefault(step, [now, now])[1] = now
            progress(step, done, total)
        return report

    def text(self, *, shown: str, results: str, release: str | None = None, exported: str | None = None) -> str:
        """The log: the command and its options, start time, the release read, the job's steps and their time, its
        warnings, what it printed, where the results went, and the end time."""
        ended = datetime.now(timezone.utc)
        lines = [f"biolake {version('biolake')} (a data lake for neuroimaging genomics)", "Options in effect:",
                 f"  {self.command}", *(f"  {option}" for option in self.options), "",
                 f"Start time: {self.started:%a %b %d %H:%M:%S %Y} UTC",
                 *([f"Release: {release}"] if release else [])]
        previous = self._clock
        for step, (first, last) in self.steps.items():
            lines.append(f"{step}: {last - min(first, previous):.2f} s")
            previous = last
        lines += [f"Warning: {warning}" for warning in self.warnings]
        lines += [shown.rstrip("\n"), f"Results: {results}"]
        if exported:
            lines.append(f"Exported to {exported}")
        lines += [f"End time: {ended:%a %b %d %H:%M:%S %Y} UTC ({(ended - self.started).total_seconds():.2f} s)", ""]
        return "\n".join(lines)


def log_beside(out: str) -> Path:
    """Where a job's log goes beside its ``--out`` file: the same name, less its extension, with ``.log``.

    >>> str(log_beside("results/idps.tsv.gz")), str(log_beside("idps.parquet"))
    ('results/idps.log', 'idps.log')
    """
    name = Path(out).name
    stem = next((name[:-len(ext)] for ext in EXTENSIONS if name.endswith(ext) and len(name) > len(ext)), name)
    return Path(out).with_name(stem + ".log")
