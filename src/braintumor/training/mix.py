"""MixUp and CutMix on whole training batches.

Why by hand rather than kornia's ``RandomMixUpV2``/``RandomCutMixV2``: kornia 0.9 draws the
MixUp weight uniformly instead of from Beta(alpha, alpha) as in the papers, and its CutMix
still uses what it calls an "old (inconsistent) lambda computation" (it warns) with a label
layout that differs from MixUp's. Both methods are a few tensor operations, so a small
class with the papers' definitions is clearer than adapting those conventions.

The loss of a mixed batch is ``lam * loss(logits, y) + (1 - lam) * loss(logits, y[perm])``
(one ``lam`` per batch, as in timm and the reference implementations), which keeps class
weights and label smoothing of the plain loss working unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MixedBatch:
    """A batch after mixing: images, both label sets and the weight of the first."""

    x: torch.Tensor
    y_a: torch.Tensor
    y_b: torch.Tensor
    lam: float

    def loss(self, loss_fn: Callable[..., torch.Tensor], logits: torch.Tensor) -> torch.Tensor:
        if self.lam >= 1.0:
            return loss_fn(logits, self.y_a)
        return self.lam * loss_fn(logits, self.y_a) + (1.0 - self.lam) * loss_fn(logits, self.y_b)


class BatchMix:
    """MixUp (Zhang et al., 2018) and/or CutMix (Yun et al., 2019) with probability ``prob``.

    With both alphas > 0, each mixed batch uses one of the two, chosen with equal chance.
    Draws come from torch's global RNG, which training reseeds every step, so a resumed run
    mixes exactly as an uninterrupted one.
    """

    def __init__(self, mixup_alpha: float = 0.0, cutmix_alpha: float = 0.0, prob: float = 1.0):
        if mixup_alpha < 0 or cutmix_alpha < 0:
            raise ValueError("mixup_alpha and cutmix_alpha must be >= 0")
        if not 0.0 <= prob <= 1.0:
            raise ValueError("mix prob must be in [0, 1]")
        self.mixup_alpha, self.cutmix_alpha, self.prob = mixup_alpha, cutmix_alpha, prob

    @property
    def enabled(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> MixedBatch:
        if not self.enabled or len(y) < 2 or float(torch.rand(())) >= self.prob:
            return MixedBatch(x, y, y, 1.0)
        use_cutmix = self.cutmix_alpha > 0 and (
            self.mixup_alpha == 0 or float(torch.rand(())) < 0.5)
        alpha = self.cutmix_alpha if use_cutmix else self.mixup_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(len(y), device=y.device)
        if use_cutmix:
            x, lam = _paste_box(x, perm, lam)
        else:
            x = x * lam + x[perm] * (1.0 - lam)
        return MixedBatch(x, y, y[perm], lam)


def _paste_box(x: torch.Tensor, perm: torch.Tensor, lam: float) -> tuple[torch.Tensor, float]:
    """Paste one random box (area ``1 - lam``) from the permuted batch; exact area -> lam."""
    h, w = x.shape[-2:]
    cut = (1.0 - lam) ** 0.5
    bh, bw = int(h * cut), int(w * cut)
    cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
    y0, y1 = max(cy - bh // 2, 0), min(cy + bh // 2, h)
    x0, x1 = max(cx - bw // 2, 0), min(cx + bw // 2, w)
    out = x.clone()
    out[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
    return out, 1.0 - (y1 - y0) * (x1 - x0) / float(h * w)
