"""Guided Grad-CAM (Selvaraju et al. 2017) through captum's ``GuidedGradCam``.

Guided backpropagation (gradients passed back only through positive ReLU activations and
positive gradients) gives pixel-sharp edges; multiplying by the Grad-CAM map keeps only the
edges inside the class's region. The product is signed; its magnitude is shown, as in the
paper's figures. It needs ReLUs as ``nn.ReLU`` modules (both bundled models comply).
"""

from __future__ import annotations

import torch
from captum.attr import GuidedGradCam as CaptumGuidedGradCam
from torch import nn

from braintumor.explain.base import AttributionMethod, TargetScore


class GuidedGradCAM(AttributionMethod):
    name = "guided-gradcam"
    uses_layer = True
    clip_percentile = 99.5

    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        assert layer is not None
        attr = CaptumGuidedGradCam(score.model, layer).attribute(
            inputs, target=score.targets, interpolate_mode="bilinear"
        )
        return attr.abs().sum(dim=1)
