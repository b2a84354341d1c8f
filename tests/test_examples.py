"""Every example in the ``--help`` texts and in README.md runs as written, on a small demo lake.

Examples are collected, not listed, so the ones a new command brings are run too:

- from every ``biolake … --help`` (the group walked recursively), each ``\\b`` paragraph headed
  ``Example…:`` or holding a line that starts ``biolake`` (the convention of biolake/cli.py);
- from README.md, every fenced block: ```sh blocks and ```python blocks run, other languages
  must be in NOT_SHELL.

Shell examples run command by command with ``bash -c``, so quoting is tested as a shell reads
it; a command spans lines while bash cannot parse it yet (quotes, loops) or a line ends in
``\\``; the ``biolake`` they start is a real process of its own, forked from a warm interpreter
(tests/cli_server.py: the examples start over a hundred, and a fresh interpreter spends ~2 s on
imports before its work). Python blocks run as scripts. Each example runs in a workspace of its own, where two
substitutions (``in_workspace``) stand in for the machine the examples assume:

- absolute paths under ``/tmp/`` and ``/data/`` point into the workspace (``WORKSPACE/tmp/…``,
  ``WORKSPACE/data/…``), and the commands run in ``WORKSPACE/work``;
- the README's release size becomes SMALL_RELEASE: the same 50 IDPs (``25001-2.0`` …
  ``25050-2.0``), covariates (``height``, ``stress``, ``head_motion``, …) and sites
  (Cheadle, Newcastle, Reading), fewer participants, variants and CpGs.

An example that starts a session (``biolake synth`` or ``biolake init``) starts in an empty
workspace. Every other one starts in a copy of the prepared workspace: the README's own
session block run as written, then STAND_INS, the files and earlier runs that examples name
without making them. Commands that cannot run here are in NOT_RUN, each with its reason; a
command that is neither listed nor exits with status 0 fails its example.
"""

from __future__ import annotations

import inspect
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import click
import pytest
from cli_server import write_stub

from biolake.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"
SMALL_RELEASE = {"--samples 2000 --variants 20000 --idps 50 --cpgs 5000":
                 "--samples 300 --variants 1000 --idps 50 --cpgs 300"}
NOT_RUN = {   # a part of a command → why no test runs it here
    "make demo": "builds the repository's full demo lake; tests/test_demo.py runs the demo",
    "make test": "the whole test suite, this test among it",
    "biolake serve": "serves until stopped; tests/test_browser.py drives the server",
    "s3://my-bucket": "needs a real bucket; tests/test_s3.py runs these commands against moto's S3",
    "export AWS_ACCESS_KEY_ID=…": "placeholder credentials, for the bucket commands above",
    "0 2 * * * ": "a crontab line, not a shell command; tests/test_sync.py runs biolake sync",
    "0 4 * * 0 ": "a crontab line, not a shell command; tests/test_sync.py runs biolake sync --verify",
}
NOT_SHELL = {  # README fence languages that are not commands → what they hold
    "cron": "a crontab line (its command is in NOT_RUN's reasons)",
    "ini": "systemd unit files",
}
STAND_INS = (  # what examples name without making it, made here by biolake itself
    # published summary statistics: a GWAS of height, and of IDP 25019-2.0 in GWAS-SSF
    "biolake gwas --lake /tmp/lake --pheno-sql 'SELECT participant_id, height FROM covariates' "
    "--covar age,sex,site,PC1,PC2 --name height --out height.tsv.gz --quiet",
    "cp height.tsv.gz height_gwas.tsv.gz",
    "biolake export --lake /tmp/lake --result idps --phenotype 25019-2.0 --format gwas-ssf "
    "--out published_hippocampus.tsv.gz",
    "cp published_hippocampus.tsv.gz 29403010-GCST005838.tsv.gz",
    # earlier runs: a GWAS per site (as biolake meta --help makes them) and an EWAS
    "for site in Cheadle Newcastle; do biolake gwas --lake /tmp/lake --pheno 25010-2.0 --covar age,sex "
    "--name site_$site --samples-sql \"SELECT participant_id FROM covariates WHERE site = '$site'\" --quiet; done",
    "biolake ewas --lake /tmp/lake --exposure-sql 'SELECT participant_id, stress FROM covariates' "
    "--covar age,sex,site --name stress_ewas --quiet",
    # a withdrawal list, a second delivery of the release, and sources given one by one
    "biolake sql 'SELECT participant_id FROM covariates ORDER BY 1 LIMIT 3' --lake /tmp/lake --format csv "
    "> withdrawn-2026-11.txt",
    "cp -r /tmp/r /data/release-2026-11",
    "for ext in bed bim fam; do cp /tmp/r/genotypes.$ext ukb_imp_chr1.$ext; done",
    "cp /tmp/r/idps.csv idps.csv && tr , '\\t' < /tmp/r/covariates.csv > cov.tsv",
    # a release ingested by mistake, and an old run, for the examples that retract and drop them
    "biolake ingest /tmp/r --lake /tmp/lake --release r2 --quiet",
    "biolake import-sumstats height.tsv.gz --lake /tmp/lake --name old_gwas",
)
SESSION = re.compile(r"^\s*biolake (synth|init)\b", re.MULTILINE)


