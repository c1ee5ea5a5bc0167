"""Grad-CAM++ (Chattopadhay et al. 2018), written here because captum has no such method.

It is Grad-CAM with per-pixel channel weights: instead of averaging the gradient over the
map, each positive gradient is weighted by a factor built from its second and third powers
(the paper's closed form under an exponential score), which lets several separate instances
of the evidence, and small ones, all light up instead of the largest one dominating.

:class:`LayerGradCamPlusPlus` mirrors captum's ``LayerGradCam`` line for line: same base
classes, same hook helper (``compute_layer_gradients_and_eval``) to get the layer's output and
its gradient in one forward and one backward, so the two methods differ only in the weights.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import GradientAttribution, LayerAttribution
from torch import nn

from braintumor.explain.base import AttributionMethod, TargetScore, upsample


class LayerGradCamPlusPlus(LayerAttribution, GradientAttribution):
    """Grad-CAM++ of ``layer`` for a forward function with one output per example."""

    def __init__(self, forward_func, layer: nn.Module, eps: float = 1e-7) -> None:
        LayerAttribution.__init__(self, forward_func, layer)
        GradientAttribution.__init__(self, forward_func)
        self.eps = eps

    def attribute(self, inputs: torch.Tensor, target: Any = None) -> torch.Tensor:
        """(N, 1, h, w) rectified Grad-CAM++ map of the layer's output."""
        grads, acts = compute_layer_gradients_and_eval(
            self.forward_func, self.layer, (inputs,), target
        )
        g, a = grads[0], acts[0]
        if g.dim() != 4:
            raise ValueError(f"Grad-CAM++ needs a (N, C, h, w) layer output, got {tuple(g.shape)}")
        g2 = g.pow(2)
        g3 = g2 * g
        sum_a = a.sum(dim=(2, 3), keepdim=True)
        denom = 2 * g2 + sum_a * g3
        alpha = g2 / torch.where(denom.abs() > self.eps, denom, torch.full_like(denom, self.eps))
        alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
        weights = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
        return F.relu((weights * a).sum(dim=1, keepdim=True))


class GradCAMPlusPlus(AttributionMethod):
    name = "gradcam++"
    uses_layer = True
    single_pass = True

    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        assert layer is not None
        cam = LayerGradCamPlusPlus(score, layer).attribute(inputs)
        return upsample(cam, tuple(inputs.shape[-2:]))
