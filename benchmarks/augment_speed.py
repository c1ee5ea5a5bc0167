"""Batch augmentation cost: ``braintumor.training.augment`` against the same recipe in kornia.

Both augment the same uint8 batch (converted to float in [0, 1], as training does) with the
published recipe (``AugmentConfig()``: rotation, zoom, shift, both flips, brightness and
contrast); kornia's version is the one this project used before (one module per operation).
They take turns, batch after batch, so this machine's drift hits both alike; the figure is
the median over turns of the paired ratio.

    python benchmarks/augment_speed.py [--turns 60]
    python benchmarks/augment_speed.py --shift [--turns 30] [--config CONFIG]

Writes benchmarks/results/augment_speed.json. ``--shift`` instead measures what the shift
augmentation (``training/appearance.py``) adds to the bundled recipe: the recipe of
``--config`` (default: the robust experiment config) and, one at a time, the bundled recipe
plus each of its shift ops at probability 1 (the worst case) and at the config's own
probability, all taking turns with the bundled recipe; the figure per variant is the median
over turns of the paired difference in ms per batch. Writes
benchmarks/results/augment_speed_shift.json.
"""

from __future__ import annotations

import argparse
import dataclasses
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
SHIFT_RESULTS = RESULTS.with_name("augment_speed_shift.json")
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def kornia_recipe(cfg: AugmentConfig) -> nn.Module:
    import kornia.augmentation as K

    return nn.Sequential(
        K.RandomHorizontalFlip(p=cfg.hflip), K.RandomVerticalFlip(p=cfg.vflip),
        K.RandomAffine(degrees=cfg.rotation_degrees, translate=(cfg.translate, cfg.translate),
                       scale=tuple(cfg.zoom), padding_mode="zeros", p=1.0),
        K.RandomBrightness(brightness=(1 - cfg.brightness, 1 + cfg.brightness), p=1.0),
        K.RandomContrast(contrast=(1 - cfg.contrast, 1 + cfg.contrast), p=1.0),
    ).train()


def shift_variants(robust: AugmentConfig, bundled: AugmentConfig) -> dict[str, AugmentConfig]:
    """The robust recipe, then the bundled recipe plus each of its shift ops (at the robust
    config's probability, and at probability 1)."""
    from braintumor.training.appearance import enabled_ops

    variants = {"robust recipe (all its shift ops)": robust}
    if robust.aspect > 0:
        variants["aspect"] = dataclasses.replace(bundled, aspect=robust.aspect)
    for op in enabled_ops(robust):
        prob = f"{op}_prob"
        params = {f.name: getattr(robust, f.name) for f in dataclasses.fields(robust)
                  if f.name.startswith(op) and f.name != prob}
        if op == "noise":
            params["noise_rician"] = robust.noise_rician
        own = getattr(robust, prob)
        variants[f"{op} p={own:g}"] = dataclasses.replace(bundled, **params, **{prob: own})
        variants[f"{op} p=1"] = dataclasses.replace(bundled, **params, **{prob: 1.0})
    return variants


def measure_shift(args) -> None:
    from braintumor.training.config import load_config

    bundled = load_config(CONFIGS / "braintumor-net.yaml").augment
    robust = load_config(args.config).augment
    variants = shift_variants(robust, bundled)
    augs = {"bundled": BatchAugment(bundled).train()} | {
        k: BatchAugment(v).train() for k, v in variants.items()}
    batch = torch.randint(0, 256, (args.batch_size, args.image_size, args.image_size),
                          dtype=torch.uint8)
    times: dict[str, list[float]] = {k: [] for k in augs}
    for turn in range(args.turns + 2):
        torch.manual_seed(turn)
        for name, aug in augs.items():
            t0 = time.perf_counter()
            aug(batch.float().div_(255.0).unsqueeze(1))
            if turn >= 2:
                times[name].append(time.perf_counter() - t0)
    base = times["bundled"]
    report = {"batch_size": args.batch_size, "image_size": args.image_size,
              "turns": args.turns, "torch_threads": args.threads, "cpu": cpu_model(),
              "torch": torch.__version__, "config": str(args.config),
              "load_average_after": list(os.getloadavg()),
              "median_ms": {k: round(1000 * statistics.median(v), 2) for k, v in times.items()},
              "paired_extra_ms_vs_bundled": {
                  k: round(1000 * statistics.median(t - b for b, t in zip(base, v, strict=True)),
                           2) for k, v in times.items() if k != "bundled"},
              # Contention slows every variant alike; the ratio is the steadier figure.
              "paired_ratio_vs_bundled": {
                  k: round(statistics.median(t / b for b, t in zip(base, v, strict=True)), 3)
                  for k, v in times.items() if k != "bundled"}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"bundled recipe {report['median_ms']['bundled']} ms per batch; extra ms per batch:")
    for k, v in report["paired_extra_ms_vs_bundled"].items():
        print(f"  {k:>36}: {v:+.1f} ms ({report['paired_ratio_vs_bundled'][k]:.2f}x)")
    print(f"wrote {args.out}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--image-size", type=int, default=192)
    ap.add_argument("--turns", type=int, default=None, help="default: 60 (30 with --shift)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--shift", action="store_true",
                    help="measure the shift augmentation's cost instead of the kornia comparison")
    ap.add_argument("--config", default=str(CONFIGS / "experiments" / "braintumor-net-robust.yaml"),
                    help="with --shift: the config whose shift ops are measured")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.shift:
        args.turns = args.turns or 30
        args.out = args.out or str(SHIFT_RESULTS)
        measure_shift(args)
        return
    args.turns = args.turns or 60
    args.out = args.out or str(RESULTS)
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
