"""Every documented error code, the API key, the upload limit and CORS."""

from __future__ import annotations

import argparse
import logging
import struct
import zlib

import numpy as np
import pytest

from braintumor.serve.command import serve_command
from braintumor.serve.errors import INTERNAL_ERROR_DETAIL
from braintumor.serve.settings import API_KEY_ENV, ServeSettings

from .conftest import PATIENT_ID, PATIENT_NAME, dicom_bytes, encode

KEY = "s3cret-key-for-tests"


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code and body["status"] == status
    assert isinstance(body["detail"], str) and len(body["detail"]) > 10
    return body


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose valid IHDR declares ``width`` x ``height`` (no real pixels follow)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat)
            + png_chunk(b"IEND", b""))


# ------------------------------------------------------------------------------------ 401
@pytest.mark.parametrize("route,method", [("/v1/predict", "post"), ("/v1/explain", "post"),
                                          ("/v1/model", "get")])
def test_api_key_required_on_every_v1_route(make_client, scan_png, route, method):
    client = make_client(api_key=KEY)
    kwargs = {"files": {"file": ("s.png", scan_png)}} if method == "post" else {}
    missing = getattr(client, method)(route, **kwargs)
    body = assert_error(missing, 401, "unauthorized")
    assert "X-API-Key" in body["detail"]
    assert missing.headers["www-authenticate"].startswith("ApiKey")
    wrong = getattr(client, method)(route, headers={"X-API-Key": KEY + "x"}, **kwargs)
    assert_error(wrong, 401, "unauthorized")
    right = getattr(client, method)(route, headers={"X-API-Key": KEY}, **kwargs)
    assert right.status_code == 200, right.text


def test_api_key_leaves_page_health_and_docs_open(make_client):
    client = make_client(api_key=KEY)
    assert client.get("/").status_code == 200
    assert client.get("/health").json()["api_key_required"] is True
    assert client.get("/openapi.json").status_code == 200
    assert_error(client.get("/v1/nothing-here"), 401, "unauthorized")  # unknown paths too


def test_api_key_refused_before_the_body_is_read(make_client):
    """A wrong key is answered from the headers: an oversized body is never looked at."""
    client = make_client(api_key=KEY, max_upload_bytes=1000)
    response = client.post("/v1/predict", files={"file": ("big.png", b"x" * 50_000)})
    assert_error(response, 401, "unauthorized")


def test_api_key_comparison_is_constant_time():
    import inspect

    from braintumor.serve import guard

    assert "hmac.compare_digest" in inspect.getsource(guard.key_matches)
    assert guard.key_matches(KEY, KEY) and not guard.key_matches(KEY[:-1], KEY)
    assert not guard.key_matches(None, KEY) and not guard.key_matches("", KEY)


# ------------------------------------------------------------------------------------ 413
def test_413_from_content_length(make_client):
    client = make_client(max_upload_bytes=512 * 1024)
    response = client.post("/v1/predict", files={"file": ("big.png", b"\x89PNG" * 400_000)})
    body = assert_error(response, 413, "upload_too_large")
    assert "limit of 0.5 MB" in body["detail"] and "(1.53 MB)" in body["detail"]


def asgi_post(app, headers: list[tuple[bytes, bytes]], chunks: list[bytes]):
    """POST ``chunks`` straight into the ASGI app; returns (status, body, chunks it pulled).

    Tests of the upload limit use this rather than an HTTP client, which would send the
    whole body anyway: here we see exactly how much of the body the app asked for.
    """
    import asyncio

    pulled, sent = [], []

    async def receive():
        if len(pulled) < len(chunks):
            pulled.append(chunks[len(pulled)])
            return {"type": "http.request", "body": pulled[-1],
                    "more_body": len(pulled) < len(chunks)}
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/v1/predict",
             "raw_path": b"/v1/predict", "query_string": b"", "root_path": "",
             "server": ("127.0.0.1", 80), "client": ("127.0.0.1", 5000), "headers": headers}
    asyncio.run(app(scope, receive, send))
    assert sent[0]["type"] == "http.response.start"
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:]), pulled


