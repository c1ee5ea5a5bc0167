"""Shift augmentation (training/appearance.py and the aspect stretch in the warp)."""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path

import pytest
import torch

from braintumor.training.appearance import AppearanceAugment, enabled_ops
from braintumor.training.augment import BatchAugment
from braintumor.training.config import AugmentConfig, ConfigError, load_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The augment fields that existed before the shift augmentation.
_BEFORE_SHIFT = ("enabled", "rotation_degrees", "hflip", "vflip", "zoom", "translate",
                 "brightness", "contrast", "mixup_alpha", "cutmix_alpha", "mix_prob",
                 "erase_prob", "erase_area")
# Each op at probability 1 (aspect: its stretch), all else of the recipe off.
SHIFT_OPS = {
    "aspect": dict(aspect=0.3),
    "bias_field": dict(bias_field_prob=1.0),
    "gamma": dict(gamma_prob=1.0),
    "histogram_shift": dict(histogram_shift_prob=1.0),
    "invert": dict(invert_prob=1.0),
    "low_resolution": dict(low_resolution_prob=1.0),
    "blur": dict(blur_prob=1.0),
    "sharpen": dict(sharpen_prob=1.0),
    "noise": dict(noise_prob=1.0),
}


def _only(**kw) -> AugmentConfig:
    base = dict(rotation_degrees=0, hflip=0.0, vflip=0.0, zoom=(1.0, 1.0), translate=0.0,
                brightness=0.0, contrast=0.0)
    return AugmentConfig(**{**base, **kw})


