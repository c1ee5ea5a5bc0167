"""End to end on synthetic data: run folder contents, loss going down, resume, Ctrl-C."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from braintumor.data.splits import split_sides
from braintumor.models import load_bundle
from braintumor.training.config import AugmentConfig
from braintumor.training.run import train
from tests.conftest import write_masks


def _weights(ckpt):
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def test_run_writes_everything_and_lowers_the_loss(tiny_data, tiny_config, tmp_path):
    # Augmentation off so that 5 short epochs reliably show the loss going down.
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=5, export_bundle=str(tmp_path / "exp"),
                      augment=AugmentConfig(enabled=False))
    summary = train(cfg, command="braintumor train (test)")
    run = tmp_path / "run"
    for name in ("config.yaml", "metrics.csv", "curves.png", "summary.json",
                 "checkpoints/best.ckpt", "checkpoints/last.ckpt", "bundle/card.json",
                 "bundle/model.safetensors", "tensorboard"):
        assert (run / name).exists(), name
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2, 3, 4]
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    for key in ("val_loss", "val_acc", "val_f1"):
        assert rows[-1][key] != ""
    # no masks: that column stays empty in every row, also in the rows rewritten each epoch
    assert [r["train_mask_loss"] for r in rows] == [""] * 5

    loaded = load_bundle(tmp_path / "exp")
    card = loaded.card
    assert loaded.classes == ["glioma", "meningioma", "notumor", "pituitary"]
    assert card["training"]["command"] == "braintumor train (test)"
    assert card["training"]["config"]["image_size"] == 32
    assert card["training"]["hardware"]["torch"] == torch.__version__
    assert card["training"]["wall_seconds"] > 0
    assert card["metrics"]["test"]["images"] == 32  # the Testing split, scored once at the end
    assert 0 <= card["metrics"]["validation"]["macro_f1"] <= 1
    assert loaded.temperature > 0 and loaded.temperature == summary["temperature"]
    assert card["preprocess"]["image_size"] == 32
    assert json.loads((run / "summary.json").read_text())["metrics"] == card["metrics"]


def test_sgd_run_lowers_the_loss_with_nesterov_momentum(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=5, optimizer="sgd", lr=0.05,
                      augment=AugmentConfig(enabled=False))
    train(cfg)
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    (opt,) = ckpt["optimizer_states"]
    assert all(g["nesterov"] and g["momentum"] > 0 for g in opt["param_groups"])
    assert any("momentum_buffer" in st for st in opt["state"].values())


def test_run_with_tumour_masks_learns_them_and_ships_the_plain_classifier(
        tiny_data, tiny_config, tmp_path):
    masks = write_masks(tiny_data, tmp_path / "masks", size=48)
    (masks / "Training" / "glioma" / "orphan.png").write_bytes(b"no image has this name")
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=4, masks=str(masks),
                      mask_loss_weight=1.0, mask_empty_classes=["notumor"],
                      augment=AugmentConfig(rotation_degrees=10.0, hflip=0.5, vflip=0.0))
    sides = split_sides(cfg.data, cfg.image_size, cfg.val_fraction, cfg.seed)
    bad = next(masks / "Training" / "meningioma" / f"{Path(p).stem}.png"
               for p, side in sides.items()
               if side == "fit" and Path(p).parent.name == "meningioma")
    bad.write_bytes(b"not a png")  # an unreadable mask: listed, that image left out
    with pytest.warns(UserWarning, match="1 mask\\(s\\) left out"):
        train(cfg)
    with (tmp_path / "run" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    mask_losses = [float(r["train_mask_loss"]) for r in rows]
    assert mask_losses[-1] < mask_losses[0]
    card = load_bundle(tmp_path / "run" / "bundle").card
    used = card["data"]["tumour_masks"]
    assert used["problems"] == [str(bad)]
    # Training rows only (validation never sees a mask); notumor counts as an empty mask.
    train_counts = card["data"]["counts"]["train"]
    assert used["training_images_with_mask"] == {
        "glioma": train_counts["glioma"], "meningioma": train_counts["meningioma"] - 1,
        "notumor": train_counts["notumor"], "pituitary": train_counts["pituitary"]}
    # The bundle is the plain model: the mask head stays in the training checkpoint.
    ckpt = _weights(tmp_path / "run" / "checkpoints" / "best.ckpt")
    assert any(k.startswith("mask_loss.head") for k in ckpt)
    plain = load_bundle(tmp_path / "run" / "bundle").model
    assert set(plain.state_dict()) == {k[len("model."):] for k in ckpt if k.startswith("model.")}


class _CtrlC(L.Callback):
    """Presses Ctrl-C when batch ``batch`` of epoch ``epoch`` is about to run."""

    def __init__(self, epoch: int, batch: int):
        self.epoch, self.batch = epoch, batch

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == self.epoch and batch_idx == self.batch:
            raise KeyboardInterrupt


def _add_callback(monkeypatch, callback: L.Callback) -> None:
    """Make the next training runs' Trainer also call ``callback``."""
    import braintumor.training.run as run_mod

    real_trainer = L.Trainer

    def trainer_with_callback(*args, **kwargs):
        kwargs["callbacks"] = [*kwargs["callbacks"], callback]
        return real_trainer(*args, **kwargs)

    monkeypatch.setattr(run_mod.L, "Trainer", trainer_with_callback)


