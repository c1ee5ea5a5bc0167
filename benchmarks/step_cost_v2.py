"""Training-step cost of braintumor-net-v2 against the bundled braintumor-net, paired.

Each model's config (configs/braintumor-net.yaml, configs/experiments/braintumor-net-v2.yaml)
builds its model; one training step is forward, loss, backward and the AdamW update on the same
random
batch (batch 64 at the configs' 192 px, channels-last as the configs say): for the bundled
model cross-entropy alone (it trains without masks), for v2 cross-entropy plus its Dice + BCE
mask loss on random square masks (training/mask_loss.py, hooked on ``tumour_head`` as in
training). Augmentation and data loading, the same for both, are left out, so the ratio is an
upper bound on what a whole epoch costs more. As in step_variants.py, the models take turns,
step by step, and the figure is the median over turns of the paired ratio (this shared
machine's speed drifts by tens of per cent within minutes).

    python benchmarks/step_cost_v2.py [--turns 15] [--bf16]

fp32 by default (CPUs without bf16, like the 2-core AMD EPYC); ``--bf16`` times under bf16
autocast, as ``braintumor train`` runs on CPUs with AMX. Writes
benchmarks/results/step_cost_v2.json, with the projected time of the v2 recipe on the
reference Xeon: the bundled run's 19.2 min (docs/training.md) times the measured ratio.
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

from braintumor.models import create_model, model_info
from braintumor.training.config import load_config
from braintumor.training.hardware import cpu_model
from braintumor.training.mask_loss import MaskLoss

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "step_cost_v2.json"
BUNDLED_RUN_MINUTES = 19.2  # the bundled run on the reference Xeon, bf16 (docs/training.md)


def _build(config: Path):
    cfg = load_config(config)
    torch.manual_seed(0)
    model = create_model(cfg.model, image_size=cfg.image_size, **cfg.model_kwargs)
    info = model_info(model, cfg.image_size)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    mask_loss = None
    if cfg.mask_layer:  # the v2 recipe: its own tumour map, supervised with masks
        mask_loss = MaskLoss(model, cfg.mask_layer, cfg.image_size, kind=cfg.mask_loss)
    opt = torch.optim.AdamW(list(model.parameters()) + (
        list(mask_loss.parameters()) if mask_loss is not None else []), 1e-3)
    return cfg, info, model, mask_loss, opt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline", default=str(ROOT / "configs" / "braintumor-net.yaml"))
    ap.add_argument("--v2", default=str(ROOT / "configs" / "braintumor-net-v2.yaml"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--turns", type=int, default=15, help="timed steps per model")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=min(os.cpu_count() or 1, 2))
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast (CPUs with AMX)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    configs = {"braintumor-net": Path(args.baseline), "braintumor-net-v2": Path(args.v2)}
    models = {name: _build(path) for name, path in configs.items()}
    size = models["braintumor-net"][0].image_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch_size, 1, size, size, generator=g)
    y = torch.randint(0, 4, (args.batch_size,), generator=g)
    masks = torch.zeros(args.batch_size, 1, size, size)
    masks[1::2, :, size // 3:size // 3 + size // 8, size // 2:size // 2 + size // 8] = 1.0
    has = torch.ones(args.batch_size, dtype=torch.bool)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    times: dict[str, list[float]] = {name: [] for name in models}
    for turn in range(args.warmup + args.turns):
        for name, (cfg, _, model, mask_loss, opt) in models.items():
            t0 = time.perf_counter()
            xin = x.contiguous(memory_format=torch.channels_last) if cfg.channels_last else x
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                loss = loss_fn(model(xin).float(), y)
                if mask_loss is not None:
                    loss = loss + cfg.mask_loss_weight * mask_loss(masks, has)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if turn >= args.warmup:
                times[name].append(time.perf_counter() - t0)
    base, v2 = times["braintumor-net"], times["braintumor-net-v2"]
    ratio = statistics.median(b2 / b1 for b1, b2 in zip(base, v2, strict=True))
    report = {"command": "python benchmarks/step_cost_v2.py"
                         + (f" --turns {args.turns}" if args.turns != 15 else "")
                         + (" --bf16" if args.bf16 else ""),
              "precision": "bf16 autocast" if args.bf16 else "fp32",
              "image_size": size, "batch_size": args.batch_size, "turns": args.turns,
              "torch_threads": args.threads, "cpu": cpu_model(), "torch": torch.__version__,
              "models": {}}
    for name, (cfg, info, *_) in models.items():
        t = times[name]
        report["models"][name] = {
            "config": configs[name].name, "model": cfg.model,
            "parameters": info.parameters, "gflops_per_image": round(info.flops / 1e9, 3),
            "median_step_ms": round(1000 * statistics.median(t), 1),
            "images_per_second": round(args.batch_size / statistics.median(t), 1)}
        print(f"{name:18s} {info.parameters / 1e6:.2f} M params, {info.flops / 1e9:.3f} GFLOPs;"
              f" {1000 * statistics.median(t):7.1f} ms/step")
    report["paired_step_ratio_v2_over_bundled"] = round(ratio, 3)
    report["projected_reference_xeon_minutes"] = round(BUNDLED_RUN_MINUTES * ratio, 1)
    report["projection_note"] = (f"the bundled run's {BUNDLED_RUN_MINUTES} min (reference Xeon,"
                                 " bf16) times the paired step ratio measured here")
    print(f"paired step ratio v2 / bundled: {ratio:.3f}; projected reference-Xeon run "
          f"{BUNDLED_RUN_MINUTES} x {ratio:.3f} = {BUNDLED_RUN_MINUTES * ratio:.1f} min")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
