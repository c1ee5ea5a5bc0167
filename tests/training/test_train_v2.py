"""End to end: braintumor-net-v2 trained with the Dice + BCE mask loss writes its validation
tumour Dice and the tumour threshold chosen on the validation masks into the card."""

from __future__ import annotations

import csv

import torch

from braintumor.models import load_bundle
from braintumor.models.tumour import has_tumour_head, tumour_probabilities
from braintumor.training.config import AugmentConfig
from braintumor.training.run import train
from braintumor.training.tumour_threshold import THRESHOLD_GRID
from tests.conftest import write_masks


def test_v2_run_with_masks_writes_tumour_threshold_and_validation_dice(
        tiny_data, tiny_config, tmp_path):
    masks = write_masks(tiny_data, tmp_path / "masks", size=48)
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=3, model="braintumor-net-v2",
                      model_kwargs={"widths": [8, 16, 32, 64], "decoder_width": 16},
                      masks=str(masks), mask_loss="dice-bce", mask_layer="tumour_head",
                      mask_loss_weight=1.0, mask_empty_classes=["notumor"],
                      augment=AugmentConfig(rotation_degrees=10.0, hflip=0.5, vflip=0.0))
    train(cfg)
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert all(0.0 <= float(r["val_tumour_dice"]) <= 1.0 for r in rows)
    assert all(float(r["train_mask_loss"]) > 0 for r in rows)
    bundle = load_bundle(tmp_path / "run" / "bundle")
    card = bundle.card
    assert card["tumour_threshold"] in THRESHOLD_GRID
    val = card["metrics"]["validation"]
    used = card["data"]["tumour_masks"]["validation_images_with_mask"]
    counts = card["data"]["counts"]["val"]
    # every validation tumour image of the synthetic set has a mask; notumor is an empty one
    assert used == counts
    assert val["tumour_dice_images"] == counts["glioma"] + counts["meningioma"] + \
        counts["pituitary"]
    assert 0.0 <= val["tumour_dice"] <= 1.0 and val["tumour_dice"] >= val["tumour_dice_at_0.5"]
    assert card["model"]["target_layer"] == "lesion_features"
    # the bundle is the model with its tumour head (no extra training-only head to drop)
    assert has_tumour_head(bundle.model)
    _, prob = tumour_probabilities(bundle.model.eval(), torch.rand(1, 1, 32, 32))
    assert prob.shape == (1, 1, 32, 32)
