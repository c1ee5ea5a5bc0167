"""A registry of model builders with one entry point, ``create_model`` (the timm pattern).

Every model takes (N, in_channels, S, S) float input in [0, 1], returns logits, and names the
layer Grad-CAM should explain in its ``target_layer`` attribute (a ``named_modules`` key).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        return fn

    return deco


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 4, in_channels: int = 1, **kwargs) -> nn.Module:
    _load_builtin()
    if name not in _REGISTRY:
        raise KeyError(f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))}")
    model = _REGISTRY[name](num_classes=num_classes, in_channels=in_channels, **kwargs)
    model.model_name = name  # type: ignore[assignment]  # a plain attribute, not a submodule
    return model


def _load_builtin() -> None:
    # Importing the modules runs their @register_model decorators.
    from braintumor.models import braintumor_net, paper_cnn  # noqa: F401


@dataclass(frozen=True)
class ModelInfo:
    name: str
    parameters: int
    flops: int  # forward FLOPs per image (multiply-add counted as 2)
    image_size: int

    def __str__(self) -> str:
        return (f"{self.name}: {self.parameters / 1e6:.2f} M parameters, "
                f"{self.flops / 1e9:.3f} GFLOPs per {self.image_size}x{self.image_size} image")


def model_info(model: nn.Module, image_size: int, in_channels: int | None = None) -> ModelInfo:
    """Parameter count and forward FLOPs per image, counted by PyTorch's own FlopCounterMode."""
    from torch.utils.flop_counter import FlopCounterMode

    if in_channels is None:
        in_channels = getattr(model, "in_channels", None)
    if in_channels is None:  # a model that does not say: its first conv's input channels
        first = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
        in_channels = first.in_channels
    params = sum(p.numel() for p in model.parameters())
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, in_channels, image_size, image_size))
    model.train(was_training)
    return ModelInfo(getattr(model, "model_name", type(model).__name__), params,
                     int(counter.get_total_flops()), image_size)
