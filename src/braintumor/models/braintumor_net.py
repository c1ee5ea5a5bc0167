"""Our CNN, designed from scratch for accuracy per FLOP on a CPU.

Early downsampling (strided stem + max-pool) puts most layers on small feature maps, where
a 2-core CPU spends its time well; residual blocks with batch norm train quickly from scratch
without pretrained weights; global average pooling keeps the head tiny and makes the last
stage's output a clean, spatially faithful Grad-CAM target (``stages.3``).
"""

from __future__ import annotations

import torch
from torch import nn

from braintumor.models.registry import register_model


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
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
        out = self.bn2(self.conv2(out))
        return self.act(out + self.shortcut(x))


class BrainTumorNet(nn.Module):
    target_layer = "stages.3"

    def __init__(self, num_classes: int = 4, in_channels: int = 1,
                 widths: tuple[int, ...] = (32, 64, 128, 256),
                 depths: tuple[int, ...] = (1, 1, 1, 1), dropout: float = 0.2,
                 tumour_pooling: bool = False, stem_norm_after_pool: bool = False):
        super().__init__()
        # ReLU after the max-pool, not before: the two commute exactly (ReLU is monotonic, so
        # max(relu(a), relu(b)) == relu(max(a, b)), values and gradients alike), and the ReLU
        # then runs on a quarter of the pixels. At 192 px the stem's 96x96 maps are the most
        # memory-bound part of a training step on a CPU. Parameter names are unchanged. Only
        # guided backpropagation, which rewrites ReLU gradients, sees the difference: it now
        # clamps each pooled cell's gradient rather than their sums (its maps move slightly).
        #
        # stem_norm_after_pool: batch-normalise the pooled map rather than the conv's output.
        # Not equivalent (the statistics come from the pooled cells, and a negative BN scale
        # does not commute with max), so it is a different model, trained as such; but the
        # batch norm, forward and backward, then touches a quarter of the pixels: about 9 %
        # off a training step on a 2-core CPU (benchmarks/step_variants.py), where these
        # memory-bound passes over the 96x96 map are among the largest costs after the
        # convolutions. Off by default so that checkpoints of the first stem keep loading;
        # the bundled config turns it on.
        conv = nn.Conv2d(in_channels, widths[0], 5, 2, 2, bias=False)
        norm, pool = nn.BatchNorm2d(widths[0]), nn.MaxPool2d(3, 2, 1)
        self.stem = nn.Sequential(conv, *((pool, norm) if stem_norm_after_pool else (norm, pool)),
                                  nn.ReLU(inplace=True))
        stages = []
        cin = widths[0]
        for i, (w, d) in enumerate(zip(widths, depths, strict=True)):
            blocks = [BasicBlock(cin, w, 1 if i == 0 else 2)]
            blocks += [BasicBlock(w, w, 1) for _ in range(d - 1)]
            stages.append(blocks[0] if d == 1 else nn.Sequential(*blocks))
            cin = w
        self.stages = nn.Sequential(*stages)
        # tumour_pooling: a 1x1 conv predicts a tumour map on the last stage (trainable with
        # masks: `mask_layer: tumour_head`), and the classifier sees the features pooled
        # under that map beside the global average, so its decision can rest on the lesion.
        self.tumour_head = nn.Conv2d(cin, 1, 1) if tumour_pooling else None
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout),
                                  nn.Linear(cin * (2 if tumour_pooling else 1), num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        for m in self.modules():  # zero-init the last BN of each block: starts as identity
            if isinstance(m, BasicBlock):
                nn.init.zeros_(m.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centre [0, 1] input; a fixed affine keeps normalisation inside the model, so no
        # caller can forget it (no train/serve skew).
        x = (x - 0.5) / 0.25
        f = self.stages(self.stem(x))
        if self.tumour_head is None:
            return self.head(f)
        w = torch.sigmoid(self.tumour_head(f))
        # +1 in the denominator: with no tumour in sight the pooled part fades to 0 instead
        # of blowing up a few faint cells.
        under = (f * w).sum((2, 3)) / (w.sum((2, 3)) + 1.0)
        pooled = torch.cat([f.mean((2, 3)), under], dim=1)
        return self.head[2:](pooled)  # the head's dropout and linear layer


@register_model("braintumor-net")
def braintumor_net(num_classes: int = 4, in_channels: int = 1, **kwargs) -> nn.Module:
    kwargs.pop("image_size", None)
    return BrainTumorNet(num_classes, in_channels, **kwargs)
