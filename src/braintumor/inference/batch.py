"""Batched forward passes over preprocessed uint8 images (used by evaluation and predict)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from braintumor.data.preprocess import to_model_input


@torch.inference_mode()
def predict_logits(model: nn.Module, images_u8: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Logits (N, C) for preprocessed images (N, S, S) uint8, in eval mode."""
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(images_u8), batch_size):
        outs.append(model(to_model_input(np.asarray(images_u8[i : i + batch_size]))).float().numpy())
    model.train(was_training)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outs)
