"""Does averaging a bundle's prediction over the image and its mirror help? (test-time flips)

    python benchmarks/flip_tta.py --data ../shared/datasets/brain-tumor-mri [--bundle DIR]

Horizontal-flip test-time augmentation is the first thing a reader of a CNN benchmark asks
about: it doubles inference time, and the bundled recipe trains with horizontal flips, so
the mirror is an image the model has learnt to read. This scores the bundle's validation
part (rebuilt from its card: the split its run made) and the 1311 Testing images three ways:
plain, mean of the two logit vectors, mean of the two softmax outputs. A decision to ship
flip averaging would be taken on the validation rows; the Testing rows are shown as every
benchmark here shows them. Writes benchmarks/results/flip_tta.json.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from braintumor.models import load_bundle
from braintumor.models.runtime import predict_logits, softmax
from braintumor.training.data import bundle_data_module

RESULTS = Path(__file__).resolve().parent / "results" / "flip_tta.json"
BUNDLED = Path(__file__).resolve().parents[1] / "src" / "braintumor" / "weights"


def score(model, images: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    """Errors of the plain prediction and of the two ways to average over the mirror."""
    plain = predict_logits(model, images)
    mirrored = predict_logits(model, np.ascontiguousarray(images[..., ::-1]))
    preds = {"plain": plain.argmax(1),
             "mean_logits": (plain + mirrored).argmax(1),
             "mean_probabilities": (softmax(plain) + softmax(mirrored)).argmax(1)}
    return {"images": len(labels)} | {k: int((p != labels).sum()) for k, p in preds.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset root (Training/ and Testing/)")
    ap.add_argument("--bundle", default=str(BUNDLED))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    bundle = load_bundle(args.bundle)
    dm = bundle_data_module(bundle.card, args.data)
    if dm is None:
        raise SystemExit(f"{args.bundle}: the card records no training config to rebuild its split")
    result = {"bundle": args.bundle, "sha256": bundle.checksum}
    for name, rows in (("validation", dm.val_rows), ("test", dm.test_rows)):
        result[name] = score(bundle.model, dm.cached.images[rows], dm.labels[rows])
        print(name, result[name])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