MULTIPART_HEAD = (b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="a.png"\r\n'
                  b"Content-Type: image/png\r\n\r\n")
MULTIPART_TYPE = (b"content-type", b"multipart/form-data; boundary=bnd")


def test_413_while_streaming_stops_reading_early(predictor):
    """Chunked upload with no Content-Length: the guard counts bytes as they arrive and
    stops at the limit instead of reading (or spooling to disk) the rest of the body."""
    from braintumor.serve.app import create_app

    app = create_app(predictor, ServeSettings(max_upload_bytes=50_000))
    chunks = [MULTIPART_HEAD] + [b"\x89" * 4096] * 200 + [b"\r\n--bnd--\r\n"]  # ~800 KiB
    status, body, pulled = asgi_post(app, [MULTIPART_TYPE, (b"transfer-encoding", b"chunked")],
                                     chunks)
    assert status == 413 and b"upload_too_large" in body
    assert sum(len(c) for c in pulled) <= 50_000 + 16 * 1024 + 4096  # limit + envelope + 1
    assert len(pulled) < len(chunks)


def test_413_from_content_length_reads_nothing(predictor):
    from braintumor.serve.app import create_app

    app = create_app(predictor, ServeSettings(max_upload_bytes=50_000))
    status, body, pulled = asgi_post(app, [MULTIPART_TYPE, (b"content-length", b"900000")],
                                     [MULTIPART_HEAD, b"\x00" * 1000])
    assert status == 413 and b"upload_too_large" in body
    assert pulled == []


def test_file_exactly_at_the_limit_is_accepted(make_client, synthetic_slice):
    data = encode(synthetic_slice(64, seed=2))
    client = make_client(max_upload_bytes=len(data))
    assert client.post("/v1/predict", files={"file": ("a.png", data)}).status_code == 200
    client = make_client(max_upload_bytes=len(data) - 1)
    assert_error(client.post("/v1/predict", files={"file": ("a.png", data)}), 413,
                 "upload_too_large")


def test_bad_content_length_is_400(client):
    response = client.post("/v1/predict", content=b"abc",
                           headers={"content-length": "-5", "content-type": "image/png"})
    assert_error(response, 400, "bad_request")


# ------------------------------------------------------------------------------- 415 / 422
def test_415_for_bytes_that_are_no_image(client):
    body = assert_error(client.post("/v1/predict", files={"file": ("a.png", b"hello world" * 9)}),
                        415, "unsupported_media_type")
    assert "JPEG, PNG or DICOM" in body["detail"]


def test_415_for_a_real_file_of_another_kind(client):
    pdf = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << >>\n%%EOF\n"
    assert_error(client.post("/v1/explain", files={"file": ("r.pdf", pdf, "application/pdf")}),
                 415, "unsupported_media_type")


