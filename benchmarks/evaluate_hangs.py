"""Cold ``braintumor evaluate`` runs in a loop, each under a time limit: how many hang?

Builds a small dataset (``--per-split`` images of each split, spread over the classes, as
symlinks into ``$DATA``) in a temporary folder outside the repository, then runs
``braintumor evaluate`` ``--runs`` times, each with a fresh cache folder (so the decoded-image
cache, the audit and its worker pools all start cold, as on a first use) and a wall-clock
limit. A run that passes the limit is killed and counted as a hang. Prints ``hangs/N`` and
writes ``benchmarks/results/evaluate_hangs.json``; exits 1 if any run hung or failed.

    python benchmarks/evaluate_hangs.py --data $DATA --runs 50

64 images per split gives the audit 128 images: above the 64 at which it decodes in
worker processes, which is where the hang lived (a pool forked from the audit's background
thread while the main thread imported image libraries).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "brain-tumor-mri"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "evaluate_hangs.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("DATA", str(DEFAULT_DATA)),
                   help="dataset with Training/ and Testing/ class folders (default: $DATA)")
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--runs", type=int, default=50, help="cold evaluate runs")
    p.add_argument("--per-split", type=int, default=64, help="images per split in the subset")
    p.add_argument("--limit", type=float, default=180.0,
                   help="seconds a run may take before it counts as hung")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    return p.parse_args(argv)


def build_subset(data: Path, dest: Path, per_split: int) -> int:
    """Symlink ``per_split`` images of each split into ``dest``, classes taken in turn."""
    total = 0
    for split in ("Training", "Testing"):
        classes = sorted(d for d in (data / split).iterdir() if d.is_dir())
        files = [sorted(c.glob("*.jpg")) for c in classes]
        if not classes or not all(files):
            raise SystemExit(f"{data / split}: expected class folders of .jpg images")
        for i in range(per_split):
            k = i % len(classes)
            src = files[k][(i // len(classes)) * 11 % len(files[k])]
            link = dest / split / classes[k].name / src.name
            link.parent.mkdir(parents=True, exist_ok=True)
            link.symlink_to(src)
            total += 1
    return total


def group_cpu_seconds(pgid: int) -> float:
    """CPU time (user + system) used so far by the live processes of a process group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after "(comm)": state ppid pgrp ...
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def one_run(cmd: list[str], cache: Path, limit: float) -> tuple[str, float, str]:
    """("ok" | "hung" | "slow" | "failed", seconds, last lines of output) of one cold run.

    A run past the limit is "hung" when its processes used no CPU over the next 5 s (the
    deadlock sits at 0 % CPU), else "slow" (a busy machine); either way it is killed.
    """
    env = dict(os.environ, BRAINTUMOR_CACHE=str(cache))
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env,
                            start_new_session=True, text=True)
    try:
        out, _ = proc.communicate(timeout=limit)
        status = "ok" if proc.returncode == 0 else "failed"
    except subprocess.TimeoutExpired:
        before = group_cpu_seconds(proc.pid)
        time.sleep(5)
        status = "hung" if group_cpu_seconds(proc.pid) - before < 0.05 else "slow"
        os.killpg(proc.pid, 9)  # the run and any worker processes it left behind
        out, _ = proc.communicate()
    return status, time.monotonic() - t0, "\n".join((out or "").splitlines()[-5:])


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="evaluate-hangs-"))  # outside the repository
    try:
        n_images = build_subset(Path(args.data), work / "data", args.per_split)
        runs = []
        for k in range(args.runs):
            cmd = [sys.executable, "-m", "braintumor", "evaluate", "--data", str(work / "data"),
                   "--out", str(work / f"eval-{k}"), "--no-gallery"]
            if args.model:
                cmd += ["--model", args.model]
            status, seconds, tail = one_run(cmd, work / f"cache-{k}", args.limit)
            runs.append({"status": status, "seconds": round(seconds, 1)})
            print(f"run {k + 1}/{args.runs}: {status} in {seconds:.1f} s", flush=True)
            if status in ("failed", "slow"):
                print(tail, file=sys.stderr)
            shutil.rmtree(work / f"cache-{k}", ignore_errors=True)
            shutil.rmtree(work / f"eval-{k}", ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    hangs = sum(r["status"] == "hung" for r in runs)
    failures = sum(r["status"] in ("failed", "slow") for r in runs)
    ok_seconds = sorted(r["seconds"] for r in runs if r["status"] == "ok")
    result = {
        "benchmark": "evaluate_hangs",
        "command": "python benchmarks/evaluate_hangs.py " + " ".join(argv or sys.argv[1:]),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "images": n_images,
        "runs": len(runs),
        "hangs": hangs,
        "failures_or_slow": failures,
        "limit_s": args.limit,
        "seconds_per_ok_run": {"min": ok_seconds[0], "median": ok_seconds[len(ok_seconds) // 2],
                               "max": ok_seconds[-1]} if ok_seconds else None,
        "statuses": [r["status"] for r in runs],
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                 "python": platform.python_version()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"hangs: {hangs}/{len(runs)}, failures: {failures}  (written to {out})")
    return 1 if hangs or failures else 0


if __name__ == "__main__":
    sys.exit(main())
