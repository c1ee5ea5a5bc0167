"""The evidence in a model card: ``explain-check --write-card`` records the localisation,
faithfulness and sanity figures in the measured bundle's ``card.json`` under ``evidence``.

Why in the card: the figures belong to one set of weights, and the card is what travels with
them (into the ONNX sidecar, the API's model info, a reader's hands). Each figure keeps its
name, its n, the split and images it came from, the method and layer, the date and the
command that reproduces it, so a reader can tell what was measured without the JSON report.

The card's checksum covers the weights file only (``models/bundle.py``), so adding a section
leaves the bundle loadable; the writer still checks, before and after, that the weights are
the ones the figures were measured on and that the card's checksum matches them.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from braintumor.explain.localisation import CAM_THRESHOLD_FRACTION, POINTING_TOLERANCE_PX
from braintumor.models.bundle import (
    CARD_NAME,
    WEIGHTS_NAME,
    ModelIntegrityError,
    _atomic_write,  # the bundle's own atomic writer: a half-written card is never left behind
    sha256_file,
)

LOCALISATION_FIGURES = (
    "n", "mask_fraction",
    "pointing_game", "random_pointing_game_in_head",
    "pointing_game_15px", "random_pointing_game_15px_in_head",
    "energy_pointing_game", "energy_ratio", "energy_ratio_median", "random_energy_ratio_in_head",
    "dice_max15", "iou_max15", "random_dice_max15", "random_iou_max15",
    "dice_area", "iou_area", "random_dice_area", "random_iou_area",
    "dice_at_threshold", "iou_at_threshold", "random_dice_at_threshold",
    "random_iou_at_threshold",
    "ci95",
)
"""The per-class and overall figures copied into the card (the JSON report has them all)."""

METRICS = {
    "pointing_game": "share of slices whose map maximum lies inside the mask (ties: the share "
                     "of tied maxima inside)",
    "pointing_game_15px": f"the same, a hit within {POINTING_TOLERANCE_PX} px of the mask on "
                          "the native image grid (Zhang et al. 2016)",
    "random_*_in_head": "chance: a uniformly random point (or map) inside the head",
    "energy_ratio": "share of the map's mass inside the mask / the mask's area share "
                    "(1 = a uniform map); mean and median over slices",
    "dice_max15, iou_max15": f"map binarised at {CAM_THRESHOLD_FRACTION:.0%} of its maximum "
                             "(Selvaraju et al. 2017)",
    "dice_area, iou_area": "the map's top pixels, as many as the mask has (needs the mask's "
                           "area: a ceiling)",
    "dice_at_threshold": "tumour head only: probability >= the card's tumour_threshold",
    "random_dice_*, random_iou_*": "chance: a disc of the same area centred at random in the "
                                   "head (exact expectation)",
    "ci95": "percentile bootstrap 95 % interval of the mean (1000 resamples, seed 0)",
}


def _figures(summary: dict) -> dict:
    def pick(s: dict) -> dict:
        return {k: s[k] for k in LOCALISATION_FIGURES if k in s}

    out = {"overall": pick(summary["overall"]),
           "per_class": {c: pick(s) for c, s in summary["per_class"].items()}}
    for key in ("layer", "threshold"):
        if summary.get(key) is not None:
            out[key] = summary[key]
    return out


def evidence_section(command: str, localisation: dict | None = None,
                     localisation_split: str = "Training", held_out: bool = False,
                     model_checks: dict | None = None, model_checks_split: str = "Testing",
                     created: str | None = None) -> dict:
    """The card's ``evidence`` section from a report's ``localisation`` and
    ``model_faithfulness`` parts (either may be missing). ``held_out``: the localisation
    images left out those the model trained on."""
    created = created or datetime.now(timezone.utc).isoformat(timespec="seconds")
    section: dict = {"date": created[:10], "created": created, "command": command}
    if localisation:
        section["localisation"] = {
            "split": localisation_split,
            "images": ("images with a tumour mask that the model did not train on (the "
                       "validation part of the split its card records)" if held_out else
                       "images with a tumour mask (which images the model trained on is "
                       "unknown: not held out)"),
            "held_out": held_out,
            "n": localisation["n_images"],
            "images_with_masks": localisation.get("images_with_masks_in_split"),
            "target": localisation["target"],
            "geometry": "native image grid (map_to_original)",
            "accuracy_on_these": localisation.get("accuracy_on_these"),
            "metrics": METRICS,
            "methods": {m["method"]: _figures(m) for m in localisation["methods"]},
        }
        if localisation.get("tumour_head"):
            section["localisation"]["tumour_head"] = _figures(localisation["tumour_head"])
    if model_checks:
        section["faithfulness"] = {
            "split": model_checks_split, "n": model_checks["n_images"],
            "auc": "calibrated probability of the explained class; deletion low is good, "
                   "insertion high is good; random pixel and random block orders beside",
            "methods": {f["method"]: {
                "deletion": round(f["deletion"]["auc"], 4),
                "deletion_random_pixels": round(f["random_deletion"]["auc"], 4),
                "deletion_random_blocks": round(f["random_block_deletion"]["auc"], 4),
                "insertion": round(f["insertion"]["auc"], 4),
                "insertion_random_pixels": round(f["random_insertion"]["auc"], 4),
                "insertion_random_blocks": round(f["random_block_insertion"]["auc"], 4),
                "random_block_px": f["settings"]["random_block"],
            } for f in model_checks["faithfulness"]},
        }
        section["sanity"] = {
            "split": model_checks_split, "n": model_checks["n_images"],
            "test": "model-parameter randomisation (Adebayo et al. 2018): mean Spearman rho "
                    "of trained vs random-weight maps; passed below 0.5",
            "methods": {s["method"]: {"mean_spearman": round(s["mean_spearman"], 4),
                                      "passed": s["passed"]} for s in model_checks["sanity"]},
        }
    return section


def write_evidence(bundle: str | Path, section: dict, measured_sha256: str) -> Path:
    """Put ``section`` into ``bundle``'s card as ``evidence`` (replacing an earlier one),
    atomically. Refuses if the weights are not the ones measured (``measured_sha256``) or do
    not match the card, so figures never land in the card of other weights."""
    folder = Path(bundle)
    folder = folder if folder.is_dir() else folder.parent
    card_file = folder / CARD_NAME
    if not card_file.is_file():
        raise FileNotFoundError(f"{folder}: no {CARD_NAME} to record the evidence in")
    card = json.loads(card_file.read_text())
    weights = folder / card.get("weights", {}).get("file", WEIGHTS_NAME)
    digest = sha256_file(weights)
    if digest != measured_sha256 or digest != card.get("weights", {}).get("sha256"):
        raise ModelIntegrityError(
            f"{weights}: SHA-256 {digest[:12]}… is not that of the measured weights "
            f"({measured_sha256[:12]}…) or of the card; the evidence was not written")
    card["evidence"] = section
    text = json.dumps(card, indent=2) + "\n"
    _atomic_write(card_file, lambda tmp: Path(tmp).write_text(text))
    return card_file
