"""Fine-tuning from a parent bundle vs training from scratch, on shares of Training.

Each share (``--fractions``, of the training part; the validation split is the same for
all) is trained twice with the same epochs (the same time budget per step): once from
scratch, once ``--init-from`` the parent (default: the bundled model); plus, optionally, the
two-class tumour / no-tumour relabelling. Accuracy and leak-free accuracy on Testing.

The parent must not have seen the evaluated images: the bundled model was trained on
Training only, so Testing is fair. It has, however, seen all of Training, so for the
"small new site" reading of this benchmark it is an upper bound of transfer, not a clean
one; say so when quoting it.

The issue's figures (bundled recipe at 128 px, 5/10/25/100 %):

    python benchmarks/finetune.py --data "$DATA" --config configs/braintumor-net.yaml \\
        --fractions 0.05 0.1 0.25 1 --epochs 30 --two-class

A smoke configuration (few epochs, CPU minutes) shows the machinery, not the targets:

    python benchmarks/finetune.py --data "$DATA" --config configs/braintumor-net.yaml \\
        --fractions 0.1 --epochs 2 --label smoke --out benchmarks/results/finetune_smoke.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import test_scores, write_result  # noqa: E402

TWO_CLASS = "tumour=glioma+meningioma+pituitary,notumor=notumor"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", help="training config; its model must be the parent's")
    ap.add_argument("--parent", default="bundled", help="bundle, run or .ckpt to fine-tune")
    ap.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.1, 0.25, 1.0])
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--fine-tune-lr", type=float, help="peak lr when fine-tuning "
                                                       "(default: the config's / 3)")
    ap.add_argument("--freeze", nargs="*", default=[], help="e.g. stem stages.0")
    ap.add_argument("--two-class", action="store_true", help="also the tumour/no-tumour task")
    ap.add_argument("--two-class-fractions", type=float, nargs="+",
                    help="shares for the two-class task (default: --fractions)")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--skip-leak-free", action="store_true",
                    help="no leak-free figure (skips the dataset audit; smoke runs)")
    ap.add_argument("--label", default="full")
    ap.add_argument("--runs", help="keep run folders here (default: a temporary folder)")
    ap.add_argument("--out", default="benchmarks/results/finetune.json")
    args = ap.parse_args()

    from braintumor.training.config import load_config, replace
    from braintumor.training.run import train

    base = load_config(args.config, {"data": args.data, "epochs": args.epochs,
                                     "image_size": args.image_size})
    base = replace(base, patience=0, progress_bar=False)
    runs = Path(args.runs or tempfile.mkdtemp(prefix="finetune-bench-"))
    tasks = [(None, "four-class", args.fractions)] + (
        [(TWO_CLASS, "two-class", args.two_class_fractions or args.fractions)]
        if args.two_class else [])
    rows: list[dict] = []
    for classes, task, fractions in tasks:
        for frac in fractions:
            for start in ("scratch", "fine-tune"):
                name = f"{task}-{frac:g}-{start}"
                cfg = replace(base, out=str(runs / name), custom_classes=classes,
                              train_fraction=None if frac >= 1 else frac)
                if start == "fine-tune":
                    cfg = replace(cfg, init_from=args.parent, freeze=list(args.freeze),
                                  lr=args.fine_tune_lr or base.lr / 3)
                t = time.perf_counter()
                s = train(cfg, command=f"benchmarks/finetune.py ({name})")
                row = {"run": name, "task": task, "fraction": frac, "start": start,
                       "epochs": s["epochs_run"], "lr": cfg.lr,
                       "wall_seconds": round(time.perf_counter() - t, 1),
                       "validation_accuracy": s["metrics"]["validation"]["accuracy"],
                       **test_scores(s["bundle"], args.data, not args.skip_leak_free)}
                card = json.loads((Path(s["bundle"]) / "card.json").read_text())
                row["train_images"] = sum(card["data"]["counts"]["train"].values())
                rows.append(row)
                _write(args, base, rows)  # after each run: a long benchmark cut short keeps it
                lf = row["leak_free_accuracy"]
                print(f"{name:<28} {row['train_images']:>5} images  test "
                      f"{row['test_accuracy']:.4f}  leak-free "
                      f"{'n/a' if lf is None else f'{lf:.4f}'}  {row['wall_seconds']:.0f} s",
                      flush=True)
    for task in {r["task"] for r in rows}:
        for frac in sorted({r["fraction"] for r in rows if r["task"] == task}):
            pair = {r["start"]: r for r in rows if r["task"] == task and r["fraction"] == frac}
            if len(pair) == 2:
                gain = 100 * (pair["fine-tune"]["test_accuracy"] - pair["scratch"]["test_accuracy"])
                print(f"{task} {frac:g}: fine-tune - scratch = {gain:+.2f} points")
    print(f"wrote {args.out} ({args.label})")


def _write(args: argparse.Namespace, base, rows: list[dict]) -> None:
    result = {"label": args.label, "command": "python " + " ".join(sys.argv),
              "parent": args.parent, "config": base.to_dict(), "rows": rows}
    write_result(result, args.out)


if __name__ == "__main__":
    main()
