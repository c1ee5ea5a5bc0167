"""Peak memory of ``braintumor serve`` under a flood of expensive uploads.

Starts the real server (uvicorn on 127.0.0.1, its own process, default limits) and has
``--clients`` threads post a 4096 x 4096 16-bit PNG (about 50 KB that decode to 32 MB of
pixels and cost about 500 MB to scale without the limits) and ``--bomb-clients`` threads
post a DICOM bomb (2.6 MB, header says 512 x 512, its JPEG frame is 13000 x 13000) for
``--duration`` seconds. Samples the server's resident memory every 50 ms and reads its
peak (``VmHWM``) at the end. Target: peak <= 1.5 GB and no 5xx answer.

    python benchmarks/serve_memory.py --clients 16 --duration 30

Loopback only; every loop is bounded by time and by ``--max-requests`` per client, and the
server is stopped however the run ends. Results: benchmarks/results/serve_memory.json.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from _common import host_info, write_result  # benchmarks/ is on sys.path as a script
from PIL import Image
from serve_load import Server  # the same server harness as the load test

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_memory.json"
TARGET_PEAK_MB = 1536


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--clients", type=int, default=16, help="threads posting the 16-bit PNG")
    p.add_argument("--bomb-clients", type=int, default=2, help="threads posting the DICOM bomb")
    p.add_argument("--side", type=int, default=4096, help="side of the 16-bit PNG")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of load")
    p.add_argument("--route", choices=["predict", "explain"], default="predict")
    p.add_argument("--max-requests", type=int, default=10_000, help="per client, a safety cap")
    p.add_argument("--timeout", type=float, default=120.0, help="per request, seconds")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.set_defaults(workers=1)
    return p.parse_args(argv)


def png16(side: int) -> bytes:
    """A 16-bit "head" of flat rings: compresses to tens of KB, decodes to side^2 x 2 B."""
    y = np.linspace(-1, 1, side, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, side, dtype=np.float32)[None, :]
    rings = np.floor(np.clip(1 - (x * x + y * y), 0, 1) * 6)
    buf = io.BytesIO()
    Image.fromarray((rings * 7000 + 2000).astype(np.uint16)).save(buf, format="PNG")
    return buf.getvalue()


def dicom_bomb(declared: int = 512, real: int = 13000) -> bytes:
    """A JPEG-baseline DICOM whose header declares ``declared``^2 and whose frame is
    ``real``^2: a flat grey JPEG is tiny per block, so 169 M pixels fit in about 2.6 MB."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit, MRImageStorage, generate_uid

    buf = io.BytesIO()
    Image.new("L", (real, real), 128).save(buf, format="JPEG", quality=50)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.Rows = ds.Columns = declared
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PixelData = encapsulate([buf.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def rss_mb(pid: int, field: str = "VmRSS") -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    png, bomb = png16(args.side), dicom_bomb()
    uploads = [("scan16.png", png)] * args.clients + [("bomb.dcm", bomb)] * args.bomb_clients
    server = Server(args)
    statuses: Counter = Counter()
    by_file: dict[str, Counter] = {"scan16.png": Counter(), "bomb.dcm": Counter()}
    latencies: dict[str, list[float]] = {"scan16.png": [], "bomb.dcm": []}
    examples: dict[int, str] = {}
    lock = threading.Lock()
    samples: list[float] = []
    try:
        server.wait_ready()
        pid = server.proc.pid
        idle_mb = rss_mb(pid)
        stop_at = time.monotonic() + args.duration
        done = threading.Event()

        def sampler() -> None:
            while not done.is_set():
                value = rss_mb(pid)
                if value is not None:
                    samples.append(value)
                time.sleep(0.05)

        def client(name: str, data: bytes) -> None:
            with httpx.Client(timeout=args.timeout) as http:
                for _ in range(args.max_requests):
                    if time.monotonic() >= stop_at:
                        return
                    t0 = time.perf_counter()
                    try:
                        r = http.post(f"{server.url}/v1/{args.route}", files={"file": (name, data)})
                        code, text = r.status_code, r.text[:300]
                    except Exception as exc:  # count it; the run goes on
                        code, text = 0, f"{type(exc).__name__}: {exc}"
                    with lock:
                        statuses[code] += 1
                        by_file[name][code] += 1
                        latencies[name].append(time.perf_counter() - t0)
                        examples.setdefault(code, text)

        watch = threading.Thread(target=sampler, daemon=True)
        watch.start()
        threads = [threading.Thread(target=client, args=u, daemon=True) for u in uploads]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=args.duration + args.timeout + 30)
        done.set()
        watch.join(2)
        peak_hwm = rss_mb(pid, "VmHWM")
    finally:
        server.stop()
    peak = max([x for x in [peak_hwm, *samples] if x is not None], default=None)
    five_xx = sum(n for code, n in statuses.items() if code >= 500 or code == 0)

    def pct(values: list[float], q: float) -> float | None:
        return round(float(np.percentile(values, q)) * 1000, 1) if values else None

    result = {
        "benchmark": "serve_memory",
        "command": "python benchmarks/serve_memory.py " + " ".join(argv or sys.argv[1:]),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "route": f"/v1/{args.route}",
        "clients": {"png16": args.clients, "dicom_bomb": args.bomb_clients},
        "uploads": {"png16_bytes": len(png), "png16_side": args.side,
                    "dicom_bomb_bytes": len(bomb), "dicom_bomb_declared": 512,
                    "dicom_bomb_frame": 13000},
        "duration_s": args.duration,
        "server_rss_mb": {"idle": round(idle_mb or 0, 1), "peak": round(peak or 0, 1),
                          "peak_vmhwm": round(peak_hwm or 0, 1),
                          "samples": len(samples)},
        "target_peak_mb": TARGET_PEAK_MB,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "statuses_by_upload": {k: {str(c): n for c, n in sorted(v.items())}
                               for k, v in by_file.items()},
        "latency_ms": {k: {"p50": pct(v, 50), "p99": pct(v, 99)} for k, v in latencies.items()},
        "answer_examples": {str(k): v for k, v in sorted(examples.items())},
        "five_xx_or_failed": five_xx,
        "passed": bool(peak is not None and peak <= TARGET_PEAK_MB and five_xx == 0),
        "host": host_info(),
    }
    out = write_result(result, args.out)
    print(f"peak server RSS {result['server_rss_mb']['peak']} MB (idle "
          f"{result['server_rss_mb']['idle']} MB, target <= {TARGET_PEAK_MB}); statuses "
          f"{result['statuses']}; 5xx/failed {five_xx}  (written to {out})")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
