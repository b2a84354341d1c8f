"""A biobank release (a folder with release.yaml, or explicit source files) → one lake release.

Every source is parsed and checked before the first byte is written, except
the methylation matrix, too big to hold, which is checked as it streams (and
written first). Genotype bodies need no check beyond their headers and sizes.
Tables land in the lake through one ReleaseWriter, so a release is committed
whole or not at all. ``check_release`` makes every check, streaming every row,
and writes nothing.
"""

from __future__ import annotations

import concurrent.futures
import functools
import hashlib
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType

import blake3
import pyarrow as pa
import yaml

from biolake.ingest.cnv import CnvCalls, is_plink_cnv, plink_fam, read_cnv_calls
from biolake.ingest.methylation import matrix_samples, methylation_batches, read_probes
from biolake.ingest.participants import (OverlapRule, check_columns, empty_columns, field_dictionary, participant_ids,
                                 read_participant_table, value_fields)
from biolake.ingest.freesurfer import freesurfer_idps, freesurfer_tables
from biolake.ingest.genotypes import GenotypeSource, Progress
from biolake.ingest.mapped import mapped_windows
from biolake.ingest.plink import open_bfile
from biolake.lake.errors import InputError
from biolake.lake.lake import Lake, ReleaseInfo
from biolake.lake.lock import lake_lock
from biolake.lake.schema import TABLES

MANIFEST = "release.yaml"
GENOTYPE_BLOCK_BYTES = 16 << 20  # one Parquet row group of packed calls


