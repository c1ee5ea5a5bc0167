"""Find exact and near-duplicate MRI slices, including mirrored and re-contrasted copies.

Two measures, because neither alone works on MRI (both choices are backed by the real-data
figures in ``docs/audit.md``):

1. **Candidates: thumbnail correlation.** Each slice becomes a 32x32 thumbnail, normalised to
   zero mean and unit length, so the dot product of two thumbnails is their Pearson
   correlation: blind to brightness/contrast changes and to size (the whole image is resized).
   Every image is compared with every other one *and with its mirror* by one blocked matrix
   product; this is exhaustive, so unlike hash bucketing it cannot miss a pair. But adjacent
   slices of the same patient can correlate higher (0.99) than a re-contrasted copy (0.98).
2. **Confirmation: gradient-orientation agreement** at 160x160. A copy keeps every edge in
   place, whatever was done to its intensities (gamma, contrast stretch, sharpening), while an
   adjacent slice moves small structures. The measure is the magnitude-weighted mean cosine
   between the two images' gradient directions (weights ``sqrt(|ga| |gb|)``), which is
   invariant to linear intensity changes and nearly so to monotonic ones.

Exact duplicates are found separately by hashing the *decoded* pixels, so a file re-encoded
losslessly (PNG <-> BMP, RGB <-> grey) is an exact copy even though its bytes differ.
Duplicates are grouped into connected components ("duplicate groups").
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from braintumor.data.datasets import Sample
from braintumor.data.errors import ImageReadError
from braintumor.data.processes import process_pool
from braintumor.data.readers import read_image


@dataclass(frozen=True)
class DuplicateConfig:
    """Thresholds and sizes; defaults were chosen on the Kaggle set (see docs/audit.md)."""

    # Thumbnail correlation (max over direct and mirrored) that makes a pair a candidate.
    min_correlation: float = 0.90
    # Gradient-orientation agreement that confirms a candidate as a duplicate.
    min_agreement: float = 0.87
    thumb_size: int = 32
    detail_size: int = 160
    gradient_sigma: float = 1.0
    # Rows per block of the all-pairs correlation product (memory: rows x N floats, twice).
    block_rows: int = 1024

    def __post_init__(self) -> None:
        # Not <= 0: every pair of the dataset would become a candidate (N^2 of them).
        if not 0.0 < self.min_correlation <= 1.0:
            raise ValueError(f"min_correlation must lie in (0, 1], got {self.min_correlation}")
        if not -1.0 <= self.min_agreement <= 1.0:
            raise ValueError(f"min_agreement must lie in [-1, 1], got {self.min_agreement}")
        if self.thumb_size < 4 or self.detail_size < 8:
            raise ValueError("thumb_size must be >= 4 and detail_size >= 8")


@dataclass
class ImageRecord:
    """What one decode pass learns about a file (the audit reports these fields)."""

    path: str
    error: str | None = None
    size: tuple[int, int] | None = None  # (height, width) as stored
    mode: str | None = None
    format: str | None = None
    pixel_hash: str | None = None


@dataclass
class Fingerprints:
    """Per-image features of a list of files, row-aligned with ``records``.

    Unreadable files keep a row of zeros, which correlates with nothing, so indices stay
    aligned with the caller's sample list.
    """

    records: list[ImageRecord]
    thumbs: np.ndarray  # (N, T*T) float32, zero mean, unit length (zeros if unreadable)
    fields: np.ndarray  # (N, 2, S, S) int8 gradient vectors rescaled to length sqrt(|g|)
    weights: np.ndarray  # (N, S, S) uint8 their lengths, on the same per-image scale

    def __len__(self) -> int:
        return len(self.records)

    @property
    def readable(self) -> np.ndarray:
        return np.array([r.error is None for r in self.records], dtype=bool)


@dataclass
class DuplicatePairs:
    """Confirmed duplicate pairs ``i < j`` (parallel arrays)."""

    i: np.ndarray
    j: np.ndarray
    correlation: np.ndarray  # thumbnail correlation in the better orientation
    agreement: np.ndarray  # gradient-orientation agreement in that orientation
    mirrored: np.ndarray  # bool: matched as a left-right mirror
    exact: np.ndarray  # bool: identical decoded pixels
    candidates: int = 0  # pairs that passed the correlation stage

    def __len__(self) -> int:
        return len(self.i)


@dataclass
class DuplicateResult:
    pairs: DuplicatePairs
    groups: np.ndarray  # (N,) int64 group id per image; singletons get their own id
    fingerprints: Fingerprints = field(repr=False)


def correlation_vectors(v: np.ndarray) -> np.ndarray:
    """Flatten each image to zero mean and unit length, so that the dot product of two rows is
    their Pearson correlation (also used by ``benchmarks/nearest_training_slice.py``)."""
    v = v.astype(np.float32).reshape(len(v), -1)
    v = v - v.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(v, axis=1, keepdims=True)
    # A flat image has no pattern to correlate: leave it all zeros rather than divide by 0.
    return np.divide(v, norm, out=np.zeros_like(v), where=norm > 1e-6)


def fingerprint_pixels(
    pixels: np.ndarray, cfg: DuplicateConfig
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Thumbnail (T, T) float32, gradient field (2, S, S) int8 and its weights (S, S) uint8.

    Box filtering averages every source pixel, so thumbnails of a slice stored at different
    sizes agree. Gradient vectors are rescaled to length ``sqrt(|g|)``: then one dot product
    per image pair gives the numerator of the weighted cosine and the dot product of the
    lengths its denominator (see module docstring).
    """
    img = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8))
    box = Image.Resampling.BOX
    thumb = np.asarray(img.resize((cfg.thumb_size, cfg.thumb_size), box), np.float32)
    detail = np.asarray(img.resize((cfg.detail_size, cfg.detail_size), box), np.float32)
    # Smoothing once and taking central differences costs half of two derivative-of-Gaussian
    # filters and gives the same directions to well within the threshold's margin.
    smooth = ndimage.gaussian_filter(detail, cfg.gradient_sigma, truncate=3.0)
    gy, gx = np.gradient(smooth)
    mag = np.hypot(gx, gy)
    inv_root = np.zeros_like(mag)
    np.power(mag, -0.5, out=inv_root, where=mag > 1e-6)
    u = np.stack([gx * inv_root, gy * inv_root])
    peak = float(np.abs(u).max())
    # int8 keeps 7019 images x 2 x 160 x 160 at 360 MB; a per-image scale cancels out of the
    # agreement ratio, and 1/127 quantisation moves it by far less than the threshold gap.
    factor = 127.0 / peak if peak > 0 else 0.0
    field = np.round(u * factor).astype(np.int8)
    # Lengths of the quantised vectors themselves (<= 127 * sqrt(2) < 256), rounded, not
    # truncated: a biased length would pull every agreement down.
    weight = np.round(np.hypot(field[0], field[1], dtype=np.float32)).astype(np.uint8)
    return thumb, field, weight


