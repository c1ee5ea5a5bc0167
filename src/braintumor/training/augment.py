"""Augmentation of whole batches on the training device (the published recipe).

Why kornia rather than per-image PIL code in DataLoader workers: kornia draws independent
random parameters per sample but applies them as one batched ``affine_grid``/``grid_sample``
and a few tensor ops, so augmenting a batch costs a fraction of a forward pass and never
touches Python per image; it runs on whatever device the batch is on (CPU or GPU), and is
tested against torch 2.13 here. Rotation, zoom and shift are fused into one affine warp,
so each image is resampled once (not three times, which would blur it).
"""

from __future__ import annotations

import torch
from torch import nn

from braintumor.training.config import AugmentConfig


class BatchAugment(nn.Module):
    """Random rotation, flips, zoom/shift, brightness and contrast; identity in eval mode."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        import kornia.augmentation as K

        self.cfg = cfg
        ops: list[nn.Module] = []
        if cfg.hflip > 0:
            ops.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.vflip > 0:
            ops.append(K.RandomVerticalFlip(p=cfg.vflip))
        if cfg.rotation_degrees > 0 or cfg.translate > 0 or tuple(cfg.zoom) != (1.0, 1.0):
            ops.append(K.RandomAffine(
                degrees=cfg.rotation_degrees,
                translate=(cfg.translate, cfg.translate) if cfg.translate > 0 else None,
                scale=tuple(cfg.zoom),
                padding_mode="zeros",  # the background of a brain slice is black
                p=1.0,
            ))
        if cfg.brightness > 0:
            # kornia's brightness is additive: factor - 1 is added to [0, 1] pixels.
            ops.append(K.RandomBrightness(brightness=(1 - cfg.brightness, 1 + cfg.brightness),
                                          p=1.0))
        if cfg.contrast > 0:
            ops.append(K.RandomContrast(contrast=(1 - cfg.contrast, 1 + cfg.contrast), p=1.0))
        self.ops = nn.Sequential(*ops)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, C, S, S) in [0, 1]; returns a new batch, clamped to [0, 1]."""
        if not self.training or not self.cfg.enabled or len(self.ops) == 0:
            return x
        return self.ops(x).clamp_(0.0, 1.0)
