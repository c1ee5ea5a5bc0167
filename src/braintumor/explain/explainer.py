"""The ``Explainer`` API: a heatmap, the prediction and an overlay for any slice.

``Explainer(model).explain(image)`` reads and preprocesses the image exactly as prediction
does, runs one attribution method, and brings the map back onto the user's image (undoing the
brain crop and resize), so ``Explanation.heatmap`` and ``.overlay`` have the input's size and
orientation. ``explain_batch`` is the lower-level entry for already-preprocessed images (the
evidence checks, the evaluation gallery and the service use it).

The prediction comes from the same forward pass as the map wherever the method allows
(Grad-CAM, Grad-CAM++), so explaining costs little more than predicting. Calls are serialised
by a lock: attribution temporarily hooks the model's layers, and two threads hooking one model
at once (a web server) would read each other's activations.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from braintumor.data.labels import CANONICAL_CLASSES, UnknownClassError, canonical_label
from braintumor.data.preprocess import (
    CropInfo,
    PreprocessConfig,
    Preprocessed,
    map_to_original,
    preprocess,
    to_model_input,
)
from braintumor.data.readers import LoadedImage, read_image
from braintumor.explain.base import AttributionMethod, TargetScore, as_index_tensor, resolve_layer
from braintumor.explain.overlay import SHORT_DISCLAIMER, compose_panel, render_overlay, save_png
from braintumor.explain.registry import get_method
from braintumor.models.runtime import softmax

TargetSpec = int | np.integer | str | None


@dataclass(frozen=True)
class BatchExplanation:
    """Maps and predictions for a batch of preprocessed images (model-input geometry)."""

    maps: np.ndarray  # (N, S, S) float32 in [0, 1]
    logits: np.ndarray  # (N, C) float32, raw
    probabilities: np.ndarray  # (N, C) float64, softmax(logits / temperature)
    predictions: np.ndarray  # (N,) int, argmax of the logits
    targets: np.ndarray  # (N,) int, the class each map explains
    classes: list[str]
    method: str
    layer: str | None


@dataclass(frozen=True)
class Explanation:
    """One explained slice. Stable API (see docs/explain.md); fields are never renamed.

    ``heatmap`` and ``overlay`` lie on the input image's own grid (same size, same
    orientation); ``model_heatmap`` is the map on the model's square input, before the crop
    and resize were undone.
    """

    heatmap: np.ndarray  # (H, W) float32 in [0, 1]
    overlay: np.ndarray  # (H, W, 3) uint8
    label: str  # the predicted class
    probabilities: dict[str, float]  # calibrated, every class
    target: str  # the class the map explains
    method: str
    layer: str | None
    image: np.ndarray  # (H, W) uint8, the slice as read
    model_heatmap: np.ndarray  # (S, S) float32 in [0, 1]
    crop: CropInfo
    source: str = "<image>"
    colormap: str = "jet"

    @property
    def confidence(self) -> float:
        """Calibrated probability of the predicted class."""
        return self.probabilities[self.label]

    def caption(self) -> list[str]:
        """The lines printed above the PNG panel, the research-use line last."""
        where = f" at {self.layer}" if self.layer else ""
        note = "" if self.target == self.label else " (not the predicted class)"
        return [
            f"Predicted: {self.label}  p = {self.confidence:.3f} (calibrated)",
            f"Explained: {self.target}{note}  [{self.method}{where}]",
            SHORT_DISCLAIMER,
        ]

    def panel(self) -> np.ndarray:
        """Input | heatmap | overlay side by side with the caption: (H', 3W + gaps, 3) uint8."""
        return compose_panel(self.image, self.heatmap, self.overlay, self.caption(),
                             self.colormap)

    def save(self, path: str | Path, save_npy: bool = False) -> Path:
        """Write the panel PNG at ``path`` (and the (H, W) float32 map beside it as .npy)."""
        path = save_png(self.panel(), path)
        if save_npy:
            np.save(path.with_suffix(".npy"), self.heatmap.astype(np.float32))
        return path


@contextmanager
def _eval_mode(model: nn.Module):
    """Eval mode for the duration, then the caller's mode back. A model already in eval mode
    is left alone: walking every module twice costs a tenth of a Grad-CAM on braintumor-net."""
    was_training = model.training
    if not was_training:
        yield
        return
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class Explainer:
    """Explain a classifier's predictions on brain MRI slices.

    ``model`` is a :class:`~braintumor.models.LoadedModel` (bundle: classes, preprocessing
    and calibration temperature come from its card) or a plain ``nn.Module`` taking
    (N, 1, S, S) input in [0, 1]; then pass ``classes`` (default: the canonical four),
    ``preprocess`` (default: ``PreprocessConfig()``) and ``temperature`` (default 1).
    ``layer`` names the layer the CAM methods explain (default ``model.target_layer``, else
    the last convolution).
    """

    def __init__(self, model, classes: Sequence[str] | None = None,
                 preprocess: PreprocessConfig | None = None, temperature: float | None = None,
                 layer: str | None = None, colormap: str = "jet", alpha: float = 0.45):
        if hasattr(model, "model") and hasattr(model, "card"):  # a LoadedModel
            net = model.model
            classes = classes or model.classes
            preprocess = preprocess or model.preprocess
            temperature = temperature if temperature is not None else model.temperature
        else:
            net = model
        if not isinstance(net, nn.Module):
            raise TypeError(f"expected a LoadedModel or an nn.Module, got {type(model).__name__}")
        self.model = net
        self.classes = list(classes or CANONICAL_CLASSES)
        self.preprocess = preprocess or PreprocessConfig()
        self.temperature = float(temperature if temperature is not None else 1.0)
        self.layer_name, self.layer = resolve_layer(net, layer)
        self.colormap = colormap
        self.alpha = alpha
        self._lock = threading.Lock()

    @property
    def device(self) -> torch.device:
        p = next(self.model.parameters(), None)
        return p.device if p is not None else torch.device("cpu")

    def class_index(self, target: TargetSpec) -> int | None:
        """``None`` (explain the prediction), a class index, or a class name (any spelling
        :func:`~braintumor.data.labels.canonical_label` knows) -> index or ``None``."""
        if target is None or (isinstance(target, str) and target.lower() in ("", "predicted")):
            return None
        if isinstance(target, (int, np.integer)) or (isinstance(target, str) and target.isdigit()):
            idx = int(target)
            if not 0 <= idx < len(self.classes):
                raise ValueError(f"class index {idx} out of range 0..{len(self.classes) - 1}")
            return idx
        if target in self.classes:
            return self.classes.index(target)
        try:
            name = canonical_label(str(target))
        except UnknownClassError:
            name = None
        if name in self.classes:
            return self.classes.index(name)
        raise ValueError(f"unknown class {target!r}; the model's classes are "
                         f"{', '.join(self.classes)}")

    def explain_batch(self, images, method: str | AttributionMethod = "gradcam",
                      targets: TargetSpec | Sequence[TargetSpec] = None,
                      batch_size: int = 32) -> BatchExplanation:
        """Explain preprocessed images: (N, S, S) uint8 (``preprocess(...).image`` stacked) or
        a float tensor (N, 1, S, S) in [0, 1]. ``targets``: one spec for all, or one per image
        (``None`` entries explain that image's prediction)."""
        algo = get_method(method)
        x_all = images if isinstance(images, torch.Tensor) else to_model_input(np.asarray(images))
        n = len(x_all)
        per_image = self._target_list(targets, n)
        maps, logits, chosen = [], [], []
        layer = self.layer if algo.uses_layer else None
        with self._lock, _eval_mode(self.model), torch.inference_mode(False), torch.enable_grad():
            for i in range(0, n, batch_size):
                x = x_all[i : i + batch_size].to(self.device, torch.float32)
                part = per_image[i : i + batch_size]
                if any(t is None for t in part) and not all(t is None for t in part):
                    # Mixed: predictions first, then explicit targets where asked for.
                    with torch.no_grad():
                        pred = self.model(x).argmax(dim=1).cpu().tolist()
                    part = [p if t is None else t for t, p in zip(part, pred, strict=True)]
                fixed = (None if all(t is None for t in part)  # else: no None left in part
                         else as_index_tensor(part, len(x)))  # type: ignore[arg-type]
                if fixed is not None:
                    fixed = fixed.to(self.device)
                score = TargetScore(self.model, fixed)
                maps.append(algo(score, x, layer).cpu().numpy())
                if score.logits is None:  # pragma: no cover - every method runs a forward
                    score.resolve(x)
                assert score.logits is not None and score.targets is not None  # resolved
                logits.append(score.logits.float().cpu().numpy())
                chosen.append(score.targets.cpu().numpy())
        if n == 0:
            s = x_all.shape[-1] if x_all.ndim >= 2 else 0
            z = np.zeros((0, len(self.classes)), np.float32)
            return BatchExplanation(np.zeros((0, s, s), np.float32), z, z.astype(np.float64),
                                    np.zeros(0, int), np.zeros(0, int), self.classes,
                                    algo.name, self.layer_name if algo.uses_layer else None)
        logit_arr = np.concatenate(logits)
        if logit_arr.shape[1] != len(self.classes):
            raise ValueError(f"the model returns {logit_arr.shape[1]} scores but "
                             f"{len(self.classes)} classes were given ({', '.join(self.classes)})")
        return BatchExplanation(
            maps=np.concatenate(maps).astype(np.float32),
            logits=logit_arr,
            probabilities=softmax(logit_arr, self.temperature),
            predictions=logit_arr.argmax(axis=1),
            targets=np.concatenate(chosen).astype(int),
            classes=self.classes,
            method=algo.name,
            layer=self.layer_name if algo.uses_layer else None,
        )

    def _target_list(self, targets, n: int) -> list[int | None]:
        if targets is None or isinstance(targets, (str, int, np.integer)):
            return [self.class_index(targets)] * n
        out = [self.class_index(t) for t in targets]
        if len(out) != n:
            raise ValueError(f"{len(out)} targets for {n} images")
        return out

    def prepare(self, image) -> tuple[LoadedImage, Preprocessed]:
        """Read (path, bytes, array, PIL image or LoadedImage) and preprocess one slice."""
        loaded = read_image(image)
        return loaded, preprocess(loaded.pixels, self.preprocess)

    def explain(self, image, method: str | AttributionMethod = "gradcam",
                target: TargetSpec = None) -> Explanation:
        """Explain one slice; ``target`` is the class to explain (default: the predicted one).

        Raises :class:`~braintumor.data.errors.ImageReadError` for unreadable input.
        """
        return self.explain_prepared([self.prepare(image)], method, target)[0]

    def explain_prepared(self, prepared: Sequence[tuple[LoadedImage, Preprocessed]],
                         method: str | AttributionMethod = "gradcam",
                         target: TargetSpec | Sequence[TargetSpec] = None,
                         batch_size: int = 32) -> list[Explanation]:
        """Explain already read and preprocessed slices in batches (the CLI's path);
        ``target``: one spec for all or one per slice, as in :meth:`explain_batch`."""
        if not prepared:
            return []
        batch = self.explain_batch(np.stack([p.image for _, p in prepared]), method, target,
                                   batch_size=batch_size)
        return [self._finish(loaded, pre, batch, i) for i, (loaded, pre) in enumerate(prepared)]

    def _finish(self, loaded: LoadedImage, pre: Preprocessed, batch: BatchExplanation,
                i: int) -> Explanation:
        heat = np.clip(map_to_original(batch.maps[i], pre.crop), 0.0, 1.0)
        return Explanation(
            heatmap=heat,
            overlay=render_overlay(loaded.pixels, heat, self.alpha, self.colormap),
            label=self.classes[int(batch.predictions[i])],
            probabilities=dict(zip(self.classes, map(float, batch.probabilities[i]), strict=True)),
            target=self.classes[int(batch.targets[i])],
            method=batch.method,
            layer=batch.layer,
            image=loaded.pixels,
            model_heatmap=batch.maps[i],
            crop=pre.crop,
            source=loaded.meta.source,
            colormap=self.colormap,
        )