@dataclass(frozen=True)
class Example:
    """One example as its reader sees it: where it is, its language (sh, python, …) and its text."""

    source: str
    language: str
    text: str

    @property
    def starts_session(self) -> bool:
        return bool(SESSION.search(self.text))

    @property
    def id(self) -> str:
        return re.sub(r"[^\w.-]+", "-", self.source)


def help_examples() -> list[Example]:
    """The example paragraphs of every command's --help, the group walked recursively."""
    found: list[Example] = []

    def walk(command: click.Command, path: str) -> None:
        blocks = _example_paragraphs(inspect.cleandoc(command.help or ""))
        found.extend(Example(f"{path} --help #{i}", "sh", block) for i, block in enumerate(blocks, 1))
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                walk(command.get_command(context, name), f"{path} {name}")

    walk(main, "biolake")
    return found


def _example_paragraphs(help_text: str) -> list[str]:
    """``\\b`` paragraphs headed ``Example…:``, or holding a line that starts ``biolake``, dedented."""
    blocks = []
    for paragraph in help_text.split("\n\n"):
        lines = paragraph.splitlines()
        if not lines or lines[0].strip() != "\b":
            continue
        heading, *body = lines[1:] or [""]
        if heading.strip().startswith("biolake "):      # no heading: the paragraph is the example
            heading, body = "", lines[1:]
        if heading.strip().startswith("Example") or any(line.strip().startswith("biolake ") for line in body):
            blocks.append(textwrap.dedent("\n".join(body)))
    return blocks


def readme_examples() -> list[Example]:
    """Every fenced block of README.md, with its language and first line number."""
    text = README.read_text()
    return [Example(f"README.md line {text.count(chr(10), 0, match.start()) + 1}", match.group(1), match.group(2))
            for match in re.finditer(r"^```(\w*)\n(.*?)^```", text, re.MULTILINE | re.DOTALL)]


@cache
def all_examples() -> tuple[Example, ...]:
    return tuple(readme_examples() + help_examples())


def shell_commands(script: str) -> list[str]:
    """The commands of a shell example: lines joined until bash can parse them and none ends in '\\'."""
    commands, pending = [], []
    for line in script.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending.append(line)
        text = "\n".join(pending)
        if not text.rstrip().endswith("\\") and subprocess.run(
                ["bash", "-n", "-c", text], capture_output=True).returncode == 0:
            commands.append(text)
            pending = []
    assert not pending, f"an unfinished command: {pending}"
    return commands


def not_run_reason(command: str) -> str | None:
    return next((why for part, why in NOT_RUN.items() if part in command), None)


def in_workspace(text: str, workspace: Path) -> str:
    """The module docstring's substitutions: /tmp/ and /data/ into the workspace, the small release."""
    for size, small in SMALL_RELEASE.items():
        text = text.replace(size, small)
    return re.sub(r"(?<![\w./-])/(tmp|data)(?![\w.-])", lambda m: f"{workspace}/{m.group(1)}", text)


class Workspaces:
    """Runs examples: each in a fresh workspace, empty or a copy of the prepared one; ``biolake`` is found in
    ``commands`` (the warm server's stub), then beside this interpreter."""

    def __init__(self, root: Path, scheduler: str, commands: Path) -> None:
        self.root = root
        self.environment = {**os.environ, "DASK_SCHEDULER_ADDRESS": scheduler,
                            "PATH": os.pathsep.join([str(commands), str(Path(sys.executable).parent),
                                                     os.environ["PATH"]])}
        self.environment.pop("BIOLAKE_LAKE", None)
        self.outcomes: dict[Example, str | None] = {}   # examples run while preparing: their failure, if any
        self.prepared = self._prepare()

    def _prepare(self) -> Path:
        """The README's session (the first example that starts one), then the stand-ins."""
        session = next(e for e in readme_examples() if e.language == "sh" and e.starts_session)
        workspace = self._fresh("prepared")
        self.outcomes[session] = self.failure(session, workspace)
        assert self.outcomes[session] is None, self.outcomes[session]
        for command in STAND_INS:
            failure = self._run_shell(command, workspace)
            assert failure is None, f"stand-in failed: {failure}"
        return workspace

    def _fresh(self, name: str, copy_of: Path | None = None) -> Path:
        workspace = self.root / name
        if copy_of is not None:
            shutil.copytree(copy_of, workspace, symlinks=True)
        # work/ holds folders named like the layers: the examples must import biolake.lake, not them
        for folder in ("tmp", "data", "work", "work/lake", "work/stats", "work/queries", "work/ingest"):
            (workspace / folder).mkdir(parents=True, exist_ok=True)
        return workspace

    def run(self, example: Example) -> str | None:
        """Run ``example`` as written; None, or what failed."""
        if example in self.outcomes:
            return self.outcomes[example]
        workspace = self._fresh(example.id, None if example.starts_session else self.prepared)
        return self.failure(example, workspace)

    def failure(self, example: Example, workspace: Path) -> str | None:
        if example.language == "python":
            script = workspace / "work" / "example.py"
            script.write_text(in_workspace(example.text, workspace))
            return self._report([sys.executable, str(script)], example.text, workspace)
        for command in shell_commands(example.text):
            if not_run_reason(command) is None and (failure := self._run_shell(command, workspace)):
                return failure
        return None

    def _run_shell(self, command: str, workspace: Path) -> str | None:
        return self._report(["bash", "-c", "set -eo pipefail\n" + in_workspace(command, workspace)],
                            command, workspace)

    def _report(self, argv: list[str], shown: str, workspace: Path) -> str | None:
        done = subprocess.run(argv, cwd=workspace / "work", env=self.environment, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=600)
        if done.returncode == 0:
            return None
        return f"exit status {done.returncode} from\n{shown}\n{(done.stdout + done.stderr)[-3000:]}"


