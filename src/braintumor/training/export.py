"""Evaluate the selected checkpoint and write it as a model bundle with its card."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.metrics import accuracy_score, f1_score

from braintumor.evaluation.calibration import fit_temperature
from braintumor.models.runtime import predict_logits


def logits_for(model: torch.nn.Module, images_u8: np.ndarray) -> np.ndarray:
    return predict_logits(model, np.asarray(images_u8))


def headline_metrics(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    pred = logits.argmax(1)
    per_class = f1_score(labels, pred, average=None, labels=range(len(classes)),
                         zero_division=0)
    return {
        "images": int(len(labels)),
        "accuracy": float(accuracy_score(labels, pred)),
        "macro_f1": float(f1_score(labels, pred, average="macro", zero_division=0)),
        "f1_per_class": {c: float(f) for c, f in zip(classes, per_class, strict=True)},
        "errors": int((pred != labels).sum()),
    }


def temperature_from_validation(logits: np.ndarray, labels: np.ndarray) -> float:
    return fit_temperature(logits, labels)
