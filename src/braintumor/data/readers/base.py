"""The reader interface: every format yields a 2-D uint8 grayscale slice plus metadata.

Checks that apply to every format live here too, so a 1x1 PNG and a 1x1 DICOM are refused
with the same words.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.errors import ImageReadError, ImageReadWarning

# Bump whenever a reader may return different pixels for the same file: it is part of the
# decoded cache's key, so entries built by an older reader are never served.
READER_VERSION = 2  # 2: deep data by readers/intensity.py, not a percentile stretch
# Larger than any MRI slice (4096 x 4096 is already generous), small enough that a forged
# header cannot make us allocate gigabytes.
DEFAULT_MAX_PIXELS = 50_000_000
# Below this many pixels on a side there is no anatomy to classify (thumbnails, icons,
# tracking pixels); the brain crop needs a few pixels to work with as well.
MIN_SIDE = 8
# A slice whose intensity standard deviation, after conversion to uint8, is below this
# fraction of the full range (255) carries no image: a blank export, a black frame.
BLANK_STD_FRACTION = 1e-3


@dataclass(frozen=True)
class ImageMeta:
    """Where a slice came from and what it looked like before conversion.

    Holds no DICOM header fields beyond geometry: patient identifiers must never travel
    further than the reader.
    """

    source: str
    original_size: tuple[int, int]  # (height, width) of the stored image
    format: str  # "JPEG", "PNG", "DICOM", ...
    mode: str = ""  # pixel mode as stored, e.g. "L", "RGB", "I;16", "MONOCHROME2"
    warnings: tuple[str, ...] = field(default_factory=tuple)
    n_frames: int = 1  # frames in the file; only the first is read
    saturation: float = 0.0  # mean chroma of a colour file (readers/intensity.py); grey: 0


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # (H, W) uint8
    meta: ImageMeta

    def __repr__(self) -> str:
        # The default repr would print the whole pixel array into logs.
        h, w = self.pixels.shape
        return f"LoadedImage({w}x{h} uint8, meta={self.meta!r})"


class ImageReader(ABC):
    """One implementation per file format (the MONAI ``ImageReader`` pattern)."""

    name: str = "abstract"

    @abstractmethod
    def can_read(self, head: bytes, path: Path | None) -> bool:
        """Whether this reader claims the data, judged by its first bytes (and name)."""

    @abstractmethod
    def read(self, data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_side: int | None = None) -> LoadedImage:
        """Decode ``data``; raise :class:`~braintumor.data.errors.ImageReadError` on bad input.

        ``max_side``: a reader that can may return the slice reduced so that its longer side
        is at most this (``ImageMeta.original_size`` keeps the stored size).
        """


def check_geometry(source: str, height: int, width: int, max_pixels: int) -> None:
    """Refuse sizes no slice has, from the header alone, before any pixel is decoded."""
    if height * width > max_pixels:
        raise ImageReadError(
            source,
            f"image is {width}x{height} pixels ({width * height:,}), above the limit of "
            f"{max_pixels:,} pixels (max_pixels); refusing to decode a possible "
            "decompression bomb",
        )
    if min(height, width) < MIN_SIDE:
        raise ImageReadError(
            source,
            f"image is {width}x{height} pixels; a slice needs at least {MIN_SIDE} px on each side",
        )


def check_content(source: str, pixels: np.ndarray) -> None:
    """Refuse a decoded slice that holds no image (constant or near-constant intensity)."""
    check_geometry(source, pixels.shape[0], pixels.shape[1], max_pixels=pixels.size)
    std = float(pixels.std(dtype=np.float64))
    if std < BLANK_STD_FRACTION * 255:
        level = int(np.median(pixels))
        raise ImageReadError(
            source,
            f"image is blank (constant intensity: every pixel is about {level}/255, "
            f"standard deviation {std:.3g})",
        )


def warn(source: str, message: str) -> str:
    """Emit an :class:`ImageReadWarning` and return the message for ``ImageMeta.warnings``."""
    warnings.warn(f"{source}: {message}", ImageReadWarning, stacklevel=3)
    return message
