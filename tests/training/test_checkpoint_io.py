"""A checkpoint write that fails (full disk) leaves the previous checkpoint intact."""

from __future__ import annotations

import errno

import pytest
import torch

from braintumor.training import checkpoint_io
from braintumor.training.checkpoint_io import AtomicCheckpointIO, CheckpointWriteError


def _full_disk_save(obj, f, *args, **kwargs):
    f.write(b"half a checkpoint")
    raise OSError(errno.ENOSPC, "No space left on device")


def test_failed_write_keeps_previous_checkpoint(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    monkeypatch.setattr(checkpoint_io.torch, "save", _full_disk_save)
    with pytest.raises(CheckpointWriteError, match="disk full.*previous checkpoint .* intact"):
        io.save_checkpoint({"step": 2, "w": torch.zeros(3)}, path)
    monkeypatch.undo()
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temp file left


def test_failed_first_write_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoint_io.torch, "save", _full_disk_save)
    with pytest.raises(CheckpointWriteError, match="no checkpoint was written"):
        AtomicCheckpointIO().save_checkpoint({"step": 1}, tmp_path / "best.ckpt")
    assert list(tmp_path.iterdir()) == []


def test_full_disk_during_training_is_a_clear_error(tiny_data, tiny_config, tmp_path,
                                                    monkeypatch, capsys):
    """Through the CLI: exit code 1, a message, and the earlier last.ckpt still loads."""
    from braintumor.cli import main

    real_save = torch.save
    calls = {"n": 0}

    def fail_in_second_epoch(obj, f, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 2:  # epoch 1 wrote best.ckpt and last.ckpt; then the disk is full
            return _full_disk_save(obj, f)
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(checkpoint_io.torch, "save", fail_in_second_epoch)
    run = tmp_path / "run"
    code = main(["train", "--data", str(tiny_data), "--out", str(run), "--epochs", "2",
                 "--image-size", "32", "--batch-size", "8", "--val-fraction", "0.25",
                 "--precision", "32-true", "--accelerator", "cpu", "--devices", "1"])
    assert code == 1
    assert "could not write checkpoint" in capsys.readouterr().err
    monkeypatch.undo()
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 0
