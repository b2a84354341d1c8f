"""The ``biolake`` command: one sub-command per job.

Each command parses and validates its flags, then calls one library function.
Heavy imports happen inside the commands so ``--help`` stays instant. User
mistakes (BiolakeError) print one line, ``error: …``, and exit with status 2.

Examples in a help text are a ``\b`` paragraph headed ``Example…:`` whose indented
lines are shell commands; tests/test_examples.py runs every one as written (bash),
so quote SQL with single quotes outside and double quotes inside.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import click

Progress = Callable[[str, int, int], None]

LAKE_HELP = ("the lake: its root (a path, s3://bucket/prefix, gs://…) or a catalog.yaml "
             "pointing at it [default: $BIOLAKE_LAKE, else ./catalog.yaml]")


def _lake_option(function):
    return click.option("--lake", "lake_location", envvar="BIOLAKE_LAKE", default="catalog.yaml",
                        show_envvar=True, metavar="LAKE", help=LAKE_HELP)(function)


def _open_lake(location: str):
    from biolake.lake.errors import LakeError
    from biolake.lake.lake import Lake

    lake_flag = click.get_current_context().get_parameter_source("lake_location")
    if lake_flag is click.core.ParameterSource.DEFAULT and not Path(location).exists():
        raise LakeError(f"no lake named and no ./{location} here: give --lake LAKE (a lake's root or its "
                        "catalog.yaml) or set $BIOLAKE_LAKE; 'biolake init LAKE' creates a lake")
    return Lake.open(location)


def _chrom_option(note: str = ""):
    """--chrom: the chromosomes a job reads, spelled as plink2's --chr takes them (Request turns them to the lake's)."""
    return click.option("--chrom", "chromosomes", multiple=True, metavar="CHR",
                        help=f"only these chromosomes (repeatable, or comma-separated{note}), spelled as plink2 --chr "
                             "takes them: 1-22, X, Y, XY, MT, a 'chr' prefix, PLINK's 23-26, ranges such as 1-4")


def _analysis_options(*, default_name: str):
    """The options every association job shares: covariates, samples, release, results, cluster."""
    options = [
        click.option("--covar-sql", metavar="SQL", help="covariates: SQL returning participant_id, then one column each"),
        click.option("--covar", metavar="COLS",
                     help="covariates: comma-separated columns of covariates (instead of --covar-sql)"),
        *_sample_options("keep only the participant_id this SQL returns"),
        click.option("--transform", type=click.Choice(["rint", "rint-residuals"]),
                     help="rank-based inverse-normal transform of each phenotype over its own samples (ties "
                          "averaged, Blom's 3/8: REGENIE's --apply-rint), or of its residuals after the covariates, "
                          "then adjusted for them again (rint-residuals: REGENIE's --apply-rerint-cov) "
                          "[default: none]"),
        click.option("--standardize", is_flag=True,
                     help="scale each covariate column to mean 0, variance 1 over the analysed samples, as plink2 "
                          "--covar-variance-standardize (gwas, ewas, h2: no test changes; gxe: the genotype's own "
                          "effect is then at the mean exposure, and a g×exposure beta per SD of it, as plink2's)"),
        click.option("--release", metavar="NAME", help="release to analyse [default: latest]"),
        click.option("--name", default=default_name, show_default=True, help=f"results table: {RESULTS_NAME_HELP}"),
        REPLACE_OPTION,
        click.option("--out", type=click.Path(dir_okay=False),
                     help="also export the results: .tsv[.gz], .csv[.gz] or .parquet"),
        DIGITS_OPTION,
        _chrom_option(),
        *CLUSTER_OPTIONS,
    ]

    return _decorated_by(options)


def _list_options(kept: str, kept_help: str, left_out: str, left_out_help: str) -> list:
    """A pair of list-file options, --keep/--remove or --extract/--exclude: the flag's name with _file is its
    parameter."""
    return [click.option(f"--{flag}", f"{flag}_file", type=click.Path(dir_okay=False), metavar="FILE", help=text)
            for flag, text in ((kept, kept_help), (left_out, left_out_help))]


def _sample_options(samples_sql_help: str) -> list:
    """--samples-sql, --keep and --remove: who a job analyses (all three apply; the drop report counts each)."""
    return [click.option("--samples-sql", metavar="SQL", help=samples_sql_help),
            *_list_options("keep", "keep only the participants FILE lists, as plink2 --keep: PLINK's FID IID columns "
                           "(the IID is the participant id), a '#FID IID' header and '#' lines skipped; or one id per "
                           "line; an id the release lacks is an error",
                           "remove", "leave out the participants FILE lists (read as --keep reads it), as plink2 "
                           "--remove")]


VARIANT_SETTINGS = ("min_maf", "min_mac", "max_missing", "max_sample_missing", "hwe", "hwe_midp", "min_info",
                    "xchr_model")


def _variant_choice_options() -> list:
    """--region, --extract and --exclude: which variants a job that reads genotypes (gwas, gxe, h2, kinship) reads
    (:class:`biolake.frame.SampleRequest`)."""
    return [
        click.option("--region", "regions", multiple=True, metavar="CHR:FROM-TO",
                     help="only the variants in this range (1-based, inclusive, as plink2's --chr --from-bp "
                          "--to-bp; repeat for several); only the genotype row groups holding them are read"),
        *_list_options("extract", "only the variants FILE lists, as plink2 --extract: variant ids (whitespace-"
                       "separated), or CHR:FROM-TO ranges (plink2's --extract range), or a .bed file's ranges "
                       "(0-based starts, plink2's bed0); an id the release lacks is a warning",
                       "exclude", "leave out the variants FILE lists (read as --extract reads it), as plink2 "
                       "--exclude")]


def _variant_options(*, maf_default: float, maf_help: str):
    """Which variants a variant scan (gwas, gxe) reads, and plink2's quality-control filters of them
    (:class:`biolake.frame.VariantJobRequest`); ``maf_help`` ends --maf's help."""
    return _decorated_by([
        *_variant_choice_options(),
        click.option("--xchr-model", "xchr_model", type=click.Choice(["1", "2"]), default="2", show_default=True,
                     callback=lambda _, __, value: int(value),
                     help="chromosome X (outside the PARs, which a release names XY): 2 codes a male's dosage 0/2 "
                          "(plink2's default), 1 codes it 0/1; ploidy from the sex the genotype source gives (the "
                          ".fam's); sex must be among the covariates (plink2 adds it on X itself)"),
        click.option("--maf", "min_maf", type=float, default=maf_default, show_default=True, metavar="FREQ",
                     help="leave out variants whose minor allele frequency (from dosages, over the analysis "
                          f"samples) is below FREQ, as plink2 --maf{maf_help}"),
        click.option("--mac", "min_mac", type=float, default=0.0, metavar="COUNT",
                     help="leave out variants whose minor allele count (dosage) is below COUNT, as plink2 --mac"),
        click.option("--geno", "max_missing", type=float, is_flag=False, flag_value=0.1, metavar="FRACTION",
                     help="leave out variants without a hard call in more than FRACTION of the analysis samples "
                          "(a bare --geno is 0.1), as plink2 --geno; a dosage more than 0.1 from 0, 1 or 2 is no "
                          "hard call (plink2's --hard-call-threshold)"),
        click.option("--mind", "max_sample_missing", type=float, is_flag=False, flag_value=0.1, metavar="FRACTION",
                     help="first leave out samples without a hard call at more than FRACTION of the variants "
                          "(those of --chrom; a bare --mind is 0.1), as plink2 --mind: one more pass over the "
                          "genotypes; the drop report counts them"),
        click.option("--hwe", type=float, metavar="P",
                     help="leave out variants whose Hardy-Weinberg exact test p-value (of the hard calls over the "
                          "analysis samples) is below P, as plink2 --hwe; autosomes only (plink2 tests chrX by "
                          "Graffelman-Weir, which needs the samples' sex)"),
        click.option("--hwe-midp", is_flag=True, help="--hwe's mid-p test (plink2's --hwe P midp)"),
        click.option("--min-info", type=float, metavar="R2",
                     help="leave out variants whose MaCH r² (dosage variance over its binomial expectation: an "
                          "imputed variant's quality, plink2 --mach-r2-filter R2 and --freq cols=+machr2) is below "
                          "R2; autosomes only, monomorphic variants kept, as plink2"),
    ])


def _variant_settings(shared: dict[str, Any]) -> dict[str, Any]:
    """The request's fields of :func:`_variant_options`, taken out of a command's ``shared`` options."""
    return {**_variant_choice(shared), **{name: shared.pop(name) for name in VARIANT_SETTINGS}}


def _variant_choice(options: dict[str, Any]) -> dict[str, Any]:
    """The request's fields of :func:`_variant_choice_options`, taken out of a command's ``options`` (the --extract
    and --exclude files read)."""
    from biolake.ingest.variant_lists import read_variant_list
    from biolake.queries.variants import VariantList

    def listed(flag: str, path: str) -> VariantList:
        ids, ranges = read_variant_list(path)
        return VariantList(flag, path, ids, tuple(ranges))

    files = {name: None if (path := options.pop(f"{name}_file")) is None else listed(f"--{name}", path)
             for name in ("extract", "exclude")}
    return {"regions": options.pop("regions"), **files}


def _sample_lists(keep_file: str | None, remove_file: str | None) -> dict[str, Any]:
    """The request's ``keep`` and ``remove`` (:class:`biolake.frame.SampleRequest`) from the files given."""
    from biolake.queries.design import SampleList

    def listed(flag: str, path: str) -> SampleList:
        from biolake.ingest.participants import read_sample_list   # polars' import (0.1 s) only for a list

        return SampleList(flag, path, read_sample_list(path))

    return {name: None if path is None else listed(flag, path)
            for name, flag, path in (("keep", "--keep", keep_file), ("remove", "--remove", remove_file))}


def _results_options(*, default_name: str, release_help: str, exported: str):
    """The options of a job that writes one results table: --release, --name, --replace, --out, --digits."""
    return _decorated_by([
        click.option("--release", metavar="NAME", help=release_help),
        click.option("--name", default=default_name, show_default=True, help=f"results table: {RESULTS_NAME_HELP}"),
        REPLACE_OPTION,
        click.option("--out", type=click.Path(dir_okay=False),
                     help=f"also export the {exported}: .tsv[.gz], .csv[.gz] or .parquet"),
        DIGITS_OPTION])


def _decorated_by(options: list):
    """One decorator applying click ``options`` in order (as if stacked above the function)."""
    def apply(function):
        for option in reversed(options):
            function = option(function)
        return function
    return apply


RESULTS_NAME_HELP = "LAKE/results/NAME (an existing one is refused unless --replace)"
REPLACE_OPTION = click.option("--replace", is_flag=True,
                              help="replace the results table NAME if it exists (else the job refuses to start)")

ADJUST_OPTION = click.option(
    "--adjust", is_flag=True,
    help="store each test's Benjamini-Hochberg q-value (column fdr, per phenotype), as plink2 --adjust: "
         "one more pass over the results, sorted out of core by DuckDB (about 1 s per million rows here)")


class _Digits(click.ParamType):
    """Significant digits of the numbers in text exports: N (1-17), or 'full' (every digit)."""

    name = "N|full"

    def convert(self, value, param, ctx):
        if value is None or value == "full" or isinstance(value, int):
            return value
        if value.isdigit() and 1 <= int(value) <= 17:
            return int(value)
        self.fail(f"expected a number of significant digits from 1 to 17, or full; got {value!r}", param, ctx)


# Not --precision: the GWAS's --precision float64|float32 is the precision it computes in.
DIGITS_OPTION = click.option(
    "--digits", type=_Digits(), metavar="N|full",
    help="significant digits of numbers in text exports (.tsv, .csv; Parquet keeps every bit) [default: 7, "
         "which reproduce p and beta to the 6 digits plink2 prints, 40 % smaller gzipped; full: every "
         "digit, as stored]")


def _digits(digits: int | str | None) -> dict[str, int | None]:
    """--digits as the exports' keyword: none when not given (their default), None for full."""
    return {} if digits is None else {"digits": None if digits == "full" else digits}


CLUSTER_OPTIONS = (  # every job that runs on dask takes these (and shows progress bars)
    click.option("--scheduler", metavar="threads|processes|ADDRESS",
                 help="where the block tasks run: threads (dask's threaded scheduler in this process), processes "
                      "(a local cluster of worker processes) or a running dask scheduler (tcp://host:8786) "
                      "[default: $DASK_SCHEDULER_ADDRESS, else threads for a lake on local disk, processes for a "
                      "bucket lake]"),
    click.option("--workers", "--threads", "workers", type=click.IntRange(min=1), metavar="N",
                 help="the cores a job may use: threads, or local worker processes (--threads: plink2's and "
                      "REGENIE's name for it) [default: one per core]"),
    click.option("--quiet", "-q", is_flag=True, help="no progress bars"),
)


def _cluster_options(function):
    for option in reversed(CLUSTER_OPTIONS):
        function = option(function)
    return function


def _overlap_options(function):
    """--min-overlap and --allow-partial-overlap, for every command that ingests releases."""
    function = click.option("--allow-partial-overlap", is_flag=True,
                            help="ingest a participant table that --min-overlap refuses (with a warning)")(function)
    return click.option("--min-overlap", type=click.FloatRange(0, 1), default=0.0, show_default=True,
                        metavar="SHARE",
                        help="refuse a participant table (IDPs, covariates, methylation samples) with under SHARE "
                             "of its participants genotyped in the release (at 0, one sharing none); one under "
                             "half is warned of")(function)


def _overlap_rule(min_overlap: float, allow_partial_overlap: bool):
    from biolake.ingest.participants import OverlapRule
    return OverlapRule(min_share=min_overlap, allow_partial=allow_partial_overlap)


class BiolakeGroup(click.Group):
    """Turns BiolakeError into a one-line message instead of a traceback, and biolake's
    warnings (a dropped covariate, …) into ``warning: …`` lines."""

    def invoke(self, ctx: click.Context):
        from biolake.lake.errors import BiolakeError

        def show(message, category, filename, lineno, file=None, line=None) -> None:
            if issubclass(category, UserWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                shown(message, category, filename, lineno, file, line)

        with warnings.catch_warnings():
            shown = warnings.showwarning
            warnings.simplefilter("always", UserWarning)
            warnings.showwarning = show
            try:
                return super().invoke(ctx)
            except BiolakeError as exc:
                click.echo(f"error: {exc}", err=True)
                sys.exit(2)
            except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit, KeyboardInterrupt,
                    BrokenPipeError):   # a reader that left early (| head): click's own quiet exit
                raise
            except Exception as exc:   # never a library's traceback: its message, and how to see more
                if os.environ.get("BIOLAKE_DEBUG"):
                    raise
                what = "storage" if isinstance(exc, OSError) or "botocore" in type(exc).__module__ else "internal"
                first = (str(exc).strip().splitlines() or [""])[0]
                click.echo(f"error: {what} error, {type(exc).__name__}: {first} "
                           "(BIOLAKE_DEBUG=1 shows the traceback)", err=True)
                sys.exit(3)


def run() -> NoReturn:
    """The ``biolake`` console script: :func:`main` on the command line, then the process ends as Python
    ends it (see :func:`exit_status`) but without tearing down every module's objects one by one first,
    which took 0.4 s after a job of 1.5 s (numba's, scipy's and pandas' objects; the system frees them at once).
    Under a profiler or tracer (``python -m cProfile …``) it exits as Python does, so they write their output.
    """
    code = exit_status(sys.argv[1:])
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    os._exit(code)