@dataclass(frozen=True)
class ReleaseSources:
    """The source files of one release; any may be absent except that one must be given.

    ``verified_sha256`` holds the digests a release folder's manifest listed, already checked
    against the files (by resolved path): the sha256 that ingest records for them.
    """

    bfile: Path | None = None
    pfile: Path | None = None
    vcf: Path | None = None
    bgen: Path | None = None
    sample: Path | None = None
    idps: Path | None = None
    idp_fields: Path | None = None
    covariates: Path | None = None
    methylation: Path | None = None
    probes: Path | None = None
    cnv: Path | None = None
    verified_sha256: Mapping[Path, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def roles(cls) -> list[str]:
        """The source roles, named as the command-line flags are (bfile, idps, …)."""
        return [f.name for f in fields(cls) if f.name != "verified_sha256"]

    @classmethod
    def from_folder(cls, folder: str | os.PathLike, *,
                    verify: bool = True) -> tuple["ReleaseSources", str | None]:
        """Sources named by a release folder's ``release.yaml``, and its suggested release name.

        When the manifest lists ``checksums`` (file → sha256), every listed file is verified,
        unless ``verify`` is false (a sync comparing the files with what the lake recorded).
        """
        folder = Path(folder)
        manifest_path = folder / MANIFEST
        manifest = load_manifest(folder)
        named = manifest.get("sources")
        if not isinstance(named, dict):
            raise InputError(manifest_path, "expected a 'sources:' mapping of role → file")
        known = set(cls.roles())
        unknown = set(named) - known
        if unknown:
            raise InputError(manifest_path, f"unknown source role(s) {sorted(unknown)}; "
                             f"expected some of {sorted(known)}")
        paths = {role: _inside(folder, str(value), manifest_path) for role, value in named.items()}
        sources = cls(**paths).checked()
        verified = _verify_checksums(folder, manifest.get("checksums") or {}, manifest_path) if verify else {}
        return replace(sources, verified_sha256=MappingProxyType(verified)), \
            manifest_release_name(manifest, manifest_path)

    def files(self) -> list[Path]:
        """Every file these sources read (a PLINK prefix stands for its three files)."""
        found = []
        for role in self.roles():
            path = getattr(self, role)
            if path is None:
                continue
            prefixes = {"bfile": ("bed", "bim", "fam"), "pfile": ("pgen", "pvar", "psam")}
            if role in prefixes:
                stem = str(path).removesuffix(f".{prefixes[role][0]}")
                found += [Path(f"{stem}.{ext}") for ext in prefixes[role]]
            elif path.is_dir():   # a folder of FreeSurfer tables
                found += freesurfer_tables(path)
            elif role == "cnv" and is_plink_cnv(path):   # its .fam lists the participants called
                found += [path, plink_fam(path)]
            else:
                found.append(path)
        return found

    def checked(self) -> "ReleaseSources":
        """Raise InputError for combinations that cannot be ingested."""
        if not any(getattr(self, role) for role in self.roles()):
            raise InputError("sources", "no source given: need at least one of --bfile, --pfile, "
                             "--vcf, --bgen, --idps, --covariates, --methylation, --cnv")
        genotype_sources = [p for p in (self.bfile, self.pfile, self.vcf, self.bgen) if p]
        if len(genotype_sources) > 1:
            raise InputError(genotype_sources[1], "give one genotype source: --bfile, --pfile, --vcf "
                             "or --bgen")
        if bool(self.bgen) != bool(self.sample):
            raise InputError(self.bgen or self.sample, "BGEN needs both --bgen and its --sample file")
        if self.idp_fields and not self.idps:
            raise InputError(self.idp_fields, "a data dictionary needs --idps")
        if bool(self.methylation) != bool(self.probes):
            raise InputError(self.methylation or self.probes,
                             "methylation needs both the beta matrix and the probe annotation")
        if self.cnv and not is_plink_cnv(self.cnv) and not genotype_sources:
            raise InputError(self.cnv, "PennCNV calls list only the participants with a segment: ingest them with "
                             "the genotypes they were called from (--bfile …), whose participants count as called")
        return self


def load_manifest(folder: Path) -> dict:
    """The parsed ``release.yaml`` of a release folder."""
    manifest_path = folder / MANIFEST
    if not manifest_path.exists():
        raise InputError(folder, f"no {MANIFEST} in this folder; name the sources with "
                         "--bfile/--idps/--covariates/--methylation instead")
    try:
        manifest = yaml.safe_load(manifest_path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise InputError(manifest_path, f"not valid YAML ({exc})") from None
    if not isinstance(manifest, dict):
        raise InputError(manifest_path, "expected a mapping (format, release, sources, checksums)")
    return manifest


BLAKE3_PREFIX = "blake3:"   # how a recorded BLAKE3 checksum is told from a sha256 (bare hex, as manifests write it)


def file_sha256(path: Path, *, reread: bool = False) -> str:
    """The sha256 of a file, streamed; remembered while the file's size and mtime stay the same
    (verifying a manifest, then comparing with what the lake recorded, reads each file once),
    unless ``reread`` (a check for bit rot, which leaves size and mtime as they were)."""
    return _file_digest(path, "sha256", reread=reread)


def file_blake3(path: Path, *, reread: bool = False) -> str:
    """The BLAKE3 of a file as ``blake3:HEX``, streamed and remembered like :func:`file_sha256`.

    BLAKE3 is a cryptographic hash that runs at 5.4 GB/s on one core here, against 1.2 for sha256:
    recording a 12 GB .bed's checksum beside its ingest then costs 2 s of a core, not 10.
    """
    return _file_digest(path, "blake3", reread=reread)


def _file_digest(path: Path, algorithm: str, *, reread: bool) -> str:
    if not path.exists():
        raise InputError(path, "file not found")
    stat = path.stat()
    digest = _digest.__wrapped__ if reread else _digest
    return digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns, algorithm)


@functools.lru_cache(maxsize=1024)
def _digest(path: str, size: int, mtime_ns: int, algorithm: str) -> str:
    digest = blake3.blake3() if algorithm == "blake3" else hashlib.sha256()
    with open(path, "rb") as handle:
        for window in mapped_windows(handle, size):   # hashed where it lies: 2.1 core-s for 12 GB, not 3.4
            digest.update(window)
    return (BLAKE3_PREFIX if algorithm == "blake3" else "") + digest.hexdigest()


def source_files(sources: ReleaseSources) -> dict[str, Path]:
    """Every source file (resolved) under the name the lake records it by: its path relative to
    the folder holding them all (for a release folder: the names its release.yaml uses)."""
    files = [path.resolve() for path in sources.files()]
    base = Path(os.path.commonpath([path.parent for path in files]))
    return {str(path.relative_to(base)): path for path in files}


def source_checksums(sources: ReleaseSources, *, like: dict[str, str] | None = None) -> dict[str, str]:
    """A checksum of every source file, keyed as :func:`source_files` names them.

    A file whose sha256 the release folder's manifest listed gets that digest, verified when the
    folder was opened (so a sync can compare the manifest with what the lake recorded, and nothing
    is hashed twice); any other file gets its BLAKE3. With ``like`` (checksums recorded earlier), a
    file named there gets the same kind as its recorded one.
    """
    checksums = {}
    for name, path in source_files(sources).items():
        if like and name in like:
            checksums[name] = recorded_kind_checksum(path, like[name])
        else:
            checksums[name] = sources.verified_sha256.get(path) or file_blake3(path)
    return checksums


def recorded_kind_checksum(path: Path, recorded: str, *, reread: bool = False) -> str:
    """The checksum of ``path`` of the kind ``recorded`` is (BLAKE3 or sha256), to compare with it."""
    return file_blake3(path, reread=reread) if recorded.startswith(BLAKE3_PREFIX) else \
        file_sha256(path, reread=reread)


def source_stats(sources: ReleaseSources) -> dict[str, list[int]]:
    """The size and mtime (ns) of every source file, keyed as :func:`source_files` names them:
    what a sync compares to notice, without reading a byte, that a loaded release's file changed."""
    return {name: size_and_mtime(path) for name, path in source_files(sources).items()}


def size_and_mtime(path: Path) -> list[int]:
    """A file's size in bytes and mtime in ns, as :func:`source_stats` records them."""
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def manifest_release_name(manifest: dict, manifest_path: Path | str) -> str | None:
    """The manifest's ``release:`` name, which must be text (YAML reads 2026-11-01 as a date)."""
    name = manifest.get("release")
    if name is not None and not isinstance(name, str):
        raise InputError(manifest_path, f"release: {name!r} must be text; quote it, "
                         f"e.g. release: '{name}'")
    return name


def _verify_checksums(folder: Path, expected: dict, manifest_path: Path) -> dict[Path, str]:
    """The manifest's digests by resolved path, each checked against its file."""
    if not isinstance(expected, dict):
        raise InputError(manifest_path, "expected 'checksums:' to map file names to sha256 digests")
    verified = {}
    for name, digest in expected.items():
        path = _inside(folder, str(name), manifest_path)
        if path.exists() and not path.is_file():
            raise InputError(manifest_path, f"checksums name {name!r}, which is not a file")
        found = file_sha256(path)
        if found != str(digest).lower():
            raise InputError(folder / str(name), f"checksum mismatch: release.yaml says sha256 "
                             f"{digest}, the file has {found}")
        verified[path] = found
    return verified


def _inside(folder: Path, relative: str, manifest: Path) -> Path:
    """A manifest path, refused if it escapes the release folder."""
    path = (folder / relative).resolve()
    if not path.is_relative_to(folder.resolve()):
        raise InputError(manifest, f"source path {relative!r} points outside the release folder")
    return path


class IngestWarning(UserWarning):
    """A release that loads but deserves a look: a column with no values, a table with under half
    its participants genotyped."""


@dataclass(frozen=True)
class IngestReport:
    """What was loaded, and which participants of each table have no genotypes (ids, sorted)."""

    release: ReleaseInfo
    counts: dict[str, int]
    participants_not_genotyped: dict[str, list[str]]


@dataclass(frozen=True)
class ReleasePlan:
    """What ingesting a release would commit (``check_release``): rows per table, participants of
    each table without genotypes (ids, sorted), and the warnings given."""

    release: str
    counts: dict[str, int]
    participants_not_genotyped: dict[str, list[str]]
    warnings: list[str]


@dataclass(frozen=True)
class _ReadSources:
    """A release's sources opened, its small tables read, and every check made that needs no pass
    over the genotype bodies or the methylation matrix."""

    sources: ReleaseSources
    genotypes: GenotypeSource | None
    small: dict[str, pa.Table]              # idps, idp_fields, covariates, probes, cnvs
    methylation_ids: list[str] | None
    cnv_ids: list[str] | None               # the participants CNVs were called for
    participants_not_genotyped: dict[str, list[str]]
    warnings: list[str]


def _read_sources(lake: Lake, sources: ReleaseSources, *, release: str, overlap: OverlapRule) -> _ReadSources:
    """Open and check every source of a new release ``release``; warnings are issued as IngestWarning.

    Beside each file's own checks: the name is free, columns agree with earlier releases, no
    IDP or covariate column is empty (a warning), and each participant-keyed table overlaps the
    release's genotyped participants as ``overlap`` demands.
    """
    lake.check_new_release(release)
    sources = sources.checked()
    genotypes = open_genotypes(sources)
    small = _read_small_tables(sources, release=release)
    methylation_ids = matrix_samples(sources.methylation) if sources.methylation else None
    keyed = {name: (getattr(sources, name), participant_ids(small[name]))
             for name in ("idps", "covariates") if name in small}
    cnv_ids, found = None, []
    if sources.cnv:
        calls = read_cnv_calls(sources.cnv, release=release)
        small["cnvs"], cnv_ids = calls.table, _cnv_called(sources.cnv, calls, genotypes)
        if calls.table.num_rows:
            keyed["cnvs"] = (sources.cnv, set(calls.table.column("participant_id").to_pylist()))
        if calls.copy_neutral:
            found.append(f"{sources.cnv}: {calls.copy_neutral:,} copy-neutral calls (cn=2: loss of heterozygosity, "
                         "not a CNV) left out")
    if methylation_ids:
        keyed["methylation"] = (sources.methylation, set(methylation_ids))
    for name in ("idps", "covariates"):
        if name in small:
            check_columns(small[name], path=getattr(sources, name),
                          lake_schema=pa.schema(lake.delta(name).schema()) if lake.has_table(name) else None)
            found += empty_columns(small[name], path=getattr(sources, name))
    not_genotyped = {}
    if genotypes:
        genotyped = set(genotypes.samples["participant_id"].to_list())
        for path, ids in keyed.values():
            found += overlap.check(ids, genotyped=genotyped, path=path)
        not_genotyped = {name: sorted(ids - genotyped) for name, (_, ids) in keyed.items()}
    for message in found:
        warnings.warn(message, IngestWarning, stacklevel=3)
    return _ReadSources(sources, genotypes, small, methylation_ids, cnv_ids, not_genotyped, found)


def ingest_release(lake: Lake, sources: ReleaseSources, *, release: str, source: str,
                   progress: Progress | None = None, wait: float = 0.0,
                   on_table: Callable[[str, int], None] | None = None,
                   overlap: OverlapRule = OverlapRule()) -> IngestReport:
    """Load every source of a release into ``lake`` as release ``release``, atomically.

    ``on_table(table, rows)`` is called after each table is written (the CLI reports it).
    Another writer (ingest, withdrawal) holding the lake is waited for up to ``wait`` seconds.
    A participant table too few of whose participants are genotyped is refused (``overlap``).
    """
    read = _read_sources(lake, sources, release=release, overlap=overlap)
    sources, genotypes, small = read.sources, read.genotypes, read.small
    counts: dict[str, int] = {}

    def written(name: str, rows: int) -> None:
        counts[name] = rows
        if on_table:
            on_table(name, rows)

    # the sources' checksums (recorded with the release) are computed beside the writes, not before them
    stats = source_stats(sources)   # before hashing: a file changed meanwhile then fails the cheap check
    hashing = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="checksums")
    checksums = hashing.submit(source_checksums, sources)
    hashing.shutdown(wait=False)
    with lake_lock(lake.location, "write", wait=wait), \
            lake.begin_release(release, source=source) as writer:
        # The methylation matrix is the one source checked only while it streams: write it
        # first, so a bad value aborts before any other table has a commit.
        if sources.methylation:
            rows = writer.write("methylation", _methylation_rows(read, release=release, progress=progress),
                                schema=TABLES["methylation"].arrow_schema())
            written("methylation", rows)
        samples = _samples_table(release, genotypes, read.methylation_ids, read.cnv_ids)
        if samples is not None:
            writer.write("samples", samples)
            written("samples", samples.num_rows)
        if genotypes:
            batches, block = _genotype_rows(genotypes, release=release, progress=progress)
            writer.write_genotypes(batches, row_group_rows=block)
            written("genotypes", genotypes.variants.height)
            written("variants", genotypes.variants.height)
        for name, table in small.items():
            writer.write(name, table)
            written(name, table.num_rows)
        writer.checksums, writer.source_stats = checksums.result(), stats
    return IngestReport(lake.resolve_release(release), counts, read.participants_not_genotyped)


