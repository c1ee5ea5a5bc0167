"""Our CNN, designed from scratch for accuracy per FLOP on a CPU.

Early downsampling (a stride-4 stem: strided conv + max-pool, or space-to-depth) puts most
layers on small feature maps, where a 2-core CPU spends its time well; residual blocks with
batch norm train quickly from scratch without pretrained weights; global average pooling
keeps the head tiny and makes the last stage's output a clean, spatially faithful Grad-CAM
target (``stages.3``).
"""

from __future__ import annotations

import torch
from torch import nn

from braintumor.models.registry import register_model


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: zero a residual branch for a random ``rate`` of the samples.

    The kept samples are scaled by ``1 / (1 - rate)`` so that the expected output matches
    evaluation, where nothing is dropped. Written here rather than imported: timm's
    ``DropPath`` and torchvision's ``StochasticDepth`` do the same, but neither is a
    dependency (torchvision does not import beside the CPU torch wheel), and it is four lines.
    """
    if rate <= 0.0 or not training:
        return x
    keep = torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), device=x.device) >= rate
    return x * keep.to(x.dtype) / (1.0 - rate)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, drop_path_rate: float = 0.0):
        super().__init__()
        self.drop_path_rate = drop_path_rate
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = drop_path(self.bn2(self.conv2(out)), self.drop_path_rate, self.training)
        return self.act(out + self.shortcut(x))


def init_weights(model: nn.Module) -> None:
    """He init for every conv; each residual block's last batch norm zeroed, so every block
    starts as the identity (trains from scratch without pretrained weights)."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    for m in model.modules():
        if isinstance(m, BasicBlock):
            nn.init.zeros_(m.bn2.weight)


STEMS = ("conv-pool", "space-to-depth")


