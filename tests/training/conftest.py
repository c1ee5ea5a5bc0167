"""Tiny training settings: 32 px synthetic slices, a couple of epochs, a few seconds a run."""

from __future__ import annotations

import pytest

from braintumor.training.config import AugmentConfig, TrainConfig


def _tiny_config(data, out, **changes) -> TrainConfig:
    base = dict(
        data=str(data), out=str(out), model="braintumor-net", image_size=32, epochs=2,
        batch_size=8, lr=3e-3, val_fraction=0.25, patience=0, precision="32-true",
        accelerator="cpu", devices="1", progress_bar=False, seed=0,
        augment=AugmentConfig(rotation_degrees=10.0, zoom=(0.95, 1.05), translate=0.03),
    )
    base.update(changes)
    return TrainConfig(**base)


@pytest.fixture
def tiny_config():
    """Factory: ``tiny_config(data, out, **changes)`` -> a TrainConfig that runs in seconds."""
    return _tiny_config


@pytest.fixture
def tiny_data(synthetic_dataset, cache_root):
    """A 4-class Kaggle-layout dataset: 8 training and 8 testing images per class, 48 px."""
    return synthetic_dataset(n_per_class=8, size=48)