def check_release(lake: Lake, sources: ReleaseSources, *, release: str, progress: Progress | None = None,
                  overlap: OverlapRule = OverlapRule()) -> ReleasePlan:
    """Make every check ``ingest_release`` makes, streaming every genotype and methylation row,
    and write nothing (not even the lake's lock): what ingesting the release would commit.
    """
    read = _read_sources(lake, sources, release=release, overlap=overlap)
    counts: dict[str, int] = {}
    if read.sources.methylation:
        counts["methylation"] = _count_rows(_methylation_rows(read, release=release, progress=progress))
    samples = _samples_table(release, read.genotypes, read.methylation_ids, read.cnv_ids)
    if samples is not None:
        counts["samples"] = samples.num_rows
    if read.genotypes:
        counts["genotypes"] = _count_rows(_genotype_rows(read.genotypes, release=release, progress=progress)[0])
        counts["variants"] = read.genotypes.variants.height
    counts.update({name: table.num_rows for name, table in read.small.items()})
    return ReleasePlan(release, counts, read.participants_not_genotyped, read.warnings)


def _count_rows(batches: Iterator[pa.RecordBatch]) -> int:
    return sum(batch.num_rows for batch in batches)


def open_genotypes(sources: ReleaseSources) -> GenotypeSource | None:
    """Open and check the release's genotype source, whichever format it is in.

    Each format's reader library is imported only when that format is used.
    """
    if sources.bfile:
        return open_bfile(sources.bfile)
    if sources.pfile:
        from biolake.ingest.pgen import open_pfile
        return open_pfile(sources.pfile)
    if sources.vcf:
        from biolake.ingest.vcf import open_vcf
        return open_vcf(sources.vcf)
    if sources.bgen:
        from biolake.ingest.bgen import open_bgen
        return open_bgen(sources.bgen, sources.sample)
    return None


