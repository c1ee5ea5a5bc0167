"""Tiny federations: 32 px synthetic slices, braintumor-net, a round in seconds."""

from __future__ import annotations

import pytest

from braintumor.training.config import AugmentConfig, TrainConfig


@pytest.fixture
def fed_data(synthetic_dataset, cache_root):
    """4 classes, 12 training and 4 testing images each, 48 px."""
    root = synthetic_dataset(n_per_class=12, size=48, splits=("Training",))
    from tests.conftest import make_dataset

    make_dataset(root, n_per_class=4, size=48, splits=("Testing",), seed=9)
    return root


@pytest.fixture
def fed_config():
    def make(data, out, **changes) -> TrainConfig:
        base = dict(data=str(data), out=str(out), image_size=32, batch_size=8, lr=3e-3,
                    val_fraction=0.25, seed=0, num_threads=1,
                    augment=AugmentConfig(enabled=False))
        base.update(changes)
        return TrainConfig(**base)

    return make
