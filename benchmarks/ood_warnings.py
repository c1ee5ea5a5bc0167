"""How well do the "not a brain MRI slice" warnings separate scans from everything else?

    python benchmarks/ood_warnings.py --data ../shared/datasets/brain-tumor-mri [--bundle DIR]

Predicts, through the public ``Predictor`` and with the bundle's OOD calibration
(``braintumor calibrate-ood``), the 1311 Testing scans and a set of non-brain inputs:

- made here (seeded): noise of several kinds, near-constant and constant images (a constant
  one is refused by the reader with an error: counted apart), gradients, checkerboards,
  rendered text documents (PIL ImageDraw), synthetic colour "photos";
- shipped inside packages, read offline: every image in scikit-image's ``skimage/data``
  folder and every DICOM in pydicom's ``data/test_files`` folder that reads (duplicates of one
  image in several encodings counted once; those that pydicom fetches from the network are
  not in that folder and so not used).

Prints and writes (benchmarks/results/ood_warnings.json): the warned rate on Testing (the
false-warning rate; target <= 1 %), the warned rate on the non-brain inputs (target >= 95 %),
AUROC of the OOD score (Testing vs non-brain), and the score of every non-brain input.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import model_source  # noqa: E402

from braintumor.data.datasets import discover  # noqa: E402
from braintumor.inference.predictor import Predictor  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "ood_warnings.json"
WORDS = ("patient report findings the of and scan result follow-up clinic normal study "
         "imaging page date signed history contrast letter invoice total amount").split()


def _png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def text_document(rng, size=(600, 800), inverse=False) -> np.ndarray:
    img = Image.new("L", size, 0 if inverse else 255)
    draw = ImageDraw.Draw(img)
    y = 30
    while y < size[1] - 30:
        line = " ".join(rng.choice(WORDS, rng.integers(4, 10)))
        draw.text((30, y), line, fill=255 if inverse else 0)
        y += int(rng.integers(14, 30))
    return np.asarray(img)


def colour_photo(rng, size=224) -> np.ndarray:
    """A "photo": a sky-to-ground gradient with coloured shapes (no anatomy)."""
    yy = np.linspace(0, 1, size)[:, None, None]
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    img = Image.fromarray(np.broadcast_to(top * (1 - yy) + bottom * yy, (size, size, 3))
                          .astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.integers(0, size - 40, 2)
        x1, y1 = x0 + rng.integers(20, 120), y0 + rng.integers(20, 120)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=colour)
    return np.asarray(img)


def synthetic_inputs(seed: int = 0) -> list[tuple[str, str, object]]:
    """(name, kind, input) for the non-brain inputs this benchmark makes itself."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    out: list[tuple[str, str, object]] = []
    for size in (224, 512):
        out.append((f"uniform-noise-{size}", "noise", rng.integers(0, 256, (size, size),
                                                                  dtype=np.uint8)))
        g = np.clip(rng.normal(128, 40, (size, size)), 0, 255).astype(np.uint8)
        out.append((f"gaussian-noise-{size}", "noise", g))
        sp = (rng.random((size, size)) < 0.5).astype(np.uint8) * 255
        out.append((f"salt-pepper-noise-{size}", "noise", sp))
        smooth = ndimage.gaussian_filter(rng.normal(0, 1, (size, size)), 6)
        smooth = (255 * (smooth - smooth.min()) / np.ptp(smooth)).astype(np.uint8)
        out.append((f"smooth-noise-{size}", "noise", smooth))
        out.append((f"colour-noise-{size}", "noise",
                    rng.integers(0, 256, (size, size, 3), dtype=np.uint8)))
        out.append((f"dark-noise-{size}", "noise",
                    rng.integers(0, 40, (size, size), dtype=np.uint8)))
    out.append(("uint16-noise", "noise", rng.integers(0, 65536, (256, 256), dtype=np.uint16)))
    for level in (0, 128, 255):
        out.append((f"constant-{level}", "blank", np.full((224, 224), level, np.uint8)))
    for level in (30, 128, 220):
        near = np.clip(level + rng.normal(0, 2, (224, 224)), 0, 255).astype(np.uint8)
        out.append((f"near-constant-{level}", "blank", near))
    ramp = np.linspace(0, 255, 224)
    out.append(("gradient-horizontal", "gradient", np.tile(ramp, (224, 1)).astype(np.uint8)))
    out.append(("gradient-vertical", "gradient", np.tile(ramp, (224, 1)).T.astype(np.uint8)))
    out.append(("gradient-diagonal", "gradient",
                ((ramp[:, None] + ramp[None, :]) / 2).astype(np.uint8)))
    yy, xx = np.mgrid[-1:1:224j, -1:1:224j]
    radial = np.clip(255 * (1 - np.hypot(yy, xx)), 0, 255).astype(np.uint8)
    out.append(("gradient-radial", "gradient", radial))
    out.append(("gradient-radial-inverted", "gradient", 255 - radial))
    for cell in (4, 16, 32, 56):
        board = ((np.indices((224, 224)) // cell).sum(0) % 2 * 255).astype(np.uint8)
        out.append((f"checkerboard-{cell}px", "checkerboard", board))
    for i in range(4):
        out.append((f"text-document-{i}", "document", _png(text_document(rng))))
    out.append(("text-document-inverse", "document", _png(text_document(rng, inverse=True))))
    for i in range(6):
        out.append((f"colour-photo-{i}", "photo", colour_photo(rng)))
    return out


def skimage_inputs() -> list[tuple[str, str, object]]:
    """Every image file scikit-image ships in ``skimage/data`` (read as files, offline)."""
    try:
        import skimage.data
    except ImportError:
        return []
    folder = Path(skimage.data.__file__).parent
    files = sorted(p for p in folder.iterdir()
                   if p.suffix.lower() in (".png", ".jpg", ".gif", ".tif"))
    return [(f"skimage:{p.name}", "skimage", str(p)) for p in files]


def pydicom_inputs() -> list[tuple[str, str, object]]:
    """pydicom's bundled test DICOMs that hold a readable image, one per distinct image."""
    import pydicom.data

    from braintumor.data.readers import read_image

    folder = Path(pydicom.data.__file__).parent / "test_files"
    out, seen = [], set()
    for p in sorted(folder.glob("*.dcm")):
        try:
            pixels = read_image(p).pixels
        except Exception:  # structured reports, RT plans, codecs not installed...
            continue
        thumb = np.asarray(Image.fromarray(pixels).resize((16, 16))) // 32
        key = hashlib.sha256(thumb.tobytes() + str(pixels.shape).encode()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        out.append((f"pydicom:{p.name}", "pydicom", str(p)))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="dataset root (with Testing/)")
    ap.add_argument("--bundle", default=None, help="model bundle (default: the bundled model)")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    from sklearn.metrics import roc_auc_score

    bundle, note = model_source(args.bundle)
    predictor = Predictor.load(bundle)
    if predictor.ood is None:
        raise SystemExit(f"{bundle}: no OOD calibration (run braintumor calibrate-ood)")
    test = [str(s.path) for s in discover(args.data).split("test")]
    test_preds = [p for p in predictor.predict(test) if p.ok]
    test_scores = np.array([p.ood_score for p in test_preds])
    test_warned = [p for p in test_preds if p.warning]
    print(f"Testing: {len(test_warned)} of {len(test_preds)} warned "
          f"({100 * len(test_warned) / len(test_preds):.2f} %)")

    inputs = synthetic_inputs() + skimage_inputs() + pydicom_inputs()
    preds = predictor.predict([x for _, _, x in inputs], names=[n for n, _, _ in inputs])
    rows = []
    for (name, kind, _), p in zip(inputs, preds, strict=True):
        rows.append({"name": name, "kind": kind, "refused": not p.ok,
                     "error": p.error, "label": p.label,
                     "confidence": None if p.confidence is None else round(p.confidence, 4),
                     "ood_score": None if p.ood_score is None else round(p.ood_score, 3),
                     "warned": bool(p.warning), "reasons": list(p.ood_reasons)})
        status = ("REFUSED " + (p.error or "").split(": ", 1)[-1][:60] if not p.ok else
                  f"{'WARNED' if p.warning else 'missed'} score {p.ood_score:7.2f} "
                  f"{p.label} {p.confidence:.2f} {','.join(p.ood_reasons)}")
        print(f"{kind:12s} {name:44s} {status}")
    predicted = [r for r in rows if not r["refused"]]
    handled = sum(r["warned"] or r["refused"] for r in rows)
    ood_scores = np.array([r["ood_score"] for r in predicted])
    y = np.r_[np.zeros(len(test_scores)), np.ones(len(ood_scores))]
    auroc = float(roc_auc_score(y, np.r_[test_scores, ood_scores]))
    by_kind = {}
    for kind in dict.fromkeys(r["kind"] for r in rows):
        group = [r for r in rows if r["kind"] == kind]
        by_kind[kind] = {"inputs": len(group), "warned": sum(r["warned"] for r in group),
                         "refused_by_reader": sum(r["refused"] for r in group)}
    result = {
        "command": "python benchmarks/ood_warnings.py --data DATA",
        "model": note, "sha256": predictor.checksum, "ood": predictor.ood_status,
        "testing": {"scans": len(test_preds), "warned": len(test_warned),
                    "false_warning_percent": round(100 * len(test_warned) / len(test_preds), 3),
                    "warned_sources": [Path(p.source).name for p in test_warned],
                    "score_percentiles_50_99_max": [round(float(v), 3) for v in
                                                    np.percentile(test_scores, [50, 99, 100])]},
        "non_brain": {"inputs": len(rows), "predicted": len(predicted),
                      "refused_by_reader": len(rows) - len(predicted),
                      "warned": sum(r["warned"] for r in predicted),
                      "warned_percent_of_predicted": round(
                          100 * sum(r["warned"] for r in predicted) / max(len(predicted), 1), 2),
                      "warned_or_refused_percent": round(100 * handled / len(rows), 2),
                      "by_kind": by_kind},
        "auroc_testing_vs_non_brain": round(auroc, 4),
        "targets": {"false_warning_percent": 1.0, "non_brain_warned_percent": 95.0},
        "inputs": rows,
    }
    t, nb = result["testing"], result["non_brain"]
    print(f"Testing false warnings {t['false_warning_percent']:.2f} % (target <= 1); non-brain "
          f"warned {nb['warned_percent_of_predicted']:.1f} % of {nb['predicted']} predicted "
          f"(+{nb['refused_by_reader']} refused by the reader; target >= 95); AUROC {auroc:.4f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