@pytest.mark.parametrize("case,needle", [
    ("truncated_png", "truncated"),
    ("huge_png", "pixels"),
    ("blank_png", "blank"),
    ("tiny_png", "at least"),
    ("dicom_no_pixels", "no pixel data"),
])
def test_422_names_the_problem(client, scan_png, case, needle):
    data = {
        "truncated_png": scan_png[: len(scan_png) // 2],
        "huge_png": png_header_only(100_000, 100_000),
        "blank_png": encode(np.full((64, 64), 77, np.uint8)),
        "tiny_png": encode(np.arange(4, dtype=np.uint8).reshape(2, 2)),
        "dicom_no_pixels": dicom_bytes(None),
    }[case]
    body = assert_error(client.post("/v1/predict", files={"file": ("f", data)}), 422,
                        "unreadable_image")
    assert needle in body["detail"]


def test_422_for_missing_field_empty_body_and_empty_file(client, scan_png):
    body = assert_error(client.post("/v1/predict", files={"scan": ("s.png", scan_png)}), 422,
                        "invalid_request")
    assert "field named 'file'" in body["detail"]
    assert_error(client.post("/v1/predict"), 422, "invalid_request")
    assert_error(client.post("/v1/predict", content=scan_png,
                             headers={"content-type": "image/png"}), 422, "invalid_request")
    assert_error(client.post("/v1/predict", data={"file": "not a file"}), 422, "invalid_request")
    assert_error(client.post("/v1/predict", files={"file": ("e.png", b"")}), 422, "empty_file")


def test_validation_errors_do_not_echo_the_input(client):
    body = client.post("/v1/explain?format=DOE^JANE", files={"file": ("a", b"x")}).json()
    assert body["status"] == 422 and "DOE^JANE" not in str(body)


def test_400_for_multipart_without_boundary(client):
    assert_error(client.post("/v1/predict", content=b"--x\r\n\r\n",
                             headers={"content-type": "multipart/form-data"}), 400, "bad_request")


def test_404_and_405_are_json(client):
    assert_error(client.get("/v2/predict"), 404, "not_found")
    assert_error(client.get("/v1/predict"), 405, "method_not_allowed")


# ------------------------------------------------------------------------------------ 500
def test_a_server_bug_gives_a_generic_500_that_leaks_nothing(client, predictor, scan_png,
                                                             monkeypatch, caplog):
    """If the model itself ever fails, the client gets JSON and the log gets the frames
    but not the exception's message (which could quote the upload)."""
    def broken(*args, **kwargs):
        raise RuntimeError(f"{PATIENT_NAME} {PATIENT_ID}")  # as if a message quoted a header

    monkeypatch.setattr(predictor, "predict_one", broken)
    caplog.set_level(logging.DEBUG)
    body = assert_error(client.post("/v1/predict", files={"file": ("s.png", scan_png)}), 500,
                        "internal_error")
    assert body["detail"] == INTERNAL_ERROR_DETAIL
    assert "RuntimeError" in caplog.text and "broken" in caplog.text  # where it failed
    assert PATIENT_NAME not in caplog.text and PATIENT_ID not in caplog.text
    monkeypatch.undo()
    assert client.get("/health").status_code == 200


# ----------------------------------------------------------------------------------- CORS
def test_cors_off_by_default(client):
    r = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = client.options("/v1/predict", headers={"Origin": "https://evil.example",
                                                 "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers


def test_cors_on_for_configured_origin_only(make_client, scan_png):
    origin = "https://viewer.hospital.example"
    client = make_client(cors_origins=(origin,), api_key=KEY)
    pre = client.options("/v1/predict", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == origin
    assert "x-api-key" in pre.headers["access-control-allow-headers"].lower()
    ok = client.post("/v1/predict", files={"file": ("s.png", scan_png)},
                     headers={"Origin": origin, "X-API-Key": KEY})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == origin
    # the browser can read a refusal too
    refused = client.post("/v1/predict", files={"file": ("s.png", scan_png)},
                          headers={"Origin": origin})
    assert refused.status_code == 401 and refused.headers["access-control-allow-origin"] == origin
    other = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in other.headers


# ------------------------------------------------------------------------------- settings
def _args(**kw) -> argparse.Namespace:
    base = {"host": "127.0.0.1", "port": 8000, "model": None, "api_key": None,
            "max_upload_mb": 20.0, "cors_origin": [], "workers": 1}
    return argparse.Namespace(**{**base, **kw})


def test_settings_from_args_and_environment(monkeypatch):
    monkeypatch.delenv(API_KEY_ENV, raising=False)
    s = ServeSettings.from_args(_args(max_upload_mb=1.5, cors_origin=["http://a"]))
    assert s.max_upload_bytes == int(1.5 * 1024 * 1024) and s.api_key is None
    assert s.cors_origins == ("http://a",)
    monkeypatch.setenv(API_KEY_ENV, "from-env")
    assert ServeSettings.from_args(_args()).api_key == "from-env"
    assert ServeSettings.from_args(_args(api_key="flag")).api_key == "flag"
    monkeypatch.setenv(API_KEY_ENV, "")
    assert ServeSettings.from_args(_args()).api_key is None
    with pytest.raises(ValueError):
        ServeSettings.from_args(_args(max_upload_mb=0))


def test_serve_command_reports_a_missing_model(tmp_path, capsys):
    assert serve_command(_args(model=str(tmp_path / "nope"))) == 1
    assert "cannot load the model" in capsys.readouterr().err
