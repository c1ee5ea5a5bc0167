"""Decode large rasters at a reduced size, so memory follows the size we need, not the file's.

The model sees a 224 px crop; a 4096 x 4096 upload carries 16 times the pixels of a
1024 px one and every step after decoding (intensity scaling in float64, the heatmap and
overlays in the scan's geometry) costs in proportion. With ``max_side`` set, a JPEG is
decoded straight at 1/2, 1/4 or 1/8 scale by Pillow's ``draft`` (DCT scaling: the full
image never exists in memory); other formats are decoded whole, then box-reduced by an
integer factor (``Image.reduce``) before any conversion. The brain crop and resize that
follow are the same as for any other image, so a reduced scan is preprocessed like a
smaller export of the same slice.
"""

from __future__ import annotations

import math

from PIL import Image

_NO_REDUCE = ("P", "1", "PA")  # palette indices and bilevel pixels do not average


def shrink_factor(width: int, height: int, max_side: int | None) -> int:
    """The integer factor that brings the longer side to at most ``max_side`` (1: none)."""
    if not max_side or max(width, height) <= max_side:
        return 1
    return math.ceil(max(width, height) / max_side)


def draft_on_decode(img: Image.Image, max_side: int | None) -> None:
    """Ask a lazily opened JPEG to decode at the smallest DCT scale still >= ``max_side``."""
    if img.format != "JPEG":
        return
    factor = shrink_factor(*img.size, max_side)
    if factor > 1:
        w, h = img.size
        img.draft(img.mode, (math.ceil(w / factor), math.ceil(h / factor)))


def reduce_decoded(img: Image.Image, max_side: int | None) -> Image.Image:
    """``img`` (loaded) box-reduced so its longer side is at most ``max_side``."""
    factor = shrink_factor(*img.size, max_side)
    if factor == 1 or img.mode in _NO_REDUCE:
        return img
    if img.mode.startswith("I;16"):
        img = img.convert("I")  # Pillow reduces 32-bit integers, not 16-bit ones
    return img.reduce(factor)
