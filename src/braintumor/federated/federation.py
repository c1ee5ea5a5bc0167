"""What the simulation and the server share: the starting model, global validation, the
round log and the final bundle (a normal one: ``evaluate``, ``predict`` and ``serve`` take it).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch import nn

from braintumor import DISCLAIMER
from braintumor.data.preprocess import PreprocessConfig
from braintumor.evaluation.calibration import fit_temperature
from braintumor.evaluation.metrics import headline_metrics
from braintumor.federated.weights import ModelSpec, load_arrays
from braintumor.models import create_model, model_info, save_bundle
from braintumor.models.runtime import predict_logits
from braintumor.training.config import TrainConfig
from braintumor.training.init_from import init_from_parent, load_parent


def spec_of(cfg: TrainConfig, classes: list[str]) -> ModelSpec:
    return ModelSpec(cfg.model, cfg.image_size, tuple(classes), dict(cfg.model_kwargs))


def initial_model(cfg: TrainConfig, classes: list[str]) -> tuple[nn.Module, dict | None]:
    """The round-0 global model: seeded from scratch, or a parent's (``init_from``)."""
    L.seed_everything(cfg.seed, verbose=False)
    model = create_model(cfg.model, num_classes=len(classes), in_channels=1,
                         image_size=cfg.image_size, **cfg.model_kwargs)
    parent = None
    if cfg.init_from:
        parent = init_from_parent(model, load_parent(cfg.init_from), cfg.model,
                                  cfg.model_kwargs, classes)
    return model, parent


class GlobalEvaluator:
    """Scores global weights on validation images the server holds."""

    def __init__(self, spec: ModelSpec, model: nn.Module, images: np.ndarray,
                 labels: np.ndarray):
        self.spec, self.model, self.images, self.labels = spec, model, images, labels

    def __call__(self, arrays: list[np.ndarray]) -> dict:
        load_arrays(self.model, arrays, self.spec)
        logits = predict_logits(self.model.eval(), np.asarray(self.images))
        loss = float(torch.nn.functional.cross_entropy(
            torch.from_numpy(logits), torch.from_numpy(self.labels.astype(np.int64))))
        m = headline_metrics(logits, self.labels, list(self.spec.classes))
        return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"], "val_loss": loss}


def write_round_log(rounds: list[dict], out: Path) -> None:
    """``rounds.json`` (everything) and ``rounds.csv`` / ``sites.csv`` (flat, for plots)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "rounds.json").write_text(json.dumps(rounds, indent=2, default=float) + "\n")
    cols = ["round", "val_accuracy", "val_macro_f1", "val_loss", "sites_asked", "sites_ok",
            "failures", "bytes_down", "bytes_up", "bytes_total", "seconds"]
    with (out / "rounds.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(rounds)
    site_cols = ["round", "site", "examples", "train_loss", "val_accuracy", "val_macro_f1",
                 "val_images", "local_seconds"]
    with (out / "sites.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=site_cols, extrasaction="ignore")
        w.writeheader()
        for r in rounds:
            for s in r.get("sites", []):
                w.writerow({"round": r["round"], **s})


def write_global_bundle(model: nn.Module, arrays: list[np.ndarray], spec: ModelSpec,
                        cfg: TrainConfig, out: Path, federated: dict,
                        validation: tuple[np.ndarray, np.ndarray] | None = None,
                        test: tuple[np.ndarray, np.ndarray] | None = None,
                        training: dict | None = None) -> Path:
    """The final global model as a bundle whose card says how it was federated.

    With server-side validation images the temperature is fitted on them and their metrics
    recorded, as a central run does; without, the temperature stays 1.
    """
    load_arrays(model, arrays, spec)
    model = model.float().eval()
    classes = list(spec.classes)
    metrics, temperature = {}, 1.0
    if validation is not None:
        logits = predict_logits(model, np.asarray(validation[0]))
        temperature = fit_temperature(logits, validation[1])
        metrics["validation"] = headline_metrics(logits, validation[1], classes)
    if test is not None and len(test[1]):
        test_logits = predict_logits(model, np.asarray(test[0]))
        metrics["test"] = headline_metrics(test_logits, test[1], classes)
    info = model_info(model, spec.image_size)
    card = {
        "intended_use": DISCLAIMER,
        "model": {"architecture": spec.architecture, "model_kwargs": spec.model_kwargs,
                  "parameters": info.parameters, "flops_per_image": info.flops,
                  "target_layer": getattr(model, "target_layer", None)},
        "training": training or {},
        "federated": federated,
        "metrics": metrics,
    }
    return save_bundle(model, out, model_name=spec.architecture, classes=classes,
                       preprocess=PreprocessConfig(image_size=spec.image_size),
                       temperature=temperature, extra=card)

