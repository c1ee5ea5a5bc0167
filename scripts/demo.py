"""``make demo``: predict and explain a few test scans with the bundled model.

Picks a handful of images per class from the dataset's test split, runs the same Predictor
the CLI and the REST service use (Grad-CAM included), prints true vs predicted class, and
writes one PNG panel per scan (input | heatmap | overlay, captioned). It is the first thing a
new user runs, so every way it can fail says what to do next.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import sys
import time
from pathlib import Path

from braintumor import DISCLAIMER
from braintumor.data.datasets import DatasetError, discover

DATA_HELP = (
    "Point DATA at the Kaggle 'Brain Tumor MRI Dataset' folder (it holds Training/ and "
    "Testing/, one sub-folder per class), e.g.\n"
    "    make demo DATA=/path/to/brain-tumor-mri\n"
    "or  python scripts/demo.py --data /path/to/brain-tumor-mri"
)


def pick(samples, per_class: int, seed: int):
    """``per_class`` samples of each class, reproducibly random (not always the first files)."""
    rng = random.Random(seed)
    by_class: dict[str, list] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    chosen = []
    for label in sorted(by_class):
        group = sorted(by_class[label], key=lambda s: str(s.path))
        chosen.extend(rng.sample(group, min(per_class, len(group))))
    return chosen


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.environ.get("DATA"), help="dataset folder ($DATA)")
    ap.add_argument("--out", default="out/demo", help="folder for the overlay PNGs")
    ap.add_argument("--model", default=None, help="model bundle (default: the bundled model)")
    ap.add_argument("--per-class", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if not args.data:
        print(f"demo: no dataset given.\n{DATA_HELP}", file=sys.stderr)
        return 2
    try:
        index = discover(args.data)
    except DatasetError as exc:
        print(f"demo: {exc}\n{DATA_HELP}", file=sys.stderr)
        return 2
    test = index.split("test") or index.samples
    samples = pick(test, args.per_class, args.seed)

    from braintumor.data.readers import read_image
    from braintumor.explain.overlay import compose_panel, save_png
    from braintumor.inference.predictor import Predictor
    from braintumor.models import ModelIntegrityError

    try:
        predictor = Predictor.load(args.model)
    except (FileNotFoundError, ModelIntegrityError) as exc:
        print(f"demo: cannot load the model: {exc}\nThe bundled model lives in "
              "src/braintumor/weights/ (train one with `make train`), or pass --model BUNDLE.",
              file=sys.stderr)
        return 2

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"model {predictor.name} (sha256 {predictor.checksum[:12]}…), "
          f"{len(samples)} test scans from {index.root}")
    t0 = time.perf_counter()
    preds = predictor.predict([str(s.path) for s in samples], explain=True)
    elapsed = time.perf_counter() - t0

    rows = []
    width = max(len(s.path.name) for s in samples)
    print(f"\n{'file':<{width}}  {'true':<11} {'predicted':<11} {'conf':>5}  ok")
    print("-" * (width + 37))
    for s, p in zip(samples, preds, strict=True):
        if not p.ok:
            print(f"{s.path.name:<{width}}  {s.label:<11} ERROR  {p.error}")
            rows.append([str(s.path), s.label, "", "", "", p.error])
            continue
        panel_path = out / f"{s.label}_{s.path.stem}.png"
        caption = [f"True: {s.label}   Predicted: {p.label}  p = {p.confidence:.3f} (calibrated)",
                   f"Grad-CAM of '{p.label}'  [{predictor.name}]",
                   "Research use only - not a diagnosis"]
        save_png(compose_panel(read_image(s.path).pixels, p.heatmap, p.overlay, caption),
                 panel_path)
        mark = "yes" if p.label == s.label else "NO"
        print(f"{s.path.name:<{width}}  {s.label:<11} {p.label:<11} {p.confidence:>5.2f}  {mark}")
        rows.append([str(s.path), s.label, p.label, f"{p.confidence:.4f}", str(panel_path), ""])
    with (out / "predictions.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "true", "predicted", "confidence", "overlay", "error"])
        w.writerows(rows)

    ok = [r for r in rows if not r[5]]
    correct = sum(r[1] == r[2] for r in ok)
    print(f"\n{correct}/{len(ok)} correct on this handful (see `make evaluate` for real "
          f"metrics); {elapsed:.1f} s for {len(samples)} scans with Grad-CAM.")
    print(f"Overlays (input | heatmap | overlay): {out.resolve()}/*.png; "
          f"table: {out.resolve() / 'predictions.csv'}")
    print(f"\n{DISCLAIMER}")
    return 0 if len(ok) == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
