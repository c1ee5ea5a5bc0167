"""Fine-tuning (training/init_from.py): weights inherited, classifier replaced, layers frozen."""

from __future__ import annotations

import argparse
import json

import pytest
import torch
from safetensors.torch import load_file

from braintumor.cli import build_parser
from braintumor.data.preprocess import PreprocessConfig
from braintumor.models import create_model, load_bundle, save_bundle
from braintumor.models.bundle import bundled_model_path
from braintumor.training.config import ConfigError, TrainConfig, load_config, overrides_from_args
from braintumor.training.config import validate as validate_config
from braintumor.training.data import TrainingDataError
from braintumor.training.init_from import (
    InitFromError,
    classifier_prefix,
    init_from_parent,
    load_parent,
)
from braintumor.training.run import TrainingError, train

FOUR = ["glioma", "meningioma", "notumor", "pituitary"]
TWO_CLASS = "tumour=glioma+meningioma+pituitary,notumor=notumor"


@pytest.fixture
def parent_bundle(tmp_path):
    torch.manual_seed(7)
    model = create_model("braintumor-net", num_classes=4, image_size=32)
    return save_bundle(model, tmp_path / "parent", model_name="braintumor-net", classes=FOUR,
                       preprocess=PreprocessConfig(image_size=32), model_kwargs={})


def _fresh(num_classes: int, seed: int = 0, name: str = "braintumor-net", **kw):
    torch.manual_seed(seed)
    return create_model(name, num_classes=num_classes, image_size=32, **kw)


def test_same_classes_start_from_every_parent_tensor(parent_bundle):
    parent = load_parent(str(parent_bundle))
    model = _fresh(4)
    entry = init_from_parent(model, parent, "braintumor-net", {}, FOUR)
    assert entry["classifier"] == "inherited"
    assert entry["weights_sha256"] == load_bundle(parent_bundle).checksum
    for k, v in model.state_dict().items():
        assert torch.equal(v, parent.state_dict[k]), k


def test_changed_class_list_replaces_only_the_classifier(parent_bundle):
    parent = load_parent(str(parent_bundle))
    model = _fresh(2, seed=3)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    entry = init_from_parent(model, parent, "braintumor-net", {}, ["tumour", "notumor"])
    head = classifier_prefix(model, 2)
    assert "replaced" in entry["classifier"] and "notumor" in entry["classifier"]
    state = model.state_dict()
    for k, v in state.items():
        if not k.startswith(head + "."):
            assert torch.equal(v, parent.state_dict[k]), k
    # the notumor row keeps the parent's notumor row; the new "tumour" row is freshly drawn
    w, pw = state[f"{head}.weight"], parent.state_dict[f"{head}.weight"]
    assert torch.equal(w[1], pw[FOUR.index("notumor")])
    assert torch.equal(w[0], fresh_head[f"{head}.weight"][0])
    assert not any(torch.equal(w[0], row) for row in pw)


def test_other_architecture_is_refused_naming_both(parent_bundle):
    parent = load_parent(str(parent_bundle))
    with pytest.raises(InitFromError, match="braintumor-net.*paper-cnn"):
        init_from_parent(_fresh(4, name="paper-cnn"), parent, "paper-cnn", {}, FOUR)
    deeper = {"depths": [1, 1, 1, 1]}
    with pytest.raises(InitFromError, match="depths"):
        init_from_parent(_fresh(4, **deeper), parent, "braintumor-net", deeper, FOUR)


def test_missing_or_unreadable_parent_is_a_clear_error(tmp_path):
    with pytest.raises(InitFromError, match="no such bundle"):
        load_parent(str(tmp_path / "nowhere"))
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(InitFromError, match="not a readable Lightning checkpoint"):
        load_parent(str(bad))


def test_bundled_parent_by_name_carries_its_checksum():
    parent = load_parent("bundled")
    card = json.loads((bundled_model_path() / "card.json").read_text())
    assert parent.sha256 == card["weights"]["sha256"]
    assert parent.architecture == "braintumor-net" and parent.classes == FOUR


