"""The lake's spelling of chromosomes (1-22, X, Y, XY, MT), and the spellings it accepts as PLINK does: a 'chr'
prefix, PLINK's numbers 23-26 and M, comma lists and ranges. Ingest spells every source's codes this way;
every job's --chrom is read this way (:class:`biolake.frame.Request`), and --region's and --extract's ranges
(:class:`GenomicRange`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

AUTOSOMES = tuple(str(i) for i in range(1, 23))
CHROMOSOMES = frozenset([*AUTOSOMES, "X", "Y", "XY", "MT"])
CHROMOSOME_ALIASES = {"23": "X", "24": "Y", "25": "XY", "26": "MT", "M": "MT"}  # PLINK numbering
PLINK_ORDER = (*AUTOSOMES, "X", "Y", "XY", "MT")   # PLINK's numbering: 1-22, then X 23, Y 24, XY 25, MT 26


def chromosome(code: str) -> str | None:
    """The lake's spelling of a chromosome code (1-22, X, Y, XY, MT), or None when unknown.

    'chr1', '23' (PLINK's X) and 'M' become '1', 'X' and 'MT'.
    """
    bare = code.strip().upper().removeprefix("CHR")
    bare = CHROMOSOME_ALIASES.get(bare, bare)
    return bare if bare in CHROMOSOMES else None


def plink_number(code: str) -> int:
    """A chromosome of the lake's spelling as PLINK numbers it (1-22, X 23, Y 24, XY 25, MT 26).

    >>> plink_number("X"), plink_number("7")
    (23, 7)
    """
    return PLINK_ORDER.index(code) + 1


def chromosome_list(codes: Sequence[str]) -> list[str]:
    """The chromosomes a ``--chrom`` list names, as plink2's ``--chr`` reads one: codes spelled as
    :func:`chromosome` takes them, comma-separated or repeated, and ranges of PLINK's numbers
    ('1-4', '22-24': 22, X, Y); each once, in the order given. An unknown code is a ValueError.

    >>> chromosome_list(["chr1-3", "X,MT", "2"])
    ['1', '2', '3', 'X', 'MT']
    """
    order = PLINK_ORDER
    chosen: list[str] = []
    for code in (part for item in codes for part in item.split(",") if part.strip()):
        first, dash, last = code.partition("-")
        ends = [chromosome(first), chromosome(last)] if dash else [chromosome(code)]
        if None in ends:
            raise ValueError(f"--chrom {code.strip()!r}: unknown chromosome (expected 1-22, X, Y, XY or MT, with "
                             "or without 'chr', PLINK's 23-26, or a range such as 1-4)")
        start, end = order.index(ends[0]), order.index(ends[-1])
        if start > end:
            raise ValueError(f"--chrom {code.strip()!r}: a range runs from the lower chromosome to the higher")
        chosen += [c for c in order[start:end + 1] if c not in chosen]
    return chosen


@dataclass(frozen=True, order=True)
class GenomicRange:
    """A stretch of one chromosome, 1-based and inclusive at both ends, as plink2's ``--from-bp``/``--to-bp``
    and ``--extract range`` read positions.

    >>> genomic_range("chr2:1,000-2,500")
    GenomicRange(chrom='2', start=1000, end=2500)
    >>> str(genomic_range("X:5-5"))
    'X:5-5'
    """

    chrom: str
    start: int
    end: int

    def __str__(self) -> str:
        return f"{self.chrom}:{self.start}-{self.end}"

    def record(self) -> str:
        """How a results table's provenance keeps it: CHR:FROM-TO."""
        return str(self)


def genomic_range(text: str) -> GenomicRange:
    """The range ``CHR:FROM-TO`` spells (positions 1-based, inclusive, digits with or without thousands commas;
    the chromosome as :func:`chromosome` reads it); a ValueError says what was expected."""
    found = re.fullmatch(r"\s*([^:\s]+):([\d,]+)-([\d,]+)\s*", text)
    chrom = chromosome(found.group(1)) if found else None
    if found is None or chrom is None:
        raise ValueError(f"{text.strip()!r} is not a range CHR:FROM-TO (e.g. 1:1000000-2000000 or chr22:16,000,000-"
                         "17,000,000; positions 1-based, inclusive; chromosomes 1-22, X, Y, XY, MT)")
    start, end = (int(group.replace(",", "")) for group in found.group(2, 3))
    if not 1 <= start <= end:
        raise ValueError(f"{text.strip()!r}: a range runs from position 1 or more to a position at least as high")
    return GenomicRange(chrom, start, end)
