"""Each attribution method: runs on 1-channel models, lands on the evidence, explains the
class it is asked to, and is computed the way its paper defines it."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from torch import nn

from braintumor.data.preprocess import PreprocessConfig, preprocess
from braintumor.explain import Explainer, get_method, list_methods
from braintumor.explain.base import TargetScore, normalise_maps, resolve_layer
from braintumor.explain.gradcam_plus_plus import LayerGradCamPlusPlus
from braintumor.explain.registry import canonical_method
from braintumor.models import create_model
from tests.conftest import CLASSES
from tests.explain.conftest import SIZE, synthetic_images, synthetic_masks

N_EVAL = 24  # 18 with a blob


@pytest.fixture(scope="module")
def eval_set(tiny_config):
    raws, labels = synthetic_images(N_EVAL, 50_000)
    masks = synthetic_masks(N_EVAL, 50_000)
    pres = [preprocess(r, tiny_config) for r in raws]
    return raws, labels, masks, pres


def _hit_rate(explainer: Explainer, eval_set, method: str) -> float:
    raws, labels, masks, _ = eval_set
    hits = []
    for raw, mask in zip(raws, masks, strict=True):
        if mask is None:
            continue
        heat = explainer.explain(raw, method=method).heatmap
        hits.append(bool(mask[np.unravel_index(np.argmax(heat), heat.shape)]))
    return float(np.mean(hits))


def test_tiny_model_learned_the_task(tiny_model, tiny_config, eval_set):
    _, labels, _, pres = eval_set
    batch = Explainer(tiny_model, preprocess=tiny_config).explain_batch(
        np.stack([p.image for p in pres]))
    predicted = [CLASSES[i] for i in batch.predictions]
    assert np.mean([p == y for p, y in zip(predicted, labels, strict=True)]) >= 0.9


def test_gradcam_maximum_falls_inside_the_blob(tiny_model, tiny_config, eval_set):
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    rate = _hit_rate(explainer, eval_set, "gradcam")
    blob_share = np.mean([m.mean() for m in eval_set[2] if m is not None])
    assert rate >= 0.7, f"Grad-CAM maximum in the blob for only {rate:.0%} of images"
    assert rate > 5 * blob_share  # the blob is ~3 % of the image: far above chance


@pytest.mark.parametrize("method", ["gradcam++", "guided-gradcam", "occlusion",
                                    "integrated-gradients"])
def test_other_methods_point_at_the_blob(tiny_model, tiny_config, eval_set, method):
    rate = _hit_rate(Explainer(tiny_model, preprocess=tiny_config), eval_set, method)
    assert rate >= 0.6, f"{method}: maximum in the blob for only {rate:.0%} of images"


@pytest.mark.parametrize("model_name", ["braintumor-net", "paper-cnn"])
@pytest.mark.parametrize("method", list_methods())
def test_every_method_runs_on_one_channel_registry_models(model_name, method):
    torch.manual_seed(0)
    kwargs = {"widths": (8, 16, 16, 32)} if model_name == "braintumor-net" else {}
    model = create_model(model_name, in_channels=1, image_size=32, **kwargs)
    images = (np.random.default_rng(0).random((3, 32, 32)) * 255).astype(np.uint8)
    batch = Explainer(model, preprocess=PreprocessConfig(image_size=32)).explain_batch(
        images, method, targets=[0, 1, None])
    assert batch.maps.shape == (3, 32, 32)
    assert batch.maps.dtype == np.float32
    assert np.isfinite(batch.maps).all() and batch.maps.min() >= 0 and batch.maps.max() <= 1
    assert batch.targets[:2].tolist() == [0, 1]
    assert batch.targets[2] == batch.predictions[2]
    np.testing.assert_allclose(batch.probabilities.sum(axis=1), 1.0, rtol=1e-6)


def test_gradcam_prediction_comes_from_the_same_forward(tiny_model, tiny_config, eval_set):
    """The logits returned with the map are the model's logits, with no second forward."""
    images = np.stack([p.image for p in eval_set[3][:6]])
    calls = []
    hook = tiny_model.register_forward_hook(lambda *a: calls.append(1))
    try:
        batch = Explainer(tiny_model, preprocess=tiny_config).explain_batch(images, "gradcam")
    finally:
        hook.remove()
    assert len(calls) == 1
    with torch.no_grad():
        from braintumor.data.preprocess import to_model_input
        expected = tiny_model(to_model_input(images)).numpy()
    np.testing.assert_allclose(batch.logits, expected, rtol=1e-5, atol=1e-5)
    assert batch.predictions.tolist() == expected.argmax(1).tolist()
    assert batch.targets.tolist() == batch.predictions.tolist()


