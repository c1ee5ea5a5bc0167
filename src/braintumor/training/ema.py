"""Exponential moving average of the weights, with the decay warmed up.

Lightning's ``EMAWeightAveraging`` averages with a fixed decay from the first step, so with
decay 0.998 the random initial weights still make up 13 % of the average after 1000 steps
(about 13 epochs here): a run measured validation accuracy near chance for its first ten
epochs, which also misleads early stopping. The usual remedy (TensorFlow's
``ExponentialMovingAverage(num_updates=...)``, timm's ``ModelEmaV3(use_warmup=True)``) is a
decay that grows with the number of updates, ``min(decay, (1 + n) / (10 + n))``, so the
average follows the live weights closely at first and smooths more as training settles.
This module keeps Lightning's callback (checkpointing, swapping the averaged weights in for
validation, resume) and only replaces its averaging function.
"""

from __future__ import annotations

from functools import partial

import torch
from lightning.pytorch.callbacks import WeightAveraging


def warmup_ema(averaged: torch.Tensor, current: torch.Tensor, num_averaged: torch.Tensor,
               *, decay: float) -> torch.Tensor:
    """One EMA step whose decay is ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates."""
    d = torch.clamp((1.0 + num_averaged) / (10.0 + num_averaged), max=decay)
    return averaged * d + current * (1.0 - d)


class WarmupEMA(WeightAveraging):
    """Lightning weight averaging after every optimiser step with :func:`warmup_ema`.

    Validation, the checkpoints' ``state_dict`` (hence the best checkpoint and the bundle) use
    the averaged weights; the live weights travel in ``current_model_state`` for resuming.
    Buffers (batch-norm statistics) are averaged too.
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"EMA decay must be between 0 and 1, got {decay}")
        super().__init__(use_buffers=True, avg_fn=partial(warmup_ema, decay=decay))
        self.decay = decay
