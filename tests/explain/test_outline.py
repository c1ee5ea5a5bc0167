"""The predicted tumour outline: contour tracing, RLE, mapping back, and the Predictor's fields."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from braintumor.data.preprocess import map_to_original, preprocess, to_model_input
from braintumor.explain.localisation import head_mask
from braintumor.explain.outline import (
    card_threshold,
    head_area,
    outline_on_input,
    probability_maps,
    rle_decode,
    rle_encode,
    trace_contours,
)
from braintumor.inference.predictor import Predictor
from braintumor.models import load_bundle
from braintumor.models.tumour import DEFAULT_TUMOUR_THRESHOLD, tumour_probabilities

from ..conftest import TUMOUR_THRESHOLD


def _shoelace(poly) -> float:
    p = np.asarray(poly)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _disc(h: int, w: int, cy: float, cx: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    # a smooth bump: 1 at the centre, 0.5 on the circle of radius r
    return np.exp(-np.log(2) * ((yy - cy) ** 2 + (xx - cx) ** 2) / r**2)


def test_contour_of_a_disc_is_one_closed_polygon_enclosing_its_area():
    prob = _disc(80, 100, 30.0, 60.0, 15.0)
    polys = trace_contours(prob, 0.5)
    assert len(polys) == 1
    poly = polys[0]
    assert poly[0] == poly[-1] and len(poly) > 20
    pts = np.asarray(poly)
    radius = np.hypot(pts[:, 0] - 60.0, pts[:, 1] - 30.0)  # x is the column, y the row
    np.testing.assert_allclose(radius, 15.0, atol=0.3)
    assert _shoelace(poly) == pytest.approx((prob > 0.5).sum(), rel=0.05)


def test_region_on_the_edge_gives_a_closed_polygon_inside_the_image():
    prob = np.zeros((40, 50))
    prob[:, :10] = 1.0  # touches the top, left and bottom edges
    (poly,) = trace_contours(prob, 0.5)
    pts = np.asarray(poly)
    assert poly[0] == poly[-1]
    assert pts[:, 0].min() >= 0 and pts[:, 0].max() <= 49
    assert pts[:, 1].min() >= 0 and pts[:, 1].max() <= 39
    assert pts[:, 0].max() == pytest.approx(9.5, abs=0.01)


def test_no_tumour_gives_no_polygon():
    assert trace_contours(np.full((10, 10), 0.2), 0.5) == []


def test_rle_is_coco_style_column_major_starting_with_background():
    mask = np.array([[0, 1, 1], [0, 0, 1]], bool)
    rle = rle_encode(mask)
    assert rle == {"size": [2, 3], "counts": [2, 1, 1, 2]}  # columns: 00 | 10 | 11
    starts_with_tumour = np.array([[1, 0], [1, 1]], bool)
    assert rle_encode(starts_with_tumour)["counts"] == [0, 2, 1, 1]
    rng = np.random.default_rng(0)
    for shape in [(1, 1), (7, 5), (64, 48)]:
        m = rng.random(shape) > 0.6
        r = rle_encode(m)
        assert sum(r["counts"]) == m.size
        np.testing.assert_array_equal(rle_decode(r), m)
    np.testing.assert_array_equal(rle_decode(rle_encode(np.zeros((3, 4), bool))),
                                  np.zeros((3, 4), bool))


def test_card_threshold():
    assert card_threshold({}) == DEFAULT_TUMOUR_THRESHOLD
    assert card_threshold({"tumour_threshold": 0.35}) == 0.35
    with pytest.raises(ValueError, match="tumour_threshold"):
        card_threshold({"tumour_threshold": 1.5})


def test_outline_is_mapped_back_onto_the_input_grid(synthetic_slice):
    pixels = synthetic_slice(120, seed=2, pad=40)  # a 200 px image, the head in the middle
    pre = preprocess(pixels)
    s = pre.image.shape[0]
    model_prob = np.zeros((s, s), np.float32)
    model_prob[s // 4 : s // 2, s // 4 : s // 2] = 1.0
    traced = outline_on_input(model_prob, pre.crop, pixels, 0.5)
    assert traced.mask.shape == pixels.shape
    np.testing.assert_array_equal(traced.mask, map_to_original(model_prob, pre.crop) > 0.5)
    rows, cols = np.nonzero(traced.mask)
    side, top, left = pre.crop.side, pre.crop.top, pre.crop.left
    assert rows.min() == pytest.approx(top + side / 4, abs=2)
    assert cols.min() == pytest.approx(left + side / 4, abs=2)
    assert traced.head_area_px == head_mask(pixels).sum()
    assert traced.area_percent == pytest.approx(100 * traced.area_px / traced.head_area_px)
    (poly,) = traced.polygons
    assert _shoelace(poly) == pytest.approx(traced.area_px, rel=0.1)  # a small square


def test_probability_maps_match_the_contract():
    torch.manual_seed(0)
    logits = torch.randn(2, 1, 3, 3) * 3

    class Fake(torch.nn.Module):
        has_tumour_head = True

        def forward_with_tumour(self, x):
            return torch.zeros(len(x), 4), logits

    _, ref = tumour_probabilities(Fake(), torch.zeros(2, 1, 48, 48))
    np.testing.assert_allclose(probability_maps(logits.numpy(), 48), ref[:, 0].numpy(),
                               atol=1e-6)


# ------------------------------------------------------------------------------- Predictor
@pytest.fixture(scope="module")
def tumour_predictor(tumour_bundle) -> Predictor:
    return Predictor.load(tumour_bundle)


def test_predictor_outline_follows_the_model_and_the_cards_threshold(tumour_predictor,
                                                                     tumour_bundle,
                                                                     synthetic_slice):
    assert tumour_predictor.has_tumour_head
    assert tumour_predictor.tumour_threshold == TUMOUR_THRESHOLD
    pixels = synthetic_slice(110, seed=5, blob=(0.35, 0.35), pad=15)
    pred = tumour_predictor.predict(pixels, outline=True)[0]
    assert pred.tumour_mask.shape == pixels.shape and pred.tumour_mask.dtype == bool
    assert 0 < pred.tumour_area_px < pixels.size
    assert pred.tumour_area_px == int(pred.tumour_mask.sum())
    assert pred.tumour_area_percent == pytest.approx(
        100 * pred.tumour_area_px / head_mask(pixels).sum())
    assert pred.tumour_outline and all(p[0] == p[-1] for p in pred.tumour_outline)
    # the reference: the contract's map of the model itself, mapped back like the heatmap
    loaded = load_bundle(tumour_bundle)
    pre = preprocess(pixels, loaded.preprocess)
    with torch.no_grad():
        _, prob = tumour_probabilities(loaded.model.eval(), to_model_input(pre.image))
    ref = np.clip(map_to_original(prob[0, 0].numpy(), pre.crop), 0, 1)
    differs = pred.tumour_mask != (ref > TUMOUR_THRESHOLD)
    assert np.all(np.abs(ref[differs] - TUMOUR_THRESHOLD) < 1e-4)
    d = pred.to_dict()
    assert d["tumour_area_px"] == pred.tumour_area_px
    assert d["tumour_area_percent"] == pytest.approx(pred.tumour_area_percent, abs=1e-4)


def test_explain_brings_the_outline_and_plain_prediction_does_not(tumour_predictor,
                                                                  synthetic_slice,
                                                                  monkeypatch):
    pixels = synthetic_slice(96, seed=6, blob=(0.68, 0.5))
    explained = tumour_predictor.predict_one(pixels, explain=True)
    assert explained.heatmap is not None and explained.tumour_mask is not None
    plain_forward = tumour_predictor._logits_fn

    def no_tumour_pass(batch):
        raise AssertionError("plain prediction must not run the tumour head's extra work")

    monkeypatch.setattr(tumour_predictor, "_tumour_fn", no_tumour_pass)
    plain = tumour_predictor.predict(pixels)[0]
    assert plain.tumour_mask is None and plain.tumour_outline is None
    assert "tumour_area_px" not in plain.to_dict()
    assert tumour_predictor._logits_fn is plain_forward
    assert plain.label == explained.label


def test_plain_model_gives_no_outline_and_no_new_keys(tiny_bundle, synthetic_slice):
    predictor = Predictor.load(tiny_bundle)
    assert not predictor.has_tumour_head and predictor.tumour_threshold is None
    pred = predictor.predict(synthetic_slice(80, seed=1), explain=True, outline=True)[0]
    assert pred.ok and pred.heatmap is not None
    assert (pred.tumour_mask, pred.tumour_area_px, pred.tumour_area_percent,
            pred.tumour_outline) == (None, None, None, None)
    assert set(pred.to_dict()) == {"source", "label", "confidence", "probabilities", "model",
                                   "checksum", "error", "seconds", "has_heatmap", "warning",
                                   "ood_score", "ood_reasons"}


def test_head_area_of_a_large_slice_is_counted_on_a_subsample(synthetic_slice):

    pixels = synthetic_slice(600, seed=3, blob=(0.35, 0.35))
    exact = int(head_mask(pixels).sum())
    assert head_area(pixels) == pytest.approx(exact, rel=0.01)
    assert head_area(pixels, max_side=1000) == exact
