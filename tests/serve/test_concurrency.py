"""Requests that share the process must not wait for each other's decoding."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx

from .conftest import dicom_bytes


def test_explain_completes_while_a_dicom_decode_is_stuck(live_server, monkeypatch,
                                                         synthetic_slice, scan_png):
    """A DICOM whose decoding never ends (here: waits on an event) must not hold a lock an
    explanation needs; before the fix both took the process-wide warnings lock."""
    import pydicom.pixels

    real = pydicom.pixels.pixel_array
    entered, release = threading.Event(), threading.Event()

    def stuck_decoder(*args, **kwargs):
        entered.set()
        release.wait(60)
        return real(*args, **kwargs)

    monkeypatch.setattr(pydicom.pixels, "pixel_array", stuck_decoder)
    scan = dicom_bytes(synthetic_slice(96, seed=5, blob=(0.4, 0.6)))
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, live_server.url + "/v1/predict",
                              files={"file": ("scan.dcm", scan)}, timeout=90)
        try:
            assert entered.wait(30), "the DICOM request never reached its decoder"
            r = httpx.post(live_server.url + "/v1/explain", files={"file": ("s.png", scan_png)},
                           timeout=20)
            assert r.status_code == 200, r.text
            assert not release.is_set() and not pending.done()  # the decode is still stuck
        finally:
            release.set()
        assert pending.result().status_code == 200
