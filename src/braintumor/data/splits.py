"""Train/validation splits that keep every duplicate group on one side, and a run's split plan.

A random split of the Kaggle training folder puts mirrored and re-contrasted copies of the
same slice on both sides, so validation accuracy measures memory rather than generalisation
and early stopping picks the wrong epoch. scikit-learn's ``StratifiedGroupKFold`` already
solves "stratified by class, groups never straddle folds"; one of its folds is the
validation set.

The plan (:func:`plan_split`) is a pure function of the decoded cache and a run's settings,
and lives here rather than in ``training/`` so that whoever needs to know which images a
bundle trained on (the evidence checks, the benchmarks) can recompute it from the card
without importing the trainer.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from braintumor.data.cache import CachedDataset, build_cache
from braintumor.data.datasets import DatasetIndex, Sample, discover
from braintumor.data.duplicates import duplicate_groups
from braintumor.data.labels import parse_class_spec
from braintumor.data.preprocess import PreprocessConfig


class TrainingDataError(ValueError):
    """The data cannot train a classifier (empty class, class absent from validation...)."""


def stratified_group_split(
    labels: Sequence | np.ndarray,
    groups: Sequence | np.ndarray,
    val_fraction: float,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(train_idx, val_idx)``: stratified by label, seeded, duplicate-aware.

    ``groups`` are duplicate-group ids (e.g. from
    :func:`braintumor.data.duplicates.duplicate_groups`); samples sharing an id always land
    on the same side. The split is one fold of ``n = round(1 / val_fraction)`` folds, so the
    validation share is about ``1 / n`` (0.2 -> 5 folds -> 20 %); of those folds the one
    whose size is closest to ``val_fraction`` is taken, because whole groups make fold sizes
    uneven.
    """
    y = np.asarray(labels)
    g = np.asarray(groups)
    if y.ndim != 1 or g.ndim != 1 or len(y) != len(g):
        raise ValueError(f"labels ({y.shape}) and groups ({g.shape}) must be 1-D and equally long")
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must lie strictly between 0 and 1, got {val_fraction}")
    n_splits = max(2, round(1.0 / val_fraction))
    n_groups = len(np.unique(g))
    if n_groups < n_splits:
        raise ValueError(
            f"cannot hold out {val_fraction:.0%} by whole duplicate groups: only {n_groups} "
            f"groups for {n_splits} folds (need at least {n_splits})"
        )
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    with warnings.catch_warnings():
        # Rare classes (fewer groups than folds) trigger a warning; the split stays valid,
        # those classes just cannot appear in every fold.
        warnings.filterwarnings("ignore", message="The least populated class")
        folds = list(splitter.split(np.zeros(len(y)), y, g))
    target = val_fraction * len(y)
    train_idx, val_idx = min(folds, key=lambda f: abs(len(f[1]) - target))
    return np.sort(train_idx), np.sort(val_idx)


def split_train_val(labels: np.ndarray, groups: np.ndarray, val_fraction: float,
                    seed: int) -> tuple[np.ndarray, np.ndarray, str]:
    """(train_idx, val_idx, method): :func:`stratified_group_split` plus the line the card
    records about it.

    Near-duplicate images (mirrors, re-exports) must not straddle train/validation, or the
    validation score that selects the checkpoint is inflated.
    """
    n_dup = int(len(groups) - len(np.unique(groups)))
    method = (f"stratified, duplicate-aware: {len(np.unique(groups))} duplicate groups "
              f"({n_dup} images share a group with another) never straddle train/val")
    tr, va = stratified_group_split(labels, groups, val_fraction, seed)
    return tr, va, method


def duplicate_group_ids(cached: CachedDataset, rows: np.ndarray) -> np.ndarray:
    """A group id per row of ``cached``; near-duplicates share one."""
    return np.asarray(duplicate_groups([cached.paths[i] for i in rows]))


def training_labels(labels: Sequence[str], classes: list[str],
                    mapping: dict[str, str] | None, data: str | Path) -> list[str]:
    """The training class of every cached image under a ``--custom-classes`` spec (the
    ``classes`` and ``mapping`` of :func:`braintumor.data.labels.parse_class_spec`).

    A folder class the spec does not name is an error rather than dropped: leaving images
    out silently would change what the model was trained on without anyone asking.
    """
    if mapping is None:
        extra = sorted(set(labels) - set(classes))
        if extra:
            raise TrainingDataError(f"{data} has class folder(s) {extra} that --custom-classes "
                                    f"({', '.join(classes)}) does not list")
        return list(labels)
    unmapped = sorted(set(labels) - set(mapping))
    if unmapped:
        raise TrainingDataError(f"{data} has class folder(s) {unmapped} that the "
                                "--custom-classes relabelling does not map to a class")
    return [mapping[lbl] for lbl in labels]


def group_subset(rows: np.ndarray, groups: np.ndarray, fraction: float,
                 seed: int) -> np.ndarray:
    """About ``fraction`` of ``rows`` (positions into ``groups``) as whole duplicate groups,
    seeded; the validation split is made before and stays the same, so runs on 5 % and 100 %
    are scored alike."""
    uniq = np.random.default_rng(seed + 1).permutation(np.unique(groups))
    sizes = np.array([(groups == g).sum() for g in uniq])
    keep = uniq[: int(np.searchsorted(np.cumsum(sizes), fraction * len(rows))) + 1]
    return np.sort(rows[np.isin(groups, keep)])


