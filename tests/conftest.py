"""Shared fixtures: synthetic MRI-like slices and datasets, and the real dataset's location.

Unit tests never need the Kaggle images; tests marked ``dataset`` read a few of them from
``$DATA`` (default ``../shared/datasets/brain-tumor-mri``) and skip when it is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CLASSES = ("glioma", "meningioma", "notumor", "pituitary")
# Where each synthetic class puts its bright blob (row, col as fractions); notumor has none.
BLOB_CENTRES = {"glioma": (0.35, 0.35), "meningioma": (0.35, 0.68), "pituitary": (0.68, 0.5)}


def make_slice(size: int = 96, seed: int = 0, blob: tuple[float, float] | None = None,
               blob_radius: float = 0.09, pad: int = 0) -> np.ndarray:
    """A head-like slice: dark background, textured ellipse, optional bright blob."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    cy, cx = 0.5 + rng.uniform(-0.03, 0.03), 0.5 + rng.uniform(-0.03, 0.03)
    ry, rx = 0.40 + rng.uniform(-0.03, 0.03), 0.33 + rng.uniform(-0.03, 0.03)
    head = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    img = np.zeros((size, size), np.float64)
    img[head] = 90 + 25 * np.sin(xx[head] * rng.uniform(10, 30)) + rng.normal(0, 8, head.sum())
    if blob is not None:
        by, bx = blob[0] + rng.uniform(-0.04, 0.04), blob[1] + rng.uniform(-0.04, 0.04)
        in_blob = (yy - by) ** 2 + (xx - bx) ** 2 <= blob_radius**2
        img[in_blob] = 230
    out = np.clip(img, 0, 255).astype(np.uint8)
    if pad:
        out = np.pad(out, pad)
    return out


def blob_mask(size: int, seed: int, label: str, blob_radius: float = 0.09) -> np.ndarray:
    """The ground-truth blob of ``make_slice(size, seed, BLOB_CENTRES[label])``."""
    img = make_slice(size, seed, BLOB_CENTRES.get(label), blob_radius)
    return img >= 230


def make_dataset(root: Path, n_per_class: int = 6, size: int = 64,
                 splits: tuple[str, ...] = ("Training", "Testing"), seed: int = 0,
                 ext: str = ".png") -> Path:
    """Kaggle-layout folder ``root/<split>/<class>/*.png`` whose class is the blob's position."""
    k = seed * 100_000
    for split in splits:
        for label in CLASSES:
            d = root / split / label
            d.mkdir(parents=True, exist_ok=True)
            for _ in range(n_per_class):
                k += 1
                img = make_slice(size, k, BLOB_CENTRES.get(label))
                Image.fromarray(img).save(d / f"{label}_{k}{ext}")
    return root


def write_masks(dataset: Path, masks: Path, size: int, split: str = "Training") -> Path:
    """Tumour masks for a ``make_dataset`` folder, mirroring it (``<name>.png``, 0/255): the
    blob of each tumour image (its seed is in its name); notumor images get no file."""
    for label in BLOB_CENTRES:
        for img in sorted((dataset / split / label).glob("*.png")):
            seed = int(img.stem.rsplit("_", 1)[1])
            out = masks / split / label / img.name
            out.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray((blob_mask(size, seed, label) * 255).astype(np.uint8)).save(out)
    return masks


def synthetic_slices(seeds) -> tuple[list[np.ndarray], np.ndarray]:
    """96 px head-like slices, class ``seed % 4`` (its blob), and their class indices."""
    images, labels = [], []
    for k in seeds:
        label = CLASSES[k % 4]
        images.append(make_slice(96, seed=k, blob=BLOB_CENTRES.get(label)))
        labels.append(k % 4)
    return images, np.array(labels)


def calibrate_on_synthetic_slices(folder: Path, target_rate: float = 0.02) -> Path:
    """Give the bundle in ``folder`` an OOD calibration from synthetic head-like slices
    (96 to fit, 64 to set thresholds), as ``braintumor calibrate-ood`` does from a dataset."""
    from braintumor.data.preprocess import preprocess
    from braintumor.inference.ood import FeatureExtractor, calibrate
    from braintumor.models import load_bundle
    from braintumor.training.ood_calibration import store_calibration

    loaded = load_bundle(folder)
    cfg = loaded.preprocess
    extract = FeatureExtractor(loaded.model)
    fit, fit_labels = synthetic_slices(range(96))
    val, _ = synthetic_slices(range(1000, 1064))
    fit_u8 = np.stack([preprocess(x, cfg).image for x in fit])
    val_u8 = np.stack([preprocess(x, cfg).image for x in val])
    cal = calibrate(extract(fit_u8)[1], fit_labels, extract(val_u8)[1], val_u8,
                    np.zeros(len(val)), len(loaded.classes), cfg.crop_threshold, target_rate)
    store_calibration(folder, cal)
    return folder


@pytest.fixture
def synthetic_slice():
    return make_slice


@pytest.fixture
def synthetic_mask():
    return blob_mask


@pytest.fixture
def synthetic_dataset(tmp_path):
    """Factory: ``synthetic_dataset(n_per_class=6, size=64, ...)`` -> dataset root."""

    def factory(**kwargs) -> Path:
        return make_dataset(tmp_path / "dataset", **kwargs)

    return factory


@pytest.fixture
def cache_root(tmp_path, monkeypatch) -> Path:
    """A private decoded-cache folder, so tests never touch ~/.cache."""
    root = tmp_path / "cache"
    monkeypatch.setenv("BRAINTUMOR_CACHE", str(root))
    return root


@pytest.fixture(scope="session")
def data_root() -> Path:
    root = Path(os.environ.get("DATA", REPO.parent / "shared" / "datasets" / "brain-tumor-mri"))
    if not (root / "Training").is_dir():
        pytest.skip(f"dataset not found at {root} (set DATA)")
    return root
