"""``explain-check --write-card`` puts the localisation figures in the bundle's card, and a
model with a tumour head has its own tumour map scored at the card's threshold."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from braintumor.cli import main
from braintumor.data.datasets import discover
from braintumor.data.masks import mask_path, read_mask
from braintumor.data.preprocess import PreprocessConfig, map_to_original, preprocess
from braintumor.data.readers import read_image
from braintumor.explain import Explainer
from braintumor.explain.evidence import card_tumour_threshold, run_evidence
from braintumor.explain.evidence_card import write_evidence
from braintumor.explain.localisation import dice_iou
from braintumor.models import ModelIntegrityError, create_model, load_bundle, save_bundle
from braintumor.models.bundle import CARD_NAME, WEIGHTS_NAME
from tests.conftest import write_masks

SIZE = 64


def _check(bundle, root, masks, out, *extra, limit: int = 6) -> int:
    return main(["explain-check", "--model", str(bundle), "--data", str(root), "--split",
                 "Training", "--masks", str(masks), "--methods", "gradcam", "--limit",
                 str(limit), "--out", str(out), *extra])


def _localisation(bundle, root, masks) -> dict:
    """Localisation only (no sanity/faithfulness: seconds saved), the card's threshold."""
    loaded = load_bundle(bundle)
    return run_evidence(Explainer(loaded), root, "Training", ["gradcam"], None, masks,
                        model_checks=False,
                        tumour_threshold=card_tumour_threshold(loaded.card))["localisation"]


def test_write_card_records_the_localisation_figures(tiny_bundle, synthetic_dataset, tmp_path,
                                                     capsys):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)  # the session's bundle stays as it was
    root = synthetic_dataset(n_per_class=4, size=64)
    masks = write_masks(root, tmp_path / "masks", size=64)
    weights_before = (bundle / WEIGHTS_NAME).read_bytes()
    assert _check(bundle, root, masks, tmp_path / "e.json", "--write-card") == 0
    assert "recorded the evidence" in capsys.readouterr().err

    loaded = load_bundle(bundle)  # the checksum still holds: the card changed, not the weights
    assert (bundle / WEIGHTS_NAME).read_bytes() == weights_before
    ev = loaded.card["evidence"]
    assert ev["command"].startswith("braintumor explain-check --model ")
    assert "--split Training" in ev["command"] and "--methods gradcam" in ev["command"]
    assert len(ev["date"]) == 10 and ev["created"].startswith(ev["date"])
    loc = ev["localisation"]
    assert loc["split"] == "Training" and loc["n"] == 6 and loc["target"] == "predicted"
    assert loc["held_out"] is False  # the tiny bundle records no training run
    assert "pointing_game_15px" in loc["metrics"]
    gradcam = loc["methods"]["gradcam"]
    assert gradcam["layer"] == "features.10"
    assert set(gradcam["per_class"]) == {"glioma", "meningioma", "pituitary"}
    report = json.loads((tmp_path / "e.json").read_text())["localisation"]["methods"][0]
    for key in ("pointing_game", "pointing_game_15px", "random_pointing_game_15px_in_head",
                "energy_ratio", "energy_ratio_median", "random_energy_ratio_in_head",
                "dice_max15", "random_dice_max15", "iou_area", "random_iou_area", "n"):
        assert gradcam["overall"][key] == report["overall"][key], key
        assert gradcam["per_class"]["glioma"][key] == report["per_class"]["glioma"][key], key
    assert gradcam["overall"]["ci95"]["pointing_game_15px"] is not None
    assert "tumour_head" not in loc  # no tumour head, no tumour figures
    assert ev["faithfulness"]["methods"]["gradcam"]["random_block_px"] == 6
    assert set(ev["faithfulness"]["methods"]["gradcam"]) >= {
        "deletion", "deletion_random_pixels", "deletion_random_blocks", "insertion"}
    assert "passed" in ev["sanity"]["methods"]["gradcam"]


