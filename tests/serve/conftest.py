"""Fixtures for the service tests: a tiny real model, apps, upload bytes, a live server, a browser.

Every test runs the real ``Predictor`` on a 64 px braintumor-net made here (the bundled model
is large and may not exist yet). Its batch-norm statistics and head are randomised so that
the four probabilities differ clearly: with near-uniform outputs a page that showed the
wrong class could still match the API by accident.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from braintumor.data.preprocess import PreprocessConfig
from braintumor.inference.predictor import Predictor
from braintumor.models import create_model, save_bundle
from braintumor.serve.app import create_app
from braintumor.serve.settings import ServeSettings

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
PATIENT_NAME = "DOE^JANE"
PATIENT_ID = "ID12345"


@pytest.fixture(scope="session")
def serve_bundle(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("braintumor-net", num_classes=len(CLASSES))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(20.0)
    return save_bundle(model.eval(), tmp_path_factory.mktemp("serve-bundle"),
                       model_name="braintumor-net", classes=CLASSES,
                       preprocess=PreprocessConfig(image_size=64))


@pytest.fixture(scope="session")
def predictor(serve_bundle) -> Predictor:
    """Loaded once for the whole session, as the service does at startup."""
    return Predictor.load(serve_bundle)


@pytest.fixture
def make_client(predictor):
    """Factory: an in-process client for an app built with the given settings."""
    clients: list[TestClient] = []

    def factory(**settings) -> TestClient:
        client = TestClient(create_app(predictor, ServeSettings(**settings)),
                            raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()


def encode(pixels: np.ndarray, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.fixture
def scan_png(synthetic_slice) -> bytes:
    return encode(synthetic_slice(96, seed=3, blob=(0.35, 0.35)))


@pytest.fixture
def scan_jpeg(synthetic_slice) -> bytes:
    return encode(synthetic_slice(96, seed=4, blob=(0.68, 0.5)), "JPEG", quality=92)


def dicom_bytes(pixels: np.ndarray | None, patient_name: str = PATIENT_NAME,
                patient_id: str = PATIENT_ID) -> bytes:
    """A Part-10 MR image (or, with ``pixels=None``, a header without any pixel data)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "MR"
    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    if pixels is not None:
        arr = (pixels.astype(np.uint16) * 16)  # 12-bit data, as scanners store it
        ds.Rows, ds.Columns = arr.shape
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
        ds.PixelRepresentation = 0
        ds.PixelData = arr.tobytes()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


# ----------------------------------------------------------------------------- live server
class LiveServer:
    """uvicorn on 127.0.0.1 in a thread, on a socket bound before start (no port race)."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def start(self, timeout: float = 20.0) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"server at {self.url} did not answer /health within {timeout} s")

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture(scope="module")
def live_server(predictor):
    server = LiveServer(create_app(predictor, ServeSettings(max_upload_bytes=2 * 1024 * 1024)))
    yield server.start()
    server.stop()


# ---------------------------------------------------------------------------------- browser
@pytest.fixture
def browser(tmp_path):
    """Headless Debian chromium driven by selenium; skipped when either binary is missing."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium "
                    "chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--window-size=1100,1250",
                 f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(executable_path=str(CHROMEDRIVER), log_output=os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)