def test_gradcam_matches_the_definition(tiny_model, tiny_config, eval_set):
    """ReLU(sum_k mean(dy/dA_k) * A_k), upsampled bicubically (clipped at 0: see
    base.UPSAMPLE_MODE), scaled to max 1."""
    image = eval_set[3][0].image
    x = torch.from_numpy(image).float().div(255)[None, None]
    _, layer = resolve_layer(tiny_model)
    store = {}
    hook = layer.register_forward_hook(lambda m, i, o: store.update(a=o))
    try:
        logits = tiny_model(x)
    finally:
        hook.remove()
    target = int(logits.argmax())
    grads = torch.autograd.grad(logits[0, target], store["a"])[0]
    cam = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * store["a"]).sum(1, keepdim=True))
    cam = torch.nn.functional.interpolate(cam, (SIZE, SIZE), mode="bicubic")[0, 0].clamp_min(0)
    expected = (cam / cam.max()).detach().numpy()
    got = Explainer(tiny_model, preprocess=tiny_config).explain_batch(image[None]).maps[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


class _ChannelSum(nn.Module):
    """Score = sum of channel 0 of ``feat``: Grad-CAM and Grad-CAM++ must both return that
    channel's activation (its gradient is 1 everywhere, the other channels' 0)."""

    def __init__(self):
        super().__init__()
        self.feat = nn.Conv2d(1, 3, 3, padding=1)

    def forward(self, x):
        a = self.feat(x).relu()
        return torch.stack([a[:, 0].sum(dim=(1, 2)), a[:, 1].sum(dim=(1, 2))], dim=1)


@pytest.mark.parametrize("method", ["gradcam", "gradcam++"])
def test_cam_of_a_channel_sum_is_that_channel(method):
    torch.manual_seed(1)
    model = _ChannelSum()
    x = torch.rand(2, 1, 16, 16)
    maps = get_method(method)(TargetScore(model, torch.tensor([0, 0])), x, model.feat)
    expected = normalise_maps(model.feat(x)[:, 0].relu().detach())
    np.testing.assert_allclose(maps.numpy(), expected.numpy(), atol=1e-5)


def test_gradcam_plus_plus_weights_follow_the_closed_form():
    """alpha = g^2 / (2 g^2 + sum(A) g^3), w_k = sum(alpha * relu(g)) on a hand example."""
    acts = torch.tensor([[[[1.0, 2.0], [0.0, 1.0]], [[0.5, 0.0], [0.0, 0.5]]]])

    class Fixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = nn.Identity()

        def forward(self, x):  # score = sum of (c * A^2): a non-uniform gradient 2cA
            a = self.layer(acts + 0 * x.sum())
            return (a.pow(2) * torch.tensor([1.0, 0.5]).view(1, 2, 1, 1)).sum(dim=(1, 2, 3))

    model = Fixed()
    got = LayerGradCamPlusPlus(model, model.layer).attribute(torch.zeros(1, 1, 2, 2))
    g = 2 * torch.tensor([1.0, 0.5]).view(1, 2, 1, 1) * acts
    s = acts.sum(dim=(2, 3), keepdim=True)
    alpha = g**2 / (2 * g**2 + s * g**3)
    alpha = torch.where(g != 0, alpha, torch.zeros_like(alpha))
    w = (alpha * g.clamp_min(0)).sum(dim=(2, 3), keepdim=True)
    np.testing.assert_allclose(got.detach().numpy(),
                               torch.relu((w * acts).sum(1, keepdim=True)).numpy(), atol=1e-6)


def test_explained_class_is_the_one_asked_for(tiny_model, tiny_config, eval_set):
    raw = eval_set[0][0]  # a glioma: blob top-left
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    default = explainer.explain(raw)
    other = explainer.explain(raw, target="pituitary")
    by_index = explainer.explain(raw, target=CLASSES.index("pituitary"))
    assert default.target == default.label == "glioma"
    assert other.target == "pituitary" and other.label == "glioma"
    np.testing.assert_array_equal(other.heatmap, by_index.heatmap)
    assert not np.allclose(default.heatmap, other.heatmap)
    with pytest.raises(ValueError, match="unknown class"):
        explainer.explain(raw, target="astrocytoma")
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(raw, target=7)


def test_layer_defaults_to_target_layer_and_can_be_overridden(tiny_model, tiny_config):
    assert Explainer(tiny_model, preprocess=tiny_config).layer_name == "features.10"
    shallow = Explainer(tiny_model, preprocess=tiny_config, layer="features.4")
    assert shallow.layer_name == "features.4"
    with pytest.raises(ValueError, match="no layer named"):
        Explainer(tiny_model, layer="features.99")

    plain = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 4))
    assert Explainer(plain).layer_name == "2"  # the last convolution


def test_method_names_and_class_count_are_checked(tiny_model, tiny_config):
    assert canonical_method("Grad-CAM++") == "gradcam++"
    assert canonical_method("IG") == "integrated-gradients"
    with pytest.raises(ValueError, match="unknown explanation method"):
        canonical_method("lime")
    explainer = Explainer(tiny_model, classes=["a", "b", "c"], preprocess=tiny_config)
    with pytest.raises(ValueError, match="returns 4 scores but 3 classes"):
        explainer.explain_batch(np.zeros((1, SIZE, SIZE), np.uint8))
    empty = Explainer(tiny_model, preprocess=tiny_config).explain_batch(
        np.zeros((0, SIZE, SIZE), np.uint8))
    assert empty.maps.shape == (0, SIZE, SIZE) and empty.logits.shape == (0, 4)


def test_mode_grad_state_and_threads(tiny_model, tiny_config, eval_set):
    """Works under inference_mode, restores train(), and concurrent calls do not mix."""
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    images = np.stack([p.image for p in eval_set[3][:8]])
    reference = explainer.explain_batch(images).maps
    tiny_model.train()
    try:
        with torch.inference_mode():
            inside = explainer.explain_batch(images).maps
        assert tiny_model.training
    finally:
        tiny_model.eval()
    np.testing.assert_allclose(inside, reference, atol=1e-6)

    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = explainer.explain_batch(images[i : i + 1]).maps[0]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i in range(len(images)):
        np.testing.assert_allclose(results[i], reference[i], atol=1e-6)
