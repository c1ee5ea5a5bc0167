"""Paired timing of training-step variants of the bundled model, in one process.

This machine's speed drifts by tens of per cent within minutes, far more than the changes
measured here, so timing one variant after another compares spells, not variants. Instead
every variant's model takes one step in turn, over and over; each turn pairs them seconds
apart, and the figure is the median over turns of (baseline step time / variant step time).

Variants (all: the bundled config's model, batch 64, bf16 autocast, channels-last, the
same random batch):

- ``relu-before-pool``: the stem as it was, Conv-BN-ReLU-MaxPool, torch's default AdamW;
- ``relu-after-pool``: Conv-BN-MaxPool-ReLU (what ``braintumor-net`` now builds; exactly
  the same values and gradients, see the model's comment), default AdamW;
- ``relu-after-pool+fused``: the same with ``AdamW(fused=True)``. Not used by
  ``braintumor train``: two runs of this script (40 and 80 turns) gave it 1.070 and 1.083
  against the unfused update's 1.078 and 1.071, no gain worth changing the optimiser's
  arithmetic (and the bundle's recipe) for.

    python benchmarks/step_variants.py [--turns 30]

Writes benchmarks/results/step_variants.json.
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

from braintumor.models import create_model
from braintumor.training.config import load_config
from braintumor.training.hardware import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "step_variants.json"
CONFIG = Path(__file__).resolve().parents[1] / "configs" / "braintumor-net.yaml"


def _variant(cfg, image_size: int, relu_first: bool, fused: bool):
    torch.manual_seed(0)
    model = create_model(cfg.model, image_size=image_size, **cfg.model_kwargs)
    if relu_first:  # rebuild the earlier stem order from the same modules
        conv, bn, pool, relu = model.stem
        assert isinstance(pool, nn.MaxPool2d) and isinstance(relu, nn.ReLU)
        model.stem = nn.Sequential(conv, bn, relu, pool)
    model = model.to(memory_format=torch.channels_last).train()
    return model, torch.optim.AdamW(model.parameters(), 1e-3, fused=fused)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--turns", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    size = cfg.image_size
    variants = {"relu-before-pool": _variant(cfg, size, True, False),
                "relu-after-pool": _variant(cfg, size, False, False),
                "relu-after-pool+fused": _variant(cfg, size, False, True)}
    x = torch.rand(args.batch_size, 1, size, size).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 4, (args.batch_size,))
    loss_fn = nn.CrossEntropyLoss()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for turn in range(args.warmup + args.turns):
        for name, (model, opt) in variants.items():
            t0 = time.perf_counter()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss = loss_fn(model(x).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if turn >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    base = times["relu-before-pool"]
    report = {"config": args.config, "image_size": size, "batch_size": args.batch_size,
              "turns": args.turns, "torch_threads": args.threads, "cpu": cpu_model(),
              "torch": torch.__version__, "variants": {}}
    for name, t in times.items():
        speedup = statistics.median(b / v for b, v in zip(base, t, strict=True))
        report["variants"][name] = {
            "median_step_ms": round(1000 * statistics.median(t), 1),
            "images_per_second": round(args.batch_size / statistics.median(t), 1),
            "paired_speedup_vs_relu_before_pool": round(speedup, 3)}
        print(f"{name:24s} {1000 * statistics.median(t):7.1f} ms/step  paired speed-up "
              f"{speedup:.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
