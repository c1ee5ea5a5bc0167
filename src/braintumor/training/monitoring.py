"""Best-checkpoint and early-stopping callbacks that ignore the low-resolution epochs.

With progressive resizing (``low_res_size``), validation runs at the full size while the
model still trains on smaller images: its batch-norm statistics and filters are tuned to
another scale, so the validation loss of those epochs swings widely (run ``prog60`` of
docs/experiments/10-more-epochs-same-time.md: accuracy 0.85, 0.75, 0.37, 0.85 on four
consecutive epochs) and says nothing about the model the run will end with. Lightning's
callbacks have no start epoch, so
these subclasses skip their check (through the one hook each has for skipping, private in
Lightning 2.x: ``tests/training/test_train_run.py`` fails if a Lightning release renames
it) until the first full-size epoch; the patience count then starts from there.
"""

from __future__ import annotations

from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint


class FullSizeEarlyStopping(EarlyStopping):
    """EarlyStopping that only starts watching at ``from_epoch``."""

    def __init__(self, *args, from_epoch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.from_epoch = from_epoch

    def _should_skip_check(self, trainer) -> bool:
        return super()._should_skip_check(trainer) or trainer.current_epoch < self.from_epoch


class FullSizeCheckpoint(ModelCheckpoint):
    """A monitored ModelCheckpoint that saves nothing before ``from_epoch``."""

    def __init__(self, *args, from_epoch: int = 0, **kwargs):
        super().__init__(*args, **kwargs)
        self.from_epoch = from_epoch

    def _should_skip_saving_checkpoint(self, trainer) -> bool:
        return (super()._should_skip_saving_checkpoint(trainer)
                or trainer.current_epoch < self.from_epoch)
