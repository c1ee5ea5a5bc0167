"""``braintumor train``: config -> data -> Lightning fit -> bundle with a complete card.

The run folder holds everything needed to judge and repeat the run: ``config.yaml`` (the
resolved settings), ``metrics.csv`` and ``curves.png``, ``checkpoints/{best,last}.ckpt``,
TensorBoard logs, ``summary.json`` and ``bundle/`` (the best checkpoint as a model bundle).
The test split is evaluated once, after training, with the checkpoint that validation
selected; it never influences training or selection.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import lightning as L
import numpy as np
import torch
import yaml

from braintumor import DISCLAIMER
from braintumor.evaluation.calibration import fit_temperature
from braintumor.evaluation.metrics import headline_metrics
from braintumor.models import create_model, model_info, save_bundle
from braintumor.models.registry import ModelInfo
from braintumor.models.runtime import predict_logits
from braintumor.models.tumour import has_tumour_head
from braintumor.training.checkpoint_io import AtomicCheckpointIO
from braintumor.training.config import (
    TrainConfig,
    fixed_on_resume,
    replace,
)
from braintumor.training.data import CacheDataModule, SplitSummary
from braintumor.training.ema import WarmupEMA
from braintumor.training.hardware import choose_cpu_precision, hardware_summary
from braintumor.training.history import EpochCSV, plot_curves, read_metrics
from braintumor.training.init_from import (
    FrozenNormEval,
    InitFromError,
    freeze_parameters,
    frozen_norm_layers,
    init_from_parent,
    load_parent,
)
from braintumor.training.module import Classifier
from braintumor.training.tumour_threshold import validation_threshold

if TYPE_CHECKING:
    from braintumor.training.monitoring import FullSizeCheckpoint

log = logging.getLogger(__name__)


class TrainingError(RuntimeError):
    """A run that cannot start or continue; the message says what to do."""


@dataclass
class FitRecord:
    """What the fit itself decided, for the card: written by :func:`train`, read by
    :func:`write_bundle`."""

    command: str | None
    precision_probe: dict
    epochs_run: int
    best_checkpoint: Path
    fit_seconds: float
    t_start: float  # perf_counter() when train() began, for the run's wall time
    resumed: bool
    # Fine-tuning: the model these weights started from (None: from scratch).
    parent: dict | None = None


def _resolve_precision(cfg: TrainConfig) -> tuple[str, str, dict]:
    """(accelerator, precision, measurement) with "auto" resolved for this machine."""
    accelerator = cfg.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if cfg.precision != "auto":
        return accelerator, cfg.precision, {"reason": "set in config"}
    if accelerator in ("gpu", "cuda"):
        bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
        return accelerator, "bf16-mixed" if bf16 else "16-mixed", {"reason": "GPU mixed precision"}
    if accelerator == "cpu":
        choice, probe = choose_cpu_precision(
            lambda: create_model(cfg.model, image_size=cfg.image_size, **cfg.model_kwargs),
            cfg.image_size, min(cfg.batch_size, 32))
        return accelerator, choice, probe
    return accelerator, "32-true", {"reason": f"accelerator {accelerator}: full precision"}


def _load_best_weights(module: Classifier, ckpt: Path) -> None:
    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    module.load_state_dict(state)


def train(cfg: TrainConfig, *, resume: bool = False, command: str | None = None) -> dict:
    """Train, evaluate and export; returns the summary written to ``summary.json``."""
    t_start = time.perf_counter()
    out = Path(cfg.out)
    last = out / "checkpoints" / "last.ckpt"
    data = _check_start(cfg, out, resume)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    L.seed_everything(cfg.seed, workers=True, verbose=False)

    dm = CacheDataModule(data, cfg.image_size, cfg.batch_size, cfg.val_fraction, cfg.seed,
                         cfg.max_train_images, masks=cfg.masks,
                         mask_empty_classes=cfg.mask_empty_classes,
                         max_group_copies=cfg.max_group_copies,
                         custom_classes=cfg.custom_classes,
                         train_fraction=cfg.train_fraction)
    split = dm.prepare()

    accelerator, precision, probe = _resolve_precision(cfg)
    cfg = replace(cfg, accelerator=accelerator, precision=precision)
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        cfg.dump(out / "config.yaml")
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # the probe used the RNG
    per_epoch = dm.class_counts()  # with a group cap, what an epoch holds
    module = Classifier(cfg, len(split.classes), per_epoch.tolist())
    parent, frozen_norms = _init_from_parent(cfg, module, split.classes)
    info = model_info(module.model, cfg.image_size)
    _print_start(cfg, info, probe, split, per_epoch, len(dm.train_rows))

    trainer, best_cb = build_trainer(cfg, out, frozen_norms=frozen_norms)
    t_fit = time.perf_counter()
    fit(trainer, module, dm, out, resume)
    fit_seconds = time.perf_counter() - t_fit
    if not trainer.is_global_zero:
        return {}
    best = Path(best_cb.best_model_path) if best_cb.best_model_path else last
    run = FitRecord(command, probe, trainer.current_epoch, best, fit_seconds, t_start, resume,
                    parent)
    return write_bundle(cfg, module, dm, split, info, run)


def _check_start(cfg: TrainConfig, out: Path, resume: bool) -> str:
    """Refuse, before any work, a run that has no data or would overwrite or misread one;
    returns the dataset path."""
    if cfg.data is None:
        raise TrainingError("no dataset: pass --data DIR (or set DATA)")
    ckpt_dir = out / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if resume and not last.is_file():
        raise TrainingError(f"--resume: {last} does not exist (nothing to resume); "
                            "start without --resume")
    if not resume and ckpt_dir.is_dir() and any(ckpt_dir.glob("*.ckpt")):
        raise TrainingError(f"{ckpt_dir} already holds checkpoints; pass --resume to continue "
                            "that run, or choose another --out (nothing was overwritten)")
    if resume:
        _check_resumable(cfg, out / "config.yaml")
    return cfg.data


def _init_from_parent(cfg: TrainConfig, module: Classifier, classes: list[str]
                      ) -> tuple[dict | None, list]:
    """Seed the model from ``cfg.init_from`` and freeze ``cfg.freeze``; (card entry, norms)."""
    if not cfg.init_from:
        return None, []
    try:
        parent = load_parent(cfg.init_from)
        entry = init_from_parent(module.model, parent, cfg.model, cfg.model_kwargs, classes)
        entry["frozen"] = freeze_parameters(module.model, cfg.freeze)
    except InitFromError as exc:
        raise TrainingError(str(exc)) from exc
    print(f"fine-tuning from {parent.name} (sha256 {parent.sha256[:12]}…), classifier "
          f"{entry['classifier']}" + (f"; frozen: {', '.join(cfg.freeze)}" if cfg.freeze else ""),
          file=sys.stderr)
    return entry, frozen_norm_layers(module.model, cfg.freeze)


def _print_start(cfg: TrainConfig, info: ModelInfo, probe: dict, split: SplitSummary,
                 per_epoch: np.ndarray, n_train: int) -> None:
    """The start-up lines on stderr: model, precision, split, and what a capped epoch holds."""
    print(f"{info}; precision {cfg.precision} ({probe}); split: "
          + ", ".join(f"{k} {sum(v.values())}" for k, v in split.counts.items()),
          file=sys.stderr)
    if cfg.max_group_copies is not None:
        print(f"max_group_copies {cfg.max_group_copies}: an epoch draws "
              f"{int(round(per_epoch.sum()))} of {n_train} training images ("
              + ", ".join(f"{c} {n:g}" for c, n in zip(split.classes, per_epoch, strict=True))
              + ")", file=sys.stderr)


def build_trainer(cfg: TrainConfig, out: Path, *, frozen_norms: list | None = None
                  ) -> tuple[L.Trainer, FullSizeCheckpoint]:
    """The Lightning Trainer of a run (checkpoints, CSV/TensorBoard logs, EMA, early stopping)
    and its best-checkpoint callback; ``cfg``'s accelerator and precision already resolved.
    ``frozen_norms``: batch-norm layers of ``--freeze`` prefixes, kept in eval mode."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    from braintumor.training.monitoring import FullSizeCheckpoint, FullSizeEarlyStopping

    ckpt_dir = out / "checkpoints"
    mode = "min" if cfg.monitor == "val_loss" else "max"
    full_size_from = cfg.low_res_epochs  # 0 without progressive resizing (validated)
    best_cb = FullSizeCheckpoint(dirpath=ckpt_dir, filename="best", monitor=cfg.monitor,
                                 mode=mode, save_top_k=1, enable_version_counter=False,
                                 from_epoch=full_size_from)
    # Lightning 2.6's save_last only refreshes last.ckpt when a best checkpoint is saved; a
    # second, unmonitored checkpoint rewrites last.ckpt at the end of every epoch instead.
    last_cb = ModelCheckpoint(dirpath=ckpt_dir, filename="last", monitor=None, save_top_k=1,
                              enable_version_counter=False)
    callbacks = [best_cb, last_cb, EpochCSV(out / "metrics.csv", out / "curves.png")]
    if cfg.ema_decay is not None:
        callbacks.append(WarmupEMA(cfg.ema_decay))
    if frozen_norms:
        callbacks.append(FrozenNormEval(frozen_norms))
    if cfg.patience and cfg.patience > 0:
        callbacks.append(FullSizeEarlyStopping(cfg.monitor, patience=cfg.patience, mode=mode,
                                               from_epoch=full_size_from))
    loggers = []
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger

        loggers.append(TensorBoardLogger(out, name="tensorboard", version=""))
    except ImportError:  # tensorboard is a dev extra: the CSV log and curves.png remain
        pass
    deterministic: bool | Literal["warn"] = cfg.deterministic
    if cfg.deterministic and cfg.accelerator != "cpu":
        deterministic = "warn"  # some CUDA kernels have no deterministic variant
    trainer = L.Trainer(
        max_epochs=cfg.epochs, accelerator=cfg.accelerator, devices=_devices(cfg.devices),
        strategy=cfg.strategy, num_nodes=cfg.num_nodes,
        precision=cfg.precision,  # type: ignore[arg-type]  # any Lightning accepts; it checks
        callbacks=callbacks, logger=loggers or False, plugins=[AtomicCheckpointIO()],
        deterministic=deterministic, enable_progress_bar=cfg.progress_bar and sys.stderr.isatty(),
        log_every_n_steps=10, default_root_dir=out,
    )
    return trainer, best_cb


