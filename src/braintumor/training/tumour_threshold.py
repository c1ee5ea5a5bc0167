"""The tumour probability threshold a bundle ships with, chosen on the validation masks.

A model with a tumour head (models/tumour.py) gives a probability per pixel; the outline
people see is where it exceeds a threshold. 0.5 is arbitrary for a map trained with Dice
(which rewards confident, slightly wide maps) on tumours covering ~1 % of a slice, so the
threshold is chosen where the outline is best on held-out data: the one of a fixed grid that
maximises the mean Dice per slice over the validation images with a non-empty mask (never
the test images). Images are scored on the model grid (the cached, preprocessed slices and
their masks cut and resized the same way), the map upsampled bilinearly as at inference.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from braintumor.data.preprocess import to_model_input
from braintumor.models.tumour import tumour_probabilities

THRESHOLD_GRID = tuple(round(0.05 * k, 2) for k in range(1, 20))  # 0.05 ... 0.95


def dice_per_image(probabilities: torch.Tensor, masks: torch.Tensor,
                   thresholds: tuple[float, ...] = THRESHOLD_GRID) -> torch.Tensor:
    """(N, T) hard Dice of ``probabilities > t`` against ``masks`` (bool), one per threshold.

    Two empty sets count as Dice 1 (nothing to find, nothing found).
    """
    p = probabilities.flatten(1).float()
    m = masks.flatten(1).bool()
    out = torch.empty(len(p), len(thresholds))
    area = m.sum(1)
    for j, t in enumerate(thresholds):
        pred = p > t
        inter = (pred & m).sum(1)
        total = pred.sum(1) + area
        out[:, j] = torch.where(total > 0, 2 * inter / total.clamp_min(1), 1.0)
    return out


@dataclass(frozen=True)
class ThresholdChoice:
    threshold: float
    dice: float  # mean Dice per image at that threshold
    images: int
    dice_by_threshold: dict[float, float]

    def card_metrics(self) -> dict:
        return {"tumour_dice": round(self.dice, 4), "tumour_dice_images": self.images,
                "tumour_dice_at_0.5": round(self.dice_by_threshold.get(0.5, float("nan")), 4)}


def choose_threshold(dice: torch.Tensor, thresholds: tuple[float, ...] = THRESHOLD_GRID
                     ) -> ThresholdChoice:
    """The threshold of highest mean Dice (the lowest such one on a tie) from ``(N, T)``."""
    if len(dice) == 0:
        raise ValueError("no validation image with a tumour mask to choose a threshold on")
    mean = dice.mean(0)
    best = int(torch.argmax(mean))  # first maximum: the lowest threshold among equals
    return ThresholdChoice(float(thresholds[best]), float(mean[best]), int(len(dice)),
                           {float(t): float(d) for t, d in zip(thresholds, mean, strict=True)})


@torch.no_grad()
def validation_threshold(model: nn.Module, images_u8: np.ndarray, masks_u8: np.ndarray,
                         thresholds: tuple[float, ...] = THRESHOLD_GRID,
                         batch_size: int = 64) -> ThresholdChoice:
    """Choose the threshold on preprocessed images (N, S, S) uint8 and their masks (255 =
    tumour, on the same grid); only images with a non-empty mask are scored."""
    keep = np.flatnonzero((np.asarray(masks_u8) > 127).reshape(len(masks_u8), -1).any(1))
    was_training = model.training
    model.eval()
    parts = []
    try:
        for i in range(0, len(keep), batch_size):
            rows = keep[i:i + batch_size]
            x = to_model_input(np.asarray(images_u8)[rows])
            _, prob = tumour_probabilities(model, x)
            parts.append(dice_per_image(prob[:, 0], torch.from_numpy(
                np.asarray(masks_u8)[rows] > 127), thresholds))
    finally:
        model.train(was_training)
    dice = torch.cat(parts) if parts else torch.zeros(0, len(thresholds))
    return choose_threshold(dice, thresholds)
