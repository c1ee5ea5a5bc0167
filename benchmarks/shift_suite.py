"""Accuracy and tumour recall of bundles on the Testing split under scanner/source shifts.

    python benchmarks/shift_suite.py --data ../shared/datasets/brain-tumor-mri [BUNDLE ...]
        [--limit N] [--only NAME ...] [--seed 0] [--out benchmarks/results/shift_suite.json]

Each Testing image is re-saved under every named perturbation of
``braintumor.evaluation.shift`` (gamma, contrast, 16-bit PNG, JPEG quality 30, resizing to
96-1024 px, aspect stretch, blur, Rician noise, bias field, T2-like inversion) and read back
through ``Predictor`` (the reader, the intensity rule, preprocessing and the model), as a
user's file would be. With several bundles (old model first, new after) each perturbed file
is scored by all of them. ``--limit N`` scores a class-stratified subset of N images.
Targets (issue 23): accuracy and tumour recall (tumour classes called any tumour class)
>= 95 % under every perturbation but inversion, and no drop of more than 3 points against
clean. No bundle given: the bundled model. Prints a markdown table; writes the JSON and,
beside it, the table as .md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

from braintumor.data.datasets import discover
from braintumor.evaluation.shift import (
    PERTURBATIONS,
    TARGET_ACCURACY,
    TARGET_MAX_DROP,
    TARGET_TUMOUR_RECALL,
    model_label,
    perturbation,
    run_shift_suite,
    stratified_subset,
)
from braintumor.inference.predictor import Predictor
from braintumor.training.hardware import cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "shift_suite.json"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundles", nargs="*", help="model bundles (default: the bundled model)")
    ap.add_argument("--data", required=True, help="dataset root (with Testing/)")
    ap.add_argument("--split", default="test", help="split to score (default: test)")
    ap.add_argument("--limit", type=int, default=None,
                    help="a class-stratified subset of this many images (default: all)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="these perturbations only (clean is always added)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    chosen = list(PERTURBATIONS)
    if args.only:
        wanted = [perturbation(n) for n in args.only]
        chosen = [p for p in PERTURBATIONS if p.name == "clean" or p in wanted]
    index = discover(args.data)
    samples = index.split(args.split) if index.splits else index.samples
    if not samples:
        raise SystemExit(f"{args.data}: no images in split {args.split!r}")
    samples = stratified_subset(samples, args.limit, args.seed)
    paths = args.bundles or [None]
    predictors, labels = [], []
    for path in paths:
        pr = Predictor.load(path)
        labels.append(model_label(pr, str(path or "bundled"), set(labels)))
        predictors.append(pr)
    print(f"{len(samples)} images of {args.data} ({args.split}), {len(chosen)} perturbations, "
          f"models: {', '.join(labels)}", flush=True)
    t0 = time.perf_counter()
    result = run_shift_suite(samples, predictors, labels, chosen, seed=args.seed,
                             batch_size=args.batch_size,
                             progress=lambda line: print(line, flush=True))
    table = result.markdown()
    print()
    print(table)
    report = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/shift_suite.py " + " ".join(sys.argv[1:] if argv is None
                                                                   else argv),
        "data": str(args.data), "split": args.split, "n": len(samples),
        "classes": {c: sum(s.label == c for s in samples) for c in index.classes},
        "subset": None if args.limit is None else f"class-stratified, seed {args.seed}",
        "seed": args.seed,
        "models": [dict(m, path=str(p or "bundled")) for m, p in zip(result.models, paths,
                                                                     strict=True)],
        "targets": {"accuracy_pct": TARGET_ACCURACY, "tumour_recall_pct": TARGET_TUMOUR_RECALL,
                    "max_drop_points": TARGET_MAX_DROP,
                    "exempt": [p.name for p in chosen if not p.target]},
        "machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                    "torch_threads": torch.get_num_threads(), "torch": torch.__version__},
        "seconds_total": round(time.perf_counter() - t0, 1),
        "seconds_by_perturbation": result.seconds,
        "rows": result.rows(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    md = out.with_suffix(".md")
    md.write_text(f"Shift suite: {len(samples)} images ({args.split}), `{report['command']}`"
                  f"\n\n{table}")
    print(f"wrote {out} and {md}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
