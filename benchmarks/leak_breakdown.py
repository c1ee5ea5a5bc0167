"""How much of a bundle's Kaggle test score is memory: accuracy by where each test image's
training duplicate ("twin") sat when the bundle was trained.

    python benchmarks/leak_breakdown.py --data ../shared/datasets/brain-tumor-mri \
        src/braintumor/weights [runs/OTHER/bundle ...]

992 of the 1311 test images have an exact or near duplicate in Training. The split a bundle
was trained on is rebuilt from its card (seed, validation fraction, image size: the same
duplicate-aware split `braintumor train` made), and every test image is put in one group:
its twin was trained on, its twins all sat in the held-out validation part, or it has no
twin (leak-free). The gap between the first group and the other two is the part of the test
accuracy that a model gets by recognising images it has seen. Also printed: the fewest
errors the 99 % target allows, and how many the leak-free images may take once the leaked
ones are scored at the trained-on rate. With ``--ensemble B1 B2 ...``, also the accuracy of the
mean of those bundles' probabilities (training them all costs the sum of their training times).
With two or more bundles, also how many of them miss each leak-free image: images that most
runs miss are hard for the recipe, not unlucky draws of one run, and a majority vote of such
runs still gets them wrong. Per class, the leak-free images and each bundle's errors on them
(with the confusions), and how many distinct images (duplicate groups) each class holds in
Training, in Testing and in both together: where the leak-free images come from.
Writes benchmarks/results/leak_breakdown.json.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from functools import cache
from pathlib import Path

import numpy as np

from braintumor.data.audit import audit_dataset
from braintumor.data.cache import build_cache
from braintumor.data.datasets import DatasetIndex, discover
from braintumor.data.splits import card_split_settings, split_sides
from braintumor.evaluation.leakage import TWIN_FIT, TWIN_LEAK_FREE, TWIN_VAL, twin_locations
from braintumor.models import load_bundle
from braintumor.models.runtime import predict_logits, softmax

RESULTS = Path(__file__).resolve().parent / "results"
TARGET = 0.99


@cache
def training_sides(data: str, image_size: int, val_fraction: float, seed: int,
                   max_train_images: int | None, train_fraction: float | None = None,
                   custom_classes: str | None = None) -> dict[str, str]:
    """:func:`split_sides`, cached per split: bundles trained on the same split share it, and
    rebuilding one fingerprints every training image for the duplicate-aware grouping."""
    return split_sides(data, image_size, val_fraction, seed, max_train_images, train_fraction,
                       custom_classes)


def breakdown(bundle: str, data: str, group_of: dict[str, int]) -> tuple[dict, dict]:
    """The bundle's row, and its test probabilities by resolved path (for ``--ensemble``)."""
    loaded = load_bundle(bundle)
    settings = card_split_settings(loaded.card)  # hashable: the key of training_sides' cache
    if settings is None:
        raise SystemExit(f"{bundle}: the card records no training config to rebuild its split")
    test = discover(data).split("test")
    if not test:
        raise SystemExit(f"{data}: no Testing split to score")
    cached = build_cache(test, loaded.preprocess)
    y = cached.label_indices(loaded.classes)
    logits = predict_logits(loaded.model, cached.images)
    pred = logits.argmax(1)
    probs = {os.path.realpath(p): (row, int(t))
             for p, row, t in zip(cached.paths, softmax(logits), y, strict=True)}
    sides = training_sides(data, *settings)
    where = np.array(twin_locations(cached.paths, group_of, sides))
    free = where == TWIN_LEAK_FREE
    missed = free & (pred != y)
    names = list(loaded.classes)
    by_class = {c: {"images": int((free & (y == i)).sum()),
                    "errors": int((missed & (y == i)).sum())}
                for i, c in enumerate(names)}
    confusions = Counter(f"{names[t]} -> {names[p]}" for t, p in zip(y[missed], pred[missed],
                                                                      strict=True))
    groups = {}
    for name in (TWIN_FIT, TWIN_VAL, TWIN_LEAK_FREE):
        m = where == name
        groups[name] = {"images": int(m.sum()), "errors": int((pred[m] != y[m]).sum()),
                        "accuracy": float((pred[m] == y[m]).mean()) if m.any() else None}
    n, errors = len(y), int((pred != y).sum())
    allowed = int(np.floor((1 - TARGET) * n))
    leaked = groups[TWIN_FIT]["images"] + groups[TWIN_VAL]["images"]
    fit_rate = groups[TWIN_FIT]["accuracy"] or 0.0
    leak_errors_at_fit_rate = int(round(leaked * (1 - fit_rate)))
    lf = groups[TWIN_LEAK_FREE]["images"]
    return {
        "bundle": bundle, "sha256": loaded.checksum, "images": n, "errors": errors,
        "accuracy": 1 - errors / n,
        "val_fraction": settings[1], "seed": settings[2],
        "by_twin": groups,
        "leak_free_by_class": by_class,
        "leak_free_confusions": dict(confusions.most_common()),
        "errors_allowed_by_99pct": allowed,
        # If every leaked image were scored like those whose twin was trained on (all twins
        # in the fitted part), this many errors would be left for the leak-free images:
        "leak_free_errors_left_if_all_twins_trained_on": allowed - leak_errors_at_fit_rate,
        "leak_free_accuracy_needed": (1 - (allowed - leak_errors_at_fit_rate) / lf) if lf else None,
    }, probs


