"""The model's predicted tumour outline for people: mask, areas and contour on the input's grid.

A model with a tumour head (``braintumor.models.tumour``) predicts a tumour probability map on
its square input. This module brings that map back onto the scan's own pixel grid (the same
``map_to_original`` the Grad-CAM heatmap goes through, so both line up), thresholds it with the
card's ``tumour_threshold``, measures it (pixels, and per cent of the head as the localisation
checks define the head) and traces its contour with contourpy (matplotlib's own contouring
library, so no hand-written marching squares), plus the two mask encodings the REST service
sends (COCO-style RLE).

Coordinates: an outline is a list of closed polygons, each a list of ``(x, y)`` points in
input pixels, ``x`` the column and ``y`` the row of a pixel *centre* (pixel (0, 0) is the
point (0, 0)); the last point repeats the first. To draw over an image whose pixel (0, 0)
covers the square [0, 1]^2 (an SVG ``viewBox="0 0 W H"``), add 0.5 to both.

This is the model's estimate, never a measured tumour outline: :data:`OUTLINE_CAVEAT` is the
line every rendering carries next to it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from braintumor.data.preprocess import CropInfo, map_to_original

OUTLINE_CAVEAT = "model's estimate, not a measured tumour outline"
"""The line shown beside every drawn outline (CLI panel, web page, REST answer)."""

OUTLINE_COLOUR = (0, 255, 128)
"""Colour of the outline in the CLI panel and on the web page (#00ff80), legend included."""


Polygon = list[list[float]]  # [[x, y], ...]


@dataclass(frozen=True)
class TumourOutline:
    """The thresholded tumour map of one image, on that image's own (H, W) grid."""

    mask: np.ndarray  # (H, W) bool: probability > threshold
    probability: np.ndarray  # (H, W) float32 in [0, 1]; 0 outside the model's square
    threshold: float
    head_area_px: int  # pixels of the head (localisation.head_mask)
    polygons: list[Polygon]  # closed contours at the threshold, (x, y) pixel centres

    @property
    def area_px(self) -> int:
        return int(self.mask.sum())

    @property
    def area_percent(self) -> float:
        """Predicted tumour area as a percentage of the head's area (may pass 100 only when
        the model marks background as tumour)."""
        return 100.0 * self.area_px / max(self.head_area_px, 1)


def card_threshold(card: dict | None) -> float:
    """The card's ``tumour_threshold`` (chosen on validation), else the contract's default."""
    from braintumor.models.tumour import DEFAULT_TUMOUR_THRESHOLD  # torch: only when needed

    value = (card or {}).get("tumour_threshold")
    if value is None:
        return DEFAULT_TUMOUR_THRESHOLD
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"the card's tumour_threshold must lie in (0, 1), got {value}")
    return value


def probability_maps(tumour_logits, size: int) -> np.ndarray:
    """(N, 1, h, w) tumour logits -> (N, size, size) probabilities, exactly as
    :func:`braintumor.models.tumour.tumour_probabilities` computes them (bilinear, then
    sigmoid), so the ONNX backend's raw output is turned into the same map as PyTorch's."""
    import torch
    import torch.nn.functional as F

    t = torch.as_tensor(np.asarray(tumour_logits, dtype=np.float32))
    if t.ndim != 4 or t.shape[1] != 1:
        raise ValueError(f"expected tumour logits of shape (N, 1, h, w), got {tuple(t.shape)}")
    t = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False)
    return torch.sigmoid(t)[:, 0].numpy()


def trace_contours(probability: np.ndarray, threshold: float) -> list[Polygon]:
    """Closed iso-lines of ``probability`` at ``threshold`` (contourpy, sub-pixel accurate).

    The map is padded with one ring of zeros first, so that a region touching the image's
    edge still gives a closed polygon (its points there are clipped back onto the edge).
    """
    import contourpy

    prob = np.asarray(probability, dtype=np.float64)
    h, w = prob.shape
    if not (prob > threshold).any():
        return []
    padded = np.pad(prob, 1, constant_values=0.0)
    gen = contourpy.contour_generator(z=padded, line_type=contourpy.LineType.Separate)
    polygons: list[Polygon] = []
    for line in gen.lines(threshold):
        pts = np.asarray(line, dtype=np.float64) - 1.0  # undo the padding
        pts[:, 0] = pts[:, 0].clip(0, w - 1)
        pts[:, 1] = pts[:, 1].clip(0, h - 1)
        if len(pts) < 3:
            continue
        if not np.array_equal(pts[0], pts[-1]):
            pts = np.vstack([pts, pts[:1]])
        polygons.append(np.round(pts, 2).tolist())  # numpy, not a per-point Python loop
    return polygons


def outline_on_input(model_probability: np.ndarray, crop: CropInfo, pixels_u8: np.ndarray,
                     threshold: float) -> TumourOutline:
    """The outline of one image from its (S, S) tumour probability map on the model's input.

    ``pixels_u8`` is the slice as read ((H, W) uint8); the head it measures against is
    :func:`braintumor.explain.localisation.head_mask`, the head the evidence checks use.
    """
    prob = np.clip(map_to_original(model_probability, crop), 0.0, 1.0).astype(np.float32)
    mask = prob > threshold
    return TumourOutline(mask=mask, probability=prob, threshold=float(threshold),
                         head_area_px=head_area(pixels_u8),
                         polygons=trace_contours(prob, threshold))


def head_area(pixels_u8: np.ndarray, max_side: int = 256) -> int:
    """Pixels of the head (:func:`braintumor.explain.localisation.head_mask`) on the input's
    grid. Above ``max_side`` the mask is found on every k-th row and column and counted k^2
    times: filling holes and labelling a 512 px slice cost more than the rest of the
    outline, and a percentage of the head needs no single-pixel precision (the head's edge
    moves the count by about one perimeter of k-pixel steps, well under 1 %)."""
    from braintumor.explain.localisation import head_mask

    pixels = np.asarray(pixels_u8)
    step = max(1, -(-max(pixels.shape) // max_side))
    if step == 1:
        return int(head_mask(pixels).sum())
    return int(head_mask(pixels[::step, ::step]).sum()) * step * step


# ----------------------------------------------------------------------------- encodings
def rle_encode(mask: np.ndarray) -> dict:
    """COCO-style uncompressed RLE: ``{"size": [H, W], "counts": [...]}``.

    As in the COCO format (``pycocotools.mask.frPyObjects`` reads it): the mask is read in
    column-major (Fortran) order, ``counts`` alternate runs of 0 and 1 starting with 0 (a
    mask whose first pixel is tumour starts with a run of length 0), and they sum to H * W.
    """
    m = np.asarray(mask, bool)
    flat = m.ravel(order="F").astype(np.int8)
    change = np.flatnonzero(np.diff(flat)) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat.size and flat[0] == 1:
        counts = [0] + counts
    return {"size": [int(m.shape[0]), int(m.shape[1])], "counts": [int(c) for c in counts]}


def rle_decode(rle: dict) -> np.ndarray:
    """The inverse of :func:`rle_encode` (for clients and tests)."""
    h, w = (int(v) for v in rle["size"])
    counts = np.asarray(rle["counts"], dtype=np.int64)
    if counts.sum() != h * w:
        raise ValueError(f"RLE counts sum to {counts.sum()}, not {h} x {w} = {h * w}")
    values = np.arange(len(counts)) % 2
    return np.repeat(values, counts).astype(bool).reshape((h, w), order="F")
