import numpy as np
import pytest

from biolake.lake.vectors import (call_summaries, decode_calls, decode_calls_filled, decode_dosages,
                          decode_floats, encode_dosages, encode_floats, packed_width)
from biolake.queries.blocks import decode_betas_filled


def pack_calls(dosage: np.ndarray) -> np.ndarray:
    """Reference packer (variants × samples alt counts, NaN missing) → .bed bytes."""
    codes = np.select([dosage == 2, dosage == 1, dosage == 0], [0, 2, 3], default=1).astype(np.uint8)
    n = dosage.shape[1]
    padded = np.zeros((dosage.shape[0], 4 * packed_width(n)), np.uint8)
    padded[:, :n] = codes
    quads = padded.reshape(dosage.shape[0], -1, 4)
    return (quads[..., 0] | quads[..., 1] << 2 | quads[..., 2] << 4 | quads[..., 3] << 6).astype(np.uint8)


@pytest.mark.parametrize("n_samples", [1, 4, 5, 7, 301])
def test_decode_calls__round_trips_any_sample_count(n_samples):
    rng = np.random.default_rng(n_samples)
    dosage = rng.integers(0, 3, size=(9, n_samples)).astype(float)
    dosage[rng.random(dosage.shape) < 0.1] = np.nan
    packed = pack_calls(dosage)
    decoded = decode_calls([row.tobytes() for row in packed], n_samples)
    np.testing.assert_array_equal(decoded, dosage)


@pytest.mark.parametrize("n_samples", [1, 5, 6, 8])
def test_call_summaries__padding_never_counts(n_samples):
    dosage = np.full((2, n_samples), 1.0)
    dosage[1, 0] = np.nan
    alt, called = call_summaries(pack_calls(dosage), n_samples)
    np.testing.assert_array_equal(called, [n_samples, n_samples - 1])
    np.testing.assert_array_equal(alt, [n_samples, n_samples - 1])


@pytest.mark.parametrize("n_samples", [31, 32, 33, 64, 127, 128, 129, 1001])
def test_call_summaries__whole_words_and_the_bytes_after_them_agree_with_decoding(n_samples):
    """The counting kernel takes 32 calls per population count, then single bytes, then the padded
    last byte: every sample count that ends a row in each of those places."""
    rng = np.random.default_rng(n_samples)
    dosage = rng.choice([0.0, 1.0, 2.0, np.nan], size=(20, n_samples), p=[0.4, 0.3, 0.2, 0.1])
    packed = pack_calls(dosage)
    packed.setflags(write=False)   # as read from a file
    alt, called = call_summaries(packed, n_samples)
    np.testing.assert_array_equal(alt, np.nansum(dosage, axis=1))
    np.testing.assert_array_equal(called, (~np.isnan(dosage)).sum(axis=1))


def test_decode_dosages__finer_than_bgen_8bit():
    rng = np.random.default_rng(0)
    dosage = rng.uniform(0, 2, size=(5, 1000))
    dosage[0, :3] = np.nan
    decoded = decode_dosages(encode_dosages(dosage), 1000)
    assert np.isnan(decoded[0, :3]).all()
    assert np.nanmax(np.abs(decoded - dosage)) <= 1 / 65534 + 1e-12  # BGEN 8-bit: 1/255


def test_decode_floats__round_trips_float32_with_nan():
    values = np.array([[0.1, np.nan, 0.9], [0.0, 1.0, 0.5]])
    np.testing.assert_array_equal(decode_floats(encode_floats(values), 3),
                                  values.astype(np.float32).astype(float))


def test_decode_calls_filled__zero_fills_reports_missing_and_selects_samples():
    rng = np.random.default_rng(1)
    dosage = rng.integers(0, 3, size=(6, 9)).astype(float)
    dosage[0, 0] = dosage[4, 7] = np.nan
    packed = pack_calls(dosage)
    keep = np.array([7, 0, 3])
    values, missing = decode_calls_filled(packed, 9, dtype=np.float32, samples=keep)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(values, np.nan_to_num(dosage[:, keep]))
    assert [tuple(m) for m in missing] == [(0, 4), (1, 0)]
    np.testing.assert_array_equal(decode_calls(packed, 9), dosage)


@pytest.mark.parametrize("samples", [[0, 9], [-1, 3]])
def test_decode_calls_filled__refuses_sample_positions_outside_the_vector(samples):
    with pytest.raises(ValueError, match=r"sample positions must lie in \[0, 9\)"):
        decode_calls_filled(pack_calls(np.zeros((2, 9))), 9, samples=np.array(samples))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.float64])
@pytest.mark.parametrize("missing_rate", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("n_samples", [1, 7, 8, 301])
def test_decode_calls_filled__equals_the_unpacked_calls_for_any_choice_of_samples(n_samples, missing_rate, dtype):
    """Counts (for integer products) and floats: the values and missing calls of the unpacked dosages, for all the
    samples, runs of them starting and ending inside a byte, runs of whole bytes just short of and as long as
    their own loop's, a permutation, repeats and none. At 50 % missing the calls' columns do not fit the room
    kept for them and are found again."""
    rng = np.random.default_rng(n_samples)
    dosage = rng.integers(0, 3, size=(40, n_samples)).astype(float)
    dosage[rng.random(dosage.shape) < missing_rate] = np.nan
    packed = pack_calls(dosage)
    gappy = np.flatnonzero(rng.random(n_samples) < 0.8)
    # runs of exactly 7 and 8 whole bytes, two long runs a byte apart, then bytes holding 1-3 chosen near the end
    runs = np.r_[np.arange(0, 28), np.arange(32, 64), np.arange(68, 100), 101, n_samples - 5, n_samples - 2,
                 n_samples - 1]
    runs = np.unique(runs[(runs >= 0) & (runs < n_samples)])
    repeated = np.array([5, 5, 2])[np.array([5, 5, 2]) < n_samples]
    for keep in (None, gappy, np.arange(n_samples)[1:-1], rng.permutation(n_samples), np.arange(0), runs, repeated):
        chosen = dosage if keep is None else dosage[:, keep]
        values, missing = decode_calls_filled(packed, n_samples, dtype=dtype, samples=keep)
        assert values.dtype == dtype
        np.testing.assert_array_equal(values, np.nan_to_num(chosen))
        for ours, theirs in zip(missing, np.nonzero(np.isnan(chosen))):
            np.testing.assert_array_equal(ours, theirs)


def test_decode_betas_filled__betas_of_zero_or_one_are_missing_m_values():
    betas = np.array([[0.5, 1.0, 0.0, np.nan, 0.8]])
    values, (rows, cols) = decode_betas_filled(encode_floats(betas), 5, m_values=True)
    np.testing.assert_allclose(values, [[0.0, 0.0, 0.0, 0.0, 2.0]], atol=1e-6)
    assert cols.tolist() == [1, 2, 3] and rows.tolist() == [0, 0, 0]
    values, (_, cols) = decode_betas_filled(encode_floats(betas), 5, samples=np.array([4, 1]))
    np.testing.assert_allclose(values, [[0.8, 1.0]], atol=1e-7)   # betas themselves: 1.0 is a value
    assert cols.tolist() == []