def training_samples(index: DatasetIndex) -> list[Sample]:
    """The images a run fits and validates on: the Training split, or every unsplit image."""
    return index.split("train") or [s for s in index.samples if s.split is None]


@dataclass
class SplitPlan:
    """Which rows of the cache a run fits on, validates on and tests on."""

    labels: np.ndarray  # class index of every cache row
    train_rows: np.ndarray
    val_rows: np.ndarray
    test_rows: np.ndarray
    train_groups: np.ndarray  # duplicate-group id of each training row
    method: str  # how validation was carved out (for the card)


def plan_split(cached: CachedDataset, classes: list[str], val_fraction: float, seed: int,
               max_train_images: int | None = None, *, train_fraction: float | None = None,
               row_labels: Sequence[str] | None = None) -> SplitPlan:
    """The split of a run with these settings; raises :class:`TrainingDataError` when the
    data cannot give every class a training and a validation image.

    ``row_labels``: the training class of every cache row when it is not the folder's
    (``--custom-classes``, :func:`training_labels`). ``train_fraction``: keep that share of
    the training part (:func:`group_subset`), after validation was carved out.
    """
    names = list(cached.labels if row_labels is None else row_labels)
    present = Counter(lbl for lbl, sp in zip(names, cached.splits, strict=True)
                      if sp != "test")
    missing = [c for c in classes if present[c] == 0]
    if missing:
        raise TrainingDataError(f"no readable training image for class(es) {missing}")
    lookup = {c: i for i, c in enumerate(classes)}
    labels = np.array([lookup[lbl] for lbl in names], dtype=np.int64)
    is_test = np.array([s == "test" for s in cached.splits])
    pool = np.flatnonzero(~is_test)
    if max_train_images and len(pool) > max_train_images:
        rng = np.random.default_rng(seed)
        pool = np.sort(rng.choice(pool, max_train_images, replace=False))
    small = [classes[c] for c, n in Counter(labels[pool].tolist()).items() if n < 2]
    if small:
        raise TrainingDataError(
            f"class(es) {small} have fewer than 2 training images: one is needed for "
            "training and one for validation")
    n_val = int(np.ceil(val_fraction * len(pool)))
    if n_val < len(classes) or len(pool) - n_val < len(classes):
        raise TrainingDataError(
            f"val_fraction={val_fraction} of {len(pool)} training images gives "
            f"{n_val} validation images, too few for one of each of the "
            f"{len(classes)} classes; add images or change --val-fraction")
    groups = duplicate_group_ids(cached, pool)
    tr, va, method = split_train_val(labels[pool], groups, val_fraction, seed)
    if train_fraction is not None and train_fraction < 1:
        tr = group_subset(tr, groups[tr], train_fraction, seed)
    train_rows, val_rows = pool[tr], pool[va]
    missing_val = sorted(set(range(len(classes))) - set(labels[val_rows].tolist()))
    if missing_val:
        names = [classes[i] for i in missing_val]
        raise TrainingDataError(
            f"class(es) {names} have no validation image (val_fraction={val_fraction}"
            f" of {len(pool)} images); add images or raise --val-fraction")
    return SplitPlan(labels, train_rows, val_rows, np.flatnonzero(is_test), groups[tr], method)


def split_sides(data: str | Path, image_size: int, val_fraction: float, seed: int,
                max_train_images: int | None = None, train_fraction: float | None = None,
                custom_classes: str | None = None) -> dict[str, str]:
    """Resolved Training image path -> "fit" or "val", as a run with these settings split it.

    The split is a pure function of the data and these settings (duplicate-aware, seeded), so
    a bundle's card, which records them, is enough to tell which images it trained on: the
    evidence checks use that to measure only on images a model never fitted.
    """
    class_list, mapping = parse_class_spec(custom_classes) if custom_classes else (None, None)
    index = discover(data, custom_classes=class_list is not None)
    cached = build_cache(training_samples(index) + index.split("test"),
                         PreprocessConfig(image_size=image_size), progress=True)
    classes, row_labels = list(index.classes), None
    if class_list is not None:
        classes, row_labels = class_list, training_labels(cached.labels, class_list, mapping,
                                                          data)
    plan = plan_split(cached, classes, val_fraction, seed, max_train_images,
                      train_fraction=train_fraction, row_labels=row_labels)
    sides = {}
    for side, rows in (("fit", plan.train_rows), ("val", plan.val_rows)):
        for r in rows:
            sides[os.path.realpath(cached.paths[r])] = side
    return sides


def card_split_settings(card: dict) -> tuple | None:
    """(image_size, val_fraction, seed, max_train_images, train_fraction, custom_classes)
    from a bundle's card, if recorded: the arguments of :func:`split_sides` after ``data``."""
    config = (card.get("training") or {}).get("config")
    if not config:
        return None
    return (config["image_size"], config["val_fraction"], config["seed"],
            config.get("max_train_images"), config.get("train_fraction"),
            config.get("custom_classes"))


def bundle_split_sides(card: dict, data: str | Path) -> dict[str, str] | None:
    """:func:`split_sides` for the run a bundle's card describes; None if it records none."""
    settings = card_split_settings(card)
    return None if settings is None else split_sides(data, *settings)
