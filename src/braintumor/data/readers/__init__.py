"""Read any brain MRI slice a user is likely to hold as a 2-D uint8 grayscale array.

``read_image`` accepts a path, raw bytes, a numpy array or a PIL image and picks the reader
by content, not by extension (a ``.jpg`` that is really a PNG still reads). Every input,
whatever its kind, passes the same checks (size, blank) and comes out as the same thing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor.data.errors import ImageReadError, ImageReadWarning
from braintumor.data.readers.base import (
    BLANK_STD_FRACTION,
    DEFAULT_MAX_PIXELS,
    MIN_SIDE,
    READER_VERSION,
    ImageMeta,
    ImageReader,
    LoadedImage,
    check_content,
)
from braintumor.data.readers.dicom import DicomReader
from braintumor.data.readers.intensity import to_uint8
from braintumor.data.readers.pil import PILReader, image_to_loaded

# Tried in order; the first whose ``can_read`` accepts the data reads it. Pillow is last
# because it is the fallback that names the problem when nothing else claims the bytes.
READERS: list[ImageReader] = [DicomReader(), PILReader()]

__all__ = [
    "BLANK_STD_FRACTION",
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "ImageMeta",
    "ImageReadError",
    "ImageReadWarning",
    "ImageReader",
    "LoadedImage",
    "READERS",
    "READER_VERSION",
    "read_image",
]


def read_image(
    source, *, max_pixels: int = DEFAULT_MAX_PIXELS, name: str | None = None,
    max_side: int | None = None,
) -> LoadedImage:
    """Decode ``source`` (path, bytes, numpy array or PIL image) into a grayscale slice.

    ``name`` labels bytes/array inputs in messages (e.g. an upload's file name).
    ``max_side`` decodes a larger raster reduced to at most that many pixels per side (the
    service uses it to bound memory; see readers/shrink.py). Raises
    :class:`ImageReadError` naming the input and the problem; multi-frame inputs read
    their first frame and emit an :class:`ImageReadWarning`.
    """
    if isinstance(source, LoadedImage):
        return source
    if isinstance(source, np.ndarray):
        return _from_array(source, name or "<array>", max_pixels)
    if isinstance(source, Image.Image):
        return image_to_loaded(
            source, name or getattr(source, "filename", "") or "<PIL image>", max_pixels
        )
    if isinstance(source, (bytes, bytearray, memoryview)):
        data, path, label = bytes(source), None, name or "<bytes>"
        if name:
            path = Path(name)  # lets a ".dcm" upload without preamble reach the DICOM reader
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        label = name or str(path)
        data = _read_file(path, label)
    else:
        raise ImageReadError(
            name or f"<{type(source).__name__}>",
            f"unsupported input type {type(source).__name__}: pass a path, bytes, a numpy "
            "array or a PIL image",
        )
    head = data[:512]
    for reader in READERS:
        if reader.can_read(head, path):
            return reader.read(data, label, max_pixels=max_pixels, max_side=max_side)
    raise ImageReadError(label, "no reader for this file format")


def _read_file(path: Path, label: str) -> bytes:
    if path.is_dir():
        raise ImageReadError(label, "is a folder, not an image file")
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ImageReadError(label, "no such file") from None
    except PermissionError:
        raise ImageReadError(label, "permission denied") from None
    except OSError as exc:
        raise ImageReadError(label, f"cannot read file ({exc.strerror or exc})") from None


def _from_array(arr: np.ndarray, source: str, max_pixels: int) -> LoadedImage:
    """Arrays follow the file rules: uint8 colour goes through Pillow's luma, so a PNG and
    ``np.asarray(Image.open(png))`` give identical pixels; deeper data follows the intensity
    rule (readers/intensity.py), floats within [0, 1] are scaled by 255.
    """
    original_dtype = str(arr.dtype)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        if arr.dtype == np.uint8:
            mode = "RGB" if arr.shape[-1] == 3 else "RGBA"
            return image_to_loaded(
                Image.fromarray(np.ascontiguousarray(arr), mode), source, max_pixels
            )
        arr = arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    if arr.ndim != 2:
        raise ImageReadError(
            source,
            f"array of shape {arr.shape} is not a 2-D slice (expected (H, W), (H, W, 1), "
            "(H, W, 3) or (H, W, 4))",
        )
    h, w = arr.shape
    if h * w > max_pixels:
        raise ImageReadError(source, f"array is {w}x{h} pixels, above the limit of {max_pixels:,}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif arr.dtype.kind not in "uif":
        raise ImageReadError(source, f"array of dtype {arr.dtype} holds no pixel intensities")
    elif arr.dtype != np.uint8:
        arr = to_uint8(arr, unit_float=original_dtype.startswith("float"))
    arr = np.array(arr, dtype=np.uint8, order="C")  # a copy: the caller may reuse theirs
    check_content(source, arr)
    return LoadedImage(arr, ImageMeta(source, (h, w), "array", original_dtype))