def _read_small_tables(sources: ReleaseSources, *, release: str) -> dict[str, pa.Table]:
    tables: dict[str, pa.Table] = {}
    if sources.idps and (found := freesurfer_tables(sources.idps)):
        tables["idps"], tables["idp_fields"] = freesurfer_idps(found, release=release, dictionary=sources.idp_fields)
    elif sources.idps:
        tables["idps"] = read_participant_table(sources.idps, release=release)
        tables["idp_fields"] = field_dictionary(value_fields(tables["idps"]), release=release,
                                                path=sources.idp_fields)
    if sources.covariates:
        tables["covariates"] = read_participant_table(sources.covariates, release=release)
    if sources.probes:
        tables["probes"] = read_probes(sources.probes, release=release)
    return tables


def _cnv_called(path: Path, calls: CnvCalls, genotypes: GenotypeSource | None) -> list[str]:
    """The participants CNVs were called for (ingest/cnv.py): a PLINK .cnv's .fam, every one of whose segments must
    be of one of them; for PennCNV, the genotyped participants, then any other with a segment (in id order)."""
    with_segments = list(dict.fromkeys(calls.table.column("participant_id").to_pylist()))
    if calls.called is not None:
        listed = frozenset(calls.called)
        stray = [pid for pid in with_segments if pid not in listed]
        if stray:
            raise InputError(path, f"{len(stray):,} participants have segments but are not in "
                             f"{plink_fam(path).name}, which lists those called (e.g. {stray[0]})")
        return calls.called
    genotyped = genotypes.samples["participant_id"].to_list()
    known = frozenset(genotyped)
    return genotyped + [pid for pid in with_segments if pid not in known]


