"""Uploaded bytes in, decoded slice out; arrays in, PNG bytes out.

The service's error contract lives in :func:`decode_upload`: **415** when the bytes are not
recognisably an image in any format the readers know (nothing to retry with a better
export), **422** when they are such an image but cannot be used (truncated, corrupt, too
large, blank, a DICOM without pixel data). The client's file name never reaches a message
or a log: only its extension is kept, which the reader needs to recognise a DICOM without
its "DICM" preamble.
"""

from __future__ import annotations

import io
import logging
import re
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor.data.errors import ImageReadError
from braintumor.data.readers import READERS, LoadedImage, read_image
from braintumor.data.readers.pil import SUPPORTED_FORMATS
from braintumor.serve.errors import ApiError, log_exception

UPLOAD_NAME = "upload"
# Signatures of the raster formats Pillow reads for us (WebP sits inside a RIFF container).
_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"GIF87a": "GIF",
    b"GIF89a": "GIF",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
    b"RIFF": "WEBP",
    b"\x00\x00\x00\x0cjP  ": "JPEG2000",
    b"\xff\x4f\xff\x51": "JPEG2000",
}
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}$")
# Netpbm (PGM/PPM/PBM, and PFM floats) has a two-byte signature and then whitespace. Known
# from that alone, a forged header (a size no file holds) is a broken image (422), not an
# unknown format (415): Pillow's open() refuses it before naming its format.
_NETPBM = re.compile(rb"P[1-6fF][ \t\r\n#]")


def upload_name(filename: str | None) -> str:
    """``upload`` plus the client's extension (``upload.dcm``), and nothing else of the name."""
    match = _SAFE_SUFFIX.search(filename or "")
    return UPLOAD_NAME + (match.group(0).lower() if match else "")


def sniff_format(data: bytes, name: str = UPLOAD_NAME) -> str | None:
    """The image format ``data`` claims to be, from its first bytes; None if none.

    A claim is enough: a PNG cut off after its signature is still "PNG" (and gets a 422
    naming the damage), while random bytes are no format at all (415).
    """
    head = data[:512]
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):
            return fmt
    if _NETPBM.match(head):
        return "PPM"
    for reader in READERS:
        if reader.name == "dicom" and reader.can_read(head, Path(name)):
            return "DICOM"
    try:  # any other format without a fixed signature: ask Pillow, header only
        with Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS) as img:
            return img.format
    except Image.DecompressionBombError:
        return "image"  # Pillow knew the format; the reader says what is wrong (422)
    except Exception:
        return None


def decode_upload(data: bytes, name: str, max_pixels: int,
                  max_side: int | None = None) -> LoadedImage:
    """Decode an uploaded scan or raise the :class:`ApiError` that says what is wrong.

    ``max_side``: a larger raster is decoded reduced to that many pixels per side.
    """
    if not data:
        raise ApiError(422, "empty_file", "The uploaded file is empty (0 bytes).")
    fmt = sniff_format(data, name)
    if fmt is None:
        raise ApiError(
            415, "unsupported_media_type",
            "The file is not an image this service can read: upload a JPEG, PNG or DICOM "
            "scan (BMP, TIFF, GIF and WebP also work).",
        )
    try:
        return read_image(data, max_pixels=max_pixels, name=name, max_side=max_side)
    except ImageReadError as exc:
        raise ApiError(422, "unreadable_image", f"The {fmt} file cannot be used: {exc.reason}.") \
            from None
    except Exception as exc:  # a decoder failing in a way the readers did not anticipate
        log_exception(f"decoder failure on a {fmt} upload", exc, logging.WARNING)
        raise ApiError(
            422, "unreadable_image",
            f"The {fmt} file could not be decoded ({type(exc).__name__}); it is probably "
            "damaged. Try exporting the scan again.",
        ) from None


def png_bytes(array: np.ndarray) -> bytes:
    """Encode a (H, W) gray, (H, W, 3) RGB or (H, W, 4) RGBA uint8 array as PNG.

    Compression level 1: these images are made for one look in a browser, and the default
    level costs several times the CPU for a file that is only a little smaller.
    """
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(
        buf, format="PNG", compress_level=1)
    return buf.getvalue()


def heatmap_rgba(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """A Grad-CAM map in [0, 1] as a coloured layer whose transparency follows its strength.

    The web page stacks this layer on the plain scan and scales its opacity with a slider,
    so weak evidence stays see-through and the anatomy under it remains visible. Colours
    come from the same lookup table as the blended overlay, so both read the same way.
    """
    from braintumor.explain.overlay import colorize  # matplotlib: imported on first use

    heat = np.clip(np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0), 0.0, 1.0)
    rgba = np.empty(heat.shape + (4,), dtype=np.uint8)
    rgba[..., :3] = colorize(heat, colormap)
    rgba[..., 3] = (np.clip(heat * 1.4, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return rgba
