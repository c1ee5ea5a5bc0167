"""Auxiliary tumour-mask loss: teach a feature map where the tumour is, during training only.

Why: the classifier alone learns from one label per slice, and on this data it confuses
glioma with meningioma, tumours told apart by where they sit and how they border the brain.
Hand-drawn tumour masks exist for most Training images (the figshare source); a 1x1
convolution on one layer's feature map (default: the model's Grad-CAM target layer) is
trained to predict, per cell, the share of tumour pixels in it (binary cross-entropy against
the area-pooled mask). The head lives here, not in the model, so the exported bundle is the
plain classifier: nothing changes at inference.

The forward hook is kept in this one class (as MONAI keeps CAM hooks in one place) and only
records activations while gradients are enabled in training mode, so validation and export
never hold on to feature maps.

Two losses (``mask_loss`` in the config):

- ``area-bce`` (the first one): BCE of each cell against the share of tumour pixels in it
  (the mask area-pooled to the layer's grid). A soft target per cell; right for a coarse
  auxiliary head whose map nobody looks at.
- ``dice-bce`` (:func:`dice_bce_loss`, for a model's own tumour head, braintumor-net-v2): the
  logits are upsampled bilinearly to the mask's grid (the model input) and scored there, per
  pixel, against the binarised mask, because that upsampled map is exactly what people are
  shown and what Dice is measured on (``models/tumour.py``): one geometry for training and
  use. The small tumours (5th percentile 0.27 % of the image, about 10 x 10 px at 192 px) are
  a few cells of a 24 x 24 map; area pooling would turn them into faint soft targets that a
  0.5 threshold never reaches.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from braintumor.training.config import MASK_LOSSES


def dice_bce_loss(logits: torch.Tensor, masks: torch.Tensor, has_mask: torch.Tensor,
                  smooth: float = 1.0) -> torch.Tensor:
    """BCE over every image with a mask plus soft Dice over those whose mask is not empty.

    ``logits`` (N, 1, h, w) on any grid, upsampled (bilinear) to ``masks`` (N, 1, S, S);
    masks are binarised at 0.5 (their edges come partial from the resize to the model grid).
    ``has_mask`` False: the image takes no part (a tumour without a drawn mask).

    Empty masks (``notumor``, counted as having an empty mask) are in the BCE, which punishes
    every false-positive pixel, but not in the Dice: the Dice of an empty target is 0 for any
    prediction but an exactly empty one, so its gradient would only push the whole map to 0,
    and with the smoothing constant it is dominated by that constant rather than the data.
    Dice is per image (then averaged) rather than over the batch, so a small tumour counts as
    much as a large one, as the mean Dice per slice that the threshold and targets use.
    ``smooth`` (1 pixel) keeps a tiny tumour's Dice finite and differentiable.

    A batch without a usable mask gives a zero that still depends on ``logits`` (every
    parameter gets a gradient, which distributed training requires).
    """
    logits = logits.float()
    if logits.shape[-2:] != masks.shape[-2:]:
        logits = F.interpolate(logits, size=masks.shape[-2:], mode="bilinear",
                               align_corners=False)
    target = (masks.float() > 0.5).float()
    use = has_mask.to(logits.device, torch.bool)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none").mean((1, 2, 3))
    w = use.float()
    loss = (bce * w).sum() / w.sum().clamp_min(1.0)
    positive = use & (target.flatten(1).sum(1) > 0)
    if bool(positive.any()):
        p, m = torch.sigmoid(logits[positive]).flatten(1), target[positive].flatten(1)
        dice = (2 * (p * m).sum(1) + smooth) / (p.sum(1) + m.sum(1) + smooth)
        loss = loss + (1.0 - dice).mean()
    return loss


class MaskLoss(nn.Module):
    def __init__(self, model: nn.Module, layer: str, image_size: int, in_channels: int = 1,
                 kind: str = "area-bce"):
        super().__init__()
        if kind not in MASK_LOSSES:
            raise ValueError(f"mask loss must be one of {', '.join(MASK_LOSSES)}, not {kind!r}")
        self.kind = kind
        target = model.get_submodule(layer)  # AttributeError names the missing layer
        self.layer = layer
        self._features: torch.Tensor | None = None
        # Register on the model's submodule; keep the handle so the hook can be removed.
        self._handle = target.register_forward_hook(self._record)
        channels = self._channels(model, target, image_size, in_channels)
        # A layer with one output channel is taken as the model's own tumour-logit map
        # (braintumor-net's ``tumour_head``) and supervised as it is; any other gets a head.
        self.head: nn.Module = nn.Identity() if channels == 1 else nn.Conv2d(channels, 1, 1)

    @staticmethod
    def _channels(model: nn.Module, target: nn.Module, image_size: int, in_channels: int) -> int:
        """Channels of the layer's output, from one dry forward pass (any model, any layer)."""
        seen: list[int] = []
        h = target.register_forward_hook(lambda m, i, o: seen.append(int(o.shape[1])))
        was_training = model.training
        try:
            model.eval()
            with torch.no_grad():
                model(torch.zeros(1, in_channels, image_size, image_size))
        finally:
            h.remove()
            model.train(was_training)
        return seen[0]

    def _record(self, module: nn.Module, inputs, output: torch.Tensor) -> None:
        if module.training and torch.is_grad_enabled():
            self._features = output

    def forward(self, masks: torch.Tensor, has_mask: torch.Tensor) -> torch.Tensor:
        """Loss for the batch the model has just seen; masks (N, 1, S, S) in [0, 1].

        Images without a mask (``has_mask`` False) contribute nothing; a batch with none
        gives a zero that still depends on the head (so every parameter gets a gradient,
        which distributed training requires).
        """
        feats = self._features
        self._features = None
        if feats is None:
            raise RuntimeError(f"no activations recorded at {self.layer!r}: call the model in "
                               "training mode with gradients enabled before the mask loss")
        logits = self.head(feats).float()
        if self.kind == "dice-bce":
            return dice_bce_loss(logits, masks, has_mask)
        target = F.adaptive_avg_pool2d(masks.float(), logits.shape[-2:]).clamp_(0.0, 1.0)
        per_image = F.binary_cross_entropy_with_logits(logits, target,
                                                       reduction="none").mean((1, 2, 3))
        w = has_mask.to(per_image.dtype)
        return (per_image * w).sum() / w.sum().clamp_min(1.0)

    def remove(self) -> None:
        self._handle.remove()
