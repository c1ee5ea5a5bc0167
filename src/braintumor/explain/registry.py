"""Method names as the CLI and the API spell them, and the classes behind them."""

from __future__ import annotations

import re

from braintumor.explain.base import AttributionMethod
from braintumor.explain.gradcam import GradCAM
from braintumor.explain.gradcam_plus_plus import GradCAMPlusPlus
from braintumor.explain.guided_gradcam import GuidedGradCAM
from braintumor.explain.integrated_gradients import IntegratedGradients
from braintumor.explain.occlusion import Occlusion

METHODS: dict[str, type[AttributionMethod]] = {
    cls.name: cls
    for cls in (GradCAM, GradCAMPlusPlus, GuidedGradCAM, Occlusion, IntegratedGradients)
}

# Spellings people type, reduced by ``_key`` (lower case, letters and "+" only).
_ALIASES = {
    "gradcam": "gradcam",
    "gradcam++": "gradcam++",
    "gradcampp": "gradcam++",
    "gradcamplusplus": "gradcam++",
    "guidedgradcam": "guided-gradcam",
    "occlusion": "occlusion",
    "integratedgradients": "integrated-gradients",
    "ig": "integrated-gradients",
}


def _key(name: str) -> str:
    return re.sub(r"[^a-z+]", "", name.lower())


def list_methods() -> list[str]:
    return list(METHODS)


def canonical_method(name: str) -> str:
    """``"Grad-CAM++"`` -> ``"gradcam++"``; raises ``ValueError`` naming the choices."""
    key = _ALIASES.get(_key(name))
    if key is None:
        raise ValueError(f"unknown explanation method {name!r}; choose from "
                         f"{', '.join(METHODS)}")
    return key


def get_method(method: str | AttributionMethod, **options) -> AttributionMethod:
    """A method instance from its name (with constructor ``options``) or as given."""
    if isinstance(method, AttributionMethod):
        return method
    return METHODS[canonical_method(method)](**options)
