"""Copy-number variant calls as callers ship them → the ``cnvs`` table.

Two formats, told apart by their first line:

- PLINK's segment list (``*.cnv``, as plink 1.07 ``--cfile`` reads it): ``FID IID CHR BP1 BP2 TYPE SCORE SITES``
  per segment, whitespace-separated (a line whose first field is FID, a header, is skipped, as PLINK skips it);
  TYPE is the copy number (0, 1: deletion; 3, 4: duplication), SCORE the caller's confidence, SITES its probes. The
  ``.fam`` beside it (same stem) lists every participant called, with or without a segment: the people a burden
  of 0 is counted for.
- PennCNV's output: ``chr1:1000-5000 numsnp=10 length=4,001 state2,cn=1 SAMPLE startsnp=… endsnp=… [conf=…]``
  (trio calls' further fields are read past; copy-neutral calls, cn=2 from ``-loh``, are left out and counted). SAMPLE names the signal file; its name without folder and extension is the participant
  (``/calls/1000001.txt`` → ``1000001``). PennCNV lists only people with a segment, so the participants called are
  the release's genotyped ones, from whose array the calls were made, and any other with a segment (ingest counts
  those among the participants without genotypes).

Positions are 1-based and inclusive, as both callers write them. Every row is checked; the first fault is an error
naming the file, line and what was expected: a line that is neither format, end before start, an unknown
chromosome, copy number 2 (no CNV) or below 0, a count that is not a whole number, a confidence that is not a
finite number, and two segments of one person that overlap on a chromosome (both lines named: callers merge those).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple

import polars as pl
import pyarrow as pa

from biolake.ingest.plink import read_fam
from biolake.lake.chromosomes import CHROMOSOME_ALIASES, CHROMOSOMES
from biolake.lake.errors import InputError
from biolake.lake.schema import TABLES

PLINK_FIELDS = ("FID", "IID", "CHR", "BP1", "BP2", "TYPE", "SCORE", "SITES")
PLINK_LINE = (r"^\s*(?P<fid>\S+)\s+(?P<participant_id>\S+)\s+(?P<chrom>\S+)\s+(?P<start>\S+)\s+(?P<end>\S+)\s+"
              r"(?P<copy_number>\S+)\s+(?P<confidence>\S+)\s+(?P<probes>\S+)\s*$")
PENNCNV_START = re.compile(r"^\s*\S+:[0-9,]+-[0-9,]+\s+numsnp=")
PENNCNV_LINE = (r"^\s*(?P<chrom>\S+):(?P<start>[0-9,]+)-(?P<end>[0-9,]+)\s+numsnp=(?P<probes>\d+)\s+length=[0-9,]+\s+"
                r"state\d+,cn=(?P<copy_number>\d+)\s+(?P<sample>\S+)\s+startsnp=\S+\s+endsnp=\S+"
                r"(?:\s+conf=(?P<confidence>\S+))?(?:\s+\S+=\S+)*\s*$")   # trio/quartet calls add statepath=, …
PENNCNV_EXPECTED = ("PennCNV's 'chr1:1000-5000 numsnp=10 length=4,001 state2,cn=1 SAMPLE startsnp=ID endsnp=ID "
                    "[conf=N]'")


class CnvCalls(NamedTuple):
    """One file of calls, read and checked: the ``cnvs`` rows of a release, the participants called (PLINK: its
    .fam; PennCNV: None, the release's genotyped participants), and the copy-neutral calls left out (PennCNV -loh's
    cn=2 lines: loss of heterozygosity, not a CNV)."""

    table: pa.Table
    called: list[str] | None
    copy_neutral: int


def is_plink_cnv(path: str | os.PathLike) -> bool:
    """Whether a calls file is PLINK's segment list rather than PennCNV's output: by its first line that is not
    blank (a file not there yet: by its name, ``*.cnv``)."""
    path = Path(path)
    if not path.is_file():
        return path.suffix.lower() == ".cnv"
    with open(path, errors="replace") as handle:
        first = next((line for line in handle if line.strip()), "")
    return not PENNCNV_START.match(first)


def plink_fam(path: str | os.PathLike) -> Path:
    """The ``.fam`` beside a PLINK ``.cnv`` (same stem): its participants are the ones called."""
    return Path(path).with_suffix(".fam")


def read_cnv_calls(path: str | os.PathLike, *, release: str) -> CnvCalls:
    """The ``cnvs`` rows of ``path`` (either format) for ``release``, checked, and the participants called.

    Examples
    --------
    >>> _ = Path("calls.txt").write_text(
    ...     "chr1:1000-5000 numsnp=10 length=4,001 state2,cn=1 /signal/1000001.txt startsnp=rs1 endsnp=rs9 conf=15.2\\n"
    ...     "chr22:18900000-21500000 numsnp=200 length=2,600,001 state5,cn=3 1000002.txt startsnp=rs5 endsnp=rs8\\n")
    >>> calls = read_cnv_calls("calls.txt", release="r1")
    >>> calls.table.select(["participant_id", "chrom", "start", "end", "copy_number", "type", "probes"]).to_pylist()[1]
    {'participant_id': '1000002', 'chrom': '22', 'start': 18900000, 'end': 21500000, 'copy_number': 3, 'type': 'DUP', \
'probes': 200}
    """
    path = Path(path)
    if is_plink_cnv(path):
        frame, called = _plink_segments(path), read_fam(plink_fam(path))["participant_id"].to_list()
        neutral = 0
    else:
        frame, called = _penncnv_segments(path), None
        neutral = int((frame["copy_number"] == "2").sum())
        frame = frame.filter(pl.col("copy_number") != "2")
    return CnvCalls(_checked(frame, path, release=release), called, neutral)


def _lines(path: Path) -> pl.DataFrame:
    """The file's lines that are not blank, with their line numbers."""
    if not path.exists() or not path.stat().st_size:
        raise InputError(path, "file not found" if not path.exists() else "file is empty")
    lines = pl.read_csv(path, has_header=False, separator="\x1f", quote_char=None, new_columns=["text"],
                        schema_overrides={"text": pl.String})
    return lines.with_row_index("line", offset=1).filter(pl.col("text").str.strip_chars() != "")


