"""Large source files read by mapping them from the page cache, not by copying them.

``read()`` copies every byte from the page cache into process memory: for a 12 GB
.bed that is 1.5 s of a core, a tenth of an ingest. A mapped range is shared with the
page cache instead, so the .bed's bytes become the genotype column without a copy,
and checksums hash the file where it lies.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from biolake.lake.errors import InputError

WINDOW_BYTES = 64 << 20   # mapped at a time when a whole file is walked: memory stays flat


def mapped_bytes(handle: BinaryIO, offset: int, length: int) -> np.ndarray:
    """Bytes ``offset`` to ``offset + length`` of an open file, as a read-only uint8 array.

    The mapping lasts as long as the array or any view of it (an Arrow buffer made from it
    included). A file found shorter than the range is an InputError; one cut short, or
    unreadable from its storage, while still mapped ends the process (SIGBUS), as it would
    any reader that maps its files. The lake is left as a killed ingest leaves it: unchanged.
    """
    if length == 0:
        return np.empty(0, np.uint8)
    size = os.fstat(handle.fileno()).st_size
    if size < offset + length:
        raise InputError(handle.name, f"the file changed while being read: now {size:,} bytes, "
                         f"expected at least {offset + length:,}")
    start = offset - offset % mmap.ALLOCATIONGRANULARITY
    mapping = mmap.mmap(handle.fileno(), offset + length - start, access=mmap.ACCESS_READ, offset=start)
    return np.frombuffer(mapping, np.uint8)[offset - start:]


def mapped_windows(handle: BinaryIO, size: int) -> Iterator[np.ndarray]:
    """The first ``size`` bytes of an open file, ``WINDOW_BYTES`` at a time, each window mapped in turn."""
    for offset in range(0, size, WINDOW_BYTES):
        yield mapped_bytes(handle, offset, min(WINDOW_BYTES, size - offset))
