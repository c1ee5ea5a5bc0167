"""MixUp/CutMix: mixed images and labels, the exact CutMix area, identity when off."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from braintumor.training.mix import BatchMix, MixedBatch


def _batch(n: int = 6, size: int = 16):
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).clone()
    return x / n, torch.arange(n)  # one label per image, so a label identifies its image


def test_off_returns_the_batch_unchanged():
    x, y = _batch()
    m = BatchMix()(x, y)
    assert not BatchMix().enabled
    assert m.x is x and torch.equal(m.y_a, y) and m.lam == 1.0


def test_mixup_blends_two_images_with_the_drawn_weight():
    torch.manual_seed(0)
    x, y = _batch()
    m = BatchMix(mixup_alpha=0.4)(x, y)
    assert 0.0 <= m.lam <= 1.0
    perm = [int((y == yb).nonzero()[0]) for yb in m.y_b]  # labels are unique per image here
    for i in range(len(y)):
        expected = m.lam * x[i] + (1 - m.lam) * x[perm[i]]
        assert torch.allclose(m.x[i], expected, atol=1e-6)


def test_cutmix_pastes_a_box_and_lam_is_the_kept_area():
    torch.manual_seed(3)
    x, y = _batch(size=32)
    m = BatchMix(cutmix_alpha=1.0)(x, y)
    kept = (m.x == x).flatten(1).float().mean(1)
    swapped = m.y_b != m.y_a  # images paired with themselves keep everything
    assert torch.allclose(kept[swapped], torch.full_like(kept[swapped], m.lam), atol=1e-6)


def test_mixed_loss_weights_both_label_sets():
    loss_fn = nn.CrossEntropyLoss()
    logits = torch.randn(4, 4)
    y_a, y_b = torch.tensor([0, 1, 2, 3]), torch.tensor([3, 2, 1, 0])
    m = MixedBatch(torch.zeros(4, 1, 2, 2), y_a, y_b, 0.3)
    expected = 0.3 * loss_fn(logits, y_a) + 0.7 * loss_fn(logits, y_b)
    assert torch.allclose(m.loss(loss_fn, logits), expected)


def test_prob_zero_never_mixes_and_bad_settings_are_refused():
    x, y = _batch()
    assert BatchMix(mixup_alpha=1.0, prob=0.0)(x, y).lam == 1.0
    with pytest.raises(ValueError, match="alpha"):
        BatchMix(mixup_alpha=-1.0)
    with pytest.raises(ValueError, match="prob"):
        BatchMix(mixup_alpha=1.0, prob=2.0)
