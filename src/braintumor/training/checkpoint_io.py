"""Checkpoint writes that either complete or leave the previous file untouched.

Lightning's ``TorchCheckpointIO`` goes through an fsspec transaction (``shutil.move``, no
fsync) and surfaces a full disk as a bare ``OSError``. Here a checkpoint is serialised to a
temporary file in the same folder, flushed to disk, then ``os.replace``d over the old one
(atomic on POSIX and Windows), and a failure says which file and why, and that the previous
checkpoint is intact.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


class CheckpointWriteError(OSError):
    """Writing a checkpoint failed; the earlier checkpoint at the same path is unchanged."""


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            state = "the previous checkpoint there is intact" if path.exists() else \
                "no checkpoint was written"
            raise CheckpointWriteError(
                exc.errno, f"could not write checkpoint {path} ({exc.strerror or exc}; is the "
                f"disk full?); {state}") from exc
        raise


class AtomicCheckpointIO(TorchCheckpointIO):
    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)
