"""Accuracy of model bundles on the Kaggle Testing split (1311 images), as a table.

    python benchmarks/accuracy.py --data ../shared/datasets/brain-tumor-mri \
        src/braintumor/weights runs/paper-cnn/bundle

Each bundle is evaluated with its own preprocessing (from its card) on every image of the
Testing split; results go to benchmarks/results/accuracy.json and accuracy.md. The
published figures of the notebook this project compares against are printed beside them
for reference; they were not measured here.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
)

from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.models import load_bundle, model_info
from braintumor.models.runtime import predict_logits

RESULTS = Path(__file__).resolve().parent / "results"
PUBLISHED = {"accuracy": 0.9710, "macro_f1": 0.9688}  # the published baseline's own report


def evaluate(bundle_path: str, data: str, split: str = "test") -> dict:
    loaded = load_bundle(bundle_path)
    index = discover(data)
    samples = index.split(split)
    if not samples:
        raise SystemExit(f"{data}: no {split!r} split")
    cached = build_cache(samples, loaded.preprocess)
    classes = loaded.classes
    y = cached.label_indices(classes)
    t0 = time.perf_counter()
    logits = predict_logits(loaded.model, cached.images)
    seconds = time.perf_counter() - t0
    pred = logits.argmax(1)
    info = model_info(loaded.model, loaded.preprocess.image_size)
    training = loaded.card.get("training", {})
    return {
        "bundle": str(bundle_path),
        "model": loaded.name,
        "sha256": loaded.checksum,
        "parameters": info.parameters,
        "gflops_per_image": round(info.flops / 1e9, 4),
        "image_size": loaded.preprocess.image_size,
        "images": int(len(y)),
        "skipped_unreadable": len(cached.failed),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro")),
        "macro_precision": float(precision_score(y, pred, average="macro", zero_division=0)),
        "macro_recall": float(recall_score(y, pred, average="macro", zero_division=0)),
        "errors": int((pred != y).sum()),
        "classes": classes,
        "confusion_matrix": confusion_matrix(y, pred, labels=range(len(classes))).tolist(),
        "inference_seconds": round(seconds, 2),
        "training_wall_seconds": training.get("wall_seconds"),
        "training_epochs": training.get("epochs_run"),
        "training_command": training.get("command"),
    }


def markdown(rows: list[dict]) -> str:
    lines = ["| model | params | GFLOPs/img | test accuracy | test macro-F1 | errors / images "
             "| training time |", "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        t = r["training_wall_seconds"]
        lines.append(f"| {r['model']} (`{r['bundle']}`) | {r['parameters'] / 1e6:.2f} M "
                     f"| {r['gflops_per_image']:.3f} | {100 * r['accuracy']:.2f}% "
                     f"| {100 * r['macro_f1']:.2f}% | {r['errors']} / {r['images']} "
                     f"| {f'{t / 60:.1f} min' if t else '-'} |")
    lines.append(f"| published notebook (reported, not measured here) | | | "
                 f"{100 * PUBLISHED['accuracy']:.2f}% | {100 * PUBLISHED['macro_f1']:.2f}% | | |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="+", help="bundle folders")
    ap.add_argument("--data", default=os.environ.get("DATA"), required=os.environ.get("DATA")
                    is None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    rows = [evaluate(b, args.data) for b in args.bundles]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "accuracy.json").write_text(json.dumps(
        {"split": "Testing", "published_reference": PUBLISHED, "results": rows}, indent=2) + "\n")
    table = markdown(rows)
    (out / "accuracy.md").write_text("# Accuracy on the Kaggle Testing split\n\n" + table)
    print(table)


if __name__ == "__main__":
    main()
