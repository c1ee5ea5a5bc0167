"""Every training setting in one dataclass, read from YAML/TOML and overridden by CLI flags.

One flat record (not nested sections) so that a config file, a CLI flag and the
``config.yaml`` a run writes back all use the same names: what a run did can be repeated
by passing its own ``config.yaml`` as ``--config``.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or option that cannot be used; the message names it."""


@dataclass
class AugmentConfig:
    """Batch augmentation (the published recipe: rotation, flips, zoom, brightness/contrast)."""

    enabled: bool = True
    rotation_degrees: float = 15.0
    hflip: float = 0.5  # probability
    vflip: float = 0.5
    zoom: tuple[float, float] = (0.9, 1.15)  # affine scale range; >1 zooms in (crops)
    translate: float = 0.06  # fraction of the image side
    brightness: float = 0.2  # +- fraction
    contrast: float = 0.2
    # MixUp / CutMix (training/mix.py): Beta(alpha, alpha) mixing weights; 0 disables each.
    mixup_alpha: float = 0.0
    cutmix_alpha: float = 0.0
    mix_prob: float = 1.0  # fraction of batches mixed when an alpha is > 0
    # Random erasing (Zhong et al. 2020): with this probability per image, one rectangle
    # covering a share of the image in ``erase_area`` (aspect ratio 0.3-3.3) is set to 0, the
    # background's value. 0 disables it and draws no random numbers.
    erase_prob: float = 0.0
    erase_area: tuple[float, float] = (0.02, 0.2)


OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    data: str | None = None
    out: str = "runs/braintumor-net"
    model: str = "braintumor-net"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    image_size: int = 128
    epochs: int = 20
    # Progressive resizing (fast.ai; Tan & Le 2021, EfficientNetV2): the first
    # ``low_res_epochs`` training epochs see each batch resized to ``low_res_size`` px, which
    # costs about (low/full)^2 of a step, so more epochs fit the same time; the rest, and every
    # validation pass, run at ``image_size``. None / 0: off.
    low_res_size: int | None = None
    low_res_epochs: int = 0
    batch_size: int = 64
    optimizer: str = "adamw"  # adam | adamw | sgd (Nesterov momentum; see configure_optimizers)
    lr: float = 3e-3  # peak learning rate of the schedule
    weight_decay: float = 5e-4
    schedule: str = "onecycle"  # onecycle | cosine | constant
    warmup_fraction: float = 0.15  # of all steps (onecycle pct_start, cosine warm-up)
    label_smoothing: float = 0.0
    # Exponential moving average of the weights (training/ema.py, decay warmed up): validation,
    # checkpoints and the bundle use the averaged weights. None disables it.
    ema_decay: float | None = None
    class_weights: bool = True
    # Auxiliary tumour-mask loss (training/mask_loss.py): a folder of binary masks mirroring
    # the dataset (``masks``) supervises where the tumour is, on the feature map of
    # ``mask_layer`` (default: the model's Grad-CAM target layer), with weight
    # ``mask_loss_weight``. Images of ``mask_empty_classes`` (e.g. notumor) count as having an
    # empty mask; other images without a mask file are left out of that loss. None: off.
    masks: str | None = None
    mask_loss_weight: float = 0.5
    mask_layer: str | None = None
    mask_empty_classes: list[str] = field(default_factory=list)
    seed: int = 42
    val_fraction: float = 0.15
    monitor: str = "val_loss"  # val_loss (min) | val_acc | val_f1 (max)
    patience: int = 8  # epochs without improvement before early stopping; 0 disables
    max_train_images: int | None = None
    # Share of the training part kept (whole duplicate groups, seeded), taken after the
    # validation split, which therefore stays the same: learning curves, fine-tuning vs
    # scratch. None: all of it.
    train_fraction: float | None = None
    # At most this many members of each near-duplicate group of the training part per epoch
    # (drawn anew every epoch; training/data.py GroupCappedSampler). None: every image.
    max_group_copies: int | None = None
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    accelerator: str = "auto"
    devices: str = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "auto"  # auto: bf16-mixed on CPUs where it is supported and faster
    num_threads: int | None = None
    channels_last: bool = False
    deterministic: bool = True
    progress_bar: bool = True
    export_bundle: str | None = None
    # Fine-tuning (training/init_from.py): start from the weights of a bundle folder, a
    # Lightning checkpoint, a run folder or ``bundled`` (the shipped model); same architecture
    # as ``model``/``model_kwargs``. The card records the parent's weights SHA-256. None: from
    # scratch.
    init_from: str | None = None
    # Class list other than the data's folders (data/labels.py parse_class_spec): names
    # (``glioma,meningioma,newtype``) or a relabelling (``tumour=glioma+meningioma+pituitary,
    # notumor=notumor``). With init_from, a class list that differs from the parent's gets a
    # new classifier (rows of classes the parent knew keep its weights). None: the folders.
    custom_classes: str | None = None
    # Parameter-name prefixes kept fixed while training (``stem``, ``stages.0``; batch-norm
    # statistics in them too): the early, generic layers of a parent model.
    freeze: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["augment"]["zoom"] = list(self.augment.zoom)
        d["augment"]["erase_area"] = list(self.augment.erase_area)
        return d

    def dump(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


_CLI_NAMES = {  # argparse dest -> config field, where they differ
    "class_weights": "class_weights",
}


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    text = path.read_text()
    try:
        if path.suffix.lower() == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            data = tomllib.loads(text)
        else:
            data = yaml.safe_load(text) or {}
    except Exception as exc:
        raise ConfigError(f"{path}: cannot parse config: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: config must be a mapping of option: value")
    return data


def _build(data: dict[str, Any], source: str) -> TrainConfig:
    known = {f.name for f in fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{source}: unknown option(s) {', '.join(unknown)}; "
                          f"known: {', '.join(sorted(known))}")
    data = dict(data)
    aug = data.pop("augment", None) or {}
    if isinstance(aug, bool):
        aug = {"enabled": aug}
    aug_known = {f.name for f in fields(AugmentConfig)}
    bad = sorted(set(aug) - aug_known)
    if bad:
        raise ConfigError(f"{source}: unknown augment option(s) {', '.join(bad)}; "
                          f"known: {', '.join(sorted(aug_known))}")
    for pair in ("zoom", "erase_area"):
        if pair in aug:
            try:
                aug[pair] = tuple(float(z) for z in aug[pair])
            except (TypeError, ValueError):
                raise ConfigError(f"{source}: augment.{pair} must be a list of two numbers, "
                                  f"got {aug[pair]!r}") from None
    cfg = TrainConfig(**data, augment=AugmentConfig(**aug))
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Reject settings that would fail late (after minutes of training) or silently."""
    problems = []
    if cfg.epochs < 1:
        problems.append("epochs must be >= 1")
    if cfg.batch_size < 1:
        problems.append("batch_size must be >= 1")
    if not 0 < cfg.val_fraction < 1:
        problems.append("val_fraction must be between 0 and 1")
    if cfg.lr <= 0:
        problems.append("lr must be > 0")
    if not 0 <= cfg.label_smoothing < 1:
        problems.append("label_smoothing must be in [0, 1)")
    if cfg.augment.mixup_alpha < 0 or cfg.augment.cutmix_alpha < 0:
        problems.append("augment.mixup_alpha and augment.cutmix_alpha must be >= 0")
    if not 0 <= cfg.augment.mix_prob <= 1:
        problems.append("augment.mix_prob must be in [0, 1]")
    zoom = tuple(cfg.augment.zoom)
    if len(zoom) != 2 or not 0 < zoom[0] <= zoom[1]:
        problems.append("augment.zoom must be [low, high] with 0 < low <= high")
    if not 0 <= cfg.augment.erase_prob <= 1:
        problems.append("augment.erase_prob must be in [0, 1]")
    area = tuple(cfg.augment.erase_area)
    if len(area) != 2 or not 0 < area[0] <= area[1] <= 1:
        problems.append("augment.erase_area must be [low, high] with 0 < low <= high <= 1")
    if cfg.mask_loss_weight < 0:
        problems.append("mask_loss_weight must be >= 0")
    if cfg.masks and (cfg.augment.mixup_alpha > 0 or cfg.augment.cutmix_alpha > 0):
        problems.append("the mask loss (masks) cannot be combined with MixUp/CutMix, which "
                        "would need mixed masks; set augment.mixup_alpha and cutmix_alpha to 0")
    if cfg.ema_decay is not None and not 0 < cfg.ema_decay < 1:
        problems.append("ema_decay must be between 0 and 1 (or null to disable)")
    if cfg.optimizer not in OPTIMIZERS:
        problems.append(f"optimizer must be one of {', '.join(OPTIMIZERS)}")
    if cfg.schedule not in {"onecycle", "cosine", "constant"}:
        problems.append("schedule must be onecycle, cosine or constant")
    if cfg.monitor not in {"val_loss", "val_acc", "val_f1"}:
        problems.append("monitor must be val_loss, val_acc or val_f1")
    if cfg.image_size < 32:
        problems.append("image_size must be >= 32")
    if cfg.max_group_copies is not None and cfg.max_group_copies < 1:
        problems.append("max_group_copies must be >= 1 (or null for every image)")
    if cfg.low_res_size is not None and not 32 <= cfg.low_res_size < cfg.image_size:
        problems.append("low_res_size must be >= 32 and below image_size (or null)")
    if cfg.low_res_epochs < 0 or cfg.low_res_epochs >= cfg.epochs:
        problems.append("low_res_epochs must be >= 0 and leave at least one epoch at "
                        "image_size")
    if cfg.low_res_epochs > 0 and cfg.low_res_size is None:
        problems.append("low_res_epochs needs low_res_size")
    if cfg.custom_classes is not None:
        from braintumor.data.labels import ClassSpecError, parse_class_spec

        try:
            parse_class_spec(cfg.custom_classes)
        except ClassSpecError as exc:
            problems.append(str(exc))
    if cfg.train_fraction is not None and not 0 < cfg.train_fraction <= 1:
        problems.append("train_fraction must be in (0, 1] (or null for all)")
    if cfg.freeze and not cfg.init_from:
        problems.append("freeze needs init_from (freezing layers of an untrained model keeps "
                        "them random)")
    if problems:
        raise ConfigError("invalid training config: " + "; ".join(problems))


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None
                ) -> TrainConfig:
    """Defaults <- config file <- overrides (CLI flags that were given, i.e. not None)."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        data = _read_file(Path(path))
        source = str(path)
    for k, v in (overrides or {}).items():
        if v is not None:
            data[k] = v
    return _build(data, source)


def overrides_from_args(args) -> dict[str, Any]:
    """The CLI flags of ``braintumor train`` that were given, as config fields."""
    names = ["data", "model", "out", "epochs", "batch_size", "optimizer", "lr", "weight_decay",
             "image_size", "low_res_size", "low_res_epochs",
             "seed", "val_fraction", "label_smoothing", "ema_decay", "patience", "max_train_images",
             "masks", "mask_loss_weight", "max_group_copies",
             "accelerator", "devices", "strategy", "num_nodes", "precision", "num_threads",
             "export_bundle", "init_from", "custom_classes", "train_fraction"]
    out = {n: getattr(args, n, None) for n in names}
    freeze = getattr(args, "freeze", None)
    if freeze is not None:
        out["freeze"] = [p.strip() for p in freeze.split(",") if p.strip()]
    cw = getattr(args, "class_weights", None)
    if cw is not None:
        out["class_weights"] = cw == "on"
    return out


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    return dataclasses.replace(cfg, **changes)
