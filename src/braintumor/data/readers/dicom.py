"""DICOM slices through pydicom: rescale, window, MONOCHROME1 inversion, first frame only.

Privacy is by construction rather than by scrubbing: the header is parsed with
``specific_tags`` limited to the image pixel, modality LUT and VOI LUT modules, so the
patient's name, ID, birth date and every other identifying element are never turned into
Python values, and no message this module writes can quote one. Reasons in errors are
our own words (plus pydicom's exception class name for header parsing) for the same
reason.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from braintumor._warnings_lock import WARNINGS_LOCK, ignoring_warnings_from
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
from braintumor.data.readers.frame_header import check_encapsulated_frame
from braintumor.data.readers.intensity import colour_saturation, to_uint8

DICOM_EXTENSIONS = (".dcm", ".dicom")
_PIXEL_TAGS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# The only elements ever read from a header: geometry, encoding, modality LUT, VOI LUT and
# palette. Everything else (patient, study, institution, ...) stays unparsed bytes.
_WANTED_TAGS = [
    "SamplesPerPixel",
    "PhotometricInterpretation",
    "PlanarConfiguration",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "BitsAllocated",
    "BitsStored",
    "HighBit",
    "PixelRepresentation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "SegmentedRedPaletteColorLookupTableData",
    "SegmentedGreenPaletteColorLookupTableData",
    "SegmentedBluePaletteColorLookupTableData",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    *_PIXEL_TAGS,
]
# Magic numbers of the raster formats: a ".dcm" file that starts with one of these is a
# misnamed PNG/JPEG/... and goes to Pillow instead.
_RASTER_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF")


class DicomReader(ImageReader):
    name = "dicom"

    def can_read(self, head: bytes, path: Path | None) -> bool:
        if head[128:132] == b"DICM":
            return True
        # Preamble-less DICOM (older exports, some PACS dumps) has no magic: trust the name
        # unless the content is plainly a raster image.
        is_dcm_name = path is not None and path.suffix.lower() in DICOM_EXTENSIONS
        return is_dcm_name and bool(head) and not head.startswith(_RASTER_MAGIC)

    def read(self, data: bytes, source: str, max_pixels: int = DEFAULT_MAX_PIXELS,
             max_side: int | None = None) -> LoadedImage:
        # max_side is not used: pydicom decodes frames whole. Their cost is bounded by
        # max_pixels and by the frame-size check, and slices are rarely above 1024 px.
        if not data:
            raise ImageReadError(source, "file is empty (0 bytes)")
        has_preamble = data[128:132] == b"DICM"
        ds = _read_header(data, source, force=not has_preamble)
        if not any(tag in ds for tag in _PIXEL_TAGS):
            if not has_preamble and len(ds) == 0:
                raise ImageReadError(
                    source, "not a DICOM file (no 'DICM' preamble and no readable header)"
                )
            raise ImageReadError(
                source,
                "DICOM file has no pixel data (a structured report, presentation state or "
                "DICOMDIR?); only image objects can be classified",
            )
        rows, cols = ds.get("Rows"), ds.get("Columns")
        if not rows or not cols:
            raise ImageReadError(
                source, "DICOM header has no Rows/Columns; cannot locate the image"
            )
        check_geometry(source, int(rows), int(cols), max_pixels)

        notes: list[str] = []
        n_frames = _int_or(ds.get("NumberOfFrames"), 1)
        if n_frames > 1:
            notes.append(warn(source, f"multi-frame DICOM ({n_frames} frames): using the first"))
        photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip().upper()
        check_encapsulated_frame(ds, source, max_pixels, n_frames)  # before any decoding
        frame = _decode_first_frame(ds, source, n_frames)

        if photometric in ("MONOCHROME1", "MONOCHROME2"):
            pixels = _monochrome_to_uint8(frame, ds, source, notes)
            if photometric == "MONOCHROME1":  # 0 means white in MONOCHROME1
                pixels = 255 - pixels
        saturation = 0.0
        if photometric not in ("MONOCHROME1", "MONOCHROME2"):
            pixels = _colour_to_uint8(frame, ds, photometric, source)
            saturation = colour_saturation(frame)
        check_content(source, pixels)
        meta = ImageMeta(
            source, (int(rows), int(cols)), "DICOM", photometric, tuple(notes), n_frames,
            saturation,
        )
        return LoadedImage(np.ascontiguousarray(pixels), meta)


def _read_header(data: bytes, source: str, force: bool):
    import pydicom

    failure = None
    with WARNINGS_LOCK, warnings.catch_warnings():
        # pydicom's value-validation warnings can quote element values (file meta UIDs).
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(io.BytesIO(data), force=force, specific_tags=_WANTED_TAGS)
        except Exception as exc:
            failure = exc.__class__.__name__
    if failure is not None:
        # Raised outside the except block so that no chained pydicom message (which might
        # quote header bytes) travels with the error.
        raise ImageReadError(
            source, f"not a readable DICOM file ({failure} while parsing the header)"
        )
    return ds


def _decode_first_frame(ds, source: str, n_frames: int) -> np.ndarray:
    from pydicom.pixels import apply_color_lut, pixel_array

    ts = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    ts_name = getattr(ts, "name", None) or "unknown transfer syntax"
    failure = None
    # Not under WARNINGS_LOCK: decoding a large frame takes long, and the lock would make
    # every other request that silences a warning wait for it. The data set holds
    # pixel-module elements only, so what pydicom warns here is noise, not patient data.
    with ignoring_warnings_from(r"pydicom(\.|$)"):
        try:
            # index=0 decodes one frame only: a 500-frame cine costs no more than one slice.
            frame = pixel_array(ds, index=0 if n_frames > 1 else None)
            if str(ds.get("PhotometricInterpretation", "")).upper() == "PALETTE COLOR":
                frame = apply_color_lut(frame, ds)
        except Exception as exc:
            # ds holds pixel-module elements only, so pydicom's message is safe to show.
            failure = f"{exc.__class__.__name__}: {' '.join(str(exc).split())}"  # one line
    if failure is not None:
        raise ImageReadError(source, f"cannot decode DICOM pixel data ({ts_name}): {failure}")
    if frame.ndim == 3 and frame.shape[-1] not in (3, 4):  # (frames, H, W) despite index
        frame = frame[0]
    return frame


def _monochrome_to_uint8(frame: np.ndarray, ds, source: str, notes: list[str]) -> np.ndarray:
    """Modality LUT (slope/intercept), then the file's own window, else the intensity rule."""
    from pydicom.dataset import Dataset
    from pydicom.pixels import apply_modality_lut, apply_windowing

    # Integers stay integers when the file has no rescale: the intensity rule's fast path.
    values = np.asarray(apply_modality_lut(frame, ds))
    if "WindowCenter" in ds and "WindowWidth" in ds:
        values = values.astype(np.float64)
        # Reuse pydicom's windowing (LINEAR, LINEAR_EXACT, SIGMOID; first of several
        # windows) on a stand-in header that declares an unsigned 8-bit output with no
        # rescale, so its output range is exactly 0..255. The centre and width are in
        # rescaled units, matching ``values``.
        shadow = Dataset()
        shadow.PhotometricInterpretation = "MONOCHROME2"
        shadow.BitsStored = 8
        shadow.PixelRepresentation = 0
        shadow.WindowCenter = ds.WindowCenter
        shadow.WindowWidth = ds.WindowWidth
        if "VOILUTFunction" in ds:
            shadow.VOILUTFunction = ds.VOILUTFunction
        try:
            out = apply_windowing(values, shadow, index=0)
            return (np.clip(out, 0, 255) + 0.5).astype(np.uint8)
        except (ValueError, TypeError, IndexError) as exc:
            notes.append(
                warn(source, f"unusable window in the header ({exc}); used the value range")
            )
    return to_uint8(values)


def _colour_to_uint8(frame: np.ndarray, ds, photometric: str, source: str) -> np.ndarray:
    """RGB (pydicom already converted YBR) -> luma, as Pillow's ``convert("L")`` does."""
    if frame.ndim != 3 or frame.shape[-1] < 3:
        raise ImageReadError(
            source, f"unsupported DICOM photometric interpretation {photometric!r} for this data"
        )
    rgb = frame[..., :3].astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    if frame.dtype == np.uint8:
        return (luma + 0.5).astype(np.uint8)
    return to_uint8(luma)


def _int_or(value, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default
