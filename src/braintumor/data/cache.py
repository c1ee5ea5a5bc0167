"""Decode and preprocess a dataset once; serve every later epoch from a memory-mapped array.

The cache key is the content of every file plus the preprocessing parameters, so editing,
adding or removing one image, or changing the image size, builds a new entry and nothing
stale is ever read. To avoid re-hashing unchanged files on each run, content hashes are
remembered per (path, size, mtime) the way git's index does.

Layout of one entry, ``CACHE_ROOT/<key>/``: ``images.npy`` (N, S, S) uint8, ``meta.json``
(paths, labels, splits, crop boxes, failures). Entries are built in a temporary folder and
renamed into place, so an interrupted build never leaves a half-written entry behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.datasets import Sample
from braintumor.data.errors import ImageReadError
from braintumor.data.preprocess import CropInfo, PreprocessConfig, preprocess
from braintumor.data.processes import process_pool
from braintumor.data.readers import READER_VERSION, read_image

CACHE_FORMAT = 1
# A file modified this recently may be modified again within the same mtime tick without its
# (size, mtime) changing, so its hash is not remembered ("racy git", see git's racy-git.txt).
RACY_WINDOW_NS = 2_000_000_000


def default_cache_root() -> Path:
    env = os.environ.get("BRAINTUMOR_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "braintumor"


@dataclass
class CachedDataset:
    """Preprocessed images of a sample list, in the order given (failures left out)."""

    images: np.ndarray  # (N, S, S) uint8, memory-mapped
    labels: list[str]
    paths: list[str]
    splits: list[str | None]
    crops: list[CropInfo]
    content_hashes: list[str]
    config: PreprocessConfig
    key: str
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    directory: Path | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def label_indices(self, classes: Sequence[str]) -> np.ndarray:
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[lbl] for lbl in self.labels], dtype=np.int64)

    def select(self, mask_or_idx: np.ndarray | Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Row indices for a boolean mask or index list (helper for splits)."""
        idx = np.asarray(mask_or_idx)
        if idx.dtype == bool:
            idx = np.flatnonzero(idx)
        return idx, self.images[idx]


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class _HashMemo:
    """(path, size, mtime_ns) -> sha256, persisted beside the cache entries."""

    def __init__(self, root: Path):
        self.file = root / "content-hashes.json"
        try:
            self.known: dict[str, list] = json.loads(self.file.read_text())
        except (OSError, ValueError):
            self.known = {}
        self.dirty = False

    def get(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        rec = self.known.get(key)
        if rec and rec[0] == st.st_size and rec[1] == st.st_mtime_ns:
            return rec[2]
        digest = _hash_file(path)
        if time.time_ns() - st.st_mtime_ns > RACY_WINDOW_NS:
            self.known[key] = [st.st_size, st.st_mtime_ns, digest]
            self.dirty = True
        return digest

    def save(self) -> None:
        if self.dirty:
            _atomic_write_text(self.file, json.dumps(self.known))


def _atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _decode_one(args: tuple[str, dict]) -> tuple[np.ndarray | None, tuple | None, str | None]:
    path, cfg_dict = args
    try:
        loaded = read_image(path)
        out = preprocess(loaded.pixels, PreprocessConfig.from_dict(cfg_dict))
        c = out.crop
        return out.image, (c.original_size, c.top, c.left, c.side), None
    except ImageReadError as exc:
        return None, None, exc.reason
    except Exception as exc:  # a bad file must never take the whole build down
        return None, None, f"{exc.__class__.__name__}: {exc}"


def build_cache(
    samples: Sequence[Sample],
    cfg: PreprocessConfig | None = None,
    cache_root: str | Path | None = None,
    workers: int | None = None,
    progress: bool = False,
) -> CachedDataset:
    """Return the cached, preprocessed images for ``samples``, building them if needed."""
    cfg = cfg or PreprocessConfig()
    root = Path(cache_root) if cache_root else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    memo = _HashMemo(root)
    hashes: list[str | None] = []
    unreadable: dict[int, str] = {}
    for i, s in enumerate(samples):
        try:
            hashes.append(memo.get(Path(s.path)))
        except OSError as exc:  # vanished or unreadable since discovery: report, go on
            hashes.append(None)
            unreadable[i] = f"cannot read file ({exc.strerror or exc.__class__.__name__})"
    memo.save()
    h = hashlib.sha256()
    h.update(f"format={CACHE_FORMAT};reader={READER_VERSION};pre={cfg.key()};".encode())
    for i, (s, digest) in enumerate(zip(samples, hashes, strict=True)):
        h.update(f"{digest or 'unreadable:' + unreadable[i]}|{s.label}|{s.split}\n".encode())
    key = h.hexdigest()[:24]
    entry = root / key
    if not (entry / "meta.json").is_file():
        _build_entry(entry, samples, hashes, unreadable, cfg, key, workers, progress)
    return _open_entry(entry, cfg, samples)


def _build_entry(entry, samples, hashes, unreadable, cfg, key, workers, progress) -> None:
    from tqdm.auto import tqdm

    quiet = None if progress else True  # None: tqdm draws only on a terminal
    todo = [i for i in range(len(samples)) if i not in unreadable]
    jobs = [(str(samples[i].path), cfg.to_dict()) for i in todo]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) > 64:
        with process_pool(workers) as pool:
            decoded = list(
                tqdm(pool.map(_decode_one, jobs, chunksize=32), total=len(jobs),
                     disable=quiet, desc="decoding", unit="img")
            )
    else:
        decoded = [_decode_one(j) for j in tqdm(jobs, disable=quiet, desc="decoding")]
    results: list[tuple] = [(None, None, unreadable.get(i)) for i in range(len(samples))]
    for i, r in zip(todo, decoded, strict=True):
        results[i] = r
    keep = [i for i, r in enumerate(results) if r[0] is not None]
    size = cfg.image_size
    tmp = Path(tempfile.mkdtemp(dir=entry.parent, prefix=f".{key}-"))
    try:
        arr = np.lib.format.open_memmap(
            tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(len(keep), size, size)
        )
        for row, i in enumerate(keep):
            arr[row] = results[i][0]
        arr.flush()
        del arr
        meta = {
            "format": CACHE_FORMAT,
            "key": key,
            "preprocess": cfg.to_dict(),
            "paths": [str(samples[i].path) for i in keep],
            "labels": [samples[i].label for i in keep],
            "splits": [samples[i].split for i in keep],
            "crops": [results[i][1] for i in keep],
            "hashes": [hashes[i] for i in keep],
            "kept": keep,
            "failed": [[str(samples[i].path), r[2]] for i, r in enumerate(results) if r[0] is None],
            "failed_indices": [i for i, r in enumerate(results) if r[0] is None],
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process finished the same entry first; theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _open_entry(entry: Path, cfg: PreprocessConfig, samples: Sequence[Sample]) -> CachedDataset:
    meta = json.loads((entry / "meta.json").read_text())
    images = np.load(entry / "images.npy", mmap_mode="r")
    crops = [CropInfo(tuple(c[0]), c[1], c[2], c[3]) for c in meta["crops"]]
    paths, failed = meta["paths"], [tuple(x) for x in meta["failed"]]
    if "kept" in meta and len(meta["kept"]) + len(meta["failed_indices"]) == len(samples):
        # The key is content, not location: a moved or copied dataset hits the same entry,
        # so report the paths the caller gave now, not the ones seen at build time.
        paths = [str(samples[i].path) for i in meta["kept"]]
        failed = [
            (str(samples[i].path), reason)
            for i, (_, reason) in zip(meta["failed_indices"], meta["failed"], strict=True)
        ]
    return CachedDataset(
        images=images,
        labels=meta["labels"],
        paths=paths,
        splits=meta["splits"],
        crops=crops,
        content_hashes=meta["hashes"],
        config=cfg,
        key=meta["key"],
        failed=failed,
        directory=entry,
    )
