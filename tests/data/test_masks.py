"""Tumour masks: paths beside the dataset, reading errors, and the model-grid crop."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from braintumor.data.masks import mask_on_model_grid, mask_path, masks_for_rows, read_mask
from braintumor.data.preprocess import PreprocessConfig, preprocess
from tests.conftest import BLOB_CENTRES, blob_mask, make_slice


def test_mask_path_mirrors_the_dataset(tmp_path):
    data, masks = tmp_path / "data", tmp_path / "masks"
    img = data / "Training" / "glioma" / "Tr-gl_0001.jpg"
    assert mask_path(masks, data, img) == masks / "Training" / "glioma" / "Tr-gl_0001.png"


def test_read_mask_rejects_wrong_size_and_empty(tmp_path):
    p = tmp_path / "m.png"
    Image.fromarray(np.zeros((20, 30), np.uint8)).save(p)
    with pytest.raises(ValueError, match="mask is 30x20 but its image is 20x20"):
        read_mask(p, (20, 20))
    with pytest.raises(ValueError, match="empty"):
        read_mask(p, (20, 30))


def test_mask_lands_on_the_model_grid_where_the_image_content_does():
    # A padded slice: preprocessing crops the head and resizes; the blob's mask must follow.
    raw = make_slice(96, seed=3, blob=BLOB_CENTRES["glioma"], pad=20)
    mask = np.pad(blob_mask(96, 3, "glioma"), 20)
    pre = preprocess(raw, PreprocessConfig(image_size=48))
    grid = mask_on_model_grid(mask, pre.crop, 48)
    assert grid.shape == (48, 48) and grid.dtype == np.uint8
    inside = grid > 127
    bright = pre.image > 200  # the blob (230) after the same resize
    assert inside.sum() > 10
    iou = (inside & bright).sum() / (inside | bright).sum()
    assert iou > 0.8


def test_masks_for_rows_marks_missing_empty_class_and_bad_files(tmp_path):
    data, masks = tmp_path / "data", tmp_path / "masks"
    crops, paths, labels = [], [], []
    for label, name in (("glioma", "a"), ("glioma", "b"), ("notumor", "c"), ("meningioma", "d")):
        raw = make_slice(32, seed=len(paths), blob=BLOB_CENTRES.get(label))
        path = data / "Training" / label / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(raw).save(path)
        paths.append(str(path))
        labels.append(label)
        crops.append(preprocess(raw, PreprocessConfig(image_size=16)).crop)
    (masks / "Training" / "glioma").mkdir(parents=True)
    good = np.zeros((32, 32), np.uint8)
    good[4:10, 4:10] = 255
    Image.fromarray(good).save(masks / "Training" / "glioma" / "a.png")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / "Training" / "glioma" / "b.png")
    got = masks_for_rows(paths, labels, crops, data, masks, 16, empty_classes=["notumor"])
    # a: its mask; b: wrong size (listed, left out); c: empty class; d: no file (left out)
    assert got.has_mask.tolist() == [True, False, True, False]
    assert got.masks[0].max() == 255 and got.masks[2].max() == 0
    assert len(got.problems) == 1 and "b.png" in got.problems[0][0]
    assert "mask is 8x8 but its image is 32x32" in got.problems[0][1]
