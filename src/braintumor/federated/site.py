"""One site's local work: a few epochs on its own images, then a score on its own validation.

A plain loop over the training package's :class:`~braintumor.training.module.Classifier`
(same model, batch augmentation, class-weighted loss) rather than a Lightning ``Trainer``
per round: a round is a few hundred steps, a Trainer's setup, checkpointing and loggers are
not wanted at a site, and FedProx needs its proximal term added to the loss, which is one
line here. No flwr import: the simulation, the Flower client and the tests share it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from braintumor.evaluation.metrics import headline_metrics
from braintumor.federated.weights import ModelSpec, load_arrays, model_arrays
from braintumor.models.runtime import predict_logits
from braintumor.training.config import TrainConfig
from braintumor.training.module import Classifier


@dataclass
class LocalResult:
    arrays: list[np.ndarray]
    num_examples: int
    metrics: dict[str, float | int | str]


class SiteTrainer:
    """A site's data (uint8 images from the decoded cache) and its copy of the model."""

    def __init__(self, name: str, cfg: TrainConfig, classes: list[str], train_images: np.ndarray,
                 train_labels: np.ndarray, val_images: np.ndarray | None = None,
                 val_labels: np.ndarray | None = None):
        self.name, self.cfg, self.classes = name, cfg, list(classes)
        self.images = torch.from_numpy(np.ascontiguousarray(train_images))
        self.labels = torch.from_numpy(np.asarray(train_labels, dtype=np.int64))
        self.val_images, self.val_labels = val_images, val_labels
        counts = np.bincount(self.labels.numpy(), minlength=len(classes))
        self.module = Classifier(cfg, len(classes), counts.tolist())
        # Batches in the memory format the Classifier put the model in (cfg.channels_last:
        # 1.4x faster CPU steps); loading the global weights copies into it and keeps it.
        self.memory_format = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.spec = ModelSpec(cfg.model, cfg.image_size, tuple(classes), dict(cfg.model_kwargs))

    def fit(self, arrays: list[np.ndarray], epochs: int, lr: float, proximal_mu: float = 0.0,
            server_round: int = 0) -> LocalResult:
        """Train from the global weights; FedProx adds mu/2 * ||w - w_global||^2 to the loss."""
        t0 = time.perf_counter()
        model = self.module.model
        load_arrays(model, arrays, self.spec)
        anchor = [p.detach().clone() for p in model.parameters()] if proximal_mu > 0 else None
        decay = [p for p in model.parameters() if p.ndim > 1]
        no_decay = [p for p in model.parameters() if p.ndim <= 1]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay},
                                 {"params": no_decay, "weight_decay": 0.0}], lr=lr)
        n = len(self.labels)
        bs = min(self.cfg.batch_size, n)
        # Seeded by (seed, round, site): a rerun of the federation draws the same batches.
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + server_round * 7919
                                          + sum(map(ord, self.name)))
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=g)))
        model.train()
        self.module.augment.train()
        losses = []
        for _ in range(epochs):
            order = torch.randperm(n, generator=g)
            # drop the last batch when short: a batch of 1-2 gives batch-norm noise
            stop = n - n % bs if n > bs else n
            for i in range(0, stop, bs):
                idx = order[i:i + bs]
                x = self.images[idx].float().div_(255.0).unsqueeze(1)
                x, _ = self.module.augment.with_mask(x, None)
                x = x.contiguous(memory_format=self.memory_format)
                loss = self.module.loss_fn(model(x), self.labels[idx])
                if anchor is not None:
                    prox = sum(((p - a) ** 2).sum() for p, a in
                               zip(model.parameters(), anchor, strict=True))
                    loss = loss + proximal_mu / 2 * prox
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(float(loss.detach()))
        metrics: dict[str, float | int | str] = {
            "site": self.name, "train_loss": float(np.mean(losses)) if losses else float("nan"),
            "train_images": n, "local_seconds": round(time.perf_counter() - t0, 2)}
        metrics.update(self.validate())
        return LocalResult(model_arrays(model), n, metrics)

    def validate(self, arrays: list[np.ndarray] | None = None) -> dict[str, float | int]:
        """Accuracy on the site's own validation images (none: an empty dict)."""
        model = self.module.model
        if arrays is not None:
            load_arrays(model, arrays, self.spec)
        if self.val_images is None or self.val_labels is None or not len(self.val_images):
            return {}
        logits = predict_logits(model.eval(), np.asarray(self.val_images))
        m = headline_metrics(logits, self.val_labels, self.classes)
        return {"val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
                "val_images": m["images"]}
