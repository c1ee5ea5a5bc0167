"""Batch augmentation: identity at evaluation, random per sample in training."""

from __future__ import annotations

import torch

from braintumor.training.augment import BatchAugment
from braintumor.training.config import AugmentConfig


def _batch() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.zeros(8, 1, 32, 32)
    x[:, :, 8:20, 4:14] = torch.rand(8, 1, 12, 10, generator=g)  # asymmetric content
    return x


def test_eval_mode_returns_the_batch_unchanged():
    aug = BatchAugment(AugmentConfig()).eval()
    x = _batch()
    assert torch.equal(aug(x), x)


def test_disabled_augmentation_is_identity_in_training():
    aug = BatchAugment(AugmentConfig(enabled=False)).train()
    x = _batch()
    assert torch.equal(aug(x), x)


def test_training_mode_changes_each_image_and_keeps_range():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig()).train()
    x = _batch()
    y = aug(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert 0.0 <= float(y.min()) and float(y.max()) <= 1.0
    changed = (y - x).abs().flatten(1).amax(1) > 1e-3
    assert bool(changed.all())
    # parameters are drawn per sample, not once per batch
    assert not torch.allclose(y[0] - x[0], y[1] - x[1])


def test_flip_only_recipe_flips():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig(rotation_degrees=0, hflip=1.0, vflip=0.0, zoom=(1.0, 1.0),
                                     translate=0.0, brightness=0.0, contrast=0.0)).train()
    x = _batch()
    assert torch.allclose(aug(x), x.flip(-1))


def test_masks_follow_geometric_ops_but_not_intensity_ones():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig(rotation_degrees=0, hflip=1.0, vflip=0.0, zoom=(1.0, 1.0),
                                     translate=0.0, brightness=0.3, contrast=0.3)).train()
    x = _batch()
    mask = (x > 0).float()
    y, m = aug.with_mask(x, mask)
    assert torch.equal(m, mask.flip(-1))  # flipped with its image, values untouched
    assert not torch.allclose(y, x.flip(-1))  # the image also got brightness/contrast


def test_masks_and_images_share_one_affine_draw():
    torch.manual_seed(0)
    aug = BatchAugment(AugmentConfig(rotation_degrees=20, hflip=0.5, vflip=0.0,
                                     zoom=(0.9, 1.1), translate=0.05, brightness=0.0,
                                     contrast=0.0)).train()
    x = (_batch() > 0).float()  # an image that is its own mask
    y, m = aug.with_mask(x, x.clone())
    assert not torch.allclose(y, x)  # it was warped...
    assert torch.allclose(y, m, atol=1e-6)  # ...and its mask exactly the same way


def test_with_and_without_masks_the_images_are_augmented_identically():
    aug = BatchAugment(AugmentConfig()).train()
    x = _batch()
    torch.manual_seed(1)
    plain = aug(x)
    torch.manual_seed(1)
    y, _ = aug.with_mask(x, (x > 0).float())
    assert torch.allclose(plain, y, atol=1e-6)


def _only(**kw) -> AugmentConfig:
    base = dict(rotation_degrees=0, hflip=0.0, vflip=0.0, zoom=(1.0, 1.0), translate=0.0,
                brightness=0.0, contrast=0.0)
    return AugmentConfig(**{**base, **kw})


def test_flips_folded_into_the_warp_flip():
    """With a warp active, flips are part of the one affine resampling: a near-zero rotation
    plus a certain flip must give the flipped image (both axes)."""
    torch.manual_seed(0)
    x = _batch()
    for dim, flip in ((-1, dict(hflip=1.0)), (-2, dict(vflip=1.0))):
        aug = BatchAugment(_only(rotation_degrees=1e-6, **flip)).train()
        assert aug.warps
        assert torch.allclose(aug(x), x.flip(dim), atol=1e-4)


