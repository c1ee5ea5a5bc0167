"""Training data from the decoded cache: index, check, split, and serve uint8 tensors.

The split itself is :func:`braintumor.data.splits.plan_split` (a pure function of the cache
and the run's settings, so that the evidence checks can recompute it from a bundle's card).

Every image is decoded once into the cache (``braintumor.data.cache``); an epoch only
slices an in-memory uint8 tensor (7019 x 128 x 128 = 115 MB), so the DataLoader needs no
worker processes. Images stay uint8 until they reach the training device, where the
LightningModule scales and augments whole batches.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

from braintumor.data.cache import build_cache
from braintumor.data.datasets import SPLIT_NAMES, DatasetIndex, discover
from braintumor.data.labels import parse_class_spec
from braintumor.data.masks import masks_for_rows
from braintumor.data.preprocess import PreprocessConfig
from braintumor.data.splits import (
    TrainingDataError,
    card_split_settings,
    plan_split,
    training_labels,
    training_samples,
)

log = logging.getLogger(__name__)


def _empty_class_dirs(root: Path) -> list[str]:
    """Class folders under a training split folder that hold no usable image."""
    if not root.is_dir():
        return []
    empty = []
    for split_dir in root.iterdir():
        if not split_dir.is_dir() or SPLIT_NAMES.get(split_dir.name.lower()) != "train":
            continue
        for class_dir in split_dir.iterdir():
            if class_dir.is_dir() and not class_dir.name.startswith("."):
                if not any(p.is_file() and not p.name.startswith(".")
                           for p in class_dir.rglob("*")):
                    empty.append(str(class_dir))
    return sorted(empty)


class EpochSeededSampler(Sampler[int]):
    """A shuffle that depends only on (seed, epoch).

    ``RandomSampler`` draws from the global RNG, whose state Lightning does not checkpoint,
    so a resumed run would see a different order than an uninterrupted one. Lightning calls
    ``set_epoch`` on any sampler that has it. Under DDP it wraps this sampler in
    ``DistributedSamplerWrapper``, which forwards ``set_epoch`` and deals each rank every
    other index of our epoch (``tests/training/test_data.py`` checks both).
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = n, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def _generator(self) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)

    def __iter__(self) -> Iterator[int]:
        return iter(torch.randperm(self.n, generator=self._generator()).tolist())


