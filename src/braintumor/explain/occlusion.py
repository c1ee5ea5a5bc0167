"""Occlusion (Zeiler & Fergus 2014) through captum's ``Occlusion``.

A square patch slides over the image; each pixel's value is the mean drop in the class score
when patches covering it are blacked out (0 is "no signal" in MRI). Model-agnostic and easy to
trust, but it costs one forward pass per patch position: ((S - w) / stride + 1)^2 of them.
"""

from __future__ import annotations

import torch
from captum.attr import Occlusion as CaptumOcclusion
from torch import nn

from braintumor.explain.base import AttributionMethod, TargetScore


class Occlusion(AttributionMethod):
    name = "occlusion"

    def __init__(self, window_fraction: float = 0.125, stride_fraction: float = 0.5,
                 perturbations_per_eval: int = 16):
        """``window_fraction``: patch side as a share of the input side (about a tumour's
        size at 1/8); ``stride_fraction``: step as a share of the patch."""
        self.window_fraction = window_fraction
        self.stride_fraction = stride_fraction
        self.perturbations_per_eval = perturbations_per_eval

    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        c, s = inputs.shape[1], inputs.shape[-1]
        window = max(2, round(s * self.window_fraction))
        stride = max(1, round(window * self.stride_fraction))
        with torch.no_grad():
            attr = CaptumOcclusion(score.model).attribute(
                inputs,
                target=score.targets,
                sliding_window_shapes=(c, window, window),
                strides=(c, stride, stride),
                baselines=0.0,
                perturbations_per_eval=self.perturbations_per_eval,
            )
        return attr.sum(dim=1).clamp_min(0)
