"""The report is one self-contained, responsive, printable page that carries the disclaimer."""

import base64
import json
from html.parser import HTMLParser

import pytest

from braintumor import DISCLAIMER
from braintumor.evaluation.report import render_report


class Links(HTMLParser):
    """Every URL-valued attribute and every <img>/<script>/<link> tag of a page."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []
        self.tags: list[str] = []
        self.metas: list[dict] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        if tag == "meta":
            self.metas.append(a)
        for key in ("src", "href", "srcset", "data", "poster", "action"):
            if a.get(key) is not None:
                self.urls.append(a[key])


def parse(html: str) -> Links:
    p = Links()
    p.feed(html)
    return p


def test_report_is_self_contained_and_carries_the_disclaimer(evaluated):
    html = (evaluated["out"] / "report.html").read_text(encoding="utf-8")
    page = parse(html)
    assert page.urls and all(u.startswith("data:") for u in page.urls)
    assert "script" not in page.tags
    assert "@import" not in html and "url(" not in html  # no CSS fetches either
    assert {"name": "viewport", "content": "width=device-width, initial-scale=1"} in page.metas
    assert "@media print" in html and "@media (max-width" in html
    assert html.count(DISCLAIMER) >= 2  # above the headline and at the end
    assert html.index(DISCLAIMER) < html.index("Accuracy")
    # 4 figures + one gallery image per shown mistake
    m = json.loads((evaluated["out"] / "metrics.json").read_text())
    n_png = sum(u.startswith("data:image/png;base64,") for u in page.urls)
    assert n_png == 4 + m["gallery"]["n_shown"]


def test_leak_free_figure_sits_beside_the_headline(evaluated):
    html = (evaluated["out"] / "report.html").read_text(encoding="utf-8")
    m = json.loads((evaluated["out"] / "metrics.json").read_text())
    lf = m["leak_free"]
    marker = f"Leak-free: {lf['n_images']} images"
    assert marker in html
    # Before everything except the headline card: the first thing a reader sees.
    assert html.index(marker) < html.index("Tumour vs no tumour") < html.index("Per class")
    assert f"{100 * lf['accuracy']:.1f}%" in html


def test_text_from_files_is_escaped():
    m = {"n_images": 0, "accuracy": None, "macro_f1": None, "weighted_f1": None,
         "roc_auc_macro": None, "per_class": {}, "confusion_matrix": [],
         "data": "<script>alert(1)</script>", "split": "test",
         "leak_free": {"available": False, "reason": "<b>x</b>"},
         "model": {"name": "<img src=x>", "checksum": "0"}, "failed": [["<i>a</i>", "bad"]]}
    html = render_report(m, [], [])
    assert "<script>" not in html and "<img src=x>" not in html and "<b>x</b>" not in html
    assert "&lt;script&gt;" in html


@pytest.mark.browser
def test_report_renders_in_headless_chromium(evaluated, chrome):
    page = evaluated["out"] / "report.html"
    chrome.set_window_size(1200, 900)
    chrome.get(page.as_uri())
    assert "braintumor evaluation" in chrome.title
    images = chrome.execute_script(
        "return Array.from(document.images).map(i => [i.complete, i.naturalWidth, i.alt]);")
    assert len(images) >= 4
    assert all(complete and width > 0 for complete, width, _ in images), images
    body = chrome.find_element("tag name", "body").text
    assert DISCLAIMER in body
    # Phone width: nothing may force sideways scrolling of the page itself.
    chrome.set_window_size(390, 844)
    widths = chrome.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];")
    assert widths[0] <= widths[1], widths
    errors = [e for e in chrome.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    pdf = base64.b64decode(chrome.print_page())  # the print stylesheet yields a document
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
