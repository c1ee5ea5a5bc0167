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
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from braintumor.data.datasets import Sample
from braintumor.data.errors import ImageReadError
from braintumor.data.preprocess import CropInfo, PreprocessConfig, preprocess
from braintumor.data.readers import read_image

CACHE_FORMAT = 1


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

    def select(self, mask_or_idx) -> tuple[np.ndarray, np.ndarray]:
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
    hashes = [memo.get(Path(s.path)) for s in samples]
    memo.save()
    h = hashlib.sha256()
    h.update(f"format={CACHE_FORMAT};pre={cfg.key()};".encode())
    for s, digest in zip(samples, hashes):
        h.update(f"{digest}|{s.label}|{s.split}\n".encode())
    key = h.hexdigest()[:24]
    entry = root / key
    if (entry / "meta.json").is_file():
        return _open_entry(entry, cfg)
    _build_entry(entry, samples, hashes, cfg, key, workers, progress)
    return _open_entry(entry, cfg)


def _build_entry(entry, samples, hashes, cfg, key, workers, progress) -> None:
    from tqdm.auto import tqdm

    jobs = [(str(s.path), cfg.to_dict()) for s in samples]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) > 64:
        with ProcessPoolExecutor(workers) as pool:
            results = list(
                tqdm(pool.map(_decode_one, jobs, chunksize=32), total=len(jobs),
                     disable=not progress, desc="decoding", unit="img")
            )
    else:
        results = [_decode_one(j) for j in tqdm(jobs, disable=not progress, desc="decoding")]
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
            "failed": [[str(samples[i].path), r[2]] for i, r in enumerate(results) if r[0] is None],
        }
        (tmp / "meta.json").write_text(json.dumps(meta))
        try:
            os.replace(tmp, entry)
        except OSError:  # another process finished the same entry first; theirs is as good
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _open_entry(entry: Path, cfg: PreprocessConfig) -> CachedDataset:
    meta = json.loads((entry / "meta.json").read_text())
    images = np.load(entry / "images.npy", mmap_mode="r")
    crops = [CropInfo(tuple(c[0]), c[1], c[2], c[3]) for c in meta["crops"]]
    return CachedDataset(
        images=images,
        labels=meta["labels"],
        paths=meta["paths"],
        splits=meta["splits"],
        crops=crops,
        content_hashes=meta["hashes"],
        config=cfg,
        key=meta["key"],
        failed=[tuple(x) for x in meta["failed"]],
        directory=entry,
    )
