"""The reader interface: every format yields a 2-D uint8 grayscale slice plus metadata."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# Larger than any MRI slice (4096 x 4096 is already generous), small enough that a forged
# header cannot make us allocate gigabytes.
DEFAULT_MAX_PIXELS = 50_000_000


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


@dataclass(frozen=True)
class LoadedImage:
    pixels: np.ndarray  # (H, W) uint8
    meta: ImageMeta


class ImageReader(ABC):
    """One implementation per file format (the MONAI ``ImageReader`` pattern)."""

    name: str = "abstract"

    @abstractmethod
    def can_read(self, head: bytes, path: Path | None) -> bool:
        """Whether this reader claims the data, judged by its first bytes (and name)."""

    @abstractmethod
    def read(self, data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
        """Decode ``data``; raise :class:`~braintumor.data.errors.ImageReadError` on bad input."""