def _press_ctrl_c(monkeypatch, epoch: int, batch: int) -> None:
    _add_callback(monkeypatch, _CtrlC(epoch, batch))


_MIX_AND_EMA = dict(ema_decay=0.9, augment=AugmentConfig(mixup_alpha=0.4, cutmix_alpha=1.0))
_PROGRESSIVE = dict(low_res_size=24, low_res_epochs=2)  # the Ctrl-C falls in the low-res epochs


@pytest.mark.parametrize("extra", [{}, _MIX_AND_EMA, _PROGRESSIVE],
                         ids=["plain", "mix+ema", "progressive"])
def test_resume_continues_exactly_like_an_uninterrupted_run(tiny_data, tiny_config, tmp_path,
                                                            monkeypatch, extra):
    train(tiny_config(tiny_data, tmp_path / "straight", epochs=3, **extra))
    cfg = tiny_config(tiny_data, tmp_path / "resumed", epochs=3, **extra)
    with monkeypatch.context() as m:
        _press_ctrl_c(m, epoch=1, batch=0)  # stop after k = 1 epoch
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    train(cfg, resume=True)  # the remaining m = 2 epochs
    a = _weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    with (tmp_path / "straight" / "metrics.csv").open() as f:
        s_rows = list(csv.DictReader(f))
    with (tmp_path / "resumed" / "metrics.csv").open() as f:
        r_rows = list(csv.DictReader(f))
    assert len(s_rows) == 3
    for key in ("train_loss", "val_loss", "val_acc"):
        assert [r[key] for r in s_rows] == [r[key] for r in r_rows], key


class _InputSides(L.Callback):
    """Records the side of every batch the model is trained on, per epoch."""

    def __init__(self):
        self.sides: dict[int, set[int]] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.sides.setdefault(trainer.current_epoch, set()).add(batch[0].shape[-1])


def test_progressive_resizing_trains_small_first_then_at_full_size(
        tiny_data, tiny_config, tmp_path, monkeypatch):
    seen = _InputSides()
    _add_callback(monkeypatch, seen)
    # patience 1: validation at 32 px of a model still training at 24 px must neither stop
    # the run nor become its best checkpoint.
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=3, low_res_size=24, low_res_epochs=2,
                      patience=1, export_bundle=str(tmp_path / "exp"))
    train(cfg)
    assert seen.sides == {0: {24}, 1: {24}, 2: {32}}
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.ckpt", map_location="cpu",
                      weights_only=True)
    assert best["epoch"] == 2
    card = load_bundle(tmp_path / "exp").card  # validated and bundled at the full size
    assert card["preprocess"]["image_size"] == 32
    assert card["training"]["config"]["low_res_epochs"] == 2


def test_progressive_resizing_shrinks_the_tumour_masks_with_the_images(
        tiny_data, tiny_config, tmp_path):
    masks = write_masks(tiny_data, tmp_path / "masks", size=48)
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=3, low_res_size=24, low_res_epochs=2,
                      masks=str(masks), mask_loss_weight=1.0, mask_empty_classes=["notumor"])
    train(cfg)
    with (tmp_path / "run" / "metrics.csv").open() as f:
        mask_losses = [float(r["train_mask_loss"]) for r in csv.DictReader(f)]
    # a mask loss in every epoch, small-image ones included, and one that learns
    assert len(mask_losses) == 3 and all(0 < v < 10 for v in mask_losses)
    assert mask_losses[-1] < mask_losses[0]


