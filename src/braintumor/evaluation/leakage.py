"""Which test images have a duplicate in training, taken from the dataset audit.

The audit (``braintumor.data.audit``) finds exact and near duplicates, mirrored copies
included; evaluation only needs its list of leaked test paths to score the rest separately.
An audit JSON may come from another machine or another spelling of the dataset path, so a
path matches on its resolved form or, failing that, on its last three parts
(``Testing/<class>/<file>``), which name a file uniquely within a dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.cache import default_cache_root
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


def _audit_key(index: DatasetIndex) -> str:
    """Names one audit result: every file's (path, size, mtime, label, split) plus the source
    of the audit code itself, so an edited image or an updated duplicate finder recomputes.
    Like the decoded cache's memo, it trusts size + mtime rather than re-hashing 7000 files."""
    from braintumor.data import audit, duplicates

    h = hashlib.sha256()
    for module in (audit, duplicates):
        h.update(Path(module.__file__).read_bytes())  # type: ignore[arg-type]  # from files
    for s in index.samples:
        st = os.stat(s.path)
        h.update(f"{os.path.realpath(s.path)}|{st.st_size}|{st.st_mtime_ns}|{s.label}|"
                 f"{s.split}\n".encode())
    return h.hexdigest()[:24]


def leakage_from_audit(index: DatasetIndex, audit_json: str | Path | None = None,
                       cache_root: str | Path | None = None) -> Leakage:
    """From the given audit JSON, else by running the audit on ``index`` (needs a train split).

    A computed result is kept under the decoded-image cache's root (``leakage/<key>.json``):
    the audit takes tens of seconds on the Kaggle set and its answer depends only on the
    files, so evaluating a second model on the same data reuses it.
    """
    if audit_json:
        return read_audit_json(audit_json)
    if "train" not in index.splits or "test" not in index.splits:
        return Leakage(False, "computed", "the dataset has no Training/Testing pair to compare")
    from braintumor.data.audit import audit_dataset

    stored = Path(cache_root or default_cache_root()) / "leakage" / f"{_audit_key(index)}.json"
    try:
        paths = json.loads(stored.read_text())["test_paths_with_train_duplicate"]
        return Leakage.from_paths(paths, "computed (cached)")
    except (OSError, ValueError, KeyError):
        pass
    report = audit_dataset(index)
    paths = sorted(report.leaked_test_paths)
    stored.parent.mkdir(parents=True, exist_ok=True)
    tmp = stored.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"test_paths_with_train_duplicate": paths}))
    os.replace(tmp, stored)  # atomic: a concurrent reader sees all or nothing
    return Leakage.from_paths(paths, "computed")


TWIN_LEAK_FREE, TWIN_FIT, TWIN_VAL = "leak-free", "twin trained on", "twin in validation only"


def twin_locations(test_paths: Sequence[str], group_of: dict[str, int],
                   train_side: dict[str, str]) -> list[str]:
    """Where each test image's training duplicates ("twins") sat when the model was trained.

    A model scores a leaked test image by memory only if it fitted the twin; a twin carved
    into validation was never a gradient step. Splitting the leaked images this way shows how
    much of a test score is memory: ``group_of`` maps a resolved path to its duplicate group
    (from the audit), ``train_side`` maps each resolved Training path to ``"fit"`` or
    ``"val"`` (the model's own split). Returns one of ``TWIN_LEAK_FREE``, ``TWIN_FIT``,
    ``TWIN_VAL`` per test path.
    """
    sides_by_group: dict[int, set[str]] = {}
    for path, side in train_side.items():
        group = group_of.get(_resolved(path))
        if group is not None:
            sides_by_group.setdefault(group, set()).add(side)
    out = []
    for path in test_paths:
        sides = sides_by_group.get(group_of.get(_resolved(path), -1), set())
        out.append(TWIN_FIT if "fit" in sides else TWIN_VAL if sides else TWIN_LEAK_FREE)
    return out
