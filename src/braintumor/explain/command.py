"""``braintumor explain``: labelled heatmap PNGs for image files and folders.

Inputs are read by content (JPEG, PNG, DICOM, ...), explained in batches with a progress bar,
and written as ``OUT/<name>_<method>.png`` (input | heatmap | overlay, captioned with the
prediction, its calibrated probability, the explained class and the research-use line), plus
``.npy`` maps on request and an ``explanations.json`` index. An unreadable input is reported
with its reason and skipped; the exit status is 1 if any input failed.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import numpy as np

from braintumor import DISCLAIMER
from braintumor.data.datasets import image_files_in
from braintumor.data.errors import ImageReadError
from braintumor.explain.explainer import Explainer, Explanation
from braintumor.explain.outline_panel import trace_outlines
from braintumor.explain.overlay import colormap_lut
from braintumor.explain.registry import canonical_method


def collect_inputs(inputs: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files named on the command line are taken as they are (the reader judges them);
    folders are searched recursively for image files. Returns (files, failures)."""
    files: list[Path] = []
    failed: list[tuple[str, str]] = []
    for raw in inputs:
        p = Path(raw)
        if p.is_dir():
            found = image_files_in(p)
            if not found:
                failed.append((raw, "folder holds no image files"))
            files += found
        elif p.is_file():
            files.append(p)
        else:
            failed.append((raw, "no such file or folder"))
    unique = list(dict.fromkeys(files))
    return unique, failed


class _Namer:
    """``<stem>_<method>.png``, numbered when two inputs share a stem."""

    def __init__(self, out: Path, method: str):
        self.out, self.method, self.used = out, method.replace("+", "p"), set()

    def __call__(self, path: Path) -> Path:
        base = f"{path.stem}_{self.method}"
        name, k = base, 1
        while name in self.used:
            k += 1
            name = f"{base}_{k}"
        self.used.add(name)
        return self.out / f"{name}.png"


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


def _save(e: Explanation, traced, png: Path, save_npy: bool) -> Path:
    """The panel PNG; with a tumour-head model, the predicted outline is its fourth panel."""
    if traced is None:
        return e.save(png, save_npy=save_npy)
    from braintumor.explain.outline_panel import explain_outline_panel
    from braintumor.explain.overlay import save_png

    path = save_png(explain_outline_panel(e, traced), png)
    if save_npy:
        np.save(path.with_suffix(".npy"), e.heatmap.astype(np.float32))
    return path


def _outline_row(traced) -> dict:
    if traced is None:
        return {}
    from braintumor.inference.outline import OUTLINE_CAVEAT

    return {"tumour_area_px": traced.area_px,
            "tumour_area_percent": round(traced.area_percent, 4),
            "tumour_threshold": traced.threshold, "tumour_outline": traced.polygons,
            "tumour_outline_note": OUTLINE_CAVEAT}


def explain_command(args) -> int:
    from tqdm.auto import tqdm

    from braintumor.inference.batch import inference_copy
    from braintumor.models import load_bundle

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

    files, failed = collect_inputs(args.inputs)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name_for = _Namer(out, method)
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
            outlines = trace_outlines(explainer.model, loaded.card, [r for _, r in ready])
        except (RuntimeError, ValueError) as exc:  # keep the batch going past a model error
            failed += [(str(p), f"explanation failed: {exc}") for p, _ in ready]
            ready, explanations, outlines = [], [], None
        for k, ((path, _), e) in enumerate(zip(ready, explanations, strict=True)):
            traced = outlines[k] if outlines else None
            png = _save(e, traced, name_for(path), args.save_npy)
            rows.append(_row(path, png, args.save_npy, e) | _outline_row(traced))
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
    for path, reason in failed:
        print(f"failed: {path}: {reason}", file=sys.stderr)
    print(f"{len(rows)} explained, {len(failed)} failed; written to {out}", file=sys.stderr)
    print(DISCLAIMER)
    return 1 if failed else 0
