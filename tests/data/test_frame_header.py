"""The compressed DICOM frame's own size is checked before anything decodes it."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from braintumor.data.errors import ImageReadError
from braintumor.data.readers import read_image
from braintumor.data.readers.frame_header import frame_size


def _jpeg(height: int, width: int, **kwargs) -> bytes:
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (height, width), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **kwargs)
    return buf.getvalue()


def jpeg_dicom(frame: bytes, rows: int, cols: int) -> bytes:
    """A JPEG-baseline MR DICOM whose header declares ``rows`` x ``cols``."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([frame])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.mark.parametrize("kwargs", [{}, {"progressive": True}])
def test_frame_size_reads_the_jpeg_sof(kwargs):
    assert frame_size(_jpeg(40, 72, **kwargs)) == (40, 72)


def test_frame_size_reads_the_jpeg2000_siz():
    buf = io.BytesIO()
    Image.fromarray(np.zeros((24, 56), np.uint8)).save(buf, format="JPEG2000", no_jp2=True)
    assert frame_size(buf.getvalue()) == (24, 56)
    buf = io.BytesIO()
    Image.fromarray(np.zeros((24, 56), np.uint8)).save(buf, format="JPEG2000")  # JP2 boxes
    assert frame_size(buf.getvalue()) == (24, 56)


def test_frame_size_of_garbage_is_unknown():
    assert frame_size(b"\xff\xd8\xff\xe0\x00") is None
    assert frame_size(b"not a frame") is None


def test_oversized_frame_behind_a_small_header_is_refused_before_decoding(monkeypatch):
    import pydicom.pixels

    def must_not_decode(*args, **kwargs):
        raise AssertionError("the frame was handed to the decoder")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", must_not_decode)
    bomb = jpeg_dicom(_jpeg(1200, 1000), rows=64, cols=64)
    with pytest.raises(ImageReadError) as err:
        read_image(bomb, max_pixels=500_000, name="bomb.dcm")
    msg = str(err.value)
    assert "bomb.dcm" in msg and "1000x1200" in msg and "64x64" in msg
    assert "500,000" in msg


def test_frame_that_differs_from_the_header_is_refused_before_decoding(monkeypatch):
    import pydicom.pixels

    monkeypatch.setattr(pydicom.pixels, "pixel_array", lambda *a, **k: pytest.fail("decoded"))
    with pytest.raises(ImageReadError, match=r"frame is 96x80 pixels but the header declares "
                                             r"64x64"):
        read_image(jpeg_dicom(_jpeg(80, 96), rows=64, cols=64), name="liar.dcm")


def test_honest_jpeg_dicom_still_decodes():
    out = read_image(jpeg_dicom(_jpeg(64, 80, quality=95), rows=64, cols=80), name="ok.dcm")
    assert out.pixels.shape == (64, 80)
    assert out.meta.format == "DICOM"
