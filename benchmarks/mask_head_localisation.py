"""Where a mask-trained run's auxiliary head puts the tumour, beside where Grad-CAM does.

A run trained with ``--masks`` (docs/experiments/04-tumour-masks.md) has, in its checkpoint, a
1x1 convolution that reads the tumour's position off the Grad-CAM layer's feature map. This
scores that head's map (sigmoid, upsampled, brought back onto the image grid like any
heatmap) with the same localisation measures, images and baselines as ``explain-check``:
Training images with a mask that the run did not train on (its validation part), 240 of them
class-stratified with seed 0. Comparing it with the run's own Grad-CAM
(``braintumor explain-check --model RUN/bundle --split Training --masks M --methods gradcam
--limit 240``) tells whether the features know where the tumour is even when the class
evidence does not peak there.

    python benchmarks/mask_head_localisation.py runs/mask05 \
        --data ../shared/datasets/brain-tumor-mri --masks ../shared/datasets/brain-tumor-mri-masks

Writes benchmarks/results/mask_head_localisation.json.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from braintumor.data.datasets import discover
from braintumor.data.preprocess import to_model_input
from braintumor.explain.evidence import (
    load_items,
    score_maps,
    stratified_sample,
    trained_on,
    with_masks,
)
from braintumor.models import load_bundle
from braintumor.training.config import load_config
from braintumor.training.module import Classifier

RESULTS = Path(__file__).resolve().parent / "results" / "mask_head_localisation.json"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="folder of a mask-trained run (config.yaml, checkpoints/, bundle/)")
    ap.add_argument("--data", default=os.environ.get("DATA"))
    ap.add_argument("--masks", required=True)
    ap.add_argument("--limit", type=int, default=240)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data DIR (or $DATA) is required")
    run = Path(args.run)
    cfg = load_config(run / "config.yaml")
    if not cfg.masks:
        raise SystemExit(f"{run}: trained without masks, so it has no mask head")
    bundle = load_bundle(run / "bundle")
    module = Classifier(cfg, len(bundle.classes), [1] * len(bundle.classes))
    state = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu",
                       weights_only=True)["state_dict"]
    module.load_state_dict(state)
    module.eval()
    model, head = module.model.float(), module.mask_loss.head.float()
    layer = module.mask_loss.layer

    index = discover(args.data)
    pool = with_masks(index.split("train"), Path(args.masks), index.root,
                      trained_on(bundle.card, args.data))
    chosen = stratified_sample(pool, args.limit, args.seed)
    items, failed = load_items(chosen, bundle, index.root, Path(args.masks))

    feats: dict[str, torch.Tensor] = {}
    hook = model.get_submodule(layer).register_forward_hook(
        lambda m, i, o: feats.__setitem__("x", o))
    maps = []
    with torch.no_grad():
        for it in items:
            model(to_model_input(it.pre.image))
            prob = torch.sigmoid(head(feats["x"]))
            maps.append(F.interpolate(prob, size=it.pre.image.shape, mode="bilinear",
                                      align_corners=False)[0, 0].numpy())
    hook.remove()
    summary = score_maps("mask-head", items, maps, bundle.preprocess.crop_threshold)
    report = {"run": str(run), "layer": layer, "images": len(items),
              "held_out_images_with_masks": len(pool), "failures": failed,
              "overall": summary.overall, "per_class": summary.per_class}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1) + "\n")
    o = summary.overall
    print(f"mask head at {layer}, {len(items)} held-out images: pointing "
          f"{o['pointing_game']:.3f} [uniform {o['random_pointing_game']:.3f}; in head "
          f"{o['random_pointing_game_in_head']:.3f}]  energy {o['energy_pointing_game']:.3f}  "
          f"IoU@10% {o['iou_top10']:.3f} [{o['random_iou_top10']:.3f}; best "
          f"{o['best_iou_top10']:.3f}]")
    for c, v in summary.per_class.items():
        print(f"  {c:<11} n={v['n']:<3} pointing {v['pointing_game']:.3f}  energy "
              f"{v['energy_pointing_game']:.3f}  IoU@10% {v['iou_top10']:.3f}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
