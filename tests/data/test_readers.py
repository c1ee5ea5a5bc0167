"""Every reader format, every input kind, and every kind of bad input the readers refuse."""

from __future__ import annotations

import io
import logging
import pickle
import traceback
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

from braintumor.data.errors import ImageReadError, ImageReadWarning
from braintumor.data.readers import MIN_SIDE, read_image

SIZE = 64


@pytest.fixture
def head(synthetic_slice) -> np.ndarray:
    """A 64x64 uint8 head-like slice with a bright blob (std well above the blank limit)."""
    return synthetic_slice(SIZE, seed=3, blob=(0.4, 0.4))


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def _assert_slice(loaded, shape=(SIZE, SIZE)):
    assert loaded.pixels.dtype == np.uint8
    assert loaded.pixels.shape == shape
    assert loaded.meta.original_size == shape


# ----------------------------------------------------------------------------- raster formats


def test_grayscale_png_is_exact(tmp_path, head):
    p = _save(Image.fromarray(head), tmp_path / "a.png")
    out = read_image(p)
    _assert_slice(out)
    np.testing.assert_array_equal(out.pixels, head)
    assert (out.meta.format, out.meta.mode, out.meta.source) == ("PNG", "L", str(p))
    assert out.meta.warnings == () and out.meta.n_frames == 1


def test_rgb_jpeg_becomes_luma(tmp_path, head):
    rgb = np.stack([head, head, head], axis=-1)
    p = _save(Image.fromarray(rgb), tmp_path / "a.jpg", quality=95)
    out = read_image(p)
    _assert_slice(out)
    assert (out.meta.format, out.meta.mode) == ("JPEG", "RGB")
    assert np.abs(out.pixels.astype(int) - head).mean() < 3  # JPEG is lossy, not wrong


