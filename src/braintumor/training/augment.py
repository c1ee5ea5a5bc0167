"""Augmentation of whole batches on the training device (the published recipe).

Per-image PIL code in DataLoader workers would decode and transform one image at a time in
Python; here random parameters are drawn per sample but applied to the whole batch at once,
on whatever device the batch is on (CPU or GPU).

Why by hand rather than kornia's ``RandomAffine``/``RandomHorizontalFlip``/...: kornia (0.9)
runs every augmentation as its own pass over the batch (each flip a copy, the affine warp,
then brightness and contrast each with its own clamp into a fresh tensor) plus per-op
parameter bookkeeping. This module folds both flips into the affine matrix, so the batch is
resampled once by one ``affine_grid``/``grid_sample`` (rotation, zoom, shift and flips
together; never three resamplings that would blur it), then brightness and contrast run in
place. On the published recipe at 192 px, batches of 64, ``benchmarks/augment_speed.py``
measured it 1.40x faster than the kornia pipeline it replaced (53 against 74 ms per batch on
this 2-core CPU in a slow hour), a few per cent of a training step (which
``benchmarks/train_throughput.py`` times with augmentation included). The semantics are
kornia's: brightness adds ``factor - 1``, contrast multiplies by ``factor``, each clamped to
[0, 1]; the zoom factor is kornia's affine scale (> 1 zooms in); the shift is a fraction of
the image side.

The shift augmentation for scans from other scanners (``training/appearance.py``: bias
field, gamma, histogram shift, inversion, low resolution, blur, sharpening, noise) runs after
brightness and contrast and before erasing; its aspect stretch is part of the one warp, so
masks follow it. All of it is off unless a config switches it on.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from braintumor.training.appearance import AppearanceAugment
from braintumor.training.config import AugmentConfig


def _uniform(n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, dtype=torch.float64).mul_(high - low).add_(low)


class BatchAugment(nn.Module):
    """Random rotation, flips, zoom/shift, brightness and contrast; identity in eval mode."""

    def __init__(self, cfg: AugmentConfig):
        super().__init__()
        self.cfg = cfg
        self.appearance = AppearanceAugment(cfg)  # the shift ops; each off by default

    @property
    def warps(self) -> bool:
        """Whether the recipe moves pixels by more than flips (then one resampling does all)."""
        c = self.cfg
        return (c.rotation_degrees > 0 or c.translate > 0 or tuple(c.zoom) != (1.0, 1.0)
                or c.aspect > 0)

    @property
    def active(self) -> bool:
        c = self.cfg
        does_something = (self.warps or c.hflip > 0 or c.vflip > 0 or c.brightness > 0
                          or c.contrast > 0 or c.erase_prob > 0 or self.appearance.active)
        return self.training and c.enabled and does_something

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, C, H, W) in [0, 1]; returns a new batch, clamped to [0, 1]."""
        return self.with_mask(x, None)[0]

    @torch.no_grad()
    def with_mask(self, x: torch.Tensor, mask: torch.Tensor | None
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment images and, with the same geometric draw, their (N, 1, H, W) masks.

        Geometric changes move a tumour mask with its image; intensity changes leave it be.
        The random draws do not depend on whether masks are given, so a run with masks
        augments its images exactly as a run without them.
        """
        if not self.active:
            return x, mask
        n, c = x.shape[:2]
        cfg = self.cfg
        # Draw every parameter on the CPU's generator whatever the device: a seeded run
        # augments identically on CPU and GPU.
        hflip = torch.rand(n) < cfg.hflip
        vflip = torch.rand(n) < cfg.vflip
        both = x if mask is None else torch.cat([x, mask.to(x.dtype)], dim=1)
        if self.warps:
            theta = self._inverse_affine(n, hflip, vflip, x.shape[-2], x.shape[-1])
            grid = F.affine_grid(theta.to(x.device, x.dtype), list(both.shape),
                                 align_corners=False)
            both = F.grid_sample(both, grid, mode="bilinear", padding_mode="zeros",
                                 align_corners=False)  # zeros: a brain slice's background
        else:  # flips alone move whole pixels: exact, no resampling
            for flags, dim in ((hflip, -1), (vflip, -2)):
                if bool(flags.any()):
                    flags = flags.to(x.device).view(n, 1, 1, 1)
                    both = torch.where(flags, both.flip(dim), both)
        fresh = both is not x  # a tensor of our own, safe to change in place
        if mask is not None:
            both, mask = both[:, :c], both[:, c:]
        x = self._intensity(both, fresh)
        if self.appearance.active:
            x = self.appearance(x)
        return self._erase(x), mask

    def _inverse_affine(self, n: int, hflip: torch.Tensor, vflip: torch.Tensor, h: int,
                        w: int) -> torch.Tensor:
        """(N, 2, 3) maps from output to input coordinates, as ``affine_grid`` wants.

        The forward map flips, then rotates by ``a`` and scales by ``s`` about the centre,
        then shifts by ``t``; a sample is read at ``F R(-a)/s (q - t)``. Rotation is done in
        pixel units (``aspect`` converts), so non-square images rotate without shearing.
        """
        cfg = self.cfg
        angle = _uniform(n, -1.0, 1.0) * math.radians(cfg.rotation_degrees)
        scale = _uniform(n, *cfg.zoom)
        shift = torch.stack([_uniform(n, -2 * cfg.translate, 2 * cfg.translate)
                             for _ in range(2)], dim=1)  # normalised units: side == 2
        cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
        aspect = w / h  # normalised -> pixel-proportional units: x * w/2, y * h/2
        rot = torch.stack([torch.stack([cos, sin * (1 / aspect)], -1),
                           torch.stack([-sin * aspect, cos], -1)], dim=1)
        if cfg.aspect > 0:  # drawn last: recipes without it keep their random stream
            rot = rot * self._aspect_stretch(n).unsqueeze(1)
        flip = torch.stack([torch.where(hflip, -1.0, 1.0), torch.where(vflip, -1.0, 1.0)],
                           dim=1).to(torch.float64)
        linear = flip.unsqueeze(-1) * rot  # F @ R(-a)/s: row i scaled by flip i
        offset = -(linear @ shift.unsqueeze(-1))
        return torch.cat([linear, offset], dim=-1).float()

    def _aspect_stretch(self, n: int) -> torch.Tensor:
        """(N, 2) factors for the inverse map's x and y columns: a width:height stretch r.

        The forward map scales x by sqrt(r) and y by 1 / sqrt(r) after the rotation (so the
        area is kept), r log-uniform in [1 / (1 + aspect), 1 + aspect]; its inverse divides
        the columns of R(-a) / s by those factors.
        """
        bound = math.log1p(self.cfg.aspect)
        root = _uniform(n, -bound, bound).mul_(0.5).exp_()  # sqrt(r)
        return torch.stack([1 / root, root], dim=1)

    def _erase(self, x: torch.Tensor) -> torch.Tensor:
        """Random erasing, in place on a batch of our own: one zeroed rectangle per chosen image.

        Drawn after every other parameter and only when enabled, so recipes without it keep
        their random stream (and a seeded run its weights). The tumour mask is left as it is:
        the lesion is still there, only hidden, as it may be by an artefact.
        """
        cfg = self.cfg
        if cfg.erase_prob <= 0:
            return x
        n, h, w = x.shape[0], x.shape[-2], x.shape[-1]
        chosen = torch.rand(n) < cfg.erase_prob
        area = _uniform(n, *cfg.erase_area) * (h * w)
        aspect = torch.exp(_uniform(n, math.log(0.3), math.log(1 / 0.3)))
        eh = (area * aspect).sqrt().round().clamp(1, h).long()
        ew = (area / aspect).sqrt().round().clamp(1, w).long()
        top = (torch.rand(n, dtype=torch.float64) * (h - eh + 1)).long()
        left = (torch.rand(n, dtype=torch.float64) * (w - ew + 1)).long()
        rows = torch.arange(h).view(1, h)
        cols = torch.arange(w).view(1, w)
        in_rows = (rows >= top.view(n, 1)) & (rows < (top + eh).view(n, 1))
        in_cols = (cols >= left.view(n, 1)) & (cols < (left + ew).view(n, 1))
        box = in_rows.view(n, h, 1) & in_cols.view(n, 1, w) & chosen.view(n, 1, 1)
        return x.masked_fill_(box.unsqueeze(1).to(x.device), 0.0)

    def _intensity(self, x: torch.Tensor, fresh: bool) -> torch.Tensor:
        """Brightness then contrast, per sample, clamped after each (kornia's order)."""
        n, cfg = x.shape[0], self.cfg
        out = x if fresh else x.clone()  # never write into the caller's batch
        if cfg.brightness > 0:
            b = _uniform(n, -cfg.brightness, cfg.brightness)
            out.add_(b.to(x.device, x.dtype).view(n, 1, 1, 1)).clamp_(0.0, 1.0)
        if cfg.contrast > 0:
            k = _uniform(n, 1 - cfg.contrast, 1 + cfg.contrast)
            out.mul_(k.to(x.device, x.dtype).view(n, 1, 1, 1))
        return out.clamp_(0.0, 1.0)
