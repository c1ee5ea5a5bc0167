"""Fine-tuning: start a run from a parent model's weights (``braintumor train --init-from``).

The parent is a bundle folder (or its ``model.safetensors``), a run folder (its ``bundle/``),
a Lightning checkpoint (``.ckpt``) or ``bundled``. Its architecture must be the configured
one; only the classifier may differ, and only because the class list does: a new class list
gets a fresh classifier, in which classes the parent already knew keep their rows (so a
relabelled ``notumor`` starts from what the parent learnt about it). The parent's weights
SHA-256 goes into the card, so a fine-tuned bundle names the model it grew from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from lightning.pytorch.callbacks import Callback
from torch import nn

from braintumor.models.bundle import (
    CARD_NAME,
    bundled_model_path,
    load_bundle,
    sha256_file,
)

BUNDLED = "bundled"


class InitFromError(ValueError):
    """A parent model that cannot seed this run; the message says why and what to change."""


@dataclass
class ParentModel:
    """What a run inherits: weights, and what they are, for the check and the card."""

    source: str
    state_dict: dict[str, torch.Tensor]
    architecture: str
    model_kwargs: dict
    classes: list[str] | None  # None: a checkpoint with no card beside it
    sha256: str
    name: str

    def card_entry(self) -> dict:
        return {"source": self.source, "name": self.name, "architecture": self.architecture,
                "model_kwargs": self.model_kwargs, "classes": self.classes,
                "weights_sha256": self.sha256}


def load_parent(spec: str) -> ParentModel:
    """Read a parent model from ``spec`` (see the module docstring); never unpickles."""
    path = bundled_model_path() if spec == BUNDLED else Path(spec)
    if not path.exists():
        raise InitFromError(f"--init-from {spec}: no such bundle, run folder or checkpoint")
    if path.is_dir() and not (path / CARD_NAME).is_file() and (path / "bundle").is_dir():
        path = path / "bundle"  # a run folder
    if path.suffix == ".ckpt":
        return _from_checkpoint(spec, path)
    try:
        loaded = load_bundle(path)
    except (FileNotFoundError, ValueError) as exc:
        raise InitFromError(f"--init-from {spec}: {exc}") from exc
    spec_model = loaded.card.get("model", {})
    name = loaded.card.get("name") or ("bundled" if spec == BUNDLED else loaded.path.name)
    return ParentModel(spec, loaded.model.state_dict(), spec_model.get("name", "unknown"),
                       dict(spec_model.get("model_kwargs") or {}), loaded.classes,
                       loaded.checksum, name)


def _from_checkpoint(spec: str, path: Path) -> ParentModel:
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InitFromError(f"--init-from {path}: not a readable Lightning checkpoint: "
                            f"{exc}") from exc
    config = (ckpt.get("hyper_parameters") or {}).get("config") or {}
    state = {k.removeprefix("model."): v for k, v in ckpt.get("state_dict", {}).items()
             if k.startswith("model.")}
    if not state or "model" not in config:
        raise InitFromError(f"--init-from {path}: not a braintumor training checkpoint "
                            "(no model weights or config in it)")
    classes = None
    card = path.parent.parent / "bundle" / CARD_NAME  # run/checkpoints/x.ckpt -> run/bundle
    if card.is_file():
        classes = json.loads(card.read_text()).get("classes")
    return ParentModel(spec, state, config["model"], dict(config.get("model_kwargs") or {}),
                       classes, sha256_file(path), f"{path.parent.parent.name}/{path.name}")


def classifier_prefix(model: nn.Module, num_classes: int) -> str:
    """Name of the model's classifier: its last ``nn.Linear`` with one output per class."""
    name = None
    for n, m in model.named_modules():
        if isinstance(m, nn.Linear) and m.out_features == num_classes:
            name = n
    if name is None:
        raise InitFromError(f"{type(model).__name__} has no final linear layer with "
                            f"{num_classes} outputs to replace")
    return name


