"""Integrated gradients (Sundararajan et al. 2017) through captum's ``IntegratedGradients``.

Gradients averaged along the straight path from a black image (no MRI signal) to the input,
times the input's difference from it. Axiomatic (the attributions sum to the score change),
pixel-level and noisy; the positive part (evidence for the class) is shown.
"""

from __future__ import annotations

import torch
from captum.attr import IntegratedGradients as CaptumIntegratedGradients
from torch import nn

from braintumor.explain.base import AttributionMethod, TargetScore


class IntegratedGradients(AttributionMethod):
    name = "integrated-gradients"
    clip_percentile = 99.5

    def __init__(self, n_steps: int = 32, internal_batch_size: int = 64):
        self.n_steps = n_steps
        self.internal_batch_size = internal_batch_size

    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        attr = CaptumIntegratedGradients(score.model).attribute(
            inputs,
            target=score.targets,
            baselines=torch.zeros_like(inputs),
            n_steps=self.n_steps,
            internal_batch_size=self.internal_batch_size,
        )
        return attr.sum(dim=1).clamp_min(0)
