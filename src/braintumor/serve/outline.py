"""The predicted tumour outline in ``/v1/explain``'s answer: mask (PNG and RLE), polygons, areas.

Only for models with a tumour head (``braintumor.models.tumour``); for any other model the
answer's ``tumour`` is ``null`` and nothing else changes. The RLE is COCO-style uncompressed
(``braintumor.explain.outline.rle_encode``): column-major, counts of alternating 0/1 runs
starting with 0, ``{"size": [H, W], "counts": [...]}``, which ``pycocotools.mask.frPyObjects``
reads as it is.
"""

from __future__ import annotations

import base64

import numpy as np

from braintumor.explain.outline import OUTLINE_CAVEAT, rle_encode
from braintumor.serve.imaging import png_bytes

RLE_FORMAT = "coco-uncompressed: column-major, alternating 0/1 run lengths starting with 0"


def mask_png(mask: np.ndarray) -> bytes:
    """The mask as an 8-bit grayscale PNG on the scan's grid: 255 = tumour, 0 = not."""
    return png_bytes(np.where(np.asarray(mask, bool), 255, 0).astype(np.uint8))


def tumour_body(prediction, threshold: float | None) -> dict | None:
    """The ``tumour`` member of the explain answer, or None when no outline was predicted."""
    p = prediction
    if p.tumour_mask is None:
        return None
    return {
        "mask_png": base64.b64encode(mask_png(p.tumour_mask)).decode("ascii"),
        "mask_rle": rle_encode(p.tumour_mask),
        "rle_format": RLE_FORMAT,
        "outline": [[[x, y] for x, y in poly] for poly in p.tumour_outline],
        "area_px": int(p.tumour_area_px),
        "area_percent": round(float(p.tumour_area_percent), 4),
        "threshold": threshold,
        "note": OUTLINE_CAVEAT,
    }
