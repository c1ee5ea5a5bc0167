"""Per-epoch metrics as ``RUN_DIR/metrics.csv`` and training curves as ``curves.png``.

Lightning's CSVLogger writes train and validation values on separate rows into a versioned
sub-folder; a run folder is easier to read (and to plot) with one row per epoch at its top,
so this small callback writes that, keeping rows of earlier epochs when a run resumes.
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any

import lightning as L

COLUMNS = ["epoch", "train_loss", "val_loss", "val_acc", "val_f1", "lr", "epoch_seconds",
           "train_images_per_second", "train_mask_loss"]  # the last: empty without masks


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    path = Path(path)
    if not path.is_file():
        return []
    with path.open(newline="") as f:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in row.items()}
                for row in csv.DictReader(f)]


class EpochCSV(L.Callback):
    def __init__(self, path: str | Path, curves: str | Path | None = None):
        self.path = Path(path)
        self.curves = Path(curves) if curves else None
        self._t0 = 0.0
        self._seen = 0

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # (not on_fit_start: a resumed run's epoch counter is restored only after it)
        if trainer.global_rank != 0:
            return
        keep = [r for r in read_metrics(self.path) if r["epoch"] < trainer.current_epoch]
        self._write(keep)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._t0, self._seen = time.perf_counter(), 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any,
                           batch: Any, batch_idx: int) -> None:
        self._seen += len(batch[1])

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Runs after this epoch's validation loop, so val metrics are in callback_metrics.
        if trainer.global_rank != 0 or trainer.sanity_checking:
            return
        seconds = time.perf_counter() - self._t0
        m = trainer.callback_metrics
        row = {"epoch": trainer.current_epoch,
               "train_loss": _f(m.get("train_loss_epoch")), "val_loss": _f(m.get("val_loss")),
               "val_acc": _f(m.get("val_acc")), "val_f1": _f(m.get("val_f1")),
               "lr": trainer.optimizers[0].param_groups[0]["lr"],
               "epoch_seconds": round(seconds, 2),
               "train_images_per_second": round(self._seen * trainer.world_size / seconds, 1),
               "train_mask_loss": (_f(m["train_mask_loss"]) if "train_mask_loss" in m
                                   else None)}
        rows = [r for r in read_metrics(self.path) if r["epoch"] < row["epoch"]] + [row]
        self._write(rows)
        if self.curves:
            plot_curves(rows, self.curves)

    def _write(self, rows: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".csv.tmp")
        with tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, COLUMNS, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: _cell(k, r.get(k)) for k in COLUMNS})
        tmp.replace(self.path)


def _f(v) -> float:
    return float(v) if v is not None else math.nan


def _cell(key: str, v):
    """A CSV cell: a missing value stays an empty cell. ``read_metrics`` reads empty cells
    back as NaN, and the rows of earlier epochs are rewritten every epoch, so without this a
    column that a run does not log (``train_mask_loss`` without masks) would turn from empty
    into "nan" one epoch later."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return int(v) if key == "epoch" else v


def plot_curves(rows: list[dict], out: str | Path) -> Path:
    """Loss (train/val) and validation accuracy/macro-F1 per epoch, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [r["epoch"] + 1 for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, [r["train_loss"] for r in rows], "o-", label="train (augmented)")
    a.plot(ep, [r["val_loss"] for r in rows], "o-", label="validation")
    a.set(xlabel="epoch", ylabel="cross-entropy", title="Loss")
    a.legend()
    b.plot(ep, [r["val_acc"] for r in rows], "o-", label="accuracy")
    b.plot(ep, [r["val_f1"] for r in rows], "o-", label="macro-F1")
    b.set(xlabel="epoch", title="Validation")
    b.legend()
    for ax in (a, b):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
