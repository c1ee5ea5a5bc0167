"""Out-of-distribution warnings: does this input look like the brain MRI slices the model knows?

A classifier answers for any image (random noise got "notumor" at 0.995), so every
prediction also gets a score that says how far its input is from the bundle's validation
scans, and a ``warning`` when that is further than almost all of them. Two kinds of evidence:

- **features**: the Mahalanobis distance of the penultimate features (the classifier's input)
  to the nearest class mean, with one shared covariance (Lee et al. 2018, "A simple unified
  framework for detecting out-of-distribution samples"). Means and covariance come from the
  bundle's training part, the thresholds from its validation part, so the figure a threshold
  promises is measured on scans the means never saw. Ledoit-Wolf shrinkage (scikit-learn)
  keeps the 256x256 covariance invertible and stable from a few thousand scans.
- **image checks** on what the model sees: colour (a grey MRI has none; ``ImageMeta``
  records the chroma the grey conversion throws away), the share of near-black pixels (an
  MRI has a black background around the head), the share of the head-crop foreground and the
  distance of the intensity histogram from the validation scans' mean histogram.

Each check has an upper threshold; ``score`` is the largest value/threshold ratio, so a
score above 1 warns and says by how much. The thresholds are set together, on the
validation part, so that about ``target_rate`` (0.5 %) of validation scans warn
(:func:`calibrate`). The calibration lives in ``ood.safetensors`` beside the weights, its
SHA-256 and thresholds in the card's ``ood`` section; a bundle without one predicts as
before, with no warning (``Predictor.ood`` is None).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

WARNING_TEXT = "this does not look like a brain MRI slice; the result is unreliable"
OOD_FILE = "ood.safetensors"
CARD_SECTION = "ood"
OOD_VERSION = 1
# Bins of the intensity histogram of the model's input (uint8 -> 32 bins of 8 levels).
HIST_BINS = 32
# A pixel of the model's input at or below this level counts as background (black).
DARK_LEVEL = 10
# Colour is checked against a fixed bound, not a quantile: the grey scans (half of them
# stored as RGB JPEGs) all sit near 0 (0.0145 at most over a quarter of the dataset's RGB
# JPEGs), a colour photo far above (0.1-0.4), an ultrasound with a colour Doppler box ~0.046.
SATURATION_LIMIT = 0.03
# The quantile-calibrated checks, in the order they are reported.
CHECKS = ("features", "histogram", "background", "foreground")


@dataclass
class ImageChecks:
    """The per-image statistics the image checks threshold (all "higher = less MRI-like")."""

    histogram: np.ndarray  # (N,) L1 distance of the histogram from the validation mean
    background: np.ndarray  # (N,) 1 - share of near-black pixels
    foreground: np.ndarray  # (N,) share of pixels in the head crop's foreground
    saturation: np.ndarray  # (N,) mean chroma of the stored image


def histograms(images_u8: np.ndarray) -> np.ndarray:
    """(N, HIST_BINS) normalised intensity histograms of (N, S, S) uint8 model inputs."""
    flat = np.asarray(images_u8).reshape(len(images_u8), -1) // (256 // HIST_BINS)
    counts = np.stack([np.bincount(row, minlength=HIST_BINS) for row in flat])
    return counts / flat.shape[1]


def image_checks(images_u8: np.ndarray, saturation: np.ndarray, mean_histogram: np.ndarray,
                 crop_threshold: float) -> ImageChecks:
    """The image statistics of (N, S, S) uint8 model inputs (after the head crop)."""
    imgs = np.asarray(images_u8)
    flat = imgs.reshape(len(imgs), -1)
    ref = np.percentile(flat, 99, axis=1, keepdims=True)
    return ImageChecks(
        histogram=np.abs(histograms(imgs) - mean_histogram).sum(axis=1),
        background=1.0 - (flat <= DARK_LEVEL).mean(axis=1),
        foreground=(flat > crop_threshold * ref).mean(axis=1),
        saturation=np.asarray(saturation, dtype=np.float64),
    )


def feature_layer(model):
    """The layer whose input is the OOD features: the model's last ``nn.Linear`` (its
    classifier). One definition for the PyTorch extractor and the ONNX export's ``features``
    output (inference/onnx_export.py), so both backends score the same vector."""
    from torch import nn

    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError("the model has no nn.Linear classifier: no features to score")
    return linears[-1]


class FeatureExtractor:
    """Logits and penultimate features (the input of the model's last ``nn.Linear``) at once.

    A forward pre-hook captures the features; it writes into thread-local storage, because
    the REST service runs one model from many threads and a hook fires for all of them.
    """

    def __init__(self, model):
        import torch

        from braintumor.models.runtime import inference_copy
        from braintumor.models.tumour import has_tumour_head

        self._net = inference_copy(model)
        self._local = threading.local()
        feature_layer(self._net).register_forward_pre_hook(self._capture)
        self._torch = torch
        self.has_tumour_head = has_tumour_head(self._net)

    def _capture(self, module, inputs) -> None:
        self._local.features = inputs[0].detach()

    def __call__(self, images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, S, S) uint8 -> logits (N, C) and features (N, D), float32, one pass."""
        logits, _, feats = self.forward(images_u8)
        return logits, feats

    def forward(self, images_u8: np.ndarray, tumour: bool = False
                ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Logits, tumour logits (N, 1, h, w; None unless ``tumour``) and features from one
        forward pass (``tumour`` needs a model with a tumour head: models/tumour.py)."""
        from braintumor.data.preprocess import to_model_input

        torch = self._torch
        tumour_logits = None
        with torch.inference_mode():
            x = to_model_input(images_u8).contiguous(memory_format=torch.channels_last)
            if tumour:
                out, t = self._net.forward_with_tumour(x)  # type: ignore[operator]  # has_tumour_head
                tumour_logits = t.float().contiguous().numpy()
            else:
                out = self._net(x)
            logits = out.float().numpy()
        feats = self._local.features.float().reshape(len(logits), -1).numpy()
        return logits, tumour_logits, feats


@dataclass
class OodCalibration:
    """What :func:`calibrate` learnt: class means, shared precision, histogram, thresholds."""

    means: np.ndarray  # (C, D) class means of the training part's features
    precision: np.ndarray  # (D, D) inverse of the shared (shrunk) covariance
    mean_histogram: np.ndarray  # (HIST_BINS,) validation mean histogram of the model input
    thresholds: dict[str, float]  # check -> upper bound (CHECKS, plus "saturation")
    info: dict = field(default_factory=dict)  # what it was calibrated on, measured rates

    def mahalanobis(self, feats: np.ndarray) -> np.ndarray:
        """(N,) squared Mahalanobis distance to the nearest class mean."""
        diff = np.asarray(feats, np.float64)[:, None, :] - self.means[None]  # (N, C, D)
        d = np.einsum("ncd,de,nce->nc", diff, self.precision, diff)
        return d.min(axis=1)

    def ratios(self, feats: np.ndarray, checks: ImageChecks) -> dict[str, np.ndarray]:
        """check -> (N,) value / threshold: above 1 means the check warns."""
        values = {"features": self.mahalanobis(feats), "histogram": checks.histogram,
                  "background": checks.background, "foreground": checks.foreground,
                  "saturation": checks.saturation}
        return {k: values[k] / self.thresholds[k] for k in (*CHECKS, "saturation")}

    # ------------------------------------------------------------ persistence
    def save(self, folder: str | Path) -> dict:
        """Write ``ood.safetensors`` into a bundle folder; returns the card section."""
        import torch
        from safetensors.torch import save_file

        from braintumor.models.bundle import _atomic_write, sha256_file

        path = Path(folder) / OOD_FILE
        tensors = {"means": torch.from_numpy(self.means.astype(np.float32)),
                   "precision": torch.from_numpy(self.precision.astype(np.float32)),
                   "mean_histogram": torch.from_numpy(self.mean_histogram.astype(np.float32))}
        _atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata={"ood": "v1"}))
        return {"version": OOD_VERSION, "file": OOD_FILE, "sha256": sha256_file(path),
                "method": "mahalanobis (Lee et al. 2018) on penultimate features + image "
                          "checks", "warning": WARNING_TEXT,
                "thresholds": dict(self.thresholds), **self.info}

    @classmethod
    def from_bundle(cls, folder: str | Path, card: dict) -> OodCalibration | None:
        """The bundle's calibration, None when its card has none; refuses a changed file."""
        from safetensors.numpy import load_file

        from braintumor.models.bundle import ModelIntegrityError, sha256_file

        section = card.get(CARD_SECTION)
        if not section:
            return None
        path = Path(folder) / section.get("file", OOD_FILE)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: the card's {CARD_SECTION!r} section names this "
                                    "calibration file, which is missing (re-run "
                                    "`braintumor calibrate-ood`)")
        if sha256_file(path) != section.get("sha256"):
            raise ModelIntegrityError(f"{path}: SHA-256 does not match the card's ood section; "
                                      "refusing a calibration the card does not describe")
        t = load_file(str(path))
        info = {k: v for k, v in section.items()
                if k not in ("version", "file", "sha256", "method", "warning", "thresholds")}
        return cls(means=t["means"].astype(np.float64),
                   precision=t["precision"].astype(np.float64),
                   mean_histogram=t["mean_histogram"].astype(np.float64),
                   thresholds={k: float(v) for k, v in section["thresholds"].items()},
                   info=info)


@dataclass(frozen=True)
class OodResult:
    score: float  # largest value/threshold ratio over the checks; above 1 warns
    reasons: tuple[str, ...]  # the checks above their threshold, worst first

    @property
    def warning(self) -> str | None:
        return WARNING_TEXT if self.reasons else None


class OodDetector:
    """Scores preprocessed batches against a calibration (one per Predictor).

    ``model``: the PyTorch model whose features :attr:`extract` computes; None when the
    backend gives logits and features from its own single pass (an ONNX graph with a
    ``features`` output), so no PyTorch copy is built. ``features_from`` says which, for
    :func:`describe`.
    """

    def __init__(self, calibration: OodCalibration, model, crop_threshold: float,
                 features_from: str = "the PyTorch forward pass"):
        self.calibration = calibration
        self.extract = FeatureExtractor(model) if model is not None else None
        self.crop_threshold = crop_threshold
        self.features_from = features_from

    def score(self, feats: np.ndarray, images_u8: np.ndarray,
              saturation: np.ndarray) -> list[OodResult]:
        checks = image_checks(images_u8, saturation, self.calibration.mean_histogram,
                              self.crop_threshold)
        return results_from_ratios(self.calibration.ratios(feats, checks))


def results_from_ratios(ratios: dict[str, np.ndarray]) -> list[OodResult]:
    names = list(ratios)
    table = np.stack([ratios[k] for k in names], axis=1)  # (N, checks)
    out = []
    for row in table:
        order = np.argsort(-row)
        reasons = tuple(names[i] for i in order if row[i] > 1.0)
        out.append(OodResult(float(row.max()), reasons))
    return out


# ------------------------------------------------------------------ calibration
def fit_class_gaussians(feats: np.ndarray, labels: np.ndarray, num_classes: int
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Class means and the precision of the shared covariance (Ledoit-Wolf shrinkage)."""
    from sklearn.covariance import LedoitWolf

    feats = np.asarray(feats, np.float64)
    means = np.stack([feats[labels == c].mean(axis=0) for c in range(num_classes)])
    centred = feats - means[labels]
    lw = LedoitWolf(assume_centered=True).fit(centred)
    return means, lw.precision_


def joint_thresholds(values: dict[str, np.ndarray], target_rate: float) -> dict[str, float]:
    """One quantile level q for every check such that ``target_rate`` of rows warn in all.

    A per-check quantile of 1 - target_rate would flag up to k times that rate when the
    checks disagree; a bisection on the shared q keeps the union at the target.
    """
    names = list(values)
    table = np.stack([np.asarray(values[k], np.float64) for k in names], axis=1)

    def rate(q: float) -> tuple[float, np.ndarray]:
        th = np.quantile(table, q, axis=0, method="higher")
        return float((table > th).any(axis=1).mean()), th

    lo, hi = 1.0 - target_rate, 1.0
    for _ in range(40):
        mid = (lo + hi) / 2
        if rate(mid)[0] > target_rate:
            lo = mid
        else:
            hi = mid
    th = rate(hi)[1]
    return {k: float(v) for k, v in zip(names, th, strict=True)}


def calibrate(fit_feats: np.ndarray, fit_labels: np.ndarray, val_feats: np.ndarray,
              val_images: np.ndarray, val_saturation: np.ndarray, num_classes: int,
              crop_threshold: float, target_rate: float = 0.005) -> OodCalibration:
    """Means/covariance from the fit part, thresholds from the validation part."""
    means, precision = fit_class_gaussians(fit_feats, fit_labels, num_classes)
    mean_hist = histograms(val_images).mean(axis=0)
    cal = OodCalibration(means, precision, mean_hist, thresholds={})
    checks = image_checks(val_images, val_saturation, mean_hist, crop_threshold)
    values = {"features": cal.mahalanobis(val_feats), "histogram": checks.histogram,
              "background": checks.background, "foreground": checks.foreground}
    cal.thresholds = joint_thresholds(values, target_rate)
    cal.thresholds["saturation"] = max(SATURATION_LIMIT, 2 * float(val_saturation.max()))
    flagged = [r.reasons for r in results_from_ratios(cal.ratios(val_feats, checks))]
    cal.info = {"target_rate": target_rate,
                "fit_images": int(len(fit_feats)), "validation_images": int(len(val_feats)),
                "validation_warned": int(sum(bool(r) for r in flagged)),
                "validation_warned_by": {k: int(sum(k in r for r in flagged))
                                         for k in (*CHECKS, "saturation")}}
    return cal


def describe(cal: OodCalibration | None, features_from: str | None = None,
             note: str | None = None) -> dict:
    """What /v1/model and predict's JSON say about a bundle's OOD calibration
    (``features_from``: where the features come from; ``note``: why there are no warnings)."""
    if cal is None:
        return {"calibrated": False,
                "note": note or "this bundle has no out-of-distribution calibration: "
                                "predictions carry no warning (run `braintumor calibrate-ood`)"}
    out = {"calibrated": True, "warning": WARNING_TEXT,
           "thresholds": dict(cal.thresholds), **json.loads(json.dumps(cal.info))}
    if features_from:
        out["features_from"] = features_from
    return out
