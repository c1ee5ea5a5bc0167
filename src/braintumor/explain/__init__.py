"""Heatmaps that show why the model decided, and the evidence that they are faithful.

``Explainer(model).explain(image)`` -> :class:`Explanation` (heatmap and overlay on the input's
own grid, prediction, calibrated probabilities, explained class). Methods: gradcam (default),
gradcam++, guided-gradcam, occlusion, integrated-gradients. ``render_overlay`` blends any map
over a slice. The checks that the maps are faithful live in ``sanity``, ``faithfulness`` and
``localisation``; ``evidence`` runs them (``braintumor explain-check``). Research use only.
"""

from braintumor.explain.explainer import BatchExplanation, Explainer, Explanation
from braintumor.explain.overlay import SHORT_DISCLAIMER, compose_panel, render_overlay
from braintumor.explain.registry import METHODS, canonical_method, get_method, list_methods

__all__ = [
    "METHODS",
    "SHORT_DISCLAIMER",
    "BatchExplanation",
    "Explainer",
    "Explanation",
    "canonical_method",
    "compose_panel",
    "get_method",
    "list_methods",
    "render_overlay",
]
