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
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.stats import hypergeom

TOP_FRACTIONS = (0.1, 0.2)


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
    pmf = hypergeom(n_pixels, n_mask, n_selected).pmf(k)
    return float(np.sum(pmf * k / (n_selected + n_mask - k)))


def top_region(heatmap: np.ndarray, fraction: float) -> np.ndarray:
    """The ``fraction`` of pixels with the highest values (exactly that many)."""
    flat = np.ravel(heatmap)
    k = max(1, int(round(fraction * flat.size)))
    idx = np.argpartition(-flat, k - 1)[:k]
    region = np.zeros(flat.size, bool)
    region[idx] = True
    return region.reshape(np.shape(heatmap))


def localisation_scores(heatmap: np.ndarray, mask: np.ndarray, head: np.ndarray | None = None,
                        top_fractions: Sequence[float] = TOP_FRACTIONS) -> dict[str, float]:
    """Scores of one (H, W) map against a boolean (H, W) mask, with their random baselines."""
    heat = np.nan_to_num(np.asarray(heatmap, np.float64)).clip(min=0)
    mask = np.asarray(mask, bool)
    if heat.shape != mask.shape:
        raise ValueError(f"map {heat.shape} and mask {mask.shape} differ in shape")
    if not mask.any():
        raise ValueError("empty mask")
    area = float(mask.mean())
    top = heat == heat.max()
    total = heat.sum()
    out = {
        "pointing_game": float(mask[top].mean()),
        "energy_pointing_game": float(heat[mask].sum() / total) if total > 0 else area,
        "random_pointing_game": area,
        "random_energy_pointing_game": area,
        "mask_fraction": area,
    }
    if head is not None and head.any():
        out["random_pointing_game_in_head"] = float((mask & head).sum() / head.sum())
    n, m = mask.size, int(mask.sum())
    for frac in top_fractions:
        region = top_region(heat, frac)
        key = f"iou_top{int(round(frac * 100))}"
        inter = float((region & mask).sum())
        out[key] = inter / float((region | mask).sum())
        out[f"random_{key}"] = expected_random_iou(n, int(region.sum()), m)
        out[f"best_{key}"] = min(region.sum(), m) / max(region.sum(), m)
    return out


@dataclass
class LocalisationSummary:
    """Mean scores per method, overall and per class."""

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

    def mean(rows: list[dict[str, float]]) -> dict[str, float]:
        keys = sorted({k for r in rows for k in r})
        out = {k: round(float(np.mean([r[k] for r in rows if k in r])), 4) for k in keys}
        out["n"] = len(rows)
        return out

    return LocalisationSummary(method, len(everything), mean(everything) if everything else {},
                               {c: mean(rows) for c, rows in sorted(by_class.items())})
