"""braintumor-net-v2: shapes, the tumour-map contract, the fine layer, and that Grad-CAM at its
default layer lands on a lesion after a few training steps."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from braintumor.explain import Explainer
from braintumor.models import create_model, list_models
from braintumor.models.tumour import has_tumour_head, tumour_probabilities
from braintumor.training.mask_loss import MaskLoss

SMALL = {"widths": (8, 16, 32, 64), "decoder_width": 16}


def _small(**changes) -> nn.Module:
    torch.manual_seed(0)
    return create_model("braintumor-net-v2", num_classes=4, image_size=64,
                        **{**SMALL, **changes})


def test_registered_beside_the_old_model():
    assert {"braintumor-net", "braintumor-net-v2"} <= set(list_models())


@pytest.mark.parametrize(("size", "grid"), [(64, 8), (100, 13), (128, 16), (192, 24)])
def test_shapes_at_several_input_sizes(size, grid):
    model = _small().eval()
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        logits, tumour = model.forward_with_tumour(x)
        plain = model(x)
    assert logits.shape == (2, 4) and tumour.shape == (2, 1, grid, grid)
    assert torch.equal(plain, logits)  # forward gives the logits only (the contract)
    _, prob = tumour_probabilities(model, x)
    assert prob.shape == (2, 1, size, size) and 0 <= prob.min() and prob.max() <= 1


def test_tumour_head_and_fine_layer_exist_and_the_fine_layer_is_24_at_192_px():
    model = create_model("braintumor-net-v2", image_size=192,
                         depths=(1, 2, 2, 2), stem_norm_after_pool=True).eval()
    assert has_tumour_head(model) and model.has_tumour_head is True
    modules = dict(model.named_modules())
    head = modules["tumour_head"]
    assert isinstance(head, nn.Conv2d) and head.out_channels == 1
    assert model.target_layer == "lesion_features" and model.target_layer in modules
    seen = {}
    modules[model.target_layer].register_forward_hook(lambda m, i, o: seen.update(shape=o.shape))
    with torch.no_grad():
        model(torch.rand(1, 1, 192, 192))
    assert tuple(seen["shape"][-2:]) == (24, 24) and seen["shape"][-2] >= 24
    # the explainer defaults to that layer
    assert Explainer(model).layer_name == "lesion_features"


def test_fine_stage_zero_is_stride_4_and_bad_settings_are_named():
    model = _small(fine_stage=0).eval()
    with torch.no_grad():
        assert model.forward_with_tumour(torch.rand(1, 1, 64, 64))[1].shape[-1] == 16
    with pytest.raises(ValueError, match="fine_stage"):
        _small(fine_stage=3)
    with pytest.raises(ValueError, match="depths"):
        _small(depths=(1, 1))


def test_lesion_features_are_the_fine_features_under_the_tumour_map():
    """Where the map says no tumour the Grad-CAM layer is zero: the lesion evidence (and so
    Grad-CAM for it) can only come from where the model sees tumour."""
    model = _small().eval()
    seen = {}
    model.lesion_features.register_forward_hook(lambda m, i, o: seen.update(gated=o, inputs=i))
    with torch.no_grad():
        _, t = model.forward_with_tumour(torch.rand(2, 1, 64, 64))
    fine, logits = seen["inputs"]
    assert torch.allclose(seen["gated"], fine * torch.sigmoid(t))
    assert logits is not None and torch.equal(logits, t)


def test_channels_last_and_bf16_autocast_train_step():
    model = _small().to(memory_format=torch.channels_last).train()
    x = torch.rand(4, 1, 64, 64).contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, tumour = model.forward_with_tumour(x)
    loss = logits.float().logsumexp(1).mean() + tumour.float().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert torch.isfinite(loss)


def _lesion_batch(n: int, g: torch.Generator, size: int = 64):
    """Half the images carry a bright 12 px square at a random place (class 1), half none."""
    x = torch.rand(n, 1, size, size, generator=g) * 0.3 + 0.2
    masks = torch.zeros(n, 1, size, size)
    y = torch.arange(n) % 2
    for i in range(n):
        if y[i]:
            r, c = torch.randint(4, size - 16, (2,), generator=g).tolist()
            x[i, :, r:r + 12, c:c + 12] = 0.95
            masks[i, :, r:r + 12, c:c + 12] = 1.0
    return x, y, masks


def test_gradcam_peak_lands_on_a_bright_square_lesion_after_a_few_steps():
    """The issue's promise on synthetic data: trained for a few steps with the Dice + BCE mask
    loss on its tumour head, the model's default Grad-CAM (through braintumor.explain) peaks
    inside the lesion of every held-out image."""
    torch.manual_seed(0)
    model = create_model("braintumor-net-v2", num_classes=2, image_size=64, **SMALL).train()
    mask_loss = MaskLoss(model, "tumour_head", 64, kind="dice-bce")
    opt = torch.optim.AdamW(model.parameters(), 1e-2)
    g = torch.Generator().manual_seed(1)
    has = torch.ones(16, dtype=torch.bool)
    for _ in range(25):
        x, y, masks = _lesion_batch(16, g)
        loss = nn.functional.cross_entropy(model(x), y) + mask_loss(masks, has)
        opt.zero_grad()
        loss.backward()
        opt.step()
    mask_loss.remove()
    x, y, masks = _lesion_batch(24, torch.Generator().manual_seed(99))
    x, masks = x[y == 1], masks[y == 1]
    maps = Explainer(model, classes=["notumor", "tumour"]).explain_batch(x, targets="tumour").maps
    peaks = torch.from_numpy(maps.reshape(len(x), -1).argmax(1))
    on_lesion = masks.reshape(len(x), -1)[torch.arange(len(x)), peaks]
    assert on_lesion.tolist() == [1.0] * len(x)
