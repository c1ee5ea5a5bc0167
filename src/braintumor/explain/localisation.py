"""Does the heatmap land on the tumour? Scores of one map against a binary tumour mask.

All scores are computed on the user's image grid (the map after ``map_to_original``), where
the masks live, and each comes with what a uniform (random) map would score on the same mask,
because tumours are small (median 1.3 % of the slice) and every figure must be read against
that floor:

- pointing game (Zhang et al. 2016): is the map's maximum inside the mask? If several pixels
  share the maximum, the hit counts as the share of them inside (the expected hit under a
  random tie-break; an all-zero map thus scores like a random point). Random baseline: the
  mask's share of the image; a stricter one, the mask's share of the head (a random point
  inside the head, which even a model that knows nothing but "where the brain is" reaches).
- energy-based pointing game (Wang et al. 2020, Score-CAM): the share of the map's total mass
  inside the mask. A uniform map gets the mask's area share.
- IoU of the top 10 % / 20 % of the map with the mask. The random baseline is the exact
  expected IoU of a random pixel set of that size (hypergeometric); the best reachable IoU is
  printed too, since a 20 % region cannot match a 1 % tumour well.
- pointing game with the standard 15-px tolerance (Zhang et al. 2016, "Top-down neural
  attention by excitation backprop": a hit if the maximum lies within 15 px of the mask, to
  allow for imprecise outlines), in pixels of the input's *native* grid. Random baselines:
  the share of the image, and of the head, within 15 px of the mask.
- energy ratio: the energy pointing game divided by the mask's area share. 1 = a uniform map;
  ``random_energy_ratio_in_head`` is what a map uniform over the head (zero outside) scores.
  Its median is reported beside the mean, since a few small masks give very large ratios.
- Dice and IoU of the map binarised by two rules: ``max15``, pixels >= 15 % of the map's
  maximum (the rule Grad-CAM's authors localised with, Selvaraju et al. 2017, section 4.1),
  and ``area``, the map's top pixels, as many as the mask has (the map's best shot at a
  region of the right size; it needs the mask's area, so it is a ceiling, not a prediction);
  for a map that is a probability (a tumour head), also ``at_threshold``, pixels >= the
  model's own threshold. Random baseline of each: the exact expected Dice/IoU of a disc of
  the same area as the binarised region, centred uniformly at random inside the head (a
  "random blob"; the same area, so only *where* the map puts its region is compared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage, stats
from scipy.signal import fftconvolve

TOP_FRACTIONS = (0.1, 0.2)
POINTING_TOLERANCE_PX = 15  # Zhang et al. 2016
CAM_THRESHOLD_FRACTION = 0.15  # Selvaraju et al. 2017, section 4.1
BOOTSTRAP_KEYS = ("pointing_game", "pointing_game_15px", "energy_ratio", "dice_max15",
                  "dice_area", "dice_at_threshold")
"""Scores whose per-class and overall means get a bootstrap 95 % interval."""
MEDIAN_KEYS = ("energy_ratio",)


def head_mask(pixels_u8: np.ndarray, threshold: float = 0.08) -> np.ndarray:
    """Pixels of the head: brighter than ``threshold`` of the 99th percentile (the same rule
    preprocessing crops with), holes filled, the largest component kept."""
    ref = float(np.percentile(pixels_u8, 99))
    mask = ndimage.binary_fill_holes(pixels_u8 > threshold * max(ref, 1.0))
    labels, n = ndimage.label(mask)
    if n == 0:
        return np.ones(pixels_u8.shape, bool)
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)


def expected_random_iou(n_pixels: int, n_selected: int, n_mask: int) -> float:
    """E[IoU] of a uniformly random set of ``n_selected`` pixels with a fixed mask."""
    if n_mask == 0 or n_selected == 0:
        return 0.0
    lo, hi = max(0, n_selected + n_mask - n_pixels), min(n_selected, n_mask)
    k = np.arange(lo, hi + 1)
    pmf = stats.hypergeom(n_pixels, n_mask, n_selected).pmf(k)
    return float(np.sum(pmf * k / (n_selected + n_mask - k)))


def top_region(heatmap: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of pixels with the highest values (exactly that many)."""
    flat = np.ravel(heatmap)
    k = max(1, int(round(fraction * flat.size)))
    idx = np.argpartition(-flat, k - 1)[:k]
    region = np.zeros(flat.size, bool)
    region[idx] = True
    return region.reshape(np.shape(heatmap))


