"""The variant lists a job's ``--extract`` and ``--exclude`` read: variant ids, ranges, or a BED file."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

from biolake.lake.chromosomes import GenomicRange, chromosome, genomic_range
from biolake.lake.errors import InputError


def read_variant_list(path: str | os.PathLike) -> tuple[dict[str, int], list[tuple[GenomicRange, int]]]:
    """The variant ids and ranges an ``--extract`` or ``--exclude`` file lists, each with the line it is first on.

    A BED file (a name ending ``.bed`` or ``.bed.gz``) lists ranges as ``CHROM START END`` with START
    0-based and END exclusive (UCSC's convention, plink2's ``bed0``), further columns, ``track`` and
    ``browser`` lines ignored. Any other file holds whitespace-separated entries, as plink2's --extract
    reads ids (several on a line are several entries): variant ids, or ranges ``CHR:FROM-TO`` (1-based,
    inclusive: plink2's ``--extract range``); a first line that is a header naming the column (``variant_id``,
    ``ID``, ``SNP``: what ``biolake sql --format csv`` and plink write above ids) is skipped. Blank lines and
    lines starting with ``#`` are skipped, in both.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> _ = (folder / "hits.txt").write_text("# lead variants\\nrs1000\\nrs1002 rs1005\\nchr22:16000000-17000000\\n")
    >>> read_variant_list(folder / "hits.txt")
    ({'rs1000': 2, 'rs1002': 3, 'rs1005': 3}, [(GenomicRange(chrom='22', start=16000000, end=17000000), 4)])
    >>> _ = (folder / "exons.bed").write_text("track name=exons\\nchr1\\t999\\t2000\\texon1\\n")
    >>> read_variant_list(folder / "exons.bed")
    ({}, [(GenomicRange(chrom='1', start=1000, end=2000), 2)])
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(path, "file not found")
    bed = path.name.endswith((".bed", ".bed.gz"))
    opened = gzip.open(path, "rt") if path.name.endswith(".gz") else path.open()
    ids: dict[str, int] = {}
    ranges: list[tuple[GenomicRange, int]] = []
    with opened as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if not fields or fields[0].startswith("#") or bed and fields[0] in ("track", "browser") \
                    or not ids and not ranges and not bed and fields in (["variant_id"], ["ID"], ["SNP"]):
                continue
            if bed:
                ranges.append((_bed_range(fields, path, number), number))
                continue
            for entry in fields:
                if ":" in entry and "-" in entry.partition(":")[2]:
                    try:
                        ranges.append((genomic_range(entry), number))
                    except ValueError as exc:
                        raise InputError(path, str(exc), line=number) from None
                else:
                    ids.setdefault(entry, number)
    if not ids and not ranges:
        raise InputError(path, "lists no variant id or range")
    return ids, ranges


def _bed_range(fields: list[str], path: Path, number: int) -> GenomicRange:
    """A BED line's range, as 1-based inclusive positions."""
    chrom = chromosome(fields[0])
    if len(fields) < 3 or chrom is None or not fields[1].isdigit() or not fields[2].isdigit() \
            or int(fields[1]) >= int(fields[2]):
        raise InputError(path, "expected a BED line CHROM START END (START 0-based, below END; chromosomes 1-22, "
                         f"X, Y, XY, MT), found {' '.join(fields[:3])!r}", line=number)
    return GenomicRange(chrom, int(fields[1]) + 1, int(fields[2]))
