"""The Python API for prediction: ``Predictor.load(...).predict(images)``.

One object serves the CLI, the REST service and hospital scripts, so every caller gets the
same reading, preprocessing, calibration (the card's temperature) and provenance (model name
and weights checksum) for each answer.

Thread safety (the REST service calls one Predictor from many threads):

- plain prediction holds no mutable state: the PyTorch model is in eval mode and runs under
  ``torch.inference_mode()``; an onnxruntime ``InferenceSession.run`` is thread-safe;
- Grad-CAM needs gradients and forward/backward hooks on the target layer. A hook placed on
  the shared model would also fire for a concurrent plain prediction and overwrite the
  captured activations, so explanations run on a private deep copy of the model, built on
  first use, and one at a time behind a lock. Plain predictions never wait for that lock.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from braintumor.data.errors import ImageReadError
from braintumor.data.preprocess import PreprocessConfig, Preprocessed, preprocess, to_model_input
from braintumor.data.readers import LoadedImage, read_image
from braintumor.explain.outline import card_threshold
from braintumor.models.runtime import softmax

if TYPE_CHECKING:
    from braintumor.explain.explainer import Explainer
    from braintumor.inference.ood import OodDetector

BACKENDS = ("torch", "onnx")


@dataclass
class Prediction:
    """The answer for one image; ``error`` is set (and ``label`` is None) when it was unreadable."""

    source: str  # path, or a name given by the caller
    label: str | None  # predicted class, None on error
    probabilities: dict[str, float]  # calibrated with the card's temperature; sums to 1
    model: str  # model name
    checksum: str  # SHA-256 of the weights
    heatmap: np.ndarray | None = None  # Grad-CAM, (H, W) float in the original geometry
    overlay: np.ndarray | None = None  # (H, W, 3) uint8 heatmap over the slice
    error: str | None = None  # "source: reason" when the input could not be used
    seconds: float = 0.0  # processing time (read, preprocess, share of the batch, Grad-CAM)
    # The model's predicted tumour outline (models with a tumour head, asked for with
    # explain=True or outline=True; None otherwise). See braintumor.explain.outline.
    tumour_mask: np.ndarray | None = None  # (H, W) bool on the input's own grid
    tumour_area_px: int | None = None  # pixels of tumour_mask
    tumour_area_percent: float | None = None  # tumour_area_px as % of the head's area
    tumour_outline: list | None = None  # closed polygons of (x, y) input pixel centres
    # Out-of-distribution check (inference/ood.py): None when the input looks like the
    # validation scans or the bundle has no calibration; else ood.WARNING_TEXT.
    warning: str | None = None
    ood_score: float | None = None  # largest check/threshold ratio; above 1 warns
    ood_reasons: tuple[str, ...] = ()  # the checks that warned, worst first

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def confidence(self) -> float | None:
        """Calibrated probability of the predicted class."""
        return self.probabilities.get(self.label) if self.label else None

    def to_dict(self) -> dict:
        """JSON-able summary without the arrays (they go to files or separate endpoints)."""
        return {
            "source": self.source,
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": dict(self.probabilities),
            "model": self.model,
            "checksum": self.checksum,
            "error": self.error,
            "seconds": round(self.seconds, 6),
            "has_heatmap": self.heatmap is not None,
                        "warning": self.warning,
            "ood_score": None if self.ood_score is None else round(self.ood_score, 4),
            "ood_reasons": list(self.ood_reasons),
            **self._tumour_dict(),
        }

    def _tumour_dict(self) -> dict:
        """The outline's figures, only when the model predicted one (a plain model's rows
        keep exactly their old keys)."""
        if self.tumour_area_px is None or self.tumour_area_percent is None:
            return {}
        return {"tumour_area_px": self.tumour_area_px,
                "tumour_area_percent": round(float(self.tumour_area_percent), 4)}


@dataclass
class _Prepared:
    """One input after reading and preprocessing, waiting for its batch's forward pass."""

    index: int
    source: str
    loaded: LoadedImage
    pre: Preprocessed
    seconds: float


