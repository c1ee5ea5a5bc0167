"""Audit a dataset before trusting any metric computed on it.

Counts, image geometry, unreadable files, and duplicates within a split, across splits
(train/test leakage) and across labels (one slice filed under two classes). Published
accuracies on the Kaggle brain-MRI set are measured on a test split that shares many slices
with training; ``leaked_test_paths`` and the leak-free manifest let evaluation say how much
of a score survives without them. How duplicates are found: :mod:`braintumor.data.duplicates`.

A test image counts as leaked when its duplicate *group* holds a training image, not only
when it is directly paired with one: a test slice whose exact copy is a near copy of a
training slice is just as leaked, even if the direct comparison fell short of a threshold.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.datasets import DatasetError, DatasetIndex, discover, write_manifest
from braintumor.data.duplicates import (
    DuplicateConfig,
    DuplicateResult,
    compute_fingerprints,
    find_duplicate_groups,
)
from braintumor.data.labels import UnknownClassError

SPLIT_ORDER = ("train", "val", "test", "all")


@dataclass(frozen=True)
class AuditConfig:
    duplicates: DuplicateConfig = field(default_factory=DuplicateConfig)
    workers: int | None = None  # decoding processes (default: CPU count, at most 8)


@dataclass
class AuditReport:
    """Everything the audit found; ``to_dict()`` is the JSON report."""

    index: DatasetIndex = field(repr=False)
    config: AuditConfig
    result: DuplicateResult = field(repr=False)
    seconds: float = 0.0

    def __post_init__(self) -> None:
        samples = self.index.samples
        records = self.result.fingerprints.records
        self.paths = [str(s.path) for s in samples]
        self.labels = np.array([s.label for s in samples], dtype=object)
        self.splits = np.array([s.split or "all" for s in samples], dtype=object)
        self.readable = np.array([r.error is None for r in records], dtype=bool)
        self.group_ids = self.result.groups
        hashes = [r.pixel_hash or f"<unreadable {k}>" for k, r in enumerate(records)]
        self.exact_ids = np.unique(np.array(hashes), return_inverse=True)[1].reshape(-1)
        self.groups: dict[str, int] = {
            p: int(g) for p, g in zip(self.paths, self.group_ids, strict=True)
        }
        self.leaked_test_paths: set[str] = {
            self.paths[k] for k in np.flatnonzero(self._linked("train", "test", self.group_ids))
        }

    # -- helpers ---------------------------------------------------------------------------
    def _in(self, split: str) -> np.ndarray:
        return (self.splits == split) & self.readable

    def _linked(self, src: str, dst: str, ids: np.ndarray) -> np.ndarray:
        """Images of ``dst`` whose group (by ``ids``) holds an image of ``src`` other than
        themselves."""
        src_count = np.bincount(ids[self._in(src)], minlength=ids.max() + 1)
        need = 2 if src == dst else 1
        return self._in(dst) & (src_count[ids] >= need)

    def _pair_arrays(self):
        p = self.result.pairs
        return p.i, p.j, p.exact, self.splits[p.i], self.splits[p.j]

    @property
    def split_names(self) -> list[str]:
        present = set(self.splits.tolist())
        return [s for s in SPLIT_ORDER if s in present]

    # -- sections --------------------------------------------------------------------------
    def _geometry(self) -> dict:
        recs = [r for r in self.result.fingerprints.records if r.error is None]
        sizes = Counter(f"{r.size[1]}x{r.size[0]}" for r in recs)  # type: ignore[index]
        return {
            "image_sizes": dict(sizes.most_common()),
            "pixel_modes": dict(Counter(r.mode for r in recs).most_common()),
            "formats": dict(Counter(r.format for r in recs).most_common()),
        }

    def _within(self) -> dict:
        i, j, exact, si, sj = self._pair_arrays()
        out = {}
        for s in self.split_names:
            same = (si == s) & (sj == s)
            any_dup = self._linked(s, s, self.group_ids)
            exact_dup = self._linked(s, s, self.exact_ids)
            n_groups = len(np.unique(self.group_ids[any_dup]))
            out[s] = {
                "exact_pairs": int((same & exact).sum()),
                "near_pairs": int((same & ~exact).sum()),
                "images_with_exact_copy": int(exact_dup.sum()),
                "images_with_duplicate": int(any_dup.sum()),
                # Images that could be dropped keeping one per group.
                "redundant_images": int(any_dup.sum() - n_groups),
            }
        return out

    def _across(self) -> dict:
        i, j, exact, si, sj = self._pair_arrays()
        names = self.split_names
        out = {}
        for a_idx, a in enumerate(names):
            for b in names[a_idx + 1:]:
                cross = ((si == a) & (sj == b)) | ((si == b) & (sj == a))
                out[f"{a}/{b}"] = {
                    "exact_pairs": int((cross & exact).sum()),
                    "near_pairs": int((cross & ~exact).sum()),
                    f"{b}_with_{a}_exact_copy": int(self._linked(a, b, self.exact_ids).sum()),
                    f"{b}_with_{a}_duplicate": int(self._linked(a, b, self.group_ids).sum()),
                }
        return out

    def _cross_label(self) -> dict:
        i, j, exact, _, _ = self._pair_arrays()
        differ = self.labels[i] != self.labels[j]
        label_codes = np.unique(self.labels.astype(str), return_inverse=True)[1].reshape(-1)
        mixed = []
        for ids, name in ((self.group_ids, "any"), (self.exact_ids, "exact")):
            pairs = np.unique(np.stack([ids, label_codes]), axis=1)
            n_labels = np.bincount(pairs[0], minlength=ids.max() + 1)
            mixed.append((name, np.flatnonzero(n_labels > 1)))
        groups = mixed[0][1]
        members = np.isin(self.group_ids, groups)
        return {
            "pairs": int(differ.sum()),
            "exact_pairs": int((differ & exact).sum()),
            "groups": int(len(groups)),
            "exact_groups": int(len(mixed[1][1])),
            "images": int(members.sum()),
            "group_list": [self._describe(np.flatnonzero(self.group_ids == g)) for g in groups],
        }

    def _describe(self, members: np.ndarray) -> list[dict]:
        return [{"path": self.paths[k], "label": self.labels[k], "split": self.splits[k]}
                for k in members]

    def _leakage(self) -> dict:
        test = self._in("test")
        exact_leak = self._linked("train", "test", self.exact_ids)
        p = self.result.pairs
        direct = np.zeros(len(self.paths), bool)
        for a, b in ((p.i, p.j), (p.j, p.i)):
            hit = self.splits[a] == "train"
            direct[b[hit]] = True
        out = {
            "test_images": int(test.sum()),
            "test_with_train_duplicate": len(self.leaked_test_paths),
            "test_with_train_exact_duplicate": int(exact_leak.sum()),
            "test_directly_paired_with_train": int((direct & test).sum()),
            "leak_free_test": int(test.sum()) - len(self.leaked_test_paths),
            "test_paths_with_train_duplicate": sorted(self.leaked_test_paths),
        }
        if "val" in self.split_names:
            val_leak = self._linked("train", "val", self.group_ids)
            out["val_with_train_duplicate"] = int(val_leak.sum())
            out["val_paths_with_train_duplicate"] = sorted(self.paths[k]
                                                           for k in np.flatnonzero(val_leak))
        return out

    def _duplicates(self) -> dict:
        p = self.result.pairs
        sizes = np.bincount(self.group_ids)
        exact_sizes = np.bincount(self.exact_ids[self.readable])
        return {
            "candidate_pairs": int(p.candidates),
            "pairs": len(p),
            "exact_pairs": int(p.exact.sum()),
            "mirrored_pairs": int(p.mirrored.sum()),
            "other_near_pairs": int((~p.exact & ~p.mirrored).sum()),
            "groups": int((sizes > 1).sum()),
            "images_in_groups": int(sizes[sizes > 1].sum()),
            "largest_group": int(sizes.max()) if len(sizes) else 0,
            "exact_groups": int((exact_sizes > 1).sum()),
            "images_in_exact_groups": int(exact_sizes[exact_sizes > 1].sum()),
        }

    def leak_free_test_samples(self) -> list:
        return [s for s, r in zip(self.index.samples, self.readable, strict=True)
                if s.split == "test" and r and str(s.path) not in self.leaked_test_paths]

    # -- output ----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        cfg = self.config.duplicates
        p = self.result.pairs
        kinds = np.where(p.exact, "exact", np.where(p.mirrored, "mirrored", "near"))
        sizes = np.bincount(self.group_ids)
        multi = np.flatnonzero(sizes > 1)
        order = np.argsort(self.group_ids, kind="stable")
        bounds = np.searchsorted(self.group_ids[order], multi)
        return {
            "dataset": str(self.index.root),
            "n_images": len(self.paths),
            "n_readable": int(self.readable.sum()),
            "counts": self.index.counts(),
            **self._geometry(),
            "unreadable": [{"path": r.path, "reason": r.error}
                           for r in self.result.fingerprints.records if r.error],
            "skipped": [{"path": path, "reason": why} for path, why in self.index.skipped],
            "thresholds": {
                "min_correlation": cfg.min_correlation,
                "min_agreement": cfg.min_agreement,
                "thumb_size": cfg.thumb_size,
                "detail_size": cfg.detail_size,
                "gradient_sigma": cfg.gradient_sigma,
            },
            "duplicates": self._duplicates(),
            "within_split": self._within(),
            "across_splits": self._across(),
            "cross_label": self._cross_label(),
            "leakage": self._leakage(),
            "groups": [[self.paths[k] for k in order[b:b + sizes[g]]]
                       for g, b in zip(multi, bounds, strict=True)],
            "pairs": [
                {"a": self.paths[a], "b": self.paths[b], "kind": str(k),
                 "correlation": round(float(c), 4), "agreement": round(float(g), 4)}
                for a, b, k, c, g in zip(p.i, p.j, kinds, p.correlation, p.agreement,
                                         strict=True)
            ],
            "seconds": round(self.seconds, 2),
        }

    def format_table(self, data: dict | None = None) -> str:
        """Plain-text summary for the terminal (the JSON has the full lists)."""
        d = data or self.to_dict()
        classes = list(self.index.classes)
        lines = [f"Dataset {d['dataset']}: {d['n_images']} images, {d['n_readable']} readable "
                 f"(audit took {d['seconds']:.1f} s)", ""]
        width = max(10, *(len(c) for c in classes))
        lines.append("split".ljust(8) + "".join(c.rjust(width + 1) for c in classes)
                     + "total".rjust(8))
        for split in self.split_names:
            row = d["counts"].get(split, {})
            lines.append(split.ljust(8) + "".join(str(row.get(c, 0)).rjust(width + 1)
                                                  for c in classes)
                         + str(sum(row.values())).rjust(8))
        fmt = ", ".join
        lines += ["", "image sizes: " + fmt(f"{k} ({v})" for k, v in d["image_sizes"].items()),
                  "pixel modes: " + fmt(f"{k} ({v})" for k, v in d["pixel_modes"].items()),
                  f"unreadable files: {len(d['unreadable'])}; skipped non-image files: "
                  f"{len(d['skipped'])}"]
        lines += [f"  {u['path']}: {u['reason']}" for u in d["unreadable"][:20]]
        t, dup = d["thresholds"], d["duplicates"]
        lines += ["", f"Duplicates (thumbnail correlation >= {t['min_correlation']}, "
                      f"confirmed by gradient agreement >= {t['min_agreement']}):",
                  f"  {dup['pairs']} pairs: {dup['exact_pairs']} exact, {dup['mirrored_pairs']} "
                  f"mirrored, {dup['other_near_pairs']} other near; {dup['groups']} groups "
                  f"holding {dup['images_in_groups']} images (largest {dup['largest_group']})"]
        for split, w in d["within_split"].items():
            lines.append(f"  within {split}: {w['images_with_duplicate']} images have a "
                         f"duplicate in {split} ({w['images_with_exact_copy']} an exact copy); "
                         f"{w['redundant_images']} redundant")
        for key, a in d["across_splits"].items():
            lines.append(f"  across {key}: {a['exact_pairs']} exact + {a['near_pairs']} near "
                         "pairs")
        cl = d["cross_label"]
        lines.append(f"  across labels: {cl['groups']} groups ({cl['images']} images) mix "
                     f"classes; {cl['exact_groups']} of them exact copies")
        lk = d["leakage"]
        if lk["test_images"]:
            lines += ["", f"Leakage: {lk['test_with_train_duplicate']} of {lk['test_images']} "
                          f"test images have a duplicate in train "
                          f"({lk['test_with_train_exact_duplicate']} an exact copy); "
                          f"leak-free test images: {lk['leak_free_test']}"]
        if "val_with_train_duplicate" in lk:
            lines.append(f"         {lk['val_with_train_duplicate']} validation images have a "
                         "duplicate in train")
        return "\n".join(lines)


def audit_dataset(index: DatasetIndex, config: AuditConfig | None = None) -> AuditReport:
    """Decode every image once, find duplicates, and gather the report."""
    cfg = config or AuditConfig()
    start = time.perf_counter()
    fp = compute_fingerprints(index.samples, cfg.duplicates, cfg.workers)
    result = find_duplicate_groups(fp, cfg.duplicates)
    return AuditReport(index, cfg, result, seconds=time.perf_counter() - start)


def _fail(message: str) -> int:
    print(f"braintumor audit: error: {message}", file=sys.stderr)
    return 2


def audit_command(args) -> int:
    """``braintumor audit``: print the table, optionally write JSON and a leak-free manifest."""
    data = getattr(args, "data", None)
    if not data:
        return _fail("no dataset given: pass DATA or set the DATA environment variable")
    dup_kwargs = {k: v for k, v in (("min_correlation", getattr(args, "min_correlation", None)),
                                    ("min_agreement", getattr(args, "min_agreement", None)))
                  if v is not None}
    try:
        cfg = AuditConfig(DuplicateConfig(**dup_kwargs), workers=getattr(args, "workers", None))
        index = discover(data, custom_classes=getattr(args, "custom_classes", False))
    except (DatasetError, UnknownClassError, ValueError) as exc:
        return _fail(str(exc))
    print(f"auditing {len(index.samples)} images in {index.root} ...", file=sys.stderr)
    report = audit_dataset(index, cfg)
    data_dict = report.to_dict()
    print(report.format_table(data_dict))
    rc = 0
    json_out = getattr(args, "json_out", None)
    if json_out:
        try:
            path = Path(json_out)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(data_dict, indent=1))
            print(f"JSON report written to {path}")
        except OSError as exc:
            rc = _fail(f"cannot write the JSON report: {exc}")
    manifest = getattr(args, "leak_free_manifest", None)
    if manifest:
        if "test" not in report.split_names:
            return _fail("the dataset has no test split, so there is no leak-free test manifest")
        try:
            kept = report.leak_free_test_samples()
            write_manifest(kept, manifest)
            print(f"leak-free test manifest ({len(kept)} images) written to {manifest}")
        except OSError as exc:
            rc = _fail(f"cannot write the manifest: {exc}")
    return rc
