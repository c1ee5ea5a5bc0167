"""Fixtures of the evaluation tests: a tiny model bundle, a finished evaluation, headless Chrome."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from braintumor.data.preprocess import PreprocessConfig
from braintumor.models import create_model, save_bundle

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def make_tiny_bundle(out: Path, name: str = "paper-cnn", seed: int = 0) -> Path:
    """An untrained model on 32-pixel inputs: fast, and wrong often enough to give the
    misclassified gallery something to show. (paper-cnn by default: untrained, its scores
    still vary from image to image, which the ROC curves need.)"""
    import torch

    torch.manual_seed(seed)
    return save_bundle(create_model(name, image_size=32), out, model_name=name,
                       classes=CLASSES, preprocess=PreprocessConfig(image_size=32),
                       temperature=1.7)


@pytest.fixture
def tiny_bundle(tmp_path) -> Path:
    return make_tiny_bundle(tmp_path / "bundle")


def write_audit_json(dataset: Path, out: Path, n_leaked: int = 3) -> list[str]:
    """An audit JSON (``braintumor audit --json`` layout) naming a few test images as leaked."""
    leaked = sorted(str(p) for p in (dataset / "Testing").rglob("*.png"))[:n_leaked]
    out.write_text(json.dumps({"leakage": {"test_with_train_duplicate": len(leaked),
                                           "test_paths_with_train_duplicate": leaked}}))
    return leaked


@pytest.fixture(scope="session")
def evaluated(tmp_path_factory) -> dict:
    """``braintumor evaluate`` run once, through the CLI, on a synthetic dataset with one
    unreadable image and an audit JSON naming 3 leaked test images; returns the paths.

    Session-scoped (the report, metrics and browser tests all read the same output), so it
    builds its data with the shared ``make_dataset`` rather than the function-scoped fixture.
    Tests must treat the output as read-only.
    """
    from braintumor.cli import main
    from tests.conftest import make_dataset

    root = tmp_path_factory.mktemp("evaluated")
    data = make_dataset(root / "dataset", n_per_class=5, size=48)
    bundle = make_tiny_bundle(root / "bundle")
    audit = root / "audit.json"
    leaked = write_audit_json(data, audit)
    bad = data / "Testing" / "glioma" / "broken.png"
    bad.write_bytes(b"not a png at all")
    out = root / "eval"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("BRAINTUMOR_CACHE", str(root / "cache"))
        rc = main(["evaluate", "--model", str(bundle), "--data", str(data), "--out", str(out),
                   "--audit", str(audit)])
    assert rc == 0
    return {"out": out, "data": data, "bundle": bundle, "audit": audit, "leaked": leaked,
            "broken": bad}


@pytest.fixture
def chrome(tmp_path):
    """Headless Debian Chromium driven by selenium, with the browser console log enabled."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()
            and shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.skip("chromium/chromedriver not installed "
                    "(apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def make_bundle():
    """Factory: ``make_bundle(out, name="paper-cnn", seed=0)`` -> bundle folder."""
    return make_tiny_bundle
