"""Rendering heatmaps: colouring, blending over the slice, and the labelled side-by-side PNG.

Pure numpy + PIL (a matplotlib colormap is only used as a lookup table): no pyplot figure per
image, so a folder of hundreds of slices renders in well under a second per image, and every
output pixel of the overlay lies exactly over the input pixel it describes (same size, same
orientation, no axes or margins resampling it).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import matplotlib
import numpy as np
from PIL import Image, ImageDraw, ImageFont

# The line stamped on every rendered image; the full text is braintumor.DISCLAIMER.
SHORT_DISCLAIMER = "Research use only - not a diagnosis"

PANEL_TITLES = ("input", "heatmap", "overlay")


@lru_cache(maxsize=16)
def colormap_lut(name: str) -> np.ndarray:
    """(256, 3) uint8 lookup table of a matplotlib colormap; ``ValueError`` if unknown."""
    try:
        cmap = matplotlib.colormaps[name]
    except KeyError:
        raise ValueError(f"unknown colormap {name!r} (any matplotlib colormap name, e.g. jet, "
                         "turbo, inferno, viridis)") from None
    return (cmap(np.linspace(0.0, 1.0, 256))[:, :3] * 255 + 0.5).astype(np.uint8)


def colorize(heatmap: np.ndarray, colormap: str = "jet") -> np.ndarray:
    """(H, W) map in [0, 1] -> (H, W, 3) uint8 colours."""
    heat = np.nan_to_num(np.asarray(heatmap, dtype=np.float32), nan=0.0)
    idx = (np.clip(heat, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)
    return colormap_lut(colormap)[idx]


def render_overlay(pixels_u8: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45,
                   colormap: str = "jet") -> np.ndarray:
    """Blend a coloured heatmap over a grayscale slice: (H, W, 3) uint8, same size as the slice.

    ``pixels_u8`` is the slice as read ((H, W) uint8, or (H, W, 3) already RGB), ``heatmap``
    an (H, W) map in [0, 1] on the same grid (``Explanation.heatmap``, or a model-geometry map
    passed through ``braintumor.data.preprocess.map_to_original``), ``alpha`` the heatmap's
    opacity in [0, 1].
    """
    base = np.asarray(pixels_u8)
    if base.ndim == 2:
        base = np.repeat(base[..., None], 3, axis=2)
    if base.ndim != 3 or base.shape[2] != 3:
        raise ValueError(f"expected an (H, W) or (H, W, 3) image, got shape {base.shape}")
    heat = np.asarray(heatmap)
    if heat.shape != base.shape[:2]:
        raise ValueError(f"heatmap of shape {heat.shape} does not match the image's "
                         f"{base.shape[:2]}; bring it back with map_to_original first")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
    color = colorize(heat, colormap).astype(np.float32)
    out = (1.0 - alpha) * base.astype(np.float32) + alpha * color
    return (out + 0.5).clip(0, 255).astype(np.uint8)


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)  # scalable when Pillow has FreeType
    except (TypeError, OSError):  # pragma: no cover - Pillow without FreeType
        return ImageFont.load_default()


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> list[str]:
    """Greedy word wrap to ``width`` pixels (a word longer than the line stays whole)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        trial = f"{current} {word}".strip()
        if current and draw.textlength(trial, font=font) > width:
            lines.append(current)
            current = word
        else:
            current = trial
    if current:
        lines.append(current)
    return lines or [""]


def compose_panel(pixels_u8: np.ndarray, heatmap: np.ndarray, overlay: np.ndarray,
                  caption: Sequence[str], colormap: str = "jet") -> np.ndarray:
    """The explain PNG: input | heatmap | overlay side by side, each at the input's own size,
    titled, with ``caption`` lines (prediction, explained class, research-use line) above."""
    gray = np.repeat(np.asarray(pixels_u8)[..., None], 3, axis=2) if np.ndim(pixels_u8) == 2 \
        else np.asarray(pixels_u8)
    panels = list(zip(PANEL_TITLES, (gray, colorize(heatmap, colormap), overlay), strict=True))
    return compose_panels(panels, caption)


def compose_panels(panels: Sequence[tuple[str, np.ndarray]], caption: Sequence[str],
                   legend: Sequence[tuple[tuple[int, int, int], str]] = ()) -> np.ndarray:
    """Titled (H, W, 3) panels of one size side by side under ``caption`` lines; each
    ``legend`` entry (colour, text) adds a line led by a swatch of that colour."""
    h, w = np.asarray(panels[0][1]).shape[:2]
    gap = max(2, w // 64)
    width = len(panels) * w + (len(panels) - 1) * gap
    font_px = int(np.clip(width / 48, 10, 32))
    font = _font(font_px)
    scratch = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    swatch = font_px
    lines: list[tuple[tuple[int, ...] | None, str]] = [
        (None, ln) for text in caption for ln in _wrap(scratch, text, font, width - 2 * gap)]
    for colour, text in legend:
        wrapped = _wrap(scratch, text, font, width - 3 * gap - swatch)
        lines += [(colour if k == 0 else (), ln) for k, ln in enumerate(wrapped)]
    line_h = int(font_px * 1.3)
    title_h = line_h if w >= 3 * font_px else 0
    top = gap + len(lines) * line_h + title_h
    canvas = Image.new("RGB", (width, top + h), (20, 20, 20))
    for i, (_, panel) in enumerate(panels):
        canvas.paste(Image.fromarray(np.ascontiguousarray(panel)), (i * (w + gap), top))
    draw = ImageDraw.Draw(canvas)
    for k, (mark, ln) in enumerate(lines):
        x, y = gap, gap // 2 + k * line_h
        if mark is not None:  # a legend line: swatch (first line only), then the text
            if mark:
                draw.rectangle([x, y + 2, x + swatch - 2, y + swatch], fill=tuple(mark))
            x += swatch + gap
        draw.text((x, y), ln, fill=(240, 240, 240), font=font)
    if title_h:
        for i, (title, _) in enumerate(panels):
            draw.text((i * (w + gap) + gap, top - title_h), title, fill=(180, 180, 180), font=font)
    return np.asarray(canvas)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W) or (H, W, 3) uint8 array as PNG (lossless: the map is data)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(image)).save(path, format="PNG")
    return path
