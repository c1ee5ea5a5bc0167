"""Federated (Flower, simulated sites) vs central training with the same total epochs.

For each (sites, partition, strategy) a simulated federation of ``--rounds`` rounds of
``--local-epochs`` epochs, and one central run of rounds x local epochs epochs on the same
config, split and validation: accuracy and leak-free accuracy on the Testing split, their
gaps to central, wall time and bytes moved per round.

The issue's figures (bundled recipe at 128 px, 3/5 sites, IID and Dirichlet 0.3, FedAvg and
FedProx) need ~9 full training runs (~90 min each on the project's 2-core CPU):

    python benchmarks/federated.py --data "$DATA" --config configs/braintumor-net.yaml \\
        --sites 3 5 --partitions iid dirichlet:0.3 --strategies fedavg fedprox \\
        --rounds 20 --local-epochs 2

A smoke configuration (64 px, a subset, a few epochs) shows the machinery, not the targets:

    python benchmarks/federated.py --data "$DATA" --image-size 64 --max-train-images 1200 \\
        --sites 3 --partitions iid dirichlet:0.3 --strategies fedavg fedprox --rounds 2 \\
        --local-epochs 1 --label smoke --out benchmarks/results/federated_smoke.json
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import test_scores, write_result  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--config", help="training config (default: TrainConfig defaults)")
    ap.add_argument("--image-size", type=int)
    ap.add_argument("--max-train-images", type=int)
    ap.add_argument("--batch-size", type=int)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--sites", type=int, nargs="+", default=[3, 5])
    ap.add_argument("--partitions", nargs="+", default=["iid", "dirichlet:0.3"])
    ap.add_argument("--strategies", nargs="+", default=["fedavg", "fedprox"])
    ap.add_argument("--proximal-mu", type=float, default=0.01)
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--local-epochs", type=int, default=2)
    ap.add_argument("--skip-leak-free", action="store_true",
                    help="no leak-free figure (skips the dataset audit; smoke runs)")
    ap.add_argument("--label", default="full", help="recorded with the figures (e.g. smoke)")
    ap.add_argument("--runs", help="keep run folders here (default: a temporary folder)")
    ap.add_argument("--out", default="benchmarks/results/federated.json")
    args = ap.parse_args()

    from braintumor.federated.simulate import simulate
    from braintumor.training.config import load_config, replace
    from braintumor.training.run import train

    base = load_config(args.config, {"data": args.data, "image_size": args.image_size,
                                     "max_train_images": args.max_train_images,
                                     "batch_size": args.batch_size, "lr": args.lr})
    runs = Path(args.runs or tempfile.mkdtemp(prefix="federated-bench-"))
    total_epochs = args.rounds * args.local_epochs
    t = time.perf_counter()
    central_cfg = replace(base, out=str(runs / "central"), epochs=total_epochs, patience=0,
                          progress_bar=False)
    central = train(central_cfg, command="benchmarks/federated.py (central)")
    rows = [{"run": "central", "epochs": total_epochs,
             "wall_seconds": round(time.perf_counter() - t, 1),
             **test_scores(central["bundle"], args.data, not args.skip_leak_free),
             "validation_accuracy": central["metrics"]["validation"]["accuracy"]}]
    _write(args, base, total_epochs, rows)
    print(_line(rows[0]), flush=True)
    for sites, part, strat in itertools.product(args.sites, args.partitions, args.strategies):
        name = f"{sites}sites-{part.replace(':', '')}-{strat}"
        t = time.perf_counter()
        s = simulate(replace(base, out=str(runs / name)), sites=sites, partition=part,
                     rounds=args.rounds, local_epochs=args.local_epochs, strategy=strat,
                     proximal_mu=args.proximal_mu, command="benchmarks/federated.py")
        per_round = [r["bytes_total"] for r in s["rounds"] if r["round"] > 0]
        row = {"run": name, "sites": sites, "partition": part, "strategy": strat,
               "rounds": args.rounds, "local_epochs": args.local_epochs,
               "wall_seconds": round(time.perf_counter() - t, 1),
               "bytes_per_round": int(sum(per_round) / len(per_round)),
               **test_scores(s["bundle"], args.data, not args.skip_leak_free),
               "validation_accuracy": s["metrics"]["validation"]["accuracy"]}
        row["accuracy_gap_points"] = round(100 * (rows[0]["test_accuracy"]
                                                  - row["test_accuracy"]), 2)
        if row["leak_free_accuracy"] is not None:
            row["leak_free_gap_points"] = round(100 * (rows[0]["leak_free_accuracy"]
                                                       - row["leak_free_accuracy"]), 2)
        rows.append(row)
        _write(args, base, total_epochs, rows)  # after each run: a cut-short benchmark keeps it
        print(_line(row), flush=True)
    print(f"wrote {args.out} ({args.label})")


def _write(args: argparse.Namespace, base, total_epochs: int, rows: list[dict]) -> None:
    result = {"label": args.label, "command": "python " + " ".join(sys.argv),
              "config": base.to_dict(), "total_epochs": total_epochs, "rows": rows}
    write_result(result, args.out)


def _line(r: dict) -> str:
    gap = f", gap {r['accuracy_gap_points']:+.2f} points" if "accuracy_gap_points" in r else ""
    if "leak_free_gap_points" in r:
        gap += f" (leak-free {r['leak_free_gap_points']:+.2f})"
    mb = f", {r['bytes_per_round'] / 1e6:.1f} MB/round" if "bytes_per_round" in r else ""
    lf = r["leak_free_accuracy"]
    return (f"{r['run']:<32} test {r['test_accuracy']:.4f}  leak-free "
            f"{'n/a' if lf is None else f'{lf:.4f}'}  {r['wall_seconds']:.0f} s{mb}{gap}")


if __name__ == "__main__":
    main()
