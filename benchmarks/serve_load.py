"""Load test of ``braintumor serve``: N concurrent clients on loopback for a fixed time.

Starts the real server (uvicorn, 127.0.0.1, its own process) with the bundled model or
``--model``, then has ``--clients`` threads post real test images to ``/v1/predict`` for
``--duration`` seconds. Every request must succeed; throughput and latency percentiles go to
``benchmarks/results/serve_load.json`` and to stdout. Exits 1 if any request failed.

    python benchmarks/serve_load.py --data $DATA --clients 16 --duration 30

The run is bounded twice: by time, and by ``--max-requests`` per client, so it always stops
on its own; the server is stopped (SIGINT, then SIGKILL) however the run ends.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "brain-tumor-mri"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_load.json"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".dcm"}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--data", default=os.environ.get("DATA", str(DEFAULT_DATA)),
                   help="dataset folder; images come from its Testing split (default: $DATA)")
    p.add_argument("--split", default="Testing")
    p.add_argument("--images", type=int, default=64, help="distinct images to cycle through")
    p.add_argument("--clients", type=int, default=16)
    p.add_argument("--duration", type=float, default=30.0, help="seconds of measured load")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load first")
    p.add_argument("--max-requests", type=int, default=100_000, help="per client, a safety cap")
    p.add_argument("--route", choices=["predict", "explain"], default="predict")
    p.add_argument("--workers", type=int, default=1, help="passed to braintumor serve")
    p.add_argument("--timeout", type=float, default=60.0, help="per request, seconds")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    return p.parse_args(argv)


def pick_images(root: Path, n: int) -> list[tuple[str, bytes]]:
    """``n`` images spread evenly over the classes, in a fixed order (reproducible runs)."""
    if not root.is_dir():
        raise SystemExit(f"no images: {root} does not exist (pass --data or set DATA)")
    per_class = [sorted(p for p in d.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
                 for d in sorted(root.iterdir()) if d.is_dir()]
    per_class = [files for files in per_class if files]
    if not per_class:
        raise SystemExit(f"no images under {root}")
    chosen: list[Path] = []
    for i in range(n):
        files = per_class[i % len(per_class)]
        chosen.append(files[(i // len(per_class)) * 7 % len(files)])
    return [(p.name, p.read_bytes()) for p in chosen]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``braintumor serve`` in a child process, stopped on exit whatever happens."""

    def __init__(self, args: argparse.Namespace):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "braintumor", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--workers", str(args.workers)]
        if args.model:
            cmd += ["--model", args.model]
        cmd += list(getattr(args, "serve_args", None) or [])
        self.log = tempfile.NamedTemporaryFile("w+", prefix="serve-load-", suffix=".log",
                                               delete=False)
        env = {k: v for k, v in os.environ.items() if k != "BRAINTUMOR_API_KEY"}
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout: float = 180.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.tail()}")
            try:
                r = httpx.get(self.url + "/health", timeout=2.0)
                if r.status_code == 200:
                    return r.json()
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server not ready after {timeout} s:\n{self.tail()}")

    def tail(self, n: int = 30) -> str:
        self.log.flush()
        return "".join(Path(self.log.name).read_text().splitlines(True)[-n:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        Path(self.log.name).unlink(missing_ok=True)


def run_clients(url: str, images: list[tuple[str, bytes]], args: argparse.Namespace
                ) -> tuple[list[float], list[str], float]:
    """Post images from ``args.clients`` threads.

    Returns the latencies of requests started in the measured phase, every error (warm-up
    included) and the measured wall time, which runs until the last of those requests ended.
    """
    route = f"{url}/v1/{args.route}"
    start = time.monotonic()
    measure_from = start + args.warmup
    stop_at = measure_from + args.duration
    latencies: list[list[float]] = [[] for _ in range(args.clients)]
    errors: list[str] = []
    lock = threading.Lock()

    def client(k: int) -> None:
        with httpx.Client(timeout=args.timeout) as http:
            for i in range(args.max_requests):
                now = time.monotonic()
                if now >= stop_at:
                    return
                name, data = images[(k * 13 + i) % len(images)]
                t0 = time.perf_counter()
                try:
                    r = http.post(route, files={"file": (name, data)})
                    ok = r.status_code == 200 and r.json().get("label") is not None
                    problem = None if ok else f"{r.status_code}: {r.text[:200]}"
                except Exception as exc:  # count it; the run goes on
                    problem = f"{type(exc).__name__}: {exc}"
                elapsed = time.perf_counter() - t0
                if now >= measure_from:  # started in the measured phase
                    latencies[k].append(elapsed)
                if problem:  # warm-up failures count too: the run must have none
                    with lock:
                        errors.append(f"{name}: {problem}")

    threads = [threading.Thread(target=client, args=(k,), daemon=True)
               for k in range(args.clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.warmup + args.duration + args.timeout + 30)
    wall = time.monotonic() - measure_from
    return [x for per in latencies for x in per], errors, wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images = pick_images(Path(args.data) / args.split, args.images)
    load_before = [round(x, 2) for x in os.getloadavg()]
    server = Server(args)
    try:
        health = server.wait_ready()
        card = httpx.get(server.url + "/v1/model", timeout=10).json()
        latencies, errors, wall = run_clients(server.url, images, args)
    finally:
        server.stop()
    lat_ms = np.asarray(latencies) * 1000
    n = len(lat_ms)
    result = {
        "benchmark": "serve_load",
        "command": "python benchmarks/serve_load.py " + " ".join(argv or sys.argv[1:]),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "route": f"/v1/{args.route}",
        "clients": args.clients,
        "duration_s": round(wall, 2),
        "workers": args.workers,
        "model": health["model"],
        "checksum": card.get("checksum"),
        "image_size": card.get("card", {}).get("preprocess", {}).get("image_size"),
        "images": len(images),
        "requests": n,
        "errors": len(errors),
        "error_examples": errors[:5],
        "throughput_rps": round(n / wall, 2) if wall > 0 else None,
        "latency_ms": {
            "p50": round(float(np.percentile(lat_ms, 50)), 1) if n else None,
            "p90": round(float(np.percentile(lat_ms, 90)), 1) if n else None,
            "p99": round(float(np.percentile(lat_ms, 99)), 1) if n else None,
            "max": round(float(lat_ms.max()), 1) if n else None,
            "mean": round(float(lat_ms.mean()), 1) if n else None,
        },
        # The clients share the machine with the server: on a small box they take part of
        # its CPU, and the load average shows whatever else was running.
        "host": {"cpus": os.cpu_count(), "load_average_before": load_before,
                 "platform": platform.platform(),
                 "python": platform.python_version(),
                 "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    lat = result["latency_ms"]
    print(f"{n} requests to {result['route']} from {args.clients} clients in {wall:.1f} s: "
          f"{result['throughput_rps']} req/s, p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
          f"{len(errors)} errors  (model {health['model']}; written to {out})")
    for e in errors[:5]:
        print("error:", e, file=sys.stderr)
    return 1 if errors or n == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