def _pixel_hash(pixels: np.ndarray) -> str:
    h = hashlib.sha256(f"{pixels.shape}".encode())
    h.update(np.ascontiguousarray(pixels).tobytes())
    return h.hexdigest()


def _fingerprint_file(args: tuple[str | np.ndarray, str, DuplicateConfig]):
    source, name, cfg = args
    rec = ImageRecord(name)
    try:
        loaded = read_image(source, name=name)
        feats = fingerprint_pixels(loaded.pixels, cfg)
    except ImageReadError as exc:
        rec.error = exc.reason
        return rec, None
    except Exception as exc:  # one broken file must never take the audit down
        rec.error = f"{exc.__class__.__name__}: {exc}"
        return rec, None
    m = loaded.meta
    rec.size, rec.mode, rec.format = m.original_size, m.mode, m.format
    rec.pixel_hash = _pixel_hash(loaded.pixels)
    return rec, feats


def _job(k: int, item, cfg: DuplicateConfig) -> tuple[str | np.ndarray, str, DuplicateConfig]:
    if isinstance(item, np.ndarray):
        return item, f"<array {k}>", cfg
    path = str(item.path if isinstance(item, Sample) else item)
    return path, path, cfg


def compute_fingerprints(
    items: Sequence[Sample | str | os.PathLike | np.ndarray],
    config: DuplicateConfig | None = None,
    workers: int | None = None,
) -> Fingerprints:
    """Decode every file once (in parallel) and keep what the duplicate search needs.

    ``items`` are samples, paths, or already decoded 2-D arrays (named ``<array k>``).
    """
    cfg = config or DuplicateConfig()
    jobs = [_job(k, item, cfg) for k, item in enumerate(items)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    n, t, s = len(jobs), cfg.thumb_size, cfg.detail_size
    thumbs = np.zeros((n, t, t), np.float32)
    fields = np.zeros((n, 2, s, s), np.int8)
    weights = np.zeros((n, s, s), np.uint8)
    records: list[ImageRecord] = []

    def collect(results) -> None:
        # Results are copied into the arrays as they arrive, so no second full copy piles up.
        for k, (rec, feats) in enumerate(results):
            records.append(rec)
            if feats is not None:
                thumbs[k], fields[k], weights[k] = feats

    if workers > 1 and n > 64:
        with process_pool(workers) as pool:
            collect(pool.map(_fingerprint_file, jobs, chunksize=64))
    else:
        collect(map(_fingerprint_file, jobs))
    return Fingerprints(records, correlation_vectors(thumbs), fields, weights)


def _candidates(fp: Fingerprints, cfg: DuplicateConfig):
    """All pairs i < j whose direct or mirrored thumbnail correlation reaches the threshold."""
    t = cfg.thumb_size
    a = fp.thumbs
    # Mirroring is a permutation of pixels, so a mirrored thumbnail stays zero-mean/unit-length.
    m = np.ascontiguousarray(a.reshape(-1, t, t)[:, :, ::-1].reshape(len(a), -1))
    out_i, out_j, out_c, out_m = [], [], [], []
    for start in range(0, len(a), cfg.block_rows):
        block = a[start:start + cfg.block_rows]
        direct = block @ a.T
        mirror = block @ m.T
        best = np.maximum(direct, mirror)
        rows, cols = np.nonzero(best >= cfg.min_correlation)
        rows_abs = rows + start
        keep = rows_abs < cols
        rows, cols, rows_abs = rows[keep], cols[keep], rows_abs[keep]
        out_i.append(rows_abs)
        out_j.append(cols)
        out_c.append(best[rows, cols])
        out_m.append(mirror[rows, cols] > direct[rows, cols])
    cat = np.concatenate
    return cat(out_i), cat(out_j), cat(out_c).astype(np.float32), cat(out_m)


def orientation_agreement(fp: Fingerprints, i: np.ndarray, j: np.ndarray,
                          mirrored: np.ndarray, batch: int = 256) -> np.ndarray:
    """Weighted gradient-direction cosine of image pairs (see module docstring).

    For a mirrored pair, image ``j`` is compared reflected: columns reversed and its x
    component negated, done on strided views rather than copies.
    """
    out = np.zeros(len(i), np.float32)
    for flip in (False, True):
        rows = np.flatnonzero(mirrored == flip)
        for s in range(0, len(rows), batch):
            r = rows[s:s + batch]
            a = fp.fields[i[r]].astype(np.float32)
            b = fp.fields[j[r]].astype(np.float32)
            wa = fp.weights[i[r]].astype(np.float32)
            wb = fp.weights[j[r]].astype(np.float32)
            if flip:
                b, wb = b[..., ::-1], wb[..., ::-1]
            per_axis = np.einsum("pcyx,pcyx->pc", a, b)
            num = per_axis[:, 1] - per_axis[:, 0] if flip else per_axis.sum(axis=1)
            den = np.einsum("pyx,pyx->p", wa, wb)
            out[r] = np.divide(num, den, out=np.zeros_like(num), where=den > 0)
    return np.clip(out, -1.0, 1.0)


def find_duplicate_pairs(fp: Fingerprints, config: DuplicateConfig | None = None) -> DuplicatePairs:
    """Exact pairs (same decoded pixels) plus candidates confirmed by orientation agreement."""
    cfg = config or DuplicateConfig()
    ci, cj, cc, cm = _candidates(fp, cfg)
    hashes = np.array([r.pixel_hash or f"<unreadable {k}>" for k, r in enumerate(fp.records)])
    agree = orientation_agreement(fp, ci, cj, cm)
    exact = hashes[ci] == hashes[cj]
    keep = exact | (agree >= cfg.min_agreement)
    # Identical pixels match directly, even when a nearly symmetric slice made the mirrored
    # correlation win by a rounding error.
    mirrored = cm[keep] & ~exact[keep]
    agree[exact] = 1.0
    cc[exact] = 1.0
    pairs = DuplicatePairs(ci[keep], cj[keep], cc[keep], agree[keep], mirrored, exact[keep],
                           candidates=len(ci))
    return _add_missing_exact_pairs(pairs, hashes, fp.readable)


def _add_missing_exact_pairs(pairs: DuplicatePairs, hashes: np.ndarray,
                             readable: np.ndarray) -> DuplicatePairs:
    """Identical images the correlation stage missed (a flat thumbnail correlates with
    nothing; a threshold of 1.0 can lose to rounding) are still exact duplicates."""
    missing = []
    seen = {(int(a), int(b)) for a, b in zip(pairs.i, pairs.j, strict=True)}
    by_hash: dict[str, list[int]] = {}
    for k in np.flatnonzero(readable):
        by_hash.setdefault(hashes[k], []).append(int(k))
    for members in by_hash.values():
        for x in range(len(members)):
            for y in range(x + 1, len(members)):
                if (members[x], members[y]) not in seen:
                    missing.append((members[x], members[y]))
    if not missing:
        return pairs
    fi, fj = (np.array(v, dtype=pairs.i.dtype) for v in zip(*missing, strict=True))
    ones = np.ones(len(fi), np.float32)
    no = np.zeros(len(fi), bool)
    return DuplicatePairs(
        np.concatenate([pairs.i, fi]), np.concatenate([pairs.j, fj]),
        np.concatenate([pairs.correlation, ones]), np.concatenate([pairs.agreement, ones]),
        np.concatenate([pairs.mirrored, no]), np.concatenate([pairs.exact, ~no]),
        candidates=pairs.candidates,
    )


def group_ids(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected components of the duplicate graph; scipy does the union-find for us."""
    graph = coo_matrix((np.ones(len(i), np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def find_duplicate_groups(fp: Fingerprints,
                          config: DuplicateConfig | None = None) -> DuplicateResult:
    """Pairs and duplicate groups of already fingerprinted images."""
    pairs = find_duplicate_pairs(fp, config)
    return DuplicateResult(pairs, group_ids(len(fp), pairs.i, pairs.j), fp)


def duplicate_groups(
    samples_or_paths: Sequence[Sample | str | os.PathLike | np.ndarray] | Path,
    config: DuplicateConfig | None = None,
    workers: int | None = None,
) -> np.ndarray:
    """One duplicate-group id per sample (same order), for duplicate-aware splitting.

    Unreadable files get a group of their own, so callers can still split every sample.
    """
    if isinstance(samples_or_paths, (str, os.PathLike)):
        raise TypeError("duplicate_groups takes a list of samples or paths, not a single path")
    fp = compute_fingerprints(list(samples_or_paths), config, workers)
    return find_duplicate_groups(fp, config).groups
