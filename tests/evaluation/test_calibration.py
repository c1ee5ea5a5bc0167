import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassCalibrationError

from braintumor.evaluation.calibration import (
    expected_calibration_error,
    fit_temperature,
    reliability_bins,
)
from braintumor.models.runtime import softmax


def overconfident_logits(n: int, seed: int = 0):
    """A toy model that is right ~75% of the time but says so with ~99% confidence: its
    logits are a sensible score blown up tenfold."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), labels] += 1.6
    return 10.0 * logits, labels


def test_temperature_scaling_lowers_ece_of_an_overconfident_model():
    logits, labels = overconfident_logits(2000)
    fit, held_out = slice(0, 1000), slice(1000, 2000)
    t = fit_temperature(logits[fit], labels[fit])
    assert t > 3  # it must undo most of the tenfold blow-up
    before = expected_calibration_error(softmax(logits[held_out]), labels[held_out])
    after = expected_calibration_error(softmax(logits[held_out], t), labels[held_out])
    assert before > 0.15
    assert after < before / 3


def test_ece_equals_torchmetrics():
    logits, labels = overconfident_logits(500, seed=2)
    probs = softmax(logits, 6.0)
    ref = MulticlassCalibrationError(num_classes=4, n_bins=15, norm="l1")(
        torch.as_tensor(probs), torch.as_tensor(labels))
    assert expected_calibration_error(probs, labels, 15) == pytest.approx(float(ref), abs=1e-6)


def test_reliability_bins_account_for_every_image():
    logits, labels = overconfident_logits(300, seed=3)
    probs = softmax(logits, 4.0)
    bins = reliability_bins(probs, labels, 10)
    assert sum(bins["count"]) == 300
    assert len(bins["edges"]) == 11
    conf = probs.max(1)
    for k, (lo, hi) in enumerate(zip(bins["edges"][:-1], bins["edges"][1:], strict=True)):
        inside = (conf > lo) & (conf <= hi)
        assert bins["count"][k] == inside.sum()
        if inside.any():
            assert bins["confidence"][k] == pytest.approx(conf[inside].mean())
        else:
            assert bins["confidence"][k] is None and bins["accuracy"][k] is None


def test_probabilities_sum_to_one_at_any_temperature():
    logits, _ = overconfident_logits(50)
    for t in (0.5, 1.0, 3.0):
        assert np.allclose(softmax(logits, t).sum(1), 1.0)
