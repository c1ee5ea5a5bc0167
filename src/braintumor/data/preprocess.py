"""The one preprocessing function shared by training, evaluation, explanation and serving.

A slice goes: grayscale uint8 -> brain crop (largest bright component, with a margin) ->
square box around it (zero padding, so the aspect ratio is kept and a heatmap maps back
exactly) -> resize to ``image_size``. The result stays uint8 so the decoded cache can store
exactly what inference computes; ``to_model_input`` is the only place that scales to [0, 1].
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch
from PIL import Image
from scipy import ndimage

PREPROCESS_VERSION = 1


@dataclass(frozen=True)
class PreprocessConfig:
    image_size: int = 128
    crop: bool = True
    # A pixel is "head" when brighter than this fraction of the slice's 99th percentile.
    crop_threshold: float = 0.08
    # Margin added around the head's bounding box, as a fraction of its larger side.
    crop_margin: float = 0.04
    # Below this share of the image the component is noise, and the whole image is used.
    min_region_fraction: float = 0.03

    def to_dict(self) -> dict:
        return {"version": PREPROCESS_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> PreprocessConfig:
        fields = {k: v for k, v in d.items() if k in cls.__dataclass_fields__}
        return cls(**fields)

    def key(self) -> str:
        """A short stable hash, part of every cache key."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class CropInfo:
    """Where the model's square input lies in the original image.

    ``top``/``left``/``side`` describe the square in original pixel coordinates; it may
    extend past the image edges (that part was zero padding).
    """

    original_size: tuple[int, int]  # (H, W)
    top: int
    left: int
    side: int


@dataclass(frozen=True)
class Preprocessed:
    image: np.ndarray  # (S, S) uint8
    crop: CropInfo


def find_head_box(pixels: np.ndarray, cfg: PreprocessConfig) -> tuple[int, int, int, int]:
    """Bounding box (top, left, bottom, right) of the head; the whole image as a fallback.

    The component search runs on a 4x-downsampled mask: connected components at full
    resolution cost more than the rest of preprocessing together, and the box only needs
    a few pixels of precision (the margin absorbs it).
    """
    h, w = pixels.shape
    full = (0, 0, h, w)
    if not cfg.crop or h < 8 or w < 8:
        return full
    step = max(1, min(h, w) // 64)
    small = pixels[::step, ::step]
    ref = float(np.percentile(small, 99))
    if ref <= 0:
        return full
    mask = small > cfg.crop_threshold * ref
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n == 0:
        return full
    sizes = np.bincount(labels.ravel())[1:]
    biggest = int(np.argmax(sizes)) + 1
    if sizes[biggest - 1] < cfg.min_region_fraction * mask.size:
        return full
    rows = np.flatnonzero((labels == biggest).any(axis=1))
    cols = np.flatnonzero((labels == biggest).any(axis=0))
    top, bottom = int(rows[0]) * step, min(h, (int(rows[-1]) + 1) * step)
    left, right = int(cols[0]) * step, min(w, (int(cols[-1]) + 1) * step)
    margin = int(round(cfg.crop_margin * max(bottom - top, right - left)))
    return (
        max(0, top - margin),
        max(0, left - margin),
        min(h, bottom + margin),
        min(w, right + margin),
    )


def preprocess(pixels: np.ndarray, cfg: PreprocessConfig | None = None) -> Preprocessed:
    """Crop, square and resize a 2-D uint8 slice; the same call at train and serve time."""
    cfg = cfg or PreprocessConfig()
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise ValueError(f"expected a 2-D uint8 slice, got {pixels.dtype} of shape {pixels.shape}")
    h, w = pixels.shape
    top, left, bottom, right = find_head_box(pixels, cfg)
    side = max(bottom - top, right - left)
    crop = CropInfo((h, w), top - (side - (bottom - top)) // 2,
                    left - (side - (right - left)) // 2, side)
    return Preprocessed(apply_crop(pixels, crop, cfg.image_size), crop)


def apply_crop(pixels: np.ndarray, crop: CropInfo, size: int) -> np.ndarray:
    """Cut ``crop``'s square out of a uint8 (H, W) array (zero outside it), resized to ``size``.

    Separate from :func:`preprocess` so that anything on the image's grid (a tumour mask)
    lands on the model's grid exactly as the image did.
    """
    h, w = pixels.shape
    side, sq_top, sq_left = crop.side, crop.top, crop.left
    canvas = np.zeros((side, side), dtype=np.uint8)
    src_t, src_l = max(0, sq_top), max(0, sq_left)
    src_b, src_r = min(h, sq_top + side), min(w, sq_left + side)
    canvas[src_t - sq_top : src_b - sq_top, src_l - sq_left : src_r - sq_left] = pixels[
        src_t:src_b, src_l:src_r
    ]
    if side != size:
        # Pillow's bilinear filter widens its support when shrinking, i.e. it antialiases.
        # np.array, not asarray: Pillow's buffer is read-only, the canvas above is not, and
        # callers should get the same kind of array whichever branch ran.
        canvas = np.array(Image.fromarray(canvas).resize((size, size), Image.Resampling.BILINEAR))
    return np.ascontiguousarray(canvas)


def to_model_input(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S) or (S, S) -> float tensor (N, 1, S, S) in [0, 1]."""
    import torch

    arr = np.asarray(images)
    if arr.ndim == 2:
        arr = arr[None]
    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:  # rows of the memory-mapped cache; torch wants writable memory
        arr = arr.copy()
    return torch.from_numpy(arr).float().div_(255.0).unsqueeze(1)


def map_to_original(heatmap: np.ndarray, crop: CropInfo) -> np.ndarray:
    """Bring an (S, S) map back onto the original image's (H, W) grid.

    Undoes the resize and the crop; pixels outside the model's square get 0.
    """
    h, w = crop.original_size
    side = crop.side
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.shape != (side, side):
        heat = np.asarray(Image.fromarray(heat, mode="F").resize((side, side),
                                                                  Image.Resampling.BILINEAR))
    out = np.zeros((h, w), dtype=np.float32)
    top, left = crop.top, crop.left
    dst_t, dst_l = max(0, top), max(0, left)
    dst_b, dst_r = min(h, top + side), min(w, left + side)
    if dst_b > dst_t and dst_r > dst_l:
        out[dst_t:dst_b, dst_l:dst_r] = heat[dst_t - top : dst_b - top, dst_l - left : dst_r - left]
    return out
