"""``braintumor compare``: the headline metrics of several models side by side.

Each argument is an evaluation folder (its metrics.json is read as is) or a model bundle /
training run directory (evaluated on ``--data`` now, without drawing a report). The dataset
audit runs at most once: the leaked test images depend on the data, not on the model.
"""

from __future__ import annotations

import json
from pathlib import Path

from braintumor.data.datasets import SPLIT_NAMES, DatasetError, discover
from braintumor.evaluation.evaluate import run_evaluation
from braintumor.evaluation.leakage import Leakage, leakage_from_audit

COLUMNS = [  # (key in a row, header, format)
    ("label", "run", "{}"),
    ("model", "model", "{}"),
    ("n_images", "images", "{}"),
    ("accuracy", "accuracy", "{:.2%}"),
    ("macro_f1", "macro-F1", "{:.2%}"),
    ("roc_auc_macro", "ROC-AUC", "{:.4f}"),
    ("leak_free_n", "leak-free images", "{}"),
    ("leak_free_accuracy", "leak-free accuracy", "{:.2%}"),
    ("leak_free_macro_f1", "leak-free macro-F1", "{:.2%}"),
    ("params_m", "params (M)", "{:.2f}"),
    ("gflops", "GFLOPs", "{:.3f}"),
]


def is_evaluation_folder(path: Path) -> bool:
    return (path / "metrics.json").is_file() and not (path / "card.json").is_file()


def row_from_metrics(label: str, m: dict) -> dict:
    """One table row from a metrics.json dict."""
    lf = m.get("leak_free") or {}
    model = m.get("model") or {}
    params = model.get("parameters")
    return {
        "label": label,
        "model": model.get("name"),
        "checksum": model.get("checksum"),
        "data": m.get("data"),
        "split": m.get("split"),
        "n_images": m.get("n_images"),
        "accuracy": m.get("accuracy"),
        "macro_f1": m.get("macro_f1"),
        "roc_auc_macro": m.get("roc_auc_macro"),
        "leak_free_n": lf.get("n_images") if lf.get("available") else None,
        "leak_free_accuracy": lf.get("accuracy") if lf.get("available") else None,
        "leak_free_macro_f1": lf.get("macro_f1") if lf.get("available") else None,
        "params_m": params / 1e6 if params else None,
        "gflops": model.get("gflops"),
    }


def _cell(value, fmt: str) -> str:
    return "n/a" if value is None else fmt.format(value)


def format_table(rows: list[dict], style: str) -> str:
    """Aligned plain text or a Markdown pipe table (a few lines: no tabulate dependency)."""
    headers = [h for _, h, _ in COLUMNS]
    cells = [[_cell(r.get(k), f) for k, _, f in COLUMNS] for r in rows]
    if style == "markdown":
        align = ["---" if i < 2 else "---:" for i in range(len(headers))]
        lines = [headers, align, *cells]
        return "\n".join("| " + " | ".join(line) + " |" for line in lines)
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]

    def fmt(line: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(line, widths, strict=True)))

    return "\n".join([fmt(headers), fmt(["-" * w for w in widths]), *map(fmt, cells)])


def compare(items: list[str], data: str | None, split: str = "Testing") -> list[dict]:
    rows: list[dict] = []
    leakage: Leakage | None = None
    for item in items:
        path = Path(item)
        if is_evaluation_folder(path):
            rows.append(row_from_metrics(item, json.loads((path / "metrics.json").read_text())))
            continue
        if not data:
            raise DatasetError(f"{item} is a model, not an evaluation folder: --data is needed")
        if leakage is None and SPLIT_NAMES.get(split.lower()) == "test":
            leakage = leakage_from_audit(discover(data))
        ev = run_evaluation(path, data, split, leakage=leakage)
        rows.append(row_from_metrics(item, ev.metrics))
    return rows
