"""Are the leak-free test errors on slices of patients that Training does not hold?

    make evaluate   # writes out/eval/predictions.csv for the bundled model
    python benchmarks/nearest_training_slice.py --data ../shared/datasets/brain-tumor-mri \
        --predictions out/eval/predictions.csv

The Kaggle files record no patient, but the figshare source stores a patient's slices one
after another, and the Kaggle file numbers keep that order. This script measures both halves
of the argument on the images as the model sees them (the shared preprocessing, brain-cropped,
then averaged down to 32x32 and standardised per image, so that brightness does not count):

1. Within each Training class, the correlation of consecutively numbered files against
   random pairs: if neighbours by number are far more alike, numbers follow slices of one
   series, and a random validation split puts slices of the same patients on both sides.
2. For each leak-free test image (no duplicate in Training, from the dataset audit), its
   highest correlation with any image of its own class that the bundle trained on (its
   card's split), mirrored or not ("nearest Training slice"); the same for the bundle's
   validation images, which the recipe was chosen on; and, from a predictions CSV
   (``braintumor evaluate``'s ``predictions.csv``), the error rate of the model in bins of
   that similarity. Errors that gather where the nearest Training slice is least alike are
   errors on unseen patients; and a validation set whose images have closer neighbours in
   the trained part than the leak-free test images have rewards recipes that memorise
   patients.

Writes benchmarks/results/nearest_training_slice.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
from pathlib import Path

import numpy as np

from braintumor.data.audit import audit_dataset
from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.data.duplicates import correlation_vectors
from braintumor.data.splits import bundle_split_sides
from braintumor.models import load_bundle

RESULTS = Path(__file__).resolve().parent / "results" / "nearest_training_slice.json"
SIDE = 32  # small enough that neighbouring slices match, large enough to tell heads apart
BINS = (0.0, 0.85, 0.9, 0.95, 1.01)  # last upper edge above 1, so that a correlation of 1 counts
RANDOM_PAIRS = 5000
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "weights"


def thumbnails(images: np.ndarray) -> np.ndarray:
    """(N, S, S) uint8 -> (N, SIDE*SIDE) block means of the brain-cropped images the model
    sees, as the audit's correlation vectors (the audit's own thumbnails are of the whole
    file, so they are not reused)."""
    n, s, _ = images.shape
    k = s // SIDE
    x = images[:, :k * SIDE, :k * SIDE].astype(np.float32)
    return correlation_vectors(x.reshape(n, SIDE, k, SIDE, k).mean((2, 4)))


def nearest(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """For each query image, its highest correlation with a reference image or its mirror
    (the dataset holds left-right mirrored copies, and a mirrored slice is the same anatomy)."""
    xq, xr = thumbnails(queries), thumbnails(references)
    mirrored = thumbnails(references[:, :, ::-1])
    return np.maximum((xq @ xr.T).max(1), (xq @ mirrored.T).max(1))


def file_number(path: str) -> int:
    found = re.findall(r"\d+", Path(path).stem)
    return int(found[-1]) if found else -1


def neighbour_similarity(x: np.ndarray, paths: list[str], rng: np.random.Generator) -> dict:
    """Correlation of consecutively numbered images against random pairs, over one class."""
    order = np.argsort([file_number(p) for p in paths], kind="stable")
    x = x[order]
    adjacent = (x[:-1] * x[1:]).sum(1)
    i, j = rng.integers(0, len(x), RANDOM_PAIRS), rng.integers(0, len(x), RANDOM_PAIRS)
    keep = i != j
    pairs = (x[i[keep]] * x[j[keep]]).sum(1)
    return {"images": len(x),
            "adjacent_median": round(float(np.median(adjacent)), 3),
            "random_median": round(float(np.median(pairs)), 3),
            "adjacent_share_above_0.8": round(float((adjacent > 0.8).mean()), 3),
            "random_share_above_0.8": round(float((pairs > 0.8).mean()), 3)}


def read_predictions(path: str) -> dict[str, tuple[str, str]]:
    """Resolved path -> (label, predicted), from a ``braintumor evaluate`` predictions CSV."""
    with open(path, newline="") as f:
        return {os.path.realpath(r["path"]): (r["label"], r["predicted"])
                for r in csv.DictReader(f)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"))
    ap.add_argument("--predictions", help="predictions.csv of `braintumor evaluate` on Testing")
    ap.add_argument("--bundle", default=str(BUNDLED),
                    help="whose train/validation split to use (default: the bundled model)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data DIR (or $DATA) is required")
    index = discover(args.data)
    report = audit_dataset(index)
    leak_free = {os.path.realpath(s.path) for s in report.leak_free_test_samples()}
    predictions = read_predictions(args.predictions) if args.predictions else {}
    loaded = load_bundle(args.bundle)
    sides = bundle_split_sides(loaded.card, args.data)
    if sides is None:
        raise SystemExit(f"{args.bundle}: the card records no training config to rebuild its split")
    cfg = loaded.preprocess
    rng = np.random.default_rng(args.seed)
    result: dict = {"data": args.data, "bundle": args.bundle, "predictions": args.predictions,
                    "thumbnail_side": SIDE, "training_file_order": {}}
    labels = [f"{lo:.2f}-{min(hi, 1.0):.2f}" for lo, hi in zip(BINS[:-1], BINS[1:], strict=True)]

    def bin_of(sim: float) -> str:
        return next(k for k, lo, hi in zip(labels, BINS[:-1], BINS[1:], strict=True)
                    if lo <= sim < hi)

    tr = build_cache(index.split("train"), cfg)
    te = build_cache(index.split("test"), cfg)
    tr_images, te_images = np.asarray(tr.images), np.asarray(te.images)
    tr_labels = np.array(tr.label_indices(list(index.classes)))
    te_labels = np.array(te.label_indices(list(index.classes)))
    by_class: dict[str, dict[str, dict[str, int]]] = {}
    for i, c in enumerate(index.classes):
        rows_tr, rows_te = np.flatnonzero(tr_labels == i), np.flatnonzero(te_labels == i)
        result["training_file_order"][c] = o = neighbour_similarity(
            thumbnails(tr_images[rows_tr]), [tr.paths[r] for r in rows_tr], rng)
        print(f"{c:11s} Training, consecutive file numbers: median correlation "
              f"{o['adjacent_median']:.3f} (random pairs {o['random_median']:.3f}); above 0.8: "
              f"{100 * o['adjacent_share_above_0.8']:.0f} % against "
              f"{100 * o['random_share_above_0.8']:.1f} %")
        side = np.array([sides.get(os.path.realpath(tr.paths[r])) for r in rows_tr])
        fit, val = rows_tr[side == "fit"], rows_tr[side == "val"]
        rows = by_class[c] = {k: {"validation": 0, "leak_free_test": 0, "errors": 0}
                              for k in labels}
        for sim in nearest(tr_images[val], tr_images[fit]):
            rows[bin_of(sim)]["validation"] += 1
        test_sims = nearest(te_images[rows_te], tr_images[fit])
        for p, sim in zip([te.paths[r] for r in rows_te], test_sims, strict=True):
            rp = os.path.realpath(p)
            if rp in leak_free:
                row = rows[bin_of(sim)]
                row["leak_free_test"] += 1
                if rp in predictions:
                    row["errors"] += int(predictions[rp][0] != predictions[rp][1])
    result["by_class"] = by_class
    result["all_classes"] = {k: {n: sum(by_class[c][k][n] for c in by_class)
                                 for n in ("validation", "leak_free_test", "errors")}
                             for k in labels}
    print("\nby correlation with the nearest image trained on (same class, mirrored or not):")
    for name, rows in (("all classes", result["all_classes"]), *by_class.items()):
        n_val = sum(r["validation"] for r in rows.values()) or 1
        n_test = sum(r["leak_free_test"] for r in rows.values()) or 1
        print(f"  {name}:")
        for k, r in rows.items():
            rate = (f"{r['errors']:3d} errors" + (f" ({100 * r['errors'] / r['leak_free_test']:.1f}"
                                                 f" % wrong)" if r["leak_free_test"] else ""))
            print(f"    {k}: validation {r['validation']:4d} "
                  f"({100 * r['validation'] / n_val:4.1f} %); leak-free test "
                  f"{r['leak_free_test']:4d} ({100 * r['leak_free_test'] / n_test:4.1f} %), "
                  + (rate if predictions else "no predictions given"))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
