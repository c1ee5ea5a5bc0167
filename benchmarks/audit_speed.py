"""Time each stage of the dataset audit, to see which one to optimise when it gets slow.

Usage: ``python benchmarks/audit_speed.py [DATA] [--workers N] [--out FILE.json]``
(DATA defaults to $DATA). The machine is usually shared, so the load average is recorded
next to the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

from braintumor.data.audit import AuditConfig, AuditReport
from braintumor.data.datasets import discover
from braintumor.data.duplicates import (
    DuplicateConfig,
    DuplicateResult,
    _candidates,
    compute_fingerprints,
    find_duplicate_pairs,
    group_ids,
    orientation_agreement,
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data", nargs="?", default=os.environ.get("DATA"))
    ap.add_argument("--workers", type=int, default=None)
    ap.add_argument("--out", help="also write the timings as JSON here")
    args = ap.parse_args()
    if not args.data:
        ap.error("pass DATA or set $DATA")
    cfg = DuplicateConfig()
    t: dict[str, float] = {}
    start = time.perf_counter()
    index = discover(args.data)
    t["discover"] = time.perf_counter() - start
    mark = time.perf_counter()
    fp = compute_fingerprints(index.samples, cfg, args.workers)
    t["decode_and_fingerprint"] = time.perf_counter() - mark
    mark = time.perf_counter()
    ci, cj, _, cm = _candidates(fp, cfg)
    t["candidates_all_pairs_correlation"] = time.perf_counter() - mark
    mark = time.perf_counter()
    orientation_agreement(fp, ci, cj, cm)
    t["orientation_agreement"] = time.perf_counter() - mark
    mark = time.perf_counter()
    pairs = find_duplicate_pairs(fp, cfg)  # both stages again, plus exact-pair bookkeeping
    result = DuplicateResult(pairs, group_ids(len(fp), pairs.i, pairs.j), fp)
    t["pairs_and_groups_together"] = time.perf_counter() - mark
    mark = time.perf_counter()
    AuditReport(index, AuditConfig(cfg, args.workers), result).to_dict()
    t["report"] = time.perf_counter() - mark
    out = {
        "images": len(index.samples),
        "candidate_pairs": int(len(ci)),
        "confirmed_pairs": len(pairs),
        "seconds": {k: round(v, 2) for k, v in t.items()},
        "cpus": os.cpu_count(),
        "load_average_1min": os.getloadavg()[0],
        "python": platform.python_version(),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