class Predictor:
    """A loaded model ready to classify (and optionally explain) brain MRI slices."""

    def __init__(self, *, name: str, checksum: str, classes: list[str], card: dict,
                 preprocess_config: PreprocessConfig, temperature: float, backend: str,
                 logits_fn, loaded_model=None, path: Path | None = None, tumour_fn=None,
                 features_fn=None):
        """Use :meth:`load`; this constructor wires an already-loaded backend.

        ``logits_fn(images_u8 (N, S, S) uint8) -> (N, C) logits`` is the only thing that
        differs between backends; everything around it (reading, preprocessing, softmax
        with temperature) is shared so the backends cannot drift apart. ``tumour_fn``
        (models with a tumour head only) gives ``(logits, tumour_logits (N, 1, h, w))`` from
        the same single forward pass; the outline is built from it by shared code too.
        ``features_fn(images_u8, tumour: bool) -> (logits, tumour_logits or None, features)``
        (an ONNX graph with a ``features`` output) gives the out-of-distribution check its
        features from that one pass as well; without it the check hooks a PyTorch copy.
        """
        self.name = name
        self.checksum = checksum
        self.classes = list(classes)
        self.card = card
        self.preprocess_config = preprocess_config
        self.temperature = float(temperature)
        self.backend = backend
        self.path = path
        self._logits_fn = logits_fn
        self._tumour_fn = tumour_fn
        self._features_fn = features_fn
        self.tumour_threshold = card_threshold(card) if tumour_fn is not None else None
        self._loaded = loaded_model  # LoadedModel (PyTorch) when available: Grad-CAM needs it
        self._explainer: Explainer | None = None  # built on first use
        self._explain_lock = threading.Lock()
        self.ood: OodDetector | None = None  # when the bundle is calibrated (attach_ood)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | os.PathLike | None = None, backend: str = "torch",
             threads: int | None = None) -> Predictor:
        """Load a bundle folder (None: the bundled model) or an exported ``.onnx`` file.

        ``backend="onnx"`` runs on onnxruntime: from a ``.onnx`` file directly, or from a
        bundle by exporting it in memory (a few seconds; keeps Grad-CAM available because
        the PyTorch weights are at hand). ``threads`` caps onnxruntime's intra-op threads
        (PyTorch follows ``torch.set_num_threads`` / ``OMP_NUM_THREADS``).
        """
        if backend not in BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        if path is not None and Path(path).suffix.lower() == ".onnx":
            if backend != "onnx":
                backend = "onnx"  # an .onnx file can only run on onnxruntime
            from braintumor.inference.onnx_runtime import OnnxModel

            onnx_model = OnnxModel.load(path, threads=threads)
            return cls._from_onnx(onnx_model, loaded_model=None, path=Path(path))

        from braintumor.models import load_bundle

        loaded = load_bundle(path)
        if backend == "onnx":
            from braintumor.inference.onnx_export import export_onnx_bytes
            from braintumor.inference.onnx_runtime import OnnxModel

            onnx_model = OnnxModel.from_bytes(export_onnx_bytes(loaded), source=str(loaded.path),
                                              threads=threads)
            predictor = cls._from_onnx(onnx_model, loaded_model=loaded, path=loaded.path)
            return predictor.attach_ood()
        return cls.from_loaded(loaded)

    @classmethod
    def from_loaded(cls, loaded) -> Predictor:
        """Wrap an already-loaded :class:`~braintumor.models.LoadedModel` (PyTorch backend)."""
        import torch

        from braintumor.models.runtime import inference_copy

        net = inference_copy(loaded.model)

        from braintumor.models.tumour import has_tumour_head

        def logits_fn(images_u8: np.ndarray) -> np.ndarray:
            # inference_mode: no autograd state is recorded, so threads share ``net`` safely.
            with torch.inference_mode():
                x = to_model_input(images_u8).contiguous(memory_format=torch.channels_last)
                return net(x).float().numpy()

        def tumour_fn(images_u8: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            with torch.inference_mode():
                x = to_model_input(images_u8).contiguous(memory_format=torch.channels_last)
                logits, tumour = net.forward_with_tumour(x)  # type: ignore[operator]  # has_tumour_head
                return logits.float().numpy(), tumour.float().contiguous().numpy()

        predictor = cls(name=loaded.name, checksum=loaded.checksum, classes=loaded.classes,
                        card=loaded.card, preprocess_config=loaded.preprocess,
                        temperature=loaded.temperature, backend="torch", logits_fn=logits_fn,
                        loaded_model=loaded, path=loaded.path,
                        tumour_fn=tumour_fn if has_tumour_head(net) else None)
        return predictor.attach_ood()

    def attach_ood(self, calibration=None) -> Predictor:
        """Score inputs for out-of-distribution warnings (the bundle's ``ood.safetensors``).

        ``calibration``: an :class:`~braintumor.inference.ood.OodCalibration` to use instead
        of the bundle's. The features come from the same forward pass as the logits: the
        PyTorch model's (a hook on its classifier) or the ONNX graph's ``features`` output.
        An ONNX export made before that output existed gets them from an extra PyTorch pass
        when the weights are at hand, and otherwise cannot be scored (``ValueError`` when a
        ``calibration`` is passed). An ``.onnx`` file alone has no calibration file, so it
        predicts with no warning unless given one. A bundle without calibration predicts with
        no warning. Returns ``self``.
        """
        from braintumor.inference.ood import OodCalibration, OodDetector

        if calibration is None:
            if self._loaded is None or self.path is None:
                return self  # an .onnx file alone: the calibration file lives in the bundle
            calibration = OodCalibration.from_bundle(self.path, self.card)
            if calibration is None:
                return self
        crop = self.preprocess_config.crop_threshold
        if self.backend == "onnx" and self._features_fn is not None:
            self.ood = OodDetector(calibration, None, crop,
                                   features_from="the ONNX graph's features output, same run")
        elif self._loaded is not None:
            source = ("the PyTorch forward pass" if self.backend == "torch" else
                      "an extra PyTorch pass: this ONNX export has no features output "
                      "(export it again)")
            self.ood = OodDetector(calibration, self._loaded.model, crop, features_from=source)
        else:
            raise ValueError(f"{self.path}: this ONNX export has no features output and no "
                             "PyTorch weights are at hand, so its inputs cannot be scored; "
                             "export it again with `braintumor export`")
        return self

    @property
    def ood_status(self) -> dict:
        """Whether predictions carry OOD warnings, and the calibration's thresholds."""
        from braintumor.inference.ood import CARD_SECTION, describe

        if self.ood is not None:
            return describe(self.ood.calibration, self.ood.features_from)
        note = None
        if self._loaded is None and self.card.get(CARD_SECTION):
            note = ("an .onnx file alone carries no calibration file: predictions carry no "
                    "warning (load the bundle with backend='onnx' for warnings)")
        return describe(None, note=note)

    @classmethod
    def _from_onnx(cls, onnx_model, loaded_model, path: Path) -> Predictor:
        meta = onnx_model.meta
        return cls(name=meta.name, checksum=meta.checksum, classes=meta.classes, card=meta.card,
                   preprocess_config=meta.preprocess, temperature=meta.temperature,
                   backend="onnx", logits_fn=onnx_model.logits, loaded_model=loaded_model,
                   path=path,
                   tumour_fn=onnx_model.logits_and_tumour if onnx_model.has_tumour_head else None,
                   features_fn=onnx_model.logits_and_features if onnx_model.has_features else None)

    def __repr__(self) -> str:
        return (f"Predictor({self.name}, backend={self.backend}, classes={self.classes}, "
                f"sha256={self.checksum[:12]}…)")

    @property
    def has_tumour_head(self) -> bool:
        """Whether the model predicts a tumour map (and so answers can carry an outline)."""
        return self._tumour_fn is not None

    # --------------------------------------------------------------- predicting
    def predict(self, images, explain: bool = False, batch_size: int = 32,
                progress: bool = False, names: list[str] | None = None,
                outline: bool | None = None) -> list[Prediction]:
        """Predict a single image or a list of paths / bytes / numpy arrays / PIL images.

        Always returns a list, one :class:`Prediction` per input in input order. An input
        that cannot be read gives a Prediction with ``error`` set; it never raises for bad
        images, so one broken file cannot take down a batch.

        ``outline`` (default: follow ``explain``) adds the model's predicted tumour outline
        (``tumour_mask``, areas, ``tumour_outline``) when the model has a tumour head; it
        needs no gradients, so it works on an ``.onnx`` file too. Plain prediction (both
        off) runs exactly the classifier and nothing else.
        """
        return list(self.iter_predict(images, explain=explain, batch_size=batch_size,
                                      progress=progress, names=names, outline=outline))

    def iter_predict(self, images, explain: bool = False, batch_size: int = 32,
                     progress: bool = False, names: list[str] | None = None,
                     outline: bool | None = None) -> Iterator[Prediction]:
        """Like :meth:`predict`, yielding results batch by batch (for long folder runs).

        Only one batch of decoded images is held at a time, so memory stays flat whatever
        the number of inputs.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        items = _as_list(images)
        if names is not None and len(names) != len(items):
            raise ValueError(f"got {len(names)} names for {len(items)} images")
        if explain:
            self._require_explainer()
        trace = self._wants_outline(explain, outline)
        bar = _progress_bar(len(items), progress)
        try:
            for start in range(0, len(items), batch_size):
                chunk = items[start : start + batch_size]
                chunk_names = names[start : start + batch_size] if names else None
                yield from self._predict_chunk(chunk, start, chunk_names, explain, trace)
                bar.update(len(chunk))
        finally:
            bar.close()

    def predict_one(self, image, explain: bool = False, name: str | None = None,
                    outline: bool | None = None) -> Prediction:
        """Predict one image; raises :class:`ImageReadError` if it cannot be read.

        The raising variant exists for callers that must tell bad input from a server fault
        (the REST service answers 4xx for the former).
        """
        t0 = time.perf_counter()
        prepared = self._prepare(image, 0, name or _default_name(image, 0))
        prepared.seconds = time.perf_counter() - t0
        if explain:
            self._require_explainer()
        return self._forward([prepared], explain, self._wants_outline(explain, outline))[0]

    def logits(self, images_u8: np.ndarray) -> np.ndarray:
        """Raw logits (N, C) for preprocessed (N, S, S) uint8 images: the model alone.

        For benchmarks and evaluation code that already hold preprocessed images;
        everyone else wants :meth:`predict`.
        """
        return self._logits_fn(np.asarray(images_u8))

    # ------------------------------------------------------------------ helpers
    def _wants_outline(self, explain: bool, outline: bool | None) -> bool:
        """An outline is traced when asked for (``outline``, else ``explain``) and the model
        has a tumour head; a plain model silently gives none (its fields stay None)."""
        return bool(explain if outline is None else outline) and self.has_tumour_head

    def _predict_chunk(self, chunk: list, offset: int, chunk_names: list[str] | None,
                       explain: bool, trace: bool = False) -> list[Prediction]:
        results: dict[int, Prediction] = {}
        prepared: list[_Prepared] = []
        for i, item in enumerate(chunk):
            source = chunk_names[i] if chunk_names else _default_name(item, offset + i)
            t0 = time.perf_counter()
            try:
                p = self._prepare(item, i, source)
            except ImageReadError as exc:
                results[i] = self._failure(source, str(exc), time.perf_counter() - t0)
                continue
            except Exception as exc:  # a bug or an odd input must still not end the batch
                reason = f"{source}: unexpected error while reading ({type(exc).__name__}: {exc})"
                results[i] = self._failure(source, reason, time.perf_counter() - t0)
                continue
            p.seconds = time.perf_counter() - t0
            prepared.append(p)
        if prepared:
            for p, pred in zip(prepared, self._forward(prepared, explain, trace), strict=True):
                results[p.index] = pred
        return [results[i] for i in range(len(chunk))]

    def _prepare(self, item, index: int, source: str) -> _Prepared:
        try:
            loaded = read_image(item, name=source)
        except OSError as exc:  # permission denied, I/O error: name the file, not the errno
            raise ImageReadError(source, f"cannot read file ({exc.strerror or exc})") from exc
        pre = preprocess(loaded.pixels, self.preprocess_config)
        return _Prepared(index, loaded.meta.source, loaded, pre, 0.0)

    def _forward(self, prepared: list[_Prepared], explain: bool,
                 trace: bool = False) -> list[Prediction]:
        t0 = time.perf_counter()
        batch = np.stack([p.pre.image for p in prepared])
        logits, tumour_logits, ood = self._logits_and_ood(batch, prepared, trace)
        probs = softmax(logits, self.temperature)
        share = (time.perf_counter() - t0) / len(prepared)
        out = []
        for p, row, o in zip(prepared, probs, ood, strict=True):
            out.append(Prediction(
                source=p.source,
                label=self.classes[int(np.argmax(row))],
                probabilities={c: float(v) for c, v in zip(self.classes, row, strict=True)},
                model=self.name,
                checksum=self.checksum,
                seconds=p.seconds + share,
                warning=o.warning if o else None,
                ood_score=o.score if o else None,
                ood_reasons=o.reasons if o else (),
            ))
        if tumour_logits is not None:
            self._add_outlines(prepared, out, tumour_logits)
        if explain:
            t1 = time.perf_counter()
            maps = self._explain(prepared, [str(pred.label) for pred in out])
            share = (time.perf_counter() - t1) / len(prepared)
            for pred, (heatmap, overlay) in zip(out, maps, strict=True):
                pred.heatmap, pred.overlay = heatmap, overlay
                pred.seconds += share
        return out

    def _add_outlines(self, prepared: list[_Prepared], out: list[Prediction],
                      tumour_logits: np.ndarray) -> None:
        from braintumor.explain.outline import outline_on_input, probability_maps

        assert self.tumour_threshold is not None  # set with the tumour head that traced these
        t0 = time.perf_counter()
        maps = probability_maps(tumour_logits, self.preprocess_config.image_size)
        for p, pred, prob in zip(prepared, out, maps, strict=True):
            traced = outline_on_input(prob, p.pre.crop, p.loaded.pixels, self.tumour_threshold)
            pred.tumour_mask = traced.mask
            pred.tumour_area_px = traced.area_px
            pred.tumour_area_percent = traced.area_percent
            pred.tumour_outline = traced.polygons
        share = (time.perf_counter() - t0) / len(prepared)
        for pred in out:
            pred.seconds += share

    def _logits_and_ood(self, batch: np.ndarray, prepared: list[_Prepared],
                        trace: bool = False) -> tuple:
        """Logits, the raw tumour maps (None unless ``trace``), and an OodResult per image
        (None each without a calibration).

        One forward pass gives logits, tumour maps (when tracing) and the OOD features: the
        PyTorch model's hooked pass, or one onnxruntime run of a graph with a ``features``
        output. Only an ONNX export made before that output existed needs an extra PyTorch
        pass for the features.
        """
        ood, tumour_logits = self.ood, None
        if ood is not None and ood.extract is None:  # the ONNX graph's features output
            assert self._features_fn is not None  # attach_ood builds no extractor only then
            logits, tumour_logits, feats = self._features_fn(batch, trace)
        elif ood is not None and ood.extract is not None and self.backend == "torch":
            logits, tumour_logits, feats = ood.extract.forward(batch, tumour=trace)
        else:  # no calibration, or an old ONNX export whose features need a PyTorch pass
            if trace:  # one forward pass gives both the class and the tumour map
                assert self._tumour_fn is not None  # trace is asked only of tumour-head models
                logits, tumour_logits = self._tumour_fn(batch)
            else:
                logits = self._logits_fn(batch)
            if ood is None or ood.extract is None:
                return logits, tumour_logits, [None] * len(prepared)
            feats = ood.extract(batch)[1]
        assert ood is not None
        saturation = np.array([p.loaded.meta.saturation for p in prepared])
        return logits, tumour_logits, ood.score(feats, batch, saturation)

    def _failure(self, source: str, reason: str, seconds: float) -> Prediction:
        return Prediction(source=source, label=None, probabilities={}, model=self.name,
                          checksum=self.checksum, error=reason, seconds=seconds)

    def _require_explainer(self):
        """The Grad-CAM explainer over a private copy of the model (see module docstring)."""
        if self._loaded is None:
            raise ValueError(
                f"{self.path}: Grad-CAM needs the PyTorch weights; an .onnx file has no "
                "gradients. Load the model bundle instead (backend='onnx' on a bundle keeps "
                "explanations available)."
            )
        with self._explain_lock:
            if self._explainer is None:
                from braintumor.explain.explainer import Explainer
                from braintumor.models.runtime import inference_copy

                private = inference_copy(self._loaded.model)
                self._explainer = Explainer(dataclasses.replace(self._loaded, model=private))
        return self._explainer

    def _explain(self, prepared: list[_Prepared], labels: list[str]
                 ) -> list[tuple[np.ndarray, np.ndarray]]:
        """Grad-CAM (heatmap, overlay) per image, explaining the label this Predictor reported.

        The target is fixed to our own label rather than left to the explainer's forward
        pass, so the map always explains the class shown next to it (with the ONNX backend
        the two forward passes differ by float rounding and could, on a tie, disagree).
        """
        explainer = self._require_explainer()
        with self._explain_lock:
            results = explainer.explain_prepared([(p.loaded, p.pre) for p in prepared],
                                                 method="gradcam", target=labels,
                                                 batch_size=len(prepared))
        return [(np.asarray(r.heatmap, dtype=np.float32), np.asarray(r.overlay))
                for r in results]


def _as_list(images) -> list:
    """A single input becomes a one-item list; lists, tuples and other iterables are listed.

    Numpy arrays, bytes, strings and PIL images are single images even though they iterate.
    """
    if isinstance(images, (str, bytes, bytearray, memoryview, os.PathLike, np.ndarray)):
        return [images]
    if hasattr(images, "mode") and hasattr(images, "convert"):  # a PIL image
        return [images]
    if isinstance(images, Iterable):
        return list(images)
    return [images]


def _default_name(item, index: int) -> str:
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    if isinstance(item, LoadedImage):
        return item.meta.source
    if isinstance(item, np.ndarray):
        return f"<array {index}>"
    if isinstance(item, (bytes, bytearray, memoryview)):
        return f"<bytes {index}>"
    filename = getattr(item, "filename", None)  # PIL images opened from a file keep it
    if filename:
        return str(filename)
    if hasattr(item, "mode") and hasattr(item, "convert"):
        return f"<PIL image {index}>"
    return f"<{type(item).__name__} {index}>"


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, enabled: bool):
    """tqdm on stderr (stdout carries the results, which may be piped as CSV/JSON), and
    only when stderr is a terminal (``disable=None``): in a log file a bar is just noise."""
    if not enabled:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, unit="img", file=sys.stderr, desc="predict", leave=False,
                disable=None)