def exit_status(args: Sequence[str]) -> int:
    """Run ``biolake ARGS`` as a Python process runs it to its end: the exit status, after the message of
    ``sys.exit("…")`` or the traceback of an uncaught exception on stderr, the threads that are not
    daemons joined, the atexit handlers run and the standard streams flushed (a reader that left a
    pipe early gives status 120, as Python's own flush at exit does)."""
    import atexit
    import threading
    import traceback

    try:
        main(list(args), prog_name="biolake")
        code = 0
    except SystemExit as exit:
        code = exit.code if isinstance(exit.code, int) else 0 if exit.code is None else 1
        if not isinstance(exit.code, int | None):
            print(exit.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
        code = 1
    threading._shutdown()   # what the interpreter does at exit, in its order
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except OSError:
            code = code or 120
    return code


@click.group(cls=BiolakeGroup, context_settings={"help_option_names": ["-h", "--help"],
                                                  "max_content_width": 100})
@click.version_option(package_name="biolake")
def main() -> None:
    """biolake: a data lake for biobank-scale neuroimaging genomics.

    \b
    Example (a typical session):
      biolake synth /tmp/r --samples 2000 --variants 20000 --idps 50 --cpgs 5000 --seed 1
      biolake init /tmp/lake
      biolake ingest /tmp/r --lake /tmp/lake --release r1
      biolake releases --lake /tmp/lake
      biolake sql "SELECT count(*) FROM idps" --lake /tmp/lake

    Lakes on buckets (s3://…, gs://…) read credentials from the environment
    (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL, …);
    'biolake init ROOT -o KEY=VALUE' can also record options in the lake's catalog.yaml.
    """


@main.command()
@click.argument("root")
@click.option("--storage-option", "-o", "storage_options", multiple=True, metavar="KEY=VALUE",
              help="object-store option, repeatable (e.g. AWS_REGION=eu-west-2); "
                   "write ${ENV_VAR} to keep a secret out of catalog.yaml")
def init(root: str, storage_options: tuple[str, ...]) -> None:
    """Create an empty lake at ROOT (a folder or a bucket URL) with its catalog.yaml.

    \b
    Example:
      biolake init /data/lake
      biolake init s3://my-bucket/lake -o AWS_REGION=eu-west-2
    """
    from biolake.lake.lake import Lake
    lake = Lake.init(root, storage_options=_parse_options(storage_options))
    click.echo(f"created lake at {lake.location.root}")


@main.command()
@click.argument("release_folder", required=False, type=click.Path(file_okay=False))
@_lake_option
@click.option("--release", "release_name", metavar="NAME",
              help="name of the new release [default: the name in release.yaml]")
@click.option("--bfile", metavar="PREFIX", help="PLINK 1 fileset PREFIX.bed/.bim/.fam")
@click.option("--pfile", metavar="PREFIX", help="PLINK 2 fileset PREFIX.pgen/.pvar/.psam (hard calls or dosages)")
@click.option("--vcf", type=click.Path(dir_okay=False), help="VCF/BCF (GT hard calls, or DS/GP dosages)")
@click.option("--bgen", type=click.Path(dir_okay=False), help="BGEN v1.2 dosages (with --sample)")
@click.option("--sample", type=click.Path(dir_okay=False), help="the .sample file of --bgen")
@click.option("--idps", type=click.Path(),
              help="IDP table, UK Biobank or ENIGMA style (first column eid/IID/participant_id/SubjID); or "
                   "FreeSurfer's asegstats2table/aparcstats2table tables, one or a folder of them (merged by subject, the "
                   "dictionary derived from their column names)")
@click.option("--idp-fields", type=click.Path(dir_okay=False), help="IDP data dictionary (column 'field')")
@click.option("--covariates", type=click.Path(dir_okay=False), help="covariate table")
@click.option("--methylation", type=click.Path(dir_okay=False),
              help="beta matrix, CpG × sample (CSV, TSV, gzipped, or Parquet)")
@click.option("--probes", type=click.Path(dir_okay=False), help="probe annotation (cpg, chrom, pos)")
@click.option("--cnv", type=click.Path(dir_okay=False),
              help="CNV calls: PLINK's segment list (FID IID CHR BP1 BP2 TYPE SCORE SITES; FILE.fam beside it lists "
                   "everyone called) or PennCNV's output (told apart by their lines; needs the genotypes they were "
                   "called from)")
@_overlap_options
@click.option("--check", "check_only", is_flag=True,
              help="make every check, reading every row, and write nothing: print the tables and rows the release "
                   "would commit (exit status 0 if it is good, 2 if not)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars (for cron)")
def ingest(release_folder: str | None, lake_location: str, release_name: str | None, min_overlap: float,
           allow_partial_overlap: bool, check_only: bool, quiet: bool, **explicit: str | None) -> None:
    """Load a biobank release into the lake, atomically (all tables land, or none).

    Give a RELEASE_FOLDER holding release.yaml (as 'biolake synth' writes), or the
    sources one by one (one genotype source: --bfile, --pfile, --vcf, or --bgen
    with --sample). Every participant-keyed table's first column is the
    participant id, headed eid, IID, participant_id or SubjID. A row with too
    few or too many fields is an error naming its line; a participant table
    sharing no participant with the release's genotypes is refused, and an
    empty IDP or covariate column is warned of (see the overlap options below).

    \b
    Examples:
      biolake ingest /data/release-2026-11 --lake /tmp/lake --release 2026-11 --check
      biolake ingest /data/release-2026-11 --lake /tmp/lake --release 2026-11
      biolake ingest --bfile ukb_imp_chr1 --idps idps.csv --covariates cov.tsv \\
          --lake /tmp/lake --release 2026-12
    """
    from biolake.lake.faults import fault_point, with_hold_points
    from biolake.progress import progress_bars
    from biolake.ingest.release import ReleaseSources, check_release, ingest_release

    given = {k: Path(v) for k, v in explicit.items() if v}
    if release_folder and given:
        raise click.UsageError("give either RELEASE_FOLDER or explicit sources (--bfile, …), not both")
    if release_folder:
        sources, suggested = ReleaseSources.from_folder(release_folder)
    elif given:
        sources, suggested = ReleaseSources(**given), None
    else:
        raise click.UsageError("nothing to ingest: give RELEASE_FOLDER or --bfile/--idps/--covariates/--methylation/"
                               "--cnv")
    name = release_name or suggested
    if not name:
        raise click.UsageError("name the release with --release NAME")
    lake = _open_lake(lake_location)
    overlap = _overlap_rule(min_overlap, allow_partial_overlap)

    def announce(table: str, rows: int) -> None:
        click.echo(f"wrote {table}: {rows:,} rows", err=True)
        fault_point(f"after:{table}")

    with progress_bars(quiet=quiet) as progress:
        if check_only:
            plan = check_release(lake, sources, release=name, progress=progress, overlap=overlap)
        else:
            report = ingest_release(lake, sources, release=name, progress=with_hold_points(progress),
                                    source=os.path.abspath(release_folder) if release_folder else "explicit sources",
                                    on_table=announce, overlap=overlap)
    if check_only:
        click.echo(f"release {name!r} passes every check; nothing was written. It would commit "
                   f"{len(plan.counts)} tables:")
        for table, rows in plan.counts.items():
            click.echo(f"  {table}: {rows:,} rows")
        not_genotyped = plan.participants_not_genotyped
    else:
        click.echo(f"committed release {report.release.release!r} "
                   f"(#{report.release.sequence}) with {len(report.release.tables)} tables")
        not_genotyped = report.participants_not_genotyped
    for table, missing in not_genotyped.items():
        if missing:
            click.echo(f"note: {len(missing):,} participants in {table} have no genotypes "
                       f"(e.g. {', '.join(missing[:5])})", err=True)


@main.command()
@click.argument("source")
@_lake_option
@click.option("--wait", default=0.0, show_default=True, metavar="SECONDS",
              help="if another sync holds the lake's lock, wait up to SECONDS for it (then skip what it loaded)")
@click.option("--verify", is_flag=True,
              help="re-hash every file of every release already loaded from SOURCE and list each that "
                   "changed or is missing (exit status 1); nothing is ingested again")
@_overlap_options
@click.option("--quiet", "-q", is_flag=True, help="no progress bars (for cron)")
def sync(source: str, lake_location: str, wait: float, verify: bool, min_overlap: float,
         allow_partial_overlap: bool, quiet: bool) -> None:
    """Ingest every release under SOURCE that the lake does not have yet, in name order.

    SOURCE (a folder, or a bucket URL like s3://incoming/ukb, with credentials
    from the environment) holds one folder per release, each with a release.yaml
    naming it.
    Releases already loaded are skipped, so running sync again does nothing. A
    loaded release whose release.yaml lists sha256 checksums that match those
    recorded is not re-hashed; instead each run compares its local files' size
    and mtime with those recorded at ingest and warns of a difference (exit
    status 0: a copy or a touch changes an mtime, not the content). --verify
    re-hashes them all and exits with status 1 if any differ or are missing.
    Each new release is checked as 'biolake ingest' checks it. A killed sync
    resumes where it stopped; a lock keeps two syncs from interleaving. Exit
    status is non-zero on a bad release, which is not committed, and the
    releases before it stay committed.

    \b
    Example (crontab: a nightly sync at 02:00, a weekly --verify on Sundays at 04:00):
      0 2 * * * cd /data && biolake sync /data/incoming --lake /data/lake --wait 3600 --quiet
      0 4 * * 0 biolake sync /data/incoming --lake /data/lake --verify --wait 3600 --quiet
    """
    from biolake.lake.faults import with_hold_points
    from biolake.progress import progress_bars
    from biolake.ingest.sync import sync as sync_releases

    lake = _open_lake(lake_location)
    with progress_bars(quiet=quiet) as progress:
        report = sync_releases(lake, source, progress=with_hold_points(progress), wait=wait, verify=verify,
                               overlap=_overlap_rule(min_overlap, allow_partial_overlap),
                               on_release=lambda name, outcome: click.echo(f"{name}: {outcome}", err=True),
                               on_changed_file=lambda line: click.echo(("error: " if verify else "warning: ") + line, err=True))
    click.echo(f"sync done: {len(report.ingested)} ingested, {len(report.unchanged)} already present"
               + (f", {len(report.changed)} changed since loaded" if verify else "")
               + (f", {len(report.retracted)} retracted (skipped)" if report.retracted else ""))
    if report.changed:
        sys.exit(1)


@main.command()
@_lake_option
@click.option("--ids", "ids_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="participant ids to withdraw: one per line (a header eid/IID/participant_id is skipped)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def withdraw(lake_location: str, ids_file: str, quiet: bool) -> None:
    """Remove participants from every table of every release, and from the lake's history.

    Sample vectors (genotypes, methylation) lose their positions, participant rows
    go, allele frequencies are recomputed; then every table is vacuumed and its
    log compacted, so no older version can show the withdrawn data. Rerunning
    with the same list after an interruption completes the job; another list is
    refused until then, before anything changes. The withdrawals
    table records when and how many, never who: no digest of the ids is kept,
    so keep the list yourself; biolake audit then shows those ids are gone.

    \b
    Example:
      biolake withdraw --lake /tmp/lake --ids withdrawn-2026-11.txt
    """
    from biolake.progress import progress_bars
    from biolake.ingest.participants import read_id_list
    from biolake.lake.withdraw import withdraw as withdraw_participants

    lake = _open_lake(lake_location)
    ids = read_id_list(Path(ids_file))
    with progress_bars(quiet=quiet) as progress:
        report = withdraw_participants(lake, ids, progress=progress)
    click.echo(f"withdrew {report.participants:,} participants: rewrote {len(report.rewritten)} "
               f"table releases, vacuumed {report.files_removed:,} files")


@main.command()
@_lake_option
@click.option("--ids", "ids_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="participant ids to look for, one per line")
def audit(lake_location: str, ids_file: str) -> None:
    """Search every file of the lake for participants: the proof that a withdrawal worked.

    Every data file under every table and results table is read (whether or not a
    version still references it) and every log entry searched (column statistics can
    hold ids). Exits with status 1 and lists the files when any trace is found.

    \b
    Example:
      biolake withdraw --lake /tmp/lake --ids withdrawn-2026-11.txt
      biolake audit --lake /tmp/lake --ids withdrawn-2026-11.txt
    """
    from biolake.ingest.participants import read_id_list
    from biolake.lake.audit import audit as audit_lake

    report = audit_lake(_open_lake(lake_location), read_id_list(Path(ids_file)))
    for path, count in sorted(report.traces.items()):
        click.echo(f"{path}: {count} of the ids", err=True)
    click.echo(f"searched {report.files:,} files: " + ("no trace of the ids" if report.clean
                                                       else f"traces in {len(report.traces)} files"))
    if not report.clean:
        sys.exit(1)


@main.command()
@_lake_option
def releases(lake_location: str) -> None:
    """List the lake's committed releases, oldest first: the default (the latest not retracted),
    and each retracted one with when and why."""
    from rich.console import Console
    from rich.table import Table

    lake = _open_lake(lake_location)
    known = lake.releases(retracted=True)
    default = next((info.release for info in reversed(known) if info.retraction is None), None)
    table = Table("#", "release", "committed (UTC)", "tables", "source", "status")
    for info in known:
        status = ("default" if info.release == default else "") if info.retraction is None else \
            f"retracted {info.retraction.retracted_at:%Y-%m-%d}: {info.retraction.why}"
        table.add_row(str(info.sequence), info.release, info.committed_at.strftime("%Y-%m-%d %H:%M:%S"),
                      ", ".join(info.tables) if info.retraction is None else "(deleted)", info.source, status)
    Console().print(table)


@main.group("release")
def release_group() -> None:
    """Change a committed release (today: retract it)."""


@release_group.command("retract")
@click.argument("name")
@_lake_option
@click.option("--why", required=True, metavar="TEXT", help="the reason, recorded with the retraction")
def release_retract(name: str, lake_location: str, why: str) -> None:
    """Retract the release NAME: a mistaken ingest, taken out of use and out of the lake.

    The retraction (when, why) is recorded first: from then on NAME is no longer the
    default release (the latest one not retracted is), and reading it (--release NAME)
    is an error saying when and why it was retracted. Then its rows are deleted from
    every table, which is vacuumed and its log compacted, so no older version can
    show them. Results computed from NAME stay, flagged in 'biolake results list', their
    reports, the browser and SQL's releases view; commands that read them print a warning.
    The name is never reused. Rerunning after an interruption completes it.

    \b
    Example:
      biolake release retract r2 --why 'wrong genotype build' --lake /tmp/lake
    """
    from biolake.lake.retract import retract

    report = retract(_open_lake(lake_location), name, why=why)
    click.echo(f"retracted release {report.release!r}: deleted its rows from {len(report.deleted)} tables, "
               f"vacuumed {report.files_removed:,} files")


def _cnv_filter_options() -> list:
    """Which CNV segments count, as PLINK 1.07's --cnv-kb, --cnv-sites, --cnv-score, their --cnv-max-* and
    --cnv-del/--cnv-dup (each bound inclusive)."""
    return [click.option("--min-kb", type=float, metavar="KB", help="segments of at least KB kb, (end − start) / 1000 "
                         "(plink --cnv-kb)"),
            click.option("--max-kb", type=float, metavar="KB", help="segments of at most KB kb (plink --cnv-max-kb)"),
            click.option("--min-sites", type=int, metavar="N", help="segments spanning at least N probes "
                         "(plink --cnv-sites)"),
            click.option("--max-sites", type=int, metavar="N", help="at most N probes (plink --cnv-max-sites)"),
            click.option("--min-score", type=float, metavar="S", help="segments of confidence at least S "
                         "(plink --cnv-score)"),
            click.option("--max-score", type=float, metavar="S", help="of confidence at most S (plink --cnv-max-score)"),
            click.option("--type", "cnv_type", type=click.Choice(["both", "del", "dup"]), default="both",
                         show_default=True, help="deletions only (plink --cnv-del), duplications only (--cnv-dup)")]


def _cnv_carrier_options() -> list:
    """How carriers of a CNV locus are called."""
    return [click.option("--loci", type=click.Path(dir_okay=False), metavar="FILE",
                         help="the loci: CHR BP1 BP2 NAME per line, as plink's region lists [default: the shipped "
                              "genomic-disorder loci, ClinGen's: 1q21.1 distal, 15q11.2 BP1-BP2, 16p11.2 proximal and "
                              "distal, 22q11.2 A-D, and six more]"),
            click.option("--build", type=click.Choice(["hg19", "hg38"]), default="hg19", show_default=True,
                         help="the genome build of the calls (which coordinates of the shipped loci)"),
            click.option("--min-overlap", type=click.FloatRange(0, 1, min_open=True), default=0.5, show_default=True,
                         help="a carrier's segment covers at least this share of the locus and of itself"),
            click.option("--merge-gap", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
                         metavar="F", help="first join a participant's calls of one type whose gap is at most F of "
                         "the stretch they span (a caller's fragments of one CNV; PennCNV clean_cnv.pl combineseg "
                         "--fraction, 0.2 there); 0: only touching or overlapping calls")]


def _cnv_filter(options: dict[str, Any]):
    from biolake.queries.cnvs import CnvFilter

    return CnvFilter(**{name: options.pop(name) for name in ("min_kb", "max_kb", "min_sites", "max_sites", "min_score",
                                                             "max_score")}, type=options.pop("cnv_type"))


def _carrier_choice(options: dict[str, Any]):
    from biolake.cnv import CarrierChoice

    return CarrierChoice(loci=options.pop("loci"), build=options.pop("build"), min_overlap=options.pop("min_overlap"),
                         merge_gap=options.pop("merge_gap"))


@main.group("cnv")
def cnv_group() -> None:
    """Copy-number variants: burden per participant, carriers of recurrent loci, association with IDPs.

    The release's CNV calls come in with 'biolake ingest --cnv' (PennCNV output, or
    PLINK's .cnv with its .fam); every command filters them at analysis time, as
    PLINK 1.07 does, and counts every participant called, with or without a segment.
    """


@cnv_group.command("burden")
@_lake_option
@_decorated_by(_cnv_filter_options())
@click.option("--genes", type=click.Path(dir_okay=False), metavar="FILE",
              help="a gene list (CHR BP1 BP2 NAME per line): adds the genes hit, as plink --cnv-count")
@_results_options(default_name="cnv_burden", release_help="release whose CNVs are counted [default: latest]",
                  exported="burden table")
def cnv_burden(lake_location: str, genes: str | None, release: str | None, name: str, replace: bool,
               out: str | None, digits: int | str | None, **options: Any) -> None:
    """CNV burden per participant: segments and kb, in all and by type (results.NAME).

    A row per participant called (0 without a segment): n_segments, kb_total, kb_mean,
    n_del, kb_del, n_dup, kb_dup, as PLINK 1.07's .cnv.indiv counts them (NSEG, KB,
    KBAVG; kb = (end − start) / 1000), and with --genes the genes hit (COUNT). Join it to
    IDPs in SQL.

    \b
    Examples:
      biolake cnv burden --lake /tmp/lake --min-kb 100 --min-sites 10 --name burden --out burden.tsv
      biolake sql --lake /tmp/lake 'SELECT b.n_del, i."25001-2.0" FROM results.burden b JOIN idps i USING (participant_id)'
    """
    from biolake.cnv import CnvBurdenSettings, run_cnv_burden

    cnv_filter = _cnv_filter(options)

    def show(lake, report) -> None:
        click.echo(f"{report.segments:,} segments of {report.participants:,} participants called → "
                   f"{_stored(lake, report)}", err=True)

    def start(lake, progress):
        return run_cnv_burden(lake, CnvBurdenSettings(name=name, release=release, replace=replace,
                                                      cnv_filter=cnv_filter, genes=genes))
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@cnv_group.command("carriers")
@_lake_option
@_decorated_by(_cnv_filter_options())
@_decorated_by(_cnv_carrier_options())
@_results_options(default_name="cnv_carriers", release_help="release whose CNVs are read [default: latest]",
                  exported="carrier calls")
def cnv_carriers(lake_location: str, release: str | None, name: str, replace: bool, out: str | None,
                 digits: int | str | None, **options: Any) -> None:
    """Carriers of recurrent CNV loci: a row per participant and locus carried (results.NAME).

    A participant carries a locus when one of its segments covers at least --min-overlap
    of the locus and of itself (reciprocal overlap, 50 % by default). Columns:
    participant_id, locus, chrom, start and end (the segment's), type, overlap.

    \b
    Examples:
      biolake cnv carriers --lake /tmp/lake --min-sites 10 --name carriers
      biolake sql --lake /tmp/lake "SELECT locus, type, count(*) AS carriers FROM results.carriers GROUP BY ALL"
    """
    from biolake.cnv import CnvCarriersSettings, run_cnv_carriers

    cnv_filter, carriers = _cnv_filter(options), _carrier_choice(options)

    def show(lake, report) -> None:
        carried = {locus: counts for locus, counts in report.carriers.items() if any(counts)}
        click.echo(f"carriers of {len(carried)} of {len(report.carriers)} loci"
                   + "".join(f"; {locus}: {deleted} del, {duplicated} dup"
                             for locus, (deleted, duplicated) in carried.items())
                   + f" → {_stored(lake, report)}", err=True)

    def start(lake, progress):
        return run_cnv_carriers(lake, CnvCarriersSettings(name=name, release=release, replace=replace,
                                                          cnv_filter=cnv_filter, carriers=carriers))
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@cnv_group.command("assoc")
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="IDPs: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="IDPs: comma-separated columns of idps (instead of --pheno-sql)")
@click.option("--covar-sql", metavar="SQL", help="covariates: SQL returning participant_id first")
@click.option("--covar", metavar="COLS", help="covariates: comma-separated columns of covariates [default: none]")
@_decorated_by(_cnv_filter_options())
@_decorated_by(_cnv_carrier_options())
@click.option("--burden", "burden_measures", default="n_segments,kb_total,n_del,kb_del,n_dup,kb_dup",
              show_default=True, metavar="MEASURES",
              help="burden measures tested too (comma-separated; 'none' for none)")
@click.option("--scan-kb", type=float, metavar="KB",
              help="also test every window of KB kb that a segment overlaps (a genome-wide CNV scan: Manhattan, hits)")
@click.option("--min-carriers", type=click.IntRange(min=1), default=1, show_default=True,
              help="a locus or window test runs with at least this many carriers among the IDP's participants")
@_decorated_by(_sample_options("test only the participant_id this SQL returns"))
@_results_options(default_name="cnv_assoc", release_help="release whose CNVs and IDPs are tested [default: latest]",
                  exported="association table")
def cnv_assoc(lake_location: str, pheno_sql: str | None, pheno: str | None, covar_sql: str | None,
              covar: str | None, burden_measures: str, scan_kb: float | None, min_carriers: int,
              samples_sql: str | None,
              keep_file: str | None, remove_file: str | None, release: str | None, name: str, replace: bool,
              out: str | None, digits: int | str | None, **options: Any) -> None:
    """IDPs against CNV carrier status and burden, adjusted for covariates (results.NAME).

    Per IDP and locus: deletion carriers against non-carriers (model del; duplication
    carriers left out), duplication carriers against non-carriers (dup), and the dose
    −1/0/+1 (dose); with --scan-kb, the same for every window of that size a segment
    overlaps (a CNV scan: a Manhattan per IDP, hits, the browser). Each a linear
    regression with the covariates over the IDP's own participants (statsmodels' OLS, to
    1e-8): beta, se, t, p, and for del and dup Cohen's d (t · √(1/n₁ + 1/n₀): the
    covariate-adjusted mean difference in residual SDs) with its 95 % interval, and the
    carriers counted. Per IDP and burden measure, its slope: results.NAME_burden.

    \b
    Examples:
      biolake cnv assoc --lake /tmp/lake --pheno 25001-2.0,25002-2.0 --covar age,sex,site --name cnv_idps \\
                        --out cnv_idps.tsv
      biolake sql --lake /tmp/lake "SELECT phenotype, test, beta, p FROM results.cnv_idps ORDER BY p LIMIT 5"
      biolake cnv assoc --lake /tmp/lake --pheno 25001-2.0 --covar age,sex --scan-kb 500 --min-carriers 3 \\
                        --name cnv_scan
      biolake hits --lake /tmp/lake --result cnv_scan --threshold 1e-3
    """
    from biolake.cnv import CnvAssocSettings, run_cnv_assoc

    cnv_filter, carriers = _cnv_filter(options), _carrier_choice(options)
    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    covariates = [] if covar_sql is None and covar is None else _one_of(covar_sql, covar, "--covar-sql", "--covar")
    measures = () if burden_measures == "none" else tuple(m.strip() for m in burden_measures.split(",") if m.strip())

    def show(lake, report) -> None:
        _echo_design(report)
        scanned = f" ({report.windows:,} windows of {scan_kb:g} kb among them)" if scan_kb else ""
        click.echo(f"{report.tests:,} carrier tests{scanned} × {report.rows // max(report.tests, 1):,} IDPs → "
                   f"{_stored(lake, report)}" + (f"; {report.measures} burden measures: results.{report.name}_burden"
                                                 if report.measures else ""), err=True)

    def start(lake, progress):
        return run_cnv_assoc(lake, CnvAssocSettings(
            name=name, release=release, replace=replace, phenotypes=phenotypes, covariates=covariates,
            samples=samples_sql, **_sample_lists(keep_file, remove_file), cnv_filter=cnv_filter, carriers=carriers,
            burden_measures=measures, scan_kb=scan_kb, min_carriers=min_carriers))
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@main.group("results")
def results_group() -> None:
    """List and drop the lake's results tables."""


@results_group.command("list")
@_lake_option
def results_list(lake_location: str) -> None:
    """List the results tables: name, kind, release, rows, when made, and flags.

    A table computed from a release that was retracted since is flagged.

    \b
    Example:
      biolake results list --lake /tmp/lake
    """
    from rich.console import Console
    from rich.table import Table

    lake = _open_lake(lake_location)
    table = Table("name", "kind", "release", "rows", "created (UTC)", "flags")
    for name in lake.results_names():
        info = lake.results_info(name)
        table.add_row(name, info.kind or "", info.release or "", f"{info.rows:,}",
                      (info.created_at or "")[:19].replace("T", " "), "; ".join(info.flags()))
    Console().print(table)


@results_group.command("log")
@click.argument("name")
@_lake_option
@click.option("--version", "table_version", type=int, metavar="N", help="the log of version N [default: the current]")
def results_log(name: str, lake_location: str, table_version: int | None) -> None:
    """Print the log of the job that made the results table NAME (plink2's PREFIX.log: the options in effect,
    the steps and their times, warnings, counts, where the results went).

    \b
    Example:
      biolake results log idps --lake /tmp/lake
    """
    click.echo(_open_lake(lake_location).read_job_log(name, table_version), nl=False)


@results_group.command("drop")
@click.argument("name")
@_lake_option
def results_drop(name: str, lake_location: str) -> None:
    """Delete the results table NAME and its browse index; the drop is recorded (dropped_results).

    Crash-safe: once the drop is committed the table is gone for every reader, and
    rerunning after an interruption finishes the deletion.

    \b
    Example:
      biolake results drop old_gwas --lake /tmp/lake
    """
    record = _open_lake(lake_location).drop_results(name)
    click.echo(f"dropped results {name!r} ({record['kind'] or 'unknown kind'}, {record['rows']:,} rows)")


@main.command()
@click.argument("query", required=False)
@_lake_option
@click.option("--release", metavar="NAME", help="release to query [default: latest]")
@click.option("--format", "output_format", type=click.Choice(["table", "csv", "tsv", "parquet", "json"]),
              default="table", show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), help="write the result here instead of stdout")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None, metavar="SECONDS",
              help="stop a query that runs longer than this [default: no limit]")
@click.option("--memory-limit", default="4GB", show_default=True, metavar="SIZE",
              help="memory a query may use before DuckDB spills to disk or stops it (e.g. 500MB, 8GB)")
def sql(query: str | None, lake_location: str, release: str | None, output_format: str,
        out: str | None, timeout: float | None, memory_limit: str) -> None:
    """Run a read-only SQL QUERY (DuckDB dialect) over one release of the lake.

    Without QUERY, opens an interactive prompt (end statements with ';').
    Every table is a view: samples, variants, genotypes, idps, idp_fields,
    covariates, methylation, probes, releases, dosages (participant × variant,
    long) and betas (participant × CpG, long; m_value(beta) gives M-values).
    Only queries run: writes, ATTACH, INSTALL/LOAD and reading files outside
    the lake are refused.

    \b
    Examples:
      biolake sql 'SHOW TABLES' --lake /tmp/lake
      biolake sql 'SELECT site, count(*) FROM covariates GROUP BY site' --lake /tmp/lake
      biolake sql "SELECT d.dosage, i.\\"25001-2.0\\" FROM dosages d JOIN idps i USING (participant_id)
                   WHERE d.variant_id = 'rs1000'" --lake /tmp/lake --format csv --out rs1000.csv
    """
    from biolake.queries import connect
    from biolake.queries.output import write_result

    if output_format == "parquet" and out is None:
        raise click.UsageError("--format parquet needs --out FILE")
    lake = _open_lake(lake_location)
    _check_out_of_lake(lake, out)
    con = connect(lake, release=release, timeout=timeout, memory_limit=memory_limit)
    if query is None:
        from biolake.prompt import sql_prompt
        sql_prompt(con)
    else:
        write_result(con.sql(query), output_format=output_format, out=out, all_rows="--format csv --out FILE")


@main.command()
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="phenotypes: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="phenotypes: comma-separated columns of idps (instead of --pheno-sql)")
@_analysis_options(default_name="gwas")
@click.option("--model", type=click.Choice(["auto", "linear", "logistic"]), default="auto", show_default=True,
              help="auto: phenotypes whose values are all 0/1 (1 case), or 1/2 with 0 and -9 missing (2 case, as "
                   "PLINK reads them; a warning names each, as a quantitative phenotype of 1s and 2s reads so "
                   "too), get logistic regression, the rest linear")
@click.option("--firth", type=click.Choice(["fallback", "always", "never"]), default="fallback", show_default=True,
              help="Firth regression for logistic tests: when plain logistic fails or separates (plink2's default), always, or never")
@click.option("--impute-mean", is_flag=True,
              help="fill missing calls with the variant's mean dosage (REGENIE) instead of dropping those samples per variant (plink2)")
@click.option("--precision", type=click.Choice(["float64", "float32"]), default="float64", show_default=True,
              help="precision of the products with hard calls (float32: half the memory traffic; p within "
                   "1.2e-4 relative of float64 over 20 M tests measured; dosages stay float64)")
@_variant_options(maf_default=0.0, maf_help="")
@click.option("--lmm", type=click.Choice(["loco", "exact", "null-ratio"]), default=None, is_flag=False,
              flag_value="loco",
              help="a mixed model for related samples (a bare --lmm is loco): loco fits REGENIE's step 1 (ridge "
                   "regressions on genotype blocks, leave-one-chromosome-out predictions) for every phenotype at once, "
                   "then tests each phenotype minus its prediction for the variant's chromosome by linear regression; "
                   "exact and null-ratio use the relationship matrix of the lake's genotypes (GEMMA's -gk 2), as "
                   "GEMMA's -lmm 1 Wald test: exact re-estimates the variance ratio by REML for every variant, "
                   "null-ratio keeps each phenotype's null-model ratio (EMMAX); their missing calls take the "
                   "variant's mean (as GEMMA and BOLT); loco's ridge regressions mean-impute them too, its test "
                   "treats them as plain regression does (--impute-mean); not with --model logistic "
                   "[default: plain regression]")
@click.option("--cv-folds", type=int, metavar="K",
              help="--lmm loco: cross-validation folds of its ridge regressions; in a cohort with many relatives, "
                   "more folds (10) leave fewer of a sample's relatives out of its training folds [default: 5, "
                   "REGENIE's]")
@click.option("--lmm-block-size", type=int, metavar="VARIANTS",
              help="--lmm loco: variants per block of its level-0 ridge regressions (REGENIE's --bsize) "
                   "[default: 1000]")
@ADJUST_OPTION
@click.option("--split-by-phenotype", is_flag=True,
              help="--out writes one file per phenotype, OUT with _PHENOTYPE before its extension (REGENIE's layout)")
def gwas(pheno_sql: str | None, pheno: str | None, model: str, firth: str, impute_mean: bool, precision: str,
         lmm: str | None, cv_folds: int | None, lmm_block_size: int | None, adjust: bool,
         split_by_phenotype: bool, **shared: Any) -> None:
    """Test every variant against every phenotype; write a results table into the lake.

    Phenotypes and covariates come from SQL over the release (or column lists);
    NULL and NaN are missing values, an infinite value is an error, and a
    phenotype with no values or a single value is dropped with a warning.
    Each phenotype uses exactly its own non-missing samples, and a sample with a
    missing call is dropped for that variant only, as plink2 --glm does. Linear
    tests (t) for quantitative phenotypes, logistic (z) with Firth fallback for
    0/1 ones (and PLINK's 1/2, 0/-9 missing). Text covariates (site, sex) become indicator columns. Work runs on
    dask, one task per genotype block, each writing its own results file; one
    commit then makes them LAKE/results/NAME (partitioned by chrom), with columns
    phenotype, variant_id, chrom, pos, ref, alt, n, alt_freq, beta, se, t|z, p,
    log10p, error (and fdr with --adjust), and the query text, settings, and per
    phenotype λGC and Bonferroni thresholds in its metadata. --out text files print
    7 significant digits (--digits).

    With --lmm (loco) each phenotype is first predicted from the lake's genotypes
    (every chromosome; variants of MAF >= 0.01 and <= 5% missing calls), as
    REGENIE's step 1 for all phenotypes in one pass: per block of
    --lmm-block-size variants, ridge regressions at 5 penalties by --cv-folds
    cross-validation (their missing values 0, so one X'Y serves all phenotypes);
    then per phenotype, on its own samples only, a ridge on those predictions, its
    penalty by cross-validation, and the prediction without the variant's
    chromosome is subtracted before the plain linear test (same columns, t). The
    folds, block size and chosen penalties are in the metadata. Level 0 holds
    4 bytes x samples x phenotypes x blocks x 5 in memory.

    With --lmm exact|null-ratio the relationship matrix K of the lake's genotypes (every chromosome)
    is decomposed once per phenotype missingness pattern (an N × N matrix: for N up
    to a few tens of thousands) and each variant gets GEMMA's -lmm 1 Wald test
    (t, on n - covariates - 1 degrees of freedom); missing calls are mean-imputed
    per variant over the phenotype's samples, missing phenotypes still drop only
    that phenotype's samples. Each phenotype's null-model variance ratio is in the
    metadata.

    \b
    Examples:
      biolake gwas --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                   --covar age,sex,site,PC1,PC2 --name all_idps --out all_idps.tsv.gz
      biolake gwas --lake /tmp/lake --pheno 25010-2.0 --covar-sql \\
                   'SELECT participant_id, age, age*age AS age2, sex FROM covariates' \\
                   --samples-sql "SELECT participant_id FROM covariates WHERE site = 'Cheadle'"
      biolake gwas --lake /tmp/lake --pheno 25010-2.0,25020-2.0 --covar age,sex \\
                   --lmm null-ratio --name idps_lmm
      biolake gwas --lake /tmp/lake --pheno 25010-2.0,25020-2.0 --covar age,sex \\
                   --lmm --name idps_loco
    """
    from biolake.gwas import GwasSettings, run_gwas

    def show(lake, report) -> None:
        _echo_design(report)
        _print_summary(report.summary)
        click.echo(f"{report.rows:,} results in {_stored(lake, report)}", err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    if split_by_phenotype and shared["out"] is None:
        raise click.UsageError("--split-by-phenotype splits the --out file: give --out")
    _analysis(run_gwas, GwasSettings, dict(phenotypes=phenotypes, model=model, firth=firth, impute_mean=impute_mean,
                                           precision=precision, lmm=lmm, cv_folds=cv_folds,
                                           lmm_block_size=lmm_block_size, adjust=adjust, **_variant_settings(shared)),
              show, split_by="phenotype" if split_by_phenotype else None, **shared)


@main.command()
@_lake_option
@click.option("--exposure-sql", metavar="SQL", help="exposures: SQL returning participant_id, then one column each")
@click.option("--exposure", metavar="COLS", help="exposures: comma-separated columns of idps (instead of --exposure-sql)")
@click.option("--values", type=click.Choice(["m", "beta"]), default="m", show_default=True,
              help="methylation as M-values, log2(beta/(1-beta)), or as betas")
@_analysis_options(default_name="ewas")
def ewas(exposure_sql: str | None, exposure: str | None, values: str, **shared: Any) -> None:
    """Regress every CpG on an exposure; limma's moderated t; a results table in the lake.

    Per CpG: methylation ~ exposure + covariates, on the participants with methylation
    data (a CpG's missing values drop only that CpG's samples, as limma's lmFit does).
    Reports the ordinary t and limma's empirical-Bayes moderated t (eBayes, robust=FALSE),
    their p-values and BH false-discovery rates; columns exposure, cpg_id, chrom, pos,
    n, beta, se, t, p, moderated_t, moderated_p, log10p, fdr, error.

    \b
    Examples:
      biolake ewas --lake /tmp/lake --exposure-sql 'SELECT participant_id, stress FROM covariates' \\
                   --covar age,sex,site --name stress --out stress.tsv.gz
      biolake ewas --lake /tmp/lake --exposure 25019-2.0 --covar-sql \\
                   'SELECT participant_id, age, sex, site FROM covariates' --values beta
    """
    from biolake.ewas import EwasSettings, run_ewas

    def show(lake, report) -> None:
        _echo_design(report)
        for s in report.exposures:
            click.echo(f"{s.exposure}: {s.cpgs:,} CpGs, prior df {s.prior_df:.3g}, λGC {s.lambda_gc:.3f}, "
                       f"FDR < 0.05: {s.fdr_hits:,}, p < 9e-8: {s.array_wide_hits:,}, top {s.top_cpg} "
                       f"(p = {s.top_p:.3g})", err=True)
        click.echo(f"results in {_stored(lake, report)}", err=True)

    exposures = _one_of(exposure_sql, exposure, "--exposure-sql", "--exposure")
    _analysis(run_ewas, EwasSettings, dict(exposures=exposures, values=values), show, **shared)


@main.command()
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="phenotypes: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="phenotypes: comma-separated columns of idps (instead of --pheno-sql)")
@click.option("--exposure", "exposures", multiple=True, required=True, metavar="COLUMN",
              help="the environment e: a column of the covariate query (repeatable, or comma-separated, for a "
                   "k-df interaction test; a text column enters as all its levels)")
@_analysis_options(default_name="gxe")
@click.option("--keller", is_flag=True,
              help="also fit covariate×exposure and covariate×genotype terms (Keller 2014), so that "
                   "confounding by a covariate's own interactions cannot pass as G×E")
@click.option("--robust", type=click.Choice(["hc0", "hc1", "hc2", "hc3"]), default="hc3", show_default=True,
              help="heteroskedasticity-robust standard error reported beside the model-based one")
@_variant_options(maf_default=0.05, maf_help=": robust interaction tests are anti-conservative when few "
                         "carriers drive g×e (measured in the demo: 5-40× too many p < 1e-4 below MAF 3 %)")
@ADJUST_OPTION
def gxe(pheno_sql: str | None, pheno: str | None, exposures: tuple[str, ...], keller: bool, robust: str,
        adjust: bool, **shared: Any) -> None:
    """Test every variant's interaction with an exposure; write a results table into the lake.

    Per variant and phenotype, y ~ covariates + e + g + g×e by least squares, on
    exactly the phenotype's samples (a missing call drops that sample for that
    variant, as plink2 --glm interaction does). Reported per phenotype, exposure and
    variant: beta_g and beta_gxe with model-based and robust (--robust) standard
    errors; t_gxe/p_gxe (t, model-based) and z_gxe_robust/p_gxe_robust (normal) for
    the interaction; f_joint/p_joint (F) and chisq_joint_robust/p_joint_robust (χ²)
    for g and g×e together; n, alt_freq, error; with several exposures, the
    *_interaction columns test all interactions at once. Summaries rank the robust
    interaction test. Binary phenotypes are fitted as linear probability models.

    \b
    Examples:
      biolake gxe --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                  --covar age,sex,site,stress,PC1,PC2 --exposure stress --name stress_gxe
      biolake gxe --lake /tmp/lake --pheno 25010-2.0 --covar age,sex,site,stress \\
                  --exposure stress --keller --robust hc0 --out gxe.tsv.gz
    """
    from biolake.gxe import GxeSettings, run_gxe

    def show(lake, report) -> None:
        _echo_design(report)
        click.echo(f"per-variant terms: {', '.join(report.terms)}; ranked by the robust ({robust}) interaction test",
                   err=True)
        _print_summary(report.summary)
        click.echo(f"{report.rows:,} results in {_stored(lake, report)}", err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    exposure_columns = [e.strip() for item in exposures for e in item.split(",") if e.strip()]
    _analysis(run_gxe, GxeSettings, dict(phenotypes=phenotypes, exposures=exposure_columns, keller=keller,
                                         robust=robust, adjust=adjust, **_variant_settings(shared)), show, **shared)


@main.command()
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="phenotypes: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="phenotypes: comma-separated columns of idps (instead of --pheno-sql)")
@click.option("--with", "candidates", multiple=True, metavar="ID[,ID...]",
              help="scope: these candidate variants, each against every variant chosen (all, or --chrom, --region, "
                   "--extract); repeatable or comma-separated")
@click.option("--set-sql", metavar="SQL",
              help="scope: every pair of the variants this SQL returns (variant_id first; at most 10,000), once")
@click.option("--all", "all_pairs", is_flag=True,
              help="scope: every pair of the autosomal variants chosen (all, or --chrom, --region, --extract), once; "
                   "needs --prefilter-p")
@click.option("--prefilter-p", type=float, metavar="P",
              help="write only the tested pairs with p ≤ P (a 0/1 phenotype's by its least-squares screen; they "
                   "get the logistic fit); every pair is still tested, and the summary counts them all, skipped ones "
                   "among the tests that did not run")
@click.option("--model", type=click.Choice(["auto", "linear", "logistic"]), default="auto", show_default=True,
              help="auto: phenotypes whose values are all 0/1 (1 case), or PLINK's 1/2, are binary: their pairs are "
                   "fitted by logistic regression (with --prefilter-p, those the least-squares screen passes)")
@click.option("--min-distance", "min_distance_kb", type=float, default=0.0, show_default=True, metavar="KB",
              help="skip partners on the candidate's chromosome closer than KB kb (kept as rows with error "
                   "'closer than --min-distance')")
@click.option("--max-r2", type=float, metavar="R2",
              help="skip pairs whose r² over the samples with both calls is above R2 (kept as rows with error "
                   "'r² above --max-r2') [default: none, as plink1.9]")
@_analysis_options(default_name="epistasis")
@_variant_options(maf_default=0.0, maf_help="")
def epistasis(pheno_sql: str | None, pheno: str | None, candidates: tuple[str, ...], set_sql: str | None,
              all_pairs: bool, prefilter_p: float | None, model: str, min_distance_kb: float, max_r2: float | None,
              **shared: Any) -> None:
    """Test SNP × SNP interactions of phenotypes; write a results table into the lake.

    Per pair of variants (a, b) and phenotype, y ~ covariates + a + b + a×b by least
    squares (covariates optional: plink1.9 --epistasis takes none), on the phenotype's
    samples with both calls (a missing call of a or b drops that sample for that pair).
    Three scopes: --with names candidates tested against every variant chosen (as
    REGENIE's --interaction-snp, for many phenotypes at once); --set-sql names a set,
    every pair of which is tested once (plink1.9 --epistasis on the set); --all tests
    every pair of the chosen autosomal variants once (plink1.9 --epistasis), writing
    only the pairs that pass --prefilter-p. Per row: phenotype, both variants
    (variant_id_a, chrom_a, pos_a, ref_a, alt_a; variant_id_b, chrom, pos, ref_b,
    alt_b: the partner's position keeps the GWAS's names), n, beta_int (per alt allele
    of each), se_int, t_int and p_int (t: statsmodels' OLS; plink1.9 prints t_int² as
    STAT), log10p_int; f_joint, p_joint, log10p_joint: the F of b and a×b together
    (REGENIE's ADD-INT_2DF); error. A 0/1 phenotype's pairs are fitted by logistic
    regression (plink1.9 --epistasis on a case/control phenotype): beta_int is a log
    odds ratio, z_int and chisq_joint replace t_int and f_joint.
    Pairs skipped by --min-distance or --max-r2 stay as rows with their reason, so
    without --prefilter-p the rows count the pairs of the scope; with it, only tested
    pairs that pass are rows, and the summary printed and stored counts every pair (by
    least squares: for a 0/1 phenotype, the screen whose passing pairs get the logistic
    fit). With --with, two candidates are also each other's
    partners: their pair is a row under each. A set's variants and --with's candidates
    pass the variant filters (--maf, --geno, --hwe …) as every partner does. A
    phenotype's pairs are one scan in summaries, hits and reports, each pair at the
    partner's position.

    \b
    Examples:
      biolake epistasis --lake /tmp/lake --pheno 25001-2.0,25010-2.0 --covar age,sex \\
                        --with rs1005 --chrom 1,2 --min-distance 250 --name rs1005_pairs
      biolake hits --lake /tmp/lake --result rs1005_pairs --threshold 1e-3
      biolake epistasis --lake /tmp/lake --pheno 25010-2.0 \\
                        --set-sql "SELECT variant_id FROM variants WHERE chrom = '22' LIMIT 60" \\
                        --name chr22_pairs --out chr22_pairs.tsv.gz
      biolake epistasis --lake /tmp/lake --pheno 25010-2.0 --covar age,sex --all \
                        --chrom 1,2 --min-distance 1000 --prefilter-p 1e-3 --name all_pairs
    """
    from biolake.epistasis import EpistasisSettings, run_epistasis

    def show(lake, report) -> None:
        _echo_design(report)
        scope = f"{len(report.candidates):,} candidates" if report.candidates else "every pair of the variants"
        click.echo(f"{scope}, {report.pairs:,} pairs per phenotype, {report.tested:,} tests in all", err=True)
        _print_summary(report.summary)
        click.echo(f"{report.rows:,} results in {_stored(lake, report)}", err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    ids = [c.strip() for item in candidates for c in item.split(",") if c.strip()]
    _analysis(run_epistasis, EpistasisSettings, dict(phenotypes=phenotypes, candidates=ids, set_sql=set_sql,
                                                     all_pairs=all_pairs, prefilter_p=prefilter_p, model=model,
                                                     min_distance_kb=min_distance_kb, max_r2=max_r2,
                                                     **_variant_settings(shared)), show, covariates_optional=True,
              **shared)


@main.command()
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="IDPs: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="IDPs: comma-separated columns of idps (instead of --pheno-sql)")
@click.option("--batch", required=True, metavar="COLUMN",
              help="the column of covariates naming each participant's site or scanner (the batch ComBat removes)")
@click.option("--covar-sql", metavar="SQL", help="covariates whose effects are kept: SQL returning participant_id first")
@click.option("--covar", metavar="COLS",
              help="covariates whose effects are kept: comma-separated columns of covariates [default: none]")
@_decorated_by(_sample_options("harmonise only the participant_id this SQL returns"))
@click.option("--non-parametric", is_flag=True,
              help="non-parametric empirical-Bayes priors (neuroCombat's parametric=False) [default: parametric]")
@click.option("--no-eb", is_flag=True, help="no empirical Bayes: each batch's own location and scale (eb=False)")
@click.option("--reference", metavar="NAME",
              help="apply the fit of an earlier harmonize run NAME: its batches keep its adjustments, batches it "
                   "lacks (sites joining later) are estimated against it")
@_results_options(default_name="harmonized", release_help="release whose IDPs are harmonised [default: latest]",
                  exported="harmonised IDPs")
def harmonize(lake_location: str, pheno_sql: str | None, pheno: str | None, batch: str, covar_sql: str | None,
              covar: str | None, samples_sql: str | None, keep_file: str | None, remove_file: str | None,
              non_parametric: bool, no_eb: bool, reference: str | None, release: str | None, name: str,
              replace: bool, out: str | None, digits: int | str | None) -> None:
    """Harmonise IDPs across sites or scanners by ComBat, keeping the covariates' effects; a table of harmonised
    IDPs in the lake (results.NAME in SQL), for every analysis to query as it queries idps.

    ComBat as neuroCombat computes it (Johnson et al. 2007; Fortin et al. 2018): per IDP, least
    squares on the batches and covariates, standardised by the pooled residual variance; per
    batch a location and a scale, shrunk across IDPs by empirical Bayes (parametric priors,
    or --non-parametric; none with --no-eb); the IDPs with each batch's location and scale
    removed, the covariates' effects and the grand mean put back. Equal to neuroCombat to 1e-8.
    Every IDP of every participant is needed (as neuroCombat needs it): participants missing
    one, or without a batch, are left out and counted. A batch of one participant, or an IDP
    constant within a batch, is refused. Columns: participant_id, then the IDPs under their
    own names; the batches, their sizes and the priors are in the table's provenance, the
    fit itself (per IDP and batch) beside it, for --reference.

    Sites joining later: --reference NAME applies the fit of the run NAME without refitting
    it. Participants of its batches get its adjustments; a batch it lacks gets a location and
    scale of its own, estimated against NAME's grand mean, variance and covariate effects
    (neuroHarmonize's harmonizationLearn with orig_model). The IDPs and covariates must be
    NAME's.

    \b
    Examples:
      biolake harmonize --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                        --batch site --covar age,sex --name harmonized --out harmonized.tsv.gz
      biolake gwas --lake /tmp/lake --pheno-sql 'SELECT * FROM results.harmonized' \\
                   --covar age,sex,PC1,PC2 --name harmonized_gwas
      biolake harmonize --lake /tmp/lake --pheno 25001-2.0,25002-2.0 --batch site --covar age,sex \\
                        --samples-sql "SELECT participant_id FROM covariates WHERE site <> 'Reading'" \\
                        --name three_sites
      biolake harmonize --lake /tmp/lake --pheno 25001-2.0,25002-2.0 --batch site --covar age,sex \\
                        --samples-sql "SELECT participant_id FROM covariates WHERE site = 'Reading'" \\
                        --reference three_sites --name reading_joins
    """
    from biolake.harmonize import HarmonizeSettings, run_harmonize

    def show(lake, report) -> None:
        _echo_design(report)
        click.echo(f"{report.idps:,} IDPs harmonised across {len(report.batches)} batches ("
                   + ", ".join(f"{name} {size:,}" for name, size in report.batches.items())
                   + f") → {_stored(lake, report)}", err=True)
        if reference:
            click.echo(f"--reference {reference}: its adjustments applied; estimated against it: "
                       + (", ".join(report.estimated) or "none (every batch is the reference's)"), err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    covariates = [] if covar_sql is None and covar is None else _one_of(covar_sql, covar, "--covar-sql", "--covar")

    def start(lake, progress):
        settings = HarmonizeSettings(name=name, release=release, replace=replace, phenotypes=phenotypes,
                                     covariates=covariates, batch=batch, samples=samples_sql,
                                     **_sample_lists(keep_file, remove_file), eb=not no_eb,
                                     parametric=not non_parametric, reference=reference)
        return run_harmonize(lake, settings)
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@main.command()
@_lake_option
@click.option("--pheno-sql", metavar="SQL", help="IDPs: SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="IDPs: comma-separated columns of idps (instead of --pheno-sql)")
@click.option("--method", type=click.Choice(["pca", "ica"]), default="pca", show_default=True,
              help="principal components, or independent components (FastICA, log cosh)")
@click.option("--n", "n", type=click.IntRange(min=1), default=10, show_default=True, metavar="K",
              help="how many components")
@click.option("--covar-sql", metavar="SQL", help="covariates regressed out of the IDPs first: SQL returning "
              "participant_id first")
@click.option("--covar", metavar="COLS",
              help="covariates regressed out of the IDPs first: comma-separated columns of covariates [default: none]")
@click.option("--no-scale", is_flag=True, help="keep each IDP's own variance (its units) [default: each scaled to 1]")
@click.option("--seed", type=int, default=0, show_default=True, help="ICA: the seed of its random start")
@_decorated_by(_sample_options("decompose only the participant_id this SQL returns"))
@_results_options(default_name="components", release_help="release whose IDPs are decomposed [default: latest]",
                  exported="component scores")
def components(lake_location: str, pheno_sql: str | None, pheno: str | None, method: str, n: int,
               covar_sql: str | None, covar: str | None, no_scale: bool, seed: int, samples_sql: str | None,
               keep_file: str | None, remove_file: str | None, release: str | None, name: str, replace: bool,
               out: str | None, digits: int | str | None) -> None:
    """Imaging components of many IDPs, by PCA or ICA: scores per participant (results.NAME, to
    analyse as phenotypes) and loadings per IDP (results.NAME_loadings).

    Each IDP is centred and scaled to unit variance (--no-scale: not scaled), covariates
    regressed out first if given. PCA: the singular value decomposition, each component's
    largest loading positive (scikit-learn's PCA, to 1e-8). ICA: FastICA, parallel, log cosh,
    whitened to unit variance, from a start the --seed draws (scikit-learn's FastICA with
    random_state=SEED, step for step). Every IDP of every participant is needed:
    participants missing one are left out and counted. Columns: participant_id, pc1 … pcK (or
    ic1 …); of the loadings, idp, pc1 … pcK (ICA: the mixing matrix). Each component's share
    of the IDPs' variance is in the provenance of both.

    \b
    Examples:
      biolake components --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                         --n 5 --name idp_pcs --out idp_pcs.tsv
      biolake sql --lake /tmp/lake "SELECT idp, pc1 FROM results.idp_pcs_loadings ORDER BY abs(pc1) DESC LIMIT 5"
      biolake gwas --lake /tmp/lake --pheno-sql 'SELECT * FROM results.idp_pcs' --covar age,sex --name pc_gwas
      biolake components --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                         --method ica --n 5 --seed 1 --covar age,sex,site --name idp_ics
    """
    from biolake.components import ComponentsSettings, run_components

    def show(lake, report) -> None:
        _echo_design(report)
        click.echo(f"{len(report.components)} {method.upper()} components of {report.idps:,} IDPs, variance "
                   + ", ".join(f"{name} {share:.1%}" for name, share in zip(report.components, report.variance))
                   + f" → {_stored(lake, report)} (loadings: results.{report.name}_loadings)", err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    covariates = [] if covar_sql is None and covar is None else _one_of(covar_sql, covar, "--covar-sql", "--covar")

    def start(lake, progress):
        return run_components(lake, ComponentsSettings(
            name=name, release=release, replace=replace, phenotypes=phenotypes, covariates=covariates,
            samples=samples_sql, **_sample_lists(keep_file, remove_file), method=method, n=n, scale=not no_scale,
            seed=seed))
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@main.command()
@_lake_option
@click.option("--y-sql", required=True, metavar="SQL", help="block Y (IDPs): SQL returning participant_id, then one "
              "column each")
@click.option("--x-sql", metavar="SQL", help="block X: SQL returning participant_id, then one column per variable "
              "(polygenic scores, covariates, other IDPs)")
@click.option("--x-variants", metavar="SQL", help="block X: the dosages of the variants whose variant_id this SQL "
              "returns (a region, a gene set; instead of --x-sql)")
@click.option("--method", type=click.Choice(["cca", "pls-canonical", "pls-svd", "sparse-cca"]), default="cca",
              show_default=True, help="canonical correlation, partial least squares (canonical, with deflation; or "
              "SVD), or sparse CCA (Witten et al. 2009's penalized matrix decomposition)")
@click.option("--penalty", metavar="SX,SY", help="sparse-cca: each block's L1 bound as a share s ∈ (0, 1] of its "
              "largest, sqrt(columns) [default: chosen by cross-validation over 0.1, 0.3 … 0.9]")
@click.option("--n", "n", type=click.IntRange(min=1), default=2, show_default=True, metavar="K",
              help="how many pairs of components")
@click.option("--covar-sql", metavar="SQL", help="covariates regressed out of both blocks: SQL returning "
              "participant_id first")
@click.option("--covar", metavar="COLS",
              help="covariates regressed out of both blocks: columns of covariates [default: none]")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True,
              help="folds of the held-out correlations")
@click.option("--permutations", type=click.IntRange(min=0), default=1000, show_default=True,
              help="refits with Y's rows permuted, for each pair's p-value (0: none)")
@click.option("--bootstraps", type=click.IntRange(min=0), default=100, show_default=True,
              help="refits on participants drawn with replacement, for each weight's SE and sign stability (0: none)")
@click.option("--test-sql", metavar="SQL", help="participants set apart (a held-out site): fitted without, scored on")
@click.option("--seed", type=int, default=0, show_default=True, help="the seed of the folds and permutations")
@_decorated_by(_sample_options("analyse only the participant_id this SQL returns"))
@_results_options(default_name="cca", release_help="release whose tables the SQL reads [default: latest]",
                  exported="pairs")
def cca(lake_location: str, y_sql: str, x_sql: str | None, x_variants: str | None, method: str, penalty: str | None,
        n: int, covar_sql: str | None, covar: str | None,
        folds: int, permutations: int, bootstraps: int, test_sql: str | None, seed: int, samples_sql: str | None,
        keep_file: str | None, remove_file: str | None, release: str | None, name: str, replace: bool,
        out: str | None, digits: int | str | None) -> None:
    """Canonical correlation (or PLS) between two blocks queried from the lake, judged out
    of sample: a row per pair of components (results.NAME), the weights of every variable
    (results.NAME_weights).

    Each column of both blocks is centred and scaled on the participants fitted to,
    covariates regressed out first. CCA: each pair maximises the correlation of its scores,
    further pairs after deflating both blocks (scikit-learn's CCA, to 1e-6); PLS: the
    covariance (PLSCanonical, PLSSVD). Sparse CCA (Witten, Tibshirani & Hastie 2009; R's
    PMA) bounds each block's weights in L1, so that a pair holds few variables and more
    variables than participants stay estimable; its bounds are chosen by cross-validation
    unless --penalty gives them. Each pair's correlation is reported in sample (r),
    over --folds refits each scored on the fold it left out (r_cv), on the --test-sql
    participants set apart (r_test), and by --permutations refits with Y's rows shuffled
    (p_permutation). Each weight's stability: its SE and the share of --bootstraps refits
    giving it the same sign (c1_se, c1_same_sign in the weights). X is --x-sql's columns,
    or the dosages of the --x-variants. Participants
    missing a Y value or an X row are left out and counted; a missing X value (an uncalled
    genotype) is its column's mean. CCA needs fewer variables than participants.

    \b
    Examples:
      biolake cca --lake /tmp/lake --y-sql 'SELECT participant_id, "25001-2.0", "25002-2.0", "25003-2.0" FROM idps' \\
                  --x-variants "SELECT variant_id FROM variants WHERE chrom = '1' ORDER BY pos LIMIT 20" \\
                  --covar age,sex --permutations 99 --name cca_chr1 --out cca_chr1.tsv
      biolake cca --lake /tmp/lake --y-sql 'SELECT * EXCLUDE (release) FROM idps' --method pls-svd --n 3 \\
                  --x-variants "SELECT variant_id FROM variants WHERE chrom = '2' LIMIT 50" --permutations 0 \\
                  --test-sql "SELECT participant_id FROM covariates WHERE site = 'Reading'" --name pls_sites
      biolake cca --lake /tmp/lake --y-sql 'SELECT * EXCLUDE (release) FROM idps' --method sparse-cca \\
                  --x-variants "SELECT variant_id FROM variants WHERE chrom = '3'" --permutations 19 --name scca
    """
    from biolake.cca import CcaSettings, run_cca

    def show(lake, report) -> None:
        _echo_design(report)
        click.echo(f"{method.upper()} of {report.x_columns:,} X and {report.y_columns:,} Y variables → "
                   f"{_stored(lake, report)} (weights: results.{report.name}_weights)", err=True)
        for pair in report.pairs:
            click.echo(f"pair {pair['component']}: r {pair['r']:.3f} in sample, {pair['r_cv']:.3f} held out"
                       + ("" if pair["r_test"] is None else f", {pair['r_test']:.3f} on the test participants")
                       + ("" if pair["p_permutation"] is None else f", permutation p {pair['p_permutation']:.3g}"),
                       err=True)

    covariates = [] if covar_sql is None and covar is None else _one_of(covar_sql, covar, "--covar-sql", "--covar")

    def start(lake, progress):
        return run_cca(lake, CcaSettings(
            name=name, release=release, replace=replace, phenotypes=y_sql, x_sql=x_sql, x_variants=x_variants,
            covariates=covariates,
            samples=samples_sql, **_sample_lists(keep_file, remove_file), method=method, n=n, folds=folds,
            permutations=permutations, bootstraps=bootstraps, test_sql=test_sql, seed=seed,
            penalty=None if penalty is None else _penalty(penalty)))
    _job(lake_location, start, show, out=out, digits=digits, quiet=True)


@main.command()
@_lake_option
@click.option("--result", "results", multiple=True, required=True, metavar="NAME",
              help="a GWAS results table of one cohort or site (repeat: two or more)")
@click.option("--name", default="meta", show_default=True, help=f"results table: {RESULTS_NAME_HELP}")
@REPLACE_OPTION
@click.option("--out", type=click.Path(dir_okay=False), help="also export the results: .tsv[.gz], .csv[.gz] or .parquet")
@DIGITS_OPTION
def meta(lake_location: str, results: tuple[str, ...], name: str, replace: bool, out: str | None,
         digits: int | str | None) -> None:
    """Meta-analyse GWAS results of several cohorts or sites (ENIGMA style) into one table.

    Rows are matched by phenotype, position and allele pair and put on the first cohort's
    alleles (a swapped ref/alt flips the sign, the other strand is recognised, A/T and C/G
    pairs are flagged strand_ambiguous; a second allele pair at a position is a variant
    of its own, and such multi-allelic positions are counted).
    Columns: phenotype variant_id chrom pos ref alt cohorts n, the inverse-variance fixed
    effect beta se p log10p, heterogeneity q p_q i2 tau2, and the DerSimonian-Laird random
    effect beta_random se_random p_random log10p_random.

    \b
    Example (one GWAS per imaging site, then their meta-analysis):
      for site in Cheadle Newcastle Reading; do
        biolake gwas --lake /tmp/lake --pheno 25010-2.0 --covar age,sex --name site_$site --replace \\
          --samples-sql "SELECT participant_id FROM covariates WHERE site = '$site'"
      done
      biolake meta --lake /tmp/lake --result site_Cheadle --result site_Newcastle \\
                   --result site_Reading --name sites --out sites.tsv.gz
    """
    from biolake.meta import run_meta

    def show(lake, report) -> None:
        click.echo(f"{report.rows:,} variant × phenotype rows from {len(report.cohorts)} cohorts, "
                   f"{report.hits:,} at p < 5e-8 (fixed effects); {report.multiallelic:,} positions with more than "
                   f"one allele pair, each combined on its own → {_stored(lake, report)}", err=True)
        _warn_if_retracted(lake, results)

    _job(lake_location, lambda lake, progress: run_meta(lake, name=name, results=list(results), replace=replace),
         show, out=out, digits=digits, quiet=True)


@main.command()
@_lake_option
@click.option("--result", required=True, metavar="NAME", help="the GWAS or meta-analysis results to clump")
@click.option("--pheno", metavar="COLS", help="only these phenotypes of the results (comma-separated) [default: all]")
@click.option("--p1", default=1e-4, show_default=True, help="index variants: p at most this (plink --clump-p1)")
@click.option("--p2", default=1e-2, show_default=True,
              help="clumped variants listed in sp2: p below this (plink --clump-p2)")
@click.option("--r2", default=0.5, show_default=True,
              help="a variant joins an index variant's clump at r² above this (plink --clump-r2)")
@click.option("--kb", default=250.0, show_default=True,
              help="window: variants within this many kb of the index (plink --clump-kb)")
@_results_options(default_name="clumps", release_help="release whose genotypes give LD [default: the results' own]",
                  exported="clumps")
@_chrom_option()
@_cluster_options
def clump(lake_location: str, result: str, pheno: str | None, p1: float, p2: float, r2: float, kb: float,
          release: str | None, name: str, replace: bool, out: str | None, digits: int | str | None,
          chromosomes: tuple[str, ...], scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """LD-clump GWAS hits into independent loci, as plink1.9 --clump; a results table in the lake.

    Per phenotype and chromosome, the variant with the smallest p (at most --p1) indexes a
    clump of every not yet clumped variant within --kb of it in LD above --r2 (plink 1.9's
    r²: haplotype frequencies by EM from unphased calls, over the samples called at both);
    then the next. LD comes from the release's genotypes (all its samples). Columns, plink's
    .clumped in the lake's names: phenotype, variant_id (SNP), chrom (CHR), pos (BP), beta,
    p (P), log10p, total (TOTAL), nsig, s05, s01, s001, s0001 (NSIG … S0001), sp2 (SP2: the
    clumped variants with p < --p2, a list).

    \b
    Examples:
      biolake gwas --lake /tmp/lake --pheno 25019-2.0,25020-2.0 --covar age,sex,site --name hippocampus
      biolake clump --lake /tmp/lake --result hippocampus --name hippocampus_loci --out loci.tsv
      biolake clump --lake /tmp/lake --result hippocampus --p1 5e-8 --r2 0.1 --kb 1000 --name strict_loci
    """
    from biolake.clump import ClumpSettings, run_clump

    def show(lake, report) -> None:
        click.echo(f"{report.clumps:,} clumps in {report.phenotypes:,} phenotype(s) with an index variant (LD from "
                   f"release {report.release}) → {_stored(lake, report)}", err=True)
        _warn_if_retracted(lake, (result,))

    def start(lake, progress):
        settings = ClumpSettings(name=name, result=result, release=release, replace=replace,
                                 chromosomes=list(chromosomes) or None, p1=p1, p2=p2, r2=r2, kb=kb,
                                 phenotypes=None if pheno is None else tuple(c.strip() for c in pheno.split(",")))
        return run_clump(lake, settings, scheduler=scheduler, workers=workers, progress=progress)
    _job(lake_location, start, show, out=out, digits=digits, quiet=quiet)


@main.command()
@_lake_option
@click.option("--variants", metavar="IDS",
              help="comma-separated variant ids: LD of each with every variant within --window-kb "
                   "(plink --ld-snp-list)")
@click.option("--region", metavar="CHR:FROM-TO",
              help="every pair of the variants of this region within --window-kb (plink --chr --from-bp --to-bp)")
@click.option("--window-kb", default=1000.0, show_default=True,
              help="pairs at most this many kb apart, on one chromosome (plink --ld-window-kb; no variant-count "
                   "window: plink's --ld-window 10 is not applied)")
@click.option("--r2-min", default=0.2, show_default=True,
              help="keep the pairs with r² at least this (plink --ld-window-r2)")
@click.option("--inter-chr", is_flag=True,
              help="no window: --variants meet every variant of the release, --region's pairs all "
                   "(plink --r2 inter-chr)")
@_results_options(default_name="ld", release_help="release whose genotypes give LD [default: latest]", exported="pairs")
@_cluster_options
def ld(lake_location: str, variants: str | None, region: str | None, window_kb: float, r2_min: float, inter_chr: bool,
       release: str | None, name: str, replace: bool, out: str | None, digits: int | str | None,
       scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """Pairwise LD of variants, as plink1.9 --r2; a results table in the lake.

    Each pair's estimators, from the unphased genotypes over the samples called at both
    variants: r and r2, the Pearson correlation of allele counts (plink1.9 --r / --r2; r is
    signed for the alt alleles, as plink with --keep-allele-order); r2_haplotype and dprime,
    from the two-locus haplotype frequencies estimated by EM (plink1.9 --r2 dprime, and the r²
    that plink1.9 --clump and biolake clump use; dprime signed as D). LD scores (LDSC) use a
    third: the correlation of mean-imputed standardised genotypes. Pairs with r2 below
    --r2-min, or with a variant monomorphic over those samples, are left out. Columns:
    variant_id, chrom, pos (plink's SNP_A, CHR_A, BP_A), variant_id_b, chrom_b, pos_b, n (the
    samples called at both), r, r2, r2_haplotype, dprime; rows in plink's order. The listed
    variants, or the region's, are held in memory (12 bytes per sample each: 5,000 variants of
    10,000 samples take 600 MB); the others are read a row group at a time.

    \b
    Examples:
      biolake ld --lake /tmp/lake --region 22:1-51000000 --window-kb 10000 --r2-min 0 --name chr22_ld --out ld.tsv
      biolake ld --lake /tmp/lake --region 1:1-249000000 --inter-chr --name chr1_ld_all_pairs
      biolake ld --lake /tmp/lake --r2-min 0 --name proxies \\
        --variants $(biolake sql 'SELECT min(variant_id) FROM variants' --lake /tmp/lake --format csv | tail -n 1)
    """
    from biolake.ld import LdSettings, run_ld

    def show(lake, report) -> None:
        click.echo(f"{report.pairs:,} pairs of {report.variants:,} variant(s) (LD from release {report.release}) → "
                   f"{_stored(lake, report)}", err=True)

    def start(lake, progress):
        settings = LdSettings(name=name, release=release, replace=replace, region=region, window_kb=window_kb,
                              r2_min=r2_min, inter_chr=inter_chr,
                              variants=None if variants is None else tuple(v.strip() for v in variants.split(",")
                                                                           if v.strip()))
        return run_ld(lake, settings, scheduler=scheduler, workers=workers, progress=progress)
    _job(lake_location, start, show, out=out, digits=digits, quiet=quiet)


@main.command()
@_lake_option
@click.option("--window-cm", type=float, metavar="CM",
              help="window: variants within this many centimorgans, on the release's genetic map (ldsc --ld-wind-cm) "
                   "[default: 1 where every variant has a cM position]")
@click.option("--window-kb", type=float, metavar="KB",
              help="window: variants within this many kb (ldsc --ld-wind-kb) [default: 1000 where the release "
                   "has no genetic map]")
@click.option("--maf", "min_maf", type=float, metavar="MAF",
              help="leave out variants with a minor allele frequency at or below MAF: no score, and no share in "
                   "others' (ldsc --l2 --maf); M and M_5_50 count the rest [default: every polymorphic variant]")
@_results_options(default_name="ldscores", release_help="release whose genotypes give LD [default: latest]",
                  exported="LD scores")
@_chrom_option()
@_cluster_options
def ldscores(lake_location: str, window_cm: float | None, window_kb: float | None, min_maf: float | None,
             release: str | None, name: str, replace: bool, out: str | None, digits: int | str | None,
             chromosomes: tuple[str, ...], scheduler: str | None, workers: int | None, quiet: bool) -> None:
    """LD scores of every variant, as ldsc --l2; a results table in the lake for LD score regression.

    A variant's LD score is the sum, over the variants of its chromosome within the window
    (itself included), of the bias-corrected r² − (1 − r²)/(N − 2): r is the Pearson
    correlation of mean-imputed standardised genotypes over all N samples of the release
    (LDSC's estimator; plink1.9 --r2 and clumping use others). Variants LDSC leaves out
    (monomorphic, or every sample heterozygous or missing; with --maf, a MAF at or below
    it) get no score and add nothing to others'. The window is exact, as ldsc --chunk-size 1
    computes it (ldsc's default chunks of 50 widen it).
    cM positions come from the third column of the .bim ingested (0 means unknown).
    Columns: chrom, variant_id, pos, cm, maf, l2 (LDSC's CHR SNP BP CM MAF L2). LDSC's M and
    M_5_50 per chromosome (variants scored; of them with MAF > 5 %) are printed and kept in
    the table's provenance.

    \b
    Examples:
      biolake ldscores --lake /tmp/lake --name ld_scores --out ldscores.tsv.gz
      biolake ldscores --lake /tmp/lake --window-kb 500 --chrom 1 --name ld_scores_500kb
      biolake ldscores --lake /tmp/lake --maf 0.05 --name ld_scores_common
      biolake sql 'SELECT chrom, count(*) AS m, count(*) FILTER (WHERE maf > 0.05) AS m_5_50
                   FROM results.ld_scores GROUP BY chrom ORDER BY chrom' --lake /tmp/lake
    """
    from biolake.ldscores import LdScoreSettings, run_ldscores

    def show(lake, report) -> None:
        common = "" if report.min_maf is None else f" with MAF > {report.min_maf:g}"
        click.echo(f"{report.variants:,} variants{common} scored in a {report.window} window (LD from release "
                   f"{report.release}); M: {sum(report.m.values()):,}, M_5_50: {sum(report.m_5_50.values()):,} "
                   f"over {len(report.m)} chromosome(s) → {_stored(lake, report)}", err=True)

    def start(lake, progress):
        settings = LdScoreSettings(name=name, release=release, replace=replace, chromosomes=list(chromosomes) or None,
                                   window_cm=window_cm, window_kb=window_kb, min_maf=min_maf)
        return run_ldscores(lake, settings, scheduler=scheduler, workers=workers, progress=progress)
    _job(lake_location, start, show, out=out, digits=digits, quiet=quiet)


@main.command()
@_lake_option
@_decorated_by(_sample_options("keep only the participant_id this SQL returns [default: every genotyped participant]"))
# --min's default is stats.kinship.KING_THIRD_DEGREE, written out: the CLI imports no numerics before a command runs
@click.option("--min", "min_kinship", type=float, default=0.0442, show_default=True, metavar="KINSHIP",
              help="keep the pairs whose kinship is at least this (plink2 --king-table-filter; plink2 writes every "
                   "pair by default, 0 keeps every pair not negative); 0.0442 is KING's bound of 3rd-degree relatives")
@click.option("--unrelated", type=float, metavar="CUTOFF",
              help="also write NAME_unrelated (participant_id): a maximal set of participants no pair of whom has "
                   "kinship above CUTOFF, as plink2 --king-cutoff CUTOFF chooses it (0.0884: no 2nd-degree or closer "
                   "pair; 0.177: no 1st-degree)")
@_results_options(default_name="kinship", release_help="release whose genotypes give kinship [default: latest]",
                  exported="pairs")
@_chrom_option("; autosomes only count")
@_decorated_by(_variant_choice_options())
@_cluster_options
def kinship(lake_location: str, samples_sql: str | None, keep_file: str | None, remove_file: str | None,
            min_kinship: float, unrelated: float | None,
            release: str | None, name: str, replace: bool, out: str | None, digits: int | str | None,
            chromosomes: tuple[str, ...], scheduler: str | None, workers: int | None, quiet: bool,
            **variants: Any) -> None:
    """KING-robust kinship of every pair of participants, as plink2 --make-king-table; a
    results table in the lake, and with --unrelated a set of unrelated participants.

    Over the autosomal variants called in both participants of a pair (NSNP), with HETHET the
    variants where both are heterozygous, IBS0 those where they are opposite homozygotes and
    Het_i those where i is heterozygous: kinship = 1/2 - (Het_i + Het_j - 2 HETHET + 4 IBS0) /
    (4 min(Het_i, Het_j)), the between-family estimator plink2 uses for every pair (about 0.5
    for duplicates or twins, 0.25 for parent and child or siblings, 0.125 for 2nd degree,
    0.0625 for 3rd degree). Dosages are hard-called as plink2 does (--hard-call-threshold 0.1):
    the nearest genotype when within 0.1 of it, else missing. Columns: participant_id_1,
    participant_id_2 (the later and the earlier of the release's sample order, as plink2's
    IID1 and IID2), n_variants, hethet, ibs0 (counts: plink2's 'counts' modifier) and kinship,
    in plink2's row order. The pair counts are popcounts of each participant's bit sets of
    calls (HETHET, IBS0) and sums over the few uncalled ones (NSNP, Het_i), summed over the
    genotype blocks on dask; memory is 16 N^2
    bytes for N participants (1.6 GB at 10,000) per worker. --unrelated removes, while a pair is above the cutoff, the partner of
    the first participant with one relative left, else the first with the most (plink2's
    rule); the set, NAME_unrelated, is a table a sample query selects from. Withdrawal
    deletes a participant's pairs and membership from both tables.

    \b
    Examples:
      biolake kinship --lake /tmp/lake --name kinship --unrelated 0.0884 --out kinship.tsv
      biolake gwas --lake /tmp/lake --pheno 25001-2.0 --covar age,sex --name unrelated_gwas \\
                   --samples-sql 'SELECT participant_id FROM results.kinship_unrelated'
      biolake kinship --lake /tmp/lake --samples-sql 'SELECT participant_id FROM covariates WHERE age > 60' \\
                      --min 0.177 --chrom 1 --chrom 2 --name first_degree
      biolake sql 'SELECT count(*) AS pairs, max(kinship) AS closest FROM results.kinship' --lake /tmp/lake
    """
    from biolake.kinship import KinshipSettings, run_kinship

    def show(lake, report) -> None:
        kept = "" if report.unrelated is None else (f"; {report.unrelated:,} unrelated participants → "
                                                     f"{lake.results_uri(report.unrelated_name)}")
        click.echo(f"{report.pairs:,} pairs with kinship ≥ {min_kinship:g} among {report.samples:,} participants "
                   f"over {report.variants:,} autosomal variants (release {report.release}) → "
                   f"{_stored(lake, report)}{kept}", err=True)

    chosen = _variant_choice(variants)

    def start(lake, progress):
        settings = KinshipSettings(name=name, release=release, replace=replace, chromosomes=list(chromosomes) or None,
                                   samples=samples_sql, **_sample_lists(keep_file, remove_file), **chosen,
                                   min_kinship=min_kinship, unrelated=unrelated)
        return run_kinship(lake, settings, scheduler=scheduler, workers=workers, progress=progress)
    _job(lake_location, start, show, out=out, digits=digits, quiet=quiet)


LDSC_INPUTS = (  # what h2 --result and rg (LD score regression) take besides the summary statistics
    click.option("--ldscores", default="ldscores", show_default=True, metavar="NAME",
                 help="the LD scores: a results table of 'biolake ldscores' (ldsc --ref-ld; M is its M_5_50)"),
    click.option("--w-ldscores", metavar="NAME",
                 help="LD scores of the regression weights (ldsc --w-ld) [default: the --ldscores]"),
    click.option("--n", "sample_size", type=float, metavar="N",
                 help="the GWAS sample size, for summary statistics without an n column (imported ones may lack it)"),
)


@main.command()
@_lake_option
@click.option("--result", metavar="NAME",
              help="LD score regression of these summary statistics: a gwas or meta results table, or one brought "
                   "in with import-sumstats (instead of --pheno-sql/--pheno)")
@click.option("--phenotype", "phenotypes", multiple=True, metavar="P",
              help="--result: only this phenotype of the results (repeatable) [default: every one]")
@click.option("--intercept-h2", type=float, metavar="X",
              help="--result: fix the intercept at X (ldsc --intercept-h2) [default: free, by LDSC's two-step "
                   "estimator]")
@_decorated_by(list(LDSC_INPUTS))
@click.option("--pheno-sql", metavar="SQL",
              help="from genotypes: phenotypes, SQL returning participant_id, then one column each")
@click.option("--pheno", metavar="COLS", help="from genotypes: comma-separated columns of idps (instead of --pheno-sql)")
@_analysis_options(default_name="h2")
@click.option("--method", type=click.Choice(["he", "reml"]), default="he", show_default=True,
              help="from genotypes: he, Haseman-Elston regression, every phenotype at once (GEMMA -vc 1); reml, "
                   "AI-REML, one fit per phenotype (GEMMA -lmm's null-model pve)")
@click.option("--maf", "min_maf", default=0.01, show_default=True, metavar="FREQ",
              help="from genotypes: the relationship matrix takes only variants whose minor allele frequency over "
                   "the analysis samples is at least FREQ (GEMMA -maf)")
@click.option("--max-missing", default=0.05, show_default=True, metavar="SHARE",
              help="from genotypes: the relationship matrix takes only variants with at most this share of missing "
                   "calls (GEMMA -miss)")
@click.option("--trace", type=click.Choice(["auto", "exact", "randomized"]), default="auto", show_default=True,
              help="from genotypes, --method he: exact, K held as an N × N matrix (8 N² bytes); randomized, K never "
                   "formed and tr((PKP)²) estimated from --probes random vectors (method rhe, as RHE-mc); auto, "
                   "exact up to 20,000 samples (3.2 GB), randomized above")
@click.option("--probes", default=100, show_default=True, metavar="B",
              help="from genotypes, --trace randomized: Gaussian probe vectors of the trace estimate (at least 2)")
@click.option("--seed", default=1, show_default=True, help="from genotypes, --trace randomized: seed of the probes")
@_decorated_by(_variant_choice_options())
def h2(result: str | None, phenotypes: tuple[str, ...], intercept_h2: float | None, ldscores: str,
       w_ldscores: str | None, sample_size: float | None, pheno_sql: str | None, pheno: str | None, method: str,
       min_maf: float, max_missing: float, trace: str, probes: int, seed: int, **shared: Any) -> None:
    """SNP heritability of every phenotype, from summary statistics by LD score regression
    (--result, as ldsc --h2) or from the lake's genotypes (--pheno-sql/--pheno, as GEMMA); a
    results table in the lake either way.

    From summary statistics (--result): munged as LDSC's munge_sumstats.py with its defaults (z =
    beta/se; non-SNPs and strand-ambiguous A/T, C/G variants dropped; MAF > 1 % where
    alt_freq is known; N per variant, at least its 90th percentile / 1.5), joined with the LD
    scores on variant_id and regressed in their genome order: LDSC's weights, its two-step
    estimator for a free intercept (ldsc --two-step 30) or --intercept-h2, standard errors
    by a 200-block jackknife. Equal to ldsc --h2 FILE.sumstats --ref-ld L --w-ld L given the
    same scores. Columns: phenotype, method (ldsc), h2, h2_se, intercept, intercept_se, ratio,
    ratio_se, mean_chisq, lambda_gc, n_variants, n (the mean N).

    From genotypes (--pheno-sql or --pheno, with --covar and --samples-sql as gwas takes them):
    one genetic relationship matrix over the analysis samples serves every phenotype: GEMMA's
    standardised -gk 2, K = ZZ'/p, Z the genotypes of the variants kept (--maf,
    --max-missing) with missing calls set to the mean, centred and scaled to variance 1.
    Each phenotype uses its own non-missing samples (a sub-matrix of K), covariates
    projected out as the GWAS does (intercept included). --method he: Haseman-Elston
    regression as GEMMA -vc 1 computes it, h2 its pve on the phenotype after covariates;
    --method reml: average-information REML with the covariates as fixed effects, h2 and
    its SE as GEMMA -lmm states them (pve in the null model). K is exact and held in
    memory: 8 N² bytes for N samples. Beyond 20,000 samples (or with --trace randomized)
    HE never forms K (method rhe): two passes over the genotypes apply it to vectors, exact
    but for tr((PKP)²), estimated from --probes Gaussian vectors (seed --seed); the SE adds
    their Monte-Carlo error. Columns: phenotype, method (he, rhe or reml), h2, h2_se,
    n_variants, n (samples); the variance components (GEMMA's sigma2) and the trace
    estimator (probes, seed) are in the table's provenance.

    \b
    Examples:
      biolake ldscores --lake /tmp/lake --name ldscores
      biolake gwas --lake /tmp/lake --pheno 25019-2.0,25020-2.0 --covar age,sex --name hippocampus
      biolake h2 --lake /tmp/lake --result hippocampus --name hippocampus_h2 --out h2.tsv
      biolake h2 --lake /tmp/lake --result hippocampus --phenotype 25019-2.0 --intercept-h2 1 --name h2_fixed
      biolake h2 --lake /tmp/lake --pheno-sql 'SELECT * EXCLUDE (release) FROM idps' \\
                 --covar age,sex,site --name idps_h2 --out idps_h2.tsv
      biolake h2 --lake /tmp/lake --pheno 25001-2.0,25002-2.0 --covar age,sex,site \\
                 --method reml --name h2_reml
      biolake h2 --lake /tmp/lake --pheno 25001-2.0,25002-2.0 --covar age,sex,site \\
                 --trace randomized --probes 50 --seed 7 --name h2_rhe
    """
    if result is None:
        _refuse_given(["phenotypes", "intercept_h2", "ldscores", "w_ldscores", "sample_size"],
                      "with --result (LD score regression); from genotypes give --pheno-sql or --pheno")
        _h2_from_genotypes(pheno_sql, pheno, dict(method=method, min_maf=min_maf, max_missing=max_missing,
                                                  trace=trace, probes=probes, seed=seed, **_variant_choice(shared)),
                           **shared)
        return
    _refuse_given(["pheno_sql", "pheno", "method", "min_maf", "max_missing", "trace", "probes", "seed", "covar_sql",
                   "covar", "samples_sql", "keep_file", "remove_file", "transform", "standardize", "release",
                   "chromosomes", "scheduler", "workers", "regions", "extract_file", "exclude_file"],
                  "from genotypes (--pheno-sql/--pheno); --result estimates h² from summary statistics")
    from biolake.ldsc import H2Settings, run_h2

    def show(lake, report) -> None:
        click.echo(f"h² of {report.phenotypes:,} phenotype(s) by LD score regression on up to {report.variants:,} "
                   f"variants → {_stored(lake, report)}", err=True)
        _warn_if_retracted(lake, (result,))

    settings = H2Settings(name=shared["name"], replace=shared["replace"], result=result,
                          phenotypes=phenotypes or None, intercept_h2=intercept_h2, ldscores=ldscores,
                          w_ldscores=w_ldscores, n=sample_size)
    _job(shared["lake_location"], lambda lake, progress: run_h2(lake, settings), show, out=shared["out"],
         digits=shared["digits"], quiet=True)


def _refuse_given(parameters: list[str], scope: str) -> None:
    """A usage error naming the first of ``parameters`` given on the command line: it applies only ``scope``."""
    context = click.get_current_context()
    for parameter in context.command.params:
        if parameter.name in parameters and \
                context.get_parameter_source(parameter.name) is click.core.ParameterSource.COMMANDLINE:
            raise click.UsageError(f"{parameter.opts[0]} applies only {scope}")


def _h2_from_genotypes(pheno_sql: str | None, pheno: str | None, options: dict[str, Any], **shared: Any) -> None:
    """biolake h2 --pheno-sql/--pheno: HE or REML from the lake's genotypes (:mod:`biolake.heritability`), with the
    estimator's ``options`` (method, variant filters, trace)."""
    from biolake.heritability import HeritabilitySettings, run_heritability

    def show(lake, report) -> None:
        _echo_design(report)
        for phenotype, (value, se) in list(report.h2.items())[:20]:
            click.echo(f"{phenotype}: h2 = {value:.3f} (SE {se:.3f})", err=True)
        if len(report.h2) > 20:
            click.echo(f"… {len(report.h2) - 20} more phenotypes (all are in the results table)", err=True)
        click.echo(f"{report.method} over {report.variants:,} variants ({report.estimator}) → "
                   f"{_stored(lake, report)}", err=True)

    phenotypes = _one_of(pheno_sql, pheno, "--pheno-sql", "--pheno")
    _analysis(run_heritability, HeritabilitySettings, dict(phenotypes=phenotypes, **options), show, **shared)


class _InOrder(click.Command):
    """A command that keeps its arguments in the order given, so an option may refer to the one before it
    (rg: each --phenotype belongs to the --result before it)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["biolake.args"] = list(args)
        return super().parse_args(ctx, args)


def _traits_in_order(args: Sequence[str]) -> tuple[tuple[str, tuple[str, ...] | None], ...]:
    """Each --result with the --phenotype options that follow it (None: all its phenotypes)."""
    sides: list[tuple[str, list[str]]] = []
    words = iter(args)
    for word in words:
        flag, _, value = word.partition("=")
        if flag in ("--result", "--phenotype"):
            value = value or next(words, "")
            if flag == "--result":
                sides.append((value, []))
            elif not sides:
                raise click.UsageError("--phenotype names a phenotype of the --result before it; give --result first")
            else:
                sides[-1][1].append(value)
    return tuple((result, tuple(chosen) or None) for result, chosen in sides)


@main.command(cls=_InOrder)
@_lake_option
@click.option("--result", "results", multiple=True, required=True, metavar="NAME",
              help="summary statistics (as for h2): once, every pair within it; twice, each trait of the first "
                   "against each of the second")
@click.option("--phenotype", "phenotypes", multiple=True, metavar="P",
              help="only this phenotype of the --result before it (repeatable) [default: every one]")
@_decorated_by(list(LDSC_INPUTS))
@click.option("--name", metavar="NAME", required=True, help=f"results table: {RESULTS_NAME_HELP}")
@_decorated_by([REPLACE_OPTION, click.option("--out", type=click.Path(dir_okay=False),
                                             help="also export the results: .tsv[.gz], .csv[.gz] or .parquet"),
                DIGITS_OPTION])
def rg(lake_location: str, results: tuple[str, ...], phenotypes: tuple[str, ...], ldscores: str,
       w_ldscores: str | None, sample_size: float | None, name: str, replace: bool, out: str | None,
       digits: int | str | None) -> None:
    """Genetic correlation of pairs of traits by cross-trait LD score regression, as ldsc --rg.

    Which pairs: with one --result, every pair of its phenotypes; with two, each phenotype of
    the first against each of the second (all IDPs of a run against a disorder's summary
    statistics). A --phenotype picks from the --result before it; none takes them all.
    Each trait is munged as for h2; the second trait's z is put on the first's alleles (a
    swap or the other strand flips it, other alleles drop the variant). Per pair, on the
    variants both share with the LD scores: each trait's h² and the genetic covariance
    (intercepts free, each fitted in one step as ldsc --rg does), rg = gencov / sqrt(h2_1 h2_2) and its
    block-jackknife SE (NaN where an h² is not positive, as LDSC's NA). Equal to ldsc --rg
    A.sumstats,B.sumstats --ref-ld L --w-ld L given the same scores. Columns: result_1,
    phenotype_1, result_2, phenotype_2, rg, rg_se, z, p, gencov, gencov_se, gencov_int,
    gencov_int_se, h2_1, h2_se_1, intercept_1, intercept_se_1, the same of trait 2, n_variants.

    \b
    Examples (IDPs of a run against published summary statistics; every pair of three IDPs):
      biolake ldscores --lake /tmp/lake --name ldscores
      biolake import-sumstats height_gwas.tsv.gz --lake /tmp/lake --name height_published
      biolake rg --lake /tmp/lake --result idps --phenotype 25019-2.0 --phenotype 25020-2.0 \\
                 --result height_published --name hippocampus_height_rg
      biolake rg --lake /tmp/lake --result idps --phenotype 25019-2.0 --phenotype 25020-2.0 \\
                 --phenotype 25021-2.0 --name hippocampus_rg --out rg.tsv
    """
    from biolake.ldsc import RgSettings, run_rg

    def show(lake, report) -> None:
        click.echo(f"rg of {report.pairs:,} pair(s) of traits by LD score regression → {_stored(lake, report)}",
                   err=True)
        _warn_if_retracted(lake, results)

    traits = _traits_in_order(click.get_current_context().meta["biolake.args"])
    settings = RgSettings(name=name, replace=replace, traits=traits, ldscores=ldscores, w_ldscores=w_ldscores,
                          n=sample_size)
    _job(lake_location, lambda lake, progress: run_rg(lake, settings), show, out=out, digits=digits, quiet=True)


@main.command()
@_lake_option
@click.option("--weights", required=True, type=click.Path(dir_okay=False),
              help="summary statistics: variant_id|ID|SNP, effect_allele|A1, beta|BETA, p|P (or LOG10P); "
                   "TSV or CSV, gzipped or not (GWAS-SSF, plink2 .glm, REGENIE and biolake exports all work)")
@click.option("--p-thresholds", default="5e-8,1e-5,1e-3,0.05,1", show_default=True, metavar="LIST",
              help="one score per threshold: variants with p ≤ it, weighted by beta")
@click.option("--clump", "clumped", is_flag=True,
              help="clumping + thresholding: LD-clump the weights against the release's genotypes first and score "
                   "only the index variants (plink1.9 --clump-p1 1 --clump-p2 1, as PRSice-2)")
@click.option("--clump-r2", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="with --clump: a weight in LD above this with a stronger one is left out (plink --clump-r2)")
@click.option("--clump-kb", default=250.0, show_default=True, type=click.FloatRange(min=0.001),
              help="with --clump: the LD window, in kb either side (plink --clump-kb)")
@click.option("--score-mean", is_flag=True,
              help="also each score's average, plink2 --score's default (sum over twice the variants it weighs): "
                   "columns prs_avg_p…")
@_results_options(default_name="prs", release_help="release to score [default: latest]", exported="scores")
@_cluster_options
def prs(lake_location: str, weights: str, p_thresholds: str, clumped: bool, clump_r2: float, clump_kb: float,
        score_mean: bool, release: str | None, name: str, out: str | None, digits: int | str | None,
        scheduler: str | None, workers: int | None, replace: bool, quiet: bool) -> None:
    """Polygenic scores of every genotyped participant, one column per p-value threshold.

    Per participant, the sum over weighted variants of effect-allele dosage × beta, as
    plink2 --score (missing calls count as the mean dosage; a weight on the REF allele
    counts 2 − alt dosage). Weights are matched by variant id; those the release lacks, or
    on an allele the variant does not have, are counted and left out. With --clump, the
    rest are LD-clumped by their p against the release's genotypes (r² as plink1.9
    --clump: haplotype frequencies by EM over all its samples) and only each clump's index
    variant is scored: clumping + thresholding, so one locus no longer dominates the score.
    The scores become LAKE/results/NAME, queryable as results.NAME (join it with idps,
    covariates, …).

    \b
    Examples:
      biolake prs --lake /tmp/lake --weights height_gwas.tsv.gz --name prs_height
      biolake sql 'SELECT corr(p.prs_p1e_05, i."25010-2.0") FROM results.prs_height p
                   JOIN idps i USING (participant_id)' --lake /tmp/lake
      biolake prs --lake /tmp/lake --weights height_gwas.tsv.gz --clump --score-mean --name prs_height_ct
    """
    import dataclasses

    from biolake.prs import PRS_CLUMP, run_prs

    def run(lake, progress):
        clump = dataclasses.replace(PRS_CLUMP, r2=clump_r2, kb=clump_kb) if clumped else None
        return run_prs(lake, name=name, weights=weights, thresholds=thresholds, release=release, clump=clump,
                       score_mean=score_mean, scheduler=scheduler, workers=workers, progress=progress,
                       replace=replace)

    def show(lake, report) -> None:
        used = ", ".join(f"{column}: {count:,}" for column, count in report.variants.items())
        clumping = f", {report.clumped_out:,} clumped away (in LD with a stronger one)" if clumped else ""
        click.echo(f"{report.participants:,} participants scored; variants per score: {used}; "
                   f"{report.unmatched:,} weights not in the release, {report.allele_mismatch:,} on neither allele"
                   f"{clumping} → {_stored(lake, report)}", err=True)

    try:
        thresholds = [float(t) for t in p_thresholds.split(",") if t.strip()]
    except ValueError:
        raise click.BadParameter(f"expected numbers separated by commas, got {p_thresholds!r}",
                                 param_hint="--p-thresholds") from None
    _job(lake_location, run, show, out=out, digits=digits, quiet=quiet)


@main.command()
@_lake_option
@click.option("--result", "name", required=True, metavar="NAME", help="a results table of the lake")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the file to write")
@click.option("--format", "layout", type=click.Choice(["table", "gwas-ssf", "regenie", "plink2"]), default="table",
              show_default=True,
              help="table: every column, format from --out's extension (.tsv[.gz], .csv[.gz], .parquet); "
                   "gwas-ssf: the GWAS Catalog standard (with OUT-meta.yaml); regenie / plink2: their GWAS layouts")
@click.option("--phenotype", help="the phenotype to write (gwas-ssf, regenie, plink2 hold one)")
@DIGITS_OPTION
def export(lake_location: str, name: str, out: str, layout: str, phenotype: str | None,
           digits: int | str | None) -> None:
    """Write a results table for other tools: everything, or one phenotype in a standard layout.

    Text files print 7 significant digits (--digits full: every digit). GWAS-SSF needs beta,
    standard error and p on every row: tests that could not run are left out, and counted by
    reason in the meta YAML (untested_rows_omitted, untested_rows_by_reason).

    \b
    Examples:
      biolake export --lake /tmp/lake --result idps --out idps.parquet
      biolake export --lake /tmp/lake --result idps --out idps.tsv.gz --digits full
      biolake export --lake /tmp/lake --result idps --phenotype 25010-2.0 --format gwas-ssf \\
                     --out 25010.tsv.gz      # and 25010.tsv.gz-meta.yaml
    """
    from biolake.lake.errors import BiolakeError
    from biolake.queries.output import export_dialect, export_results

    lake = _open_lake(lake_location)
    _check_out_of_lake(lake, out)
    if layout == "table":
        _check_out(out)
        rows = export_results(lake, name, out, **_digits(digits))
    else:
        if layout == "gwas-ssf" and not out.endswith((".tsv", ".tsv.gz")):
            raise click.BadParameter("GWAS-SSF files are .tsv or .tsv.gz", param_hint="--out")
        try:
            rows = export_dialect(lake, name, out, dialect=layout, phenotype=phenotype, **_digits(digits))
        except ValueError as exc:
            raise BiolakeError(str(exc)) from None
    click.echo(f"{rows:,} rows → {out}", err=True)
    _warn_if_retracted(lake, [name])


@main.command("import-sumstats")
@click.argument("file", type=click.Path(dir_okay=False))
@_lake_option
@click.option("--name", required=True, help=f"results table to create: {RESULTS_NAME_HELP}")
@REPLACE_OPTION
@click.option("--phenotype", help="phenotype name when the file has no phenotype column [default: the file's stem]")
def import_sumstats_command(file: str, lake_location: str, name: str, replace: bool, phenotype: str | None) -> None:
    """Bring published summary statistics into the lake as a results table.

    Reads GWAS-SSF, PLINK 2 .glm.*, REGENIE and biolake exports (TSV, CSV or space-separated,
    gzipped or not), finding columns by the names those tools use. The effect allele becomes
    alt and beta is per copy of it. Then SQL joins them with our results (results.NAME),
    biolake meta combines them with our cohorts and biolake prs scores with them.

    \b
    Example:
      biolake import-sumstats 29403010-GCST005838.tsv.gz --lake /tmp/lake --name enigma_hippocampus
      biolake sql "SELECT o.variant_id, o.p, e.p AS published_p FROM results.idps o
                   JOIN results.enigma_hippocampus e USING (variant_id) WHERE o.p < 5e-8" --lake /tmp/lake
    """
    from biolake.ingest.sumstats import import_sumstats
    from biolake.index import index_after_job

    lake = _open_lake(lake_location)
    rows = import_sumstats(lake, file, name=name, phenotype=phenotype, replace=replace)
    index_after_job(lake, name, version=lake.results(name).version())
    click.echo(f"{rows:,} rows → results.{name}", err=True)


def _result_option(function):
    return click.option("--result", "name", required=True, metavar="NAME",
                        help="a results table of the lake (gwas, ewas, gxe, epistasis or meta)")(function)


@main.command()
@_lake_option
@_result_option
@click.option("--threshold", default=5e-8, show_default=True, help="p-value a hit must pass")
@click.option("--family", type=click.Choice(["count", "meff"]), is_flag=False, flag_value="count",
              help="divide the threshold by the size of the run's phenotype family: count, the number of its "
                   "phenotypes (Bonferroni over the family, as BIG40; --family alone), or meff, their effective "
                   "number (Li & Ji's, from their correlations, kept with the run)")
@click.option("--fdr", type=float, metavar="Q",
              help="instead of a p threshold: Benjamini-Hochberg q-value ≤ Q within each phenotype (adds column q)")
@click.option("--window", default=500_000, show_default=True, type=click.IntRange(min=0), metavar="BP",
              help="a locus spans ±BP around its lead (plink --clump-kb BP/1000); 0: one lead per position")
@click.option("--r2", default=0.1, show_default=True, type=click.FloatRange(0, 1, max_open=True),
              help="LD clumping: a hit in LD above this with a stronger one joins its locus (plink --clump-r2)")
@click.option("--ld-release", metavar="NAME",
              help="release whose genotypes give LD [default: the results' own; imported statistics have none]")
@click.option("--out", type=click.Path(dir_okay=False), help="write the hits as .tsv/.csv/.parquet instead of a table")
@DIGITS_OPTION
def hits(lake_location: str, name: str, threshold: float, family: str | None, fdr: float | None, window: int, r2: float,
         ld_release: str | None, out: str | None, digits: int | str | None) -> None:
    """Lead hits per phenotype: hits past the threshold, one lead per locus, clumped by LD.

    In order of p, each hit not yet in a locus leads one, holding every other hit within
    --window of it in LD above --r2 (plink1.9 --clump with --clump-p1 and --clump-p2 at the
    threshold; r² from the genotypes of the results' release, or --ld-release). Where the
    lake holds no genotypes for the hits (EWAS CpGs, imported statistics without
    --ld-release, hits that are not variants of the release), they are clumped by distance
    instead, one lead per ±--window, and the command says so. Columns: the hit's, then
    locus_hits (hits the lead stands for) and members (the others, in genome order).

    SNP × SNP pairs (biolake epistasis) are hits as pairs: a pair leads a locus holding every
    other hit pair whose two variants each lie within ±--window of the lead's two (either way
    round); the pair's variant a (id, chrom, pos) comes before the partner's, and members
    name pairs "A × B".

    \b
    Examples:
      biolake hits --lake /tmp/lake --result idps
      biolake hits --lake /tmp/lake --result idps --family --out leads.tsv
      biolake hits --lake /tmp/lake --result idps --family meff
      biolake hits --lake /tmp/lake --result idps --r2 0.5 --window 250000
      biolake hits --lake /tmp/lake --result stress_ewas --fdr 0.05
    """
    from biolake.report import clumping_of, lead_hits
    from biolake.queries.output import write_table

    lake = _open_lake(lake_location)
    _check_out_of_lake(lake, out)
    table = lead_hits(lake, name, threshold=threshold, family=family, fdr=fdr, window=window, r2=r2,
                      ld_release=ld_release)
    output_format = "table" if out is None else {".csv": "csv", ".parquet": "parquet"}.get(Path(out).suffix, "tsv")
    write_table(table, output_format=output_format, out=out, all_rows="--out FILE.tsv", **_digits(digits))
    click.echo(f"{table.num_rows:,} lead hits ({clumping_of(table)})", err=True)
    _warn_if_retracted(lake, [name])


@main.command()
@_lake_option
@_result_option
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="folder for the PNGs")
@click.option("--phenotype", "phenotypes", multiple=True, help="only these phenotypes (repeatable) [default: the 20 strongest]")
def plot(lake_location: str, name: str, out_dir: str, phenotypes: tuple[str, ...]) -> None:
    """Manhattan and QQ plots (PNG) per phenotype, and a combined Manhattan across all of them.

    Millions of points stay quick and faithful: every point above −log10 p = 2 is drawn,
    the null cloud below is thinned to one point per screen cell. Of a cca run: each pair's
    correlation in sample beside out of sample, and each pair's largest weights (open where
    the bootstrap refits do not keep their sign).

    \b
    Example:
      biolake plot --lake /tmp/lake --result idps --out plots/
    """
    from biolake.report import plot_results

    lake = _open_lake(lake_location)
    _check_out_of_lake(lake, out_dir)
    written = plot_results(lake, name, Path(out_dir), phenotypes=list(phenotypes) or None)
    click.echo(f"wrote {len(written)} plots to {out_dir}", err=True)
    _warn_if_retracted(lake, [name])


@main.command()
@_lake_option
@_result_option
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the HTML file to write")
def report(lake_location: str, name: str, out: str) -> None:
    """One self-contained HTML page for a run: provenance, λGC per phenotype, lead hits, plots.

    Of an h2 table (biolake h2): h² and its SE per phenotype, with LD score
    regression's intercept, ratio, mean χ² and λGC; of an rg table (biolake
    rg): the matrix of rg ± SE, coloured by rg, and every pair; of a cca table
    (biolake cca): each pair's correlations in and out of sample, the first pair's
    largest weights, the plots.

    \b
    Example:
      biolake report --lake /tmp/lake --result idps --out idps.html
    """
    from biolake.report import write_report

    lake = _open_lake(lake_location)
    _check_out_of_lake(lake, out)
    click.echo(f"wrote {write_report(lake, name, Path(out))}", err=True)
    _warn_if_retracted(lake, [name])


def _warn_if_retracted(lake, names: Sequence[str]) -> None:
    """One ``warning:`` line per results table read that was computed from a release retracted since."""
    for name in names:
        retraction = lake.results_retraction(name)
        if retraction is not None:
            click.echo(f"warning: {retraction.of_results(name)}", err=True)


def _check_out(out: str | None, lake=None) -> None:
    """An --out results file: a known format, and (given the lake) outside it."""
    if out is None:
        return
    from biolake.queries.output import RESULT_FORMATS

    if not out.endswith(RESULT_FORMATS):
        raise click.BadParameter(f"use one of {', '.join(RESULT_FORMATS)}", param_hint="--out")
    _check_out_of_lake(lake, out)


def _check_out_of_lake(lake, out: str | None) -> None:
    """Refuse an output path inside the lake: the lake's files are written by biolake alone."""
    if out is None or lake is None or lake.location.remote:
        return
    if Path(os.path.realpath(out)).is_relative_to(os.path.realpath(lake.location.root)):
        raise click.BadParameter(f"{out} is inside the lake {lake.location.root}; write outputs elsewhere",
                                 param_hint="--out")


REMOVED_BECAUSE = {"--geno": "--geno: {} variants removed due to missing genotype data.",
                   "--hwe": "--hwe: {} variants removed due to Hardy-Weinberg exact test.",
                   "--maf/--mac": "{} variants removed due to allele frequency threshold(s) (--maf/--mac).",
                   "--min-info": "--min-info: {} variants removed due to MaCH r² (imputation quality)."}


def _echo_design(report) -> None:
    """Who was analysed, with which covariates, and who was left out and why; then the variants each
    quality-control filter removed, in the words of plink2's log."""
    click.echo(f"{report.samples:,} samples, covariates: {', '.join(report.covariates)}", err=True)
    if report.dropped != "nobody dropped":
        click.echo(report.dropped, err=True)
    for name, count in getattr(report, "removed", {}).items():
        click.echo(REMOVED_BECAUSE[name].format(f"{count:,}"), err=True)


def _penalty(text: str) -> tuple[float, float]:
    """--penalty SX,SY (or one S for both) as numbers."""
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise click.BadParameter(f"{text!r}: SX,SY, two numbers in (0, 1]", param_hint="--penalty") from None
    if len(values) not in (1, 2):
        raise click.BadParameter(f"{text!r}: SX,SY, two numbers in (0, 1]", param_hint="--penalty")
    return (values[0], values[-1])


def _analysis(run: Callable, settings: type, options: dict[str, Any], show: Callable[[Any, Any], None], *,
              lake_location: str, covar_sql: str | None, covar: str | None, samples_sql: str | None,
              keep_file: str | None, remove_file: str | None, transform: str | None, standardize: bool,
              release: str | None, name: str, replace: bool, out: str | None, digits: int | str | None,
              chromosomes: tuple[str, ...], scheduler: str | None, workers: int | None, quiet: bool,
              split_by: str | None = None, covariates_optional: bool = False) -> None:
    """The body of an association command (gwas, gxe, ewas): the shared options (:func:`_analysis_options`) and
    the job's own ``options`` make its ``settings`` (a :class:`biolake.frame.JobRequest`), which ``run`` runs;
    ``split_by``: --out writes a file per value of that column; ``covariates_optional``: without --covar-sql and
    --covar, the intercept alone."""
    covariates = ([] if covariates_optional and covar_sql is None and covar is None
                  else _one_of(covar_sql, covar, "--covar-sql", "--covar"))

    def start(lake, progress):
        request = settings(name=name, covariates=covariates, samples=samples_sql, release=release,
                           chromosomes=list(chromosomes) or None, replace=replace, transform=transform,
                           standardize=standardize, **_sample_lists(keep_file, remove_file), **options)
        return run(lake, request, scheduler=scheduler, workers=workers, progress=progress)
    _job(lake_location, start, show, out=out, digits=digits, quiet=quiet, split_by=split_by)


def _job(lake_location: str, run: Callable[[Any, Progress], Any], show: Callable[[Any, Any], None], *,
         out: str | None, digits: int | str | None, quiet: bool, split_by: str | None = None) -> None:
    """The body every job command shares: open the lake, refuse a bad --out, ``run`` the job under progress
    bars (each step a fault point of the crash tests), ``show`` what it found, export it to --out, and write
    its log (:mod:`biolake.joblog`) beside the results table and beside --out."""
    from biolake.joblog import JobLog, log_beside
    from biolake.lake.errors import BiolakeError
    from biolake.lake.faults import with_hold_points
    from biolake.progress import progress_bars

    log = JobLog.of_context(click.get_current_context())
    lake = _open_lake(lake_location)
    _check_out(out, lake)
    with warnings.catch_warnings():   # the group's display of warnings, each also kept for the log
        display = warnings.showwarning

        def keep(message, category, *where) -> None:
            if issubclass(category, UserWarning):
                log.warnings.append(str(message))
            display(message, category, *where)
        warnings.showwarning = keep
        try:
            with progress_bars(quiet=quiet) as progress:
                report = run(lake, with_hold_points(log.timed(progress)))
        except BiolakeError as exc:   # a job refused or stopped leaves its log beside --out, as plink2's
            if out is not None:
                log_beside(out).write_text(log.text(shown=f"Error: {exc}", results="none (the job stopped)"))
            raise
        show(lake, report)
        exported = _export(lake, report.name, out, digits, split_by)
    shown = io.StringIO()
    with contextlib.redirect_stderr(shown):   # what the job printed, again, as plain text for the log
        show(lake, report)
    text = log.text(shown=shown.getvalue(), results=_stored(lake, report), exported=exported,
                    release=lake.results_info(report.name).release)
    lake.write_job_log(report.name, report.version, text)
    if out is not None:
        log_beside(out).write_text(text)
        click.echo(f"log written to {log_beside(out)}", err=True)


def _stored(lake, report) -> str:
    """Where a job's report says its results went: the table's location and committed version."""
    return f"{lake.results_uri(report.name)} (version {report.version})"


def _export(lake, name: str, out: str | None, digits: int | str | None, split_by: str | None = None) -> str | None:
    """Export the results ``name`` to ``out``, if given; returns what was written (None: nothing)."""
    if out is None:
        return None
    from biolake.queries.output import export_results, split_path

    export_results(lake, name, out, **_digits(digits), split_by=split_by)
    written = split_path(out, split_by.upper()) if split_by else out
    click.echo(f"exported to {written}", err=True)
    return written


def _one_of(sql: str | None, columns: str | None, sql_flag: str, columns_flag: str) -> str | list[str]:
    if (sql is None) == (columns is None):
        raise click.UsageError(f"give exactly one of {sql_flag} and {columns_flag}")
    return sql if sql is not None else [c.strip() for c in columns.split(",") if c.strip()]


def _print_summary(summary) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("phenotype", "tests", "p < 5e-8", "top variant", "top -log10 p", "λGC")
    ranked = sorted(range(len(summary.phenotypes)), key=lambda j: -summary.top_log10p[j])
    for j, lambda_gc in zip(ranked[:20], summary.lambda_gc()[ranked[:20]]):
        table.add_row(summary.phenotypes[j], f"{summary.tests[j]:,}", f"{summary.hits[j]:,}",
                      summary.top_variant[j] or "", f"{summary.top_log10p[j]:.1f}", f"{lambda_gc:.3f}")
    Console(stderr=True).print(table)
    if len(ranked) > 20:
        click.echo(f"… {len(ranked) - 20} more phenotypes (all are in the results table)", err=True)


@main.command()
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--samples", default=2000, show_default=True, help="participants")
@click.option("--variants", default=20000, show_default=True, help="variants over chromosomes 1-22")
@click.option("--idps", default=50, show_default=True, help="imaging-derived phenotypes")
@click.option("--cpgs", default=5000, show_default=True, help="methylation CpGs")
@click.option("--seed", default=1, show_default=True, help="random seed (same seed, same bytes)")
@click.option("--missing-calls", default=0.01, show_default=True, help="share of genotype calls left missing")
@click.option("--missing-idps", default=0.02, show_default=True,
              help="share of imaged participants' IDP cells left empty, each IDP its own (0: IDPs missing together)")
@click.option("--related", default=0.3, show_default=True,
              help="share of participants in families (sibling pairs, parent-offspring trios, cousins; 0: none)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def synth(out: str, samples: int, variants: int, idps: int, cpgs: int, seed: int, missing_calls: float,
          missing_idps: float, related: float, quiet: bool) -> None:
    """Write a synthetic biobank release with planted effects into OUT.

    The files are in the formats biobanks ship: PLINK .bed/.bim/.fam, a UK
    Biobank style IDP CSV and data dictionary, a covariates CSV, a methylation
    beta matrix with probe annotation, truth.json (the planted effects, each
    IDP's SNP heritability and the genetic correlations) and release.yaml (the
    manifest 'biolake ingest OUT' reads). IDPs carry polygenic backgrounds with
    h² from 0.05 to 0.6 (a fifth of them none); disorder.tsv holds the GWAS
    summary statistics (GWAS-SSF) of a synthetic disorder genetically
    correlated with some IDPs, for 'biolake import-sumstats'. About --related
    of the participants are in families (sibling pairs, parent-offspring
    trios, a parent with his child and his sibling's child): children inherit
    a recombined haplotype of each parent, a family attends one imaging site,
    and truth.json lists every related pair with its pedigree kinship (the
    .fam names no parents, as a biobank's: 'biolake kinship' finds them).
    A region's variants act together on a pattern of IDPs of one kind, each
    too weakly for a GWAS ('biolake cca' finds it; truth.json's
    multivariate), and a null region on another chromosome acts on none.

    \b
    Example:
      biolake synth /tmp/r --samples 2000 --variants 20000 --idps 50 --cpgs 5000 --seed 1
    """
    from biolake.progress import progress_bars
    from biolake.synth import write_synthetic_release

    with progress_bars(quiet=quiet) as progress:
        try:
            summary = write_synthetic_release(out, samples=samples, variants=variants, idps=idps,
                                              cpgs=cpgs, seed=seed, missing_calls=missing_calls,
                                              missing_idps=missing_idps, related=related,
                                              progress=progress)
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    click.echo(f"wrote synthetic release to {summary.out}")


@main.command()
@_lake_option
@click.option("--host", default="127.0.0.1", show_default=True,
              help="address to listen on (127.0.0.1: this machine only; 0.0.0.0: everyone who can reach it)")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535), help="port")
@click.option("--sql-timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="seconds a query of the SQL console may run")
@click.option("--sql-console/--no-sql-console", default=None,
              help="the SQL console, which can read participant-level tables [default: on for 127.0.0.1, "
                   "off for any other --host]")
def serve(lake_location: str, host: str, port: int, sql_timeout: float, sql_console: bool | None) -> None:
    """Browse the lake's results in a web browser (PheWeb for the lake).

    \b
    Pages:
      /                      every run (GWAS, EWAS, GxE, meta-analysis) with its scans
      /phenotype?run=&phenotype=   Manhattan and QQ plots (zoom, hover), λGC, top loci
      /variant/ID            PheWAS: the variant in every phenotype of every run, by IDP category
      /region?run=&phenotype=&chrom=&start=&end=   p-values along a window
      /sql                   the read-only SQL console of 'biolake sql', CSV download
                             (on by default only on loopback: 127.0.0.1, localhost, ::1)
    The search box takes rsIDs, chrom:pos, chrom:start-end, phenotype names and field ids.

    Pages read each run's browse index (thinned plot points, a position-sorted copy of
    the tests), which every job writes with its results; a run without one (an older
    lake, a killed job) is indexed when the server starts.

    \b
    Example:
      biolake serve --lake /tmp/lake --port 8000     # then open http://127.0.0.1:8000
    """
    import uvicorn

    from biolake.browser.app import create_app

    from biolake.browser.app import LOOPBACK

    loopback = host in LOOPBACK
    console = loopback if sql_console is None else sql_console
    if console and not loopback:
        click.echo(f"warning: the SQL console can read participant-level data; anyone who reaches {host}:{port} "
                   "can use it", err=True)
    app = create_app(_open_lake(lake_location), sql_timeout=sql_timeout, sql_console=console,
                     allowed_hosts=LOOPBACK if loopback else ["*"], announce=lambda m: click.echo(m, err=True))
    shown = f"[{host}]" if ":" in host else host      # an IPv6 address in a URL
    click.echo(f"biolake browser on http://{shown}:{port} (Ctrl-C to stop)", err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")


@main.command()
@_lake_option
@_result_option
def index(lake_location: str, name: str) -> None:
    """Rebuild the browse index of one results table (jobs write it; this is for repairs).

    \b
    Example:
      biolake index --lake /tmp/lake --result idps
    """
    from biolake.index import index_results

    index_results(_open_lake(lake_location), name)
    click.echo(f"indexed results {name!r} for the browser", err=True)


@main.command()
@click.option("--catalog", default="catalog.yaml", show_default=True, type=click.Path(dir_okay=False),
              help="catalog of the lake to build (the repository's embedded default)")
@click.option("--quiet", "-q", is_flag=True, help="no progress bars")
def demo(catalog: str, quiet: bool) -> None:
    """Run the main job on the embedded default lake: synth → ingest → SQL.

    Idempotent: steps already done (release written, lake created, release
    ingested) are skipped, so a second run only re-runs the analyses.
    """
    from biolake.demo import run_demo
    from biolake.progress import progress_bars

    with progress_bars(quiet=quiet) as progress:
        run_demo(Path(catalog), progress=progress, echo=click.echo)


def _parse_options(pairs: tuple[str, ...]) -> dict[str, str]:
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--storage-option")
        options[key] = value
    return options