def _fields(lines: pl.DataFrame, pattern: str, path: Path, expected: str) -> pl.DataFrame:
    """Each line's fields by ``pattern``'s named groups; the first line it does not match is an error."""
    fields = lines.with_columns(pl.col("text").str.extract_groups(pattern).alias("fields"))
    unread = fields.filter(pl.col("fields").struct[0].is_null())
    if unread.height:
        raise InputError(path, f"expected {expected}, got {unread['text'][0][:80]!r}", line=unread["line"][0])
    return fields.select("line", pl.col("fields").struct.unnest())


def _plink_segments(path: Path) -> pl.DataFrame:
    """PLINK's segment list as text columns, with each row's line number; lines whose first field is FID (its
    header, wherever it stands) are skipped, as PLINK 1.07 skips them."""
    lines = _lines(path).filter(~pl.col("text").str.contains(r"^\s*FID(\s|$)"))
    return _fields(lines, PLINK_LINE, path, f"PLINK's 8 fields {' '.join(PLINK_FIELDS)}").select(
        "line", "participant_id", "chrom", "start", "end", "copy_number", "probes", "confidence")


def _penncnv_segments(path: Path) -> pl.DataFrame:
    """PennCNV's lines as text columns, with each row's line number; the sample's folder and file extension (letters
    only) dropped to name the participant."""
    frame = _fields(_lines(path), PENNCNV_LINE, path, PENNCNV_EXPECTED)
    return frame.select(
        "line", pl.col("sample").str.replace(r"^.*[/\\]", "").str.replace(r"\.[A-Za-z]+$", "").alias("participant_id"),
        "chrom", *(pl.col(name).str.replace_all(",", "") for name in ("start", "end")), "copy_number", "probes",
        "confidence")


