"""Paired timing of training-step variants of the bundled model, in one process.

This machine's speed drifts by tens of per cent within minutes, far more than the changes
measured here, so timing one variant after another compares spells, not variants. Instead
every variant's model takes one step in turn, over and over; each turn pairs them seconds
apart, and the figure is the median over turns of (baseline step time / variant step time).

Variants (the bundled config's model, batch 64, the same random batch; bf16 autocast and
channels-last unless the name says fp32-nchw):

- ``relu-before-pool``: the stem as it was, Conv-BN-ReLU-MaxPool, torch's default AdamW;
- ``relu-after-pool``: Conv-BN-MaxPool-ReLU (what ``braintumor-net`` now builds; exactly
  the same values and gradients, see the model's comment), default AdamW;
- ``relu-after-pool+fused``: the same with ``AdamW(fused=True)``. Not used by
  ``braintumor train``: two runs of this script (40 and 80 turns) gave it 1.070 and 1.083
  against the unfused update's 1.078 and 1.071, no gain worth changing the optimiser's
  arithmetic (and the bundle's recipe) for.
- ``norm-after-pool``: Conv-MaxPool-BN-ReLU (``stem_norm_after_pool=True``, what the bundled
  config now trains): a different model, whose stem batch norm sees a quarter of the pixels.
- ``norm-after-pool/fp32-nchw`` against ``relu-after-pool/fp32-nchw``: the same pair in fp32
  and the default memory format, i.e. as the conventional pipeline of
  ``train_throughput.py`` runs them, to show how much of the gain is bf16-specific (the
  memory-bound passes matter most once the convolutions run on bf16 matrix units).
- ``space-to-depth`` (and its ``/fp32-nchw`` twin): the stem as ``PixelUnshuffle(4)`` and a
  3x3 conv (``stem="space-to-depth"``, one 12x12 conv with stride 4), no map finer than a
  quarter of the image; a different model again.

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


def _variant(cfg, image_size: int, relu_first: bool, fused: bool, norm_after_pool: bool = False,
             channels_last: bool = True, stem: str = "conv-pool"):
    torch.manual_seed(0)
    kwargs = {**cfg.model_kwargs, "stem": stem,
              "stem_norm_after_pool": norm_after_pool and stem == "conv-pool"}
    model = create_model(cfg.model, image_size=image_size, **kwargs)
    if relu_first:  # rebuild the earlier stem order from the same modules
        conv, bn, pool, relu = model.stem
        assert isinstance(pool, nn.MaxPool2d) and isinstance(relu, nn.ReLU)
        model.stem = nn.Sequential(conv, bn, relu, pool)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    return model, torch.optim.AdamW(model.parameters(), 1e-3, fused=fused), channels_last


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(CONFIG))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--turns", type=int, default=30, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--no-fp32", dest="fp32", action="store_false",
                    help="skip the fp32 channels-first pair (the slowest steps)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = load_config(args.config)
    size = cfg.image_size
    variants = {"relu-before-pool": _variant(cfg, size, True, False),
                "relu-after-pool": _variant(cfg, size, False, False),
                "relu-after-pool+fused": _variant(cfg, size, False, True),
                "norm-after-pool": _variant(cfg, size, False, False, True),
                "space-to-depth": _variant(cfg, size, False, False, stem="space-to-depth")}
    if args.fp32:
        variants["relu-after-pool/fp32-nchw"] = _variant(cfg, size, False, False, False, False)
        variants["norm-after-pool/fp32-nchw"] = _variant(cfg, size, False, False, True, False)
        variants["space-to-depth/fp32-nchw"] = _variant(cfg, size, False, False,
                                                        channels_last=False,
                                                        stem="space-to-depth")
    x = torch.rand(args.batch_size, 1, size, size)
    y = torch.randint(0, 4, (args.batch_size,))
    loss_fn = nn.CrossEntropyLoss()
    times: dict[str, list[float]] = {name: [] for name in variants}
    for turn in range(args.warmup + args.turns):
        for name, (model, opt, channels_last) in variants.items():
            t0 = time.perf_counter()
            xin = x.contiguous(memory_format=torch.channels_last) if channels_last else x
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=channels_last):
                loss = loss_fn(model(xin).float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if turn >= args.warmup:
                times[name].append(time.perf_counter() - t0)

    def baseline(name: str) -> str:  # each variant is paired with the stem it replaces
        return "relu-after-pool/fp32-nchw" if name.endswith("/fp32-nchw") else "relu-before-pool"

    report = {"config": args.config, "image_size": size, "batch_size": args.batch_size,
              "turns": args.turns, "torch_threads": args.threads, "cpu": cpu_model(),
              "torch": torch.__version__, "variants": {}}
    for name, t in times.items():
        base = baseline(name)
        gain = statistics.median(b / v for b, v in zip(times[base], t, strict=True))
        against = base.replace("-", "_").replace("/", "_")
        report["variants"][name] = {
            "median_step_ms": round(1000 * statistics.median(t), 1),
            "images_per_second": round(args.batch_size / statistics.median(t), 1),
            f"paired_speedup_vs_{against}": round(gain, 3)}
        print(f"{name:26s} {1000 * statistics.median(t):7.1f} ms/step  paired speed-up "
              f"{gain:.3f} (vs {base})")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
