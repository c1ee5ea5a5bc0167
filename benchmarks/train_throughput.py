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

Every pipeline runs in a long-lived process of its own (no pipeline shares another's heap or
thread pools), set up once; the script then asks each in turn for a short chunk of timed steps
(``--steps`` after ``--warmup`` untimed ones), round after round, with the order reversed
every other round, while the others wait idle. The conventional pipeline's DataLoader workers
start and stop with each of its chunks, so none decodes ahead while another pipeline is
timed (their start-up falls in the untimed steps).

    python benchmarks/train_throughput.py --data ../shared/datasets/brain-tumor-mri

Results go to benchmarks/results/train_throughput.json. This machine's speed drifts by tens
of per cent within minutes, so the pipelines of one round are timed seconds apart rather
than minutes: the figure of each pipeline is the median over rounds of its chunks' median
step times, and the speed-up is the median of the per-round speed-ups.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
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


class _Stepper:
    """One pipeline's model and optimiser, kept across chunks of timed steps."""

    def __init__(self, model, bf16: bool, augment=None, channels_last: bool = False):
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.opt = torch.optim.AdamW(self.model.parameters(), 1e-3)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.bf16, self.augment, self.channels_last = bf16, augment, channels_last
        self.model.train()

    def steps(self, batches, n: int) -> list[float]:
        """Per-step wall times (data fetch + augmentation + forward + backward + step)."""
        times = []
        it = iter(batches)
        for _ in range(n):
            t0 = time.perf_counter()
            x, y = next(it)
            if x.dtype == torch.uint8:
                x = x.float().div_(255.0).unsqueeze(1)
            if self.augment is not None:
                x = self.augment(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
                loss = self.loss_fn(self.model(x).float(), y)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            times.append(time.perf_counter() - t0)
        return times


def _forever(loader):
    while True:
        yield from loader


def _pipeline(args, train_cfg, name: str) -> tuple[Callable[[], float], dict]:
    """Set one pipeline up in this (child) process: a function that times one chunk (its
    median step time over ``--steps`` steps after ``--warmup`` untimed ones), and the
    pipeline's settings."""
    torch.set_num_threads(args.threads)
    index = discover(args.data)
    train = index.split("train")
    classes = list(index.classes)
    torch.manual_seed(0)
    model = create_model(train_cfg.model, image_size=args.image_size, **train_cfg.model_kwargs)

    if name == "conventional":
        # PIL decode + per-image augmentation in DataLoader workers, fp32. One epoch of a
        # fixed random subset per chunk, each with workers of its own: they start with the
        # chunk and exit with it, so none decodes ahead while another pipeline is timed.
        warm = args.warmup + 2 * args.workers  # also the workers' first prefetched batches
        n = args.batch_size * (args.steps + warm)
        rng = np.random.default_rng(0)
        pick = rng.choice(len(train), size=min(n, len(train)), replace=False)
        ds = ConventionalDataset([str(train[i].path) for i in pick],
                                 [classes.index(train[i].label) for i in pick], args.image_size)
        loader = DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                            num_workers=args.workers)
        stepper = _Stepper(model, bf16=False)

        def chunk() -> float:
            return statistics.median(stepper.steps(loader, args.steps + warm)[warm:])

        return chunk, {"precision": "32-true", "channels_last": False}
    # Ours: uint8 rows from the cache, batch augmentation, as the trainer runs.
    precision, channels_last = OURS[name]
    bf16 = (args.precision if precision == "auto" else precision) == "bf16-mixed"
    channels_last = train_cfg.channels_last if channels_last is None else channels_last
    cached = build_cache(train, PreprocessConfig(image_size=args.image_size))
    images = torch.from_numpy(np.array(cached.images))
    targets = torch.from_numpy(cached.label_indices(classes))
    batches = _forever(DataLoader(torch.utils.data.TensorDataset(images, targets),
                                  batch_size=args.batch_size, shuffle=True, drop_last=True))
    augment = BatchAugment(AugmentConfig()).train()  # the published recipe: see the docstring
    stepper = _Stepper(model, bf16, augment, channels_last=channels_last)

    def chunk() -> float:
        return statistics.median(stepper.steps(batches, args.steps + args.warmup)[args.warmup:])

    return chunk, {"precision": "bf16-mixed" if bf16 else "32-true",
                   "channels_last": channels_last}


def _serve_child(args, train_cfg, name: str) -> None:
    """Child process: set the pipeline up, then time one chunk per ``run`` line on stdin,
    answering each with a JSON line; exit at end of input."""
    chunk, settings = _pipeline(args, train_cfg, name)
    print(json.dumps(settings), flush=True)
    for line in sys.stdin:
        if line.strip() == "run":
            print(json.dumps({"step_s": chunk()}), flush=True)


class _Child:
    """A pipeline's long-lived process, driven one chunk at a time over its pipes."""

    def __init__(self, argv: list[str], name: str):
        self.name = name
        self.stderr = tempfile.TemporaryFile("w+")  # a pipe nobody reads could fill and block
        self.proc = subprocess.Popen([sys.executable, __file__, *argv, "--child", name],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)
        self.settings = self._answer()

    def _answer(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.proc.kill()
            self.stderr.seek(0)
            raise SystemExit(f"timing {self.name} failed:\n{self.stderr.read()[-3000:]}")
        return json.loads(line)

    def chunk(self) -> float:
        self.proc.stdin.write("run\n")
        self.proc.stdin.flush()
        return self._answer()["step_s"]

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=120)
        self.stderr.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"), required=os.environ.get("DATA")
                    is None)
    ap.add_argument("--config", default=str(Path(__file__).resolve().parents[1] / "configs" /
                                             "braintumor-net.yaml"),
                    help="training config whose model (and model_kwargs) both pipelines train")
    ap.add_argument("--image-size", type=int, help="default: the config's image_size")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per chunk")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=8,
                    help="rounds of one chunk per pipeline, in turn (medians over rounds)")
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
        _serve_child(args, train_cfg, args.child)
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

    children: dict[str, _Child] = {}
    per_round: dict[str, list[float]] = {name: [] for name in names}
    try:
        for name in names:  # set up one after another, then all kept alive
            children[name] = _Child(child_argv, name)
        for r in range(args.rounds):
            for name in names if r % 2 == 0 else names[::-1]:
                per_round[name].append(children[name].chunk())
                print(f"round {r + 1}: {name:24s} {args.batch_size / per_round[name][-1]:7.1f} "
                      "img/s", flush=True)
    finally:
        for child in children.values():
            child.close()
    settings = {name: child.settings for name, child in children.items()}
    results = {}
    for name in names:
        results[name] = {**settings[name], "median_step_s": statistics.median(per_round[name])}
    results["conventional"]["dataloader_workers"] = args.workers

    # The headline speed-up pairs pipelines timed seconds apart in the same round.
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
        "channels_last": train_cfg.channels_last, "timed_steps_per_chunk": args.steps,
        "method": "interleaved chunks, one long-lived process per pipeline",
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