def _batch(n: int = 8, size: int = 48) -> torch.Tensor:
    """Head-like images: black background, a textured ellipse, a bright blob."""
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size),
                            indexing="ij")
    head = ((yy / 0.8) ** 2 + (xx / 0.65) ** 2) <= 1
    x = torch.zeros(n, 1, size, size)
    x[:, :, head] = 0.25 + 0.5 * torch.rand(n, 1, int(head.sum()), generator=g)
    x[:, :, size // 3:size // 2, size // 3:size // 2] = 0.95
    return x


def _run(cfg: AugmentConfig, x: torch.Tensor, seed: int = 0, mask=None):
    torch.manual_seed(seed)
    return BatchAugment(cfg).train().with_mask(x, mask)


@pytest.mark.parametrize("name", SHIFT_OPS)
def test_each_op_changes_every_image_keeps_the_range_and_spares_masks(name):
    x = _batch()
    mask = (x > 0.9).float()
    y, m = _run(_only(**SHIFT_OPS[name]), x, mask=mask)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    assert bool(((y - x).abs().flatten(1).amax(1) > 1e-3).all())
    assert torch.equal(x, _batch())  # the caller's batch is not written
    if name == "aspect":  # geometric: the mask moves with its image
        assert not torch.equal(m, mask)
    else:  # intensity: the mask is untouched
        assert torch.equal(m, mask)


@pytest.mark.parametrize("name", SHIFT_OPS)
def test_each_op_is_seeded(name):
    """Same seed, same batch; another seed, another (at probability 0.5: the choice of
    images is random too, and inversion has no other parameter)."""
    x = _batch(n=16)
    cfg = _only(**{k: 0.5 if k.endswith("_prob") else v for k, v in SHIFT_OPS[name].items()})
    assert torch.equal(_run(cfg, x, seed=3)[0], _run(cfg, x, seed=3)[0])
    assert not torch.equal(_run(cfg, x, seed=3)[0], _run(cfg, x, seed=4)[0])


def test_off_by_default_and_the_bundled_recipe_is_unchanged():
    """Every shift op is off by default and draws nothing: the bundled recipe's batches (and
    the random stream after them) are bit-identical to a recipe that names them at 0."""
    assert enabled_ops(AugmentConfig()) == [] and AugmentConfig().aspect == 0
    bundled = load_config(CONFIGS / "braintumor-net.yaml").augment
    assert not AppearanceAugment(bundled).active
    x = _batch()
    torch.manual_seed(5)
    a = BatchAugment(bundled).train()(x)
    after = torch.rand(1)
    zeros = {k: 0.0 for kw in SHIFT_OPS.values() for k in kw}
    named = AugmentConfig(**{**bundled.__dict__, **zeros, "gamma": (0.5, 2.0)})
    torch.manual_seed(5)
    b = BatchAugment(named).train()(x)
    assert torch.equal(a, b) and torch.equal(after, torch.rand(1))


def test_probability_picks_some_images():
    x = _batch(n=64, size=16)
    y, _ = _run(_only(gamma_prob=0.5, gamma=(0.5, 0.5)), x)
    changed = (y - x).abs().flatten(1).amax(1) > 1e-6
    assert 15 < int(changed.sum()) < 49
    assert torch.allclose(y[changed], x[changed] ** 0.5, atol=1e-6)
    assert torch.equal(y[~changed], x[~changed])


def test_gamma_is_a_power_drawn_log_uniform():
    x = _batch(n=256, size=8)
    y, _ = _run(_only(gamma_prob=1.0, gamma=(0.5, 2.0)), x)
    inside = (x > 0.3) & (x < 0.7)
    g = (y[inside].log() / x[inside].log()).view(-1)
    assert 0.5 - 1e-3 <= float(g.min()) and float(g.max()) <= 2.0 + 1e-3
    per_image = [(y[i][inside[i]].log() / x[i][inside[i]].log()).mean() for i in range(256)]
    assert abs(float(torch.stack(per_image).log().mean())) < 0.15  # median near 1


def test_bias_field_is_smooth_multiplicative_and_bounded():
    x = torch.full((16, 1, 32, 32), 0.5)
    x[:, :, :4] = 0.0  # background rows
    s = 0.4
    y, _ = _run(_only(bias_field_prob=1.0, bias_field_strength=s), x)
    gain = y[:, :, 4:] / 0.5
    assert math.exp(-s) - 1e-4 <= float(gain.min()) and float(gain.max()) <= math.exp(s) + 1e-4
    assert float(gain.diff(dim=-1).abs().max()) < 0.1  # smooth from pixel to pixel
    assert float(y[:, :, :4].abs().max()) == 0.0  # zero stays zero


def test_histogram_shift_is_monotone_and_keeps_black_and_white():
    ramp = torch.linspace(0, 1, 256).view(1, 1, 1, 256).repeat(16, 1, 4, 1)
    y, _ = _run(_only(histogram_shift_prob=1.0, histogram_shift_points=6,
                      histogram_shift_strength=0.45), ramp)
    assert bool((y.diff(dim=-1) >= -1e-6).all())
    assert float(y[..., 0].abs().max()) < 1e-6 and float((y[..., -1] - 1).abs().max()) < 1e-6
    assert float((y - ramp).abs().max()) > 0.02


def test_inversion_inverts_the_head_and_keeps_the_background_black():
    x = _batch(n=4, size=64)
    y, _ = _run(_only(invert_prob=1.0), x)
    background = x[0, 0] == 0
    assert float(y[:, :, 0, 0].max()) == 0.0  # the corner is far from the head
    core = x[0, 0, 24:40, 24:40]
    assert torch.allclose(y[0, 0, 24:40, 24:40], 1 - core, atol=1e-6)
    assert float(y[0, 0][background].mean()) < 0.2


def test_low_resolution_removes_fine_detail_only():
    checker = ((torch.arange(32).view(-1, 1) + torch.arange(32)) % 2).float()
    x = torch.stack([checker, torch.full((32, 32), 0.4)]).unsqueeze(1)
    y, _ = _run(_only(low_resolution_prob=1.0, low_resolution_scale=(0.5, 0.5)), x)
    assert float(y[0].std()) < 0.1 * float(x[0].std())  # the 1-px pattern is gone
    assert torch.allclose(y[1], x[1], atol=1e-6)  # a flat image has nothing to lose


def test_blur_smooths_and_sharpen_sharpens():
    x = _batch(n=4, size=32)

    def edges(t):
        return float(t.diff(dim=-1).abs().mean())

    blurred, _ = _run(_only(blur_prob=1.0, blur_sigma=(1.0, 1.0)), x)
    sharpened, _ = _run(_only(sharpen_prob=1.0, sharpen_factor=(2.0, 2.0)), x)
    assert edges(blurred) < 0.7 * edges(x) < 0.7 * edges(sharpened)


@pytest.mark.parametrize("rician", [0.0, 1.0])
def test_noise_is_gaussian_or_rician(rician):
    x = torch.zeros(8, 1, 64, 64)
    x[:, :, :, 32:] = 0.5
    y, _ = _run(_only(noise_prob=1.0, noise_std=(0.05, 0.05), noise_rician=rician), x)
    signal = y[:, :, :, 32:]
    assert abs(float(signal.std()) - 0.05) < 0.005
    background = y[:, :, :, :32]
    if rician:  # Rayleigh background: mean sigma * sqrt(pi / 2)
        assert abs(float(background.mean()) - 0.05 * math.sqrt(math.pi / 2)) < 0.003
    else:  # Gaussian, clamped at 0: about half the background stays black
        assert 0.4 < float((background == 0).float().mean()) < 0.6


def test_aspect_stretches_and_the_mask_follows():
    x = torch.zeros(32, 1, 64, 64)
    x[..., 24:40, 24:40] = 1.0  # a centred square, its own mask
    y, m = _run(_only(aspect=0.5), x, mask=x.clone())
    assert torch.allclose(y, m, atol=1e-6)
    ratios = []
    for img in (y[:, 0] > 0.5):
        rows, cols = img.any(1).nonzero(), img.any(0).nonzero()
        ratios.append((cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1))
    ratios = torch.tensor(ratios, dtype=torch.float64)
    assert float(ratios.min()) < 0.85 and float(ratios.max()) > 1.15
    assert 1 / 1.5 - 0.15 < float(ratios.min()) and float(ratios.max()) < 1.5 + 0.15


@pytest.mark.parametrize("text, match", [
    ("gamma_prob: 1.5", "augment.gamma_prob must be in"),
    ("noise_rician: -0.1", "augment.noise_rician must be in"),
    ("aspect: 2", "augment.aspect must be in"),
    ("bias_field_strength: -0.1", "augment.bias_field_strength must be in"),
    ("histogram_shift_points: 2", "augment.histogram_shift_points must be an integer"),
    ("histogram_shift_points: 4.5", "augment.histogram_shift_points must be an integer"),
    ("histogram_shift_strength: 0.5", "augment.histogram_shift_strength must be in"),
    ("gamma: [0, 1.5]", "augment.gamma must be \\[low, high\\]"),
    ("gamma: [1.5, 0.7]", "augment.gamma must be \\[low, high\\]"),
    ("low_resolution_scale: [0.5, 1.5]", "augment.low_resolution_scale must be"),
    ("blur_sigma: [0, 1]", "augment.blur_sigma must be"),
    ("sharpen_factor: [2, 1]", "augment.sharpen_factor must be"),
    ("noise_std: [0.01, 0.9]", "augment.noise_std must be"),
    ("noise_std: 0.1", "augment.noise_std must be a list of two numbers"),
])
def test_bad_shift_settings_are_refused_when_the_config_loads(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(f"augment:\n  {text}\n")
    with pytest.raises(ConfigError, match=match):
        load_config(f)


def test_robust_config_is_the_bundled_recipe_plus_the_shift_ops(tmp_path):
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    robust_cfg = load_config(CONFIGS / "experiments" / "braintumor-net-robust.yaml")
    robust = robust_cfg.to_dict()
    assert {k for k in bundled if bundled[k] != robust[k]} == {"augment"}
    changed = {k for k in bundled["augment"] if bundled["augment"][k] != robust["augment"][k]}
    shift_fields = {f.name for f in fields(AugmentConfig)} - set(_BEFORE_SHIFT)
    assert changed and changed <= shift_fields
    assert robust["augment"]["invert_prob"] == 0.0  # not until validation says it helps
    assert enabled_ops(robust_cfg.augment) == ["bias_field", "gamma", "histogram_shift",
                                               "low_resolution", "blur", "sharpen", "noise"]
    assert robust["augment"]["aspect"] > 0
    robust_cfg.dump(tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == robust_cfg  # a run's config.yaml repeats it


def test_a_run_trains_with_the_robust_recipes_augmentation_and_masks(tiny_data, tiny_config,
                                                                     tmp_path):
    """End to end: the robust config's augment section (every shift op) with tumour masks,
    through Lightning; the run's config.yaml keeps the shift settings."""
    from braintumor.training.run import train
    from tests.conftest import write_masks

    robust = load_config(CONFIGS / "experiments" / "braintumor-net-robust.yaml").augment
    masks = write_masks(tiny_data, tmp_path / "masks", size=48)
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=1, masks=str(masks),
                      mask_empty_classes=["notumor"], augment=robust)
    train(cfg)
    assert (tmp_path / "run" / "bundle" / "model.safetensors").is_file()
    assert load_config(tmp_path / "run" / "config.yaml").augment == robust


def test_candidate_config_is_v2_plus_the_robust_shift_ops():
    """The one candidate bundle for issues 22 and 23: the lesion-grounded recipe with the
    robust recipe's augmentation, nothing else changed."""
    v2 = load_config(CONFIGS / "experiments" / "braintumor-net-v2.yaml").to_dict()
    robust = load_config(CONFIGS / "experiments" / "braintumor-net-robust.yaml").to_dict()
    candidate = load_config(CONFIGS / "experiments" / "braintumor-net-v2-robust.yaml").to_dict()
    assert {k for k in v2 if v2[k] != candidate[k]} == {"augment"}
    assert candidate["augment"] == robust["augment"]
    assert candidate["model"] == "braintumor-net-v2" and candidate["mask_loss"] == "dice-bce"
