"""Memory and time per request: decode budget, slots, reduced decoding, body deadline,
one file per request, and forged headers answered as broken images."""

from __future__ import annotations

import io
import socket
import threading
import time

import numpy as np
import pytest
from PIL import Image

from braintumor.serve import imaging
from braintumor.serve.app import create_app
from braintumor.serve.errors import ApiError
from braintumor.serve.limits import (
    SMALL_REQUEST_BYTES,
    DecodeSlots,
    decode_cost_bytes,
    probe_header,
)
from braintumor.serve.settings import ServeSettings

from .conftest import LiveServer, dicom_bytes, encode

MB = 1024 * 1024


def _png16(side: int) -> bytes:
    yy, xx = np.mgrid[0:side, 0:side]
    return encode(((np.sin(xx / 9.0) + np.cos(yy / 7.0) + 2) * 9000).astype(np.uint16))


def test_header_prices_a_16_bit_png_before_decoding():
    header = probe_header(_png16(256), "upload.png")
    assert (header.width, header.height, header.mode, header.deep) == (256, 256, "I;16", True)
    # 16-bit data costs far more per pixel than the stored 2 bytes (float64 scaling).
    assert decode_cost_bytes(header, None, explain=False) > 256 * 256 * 30
    big = header.__class__("PNG", 4096, 4096, "I;16", 2, True)
    full, reduced = (decode_cost_bytes(big, side, explain=False) for side in (None, 2048))
    assert reduced < full / 2  # decoded reduced: the conversion works on a quarter


def test_dicom_is_priced_from_its_header(synthetic_slice):
    header = probe_header(dicom_bytes(synthetic_slice(96, seed=1)), "upload.dcm")
    assert (header.format, header.width, header.height) == ("DICOM", 96, 96)


def test_scan_that_can_never_fit_the_budget_is_refused_before_decoding(make_client,
                                                                       monkeypatch):
    monkeypatch.setattr(imaging, "read_image", lambda *a, **k: pytest.fail("decoded"))
    client = make_client(decode_budget_bytes=12 * MB)
    r = client.post("/v1/predict", files={"file": ("big.png", _png16(1024))})
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "image_too_large_to_decode"
    assert "1024x1024 PNG" in body["detail"] and "12 MB" in body["detail"]


def test_full_budget_queues_then_answers_503_with_retry_after(make_client, scan_png):
    client = make_client(decode_wait_seconds=0.3)
    slots: DecodeSlots = client.app.state.decode_slots
    with slots.reserve(slots.budget_bytes, "hog"):  # another request holds everything
        t0 = time.monotonic()
        r = client.post("/v1/predict", files={"file": ("s.png", scan_png)})
        waited = time.monotonic() - t0
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "busy" and int(r.headers["Retry-After"]) >= 1
    assert waited >= 0.3  # it queued before giving up
    assert client.post("/v1/predict", files={"file": ("s.png", scan_png)}).status_code == 200
    assert slots.in_use == (0, 0)  # every reservation was given back


def test_slots_cap_large_requests_decoding_at_once_but_not_small_ones():
    big = SMALL_REQUEST_BYTES + 1
    slots = DecodeSlots(max_decodes=2, budget_bytes=10 * big, wait_seconds=0.2)
    with slots.reserve(big, "a"), slots.reserve(big, "b"):
        assert slots.in_use == (2, 2 * big)
        with pytest.raises(ApiError) as err, slots.reserve(big, "c"):
            pass
        assert err.value.status_code == 503
        with slots.reserve(1024, "a 512 px slice"):  # needs no slot: goes straight in
            assert slots.in_use == (2, 2 * big + 1024)
    done = threading.Event()
    slots = DecodeSlots(max_decodes=2, budget_bytes=100, wait_seconds=0.2)
    with slots.reserve(60, "big"):
        def second():
            with slots.reserve(60, "big too"):
                done.set()
        t = threading.Thread(target=second)
        t.start()
        time.sleep(0.05)
        assert not done.is_set()  # 60 + 60 > 100: it waits for the first
    t.join(2)
    assert done.is_set()  # and goes ahead as soon as the first is done


def test_large_upload_is_decoded_reduced(make_client):
    client = make_client(max_side=256)
    r = client.post("/v1/explain", files={"file": ("big.png", _png16(1000))})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image_size"] == [1000, 1000]  # the stored size, as before
    scan = Image.open(io.BytesIO(__import__("base64").b64decode(body["scan_png"])))
    assert max(scan.size) <= 256


def test_several_file_fields_are_refused(client, scan_png, scan_jpeg):
    r = client.post("/v1/predict", files=[("file", ("a.png", scan_png)),
                                          ("file", ("b.jpg", scan_jpeg))])
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "several_files"


def test_forged_ppm_header_is_a_broken_image_not_an_unknown_format(client):
    forged = b"P5\n200000 200000\n255\n" + bytes(64)
    r = client.post("/v1/predict", files={"file": ("x.pgm", forged)})
    assert r.status_code == 422, r.text
    assert r.json()["error"] == "unreadable_image"


def test_slow_upload_gets_408_and_frees_the_connection(predictor):
    server = LiveServer(create_app(predictor, ServeSettings(body_idle_seconds=0.5,
                                                            body_timeout_seconds=2.0))).start()
    try:
        port = int(server.url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
                         b"Content-Type: multipart/form-data; boundary=b\r\n\r\n--b\r\n")
            t0 = time.monotonic()
            answer = sock.recv(4096)  # and then the client sends nothing more
            waited = time.monotonic() - t0
            while chunk := sock.recv(4096):  # the server closes the connection after it
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"request_timeout" in answer
        assert waited < 5
    finally:
        server.stop()


def test_allocator_is_bounded_on_glibc():
    import platform

    from braintumor.serve.limits import bound_allocator

    result = bound_allocator()
    if platform.libc_ver()[0] == "glibc":
        assert result is True
