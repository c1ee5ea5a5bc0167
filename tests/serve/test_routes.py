"""Each route answers what the docs promise, with the real Predictor behind it."""

from __future__ import annotations

import base64
import io
import json
import logging
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from braintumor import DISCLAIMER, __version__
from braintumor.serve.app import PAGE_CSP

from .conftest import CLASSES, PATIENT_ID, PATIENT_NAME, dicom_bytes, encode


def _png_from_b64(text: str) -> Image.Image:
    img = Image.open(io.BytesIO(base64.b64decode(text)))
    img.load()
    return img


def test_health_names_model_and_key_requirement(client, predictor):
    body = client.get("/health").json()
    assert body == {"status": "ok", "version": __version__, "model": predictor.name,
                    "api_key_required": False, "max_upload_bytes": 20 * 1024 * 1024,
                    "disclaimer": DISCLAIMER}


def test_model_card_route(client, predictor):
    body = client.get("/v1/model").json()
    assert body["name"] == "braintumor-net"
    assert body["checksum"] == predictor.checksum
    assert body["classes"] == CLASSES
    assert body["card"]["preprocess"]["image_size"] == 64
    assert body["disclaimer"] == DISCLAIMER


def test_predict_matches_predictor_and_carries_provenance(client, predictor, scan_png):
    response = client.post("/v1/predict", files={"file": ("scan.png", scan_png, "image/png")})
    assert response.status_code == 200
    body = response.json()
    direct = predictor.predict_one(scan_png)
    assert body["label"] == direct.label
    assert body["probabilities"] == pytest.approx(direct.probabilities, abs=1e-9)
    assert sum(body["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
    assert body["confidence"] == pytest.approx(max(body["probabilities"].values()))
    assert body["model"] == "braintumor-net" and body["checksum"] == predictor.checksum
    assert 0 < body["seconds"] < 30
    assert body["image_size"] == [96, 96] and body["image_format"] == "PNG"
    assert body["disclaimer"] == DISCLAIMER
    assert "overlay_png" not in body


def test_predict_reads_jpeg(client, predictor, scan_jpeg):
    body = client.post("/v1/predict", files={"file": ("x.jpg", scan_jpeg, "image/jpeg")}).json()
    assert body["image_format"] == "JPEG"
    assert body["label"] == predictor.predict_one(scan_jpeg).label


def test_declared_content_type_and_name_are_not_trusted(client, scan_png):
    """The format is judged by content: a PNG sent as 'notes.txt', text/plain, still reads."""
    response = client.post("/v1/predict", files={"file": ("notes.txt", scan_png, "text/plain")})
    assert response.status_code == 200
    assert response.json()["image_format"] == "PNG"


def test_explain_json_has_overlay_heatmap_and_scan(client, predictor, scan_png):
    response = client.post("/v1/explain", files={"file": ("scan.png", scan_png, "image/png")})
    assert response.status_code == 200
    body = response.json()
    direct = predictor.predict_one(scan_png, explain=True)
    assert body["label"] == direct.label
    overlay = _png_from_b64(body["overlay_png"])
    assert overlay.size == (96, 96) and overlay.mode == "RGB"
    assert np.array_equal(np.asarray(overlay), direct.overlay)
    heat = _png_from_b64(body["heatmap_png"])
    assert heat.size == (96, 96) and heat.mode == "RGBA"
    alpha = np.asarray(heat)[..., 3]
    # transparency follows the map: strongest evidence most opaque, and not all one value
    assert alpha.max() > alpha.min()
    # (alpha saturates below the map's top, so compare at the map's peak, not argmax to argmax)
    assert alpha[np.unravel_index(direct.heatmap.argmax(), alpha.shape)] == alpha.max()
    scan = _png_from_b64(body["scan_png"])
    assert scan.mode == "L" and scan.size == (96, 96)


@pytest.mark.parametrize("how", ["query", "accept"])
def test_explain_png_body(client, scan_png, how):
    kwargs = {"params": {"format": "png"}} if how == "query" else {
        "headers": {"Accept": "image/png"}}
    response = client.post("/v1/explain", files={"file": ("s.png", scan_png, "image/png")},
                           **kwargs)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).size == (96, 96)
    label = response.headers["x-braintumor-label"]
    probabilities = json.loads(response.headers["x-braintumor-probabilities"])
    assert label == max(probabilities, key=probabilities.get)
    assert response.headers["x-braintumor-disclaimer"] == DISCLAIMER


def test_explain_json_wins_when_both_are_accepted(client, scan_png):
    response = client.post("/v1/explain", files={"file": ("s.png", scan_png, "image/png")},
                           headers={"Accept": "application/json, image/png"})
    assert response.headers["content-type"] == "application/json"


def test_page_is_self_contained_and_shows_disclaimer(client):
    response = client.get("/")
    assert response.status_code == 200
    page = response.text
    assert DISCLAIMER in page
    assert "__DISCLAIMER__" not in page and "__VERSION__" not in page
    # nothing fetched from elsewhere: no absolute URLs in src/href, no @import or url(http...)
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "@import" not in page and not re.search(r"url\(\s*['\"]?https?:", page)
    assert response.headers["content-security-policy"] == PAGE_CSP
    for needle in ('role="alert"', 'aria-live="polite"', 'for="file-input"', 'for="opacity"',
                   'for="api-key"'):
        assert needle in page


def test_openapi_docs_list_routes_and_disclaimer(client):
    spec = client.get("/openapi.json").json()
    assert {"/health", "/v1/predict", "/v1/explain", "/v1/model"} <= set(spec["paths"])
    assert DISCLAIMER in spec["info"]["description"]
    assert "X-API-Key" in json.dumps(spec["components"]["securitySchemes"])
    assert client.get("/docs").status_code == 200


def test_dicom_patient_fields_never_leave_the_reader(client, synthetic_slice, caplog, capfd):
    caplog.set_level(logging.DEBUG)
    data = dicom_bytes(synthetic_slice(96, seed=5, blob=(0.35, 0.68)))
    assert PATIENT_NAME.encode() in data and PATIENT_ID.encode() in data  # really in the file
    texts = []
    for route in ("/v1/predict", "/v1/explain"):
        response = client.post(route, files={"file": ("DOE^JANE.dcm", data, "application/dicom")})
        assert response.status_code == 200, response.text
        assert response.json()["image_format"] == "DICOM"
        texts.append(response.text)
    no_pixels = client.post("/v1/predict", files={"file": ("x.dcm", dicom_bytes(None), "")})
    assert no_pixels.status_code == 422
    assert "pixel data" in no_pixels.json()["detail"]
    texts.append(no_pixels.text)
    out, err = capfd.readouterr()
    texts += [caplog.text, out, err]
    for text in texts:
        for secret in (PATIENT_NAME, PATIENT_ID, "DOE", "JANE"):
            assert secret not in text


def test_live_server_answers_concurrent_requests_like_sequential_ones(
        live_server, predictor, synthetic_slice):
    """16 clients at once on real uvicorn: each gets its own image's answer, heatmap included."""
    blobs = [None, (0.35, 0.35), (0.35, 0.68), (0.68, 0.5)]
    images = [encode(synthetic_slice(72 + 4 * i, seed=10 + i, blob=blobs[i % 4]))
              for i in range(16)]
    expected = [predictor.predict_one(img, explain=True) for img in images]

    def post(i: int) -> dict:
        route = "/v1/explain" if i % 2 else "/v1/predict"
        r = httpx.post(live_server.url + route, files={"file": (f"{i}.png", images[i])},
                       timeout=60)
        r.raise_for_status()
        return r.json()

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(post, range(16)))
    for i, (answer, want) in enumerate(zip(answers, expected, strict=True)):
        assert answer["label"] == want.label
        assert answer["probabilities"] == pytest.approx(want.probabilities, abs=1e-6)
        if i % 2:
            overlay = np.asarray(_png_from_b64(answer["overlay_png"]))
            assert np.array_equal(overlay, want.overlay)
    assert httpx.get(live_server.url + "/health").json()["status"] == "ok"
