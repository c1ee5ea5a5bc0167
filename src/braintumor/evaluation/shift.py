"""The shift suite: a labelled split re-saved the ways scans from other sources arrive.

A model that scores 98 % on the Kaggle test JPEGs may still fail on the same scans once they
are gamma-corrected, saved as 16-bit PNG, recompressed, resized or shaded by a bias field (the
things another scanner, PACS export or viewer does). Each :class:`Perturbation` here turns an
image *file* into another image file, as a user would hand it over; the result then goes
through the project's real path (``Predictor``: reader, intensity rule, preprocessing, model),
so a shift in any stage shows. The perturbations are written in numpy/Pillow, independently
of the training augmentation (``training/appearance.py``), so a model is not scored on
exactly the transforms it was trained on.

Every perturbation is deterministic: its random parts (noise, bias field) draw from a
generator seeded by (suite seed, perturbation, image index).
"""

from __future__ import annotations

import io
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
from PIL import Image
from scipy import ndimage

from braintumor.data.readers import read_image

NO_TUMOUR = "notumor"
# Targets of issue 23, in percent and percentage points.
TARGET_ACCURACY = 95.0
TARGET_TUMOUR_RECALL = 95.0
TARGET_MAX_DROP = 3.0


@dataclass(frozen=True)
class Perturbation:
    """A named change to an image file: ``make(pixels, rng) -> file bytes``.

    ``pixels`` is the original file as the project's reader decodes it (2-D uint8); the
    bytes are what the predictor is given. ``target`` is False for perturbations reported
    but not held to the suite's targets (contrast inversion: no training image looks so).
    """

    name: str
    description: str
    make: Callable[[np.ndarray, np.random.Generator], bytes]
    target: bool = True


def png8(pixels: np.ndarray) -> bytes:
    """A lossless 8-bit grayscale PNG of ``pixels`` (uint8, or float in [0, 1])."""
    arr = np.asarray(pixels)
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", compress_level=1)  # fast, lossless
    return buf.getvalue()


def png16(pixels: np.ndarray) -> bytes:
    """The same scan as a 16-bit PNG: each 8-bit value v stored as 257 v (0..65535)."""
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint16) * 257).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def resized(pixels: np.ndarray, width: int, height: int) -> bytes:
    """Bicubic resampling (what viewers and exporters use), saved losslessly."""
    img = Image.fromarray(pixels, mode="L").resize((width, height), Image.Resampling.BICUBIC)
    return png8(np.asarray(img))