def fit(trainer: L.Trainer, module: Classifier, dm: CacheDataModule, out: Path,
        resume: bool) -> None:
    """``trainer.fit`` from scratch or from ``last.ckpt``; Ctrl-C becomes a KeyboardInterrupt
    that names the last complete checkpoint and how to resume."""
    last = out / "checkpoints" / "last.ckpt"
    try:
        trainer.fit(module, datamodule=dm, ckpt_path=str(last) if resume else None)
    except SystemExit as exc:  # Lightning turns Ctrl-C into a graceful shutdown + exit(1)
        if trainer.interrupted:
            # Lightning ignores SIGINT from then on; give the process its Ctrl-C back.
            signal.signal(signal.SIGINT, signal.default_int_handler)
            where = f"{last} (end of epoch {_last_epoch(out)})" if last.is_file() else \
                "no complete epoch was saved"
            raise KeyboardInterrupt(f"training interrupted; last complete checkpoint: {where}; "
                                    "continue with the same command plus --resume") from exc
        raise


def write_bundle(cfg: TrainConfig, module: Classifier, dm: CacheDataModule,
                 split: SplitSummary, info: ModelInfo, run: FitRecord) -> dict:
    """Evaluate the selected checkpoint, calibrate it on validation, and write the bundle(s)
    with their card and ``summary.json``; returns the summary."""
    out = Path(cfg.out)
    best = run.best_checkpoint
    classes = split.classes
    _load_best_weights(module, best)
    model = module.model.float().eval()
    cached = dm.cached
    val_logits = predict_logits(model, np.asarray(cached.images[dm.val_rows]))
    val_labels = dm.labels[dm.val_rows]
    temperature = fit_temperature(val_logits, val_labels)
    metrics = {"validation": headline_metrics(val_logits, val_labels, classes)}
    if dm.has_test():
        test_logits = predict_logits(model, np.asarray(cached.images[dm.test_rows]))
        metrics["test"] = headline_metrics(test_logits, dm.labels[dm.test_rows], classes)
    tumour_threshold = _tumour_threshold(model, dm, metrics["validation"])
    rows = read_metrics(out / "metrics.csv")
    if rows:
        plot_curves(rows, out / "curves.png")
    wall = time.perf_counter() - run.t_start
    card: dict[str, Any] = {
        "intended_use": DISCLAIMER,
        "model": {"architecture": cfg.model, "model_kwargs": cfg.model_kwargs,
                  "parameters": info.parameters, "flops_per_image": info.flops,
                  "target_layer": getattr(model, "target_layer", None)},
        "data": {
            "dataset": dm.data.resolve().name,
            "description": "Brain Tumor MRI Dataset (Nickparvar, Kaggle, CC0): Training split, "
                           "validation carved out of it; Testing split used only for the "
                           "final test metrics",
            "counts": split.counts,
            "validation_split": split.split_method,
            "skipped_unreadable": [p for p, _ in split.failed],
            # Masks supervised training only (auxiliary loss); None when none were used.
            "tumour_masks": dm.mask_summary,
        },
        "training": {
            "command": run.command,
            "seed": cfg.seed,
            "config": cfg.to_dict(),
            "precision": cfg.precision,
            "precision_probe": run.precision_probe,
            "epochs_run": run.epochs_run,
            "best_checkpoint": best.name,
            "best_epoch": _best_epoch(rows, cfg.monitor),
            "wall_seconds": round(wall, 1),
            "fit_seconds": round(run.fit_seconds, 1),
            "hardware": hardware_summary(),
            "resumed": run.resumed,
            # Fine-tuning: the model these weights started from (None: from scratch).
            "parent": run.parent,
        },
        "metrics": metrics,
    }
    if tumour_threshold is not None:
        card["tumour_threshold"] = tumour_threshold
    bundle = save_bundle(model, out / "bundle", model_name=cfg.model, classes=classes,
                         preprocess=dm.pre, temperature=temperature, extra=card)
    exported = None
    if cfg.export_bundle:
        exported = save_bundle(model, cfg.export_bundle, model_name=cfg.model, classes=classes,
                               preprocess=dm.pre, temperature=temperature, extra=card)
    summary = {"run_dir": str(out), "bundle": str(bundle),
               "exported_bundle": str(exported) if exported else None,
               "temperature": temperature, **card["training"], "metrics": metrics}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def _tumour_threshold(model: torch.nn.Module, dm: CacheDataModule,
                      validation: dict) -> float | None:
    """The tumour threshold chosen on the validation masks (training/tumour_threshold.py),
    its Dice added to ``validation``; None for a model without a tumour head or masks."""
    if dm.val_masks is None or not has_tumour_head(model):
        return None
    try:
        choice = validation_threshold(model, dm.cached.images[dm.val_rows], dm.val_masks[0])
    except ValueError as exc:  # no validation image with a mask: the card says so
        log.warning("no tumour threshold chosen: %s", exc)
        return None
    validation.update(choice.card_metrics())
    print(f"tumour threshold {choice.threshold:.2f}: validation Dice {choice.dice:.4f} on "
          f"{choice.images} masked slices", file=sys.stderr)
    return choice.threshold


