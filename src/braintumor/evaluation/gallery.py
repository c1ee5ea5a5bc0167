"""The misclassified-image gallery: the model's most confident mistakes with their Grad-CAM.

Most confident first, because a confident mistake is the one a reader most needs to see (and
the likeliest to reveal a shortcut or a label error). Capped, so the report stays small and
Grad-CAM (one forward + backward per image, by the explain package) stays a second's work.
Maps are drawn over the model's own input (the cached, cropped and resized slice), which is
what the map describes; no second decoding of the originals is needed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from braintumor.data.cache import CachedDataset
from braintumor.evaluation.report import GalleryItem
from braintumor.explain import SHORT_DISCLAIMER, Explainer, compose_panel, render_overlay
from braintumor.explain.overlay import save_png
from braintumor.models import LoadedModel

GAP = 2  # pixels between the plain slice and its overlay


def _pair(image: np.ndarray, overlay: np.ndarray) -> np.ndarray:
    """Slice | Grad-CAM overlay, side by side: the overlay alone hides what lies under it."""
    gray = np.repeat(image[..., None], 3, axis=2)
    gap = np.full((image.shape[0], GAP, 3), 255, np.uint8)
    return np.concatenate([gray, gap, overlay], axis=1)


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG")
    return buf.getvalue()


def misclassified_gallery(loaded: LoadedModel, cached: CachedDataset, labels: np.ndarray,
                          probs: np.ndarray, out: Path, cap: int = 24
                          ) -> tuple[list[GalleryItem], dict]:
    """Gallery items (also written to ``out/gallery/``) and the summary for metrics.json."""
    preds = probs.argmax(axis=1)
    wrong = np.flatnonzero(preds != labels)
    order = wrong[np.argsort(-probs[wrong, preds[wrong]], kind="stable")][:cap]
    summary: dict = {"enabled": True, "n_misclassified": int(len(wrong)),
                     "n_shown": int(len(order)), "method": "gradcam", "files": []}
    folder = out / "gallery"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("[0-9][0-9]_*.png"):  # a previous run's gallery, not this one's
        old.unlink()
    if len(order) == 0:
        summary["reason"] = "no misclassified images"
        return [], summary
    images = np.asarray(cached.images[order])
    batch = Explainer(loaded).explain_batch(images, method="gradcam")
    items = []
    for rank, (i, image, heat) in enumerate(zip(order, images, batch.maps, strict=True), start=1):
        true, pred, conf = loaded.classes[labels[i]], loaded.classes[preds[i]], probs[i, preds[i]]
        # The file stands alone (it may be copied into a slide), so it is the explain package's
        # captioned panel with the research-use line; the report embeds the compact pair.
        caption = [f"True: {true}  Predicted: {pred}  p = {conf:.3f} (calibrated)",
                   f"Grad-CAM of {pred}  {Path(cached.paths[i]).name}", SHORT_DISCLAIMER]
        name = f"{rank:02d}_{Path(cached.paths[i]).stem}.png"
        overlay = render_overlay(image, heat)
        save_png(compose_panel(image, heat, overlay, caption), folder / name)
        summary["files"].append(f"gallery/{name}")
        items.append(GalleryItem(_png(_pair(image, overlay)), true, pred, float(conf),
                                 cached.paths[i]))
    return items, summary
