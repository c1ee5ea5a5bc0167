"""Localisation scores on hand-made masks and maps whose answers are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from braintumor.explain.localisation import (
    bootstrap_mean_ci,
    dice_iou,
    disc,
    localisation_scores,
    near_mask,
    random_blob_dice_iou,
    summarise,
)

SIZE = 100


def square(top: int, left: int, side: int = 10) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), bool)
    m[top : top + side, left : left + side] = True
    return m


MASK = square(40, 40)  # rows/cols 40..49: 100 px, 1 % of the image


def peak_at(row: int, col: int) -> np.ndarray:
    heat = np.zeros((SIZE, SIZE))
    heat[row, col] = 1.0
    return heat


def test_pointing_game_strict_and_within_15_px():
    inside = localisation_scores(peak_at(45, 45), MASK)
    assert inside["pointing_game"] == 1.0 and inside["pointing_game_15px"] == 1.0
    near = localisation_scores(peak_at(45, 59), MASK)  # 10 px right of the last mask column
    assert near["pointing_game"] == 0.0 and near["pointing_game_15px"] == 1.0
    far = localisation_scores(peak_at(45, 69), MASK)  # 20 px outside
    assert far["pointing_game"] == 0.0 and far["pointing_game_15px"] == 0.0
    edge = localisation_scores(peak_at(45, 64), MASK)  # exactly 15 px: still a hit
    assert edge["pointing_game_15px"] == 1.0
    diagonal = localisation_scores(peak_at(60, 60), MASK)  # 11 px down and right: 15.6 px
    assert diagonal["pointing_game_15px"] == 0.0


def test_pointing_baselines_within_the_tolerance():
    near = near_mask(MASK, 15)
    assert near[45, 64] and not near[45, 65] and near.sum() > MASK.sum()
    head = np.zeros((SIZE, SIZE), bool)
    head[20:80, 20:80] = True
    s = localisation_scores(peak_at(45, 45), MASK, head)
    assert s["random_pointing_game_15px"] == pytest.approx(near.mean())
    assert s["random_pointing_game_15px_in_head"] == pytest.approx((near & head).sum() / 3600)
    assert s["random_pointing_game_in_head"] == pytest.approx(100 / 3600)
    # A flat map ties everywhere: it scores its chance, the share of pixels near the mask.
    flat = localisation_scores(np.ones((SIZE, SIZE)), MASK)
    assert flat["pointing_game_15px"] == pytest.approx(flat["random_pointing_game_15px"])
    assert localisation_scores(peak_at(45, 45), MASK, tolerance_px=0)["pointing_game_0px"] == 1


def test_energy_ratio():
    exact = localisation_scores(MASK.astype(float), MASK)
    assert exact["energy_pointing_game"] == 1.0
    assert exact["energy_ratio"] == pytest.approx(1 / 0.01)  # 1 / the mask's area share
    uniform = localisation_scores(np.ones((SIZE, SIZE)), MASK)
    assert uniform["energy_ratio"] == pytest.approx(1.0) == uniform["random_energy_ratio"]
    half = MASK.astype(float)
    half[0:10, 0:10] = 1.0  # as much mass outside as inside
    assert localisation_scores(half, MASK)["energy_ratio"] == pytest.approx(50.0)
    head = np.zeros((SIZE, SIZE), bool)
    head[25:75, 25:75] = True  # 2500 px, the mask inside it
    s = localisation_scores(np.ones((SIZE, SIZE)), MASK, head)
    assert s["random_energy_ratio_in_head"] == pytest.approx(SIZE * SIZE / 2500)


def test_dice_and_iou_of_the_binarised_map():
    assert dice_iou(square(40, 45), MASK) == pytest.approx((0.5, 1 / 3))  # half overlaps
    assert dice_iou(MASK, MASK) == (1.0, 1.0)
    assert dice_iou(np.zeros_like(MASK), MASK) == (0.0, 0.0)

    shifted = square(40, 45).astype(float)  # 1 on the region, plus a faint 0.1 elsewhere
    shifted[shifted == 0] = 0.1
    s = localisation_scores(shifted, MASK)
    # 15 % of the maximum keeps the region only; the 0.1 background is below it.
    assert s["dice_max15"] == pytest.approx(0.5) and s["iou_max15"] == pytest.approx(1 / 3)
    assert s["area_max15"] == pytest.approx(0.01)
    # The mask-sized top region is the same 100 pixels.
    assert s["dice_area"] == pytest.approx(0.5) and s["iou_area"] == pytest.approx(1 / 3)
    faint = shifted.copy()
    faint[faint == 0.1] = 0.2  # now above 15 % of the maximum: everything is selected
    t = localisation_scores(faint, MASK)
    assert t["area_max15"] == 1.0 and t["dice_max15"] == pytest.approx(2 * 100 / (10000 + 100))
    assert t["dice_area"] == pytest.approx(0.5)
    assert "dice_at_threshold" not in t


def test_dice_at_a_probability_threshold():
    prob = np.where(square(40, 45), 0.7, 0.2)
    s = localisation_scores(prob, MASK, threshold=0.5)
    assert s["dice_at_threshold"] == pytest.approx(0.5)
    assert s["iou_at_threshold"] == pytest.approx(1 / 3)
    none = localisation_scores(prob, MASK, threshold=0.8)
    assert none["dice_at_threshold"] == 0.0 and none["random_dice_at_threshold"] == 0.0
    everything = localisation_scores(prob, MASK, threshold=0.1)
    assert everything["dice_at_threshold"] == pytest.approx(200 / 10100)


def test_random_blob_baseline_matches_simulation():
    rng = np.random.default_rng(0)
    head = np.zeros((SIZE, SIZE), bool)
    head[15:85, 10:90] = True
    area = 150
    shape = disc(area)
    assert abs(int(shape.sum()) - area) <= 0.1 * area
    r = shape.shape[0] // 2
    rows, cols = np.nonzero(head)
    dices, ious = [], []
    for i in rng.integers(0, len(rows), 3000):
        region = np.zeros((SIZE + 2 * r, SIZE + 2 * r), bool)
        region[rows[i] : rows[i] + 2 * r + 1, cols[i] : cols[i] + 2 * r + 1] = shape
        d, u = dice_iou(region[r:-r, r:-r], MASK)
        dices.append(d)
        ious.append(u)
    dice, iou = random_blob_dice_iou(area, MASK, head)
    assert dice == pytest.approx(np.mean(dices), abs=0.004)
    assert iou == pytest.approx(np.mean(ious), abs=0.003)
    assert random_blob_dice_iou(0, MASK, head) == (0.0, 0.0)
    # A blob placed anywhere in a head much larger than the mask rarely touches it.
    assert dice < localisation_scores(MASK.astype(float), MASK, head)["dice_area"]


def test_summaries_carry_medians_and_bootstrap_intervals():
    rows = [("glioma", localisation_scores(peak_at(45, 45), MASK)),
            ("glioma", localisation_scores(peak_at(45, 59), MASK)),
            ("glioma", localisation_scores(peak_at(45, 69), MASK)),
            ("pituitary", localisation_scores(MASK.astype(float), MASK))]
    summary = summarise("hand-made", rows)
    overall = summary.overall
    assert overall["n"] == 4
    assert overall["pointing_game"] == 0.5 and overall["pointing_game_15px"] == 0.75
    ratios = [r["energy_ratio"] for _, r in rows]
    assert overall["energy_ratio_median"] == pytest.approx(np.median(ratios), abs=1e-4)
    lo, hi = overall["ci95"]["pointing_game"]
    assert 0 <= lo <= 0.5 <= hi <= 1
    assert summary.per_class["pituitary"]["ci95"]["pointing_game"] is None  # one image
    glioma = summary.per_class["glioma"]["ci95"]
    assert glioma["pointing_game_15px"][0] < glioma["pointing_game_15px"][1]
    assert bootstrap_mean_ci([1.0, 1.0, 1.0]) == [1.0, 1.0]
    assert bootstrap_mean_ci([0.0]) is None
