import json

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)

from braintumor.evaluation.metrics import classification_metrics

CLASSES = ("glioma", "meningioma", "notumor", "pituitary")


def hand_made(n: int = 80, seed: int = 1):
    """Labels and probabilities of a mediocre classifier: right about 70% of the time."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, n)
    logits = rng.normal(0, 1, (n, 4))
    logits[np.arange(n), labels] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return labels, probs


def test_every_metric_matches_scikit_learn():
    labels, probs = hand_made()
    preds = probs.argmax(1)
    m = classification_metrics(labels, probs, CLASSES)
    assert m["n_images"] == len(labels)
    assert m["accuracy"] == pytest.approx(accuracy_score(labels, preds))
    assert m["macro_f1"] == pytest.approx(f1_score(labels, preds, average="macro"))
    assert m["weighted_f1"] == pytest.approx(f1_score(labels, preds, average="weighted"))
    assert m["roc_auc_macro"] == pytest.approx(
        roc_auc_score(labels, probs, multi_class="ovr", average="macro"))
    p, r, f, s = precision_recall_fscore_support(labels, preds)
    for k, c in enumerate(CLASSES):
        pc = m["per_class"][c]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx((p[k], r[k], f[k]))
        assert pc["support"] == s[k]
        assert pc["roc_auc"] == pytest.approx(roc_auc_score(labels == k, probs[:, k]))
    assert m["confusion_matrix"] == confusion_matrix(labels, preds).tolist()
    assert m["classes"] == list(CLASSES)


def test_tumor_vs_no_tumor_on_a_hand_counted_example():
    # true:      gl  gl  me  pi  no  no  no  pi
    # predicted: me  no  me  pi  no  gl  no  pi
    labels = np.array([0, 0, 1, 3, 2, 2, 2, 3])
    preds = np.array([1, 2, 1, 3, 2, 0, 2, 3])
    probs = np.eye(4)[preds] * 0.7 + 0.075
    t = classification_metrics(labels, probs, CLASSES)["tumor_vs_no_tumor"]
    # 5 tumours, one called "no tumour" (the glioma -> notumor); a glioma called a meningioma
    # still counts as flagged.
    assert t["sensitivity"] == pytest.approx(4 / 5)
    # 3 tumour-free scans, one flagged as glioma.
    assert t["specificity"] == pytest.approx(2 / 3)
    assert (t["true_positive"], t["false_negative"], t["true_negative"], t["false_positive"]) \
        == (4, 1, 2, 1)


def test_a_subset_missing_a_class_gives_none_not_nan_and_stays_valid_json():
    labels, probs = hand_made()
    keep = labels != 3  # no pituitary at all, as can happen in a small leak-free subset
    m = classification_metrics(labels[keep], probs[keep], CLASSES)
    assert m["per_class"]["pituitary"]["roc_auc"] is None
    assert m["per_class"]["pituitary"]["support"] == 0
    defined = [m["per_class"][c]["roc_auc"] for c in CLASSES[:3]]
    assert m["roc_auc_macro"] == pytest.approx(np.mean(defined))
    json.dumps(m, allow_nan=False)


def test_no_notumor_class_means_no_screening_figures():
    labels, probs = hand_made()
    m = classification_metrics(labels, probs, ("a", "b", "c", "d"))
    assert m["tumor_vs_no_tumor"] is None

