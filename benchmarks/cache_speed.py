"""How much an epoch gains from the decoded cache over decoding every JPEG again.

Naive pipeline: for every training image, read the file with Pillow and preprocess it (what
a ``Dataset.__getitem__`` that opens files does, every epoch). Cached pipeline: read every
row of the memory-mapped cache into contiguous batches, in a shuffled order, as training
does. Both produce the same uint8 arrays; the script checks that on a sample of rows.

    python benchmarks/cache_speed.py --data ../shared/datasets/brain-tumor-mri

Prints both times and their ratio and writes ``benchmarks/results/cache_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.data.errors import ImageReadError
from braintumor.data.preprocess import PreprocessConfig, preprocess
from braintumor.data.readers import read_image

HERE = Path(__file__).resolve().parent
TARGET_SPEEDUP = 20.0


def naive_epoch(paths: list[str], cfg: PreprocessConfig) -> tuple[float, int]:
    """Seconds to decode + preprocess every file once, one at a time; and failures."""
    failures = 0
    t0 = time.perf_counter()
    for p in paths:
        try:
            preprocess(read_image(p).pixels, cfg)
        except ImageReadError:
            failures += 1
    return time.perf_counter() - t0, failures


def cached_epoch(images: np.ndarray, batch_size: int, rng: np.random.Generator) -> float:
    """Seconds to copy every row of the memmap into contiguous batches, shuffled."""
    order = rng.permutation(len(images))
    t0 = time.perf_counter()
    checksum = 0
    for start in range(0, len(order), batch_size):
        # Sorted within a batch, as a sampler feeding a memmap should: same rows, fewer seeks.
        idx = np.sort(order[start : start + batch_size])
        batch = np.ascontiguousarray(images[idx])
        checksum += int(batch[:, 0, 0].sum())  # touch the data so nothing is elided
    elapsed = time.perf_counter() - t0
    assert checksum >= 0
    return elapsed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"), help="dataset root (default $DATA)")
    ap.add_argument("--split", default="train", help="which split to time (default: train)")
    ap.add_argument("--image-size", type=int, default=PreprocessConfig().image_size)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--epochs", type=int, default=5, help="cached epochs to time (median)")
    ap.add_argument("--workers", type=int, default=None, help="processes for the cache build")
    ap.add_argument("--limit", type=int, help="only the first N images (quick runs)")
    ap.add_argument("--cache-root", help="cache folder (default: a fresh temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "cache_speed.json"))
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("--data (or $DATA) is required")

    index = discover(args.data)
    samples = index.split(args.split) if index.splits else index.samples
    samples = samples[: args.limit] if args.limit else samples
    if not samples:
        ap.error(f"no images in split {args.split!r} of {args.data}")
    cfg = PreprocessConfig(image_size=args.image_size)
    paths = [str(s.path) for s in samples]
    print(f"{len(paths)} images from {args.data} ({args.split}), image_size={cfg.image_size}")

    with tempfile.TemporaryDirectory(prefix="braintumor-bench-") as tmp:
        cache_root = Path(args.cache_root) if args.cache_root else Path(tmp)
        t0 = time.perf_counter()
        cached = build_cache(samples, cfg, cache_root=cache_root, workers=args.workers)
        build_s = time.perf_counter() - t0
        print(f"cache build (one-off, workers={args.workers or 'auto'}): {build_s:.2f} s")

        naive_s, naive_failed = naive_epoch(paths, cfg)
        print(
            f"naive epoch (read + preprocess every file): {naive_s:.2f} s "
            f"({1000 * naive_s / len(paths):.2f} ms/image)"
        )

        rng = np.random.default_rng(0)
        epochs = [cached_epoch(cached.images, args.batch_size, rng) for _ in range(args.epochs)]
        cached_s = statistics.median(epochs)
        print(
            f"cached epoch (memmap rows, shuffled batches of {args.batch_size}): "
            f"{cached_s * 1000:.1f} ms (median of {args.epochs}: "
            f"{', '.join(f'{e * 1000:.1f}' for e in epochs)} ms)"
        )

        # Same pixels both ways, or the comparison means nothing.
        check = rng.choice(len(cached), size=min(20, len(cached)), replace=False)
        for row in check:
            fresh = preprocess(read_image(cached.paths[row]).pixels, cfg).image
            if not np.array_equal(fresh, cached.images[row]):
                print(f"MISMATCH: cached row {row} differs from {cached.paths[row]}")
                return 1
        n_cached, n_failed, cache_bytes = len(cached), len(cached.failed), cached.images.nbytes

    ratio = naive_s / cached_s
    verdict = "meets" if ratio >= TARGET_SPEEDUP else "MISSES"
    print(f"speed-up: {ratio:.0f}x ({verdict} the {TARGET_SPEEDUP:.0f}x target)")

    result = {
        "benchmark": "cache_speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": str(args.data),
        "split": args.split,
        "images": len(paths),
        "cached_images": n_cached,
        "failed_images": n_failed,
        "naive_failed_images": naive_failed,
        "image_size": cfg.image_size,
        "batch_size": args.batch_size,
        "cache_size_mb": round(cache_bytes / 2**20, 1),
        "cache_build_s": round(build_s, 3),
        "cache_build_workers": args.workers,
        "naive_epoch_s": round(naive_s, 3),
        "naive_ms_per_image": round(1000 * naive_s / len(paths), 3),
        "cached_epoch_s": round(cached_s, 5),
        "cached_epochs_s": [round(e, 5) for e in epochs],
        "speedup": round(ratio, 1),
        "target_speedup": TARGET_SPEEDUP,
        "meets_target": ratio >= TARGET_SPEEDUP,
        "notes": "cached epochs read a freshly built cache (warm OS page cache); single process",
        "environment": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "pillow": __import__("PIL").__version__,
            "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "machine": platform.machine(),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