def test_zoom_magnifies_about_the_centre():
    """Scale 2 reads the output's pixel q from the input's q/2: a centred square of half the
    side fills the image (kornia's convention: > 1 zooms in)."""
    torch.manual_seed(0)
    x = torch.zeros(1, 1, 32, 32)
    x[..., 12:20, 12:20] = 1.0  # 8 px square in the centre
    y = BatchAugment(_only(zoom=(2.0, 2.0))).train()(x)
    assert float(y[..., 10:22, 10:22].min()) == 1.0  # the 16 px centre is inside the square
    assert float(y[..., :6, :].max()) == 0.0  # the outer ring stays background


def test_rotation_turns_non_square_images_without_shear():
    """On a wide image the warp is still a rotation once expressed in pixels."""
    torch.manual_seed(0)
    aug = BatchAugment(_only(rotation_degrees=90)).train()
    theta = aug._inverse_affine(1, torch.tensor([False]), torch.tensor([False]), 32, 64)
    # whatever the angle drawn, the linear part is a rotation in pixel units
    lin = theta[0, :, :2] * torch.tensor([[1.0, 2.0], [0.5, 1.0]])  # in pixel units
    assert torch.allclose(lin @ lin.T, torch.eye(2), atol=1e-5)


def test_intensity_matches_kornia_semantics():
    """Brightness adds (factor - 1), contrast multiplies by factor, each clamped, as
    kornia's adjust_brightness / adjust_contrast do (the published recipe's meaning)."""
    from kornia.enhance import adjust_brightness, adjust_contrast

    x = _batch()
    torch.manual_seed(3)
    y = BatchAugment(_only(brightness=0.4, contrast=0.4)).train()(x)
    torch.manual_seed(3)
    torch.rand(8), torch.rand(8)  # the flip draws
    b = torch.rand(8, dtype=torch.float64) * 0.8 - 0.4
    k = torch.rand(8, dtype=torch.float64) * 0.8 + 0.6
    want = adjust_contrast(adjust_brightness(x, b.float()), k.float())
    assert torch.allclose(y, want, atol=1e-6)


def test_the_callers_batch_is_never_written():
    x = _batch()
    before = x.clone()
    torch.manual_seed(0)
    for cfg in (_only(brightness=0.3), _only(contrast=0.3), AugmentConfig()):
        BatchAugment(cfg).train()(x)
        assert torch.equal(x, before)


def test_random_erasing_zeroes_one_rectangle_per_chosen_image():
    x = torch.full((16, 1, 32, 40), 0.5)
    torch.manual_seed(0)
    y = BatchAugment(_only(erase_prob=1.0, erase_area=(0.05, 0.2))).train()(x)
    for img in y[:, 0]:
        zero = img == 0
        rows, cols = zero.any(1).nonzero(), zero.any(0).nonzero()
        box = zero[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        assert bool(box.all())  # one solid rectangle, nothing zeroed outside it
        assert 0.04 * 32 * 40 <= int(zero.sum()) <= 0.21 * 32 * 40
        assert bool((img[~zero] == 0.5).all())  # the rest untouched
    assert torch.equal(x, torch.full_like(x, 0.5))  # the caller's batch is not written


def test_random_erasing_spares_some_images_and_the_masks():
    x = torch.full((64, 1, 16, 16), 0.5)
    mask = torch.ones(64, 1, 16, 16)
    torch.manual_seed(1)
    y, m = BatchAugment(_only(erase_prob=0.5)).train().with_mask(x, mask)
    erased = (y == 0).flatten(1).any(1)
    assert 10 < int(erased.sum()) < 54
    assert torch.equal(m, mask)


def test_recipes_without_erasing_keep_their_random_stream():
    """erase_prob 0 draws nothing, so earlier seeded runs (the bundled one) are unchanged."""
    x = _batch()
    torch.manual_seed(5)
    a = BatchAugment(AugmentConfig(rotation_degrees=10)).train()(x)
    after_a = torch.rand(1)
    torch.manual_seed(5)
    b = BatchAugment(AugmentConfig(rotation_degrees=10, erase_prob=0.0,
                                   erase_area=(0.1, 0.3))).train()(x)
    assert torch.equal(a, b) and torch.equal(after_a, torch.rand(1))