def test_ema_weights_are_checkpointed_and_bundled(tiny_data, tiny_config, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=2, ema_decay=0.9,
                      augment=AugmentConfig(enabled=False))
    train(cfg)
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", map_location="cpu",
                      weights_only=True)
    averaged, current = ckpt["state_dict"], ckpt["current_model_state"]
    key = next(k for k in averaged if k.endswith("weight") and averaged[k].dim() == 4)
    assert not torch.equal(averaged[key], current[key])  # the average lags the live weights
    best = _weights(tmp_path / "run" / "checkpoints" / "best.ckpt")
    bundled = load_bundle(tmp_path / "run" / "bundle").model.state_dict()
    for k, v in bundled.items():
        assert torch.equal(v.float(), best["model." + k].float()), k


def test_resume_refuses_a_changed_schedule(tiny_data, tiny_config, tmp_path):
    from braintumor.training.run import TrainingError

    train(tiny_config(tiny_data, tmp_path / "run", epochs=1))
    with pytest.raises(TrainingError, match="epochs"):
        train(tiny_config(tiny_data, tmp_path / "run", epochs=2), resume=True)


def test_ctrl_c_keeps_the_last_epoch_and_resume_finishes(tiny_data, tiny_config, tmp_path,
                                                         monkeypatch):
    cfg = tiny_config(tiny_data, tmp_path / "run", epochs=3)
    with monkeypatch.context() as m:
        _press_ctrl_c(m, epoch=1, batch=1)  # in the middle of the second epoch
        with pytest.raises(KeyboardInterrupt, match="--resume"):
            train(cfg)
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] == 0
    assert not list((tmp_path / "run" / "checkpoints").glob(".*tmp"))
    summary = train(cfg, resume=True)
    assert summary["epochs_run"] == 3
    assert load_bundle(tmp_path / "run" / "bundle").card["training"]["resumed"] is True


def test_group_cap_run_trains_on_capped_epochs_and_resumes_exactly(tiny_data, tiny_config,
                                                                   tmp_path, monkeypatch,
                                                                   capsys):
    import braintumor.data.splits as splits_mod

    # The synthetic images have no near-copies; call every 2 consecutive files a group.
    monkeypatch.setattr(splits_mod, "duplicate_group_ids",
                        lambda cached, rows: np.arange(len(rows)) // 2)
    train(tiny_config(tiny_data, tmp_path / "straight", epochs=3, max_group_copies=1,
                      batch_size=4))
    with (tmp_path / "straight" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3
    # Groups of 2 capped at 1: an epoch holds half of the training part.
    n_fit = sum(1 for side in split_sides(tiny_data, 32, 0.25, 0).values() if side == "fit")
    assert f"an epoch draws {n_fit // 2} of {n_fit} training images" in capsys.readouterr().err
    cfg = tiny_config(tiny_data, tmp_path / "resumed", epochs=3, max_group_copies=1,
                      batch_size=4)
    with monkeypatch.context() as m:
        _press_ctrl_c(m, epoch=1, batch=0)
        with pytest.raises(KeyboardInterrupt):
            train(cfg)
    train(cfg, resume=True)
    a = _weights(tmp_path / "straight" / "checkpoints" / "last.ckpt")
    b = _weights(tmp_path / "resumed" / "checkpoints" / "last.ckpt")
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_cli_trains_with_ddp_on_two_cpu_processes(tiny_data, tmp_path):
    # The multi-GPU path (--devices/--strategy) without a GPU: two CPU processes over gloo,
    # with the near-copy cap's custom sampler, which Lightning has to shard between them.
    import subprocess
    import sys

    run = tmp_path / "run"
    out = subprocess.run(
        [sys.executable, "-m", "braintumor", "train", "--data", str(tiny_data), "--out", str(run),
         "--image-size", "32", "--epochs", "3", "--batch-size", "8", "--val-fraction", "0.25",
         "--precision", "32-true", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--max-group-copies", "1", "--seed", "0", "--export-bundle", str(tmp_path / "exp")],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Starting with 2 processes" in out.stdout + out.stderr
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]  # rank 0 alone writes the log
    card = load_bundle(tmp_path / "exp").card
    assert card["training"]["config"]["strategy"] == "ddp"
    assert card["metrics"]["test"]["images"] == 32  # scored once, on rank 0, unsharded
