"""Which test images have a duplicate in training, taken from the dataset audit.

The audit (``braintumor.data.audit``) finds exact and near duplicates, mirrored copies
included; evaluation only needs its list of leaked test paths to score the rest separately.
An audit JSON may come from another machine or another spelling of the dataset path, so a
path matches on its resolved form or, failing that, on its last three parts
(``Testing/<class>/<file>``), which name a file uniquely within a dataset.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.datasets import DatasetIndex

TAIL_PARTS = 3


@dataclass(frozen=True)
class Leakage:
    available: bool
    source: str  # the audit JSON's path, or "computed"
    reason: str = ""  # why it is unavailable
    resolved: frozenset[str] = field(default_factory=frozenset)
    tails: frozenset[str] = field(default_factory=frozenset)
    n_reported: int | None = None  # the audit's own count of leaked test images

    @classmethod
    def from_paths(cls, paths: Iterable[str], source: str,
                   n_reported: int | None = None) -> Leakage:
        paths = [str(p) for p in paths]
        return cls(True, source, "", frozenset(_resolved(p) for p in paths),
                   frozenset(_tail(p) for p in paths),
                   len(paths) if n_reported is None else n_reported)


def _resolved(path: str) -> str:
    return os.path.realpath(path)


def _tail(path: str) -> str:
    return "/".join(Path(path).parts[-TAIL_PARTS:])


def split_by_leakage(paths: Sequence[str], leakage: Leakage) -> np.ndarray:
    """Boolean mask over ``paths``: True where the image has a duplicate in training."""
    if not leakage.available:
        return np.zeros(len(paths), dtype=bool)
    return np.array([_resolved(p) in leakage.resolved or _tail(p) in leakage.tails
                     for p in paths], dtype=bool)


def read_audit_json(path: str | Path) -> Leakage:
    """Leaked test paths from ``braintumor audit --json`` output."""
    report = json.loads(Path(path).read_text())
    leak = report.get("leakage") or {}
    paths = leak.get("test_paths_with_train_duplicate")
    if paths is None:
        return Leakage(False, str(path), f"{path}: no leakage.test_paths_with_train_duplicate")
    return Leakage.from_paths(paths, str(path), leak.get("test_with_train_duplicate"))


def leakage_from_audit(index: DatasetIndex, audit_json: str | Path | None = None) -> Leakage:
    """From the given audit JSON, else by running the audit on ``index`` (needs a train split)."""
    if audit_json:
        return read_audit_json(audit_json)
    if "train" not in index.splits or "test" not in index.splits:
        return Leakage(False, "computed", "the dataset has no Training/Testing pair to compare")
    from braintumor.data.audit import audit_dataset

    report = audit_dataset(index)
    return Leakage.from_paths(sorted(report.leaked_test_paths), "computed")