def test_fine_tune_two_class_with_frozen_stages(parent_bundle, tiny_data, tiny_config, tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "ft", epochs=2, init_from=str(parent_bundle),
                      custom_classes=TWO_CLASS, freeze=["stem", "stages.0"])
    train(cfg)
    bundle = load_bundle(tmp_path / "ft" / "bundle")
    assert bundle.classes == ["tumour", "notumor"]
    parent = load_file(str(parent_bundle / "model.safetensors"))
    child = load_file(str(tmp_path / "ft" / "bundle" / "model.safetensors"))
    frozen = [k for k in child if k.startswith(("stem.", "stages.0."))]
    assert frozen and any("running_mean" in k for k in frozen)
    for k in frozen:  # weights and batch-norm statistics alike
        assert torch.equal(child[k], parent[k]), k
    trained = [k for k in child if k.startswith("stages.3.") and k.endswith("weight")]
    assert any(not torch.equal(child[k], parent[k]) for k in trained)
    entry = bundle.card["training"]["parent"]
    assert entry["weights_sha256"] == load_bundle(parent_bundle).checksum
    assert entry["frozen"] == ["stem", "stages.0"]
    # the split counts are of the relabelled classes
    assert set(bundle.card["data"]["counts"]["train"]) == {"tumour", "notumor"}

    # the run's own checkpoint seeds a further run (classes read from the run's bundle)
    again = tiny_config(tiny_data, tmp_path / "ft2", epochs=1, custom_classes=TWO_CLASS,
                        init_from=str(tmp_path / "ft" / "checkpoints" / "last.ckpt"))
    card = load_bundle(train(again)["bundle"]).card
    assert card["training"]["parent"]["classifier"] == "inherited"


def test_run_refuses_a_parent_of_another_architecture(parent_bundle, tiny_data, tiny_config,
                                                      tmp_path):
    cfg = tiny_config(tiny_data, tmp_path / "run", model="paper-cnn",
                      init_from=str(parent_bundle))
    with pytest.raises(TrainingError, match="is a braintumor-net.*trains a paper-cnn"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_freeze_typo_and_unmapped_folder_are_refused(parent_bundle, tiny_data, tiny_config,
                                                     tmp_path):
    with pytest.raises(TrainingError, match="--freeze stemm: no parameter"):
        train(tiny_config(tiny_data, tmp_path / "a", init_from=str(parent_bundle),
                          freeze=["stemm"]))
    with pytest.raises(TrainingDataError, match=r"\['pituitary'\].*does not map"):
        train(tiny_config(tiny_data, tmp_path / "b",
                          custom_classes="tumour=glioma+meningioma,notumor=notumor"))


def test_cli_flags_become_config_fields():
    args = build_parser().parse_args(
        ["train", "--init-from", "bundled", "--custom-classes", TWO_CLASS,
         "--freeze", "stem, stages.0"])
    cfg = load_config(None, overrides_from_args(args))
    assert (cfg.init_from, cfg.custom_classes, cfg.freeze) == ("bundled", TWO_CLASS,
                                                                ["stem", "stages.0"])
    assert overrides_from_args(argparse.Namespace()).get("freeze") is None


@pytest.mark.parametrize("changes, message", [
    ({"custom_classes": "tumour=glioma,glioma"}, "every entry needs '='"),
    ({"custom_classes": "a=glioma,b=glioma"}, "mapped to both"),
    ({"custom_classes": "glioma"}, ">= 2 classes"),
    ({"freeze": ["stem"]}, "freeze needs init_from"),
])
def test_bad_fine_tuning_settings_are_config_errors(changes, message):
    with pytest.raises(ConfigError, match=message):
        validate_config(TrainConfig(**changes))


def test_train_fraction_keeps_the_validation_split(synthetic_dataset, cache_root):
    from braintumor.training.data import CacheDataModule

    data = synthetic_dataset(n_per_class=20, size=32, splits=("Training",))
    full = CacheDataModule(data, 32, val_fraction=0.25, seed=0)
    full.prepare()
    part = CacheDataModule(data, 32, val_fraction=0.25, seed=0, train_fraction=0.25)
    part.prepare()
    assert list(part.val_rows) == list(full.val_rows)
    assert set(part.train_rows) < set(full.train_rows)
    assert abs(len(part.train_rows) - 0.25 * len(full.train_rows)) <= 2