def distinct_images_by_class(index: DatasetIndex,
                             group_of: dict[str, int]) -> dict[str, dict[str, int]]:
    """Per class, the distinct images (duplicate groups: mirrored and re-saved copies count
    once) in Training, in Testing and in both. A class whose Testing images are mostly new
    slices of the sources behind Training has a union much larger than Training alone."""
    out = {}
    for c in index.classes:
        sides = {split: {group_of[os.path.realpath(s.path)] for s in index.split(split)
                         if s.label == c}
                 for split in ("train", "test")}
        out[c] = {"training": len(sides["train"]), "testing": len(sides["test"]),
                  "testing_not_in_training": len(sides["test"] - sides["train"]),
                  "both_splits": len(sides["train"] | sides["test"])}
    return out


def ensemble(members: list[dict], leak_free: set[str]) -> dict:
    """Accuracy of the mean probability over bundles, on every test image they all scored."""
    paths = sorted(set.intersection(*(set(m) for m in members)))
    mean = np.stack([np.mean([m[p][0] for m in members], axis=0) for p in paths])
    y = np.array([members[0][p][1] for p in paths])
    ok = mean.argmax(1) == y
    lf = np.array([p in leak_free for p in paths])
    return {"members": len(members), "images": len(paths), "errors": int((~ok).sum()),
            "accuracy": float(ok.mean()), "leak_free_images": int(lf.sum()),
            "leak_free_errors": int((~ok[lf]).sum()),
            "leak_free_accuracy": float(ok[lf].mean()) if lf.any() else None}


