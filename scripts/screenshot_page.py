"""Make docs/images/web-page.png: the web page after one scan, in headless Chromium.

The screenshot in the docs must be reproducible (and remade whenever the page or the model
changes) rather than taken by hand. This starts ``braintumor serve`` on a free 127.0.0.1 port,
uploads one Kaggle test image through the page, waits for the result and the Grad-CAM overlay,
saves a full-page PNG, prints what the page showed, and always stops the server. Nothing goes
anywhere but 127.0.0.1.

    OMP_NUM_THREADS=1 python scripts/screenshot_page.py [--image PATH] [--model BUNDLE]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("DATA") or REPO.parent / "shared" / "datasets" / "brain-tumor-mri")
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run")


def fail(message: str) -> int:
    print(f"screenshot_page: {message}", file=sys.stderr)
    return 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, server: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"braintumor serve exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url}/health did not answer within {timeout:.0f} s")


def take(url: str, image: Path, out: Path, window: str, profile: Path) -> tuple[str, str]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--window-size={window}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER), log_output=os.devnull),
                              options=options)
    try:
        wait = WebDriverWait(driver, 120, poll_frequency=0.1)
        driver.set_page_load_timeout(30)
        driver.get(url + "/")
        wait.until(lambda d: d.find_element(By.ID, "footer-model").text)
        driver.find_element(By.ID, "file-input").send_keys(str(image))
        wait.until(lambda d: d.execute_script(
            "const e = document.getElementById('error'); if (!e.hidden) return true;"
            "const ok = (id) => { const i = document.getElementById(id);"
            "  return i.complete && i.naturalWidth > 0; };"
            "return !document.getElementById('result').hidden && ok('scan-img')"
            "  && ok('heatmap-img');"))
        if driver.find_element(By.ID, "error").is_displayed():
            raise RuntimeError("the page showed an error: "
                               + driver.find_element(By.ID, "error").text)
        driver.execute_script("document.activeElement.blur(); window.scrollTo(0, 0);")
        size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"],
                     "scale": 1}})
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(shot["data"]))
        return (driver.find_element(By.ID, "result-label").text,
                driver.find_element(By.ID, "result-confidence").text)
    finally:
        driver.quit()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--image", type=Path,
                    default=DATA / "Testing" / "meningioma" / "Te-meTr_0004.jpg",
                    help="scan to upload (default: $DATA/Testing/meningioma/Te-meTr_0004.jpg)")
    ap.add_argument("--model", help="model bundle (default: the bundled model)")
    ap.add_argument("--out", type=Path, default=REPO / "docs" / "images" / "web-page.png")
    ap.add_argument("--window", default="1280,1000", help="browser window WIDTH,HEIGHT")
    ap.add_argument("--timeout", type=float, default=180, help="seconds to wait for /health")
    args = ap.parse_args(argv)

    for binary, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not binary.exists():
            return fail(f"{binary} not found; install Debian's {package} "
                        "(apt-get install chromium chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        return fail("selenium is not installed in this Python (pip install selenium)")
    if not args.image.is_file():
        return fail(f"image not found: {args.image} (pass --image PATH, or set DATA to the "
                    "Kaggle brain-tumor-mri folder)")

    url = f"http://127.0.0.1:{free_port()}"
    cmd = [sys.executable, "-m", "braintumor", "serve", "--host", "127.0.0.1",
           "--port", url.rsplit(":", 1)[1]]
    if args.model:
        cmd += ["--model", str(Path(args.model).resolve())]  # the server runs in the repo root
    env = {k: v for k, v in os.environ.items() if k != "BRAINTUMOR_API_KEY"}  # keyless page
    with tempfile.TemporaryDirectory(prefix="screenshot-page-") as tmp, \
            open(Path(tmp) / "serve.log", "w+b") as log:
        server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_healthy(url, server, args.timeout)
            label, confidence = take(url, args.image.resolve(), args.out.resolve(),
                                     args.window, Path(tmp) / "chromium-profile")
        except Exception as exc:  # reported with the end of the server's log
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-15:]
            return fail(f"{exc}\n--- braintumor serve log (last lines) ---\n" + "\n".join(tail))
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
    print(f"page shows: {label} ({confidence}) for {args.image.name}")
    print(f"screenshot: {args.out.resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
