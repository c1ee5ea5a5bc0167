"""Read any brain MRI slice a user is likely to hold as a 2-D uint8 grayscale array.

``read_image`` accepts a path, raw bytes, a numpy array or a PIL image and picks the reader
by content, not by extension (a ``.jpg`` that is really a PNG still reads).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from braintumor.data.errors import ImageReadError
from braintumor.data.readers.base import DEFAULT_MAX_PIXELS, ImageMeta, ImageReader, LoadedImage
from braintumor.data.readers.pil import PILReader

READERS: list[ImageReader] = [PILReader()]

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "ImageMeta",
    "ImageReadError",
    "ImageReader",
    "LoadedImage",
    "READERS",
    "read_image",
]


def read_image(source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None) -> LoadedImage:
    """Decode ``source`` (path, bytes, numpy array or PIL image) into a grayscale slice."""
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, name or "<array>")
    if hasattr(source, "mode") and hasattr(source, "size") and hasattr(source, "convert"):
        from braintumor.data.readers.pil import _to_gray_uint8

        arr = _to_gray_uint8(source)
        h, w = arr.shape
        return LoadedImage(arr, ImageMeta(name or "<PIL image>", (h, w), "PIL", source.mode))
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path, label = bytes(source), None, name or "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        if not path.is_file():
            raise ImageReadError(label, "no such file")
        data = path.read_bytes()
    else:
        raise ImageReadError(name or repr(type(source)), "unsupported input type")
    head = data[:512]
    for reader in READERS:
        if reader.can_read(head, path):
            return reader.read(data, label, max_pixels=max_pixels)
    raise ImageReadError(label, "no reader for this file format")


def _from_array(arr: np.ndarray, source: str) -> LoadedImage:
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if arr.ndim != 2:
        raise ImageReadError(source, f"array of shape {arr.shape} is not a 2-D slice")
    if arr.dtype != np.uint8:
        a = arr.astype(np.float64)
        lo, hi = float(np.nanmin(a)), float(np.nanmax(a))
        if a.max() <= 1.0 and a.min() >= 0.0:
            lo, hi = 0.0, 1.0
        arr = (np.clip((a - lo) / max(hi - lo, 1e-12), 0, 1) * 255 + 0.5).astype(np.uint8)
    h, w = arr.shape
    return LoadedImage(np.ascontiguousarray(arr), ImageMeta(source, (h, w), "array", str(arr.dtype)))
