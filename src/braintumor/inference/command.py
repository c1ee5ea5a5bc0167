"""``braintumor predict FILE_OR_DIR...``: classify scans and print a table, CSV or JSON.

Exit codes follow what hospital scripts can act on: 0 when every input was predicted, 1 when
any input could not be read (the others are still predicted and printed), 2 when nothing
could run at all (no such model, damaged weights, bad options).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from pathlib import Path

from braintumor import DISCLAIMER
from braintumor.data.inputs import OutputNames, expand_inputs
from braintumor.inference.onnx_export import OPSET, export_onnx, sidecar_path
from braintumor.inference.ood import WARNING_TEXT
from braintumor.inference.predictor import Prediction, Predictor

# Folders with at least this many images get a progress bar (on stderr).
PROGRESS_MIN_FILES = 20


def _save_overlay(pred: Prediction, out_dir: Path, names: OutputNames) -> str:
    from PIL import Image

    assert pred.overlay is not None  # the caller writes explained predictions only
    stem = Path(pred.source).stem or "image"
    path = out_dir / names(stem, f".{pred.label or 'unknown'}.gradcam.png")
    Image.fromarray(pred.overlay).save(path)
    return str(path)


def format_table(preds: list[Prediction], classes: list[str], model: str, checksum: str) -> str:
    """A fixed-width table for people, with the disclaimer; errors get their own rows."""
    width = max([len("file")] + [len(p.source) for p in preds])
    width = min(width, 60)
    short = [c[:10] for c in classes]
    head = f"{'file':<{width}}  {'prediction':<11} {'conf':>5}  " + " ".join(
        f"{c:>10}" for c in short) + f"  {'ood':>6}"
    lines = [f"model {model} (sha256 {checksum[:12]}…)", head, "-" * len(head)]
    for p in preds:
        src = p.source if len(p.source) <= width else "…" + p.source[-(width - 1):]
        if p.error:
            lines.append(f"{src:<{width}}  ERROR  {p.error}")
            continue
        probs = " ".join(f"{p.probabilities[c]:>10.3f}" for c in classes)
        lines.append(f"{src:<{width}}  {p.label:<11} {p.confidence:>5.2f}  {probs}  "
                     f"{_ood_cell(p)}")
    ok = sum(p.ok for p in preds)
    lines.append(f"{ok} predicted, {len(preds) - ok} failed")
    warned = sum(bool(p.warning) for p in preds)
    if warned:
        lines.append(f"WARNING for {warned} input(s) marked '!': {WARNING_TEXT} (ood: the "
                     "out-of-distribution score, above 1 = unlike the validation scans)")
    lines.append(DISCLAIMER)
    return "\n".join(lines)


def _ood_cell(p: Prediction) -> str:
    """The table's ood column: the score, '!' when it warns, '-' without a calibration."""
    if p.ood_score is None:
        return f"{'-':>6}"
    return f"{p.ood_score:>5.2f}" + ("!" if p.warning else " ")


def format_csv(preds: list[Prediction], classes: list[str],
               overlays: dict[int, str] | None = None) -> str:
    overlays = overlays or {}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["source", "label", "confidence", *[f"p_{c}" for c in classes], "model",
                "checksum", "seconds", "overlay", "error", "ood_score", "warning"])
    for i, p in enumerate(preds):
        probs = [f"{p.probabilities[c]:.6f}" if p.ok else "" for c in classes]
        ood = "" if p.ood_score is None else f"{p.ood_score:.4f}"
        w.writerow([p.source, p.label or "", f"{p.confidence:.6f}" if p.ok else "", *probs,
                    p.model, p.checksum, f"{p.seconds:.4f}", overlays.get(i, ""),
                    p.error or "", ood, p.warning or ""])
    return buf.getvalue()


def format_json(preds: list[Prediction], predictor: Predictor,
                overlays: dict[int, str] | None = None) -> str:
    overlays = overlays or {}
    rows = []
    for i, p in enumerate(preds):
        row = p.to_dict()
        row["overlay_path"] = overlays.get(i)
        rows.append(row)
    doc = {
        "model": predictor.name,
        "checksum": predictor.checksum,
        "backend": predictor.backend,
        "classes": predictor.classes,
        "temperature": predictor.temperature,
        "ood": predictor.ood_status,
        "disclaimer": DISCLAIMER,
        "predictions": rows,
    }
    return json.dumps(doc, indent=2)


def predict_command(args: argparse.Namespace) -> int:
    """``braintumor predict``: exit codes as in the module docstring."""
    from braintumor.models import ModelIntegrityError

    if args.batch_size < 1:
        print(f"braintumor predict: --batch-size must be at least 1, got {args.batch_size}",
              file=sys.stderr)
        return 2
    try:
        predictor = Predictor.load(args.model, backend=args.backend)
    except (FileNotFoundError, ModelIntegrityError, ValueError, KeyError) as exc:
        hint = "" if args.model else " (no bundled model: pass --model PATH)"
        print(f"braintumor predict: cannot load model: {exc}{hint}", file=sys.stderr)
        return 2
    files, failures = expand_inputs(args.inputs)
    out_dir = Path(args.explain) if args.explain else None
    if out_dir is not None:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            print(f"braintumor predict: cannot create --explain folder {out_dir}: {exc}",
                  file=sys.stderr)
            return 2
    preds: list[Prediction] = []
    overlays: dict[int, str] = {}  # index in preds -> PNG written
    names = OutputNames()
    try:
        for pred in predictor.iter_predict(files, explain=out_dir is not None,
                                           batch_size=args.batch_size,
                                           progress=len(files) >= PROGRESS_MIN_FILES):
            if out_dir is not None and pred.ok and pred.overlay is not None:
                overlays[len(preds)] = _save_overlay(pred, out_dir, names)
            pred.heatmap = pred.overlay = None  # written; keep memory flat on long runs
            preds.append(pred)
    except (ValueError, ImportError) as exc:  # e.g. --explain with an .onnx file
        print(f"braintumor predict: {exc}", file=sys.stderr)
        return 2
    for source, reason in failures:
        preds.append(Prediction(source=source, label=None, probabilities={},
                                model=predictor.name, checksum=predictor.checksum,
                                error=f"{source}: {reason}"))
    if args.format == "json":
        print(format_json(preds, predictor, overlays))
    elif args.format == "csv":
        sys.stdout.write(format_csv(preds, predictor.classes, overlays))
        print(DISCLAIMER, file=sys.stderr)  # stdout stays parseable; people still see it
    else:
        print(format_table(preds, predictor.classes, predictor.name, predictor.checksum))
    if out_dir is not None:
        print(f"overlays written to {out_dir}", file=sys.stderr)
    return 0 if all(p.ok for p in preds) else 1


def export_command(args: argparse.Namespace) -> int:
    """``braintumor export``: 0 on success, 2 when the model cannot be loaded or written."""
    from braintumor.models import ModelIntegrityError, load_bundle

    try:
        loaded = load_bundle(args.model)
    except (FileNotFoundError, ModelIntegrityError, KeyError) as exc:
        hint = "" if args.model else " (no bundled model: pass --model BUNDLE)"
        print(f"braintumor export: cannot load model: {exc}{hint}", file=sys.stderr)
        return 2
    try:
        out = export_onnx(loaded, args.out)
    except (ValueError, OSError) as exc:
        print(f"braintumor export: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB, opset {OPSET}, dynamic batch) "
          f"and {sidecar_path(out)}")
    print(f"model {loaded.name}, weights sha256 {loaded.checksum[:12]}…, "
          f"classes {', '.join(loaded.classes)}, temperature {loaded.temperature:.3f}")
    return 0
