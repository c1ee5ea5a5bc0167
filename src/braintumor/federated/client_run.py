"""``braintumor federated client --data SITE_DIR``: a site's process."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from braintumor.federated.site import SiteTrainer
from braintumor.training.config import TrainConfig
from braintumor.training.data import CacheDataModule


def site_trainer(cfg: TrainConfig, data: str, name: str | None = None) -> SiteTrainer:
    """The site's images from its decoded cache: Training split minus a local validation."""
    dm = CacheDataModule(data, cfg.image_size, cfg.batch_size, cfg.val_fraction, cfg.seed,
                         cfg.max_train_images, custom_classes=cfg.custom_classes)
    dm.prepare()
    images = np.asarray(dm.cached.images)
    tr, va = dm.train_rows, dm.val_rows
    return SiteTrainer(name or Path(data).resolve().name, cfg, dm.classes, images[tr],
                       dm.labels[tr], images[va], dm.labels[va])


def run_client(cfg: TrainConfig, *, data: str, address: str, name: str | None = None,
               ca_file: str | None = None) -> None:
    from braintumor.federated.client import start_site_client

    trainer = site_trainer(cfg, data, name)
    print(f"site {trainer.name}: {len(trainer.labels)} training images, "
          f"{trainer.spec.describe()}; connecting to {address}", file=sys.stderr, flush=True)
    root = Path(ca_file).read_bytes() if ca_file else None
    start_site_client(address, trainer, root_certificates=root)
