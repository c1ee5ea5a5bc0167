"""``braintumor evaluate`` and ``braintumor compare``: the handlers behind their flags."""

from __future__ import annotations

import argparse
import json
import sys

from braintumor import DISCLAIMER
from braintumor.data.datasets import DatasetError
from braintumor.evaluation.compare import compare, format_table
from braintumor.evaluation.evaluate import run_evaluation, write_outputs
from braintumor.models import ModelIntegrityError


def _summary(m: dict) -> str:
    def pct(x: float | None) -> str:
        return "n/a" if x is None else f"{100 * x:.2f}%"

    auc = m["roc_auc_macro"]
    lines = [f"model {m['model']['name']} ({m['model']['checksum'][:12]}), split {m['split']}, "
             f"{m['n_images']} images ({len(m['failed'])} unreadable, skipped)",
             f"accuracy {pct(m['accuracy'])}  macro-F1 {pct(m['macro_f1'])}  "
             f"ROC-AUC {'n/a' if auc is None else f'{auc:.4f}'}"]
    lf = m["leak_free"]
    if lf.get("available"):
        lines.append(f"leak-free ({lf['n_images']} images, {lf['n_excluded']} with a training "
                     f"duplicate left out): accuracy {pct(lf['accuracy'])}  "
                     f"macro-F1 {pct(lf['macro_f1'])}")
    else:
        lines.append(f"leak-free: unavailable ({lf.get('reason')})")
    return "\n".join(lines)


def evaluate_command(args: argparse.Namespace) -> int:
    if not args.data:
        print("braintumor evaluate: --data is required (or set $DATA)", file=sys.stderr)
        return 2
    try:
        ev = run_evaluation(args.model, args.data, args.split, audit=args.audit,
                            progress=sys.stderr.isatty())
        written = write_outputs(ev, args.out, gallery=not args.no_gallery)
    except (DatasetError, FileNotFoundError, ModelIntegrityError, ValueError) as exc:
        print(f"braintumor evaluate: {exc}", file=sys.stderr)
        return 1
    print(_summary(ev.metrics))
    print(f"wrote {written['metrics']} and {written['report']}")
    print(DISCLAIMER)
    return 0


def compare_command(args: argparse.Namespace) -> int:
    try:
        rows = compare(args.models, args.data, args.split)
    except (DatasetError, FileNotFoundError, ModelIntegrityError, ValueError) as exc:
        print(f"braintumor compare: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return 0
    print(format_table(rows, args.format))
    if len({(r["data"], r["split"], r["n_images"]) for r in rows}) > 1:
        print("\nnote: the rows were not all evaluated on the same data/split; "
              "compare them with care.")
    print(f"\n{DISCLAIMER}")
    return 0
