"""The figures behind docs/explain.md: are the heatmaps faithful, and do they land on tumours?

Runs, for one model on the real dataset:

1. sanity (model-parameter randomisation, full and cascading) and faithfulness (deletion /
   insertion vs. a random order) on a class-stratified sample of the *Testing* split;
2. localisation against the tumour masks of ``brain-tumor-mri-masks`` on a stratified sample
   of the *Training* split (the only images with masks), restricted to the images the model
   did not train on (its validation part, rebuilt from the split its card records), per
   method and class, on the images' native grid, each beside its chance baseline: pointing
   game strict and within 15 px, energy ratio, Dice/IoU of the binarised map (and of the
   model's own tumour map at the card's ``tumour_threshold``, for a model with a tumour head);
   and Grad-CAM at ``--finer-layer`` too.

The model is the bundled one, else ``--model``; the JSON names it and its checksum.
``--write-card`` records the figures in the model's card (``evidence``; the weights, and so
their checksum, are not touched).

    OMP_NUM_THREADS=1 python benchmarks/explain_evidence.py --data $DATA \
        --masks ../shared/datasets/brain-tumor-mri-masks
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ALL_METHODS = ("gradcam", "gradcam++", "guided-gradcam", "integrated-gradients", "occlusion")
REPO = Path(__file__).resolve().parents[1]


def _default_data() -> str:
    return os.environ.get("DATA", str(REPO.parent / "shared" / "datasets" / "brain-tumor-mri"))


def run(args) -> dict:
    import numpy as np
    import torch

    from braintumor.explain import Explainer
    from braintumor.explain.evidence import (
        card_tumour_threshold,
        load_items,
        run_evidence,
        stratified_sample,
        trained_on,
    )
    from braintumor.explain.sanity import cascading_randomisation
    from braintumor.models import load_bundle
    from braintumor.models.runtime import inference_copy

    torch.set_num_threads(args.threads)
    loaded = load_bundle(args.model)
    fast = dataclasses.replace(loaded, model=inference_copy(loaded.model))
    explainer = Explainer(fast)
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    report: dict = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/explain_evidence.py " + " ".join(sys.argv[1:]),
        "model": {"name": loaded.name, "path": str(loaded.path), "sha256": loaded.checksum,
                  "image_size": loaded.preprocess.image_size, "layer": explainer.layer_name,
                  "temperature": loaded.temperature},
    }
    methods = args.methods.split(",")
    log("== sanity + faithfulness (Testing)")
    report["testing"] = run_evidence(explainer, args.data, "Testing", methods, args.limit,
                                     None, seed=args.seed, log=log)
    log("== cascading randomisation, gradcam (Testing)")
    from braintumor.data.datasets import discover

    index = discover(args.data)
    sample = stratified_sample(index.split("test"), args.cascade_limit, args.seed)
    items, _ = load_items(sample, explainer)
    images = np.stack([it.pre.image for it in items])
    report["cascade_gradcam"] = [r.to_dict() for r in
                                 cascading_randomisation(explainer, images, "gradcam", args.seed)]
    if args.masks:
        log("== localisation (Training images the model did not train on, masks)")
        exclude = trained_on(loaded.card, args.data)
        report["training_localisation"] = run_evidence(
            explainer, args.data, "Training", methods, args.loc_limit, args.masks,
            seed=args.seed, model_checks=False, log=log, exclude=exclude,
            tumour_threshold=card_tumour_threshold(loaded.card))
        report["training_localisation"]["held_out"] = bool(exclude)
        finer = Explainer(fast, layer=args.finer_layer)
        log(f"== localisation, gradcam at {args.finer_layer}")
        loc = run_evidence(finer, args.data, "Training", ["gradcam"], args.loc_limit,
                           args.masks, seed=args.seed, model_checks=False, log=log,
                           exclude=exclude)
        report["training_localisation_finer_layer"] = {"layer": args.finer_layer,
                                                       **loc.get("localisation", {})}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="bundle (default: the bundled model)")
    p.add_argument("--data", default=_default_data())
    p.add_argument("--masks", default=str(REPO.parent / "shared" / "datasets" /
                                          "brain-tumor-mri-masks"))
    p.add_argument("--methods", default=",".join(ALL_METHODS))
    p.add_argument("--limit", type=int, default=100, help="Testing images for sanity/faithfulness")
    p.add_argument("--cascade-limit", type=int, default=60)
    p.add_argument("--loc-limit", type=int, default=240,
                   help="held-out Training images with masks")
    p.add_argument("--finer-layer", default="stages.2")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                        "explain_evidence.json"))
    p.add_argument("--write-card", action="store_true",
                   help="record the figures in the model's card.json (`evidence`)")
    args = p.parse_args(argv)
    if args.masks and not Path(args.masks).is_dir():
        print(f"no masks at {args.masks}: localisation skipped", file=sys.stderr)
        args.masks = None
    report = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    from braintumor.explain.evidence import print_localisation, print_report

    training = report.get("training_localisation", {})
    print_report({**report["testing"], "localisation": training.get("localisation"),
                  "notes": training.get("notes", [])})
    finer = report.get("training_localisation_finer_layer", {})
    if finer.get("methods"):
        print_localisation(finer)
    for r in report["cascade_gradcam"]:
        print(f"cascade: randomised down to {r['randomised']:<10} mean Spearman "
              f"{r['mean_spearman']:+.3f}")
    print(f"wrote {out}")
    if args.write_card:
        write_card(report)
    return 0


def write_card(report: dict) -> None:
    """The card's ``evidence``: localisation from the held-out Training images, sanity and
    faithfulness from Testing."""
    from braintumor.explain.evidence_card import evidence_section, write_evidence

    training = report.get("training_localisation", {})
    section = evidence_section(report["command"], training.get("localisation"), "Training",
                               bool(training.get("held_out")),
                               report["testing"].get("model_faithfulness"), "Testing",
                               created=report["created"])
    card = write_evidence(report["model"]["path"], section, report["model"]["sha256"])
    print(f"recorded the evidence in {card}")


if __name__ == "__main__":
    sys.exit(main())
