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
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class MaskLoss(nn.Module):
    def __init__(self, model: nn.Module, layer: str, image_size: int, in_channels: int = 1):
        super().__init__()
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
        target = F.adaptive_avg_pool2d(masks.float(), logits.shape[-2:]).clamp_(0.0, 1.0)
        per_image = F.binary_cross_entropy_with_logits(logits, target,
                                                       reduction="none").mean((1, 2, 3))
        w = has_mask.to(per_image.dtype)
        return (per_image * w).sum() / w.sum().clamp_min(1.0)

    def remove(self) -> None:
        self._handle.remove()
