"""The web page in headless Chromium against a live server: upload, result, overlay, errors.

The screenshot is kept under the test's temporary directory (CI collects it as an artifact;
its path is printed), so a reviewer can see what the page looked like when the test passed.
"""

from __future__ import annotations

import httpx
import pytest

from braintumor import DISCLAIMER

from .conftest import encode

pytestmark = pytest.mark.browser


def _wait(driver, condition: str, timeout: float = 30.0):
    """Wait until the JavaScript expression ``condition`` is truthy; return its value."""
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        lambda d: d.execute_script(f"return {condition};"))


def test_page_upload_shows_api_answer_overlay_and_errors(browser, live_server, tmp_path,
                                                         synthetic_slice):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    scan = tmp_path / "scan.png"
    scan.write_bytes(encode(synthetic_slice(160, seed=21, blob=(0.35, 0.68))))
    api = httpx.post(live_server.url + "/v1/predict",
                     files={"file": ("scan.png", scan.read_bytes(), "image/png")}).json()

    browser.get(live_server.url + "/")
    assert DISCLAIMER in browser.find_element(By.ID, "disclaimer").text
    _wait(browser, "document.getElementById('footer-model').textContent.includes('braintumor')")

    # keyboard: Tab from the top of the page reaches the file chooser (the drop zone)
    browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
    for _ in range(5):
        if browser.execute_script("return document.activeElement.id") == "file-input":
            break
        browser.switch_to.active_element.send_keys(Keys.TAB)
    assert browser.execute_script("return document.activeElement.id") == "file-input"
    outline = browser.execute_script(
        "return getComputedStyle(document.getElementById('drop-zone')).outlineStyle")
    assert outline != "none"  # the focused drop zone is visibly marked

    browser.find_element(By.ID, "file-input").send_keys(str(scan))
    _wait(browser, "!document.getElementById('result').hidden")
    shown = browser.find_element(By.ID, "result-label").text
    assert shown == api["label"]
    bars = browser.find_elements(By.CSS_SELECTOR, "#bars li")
    assert [b.get_attribute("data-class") for b in bars] == list(api["probabilities"])
    top = browser.find_element(By.CSS_SELECTOR, "#bars li.top")
    assert top.get_attribute("data-class") == api["label"]
    assert f"{100 * api['confidence']:.1f}%" in top.text
    assert browser.find_element(By.ID, "model-name").text == api["model"]
    _wait(browser, "document.getElementById('heatmap-img').complete")
    sizes = browser.execute_script(
        "const s = document.getElementById('scan-img'), h = document.getElementById('heatmap-img');"
        "return [s.naturalWidth, h.naturalWidth, h.naturalHeight];")
    assert sizes == [160, 160, 160]

    # the opacity slider drives the heatmap layer
    slider = browser.find_element(By.ID, "opacity")
    slider.send_keys(Keys.END)
    assert browser.execute_script(
        "return document.getElementById('heatmap-img').style.opacity") == "1"
    slider.send_keys(Keys.HOME)
    assert browser.execute_script(
        "return document.getElementById('heatmap-img').style.opacity") == "0"
    slider.send_keys(*[Keys.ARROW_RIGHT] * 12)  # back to 60% for the screenshot
    browser.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
    screenshot = tmp_path / "web-page.png"
    browser.save_screenshot(str(screenshot))
    assert screenshot.stat().st_size > 10_000
    print(f"screenshot: {screenshot}")

    # a corrupt file: plain-words error in the alert region, and no stale result
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(scan.read_bytes()[:300])
    browser.find_element(By.ID, "file-input").send_keys(str(corrupt))
    _wait(browser, "!document.getElementById('error').hidden")
    error = browser.find_element(By.ID, "error")
    assert error.get_attribute("role") == "alert"
    assert "cannot be used" in error.text and "truncated" in error.text
    assert browser.execute_script("return document.getElementById('result').hidden") is True

    # not an image at all: the 415 wording
    junk = tmp_path / "notes.png"
    junk.write_bytes(b"these are my notes, not a scan\n" * 20)
    browser.find_element(By.ID, "file-input").send_keys(str(junk))
    _wait(browser, "document.getElementById('error').textContent.includes('not an image')")
    assert browser.find_element(By.ID, "key-field").is_displayed() is False  # no key needed
    browser.save_screenshot(str(tmp_path / "web-page-error.png"))


def test_page_asks_for_the_api_key_when_the_server_has_one(browser, predictor, tmp_path,
                                                           synthetic_slice):
    from selenium.webdriver.common.by import By

    from braintumor.serve.app import create_app
    from braintumor.serve.settings import ServeSettings

    from .conftest import LiveServer

    server = LiveServer(create_app(predictor, ServeSettings(api_key="page-key"))).start()
    try:
        scan = tmp_path / "scan.jpg"
        scan.write_bytes(encode(synthetic_slice(128, seed=8, blob=(0.68, 0.5)), "JPEG"))
        browser.get(server.url + "/")
        _wait(browser, "!document.getElementById('key-field').hidden")
        browser.find_element(By.ID, "file-input").send_keys(str(scan))
        _wait(browser, "!document.getElementById('error').hidden")
        assert "API key" in browser.find_element(By.ID, "error").text
        browser.find_element(By.ID, "api-key").send_keys("page-key")
        browser.find_element(By.ID, "file-input").send_keys(str(scan))
        _wait(browser, "!document.getElementById('result').hidden")
        assert browser.find_element(By.ID, "error").is_displayed() is False
        assert browser.find_element(By.ID, "result-label").text in predictor.classes
    finally:
        server.stop()