def _check_resumable(cfg: TrainConfig, saved_path: Path) -> None:
    """Refuse a resume whose settings would not fit the saved optimiser/schedule state."""
    if not saved_path.is_file():
        return
    saved = yaml.safe_load(saved_path.read_text()) or {}
    keys = fixed_on_resume()
    now = cfg.to_dict()
    changed = [k for k in keys if k in saved and saved[k] != now[k]]
    if changed:
        raise TrainingError(
            "--resume with settings that differ from the run's config.yaml: "
            + ", ".join(f"{k} {saved[k]!r} -> {now[k]!r}" for k in changed)
            + " (the saved learning-rate schedule and data split depend on them); "
            "start a new run with another --out instead")


def _devices(value: str):
    try:
        return int(value)
    except (TypeError, ValueError):
        return value


def _last_epoch(out: Path) -> int:
    rows = read_metrics(out / "metrics.csv")
    return int(rows[-1]["epoch"]) + 1 if rows else 0


def _best_epoch(rows: list[dict], monitor: str) -> int | None:
    vals = [(r[monitor], int(r["epoch"])) for r in rows if not np.isnan(r[monitor])]
    if not vals:
        return None
    pick = min(vals) if monitor == "val_loss" else max(vals, key=lambda v: (v[0], -v[1]))
    return pick[1] + 1
