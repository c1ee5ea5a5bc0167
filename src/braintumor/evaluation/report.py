"""``report.html``: one self-contained page a researcher can attach to a paper.

Everything is inline (CSS in a ``<style>``, figures as base64 PNG data URIs, system fonts),
so the file opens offline, by e-mail, on a phone, and prints cleanly. The page is assembled
from escaped f-strings rather than a template engine: it is one page with a fixed layout, and
this keeps the package free of a templating dependency.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape

from braintumor import DISCLAIMER, __version__


@dataclass
class ReportFigure:
    key: str  # also the PNG's file name stem
    title: str
    png: bytes
    caption: str = ""


@dataclass
class GalleryItem:
    png: bytes
    true_label: str
    predicted: str
    confidence: float
    path: str


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _pct(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(ci: dict | None, key: str) -> str:
    if not ci or key not in ci:
        return ""
    lo, hi = ci[key]
    return f'<span class="ci">95% CI {_pct(lo)} – {_pct(hi)}</span>'


CSS = """
:root { --fg:#1b1f24; --muted:#5b6570; --line:#d8dde3; --accent:#0b5cad; --warn:#8a4b00;
        --warnbg:#fff4e0; --honest:#0d6b3f; --honestbg:#e8f6ee; }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin:0; font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, Arial, sans-serif;
       color: var(--fg); background: #fff; }
main { max-width: 1040px; margin: 0 auto; padding: 16px; }
h1 { font-size: 1.5rem; margin: .2em 0 .1em; }
h2 { font-size: 1.2rem; margin: 1.6em 0 .5em; border-bottom: 1px solid var(--line);
     padding-bottom: .2em; }
.sub { color: var(--muted); margin: 0 0 1em; overflow-wrap: anywhere; }
.disclaimer { border: 2px solid var(--warn); background: var(--warnbg); color: var(--warn);
              padding: 10px 14px; border-radius: 6px; font-weight: 600; }
.cards { display: grid; gap: 12px;
         grid-template-columns: repeat(auto-fit, minmax(min(280px, 100%), 1fr)); }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card h3 { margin: 0 0 .4em; font-size: 1rem; }
.card.honest { border: 2px solid var(--honest); background: var(--honestbg); }
.metric { display: flex; flex-wrap: wrap; align-items: baseline; gap: 0 .6em; margin: .2em 0; }
.metric .v { font-size: 1.5rem; font-weight: 700; }
.metric .k { color: var(--muted); min-width: 7.5em; }
.ci { color: var(--muted); font-size: .85rem; }
.note { color: var(--muted); font-size: .92rem; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; width: 100%; font-size: .95rem; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f5f7; }
figure { margin: 1em 0; break-inside: avoid; page-break-inside: avoid; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: .9rem; margin-top: .3em; }
.figrow { display: grid; gap: 0 16px;
          grid-template-columns: repeat(auto-fit, minmax(min(300px, 100%), 1fr)); }
.gallery { display: grid; grid-template-columns: repeat(auto-fill, minmax(150px, 1fr));
           gap: 10px; }
.gallery figure { margin: 0; }
.gallery img { width: 100%; border-radius: 4px; }
.gallery figcaption { font-size: .8rem; overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: .85rem; }
code { overflow-wrap: anywhere; }  /* long file paths must not widen the page */
pre { background: #f6f8fa; padding: 8px; overflow-x: auto; white-space: pre-wrap; }
footer { margin-top: 2em; }
@media (max-width: 600px) {
  main { padding: 10px; }
  .metric .v { font-size: 1.25rem; }
  th, td { padding: 4px 5px; font-size: .85rem; }
}
@media print {
  @page { margin: 14mm; }
  body { font-size: 11pt; }
  main { max-width: none; padding: 0; }
  .disclaimer, .card.honest { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  h2 { break-after: avoid; page-break-after: avoid; }
  .cards, table, .gallery figure { break-inside: avoid; page-break-inside: avoid; }
  .gallery { grid-template-columns: repeat(4, 1fr); }
  details { display: none; }
}
"""


def _metric(label: str, value: str, extra: str = "") -> str:
    return (f'<div class="metric"><span class="k">{escape(label)}</span>'
            f'<span class="v">{value}</span>{extra}</div>')


def _headline_cards(m: dict) -> str:
    ci = m.get("ci95")
    full = (
        f'<div class="card"><h3>All {m["n_images"]} {escape(m.get("split", ""))} images</h3>'
        + _metric("Accuracy", _pct(m["accuracy"]), _ci(ci, "accuracy"))
        + _metric("Macro-F1", _pct(m["macro_f1"]), _ci(ci, "macro_f1"))
        + _metric("ROC-AUC (macro, OvR)", _num(m["roc_auc_macro"]))
        + "</div>"
    )
    lf = m.get("leak_free") or {}
    if lf.get("available"):
        lci = lf.get("ci95")
        # The leak-free images are not a random subset: duplicates are far commoner in some
        # classes, so the mix shifts and accuracy is not comparable class for class.
        mix = ", ".join(f"{c} {v['support']}" for c, v in lf.get("per_class", {}).items())
        honest = (
            f'<div class="card honest"><h3>Leak-free: {lf["n_images"]} images with no '
            f"duplicate in training</h3>"
            + _metric("Accuracy", _pct(lf["accuracy"]), _ci(lci, "accuracy"))
            + _metric("Macro-F1", _pct(lf["macro_f1"]), _ci(lci, "macro_f1"))
            + _metric("ROC-AUC (macro, OvR)", _num(lf["roc_auc_macro"]))
            + f'<p class="note">Class mix: {escape(mix)}</p></div>'
        )
        n_all = m["n_images"] or 1
        explain = (
            f'<p class="note"><strong>{lf["n_excluded"]} of {m["n_images"]} images '
            f'({_pct(lf["n_excluded"] / n_all)})</strong> have an exact or near duplicate '
            "(mirrored copies included) in the training split, found by the dataset audit. "
            "A model can score on those from memory, so the leak-free figure is the honest "
            "estimate of how it does on scans it has never seen.</p>"
        )
    else:
        honest = (
            '<div class="card honest"><h3>Leak-free figure unavailable</h3>'
            f'<p class="note">{escape(lf.get("reason", "no audit was available"))}</p></div>'
        )
        explain = ""
    return f'<div class="cards">{full}{honest}</div>{explain}'


def _card_check(m: dict) -> str:
    rows = m.get("model", {}).get("card_agreement") or []
    if not rows:
        return ""
    def value(x: float | int | None) -> str:
        return str(x) if isinstance(x, int) else _num(x, 4)

    body = "".join(
        f"<tr><td>{escape(r['metric'])}</td><td>{value(r['card'])}</td>"
        f"<td>{value(r['measured'])}</td><td>{'yes' if r['agrees'] else 'NO'}</td></tr>"
        for r in rows
    )
    return ("<h2>Against the model card</h2><div class='table-wrap'><table><thead><tr>"
            "<th>Metric</th><th>Card</th><th>Measured</th><th>Agrees</th></tr></thead>"
            f"<tbody>{body}</tbody></table></div>")


def _tumor_section(m: dict) -> str:
    t = m.get("tumor_vs_no_tumor")
    if not t:
        return ""
    return (
        "<h2>Tumour vs no tumour</h2><div class='cards'><div class='card'>"
        + _metric("Sensitivity", _pct(t["sensitivity"]),
                  f'<span class="ci">{t["true_positive"]} of '
                  f'{t["true_positive"] + t["false_negative"]} tumours flagged</span>')
        + _metric("Specificity", _pct(t["specificity"]),
                  f'<span class="ci">{t["true_negative"]} of '
                  f'{t["true_negative"] + t["false_positive"]} tumour-free scans cleared</span>')
        + "</div></div><p class='note'>Tumour = glioma, meningioma or pituitary; a tumour "
        "called the wrong tumour type still counts as flagged here.</p>"
    )


def _per_class_table(m: dict) -> str:
    rows = "".join(
        f"<tr><td>{escape(c)}</td><td>{_pct(v['precision'])}</td><td>{_pct(v['recall'])}</td>"
        f"<td>{_pct(v['f1'])}</td><td>{_num(v['roc_auc'])}</td><td>{v['support']}</td></tr>"
        for c, v in m["per_class"].items()
    )
    return ("<h2>Per class</h2><div class='table-wrap'><table><thead><tr><th>Class</th>"
            "<th>Precision</th><th>Recall</th><th>F1</th><th>ROC-AUC</th><th>Images</th>"
            f"</tr></thead><tbody>{rows}</tbody></table></div>"
            f"<p class='note'>Weighted F1 {_pct(m['weighted_f1'])}.</p>")


def _calibration_text(m: dict) -> str:
    c = m.get("calibration") or {}
    if not c:
        return ""
    return (f"<p class='note'>Probabilities in this report are softmax(logits / T) with the "
            f"model's stored temperature T = {_num(c.get('temperature'), 3)}. Expected "
            f"calibration error ({c.get('n_bins')} bins): {_num(c.get('ece_before'))} at T = 1, "
            f"{_num(c.get('ece_after'))} at the stored T. Negative log-likelihood: "
            f"{_num(c.get('nll_before'))} → {_num(c.get('nll_after'))}.</p>")


def _figure(f: ReportFigure) -> str:
    cap = f"<figcaption>{escape(f.caption)}</figcaption>" if f.caption else ""
    return (f'<figure id="fig-{escape(f.key)}"><img src="{data_uri(f.png)}" '
            f'alt="{escape(f.title)}" loading="eager">{cap}</figure>')


def _gallery(items: list[GalleryItem], m: dict) -> str:
    g = m.get("gallery") or {}
    if not items:
        reason = g.get("reason", "no misclassified images")
        return f"<h2>Misclassified images</h2><p class='note'>{escape(reason)}</p>"
    cells = "".join(
        f'<figure><img src="{data_uri(it.png)}" alt="{escape(it.path)}" loading="eager">'
        f"<figcaption><strong>true {escape(it.true_label)}</strong>, predicted "
        f"{escape(it.predicted)} ({_pct(it.confidence, 0)})<br>"
        f"{escape(it.path.rsplit('/', 1)[-1])}</figcaption></figure>"
        for it in items
    )
    return (f"<h2>Misclassified images</h2><p class='note'>{len(items)} of "
            f"{g.get('n_misclassified', len(items))} mistakes, most confident first, with the "
            f"Grad-CAM heatmap of the predicted class over the model's input.</p>"
            f'<div class="gallery">{cells}</div>')


def _data_section(m: dict) -> str:
    failed = m.get("failed") or []
    items = "".join(f"<li><code>{escape(p)}</code>: {escape(r)}</li>" for p, r in failed[:50])
    more = f"<li>… and {len(failed) - 50} more (see metrics.json)</li>" if len(failed) > 50 else ""
    failed_html = (f"<p>{len(failed)} unreadable image(s) were skipped:</p><ul>{items}{more}</ul>"
                   if failed else "<p>Every image was read.</p>")
    return (f"<h2>Data</h2><p class='sub'>Dataset <code>{escape(str(m.get('data', '')))}</code>, "
            f"split <code>{escape(str(m.get('split', '')))}</code>, {m['n_images']} images "
            f"evaluated.</p>{failed_html}")


def _model_section(m: dict) -> str:
    mod = m.get("model", {})
    size = ""
    if mod.get("parameters"):
        size = (f", {mod['parameters'] / 1e6:.2f} M parameters, {_num(mod.get('gflops'), 3)} "
                f"GFLOPs per image")
    card = escape(json.dumps(mod.get("card", {}), indent=2))
    return (f"<h2>Model</h2><p class='sub'><strong>{escape(str(mod.get('name')))}</strong>{size}"
            f"<br>SHA-256 <code>{escape(str(mod.get('checksum')))}</code><br>"
            f"<code>{escape(str(mod.get('path', '')))}</code></p>"
            f"<details><summary>Model card</summary><pre>{card}</pre></details>")


def render_report(metrics: dict, figures: list[ReportFigure],
                  gallery: list[GalleryItem]) -> str:
    """The whole page as a string (UTF-8)."""
    by_key = {f.key: f for f in figures}
    title = f"braintumor evaluation: {metrics.get('model', {}).get('name', 'model')}"
    when = metrics.get("created") or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")

    def figs(*keys: str) -> str:
        return "".join(_figure(by_key[k]) for k in keys if k in by_key)

    sections = [
        f'<p class="disclaimer" role="note">{escape(DISCLAIMER)}</p>',
        f"<h1>{escape(title)}</h1>",
        f"<p class='sub'>{escape(str(metrics.get('data', '')))} · split "
        f"{escape(str(metrics.get('split', '')))} · braintumor {__version__} · {escape(when)}</p>",
        _headline_cards(metrics),
        _card_check(metrics),
        _tumor_section(metrics),
        _per_class_table(metrics),
        "<h2>Confusion matrix</h2>" + figs("confusion_matrix"),
        "<h2>ROC and precision-recall</h2><div class='figrow'>"
        + figs("roc", "precision_recall") + "</div>",
        "<h2>Calibration</h2>" + _calibration_text(metrics) + figs("reliability"),
    ]
    if "training_curves" in by_key:
        sections.append("<h2>Training</h2>" + figs("training_curves"))
    if metrics.get("gallery", {}).get("enabled", True):
        sections.append(_gallery(gallery, metrics))
    sections += [_data_section(metrics), _model_section(metrics),
                 f'<footer><p class="disclaimer" role="note">{escape(DISCLAIMER)}</p></footer>']
    body = "\n".join(s for s in sections if s)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'>"
        f"<title>{escape(title)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
