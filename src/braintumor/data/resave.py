"""Lossless re-saves of one 8-bit slice in the other containers a user's scan may come in.

Each encoder writes what a common converter would: 16-bit PNG/TIFF as ``v * 257`` (Pillow's,
ImageMagick's and scikit-image's full-scale conversion), as ``v << 8`` (a bit shift) or as
the 8-bit values in 16 bits; DICOM with and without a window, MONOCHROME1 (inverted storage),
12-bit stored data. Reading any of them back must give the same array as the 8-bit original
(readers/intensity.py); the tests and ``benchmarks/resave_consistency.py`` check that, and
the shift suite can use them as its "16-bit re-save" perturbation.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
from PIL import Image


def _pil_bytes(arr: np.ndarray, fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return buf.getvalue()


def dicom_bytes(stored: np.ndarray, *, bits_stored: int = 16, photometric: str = "MONOCHROME2",
                window: tuple[float, float] | None = None) -> bytes:
    """A minimal MR image DICOM (explicit VR little endian) holding ``stored`` as its pixels.

    ``window`` is (centre, width) in stored units (no rescale); None writes no VOI window.
    """
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset("resave.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    allocated = 8 if bits_stored <= 8 else 16
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = allocated, bits_stored, bits_stored - 1
    ds.PixelRepresentation = 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    ds.PixelData = stored.astype(np.uint8 if allocated == 8 else np.uint16).tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _u16(arr: np.ndarray, factor: int) -> np.ndarray:
    return arr.astype(np.uint16) * np.uint16(factor)


# name -> encoder of a (H, W) uint8 slice. The windows map the stored range back onto 0..255
# exactly (DICOM PS3.3 C.11.2.1.2.1, LINEAR: centre - 0.5 and width - 1 span the range).
RESAVES: dict[str, Callable[[np.ndarray], bytes]] = {
    "png8": lambda a: _pil_bytes(a, "PNG"),
    "tiff8": lambda a: _pil_bytes(a, "TIFF"),
    "png16": lambda a: _pil_bytes(_u16(a, 257), "PNG"),
    "png16-shift8": lambda a: _pil_bytes(_u16(a, 256), "PNG"),
    "png16-raw": lambda a: _pil_bytes(_u16(a, 1), "PNG"),
    "tiff16": lambda a: _pil_bytes(_u16(a, 257), "TIFF"),
    "tiff16-raw": lambda a: _pil_bytes(_u16(a, 1), "TIFF"),
    "dicom": lambda a: dicom_bytes(_u16(a, 257)),
    "dicom8": lambda a: dicom_bytes(a, bits_stored=8),
    "dicom-window": lambda a: dicom_bytes(_u16(a, 16), bits_stored=12,
                                          window=(2040.5, 4081.0)),
    "dicom-window16": lambda a: dicom_bytes(_u16(a, 257), window=(32768.0, 65536.0)),
    "dicom-monochrome1": lambda a: dicom_bytes(_u16(255 - a, 257), photometric="MONOCHROME1"),
    "dicom-monochrome1-window": lambda a: dicom_bytes(
        _u16(255 - a, 16), bits_stored=12, photometric="MONOCHROME1", window=(2040.5, 4081.0)),
}

def _stretched_u16(a: np.ndarray) -> np.ndarray:
    lo, hi = int(a.min()), int(a.max())
    return np.floor((a.astype(np.float64) - lo) * (65535.0 / max(hi - lo, 1)) + 0.5).astype(
        np.uint16)


# Deep containers whose values are not an 8-bit lattice, so the rule's linear branch (not the
# exact inverse) reads them: they come back close to the original, not bit for bit. A 12-bit
# DICOM without a window comes back stretched so that its maximum is 255; a 16-bit PNG that a
# converter min-max stretched to 0..65535 comes back stretched the same way.
DEEP_RESAVES: dict[str, Callable[[np.ndarray], bytes]] = {
    "dicom12-nowindow": lambda a: dicom_bytes(_u16(a, 16), bits_stored=12),
    "png16-stretched": lambda a: _pil_bytes(_stretched_u16(a), "PNG"),
}
# The file extension each encoder's bytes go under (the readers judge by content anyway).
EXTENSIONS = {name: (".dcm" if name.startswith("dicom") else
                     ".tif" if name.startswith("tiff") else ".png")
              for name in (*RESAVES, *DEEP_RESAVES)}