def test_write_card_refuses_weights_that_were_not_measured(tiny_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    checksum = load_bundle(bundle).checksum
    with pytest.raises(ModelIntegrityError, match="not that of the measured weights"):
        write_evidence(bundle, {"command": "x"}, "0" * 64)
    card = json.loads((bundle / CARD_NAME).read_text())
    assert "evidence" not in card
    write_evidence(bundle, {"command": "x"}, checksum)
    write_evidence(bundle, {"command": "y"}, checksum)  # replaced, the rest of the card kept
    card_after = load_bundle(bundle).card
    assert card_after["evidence"] == {"command": "y"}
    assert {k: v for k, v in card_after.items() if k != "evidence"} == card


def _tumour_bundle(tmp_path, bias: float, threshold: float | None):
    """A tiny braintumor-net with a tumour head that says p = sigmoid(bias) everywhere."""
    model = create_model("braintumor-net", widths=(8, 8, 8, 8), tumour_pooling=True,
                         image_size=SIZE).eval()
    with torch.no_grad():
        model.tumour_head.weight.zero_()
        model.tumour_head.bias.fill_(bias)
    extra = {"tumour_threshold": threshold} if threshold is not None else None
    return save_bundle(model, tmp_path / f"tumour{bias}-{threshold}", model_name="braintumor-net",
                       classes=["glioma", "meningioma", "notumor", "pituitary"],
                       preprocess=PreprocessConfig(image_size=SIZE),
                       model_kwargs={"widths": [8, 8, 8, 8], "tumour_pooling": True},
                       extra=extra)


def _expected_dice(root, masks) -> float:
    """Dice of 'tumour wherever the model looked' (the square it saw, on the native grid)."""
    index = discover(root)
    dices = []
    for s in index.split("train"):
        path = mask_path(masks, index.root, s.path)
        if not path.is_file():
            continue
        pixels = read_image(s.path).pixels
        crop = preprocess(pixels, PreprocessConfig(image_size=SIZE)).crop
        region = map_to_original(np.ones((SIZE, SIZE), np.float32), crop) > 0
        dices.append(dice_iou(region, read_mask(path, pixels.shape))[0])
    return float(np.mean(dices))


def test_the_tumour_head_is_scored_at_the_cards_threshold(synthetic_dataset, tmp_path, capsys):
    root = synthetic_dataset(n_per_class=3, size=64)
    masks = write_masks(root, tmp_path / "masks", size=64)
    expected = _expected_dice(root, masks)
    assert 0 < expected < 0.5

    # p = 0.5 everywhere: tumour at the card's 0.4, nothing at its 0.6.
    low = _tumour_bundle(tmp_path, 0.0, 0.4)
    assert _check(low, root, masks, tmp_path / "low.json", "--write-card", limit=9) == 0
    head = json.loads((tmp_path / "low.json").read_text())["localisation"]["tumour_head"]
    assert head["method"] == "tumour-head" and head["threshold"] == 0.4
    assert head["n_images"] == 9
    assert head["overall"]["dice_at_threshold"] == pytest.approx(expected, abs=1e-4)
    assert 0 < head["overall"]["random_dice_at_threshold"] < 1
    assert "tumour-head (threshold 0.40)" in capsys.readouterr().out
    card = load_bundle(low).card["evidence"]["localisation"]["tumour_head"]
    assert card["threshold"] == 0.4
    assert card["overall"]["dice_at_threshold"] == head["overall"]["dice_at_threshold"]
    assert set(card["per_class"]) == {"glioma", "meningioma", "pituitary"}

    head = _localisation(_tumour_bundle(tmp_path, 0.0, 0.6), root, masks)["tumour_head"]
    assert head["threshold"] == 0.6 and head["overall"]["dice_at_threshold"] == 0.0

    # No threshold in the card: the contract's default, 0.5; p = 0.88 clears it.
    head = _localisation(_tumour_bundle(tmp_path, 2.0, None), root, masks)["tumour_head"]
    assert head["threshold"] == 0.5
    assert head["overall"]["dice_at_threshold"] == pytest.approx(expected, abs=1e-4)
