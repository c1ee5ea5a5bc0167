"""Every training setting in one dataclass, read from YAML/TOML and overridden by CLI flags.

One flat record (not nested sections) so that a config file, a CLI flag and the
``config.yaml`` a run writes back all use the same names: what a run did can be repeated
by passing its own ``config.yaml`` as ``--config``.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any


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
    # Shift augmentation (training/appearance.py; docs/training.md "Augmentation for other
    # scanners"): what other scanners, sequences and exports do to a slice. Each op applies to
    # an image with its probability (0: off, and it draws no random numbers, so recipes
    # without it keep their random stream), with parameters drawn per image from its range.
    # Pixel aspect, in the one warp (masks follow): width:height stretched by a factor drawn
    # log-uniform in [1 / (1 + aspect), 1 + aspect]; 0 disables it.
    aspect: float = 0.0
    # Coil shading: a smooth multiplicative field exp(a P), P a random cubic scaled to
    # max |P| = 1, a ~ U(0, strength): strength 0.3 gives gains up to 0.74-1.35x.
    bias_field_prob: float = 0.0
    bias_field_strength: float = 0.3
    # Intensity ** g, g log-uniform in the range (0.6 and 1 / 0.6 equally likely).
    gamma_prob: float = 0.0
    gamma: tuple[float, float] = (0.6, 1.6)
    # A random monotone contrast curve (MONAI's RandHistogramShift): this many control points
    # evenly spaced on [0, 1], the inner ones moved by up to ``strength`` (< 0.5) of their
    # spacing; 0 and 1 stay fixed, so the background stays black.
    histogram_shift_prob: float = 0.0
    histogram_shift_points: int = 6
    histogram_shift_strength: float = 0.3
    # T2-like contrast: the head's intensities inverted, the background kept black. Off in
    # every shipped recipe until a validation run shows that it helps.
    invert_prob: float = 0.0
    # A coarser acquisition: down-sampled to a share of the side drawn in the range
    # (antialiased), then up-sampled back (bilinear).
    low_resolution_prob: float = 0.0
    low_resolution_scale: tuple[float, float] = (0.4, 0.9)
    # Gaussian blur, sigma in pixels of the training image size.
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.3, 1.5)
    # Edge enhancement as PIL's ImageEnhance.Sharpness: factor 1 is the image, 2 sharper.
    sharpen_prob: float = 0.0
    sharpen_factor: tuple[float, float] = (1.2, 2.5)
    # Noise of standard deviation drawn in ``noise_std`` (a fraction of the full range);
    # a share ``noise_rician`` of the noisy images get Rician noise (magnitude MR images,
    # |x + n1 + i n2|), the rest Gaussian.
    noise_prob: float = 0.0
    noise_std: tuple[float, float] = (0.005, 0.04)
    noise_rician: float = 0.5


# AugmentConfig fields given as [low, high] in a config file (tuples in the dataclass).
AUGMENT_RANGES = ("zoom", "erase_area", "gamma", "low_resolution_scale", "blur_sigma",
                  "sharpen_factor", "noise_std")


OPTIMIZERS = ("adam", "adamw", "sgd")
MASK_LOSSES = ("area-bce", "dice-bce")  # training/mask_loss.py


def flag(help: str, *, fixed_on_resume: bool = False,
         name: str | None = None) -> dict[str, Any]:
    """Field metadata that makes a :class:`TrainConfig` field a ``braintumor train`` flag.

    The flag is ``--<field-name>`` (``name`` overrides that), typed from the field's
    annotation: ``int``/``float`` fields parse as such, a ``bool`` takes ``on``/``off``.
    ``fixed_on_resume``: ``--resume`` refuses a value that differs from the run's
    ``config.yaml`` (the saved schedule and split depend on it). ``help`` is required: every
    option of every subcommand has a help text (tests/test_cli_help.py).
    """
    return {"flag": {"help": help, "name": name}, "fixed_on_resume": fixed_on_resume}


def fixed(**field_kwargs: Any) -> Any:
    """A config-file-only field that ``--resume`` may not change."""
    return field(**field_kwargs, metadata={"fixed_on_resume": True})


@dataclass
class TrainConfig:
    data: str | None = field(default=None, metadata=flag("dataset folder or CSV "
                                                          "(default: $DATA)"))
    out: str = field(default="runs/braintumor-net", metadata=flag("run directory"))
    model: str = field(default="braintumor-net", metadata=flag(
        "model name from the registry (default: braintumor-net)", fixed_on_resume=True))
    model_kwargs: dict[str, Any] = fixed(default_factory=dict)
    image_size: int = field(default=128, metadata=flag(
        "model input size in pixels (square)", fixed_on_resume=True))
    epochs: int = field(default=20, metadata=flag(
        "training epochs (upper bound with --patience)", fixed_on_resume=True))
    # Progressive resizing (fast.ai; Tan & Le 2021, EfficientNetV2): the first
    # ``low_res_epochs`` training epochs see each batch resized to ``low_res_size`` px, which
    # costs about (low/full)^2 of a step, so more epochs fit the same time; the rest, and every
    # validation pass, run at ``image_size``. None / 0: off.
    low_res_size: int | None = field(default=None, metadata=flag(
        "progressive resizing: train the first --low-res-epochs at this size",
        fixed_on_resume=True))
    low_res_epochs: int = field(default=0, metadata=flag(
        "how many first epochs train at --low-res-size", fixed_on_resume=True))
    batch_size: int = field(default=64, metadata=flag("images per training step",
                                                       fixed_on_resume=True))
    # No argparse choices for the optimizer: validate() holds the one list (OPTIMIZERS).
    optimizer: str = field(default="adamw", metadata=flag(
        "adamw (default), adam, or sgd (Nesterov momentum; OneCycle cycles it between 0.95 "
        "and 0.85)", fixed_on_resume=True))
    lr: float = field(default=3e-3, metadata=flag("peak learning rate of the schedule",
                                                  fixed_on_resume=True))
    weight_decay: float = field(default=5e-4, metadata=flag(
        "decoupled weight decay (AdamW) or L2"))
    schedule: str = fixed(default="onecycle")  # onecycle | cosine | constant
    warmup_fraction: float = 0.15  # of all steps (onecycle pct_start, cosine warm-up)
    label_smoothing: float = field(default=0.0, metadata=flag(
        "label smoothing of the loss (0-1)"))
    # Exponential moving average of the weights (training/ema.py, decay warmed up): validation,
    # checkpoints and the bundle use the averaged weights. None disables it.
    ema_decay: float | None = field(default=None, metadata=flag(
        "keep an exponential moving average of the weights (e.g. 0.995)", fixed_on_resume=True))
    class_weights: bool = field(default=True, metadata=flag(
        "weight the loss by inverse class frequency"))
    # Auxiliary tumour-mask loss (training/mask_loss.py): a folder of binary masks mirroring
    # the dataset (``masks``) supervises where the tumour is, on the feature map of
    # ``mask_layer`` (default: the model's Grad-CAM target layer), with weight
    # ``mask_loss_weight``. Images of ``mask_empty_classes`` (e.g. notumor) count as having an
    # empty mask; other images without a mask file are left out of that loss. None: off.
    masks: str | None = field(default=None, metadata=flag(
        "folder of tumour masks mirroring the dataset: adds an auxiliary loss on where the "
        "tumour is (training only)", fixed_on_resume=True))
    mask_loss_weight: float = field(default=0.5, metadata=flag(
        "weight of that loss (default 0.5)"))
    mask_layer: str | None = fixed(default=None)
    mask_empty_classes: list[str] = field(default_factory=list)
    # Which mask loss (training/mask_loss.py): area-bce (BCE against the tumour share of each
    # cell) or dice-bce (BCE over every masked image plus Dice over the non-empty masks, on the
    # map upsampled to the image: for a model's own tumour head, e.g. braintumor-net-v2 with
    # ``mask_layer: tumour_head``). With dice-bce and a model with a tumour head, validation
    # also logs the head's Dice (val_tumour_dice) on the validation images with a mask, and the
    # bundle's card records the tumour threshold chosen there (tumour_threshold).
    mask_loss: str = field(default="area-bce", metadata=flag(
        "that loss: area-bce (default) or dice-bce (a model's own tumour head)",
        fixed_on_resume=True))
    seed: int = field(default=42, metadata=flag(
        "random seed (split, initialisation, order)", fixed_on_resume=True))
    val_fraction: float = field(default=0.15, metadata=flag(
        "share of the training split held out for validation", fixed_on_resume=True))
    monitor: str = "val_loss"  # val_loss (min) | val_acc | val_f1 (max)
    # Epochs without improvement before early stopping; 0 disables.
    patience: int = field(default=8, metadata=flag(
        "stop after this many epochs without a better validation score"))
    max_train_images: int | None = field(default=None, metadata=flag(
        "use a subset (for quick checks)", fixed_on_resume=True))
    # Share of the training part kept (whole duplicate groups, seeded), taken after the
    # validation split, which therefore stays the same: learning curves, fine-tuning vs
    # scratch. None: all of it.
    train_fraction: float | None = field(default=None, metadata=flag(
        "keep this share of the training part (validation unchanged)", fixed_on_resume=True))
    # At most this many members of each near-duplicate group of the training part per epoch
    # (drawn anew every epoch; training/data.py GroupCappedSampler). None: every image.
    max_group_copies: int | None = field(default=None, metadata=flag(
        "per epoch, train on at most this many of each near-duplicate group",
        fixed_on_resume=True))
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    accelerator: str = field(default="auto", metadata=flag("cpu, gpu, auto (Lightning)"))
    devices: str = field(default="auto", metadata=flag("Lightning devices, e.g. 1, 4 or auto"))
    strategy: str = field(default="auto", metadata=flag("Lightning strategy, e.g. ddp"))
    num_nodes: int = field(default=1, metadata=flag(
        "machines for multi-node training (Lightning)"))
    # auto: bf16-mixed on CPUs where it is supported and faster
    precision: str = field(default="auto", metadata=flag(
        "Lightning precision, e.g. 32, bf16-mixed, 16-mixed"))
    num_threads: int | None = field(default=None, metadata=flag("torch CPU threads"))
    channels_last: bool = False
    deterministic: bool = True
    progress_bar: bool = True
    export_bundle: str | None = field(default=None, metadata=flag(
        "also write the trained model as a bundle here"))
    # Fine-tuning (training/init_from.py): start from the weights of a bundle folder, a
    # Lightning checkpoint, a run folder or ``bundled`` (the shipped model); same architecture
    # as ``model``/``model_kwargs``. The card records the parent's weights SHA-256. None: from
    # scratch.
    init_from: str | None = field(default=None, metadata=flag(
        "fine-tune: start from a bundle, run folder, .ckpt, or 'bundled'"))
    # Class list other than the data's folders (data/labels.py parse_class_spec): names
    # (``glioma,meningioma,newtype``) or a relabelling (``tumour=glioma+meningioma+pituitary,
    # notumor=notumor``). With init_from, a class list that differs from the parent's gets a
    # new classifier (rows of classes the parent knew keep its weights). None: the folders.
    custom_classes: str | None = field(default=None, metadata=flag(
        "class list (a,b,c) or relabelling (tumour=glioma+meningioma+pituitary,"
        "notumor=notumor); a new classifier where it differs", fixed_on_resume=True))
    # Parameter-name prefixes kept fixed while training (``stem``, ``stages.0``; batch-norm
    # statistics in them too): the early, generic layers of a parent model.
    freeze: list[str] = field(default_factory=list, metadata=flag(
        "keep these parameter prefixes fixed (comma-separated), e.g. stem,stages.0"))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for pair in AUGMENT_RANGES:
            d["augment"][pair] = list(getattr(self.augment, pair))
        return d

    def dump(self, path: str | Path) -> None:
        import yaml  # here, not at the top: cli.py imports this module for --help

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))


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
            import yaml

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
    for pair in AUGMENT_RANGES:
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
    problems += shift_augment_problems(cfg.augment)
    if cfg.mask_loss_weight < 0:
        problems.append("mask_loss_weight must be >= 0")
    if cfg.mask_loss not in MASK_LOSSES:
        problems.append(f"mask_loss must be one of {', '.join(MASK_LOSSES)}")
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


def shift_augment_problems(a: AugmentConfig) -> list[str]:
    """What is wrong with the shift augmentation's settings (training/appearance.py)."""
    problems = []
    for name in ("bias_field_prob", "gamma_prob", "histogram_shift_prob", "invert_prob",
                 "low_resolution_prob", "blur_prob", "sharpen_prob", "noise_prob",
                 "noise_rician"):
        if not 0 <= getattr(a, name) <= 1:
            problems.append(f"augment.{name} must be in [0, 1]")
    if not 0 <= a.aspect <= 1:
        problems.append("augment.aspect must be in [0, 1] (a stretch of up to 1 + aspect)")
    if not 0 <= a.bias_field_strength <= 1:
        problems.append("augment.bias_field_strength must be in [0, 1] (a log gain)")
    points = a.histogram_shift_points
    if isinstance(points, bool) or not isinstance(points, int) or points < 3:
        problems.append("augment.histogram_shift_points must be an integer >= 3")
    if not 0 <= a.histogram_shift_strength < 0.5:
        problems.append("augment.histogram_shift_strength must be in [0, 0.5) (the curve "
                        "must stay increasing)")
    limits = {"gamma": (0, None, "0 < low <= high"),
              "low_resolution_scale": (0, 1, "0 < low <= high <= 1"),
              "blur_sigma": (0, 10, "0 < low <= high <= 10"),
              "sharpen_factor": (None, 10, "0 <= low <= high <= 10"),
              "noise_std": (None, 0.5, "0 <= low <= high <= 0.5")}
    for name, (open_low, high_max, rule) in limits.items():
        pair = tuple(getattr(a, name))
        ok = len(pair) == 2 and 0 <= pair[0] <= pair[1]
        ok = ok and (open_low is None or pair[0] > open_low)
        ok = ok and (high_max is None or pair[1] <= high_max)
        if not ok:
            problems.append(f"augment.{name} must be [low, high] with {rule}")
    return problems


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


