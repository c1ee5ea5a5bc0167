"""Raster formats through Pillow: JPEG, PNG (8/16-bit), BMP, TIFF, GIF, WebP, PGM, JPEG 2000."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from braintumor.data.errors import ImageReadError
from braintumor.data.readers.base import (
    DEFAULT_MAX_PIXELS,
    ImageMeta,
    ImageReader,
    LoadedImage,
    check_content,
    check_geometry,
    warn,
)
from braintumor.data.readers.intensity import colour_saturation, to_uint8
from braintumor.data.readers.shrink import draft_on_decode, reduce_decoded

# Only these Pillow plugins may open a file: each is widely used and well fuzzed, and a slice
# in an exotic format (PSD, FLI, PCX, ...) is far more likely to be a mistake than a scan.
SUPPORTED_FORMATS = ("JPEG", "PNG", "BMP", "TIFF", "GIF", "WEBP", "PPM", "JPEG2000")
_DEEP_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
_ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
_COLOUR_MODES = ("RGB", "RGBA", "RGBX", "RGBa", "CMYK", "YCbCr", "LAB", "HSV", "P", "PA")


class PILReader(ImageReader):
    name = "pil"

    def can_read(self, head: bytes, path: Path | None) -> bool:
        return True  # the fallback: Pillow itself decides whether it knows the format

    def read(self, data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_side: int | None = None) -> LoadedImage:
        if not data:
            raise ImageReadError(source, "file is empty (0 bytes)")
        try:
            img = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
        except Image.DecompressionBombError as exc:
            # Pillow's own guard fires in open() when max_pixels is set above its limit.
            raise ImageReadError(
                source, f"refused as a possible decompression bomb ({exc})"
            ) from exc
        except UnidentifiedImageError:
            raise ImageReadError(source, _describe_unknown(data)) from None
        except Exception as exc:  # plugins raise SyntaxError, OSError, struct.error, ...
            if "truncated" in str(exc).lower():
                reason = "truncated file: the data ends inside the image header"
            else:
                reason = f"corrupt image header ({exc.__class__.__name__}: {exc})"
            raise ImageReadError(source, reason) from exc
        return image_to_loaded(img, source, max_pixels, max_side)


def image_to_loaded(
    img: Image.Image, source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
    max_side: int | None = None,
) -> LoadedImage:
    """Check, decode and convert an opened (possibly still lazy) PIL image; with
    ``max_side``, a larger one is decoded reduced (see readers/shrink.py)."""
    w, h = img.size
    check_geometry(source, h, w, max_pixels)  # header only: no pixel is decoded yet
    fmt = img.format or "PIL"
    notes: list[str] = []
    n_frames = int(getattr(img, "n_frames", 1) or 1)
    if n_frames > 1:
        notes.append(warn(source, f"multi-frame {fmt} ({n_frames} frames): using the first"))
        img.seek(0)
    mode = img.mode
    # Truncated files must fail here rather than come back padded with grey; Pillow only
    # pads when this global is switched on, so refuse to run if something switched it.
    if ImageFile.LOAD_TRUNCATED_IMAGES:
        raise RuntimeError(
            "PIL.ImageFile.LOAD_TRUNCATED_IMAGES is True: truncated scans would be read as "
            "padded images; braintumor requires it to stay False"
        )
    try:
        draft_on_decode(img, max_side)
        img.load()
    except Image.DecompressionBombError as exc:
        raise ImageReadError(source, f"refused as a possible decompression bomb ({exc})") from exc
    except OSError as exc:
        if "truncated" in str(exc).lower():
            raise ImageReadError(
                source, f"truncated {fmt} file: the data ends before the image does"
            ) from exc
        raise ImageReadError(source, f"cannot decode {fmt} data ({exc})") from exc
    except Exception as exc:
        raise ImageReadError(
            source, f"cannot decode {fmt} data ({exc.__class__.__name__}: {exc})"
        ) from exc
    img = reduce_decoded(img, max_side)
    try:
        pixels = pil_to_gray(img)
    except ValueError as exc:
        raise ImageReadError(source, f"unsupported pixel mode {mode!r} ({exc})") from exc
    check_content(source, pixels)
    saturation = 0.0
    if mode in _COLOUR_MODES:  # recorded for the out-of-distribution check (inference/ood.py)
        saturation = colour_saturation(np.asarray(img.convert("RGB")))
    return LoadedImage(pixels, ImageMeta(source, (h, w), fmt, mode, tuple(notes), n_frames,
                                         saturation))


def pil_to_gray(img: Image.Image) -> np.ndarray:
    """Grayscale uint8 of a loaded PIL image.

    Data deeper than 8 bits follows the one intensity rule (readers/intensity.py), not a
    truncation: a 12-bit MRI stored in a 16-bit PNG uses values 0..4095, which a plain cast
    would saturate and a ``>> 8`` would crush into 16 grey levels, while an 8-bit scan
    re-saved as 16 bits comes back bit for bit. Transparent pixels become black, the colour of
    an MRI background. Colour goes through Pillow's ITU-R 601-2 luma, as ``convert("L")``.
    """
    if img.mode in _DEEP_MODES:
        arr = np.asarray(img)  # I;16B arrives as ">u2": numpy swaps it
        return to_uint8(arr, unit_float=True)
    if img.mode in _ALPHA_MODES or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", img.size, (0, 0, 0, 255)), rgba)
    if img.mode not in ("L", "RGB", "RGBA", "P", "1", "CMYK"):
        img = img.convert("RGB")  # e.g. YCbCr, LAB: Pillow has no direct path to "L"
    return np.array(img.convert("L"), dtype=np.uint8)


def _describe_unknown(data: bytes) -> str:
    """Say what the bytes are when they are not an image, so the user can find the mix-up."""
    head = data[:1024]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is not None and sum(c.isprintable() or c.isspace() for c in text) >= 0.95 * len(text):
        return "file holds text, not image data (is the extension wrong?)"
    if head[:4] == b"%PDF":
        return "file is a PDF document, not an image"
    if head[:2] == b"PK":
        return "file is a ZIP archive, not an image (extract it first)"
    return (
        f"not a recognised image format (first bytes {head[:8].hex(' ')}); "
        f"supported: {', '.join(SUPPORTED_FORMATS)}, DICOM"
    )
