"""Grad-CAM (Selvaraju et al. 2017), computed by captum's ``LayerGradCam``.

The map is the layer's activations weighted by the spatial mean of the class score's gradient,
summed over channels and rectified (the paper's ReLU: only evidence *for* the class), then
upsampled bicubically to the input (see ``base.UPSAMPLE_MODE``). One forward and one backward
through the head only: the gradient is taken with respect to the layer's output, so the
layers below it are never back-propagated through.
"""

from __future__ import annotations

import torch
from captum.attr import LayerGradCam
from torch import nn

from braintumor.explain.base import AttributionMethod, TargetScore, upsample


class GradCAM(AttributionMethod):
    name = "gradcam"
    uses_layer = True
    single_pass = True

    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        assert layer is not None
        cam = LayerGradCam(score, layer).attribute(inputs, relu_attributions=True)
        return upsample(cam, tuple(inputs.shape[-2:]))
