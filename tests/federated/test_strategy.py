"""The server's per-round learning rate."""

import math

import numpy as np
import pytest

pytest.importorskip("flwr")

from braintumor.federated.strategy import build_strategy, round_lr  # noqa: E402


def test_round_lr_decays_from_peak_to_floor():
    lrs = [round_lr(0.01, r, 5) for r in range(1, 6)]
    assert lrs[0] == pytest.approx(0.01)
    assert lrs[-1] == pytest.approx(0.0005)
    assert all(a > b for a, b in zip(lrs[:-1], lrs[1:], strict=True))
    assert lrs[2] == pytest.approx(0.01 * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi / 2))))
    assert round_lr(0.01, 1, 1) == 0.01


def test_fit_config_carries_the_rounds_rate():
    initial = [np.zeros(3, np.float32)]
    with_rounds = build_strategy("fedavg", initial, {"lr": 0.01, "local_epochs": 1},
                                 min_fit_clients=1, rounds=4)
    constant = build_strategy("fedprox", initial, {"lr": 0.01, "local_epochs": 1},
                              min_fit_clients=1, proximal_mu=0.1)
    assert with_rounds.on_fit_config_fn(1)["lr"] == pytest.approx(0.01)
    assert with_rounds.on_fit_config_fn(4)["lr"] == pytest.approx(0.0005)
    assert with_rounds.on_fit_config_fn(3)["round"] == 3
    assert constant.on_fit_config_fn(4)["lr"] == 0.01
