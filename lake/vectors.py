"""Sample vectors as stored in the lake, and their decoding into float matrices.

Genotype rows carry either hard calls packed 2 bits per sample in PLINK .bed
order (so a .bed row is stored as is, with no decoding at ingest) or dosages as
uint16. Methylation rows carry float32 betas. Decoding a block of rows for an
analysis is one compiled pass from the stored bytes to floats for the chosen samples
(missing values zero-filled, their coordinates returned): cheap enough that
association work stays bounded by arithmetic.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numba
import numpy as np
import pyarrow as pa
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

# .bed 2-bit codes → alt-allele count: 00 hom A1 (= alt), 01 missing (-1), 10 het, 11 hom A2 (= ref).
_CODE_TO_ALT = np.array([2, -1, 1, 0], np.int8)
_CODE_TO_COUNT = np.array([2, 0, 1, 0], np.uint8)   # the same, 0 at a missing call
_DOSAGE_MISSING = np.uint16(65535)
_DOSAGE_SCALE = 65534 / 2.0

Rows = Sequence[bytes] | np.ndarray | pa.BinaryArray | pa.ChunkedArray  # one sample vector per row
Missing = tuple[np.ndarray, np.ndarray]  # (variant, sample) coordinates of missing values


def packed_width(n_samples: int) -> int:
    """Bytes per variant of 2-bit packed calls."""
    return (n_samples + 3) // 4


# Per byte of packed calls: its alt alleles and its missing calls (4 samples).
_BYTE_ALT = np.array([sum(max(_CODE_TO_ALT[(b >> (2 * s)) & 3], 0) for s in range(4)) for b in range(256)], np.int64)
_BYTE_CODES = np.array([[(b >> (2 * s)) & 3 for s in range(4)] for b in range(256)], np.uint8)   # its 4 codes
_SLOTS = np.arange(4)
_MASK_SLOTS = (np.arange(16)[:, None] >> _SLOTS) & 1   # mask × slot: is the byte's sample at that slot chosen
# mask × byte: how many of the chosen samples' calls are missing (mask 15: all four samples)
_CHOSEN_MISSING = ((_BYTE_CODES[None] == 1) & _MASK_SLOTS[:, None].astype(bool)).sum(axis=2).astype(np.int64)
_BYTE_MISSING = _CHOSEN_MISSING[15]
_LOW_BITS = np.uint64(0x5555555555555555)   # the low bit of each of a word's 32 codes


@intrinsic
def _popcount(typingctx, word):  # pragma: no cover
    """Set bits of a uint64: one POPCNT instruction (numba has no popcount of its own)."""
    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return types.uint64(types.uint64), codegen


@intrinsic
def _load_word(typingctx, row, start):  # pragma: no cover
    """Bytes ``start`` … ``start + 7`` of a uint8 array as one little-endian uint64: a single
    unaligned load (assembling the word from 8 byte loads halves the kernel's speed)."""
    def codegen(context, builder, signature, args):
        array = context.make_array(signature.args[0])(context, builder, args[0])
        address = builder.bitcast(builder.gep(array.data, [args[1]]), ir.IntType(64).as_pointer())
        return builder.load(address, align=1)
    return types.uint64(row, types.intp), codegen


@numba.njit(cache=True, nogil=True)
def _count_calls(calls, n_samples, byte_alt, byte_missing, code_alt, alt, called):  # pragma: no cover
    """One pass over packed rows: alt-allele and called-sample counts (the last byte's padding skipped).

    32 codes at a time: a code's bits (low, high) are 00 hom-alt, 10 het, 11 hom-ref, 01 missing,
    so its alt count is 2 - low - high except at a missing call, where that gives 1. Over a
    word, alt = 64 - popcount(word) - missing, with missing = popcount(low & ~high).
    """
    full, rest = n_samples // 4, n_samples % 4
    words = full // 8
    for v in range(calls.shape[0]):
        row = calls[v]
        set_bits, missing_words = np.uint64(0), np.uint64(0)
        for k in range(words):
            word = _load_word(row, 8 * k)
            set_bits += _popcount(word)
            missing_words += _popcount(word & ~(word >> np.uint64(1)) & _LOW_BITS)
        missing = np.int64(missing_words)
        alt_count = 64 * words - np.int64(set_bits) - missing
        for j in range(8 * words, full):
            alt_count += byte_alt[row[j]]
            missing += byte_missing[row[j]]
        for slot in range(rest):
            code = (row[full] >> (2 * slot)) & 3
            if code == 1:
                missing += 1
            else:
                alt_count += code_alt[code]
        alt[v], called[v] = alt_count, n_samples - missing


def call_summaries(calls: np.ndarray, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Alt-allele counts and called-sample counts per variant, straight from packed bytes.

    One compiled pass, 32 samples per population count, no decoding: about 8 GB/s, the
    speed of reading the bytes. ``calls``: variants × bytes (uint8). Returns two int64 vectors.

    Examples
    --------
    >>> call_summaries(encode_calls(np.array([[0, 1, 2, 2, np.nan]])), 5)
    (array([5]), array([4]))
    """
    calls = np.ascontiguousarray(calls, dtype=np.uint8)
    alt, called = np.empty(len(calls), np.int64), np.empty(len(calls), np.int64)
    _count_calls(calls, n_samples, _BYTE_ALT, _BYTE_MISSING, _CODE_TO_ALT.astype(np.int64), alt, called)
    return alt, called


def allele_summaries(*, calls: np.ndarray | None = None, dosages: np.ndarray | None = None,
                     n_samples: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Alt allele frequency (NaN when nobody is called) and called-sample count per variant.

    Give packed ``calls`` (variants × bytes, with ``n_samples``) or ``dosages`` (variants × samples).
    """
    if calls is not None:
        assert n_samples is not None
        alt_count, called = call_summaries(calls, n_samples)
        alt_total = alt_count.astype(np.float64)
    else:
        assert dosages is not None
        called = (~np.isnan(dosages)).sum(axis=1)
        alt_total = np.nansum(dosages, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(called > 0, alt_total / (2.0 * called), np.nan), called.astype(np.int64)


def decode_calls_filled(rows: Rows, n_samples: int, *, dtype: type = np.float64,
                        samples: np.ndarray | None = None) -> tuple[np.ndarray, Missing]:
    """Packed hard-call rows → alt dosages (variants × samples) with 0 at missing calls, and where those are.

    One compiled pass from the packed bytes to ``dtype`` (no intermediate codes): each byte holding a
    chosen sample is one lookup of its chosen samples' values, packed together (:func:`_chosen_values`),
    whatever the choice; the missing calls' columns are written as they are met (while they fit in room
    for 3 % of the calls; past that, found again in a second pass over the rows that have any).
    ``samples`` keeps only those positions of the sample vector, in that order. ``dtype=np.uint8`` gives
    the counts as small integers, for integer matrix products (4× fewer bytes than float32).

    Examples
    --------
    >>> values, missing = decode_calls_filled(encode_calls(np.array([[0, 1, 2, np.nan, 2]])), 5, dtype=np.uint8)
    >>> values.tolist(), [m.tolist() for m in missing]
    ([[0, 1, 2, 0, 2]], [[0], [3]])
    """
    packed = byte_matrix(rows, packed_width(n_samples))
    columns = sample_columns(n_samples, samples)
    if np.any(np.diff(columns) <= 0):   # samples out of order, or repeated: each decoded once, in order, then placed
        distinct, placed = np.unique(columns, return_inverse=True)
        values, (lost_rows, lost_cols) = decode_calls_filled(packed, n_samples, dtype=dtype, samples=distinct)
        lost = np.zeros(values.shape, bool)
        lost[lost_rows, lost_cols] = True
        return values[:, placed], np.nonzero(lost[:, placed])
    pieces = _byte_pieces(columns)
    values, lost = np.empty((len(packed), len(columns)), dtype), np.empty(len(packed), np.int64)
    cols = np.empty(values.size // 32 + 16, np.int64)
    found = _decode_chosen(packed, *pieces, _chosen_values(np.dtype(dtype)), _CHOSEN_MISSING, values, lost, cols)
    rows, missing = np.flatnonzero(lost), int(lost.sum())
    if found < 0:
        cols = np.empty(missing, np.int64)
        _missing_columns(packed, columns, rows, cols)
    return values, (np.repeat(rows, lost[rows]), cols[:missing])


@functools.cache
def _chosen_values(dtype: np.dtype) -> np.ndarray:
    """mask × byte × 4: the values (0 at a missing call) of the byte's samples that the 4-bit mask chooses,
    packed to the front in slot order (the slots after them hold 0)."""
    rank = np.cumsum(_MASK_SLOTS, axis=1) - 1                     # a chosen slot's place among the chosen
    table = np.zeros((16, 256, 4), dtype)
    for mask in range(16):
        for slot in np.flatnonzero(_MASK_SLOTS[mask]):
            table[mask, :, rank[mask, slot]] = _CODE_TO_COUNT[_BYTE_CODES[:, slot]]
    return table


_ONE, _TWO, _THREE = np.uint64(1), np.uint64(2), np.uint64(3)
_LONG_RUN = 8   # whole bytes in a row worth a loop of their own (shorter runs go byte by byte)


def _byte_pieces(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The packed bytes holding the chosen samples (``columns``, ascending), as pieces in output order: a long
    run of whole bytes (every sample chosen) or one byte. Per piece: its first byte, its first output column,
    its length in bytes (0 for a single byte) and that byte's 4-bit mask of chosen slots."""
    starts = np.flatnonzero(np.diff(columns >> 2, prepend=-1))   # the first chosen sample of each byte
    if not len(starts):
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.uint8)
    byte, masks = (columns >> 2)[starts], np.bitwise_or.reduceat(np.left_shift(1, columns & 3), starts)
    whole = masks == 15
    run = np.flatnonzero(~whole | (np.diff(byte, prepend=-2) != 1) | ~np.r_[False, whole[:-1]])   # runs of whole bytes
    long = np.repeat(whole[run] & (np.diff(np.r_[run, len(byte)]) >= _LONG_RUN), np.diff(np.r_[run, len(byte)]))
    starts_run = np.zeros(len(byte), bool)
    starts_run[run] = True
    piece = np.flatnonzero(~long | starts_run)   # each byte but those inside a long run
    lengths = np.where(long[piece], np.diff(np.r_[piece, len(byte)]), 0)
    return byte[piece], starts[piece], lengths, masks[piece].astype(np.uint8)


@numba.njit(cache=True, nogil=True, inline="always")
def _missing_slots(byte, mask, column, cols, found):  # pragma: no cover
    """The output columns of the missing calls among the byte's chosen samples (``mask``), the first of them
    at ``column``, into ``cols`` from ``found`` on while they fit. Returns ``found`` plus their number."""
    rank = 0
    for slot in range(4):
        if (mask >> slot) & 1:
            if (byte >> (2 * slot)) & 3 == 1:
                if found < cols.shape[0]:
                    cols[found] = column + rank
                found += 1
            rank += 1
    return found


@numba.njit(cache=True, nogil=True)
def _decode_chosen(packed, first_byte, first_column, lengths, masks, chosen_values, chosen_missing, values, lost,
                   cols):  # pragma: no cover
    """values[v] = the values of the chosen samples of packed row v, piece by piece (:func:`_byte_pieces`): a run
    of whole bytes four values per byte looked up, a byte holding some its chosen values in one lookup (four
    written where there is room, the next piece overwriting those past its own). lost[v] = the row's missing
    calls, their columns written to ``cols`` row by row while they fit. Returns how many went there, or -1 if
    they did not all fit."""
    width, pieces, found = values.shape[1], first_byte.shape[0], 0
    full = chosen_values[15]
    for v in range(values.shape[0]):
        row, out, before = packed[v], values[v], found
        for p in range(pieces):
            column = first_column[p]
            if lengths[p]:
                source, target = row[first_byte[p]:], out[column:]   # indices from 0: no wraparound checks
                for k in range(lengths[p]):
                    byte = source[k]
                    target[4 * k], target[4 * k + 1] = full[byte, 0], full[byte, 1]
                    target[4 * k + 2], target[4 * k + 3] = full[byte, 2], full[byte, 3]
                    if chosen_missing[15, byte]:
                        found = _missing_slots(byte, 15, column + 4 * k, cols, found)
                continue
            byte, mask, at = row[first_byte[p]], masks[p], np.uint64(column)   # unsigned: no wraparound checks
            if column + 4 <= width:
                out[at], out[at + _ONE] = chosen_values[mask, byte, 0], chosen_values[mask, byte, 1]
                out[at + _TWO], out[at + _THREE] = chosen_values[mask, byte, 2], chosen_values[mask, byte, 3]
            else:
                for slot in range(width - column):
                    out[column + slot] = chosen_values[mask, byte, slot]
            if chosen_missing[mask, byte]:
                found = _missing_slots(byte, mask, column, cols, found)
        lost[v] = found - before
    return found if found <= cols.shape[0] else -1


@numba.njit(cache=True, nogil=True)
def _missing_columns(packed, columns, rows, cols):  # pragma: no cover
    """The output columns of the missing calls of each of ``rows``, row by row, into ``cols``."""
    at = 0
    for v in rows:
        row = packed[v]
        for j in range(columns.shape[0]):
            position = columns[j]
            if (row[position >> 2] >> ((position & 3) << 1)) & 3 == 1:
                cols[at] = j
                at += 1


def sample_columns(n_samples: int, samples: np.ndarray | None) -> np.ndarray:
    """The sample-vector positions to decode, in output order (each checked: the kernels index without bounds)."""
    if samples is None:
        return np.arange(n_samples, dtype=np.int64)
    columns = np.asarray(samples, dtype=np.int64)
    if len(columns) and (columns.min() < 0 or columns.max() >= n_samples):
        raise ValueError(f"sample positions must lie in [0, {n_samples}); got {columns.min()} to {columns.max()}")
    return columns


def zero_filled(values: np.ndarray, lost: np.ndarray) -> tuple[np.ndarray, Missing]:
    """``values`` (NaN at the ``lost[v]`` missing entries of each row v) with 0 there, and their coordinates."""
    rows = np.flatnonzero(lost)
    cols = np.empty(int(lost.sum()), np.int64)
    _take_missing(values, rows, cols)
    return values, (np.repeat(rows, lost[rows]), cols)


@numba.njit(cache=True, nogil=True)
def _take_missing(values, rows, cols):  # pragma: no cover
    """Zero the NaN entries of ``values`` in ``rows`` and write their columns, row by row, into ``cols``."""
    at = 0
    for v in rows:
        for j in range(values.shape[1]):
            if np.isnan(values[v, j]):
                values[v, j] = 0.0
                cols[at] = j
                at += 1


def decode_calls(rows: Rows, n_samples: int, *, dtype: type = np.float64) -> np.ndarray:
    """Packed hard-call rows → alt dosages, variants × samples, NaN where missing."""
    return _nan_at_missing(*decode_calls_filled(rows, n_samples, dtype=dtype))


def encode_dosages(dosages: np.ndarray) -> list[bytes]:
    """Alt dosages in [0, 2] (variants × samples, NaN missing) → one uint16 row per variant."""
    scaled = np.rint(np.clip(dosages, 0.0, 2.0) * _DOSAGE_SCALE)
    coded = np.where(np.isnan(dosages), _DOSAGE_MISSING, scaled).astype("<u2")
    return [row.tobytes() for row in coded]


def decode_dosages_filled(rows: Rows, n_samples: int, *, dtype: type = np.float64,
                          samples: np.ndarray | None = None) -> tuple[np.ndarray, Missing]:
    """uint16 dosage rows → alt dosages with 0 where missing, and the missing coordinates
    (as :func:`decode_calls_filled`)."""
    coded = byte_matrix(rows, 2 * n_samples).view("<u2")
    columns = sample_columns(n_samples, samples)
    values, lost = np.empty((len(coded), len(columns)), dtype), np.empty(len(coded), np.int64)
    _decode_dosages_kernel(coded, columns, _DOSAGE_MISSING, _DOSAGE_SCALE, values, lost)
    return zero_filled(values, lost)


@numba.njit(cache=True, nogil=True)
def _decode_dosages_kernel(coded, columns, missing_code, scale, values, lost):  # pragma: no cover
    """values[v, j] = coded[v, columns[j]] / scale (NaN for the missing code); lost[v] counts those."""
    for v in range(values.shape[0]):
        count = 0
        for j in range(columns.shape[0]):
            code = coded[v, columns[j]]
            if code == missing_code:
                values[v, j] = np.nan
                count += 1
            else:
                values[v, j] = code / scale
        lost[v] = count


def decode_dosages(rows: Rows, n_samples: int, *, dtype: type = np.float64) -> np.ndarray:
    """uint16 dosage rows → alt dosages, variants × samples, NaN where missing."""
    return _nan_at_missing(*decode_dosages_filled(rows, n_samples, dtype=dtype))


def _nan_at_missing(values: np.ndarray, missing: Missing) -> np.ndarray:
    values[missing] = np.nan
    return values


def encode_floats(values: np.ndarray) -> list[bytes]:
    """Float rows (e.g. betas, NaN missing) → one little-endian float32 blob per row."""
    return [row.tobytes() for row in np.ascontiguousarray(values, dtype="<f4")]


def decode_floats(rows: Rows, n_samples: int, *, dtype: type = np.float64) -> np.ndarray:
    """float32 blobs → rows × samples matrix."""
    return byte_matrix(rows, 4 * n_samples).view("<f4").astype(dtype)


def byte_matrix(rows: Rows, width: int) -> np.ndarray:
    """Equal-width binary rows as a rows × width uint8 matrix (zero-copy for one Arrow chunk)."""
    if isinstance(rows, np.ndarray):
        assert rows.ndim == 2 and rows.shape[1] == width, (rows.shape, width)
        return rows
    if isinstance(rows, pa.ChunkedArray):
        rows = rows.combine_chunks()
    if isinstance(rows, pa.BinaryArray):
        assert rows.null_count == 0, "null sample vector"
        offsets = np.frombuffer(rows.buffers()[1], np.int32, len(rows) + 1, rows.offset * 4)
        assert (np.diff(offsets) == width).all(), "sample vectors of unequal length"
        data = np.frombuffer(rows.buffers()[2], np.uint8)
        return data[offsets[0]:offsets[-1]].reshape(len(rows), width)
    buffer = np.frombuffer(b"".join(rows), dtype=np.uint8)
    assert buffer.size == width * len(rows), "sample vectors of unequal length"
    return buffer.reshape(len(rows), width)


def select_calls(calls: np.ndarray, n_samples: int, keep: np.ndarray) -> np.ndarray:
    """Packed hard calls (variants × bytes) restricted to the samples ``keep`` (positions), repacked."""
    codes = ((calls[:, :, None] >> np.array([0, 2, 4, 6], np.uint8)) & 3).reshape(len(calls), -1)
    return _pack_codes(codes[:, :n_samples][:, keep])


def select_fixed_width(rows: np.ndarray, item_bytes: int, keep: np.ndarray) -> np.ndarray:
    """Fixed-width vectors (rows × bytes; uint16 dosages, float32 betas) restricted to ``keep``."""
    items = rows.reshape(len(rows), -1, item_bytes)
    return np.ascontiguousarray(items[:, keep, :]).reshape(len(rows), -1)


def binary_column(matrix: np.ndarray) -> pa.Array:
    """A rows × bytes uint8 matrix as an Arrow binary column, one vector per row (no copy of the bytes)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.uint8)
    rows, width = matrix.shape
    if rows * width >= 2**31:   # int32 offsets: split larger matrices
        return pa.concat_arrays([binary_column(part) for part in np.array_split(matrix, 2 * rows * width // 2**31 + 1)])
    offsets = np.arange(0, (rows + 1) * width, width, dtype=np.int32)
    return pa.BinaryArray.from_buffers(pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(matrix)])


def encode_calls(alt_counts: np.ndarray) -> np.ndarray:
    """Alt allele counts (variants × samples; 0, 1, 2, anything else missing) → packed .bed bytes."""
    codes = np.full(alt_counts.shape, 1, np.uint8)  # 01: missing
    codes[alt_counts == 0], codes[alt_counts == 1], codes[alt_counts == 2] = 3, 2, 0
    return _pack_codes(codes)


def _pack_codes(codes: np.ndarray) -> np.ndarray:
    """2-bit codes (variants × samples) → packed bytes, low bits first, zero padding."""
    padded = np.zeros((len(codes), 4 * packed_width(codes.shape[1])), np.uint8)
    padded[:, :codes.shape[1]] = codes
    quads = padded.reshape(len(codes), -1, 4)
    return quads[..., 0] | quads[..., 1] << 2 | quads[..., 2] << 4 | quads[..., 3] << 6