def scaled_to(side: int) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    """Resize so the longer side is ``side`` px, keeping the aspect ratio."""
    def make(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
        h, w = pixels.shape
        k = side / max(h, w)
        return resized(pixels, max(1, round(w * k)), max(1, round(h * k)))
    return make


def _unit(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) / 255.0


def gamma(g: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    return lambda p, rng: png8(_unit(p) ** g)


def contrast(k: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    """Stretch by ``k`` about the image's mean (a wider or narrower display window)."""
    def make(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
        x = _unit(pixels)
        m = x.mean()
        return png8(m + k * (x - m))
    return make


def blurred(sigma: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    return lambda p, rng: png8(ndimage.gaussian_filter(_unit(p), sigma))


def rician_noise(sigma: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    """Magnitude MR noise: |x + n1 + i n2| with n1, n2 ~ N(0, sigma) (the background too)."""
    def make(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
        x = _unit(pixels)
        n1, n2 = rng.normal(0.0, sigma, (2, *x.shape))
        return png8(np.hypot(x + n1, n2))
    return make


def bias_field(strength: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    """A smooth multiplicative gain exp(P(x, y)), P a random cubic scaled to max |P| = strength.

    The shading of receive coils (what N4 correction removes): strength 0.35 gives gains
    from 0.70x to 1.42x across the slice.
    """
    def make(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
        h, w = pixels.shape
        yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
        terms = [xx ** i * yy ** j for i in range(4) for j in range(4 - i) if i + j > 0]
        poly = np.tensordot(rng.uniform(-1, 1, len(terms)), np.stack(terms), axes=1)
        poly *= strength / max(float(np.abs(poly).max()), 1e-12)
        return png8(_unit(pixels) * np.exp(poly))
    return make


def inverted(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
    """T2-like contrast: the head's intensities inverted, the background kept black."""
    x = _unit(pixels)
    head = x > 0.08 * max(float(np.percentile(x, 99)), 1e-6)  # preprocess's crop threshold
    head = ndimage.binary_fill_holes(ndimage.binary_opening(head, iterations=2))
    return png8(np.where(head, 1.0 - x, 0.0))


def stretched(factor: float) -> Callable[[np.ndarray, np.random.Generator], bytes]:
    """Anisotropic pixels: the width multiplied by ``factor`` (non-square voxels, a bad export)."""
    def make(pixels: np.ndarray, rng: np.random.Generator) -> bytes:
        h, w = pixels.shape
        return resized(pixels, round(w * factor), h)
    return make


def original(pixels: np.ndarray, rng: np.random.Generator) -> bytes:  # pragma: no cover
    raise AssertionError("clean reads the original file; it never re-encodes")


CLEAN = Perturbation("clean", "the original file, unchanged", original)

PERTURBATIONS: tuple[Perturbation, ...] = (
    CLEAN,
    Perturbation("gamma 0.6", "intensity ** 0.6 (brighter mid-tones)", gamma(0.6)),
    Perturbation("gamma 0.8", "intensity ** 0.8", gamma(0.8)),
    Perturbation("gamma 1.25", "intensity ** 1.25", gamma(1.25)),
    Perturbation("gamma 1.6", "intensity ** 1.6 (darker mid-tones)", gamma(1.6)),
    Perturbation("contrast low", "stretched 0.6x about the image mean", contrast(0.6)),
    Perturbation("contrast high", "stretched 1.5x about the image mean, clipped", contrast(1.5)),
    Perturbation("16-bit PNG", "the same pixels as a 16-bit PNG (v -> 257 v)",
                 lambda p, rng: png16(p)),
    Perturbation("JPEG q30", "re-saved as JPEG at quality 30", lambda p, rng: jpeg(p, 30)),
    Perturbation("scale 96 px", "resized to 96 px (bicubic)", scaled_to(96)),
    Perturbation("scale 128 px", "resized to 128 px (bicubic)", scaled_to(128)),
    Perturbation("scale 512 px", "resized to 512 px (bicubic)", scaled_to(512)),
    Perturbation("scale 1024 px", "resized to 1024 px (bicubic)", scaled_to(1024)),
    Perturbation("aspect 1.3x wide", "width stretched 1.3x (bicubic)", stretched(1.3)),
    Perturbation("blur sigma 1", "Gaussian blur, sigma 1 px", blurred(1.0)),
    Perturbation("noise rician 0.03", "Rician noise, sigma 3 % of full range",
                 rician_noise(0.03)),
    Perturbation("bias field 0.35", "smooth cubic multiplicative field, gain 0.70-1.42x",
                 bias_field(0.35)),
    Perturbation("inversion", "head intensities inverted (T2-like); not a target",
                 inverted, target=False),
)


def perturbation(name: str) -> Perturbation:
    for p in PERTURBATIONS:
        if p.name == name:
            return p
    raise KeyError(f"unknown perturbation {name!r}; known: "
                   f"{', '.join(p.name for p in PERTURBATIONS)}")


def stratified_subset(samples: Sequence, n: int | None, seed: int = 0) -> list:
    """``n`` samples, each class in its share of the whole (largest remainders round), in
    the input's order; all of them when n is None or not smaller."""
    if n is None or n >= len(samples):
        return list(samples)
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        by_class.setdefault(s.label, []).append(i)
    labels = sorted(by_class)
    exact = [n * len(by_class[c]) / len(samples) for c in labels]
    quota = [int(q) for q in exact]
    for k in sorted(range(len(labels)), key=lambda k: quota[k] - exact[k])[:n - sum(quota)]:
        quota[k] += 1
    chosen = [i for c, q in zip(labels, quota, strict=True)
              for i in rng.choice(by_class[c], q, replace=False)]
    return [samples[i] for i in sorted(chosen)]


@dataclass
class Score:
    """One model under one perturbation."""

    n: int = 0
    correct: int = 0
    tumours: int = 0
    tumours_called_tumour: int = 0
    unreadable: int = 0
    healthy: int = 0
    healthy_called_healthy: int = 0
    # truth -> predicted (None: unreadable, as "unreadable") -> count
    confusion: dict[str, dict[str, int]] = field(default_factory=dict)

    def add(self, truth: str, predicted: str | None) -> None:
        self.n += 1
        self.correct += predicted == truth
        self.unreadable += predicted is None
        row = self.confusion.setdefault(truth, {})
        key = "unreadable" if predicted is None else predicted
        row[key] = row.get(key, 0) + 1
        if truth != NO_TUMOUR:
            self.tumours += 1
            self.tumours_called_tumour += predicted not in (None, NO_TUMOUR)
        else:
            self.healthy += 1
            self.healthy_called_healthy += predicted == NO_TUMOUR

    @property
    def accuracy(self) -> float:
        return 100.0 * self.correct / max(self.n, 1)

    @property
    def tumour_recall(self) -> float:
        return 100.0 * self.tumours_called_tumour / max(self.tumours, 1)

    @property
    def no_tumour_specificity(self) -> float:
        """Share of no-tumour scans called no tumour (the other side of tumour recall)."""
        return 100.0 * self.healthy_called_healthy / max(self.healthy, 1)


@dataclass
class ShiftResult:
    """Scores by perturbation, then by model label; ``seconds`` per perturbation."""

    models: list[dict]
    perturbations: list[Perturbation]
    scores: dict[str, dict[str, Score]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """Accuracy, tumour recall and their drops against clean, per perturbation x model."""
        out = []
        for p in self.perturbations:
            for m in self.models:
                s, clean = self.scores[p.name][m["label"]], self.scores.get(CLEAN.name, {})
                c = clean.get(m["label"])
                acc_drop = None if c is None else round(c.accuracy - s.accuracy, 2)
                rec_drop = None if c is None else round(c.tumour_recall - s.tumour_recall, 2)
                meets = None
                if p.target:
                    meets = (s.accuracy >= TARGET_ACCURACY
                             and s.tumour_recall >= TARGET_TUMOUR_RECALL
                             and (acc_drop is None or acc_drop <= TARGET_MAX_DROP)
                             and (rec_drop is None or rec_drop <= TARGET_MAX_DROP))
                out.append({"perturbation": p.name, "description": p.description,
                            "target": p.target, "model": m["label"], "n": s.n,
                            "errors": s.n - s.correct, "unreadable": s.unreadable,
                            "accuracy": round(s.accuracy, 2),
                            "tumour_recall": round(s.tumour_recall, 2),
                            "accuracy_drop": acc_drop, "tumour_recall_drop": rec_drop,
                            "no_tumour_specificity": round(s.no_tumour_specificity, 2),
                            "meets_target": meets, "confusion": s.confusion})
        return out

    def markdown(self) -> str:
        """One row per perturbation; per model: accuracy, tumour recall, their drops against
        clean (points; positive is a fall), no-tumour specificity, whether targets are met."""
        head = ["perturbation"]
        for m in self.models:
            head += [f"{m['label']} accuracy %", "drop", "tumour recall %", "drop",
                     "no-tumour specificity %", "meets"]
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        by_key = {(r["perturbation"], r["model"]): r for r in self.rows()}

        def drop(v: float | None) -> str:
            return "" if v is None else f"{v:.2f}"

        for p in self.perturbations:
            cells = [p.name if p.target else f"{p.name} (not a target)"]
            for m in self.models:
                r = by_key[(p.name, m["label"])]
                meets = {True: "yes", False: "**no**", None: "-"}[r["meets_target"]]
                cells += [f"{r['accuracy']:.2f}", drop(r["accuracy_drop"]),
                          f"{r['tumour_recall']:.2f}", drop(r["tumour_recall_drop"]),
                          f"{r['no_tumour_specificity']:.2f}", meets]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines) + "\n"


def model_label(predictor, path: str, taken: set[str]) -> str:
    """The bundle's name with its checksum's start; the path where that is not unique."""
    label = f"{predictor.name} {predictor.checksum[:8]}"
    return path if label in taken else label


def _seed(seed: int, name: str, index: int) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode()), index])


def perturbed_files(samples: Sequence, originals: Sequence[np.ndarray], p: Perturbation,
                    seed: int, chunk: int) -> Iterator[tuple[int, list]]:
    """(offset, inputs) chunk by chunk: file paths for clean, re-saved file bytes otherwise.

    Chunked so that 1311 scans at 1024 px never sit in memory at once.
    """
    for start in range(0, len(samples), chunk):
        stop = min(start + chunk, len(samples))
        if p.name == CLEAN.name:
            yield start, [str(samples[i].path) for i in range(start, stop)]
        else:
            yield start, [p.make(originals[i], _seed(seed, p.name, i))
                          for i in range(start, stop)]


def run_shift_suite(samples: Sequence, predictors: Sequence, labels: Sequence[str],
                    perturbations: Sequence[Perturbation] = PERTURBATIONS, seed: int = 0,
                    batch_size: int = 32, progress: Callable[[str], None] | None = None
                    ) -> ShiftResult:
    """Score each predictor on ``samples`` (with ``.path`` and ``.label``) per perturbation.

    The originals are decoded once by the project's reader; every perturbed file is made
    once and given to every model, so models are compared on identical bytes.
    """
    originals = [read_image(s.path).pixels for s in samples]
    models = [{"label": lab, "name": pr.name, "checksum": pr.checksum}
              for pr, lab in zip(predictors, labels, strict=True)]
    result = ShiftResult(models=models, perturbations=list(perturbations))
    names = [str(s.path) for s in samples]
    for p in perturbations:
        t0 = time.perf_counter()
        scores = {m["label"]: Score() for m in models}
        for start, inputs in perturbed_files(samples, originals, p, seed, batch_size):
            for pr, lab in zip(predictors, labels, strict=True):
                preds = pr.predict(inputs, batch_size=batch_size,
                                   names=names[start:start + len(inputs)])
                for s, pred in zip(samples[start:start + len(inputs)], preds, strict=True):
                    scores[lab].add(s.label, pred.label)
        result.scores[p.name] = scores
        result.seconds[p.name] = round(time.perf_counter() - t0, 2)
        if progress:
            summary = ", ".join(f"{lab}: acc {sc.accuracy:.2f} %, tumour recall "
                                f"{sc.tumour_recall:.2f} %" for lab, sc in scores.items())
            progress(f"{p.name:>18}  {summary}  ({result.seconds[p.name]:.0f} s)")
    return result