@dataclass(frozen=True)
class TrainFlag:
    """One ``braintumor train`` flag, as :func:`train_flags` derives it from a field."""

    name: str  # e.g. "--batch-size"
    dest: str  # the TrainConfig field
    kwargs: dict[str, Any]  # the rest of argparse's add_argument


def _flag_type(annotation: Any) -> Any:
    """The one non-None type of a field annotation (``int | None`` -> ``int``)."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if len(args) == 1 else annotation


def _comma_list(text: str) -> list[str]:
    """``stem, stages.0`` -> ``["stem", "stages.0"]`` (empty items dropped)."""
    return [p.strip() for p in text.split(",") if p.strip()]


def train_flags() -> list[TrainFlag]:
    """The CLI flags of ``braintumor train``, one per :class:`TrainConfig` field with
    :func:`flag` metadata, in field order; every default is None, so that a flag overrides
    the config file only when it is given."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        spec = f.metadata.get("flag")
        if spec is None:
            continue
        kwargs: dict[str, Any] = {"help": spec["help"]}
        kind = _flag_type(hints[f.name])
        if typing.get_origin(hints[f.name]) is list:  # a list[str] given as a,b,c
            kwargs["type"] = _comma_list
        elif kind is bool:
            kwargs["choices"] = ["on", "off"]
        elif kind in (int, float):
            kwargs["type"] = kind
        out.append(TrainFlag(spec["name"] or "--" + f.name.replace("_", "-"), f.name, kwargs))
    return out


def fixed_on_resume() -> tuple[str, ...]:
    """The fields ``--resume`` may not change (see :func:`flag`)."""
    return tuple(f.name for f in fields(TrainConfig) if f.metadata.get("fixed_on_resume"))


def overrides_from_args(args: Any) -> dict[str, Any]:
    """The CLI flags of ``braintumor train`` that were given, as config fields."""
    out: dict[str, Any] = {}
    for flag_ in train_flags():
        value = getattr(args, flag_.dest, None)
        if "choices" in flag_.kwargs and value is not None:  # a bool given as on/off
            value = value == "on"
        out[flag_.dest] = value
    return out


def replace(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    return dataclasses.replace(cfg, **changes)
