"""The auxiliary tumour-mask loss: hook, head size, weighting, and what it learns."""

from __future__ import annotations

import math

import pytest
import torch

from braintumor.models import create_model
from braintumor.training.mask_loss import MaskLoss, dice_bce_loss


def _model():
    torch.manual_seed(0)
    return create_model("braintumor-net", image_size=64)


def _masks(n: int = 4, size: int = 64) -> torch.Tensor:
    m = torch.zeros(n, 1, size, size)
    m[:, :, 8:24, 40:56] = 1.0  # the same tumour box in every image
    return m


def test_head_matches_the_layer_and_hook_records_only_in_training():
    model = _model()
    loss = MaskLoss(model, "stages.3", image_size=64)
    assert loss.head.in_channels == 256
    model.eval()
    with torch.no_grad():
        model(torch.rand(2, 1, 64, 64))
    with pytest.raises(RuntimeError, match="no activations recorded at 'stages.3'"):
        loss(_masks(2), torch.ones(2, dtype=torch.bool))
    model.train()
    model(torch.rand(2, 1, 64, 64))
    value = loss(_masks(2), torch.ones(2, dtype=torch.bool))
    assert value.ndim == 0 and value.item() > 0
    loss.remove()


def test_unknown_layer_is_named():
    with pytest.raises(AttributeError, match="nope"):
        MaskLoss(_model(), "nope", image_size=64)


def test_images_without_a_mask_do_not_count():
    model = _model().train()
    loss = MaskLoss(model, "stages.2", image_size=64)
    x, masks = torch.rand(4, 1, 64, 64), _masks()
    has = torch.tensor([True, True, False, False])
    # The same batch twice gives the same activations (batch-norm statistics of one batch;
    # no dropout before the layer), so only the masks differ between the two calls.
    model(x)
    with_masks = loss(masks, has)
    other = masks.clone()
    other[2:] = 1.0 - other[2:]  # rows without a mask: whatever they hold must not matter
    model(x)
    assert loss(other, has).item() == pytest.approx(with_masks.item())
    other[0] = 1.0 - other[0]  # a row with a mask does matter
    model(x)
    assert loss(other, has).item() != pytest.approx(with_masks.item())
    model(x)
    none = loss(masks, torch.zeros(4, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad  # still a graph: every parameter used


def test_training_the_head_and_model_lowers_the_mask_loss():
    model = _model().train()
    loss = MaskLoss(model, "stages.3", image_size=64)
    opt = torch.optim.Adam(list(model.parameters()) + list(loss.parameters()), 3e-3)
    x, masks, has = torch.rand(8, 1, 64, 64), _masks(8), torch.ones(8, dtype=torch.bool)
    values = []
    for _ in range(15):
        model(x)
        value = loss(masks, has)
        opt.zero_grad()
        value.backward()
        opt.step()
        values.append(value.item())
    assert values[-1] < 0.5 * values[0]


def test_a_one_channel_layer_is_supervised_as_it_is():
    torch.manual_seed(0)
    model = create_model("braintumor-net", image_size=64, tumour_pooling=True).train()
    loss = MaskLoss(model, "tumour_head", image_size=64)
    assert isinstance(loss.head, torch.nn.Identity)
    assert list(loss.parameters()) == []  # nothing beside the model's own tumour head
    model(torch.rand(2, 1, 64, 64))
    value = loss(_masks(2), torch.ones(2, dtype=torch.bool))
    value.backward()
    assert model.tumour_head.weight.grad is not None


def _softplus(z: float) -> float:
    return math.log1p(math.exp(z))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def test_dice_bce_matches_a_hand_computation_with_an_empty_and_a_missing_mask():
    logits = torch.tensor([[[2.0, 0.0], [0.0, -2.0]],   # tumour, mask in the top-left pixel
                           [[1.0, -1.0], [0.0, 0.0]],   # notumor: an empty mask
                           [[5.0, 5.0], [5.0, 5.0]]]).unsqueeze(1)  # tumour without a mask
    masks = torch.zeros(3, 1, 2, 2)
    masks[0, 0, 0, 0] = 1.0
    masks[2] = 1.0  # whatever a row without a mask holds must not count
    has = torch.tensor([True, True, False])
    ln2 = math.log(2.0)
    bce0 = (_softplus(-2.0) + ln2 + ln2 + _softplus(-2.0)) / 4  # target 1: softplus(-z)
    bce1 = (_softplus(1.0) + _softplus(-1.0) + ln2 + ln2) / 4  # target 0: softplus(z)
    p_sum = _sigmoid(2.0) + 0.5 + 0.5 + _sigmoid(-2.0)
    dice0 = (2 * _sigmoid(2.0) + 1.0) / (p_sum + 1.0 + 1.0)  # smooth = 1; Dice on row 0 only
    expected = (bce0 + bce1) / 2 + (1.0 - dice0)
    assert dice_bce_loss(logits, masks, has).item() == pytest.approx(expected, rel=1e-6)
    # the empty mask is in the BCE only: dropping it leaves row 0's BCE and Dice
    only0 = torch.tensor([True, False, False])
    assert dice_bce_loss(logits, masks, only0).item() == pytest.approx(bce0 + 1.0 - dice0,
                                                                        rel=1e-6)


def test_dice_bce_upsamples_the_map_to_the_mask_and_stays_a_graph_without_masks():
    logits = torch.randn(2, 1, 4, 4, requires_grad=True)
    masks = torch.zeros(2, 1, 16, 16)
    masks[:, :, 2:8, 4:10] = 1.0
    has = torch.ones(2, dtype=torch.bool)
    up = torch.nn.functional.interpolate(logits, size=(16, 16), mode="bilinear",
                                         align_corners=False)
    assert dice_bce_loss(logits, masks, has).item() == pytest.approx(
        dice_bce_loss(up, masks, has).item(), rel=1e-6)
    none = dice_bce_loss(logits, masks, torch.zeros(2, dtype=torch.bool))
    assert none.item() == 0.0 and none.requires_grad


def test_dice_bce_on_the_v2_tumour_head_learns_the_masks():
    torch.manual_seed(0)
    model = create_model("braintumor-net-v2", image_size=64, widths=(8, 16, 32, 64),
                         decoder_width=16).train()
    loss = MaskLoss(model, "tumour_head", image_size=64, kind="dice-bce")
    assert isinstance(loss.head, torch.nn.Identity)  # the model's own one-channel map
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    x, masks = torch.rand(8, 1, 64, 64), _masks(8)
    x[:, :, 8:24, 40:56] += 1.0  # the tumour is visible where the mask says
    has = torch.ones(8, dtype=torch.bool)
    values = []
    for _ in range(12):
        model(x)
        value = loss(masks, has)
        opt.zero_grad()
        value.backward()
        opt.step()
        values.append(value.item())
    assert values[-1] < 0.5 * values[0]
    loss.remove()


def test_unknown_mask_loss_is_named():
    with pytest.raises(ValueError, match="dice-bce"):
        MaskLoss(_model(), "stages.3", image_size=64, kind="dice")
