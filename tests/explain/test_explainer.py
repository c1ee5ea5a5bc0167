"""The Explainer API and rendering: maps back on the user's image grid, right side up, labelled."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from braintumor.explain import SHORT_DISCLAIMER, Explainer, compose_panel, render_overlay
from braintumor.explain.overlay import colorize
from braintumor.models import load_bundle
from braintumor.models.runtime import softmax
from tests.conftest import BLOB_CENTRES, blob_mask, make_slice
from tests.explain.conftest import SIZE, TEMPERATURE


def write_dicom(path, pixels: np.ndarray):
    """An 8-bit MONOCHROME2 MR slice written by pydicom."""
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = pixels.astype(np.uint8).tobytes()
    pydicom.dcmwrite(path, ds, enforce_file_format=True)
    return path


def right_side_up(heat: np.ndarray, mask: np.ndarray) -> bool:
    """The map is hotter on the blob than where the blob would be if the map were flipped
    (up-down, left-right) or transposed."""
    inside = heat[mask].mean()
    return all(inside > heat[m].mean() for m in (mask[::-1], mask[:, ::-1], mask.T)
               if m.shape == heat.shape and not np.array_equal(m, mask))


def off_centre(seed: int, label: str = "glioma"):
    """A non-square slice with the head off-centre, and its blob mask on the same grid:
    the map must come back through the crop and resize to land on the blob."""
    pad = ((5, 23), (31, 3))
    img = np.pad(make_slice(SIZE, seed, BLOB_CENTRES[label]), pad)
    return img, np.pad(blob_mask(SIZE, seed, label), pad)


@pytest.fixture(scope="module")
def explainer(tiny_bundle):
    return Explainer(load_bundle(tiny_bundle))


def test_bundle_gives_classes_preprocessing_and_temperature(explainer, tiny_config):
    assert explainer.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert explainer.preprocess == tiny_config
    assert explainer.temperature == TEMPERATURE


def test_heatmap_is_on_the_input_grid_and_on_the_blob(explainer):
    hits = []
    for seed in range(900, 912):
        label = ("glioma", "meningioma", "pituitary")[seed % 3]
        img, mask = off_centre(seed, label)
        e = explainer.explain(img)
        assert e.heatmap.shape == img.shape == e.image.shape
        assert e.heatmap.dtype == np.float32 and 0 <= e.heatmap.min() <= e.heatmap.max() <= 1
        assert e.overlay.shape == (*img.shape, 3) and e.overlay.dtype == np.uint8
        assert e.model_heatmap.shape == (SIZE, SIZE)
        hits.append(mask[np.unravel_index(np.argmax(e.heatmap), img.shape)])
        # Outside the head's square the model saw nothing: the map is 0 there.
        assert e.heatmap[:, :20].max() == 0
    assert np.mean(hits) >= 0.7


def test_prediction_fields_are_calibrated(explainer):
    img, _ = off_centre(7)
    e = explainer.explain(img, target="notumor")
    batch = explainer.explain_batch(explainer.prepare(img)[1].image[None])
    expected = softmax(batch.logits, TEMPERATURE)[0]
    assert list(e.probabilities) == explainer.classes
    np.testing.assert_allclose(list(e.probabilities.values()), expected, rtol=1e-6)
    assert e.label == explainer.classes[int(np.argmax(expected))] == "glioma"
    assert e.confidence == pytest.approx(expected.max())
    assert e.target == "notumor"
    caption = "\n".join(e.caption())
    assert f"p = {e.confidence:.3f}" in caption and "glioma" in caption
    assert "Explained: notumor (not the predicted class)" in caption
    assert e.caption()[-1] == SHORT_DISCLAIMER


@pytest.mark.parametrize("kind", ["png", "jpeg", "bytes", "pil", "dicom"])
def test_every_input_kind_gives_the_same_geometry(explainer, tmp_path, kind):
    img, mask = off_centre(11, "pituitary")
    path = tmp_path / f"slice.{kind}"
    if kind == "png":
        Image.fromarray(img).save(path)
        source = path
    elif kind == "jpeg":
        Image.fromarray(img).save(path, quality=95)
        source = path
    elif kind == "bytes":
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG")
        source = buf.getvalue()
    elif kind == "pil":
        source = Image.fromarray(img).convert("RGB")
    else:
        source = write_dicom(tmp_path / "slice.dcm", img)
    e = explainer.explain(source)
    assert e.heatmap.shape == img.shape and e.overlay.shape == (*img.shape, 3)
    assert e.label == "pituitary"
    assert right_side_up(e.heatmap, mask)


def test_panel_shows_input_heatmap_and_overlay_unflipped(explainer):
    img, _ = off_centre(3)
    e = explainer.explain(img)
    panel = e.panel()
    h, w = img.shape
    gap = (panel.shape[1] - 3 * w) // 2
    assert panel.shape[1] == 3 * w + 2 * gap and panel.shape[0] > h
    body = panel[-h:]
    np.testing.assert_array_equal(body[:, :w], np.repeat(img[..., None], 3, axis=2))
    np.testing.assert_array_equal(body[:, w + gap : 2 * w + gap], colorize(e.heatmap, "jet"))
    np.testing.assert_array_equal(body[:, 2 * (w + gap) :], e.overlay)
    assert panel[: panel.shape[0] - h].std() > 0  # the caption was drawn


def test_save_writes_png_and_npy(explainer, tmp_path):
    img, _ = off_centre(4)
    e = explainer.explain(img, method="gradcam++")
    png = e.save(tmp_path / "out" / "x.png", save_npy=True)
    np.testing.assert_array_equal(np.asarray(Image.open(png)), e.panel())
    np.testing.assert_array_equal(np.load(tmp_path / "out" / "x.npy"), e.heatmap)


def test_render_overlay_blends_by_alpha():
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))
    heat = np.linspace(0, 1, gray.size, dtype=np.float32).reshape(gray.shape)
    np.testing.assert_array_equal(render_overlay(gray, heat, 0.0), np.repeat(gray[..., None], 3, 2))
    np.testing.assert_array_equal(render_overlay(gray, heat, 1.0, "viridis"),
                                  colorize(heat, "viridis"))
    half = render_overlay(gray, heat, 0.5, "gray").astype(int)
    expected = (gray.astype(int) + colorize(heat, "gray")[..., 0].astype(int)) / 2
    assert np.abs(half[..., 0] - expected).max() <= 1
    with pytest.raises(ValueError, match="does not match"):
        render_overlay(gray, heat[:4], 0.5)
    with pytest.raises(ValueError, match="unknown colormap"):
        render_overlay(gray, heat, 0.5, "no-such-map")
    with pytest.raises(ValueError, match="alpha"):
        render_overlay(gray, heat, 1.5)


def test_compose_panel_wraps_long_captions_on_small_images():
    img = np.full((20, 20), 100, np.uint8)
    heat = np.zeros((20, 20), np.float32)
    short = compose_panel(img, heat, render_overlay(img, heat), ["a"])
    long = compose_panel(img, heat, render_overlay(img, heat), ["word " * 40])
    assert short.shape[1] == long.shape[1] and long.shape[0] > short.shape[0]
