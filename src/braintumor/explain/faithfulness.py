"""Deletion and insertion curves (Petsiuk et al. 2018, RISE): does the map rank pixels by how
much the model needs them?

Deletion: remove pixels in the map's order, most salient first, and follow the calibrated
probability of the explained class; a faithful map makes it fall fast (low area under the
curve). Insertion: start from an image with the information removed and put pixels back in
the same order; a faithful map makes the probability rise fast (high area). Either number
alone means little, so each is reported beside the same curve for random orders on the same
images: a map earns its keep by the gap.

Two random orders, because the usual one is not a fair opponent for a smooth map: a random
*pixel* order scatters the removed pixels as salt-and-pepper noise, which a CNN has never seen
and which destroys its confidence after a few percent, whatever the pixels were; a coarse map
(Grad-CAM on a 4x4 grid) removes compact regions instead. So a random order of *blocks*
(1/8 of the side, i.e. a random map as smooth as a CAM) is reported too; a map should beat
both, and beating neither says it ranks pixels no better than chance.

"Removed" pixels take the value of a fill image: the image's mean (a flat grey) or a strongly
blurred copy (which keeps the coarse layout but no detail). Deletion defaults to the mean,
insertion to the blur, as in RISE. Curves are computed at the model's input resolution.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from scipy import ndimage

from braintumor.explain.explainer import Explainer
from braintumor.models.runtime import softmax

FILLS = ("mean", "blur")
BLOCK_FRACTION = 1 / 8  # side of a random block, as a share of the input side


def fill_image(image: np.ndarray, fill: str) -> np.ndarray:
    """What a removed pixel becomes, for a (S, S) float image in [0, 1]."""
    if fill == "mean":
        return np.full_like(image, image.mean())
    if fill == "blur":
        return ndimage.gaussian_filter(image, sigma=image.shape[-1] / 32.0, mode="nearest")
    raise ValueError(f"unknown fill {fill!r}; choose from {', '.join(FILLS)}")


def saliency_ranks(saliency: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of every pixel (0 = most salient). Ties (e.g. the zeros of a rectified Grad-CAM)
    are broken at random, not in raster order, which would favour the top of the image."""
    flat = np.ravel(saliency)
    order = np.lexsort((rng.random(flat.size), -flat))
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(flat.size)
    return ranks.reshape(np.shape(saliency))