def test_rgba_png_transparent_pixels_become_black(tmp_path, head):
    rgba = np.dstack([head, head, head, np.full_like(head, 255)])
    rgba[:, : SIZE // 2, :3] = 255
    rgba[:, : SIZE // 2, 3] = 0  # white but fully transparent
    out = read_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    _assert_slice(out)
    assert out.meta.mode == "RGBA"
    assert (out.pixels[:, : SIZE // 2] == 0).all()
    np.testing.assert_array_equal(out.pixels[:, SIZE // 2 :], head[:, SIZE // 2 :])


def test_palette_png(tmp_path, head):
    pal = Image.fromarray(head).convert("P")  # grey palette: lossless for grey content
    out = read_image(_save(pal, tmp_path / "a.png"))
    _assert_slice(out)
    assert out.meta.mode == "P"
    np.testing.assert_array_equal(out.pixels, np.asarray(pal.convert("L")))


def test_cmyk_jpeg(tmp_path, head):
    cmyk = Image.fromarray(np.stack([head] * 3, axis=-1)).convert("CMYK")
    p = _save(cmyk, tmp_path / "a.jpg", quality=95)
    out = read_image(p)
    _assert_slice(out)
    assert (out.meta.format, out.meta.mode) == ("JPEG", "CMYK")
    assert np.abs(out.pixels.astype(int) - head).mean() < 4


@pytest.mark.parametrize("fmt,ext", [("PNG", "png"), ("TIFF", "tif")])
def test_16_bit_is_scaled_linearly_by_its_own_range_not_truncated(tmp_path, head, fmt, ext):
    deep = head.astype(np.uint16) * 16  # 12-bit data, 0..4080
    p = _save(Image.fromarray(deep), tmp_path / f"a.{ext}", format=fmt)
    out = read_image(p)
    _assert_slice(out)
    assert out.meta.mode.startswith("I")
    # The intensity rule: linear from [0, max] onto 0..255, no clipping.
    np.testing.assert_array_equal(out.pixels, np.floor(deep * (255.0 / deep.max()) + 0.5))
    assert out.pixels.max() == 255 and out.pixels.min() == 0
    # A hot pixel is not clipped away (the documented price of no percentile stretch).
    deep[0, 0] = 65535
    hot = read_image(_save(Image.fromarray(deep), tmp_path / f"hot.{ext}", format=fmt)).pixels
    assert hot[0, 0] == 255 and hot[1:].max() == int(int(head.max()) * 16 * 255 / 65535 + 0.5)


def test_bmp(tmp_path, head):
    out = read_image(_save(Image.fromarray(head), tmp_path / "a.bmp"))
    assert out.meta.format == "BMP"
    np.testing.assert_array_equal(out.pixels, head)


def test_tiff(tmp_path, head):
    out = read_image(_save(Image.fromarray(head), tmp_path / "a.tif"))
    assert out.meta.format == "TIFF"
    np.testing.assert_array_equal(out.pixels, head)


@pytest.mark.parametrize("fmt,ext", [("TIFF", "tif"), ("GIF", "gif")])
def test_multi_frame_reads_first_frame_with_warning(tmp_path, head, fmt, ext):
    first, second = Image.fromarray(head), Image.fromarray(255 - head)
    p = tmp_path / f"stack.{ext}"
    first.save(p, format=fmt, save_all=True, append_images=[second])
    with pytest.warns(ImageReadWarning, match=r"multi-frame .* \(2 frames\): using the first"):
        out = read_image(p)
    _assert_slice(out)
    assert out.meta.n_frames == 2
    assert out.meta.warnings == (f"multi-frame {fmt} (2 frames): using the first",)
    # The first frame, not the second (GIF quantises, so compare loosely).
    assert np.abs(out.pixels.astype(int) - head).mean() < 2
    assert np.abs(out.pixels.astype(int) - (255 - head)).mean() > 50


def test_format_is_found_by_content_not_extension(tmp_path, head):
    p = _save(Image.fromarray(head), tmp_path / "really_a_png.jpg", format="PNG")
    out = read_image(p)
    assert out.meta.format == "PNG"
    np.testing.assert_array_equal(out.pixels, head)


# -------------------------------------------------------------------------- input kinds


def test_bytes_input_matches_path_input(tmp_path, head):
    p = _save(Image.fromarray(head), tmp_path / "a.png")
    from_bytes = read_image(p.read_bytes())
    np.testing.assert_array_equal(from_bytes.pixels, read_image(p).pixels)
    assert from_bytes.meta.source == "<bytes>"
    assert read_image(p.read_bytes(), name="upload.png").meta.source == "upload.png"


def test_numpy_and_pil_inputs_match_the_file(tmp_path, head):
    rgb = np.stack([head, np.roll(head, 3, 0), np.roll(head, 5, 1)], axis=-1)
    p = _save(Image.fromarray(rgb), tmp_path / "rgb.png")
    from_file = read_image(p).pixels
    np.testing.assert_array_equal(read_image(rgb).pixels, from_file)
    np.testing.assert_array_equal(read_image(Image.open(p)).pixels, from_file)
    np.testing.assert_array_equal(read_image(head).pixels, head)
    np.testing.assert_array_equal(read_image(head[..., None]).pixels, head)
    assert read_image(head).meta.format == "array"
    assert read_image(Image.open(p)).meta.source == str(p)


def test_numpy_array_is_copied(head):
    arr = head.copy()
    out = read_image(arr)
    arr[:] = 0
    np.testing.assert_array_equal(out.pixels, head)


def test_numpy_float_and_deep_arrays(head):
    np.testing.assert_array_equal(read_image(head / 255.0).pixels, head)  # [0, 1] convention
    deep = read_image(head.astype(np.uint16) * 16).pixels
    assert deep.max() == 255 and np.corrcoef(deep.ravel(), head.ravel())[0, 1] > 0.999
    with_nan = head / 255.0
    with_nan[0, 0] = np.nan
    assert read_image(with_nan).pixels[0, 0] == 0


@pytest.mark.parametrize(
    "arr,match",
    [
        (np.zeros((3, 64, 64), np.uint8), r"shape \(3, 64, 64\) is not a 2-D slice"),
        (np.zeros((4, 4, 4, 4), np.uint8), "not a 2-D slice"),
        (np.array([["a"] * 16] * 16), "holds no pixel intensities"),
    ],
)
def test_bad_arrays(arr, match):
    with pytest.raises(ImageReadError, match=match):
        read_image(arr, name="scan-17")


def test_unsupported_input_type():
    with pytest.raises(ImageReadError, match="unsupported input type int"):
        read_image(12)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageReadError, match="nope.png: no such file"):
        read_image(tmp_path / "nope.png")
    with pytest.raises(ImageReadError, match="is a folder"):
        read_image(tmp_path)


# ---------------------------------------------------------------------------- bad input


def _raises_naming(path, match, **kw) -> ImageReadError:
    with pytest.raises(ImageReadError, match=match) as info:
        read_image(path, **kw)
    assert info.value.source == str(path)
    assert str(path) in str(info.value)  # the message names the file
    return info.value


def test_empty_file(tmp_path):
    p = tmp_path / "empty.png"
    p.write_bytes(b"")
    _raises_naming(p, r"file is empty \(0 bytes\)")


def test_random_bytes(tmp_path):
    p = tmp_path / "noise.png"
    p.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    _raises_naming(p, "not a recognised image format")


def test_text_file_with_image_extension(tmp_path):
    p = tmp_path / "x.jpg"
    p.write_text("patient list\nthis is not an image\n")
    _raises_naming(p, "file holds text, not image data")


@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_is_refused_not_padded(tmp_path, head, keep, progressive):
    buf = io.BytesIO()
    Image.fromarray(head).save(buf, "JPEG", quality=95, progressive=progressive)
    data = buf.getvalue()
    p = tmp_path / "cut.jpg"
    p.write_bytes(data[: int(len(data) * keep)])
    _raises_naming(p, "truncated (JPEG )?file: the data ends")
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png_is_refused(tmp_path, head):
    buf = io.BytesIO()
    Image.fromarray(head).save(buf, "PNG")
    p = tmp_path / "cut.png"
    p.write_bytes(buf.getvalue()[: len(buf.getvalue()) * 2 // 3])
    _raises_naming(p, "truncated PNG file: the data ends before the image does")


def test_reader_refuses_to_run_if_truncated_loading_was_switched_on(tmp_path, head, monkeypatch):
    p = _save(Image.fromarray(head), tmp_path / "a.jpg")
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(RuntimeError, match="LOAD_TRUNCATED_IMAGES"):
        read_image(p)


def test_decompression_bomb_refused_from_header_before_decoding(tmp_path, monkeypatch):
    p = _save(Image.new("L", (2000, 1500)), tmp_path / "bomb.png")  # ~3 kB on disk
    assert p.stat().st_size < 20_000

    def must_not_decode(self, *a, **k):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", must_not_decode)
    err = _raises_naming(p, "decompression bomb", max_pixels=1_000_000)
    assert "2000x1500" in err.reason and "1,000,000" in err.reason


def test_pillow_decompression_bomb_error_is_converted(tmp_path, head, monkeypatch):
    p = _save(Image.fromarray(head), tmp_path / "a.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 64*64 > 2x -> Pillow raises
    _raises_naming(p, "decompression bomb", max_pixels=10**9)


def test_one_pixel_image(tmp_path):
    p = _save(Image.new("L", (1, 1), 128), tmp_path / "dot.png")
    _raises_naming(p, "image is 1x1 pixels")


def test_thin_image(tmp_path, head):
    p = _save(Image.fromarray(head[: MIN_SIDE - 1]), tmp_path / "strip.png")
    _raises_naming(p, f"image is 64x{MIN_SIDE - 1} pixels; .* at least {MIN_SIDE} px")


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_constant_image_is_blank(tmp_path, fmt):
    p = _save(Image.new("L", (64, 64), 37), tmp_path / f"grey.{fmt.lower()}", format=fmt)
    _raises_naming(p, r"image is blank \(constant intensity")


def test_near_constant_image_is_blank(tmp_path):
    arr = np.full((100, 100), 90, np.uint8)
    arr[50, 50] = 91  # std 0.01 of a grey level
    p = _save(Image.fromarray(arr), tmp_path / "flat.png")
    _raises_naming(p, "image is blank")
    with pytest.raises(ImageReadError, match="blank"):
        read_image(arr)


def test_error_survives_pickling():
    err = pickle.loads(pickle.dumps(ImageReadError("a.png", "file is empty (0 bytes)")))
    assert (err.source, err.reason, str(err)) == (
        "a.png",
        "file is empty (0 bytes)",
        "a.png: file is empty (0 bytes)",
    )


# -------------------------------------------------------------------------------- DICOM

PATIENT_NAME = "Doe^Janet"
PATIENT_ID = "PID-98765-XYZ"


def _write_dicom(
    path,
    frames: np.ndarray,
    *,
    preamble: bool = True,
    pixel_data: bool = True,
    photometric: str = "MONOCHROME2",
    bits: int = 16,
    **elements,
):
    """A small MR DICOM written by pydicom itself, with patient identifiers set."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128 if preamble else None)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName, ds.PatientID = PATIENT_NAME, PATIENT_ID
    ds.PatientBirthDate, ds.InstitutionName = "19700101", "St Example Hospital"
    if frames.ndim == 3 and frames.shape[-1] != 3:
        ds.NumberOfFrames = frames.shape[0]
    rows, cols = (
        frames.shape[1:3] if frames.ndim == 3 and frames.shape[-1] != 3 else frames.shape[:2]
    )
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 3 if photometric == "RGB" else 1
    if photometric == "RGB":
        ds.PlanarConfiguration = 0
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = (
        bits,
        (12 if bits == 16 else 8),
        (11 if bits == 16 else 7),
    )
    ds.PixelRepresentation = 0
    for k, v in elements.items():
        setattr(ds, k, v)
    if pixel_data:
        ds.PixelData = frames.astype(np.uint16 if bits == 16 else np.uint8).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=preamble)
    return path


@pytest.fixture
def mr12(head) -> np.ndarray:
    return head.astype(np.uint16) * 16  # 12-bit stored values


def _assert_no_phi(*texts):
    for t in texts:
        for secret in (PATIENT_NAME, PATIENT_ID, "Doe", "Janet", "98765", "St Example"):
            assert secret not in t, f"{secret!r} leaked into {t!r}"


def test_dicom_monochrome2_without_window_uses_the_value_range(tmp_path, mr12, head):
    hot = mr12.copy()
    hot[0, 0] = 4095
    out = read_image(_write_dicom(tmp_path / "a.dcm", hot))
    _assert_slice(out)
    assert (out.meta.format, out.meta.mode) == ("DICOM", "MONOCHROME2")
    assert out.pixels.max() == 255 and out.pixels.min() == 0
    assert np.corrcoef(out.pixels[1:].ravel(), head[1:].ravel())[0, 1] > 0.999


def test_dicom_rescale_and_window(tmp_path):
    stored = np.tile(np.arange(0, 1024, 16, dtype=np.uint16), (64, 1))  # 0..1008 per row
    slope, intercept, centre, width = 2.0, -1000.0, 0.0, 1001.0
    p = _write_dicom(
        tmp_path / "w.dcm",
        stored,
        RescaleSlope=slope,
        RescaleIntercept=intercept,
        WindowCenter=centre,
        WindowWidth=width,
    )
    out = read_image(p).pixels
    # DICOM PS3.3 C.11.2.1.2.1, computed here independently of the reader.
    hu = stored * slope + intercept
    expected = np.clip(((hu - (centre - 0.5)) / (width - 1) + 0.5) * 255, 0, 255)
    assert np.abs(out.astype(float) - expected).max() <= 1.0
    assert out[0, 0] == 0 and out[0, -1] == 255  # both ends clipped by the window


def test_dicom_multi_valued_window_uses_the_first(tmp_path, mr12):
    single = read_image(
        _write_dicom(tmp_path / "1.dcm", mr12, WindowCenter=1500, WindowWidth=1000)
    ).pixels
    multi = read_image(
        _write_dicom(tmp_path / "2.dcm", mr12, WindowCenter=[1500, 400], WindowWidth=[1000, 80])
    ).pixels
    np.testing.assert_array_equal(single, multi)


def test_dicom_monochrome1_is_inverted(tmp_path, mr12):
    m2 = read_image(_write_dicom(tmp_path / "m2.dcm", mr12, WindowCenter=1500, WindowWidth=3000))
    m1 = read_image(
        _write_dicom(
            tmp_path / "m1.dcm",
            mr12,
            photometric="MONOCHROME1",
            WindowCenter=1500,
            WindowWidth=3000,
        )
    )
    assert m1.meta.mode == "MONOCHROME1"
    np.testing.assert_array_equal(m1.pixels, 255 - m2.pixels)


def test_dicom_rgb_becomes_luma(tmp_path, head):
    rgb = np.stack([head, np.roll(head, 2, 0), np.roll(head, 4, 1)], axis=-1)
    out = read_image(_write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB", bits=8))
    expected = np.asarray(Image.fromarray(rgb).convert("L")).astype(int)
    assert np.abs(out.pixels.astype(int) - expected).max() <= 1


def test_dicom_multi_frame_reads_first_with_warning(tmp_path, mr12):
    stack = np.stack([mr12, 4080 - mr12, mr12 // 2])
    with pytest.warns(ImageReadWarning, match="multi-frame DICOM \\(3 frames\\)"):
        out = read_image(_write_dicom(tmp_path / "cine.dcm", stack))
    single = read_image(_write_dicom(tmp_path / "one.dcm", mr12))
    np.testing.assert_array_equal(out.pixels, single.pixels)
    assert out.meta.n_frames == 3 and "using the first" in out.meta.warnings[0]


def test_dicom_without_preamble_is_read_by_extension(tmp_path, mr12):
    p = _write_dicom(tmp_path / "raw.dcm", mr12, preamble=False)
    assert p.read_bytes()[128:132] != b"DICM"
    out = read_image(p)
    assert out.meta.format == "DICOM"
    np.testing.assert_array_equal(
        out.pixels, read_image(_write_dicom(tmp_path / "b.dcm", mr12)).pixels
    )
    assert read_image(p.read_bytes(), name="upload.dcm").meta.format == "DICOM"
    with pytest.raises(ImageReadError, match="not a recognised image format"):
        read_image(p.read_bytes())  # no name, no magic: nothing claims it


def test_png_named_dcm_goes_to_pillow(tmp_path, head):
    p = _save(Image.fromarray(head), tmp_path / "misnamed.dcm", format="PNG")
    assert read_image(p).meta.format == "PNG"


def test_text_named_dcm_is_refused(tmp_path):
    p = tmp_path / "notes.dcm"
    p.write_text("hello, this is no DICOM\n" * 20)
    _raises_naming(p, "DICOM")


def test_dicom_without_pixel_data(tmp_path, mr12):
    p = _write_dicom(tmp_path / "sr.dcm", mr12, pixel_data=False)
    _raises_naming(p, "DICOM file has no pixel data")


def test_dicom_size_limit_checked_before_decoding(tmp_path, mr12, monkeypatch):
    import pydicom.pixels

    def must_not_decode(*a, **k):
        raise AssertionError("pixel data was decoded")

    monkeypatch.setattr(pydicom.pixels, "pixel_array", must_not_decode)
    p = _write_dicom(tmp_path / "big.dcm", mr12)
    _raises_naming(p, "above the limit of 1,000 pixels", max_pixels=1000)


def test_no_patient_identifier_reaches_meta_errors_warnings_or_logs(tmp_path, mr12, caplog):
    caplog.set_level(logging.DEBUG)
    texts: list[str] = []
    ok = _write_dicom(tmp_path / "ok.dcm", np.stack([mr12, mr12]))
    assert PATIENT_ID.encode() in ok.read_bytes()  # the identifiers are really in the file
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = read_image(ok)
    texts += [repr(out), repr(out.meta), str(out.meta), *(str(w.message) for w in caught)]

    cut = tmp_path / "cut.dcm"
    cut.write_bytes(ok.read_bytes()[:-3000])
    bad = [
        _write_dicom(tmp_path / "nopix.dcm", mr12, pixel_data=False),
        _write_dicom(tmp_path / "blank.dcm", np.full((16, 16), 700, np.uint16)),
        _write_dicom(tmp_path / "dot.dcm", np.full((1, 1), 700, np.uint16)),
        cut,
    ]
    for p in bad:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(ImageReadError) as info:
                read_image(p)
        exc = info.value
        texts += [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
        texts += [str(w.message) for w in caught]
    texts.append(caplog.text)
    _assert_no_phi(*texts)
    # Each bad file got its own, specific reason.
    reasons = [t for t in texts if t.startswith(str(tmp_path))]
    assert any("no pixel data" in r for r in reasons)
    assert any("blank" in r for r in reasons)
    assert any("1x1 pixels" in r for r in reasons)


def test_dicom_compressed_transfer_syntaxes(tmp_path, mr12, head):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, RLELossless

    plain = _write_dicom(tmp_path / "plain.dcm", mr12)
    ds = pydicom.dcmread(plain)
    ds.compress(RLELossless)  # pydicom's own RLE encoder
    ds.save_as(tmp_path / "rle.dcm")
    np.testing.assert_array_equal(read_image(tmp_path / "rle.dcm").pixels, read_image(plain).pixels)

    buf = io.BytesIO()
    Image.fromarray(head).save(buf, "JPEG", quality=95)
    ds = pydicom.dcmread(_write_dicom(tmp_path / "j.dcm", head, bits=8))
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds.save_as(tmp_path / "jpeg.dcm", enforce_file_format=True)
    out = read_image(tmp_path / "jpeg.dcm")
    assert np.corrcoef(out.pixels.ravel(), head.ravel())[0, 1] > 0.99


def test_dicom_unusable_window_falls_back_to_the_value_range(tmp_path, mr12):
    with pytest.warns(ImageReadWarning, match="unusable window"):
        out = read_image(_write_dicom(tmp_path / "w0.dcm", mr12, WindowCenter=100, WindowWidth=0))
    plain = read_image(_write_dicom(tmp_path / "plain.dcm", mr12))
    np.testing.assert_array_equal(out.pixels, plain.pixels)
    assert "unusable window" in out.meta.warnings[0]


def test_dicom_undecodable_pixel_data_names_the_transfer_syntax(tmp_path, mr12):
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGLossless

    ds = pydicom.dcmread(_write_dicom(tmp_path / "a.dcm", mr12))
    ds.PixelData = encapsulate([b"\xff\xd8" + b"\0" * 100])  # not a real JPEG stream
    ds["PixelData"].VR = "OB"
    ds.file_meta.TransferSyntaxUID = JPEGLossless
    ds.save_as(tmp_path / "jl.dcm", enforce_file_format=True)
    err = _raises_naming(tmp_path / "jl.dcm", r"cannot decode DICOM pixel data \(JPEG Lossless")
    assert "\n" not in str(err)
    _assert_no_phi(str(err))


def test_big_endian_16_bit_matches_little_endian(head):
    deep = head.astype(np.uint16) * 16
    little = Image.frombytes("I;16", (SIZE, SIZE), deep.astype("<u2").tobytes())
    big = Image.frombytes("I;16B", (SIZE, SIZE), deep.astype(">u2").tobytes())
    np.testing.assert_array_equal(read_image(big).pixels, read_image(little).pixels)
    assert read_image(big).meta.mode == "I;16B"
