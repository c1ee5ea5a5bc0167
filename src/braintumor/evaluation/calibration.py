"""Temperature scaling (Guo et al. 2017) and expected calibration error.

Written here rather than imported: the libraries at hand (torchmetrics, scikit-learn) measure
calibration error but do not fit a temperature, and the fit is one scalar by LBFGS.
"""

from __future__ import annotations

import numpy as np
import torch


def fit_temperature(logits: np.ndarray, labels: np.ndarray, max_iter: int = 200) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T) on held-out data."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)  # T = exp(log_t) > 0
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    return t if np.isfinite(t) else 1.0


def reliability_bins(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> dict:
    """Per-bin count, mean confidence and accuracy of the top-label prediction.

    Equal-width bins over (0, 1], right-closed, as in Guo et al. 2017; both the ECE and the
    reliability diagram read these, so the figure always shows the number next to it.
    Empty bins have ``None`` confidence and accuracy.
    """
    probs = np.asarray(probs, dtype=np.float64)
    labels = np.asarray(labels)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == labels).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    # Bin k holds edges[k] < conf <= edges[k + 1]; a confidence of exactly 0 cannot occur.
    which = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, n_bins - 1)
    counts = np.bincount(which, minlength=n_bins)
    conf_sum = np.bincount(which, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(which, weights=correct, minlength=n_bins)
    nonempty = counts > 0
    mean_conf = np.where(nonempty, conf_sum / np.maximum(counts, 1), np.nan)
    mean_acc = np.where(nonempty, acc_sum / np.maximum(counts, 1), np.nan)
    return {
        "edges": edges.tolist(),
        "count": counts.astype(int).tolist(),
        "confidence": [None if np.isnan(v) else float(v) for v in mean_conf],
        "accuracy": [None if np.isnan(v) else float(v) for v in mean_acc],
    }


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width confidence bins: sum over bins of
    (share of images) x |accuracy - mean confidence|."""
    bins = reliability_bins(probs, labels, n_bins)
    n = max(1, sum(bins["count"]))
    ece = 0.0
    for count, conf, acc in zip(bins["count"], bins["confidence"], bins["accuracy"],
                                strict=True):
        if count:
            ece += count / n * abs(acc - conf)
    return float(ece)
