"""Raster formats through Pillow: JPEG, PNG (8/16-bit), BMP, TIFF, GIF."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor.data.errors import ImageReadError
from braintumor.data.readers.base import DEFAULT_MAX_PIXELS, ImageMeta, ImageReader, LoadedImage


class PILReader(ImageReader):
    name = "pil"

    def can_read(self, head: bytes, path: Path | None) -> bool:
        return True  # the fallback: Pillow itself decides whether it knows the format

    def read(self, data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
        if not data:
            raise ImageReadError(source, "file is empty")
        try:
            img = Image.open(io.BytesIO(data))
        except Exception as exc:  # Pillow raises several types for unknown data
            raise ImageReadError(source, f"not a readable image ({exc.__class__.__name__})") from exc
        w, h = img.size
        if w * h > max_pixels:
            raise ImageReadError(source, f"image is {w}x{h} pixels, above the limit of {max_pixels}")
        fmt = img.format or "unknown"
        notes: list[str] = []
        if getattr(img, "n_frames", 1) > 1:
            notes.append(f"multi-frame image ({img.n_frames} frames): using the first")
            warnings.warn(f"{source}: {notes[-1]}", stacklevel=2)
        mode = img.mode
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
        except Exception as exc:
            raise ImageReadError(source, f"cannot decode {fmt} data ({exc})") from exc
        pixels = _to_gray_uint8(img)
        return LoadedImage(pixels, ImageMeta(source, (h, w), fmt, mode, tuple(notes)))


def _to_gray_uint8(img: Image.Image) -> np.ndarray:
    """Grayscale uint8; 16-bit data is scaled by its own range, not truncated."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = np.percentile(arr, [0.5, 99.5])
        if hi <= lo:
            hi = lo + 1.0
        return (np.clip((arr - lo) / (hi - lo), 0, 1) * 255 + 0.5).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
        bg = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(bg, img)
    return np.asarray(img.convert("L"), dtype=np.uint8).copy()
