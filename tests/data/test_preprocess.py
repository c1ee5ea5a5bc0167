"""The one preprocessing path: brain crop, square, resize, and the way back for heatmaps."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.data.preprocess import (
    CropInfo,
    PreprocessConfig,
    find_head_box,
    map_to_original,
    preprocess,
    to_model_input,
)

CFG = PreprocessConfig(image_size=64)


def _head_bbox(img: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(img.any(axis=1)), np.flatnonzero(img.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


def test_crop_finds_the_head_inside_black_borders(synthetic_slice):
    img = synthetic_slice(96, seed=1, pad=40)  # 176x176, head roughly in the middle 96
    top, left, bottom, right = find_head_box(img, CFG)
    h_top, h_left, h_bottom, h_right = _head_bbox(img)
    # The box holds the whole head ...
    assert top <= h_top and left <= h_left and bottom >= h_bottom and right >= h_right
    # ... and little else: at most margin + downsampling step of background on each side.
    slack = int(CFG.crop_margin * 96) + 176 // 64 + 2
    assert h_top - top <= slack and h_left - left <= slack
    assert bottom - h_bottom <= slack and right - h_right <= slack
    assert bottom - top < 0.7 * img.shape[0]  # the 40 px borders are gone


def test_cropped_head_fills_the_model_input(synthetic_slice):
    padded = preprocess(synthetic_slice(96, seed=1, pad=40), CFG).image
    # Without cropping most of the frame would be border; with it the head fills it.
    uncropped = preprocess(synthetic_slice(96, seed=1, pad=40), PreprocessConfig(64, crop=False))
    assert (padded > 0).mean() > 0.6
    assert (uncropped.image > 0).mean() < 0.35


@pytest.mark.parametrize("kind", ["blank", "uniform noise", "sparse salt noise"])
def test_crop_falls_back_to_whole_image(kind):
    rng = np.random.default_rng(0)
    img = np.zeros((100, 120), np.uint8)
    if kind == "uniform noise":
        img = rng.integers(0, 256, img.shape).astype(np.uint8)
    elif kind == "sparse salt noise":
        img[rng.random(img.shape) < 0.01] = 255
    assert find_head_box(img, CFG) == (0, 0, 100, 120)


def test_crop_disabled_uses_whole_image(synthetic_slice):
    img = synthetic_slice(96, seed=1, pad=40)
    assert find_head_box(img, PreprocessConfig(crop=False)) == (0, 0, 176, 176)


@pytest.mark.parametrize("shape_pad", [((0, 0), (0, 0)), ((10, 10), (60, 20)), ((50, 0), (0, 0))])
def test_output_size_and_dtype(synthetic_slice, shape_pad):
    img = np.pad(synthetic_slice(96, seed=2), shape_pad)
    out = preprocess(img, CFG)
    assert out.image.shape == (64, 64) and out.image.dtype == np.uint8
    assert out.image.flags["C_CONTIGUOUS"] and out.image.flags["WRITEABLE"]
    assert out.crop.original_size == img.shape
    assert out.crop.side >= 1


def test_preprocess_is_deterministic(synthetic_slice):
    img = synthetic_slice(96, seed=4, blob=(0.4, 0.6), pad=13)
    a, b = preprocess(img, CFG), preprocess(img.copy(), CFG)
    np.testing.assert_array_equal(a.image, b.image)
    assert a.crop == b.crop


def test_preprocess_refuses_non_uint8_or_non_2d():
    with pytest.raises(ValueError, match="expected a 2-D uint8 slice"):
        preprocess(np.zeros((32, 32), np.float32))
    with pytest.raises(ValueError, match="expected a 2-D uint8 slice"):
        preprocess(np.zeros((32, 32, 3), np.uint8))


@pytest.mark.parametrize("pad", [((40, 40), (40, 40)), ((10, 10), (60, 20)), ((0, 0), (0, 0))])
def test_map_to_original_puts_a_square_back_where_it_was(synthetic_slice, pad):
    img = np.pad(synthetic_slice(96, seed=5), pad)
    out = preprocess(img, CFG)
    crop, s = out.crop, CFG.image_size
    # A known square in model space ...
    r0, c0, n = 20, 28, 12
    heat = np.zeros((s, s), np.float32)
    heat[r0 : r0 + n, c0 : c0 + n] = 1.0
    back = map_to_original(heat, crop)
    assert back.shape == img.shape
    # ... lands on the same square in original pixel coordinates.
    scale = crop.side / s
    top, left = crop.top + r0 * scale, crop.left + c0 * scale
    bottom, right = top + n * scale, left + n * scale
    inner = back[int(top) + 2 : int(bottom) - 2, int(left) + 2 : int(right) - 2]
    assert inner.size and inner.min() > 0.95
    outside = np.ones(img.shape, bool)
    outside[int(top) - 2 : int(bottom) + 3, int(left) - 2 : int(right) + 3] = False
    assert back[outside].max() < 0.05
    # The mapped mass matches the square's area in original pixels (bilinear edges aside).
    assert back.sum() == pytest.approx((n * scale) ** 2, rel=0.1)


def test_map_to_original_zero_outside_the_crop_square():
    crop = CropInfo(original_size=(50, 80), top=-10, left=30, side=60)  # sticks out the top
    back = map_to_original(np.ones((16, 16), np.float32), crop)
    assert back.shape == (50, 80)
    assert (back[:, :30] == 0).all() and (back[:, 30:80] > 0.99).all()


def test_map_to_original_accepts_a_map_already_at_crop_size():
    crop = CropInfo(original_size=(40, 40), top=5, left=5, side=30)
    heat = np.random.default_rng(0).random((30, 30)).astype(np.float32)
    back = map_to_original(heat, crop)
    np.testing.assert_array_equal(back[5:35, 5:35], heat)


def test_config_key_is_stable_and_tracks_every_parameter():
    assert PreprocessConfig().key() == PreprocessConfig().key()
    keys = {
        PreprocessConfig().key(),
        PreprocessConfig(image_size=96).key(),
        PreprocessConfig(crop=False).key(),
        PreprocessConfig(crop_threshold=0.1).key(),
        PreprocessConfig(crop_margin=0.1).key(),
    }
    assert len(keys) == 5
    cfg = PreprocessConfig(image_size=96, crop_margin=0.1)
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg


def test_to_model_input_scales_to_unit_range():
    imgs = np.stack([np.zeros((8, 8), np.uint8), np.full((8, 8), 255, np.uint8)])
    x = to_model_input(imgs)
    assert tuple(x.shape) == (2, 1, 8, 8) and str(x.dtype) == "torch.float32"
    assert float(x[0].max()) == 0.0 and float(x[1].min()) == 1.0
    assert tuple(to_model_input(imgs[0]).shape) == (1, 1, 8, 8)
