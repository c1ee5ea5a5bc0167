"""Cold-start time of ``braintumor evaluate`` on the Testing split, report included.

Cold start means what a new user meets: a new process (imports and model loading counted)
and a fresh, empty decoded-image cache (``BRAINTUMOR_CACHE`` pointed at a new temporary
folder), so every JPEG is decoded and, without ``--audit``, the dataset audit runs too. A
second, warm run (same cache) shows what the cache saves. Wall time is measured around the
subprocess; the per-stage split comes from the ``timings_s`` the command writes into
metrics.json.

    python benchmarks/evaluate_speed.py --data ../shared/datasets/brain-tumor-mri

Writes ``benchmarks/results/evaluate_speed.json``. Target: under 60 s cold on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET_S = 60.0


def run_evaluate(args: argparse.Namespace, cache: Path, out: Path) -> tuple[float, dict]:
    """Wall seconds of one ``braintumor evaluate`` subprocess, and its metrics.json."""
    cmd = [sys.executable, "-m", "braintumor", "evaluate", "--data", args.data,
           "--split", args.split, "--out", str(out)]
    if args.model:
        cmd += ["--model", args.model]
    if args.audit:
        cmd += ["--audit", args.audit]
    env = {**os.environ, "BRAINTUMOR_CACHE": str(cache)}
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"evaluate failed ({proc.returncode}):\n{proc.stderr}")
    print(proc.stdout.strip())
    return wall, json.loads((out / "metrics.json").read_text())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", default=os.environ.get("DATA"), help="dataset root (default $DATA)")
    ap.add_argument("--model", help="model bundle or run dir (default: the bundled model)")
    ap.add_argument("--split", default="Testing")
    ap.add_argument("--audit", help="audit JSON (default: the audit runs inside the timing)")
    ap.add_argument("--out", default=str(HERE / "results" / "evaluate_speed.json"))
    args = ap.parse_args(argv)
    if not args.data:
        ap.error("--data (or $DATA) is required")

    with tempfile.TemporaryDirectory(prefix="braintumor-eval-bench-") as tmp:
        cache = Path(tmp) / "cache"
        cold_s, m = run_evaluate(args, cache, Path(tmp) / "cold")
        print(f"cold: {cold_s:.1f} s  stages: {m['timings_s']}")
        warm_s, warm_m = run_evaluate(args, cache, Path(tmp) / "warm")
        print(f"warm: {warm_s:.1f} s  stages: {warm_m['timings_s']}")
        report_kb = (Path(tmp) / "cold" / "report.html").stat().st_size / 1024

    verdict = "meets" if cold_s < TARGET_S else "MISSES"
    print(f"cold start {cold_s:.1f} s ({verdict} the {TARGET_S:.0f} s target)")
    result = {
        "benchmark": "evaluate_speed",
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": str(args.data),
        "split": args.split,
        "images": m["n_images"],
        "model": {k: m["model"].get(k) for k in ("name", "checksum", "image_size", "gflops")},
        "audit": "given as JSON" if args.audit else "computed inside the timing",
        "cold_start_s": round(cold_s, 2),
        "cold_stages_s": m["timings_s"],
        "warm_s": round(warm_s, 2),
        "warm_stages_s": warm_m["timings_s"],
        "report_kb": round(report_kb, 1),
        "gallery_images": m.get("gallery", {}).get("n_shown"),
        "target_s": TARGET_S,
        "meets_target": cold_s < TARGET_S,
        "notes": "cold = new process + empty BRAINTUMOR_CACHE; warm = second run, same cache",
        "environment": {
            "python": platform.python_version(),
            "torch": __import__("torch").__version__,
            "cpu_count": os.cpu_count(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "load_average_at_end": os.getloadavg()[0],
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
