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

Every pipeline is timed in a process of its own, started afresh for each round, as each
would run alone: no pipeline inherits another's heap or thread pools, and the conventional
pipeline's DataLoader workers cannot prefetch while another pipeline is being timed.

    python benchmarks/train_throughput.py --data ../shared/datasets/brain-tumor-mri

Results go to benchmarks/results/train_throughput.json. On a shared machine the figures are
noisy, so the script times every pipeline once per round, in turn (the order reversed every
other round, so that a drifting machine favours no pipeline), for ``--rounds`` rounds, and
reports the median over rounds of each round's median step time; the speed-up is the median
of the per-round speed-ups (each pairs pipelines timed a minute or two apart).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
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

# name -> (precision ("auto": what the trainer picks), channels_last (None: the config's))
OURS = {
    "ours": ("auto", None),
    "ours-fp32": ("32-true", None),
    "ours-channels-first": ("auto", False),
}


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


def _time_pipeline(args, train_cfg, name: str) -> dict:
    """Time one pipeline in this (fresh) process; what a child prints."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    index = discover(args.data)
    train = index.split("train")
    classes = list(index.classes)

    def model():
        torch.manual_seed(0)
        return create_model(train_cfg.model, image_size=args.image_size,
                            **train_cfg.model_kwargs)

    if name == "conventional":
        # PIL decode + per-image augmentation in DataLoader workers, fp32.
        n = args.batch_size * (args.steps + args.warmup)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(train), size=min(n, len(train)), replace=False)
        ds = ConventionalDataset([str(train[i].path) for i in pick],
                                 [classes.index(train[i].label) for i in pick], args.image_size)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            num_workers=args.workers, persistent_workers=args.workers > 0)
        warm = args.warmup + 2 * args.workers  # the workers' first prefetched batches
        times = _train_steps(model(), _forever(loader), args.steps + warm, False)
        return {"step_s": statistics.median(times[warm:]), "precision": "32-true",
                "channels_last": False}
    # Ours: uint8 rows from the cache, batch augmentation, as the trainer runs.
    precision, channels_last = OURS[name]
    bf16 = (args.precision if precision == "auto" else precision) == "bf16-mixed"
    channels_last = train_cfg.channels_last if channels_last is None else channels_last
    cached = build_cache(train, PreprocessConfig(image_size=args.image_size))
    images = torch.from_numpy(np.array(cached.images))
    targets = torch.from_numpy(cached.label_indices(classes))
    loader = DataLoader(torch.utils.data.TensorDataset(images, targets),
                        batch_size=args.batch_size, shuffle=True, drop_last=True)
    augment = BatchAugment(AugmentConfig()).train()  # the published recipe: see the docstring
    times = _train_steps(model(), _forever(loader), args.steps + args.warmup, bf16, augment,
                         channels_last=channels_last)
    return {"step_s": statistics.median(times[args.warmup:]),
            "precision": "bf16-mixed" if bf16 else "32-true", "channels_last": channels_last}


def _run_child(argv: list[str], name: str) -> dict:
    cmd = [sys.executable, __file__, *argv, "--child", name]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"timing {name} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--precision", help=argparse.SUPPRESS)  # chosen once, passed to children
    ap.add_argument("--child", help=argparse.SUPPRESS)  # time one pipeline, print JSON
    args = ap.parse_args()
    train_cfg = load_config(args.config)
    args.image_size = args.image_size or train_cfg.image_size
    if args.child:
        print(json.dumps(_time_pipeline(args, train_cfg, args.child)))
        return
    torch.set_num_threads(args.threads)

    index = discover(args.data)
    t0 = time.perf_counter()
    build_cache(index.split("train"), PreprocessConfig(image_size=args.image_size))
    cache_seconds = time.perf_counter() - t0  # built here once; the children load it

    def model():
        torch.manual_seed(0)
        return create_model(train_cfg.model, image_size=args.image_size,
                            **train_cfg.model_kwargs)

    precision, probe = choose_cpu_precision(model, args.image_size, min(args.batch_size, 32))
    names = [n for n in OURS if train_cfg.channels_last or n != "ours-channels-first"]
    names.append("conventional")
    child_argv = ["--data", args.data, "--config", args.config, "--image-size",
                  str(args.image_size), "--batch-size", str(args.batch_size), "--steps",
                  str(args.steps), "--warmup", str(args.warmup), "--threads", str(args.threads),
                  "--workers", str(args.workers), "--precision", precision]

    per_round: dict[str, list[float]] = {name: [] for name in names}
    settings: dict[str, dict] = {}
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            res = _run_child(child_argv, name)
            per_round[name].append(res.pop("step_s"))
            settings[name] = res
            print(f"round {r + 1}: {name:24s} {args.batch_size / per_round[name][-1]:7.1f} "
                  "img/s", flush=True)
    results = {}
    for name in names:
        results[name] = {**settings[name], "median_step_s": statistics.median(per_round[name])}
    results["conventional"]["dataloader_workers"] = args.workers

    # The headline speed-up pairs pipelines timed minutes apart in the same round.
    def paired(a: str, b: str = "conventional") -> list[float]:
        return [round(c / o, 2) for o, c in zip(per_round[a], per_round[b], strict=True)]

    round_speedups = paired("ours")
    round_same_precision = paired("ours-fp32")
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
        "channels_last": train_cfg.channels_last, "timed_steps": args.steps,
        "torch_threads": args.threads,
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
        print(f"{name:24s} {r['precision']:11s} {r['images_per_second']:8.1f} img/s")
    print(f"speed-up: {report['speedup_vs_conventional']}x "
          f"(same precision: {report['speedup_vs_conventional_same_precision']}x; "
          f"per round: {round_speedups}); "
          f"written to {out}")


if __name__ == "__main__":
    main()
