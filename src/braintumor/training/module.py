"""The LightningModule: loss, optimiser and schedule, batch augmentation, metrics.

Batches arrive as uint8 (N, S, S) on the training device; ``on_after_batch_transfer``
scales them to [0, 1] and, in training only, augments the whole batch there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torchmetrics
from torch import nn

from braintumor.models import create_model
from braintumor.training.augment import BatchAugment
from braintumor.training.config import TrainConfig
from braintumor.training.mask_loss import MaskLoss
from braintumor.training.mix import BatchMix


def class_weights(counts: Sequence[float] | np.ndarray, enabled: bool) -> torch.Tensor | None:
    """Inverse-frequency weights, normalised to mean 1 (so the loss scale stays comparable)."""
    if not enabled:
        return None
    c = torch.as_tensor(counts, dtype=torch.float32).clamp_min(1)
    w = c.sum() / (len(c) * c)
    return w / w.mean()


class Classifier(L.LightningModule):
    def __init__(self, cfg: TrainConfig, num_classes: int, class_counts=None):
        super().__init__()
        # Plain values only: the checkpoint must load without unpickling our classes.
        self.save_hyperparameters({"config": cfg.to_dict(), "num_classes": num_classes})
        self.cfg = cfg
        self.model = create_model(cfg.model, num_classes=num_classes, in_channels=1,
                                  image_size=cfg.image_size, **cfg.model_kwargs)
        if cfg.channels_last:
            # Module.to takes memory_format at run time; torch's overloads do not list it.
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.augment = BatchAugment(cfg.augment)
        self.mask_loss: MaskLoss | None = None
        if cfg.masks:
            layer = cfg.mask_layer or getattr(self.model, "target_layer", None)
            if layer is None:
                raise ValueError(f"model {cfg.model} names no target_layer; set mask_layer")
            self.mask_loss = MaskLoss(self.model, layer, cfg.image_size)
        a = cfg.augment
        self.mix = BatchMix(a.mixup_alpha, a.cutmix_alpha, a.mix_prob if a.enabled else 0.0)
        weights = class_weights(class_counts, cfg.class_weights) if class_counts is not None \
            else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=cfg.label_smoothing)
        self.val_acc = torchmetrics.Accuracy("multiclass", num_classes=num_classes)
        self.val_f1 = torchmetrics.F1Score("multiclass", num_classes=num_classes, average="macro")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int = 0) -> Any:
        images, labels, *mask = batch  # training batches may carry (masks, has_mask)
        x = images.float().div_(255.0).unsqueeze(1)
        masks = mask[0].float().div_(255.0).unsqueeze(1) if mask else None
        if self.trainer is not None and self.trainer.training:
            # Lightning does not checkpoint RNG states (and a resumed run draws from the RNG
            # in a different order while setting up). Seeding each step from (seed, step,
            # rank) makes its augmentation and dropout independent of history, so a run
            # resumed from last.ckpt continues exactly as the uninterrupted one would have.
            torch.manual_seed(self.cfg.seed * 1_000_003 + self.global_step * 7919
                              + self.global_rank)
            x, masks = self._progressive_resize(x, masks)
            self.augment.train()
            x, masks = self.augment.with_mask(x, masks)
        if self.cfg.channels_last:  # once, on what the model will see
            x = x.contiguous(memory_format=torch.channels_last)
        if masks is not None:
            return x, labels, masks, mask[1]
        return x, labels

    def training_resolution(self, epoch: int) -> int:
        """The side training batches have in ``epoch`` (progressive resizing, if configured)."""
        cfg = self.cfg
        if cfg.low_res_size is not None and epoch < cfg.low_res_epochs:
            return cfg.low_res_size
        return cfg.image_size

    def _progressive_resize(self, x: torch.Tensor, masks: torch.Tensor | None
                            ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Shrink a training batch (and its masks) for the low-resolution epochs.

        Before augmentation, so the warp also runs on the smaller batch; antialiased, so the
        small images look like the cache would at that size rather than aliased samples of
        it. No random numbers are drawn: the augmentation stream is the same either way.
        """
        side = self.training_resolution(self.current_epoch)
        if side == x.shape[-1]:
            return x, masks

        def shrink(t: torch.Tensor) -> torch.Tensor:
            return nn.functional.interpolate(t, size=(side, side), mode="bilinear",
                                             antialias=True, align_corners=False)

        return shrink(x), None if masks is None else shrink(masks).clamp_(0.0, 1.0)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y, *mask = batch
        mixed = self.mix(x, y)  # after the per-step reseed: repeatable on resume
        loss = mixed.loss(self.loss_fn, self.model(mixed.x))
        # train_loss stays the classification loss alone, comparable with runs without masks.
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True,
                 batch_size=len(y), sync_dist=True)
        if self.mask_loss is not None and mask:
            mask_loss = self.mask_loss(*mask)
            self.log("train_mask_loss", mask_loss, on_step=False, on_epoch=True,
                     batch_size=len(y), sync_dist=True)
            loss = loss + self.cfg.mask_loss_weight * mask_loss
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        logits = self.model(x).float()
        loss = nn.functional.cross_entropy(logits, y)  # unweighted: comparable across runs
        self.val_acc.update(logits, y)
        self.val_f1.update(logits, y)
        self.log("val_loss", loss, on_epoch=True, prog_bar=True, batch_size=len(y),
                 sync_dist=True)
        self.log("val_acc", self.val_acc, on_epoch=True, prog_bar=True)
        self.log("val_f1", self.val_f1, on_epoch=True, prog_bar=True)

    def configure_optimizers(self) -> Any:  # an optimizer, or Lightning's dict with a schedule
        cfg = self.cfg
        decay: list[torch.nn.Parameter] = []
        no_decay: list[torch.nn.Parameter] = []
        for p in self.parameters():  # the model's, then the mask head's (if any)
            # Weight decay on batch-norm scales and biases only shrinks them; leave them out.
            (no_decay if p.ndim <= 1 else decay).append(p)
        groups = [{"params": decay, "weight_decay": cfg.weight_decay},
                  {"params": no_decay, "weight_decay": 0.0}]
        if cfg.optimizer == "sgd":
            # Coupled L2 decay, as SGD recipes for CNNs trained from scratch use it; OneCycle
            # then cycles the momentum (0.95 -> 0.85 -> 0.95) as it cycles Adam's beta1.
            opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9,
                                                         nesterov=True)
        else:
            opt_cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
            opt = opt_cls(groups, lr=cfg.lr)
        if cfg.schedule == "constant":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if cfg.schedule == "onecycle":
            sched: torch.optim.lr_scheduler.LRScheduler = torch.optim.lr_scheduler.OneCycleLR(
                opt, max_lr=cfg.lr, total_steps=max(total, 1), pct_start=cfg.warmup_fraction,
                div_factor=25.0, final_div_factor=1e3)
        else:
            warm = max(1, int(total * cfg.warmup_fraction))
            sched = torch.optim.lr_scheduler.SequentialLR(opt, [
                torch.optim.lr_scheduler.LinearLR(opt, 0.04, 1.0, warm),
                torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(total - warm, 1)),
            ], milestones=[warm])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
