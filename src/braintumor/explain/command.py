"""``braintumor explain``: labelled heatmap PNGs for image files and folders; and the handler
of ``braintumor explain-check`` (the checks themselves are in :mod:`.evidence`).

Inputs are read by content (JPEG, PNG, DICOM, ...), explained in batches with a progress bar,
and written as ``OUT/<name>_<method>.png`` (input | heatmap | overlay, captioned with the
prediction, its calibrated probability, the explained class and the research-use line), plus
``.npy`` maps on request and an ``explanations.json`` index. An unreadable input is reported
with its reason and skipped; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from braintumor import DISCLAIMER
from braintumor.data.datasets import SPLIT_NAMES, DatasetError
from braintumor.data.errors import ImageReadError
from braintumor.data.inputs import OutputNames, expand_inputs
from braintumor.explain.evidence import (
    card_tumour_threshold,
    print_report,
    run_evidence,
    trained_on,
)
from braintumor.explain.explainer import Explainer, Explanation
from braintumor.explain.overlay import colormap_lut
from braintumor.explain.registry import canonical_method


def _row(path: Path, png: Path, npy: bool, e: Explanation) -> dict:
    return {
        "input": str(path),
        "png": str(png),
        "npy": str(png.with_suffix(".npy")) if npy else None,
        "predicted": e.label,
        "probability": round(e.confidence, 6),
        "probabilities": {k: round(v, 6) for k, v in e.probabilities.items()},
        "explained": e.target,
        "method": e.method,
        "layer": e.layer,
        "size": list(e.image.shape),
    }


def explain_command(args: argparse.Namespace) -> int:
    """``braintumor explain``: 0 when every input was explained, 1 when any failed, 2 on bad
    options or an unloadable model."""
    from tqdm.auto import tqdm

    from braintumor.models import load_bundle
    from braintumor.models.runtime import inference_copy

    try:
        method = canonical_method(args.method)
        colormap_lut(args.colormap)
        if not 0.0 <= args.alpha <= 1.0:
            raise ValueError(f"--alpha must lie in [0, 1], got {args.alpha}")
        if args.batch_size < 1:
            raise ValueError("--batch-size must be at least 1")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        loaded = load_bundle(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2
    try:
        # The channels-last eval copy the Predictor uses: ~1.5x faster convolutions on CPU.
        fast = dataclasses.replace(loaded, model=inference_copy(loaded.model))
        explainer = Explainer(fast, layer=args.layer, colormap=args.colormap, alpha=args.alpha)
        target = explainer.class_index(args.target_class)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    sources, failed = expand_inputs(args.inputs)
    files = [Path(s) for s in sources]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    names = OutputNames()
    tag = method.replace("+", "p")  # gradcam++ -> gradcampp in file names
    rows: list[dict] = []
    bar = tqdm(total=len(files), desc=f"explain ({method})", unit="img", file=sys.stderr,
               disable=None)
    for start in range(0, len(files), args.batch_size):
        chunk = files[start : start + args.batch_size]
        ready = []
        for path in chunk:
            try:
                ready.append((path, explainer.prepare(path)))
            except ImageReadError as exc:
                failed.append((str(path), exc.reason))
            except (ValueError, OSError) as exc:
                failed.append((str(path), str(exc) or type(exc).__name__))
        try:
            explanations = explainer.explain_prepared([r for _, r in ready], method, target,
                                                      batch_size=args.batch_size)
        except (RuntimeError, ValueError) as exc:  # keep the batch going past a model error
            failed += [(str(p), f"explanation failed: {exc}") for p, _ in ready]
            ready, explanations = [], []
        for (path, _), e in zip(ready, explanations, strict=True):
            png = e.save(out / names(f"{path.stem}_{tag}", ".png"), save_npy=args.save_npy)
            rows.append(_row(path, png, args.save_npy, e))
            bar.write(f"{path}: predicted {e.label} (p = {e.confidence:.3f}), "
                      f"explained {e.target} -> {png}", file=sys.stdout)
        bar.update(len(chunk))
    bar.close()

    index = {"model": {"name": loaded.name, "path": str(loaded.path), "sha256": loaded.checksum},
             "method": method, "layer": explainer.layer_name if rows and rows[0]["layer"] else None,
             "explanations": rows,
             "failures": [{"input": p, "reason": r} for p, r in failed],
             "disclaimer": DISCLAIMER}
    (out / "explanations.json").write_text(json.dumps(index, indent=2) + "\n")
    for source, reason in failed:
        print(f"failed: {source}: {reason}", file=sys.stderr)
    print(f"{len(rows)} explained, {len(failed)} failed; written to {out}", file=sys.stderr)
    print(DISCLAIMER)
    return 1 if failed else 0


def explain_check_command(args: argparse.Namespace) -> int:
    """``braintumor explain-check``: the evidence report (:mod:`.evidence`) on a dataset."""
    from braintumor.models import load_bundle
    from braintumor.models.runtime import inference_copy

    try:
        loaded = load_bundle(args.model)
    except (FileNotFoundError, ValueError) as exc:
        print(f"error: cannot load the model: {exc}", file=sys.stderr)
        return 2
    if not args.data:
        print("error: no dataset: pass --data or set $DATA", file=sys.stderr)
        return 2
    try:
        fast = dataclasses.replace(loaded, model=inference_copy(loaded.model))
        explainer = Explainer(fast, layer=getattr(args, "layer", None))
        methods = [m.strip() for m in args.methods.split(",") if m.strip()]
        exclude = None
        if args.masks and SPLIT_NAMES.get(args.split.lower()) == "train":
            try:
                exclude = trained_on(loaded.card, args.data)
            except ValueError as exc:  # e.g. data too small to rebuild the model's split
                print(f"warning: cannot tell which images the model trained on ({exc}); "
                      "localisation uses all masked images", file=sys.stderr)
        report = run_evidence(explainer, args.data, args.split, methods, args.limit, args.masks,
                              log=lambda msg: print(msg, file=sys.stderr), exclude=exclude,
                              tumour_threshold=card_tumour_threshold(loaded.card))
    except (DatasetError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report["model"] = {"name": loaded.name, "path": str(loaded.path),
                       "sha256": loaded.checksum, "classes": loaded.classes}
    report["command"] = check_command_line(args)
    print_report(report)
    for f in report["failures"]:
        print(f"skipped {f['path']}: {f['reason']}", file=sys.stderr)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    if getattr(args, "write_card", False):
        from braintumor.explain.evidence_card import evidence_section, write_evidence
        from braintumor.models import ModelIntegrityError

        section = evidence_section(report["command"], report.get("localisation"), args.split,
                                   bool(exclude), report.get("model_faithfulness"), args.split)
        try:
            card = write_evidence(loaded.path, section, loaded.checksum)
        except (OSError, ModelIntegrityError) as exc:
            print(f"error: the evidence was not recorded in the card: {exc}", file=sys.stderr)
            return 1
        print(f"recorded the evidence in {card}", file=sys.stderr)
    return 0


def check_command_line(args: argparse.Namespace) -> str:
    """The ``braintumor explain-check`` line that reproduces ``args``' figures."""
    parts = ["braintumor explain-check"]
    for flag, value in (("--model", args.model), ("--data", args.data),
                        ("--split", args.split), ("--masks", args.masks),
                        ("--methods", args.methods), ("--limit", args.limit),
                        ("--layer", getattr(args, "layer", None))):
        if value is not None:
            parts.append(f"{flag} {value}")
    return " ".join(parts)