@pytest.fixture(scope="session")
def warm_biolake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder holding ``biolake``: each command a process forked from one warm interpreter (tests/cli_server.py)."""
    folder = tmp_path_factory.mktemp("warm-biolake")
    address = str(folder / "server.sock")
    server = subprocess.Popen([sys.executable, str(Path(__file__).with_name("cli_server.py")), address],
                              cwd=Path(__file__).parent, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not Path(address).exists():
            assert server.poll() is None and time.monotonic() < deadline, "the warm biolake server did not start"
            time.sleep(0.05)
        write_stub(folder, address)
        yield folder
    finally:   # the server, and any command of an example that timed out (its group)
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


@pytest.fixture(scope="session")
def workspaces(tmp_path_factory: pytest.TempPathFactory, scheduler: str, warm_biolake: Path) -> Iterator[Workspaces]:
    yield Workspaces(tmp_path_factory.mktemp("examples"), scheduler, warm_biolake)


RUNNABLE = [e for e in all_examples() if e.language in ("sh", "python")]


@pytest.mark.slow
@pytest.mark.parametrize("example", RUNNABLE, ids=[e.id for e in RUNNABLE])
def test_example__runs_as_written(example: Example, workspaces: Workspaces):
    failure = workspaces.run(example)
    assert failure is None, f"{example.source}: {failure}"


def test_examples__every_one_is_run_or_listed_with_a_reason():
    examples = all_examples()
    assert sum(e.source.startswith("biolake") for e in examples) >= 20, "help examples went missing"
    unknown = {e.language for e in examples} - {"sh", "python", *NOT_SHELL}
    assert not unknown, f"README blocks in languages neither run nor listed in NOT_SHELL: {unknown}"
    commands = [c for e in examples if e.language == "sh" for c in shell_commands(e.text)]
    assert len(commands) >= 40
    stale = [part for part in NOT_RUN if not any(part in command for command in commands)]
    assert not stale, f"NOT_RUN lists what no example has any more: {stale}"


def test_help_examples__every_line_starting_biolake_is_collected():
    """A help line that reads as a command is in a collected example (the convention holds)."""
    collected = "\n".join(e.text for e in help_examples())

    def check(command: click.Command, path: str) -> None:
        for line in inspect.cleandoc(command.help or "").splitlines():
            if line.startswith("  ") and line.strip().startswith("biolake "):
                assert line.strip() in collected, f"{path} --help: {line.strip()!r} is not in an example paragraph"
        if isinstance(command, click.Group):
            context = click.Context(command)
            for name in command.list_commands(context):
                check(command.get_command(context, name), f"{path} {name}")

    check(main, "biolake")


def test_shell_commands__joins_quoted_continued_and_looped_lines():
    script = ("biolake sql 'SELECT 1\n  FROM x' --lake L   # a comment\n\n# alone\n"
              "biolake gwas \\\n  --name a\nfor s in a b; do\n  echo $s\ndone\n")
    assert shell_commands(script) == ["biolake sql 'SELECT 1\n  FROM x' --lake L   # a comment",
                                      "biolake gwas \\\n  --name a", "for s in a b; do\n  echo $s\ndone"]


def test_in_workspace__moves_tmp_and_data_paths_and_shrinks_the_release():
    text = "biolake synth /tmp/r --samples 2000 --variants 20000 --idps 50 --cpgs 5000 --seed 1; cd /data; x/tmp/y"
    assert in_workspace(text, Path("/w")) == ("biolake synth /w/tmp/r --samples 300 --variants 1000 --idps 50 "
                                              "--cpgs 300 --seed 1; cd /w/data; x/tmp/y")
