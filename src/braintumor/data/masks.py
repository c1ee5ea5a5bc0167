"""Tumour masks: where they live beside a dataset, how they are read, and how they reach the
model's grid.

A masks folder mirrors the dataset (same relative path, ``.png``), as
``brain-tumor-mri-masks/`` does for the Kaggle Training images. Masks serve two stages:
measuring whether a heatmap lands on the tumour (``explain.evidence``, on the image's own
grid) and, optionally, supervising training (``training``: an auxiliary mask loss, on the
model's grid, via the same crop as the image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor.data.preprocess import CropInfo, apply_crop


def mask_path(masks_root: Path, data_root: Path, image: Path) -> Path:
    """``masks_root`` mirrors the dataset: same relative path, ``.png``."""
    return (Path(masks_root) / Path(image).relative_to(data_root)).with_suffix(".png")


def read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """A boolean (H, W) mask; ``ValueError`` (saying what is wrong) if it cannot be one for an
    image of ``shape``."""
    with Image.open(path) as im:
        mask = np.asarray(im.convert("L")) > 127
    if mask.shape != tuple(shape):
        raise ValueError(f"mask is {mask.shape[1]}x{mask.shape[0]} but its image is "
                         f"{shape[1]}x{shape[0]}")
    if not mask.any():
        raise ValueError("mask is empty")
    return mask


def mask_on_model_grid(mask: np.ndarray, crop: CropInfo, size: int) -> np.ndarray:
    """uint8 (size, size): the mask cut and resized exactly like its image (255 = tumour;
    edge pixels come out partial, from the same bilinear resize)."""
    return apply_crop(np.asarray(mask, dtype=np.uint8) * 255, crop, size)


@dataclass
class MaskRows:
    masks: np.ndarray  # (N, S, S) uint8, 255 = tumour
    has_mask: np.ndarray  # (N,) bool: False = this image takes no part in the mask loss
    problems: list[tuple[str, str]]  # (mask file, what is wrong with it)


def masks_for_rows(paths: Sequence[str | Path], labels: Sequence[str], crops: Sequence[CropInfo],
                   data_root: Path, masks_root: Path, size: int,
                   empty_classes: Sequence[str] = ()) -> MaskRows:
    """Masks on the model grid for cached images (their crops are in the cache).

    An image of ``empty_classes`` gets an all-zero mask without a file (no tumour to draw);
    one with a mask file gets that mask; any other image, or one whose mask cannot be used
    (unreadable, wrong size, empty), gets none, and the reason is listed, so a bad mask costs
    that image its mask, never the run.
    """
    n = len(paths)
    out = np.zeros((n, size, size), dtype=np.uint8)
    has = np.zeros(n, dtype=bool)
    problems: list[tuple[str, str]] = []
    empty = set(empty_classes)
    for i, (path, label, crop) in enumerate(zip(paths, labels, crops, strict=True)):
        if label in empty:
            has[i] = True
            continue
        try:
            mp = mask_path(masks_root, data_root, Path(path))
        except ValueError:  # e.g. a CSV manifest pointing outside the data folder
            problems.append((str(path), f"not under {data_root}, so no mask path for it"))
            continue
        if not mp.is_file():
            continue
        try:
            out[i] = mask_on_model_grid(read_mask(mp, crop.original_size), crop, size)
        except (ValueError, OSError) as exc:
            problems.append((str(mp), str(exc)))
            continue
        has[i] = True
    return MaskRows(out, has, problems)
