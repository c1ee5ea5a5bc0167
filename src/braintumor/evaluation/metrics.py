"""Classification metrics of one model on one set of labelled images, as plain JSON values.

Every number comes from scikit-learn so that it means exactly what the literature's numbers
mean; this module only decides which numbers to report and makes them JSON-safe (a metric that
is undefined on the data, e.g. ROC-AUC of a class with no positive image, is ``None``, never
NaN, because ``json`` would write NaN as invalid JSON).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    recall_score,
    roc_auc_score,
)

NO_TUMOR = "notumor"


def _clean(x: float | None) -> float | None:
    return None if x is None or not np.isfinite(x) else float(x)


def per_class_roc_auc(labels: np.ndarray, probs: np.ndarray) -> list[float | None]:
    """One-vs-rest ROC-AUC of each class; ``None`` where the class is all-in or all-out."""
    out: list[float | None] = []
    for k in range(probs.shape[1]):
        positive = labels == k
        if positive.all() or not positive.any():
            out.append(None)
        else:
            out.append(float(roc_auc_score(positive, probs[:, k])))
    return out


def tumor_vs_no_tumor(labels: np.ndarray, preds: np.ndarray,
                      classes: Sequence[str]) -> dict | None:
    """Sensitivity and specificity of "any tumour" vs "no tumour" (None without a notumor class).

    A glioma called a meningioma is still a detected tumour here: this is the screening view a
    clinician asks about first, separate from the four-way accuracy.
    """
    if NO_TUMOR not in classes:
        return None
    neg = list(classes).index(NO_TUMOR)
    true_tumor = (labels != neg).astype(int)
    pred_tumor = (preds != neg).astype(int)
    (tn, fp), (fn, tp) = confusion_matrix(true_tumor, pred_tumor, labels=[0, 1])
    sens = recall_score(true_tumor, pred_tumor, pos_label=1, zero_division=np.nan)
    spec = recall_score(true_tumor, pred_tumor, pos_label=0, zero_division=np.nan)
    return {"sensitivity": _clean(sens), "specificity": _clean(spec),
            "true_positive": int(tp), "false_negative": int(fn),
            "true_negative": int(tn), "false_positive": int(fp)}


def classification_metrics(labels: np.ndarray, probs: np.ndarray,
                           classes: Sequence[str]) -> dict:
    """All metrics of ``metrics.json`` that depend only on labels and probabilities.

    ``labels`` are class indices (N,), ``probs`` calibrated probabilities (N, C) in the order
    of ``classes``; the prediction is their argmax.
    """
    labels = np.asarray(labels, dtype=np.int64)
    probs = np.asarray(probs, dtype=np.float64)
    idx = list(range(len(classes)))
    if len(labels) == 0:
        return {"n_images": 0, "classes": list(classes), "accuracy": None, "macro_f1": None,
                "weighted_f1": None, "roc_auc_macro": None, "per_class": {},
                "confusion_matrix": [[0] * len(idx) for _ in idx], "tumor_vs_no_tumor": None}
    preds = probs.argmax(axis=1)
    prec, rec, f1, support = precision_recall_fscore_support(
        labels, preds, labels=idx, zero_division=0)
    aucs = per_class_roc_auc(labels, probs)
    defined = [a for a in aucs if a is not None]
    # Equal to sklearn's roc_auc_score(multi_class="ovr", average="macro") when every class
    # occurs; unlike it, still defined on a subset (e.g. leak-free images) that lacks a class.
    auc_macro = float(np.mean(defined)) if defined else None
    return {
        "n_images": len(labels),
        "classes": list(classes),
        "accuracy": float(accuracy_score(labels, preds)),
        "macro_f1": float(f1_score(labels, preds, labels=idx, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(labels, preds, labels=idx, average="weighted",
                                      zero_division=0)),
        "roc_auc_macro": auc_macro,
        "per_class": {
            c: {"precision": float(prec[k]), "recall": float(rec[k]), "f1": float(f1[k]),
                "support": int(support[k]), "roc_auc": aucs[k]}
            for k, c in enumerate(classes)
        },
        "confusion_matrix": confusion_matrix(labels, preds, labels=idx).tolist(),
        "tumor_vs_no_tumor": tumor_vs_no_tumor(labels, preds, classes),
    }



def headline_metrics(logits: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    """The few figures a training run records for its selected checkpoint (validation and
    test): image count, accuracy, macro and per-class F1, errors."""
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
