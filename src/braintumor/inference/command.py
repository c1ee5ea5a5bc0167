"""``braintumor predict FILE_OR_DIR...``: classify scans and print a table, CSV or JSON.

Exit codes follow what hospital scripts can act on: 0 when every input was predicted, 1 when
any input could not be read (the others are still predicted and printed), 2 when nothing
could run at all (no such model, damaged weights, bad options).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

from braintumor import DISCLAIMER
from braintumor.data.datasets import IMAGE_EXTENSIONS, image_files_in
from braintumor.inference.ood import WARNING_TEXT
from braintumor.inference.predictor import Prediction, Predictor

# Folders with at least this many images get a progress bar (on stderr).
PROGRESS_MIN_FILES = 20


def expand_inputs(inputs: list[str]) -> tuple[list[str], list[str]]:
    """Files to predict, and problems with the arguments themselves.

    Folders are walked recursively for image files (hidden files and folders skipped, sorted
    so that output order is stable). A file named explicitly is always kept, whatever its
    extension: the reader judges by content and reports a clear error if it is no image.
    A missing path is kept too, so it appears in the output as a failed row.
    """
    files: list[str] = []
    problems: list[str] = []
    for arg in inputs:
        p = Path(arg)
        if p.is_dir():
            found = [str(f) for f in image_files_in(p)]
            if not found:
                problems.append(f"{arg}: folder holds no image files "
                                f"({', '.join(sorted(IMAGE_EXTENSIONS))})")
            files.extend(found)
        else:
            files.append(arg)
    return files, problems


def _overlay_name(source: str, label: str, used: set[str]) -> str:
    stem = Path(source).stem or "image"
    name = f"{stem}.{label}.gradcam.png"
    k = 2
    while name in used:  # same file name in two folders
        name = f"{stem}_{k}.{label}.gradcam.png"
        k += 1
    used.add(name)
    return name


def _save_overlay(pred: Prediction, out_dir: Path, used: set[str]) -> str:
    from PIL import Image

    path = out_dir / _overlay_name(pred.source, pred.label or "unknown", used)
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


def predict_command(args) -> int:
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
    files, problems = expand_inputs(args.inputs)
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
    used: set[str] = set()
    try:
        for pred in predictor.iter_predict(files, explain=out_dir is not None,
                                           batch_size=args.batch_size,
                                           progress=len(files) >= PROGRESS_MIN_FILES):
            if out_dir is not None and pred.ok and pred.overlay is not None:
                overlays[len(preds)] = _save_overlay(pred, out_dir, used)
            pred.heatmap = pred.overlay = None  # written; keep memory flat on long runs
            preds.append(pred)
    except (ValueError, ImportError) as exc:  # e.g. --explain with an .onnx file
        print(f"braintumor predict: {exc}", file=sys.stderr)
        return 2
    for problem in problems:
        source = problem.split(": ", 1)[0]
        preds.append(Prediction(source=source, label=None, probabilities={},
                                model=predictor.name, checksum=predictor.checksum, error=problem))
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
