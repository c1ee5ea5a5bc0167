"""The one rule that turns stored intensities deeper than 8 bits into the model's 0..255.

The bundled model was trained on 8-bit JPEGs, so an 8-bit slice is the reference and is never
touched. Everything else (16-bit PNG/TIFF, DICOM without a window, uint16/int/float arrays,
colour DICOM deeper than 8 bits) goes through :func:`to_uint8`:

1. **A lossless re-save of an 8-bit image is undone exactly.** A 16-bit file whose values are
   all multiples of 257 (``v * 257``: Pillow, ImageMagick and scikit-image's full-scale
   conversion) or all multiples of 256 (``v << 8``: a bit shift) holds 8-bit data; dividing
   gives back the 8-bit values bit for bit. Real 16-bit scans never fall on such a lattice.
2. **Otherwise the data is mapped linearly from its own range**, ``[min(0, min), max]``, onto
   ``0..255`` -- but never brightened: the scale is ``255 / max(255, max - lo)``, so data that
   already fits in 0..255 (8-bit values stored in 16 bits, a DICOM with BitsStored 8) keeps
   its values, and deeper data ends with its maximum at 255, as the training JPEGs do (median
   maximum 252, 94 % at 230 or above). No percentile clipping: the old 0.5-99.5 % stretch
   saturated the brightest tissue (often the tumour) and moved 9 of 60 re-saved test scans to
   another class. The price is that a lone hot pixel darkens the rest of the slice.

A DICOM window (VOI LUT) is applied first and yields 0..255 itself (readers/dicom.py); the
rule then keeps it as is. MONOCHROME1 is inverted after the rule.
"""

from __future__ import annotations

import numpy as np

# The factors of the lossless 8-bit -> 16-bit conversions. No value in 1..65535 is a multiple
# of both (257 * 256 > 65535), so at most one of them fits a slice with any non-zero pixel.
EIGHT_BIT_EMBEDDINGS = (257, 256)
# The value range of 8-bit data: deeper data is scaled onto it, shallower data left as it is.
FULL_SCALE = 255.0


def to_uint8(values: np.ndarray, *, unit_float: bool = False) -> np.ndarray:
    """Map intensities of any depth onto uint8 by the module's rule (NaN becomes 0).

    ``unit_float``: float data within [0, 1] is the usual float image convention and is
    scaled by 255 (arrays and float TIFFs, not DICOM, whose floats are physical units).
    """
    a = np.asarray(values)
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind in "iub" and a.size:
        return _integers_to_uint8(a)
    a = a.astype(np.float64)
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        return np.zeros(a.shape, dtype=np.uint8)
    lo_value, hi_value = float(finite.min()), float(finite.max())
    if unit_float and np.asarray(values).dtype.kind == "f" and lo_value >= 0 and hi_value <= 1:
        return _round_to_uint8(a * FULL_SCALE)
    factor = eight_bit_embedding(finite)
    if factor:
        return _round_to_uint8(a / factor)
    lo = min(0.0, lo_value)
    return _round_to_uint8((a - lo) * (FULL_SCALE / max(FULL_SCALE, hi_value - lo)))


def _integers_to_uint8(a: np.ndarray) -> np.ndarray:
    """:func:`to_uint8` for integer data, without its float64 copies (same result).

    Integers are finite and whole, so the embedding test is a modulo in their own dtype; this
    is most of the decode time of a 1024 px 16-bit DICOM (about 40 ms of 55), which a server
    spends beside the model.
    """
    if a.dtype.kind == "b":
        a = a.astype(np.uint8)
    lo_value, hi_value = int(a.min()), int(a.max())
    if lo_value >= 0 and FULL_SCALE < hi_value <= 65535:
        for factor in EIGHT_BIT_EMBEDDINGS:
            if not np.any(a % a.dtype.type(factor)):
                return (a // a.dtype.type(factor)).astype(np.uint8)  # exact: v / factor
    lo = min(0, lo_value)
    scale = FULL_SCALE / max(FULL_SCALE, float(hi_value - lo))
    out = np.subtract(a, lo, dtype=np.float64)
    out *= scale
    np.clip(out, 0, FULL_SCALE, out=out)
    out += 0.5
    return out.astype(np.uint8)


def eight_bit_embedding(finite: np.ndarray) -> int | None:
    """257 or 256 when ``finite`` is 8-bit data written losslessly into 16 bits, else None.

    Only data that needs more than 8 bits qualifies (values within 0..255 are 8-bit already).
    """
    if finite.size == 0 or finite.min() < 0 or finite.max() <= FULL_SCALE:
        return None
    if finite.max() > 65535 or not np.all(finite == np.round(finite)):
        return None
    ints = finite.astype(np.int64)
    for factor in EIGHT_BIT_EMBEDDINGS:
        if not np.any(ints % factor):
            return factor
    return None


def _round_to_uint8(a: np.ndarray) -> np.ndarray:
    out = np.nan_to_num(np.clip(a, 0, FULL_SCALE), nan=0.0)
    return (out + 0.5).astype(np.uint8)


def colour_saturation(rgb: np.ndarray) -> float:
    """Mean chroma (max - min of R, G, B) of an (H, W, 3+) image, as a fraction of full scale.

    Grey scans stored as RGB (half of the Kaggle JPEGs) score about 0; a colour photograph
    scores 0.1 or more. The grey conversion throws this away, so the readers record it in
    ``ImageMeta.saturation`` for the out-of-distribution check (inference/ood.py).
    """
    a = np.asarray(rgb)[..., :3]
    if a.dtype == np.uint8 and a.shape[-1] == 3 and a.size:
        # The same figure, bit for bit, ~17x faster: a max/min over the 3-wide last axis is a
        # slow strided reduction (median 3.3 ms against 0.19 ms over 79 of the dataset's RGB
        # JPEGs, paid on every colour file read); channel-wise uint8 maximum/minimum and an
        # exact integer sum (the float64 sum below is exact too) are not.
        r, g, b = a[..., 0], a[..., 1], a[..., 2]
        chroma8 = np.maximum(np.maximum(r, g), b) - np.minimum(np.minimum(r, g), b)
        total = int(chroma8.sum(dtype=np.int64))
        return float(total / chroma8.size / FULL_SCALE)
    full = 255.0 if a.dtype == np.uint8 else max(float(np.nanmax(a)), 1e-12)
    chroma = a.max(axis=-1).astype(np.float64) - a.min(axis=-1)
    return float(np.nanmean(chroma) / full)