def _samples_table(release: str, genotypes: GenotypeSource | None,
                   methylation_ids: list[str] | None, cnv_ids: list[str] | None) -> pa.Table | None:
    parts = []
    if genotypes:
        parts.append(("genotypes", genotypes.samples["participant_id"].to_list(),
                      genotypes.samples["sex"].to_list()))
    if methylation_ids:
        parts.append(("methylation", methylation_ids, [None] * len(methylation_ids)))
    if cnv_ids:
        parts.append(("cnv", cnv_ids, [None] * len(cnv_ids)))
    if not parts:
        return None
    rows = [{"release": release, "assay": assay, "sample_index": i, "participant_id": pid, "sex": sex}
            for assay, ids, sexes in parts for i, (pid, sex) in enumerate(zip(ids, sexes))]
    return pa.Table.from_pylist(rows, schema=TABLES["samples"].arrow_schema())


def _methylation_rows(read: _ReadSources, *, release: str, progress: Progress | None) -> Iterator[pa.RecordBatch]:
    """The methylation table's rows, each block checked as it streams."""
    return methylation_batches(read.sources.methylation, read.small["probes"], release=release, progress=progress)


def _genotype_rows(source: GenotypeSource, *, release: str,
                   progress: Progress | None) -> tuple[Iterator[pa.RecordBatch], int]:
    """One pass over the source in row groups of about GENOTYPE_BLOCK_BYTES, and that group's rows."""
    block = max(64, GENOTYPE_BLOCK_BYTES // source.bytes_per_variant)
    return source.batches(release=release, block_variants=block, progress=progress), block