def random_saliency(shape: tuple[int, int], rng: np.random.Generator,
                    block: int = 1) -> np.ndarray:
    """A random map: independent per pixel (``block=1``) or constant over ``block``-sized
    squares (pixels inside a block then tie, and ties are broken at random)."""
    if block <= 1:
        return rng.random(shape)
    h, w = shape
    coarse = rng.random((-(-h // block), -(-w // block)))
    return np.repeat(np.repeat(coarse, block, axis=0), block, axis=1)[:h, :w]


def _curve_images(image: np.ndarray, ranks: np.ndarray, fill: np.ndarray, steps: int,
                  mode: str) -> np.ndarray:
    """(steps + 1, S, S): step k has the first k/steps of the pixels removed (deletion) or
    put back into the fill image (insertion)."""
    counts = np.round(np.linspace(0, 1, steps + 1) * ranks.size).astype(np.int64)
    chosen = ranks[None] < counts[:, None, None]
    if mode == "deletion":
        return np.where(chosen, fill[None], image[None])
    return np.where(chosen, image[None], fill[None])


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at evenly spaced fractions of [0, 1] (trapezoid rule)."""
    y = np.asarray(curve, dtype=np.float64)
    return float((y[:-1] + y[1:]).sum() / (2 * (len(y) - 1)))


@torch.inference_mode()
def _probabilities(explainer: Explainer, images: np.ndarray, target: int,
                   batch_size: int) -> np.ndarray:
    model = explainer.model
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i : i + batch_size], np.float32))
            logits = model(x[:, None].to(explainer.device)).float().cpu().numpy()
            out.append(softmax(logits, explainer.temperature)[:, target])
    finally:
        model.train(was_training)
    return np.concatenate(out)


def curves(explainer: Explainer, images_u8: np.ndarray, saliency: np.ndarray | None,
           targets: np.ndarray, mode: str, fill: str, steps: int = 20, seed: int = 0,
           batch_size: int = 64, random_block: int = 1) -> np.ndarray:
    """(N, steps + 1) calibrated probabilities of ``targets`` along the deletion or insertion
    path of each image; ``saliency`` is (N, S, S), or ``None`` for a random order (of pixels,
    or of ``random_block``-sized squares)."""
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be deletion or insertion, got {mode!r}")
    rng = np.random.default_rng(seed)
    out = np.zeros((len(images_u8), steps + 1))
    for i, img_u8 in enumerate(images_u8):
        image = np.asarray(img_u8, np.float32) / 255.0
        sal = (random_saliency(image.shape, rng, random_block) if saliency is None
               else saliency[i])
        seq = _curve_images(image, saliency_ranks(sal, rng), fill_image(image, fill), steps, mode)
        out[i] = _probabilities(explainer, seq, int(targets[i]), batch_size)
    return out


@dataclass
class CurveSummary:
    """Mean curve and mean area for one ordering (a method's or the random one)."""

    auc: float
    auc_std: float
    curve: list[float]

    @classmethod
    def of(cls, probs: np.ndarray) -> CurveSummary:
        areas = np.array([auc(c) for c in probs]) if len(probs) else np.array([np.nan])
        return cls(float(np.mean(areas)), float(np.std(areas)),
                   [round(float(v), 4) for v in np.mean(probs, axis=0)] if len(probs) else [])


@dataclass
class FaithfulnessResult:
    method: str
    n_images: int
    deletion: CurveSummary  # lower is better
    insertion: CurveSummary  # higher is better
    random_deletion: CurveSummary  # random pixel order
    random_insertion: CurveSummary
    random_block_deletion: CurveSummary  # random order of blocks
    random_block_insertion: CurveSummary
    settings: dict = field(default_factory=dict)

    @property
    def deletion_gain(self) -> float:
        """Random-pixel minus method deletion AUC: > 0 when the map beats a random order."""
        return self.random_deletion.auc - self.deletion.auc

    @property
    def insertion_gain(self) -> float:
        return self.insertion.auc - self.random_insertion.auc

    @property
    def block_deletion_gain(self) -> float:
        return self.random_block_deletion.auc - self.deletion.auc

    @property
    def block_insertion_gain(self) -> float:
        return self.insertion.auc - self.random_block_insertion.auc

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("deletion_gain", "insertion_gain", "block_deletion_gain",
                  "block_insertion_gain"):
            d[k] = getattr(self, k)
        return d


class RandomBaseline:
    """Random-order curves (pixels and blocks), computed once per image set and shared by
    every method."""

    def __init__(self, explainer: Explainer, images_u8: np.ndarray, targets: np.ndarray,
                 steps: int = 20, deletion_fill: str = "mean", insertion_fill: str = "blur",
                 seed: int = 0):
        self.targets = np.asarray(targets)
        self.block = max(1, round(np.shape(images_u8)[-1] * BLOCK_FRACTION))

        def run(mode: str, fill: str, block: int) -> CurveSummary:
            return CurveSummary.of(curves(explainer, images_u8, None, self.targets, mode, fill,
                                          steps, seed + 1, random_block=block))

        self.deletion = run("deletion", deletion_fill, 1)
        self.insertion = run("insertion", insertion_fill, 1)
        self.block_deletion = run("deletion", deletion_fill, self.block)
        self.block_insertion = run("insertion", insertion_fill, self.block)


def deletion_insertion(explainer: Explainer, images_u8: np.ndarray, maps: np.ndarray,
                       targets: np.ndarray, method: str, steps: int = 20,
                       deletion_fill: str = "mean", insertion_fill: str = "blur", seed: int = 0,
                       baseline: RandomBaseline | None = None) -> FaithfulnessResult:
    """Deletion and insertion AUCs of ``maps`` (N, S, S) explaining ``targets``, beside the
    random-order baseline (pass ``baseline`` to share it between methods)."""
    targets = np.asarray(targets)
    if baseline is None:
        baseline = RandomBaseline(explainer, images_u8, targets, steps, deletion_fill,
                                  insertion_fill, seed)
    elif not np.array_equal(baseline.targets, targets):
        raise ValueError("the random baseline was computed for other target classes")
    dele = curves(explainer, images_u8, maps, targets, "deletion", deletion_fill, steps, seed)
    ins = curves(explainer, images_u8, maps, targets, "insertion", insertion_fill, steps, seed)
    return FaithfulnessResult(
        method=method,
        n_images=len(images_u8),
        deletion=CurveSummary.of(dele),
        insertion=CurveSummary.of(ins),
        random_deletion=baseline.deletion,
        random_insertion=baseline.insertion,
        random_block_deletion=baseline.block_deletion,
        random_block_insertion=baseline.block_insertion,
        settings={"steps": steps, "deletion_fill": deletion_fill, "random_block": baseline.block,
                  "insertion_fill": insertion_fill, "geometry": "model input",
                  "confidence": "calibrated probability of the explained class"},
    )
