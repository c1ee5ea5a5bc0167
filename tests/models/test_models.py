"""Each registered model: output shape, parameter count, FLOPs and its Grad-CAM layer."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from braintumor.models import create_model, list_models, model_info


def test_registry_lists_both_models_and_rejects_unknown():
    assert {"paper-cnn", "braintumor-net"} <= set(list_models())
    with pytest.raises(KeyError, match="available"):
        create_model("no-such-net")


@pytest.mark.parametrize("name", ["paper-cnn", "braintumor-net"])
@pytest.mark.parametrize("size", [64, 128])
def test_forward_shape_and_target_layer(name, size):
    model = create_model(name, num_classes=4, image_size=size).eval()
    with torch.no_grad():
        out = model(torch.rand(3, 1, size, size))
    assert out.shape == (3, 4) and torch.isfinite(out).all()
    layers = dict(model.named_modules())
    assert model.target_layer in layers  # the Grad-CAM target exists


def test_paper_cnn_parameter_count_matches_the_published_design():
    # 3x3 convs 1->32->64->128 (+bias), Dense(128 * 16 * 16 -> 128), Dense(128 -> 4) at 128 px
    expected = (9 * 1 * 32 + 32) + (9 * 32 * 64 + 64) + (9 * 64 * 128 + 128) \
        + (128 * 16 * 16 * 128 + 128) + (128 * 4 + 4)
    info = model_info(create_model("paper-cnn", image_size=128), 128)
    assert info.parameters == expected == 4_287_620


def test_braintumor_net_is_small_and_cheap():
    model = create_model("braintumor-net")
    info = model_info(model, 128)
    assert info.parameters == sum(p.numel() for p in model.parameters())
    assert info.parameters < 2_000_000  # < 8 MB of fp32 weights, far under the 20 MB limit
    paper = model_info(create_model("paper-cnn", image_size=128), 128)
    assert 0 < info.flops < paper.flops  # fewer FLOPs per image than the baseline
    # Its Grad-CAM target is the last stage, whose output feeds global average pooling.
    target = dict(model.named_modules())[model.target_layer]
    assert target is model.stages[-1]
    assert isinstance(model.head[0], nn.AdaptiveAvgPool2d)


def test_braintumor_net_trains_on_a_batch():
    torch.manual_seed(0)
    model = create_model("braintumor-net").train()
    x, y = torch.rand(8, 1, 64, 64), torch.arange(8) % 4
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    losses = []
    for _ in range(8):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_tumour_pooling_adds_a_tumour_map_that_steers_the_logits():
    plain = create_model("braintumor-net")
    model = create_model("braintumor-net", tumour_pooling=True).eval()
    c = 256  # channels of the last stage
    extra = (c + 1) + c * 4  # the 1x1 tumour head, and the classifier's second half
    assert model_info(model, 64).parameters == model_info(plain, 64).parameters + extra
    x = torch.rand(2, 1, 64, 64)
    with torch.no_grad():
        out = model(x)
        assert out.shape == (2, 4) and torch.isfinite(out).all()
        # The pooled-under-the-map half of the features matters: change the map, change
        # the logits (the last-stage features themselves stay the same).
        model.tumour_head.bias.add_(5.0)
        assert not torch.allclose(model(x), out)
    assert model.target_layer in dict(model.named_modules())


def test_stem_relu_after_max_pool_is_exactly_relu_before_it():
    """The stem pools before its ReLU (cheaper); both orders give identical values and
    gradients, so weights trained with either order load into the other unchanged."""
    torch.manual_seed(0)
    model = create_model("braintumor-net", depths=(1, 2, 2, 2)).train()
    conv, bn, pool, relu = model.stem
    assert isinstance(pool, nn.MaxPool2d) and isinstance(relu, nn.ReLU)
    old = create_model("braintumor-net", depths=(1, 2, 2, 2)).train()
    old.load_state_dict(model.state_dict())
    old.stem = nn.Sequential(old.stem[0], old.stem[1], old.stem[3], old.stem[2])
    x = torch.rand(6, 1, 64, 64)
    outs = []
    for m in (model, old):
        torch.manual_seed(1)  # the same dropout draw
        out = m(x)
        out.logsumexp(1).sum().backward()
        outs.append((out.detach(), {k: p.grad for k, p in m.named_parameters()}))
    assert torch.equal(outs[0][0], outs[1][0])
    assert all(torch.equal(outs[0][1][k], outs[1][1][k]) for k in outs[0][1])


def test_stem_norm_after_pool_normalises_the_pooled_map():
    """The faster stem order is its own model: conv, max-pool, then batch norm over the
    pooled cells (a quarter of the pixels); same parameters, under names that tell it apart."""
    torch.manual_seed(0)
    model = create_model("braintumor-net", stem_norm_after_pool=True).train()
    conv, pool, bn, relu = model.stem
    assert isinstance(pool, nn.MaxPool2d) and isinstance(bn, nn.BatchNorm2d)
    x = torch.rand(4, 1, 64, 64)
    model(x)
    with torch.no_grad():
        pooled = pool(conv((x - 0.5) / 0.25))
    assert pooled.shape[-1] == 16  # the conv's 32x32 output, pooled
    # one training forward from zero running stats with momentum 0.1
    assert torch.allclose(bn.running_mean, 0.1 * pooled.mean((0, 2, 3)), atol=1e-6)
    default = create_model("braintumor-net")
    assert "stem.1.weight" in dict(default.named_parameters())  # BN second in the default
    assert "stem.2.weight" in dict(model.named_parameters())  # BN third after the pool
    assert model_info(model, 64).parameters == model_info(default, 64).parameters


def test_space_to_depth_stem_is_one_12x12_conv_with_stride_4():
    """PixelUnshuffle(4) then a 3x3 conv equals a 12x12 conv with stride 4 and padding 4
    whose kernel is the 3x3 kernel's 16 channels laid back onto their 4x4 pixel blocks: the
    stem sees a 12-pixel window and never builds a map finer than a quarter of the image."""
    torch.manual_seed(0)
    model = create_model("braintumor-net", stem="space-to-depth").eval()
    unshuffle, conv, bn, relu = model.stem
    assert isinstance(unshuffle, nn.PixelUnshuffle) and conv.in_channels == 16
    x = torch.rand(2, 1, 64, 64)
    w = conv.weight  # (32, 16, 3, 3); channel c of a cell is pixel (c // 4, c % 4) of its block
    big = w.reshape(32, 1, 4, 4, 3, 3).permute(0, 1, 4, 2, 5, 3).reshape(32, 1, 12, 12)
    with torch.no_grad():
        assert torch.allclose(conv(unshuffle(x)), nn.functional.conv2d(x, big, stride=4,
                                                                       padding=4), atol=1e-5)
        assert model.stem(x).shape == (2, 32, 16, 16)
        assert model(x).shape == (2, 4)
    info = model_info(model, 64)  # the model says its input has 1 channel, not the conv's 16
    assert info.parameters == sum(p.numel() for p in model.parameters())


def test_stem_options_are_checked():
    with pytest.raises(ValueError, match="stem must be one of conv-pool, space-to-depth"):
        create_model("braintumor-net", stem="patchify")
    with pytest.raises(ValueError, match="conv-pool stem only"):
        create_model("braintumor-net", stem="space-to-depth", stem_norm_after_pool=True)
    with pytest.raises(ValueError, match="image size 190 is not a multiple of 4"):
        create_model("braintumor-net", stem="space-to-depth", image_size=190)
    with pytest.raises(ValueError, match="space-to-depth stem only"):
        create_model("braintumor-net", stem_depth=2)
    with pytest.raises(ValueError, match="at least 1"):
        create_model("braintumor-net", stem="space-to-depth", stem_depth=0)


def test_space_to_depth_stem_depth_adds_convs_at_a_quarter_of_the_image():
    model = create_model("braintumor-net", stem="space-to-depth", stem_depth=2).eval()
    convs = [m for m in model.stem if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels) for c in convs] == [(16, 32), (32, 32)]
    with torch.no_grad():
        assert model.stem(torch.rand(2, 1, 32, 32)).shape == (2, 32, 8, 8)


def test_drop_path_drops_whole_residual_branches_in_training_only():
    """Stochastic depth: each sample's branch is either zeroed or scaled by 1/(1-rate), the
    rate rises linearly over the blocks, and evaluation (and rate 0) is the plain model."""
    from braintumor.models.braintumor_net import BasicBlock, drop_path

    torch.manual_seed(0)
    x = torch.ones(2000, 3, 2, 2)
    y = drop_path(x, 0.25, training=True)
    kept = y[:, 0, 0, 0] != 0
    assert torch.all(y[kept] == 1 / 0.75) and torch.all(y[~kept] == 0)
    assert 0.2 < 1 - kept.float().mean().item() < 0.3  # about a quarter of the samples
    assert drop_path(x, 0.25, training=False) is x
    model = create_model("braintumor-net", depths=(1, 2, 2, 2), drop_path_rate=0.12)
    rates = [m.drop_path_rate for m in model.modules() if isinstance(m, BasicBlock)]
    assert rates == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.10, 0.12])
    plain = create_model("braintumor-net", depths=(1, 2, 2, 2))
    plain.load_state_dict(model.state_dict())  # no parameters of its own
    model.eval(), plain.eval()
    inp = torch.rand(2, 1, 64, 64)
    assert torch.equal(model(inp), plain(inp))
    with pytest.raises(ValueError, match="drop_path_rate"):
        create_model("braintumor-net", drop_path_rate=1.0)
