"""What an explanation costs next to a prediction of the same image, on this CPU.

The target (issue): one Grad-CAM explanation costs at most 3x one prediction. Measured on one
image at a time, model in eval mode, after ``--warmup`` calls, median of ``--runs``; the two
sides of each ratio are timed alternately on the same image, so load from other jobs on the
machine hits both alike (the absolute milliseconds still move with the load; the ratio much
less).

- ``model``: preprocessed image -> logits (``model(x)`` under ``inference_mode``) versus
  preprocessed image -> logits + Grad-CAM map (``Explainer.explain_batch``: one forward, one
  backward through the head, upsampling, normalisation);
- ``e2e``: file path -> calibrated probabilities (``Predictor.predict_one``, the public
  prediction path) versus file path -> ``Explanation`` (read, preprocess, forward + backward,
  map back to the file's geometry, coloured overlay: ``Explainer.explain``);
- ``panel_png``: rendering and writing the labelled 3-panel PNG (what ``braintumor explain``
  adds per image), for information;
- the other methods (model side only, fewer runs): they cost many forward passes by design.

Both sides use the same channels-last copy of the model that the CLI and the Predictor use.
Without a bundled model (and no ``--model``), a freshly initialised braintumor-net at the
default size is measured: same architecture and FLOPs, hence the same time; the JSON says so.

    OMP_NUM_THREADS=1 python benchmarks/explain_speed.py --data $DATA
"""

from __future__ import annotations

import argparse
import dataclasses
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

TARGET_RATIO = 3.0
OTHER_METHODS = ("gradcam++", "guided-gradcam", "integrated-gradients", "occlusion")




def _files(data: str | None, n: int, tmp: Path) -> tuple[list[str], str]:
    if data and Path(data).is_dir():
        from braintumor.data.datasets import discover

        index = discover(data)
        samples = index.split("test") or index.samples
        step = max(1, len(samples) // n)
        files = [str(s.path) for s in samples[::step][:n]]
        return files, f"{len(files)} scans from {index.root}"
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from PIL import Image

    from tests.conftest import make_slice

    files = []
    for i in range(n):
        path = tmp / f"synthetic_{i}.png"
        Image.fromarray(make_slice(224, i, (0.35, 0.35))).save(path)
        files.append(str(path))
    return files, f"{n} synthetic 224x224 slices (no dataset given)"


def _alternate(fns: dict, items: list, runs: int, warmup: int) -> dict[str, list[float]]:
    """Time each function on the same item in turn, cycling through the items."""
    for i in range(warmup):
        for fn in fns.values():
            fn(items[i % len(items)])
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(runs):
        item = items[i % len(items)]
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(item)
            times[name].append(time.perf_counter() - t0)
    return times


def _stats(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"median_ms": round(float(np.median(ms)), 3),
            "p90_ms": round(float(np.percentile(ms, 90)), 3), "runs": len(ms)}


def run(args) -> dict:
    import torch

    from braintumor.explain import Explainer
    from braintumor.inference.predictor import Predictor
    from braintumor.models import load_bundle
    from braintumor.models.runtime import inference_copy

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        bundle, model_note = model_source(args.model)
        files, data_note = _files(args.data, 16, tmp)
        loaded = load_bundle(bundle)
        fast = dataclasses.replace(loaded, model=inference_copy(loaded.model))
        explainer = Explainer(fast)
        predictor = Predictor.from_loaded(loaded)
        prepared = [explainer.prepare(f)[1].image for f in files]
        tensors = [torch.from_numpy(p).float().div(255)[None, None] for p in prepared]
        model = fast.model

        def forward(i: int):
            with torch.inference_mode():
                return model(tensors[i])

        idx = list(range(len(files)))
        model_t = _alternate({"predict": forward,
                              "gradcam": lambda i: explainer.explain_batch(prepared[i][None])},
                             idx, args.runs, args.warmup)
        e2e_t = _alternate({"predict": lambda i: predictor.predict_one(files[i]),
                            "gradcam": lambda i: explainer.explain(files[i])},
                           idx, args.runs, args.warmup)
        example = explainer.explain(files[0])
        panel_t = _alternate({"panel_png": lambda i: example.save(tmp / f"p{i}.png")},
                             idx, max(5, args.runs // 4), 1)
        others = {}
        for method in OTHER_METHODS:
            runs = max(3, args.runs // (10 if method in ("occlusion",) else 4))
            t = _alternate({method: lambda i, m=method: explainer.explain_batch(
                prepared[i][None], m)}, idx, runs, 1)
            others[method] = _stats(t[method])
    load_after = os.getloadavg()

    def side(times):
        p, g = _stats(times["predict"]), _stats(times["gradcam"])
        ratio = g["median_ms"] / p["median_ms"]
        return {"predict": p, "gradcam": g, "ratio": round(ratio, 3),
                "target_ratio": TARGET_RATIO, "meets_target": bool(ratio <= TARGET_RATIO)}

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": "python benchmarks/explain_speed.py " + " ".join(sys.argv[1:]),
        "model": {"name": loaded.name, "checksum": loaded.checksum, "source": model_note,
                  "image_size": loaded.preprocess.image_size, "layer": explainer.layer_name},
        "images": data_note,
        "threads": args.threads,
        "machine": {"cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "python": platform.python_version(),
                    "torch": torch.__version__},
        "load_average": {"before": list(load_before), "after": list(load_after),
                         "note": "other jobs were running on this shared machine"},
        "model_only": side(model_t),
        "e2e": side(e2e_t),
        "panel_png": _stats(panel_t["panel_png"]),
        "other_methods_model_only": others,
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", help="bundle (default: bundled model, else a fresh one)")
    p.add_argument("--data", default=os.environ.get("DATA"), help="dataset for real images")
    p.add_argument("--runs", type=int, default=60)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(Path(__file__).parent / "results" / "explain_speed.json"))
    args = p.parse_args(argv)
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    for key in ("model_only", "e2e"):
        s = report[key]
        print(f"{key:<11} predict {s['predict']['median_ms']:7.2f} ms   Grad-CAM "
              f"{s['gradcam']['median_ms']:7.2f} ms   ratio {s['ratio']:.2f} "
              f"(target <= {TARGET_RATIO:g}: {'met' if s['meets_target'] else 'MISSED'})")
    print(f"panel PNG  {report['panel_png']['median_ms']:.2f} ms")
    for m, s in report["other_methods_model_only"].items():
        print(f"{m:<22} {s['median_ms']:9.2f} ms")
    print(f"wrote {args.out}")
    return 0 if report["model_only"]["meets_target"] and report["e2e"]["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
