"""The predicted tumour outline drawn for people: over the scan, beside the Grad-CAM overlay.

Used by ``braintumor explain`` (a fourth panel after input | heatmap | overlay) and by
``braintumor predict --explain`` (``<stem>.<label>.outline.png``: overlay | outline). Every
rendering carries a colour legend and the line :data:`~braintumor.explain.outline.
OUTLINE_CAVEAT` ("model's estimate, not a measured tumour outline") beside the research-use
line. Only models with a tumour head (``braintumor.models.tumour``) get an outline; for any
other model these functions are never called and the PNGs are exactly what they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from braintumor.explain.outline import OUTLINE_CAVEAT, OUTLINE_COLOUR, TumourOutline
from braintumor.explain.overlay import SHORT_DISCLAIMER, compose_panels

OUTLINE_TITLE = "tumour outline (model)"


def outline_legend(threshold: float, area_px: int, area_percent: float
                   ) -> list[tuple[tuple[int, int, int], str]]:
    """The legend entry of the outline's colour, with its threshold, areas and caveat."""
    return [(OUTLINE_COLOUR,
             f"predicted tumour outline (p > {threshold:.2f}; {area_px} px, "
             f"{area_percent:.1f} % of the head): {OUTLINE_CAVEAT}")]


def draw_outline(pixels_u8: np.ndarray, polygons: Sequence[Sequence[Sequence[float]]],
                 colour: tuple[int, int, int] = OUTLINE_COLOUR) -> np.ndarray:
    """(H, W, 3) uint8: the scan in grey with each closed polygon drawn over it.

    Points are pixel centres (``braintumor.explain.outline``), which is also how Pillow
    addresses pixels, so the line lies on the pixels it describes. Its width grows with the
    image so that it stays visible on a 512 px scan as on a 128 px one.
    """
    base = np.asarray(pixels_u8)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    img = Image.fromarray(np.ascontiguousarray(base, dtype=np.uint8))
    width = max(2, round(max(img.size) / 200))
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        if len(poly) >= 2:
            draw.line([tuple(p) for p in poly], fill=tuple(colour), width=width, joint="curve")
    return np.asarray(img)


def explain_outline_panel(explanation, traced: TumourOutline) -> np.ndarray:
    """``braintumor explain``'s PNG for a tumour-head model: the usual three panels, then the
    predicted outline over the scan, with the legend and the caveat under the caption."""
    from braintumor.explain.overlay import PANEL_TITLES, colorize

    e = explanation
    gray = np.repeat(np.asarray(e.image)[..., None], 3, axis=2) if e.image.ndim == 2 \
        else np.asarray(e.image)
    panels = [*zip(PANEL_TITLES, (gray, colorize(e.heatmap, e.colormap), e.overlay), strict=True),
              (OUTLINE_TITLE, draw_outline(e.image, traced.polygons))]
    legend = outline_legend(traced.threshold, traced.area_px, traced.area_percent)
    return compose_panels(panels, e.caption(), legend=legend)


def overlay_outline_panel(pixels_u8: np.ndarray, overlay: np.ndarray, prediction,
                          threshold: float) -> np.ndarray:
    """``braintumor predict --explain``'s outline PNG for a
    :class:`~braintumor.inference.predictor.Prediction` with an outline: Grad-CAM overlay |
    predicted outline over the scan, the prediction and the research-use line above, then
    the legend with the caveat."""
    p = prediction
    panels = [("Grad-CAM overlay", overlay),
              (OUTLINE_TITLE, draw_outline(pixels_u8, p.tumour_outline))]
    caption = [f"Predicted: {p.label}  p = {p.confidence:.3f} (calibrated)", SHORT_DISCLAIMER]
    legend = outline_legend(threshold, p.tumour_area_px, p.tumour_area_percent)
    return compose_panels(panels, caption, legend=legend)


def trace_outlines(model, card: dict | None, prepared) -> list[TumourOutline] | None:
    """The outline of each (LoadedImage, Preprocessed) pair, or None for a model without a
    tumour head. One no-gradient forward pass of the contract's ``tumour_probabilities``
    (Grad-CAM's own pass runs with hooks and gradients; it is not reused for a map it
    does not need)."""
    import torch

    from braintumor.data.preprocess import to_model_input
    from braintumor.explain.outline import card_threshold, outline_on_input
    from braintumor.models.tumour import has_tumour_head, tumour_probabilities

    if not has_tumour_head(model) or not prepared:
        return None
    threshold = card_threshold(card)
    device = next(model.parameters()).device
    x = to_model_input(np.stack([pre.image for _, pre in prepared])).to(device)
    with torch.inference_mode():
        _, prob = tumour_probabilities(model, x)
    maps = prob[:, 0].float().cpu().numpy()
    return [outline_on_input(m, pre.crop, loaded.pixels, threshold)
            for m, (loaded, pre) in zip(maps, prepared, strict=True)]
