"""``/v1/explain`` and ``/v1/model`` with a tumour-head model: mask PNG + RLE, outline, areas."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.explain.outline import OUTLINE_CAVEAT, rle_decode
from braintumor.inference.predictor import Predictor
from braintumor.serve.app import create_app

from ..conftest import TUMOUR_THRESHOLD
from .conftest import encode


@pytest.fixture(scope="module")
def tumour_predictor(tumour_bundle) -> Predictor:
    return Predictor.load(tumour_bundle)


@pytest.fixture
def tumour_client(tumour_predictor):
    with TestClient(create_app(tumour_predictor), raise_server_exceptions=False) as client:
        yield client


def test_explain_answer_carries_the_predicted_outline(tumour_client, tumour_predictor,
                                                      synthetic_slice):
    pixels = synthetic_slice(110, seed=9, blob=(0.35, 0.68), pad=5)
    r = tumour_client.post("/v1/explain", files={"file": ("s.png", encode(pixels), "image/png")})
    assert r.status_code == 200
    body = r.json()
    t = body["tumour"]
    h, w = body["image_size"]
    png = np.asarray(Image.open(io.BytesIO(base64.b64decode(t["mask_png"]))))
    assert png.shape == (h, w) and set(np.unique(png)) <= {0, 255}
    rle = rle_decode(t["mask_rle"])
    np.testing.assert_array_equal(rle, png == 255)
    assert t["mask_rle"]["size"] == [h, w] and "column-major" in t["rle_format"]
    assert t["area_px"] == int(rle.sum()) > 0
    assert t["threshold"] == TUMOUR_THRESHOLD and t["note"] == OUTLINE_CAVEAT
    ref = tumour_predictor.predict_one(pixels, outline=True)
    np.testing.assert_array_equal(rle, ref.tumour_mask)
    assert t["area_percent"] == pytest.approx(ref.tumour_area_percent, abs=1e-3)
    for poly in t["outline"]:
        pts = np.asarray(poly)
        assert pts.shape[1] == 2 and poly[0] == poly[-1]
        assert pts[:, 0].max() <= w - 1 and pts[:, 1].max() <= h - 1

    plain = tumour_client.post("/v1/predict", files={"file": ("s.png", encode(pixels),
                                                              "image/png")}).json()
    assert "tumour" not in plain  # /v1/predict stays the plain, fast classification
    card = tumour_client.get("/v1/model").json()
    assert card["has_tumour_head"] is True and card["tumour_threshold"] == TUMOUR_THRESHOLD


def test_plain_model_answers_null_tumour(client, scan_png):
    body = client.post("/v1/explain", files={"file": ("s.png", scan_png, "image/png")}).json()
    assert body["tumour"] is None and body["heatmap_png"]
    card = client.get("/v1/model").json()
    assert card["has_tumour_head"] is False and card["tumour_threshold"] is None


def test_openapi_documents_the_outline(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    fields = schemas["TumourOutlineResponse"]["properties"]
    assert {"mask_png", "mask_rle", "rle_format", "outline", "area_px", "area_percent",
            "threshold", "note"} <= set(fields)
    assert "column-major" in fields["mask_rle"]["description"]