class GroupCappedSampler(EpochSeededSampler):
    """Each epoch, at most ``cap`` members of every near-duplicate group, shuffled.

    The Kaggle notumor class is mostly copies (its 1591 Training files are 385 distinct
    slices, in groups of up to 47 that differ only in brightness and contrast): in the bundled
    split a cap of 2 leaves 4035 of 4892 training images per epoch (``braintumor train`` prints
    it). Capping each group per epoch spends those steps on more epochs instead; which copies
    are drawn changes every epoch, so over a run every file is still seen. Depends only on (seed,
    epoch), like its base class, so a resumed run draws the same epochs; its length is the
    same every epoch, as the learning-rate schedule's step count requires.
    """

    def __init__(self, groups: np.ndarray, cap: int, seed: int):
        _, inverse = np.unique(np.asarray(groups), return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.flatnonzero(np.diff(inverse[order])) + 1
        self.cap = cap
        self.members = [torch.from_numpy(m) for m in np.split(order, bounds)]
        super().__init__(sum(min(cap, len(m)) for m in self.members), seed)

    def __iter__(self) -> Iterator[int]:
        g = self._generator()
        chosen = [m if len(m) <= self.cap else m[torch.randperm(len(m), generator=g)[:self.cap]]
                  for m in self.members]
        rows = torch.cat(chosen)
        return iter(rows[torch.randperm(len(rows), generator=g)].tolist())

    def expected_class_counts(self, labels: np.ndarray, num_classes: int) -> np.ndarray:
        """Images of each class an epoch holds on average (for the class weights)."""
        counts = np.zeros(num_classes)
        for m in self.members:
            idx = m.numpy()
            counts += np.bincount(labels[idx], minlength=num_classes) * (
                min(self.cap, len(idx)) / len(idx))
        return counts


@dataclass
class SplitSummary:
    classes: list[str]
    counts: dict[str, dict[str, int]]  # split -> class -> n
    failed: list[tuple[str, str]]
    split_method: str


class CacheDataModule(L.LightningDataModule):
    """Train/val (carved from Training) and test (the Testing split) as uint8 tensors."""

    def __init__(self, data: str | Path, image_size: int = 128, batch_size: int = 64,
                 val_fraction: float = 0.15, seed: int = 42, max_train_images: int | None = None,
                 eval_batch_size: int = 256, masks: str | Path | None = None,
                 mask_empty_classes: tuple[str, ...] | list[str] = (),
                 max_group_copies: int | None = None, custom_classes: str | None = None,
                 train_fraction: float | None = None):
        super().__init__()
        self.train_fraction = train_fraction
        self.custom_classes = custom_classes  # data/labels.py parse_class_spec
        self.max_group_copies = max_group_copies
        self.train_groups: np.ndarray | None = None  # set by prepare()
        self._capped_sampler: GroupCappedSampler | None = None  # built once, on first use
        self.data = Path(data)
        self.pre = PreprocessConfig(image_size=image_size)
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size
        self.val_fraction = val_fraction
        self.seed = seed
        self.max_train_images = max_train_images
        self.masks = Path(masks) if masks else None
        self.mask_empty_classes = list(mask_empty_classes)
        self.mask_summary: dict | None = None
        self.summary: SplitSummary  # set by prepare()
        self.val_masks: tuple[np.ndarray, np.ndarray] | None = None  # with masks: (masks, has)
        self._prepared = False

    def prepare(self) -> SplitSummary:
        """Index, decode (cached) and split; raises :class:`TrainingDataError` when unusable.

        Called eagerly by the training command (not only from Lightning's ``setup``) so a data
        problem is reported before a Trainer, a run folder or a checkpoint exists.
        """
        if self._prepared:
            return self.summary
        class_list, class_map = (parse_class_spec(self.custom_classes) if self.custom_classes
                                 else (None, None))
        index: DatasetIndex = discover(self.data, custom_classes=class_list is not None)
        empty = _empty_class_dirs(self.data)
        if empty:
            raise TrainingDataError(
                "class folder(s) without images: " + ", ".join(empty)
                + "; every class needs training images (remove the folder or add images)")
        train_samples = training_samples(index)
        if self.masks is not None and not self.masks.is_dir():
            raise TrainingDataError(f"masks folder {self.masks} does not exist")
        unknown = sorted(set(self.mask_empty_classes) - set(index.classes))
        if unknown:
            raise TrainingDataError(f"mask_empty_classes {unknown} are not classes of "
                                    f"{self.data} ({', '.join(index.classes)})")
        if not train_samples:
            raise TrainingDataError(f"{self.data}: no training images (expected "
                                    "Training/<class>/ or <class>/ folders)")
        test_samples = index.split("test")
        cached = build_cache(train_samples + test_samples, self.pre, progress=True)
        if cached.failed:
            listing = "\n  ".join(f"{p}: {r}" for p, r in cached.failed)
            msg = f"skipped {len(cached.failed)} unreadable image(s):\n  {listing}"
            warnings.warn(msg, stacklevel=2)
            log.warning(msg)
        self.classes = list(index.classes)
        row_labels = None
        if class_list is not None:
            row_labels = training_labels(cached.labels, class_list, class_map, self.data)
            self.classes = class_list
        plan = plan_split(cached, self.classes, self.val_fraction, self.seed,
                          self.max_train_images, train_fraction=self.train_fraction,
                          row_labels=row_labels)
        self.train_rows, self.val_rows, self.test_rows = (plan.train_rows, plan.val_rows,
                                                          plan.test_rows)
        self.train_groups = plan.train_groups
        self.cached, self.labels = cached, plan.labels
        labels = plan.labels
        images = torch.from_numpy(np.array(cached.images))  # a writable in-memory copy
        targets = torch.from_numpy(labels)
        self._tensors = {
            name: TensorDataset(images[rows], targets[rows])
            for name, rows in (("train", self.train_rows), ("val", self.val_rows),
                               ("test", self.test_rows))
        }
        if self.masks is not None:
            # Training rows for the mask loss; validation rows only for the tumour head's Dice
            # (val_tumour_dice) and the card's tumour threshold, never for a loss or the
            # checkpoint selection; test rows never see a mask. The classifier's figures
            # measure it alone.
            self._tensors["train"] = TensorDataset(
                *self._tensors["train"].tensors, *self._train_masks(index.root))
            self.val_masks = self._val_masks(index.root)
            self._tensors["val"] = TensorDataset(
                *self._tensors["val"].tensors, *map(torch.from_numpy, self.val_masks))
        counts = {name: {c: int((labels[rows] == i).sum()) for i, c in enumerate(self.classes)}
                  for name, rows in (("train", self.train_rows), ("val", self.val_rows),
                                     ("test", self.test_rows))}
        self.summary = SplitSummary(self.classes, counts, list(cached.failed), plan.method)
        self._prepared = True
        return self.summary

    def _train_masks(self, data_root: Path) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.masks is not None  # called only when masks were given
        rows = self.train_rows
        c = self.cached
        got = masks_for_rows([c.paths[r] for r in rows], [c.labels[r] for r in rows],
                             [c.crops[r] for r in rows], data_root, self.masks,
                             self.pre.image_size, self.mask_empty_classes)
        if got.problems:
            listing = "\n  ".join(f"{p}: {r}" for p, r in got.problems)
            msg = f"{len(got.problems)} mask(s) left out of the mask loss:\n  {listing}"
            warnings.warn(msg, stacklevel=3)
            log.warning(msg)
        if not got.has_mask.any():
            raise TrainingDataError(f"no training image has a usable mask in {self.masks} "
                                    "(same relative path as the image, .png)")
        labels = [c.labels[r] for r in rows]
        self.mask_summary = {
            "masks": str(self.masks), "empty_classes": self.mask_empty_classes,
            "training_images_with_mask": {
                k: int(sum(1 for lbl, h in zip(labels, got.has_mask, strict=True)
                           if h and lbl == k)) for k in self.classes},
            "problems": [p for p, _ in got.problems],
        }
        return torch.from_numpy(got.masks), torch.from_numpy(got.has_mask)

    def _val_masks(self, data_root: Path) -> tuple[np.ndarray, np.ndarray]:
        """(masks, has_mask) of the validation rows, as :meth:`_train_masks` reads them."""
        rows, c = self.val_rows, self.cached
        assert self.masks is not None  # called only when masks were given
        got = masks_for_rows([c.paths[r] for r in rows], [c.labels[r] for r in rows],
                             [c.crops[r] for r in rows], data_root, self.masks,
                             self.pre.image_size, self.mask_empty_classes)
        if got.problems:
            log.warning("%d validation mask(s) unusable (left out of val_tumour_dice): %s",
                        len(got.problems), "; ".join(f"{p}: {r}" for p, r in got.problems))
        labels = [c.labels[r] for r in rows]
        if self.mask_summary is not None:
            self.mask_summary["validation_images_with_mask"] = {
                k: int(sum(1 for lbl, h in zip(labels, got.has_mask, strict=True)
                           if h and lbl == k)) for k in self.classes}
        return got.masks, got.has_mask

    def setup(self, stage: str | None = None) -> None:
        self.prepare()

    def class_counts(self) -> np.ndarray:
        """Training images per class, as an epoch sees them (so with a group cap, fewer)."""
        sampler = self._group_sampler()
        train_labels = self.labels[self.train_rows]
        if sampler is not None:
            return sampler.expected_class_counts(train_labels, len(self.classes))
        return np.bincount(train_labels, minlength=len(self.classes))

    def _group_sampler(self) -> GroupCappedSampler | None:
        """The capped sampler (one object: the class weights and the loader use the same)."""
        if self.max_group_copies is None:
            return None
        if self._capped_sampler is None:
            assert self.train_groups is not None, "prepare() sets the training groups"
            self._capped_sampler = GroupCappedSampler(self.train_groups, self.max_group_copies,
                                                      self.seed)
        return self._capped_sampler

    def dataset(self, name: str) -> TensorDataset:
        return self._tensors[name]

    def train_dataloader(self) -> DataLoader:
        ds = self._tensors["train"]
        # drop_last avoids a final batch of 1-2 images, whose batch-norm statistics are noise.
        sampler = self._group_sampler() or EpochSeededSampler(len(ds), self.seed)
        return DataLoader(ds, batch_size=self.batch_size, sampler=sampler,
                          drop_last=len(sampler) > self.batch_size, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._tensors["val"], batch_size=self.eval_batch_size, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self._tensors["test"], batch_size=self.eval_batch_size, shuffle=False)

    def has_test(self) -> bool:
        return len(self.test_rows) > 0


def prepared_data_module(data: str | Path, image_size: int, val_fraction: float, seed: int,
                         max_train_images: int | None = None,
                         train_fraction: float | None = None,
                         custom_classes: str | None = None) -> CacheDataModule:
    """The cache and split a run with these settings trains on (a pure function of them)."""
    dm = CacheDataModule(data, image_size=image_size, val_fraction=val_fraction, seed=seed,
                         max_train_images=max_train_images, custom_classes=custom_classes,
                         train_fraction=train_fraction)
    dm.prepare()
    return dm


def bundle_data_module(card: dict, data: str | Path) -> CacheDataModule | None:
    """:func:`prepared_data_module` for the run a bundle's card describes; None if it records
    no training config."""
    settings = card_split_settings(card)
    return None if settings is None else prepared_data_module(data, *settings)

