"""Turn a dataset folder or CSV manifest into a list of labelled samples.

Layouts understood:
- ``ROOT/{Training,Testing}/<class>/`` (the Kaggle layout; also ``train``/``test``/``val``
  and ``validation`` spellings, any case),
- ``ROOT/<class>/`` (one pool, to be split later),
- a CSV manifest with a header ``path,label[,split]`` (relative paths resolve against the
  CSV's folder).
Labels come from folder names (or the CSV), never from file names.
"""

from __future__ import annotations

import csv
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from braintumor.data.labels import CANONICAL_CLASSES, UnknownClassError, canonical_label

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".dcm", ".dicom"}

SPLIT_NAMES = {
    "training": "train",
    "train": "train",
    "testing": "test",
    "test": "test",
    "val": "val",
    "valid": "val",
    "validation": "val",
}


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (missing folder, no images, bad manifest)."""


@dataclass(frozen=True)
class Sample:
    path: Path
    label: str
    split: str | None = None  # "train", "val", "test" or None for an unsplit pool


@dataclass
class DatasetIndex:
    root: Path
    samples: list[Sample]
    classes: tuple[str, ...]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def split(self, name: str) -> list[Sample]:
        return [s for s in self.samples if s.split == name]

    @property
    def splits(self) -> list[str]:
        order = ["train", "val", "test"]
        return sorted({s.split for s in self.samples if s.split}, key=order.index)

    def counts(self) -> dict[str, dict[str, int]]:
        """{split or "all": {class: n}}."""
        out: dict[str, Counter] = {}
        for s in self.samples:
            out.setdefault(s.split or "all", Counter())[s.label] += 1
        return {k: dict(sorted(v.items())) for k, v in out.items()}


def is_hidden(path: Path, root: Path) -> bool:
    """Dot- and dunder-folders/files (``.ipynb_checkpoints``, ``.DS_Store``, ``__MACOSX``)."""
    rel = path.relative_to(root).parts
    return any(p.startswith(".") or p.startswith("__") for p in rel)


def looks_like_image(path: Path) -> bool:
    """By extension, or by the DICOM preamble for the extensionless files scanners write."""
    ext = path.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return True
    if ext == "":  # DICOM files often come without an extension
        try:
            with path.open("rb") as f:
                return f.read(132)[128:132] == b"DICM"
        except OSError:
            return False
    return False


def image_files_in(folder: Path) -> list[Path]:
    """Image files below ``folder``, recursively, hidden ones skipped, in a stable order."""
    folder = Path(folder)
    return sorted(f for f in folder.rglob("*")
                  if f.is_file() and not is_hidden(f, folder) and looks_like_image(f))


def _order_classes(labels: set[str]) -> tuple[str, ...]:
    known = [c for c in CANONICAL_CLASSES if c in labels]
    return tuple(known + sorted(labels - set(known)))


def discover(source: str | Path, custom_classes: bool = False) -> DatasetIndex:
    """Index a dataset folder or CSV manifest; raises :class:`DatasetError` if unusable."""
    source = Path(source)
    if not source.exists():
        raise DatasetError(f"{source}: no such dataset folder or manifest")
    if source.is_file():
        return _from_manifest(source, custom_classes)
    root = source
    subdirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_NAMES]
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    if split_dirs:
        for sd in split_dirs:
            split = SPLIT_NAMES[sd.name.lower()]
            _scan_class_dirs(sd, root, split, custom_classes, samples, skipped)
    else:
        _scan_class_dirs(root, root, None, custom_classes, samples, skipped)
    if not samples:
        raise DatasetError(
            f"{root}: no images found (expected ROOT/<class>/*.jpg or ROOT/Training/<class>/...)"
        )
    return DatasetIndex(root, samples, _order_classes({s.label for s in samples}), skipped)


def _scan_class_dirs(
    parent: Path,
    root: Path,
    split: str | None,
    custom: bool,
    samples: list[Sample],
    skipped: list[tuple[str, str]],
) -> None:
    for class_dir in sorted(parent.iterdir()):
        if not class_dir.is_dir() or class_dir.name.startswith("."):
            continue
        try:
            label = canonical_label(class_dir.name, custom=custom)
        except UnknownClassError as exc:  # say which folder, not just which name
            raise UnknownClassError(f"{class_dir}: {exc}") from None
        for path in sorted(class_dir.rglob("*")):
            if not path.is_file() or is_hidden(path, root):
                continue
            if looks_like_image(path):
                samples.append(Sample(path, label, split))
            else:
                skipped.append((str(path), "not an image file (by extension)"))


def _from_manifest(csv_path: Path, custom: bool) -> DatasetIndex:
    base = csv_path.parent
    samples: list[Sample] = []
    skipped: list[tuple[str, str]] = []
    # utf-8-sig: spreadsheet programs save CSVs with a byte-order mark before "path".
    with csv_path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        cols = {c.strip().lower() for c in reader.fieldnames or []}
        if not {"path", "label"} <= cols:
            raise DatasetError(f"{csv_path}: manifest needs a header with path,label[,split]")
        for line, row in enumerate(reader, start=2):
            row = {k.strip().lower(): (v or "").strip() for k, v in row.items() if k}
            p = Path(row["path"])
            p = p if p.is_absolute() else base / p
            if not p.is_file():
                skipped.append((str(p), f"listed on line {line} of {csv_path.name} but missing"))
                continue
            split = None
            if row.get("split"):
                split = SPLIT_NAMES.get(row["split"].lower())
                if split is None:  # a typo must not silently move images into the pool
                    raise DatasetError(
                        f"{csv_path}, line {line}: unknown split {row['split']!r} "
                        "(expected train, val or test)"
                    )
            try:
                label = canonical_label(row["label"], custom=custom)
            except UnknownClassError as exc:
                raise UnknownClassError(f"{csv_path}, line {line}: {exc}") from None
            samples.append(Sample(p, label, split))
    if not samples:
        raise DatasetError(f"{csv_path}: manifest lists no existing image")
    return DatasetIndex(base, samples, _order_classes({s.label for s in samples}), skipped)


def write_manifest(samples: list[Sample], out: str | Path) -> Path:
    """Write ``path,label,split`` rows (absolute paths) that :func:`discover` reads back."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split"])
        for s in samples:
            w.writerow([str(Path(s.path).resolve()), s.label, s.split or ""])
    return out
