"""``braintumor calibrate-ood --bundle DIR --data DATA``: (re)compute a bundle's OOD warnings.

Rebuilds the bundle's own split from its card (the same duplicate-aware, seeded split its run
made; training.data.bundle_data_module), fits class means and the shared covariance of the
penultimate features on the training part, sets the thresholds on the validation part
(inference/ood.py), and writes ``ood.safetensors`` beside the weights with its SHA-256 and
thresholds in the card's ``ood`` section. The weights file is not touched, so its checksum
stays valid. Any bundle whose card records its training config can be calibrated; the next
bundle gets its warnings from one command.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from braintumor.inference.ood import CARD_SECTION, FeatureExtractor, OodCalibration, calibrate


def features_of(extract: FeatureExtractor, images_u8: np.ndarray, batch_size: int = 128
                ) -> np.ndarray:
    out = [extract(np.asarray(images_u8[i:i + batch_size]))[1]
           for i in range(0, len(images_u8), batch_size)]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def saturation_of(paths) -> np.ndarray:
    """Colour saturation of each file as read (the cache keeps the grey pixels only)."""
    from braintumor.data.readers import read_image

    return np.array([read_image(p).meta.saturation for p in paths], dtype=np.float64)


def calibrate_bundle(bundle: str | Path | None, data: str | Path,
                     target_rate: float = 0.005) -> tuple[Path, dict]:
    """Calibrate and store; returns (bundle folder, the card section written)."""
    from braintumor.models.bundle import load_bundle
    from braintumor.training.data import bundle_data_module

    loaded = load_bundle(bundle)
    dm = bundle_data_module(loaded.card, data)
    if dm is None:
        raise ValueError(f"{loaded.path}: the card records no training config, so its "
                         "validation split cannot be rebuilt for calibration")
    if list(dm.classes) != list(loaded.classes):
        raise ValueError(f"{data}: classes {dm.classes} differ from the bundle's "
                         f"{loaded.classes}")
    extract = FeatureExtractor(loaded.model)
    images = dm.cached.images
    fit_feats = features_of(extract, images[dm.train_rows])
    val_images = np.asarray(images[dm.val_rows])
    val_feats = features_of(extract, val_images)
    val_sat = saturation_of([dm.cached.paths[r] for r in dm.val_rows])
    cal: OodCalibration = calibrate(fit_feats, dm.labels[dm.train_rows], val_feats, val_images,
                                    val_sat, len(loaded.classes),
                                    loaded.preprocess.crop_threshold, target_rate)
    cal.info["calibrated_on"] = ("penultimate-feature means and covariance: the training "
                                 "part of the bundle's split; thresholds: its validation "
                                 "part (rebuilt from the card's training config)")
    return loaded.path, store_calibration(loaded.path, cal)


def store_calibration(folder: str | Path, cal: OodCalibration) -> dict:
    """Write ``ood.safetensors`` and the card's ``ood`` section (the rest of the card kept)."""
    from braintumor.models.bundle import CARD_NAME, _atomic_write

    folder = Path(folder)
    card = json.loads((folder / CARD_NAME).read_text())
    section = cal.save(folder)
    card[CARD_SECTION] = section
    text = json.dumps(card, indent=2, sort_keys=False) + "\n"
    _atomic_write(folder / CARD_NAME, lambda tmp: Path(tmp).write_text(text))
    return section


def calibrate_ood_command(args) -> int:
    if not args.data:
        print("braintumor calibrate-ood: --data DATA (or $DATA) is required", file=sys.stderr)
        return 2
    if not 0 < args.target_rate < 0.5:
        print(f"braintumor calibrate-ood: --target-rate must be in (0, 0.5), got "
              f"{args.target_rate}", file=sys.stderr)
        return 2
    try:
        folder, section = calibrate_bundle(args.bundle, args.data, args.target_rate)
    except (FileNotFoundError, ValueError) as exc:
        print(f"braintumor calibrate-ood: {exc}", file=sys.stderr)
        return 2
    n, warned = section["validation_images"], section["validation_warned"]
    print(f"wrote {folder / section['file']} (sha256 {section['sha256'][:12]}…) and the card's "
          f"'{CARD_SECTION}' section: {warned} of {n} validation scans warned "
          f"({100 * warned / max(n, 1):.2f} %, target {100 * args.target_rate:.2f} %)")
    return 0
