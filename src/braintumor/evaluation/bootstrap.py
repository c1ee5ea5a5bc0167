"""Bootstrap 95% intervals for accuracy and macro-F1 (percentile method, seeded).

Resampling is scipy's ``stats.bootstrap`` (paired, so an image keeps its label and its
prediction together). The statistic is vectorised by hand over the resamples: one confusion
matrix per resample via a single ``bincount``, from which accuracy and macro-F1 follow. Calling
scikit-learn's ``f1_score`` once per resample would give the same numbers (the tests check it)
at about a hundred times the cost, which matters when the report must come out in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

DEFAULT_RESAMPLES = 1000
DEFAULT_SEED = 0


def confusion_matrices(labels: np.ndarray, preds: np.ndarray, n_classes: int) -> np.ndarray:
    """Confusion matrices (..., C, C), rows true, along the last axis of ``labels``/``preds``."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    batch_shape = labels.shape[:-1]
    flat_l = labels.reshape(-1, labels.shape[-1])
    flat_p = preds.reshape(-1, preds.shape[-1])
    cc = n_classes * n_classes
    offset = np.arange(flat_l.shape[0])[:, None] * cc
    counts = np.bincount((flat_l * n_classes + flat_p + offset).ravel(),
                         minlength=flat_l.shape[0] * cc)
    return counts.reshape(*batch_shape, n_classes, n_classes)


def accuracy_and_macro_f1(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 from confusion matrices (..., C, C); F1 of an absent class is 0,
    as scikit-learn's ``zero_division=0`` gives."""
    tp = np.diagonal(cm, axis1=-2, axis2=-1).astype(np.float64)
    n = cm.sum(axis=(-2, -1))
    acc = tp.sum(axis=-1) / np.maximum(n, 1)
    denom = cm.sum(axis=-1) + cm.sum(axis=-2)  # true count + predicted count = 2TP + FP + FN
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return acc, f1.mean(axis=-1)


def bootstrap_ci(labels: np.ndarray, preds: np.ndarray, n_classes: int,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED,
                 confidence: float = 0.95) -> dict | None:
    """``{"accuracy": [lo, hi], "macro_f1": [lo, hi], ...}`` or None for fewer than 2 images."""
    labels = np.asarray(labels, dtype=np.int64)
    preds = np.asarray(preds, dtype=np.int64)
    if len(labels) < 2:
        return None

    def statistic(y: np.ndarray, p: np.ndarray, axis: int = -1) -> np.ndarray:
        y, p = np.moveaxis(y, axis, -1), np.moveaxis(p, axis, -1)
        return np.stack(accuracy_and_macro_f1(confusion_matrices(y, p, n_classes)))

    res = stats.bootstrap((labels, preds), statistic, paired=True, vectorized=True,
                          n_resamples=n_resamples, method="percentile",
                          confidence_level=confidence, batch=250, rng=seed)
    lo, hi = res.confidence_interval
    return {"accuracy": [float(lo[0]), float(hi[0])],
            "macro_f1": [float(lo[1]), float(hi[1])],
            "method": "percentile", "n_resamples": n_resamples, "seed": seed,
            "confidence": confidence}
