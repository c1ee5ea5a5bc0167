"""The tumour-map contract: how callers ask a model where it sees tumour.

A model that predicts a per-pixel tumour map (a *tumour head*) exposes
``forward_with_tumour(x) -> (logits, tumour_logits)``: class logits (N, C) and tumour logits
(N, 1, h, w) on the model's own map grid (any stride). Its plain ``forward`` still returns
logits only, so every caller that only wants a class (training, evaluation, ONNX export of a
classifier) keeps working unchanged. The helpers here are the one place that knows the
contract, so prediction, explanation, evidence and export do not each probe for it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_TUMOUR_THRESHOLD = 0.5
"""Probability above which a pixel counts as tumour when a card records no threshold."""


def has_tumour_head(model: nn.Module) -> bool:
    """Whether ``model`` follows the contract (and, for braintumor-net, has the head on)."""
    check = getattr(model, "has_tumour_head", None)
    if isinstance(check, bool):
        return check
    return callable(getattr(model, "forward_with_tumour", None))


def tumour_probabilities(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Class logits and the tumour probability map upsampled (bilinear) to the input's size.

    Raises ``ValueError`` for a model without a tumour head, so a caller that asked for an
    outline learns why it cannot have one.
    """
    if not has_tumour_head(model):
        name = getattr(model, "model_name", type(model).__name__)
        raise ValueError(f"model {name!r} has no tumour head: it predicts no tumour map")
    logits, tumour = model.forward_with_tumour(x)  # type: ignore[operator]  # checked above
    tumour = F.interpolate(tumour.float(), size=tuple(x.shape[-2:]), mode="bilinear",
                           align_corners=False)
    return logits, torch.sigmoid(tumour)
