"""The published baseline: three Conv2d + ReLU + MaxPool blocks, a dense layer, dropout.

Kept as described in the notebooks it comes from (32/64/128 filters of 3x3, Dense 128,
Dropout 0.5) so that our comparison is against what was published, not a strawman. It
returns logits; the softmax of the original is applied by the loss and by inference.
"""

from __future__ import annotations

import torch
from torch import nn

from braintumor.models.registry import register_model


class PaperCNN(nn.Module):
    target_layer = "features.6"  # the third convolution

    def __init__(self, num_classes: int = 4, in_channels: int = 1, dense: int = 128,
                 dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(64, 128, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        )
        # LazyLinear would tie the parameter count to the first input; the classifier is
        # sized from the input size instead, so the model is fully built at construction.
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.LazyLinear(dense),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(dense, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("paper-cnn")
def paper_cnn(num_classes: int = 4, in_channels: int = 1, image_size: int = 128,
              **kwargs) -> nn.Module:
    model = PaperCNN(num_classes, in_channels, **kwargs)
    with torch.no_grad():  # materialise the lazy layer for this input size
        model(torch.zeros(1, in_channels, image_size, image_size))
    return model
