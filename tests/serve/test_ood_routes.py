"""The out-of-distribution warning over REST: /v1/predict, /v1/explain and /v1/model."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from fastapi.testclient import TestClient

from braintumor.inference.ood import WARNING_TEXT
from braintumor.inference.predictor import Predictor
from braintumor.serve.app import create_app

from ..conftest import calibrate_on_synthetic_slices, synthetic_slices
from .conftest import encode


@pytest.fixture(scope="module")
def calibrated_client(serve_bundle, tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-calibrated")
    shutil.copytree(serve_bundle, folder, dirs_exist_ok=True)
    with TestClient(create_app(Predictor.load(calibrate_on_synthetic_slices(folder))),
                    raise_server_exceptions=False) as client:
        yield client


def _post(client, route: str, pixels: np.ndarray, **params):
    return client.post(route, files={"file": ("x.png", encode(pixels), "image/png")},
                       params=params)


NOISE = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)


def test_predict_and_explain_carry_the_warning(calibrated_client):
    for route in ("/v1/predict", "/v1/explain"):
        body = _post(calibrated_client, route, NOISE).json()
        assert body["warning"] == WARNING_TEXT and body["ood_score"] > 1, route
        assert body["ood_reasons"] and body["label"]


def test_brain_like_scan_gets_no_warning(calibrated_client):
    scan = synthetic_slices([6000])[0][0]
    body = _post(calibrated_client, "/v1/predict", scan).json()
    assert body["warning"] is None and body["ood_score"] <= 1


def test_explain_png_headers_carry_the_warning(calibrated_client):
    response = _post(calibrated_client, "/v1/explain", NOISE, format="png")
    assert response.headers["content-type"] == "image/png"
    assert response.headers["X-Braintumor-Warning"] == WARNING_TEXT
    assert float(response.headers["X-Braintumor-OOD-Score"]) > 1


def test_model_route_says_whether_warnings_are_calibrated(calibrated_client, client):
    assert calibrated_client.get("/v1/model").json()["ood"]["calibrated"] is True
    plain = client.get("/v1/model").json()["ood"]
    assert plain["calibrated"] is False and "calibrate-ood" in plain["note"]
    body = client.post("/v1/predict", files={"file": ("x.png", encode(NOISE), "image/png")}
                       ).json()
    assert body["warning"] is None and body["ood_score"] is None


def test_page_has_the_banner(client):
    page = client.get("/").text
    assert 'id="ood-banner"' in page and "body.warning" in page
