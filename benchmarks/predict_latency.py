"""Prediction latency and throughput on this CPU: PyTorch eager vs ONNX Runtime, side by side.

What is measured (all through the public ``Predictor``, so the figures are what users get):

- ``single_e2e``: one image, from a file path on disk to calibrated probabilities (read,
  decode, brain crop, resize, forward, softmax): p50 / p95 / mean over ``--runs`` calls
  after ``--warmup`` calls, cycling through different real files;
- ``single_model``: the forward pass alone on one preprocessed image;
- ``batch``: images/s at ``--batch-size``, model only and end to end from paths;
- ``gradcam_e2e``: one image from path to probabilities plus Grad-CAM heatmap and overlay
  (PyTorch weights; the ONNX graph has no gradients).

Without a bundled model, a freshly initialised braintumor-net at the default image size is
measured instead: same architecture, same FLOPs, so the same time; the JSON says which.

    OMP_NUM_THREADS=2 python benchmarks/predict_latency.py --data $DATA
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from _common import model_source  # benchmarks/ is on sys.path when run as a script

TARGETS_MS = {"single_e2e": 20.0, "gradcam_e2e": 60.0}


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
            "mean_ms": float(ms.mean()), "runs": len(ms)}


def _time_calls(fn, items: list, runs: int, warmup: int) -> list[float]:
    for i in range(warmup):
        fn(items[i % len(items)])
    out = []
    for i in range(runs):
        item = items[i % len(items)]
        t0 = time.perf_counter()
        fn(item)
        out.append(time.perf_counter() - t0)
    return out


def _throughput(fn, batch, repeats: int, n: int) -> float:
    fn(batch)  # warm-up (allocations, ORT arena)
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn(batch)
    return n * repeats / (time.perf_counter() - t0)


def _image_files(data: str | None, n: int, tmp: Path) -> tuple[list[str], str]:
    """Up to ``n`` real test scans, or synthetic 512x512 JPEGs when no dataset is at hand."""
    if data and Path(data).is_dir():
        from braintumor.data.datasets import discover

        index = discover(data)
        samples = index.split("test") or index.samples
        step = max(1, len(samples) // n)
        files = [str(s.path) for s in samples[::step][:n]]
        return files, f"{len(files)} scans from {index.root}"
    from PIL import Image

    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        yy, xx = np.mgrid[0:512, 0:512] / 512
        head = ((yy - 0.5) / 0.4) ** 2 + ((xx - 0.5) / 0.33) ** 2 <= 1
        img = np.where(head, 90 + rng.normal(0, 20, head.shape), 0).clip(0, 255).astype(np.uint8)
        path = tmp / f"synthetic_{i}.jpg"
        Image.fromarray(img).save(path, quality=90)
        files.append(str(path))
    return files, f"{n} synthetic 512x512 JPEGs (no dataset found)"




def _machine() -> dict:
    import onnxruntime
    import torch

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(),
            "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
            "python": platform.python_version(), "platform": platform.platform()}


def _measure(predictors: dict, files: list[str], prepared: list[np.ndarray], args) -> dict:
    """Every figure for each backend at the current thread setting."""
    batch = np.stack(prepared[: args.batch_size])
    results: dict[str, dict] = {}
    for name, pred in predictors.items():
        print(f"  {name} …", file=sys.stderr)
        r: dict[str, dict | float] = {}
        r["single_e2e"] = _percentiles(_time_calls(pred.predict_one, files, args.runs,
                                                   args.warmup))
        r["single_model"] = _percentiles(_time_calls(
            lambda im, p=pred: p.logits(im[None]), prepared, args.runs, args.warmup))
        repeats = max(3, args.runs // 20)
        r["batch_model_img_per_s"] = _throughput(pred.logits, batch, repeats, len(batch))
        r["batch_e2e_img_per_s"] = _throughput(
            lambda fs, p=pred: p.predict(fs, batch_size=args.batch_size),
            files[: args.batch_size], repeats, args.batch_size)
        results[name] = r
    print("  Grad-CAM …", file=sys.stderr)
    results["torch"]["gradcam_e2e"] = _percentiles(_time_calls(
        lambda f: predictors["torch"].predict_one(f, explain=True), files,
        args.gradcam_runs, args.warmup))
    return results


def run(args) -> dict:
    import torch

    from braintumor.data.preprocess import preprocess
    from braintumor.data.readers import read_image
    from braintumor.inference.predictor import Predictor
    from braintumor.models import load_bundle
    from braintumor.models.registry import model_info

    thread_counts = args.threads or sorted({1, os.cpu_count() or 1})
    load_before = os.getloadavg()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bundle, model_note = model_source(args.model)
        files, data_note = _image_files(args.data, max(args.batch_size, 32), tmp)
        loaded = load_bundle(bundle)
        info = model_info(loaded.model, loaded.preprocess.image_size)
        prepared = [preprocess(read_image(f).pixels, loaded.preprocess).image for f in files]
        torch_predictor = Predictor.from_loaded(loaded)
        for threads in thread_counts:
            print(f"measuring with {threads} thread(s) …", file=sys.stderr)
            torch.set_num_threads(threads)
            predictors = {
                "torch": torch_predictor,
                "onnx": Predictor.load(bundle, backend="onnx", threads=threads),
            }
            results[str(threads)] = _measure(predictors, files, prepared, args)
    load_after = os.getloadavg()
    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/predict_latency.py " + " ".join(sys.argv[1:]),
        "model": {"name": loaded.name, "checksum": loaded.checksum, "source": model_note,
                  "image_size": loaded.preprocess.image_size, "gflops": info.flops / 1e9,
                  "parameters": info.parameters},
        "images": data_note,
        "batch_size": args.batch_size,
        "machine": _machine(),
        "load_average": {"before": list(load_before), "after": list(load_after),
                         "note": "1/5/15-min load average; other jobs on the machine slow "
                                 "every figure down"},
        "targets_ms": TARGETS_MS,
        "results_by_threads": results,
    }


def table(report: dict) -> str:
    by_threads = report["results_by_threads"]
    rows = [
        ("single image, path -> probabilities, p50 (ms)", "single_e2e", "p50_ms"),
        ("single image, path -> probabilities, p95 (ms)", "single_e2e", "p95_ms"),
        ("single image, model only, p50 (ms)", "single_model", "p50_ms"),
        ("single image, model only, p95 (ms)", "single_model", "p95_ms"),
        (f"batch {report['batch_size']}, model only (img/s)", "batch_model_img_per_s", None),
        (f"batch {report['batch_size']}, path -> probabilities (img/s)", "batch_e2e_img_per_s",
         None),
        ("with Grad-CAM, path -> map + overlay, p50 (ms)", "gradcam_e2e", "p50_ms"),
        ("with Grad-CAM, path -> map + overlay, p95 (ms)", "gradcam_e2e", "p95_ms"),
    ]
    columns = [(t, b) for t in by_threads for b in ("torch", "onnx")]
    names = {"torch": "PyTorch", "onnx": "ONNX RT"}
    lines = [f"{'':<50}" + "".join(f" {names[b] + ' ' + t + 't':>11}" for t, b in columns)]
    for title, key, sub in rows:
        cells = []
        for t, backend in columns:
            v = by_threads[t][backend].get(key)
            v = v[sub] if isinstance(v, dict) and sub else v
            cells.append(f" {v:>11.1f}" if isinstance(v, float) else f" {'-':>11}")
        lines.append(f"{title:<50}" + "".join(cells))
    m = report["model"]
    lines.append(f"model: {m['name']} at {m['image_size']} px, {m['gflops']:.3f} GFLOPs "
                 f"({m['source']})")
    mach = report["machine"]
    lines.append(f"machine: {mach['cpu']}, {mach['cores']} cores (Nt = N threads); load "
                 f"average before {report['load_average']['before'][0]:.2f}, after "
                 f"{report['load_average']['after'][0]:.2f}")
    for t, res in by_threads.items():
        lines.append(
            f"targets at {t} thread(s): single < {TARGETS_MS['single_e2e']:.0f} ms p50 "
            f"(PyTorch {res['torch']['single_e2e']['p50_ms']:.1f}, ONNX "
            f"{res['onnx']['single_e2e']['p50_ms']:.1f}), Grad-CAM < "
            f"{TARGETS_MS['gradcam_e2e']:.0f} ms p50 ({res['torch']['gradcam_e2e']['p50_ms']:.1f})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", help="bundle to measure (default: the bundled model)")
    ap.add_argument("--data", default=os.environ.get("DATA"), help="dataset folder ($DATA)")
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--gradcam-runs", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, nargs="+", default=None,
                    help="thread counts to measure (default: 1 and all cores)")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" /
                                         "predict_latency.json"))
    args = ap.parse_args(argv)
    report = run(args)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(table(report))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
