"""The web page draws the predicted tumour outline beside the Grad-CAM overlay (headless
Chromium), for a tumour-head model, and draws none for a plain one."""

from __future__ import annotations

import httpx
import pytest

from braintumor.explain.outline import OUTLINE_CAVEAT
from braintumor.inference.predictor import Predictor
from braintumor.serve.app import create_app
from braintumor.serve.settings import ServeSettings

from .conftest import LiveServer, encode
from .test_browser import _wait

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def tumour_server(tumour_bundle):
    server = LiveServer(create_app(Predictor.load(tumour_bundle), ServeSettings()))
    yield server.start()
    server.stop()


def _upload(browser, url: str, scan) -> None:
    from selenium.webdriver.common.by import By

    browser.get(url + "/")
    browser.find_element(By.ID, "file-input").send_keys(str(scan))
    _wait(browser, "!document.getElementById('result').hidden")


def test_outline_is_drawn_for_a_tumour_head_model(browser, tumour_server, tmp_path,
                                                  synthetic_slice):
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(synthetic_slice(150, seed=4, blob=(0.35, 0.35))))
    api = httpx.post(tumour_server.url + "/v1/explain",
                     files={"file": ("scan.png", scan.read_bytes(), "image/png")},
                     timeout=120).json()  # the first explain builds the Grad-CAM copy
    _upload(browser, tumour_server.url, scan)
    assert not browser.execute_script("return document.getElementById('outline-figure').hidden")
    drawn = browser.execute_script(
        "return Array.from(document.querySelectorAll('#outline-svg polygon'))"
        ".map(p => p.points.numberOfItems);")
    assert drawn == [len(p) for p in api["tumour"]["outline"]] and drawn
    box = browser.execute_script(
        "const r = document.querySelector('#outline-svg polygon').getBoundingClientRect();"
        "const s = document.getElementById('outline-scan-img').getBoundingClientRect();"
        "return [r.width, r.height, s.width, getComputedStyle("
        "document.querySelector('#outline-svg polygon')).stroke];")
    assert box[0] > 0 and box[1] > 0 and box[2] > 0  # laid out and visible over the scan
    assert box[3] == "rgb(0, 255, 128)"  # the colour the legend's swatch shows
    caption = browser.execute_script(
        "return document.querySelector('#outline-figure figcaption').textContent;")
    assert OUTLINE_CAVEAT in " ".join(caption.split())
    assert f"{api['tumour']['area_px']} px" in caption
    # the heatmap layer is still scaled smoothly by the browser (no pixelated rendering)
    assert browser.execute_script(
        "return getComputedStyle(document.getElementById('heatmap-img')).imageRendering;"
    ) == "auto"
    browser.save_screenshot(str(tmp_path / "web-page-outline.png"))
    print(f"screenshot: {tmp_path / 'web-page-outline.png'}")


def test_no_outline_for_a_plain_model(browser, live_server, tmp_path, synthetic_slice):
    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(synthetic_slice(120, seed=5, blob=(0.68, 0.5))))
    _upload(browser, live_server.url, scan)
    assert browser.execute_script("return document.getElementById('outline-figure').hidden")
    assert browser.execute_script(
        "return document.querySelectorAll('#outline-svg polygon').length") == 0
