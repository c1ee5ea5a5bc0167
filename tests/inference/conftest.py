"""A tiny trained-looking bundle shared by the inference tests.

A freshly initialised braintumor-net gives almost uniform probabilities (its blocks start as
identities), which would let a wrong temperature or a broken ONNX export pass unnoticed; the
batch-norm statistics and the head are randomised so the logits are spread out.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from braintumor.data.preprocess import PreprocessConfig
from braintumor.models import create_model, save_bundle

CLASSES = ["glioma", "meningioma", "notumor", "pituitary"]
TEMPERATURE = 1.7


def _spread_out(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            if isinstance(m, torch.nn.Linear):
                m.weight.mul_(20.0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """A braintumor-net bundle at 64 px with temperature 1.7."""
    torch.manual_seed(0)
    model = _spread_out(create_model("braintumor-net", num_classes=4))
    return save_bundle(model, tmp_path_factory.mktemp("bundle"), model_name="braintumor-net",
                       classes=CLASSES, preprocess=PreprocessConfig(image_size=64),
                       temperature=TEMPERATURE)


@pytest.fixture
def images(synthetic_slice) -> list[np.ndarray]:
    """Four synthetic slices of different sizes: no blob, then the three tumour positions."""
    blobs = [None, (0.35, 0.35), (0.35, 0.68), (0.68, 0.5)]
    return [synthetic_slice(80 + 8 * i, seed=i, blob=b) for i, b in enumerate(blobs)]