def _checked(frame: pl.DataFrame, path: Path, *, release: str) -> pa.Table:
    """The segments typed and checked (module docstring), as the ``cnvs`` table's rows in participant and position
    order."""
    aliases = pl.DataFrame({"code": [*CHROMOSOMES, *CHROMOSOME_ALIASES],
                            "lake": [*CHROMOSOMES, *CHROMOSOME_ALIASES.values()]})
    frame = frame.with_columns(code=pl.col("chrom").str.to_uppercase().str.replace("^CHR", ""))
    frame = frame.join(aliases, on="code", how="left", maintain_order="left")
    _first_fault(frame, pl.col("lake").is_null(), path, "chromosome", "a chromosome 1-22, X, Y, XY or MT (chr "
                 "prefix or PLINK's 23-26 allowed)", "chrom")
    typed = frame.with_columns(
        *(pl.col(name).cast(pl.Int64, strict=False).alias(f"{name}_int") for name in
          ("start", "end", "copy_number", "probes")),
        pl.col("confidence").cast(pl.Float64, strict=False).alias("confidence_float"))
    for name, what in (("start", "a whole base-pair position"), ("end", "a whole base-pair position"),
                       ("copy_number", "a whole copy number"), ("probes", "a whole number of probes")):
        _first_fault(typed, pl.col(f"{name}_int").is_null(), path, name, what, name)
    _first_fault(typed, pl.col("confidence").is_not_null() & ~pl.col("confidence_float").is_finite().fill_null(False),
                 path, "confidence", "a number", "confidence")
    _first_fault(typed, pl.col("end_int") < pl.col("start_int"), path, "end", "an end at or after the start", "end")
    _first_fault(typed, (pl.col("copy_number_int") == 2) | (pl.col("copy_number_int") < 0), path, "copy_number",
                 "a copy number other than 2 (0, 1: deletion; 3 or more: duplication)", "copy_number")
    rows = typed.with_row_index("segment_index").select(
        "line", "segment_index", "participant_id", pl.col("lake").alias("chrom"), pl.col("start_int").alias("start"),
        pl.col("end_int").alias("end"), pl.col("copy_number_int").alias("copy_number"),
        pl.when(pl.col("copy_number_int") < 2).then(pl.lit("DEL")).otherwise(pl.lit("DUP")).alias("type"),
        pl.col("probes_int").alias("probes"), pl.col("confidence_float").alias("confidence"),
    ).sort("participant_id", "chrom", "start", "end")
    overlap = rows.with_columns(
        previous_end=pl.col("end").shift(1).over("participant_id", "chrom"),
        previous_line=pl.col("line").shift(1).over("participant_id", "chrom"),
    ).filter(pl.col("start") <= pl.col("previous_end"))
    if overlap.height:
        first = overlap.row(0, named=True)
        raise InputError(path, f"participant {first['participant_id']}'s segment overlaps the one on line "
                         f"{first['previous_line']} (chromosome {first['chrom']}); one call per stretch: merge or drop "
                         "one", line=first["line"])
    schema = TABLES["cnvs"].arrow_schema()
    return rows.with_columns(release=pl.lit(release)).select(schema.names).to_arrow().cast(schema)


def _first_fault(frame: pl.DataFrame, fault: pl.Expr, path: Path, column: str, expected: str, shown: str) -> None:
    """Raise InputError naming the first row of ``frame`` where ``fault`` holds: its line, the ``column`` and what
    was ``expected``, beside the value found (``shown``)."""
    bad = frame.filter(fault)
    if bad.height:
        row = bad.row(0, named=True)
        raise InputError(path, f"expected {expected}, got {row[shown]!r}", line=row["line"], column=column)
