"""braintumor-net-v2: braintumor-net's stages, a light top-down decoder, a tumour head, and a
classifier that pools its tumour evidence under its own predicted tumour map.

Why this shape (docs/training.md, "braintumor-net-v2"):

- braintumor-net's Grad-CAM layer is its last stage, a 6 x 6 grid at 192 px: a tumour of the
  median size (1.3 % of the image) is a fraction of one cell, and the upsampled map is blocky.
  A feature-pyramid decoder (Lin et al. 2017: a 1x1 lateral conv per stage, the coarser sum
  upsampled and added, one 3x3 conv to smooth it) brings the last stage's context down to
  stride 8 (``fine_stage=1``: 24 x 24 at 192 px) for a few per cent more FLOPs.
- ``tumour_head`` (a 1x1 conv on the fine features) predicts a per-pixel tumour map, trained
  on the tumour masks (Dice + BCE, training/mask_loss.py); at inference it is the outline
  people see (models/tumour.py upsamples it bilinearly).
- ``lesion_features`` (the Grad-CAM layer, ``target_layer``) are the fine features gated by
  that map, ``F * sigmoid(t)``: zero wherever the model sees no tumour. The classifier's
  lesion evidence is their sum over the grid divided by the map's mass (+1, so a map with no
  tumour fades to zero rather than amplifying faint cells): attention pooling under the
  predicted map. Because that score is linear in the gated map, Grad-CAM at this layer is
  the exact per-cell share of the lesion evidence (as CAM is for a global-average-pooled
  network), so it shows where the decision came from rather than where features are strong.
- Global context (the global average of the last stage) sits beside it, which ``notumor``
  needs: with no tumour there is nothing to pool.

Only standard layers (conv, batch norm, ReLU, bilinear upsampling, sums and products), so
channels-last and bf16 autocast apply as to braintumor-net.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from braintumor.models.braintumor_net import (
    BasicBlock,
    _make_stem,
    init_weights,
    pop_image_size,
)
from braintumor.models.registry import register_model


class TopDownDecoder(nn.Module):
    """FPN-style top-down path from the last stage down to stage ``fine_stage``'s grid."""

    def __init__(self, widths: tuple[int, ...], fine_stage: int, width: int):
        super().__init__()
        self.fine_stage = fine_stage
        self.lateral = nn.ModuleList(nn.Conv2d(w, width, 1, bias=False)
                                     for w in widths[fine_stage:])
        self.smooth = nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False),
                                    nn.BatchNorm2d(width), nn.ReLU(inplace=True))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        levels = features[self.fine_stage:]
        top = self.lateral[-1](levels[-1])
        for lateral, f in zip(reversed(self.lateral[:-1]), reversed(levels[:-1]), strict=True):
            # size= rather than scale_factor=2: odd grids (e.g. a 100 px input) still line up.
            top = lateral(f) + F.interpolate(top, size=f.shape[-2:], mode="bilinear",
                                             align_corners=False)
        return self.smooth(top)


class TumourGate(nn.Module):
    """Fine features under the predicted tumour map: ``features * sigmoid(tumour_logits)``.

    A module of its own so that it has a ``named_modules`` key: Grad-CAM hooks its output.
    """

    def forward(self, features: torch.Tensor, tumour_logits: torch.Tensor) -> torch.Tensor:
        return features * torch.sigmoid(tumour_logits)


class BrainTumorNetV2(nn.Module):
    target_layer = "lesion_features"
    has_tumour_head = True

    def __init__(self, num_classes: int = 4, in_channels: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256),
                 depths: tuple[int, ...] = (1, 1, 1, 1), dropout: float = 0.2,
                 decoder_width: int = 64, fine_stage: int = 1,
                 stem_norm_after_pool: bool = False, stem: str = "conv-pool",
                 stem_depth: int = 1):
        super().__init__()
        if len(widths) != len(depths):
            raise ValueError(f"widths {tuple(widths)} and depths {tuple(depths)} differ in "
                             "length")
        if not 0 <= fine_stage < len(widths) - 1:
            raise ValueError(f"fine_stage must be a stage below the last (0..{len(widths) - 2})"
                             f", not {fine_stage}")
        self.in_channels = in_channels
        self.stem = _make_stem(stem, in_channels, widths[0], stem_norm_after_pool, stem_depth)
        stages, cin = [], widths[0]
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2)]
            blocks += [BasicBlock(w, w, 1) for _ in range(d - 1)]
            stages.append(blocks[0] if d == 1 else nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)  # same names as braintumor-net's
        self.decoder = TopDownDecoder(tuple(widths), fine_stage, decoder_width)
        self.tumour_head = nn.Conv2d(decoder_width, 1, 1)
        self.lesion_features = TumourGate()
        self.head = nn.Sequential(nn.Dropout(dropout),
                                  nn.Linear(decoder_width + widths[-1], num_classes))
        init_weights(self)
        # The tumour head starts small and biased to "no tumour" (the masks cover ~1 % of a
        # slice): the first steps' BCE is then near its floor instead of ~0.7 per pixel, and
        # the gate starts almost closed rather than passing half of every feature.
        nn.init.normal_(self.tumour_head.weight, std=0.01)
        assert self.tumour_head.bias is not None  # a Conv2d built with bias
        nn.init.constant_(self.tumour_head.bias, -4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_tumour(x)[0]

    def forward_with_tumour(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (N, C) and tumour logits (N, 1, h, w) on the fine grid (models/tumour.py)."""
        x = (x - 0.5) / 0.25  # normalisation inside the model, as braintumor-net
        f = self.stem(x)
        levels = []
        for stage in self.stages:
            f = stage(f)
            levels.append(f)
        fine = self.decoder(levels)
        t = self.tumour_head(fine)
        gated = self.lesion_features(fine, t)
        mass = torch.sigmoid(t).sum((2, 3))
        lesion = gated.sum((2, 3)) / (mass + 1.0)
        pooled = torch.cat([lesion, levels[-1].mean((2, 3))], dim=1)
        return self.head(pooled), t


@register_model("braintumor-net-v2")
def braintumor_net_v2(num_classes: int = 4, in_channels: int = 1, **kwargs) -> nn.Module:
    pop_image_size(kwargs)
    return BrainTumorNetV2(num_classes, in_channels, **kwargs)
