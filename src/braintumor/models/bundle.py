"""A trained model as shipped: ``model.safetensors`` plus ``card.json``.

The card says what the weights are (architecture, classes, preprocessing, calibration
temperature, training command, metrics) and carries the SHA-256 of the weights file, so a
swapped or damaged file is refused instead of silently giving wrong answers. Weights are
safetensors: loading never unpickles anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from braintumor.data.preprocess import PreprocessConfig
from braintumor.models.registry import create_model

WEIGHTS_NAME = "model.safetensors"
CARD_NAME = "card.json"


class ModelIntegrityError(ValueError):
    """Weights that do not match their card (checksum, architecture or shapes)."""


@dataclass
class LoadedModel:
    model: nn.Module  # in eval mode
    card: dict
    checksum: str
    classes: list[str]
    preprocess: PreprocessConfig
    temperature: float
    path: Path

    @property
    def name(self) -> str:
        return self.card.get("model", {}).get("name", "unknown")


def bundled_model_path() -> Path:
    """Folder of the model that ships inside the package."""
    return Path(str(resources.files("braintumor") / "weights"))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a shipped model must be world-readable
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_bundle(
    model: nn.Module,
    out_dir: str | Path,
    *,
    model_name: str,
    classes: list[str],
    preprocess: PreprocessConfig,
    in_channels: int = 1,
    temperature: float = 1.0,
    model_kwargs: dict | None = None,
    extra: dict | None = None,
) -> Path:
    """Write weights and card atomically; returns the folder.

    ``model_kwargs`` are the builder arguments beyond the registry defaults (e.g. ``depths``):
    ``load_bundle`` passes them back to ``create_model`` so the weights fit.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    weights = out / WEIGHTS_NAME
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    _atomic_write(weights, lambda tmp: save_file(state, tmp, metadata={"model": model_name}))
    card = dict(extra or {})
    card["model"] = {**card.get("model", {}), "name": model_name,
                     "num_classes": len(classes), "in_channels": in_channels}
    if model_kwargs is not None:
        card["model"]["model_kwargs"] = dict(model_kwargs)
    card["classes"] = list(classes)
    card["preprocess"] = preprocess.to_dict()
    card["temperature"] = float(temperature)
    card["weights"] = {"file": WEIGHTS_NAME, "sha256": sha256_file(weights),
                       "bytes": weights.stat().st_size}
    text = json.dumps(card, indent=2, sort_keys=False) + "\n"
    _atomic_write(out / CARD_NAME, lambda tmp: Path(tmp).write_text(text))
    return out


def load_bundle(path: str | os.PathLike | None = None) -> LoadedModel:
    """Load a bundle folder (or its weights file, with the card beside it); default: bundled."""
    p = Path(path) if path else bundled_model_path()
    if path and not p.exists():
        raise FileNotFoundError(f"{p}: no such model bundle (a folder with {WEIGHTS_NAME} and "
                                f"{CARD_NAME}, or the weights file itself)")
    folder = p if p.is_dir() else p.parent
    card_file = folder / CARD_NAME
    if not card_file.is_file() and path is None:
        raise FileNotFoundError(
            f"no bundled model is installed ({card_file} is missing): pass --model BUNDLE_DIR "
            "or build one with `make train`"
        )
    if not card_file.is_file():
        raise FileNotFoundError(f"{folder}: no {CARD_NAME} (a model bundle is a folder with "
                                f"{WEIGHTS_NAME} and {CARD_NAME})")
    card = json.loads(card_file.read_text())
    weights = p if p.is_file() else folder / card.get("weights", {}).get("file", WEIGHTS_NAME)
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: weights file missing")
    digest = sha256_file(weights)
    expected = card.get("weights", {}).get("sha256")
    if digest != expected:
        raise ModelIntegrityError(
            f"{weights}: SHA-256 {digest[:12]}… does not match the card's {str(expected)[:12]}…; "
            "refusing to load weights that are not the ones the card describes"
        )
    spec = card["model"]
    pre = PreprocessConfig.from_dict(card.get("preprocess", {}))
    model = create_model(spec["name"], num_classes=spec["num_classes"],
                         in_channels=spec.get("in_channels", 1), image_size=pre.image_size,
                         **spec.get("model_kwargs", {}))
    try:
        model.load_state_dict(load_file(str(weights)))
    except RuntimeError as exc:
        first = str(exc).splitlines()[:3]
        raise ModelIntegrityError(
            f"{weights}: weights do not fit {spec['name']} "
            f"{spec.get('model_kwargs') or ''}: {' '.join(first)[:400]}"
        ) from exc
    model.eval()
    return LoadedModel(
        model=model,
        card=card,
        checksum=digest,
        classes=list(card["classes"]),
        preprocess=pre,
        temperature=float(card.get("temperature", 1.0)),
        path=folder,
    )
