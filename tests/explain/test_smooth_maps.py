"""Heatmaps from a coarse layer grid come out smooth on the displayed pixels (issue 22).

The defect: bilinear upsampling of a 6 x 6 Grad-CAM grid is only continuous; its slope jumps
on every cell boundary, and those creases are what the colormap showed as ridges and
"diamonds". The measure here is the *kink ratio*: the largest second difference between
neighbouring pixels over the largest first difference. A crease makes the slope change in one
pixel by as much as the slope itself (ratio near 1: >= 0.67 over 200 random 6 x 6 grids with
bilinear); a map with a continuous slope changes it by about slope / cell size (<= 0.13 with
bicubic at a 32 px cell). Pixels where the map is ~0 are left out: clipping at 0 (Grad-CAM's
ReLU, the [0, 1] scale) bends every map there, and there is nothing to see in the dark.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from braintumor.data.preprocess import PreprocessConfig
from braintumor.explain.base import upsample
from braintumor.explain.explainer import Explainer
from braintumor.models import create_model

KINK_BOUND = 0.3


def kink_ratio(heatmap: np.ndarray, floor: float = 0.02) -> float:
    worst = 0.0
    for axis in (0, 1):
        a = np.moveaxis(np.asarray(heatmap, np.float64), axis, 0)
        d1 = np.abs(np.diff(a, axis=0)).max()
        d2 = np.abs(a[2:] - 2 * a[1:-1] + a[:-2])
        lit = (a[2:] > floor) & (a[1:-1] > floor) & (a[:-2] > floor)
        if d1 > 0 and lit.any():
            worst = max(worst, float(d2[lit].max() / d1))
    return worst


def test_bilinear_from_a_coarse_grid_is_creased_by_this_measure():
    """The measure itself: it tells the old (bilinear) upsampling from a smooth one."""
    coarse = torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    bilinear = torch.nn.functional.interpolate(coarse, (192, 192), mode="bilinear")
    assert kink_ratio(bilinear[0, 0].numpy()) > 0.6


def test_layer_maps_are_upsampled_smoothly():
    g = torch.Generator().manual_seed(1)
    for _ in range(20):
        coarse = torch.rand(2, 1, 6, 6, generator=g)
        maps = upsample(coarse, (192, 192))
        assert maps.shape == (2, 192, 192) and float(maps.min()) >= 0.0
        for m in maps.numpy():
            assert kink_ratio(m) < KINK_BOUND
    # the map still says what the grid said: the hottest cell stays the hottest region
    peak = torch.zeros(1, 1, 6, 6)
    peak[0, 0, 2, 4] = 1.0
    m = upsample(peak, (192, 192))[0].numpy()
    r, c = np.unravel_index(np.argmax(m), m.shape)
    assert (r // 32, c // 32) == (2, 4)


def test_explanation_on_the_native_grid_is_smooth(synthetic_slice):
    """The whole path: a 6 x 6 Grad-CAM layer, upsampled to 192 px, mapped back onto a
    larger native image (and onto a smaller one): no crease anywhere."""
    torch.manual_seed(0)
    model = create_model("braintumor-net", widths=(8, 8, 16, 16)).eval()
    explainer = Explainer(model, preprocess=PreprocessConfig(image_size=192))
    for size in (300, 150):
        e = explainer.explain(synthetic_slice(size, seed=3, blob=(0.35, 0.68)))
        assert e.model_heatmap.shape == (192, 192) and e.heatmap.shape == (size, size)
        assert e.heatmap.max() > 0.5
        assert kink_ratio(e.model_heatmap) < KINK_BOUND
        assert kink_ratio(e.heatmap) < KINK_BOUND


def test_heatmap_layer_png_is_sent_at_the_scans_size():
    """The page scales the heatmap PNG and the scan by the same CSS box; sending it at the
    scan's own size (not the layer's grid) leaves the browser no coarse image to enlarge."""
    from braintumor.serve.imaging import heatmap_rgba, png_bytes

    heat = upsample(torch.rand(1, 1, 6, 6, generator=torch.Generator().manual_seed(2)),
                    (120, 140))[0].numpy()
    img = Image.open(__import__("io").BytesIO(png_bytes(heatmap_rgba(heat))))
    assert img.size == (140, 120)
