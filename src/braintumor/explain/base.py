"""What every attribution method shares: the scored forward, the layer lookup, the map format.

Each method (one small module per method, the pytorch-grad-cam layout) turns a batch of model
inputs into one non-negative map per image at the input's resolution. Two things are common to
all of them and live here so they are written once:

- :class:`TargetScore` wraps the classifier so that captum sees a model with one output per
  image, the score (logit) of the class being explained. It also records the logits of the
  first forward pass, which is what lets Grad-CAM return the prediction *and* its explanation
  from a single forward + backward: the predicted class is chosen inside that same forward.
- :func:`normalise_maps` puts maps from very different methods on one scale ([0, 1], the
  top of the map at 1) so overlays, sanity and localisation checks compare like with like.
"""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from captum.attr import LayerAttribution
from torch import nn

# captum's notes on setting requires_grad / ReLU hooks that it undoes itself. Filters that
# stay installed, matched by message, rather than a catch_warnings block around the backward
# pass: that block needs the process-wide warnings lock, and holding it for a whole
# attribution made DICOM reads (and every other request that silences a warning) wait.
warnings.filterwarnings("ignore", message=".*required_grads has been set")
warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")


class TargetScore(nn.Module):
    """``model`` reduced to the logit of one class per image, the class to explain.

    ``targets`` may be given (one class index per image); when it is ``None`` the first
    forward pass picks the predicted class (argmax of its own logits) and freezes that choice.
    The logits of that first pass are kept in :attr:`logits`. Single-pass methods (Grad-CAM)
    hand this module to captum directly; multi-pass methods (occlusion, integrated gradients,
    guided backprop) call :meth:`resolve` first and then hand captum ``score.model`` with
    ``target=score.targets``, so captum's own batching of perturbed copies (which repeats the
    targets alongside the inputs) stays in charge.
    """

    def __init__(self, model: nn.Module, targets: torch.Tensor | None = None):
        super().__init__()
        self.model = model
        self.targets = targets
        self.logits: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.model(x)
        if self.logits is None:
            self.logits = logits.detach()
        if self.targets is None:
            self.targets = logits.detach().argmax(dim=1)
        if len(self.targets) != len(logits):
            raise RuntimeError("a TargetScore with fixed targets was fed a batch of another size")
        return logits.gather(1, self.targets.to(logits.device).view(-1, 1)).squeeze(1)

    @torch.no_grad()
    def resolve(self, x: torch.Tensor) -> torch.Tensor:
        """Run one plain forward to record the logits and fix the targets; returns the targets.

        Methods whose passes see perturbed inputs call this first, so the class they explain
        is the prediction on the *unperturbed* image.
        """
        if self.logits is None or self.targets is None:
            self.forward(x)
        assert self.targets is not None
        return self.targets


def resolve_layer(model: nn.Module, name: str | None = None) -> tuple[str, nn.Module]:
    """The layer to explain: ``name``, else ``model.target_layer``, else the last Conv2d."""
    modules = dict(model.named_modules())
    if name is None:
        name = getattr(model, "target_layer", None)
    if name is None:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)]
        if not convs:
            raise ValueError("the model has no Conv2d layer; pass a layer name to explain")
        name = convs[-1]
    if name not in modules or name == "":
        choices = ", ".join(n for n, m in modules.items() if n and isinstance(m, nn.Conv2d))
        raise ValueError(f"no layer named {name!r} in the model (convolutions: {choices})")
    return name, modules[name]


def upsample(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """(N, 1, h, w) layer maps -> (N, S, S) input-resolution maps (bilinear, via captum)."""
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = LayerAttribution.interpolate(maps, size, interpolate_mode="bilinear")
    return maps[:, 0]


def normalise_maps(maps: torch.Tensor, clip_percentile: float = 100.0) -> torch.Tensor:
    """Scale each (S, S) map of a non-negative batch to [0, 1].

    Divides by the map's maximum, or by its ``clip_percentile`` percentile for pixel-level
    methods (integrated gradients, guided Grad-CAM), where a handful of extreme pixels would
    otherwise push everything else to black (captum's visualiser clips at the 98th percentile
    for the same reason). An all-zero map stays all zero: it says "no evidence", and inventing
    a hot spot would be worse.
    """
    flat = maps.detach().reshape(len(maps), -1).float().clamp_min(0)
    if clip_percentile >= 100.0:
        top = flat.amax(dim=1)
    else:
        top = torch.quantile(flat, clip_percentile / 100.0, dim=1)
        top = torch.where(top > 0, top, flat.amax(dim=1))
    scale = torch.where(top > 0, top, torch.ones_like(top))
    return (flat / scale[:, None]).clamp_(0, 1).reshape(maps.shape)


class AttributionMethod(ABC):
    """One way of explaining a classifier's decision as a map over the input image.

    Subclasses implement :meth:`raw_maps`; :meth:`__call__` adds the shared post-processing.
    Class attributes say how the method behaves:

    - ``uses_layer``: whether it needs the layer to explain (the CAM family).
    - ``single_pass``: whether its first forward pass sees the unperturbed input, so the
      prediction can be read from that very pass (Grad-CAM, Grad-CAM++); other methods get
      their targets fixed by a separate plain forward first.
    - ``clip_percentile``: see :func:`normalise_maps`.
    """

    name: str = "abstract"
    uses_layer: bool = False
    single_pass: bool = False
    clip_percentile: float = 100.0

    @abstractmethod
    def raw_maps(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        """Non-negative maps (N, S, S) for ``inputs`` (N, C, S, S), explaining ``score``."""

    def __call__(self, score: TargetScore, inputs: torch.Tensor,
                 layer: nn.Module | None) -> torch.Tensor:
        if not self.single_pass:
            score.resolve(inputs)
        maps = self.raw_maps(score, inputs, layer)
        if maps.shape != (inputs.shape[0], *inputs.shape[-2:]):
            raise RuntimeError(f"{self.name}: maps of shape {tuple(maps.shape)} for inputs of "
                               f"shape {tuple(inputs.shape)}")
        return normalise_maps(maps.detach(), self.clip_percentile)

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({opts})"


def as_index_tensor(targets: Sequence[int] | torch.Tensor | None, n: int) -> torch.Tensor | None:
    """``None`` stays ``None`` (explain the prediction); otherwise a (N,) long tensor."""
    if targets is None:
        return None
    t = torch.as_tensor(targets, dtype=torch.long).reshape(-1)
    if t.numel() == 1 and n > 1:
        t = t.expand(n).clone()
    if t.numel() != n:
        raise ValueError(f"{t.numel()} targets for {n} images")
    return t
