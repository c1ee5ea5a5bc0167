"""Grey-level statistics of the preprocessed images by split and class: a shortcut check.

    python benchmarks/class_intensity.py --data ../shared/datasets/brain-tumor-mri

If one class is brighter or more contrasted than another on average (different scanners or
sources behind different classes), a model can separate them by brightness instead of by
anatomy, and will fail on images of that class that break the pattern. This prints, per split
and class, the mean and standard deviation over images of each image's mean grey level, of
its mean over head pixels (grey level above 10), and of its 95th percentile, on the images as
the model sees them (the shared preprocessing, at the bundled config's input size unless
``--image-size`` says otherwise).
Writes benchmarks/results/class_intensity.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np

from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.data.preprocess import PreprocessConfig
from braintumor.training.config import load_config

RESULTS = Path(__file__).resolve().parent / "results" / "class_intensity.json"
BUNDLED_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "braintumor-net.yaml"
HEAD_THRESHOLD = 10  # grey levels; the black background around the head is below it


def image_stats(images: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image mean, head-pixel mean and 95th percentile of uint8 (N, S, S) images."""
    flat = images.reshape(len(images), -1).astype(np.float32)
    head = flat > HEAD_THRESHOLD
    head_mean = (flat * head).sum(1) / np.maximum(head.sum(1), 1)
    return {"mean": flat.mean(1), "head_mean": head_mean,
            "p95": np.percentile(flat, 95, axis=1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"))
    ap.add_argument("--image-size", type=int, default=load_config(BUNDLED_CONFIG).image_size)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data DIR (or $DATA) is required")
    index = discover(args.data)
    result = {"data": args.data, "image_size": args.image_size, "splits": {}}
    for split in ("train", "test"):
        samples = index.split(split)
        if not samples:
            continue
        cached = build_cache(samples, PreprocessConfig(image_size=args.image_size))
        stats = image_stats(np.asarray(cached.images))
        labels = np.array(cached.label_indices(list(index.classes)))
        rows = {}
        for i, name in enumerate(index.classes):
            pick = labels == i
            rows[name] = {"images": int(pick.sum()),
                          **{k: [round(float(v[pick].mean()), 1), round(float(v[pick].std()), 1)]
                             for k, v in stats.items()}}
            print(f"{split:5s} {name:11s} {rows[name]['images']:5d} images  "
                  + "  ".join(f"{k} {m:6.1f} ± {s:5.1f}"
                              for k, (m, s) in ((k, rows[name][k]) for k in stats)))
        result["splits"][split] = rows
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
