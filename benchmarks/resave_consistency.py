"""Does the same scan get the same answer whatever container it is saved in?

    python benchmarks/resave_consistency.py --data ../shared/datasets/brain-tumor-mri \
        [--n 200] [--seed 0] [--bundle DIR]

Takes N Testing JPEGs (class-stratified, seeded), decodes each, re-saves it losslessly in
every container of ``braintumor.data.resave`` (16-bit PNG/TIFF as v*257, v<<8 and raw; DICOM
with and without a window, 8- and 12-bit, MONOCHROME1) in a temporary folder outside the
repository, predicts the original and every re-save with the bundle through the public
``Predictor`` (files on disk, as a user would pass them) and prints, per container, the share
of scans given the same class as the JPEG (target 100 %) and the largest difference of any
class probability (target <= 0.02). Two deep containers off the 8-bit lattice (12-bit DICOM
without a window, a min-max-stretched 16-bit PNG) are measured too: they go through the rule's
linear branch and are reported beside the targets, not in them. For comparison, ``--legacy``
rows read the 16-bit PNG and the window-less DICOM with the percentile stretch (0.5-99.5 %)
the readers used before this rule (READER_VERSION 1). Writes
benchmarks/results/resave_consistency.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_source  # noqa: E402

from braintumor.data.datasets import discover  # noqa: E402
from braintumor.data.readers import read_image  # noqa: E402
from braintumor.data.resave import DEEP_RESAVES, EXTENSIONS, RESAVES  # noqa: E402
from braintumor.inference.predictor import Predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "resave_consistency.json"


def stratified_sample(data: str, n: int, seed: int) -> list:
    """``n`` Testing samples, as equal a share per class as the split allows, seeded."""
    samples = discover(data).split("test")
    if not samples:
        raise SystemExit(f"{data}: no Testing split")
    classes = sorted({s.label for s in samples})
    rng = np.random.default_rng(seed)
    per_class = -(-n // len(classes))
    chosen = []
    for c in classes:
        pool = [s for s in samples if s.label == c]
        idx = rng.choice(len(pool), min(per_class, len(pool)), replace=False)
        chosen += [pool[i] for i in sorted(idx)]
    return chosen[:n]


def legacy_stretch(deep: np.ndarray) -> np.ndarray:
    """The pre-rule reading of deep data: its 0.5-99.5 percentile range onto 0..255, clipped."""
    a = deep.astype(np.float64)
    lo, hi = np.percentile(a, (0.5, 99.5))
    if hi <= lo:
        lo, hi = a.min(), a.max()
    return (np.clip((a - lo) * (255.0 / max(hi - lo, 1e-12)), 0, 255) + 0.5).astype(np.uint8)


def compare(preds, ref_labels, ref_probs, classes) -> dict:
    keep = [i for i, p in enumerate(preds) if p.ok]
    probs = np.array([[preds[i].probabilities[c] for c in classes] for i in keep])
    same = sum(preds[i].label == ref_labels[i] for i in keep)
    return {
        "scans": len(preds),
        "unreadable": len(preds) - len(keep),
        "same_class_percent": round(100.0 * same / len(preds), 2),
        "max_probability_difference": float(np.abs(probs - ref_probs[keep]).max())
        if keep else None,
    }


def report(name: str, row: dict) -> None:
    print(f"{name:26s} same class {row['same_class_percent']:6.2f} %   "
          f"max |dp| {row['max_probability_difference']:.2e}   unreadable {row['unreadable']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset root (with Testing/)")
    ap.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--legacy", action="store_true",
                    help="also score the pre-rule percentile stretch on the same scans")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    bundle, note = model_source(args.bundle)
    predictor = Predictor.load(bundle)
    samples = stratified_sample(args.data, args.n, args.seed)
    originals = predictor.predict([str(s.path) for s in samples])
    failed = [p.error for p in originals if not p.ok]
    if failed:
        raise SystemExit(f"original scans failed to read: {failed[:3]}")
    ref_probs = np.array([[p.probabilities[c] for c in predictor.classes] for p in originals])
    ref_labels = [p.label for p in originals]
    rows, deep_rows = {}, {}
    images = [read_image(s.path).pixels for s in samples]
    with tempfile.TemporaryDirectory(prefix="resave-") as tmp:
        for table, encoders in ((rows, RESAVES), (deep_rows, DEEP_RESAVES)):
            for name, encode in encoders.items():
                paths = []
                for i, pixels in enumerate(images):
                    path = Path(tmp) / f"{i:04d}{EXTENSIONS[name]}"
                    path.write_bytes(encode(pixels))
                    paths.append(str(path))
                table[name] = compare(predictor.predict(paths), ref_labels, ref_probs,
                                      predictor.classes)
                report(name, table[name])
                for path in paths:
                    Path(path).unlink()
    legacy = {}
    if args.legacy:
        # The same stretch read 16-bit PNG/TIFF and window-less DICOM: one row per lattice.
        for name, factor in (("png16 (legacy stretch)", 257), ("png16-raw (legacy stretch)", 1)):
            arrays = [legacy_stretch(p.astype(np.uint16) * factor) for p in images]
            legacy[name] = compare(predictor.predict(arrays), ref_labels, ref_probs,
                                   predictor.classes)
            report(name, legacy[name])
    worst_same = min(r["same_class_percent"] for r in rows.values())
    worst_dp = max(r["max_probability_difference"] or 0.0 for r in rows.values())
    result = {
        "command": "python benchmarks/resave_consistency.py --data DATA "
                   f"--n {args.n} --seed {args.seed}" + (" --legacy" if args.legacy else ""),
        "model": note, "sha256": predictor.checksum,
        "scans_per_class": {c: sum(s.label == c for s in samples)
                            for c in sorted({s.label for s in samples})},
        "containers": rows,
        "deep_containers_linear_branch": deep_rows,
        "legacy_percentile_stretch": legacy,
        "worst_same_class_percent": worst_same,
        "worst_max_probability_difference": worst_dp,
        "targets": {"same_class_percent": 100.0, "max_probability_difference": 0.02},
        "meets_targets": worst_same == 100.0 and worst_dp <= 0.02,
    }
    print(f"worst: same class {worst_same:.2f} % (target 100), max |dp| {worst_dp:.2e} "
          "(target <= 0.02)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