def _make_stem(kind: str, in_channels: int, width: int, norm_after_pool: bool,
               depth: int = 1) -> nn.Sequential:
    """The layers that take the image down to a quarter of its side (stride 4).

    ``space-to-depth``: every 4x4 block of pixels becomes 16 channels of one cell
    (``PixelUnshuffle``), then a 3x3 conv, batch norm and ReLU at 1/4 resolution: the same
    as one 12x12 conv with stride 4, with no full- or half-resolution map at all. On a CPU
    the conv-pool stem's 96x96 maps (at 192 px) are memory-bound passes: its conv output,
    max-pool and their gradients. Dropping them makes a training step about 1.14x faster in
    bf16 and 1.3x in fp32 than the bundled conv-pool stem (``benchmarks/step_variants.py``).
    A different model (no max nonlinearity, a wider but linear receptive field), trained as
    such; on this data it validated about a point lower
    (docs/experiments/06-space-to-depth-stem.md), so conv-pool stays the default and the
    bundled stem.
    """
    if kind not in STEMS:
        raise ValueError(f"stem must be one of {', '.join(STEMS)}, not {kind!r}")
    if kind == "space-to-depth":
        if norm_after_pool:
            raise ValueError("stem_norm_after_pool applies to the conv-pool stem only")
        if depth < 1:
            raise ValueError(f"stem_depth must be at least 1, not {depth}")
        layers: list[nn.Module] = [nn.PixelUnshuffle(4)]
        for i in range(depth):
            layers += [nn.Conv2d(in_channels * 16 if i == 0 else width, width, 3, 1, 1,
                                 bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
        return nn.Sequential(*layers)
    if depth != 1:
        raise ValueError("stem_depth applies to the space-to-depth stem only")
    # conv-pool: a 5x5 conv with stride 2, then a 3x3 max-pool with stride 2.
    # ReLU after the max-pool, not before: the two commute exactly (ReLU is monotonic, so
    # max(relu(a), relu(b)) == relu(max(a, b)), values and gradients alike), and the ReLU
    # then runs on a quarter of the pixels. Parameter names are unchanged. Only guided
    # backpropagation, which rewrites ReLU gradients, sees the difference: it now clamps
    # each pooled cell's gradient rather than their sums (its maps move slightly).
    #
    # norm_after_pool (``stem_norm_after_pool``): batch-normalise the pooled map rather than
    # the conv's output. Not equivalent (the statistics come from the pooled cells, and a
    # negative BN scale does not commute with max), so it is a different model, trained as
    # such; but the batch norm, forward and backward, then touches a quarter of the pixels:
    # a bf16 training step 1.09-1.12x faster on a 2-core CPU in two runs of
    # benchmarks/step_variants.py. Off by default so that checkpoints of the first stem keep
    # loading.
    conv = nn.Conv2d(in_channels, width, 5, 2, 2, bias=False)
    norm, pool = nn.BatchNorm2d(width), nn.MaxPool2d(3, 2, 1)
    return nn.Sequential(conv, *((pool, norm) if norm_after_pool else (norm, pool)),
                         nn.ReLU(inplace=True))


class BrainTumorNet(nn.Module):
    target_layer = "stages.3"

    def __init__(self, num_classes: int = 4, in_channels: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256),
                 depths: tuple[int, ...] = (1, 1, 1, 1), dropout: float = 0.2,
                 tumour_pooling: bool = False, stem_norm_after_pool: bool = False,
                 stem: str = "conv-pool", stem_depth: int = 1, drop_path_rate: float = 0.0):
        super().__init__()
        if not 0.0 <= drop_path_rate < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), not {drop_path_rate}")
        self.in_channels = in_channels  # the stem's conv may see more (space-to-depth)
        self.stem = _make_stem(stem, in_channels, widths[0], stem_norm_after_pool,
                                stem_depth)
        # drop_path_rate: stochastic depth (Huang et al. 2016), rising linearly from 0 at the
        # first block to the rate at the last, as in timm's ResNets. Tried because the model
        # fits its training set to the label-smoothing floor halfway through a run; it adds
        # no parameters and no measurable step time. At 0.1 it validated worse on this data
        # (docs/experiments/08-drop-path-geometric-augmentation.md), so 0, the model without
        # it, is the default and the bundled setting; checkpoints load either way.
        n_blocks = sum(depths)
        rates = iter([drop_path_rate * k / max(n_blocks - 1, 1) for k in range(n_blocks)])
        stages = []
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2, next(rates))]
            blocks += [BasicBlock(w, w, 1, next(rates)) for _ in range(d - 1)]
            stages.append(blocks[0] if d == 1 else nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        # tumour_pooling: a 1x1 conv predicts a tumour map on the last stage (trainable with
        # masks: `mask_layer: tumour_head`), and the classifier sees the features pooled
        # under that map beside the global average, so its decision can rest on the lesion.
        self.tumour_head = nn.Conv2d(cin, 1, 1) if tumour_pooling else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin * (2 if tumour_pooling else 1), num_classes))
        init_weights(self)

    @property
    def has_tumour_head(self) -> bool:
        """True with ``tumour_pooling``: then ``forward_with_tumour`` gives the tumour map."""
        return self.tumour_head is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.tumour_head is None:
            return self.head(self._features(x))
        return self.forward_with_tumour(x)[0]

    def forward_with_tumour(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and tumour logits on the last stage's grid (see models/tumour.py)."""
        if self.tumour_head is None:
            raise ValueError("this braintumor-net has no tumour head (tumour_pooling is off)")
        f = self._features(x)
        t = self.tumour_head(f)
        w = torch.sigmoid(t)
        # +1 in the denominator: with no tumour in sight the pooled part fades to 0 instead
        # of blowing up a few faint cells.
        under = (f * w).sum((2, 3)) / (w.sum((2, 3)) + 1.0)
        pooled = torch.cat([f.mean((2, 3)), under], dim=1)
        return self.head[2:](pooled), t  # the head's dropout and linear layer

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        # Centre [0, 1] input; a fixed affine keeps normalisation inside the model, so no
        # caller can forget it (no train/serve skew).
        x = (x - 0.5) / 0.25
        return self.stages(self.stem(x))


def pop_image_size(kwargs: dict) -> None:
    """Take the registry's ``image_size`` out of a builder's kwargs, refusing a size the
    space-to-depth stem cannot cut (shared by the braintumor-net builders)."""
    image_size = kwargs.pop("image_size", None)
    if kwargs.get("stem") == "space-to-depth" and image_size and image_size % 4:
        raise ValueError(f"the space-to-depth stem cuts the image into 4x4 blocks: image size "
                         f"{image_size} is not a multiple of 4")


@register_model("braintumor-net")
def braintumor_net(num_classes: int = 4, in_channels: int = 1, **kwargs) -> nn.Module:
    pop_image_size(kwargs)
    return BrainTumorNet(num_classes, in_channels, **kwargs)
