"""One intensity rule: the same slice in any container reaches the model as the same array."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from braintumor.data.preprocess import PreprocessConfig, preprocess
from braintumor.data.readers import read_image
from braintumor.data.readers.intensity import colour_saturation, eight_bit_embedding, to_uint8
from braintumor.data.resave import EXTENSIONS, RESAVES, dicom_bytes


@pytest.fixture
def scan(synthetic_slice) -> np.ndarray:
    """A head with a bright lesion, values spanning 0..230 (not the full 8-bit range)."""
    return synthetic_slice(96, seed=3, blob=(0.4, 0.4))


def test_uint8_is_returned_untouched(scan):
    assert to_uint8(scan) is scan


@pytest.mark.parametrize("factor", [257, 256, 1])
def test_lossless_16_bit_embeddings_come_back_bit_for_bit(scan, factor):
    np.testing.assert_array_equal(to_uint8(scan.astype(np.uint16) * factor), scan)


def test_embedding_needs_every_value_on_the_lattice(scan):
    deep = scan.astype(np.int64) * 257
    assert eight_bit_embedding(deep) == 257
    deep[5, 5] += 1  # one value off the lattice: real 16-bit data, not a re-save
    assert eight_bit_embedding(deep) is None
    assert eight_bit_embedding(scan.astype(np.int64)) is None  # already 8-bit


def test_deep_data_is_linear_from_zero_to_its_maximum_without_clipping():
    deep = np.tile(np.arange(0, 4000, 10, dtype=np.uint16), (8, 1))  # 0..3990
    out = to_uint8(deep)
    np.testing.assert_array_equal(out, np.floor(deep * (255 / 3990) + 0.5).astype(np.uint8))
    assert out.max() == 255 and (out == 255).sum() == 8  # only the maximum reaches 255


def test_negative_data_starts_at_its_minimum_and_floats_in_unit_range():
    hu = np.linspace(-1000, 2000, 64).reshape(8, 8)
    out = to_uint8(hu)
    assert out.min() == 0 and out.max() == 255
    unit = np.linspace(0, 1, 64).reshape(8, 8)
    np.testing.assert_array_equal(to_uint8(unit, unit_float=True), np.floor(unit * 255 + 0.5))
    assert to_uint8(unit).max() == 1  # without the convention: small values, kept as they are


def test_nan_becomes_zero():
    a = np.arange(64, dtype=np.float64).reshape(8, 8) * 40
    a[0, 0] = np.nan
    assert to_uint8(a)[0, 0] == 0


def _saturation_by_axis_reduction(rgb: np.ndarray) -> float:
    """colour_saturation as it was written first (max/min over the channel axis)."""
    a = np.asarray(rgb)[..., :3]
    chroma = a.max(axis=-1).astype(np.float64) - a.min(axis=-1)
    return float(np.nanmean(chroma) / 255.0)


@pytest.mark.parametrize("shape", [(512, 512, 3), (97, 61, 3), (40, 30, 4), (1, 1, 3)])
def test_colour_saturation_fast_path_is_bit_identical(shape):
    rng = np.random.default_rng(sum(shape))
    for rgb in (rng.integers(0, 256, shape, dtype=np.uint8),
                np.repeat(rng.integers(0, 256, shape[:2] + (1,), dtype=np.uint8), shape[2], -1),
                np.full(shape, 255, np.uint8)):
        assert colour_saturation(rgb) == _saturation_by_axis_reduction(rgb)
    assert colour_saturation(np.zeros(shape[:2] + (3,), np.uint8)) == 0.0


@pytest.mark.parametrize("name", sorted(RESAVES))
def test_every_resave_reads_back_as_the_8_bit_original(tmp_path, scan, name):
    path = tmp_path / f"scan{EXTENSIONS[name]}"
    path.write_bytes(RESAVES[name](scan))
    got = read_image(path).pixels
    assert np.abs(got.astype(int) - scan).max() <= 1, name
    cfg = PreprocessConfig(image_size=64)
    model_in = preprocess(got, cfg).image.astype(int)
    assert np.abs(model_in - preprocess(scan, cfg).image).max() <= 1, name


def test_resaves_of_a_decoded_jpeg_match_the_jpeg(tmp_path, scan):
    """The dataset's JPEGs are the reference: decode one, re-save it losslessly, compare."""
    buf = io.BytesIO()
    Image.fromarray(scan).save(buf, format="JPEG", quality=90)
    jpeg = read_image(buf.getvalue()).pixels
    for name in ("png16", "tiff16", "dicom", "dicom-window", "dicom-monochrome1"):
        np.testing.assert_array_equal(read_image(RESAVES[name](jpeg), name=name).pixels, jpeg)


def test_8_bit_dicom_without_window_is_no_longer_stretched(scan):
    # Before the rule, 8-bit DICOM without a window was stretched to its 0.5-99.5 % range.
    np.testing.assert_array_equal(read_image(dicom_bytes(scan, bits_stored=8)).pixels, scan)


@pytest.mark.parametrize("make", [
    lambda r: r.integers(0, 4096, (120, 90), dtype=np.uint16),  # a 12-bit scan
    lambda r: r.integers(-1024, 3000, (64, 64)).astype(np.int16),  # signed, below zero
    lambda r: (r.integers(0, 256, (50, 50)) * 257).astype(np.uint16),  # 8-bit, v * 257
    lambda r: (r.integers(0, 256, (50, 50)) << 8).astype(np.uint16),  # 8-bit, v << 8
    lambda r: (r.integers(0, 256, (50, 50)) * 257).astype(np.int32),
    lambda r: r.integers(0, 200, (40, 40)).astype(np.uint16),  # 8-bit values in 16 bits
    lambda r: r.integers(0, 70000, (40, 40)).astype(np.int32),  # beyond 16 bits
    lambda r: r.integers(-5, 5, (20, 20)).astype(np.int8),
    lambda r: r.integers(0, 2, (10, 10)).astype(bool),
    lambda r: np.full((4, 4), 300, np.uint16),
])
def test_integer_fast_path_matches_the_float_rule(make):
    """Integers skip the float64 copies (a DICOM decodes 5x faster) with the same result."""
    values = make(np.random.default_rng(0))
    fast = to_uint8(values)
    assert fast.dtype == np.uint8
    assert np.array_equal(fast, to_uint8(values.astype(np.float64)))
