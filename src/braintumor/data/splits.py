"""Train/validation splits that keep every duplicate group on one side.

A random split of the Kaggle training folder puts mirrored and re-contrasted copies of the
same slice on both sides, so validation accuracy measures memory rather than generalisation
and early stopping picks the wrong epoch. scikit-learn's ``StratifiedGroupKFold`` already
solves "stratified by class, groups never straddle folds"; one of its folds is the
validation set.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold


def stratified_group_split(
    labels: Sequence,
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
