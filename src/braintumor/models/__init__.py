"""Model architectures, their registry and the shipped-bundle format."""

from braintumor.models.bundle import LoadedModel, ModelIntegrityError, load_bundle, save_bundle
from braintumor.models.registry import create_model, list_models, model_info, register_model

__all__ = [
    "LoadedModel",
    "ModelIntegrityError",
    "create_model",
    "list_models",
    "load_bundle",
    "model_info",
    "register_model",
    "save_bundle",
]
