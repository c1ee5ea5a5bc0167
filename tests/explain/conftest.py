"""A tiny classifier trained in seconds on synthetic slices whose class is the blob's position.

Its Grad-CAM should land on the blob, which is what the explanation tests check. The network
gets two coordinate channels (CoordConv, Liu et al. 2018) so that a few conv layers with a
small receptive field can tell *where* the blob is; without them a net this small can only
learn the position from the head's outline and its maps light up the outline instead. It is
registered in the model registry (test-only name) so it can also be saved as a bundle and go
through the CLI.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.data.preprocess import PreprocessConfig, preprocess, to_model_input
from braintumor.models import registry, save_bundle
from tests.conftest import BLOB_CENTRES, CLASSES, blob_mask, make_slice

TINY_NAME = "explain-test-coordnet"
SIZE = 48
TEMPERATURE = 1.5


class CoordTinyNet(nn.Module):
    target_layer = "features.10"  # the last ReLU after the last conv: a 12x12 map at 48 px

    def __init__(self, num_classes: int = 4, in_channels: int = 1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels + 2, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                  nn.Linear(32, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        yy = torch.linspace(-1, 1, h, device=x.device).view(1, 1, h, 1).expand(n, 1, h, w)
        xx = torch.linspace(-1, 1, w, device=x.device).view(1, 1, 1, w).expand(n, 1, h, w)
        return self.head(self.features(torch.cat([x, yy, xx], 1)))


if TINY_NAME not in registry._REGISTRY:
    registry.register_model(TINY_NAME)(
        lambda num_classes=4, in_channels=1, **_: CoordTinyNet(num_classes, in_channels))


def synthetic_images(n: int, seed0: int, size: int = SIZE, pad: int = 0):
    """(raw slices, labels): class i % 4, blob placed by class; ``pad`` adds a black border."""
    raws, labels = [], []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        raws.append(make_slice(size, seed0 + i, BLOB_CENTRES.get(label), pad=pad))
        labels.append(label)
    return raws, labels


def synthetic_masks(n: int, seed0: int, size: int = SIZE, pad: int = 0):
    out = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        m = blob_mask(size, seed0 + i, label) if label in BLOB_CENTRES else None
        out.append(np.pad(m, pad) if m is not None and pad else m)
    return out


@pytest.fixture(scope="session")
def tiny_config() -> PreprocessConfig:
    return PreprocessConfig(image_size=SIZE)


@pytest.fixture(scope="session")
def tiny_model(tiny_config) -> CoordTinyNet:
    """Trained for 250 Adam steps on 400 synthetic slices (a few seconds on one core)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        raws, labels = synthetic_images(400, 0)
        x = to_model_input(np.stack([preprocess(r, tiny_config).image for r in raws]))
        y = torch.tensor([CLASSES.index(lab) for lab in labels])
        model = CoordTinyNet()
        opt = torch.optim.Adam(model.parameters(), 3e-3)
        for _ in range(250):
            idx = torch.randint(0, len(x), (32,))
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tiny_config, tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny-bundle")
    return save_bundle(tiny_model, out, model_name=TINY_NAME, classes=list(CLASSES),
                       preprocess=tiny_config, temperature=TEMPERATURE)
