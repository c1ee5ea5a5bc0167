"""Training throughput: our pipeline against a conventional per-image one, side by side.

Both train the same model at the same image size and batch size for the same number of
steps (forward, backward, optimiser step, augmentation included); only the way images reach
the model differs:

- conventional (as the published notebooks do it): a ``Dataset`` that, per image, opens the
  JPEG with PIL, resizes it, applies a random rotation, flips and brightness change with
  PIL/numpy and converts it to a tensor, in DataLoader worker processes; fp32 training.
- ours: what ``braintumor train`` does with the training config: the decoded uint8 cache in
  memory, whole batches augmented on the training device (``braintumor.training.augment``),
  the precision it picks on this machine ("auto": bf16 autocast where the CPU supports it and
  it measured faster) and the config's memory format (``channels_last``). The augmentation is
  the published recipe (``AugmentConfig()`` defaults: rotation, zoom, shift, both flips,
  brightness/contrast), not the config's lighter one, so that ours does at least the
  conventional pipeline's augmentation work: a conservative comparison.

"ours-fp32" isolates the data pipeline from the precision choice; "ours-channels-first"
(when the config asks for channels_last) shows what the memory format alone gives.

    python benchmarks/train_throughput.py --data ../shared/datasets/brain-tumor-mri

Results go to benchmarks/results/train_throughput.json. On a shared machine the figures are
noisy, so the script times every pipeline once per round, in turn, for ``--rounds`` rounds,
and reports the median over rounds of each round's median step time; the speed-up is the
median of the per-round speed-ups (each pairs pipelines timed minutes apart).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch.utils.data import DataLoader, Dataset

from braintumor.data.cache import build_cache
from braintumor.data.datasets import discover
from braintumor.data.preprocess import PreprocessConfig
from braintumor.models import create_model
from braintumor.training.augment import BatchAugment
from braintumor.training.config import AugmentConfig, load_config
from braintumor.training.hardware import choose_cpu_precision, cpu_model

RESULTS = Path(__file__).resolve().parent / "results" / "train_throughput.json"


class ConventionalDataset(Dataset):
    """Per-image decode and augmentation in Python, the way the notebooks feed Keras/torch."""

    def __init__(self, paths: list[str], labels: list[int], size: int, seed: int = 0):
        self.paths, self.labels, self.size, self.seed = paths, labels, size, seed

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        rng = np.random.default_rng((self.seed, i, time.perf_counter_ns()))
        img = Image.open(self.paths[i]).convert("L").resize((self.size, self.size),
                                                           Image.BILINEAR)
        img = img.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR)
        img = ImageEnhance.Brightness(img).enhance(float(rng.uniform(0.9, 1.1)))
        img = ImageEnhance.Contrast(img).enhance(float(rng.uniform(0.9, 1.1)))
        arr = np.asarray(img, dtype=np.float32) / 255.0
        if rng.random() < 0.5:
            arr = arr[:, ::-1]
        return torch.from_numpy(arr.copy()).unsqueeze(0), self.labels[i]


def _train_steps(model, batches, steps: int, bf16: bool, augment=None,
                 channels_last: bool = False) -> list[float]:
    """Per-step wall times (data fetch + augmentation + forward + backward + step)."""
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(model.parameters(), 1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    model.train()
    times = []
    it = iter(batches)
    for _ in range(steps):
        t0 = time.perf_counter()
        x, y = next(it)
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0).unsqueeze(1)
        if augment is not None:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = loss_fn(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return times


def _forever(loader):
    while True:
        yield from loader


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"), required=os.environ.get("DATA")
                    is None)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" /
                                             "braintumor-net.yaml"),
                    help="training config whose model (and model_kwargs) both pipelines train")
    ap.add_argument("--image-size", type=int, help="default: the config's image_size")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=25, help="timed steps per pipeline")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of timing every pipeline in turn (medians over rounds)")
    # Default: every core for both, as each pipeline would run alone on this machine (the
    # conventional one's DataLoader workers then compete with its compute threads, as they
    # do in the notebooks; ours has no decoding left to compete).
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                    help="torch compute threads (both; default: all cores)")
    ap.add_argument("--workers", type=int, default=2, help="conventional DataLoader workers")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args()
    train_cfg = load_config(args.config)
    args.image_size = args.image_size or train_cfg.image_size
    channels_last = train_cfg.channels_last
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    index = discover(args.data)
    train = index.split("train")
    t0 = time.perf_counter()
    cached = build_cache(train, PreprocessConfig(image_size=args.image_size))
    cache_seconds = time.perf_counter() - t0
    classes = list(index.classes)
    labels = cached.label_indices(classes)
    n = args.batch_size * (args.steps + args.warmup)

    def model():
        torch.manual_seed(0)
        return create_model(train_cfg.model, image_size=args.image_size,
                            **train_cfg.model_kwargs)

    precision, probe = choose_cpu_precision(model, args.image_size, min(args.batch_size, 32))
    results = {}

    # Ours: uint8 rows from the cache, batch augmentation, auto precision (and fp32).
    images = torch.from_numpy(np.array(cached.images))
    targets = torch.from_numpy(labels)
    fast = DataLoader(torch.utils.data.TensorDataset(images, targets),
                      batch_size=args.batch_size, shuffle=True, drop_last=True)
    augment = BatchAugment(AugmentConfig()).train()  # the published recipe: see the docstring
    bf16 = precision == "bf16-mixed"
    variants = [("ours", bf16, channels_last), ("ours-fp32", False, channels_last)]
    if channels_last:
        variants.append(("ours-channels-first", bf16, False))

    # Conventional: PIL decode + per-image augmentation in DataLoader workers, fp32.
    rng = np.random.default_rng(0)
    pick = rng.choice(len(train), size=min(n, len(train)), replace=False)
    ds = ConventionalDataset([str(train[i].path) for i in pick],
                             [classes.index(train[i].label) for i in pick], args.image_size)
    slow = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                      num_workers=args.workers, persistent_workers=args.workers > 0)
    fast_batches, slow_batches = _forever(fast), _forever(slow)

    # Every round times every pipeline once, in turn, so that a slow spell of a shared machine
    # hits all of them rather than one; each figure is the median over rounds of the per-round
    # median step time, and the speed-up is also given per round.
    per_round: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    per_round["conventional"] = []
    for _ in range(args.rounds):
        for name, use_bf16, cl in variants:
            times = _train_steps(model(), fast_batches, args.steps + args.warmup, use_bf16,
                                 augment, channels_last=cl)
            per_round[name].append(statistics.median(times[args.warmup:]))
        # Its workers prefetch 2 batches each while the other pipelines run: not timed.
        warm = args.warmup + 2 * args.workers
        times = _train_steps(model(), slow_batches, args.steps + warm, False)
        per_round["conventional"].append(statistics.median(times[warm:]))
    for name, use_bf16, _ in variants:
        results[name] = {"precision": "bf16-mixed" if use_bf16 else "32-true",
                         "median_step_s": statistics.median(per_round[name])}
    results["conventional"] = {"precision": "32-true",
                               "median_step_s": statistics.median(per_round["conventional"]),
                               "dataloader_workers": args.workers}
    # The headline speed-up pairs pipelines timed minutes apart in the same round.
    round_speedups = [round(c / o, 2) for o, c in zip(per_round["ours"],
                                                      per_round["conventional"], strict=True)]
    round_same_precision = [round(c / o, 2) for o, c in zip(
        per_round["ours-fp32"], per_round["conventional"], strict=True)]
    for name, times_s in per_round.items():
        results[name]["images_per_second_per_round"] = [round(args.batch_size / t, 1)
                                                         for t in times_s]

    for r in results.values():
        r["images_per_second"] = round(args.batch_size / r["median_step_s"], 1)
        r["median_step_s"] = round(r["median_step_s"], 4)
    conv = results["conventional"]["images_per_second"]
    report = {
        "model": train_cfg.model, "model_kwargs": train_cfg.model_kwargs,
        "config": args.config, "image_size": args.image_size, "batch_size": args.batch_size,
        "channels_last": channels_last, "timed_steps": args.steps, "torch_threads": args.threads,
        "cpu": cpu_model(), "cpu_cores": os.cpu_count(), "torch": torch.__version__,
        "python": platform.python_version(), "precision_probe": probe,
        "cache_build_or_load_seconds": round(cache_seconds, 2), "rounds": args.rounds,
        "pipelines": results,
        "speedup_vs_conventional": round(statistics.median(round_speedups), 2),
        "speedup_per_round": round_speedups,
        "speedup_vs_conventional_same_precision": round(statistics.median(round_same_precision), 2),
        "speedup_same_precision_per_round": round_same_precision,
        "ratio_of_median_throughputs": round(results["ours"]["images_per_second"] / conv, 2),
        "load_average_after": list(os.getloadavg()),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    for name, r in results.items():
        print(f"{name:20s} {r['precision']:11s} {r['images_per_second']:8.1f} img/s")
    print(f"speed-up: {report['speedup_vs_conventional']}x "
          f"(same precision: {report['speedup_vs_conventional_same_precision']}x; "
          f"per round: {round_speedups}); "
          f"written to {out}")


if __name__ == "__main__":
    main()