def pointing_hit(heatmap: np.ndarray, near: np.ndarray) -> float:
    """Share of the map's maxima that fall in ``near`` (the mask, or the pixels within the
    tolerance of it): 1 or 0 for a single peak, the expected hit of a random tie-break else."""
    heat = np.asarray(heatmap)
    return float(near[heat == heat.max()].mean())


def near_mask(mask: np.ndarray, tolerance_px: float) -> np.ndarray:
    """Pixels whose centre lies within ``tolerance_px`` (Euclidean) of a mask pixel."""
    if tolerance_px <= 0:
        return np.asarray(mask, bool)
    return ndimage.distance_transform_edt(~np.asarray(mask, bool)) <= tolerance_px


def dice_iou(region: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """Dice and IoU of two boolean masks; both 0 when the region is empty (the mask is not)."""
    inter = float(np.logical_and(region, mask).sum())
    total = float(region.sum() + mask.sum())
    if total == 0:
        return 1.0, 1.0
    return 2 * inter / total, inter / (total - inter)


def disc(area: int) -> np.ndarray:
    """A boolean disc of (about) ``area`` pixels, odd side."""
    r = np.sqrt(max(area, 1) / np.pi)
    half = int(np.ceil(r))
    yy, xx = np.mgrid[-half : half + 1, -half : half + 1]
    return yy**2 + xx**2 <= r**2


def random_blob_dice_iou(area: int, mask: np.ndarray,
                         head: np.ndarray | None) -> tuple[float, float]:
    """Exact expected Dice and IoU with ``mask`` of a disc of ``area`` pixels whose centre is
    a uniformly random pixel of ``head`` (cut off at the image's edge, as a region would be).

    Exact rather than sampled: the disc's overlap with the mask at every centre is one
    correlation of the mask with the disc (FFT), its clipped size one of the image with it.
    """
    if area <= 0:
        return 0.0, 0.0
    shape = disc(area).astype(np.float64)
    overlap = np.rint(fftconvolve(mask.astype(np.float64), shape, mode="same"))
    size = np.rint(fftconvolve(np.ones(mask.shape), shape, mode="same"))
    m = float(mask.sum())
    centres = head if head is not None and head.any() else np.ones(mask.shape, bool)
    ov, sz = overlap[centres], size[centres]
    return float(np.mean(2 * ov / (sz + m))), float(np.mean(ov / (sz + m - ov)))


def _region_scores(out: dict[str, float], rule: str, region: np.ndarray, mask: np.ndarray,
                   head: np.ndarray | None) -> None:
    out[f"dice_{rule}"], out[f"iou_{rule}"] = dice_iou(region, mask)
    blob = random_blob_dice_iou(int(region.sum()), mask, head)
    out[f"random_dice_{rule}"], out[f"random_iou_{rule}"] = blob
    out[f"area_{rule}"] = float(region.mean())


def localisation_scores(heatmap: np.ndarray, mask: np.ndarray, head: np.ndarray | None = None,
                        top_fractions: Sequence[float] = TOP_FRACTIONS,
                        tolerance_px: float = POINTING_TOLERANCE_PX,
                        threshold: float | None = None) -> dict[str, float]:
    """Scores of one (H, W) map against a boolean (H, W) mask, with their random baselines.

    Give both on the image's native grid: the pointing tolerance is in its pixels.
    ``threshold``: for a probability map (a tumour head), also score ``map >= threshold``.
    """
    heat = np.nan_to_num(np.asarray(heatmap, np.float64)).clip(min=0)
    mask = np.asarray(mask, bool)
    if heat.shape != mask.shape:
        raise ValueError(f"map {heat.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("empty mask")
    area = float(mask.mean())
    total = heat.sum()
    near = near_mask(mask, tolerance_px)
    tol = f"{int(round(tolerance_px))}px"
    energy = float(heat[mask].sum() / total) if total > 0 else area
    out = {
        "pointing_game": pointing_hit(heat, mask),
        f"pointing_game_{tol}": pointing_hit(heat, near),
        "energy_pointing_game": energy,
        "energy_ratio": energy / area,
        "random_pointing_game": area,
        f"random_pointing_game_{tol}": float(near.mean()),
        "random_energy_pointing_game": area,
        "random_energy_ratio": 1.0,
        "mask_fraction": area,
    }
    if head is not None and head.any():
        in_head = float((mask & head).sum() / head.sum())
        out["random_pointing_game_in_head"] = in_head
        out[f"random_pointing_game_{tol}_in_head"] = float((near & head).sum() / head.sum())
        out["random_energy_ratio_in_head"] = in_head / area
    n, m = mask.size, int(mask.sum())
    for frac in top_fractions:
        region = top_region(heat, frac)
        key = f"iou_top{int(round(frac * 100))}"
        inter = float((region & mask).sum())
        out[key] = inter / float((region | mask).sum())
        out[f"random_{key}"] = expected_random_iou(n, int(region.sum()), m)
        out[f"best_{key}"] = min(region.sum(), m) / max(region.sum(), m)
    peak = heat.max()
    _region_scores(out, "max15", heat >= CAM_THRESHOLD_FRACTION * peak if peak > 0
                   else np.zeros(mask.shape, bool), mask, head)
    _region_scores(out, "area", top_region(heat, m / n), mask, head)
    if threshold is not None:
        _region_scores(out, "at_threshold", heat >= threshold, mask, head)
    return out


def bootstrap_mean_ci(values: Sequence[float], n_resamples: int = 1000, seed: int = 0,
                      confidence: float = 0.95) -> list[float] | None:
    """Percentile bootstrap interval of the mean of per-image scores (scipy, seeded, the same
    settings as evaluation/bootstrap.py); ``None`` for fewer than two images."""
    x = np.asarray(values, np.float64)
    if len(x) < 2:
        return None
    if np.ptp(x) == 0:  # every resample has the same mean
        return [round(float(x[0]), 4)] * 2
    res = stats.bootstrap((x,), np.mean, n_resamples=n_resamples, method="percentile",
                          confidence_level=confidence, vectorized=True, rng=seed)
    lo, hi = res.confidence_interval
    return [round(float(lo), 4), round(float(hi), 4)]


@dataclass
class LocalisationSummary:
    """Mean scores per method, overall and per class (plus the medians of ``MEDIAN_KEYS`` and
    bootstrap 95 % intervals of the means of ``BOOTSTRAP_KEYS``, under ``ci95``)."""

    method: str
    n_images: int
    overall: dict[str, float]
    per_class: dict[str, dict[str, float]]

    def to_dict(self) -> dict:
        return {"method": self.method, "n_images": self.n_images, "overall": self.overall,
                "per_class": self.per_class}


def summarise(method: str, scores: Iterable[tuple[str, dict[str, float]]]) -> LocalisationSummary:
    """Average (class, scores) pairs per class and over all images."""
    by_class: dict[str, list[dict[str, float]]] = defaultdict(list)
    everything: list[dict[str, float]] = []
    for label, s in scores:
        by_class[label].append(s)
        everything.append(s)

    def mean(rows: list[dict[str, float]]) -> dict:
        keys = sorted({k for r in rows for k in r})
        out: dict = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
        for k in MEDIAN_KEYS:
            if k in out:
                out[f"{k}_median"] = round(float(np.median([r[k] for r in rows if k in r])), 4)
        out["n"] = len(rows)
        out["ci95"] = {k: bootstrap_mean_ci([r[k] for r in rows if k in r])
                       for k in BOOTSTRAP_KEYS if k in out}
        return out

    return LocalisationSummary(method, len(everything), mean(everything) if everything else {},
                               {c: mean(rows) for c, rows in sorted(by_class.items())})
