"""``/v1/explain`` latency with and without concurrent DICOM uploads in flight.

Starts the real server (127.0.0.1, own process), then measures one client posting a scan to
``/v1/explain`` back to back for ``--duration`` seconds, first alone, then while
``--dicom-clients`` threads post a 16-bit DICOM (``--dicom-side`` px) to ``/v1/predict``.
Before issue 24 every DICOM decode held a process-wide lock that Grad-CAM also took, so
four DICOMs in flight turned a 0.17 s explanation into 4.8 s. Target: p99 with the DICOM
load within 2x the p99 without it. On a small machine the DICOM clients also take CPU from
the explanation (no lock can help that), so ``host`` records the cores and load.

    python benchmarks/serve_explain_dicom.py --duration 30 --dicom-clients 4

Results: benchmarks/results/serve_explain_dicom.json. Loopback only, bounded loops.
"""

from __future__ import annotations

import argparse
import io
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import numpy as np
from _common import host_info, write_result  # benchmarks/ is on sys.path as a script
from PIL import Image
from serve_load import Server

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_explain_dicom.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="model bundle (default: the bundled model)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per phase")
    p.add_argument("--dicom-clients", type=int, default=4)
    p.add_argument("--dicom-side", type=int, default=1024)
    p.add_argument("--dicom-jpeg", action="store_true",
                   help="JPEG-compressed 8-bit frames (slower to decode) instead of native 16-bit")
    p.add_argument("--max-requests", type=int, default=10_000, help="per client, a safety cap")
    p.add_argument("--out", default=str(DEFAULT_OUT), help="JSON results file")
    p.add_argument("--serve-arg", dest="serve_args", action="append", default=[],
                   help="extra `braintumor serve` argument, repeatable "
                        "(e.g. --serve-arg=--large-upload-nice=0 for the priority off)")
    p.set_defaults(workers=1)
    return p.parse_args(argv)


def slice_pixels(side: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[-1:1:side * 1j, -1:1:side * 1j]
    head = np.clip(1 - (x * x + y * y) * 1.4, 0, 1)
    return head * 3000 + rng.normal(0, 60, (side, side)) + 200 * ((x - 0.2) ** 2 + y * y < 0.05)


def scan_png(side: int = 256) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(slice_pixels(side, 1) / 16, 0, 255).astype(np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def dicom(side: int, jpeg: bool = False) -> bytes:
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, MRImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = JPEGBaseline8Bit if jpeg else ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    arr = np.clip(slice_pixels(side, 2), 0, 4095).astype(np.uint16)
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    if jpeg:
        buf = io.BytesIO()
        Image.fromarray((arr >> 4).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = encapsulate([buf.getvalue()])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
    else:
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = arr.tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def explain_latencies(url: str, png: bytes, duration: float, cap: int) -> tuple[list[float], int]:
    out, errors = [], 0
    stop_at = time.monotonic() + duration
    with httpx.Client(timeout=120) as http:
        for _ in range(cap):
            if time.monotonic() >= stop_at:
                break
            t0 = time.perf_counter()
            r = http.post(url + "/v1/explain", files={"file": ("scan.png", png)})
            out.append(time.perf_counter() - t0)
            errors += r.status_code != 200
    return out, errors


def summary(values: list[float]) -> dict:
    ms = np.asarray(values) * 1000
    return {"requests": len(values),
            **{k: round(float(np.percentile(ms, q)), 1) for k, q in
               (("p50", 50), ("p90", 90), ("p99", 99))}} if len(values) else {"requests": 0}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    png, dcm = scan_png(), dicom(args.dicom_side, args.dicom_jpeg)
    server = Server(args)
    dicom_done, dicom_errors = [0], [0]
    try:
        server.wait_ready()
        explain_latencies(server.url, png, 3.0, 50)  # warm-up
        alone, err_alone = explain_latencies(server.url, png, args.duration, args.max_requests)
        stop = threading.Event()

        def dicom_client() -> None:
            with httpx.Client(timeout=120) as http:
                for _ in range(args.max_requests):
                    if stop.is_set():
                        return
                    r = http.post(server.url + "/v1/predict", files={"file": ("s.dcm", dcm)})
                    dicom_done[0] += 1
                    dicom_errors[0] += r.status_code != 200

        threads = [threading.Thread(target=dicom_client, daemon=True)
                   for _ in range(args.dicom_clients)]
        for t in threads:
            t.start()
        time.sleep(1.0)  # the DICOMs are in flight before the measured phase starts
        loaded, err_loaded = explain_latencies(server.url, png, args.duration,
                                               args.max_requests)
        stop.set()
        for t in threads:
            t.join(150)
    finally:
        server.stop()
    a, b = summary(alone), summary(loaded)
    ratio = round(b["p99"] / a["p99"], 2) if a.get("p99") and b.get("p99") else None
    result = {
        "benchmark": "serve_explain_dicom",
        "command": "python benchmarks/serve_explain_dicom.py " + " ".join(argv or sys.argv[1:]),
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "explain_alone_ms": a, "explain_with_dicom_load_ms": b, "p99_ratio": ratio,
        "dicom_clients": args.dicom_clients, "dicom_side": args.dicom_side,
        "dicom_transfer_syntax": "JPEG baseline" if args.dicom_jpeg else "explicit VR LE",
        "dicom_bytes": len(dcm), "dicom_requests": dicom_done[0],
        "errors": {"explain": err_alone + err_loaded, "dicom": dicom_errors[0]},
        "target_ratio": 2.0, "passed": bool(ratio is not None and ratio <= 2.0),
        "host": host_info(),
    }
    out = write_result(result, args.out)
    print(f"/v1/explain p99 alone {a.get('p99')} ms, with {args.dicom_clients} DICOM clients "
          f"{b.get('p99')} ms (x{ratio}); {dicom_done[0]} DICOM requests; errors "
          f"{result['errors']}  (written to {out})")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
