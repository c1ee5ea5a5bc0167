"""Config files (YAML and TOML), CLI overrides and the resolved config written back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from braintumor.cli import build_parser
from braintumor.training.config import ConfigError, load_config, overrides_from_args

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
# The ablation configs of docs/experiments/; configs/ itself holds only what `make train*` runs.
EXPERIMENTS = CONFIGS / "experiments"


def test_yaml_config_with_cli_overrides(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("epochs: 7\nlr: 0.01\naugment:\n  rotation_degrees: 5\n  zoom: [0.8, 1.2]\n")
    args = build_parser().parse_args(["train", "--config", str(f), "--epochs", "3",
                                      "--class-weights", "off"])
    cfg = load_config(args.config, overrides_from_args(args))
    assert cfg.epochs == 3 and cfg.lr == 0.01 and cfg.class_weights is False
    assert cfg.augment.rotation_degrees == 5 and cfg.augment.zoom == (0.8, 1.2)
    out = tmp_path / "resolved.yaml"
    cfg.dump(out)
    assert load_config(out) == cfg  # a run's config.yaml repeats the run


def test_optimizer_flag_overrides_the_config(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("optimizer: adam\n")
    args = build_parser().parse_args(["train", "--config", str(f), "--optimizer", "sgd"])
    assert load_config(args.config, overrides_from_args(args)).optimizer == "sgd"
    assert load_config(f, overrides_from_args(build_parser().parse_args(
        ["train"]))).optimizer == "adam"  # no flag: the file's choice stands
    args = build_parser().parse_args(["train", "--optimizer", "rmsprop"])
    with pytest.raises(ConfigError, match="optimizer must be one of adam, adamw, sgd"):
        load_config(None, overrides_from_args(args))  # the flag is checked like the file


def test_toml_config(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('model = "paper-cnn"\nepochs = 2\n[augment]\nenabled = false\n')
    cfg = load_config(f)
    assert cfg.model == "paper-cnn" and cfg.epochs == 2 and cfg.augment.enabled is False


@pytest.mark.parametrize("text, match", [
    ("epochz: 3\n", "unknown option"),
    ("augment:\n  rotate: 3\n", "unknown augment option"),
    ("epochs: 0\n", "epochs must be"),
    ("ema_decay: 1.5\n", "ema_decay must be"),
    ("optimizer: rmsprop\n", "optimizer must be one of adam, adamw, sgd"),
    ("mask_loss_weight: -1\n", "mask_loss_weight must be"),
    ("augment:\n  erase_prob: 1.5\n", "erase_prob must be"),
    ("augment:\n  erase_area: [0.3, 0.1]\n", "erase_area must be"),
    ("augment:\n  erase_area: [0.0, 0.1]\n", "erase_area must be"),
    ("augment:\n  zoom: 1.1\n", "augment.zoom must be a list of two numbers"),
    ("augment:\n  zoom: [1.1]\n", "augment.zoom must be \\[low, high\\]"),
    ("augment:\n  zoom: [1.1, 0.9]\n", "augment.zoom must be \\[low, high\\]"),
    ("augment:\n  erase_area: [a, b]\n", "augment.erase_area must be a list of two numbers"),
    ("masks: m\naugment:\n  mixup_alpha: 0.2\n", "cannot be combined with MixUp/CutMix"),
    ("image_size: 64\nlow_res_size: 64\n", "low_res_size must be"),
    ("low_res_size: 16\n", "low_res_size must be"),
    ("low_res_epochs: 3\n", "low_res_epochs needs low_res_size"),
    ("max_group_copies: 0\n", "max_group_copies must be"),
    ("low_res_size: 64\nlow_res_epochs: 20\nepochs: 20\n", "low_res_epochs must be"),
    ("- 1\n- 2\n", "mapping"),
])
def test_bad_configs_name_the_problem(tmp_path, text, match):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(f)


def previous_bundled() -> dict:
    """The bundled config with the eighth round's change undone (40 epochs, no warp): the
    experiment configs record runs made on that recipe."""
    cfg = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    assert cfg["epochs"] == 48
    cfg["epochs"] = 40
    cfg["augment"].update(rotation_degrees=0, zoom=[1.0, 1.0], translate=0.0)
    return cfg


def test_bundled_config_is_the_geometric_recipe_at_48_epochs():
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    geometric = load_config(EXPERIMENTS / "braintumor-net-geometric.yaml").to_dict()
    assert (bundled.pop("epochs"), geometric.pop("epochs")) == (48, 40)
    assert bundled == geometric


def test_make_train_configs_stay_in_configs():
    """`make train`, `make train-baseline` and `make train-baseline-same-recipe` read these."""
    makefile = (CONFIGS.parent / "Makefile").read_text()
    used = set(re.findall(r"--config (configs/\S+\.yaml)", makefile))
    assert used == {f"configs/{n}" for n in ("braintumor-net.yaml", "paper-cnn.yaml",
                                             "paper-cnn-our-recipe.yaml")}
    assert {p.name for p in CONFIGS.glob("*.yaml")} == {Path(u).name for u in used}


def test_shipped_configs_load():
    shipped = sorted(CONFIGS.glob("*.yaml")) + sorted(EXPERIMENTS.glob("*.yaml"))
    assert len(shipped) >= 15 and len(list(EXPERIMENTS.glob("*.yaml"))) >= 12
    for path in shipped:
        cfg = load_config(path)
        assert cfg.model in path.name
    # The masks config differs from the bundled one only in its mask settings and in the stem
    # (it records an experiment run on the previous bundled config, whose stem normalised
    # before pooling); the masks folder itself comes from the command line, like the data.
    bundled = previous_bundled()
    masks = load_config(EXPERIMENTS / "braintumor-net-masks.yaml", {"masks": "M"}).to_dict()
    assert bundled["model_kwargs"].pop("stem_norm_after_pool") is True
    assert "stem_norm_after_pool" not in masks["model_kwargs"]
    changed = {k for k in bundled if bundled[k] != masks[k]}
    assert changed == {"masks", "mask_loss_weight", "mask_empty_classes"} - (
        {"mask_loss_weight"} if bundled["mask_loss_weight"] == masks["mask_loss_weight"] else set())
    assert masks["masks"] == "M" and masks["mask_empty_classes"] == ["notumor"]


def test_space_to_depth_config_changes_only_the_stem():
    bundled = previous_bundled()
    s2d = load_config(EXPERIMENTS / "braintumor-net-space-to-depth.yaml").to_dict()
    assert bundled["model_kwargs"].pop("stem_norm_after_pool") is True
    assert s2d["model_kwargs"].pop("stem") == "space-to-depth"
    assert bundled == s2d


def test_intensity_config_changes_only_brightness_and_contrast():
    bundled = previous_bundled()
    stronger = load_config(EXPERIMENTS / "braintumor-net-intensity-0.3.yaml").to_dict()
    for key in ("brightness", "contrast"):
        assert (bundled["augment"].pop(key), stronger["augment"].pop(key)) == (0.1, 0.3)
    assert bundled == stronger


def test_drop_path_config_changes_only_the_drop_path_rate():
    bundled = previous_bundled()
    dropped = load_config(EXPERIMENTS / "braintumor-net-drop-path-0.1.yaml").to_dict()
    assert dropped["model_kwargs"].pop("drop_path_rate") == 0.1
    assert bundled == dropped


def test_geometric_config_changes_only_the_warp():
    bundled = previous_bundled()
    warped = load_config(EXPERIMENTS / "braintumor-net-geometric.yaml").to_dict()
    for key, plain, moved in (("rotation_degrees", 0, 10), ("zoom", [1.0, 1.0], [0.9, 1.1]),
                              ("translate", 0.0, 0.05)):
        assert (bundled["augment"].pop(key), warped["augment"].pop(key)) == (plain, moved)
    assert bundled == warped


@pytest.mark.parametrize("name, rotation, zoom, shift", [
    ("braintumor-net-geometric-15.yaml", 15, [0.85, 1.15], 0.08),
    ("braintumor-net-geometric-5.yaml", 5, [0.95, 1.05], 0.03),
])
def test_warp_strength_configs_change_only_the_warp(name, rotation, zoom, shift):
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    other = load_config(EXPERIMENTS / name).to_dict()
    for key, plain, moved in (("rotation_degrees", 10, rotation), ("zoom", [0.9, 1.1], zoom),
                              ("translate", 0.05, shift)):
        assert (bundled["augment"].pop(key), other["augment"].pop(key)) == (plain, moved)
    assert bundled == other


def test_erase_config_adds_only_random_erasing():
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    erased = load_config(EXPERIMENTS / "braintumor-net-erase.yaml").to_dict()
    for key, plain, moved in (("erase_prob", 0.0, 0.25), ("erase_area", [0.02, 0.2], [0.02, 0.15])):
        assert (bundled["augment"].pop(key), erased["augment"].pop(key)) == (plain, moved)
    assert bundled == erased


def test_no_warp_config_is_the_previous_recipe_at_48_epochs():
    previous = previous_bundled()
    assert previous.pop("epochs") == 40
    no_warp = load_config(EXPERIMENTS / "braintumor-net-no-warp-48.yaml").to_dict()
    assert no_warp.pop("epochs") == 48
    assert previous == no_warp


def test_progressive_config_adds_only_the_low_resolution_epochs():
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    progressive = load_config(EXPERIMENTS / "braintumor-net-progressive.yaml").to_dict()
    for key, plain, moved in (("epochs", 48, 60), ("low_res_size", None, 144),
                              ("low_res_epochs", 0, 36)):
        assert (bundled.pop(key), progressive.pop(key)) == (plain, moved)
    assert bundled == progressive


def test_group_cap_config_caps_copies_and_adds_epochs():
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    capped = load_config(EXPERIMENTS / "braintumor-net-group-cap.yaml").to_dict()
    for key, plain, moved in (("epochs", 48, 58), ("max_group_copies", None, 2)):
        assert (bundled.pop(key), capped.pop(key)) == (plain, moved)
    assert bundled == capped


def test_tumourpool_config_supervises_the_models_own_tumour_map():
    cfg = load_config(EXPERIMENTS / "braintumor-net-tumourpool.yaml")
    assert cfg.model_kwargs["tumour_pooling"] is True and cfg.mask_layer == "tumour_head"


# The flags `braintumor train` has had since before they were derived from TrainConfig; a
# rename breaks users' scripts, so the list is pinned here.
TRAIN_FLAGS = {
    "--data", "--model", "--out", "--epochs", "--batch-size", "--optimizer", "--lr",
    "--weight-decay", "--image-size", "--low-res-size", "--low-res-epochs", "--seed",
    "--val-fraction", "--class-weights", "--label-smoothing", "--ema-decay", "--masks",
    "--mask-loss-weight", "--mask-loss", "--patience", "--max-train-images",
    "--max-group-copies",
    "--accelerator", "--devices", "--strategy", "--num-nodes", "--precision", "--num-threads",
    "--export-bundle", "--init-from", "--custom-classes", "--freeze", "--train-fraction",
}
# Settings only a config file sets (nested, lists, or rarely changed).
FILE_ONLY = {"model_kwargs", "schedule", "warmup_fraction", "mask_layer", "mask_empty_classes",
             "monitor", "augment", "channels_last", "deterministic", "progress_bar"}


def test_every_train_option_is_a_flag_or_deliberately_file_only():
    from dataclasses import fields

    from braintumor.training.config import TrainConfig, train_flags

    flags = train_flags()
    assert {f.name for f in flags} == TRAIN_FLAGS
    # A new TrainConfig field must be marked a flag (training.config.flag) or listed here.
    assert {f.name for f in fields(TrainConfig)} - {f.dest for f in flags} == FILE_ONLY
    train = next(a for a in build_parser()._actions if a.dest == "command").choices["train"]
    assert TRAIN_FLAGS <= {s for a in train._actions for s in a.option_strings}


@pytest.mark.parametrize("argv, field, value", [
    (["--epochs", "3"], "epochs", 3),
    (["--lr", "0.01"], "lr", 0.01),
    (["--low-res-size", "64"], "low_res_size", 64),
    (["--ema-decay", "0.99"], "ema_decay", 0.99),
    (["--class-weights", "off"], "class_weights", False),
    (["--class-weights", "on"], "class_weights", True),
    (["--devices", "2"], "devices", "2"),  # a string: "auto" is a value too
    (["--masks", "m"], "masks", "m"),
    (["--export-bundle", "b"], "export_bundle", "b"),
    (["--train-fraction", "0.25"], "train_fraction", 0.25),
    (["--freeze", "stem, stages.0"], "freeze", ["stem", "stages.0"]),  # a list, comma-separated
])
def test_a_flag_parses_to_its_field_with_the_fields_type(argv, field, value):
    overrides = overrides_from_args(build_parser().parse_args(["train", *argv]))
    assert overrides[field] == value and type(overrides[field]) is type(value)
    given = {k for k, v in overrides.items() if v is not None}
    assert given <= {field, "data"}  # data defaults to $DATA


def test_data_flag_defaults_to_the_DATA_variable(monkeypatch):
    monkeypatch.setenv("DATA", "/somewhere")
    assert build_parser().parse_args(["train"]).data == "/somewhere"
    monkeypatch.delenv("DATA")
    assert build_parser().parse_args(["train"]).data is None


def test_resume_keeps_the_settings_schedule_and_split_depend_on():
    from braintumor.training.config import fixed_on_resume

    assert set(fixed_on_resume()) == {
        "model", "model_kwargs", "image_size", "low_res_size", "low_res_epochs", "epochs",
        "max_group_copies", "batch_size", "schedule", "lr", "optimizer", "seed",
        "val_fraction", "max_train_images", "ema_decay", "masks", "mask_layer", "mask_loss",
        "train_fraction", "custom_classes"}


def test_v2_config_is_the_bundled_recipe_with_the_v2_model_and_the_mask_loss():
    bundled = load_config(CONFIGS / "braintumor-net.yaml").to_dict()
    v2 = load_config(EXPERIMENTS / "braintumor-net-v2.yaml").to_dict()
    assert v2["model"] == "braintumor-net-v2"
    assert v2["model_kwargs"] == {**bundled["model_kwargs"], "decoder_width": 64,
                                  "fine_stage": 1}
    assert (v2["mask_loss"], v2["mask_layer"], v2["mask_empty_classes"]) == (
        "dice-bce", "tumour_head", ["notumor"])
    changed = {"model", "model_kwargs", "mask_loss", "mask_layer", "mask_loss_weight",
               "mask_empty_classes"}
    assert {k: v for k, v in v2.items() if k not in changed} == \
        {k: v for k, v in bundled.items() if k not in changed}