def init_from_parent(model: nn.Module, parent: ParentModel, architecture: str,
                     model_kwargs: dict, classes: list[str]) -> dict:
    """Copy the parent's weights into ``model``; returns what the card records.

    Raises :class:`InitFromError` naming both architectures when anything but the classifier
    fails to fit.
    """
    wanted = f"{architecture} {model_kwargs or ''}".strip()
    have = f"{parent.architecture} {parent.model_kwargs or ''}".strip()
    if parent.architecture != architecture or parent.model_kwargs != dict(model_kwargs or {}):
        raise InitFromError(
            f"--init-from {parent.source} is a {have}, but this run trains a {wanted}; "
            f"fine-tuning needs the same architecture (pass --model {parent.architecture} and "
            "its model_kwargs, e.g. the parent's training config as --config)")
    own = model.state_dict()
    head = classifier_prefix(model, len(classes))
    head_keys = {k for k in own if k.startswith(head + ".")}
    parent_classes = parent.classes
    parent_out = parent.state_dict.get(f"{head}.weight")
    if parent_classes is None and parent_out is not None:
        parent_classes = None if parent_out.shape[0] != len(classes) else list(classes)
    same_classes = parent_classes == list(classes)
    misfit = [f"{k} {tuple(parent.state_dict[k].shape)} -> {tuple(v.shape)}"
              for k, v in own.items() if k not in head_keys and k in parent.state_dict
              and parent.state_dict[k].shape != v.shape]
    missing = sorted(set(own) - set(parent.state_dict))
    unexpected = sorted(set(parent.state_dict) - set(own))
    if misfit or missing or unexpected:
        detail = "; ".join(misfit[:3] + [f"missing {', '.join(missing[:3])}"] * bool(missing)
                           + [f"unexpected {', '.join(unexpected[:3])}"] * bool(unexpected))
        raise InitFromError(f"--init-from {parent.source} ({have}) does not fit this run's "
                            f"{wanted}: {detail}")
    new_state = {k: v.clone() for k, v in parent.state_dict.items() if k not in head_keys}
    kept_rows: list[str] = []
    if same_classes:
        new_state.update({k: parent.state_dict[k].clone() for k in head_keys})
    else:
        # A fresh classifier (the model's own initialisation), except the rows of classes the
        # parent already had: their features were learnt for exactly that class.
        for k in head_keys:
            fresh = own[k].clone()
            src = parent.state_dict.get(k)
            if parent_classes and src is not None:
                for i, c in enumerate(classes):
                    if c in parent_classes:
                        fresh[i] = src[parent_classes.index(c)]
            new_state[k] = fresh
        kept_rows = [c for c in classes if parent_classes and c in parent_classes]
    model.load_state_dict(new_state)
    entry = parent.card_entry()
    entry["classifier"] = ("inherited" if same_classes else
                           f"replaced ({head}); rows kept for: {', '.join(kept_rows) or 'none'}")
    return entry


def freeze_parameters(model: nn.Module, prefixes: list[str]) -> list[str]:
    """Stop gradients to parameters under ``prefixes``; returns the frozen module names.

    Raises :class:`InitFromError` for a prefix that names no parameter (a typo would
    otherwise freeze nothing without a word).
    """
    names = [n for n, _ in model.named_parameters()]
    for prefix in prefixes:
        if not any(n == prefix or n.startswith(prefix + ".") for n in names):
            tops = sorted({n.split(".")[0] for n in names})
            raise InitFromError(f"--freeze {prefix}: no parameter of the model is under it "
                                f"(top-level modules: {', '.join(tops)})")
    for n, p in model.named_parameters():
        if any(n == pre or n.startswith(pre + ".") for pre in prefixes):
            p.requires_grad_(False)
    return list(prefixes)


def frozen_norm_layers(model: nn.Module, prefixes: list[str]) -> list[nn.Module]:
    """Batch-norm layers under ``prefixes``: kept in eval mode so their statistics stay too."""
    return [m for n, m in model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)
            and any(n == pre or n.startswith(pre + ".") for pre in prefixes)]


class FrozenNormEval(Callback):
    """Keep frozen batch-norm layers in eval mode through training.

    Lightning puts the whole module in train mode at every epoch (and after each
    validation), which would let running statistics of "frozen" layers drift; resetting
    them before every batch is what keeps a frozen stage bit for bit the parent's.
    """

    def __init__(self, layers: list[nn.Module]):
        self.layers = layers

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        for m in self.layers:
            m.eval()
