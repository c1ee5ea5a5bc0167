"""The evidence checks: each separates a meaningful map from a meaningless one, and their
baselines are what chance would score."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from braintumor.cli import main
from braintumor.data.preprocess import preprocess
from braintumor.explain import Explainer
from braintumor.explain.base import AttributionMethod
from braintumor.explain.evidence import run_evidence
from braintumor.explain.faithfulness import (
    _curve_images,
    auc,
    deletion_insertion,
    fill_image,
    random_saliency,
    saliency_ranks,
)
from braintumor.explain.localisation import (
    expected_random_iou,
    head_mask,
    localisation_scores,
    top_region,
)
from braintumor.explain.sanity import (
    cascade_order,
    model_randomisation_check,
    randomised_copy,
    rank_correlation,
)
from braintumor.models import create_model
from tests.conftest import blob_mask, make_slice, write_masks
from tests.explain.conftest import synthetic_images


class ImageIntensity(AttributionMethod):
    """A "saliency map" that is just the input: it ignores the model entirely, so the
    randomisation check must fail it (Adebayo et al.'s edge-detector argument)."""

    name = "image-intensity"

    def raw_maps(self, score, inputs, layer):
        score.resolve(inputs)
        return inputs[:, 0]


@pytest.fixture(scope="module")
def images(tiny_config):
    raws, _ = synthetic_images(16, 70_000)
    return np.stack([preprocess(r, tiny_config).image for r in raws])


def test_randomisation_separates_trained_from_random_weights(tiny_model, tiny_config, images):
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    result = model_randomisation_check(explainer, images, "gradcam", seed=0)
    assert result.n_images == len(images)
    assert result.mean_spearman < 0.5 and result.passed
    blind = model_randomisation_check(explainer, images, ImageIntensity(), seed=0)
    assert blind.mean_spearman > 0.99 and not blind.passed


def test_randomised_copy_leaves_the_original_and_the_rng_alone(tiny_model):
    before = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    state = torch.random.get_rng_state()
    clone = randomised_copy(tiny_model, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    for k, v in tiny_model.state_dict().items():
        assert torch.equal(v, before[k])
    changed = [k for k, v in clone.state_dict().items()
               if v.is_floating_point() and not torch.equal(v, before[k])]
    assert any("features.0.weight" == k for k in changed) and "head.2.weight" in changed
    partial = randomised_copy(tiny_model, seed=3, prefixes=["head"])
    assert torch.equal(partial.state_dict()["features.0.weight"], before["features.0.weight"])
    assert not torch.equal(partial.state_dict()["head.2.weight"], before["head.2.weight"])


def test_cascade_runs_from_the_output_down():
    model = create_model("braintumor-net", widths=(8, 8, 8, 8))
    assert cascade_order(model) == ["head.3", "stages.3", "stages.2", "stages.1", "stages.0",
                                    "stem.1", "stem.0"]


def test_rank_correlation():
    a = np.arange(16.0).reshape(4, 4)
    assert rank_correlation(a, a**3) == pytest.approx(1.0)
    assert rank_correlation(a, -a) == pytest.approx(-1.0)
    assert rank_correlation(a, np.zeros_like(a)) == 0.0


def test_gradcam_beats_random_order_on_deletion_and_insertion(tiny_model, tiny_config, images):
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    batch = explainer.explain_batch(images, "gradcam")
    r = deletion_insertion(explainer, images, batch.maps, batch.targets, "gradcam", steps=16)
    assert r.n_images == len(images) and len(r.deletion.curve) == 17
    assert r.deletion.auc < r.random_deletion.auc - 0.05
    # The blurred start already shows where the blob is (the synthetic task is that easy),
    # so insertion starts near the top: the map wins, by little.
    assert r.insertion.auc > r.random_insertion.auc
    assert r.deletion_gain > 0 and r.insertion_gain > 0
    assert r.settings["random_block"] == 6  # 1/8 of 48 px
    assert 0 <= r.random_block_deletion.auc <= 1 and len(r.random_block_insertion.curve) == 17
    flat = deletion_insertion(explainer, images, batch.maps, batch.targets, "gradcam",
                              steps=8, deletion_fill="blur", insertion_fill="mean")
    assert flat.settings["deletion_fill"] == "blur"
    assert flat.insertion.auc > flat.random_insertion.auc + 0.05
    assert flat.deletion.auc < flat.random_deletion.auc


def test_curve_images_and_auc():
    image = np.arange(16, dtype=np.float32).reshape(4, 4) / 15
    ranks = saliency_ranks(image, np.random.default_rng(0))  # brightest pixel first
    assert ranks[3, 3] == 0 and ranks[0, 0] == 15
    fill = fill_image(image, "mean")
    seq = _curve_images(image, ranks, fill, steps=4, mode="deletion")
    np.testing.assert_array_equal(seq[0], image)
    np.testing.assert_allclose(seq[-1], fill)
    assert (seq[1] == fill).sum() == 4 and (seq[1][3] == fill[3]).all()
    ins = _curve_images(image, ranks, fill, steps=4, mode="insertion")
    np.testing.assert_allclose(ins[0], fill)
    np.testing.assert_array_equal(ins[-1], image)
    assert auc(np.linspace(1, 0, 11)) == pytest.approx(0.5)
    assert auc(np.ones(5)) == pytest.approx(1.0)


def test_block_random_order_removes_whole_blocks():
    rng = np.random.default_rng(0)
    sal = random_saliency((8, 8), rng, block=4)
    assert len(np.unique(sal)) == 4
    assert all(len(np.unique(sal[r:r + 4, c:c + 4])) == 1 for r in (0, 4) for c in (0, 4))
    ranks = saliency_ranks(sal, rng)
    first = ranks < 16  # the first quarter of the order is exactly one block
    assert any(first[r:r + 4, c:c + 4].all() for r in (0, 4) for c in (0, 4))
    assert random_saliency((8, 8), rng).std() > 0
    assert len(np.unique(random_saliency((5, 7), rng, 3))) == 6  # 2 x 3 blocks, cut at edges


def test_ties_are_broken_at_random_not_in_raster_order():
    flat = np.zeros((8, 8))
    firsts = {int(np.argmin(saliency_ranks(flat, np.random.default_rng(s)))) for s in range(20)}
    assert len(firsts) > 10


def test_localisation_scores_on_hand_made_maps():
    mask = np.zeros((20, 20), bool)
    mask[2:6, 2:6] = True  # 16 px = 4 % of the image
    peak = np.zeros((20, 20))
    peak[3, 3] = 1.0
    s = localisation_scores(peak, mask)
    assert s["pointing_game"] == 1.0 and s["energy_pointing_game"] == 1.0
    assert s["random_pointing_game"] == s["mask_fraction"] == pytest.approx(0.04)

    uniform = localisation_scores(np.ones((20, 20)), mask)
    assert uniform["pointing_game"] == pytest.approx(0.04)  # every pixel ties for the max
    assert uniform["energy_pointing_game"] == pytest.approx(0.04)
    zero = localisation_scores(np.zeros((20, 20)), mask)
    assert zero["pointing_game"] == zero["energy_pointing_game"] == pytest.approx(0.04)

    miss = np.zeros((20, 20))
    miss[15, 15] = 1.0
    assert localisation_scores(miss, mask)["pointing_game"] == 0.0

    ramp = np.zeros((20, 20))
    ramp[2:6, 2:6] = 1.0  # top 10 % = 40 px, of which the 16 mask pixels
    s = localisation_scores(ramp, mask)
    assert s["iou_top10"] == pytest.approx(16 / 40, abs=0.03)
    assert s["best_iou_top10"] == pytest.approx(16 / 40)
    with pytest.raises(ValueError, match="empty mask"):
        localisation_scores(peak, np.zeros((20, 20), bool))


def test_random_iou_baseline_matches_simulation():
    rng = np.random.default_rng(0)
    n, k, m = 400, 40, 16
    mask = np.zeros(n, bool)
    mask[:m] = True
    sims = []
    for _ in range(4000):
        region = np.zeros(n, bool)
        region[rng.choice(n, k, replace=False)] = True
        sims.append((region & mask).sum() / (region | mask).sum())
    assert expected_random_iou(n, k, m) == pytest.approx(np.mean(sims), abs=0.003)
    assert top_region(rng.random((20, 20)), 0.1).sum() == 40


def test_head_mask_covers_the_head_not_the_background():
    img = make_slice(64, 0, (0.35, 0.35))
    head = head_mask(img)
    assert head[32, 32] and not head[0, 0]
    assert head[blob_mask(64, 0, "glioma")].all()


def _write_masks(data_root, masks_root):
    write_masks(data_root, masks_root, size=64)


def test_explain_check_cli(tiny_bundle, synthetic_dataset, tmp_path, capsys):
    root = synthetic_dataset(n_per_class=4, size=64)
    masks = tmp_path / "masks"
    _write_masks(root, masks)
    out = tmp_path / "evidence.json"
    code = main(["explain-check", "--model", str(tiny_bundle), "--data", str(root),
                 "--split", "Training", "--masks", str(masks), "--methods", "gradcam,gradcam++",
                 "--limit", "12", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0
    report = json.loads(out.read_text())
    assert report["methods"] == ["gradcam", "gradcam++"]
    mf = report["model_faithfulness"]
    assert mf["n_images"] == 12 and [s["method"] for s in mf["sanity"]] == report["methods"]
    loc = report["localisation"]
    assert loc["n_images"] == 12  # 3 tumour classes x 4, notumor has no masks
    gradcam = loc["methods"][0]
    assert set(gradcam["per_class"]) == {"glioma", "meningioma", "pituitary"}
    overall = gradcam["overall"]
    assert overall["pointing_game"] > 3 * overall["random_pointing_game"]
    assert overall["energy_pointing_game"] > overall["random_energy_pointing_game"]
    assert overall["iou_top10"] > overall["random_iou_top10"]
    assert any("trained on" in n for n in report["notes"])
    assert "Sanity" in printed and "Localisation" in printed and "Research use only" in printed

    code = main(["explain-check", "--model", str(tiny_bundle), "--data", str(root),
                 "--masks", str(masks), "--limit", "4", "--out", str(out)])
    assert code == 0
    report = json.loads(out.read_text())
    assert "localisation" not in report
    assert any("Training images only" in n for n in report["notes"])


def test_localisation_can_leave_out_the_images_a_model_trained_on(
        tiny_model, tiny_config, synthetic_dataset, tmp_path):
    root = synthetic_dataset(n_per_class=4, size=64)
    masks = tmp_path / "masks"
    _write_masks(root, masks)
    trained = {str((p).resolve()) for p in (root / "Training" / "glioma").glob("*.png")}
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    report = run_evidence(explainer, root, "Training", ["gradcam"], None, masks,
                          model_checks=False, exclude=trained)
    loc = report["localisation"]
    assert loc["n_images"] == 8  # meningioma and pituitary only
    assert set(loc["methods"][0]["per_class"]) == {"meningioma", "pituitary"}
    assert any("did not train on (4 trained-on images left out" in n for n in report["notes"])
    assert not any("which the model was trained on" in n for n in report["notes"])


def test_trained_on_is_empty_for_a_bundle_without_a_training_run(tiny_bundle, tmp_path):
    from braintumor.explain.evidence import trained_on
    from braintumor.models import load_bundle

    assert trained_on(load_bundle(tiny_bundle).card, tmp_path) == set()


def test_with_masks_keeps_images_with_a_mask_that_were_not_trained_on(synthetic_dataset,
                                                                       tmp_path):
    from braintumor.data.datasets import discover
    from braintumor.explain.evidence import with_masks

    root = synthetic_dataset(n_per_class=3, size=64)
    masks = write_masks(root, tmp_path / "masks", size=64)
    index = discover(root)
    train = index.split("train")
    trained = {str(p.resolve()) for p in (root / "Training" / "pituitary").glob("*.png")}
    kept = with_masks(train, masks, index.root, trained)
    assert sorted({s.label for s in kept}) == ["glioma", "meningioma"]  # notumor: no mask
    assert len(kept) == 6
    assert len(with_masks(train, masks, index.root)) == 9


def test_score_maps_scores_ready_maps_like_localisation(tiny_model, tiny_config,
                                                         synthetic_dataset, tmp_path):
    """A map on the mask wins the pointing game, its inverse loses it, and an explainer's own
    maps scored through ``score_maps`` give what ``localisation`` reports for them."""
    from braintumor.data.datasets import discover
    from braintumor.data.masks import mask_on_model_grid
    from braintumor.explain.evidence import (
        load_items,
        localisation,
        score_maps,
        with_masks,
    )

    root = synthetic_dataset(n_per_class=2, size=64)
    masks = write_masks(root, tmp_path / "masks", size=64)
    index = discover(root)
    explainer = Explainer(tiny_model, preprocess=tiny_config)
    items, failed = load_items(with_masks(index.split("train"), masks, index.root),
                               explainer, index.root, masks)
    assert not failed and len(items) == 6
    # The mask cut onto the model grid exactly like its image, as a ready map.
    on_grid = [mask_on_model_grid(it.mask, it.pre.crop, it.pre.image.shape[0]) / 255.0
               for it in items]
    good = score_maps("oracle", items, on_grid, tiny_config.crop_threshold).overall
    bad = score_maps("inverse", items, [1 - m for m in on_grid],
                     tiny_config.crop_threshold).overall
    assert good["pointing_game"] == 1.0 and bad["pointing_game"] == 0.0
    assert good["iou_top10"] > good["random_iou_top10"] > bad["iou_top10"]

    report = localisation(explainer, items, ["gradcam"])
    batch = explainer.explain_batch(np.stack([it.pre.image for it in items]), "gradcam")
    direct = score_maps(batch.method, items, batch.maps, tiny_config.crop_threshold).to_dict()
    assert report["methods"][0] == {**direct, "layer": "features.10"}
