"""Batch augmentation cost: ``braintumor.training.augment`` against the same recipe in kornia.

Both augment the same uint8 batch (converted to float in [0, 1], as training does) with the
published recipe (``AugmentConfig()``: rotation, zoom, shift, both flips, brightness and
contrast); kornia's version is the one this project used before (one module per operation).
They take turns, batch after batch, so this machine's drift hits both alike; the figure is
the median over turns of the paired ratio.

    python benchmarks/augment_speed.py [--turns 60]

Writes benchmarks/results/augment_speed.json. Needs kornia (a dev dependency).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from braintumor.training.augment import BatchAugment
from braintumor.training.config import AugmentConfig
from braintumor.training.hardware import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "augment_speed.json"


def kornia_recipe(cfg: AugmentConfig) -> nn.Module:
    import kornia.augmentation as K

    return nn.Sequential(
        K.RandomHorizontalFlip(p=cfg.hflip), K.RandomVerticalFlip(p=cfg.vflip),
        K.RandomAffine(degrees=cfg.rotation_degrees, translate=(cfg.translate, cfg.translate),
                       scale=tuple(cfg.zoom), padding_mode="zeros", p=1.0),
        K.RandomBrightness(brightness=(1 - cfg.brightness, 1 + cfg.brightness), p=1.0),
        K.RandomContrast(contrast=(1 - cfg.contrast, 1 + cfg.contrast), p=1.0),
    ).train()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=192)
    ap.add_argument("--turns", type=int, default=60)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = AugmentConfig()
    ours, theirs = BatchAugment(cfg).train(), kornia_recipe(cfg)
    batch = torch.randint(0, 256, (args.batch_size, args.image_size, args.image_size),
                          dtype=torch.uint8)
    times: dict[str, list[float]] = {"braintumor": [], "kornia": []}
    for turn in range(args.turns + 3):
        for name, aug in (("braintumor", ours), ("kornia", theirs)):
            t0 = time.perf_counter()
            with torch.no_grad():
                aug(batch.float().div_(255.0).unsqueeze(1)).clamp_(0.0, 1.0)
            if turn >= 3:
                times[name].append(time.perf_counter() - t0)
    ratio = statistics.median(k / b for b, k in zip(times["braintumor"], times["kornia"],
                                                    strict=True))
    report = {"batch_size": args.batch_size, "image_size": args.image_size,
              "turns": args.turns, "torch_threads": args.threads, "cpu": cpu_model(),
              "torch": torch.__version__,
              "median_ms": {k: round(1000 * statistics.median(v), 2) for k, v in times.items()},
              "paired_speedup_vs_kornia": round(ratio, 2)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"braintumor {report['median_ms']['braintumor']} ms, kornia "
          f"{report['median_ms']['kornia']} ms per batch; paired speed-up {ratio:.2f}x; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
