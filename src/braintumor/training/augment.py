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
        # Geometric ops move pixels and must move a tumour mask with them; intensity ops
        # must not touch the mask. Kept as two sequences, in this order (the order of the
        # random draws, so a run with or without masks augments its images identically).
        geometric: list[nn.Module] = []
        if cfg.hflip > 0:
            geometric.append(K.RandomHorizontalFlip(p=cfg.hflip))
        if cfg.vflip > 0:
            geometric.append(K.RandomVerticalFlip(p=cfg.vflip))
        if cfg.rotation_degrees > 0 or cfg.translate > 0 or tuple(cfg.zoom) != (1.0, 1.0):
            geometric.append(K.RandomAffine(
                degrees=cfg.rotation_degrees,
                translate=(cfg.translate, cfg.translate) if cfg.translate > 0 else None,
                scale=tuple(cfg.zoom),
                padding_mode="zeros",  # the background of a brain slice is black
                p=1.0,
            ))
        intensity: list[nn.Module] = []
        if cfg.brightness > 0:
            # kornia's brightness is additive: factor - 1 is added to [0, 1] pixels.
            intensity.append(K.RandomBrightness(brightness=(1 - cfg.brightness,
                                                            1 + cfg.brightness), p=1.0))
        if cfg.contrast > 0:
            intensity.append(K.RandomContrast(contrast=(1 - cfg.contrast, 1 + cfg.contrast),
                                              p=1.0))
        self.geometric = nn.Sequential(*geometric)
        self.intensity = nn.Sequential(*intensity)

    @property
    def active(self) -> bool:
        return self.training and self.cfg.enabled and len(self.geometric) + len(self.intensity) > 0

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, C, S, S) in [0, 1]; returns a new batch, clamped to [0, 1]."""
        return self.with_mask(x, None)[0]

    @torch.no_grad()
    def with_mask(self, x: torch.Tensor, mask: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment images and, with the same geometric draw, their (N, 1, S, S) masks."""
        if not self.active:
            return x, mask
        c = x.shape[1]
        if mask is not None and len(self.geometric):
            both = self.geometric(torch.cat([x, mask.to(x.dtype)], dim=1))
            x, mask = both[:, :c], both[:, c:]
        else:
            x = self.geometric(x)
        return self.intensity(x).clamp_(0.0, 1.0), mask
