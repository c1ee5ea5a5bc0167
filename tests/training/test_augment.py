"""Batch augmentation: identity at evaluation, random per sample in training."""

from __future__ import annotations

import torch

from braintumor.training.augment import BatchAugment
from braintumor.training.config import AugmentConfig


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 8:20, 4:14] = torch.rand(8, 1, 12, 10, generator=g)  # asymmetric content
    return x


def test_eval_mode_returns_the_batch_unchanged():
    aug = BatchAugment(AugmentConfig()).eval()
    x = _batch()
    assert torch.equal(aug(x), x)


def test_disabled_augmentation_is_identity_in_training():
    aug = BatchAugment(AugmentConfig(enabled=False)).train()
    x = _batch()
    assert torch.equal(aug(x), x)


def test_training_mode_changes_each_image_and_keeps_range():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig()).train()
    x = _batch()
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    changed = (y - x).abs().flatten(1).amax(1) > 1e-3
    assert bool(changed.all())
    # parameters are drawn per sample, not once per batch
    assert not torch.allclose(y[0] - x[0], y[1] - x[1])


def test_flip_only_recipe_flips():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig(rotation_degrees=0, hflip=1.0, vflip=0.0, zoom=(1.0, 1.0),
                                     translate=0.0, brightness=0.0, contrast=0.0)).train()
    x = _batch()
    assert torch.allclose(aug(x), x.flip(-1))