def error_agreement(members: list[dict], leak_free: set[str]) -> dict:
    """How many bundles miss each leak-free image: the spread of a recipe's errors over runs.

    ``missed_by_at_least_half`` bounds what a majority vote of such runs could reach: an
    image most of them miss stays missed by their majority. (A probability average may still
    rescue one where the few right runs are confident; ``--ensemble`` measures that.)"""
    paths = sorted(leak_free.intersection(*(set(m) for m in members)))
    missed = {p: sum(int(np.argmax(m[p][0]) != m[p][1]) for m in members) for p in paths}
    wrong = {p: k for p, k in missed.items() if k}
    half = len(members) / 2
    return {
        "bundles": len(members), "leak_free_images": len(paths),
        "missed_by_any": len(wrong),
        "images_by_number_of_bundles_missing_them": {
            str(k): sum(1 for v in wrong.values() if v == k) for k in range(1, len(members) + 1)},
        "missed_by_at_least_half": sorted(os.path.basename(p) for p, k in wrong.items()
                                          if k >= half),
        "missed_by_all": sorted(os.path.basename(p) for p, k in wrong.items()
                                if k == len(members)),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bundles", nargs="+")
    ap.add_argument("--data", default=os.environ.get("DATA"))
    ap.add_argument("--ensemble", nargs="+", metavar="BUNDLE",
                    help="also score the mean probability of these bundles (among those given)")
    ap.add_argument("--out", default=str(RESULTS / "leak_breakdown.json"))
    args = ap.parse_args()
    if not args.data:
        raise SystemExit("--data DIR (or $DATA) is required")
    unknown = [b for b in args.ensemble or [] if b not in args.bundles]
    if unknown:
        raise SystemExit(f"--ensemble members must also be given as bundles: {unknown}")
    index = discover(args.data)
    report = audit_dataset(index)
    group_of = {os.path.realpath(p): int(g) for p, g in report.groups.items()}
    scored = [breakdown(b, args.data, group_of) for b in args.bundles]
    rows = [row for row, _ in scored]
    probs = {row["bundle"]: p for row, p in scored}
    for r in rows:
        print(f"\n{r['bundle']} (val_fraction {r['val_fraction']}, seed {r['seed']}): "
              f"{r['errors']} errors / {r['images']} = {100 * r['accuracy']:.2f} %")
        for name, g in r["by_twin"].items():
            acc = "n/a" if g["accuracy"] is None else f"{100 * g['accuracy']:.2f} %"
            print(f"  {name:<24} {g['errors']:>3} errors / {g['images']:>4} images = {acc}")
        print("  leak-free by class (errors / images): " + ", ".join(
            f"{c} {g['errors']} / {g['images']}" for c, g in r["leak_free_by_class"].items())
            + "; confusions: " + (", ".join(f"{k} {n}" for k, n in
                                           r["leak_free_confusions"].items()) or "none"))
        print(f"  the 99 % target allows {r['errors_allowed_by_99pct']} errors; with every twin "
              f"trained on, {r['leak_free_errors_left_if_all_twins_trained_on']} would be left "
              f"for the leak-free images (leak-free accuracy "
              f">= {100 * r['leak_free_accuracy_needed']:.1f} %)")
    result = {"data": args.data,
              "distinct_images_by_class": distinct_images_by_class(index, group_of),
              "bundles": rows}
    print("\ndistinct images (duplicate groups) by class: " + "; ".join(
        f"{c}: Training {d['training']}, Testing {d['testing']} "
        f"({d['testing_not_in_training']} not in Training), both {d['both_splits']}"
        for c, d in result["distinct_images_by_class"].items()))
    leak_free = {os.path.realpath(s.path) for s in report.leak_free_test_samples()}
    if len(rows) >= 2:
        result["leak_free_error_agreement"] = a = error_agreement(list(probs.values()), leak_free)
        print(f"\nleak-free images missed by some of the {a['bundles']} bundles: "
              f"{a['missed_by_any']} of {a['leak_free_images']}; by how many bundles: "
              f"{a['images_by_number_of_bundles_missing_them']}; by at least half: "
              f"{len(a['missed_by_at_least_half'])}; by all: {len(a['missed_by_all'])}")
    if args.ensemble:
        result["ensemble"] = e = ensemble([probs[b] for b in args.ensemble], leak_free)
        e["bundles"] = args.ensemble
        print(f"\nensemble of {e['members']} bundles (mean probability): {e['errors']} errors / "
              f"{e['images']} = {100 * e['accuracy']:.2f} %; leak-free {e['leak_free_errors']} / "
              f"{e['leak_free_images']} errors = {100 * e['leak_free_accuracy']:.2f} %")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
