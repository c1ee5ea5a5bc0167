"""The evidence behind the audit's default thresholds (docs/audit.md), recomputed on DATA.

Prints distributions on the real data:
1. each image's best thumbnail correlation with any other image (direct or mirrored);
2. gradient agreement of candidate pairs, overall and for a proxy of *adjacent slices of one
   patient*: tumour images whose file numbers differ by one (the figshare source numbers its
   slices in acquisition order). Adjacent slices are the hardest look-alikes; a threshold
   that no such pair passes (except real copies, near 1.0) does not pair distinct slices;
3. how far below the candidate threshold confirmed pairs reach;
4. how the leak count responds to the agreement threshold.
``--pairs-png DIR`` also saves side-by-side pictures of random pairs in agreement bands,
for looking at with one's own eyes (keep DIR outside the repository: they are dataset images).

Usage: ``python benchmarks/audit_thresholds.py [DATA] [--pairs-png DIR]``  (about 2 min)
"""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path

import numpy as np

from braintumor.data.datasets import discover
from braintumor.data.duplicates import (
    DuplicateConfig,
    _candidates,
    compute_fingerprints,
    group_ids,
    orientation_agreement,
)

FLOOR = 0.80  # candidate threshold of this study, well below the default


def _hist(values: np.ndarray, edges) -> str:
    counts, _ = np.histogram(values, bins=edges)
    return "  ".join(f"[{lo:.3g},{hi:.3g}):{n}" for lo, hi, n in
                     zip(edges[:-1], edges[1:], counts, strict=True))


def _adjacent_proxy(paths: list[str], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    names = [Path(p).stem for p in paths]
    num = np.array([int(m[-1]) if (m := re.findall(r"\d+", n)) else -10 for n in names])
    prefix = np.array([n.split("_")[0] for n in names])
    tumour = np.array([pre[-2:] in ("gl", "me", "pi") for pre in prefix])
    return (prefix[i] == prefix[j]) & (np.abs(num[i] - num[j]) == 1) & tumour[i]


def _save_pairs(paths, i, j, mirrored, agree, bands, out: Path, per_band: int = 8) -> None:
    from PIL import Image, ImageDraw

    from braintumor.data.readers import read_image

    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for lo, hi in bands:
        sel = np.flatnonzero((agree >= lo) & (agree < hi))
        tiles = []
        for k in rng.permutation(sel)[:per_band]:
            a = read_image(paths[i[k]]).pixels
            b = read_image(paths[j[k]]).pixels
            b = b[:, ::-1] if mirrored[k] else b
            row = [np.asarray(Image.fromarray(x).resize((200, 200))) for x in (a, b)]
            tile = Image.fromarray(np.concatenate([row[0], np.full((200, 4), 255, np.uint8),
                                                   row[1]], 1)).convert("RGB")
            draw = ImageDraw.Draw(tile)
            draw.text((2, 0), f"agreement {agree[k]:.3f}{' mirrored' if mirrored[k] else ''}",
                      fill=(255, 255, 0))
            draw.text((2, 188), f"{Path(paths[i[k]]).name}  {Path(paths[j[k]]).name}",
                      fill=(0, 255, 0))
            tiles.append(np.asarray(tile))
        if tiles:
            Image.fromarray(np.concatenate(tiles, 0)).save(out / f"pairs_{lo:.3f}_{hi:.3f}.png")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=os.environ.get("DATA"))
    ap.add_argument("--pairs-png", type=Path, help="save side-by-side pairs here")
    ap.add_argument("--workers", type=int, default=None)
    args = ap.parse_args()
    if not args.data:
        ap.error("pass DATA or set $DATA")
    cfg = DuplicateConfig()
    index = discover(args.data)
    paths = [str(s.path) for s in index.samples]
    fp = compute_fingerprints(index.samples, cfg, args.workers)

    a = fp.thumbs
    m = a.reshape(-1, cfg.thumb_size, cfg.thumb_size)[:, :, ::-1].reshape(len(a), -1)
    best = np.full(len(a), -1.0, np.float32)
    for s in range(0, len(a), 1024):
        c = np.maximum(a[s:s + 1024] @ a.T, a[s:s + 1024] @ m.T)
        c[np.arange(len(c)), np.arange(s, s + len(c))] = -1
        best[s:s + len(c)] = c.max(axis=1)
    print(f"1. best-match thumbnail correlation per image (n={len(best)}):")
    print("  ", _hist(best, [-1, 0.8, 0.85, 0.9, 0.95, 0.97, 0.98, 0.99, 0.995, 0.999, 1.0001]))

    i, j, corr, mir = _candidates(fp, DuplicateConfig(min_correlation=FLOOR))
    agree = orientation_agreement(fp, i, j, mir)
    main_stage = corr >= cfg.min_correlation
    adjacent = _adjacent_proxy(paths, i, j) & main_stage
    edges = np.round(np.arange(0.50, 1.0001, 0.02), 2)
    edges[-1] = 1.0001
    print(f"2. gradient agreement, pairs with correlation >= {cfg.min_correlation} "
          f"(n={main_stage.sum()}):")
    print("  ", _hist(agree[main_stage], edges))
    print(f"   adjacent-slice proxy pairs (n={adjacent.sum()}):")
    print("  ", _hist(agree[adjacent], edges))
    below = agree[adjacent & (agree < 0.95)]
    print(f"   highest proxy pair below 0.95: {below.max():.4f}" if len(below) else "")
    labels = np.array([s.label for s in index.samples])
    tumour = (labels[i] != "notumor") & (labels[j] != "notumor") & main_stage
    fine = [0.80, 0.82, 0.84, 0.85, 0.86, 0.87, 0.88, 0.90]
    print("   pairs per band, all / both images in tumour classes:")
    for lo, hi in zip(fine[:-1], fine[1:], strict=True):
        band = (agree >= lo) & (agree < hi) & main_stage
        print(f"   [{lo:.2f},{hi:.2f}): {band.sum()} / {(band & tumour).sum()}")

    low = ~main_stage
    print(f"3. pairs with correlation in [{FLOOR}, {cfg.min_correlation}): {low.sum()}, highest "
          f"agreement {agree[low].max():.4f}; lowest correlation of a confirmed pair: "
          f"{corr[main_stage & (agree >= cfg.min_agreement)].min():.4f}")

    hashes = np.array([r.pixel_hash or f"?{k}" for k, r in enumerate(fp.records)])
    exact = hashes[i] == hashes[j]
    splits = np.array([s.split for s in index.samples])
    print("4. min_agreement -> confirmed pairs, test images with a duplicate in train:")
    for thr in (0.84, 0.85, 0.86, 0.87, 0.88, 0.90, 0.92, 0.95):
        keep = main_stage & (exact | (agree >= thr))
        g = group_ids(len(paths), i[keep], j[keep])
        train_groups = set(g[splits == "train"].tolist())
        leaked = sum(1 for k in np.flatnonzero(splits == "test") if g[k] in train_groups)
        print(f"   {thr:.2f}: {keep.sum()} pairs, {leaked} leaked test images")

    if args.pairs_png:
        bands = [(0.83, 0.85), (0.85, 0.87), (0.87, 0.89), (0.89, 0.92)]
        sel = main_stage
        _save_pairs(paths, i[sel], j[sel], mir[sel], agree[sel], bands, args.pairs_png)
        print(f"pair pictures written to {args.pairs_png}")


if __name__ == "__main__":
    main()
