"""Choosing the tumour threshold on validation masks: Dice per image, the grid search, and the
model-facing entry that scores only images with a tumour mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.training.tumour_threshold import (
    THRESHOLD_GRID,
    choose_threshold,
    dice_per_image,
    validation_threshold,
)


def test_dice_per_image_by_hand():
    prob = torch.tensor([[[0.9, 0.6], [0.2, 0.0]],
                         [[0.1, 0.1], [0.1, 0.1]]])
    masks = torch.tensor([[[True, False], [False, False]],
                          [[False, False], [False, False]]])
    d = dice_per_image(prob, masks, (0.5, 0.8, 0.95))
    # image 0: at 0.5 two pixels predicted, one right: 2*1/(2+1); at 0.8 exact; at 0.95 none
    assert d[0].tolist() == pytest.approx([2 / 3, 1.0, 0.0])
    assert d[1].tolist() == [1.0, 1.0, 1.0]  # nothing to find and nothing found


def test_choose_threshold_takes_the_best_mean_and_the_lowest_on_a_tie():
    dice = torch.tensor([[0.2, 0.8, 0.8, 0.1], [0.4, 0.6, 0.6, 0.3]])
    choice = choose_threshold(dice, (0.2, 0.4, 0.6, 0.8))
    assert choice.threshold == 0.4 and choice.dice == pytest.approx(0.7)
    assert choice.images == 2
    assert choice.dice_by_threshold[0.8] == pytest.approx(0.2)
    with pytest.raises(ValueError, match="no validation image"):
        choose_threshold(torch.zeros(0, 4), (0.2, 0.4, 0.6, 0.8))


class _IntensityIsTumour(nn.Module):
    """A stand-in with a tumour head whose probability is the image's own intensity."""

    has_tumour_head = True

    def forward(self, x):
        return self.forward_with_tumour(x)[0]

    def forward_with_tumour(self, x):
        p = x.clamp(1e-4, 1 - 1e-4)
        return torch.zeros(len(x), 2), torch.log(p / (1 - p))


def test_validation_threshold_scores_only_images_with_a_tumour_mask():
    images = np.full((3, 16, 16), 40, np.uint8)  # background probability 0.157
    masks = np.zeros((3, 16, 16), np.uint8)
    images[0, 2:6, 2:6] = 178  # lesion probability ~0.7
    masks[0, 2:6, 2:6] = 255
    images[1, 8:12, 8:12] = 178
    masks[1, 8:12, 8:12] = 255
    images[2] = 250  # an empty mask (notumor): bright everywhere, but not scored
    choice = validation_threshold(_IntensityIsTumour(), images, masks)
    assert choice.images == 2
    # every threshold from 0.2 up to 0.65 separates lesion (0.698) from background; 0.15 not
    assert choice.threshold == 0.2 and choice.dice == pytest.approx(1.0)
    assert choice.dice_by_threshold[0.7] == pytest.approx(0.0)
    assert set(choice.dice_by_threshold) == set(THRESHOLD_GRID)
    metrics = choice.card_metrics()
    assert metrics == {"tumour_dice": 1.0, "tumour_dice_images": 2, "tumour_dice_at_0.5": 1.0}
